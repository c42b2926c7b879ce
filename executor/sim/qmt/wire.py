"""What travels between the stand-in binary (``xtpythonclient.py``) and the simulated MiniQMT (``server.py``).

client -> server: ``("hello", PROTOCOL, session)`` once, answered ``("hello", rc)``; then
``("call", entry_point, seq, fields)`` where ``fields`` are the request struct's ``m_*`` fields as a dict.
server -> client: ``("cb", binding, args)``: call the callback the wheel bound with ``binding`` (for instance
``"bindOnStockOrderCallback"``) with ``args``, as the binary does from its own thread.
"""

from __future__ import annotations

from typing import Any

from .endpoint import PROTOCOL

__all__ = ["PROTOCOL", "CppStruct", "CALLS", "refusal"]


class CppStruct:
    """A response object as the binary hands it to the wheel: raw ``m_*`` attribute names only
    (``xtquant/xttrader.py`` reads ``resp.m_nOrderID``, ``data.m_nStatus``, ...)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"CppStruct({self.__dict__!r})"


#: entry point of XtQuantAsyncClient the stand-in implements -> (request struct, binding that carries the answer)
CALLS: dict[str, tuple[str, str]] = {
    "subscribeWithSeq": ("SubscribeReq", "bindOnSubscribeRespCallback"),
    "unsubscribeWithSeq": ("UnsubscribeReq", "bindOnUnsubscribeRespCallback"),
    "orderStockWithSeq": ("OrderStockReq", "bindOnOrderStockRespCallback"),
    "cancelOrderStockWithSeq": ("CancelOrderStockReq", "bindOnCancelOrderStockRespCallback"),
    "queryStockAssetWithSeq": ("QueryStockAssetReq", "bindOnQueryStockAssetCallback"),
    "queryStockOrdersWithSeq": ("QueryStockOrdersReq", "bindOnQueryStockOrdersCallback"),
    "queryStockTradesWithSeq": ("QueryStockTradesReq", "bindOnQueryStockTradesCallback"),
    "queryStockPositionsWithSeq": ("QueryStockPositionsReq", "bindOnQueryStockPositionsCallback"),
    "queryAccountInfosWithSeq": ("QueryAccountInfosReq", "bindOnQueryAccountInfosCallback"),
    "queryAccountStatusWithSeq": ("QueryAccountStatusReq", "bindOnQueryAccountStatusCallback"),
}

E_NOT_CONNECTED = 100001  # executor/sim/engine.py's tier-1 "disconnected" id, so both simulators say the same
E_CANCEL_NOT_CONNECTED = 100704
NOT_CONNECTED = "[SIM][{}] 交易连接已断开 / not connected to MiniQMT"


def refusal(entry: str, seq: int, fields: dict) -> list[tuple[str, tuple]]:
    """The answers to a call made on a session that is not connected (never connected, stopped, or the link
    dropped): orders and cancels are refused with their error push, queries answer None, subscribe -1."""
    from xtquant import xttype as xt

    from executor.sim.objects import SimXtOrderError

    binding = CALLS[entry][1]
    aid = fields.get("m_strAccountID", "")
    if entry == "orderStockWithSeq":
        text = NOT_CONNECTED.format(E_NOT_CONNECTED)
        resp = CppStruct(m_strAccountID=aid, m_nOrderID=-1, m_strStrategyName=fields.get("m_strStrategyName", ""),
                         m_strOrderRemark=fields.get("m_strOrderRemark", ""), m_strErrorMsg=text)
        err = SimXtOrderError(aid, -1, E_NOT_CONNECTED, text, fields.get("m_strStrategyName", ""),
                              fields.get("m_strOrderRemark", ""), seq)
        return [(binding, (seq, resp)), ("bindOnOrderErrorCallback", (err,))]
    if entry == "cancelOrderStockWithSeq":
        text = NOT_CONNECTED.format(E_CANCEL_NOT_CONNECTED)
        sysid = fields.get("m_strOrderSysID", "")
        resp = CppStruct(m_strAccountID=aid, m_nCancelResult=-1, m_nOrderID=fields.get("m_nOrderID", -1),
                         m_strOrderSysID=sysid, m_strErrorMsg=text)
        err = xt.XtCancelError(aid, fields.get("m_nOrderID", -1), fields.get("m_nMarket", -1), sysid,
                               E_CANCEL_NOT_CONNECTED, text)
        return [(binding, (seq, resp)), ("bindOnCancelErrorCallback", (err,))]
    if entry in ("subscribeWithSeq", "unsubscribeWithSeq"):
        return [(binding, (seq, -1))]
    return [(binding, (seq, None))]

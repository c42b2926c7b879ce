"""What travels between the stand-in binary (``xtpythonclient.py``) and the simulated MiniQMT (``server.py``).

client -> server: ``("hello", PROTOCOL, session)`` once, answered ``("hello", rc)``; then
``("call", entry_point, seq, fields)`` where ``fields`` are the request struct's ``m_*`` fields as a dict.
server -> client: ``("cb", binding, args)``: call the callback the wheel bound with ``binding`` (for instance
``"bindOnStockOrderCallback"``) with ``args``, as the binary does from its own thread.
"""

from __future__ import annotations

from typing import Any

from .endpoint import PROTOCOL

__all__ = ["ANSWER", "CALLS", "PROTOCOL", "CppStruct", "failed", "refusal"]


class CppStruct:
    """A response object as the binary hands it to the wheel: raw ``m_*`` attribute names only
    (``xtquant/xttrader.py`` reads ``resp.m_nOrderID``, ``data.m_nStatus``, ...)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"CppStruct({self.__dict__!r})"


#: entry point of XtQuantAsyncClient the stand-in implements -> (request struct, binding that carries the answer).
#: The struct is None where the wheel passes raw arguments (BSON documents, lists): they travel as
#: ``fields = {"args": [...]}``. Every entry point the pinned wheel's xttrader.py calls is here
#: (tests/qmtsim/test_entry_points.py derives that from the wheel's class).
CALLS: dict[str, tuple[str | None, str]] = {
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
    # beyond stock trading (answered by other_calls.py)
    "queryCreditDetailWithSeq": ("QueryCreditDetailReq", "bindOnQueryCreditDetailRespCallback"),
    "queryStkCompactsWithSeq": ("QueryStkCompactsReq", "bindOnQueryStkCompactsRespCallback"),
    "queryCreditSubjectsWithSeq": ("QueryCreditSubjectsReq", "bindOnQueryCreditSubjectsRespCallback"),
    "queryCreditSloCodeWithSeq": ("QueryCreditSloCodeReq", "bindOnQueryCreditSloCodeRespCallback"),
    "queryCreditAssureWithSeq": ("QueryCreditAssureReq", "bindOnQueryCreditAssureRespCallback"),
    "queryNewPurchaseLimitWithSeq": ("QueryNewPurchaseLimitReq", "bindOnQueryNewPurchaseLimitCallback"),
    "queryIPODataWithSeq": ("QueryIPODataReq", "bindOnQueryIPODataCallback"),
    "transferWithSeq": ("TransferParam", "bindOnTransferRespCallback"),
    "queryComFundWithSeq": ("QueryComFundReq", "bindOnQueryComFundRespCallback"),
    # the wheel binds no callback of its own for this answer; every query binding is the same function
    "queryComPositionWithSeq": ("QueryComPositionReq", "bindOnQueryComFundRespCallback"),
    "smtQueryQuoterWithSeq": ("SmtQueryQuoterReq", "bindOnSmtQueryQuoterRespCallback"),
    "smtNegotiateOrderWithSeq": ("SmtNegotiateOrderReq", "bindOnSmtAppointmentRespCallback"),
    "smtAppointmentOrderWithSeq": ("SmtAppointmentOrderReq", "bindOnSmtAppointmentRespCallback"),
    "smtAppointmentCancelWithSeq": ("SmtAppointmentCancelReq", "bindOnSmtAppointmentRespCallback"),
    "smtQueryOrderWithSeq": ("SmtQueryOrderReq", "bindOnSmtQueryOrderRespCallback"),
    "smtQueryCompactWithSeq": ("SmtQueryCompactReq", "bindOnSmtQueryCompactRespCallback"),
    "smtCompactRenewalWithSeq": ("SmtCompactRenewalReq", "bindOnSmtAppointmentRespCallback"),
    "smtCompactReturnWithSeq": ("SmtCompactReturnReq", "bindOnSmtAppointmentRespCallback"),
    "queryPositionStatisticsWithSeq": ("QueryPositionStatisticsReq", "bindOnQueryPositionStatisticsRespCallback"),
    "exportDataWithSeq": (None, "bindOnExportDataRespCallback"),
    "syncTransactionFromExternalWithSeq": (None, "bindOnSyncTransactionFromExternalRespCallback"),
    "bankTransferWithSeq": ("BankTransferReq", "bindOnBankTransferRespCallback"),
    "queryBankInfoWithSeq": ("QueryBankInfoReq", "bindOnQueryBankInfoRespCallback"),
    "queryBankAmountWithSeq": ("QueryBankAmountReq", "bindOnQueryBankAmountRespCallback"),
    "queryBankTransferStreamWithSeq": ("QueryBankTransferStreamReq", "bindOnQueryBankTransferStreamRespCallback"),
    "querySecuAccountWithSeq": ("QuerySecuAccountReq", "bindOnQuerySecuAccountRespCallback"),
    "ctpInternalTransferWithSeq": ("CtpInternalTransferReq", "bindOnCtpInternalTransferRespCallback"),
    "getSmartAlgoParamWithSeq": (None, "bindOnGetSmartAlgoParamRespCallback"),
    "smartOrderStockWithSeq": (None, "bindOnSmartOrderStockRespCallback"),
    "querySmartAlgoTaskWithSeq": (None, "bindOnQuerySmartAlgoTaskRespCallback"),
    "operateSmartAlgoTaskWithSeq": ("OperateSmartAlgoTaskReq", "bindOnOperateSmartAlgoTaskRespCallback"),
}

#: the shape of each answer beyond stock trading, as the wheel reads it (xtquant/xttrader.py):
#: "list"  a list passed through to the caller; None = failed (unknown account, not connected)
#: "items" a list the wheel iterates (None would raise there): [] when there is nothing
#: "fund"  a one-element list the wheel indexes ([0]) and reads m_bSuccess/m_strMsg/m_d* of
#: "ok"    one struct with m_bSuccess/m_strMsg (transfers); "smt": plus m_strApplyID
#: "bank"  one struct with success/error_msg (msg for the sync form); "operate": success/task_id/reason/error_msg
#: "json"  a JSON text (export/sync data, smart algo); "algo": a JSON text with account_id, task_id, ...
ANSWER: dict[str, str] = {
    "queryCreditDetailWithSeq": "list", "queryStkCompactsWithSeq": "list", "queryCreditSubjectsWithSeq": "list",
    "queryCreditSloCodeWithSeq": "list", "queryCreditAssureWithSeq": "list",
    "queryPositionStatisticsWithSeq": "list", "queryBankInfoWithSeq": "list", "queryBankAmountWithSeq": "list",
    "queryBankTransferStreamWithSeq": "list", "querySecuAccountWithSeq": "list",
    "queryNewPurchaseLimitWithSeq": "items", "queryIPODataWithSeq": "items", "queryComPositionWithSeq": "items",
    "smtQueryQuoterWithSeq": "items", "smtQueryOrderWithSeq": "items", "smtQueryCompactWithSeq": "items",
    "queryComFundWithSeq": "fund", "transferWithSeq": "ok",
    "smtNegotiateOrderWithSeq": "smt", "smtAppointmentOrderWithSeq": "smt", "smtAppointmentCancelWithSeq": "smt",
    "smtCompactRenewalWithSeq": "smt", "smtCompactReturnWithSeq": "smt",
    "bankTransferWithSeq": "bank", "ctpInternalTransferWithSeq": "bank",
    "operateSmartAlgoTaskWithSeq": "operate",
    "exportDataWithSeq": "json", "syncTransactionFromExternalWithSeq": "json", "getSmartAlgoParamWithSeq": "json",
    "querySmartAlgoTaskWithSeq": "json", "smartOrderStockWithSeq": "algo",
}

_COM_FUND_NUMBERS = ("m_dCurrentBalance", "m_dEnableBalance", "m_dFetchBalance", "m_dInterest", "m_dAssetBalance",
                     "m_dFetchCash", "m_dMarketValue", "m_dDebt")


def failed(entry: str, fields: dict, text: str) -> Any:
    """The failure answer of an entry point beyond stock trading, in the shape the wheel reads (``ANSWER``)."""
    import json

    kind = ANSWER[entry]
    if kind == "list":
        return None
    if kind == "items":
        return []
    if kind == "fund":
        return [CppStruct(m_bSuccess=False, m_strMsg=text, **{k: 0.0 for k in _COM_FUND_NUMBERS})]
    if kind == "ok":
        return CppStruct(m_bSuccess=False, m_strMsg=text)
    if kind == "smt":
        return CppStruct(m_bSuccess=False, m_strMsg=text, m_strApplyID="")
    if kind == "bank":
        return CppStruct(success=False, error_msg=text, msg=text)
    if kind == "operate":
        return CppStruct(success=False, task_id=fields.get("m_nTaskId", -1), reason="", error_msg=text)
    if kind == "algo":
        args = fields.get("args") or [{}]
        p = args[0] if isinstance(args[0], dict) else {}
        return json.dumps({"error": {"account_id": p.get("account_id", ""), "task_id": -1,
                                     "strategy_name": p.get("strategy_name", ""),
                                     "order_remark": p.get("order_remark", ""), "error_msg": text}},
                          ensure_ascii=False)
    if entry == "getSmartAlgoParamWithSeq":  # the wheel reads ["datas"] of the whole answer
        return json.dumps({"error": {"msg": text}, "datas": {}}, ensure_ascii=False)
    if entry == "querySmartAlgoTaskWithSeq":  # the wheel reads ["datas"] of the "error" member when there is one
        return json.dumps({"error": {"msg": text, "datas": []}}, ensure_ascii=False)
    return json.dumps({"error": {"msg": text}}, ensure_ascii=False)

E_NOT_CONNECTED = 100001  # executor/sim/engine.py's tier-1 "disconnected" id, so both simulators say the same
E_CANCEL_NOT_CONNECTED = 100704
NOT_CONNECTED = "[COUNTER] [{}][交易连接已断开] not connected to MiniQMT"  # shaped as engine.msg
E_INTERNAL = 100002
INTERNAL = "[COUNTER] [{}][内部错误] the simulated MiniQMT failed on this request: {}"


def refusal(entry: str, seq: int, fields: dict, *, error: tuple[int, str] | None = None) -> list[tuple[str, tuple]]:
    """The answers to a call made on a session that is not connected (never connected, stopped, or the link
    dropped): orders and cancels are refused with their error push, queries answer None, subscribe -1.
    ``error``: (id, text) to give instead of "not connected" (the simulated MiniQMT failed on the request)."""
    from xtquant import xttype as xt

    from executor.sim.objects import SimXtOrderError

    binding = CALLS[entry][1]
    aid = fields.get("m_strAccountID", "")
    if entry == "orderStockWithSeq":
        eid, text = error or (E_NOT_CONNECTED, NOT_CONNECTED.format(E_NOT_CONNECTED))
        resp = CppStruct(m_strAccountID=aid, m_nOrderID=-1, m_strStrategyName=fields.get("m_strStrategyName", ""),
                         m_strOrderRemark=fields.get("m_strOrderRemark", ""), m_strErrorMsg=text)
        err = SimXtOrderError(aid, -1, eid, text, fields.get("m_strStrategyName", ""),
                              fields.get("m_strOrderRemark", ""), seq)
        return [(binding, (seq, resp)), ("bindOnOrderErrorCallback", (err,))]
    if entry == "cancelOrderStockWithSeq":
        eid, text = error or (E_CANCEL_NOT_CONNECTED, NOT_CONNECTED.format(E_CANCEL_NOT_CONNECTED))
        sysid = fields.get("m_strOrderSysID", "")
        resp = CppStruct(m_strAccountID=aid, m_nCancelResult=-1, m_nOrderID=fields.get("m_nOrderID", -1),
                         m_strOrderSysID=sysid, m_strErrorMsg=text)
        err = xt.XtCancelError(aid, fields.get("m_nOrderID", -1), fields.get("m_nMarket", -1), sysid,
                               eid, text)
        return [(binding, (seq, resp)), ("bindOnCancelErrorCallback", (err,))]
    if entry in ("subscribeWithSeq", "unsubscribeWithSeq"):
        return [(binding, (seq, -1))]
    if entry in ANSWER:
        return [(binding, (seq, failed(entry, fields, error[1] if error else NOT_CONNECTED.format(E_NOT_CONNECTED))))]
    return [(binding, (seq, None))]

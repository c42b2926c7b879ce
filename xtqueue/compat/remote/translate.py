"""xtqueue's reports and errors → the objects and values xtquant gives a program.

Objects are the ``xttype`` classes with the raw ``m_*`` aliases the C++ objects also carry (the simulator's
subclasses, ``executor/sim/objects.py``: one home for them). ``order_remark`` and ``strategy_name`` are the
program's own (``Texts``), never the client order id and xtqueue strategy the broker holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from xtquant import xtconstant as xc
from xtquant import xttype as xt

from executor.sim.objects import SimXtAccountInfo, SimXtAsset, SimXtOrder, SimXtOrderError, SimXtPosition, SimXtTrade
from executor.sim.qmt.wire import CppStruct  # a response object as the binary hands it to the wheel
from producer_lib import contract as c

REMARK_MAX_BYTES = c.CLIENT_ORDER_ID_MAX_BYTES  # MiniQMT keeps 24 bytes of order_remark (UTF-8: a Chinese char is 3)



def offset_of(side: c.Side | None) -> int:
    """The offset flag of an order's side: open for what buys (credit buys included), close for the rest."""
    if side is None:
        return 0
    return xc.OFFSET_FLAG_OPEN if side.is_buy else xc.OFFSET_FLAG_CLOSE


def cut_remark(remark: str) -> str:
    """``remark`` as MiniQMT keeps it: its first 24 UTF-8 bytes. A character the cut would split is dropped whole
    (this stand-in cannot hand back half a character; what MiniQMT does with one is not documented)."""
    return remark.encode("utf-8")[:REMARK_MAX_BYTES].decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class Texts:
    """What a program sees as an order's ``order_remark`` and ``strategy_name``."""

    remark: str
    strategy_name: str


def broker_texts(client_order_id: str, strategy: str) -> Texts:
    """An order not placed through a remote trader: the broker's own values (remark = its client order id)."""
    return Texts(client_order_id, strategy)


def order(account: str, r: c.OrderReport, t: Texts) -> SimXtOrder:
    return SimXtOrder(account, r.code, r.order_id, r.order_sysid, r.order_time, r.order_type, r.volume,
                      r.price_type, r.price, r.traded_volume, r.traded_price, r.status_code, r.status_msg,
                      t.strategy_name, t.remark, xc.DIRECTION_FLAG_LONG, offset_of(r.side), "",
                      r.instrument_name)


def trade(account: str, r: c.TradeReport, t: Texts) -> SimXtTrade:
    return SimXtTrade(account, r.code, r.order_type, r.trade_id, r.traded_time, r.price, r.volume, r.amount,
                      r.order_id, r.order_sysid, t.strategy_name, t.remark, xc.DIRECTION_FLAG_LONG,
                      offset_of(r.side), r.commission, "", r.instrument_name)


def position(account: str, r: c.PositionReport) -> SimXtPosition:
    cost = r.avg_price * r.volume
    x = SimXtPosition(account, r.code, r.volume, r.can_use_volume, r.open_price, r.market_value, r.frozen_volume,
                      r.on_road_volume, r.yesterday_volume, r.avg_price, xc.DIRECTION_FLAG_LONG, r.last_price,
                      (r.market_value - cost) / cost if cost else 0.0, "", r.instrument_name)
    x.float_profit = r.market_value - cost  # derived: the wire carries market value and average cost, not this
    x.open_date = ""
    x.position_profit = 0.0
    return x


def asset(r: c.AssetReport) -> SimXtAsset:
    return SimXtAsset(r.account, r.cash, r.frozen_cash, r.market_value, r.total_asset, r.fetch_balance)


def account_status(account: str, status: int, account_type: int = xc.SECURITY_ACCOUNT) -> xt.XtAccountStatus:
    return xt.XtAccountStatus(account, account_type, status)


def account_info(account: str, status: int, account_type: int = xc.SECURITY_ACCOUNT) -> SimXtAccountInfo:
    return SimXtAccountInfo(account, status, account_type)


def order_error(account: str, order_id: int, error_id: int, message: str, t: Texts, seq: int) -> SimXtOrderError:
    return SimXtOrderError(account, order_id, error_id, message, t.strategy_name, t.remark, seq)


def cancel_error(account: str, order_id: int, market: int, sysid: str, error_id: int,
                 message: str) -> xt.XtCancelError:
    return xt.XtCancelError(account, order_id, market, sysid, error_id, message)


# --- orders: xtquant's codes → the contract's (order types: credit.side_of) ------------------------------------
PRICE_TYPES = {
    xc.FIX_PRICE: c.PriceType.LIMIT,
    xc.LATEST_PRICE: c.PriceType.LATEST,
    xc.MARKET_SH_CONVERT_5_CANCEL: c.PriceType.SH_BEST5_CANCEL,
    xc.MARKET_SH_CONVERT_5_LIMIT: c.PriceType.SH_BEST5_LIMIT,
    xc.MARKET_PEER_PRICE_FIRST: c.PriceType.PEER_BEST,
    xc.MARKET_MINE_PRICE_FIRST: c.PriceType.OWN_BEST,
    xc.MARKET_SZ_INSTBUSI_RESTCANCEL: c.PriceType.SZ_IOC,
    xc.MARKET_SZ_CONVERT_5_CANCEL: c.PriceType.SZ_BEST5_CANCEL,
    xc.MARKET_SZ_FULL_OR_CANCEL: c.PriceType.SZ_FOK,
}
MARKETS = {xc.SH_MARKET: c.Market.SH, xc.SZ_MARKET: c.Market.SZ, xc.MARKET_ENUM_BEIJING: c.Market.BJ}
MARKET_CODES = {v: k for k, v in MARKETS.items()}

# error_id of refusals that did not come from the broker (xtqueue's own, before anything was placed); a broker
# refusal keeps the broker's own id. 100001 / 100704: "not connected", as the simulated MiniQMT says it
# (executor/sim/qmt/wire.py), so a program sees one code for "no MiniQMT" whichever stand-in it runs on.
E_NOT_CONNECTED = 100001
E_CANCEL_NOT_CONNECTED = 100704
E_XTQUEUE = 190000  # + the ErrorCode's index below (+ 99: a refusal whose code is not known): refused by xtqueue
_CODES = list(c.ErrorCode)


def xtqueue_error_id(code: c.ErrorCode | None, cancel: bool = False) -> int:
    if code is None:
        return E_XTQUEUE + 99
    if code is c.ErrorCode.BROKER_UNAVAILABLE:
        return E_CANCEL_NOT_CONNECTED if cancel else E_NOT_CONNECTED
    return E_XTQUEUE + _CODES.index(code)


def error_text(code: c.ErrorCode | str, message: str, broker_message: str | None = None) -> str:
    """The error_msg a program sees: the broker's own text for a broker refusal, else xtqueue's, tagged."""
    if broker_message:
        return broker_message
    value = code.value if isinstance(code, c.ErrorCode) else code
    return f"[xtqueue][{value}] {message}"

"""Translation at the boundary: xtquant codes and objects ↔ contract enums and reports.

Every map is an explicit dict over ``xtquant.xtconstant`` names; tests/broker/test_parsing.py fails on any
xtconstant value of these families that has no mapping. The objects xtquant hands us are C++ objects on Windows
and ``xttype`` instances in the simulator; both are read by attribute name, with defaults for fields that older
wheels lack.
"""

from __future__ import annotations

import math
from typing import Any

from xtquant import xtconstant as xc

from producer_lib import contract as c

# On a CREDIT account 23/24 are the collateral buy/sell (担保品买入/卖出); 27-32 and their 专项 variants 40-45 are
# the credit sides (docs/architecture.md X14; executor/broker/xt/credit.py says how they are sent).
SIDE_TO_ORDER_TYPE: dict[c.Side, int] = {
    c.Side.BUY: xc.STOCK_BUY, c.Side.SELL: xc.STOCK_SELL,
    c.Side.FIN_BUY: xc.CREDIT_FIN_BUY, c.Side.SLO_SELL: xc.CREDIT_SLO_SELL,
    c.Side.BUY_SECU_REPAY: xc.CREDIT_BUY_SECU_REPAY, c.Side.DIRECT_SECU_REPAY: xc.CREDIT_DIRECT_SECU_REPAY,
    c.Side.SELL_SECU_REPAY: xc.CREDIT_SELL_SECU_REPAY, c.Side.DIRECT_CASH_REPAY: xc.CREDIT_DIRECT_CASH_REPAY,
    c.Side.FIN_BUY_SPECIAL: xc.CREDIT_FIN_BUY_SPECIAL, c.Side.SLO_SELL_SPECIAL: xc.CREDIT_SLO_SELL_SPECIAL,
    c.Side.BUY_SECU_REPAY_SPECIAL: xc.CREDIT_BUY_SECU_REPAY_SPECIAL,
    c.Side.DIRECT_SECU_REPAY_SPECIAL: xc.CREDIT_DIRECT_SECU_REPAY_SPECIAL,
    c.Side.SELL_SECU_REPAY_SPECIAL: xc.CREDIT_SELL_SECU_REPAY_SPECIAL,
    c.Side.DIRECT_CASH_REPAY_SPECIAL: xc.CREDIT_DIRECT_CASH_REPAY_SPECIAL,
}
ORDER_TYPE_TO_SIDE: dict[int, c.Side] = {v: k for k, v in SIDE_TO_ORDER_TYPE.items()}
OFFSET_FLAG_TO_SIDE: dict[int, c.Side] = {xc.OFFSET_FLAG_OPEN: c.Side.BUY, xc.OFFSET_FLAG_CLOSE: c.Side.SELL}

PRICE_TYPE_TO_XT: dict[c.PriceType, int] = {
    c.PriceType.LIMIT: xc.FIX_PRICE,
    c.PriceType.LATEST: xc.LATEST_PRICE,
    c.PriceType.SH_BEST5_CANCEL: xc.MARKET_SH_CONVERT_5_CANCEL,
    c.PriceType.SH_BEST5_LIMIT: xc.MARKET_SH_CONVERT_5_LIMIT,
    c.PriceType.PEER_BEST: xc.MARKET_PEER_PRICE_FIRST,
    c.PriceType.OWN_BEST: xc.MARKET_MINE_PRICE_FIRST,
    c.PriceType.SZ_IOC: xc.MARKET_SZ_INSTBUSI_RESTCANCEL,
    c.PriceType.SZ_BEST5_CANCEL: xc.MARKET_SZ_CONVERT_5_CANCEL,
    c.PriceType.SZ_FOK: xc.MARKET_SZ_FULL_OR_CANCEL,
}

ORDER_STATUS_FROM_XT: dict[int, c.OrderStatus] = {
    xc.ORDER_UNREPORTED: c.OrderStatus.UNREPORTED,
    xc.ORDER_WAIT_REPORTING: c.OrderStatus.WAIT_REPORTING,
    xc.ORDER_REPORTED: c.OrderStatus.REPORTED,
    xc.ORDER_REPORTED_CANCEL: c.OrderStatus.REPORTED_CANCEL,
    xc.ORDER_PARTSUCC_CANCEL: c.OrderStatus.PARTSUCC_CANCEL,
    xc.ORDER_PART_CANCEL: c.OrderStatus.PART_CANCEL,
    xc.ORDER_CANCELED: c.OrderStatus.CANCELED,
    xc.ORDER_PART_SUCC: c.OrderStatus.PART_SUCC,
    xc.ORDER_SUCCEEDED: c.OrderStatus.SUCCEEDED,
    xc.ORDER_JUNK: c.OrderStatus.JUNK,
    xc.ORDER_UNKNOWN: c.OrderStatus.UNKNOWN,
}

MARKET_TO_XT: dict[c.Market, int] = {c.Market.SH: xc.SH_MARKET, c.Market.SZ: xc.SZ_MARKET,
                                     c.Market.BJ: xc.MARKET_ENUM_BEIJING}

ACCOUNT_STATUS_NAMES: dict[int, str] = {
    xc.ACCOUNT_STATUS_INVALID: "invalid",
    xc.ACCOUNT_STATUS_OK: "ok",
    xc.ACCOUNT_STATUS_WAITING_LOGIN: "waiting_login",
    xc.ACCOUNT_STATUSING: "logging_in",
    xc.ACCOUNT_STATUS_FAIL: "failed",
    xc.ACCOUNT_STATUS_INITING: "initialising",
    xc.ACCOUNT_STATUS_CORRECTING: "correcting",
    xc.ACCOUNT_STATUS_CLOSED: "closed",
    xc.ACCOUNT_STATUS_ASSIS_FAIL: "assist_link_down",
    xc.ACCOUNT_STATUS_DISABLEBYSYS: "disabled_by_system",
    xc.ACCOUNT_STATUS_DISABLEBYUSER: "disabled_by_user",
}


def order_status(code: Any) -> c.OrderStatus:
    return ORDER_STATUS_FROM_XT.get(_int(code), c.OrderStatus.UNKNOWN)


def account_status_name(code: Any) -> str:
    return ACCOUNT_STATUS_NAMES.get(_int(code), f"code_{code}")


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _float(v: Any) -> float:
    """xtquant reports NaN for the cost of a closed position; the wire carries 0.0 instead."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(f) or math.isinf(f) else f


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _side(obj: Any) -> c.Side | None:
    side = ORDER_TYPE_TO_SIDE.get(_int(getattr(obj, "order_type", 0)))
    return side if side is not None else OFFSET_FLAG_TO_SIDE.get(_int(getattr(obj, "offset_flag", 0)))


_ORDER_FIELDS = ("order_id", "order_remark", "order_sysid", "stock_code", "order_type", "offset_flag", "order_volume",
                 "price", "price_type", "order_status", "status_msg", "traded_volume", "traded_price", "order_time",
                 "strategy_name", "instrument_name")
_TRADE_FIELDS = ("traded_id", "order_id", "order_remark", "order_sysid", "stock_code", "order_type", "offset_flag",
                 "traded_volume", "traded_price", "traded_amount", "traded_time", "commission", "strategy_name",
                 "instrument_name")


def order_key(o: Any) -> tuple:
    """Every raw field order_report reads: equal keys translate to equal reports (a cache key)."""
    return tuple(getattr(o, name, None) for name in _ORDER_FIELDS)


def trade_key(t: Any) -> tuple:
    return tuple(getattr(t, name, None) for name in _TRADE_FIELDS)


def order_report(o: Any) -> c.OrderReport:
    status_code = _int(getattr(o, "order_status", xc.ORDER_UNKNOWN), xc.ORDER_UNKNOWN)
    return c.OrderReport(
        order_id=_int(getattr(o, "order_id", -1), -1),
        client_order_id=_str(getattr(o, "order_remark", "")),
        order_sysid=_str(getattr(o, "order_sysid", "")),
        code=_str(getattr(o, "stock_code", "")),
        side=_side(o),
        order_type=_int(getattr(o, "order_type", 0)),
        volume=_int(getattr(o, "order_volume", 0)),
        price=_float(getattr(o, "price", 0.0)),
        price_type=_int(getattr(o, "price_type", 0)),
        status=order_status(status_code),
        status_code=status_code,
        status_msg=_str(getattr(o, "status_msg", "")),
        traded_volume=_int(getattr(o, "traded_volume", 0)),
        traded_price=_float(getattr(o, "traded_price", 0.0)),
        order_time=_int(getattr(o, "order_time", 0)),
        strategy=_str(getattr(o, "strategy_name", "")),
        instrument_name=_str(getattr(o, "instrument_name", "")),
    )


def trade_report(t: Any) -> c.TradeReport:
    return c.TradeReport(
        trade_id=_str(getattr(t, "traded_id", "")),
        order_id=_int(getattr(t, "order_id", -1), -1),
        client_order_id=_str(getattr(t, "order_remark", "")),
        order_sysid=_str(getattr(t, "order_sysid", "")),
        code=_str(getattr(t, "stock_code", "")),
        side=_side(t),
        order_type=_int(getattr(t, "order_type", 0)),
        price=_float(getattr(t, "traded_price", 0.0)),
        volume=_int(getattr(t, "traded_volume", 0)),
        amount=_float(getattr(t, "traded_amount", 0.0)),
        traded_time=_int(getattr(t, "traded_time", 0)),
        commission=_float(getattr(t, "commission", 0.0)),
        strategy=_str(getattr(t, "strategy_name", "")),
        instrument_name=_str(getattr(t, "instrument_name", "")),
    )


def position_report(p: Any) -> c.PositionReport:
    return c.PositionReport(
        code=_str(getattr(p, "stock_code", "")),
        volume=_int(getattr(p, "volume", 0)),
        can_use_volume=_int(getattr(p, "can_use_volume", 0)),
        frozen_volume=_int(getattr(p, "frozen_volume", 0)),
        on_road_volume=_int(getattr(p, "on_road_volume", 0)),
        yesterday_volume=_int(getattr(p, "yesterday_volume", 0)),
        open_price=_float(getattr(p, "open_price", 0.0)),
        avg_price=_float(getattr(p, "avg_price", 0.0)),
        market_value=_float(getattr(p, "market_value", 0.0)),
        last_price=_float(getattr(p, "last_price", 0.0)),
        instrument_name=_str(getattr(p, "instrument_name", "")),
    )


def asset_report(a: Any) -> c.AssetReport:
    return c.AssetReport(
        account=_str(getattr(a, "account_id", "")),
        cash=_float(getattr(a, "cash", 0.0)),
        frozen_cash=_float(getattr(a, "frozen_cash", 0.0)),
        market_value=_float(getattr(a, "market_value", 0.0)),
        total_asset=_float(getattr(a, "total_asset", 0.0)),
        fetch_balance=_float(getattr(a, "fetch_balance", 0.0)),
    )


# --- callbacks → events -----------------------------------------------------------------------------------------
def order_updated(o: Any) -> c.OrderUpdated:
    return c.OrderUpdated(order=order_report(o))


def order_filled(t: Any) -> c.OrderFilled:
    return c.OrderFilled(trade=trade_report(t))


def order_rejected(e: Any) -> c.OrderRejected:
    return c.OrderRejected(
        order_id=_int(getattr(e, "order_id", -1), -1),
        client_order_id=_str(getattr(e, "order_remark", "")),
        error_id=_int(getattr(e, "error_id", 0)),
        error_msg=_str(getattr(e, "error_msg", "")),
        strategy=_str(getattr(e, "strategy_name", "")),
    )


def cancel_rejected(e: Any) -> c.CancelRejected:
    market = getattr(e, "market", None)
    return c.CancelRejected(
        order_id=_int(getattr(e, "order_id", -1), -1),
        order_sysid=_str(getattr(e, "order_sysid", "")),
        market=None if market is None else _int(market),
        error_id=_int(getattr(e, "error_id", 0)),
        error_msg=_str(getattr(e, "error_msg", "")),
    )


def order_responded(r: Any, trader: int = 0) -> c.OrderResponded:
    """``trader``: the adapter's generation of the trader instance whose callback delivered it."""
    return c.OrderResponded(
        trader=trader,
        order_id=_int(getattr(r, "order_id", -1), -1),
        client_order_id=_str(getattr(r, "order_remark", "")),
        seq=_int(getattr(r, "seq", 0)),
        error_msg=_str(getattr(r, "error_msg", "")),
        strategy=_str(getattr(r, "strategy_name", "")),
    )


def cancel_responded(r: Any, trader: int = 0) -> c.CancelResponded:
    return c.CancelResponded(
        trader=trader,
        order_id=_int(getattr(r, "order_id", -1), -1),
        order_sysid=_str(getattr(r, "order_sysid", "")),
        cancel_result=_int(getattr(r, "cancel_result", -1), -1),
        seq=_int(getattr(r, "seq", 0)),
        error_msg=_str(getattr(r, "error_msg", "")),
    )


def asset_updated(a: Any) -> c.AssetUpdated:
    return c.AssetUpdated(asset=asset_report(a))


def position_updated(p: Any) -> c.PositionUpdated:
    return c.PositionUpdated(position=position_report(p))


def account_status_changed(s: Any) -> c.AccountStatusChanged:
    code = _int(getattr(s, "status", xc.ACCOUNT_STATUS_INVALID), xc.ACCOUNT_STATUS_INVALID)
    return c.AccountStatusChanged(status=code, status_name=account_status_name(code))


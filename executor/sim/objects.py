"""Builders of the ``xtquant.xttype`` objects the simulator returns and pushes.

The real C++ objects also expose raw ``m_*`` names (XunTou's own example reads ``asset.m_dCash`` and
``pos.m_nVolume``). The subclasses below add the common ones as read-only properties: still ``isinstance`` of the
xttype class, and no per-object cost.
"""

from __future__ import annotations

from xtquant import xtconstant as xc
from xtquant import xttype as xt


def _alias(name: str) -> property:
    return property(lambda self: getattr(self, name))


class SimXtAsset(xt.XtAsset):
    m_strAccountID = _alias("account_id")
    m_dCash = _alias("cash")
    m_dFrozenCash = _alias("frozen_cash")
    m_dMarketValue = _alias("market_value")
    m_dTotalAsset = _alias("total_asset")
    m_dFetchBalance = _alias("fetch_balance")
    m_dCurrentBalance = _alias("current_balance")


class SimXtPosition(xt.XtPosition):
    m_strAccountID = _alias("account_id")
    m_strStockCode = _alias("stock_code")
    m_nVolume = _alias("volume")
    m_nCanUseVolume = _alias("can_use_volume")
    m_nFrozenVolume = _alias("frozen_volume")
    m_nYesterdayVolume = _alias("yesterday_volume")
    m_nOnRoadVolume = _alias("on_road_volume")
    m_dOpenPrice = _alias("open_price")
    m_dAvgPrice = _alias("avg_price")
    m_dMarketValue = _alias("market_value")
    m_dLastPrice = _alias("last_price")
    m_dFloatProfit = _alias("float_profit")


class SimXtOrder(xt.XtOrder):
    m_strAccountID = _alias("account_id")
    m_strStockCode = _alias("stock_code")
    m_nOrderID = _alias("order_id")
    m_strOrderSysID = _alias("order_sysid")
    m_nOrderStatus = _alias("order_status")
    m_nOrderVolume = _alias("order_volume")
    m_nTradedVolume = _alias("traded_volume")
    m_dTradedPrice = _alias("traded_price")
    m_dPrice = _alias("price")
    m_strOrderRemark = _alias("order_remark")


class SimXtTrade(xt.XtTrade):
    m_strAccountID = _alias("account_id")
    m_strStockCode = _alias("stock_code")
    m_strTradedID = _alias("traded_id")
    m_nOrderID = _alias("order_id")
    m_nTradedVolume = _alias("traded_volume")
    m_dTradedPrice = _alias("traded_price")
    m_dTradedAmount = _alias("traded_amount")
    m_dCommission = _alias("commission")


class SimXtOrderError(xt.XtOrderError):
    """xttype.XtOrderError plus ``seq`` (the C++ object has it; the wrapper reads it)."""

    def __init__(self, account_id, order_id, error_id, error_msg, strategy_name, order_remark, seq):
        super().__init__(account_id, order_id, error_id, error_msg, strategy_name, order_remark)
        self.seq = seq


# --- deferred construction -------------------------------------------------------------------------------------
# A push to a single session carries its constructor arguments (a tuple of str/int/float: the values are fixed when
# the event happens) and the object is built on that session's delivery thread just before the callback. Same class,
# same field values, same attribute order as building it at once; the pending backlog holds no xttype objects
# (tuples of atoms are untracked by the cyclic GC, which otherwise rescans every pending object).

def build_order(a: tuple) -> SimXtOrder:
    return SimXtOrder(*a)


def build_trade(a: tuple) -> SimXtTrade:
    return SimXtTrade(*a)


def build_position(a: tuple) -> SimXtPosition:
    x = SimXtPosition(*a[0])
    x.float_profit = a[1]
    x.open_date = ""
    x.position_profit = 0.0
    return x


def build_asset(a: tuple) -> SimXtAsset:
    x = SimXtAsset(*a[0])
    x.current_balance = a[1]
    return x


def build_order_response(a: tuple) -> xt.XtOrderResponse:
    return xt.XtOrderResponse(*a)


#: callback name -> builder of its argument from the deferred constructor arguments
BUILDERS = {
    "on_stock_order": build_order,
    "on_stock_trade": build_trade,
    "on_stock_position": build_position,
    "on_stock_asset": build_asset,
    "on_order_stock_async_response": build_order_response,
}

#: marks a push-queue item whose argument is a list of (callback name, constructor arguments), delivered in order
GROUP = "\x00group"


class SimXtAccountInfo:
    """XtAccountInfo is C++-only in the wheel; these are its documented fields (ref 4.11)."""

    def __init__(self, account_id: str, login_status: int, account_type: int = xc.SECURITY_ACCOUNT):
        self.account_type = account_type
        self.account_id = account_id
        self.broker_type = account_type
        self.platform_id = 0
        self.account_classification = 0
        self.login_status = login_status

    def __repr__(self) -> str:
        return f"SimXtAccountInfo({self.account_id!r}, login_status={self.login_status})"

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

"""Credit (两融) accounts at the xtquant boundary: how credit orders are sent (their order types are mapped in
parsing.py with the others), and the five credit queries' objects onto contract reports.

Facts (docs/architecture.md X14; the wheel's xttrader.py and doc/xttrader.md): credit orders are
``order_stock_async`` with a CREDIT ``StockAccount`` and order types 23/24 (collateral), 27–32 and their 专项
variants 40–45. A direct cash repayment's "volume" is an amount in yuan: the wheel sends ``int(volume)`` and the
float as ``m_dOrderAmount``, so the amount goes in as the float. Direct repayments have no price: FIX_PRICE, 0
(XunTou's own repayment example). The query objects are read by the attribute names of the wheel's manual.
"""

from __future__ import annotations

from typing import Any

from xtquant import xtconstant as xc

from producer_lib import contract as c

from .parsing import _float, _int, _str

def order_volume(cmd: c.PlaceOrder) -> int | float:
    """What goes in ``order_stock_async``'s volume: shares, or a cash repayment's yuan (a float)."""
    return float(cmd.amount) if cmd.side.is_cash_repay else int(cmd.volume or 0)


def order_price(cmd: c.PlaceOrder, price_type: int) -> tuple[int, float]:
    """(price_type, price) as sent: a direct repayment has none (FIX_PRICE, 0)."""
    if cmd.side.is_direct:
        return xc.FIX_PRICE, 0.0
    return price_type, float(cmd.price) if cmd.price is not None else 0.0


# --- the five queries: the wheel's method names and the report each object becomes ---------------------------------
def detail_report(o: Any) -> c.CreditDetailReport:
    f = {name: _float(getattr(o, attr, 0.0)) for name, attr in _DETAIL.items()}
    return c.CreditDetailReport(account=_str(getattr(o, "account_id", "")), status=_int(getattr(o, "m_nStatus", 0)),
                                **f)


_DETAIL = {"balance": "m_dBalance", "available": "m_dAvailable", "frozen_cash": "m_dFrozenCash",
           "market_value": "m_dMarketValue", "stock_value": "m_dStockValue", "fund_value": "m_dFundValue",
           "fetch_balance": "m_dFetchBalance", "position_profit": "m_dPositionProfit",
           "total_debt": "m_dTotalDebt", "enable_bail_balance": "m_dEnableBailBalance",
           "maintenance_ratio": "m_dPerAssurescaleValue", "assure_asset": "m_dAssureAsset",
           "fin_debt": "m_dFinDebt", "fin_deal_avl": "m_dFinDealAvl", "fin_fee": "m_dFinFee",
           "slo_debt": "m_dSloDebt", "slo_market_value": "m_dSloMarketValue", "slo_fee": "m_dSloFee",
           "other_fare": "m_dOtherFare", "fin_max_quota": "m_dFinMaxQuota", "fin_enable_quota": "m_dFinEnableQuota",
           "fin_used_quota": "m_dFinUsedQuota", "slo_max_quota": "m_dSloMaxQuota",
           "slo_enable_quota": "m_dSloEnableQuota", "slo_used_quota": "m_dSloUsedQuota",
           "slo_sell_balance": "m_dSloSellBalance", "used_slo_sell_balance": "m_dUsedSloSellBalance",
           "surplus_slo_sell_balance": "m_dSurplusSloSellBalance"}

DETAIL_ATTRS = _DETAIL  # report field -> the wheel's attribute (xtqueue/compat/remote builds the objects back)


def compact_report(o: Any) -> c.CompactReport:
    g = lambda name: getattr(o, name, None)  # noqa: E731
    return c.CompactReport(
        compact_id=_str(g("compact_id")), code=_str(g("instrument_id")), compact_type=_int(g("compact_type")),
        cashgroup_prop=_int(g("cashgroup_prop")), market=_int(g("exchange_id"), -1), open_date=_int(g("open_date")),
        ret_end_date=_int(g("ret_end_date")), business_vol=_int(g("business_vol")),
        real_compact_vol=_int(g("real_compact_vol")), business_balance=_float(g("business_balance")),
        business_fare=_float(g("businessFare")), real_compact_balance=_float(g("real_compact_balance")),
        real_compact_fare=_float(g("real_compact_fare")), repaid_fare=_float(g("repaid_fare")),
        repaid_balance=_float(g("repaid_balance")), position_str=_str(g("position_str")))


def subject_report(o: Any) -> c.CreditSubjectReport:
    return c.CreditSubjectReport(code=_str(getattr(o, "instrument_id", "")), market=_int(getattr(o, "exchange_id",
                                 -1), -1), fin_status=_int(getattr(o, "fin_status", 0)),
                                 slo_status=_int(getattr(o, "slo_status", 0)),
                                 fin_ratio=_float(getattr(o, "fin_ratio", 0.0)),
                                 slo_ratio=_float(getattr(o, "slo_ratio", 0.0)))


def slo_code_report(o: Any) -> c.SloCodeReport:
    return c.SloCodeReport(code=_str(getattr(o, "instrument_id", "")), market=_int(getattr(o, "exchange_id", -1), -1),
                           cashgroup_prop=_int(getattr(o, "cashgroup_prop", 0)),
                           enable_amount=_int(getattr(o, "enable_amount", 0)))


def assure_report(o: Any) -> c.AssureReport:
    return c.AssureReport(code=_str(getattr(o, "instrument_id", "")), market=_int(getattr(o, "exchange_id", -1), -1),
                          assure_status=_int(getattr(o, "assure_status", 0)),
                          assure_ratio=_float(getattr(o, "assure_ratio", 0.0)))


#: command -> (the wheel's async method, translation, how the result wraps the list)
QUERIES: dict[type[c.Command], tuple[str, Any, Any]] = {
    c.QueryCreditDetail: ("query_credit_detail_async", detail_report, lambda xs: c.CreditDetailResult(details=xs)),
    c.QueryStkCompacts: ("query_stk_compacts_async", compact_report, lambda xs: c.CompactsResult(compacts=xs)),
    c.QueryCreditSubjects: ("query_credit_subjects_async", subject_report,
                            lambda xs: c.CreditSubjectsResult(subjects=xs)),
    c.QueryCreditSloCode: ("query_credit_slo_code_async", slo_code_report, lambda xs: c.SloCodesResult(codes=xs)),
    c.QueryCreditAssure: ("query_credit_assure_async", assure_report, lambda xs: c.AssuresResult(assures=xs)),
}

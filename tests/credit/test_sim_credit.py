"""The simulated MiniQMT's margin account, through the wheel's own XtQuantTrader, with hand-computed numbers.

Fees (executor/sim/config.py defaults): commission 0.025 % with a 5.00 minimum, transfer fee 0.001 % both sides,
stamp duty 0.05 % on sells. Interest: CreditTerms.fin_rate 7.2 % a year over 360 days = 0.02 % a day.
"""

from __future__ import annotations

import pytest
from xtquant import xtconstant as xc

from executor.sim import credit as C
from executor.sim import engine as E

FIX = xc.FIX_PRICE


def detail(t, acc):
    rows = t.query_credit_detail(acc)
    assert isinstance(rows, list) and len(rows) == 1
    return rows[0]


def order(t, acc, oid):
    return t.query_stock_order(acc, oid)


def fin_buy_1000(t, acc, server, price=10.00):
    server.engine.set_price("600000.SH", price, prev_close=price)
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 1000, FIX, price)
    assert oid > 0 and order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED
    return oid


def test_margin_buy_opens_a_compact_and_uses_amount_times_margin_ratio(margin):
    t, acc, server = margin()
    before = detail(t, acc)
    assert before.m_dEnableBailBalance == 100_000.00 and before.m_dTotalDebt == 0.0
    fin_buy_1000(t, acc, server)
    d = detail(t, acc)
    # amount 10,000.00; fees 5.00 commission (minimum) + 0.10 transfer = 5.10, paid from own cash
    assert d.m_dAvailable == 99_994.90
    # the shares are financed: no collateral value; (value - financed) = 0; margin used 10,000 x 1.0
    assert d.m_dEnableBailBalance == 89_994.90  # 100,000 - 10,000 x 1.0 - 5.10
    assert d.m_dFinDebt == 10_000.00 and d.m_dFinDealAvl == 10_000.00 and d.m_dTotalDebt == 10_000.00
    assert d.m_dFinEnableQuota == 490_000.00 and d.m_dFinMaxQuota == 500_000.00
    assert d.m_dPerAssurescaleValue == 10.9995  # (99,994.90 + 10,000) / 10,000
    assert d.m_dBalance == 109_994.90 and d.m_dAssureAsset == 99_994.90
    (c,) = t.query_stk_compacts(acc)
    assert (c.compact_type, c.instrument_id, c.business_vol, c.real_compact_vol) == (C.FIN, "600000.SH", 1000, 1000)
    assert (c.business_balance, c.real_compact_balance, c.real_compact_fare, c.cashgroup_prop) == \
        (10_000.00, 10_000.00, 0.0, 0)
    pos = t.query_stock_position(acc, "600000.SH")
    assert (pos.volume, pos.can_use_volume) == (1000, 0)  # T+1 as for cash


def test_margin_ratio_above_one_multiplies_the_amount(margin):
    t, acc, server = margin(subjects={"600000.SH": (1.25, 1.5)})
    fin_buy_1000(t, acc, server)
    assert detail(t, acc).m_dEnableBailBalance == 87_494.90  # 100,000 - 10,000 x 1.25 - 5.10


def test_short_sell_of_a_code_that_cannot_be_lent_is_refused(margin):
    t, acc, server = margin()
    server.engine.set_price("000001.SZ", 11.00, prev_close=11.00)
    oid = t.order_stock(acc, "000001.SZ", xc.CREDIT_SLO_SELL, 100, FIX, 11.00)  # a subject, nothing lendable
    o = order(t, acc, oid)
    assert o.order_status == xc.ORDER_JUNK
    assert o.status_msg.startswith(f"[COUNTER] [{C.E_NOT_LENDABLE}][可融券数量不足]")
    oid = t.order_stock(acc, "600321.SH", xc.CREDIT_SLO_SELL, 100, FIX, 2.00)  # ST: no subject at all
    assert order(t, acc, oid).status_msg.startswith(f"[COUNTER] [{C.E_NOT_SUBJECT}][该证券不是融券标的]")
    assert t.query_stk_compacts(acc) == []
    assert detail(t, acc).m_dEnableBailBalance == 100_000.00


def test_short_sell_then_buy_to_repay(margin):
    t, acc, server = margin()
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_SLO_SELL, 1000, FIX, 10.00)
    assert order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED
    d = detail(t, acc)
    # proceeds 10,000 - fees (5.00 + stamp 5.00 + transfer 0.10) = 9,989.90, held for buying the shares back
    assert d.m_dAvailable == 109_989.90 and d.m_dSurplusSloSellBalance == 9_989.90
    assert d.m_dSloMarketValue == 10_000.00 and d.m_dTotalDebt == 10_000.00
    # 109,989.90 - 9,989.90 + (10,000 - 10,000) x 0.70 - 10,000 x 1.2 = 88,000.00
    assert d.m_dEnableBailBalance == 88_000.00
    (slo,) = [x for x in t.query_credit_slo_code(acc) if x.instrument_id == "600000.SH"]
    assert slo.enable_amount == 99_000
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_BUY_SECU_REPAY, 1000, FIX, 10.00)
    assert order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED
    assert t.query_stk_compacts(acc) == []
    d = detail(t, acc)
    assert d.m_dTotalDebt == 0.0 and d.m_dAvailable == 99_984.80  # 109,989.90 - 10,000 - 5.10
    assert t.query_stock_position(acc, "600000.SH") is None or t.query_stock_position(acc, "600000.SH").volume == 0


def test_sell_to_repay_pays_interest_first_then_principal(margin):
    t, acc, server = margin()
    fin_buy_1000(t, acc, server)
    server.engine.new_day()  # one day of interest: 10,000 x 7.2 % / 360 = 2.00; the shares become sellable
    (c,) = t.query_stk_compacts(acc)
    assert c.real_compact_fare == 2.00 and c.businessFare == 2.00
    assert detail(t, acc).m_dFinFee == 2.00
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_SELL_SECU_REPAY, 500, FIX, 10.00)
    assert order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED
    # proceeds 5,000 - (5.00 + stamp 2.50 + transfer 0.05) = 4,992.45: 2.00 interest, then 4,990.45 principal
    (c,) = t.query_stk_compacts(acc)
    assert (c.real_compact_fare, c.repaid_fare) == (0.0, 2.00)
    assert (c.repaid_balance, c.real_compact_balance) == (4_990.45, 5_009.55)
    assert c.real_compact_vol == 501  # 1000 - round(1000 x 4,990.45 / 10,000)
    d = detail(t, acc)
    assert d.m_dAvailable == 99_994.90  # nothing of the proceeds reached the cash
    assert d.m_dFinDebt == 5_009.55


def test_direct_cash_repayment_repays_exactly_the_amount(margin):
    t, acc, server = margin()
    fin_buy_1000(t, acc, server)
    server.engine.new_day()
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 1000.51, FIX, 0)
    o = order(t, acc, oid)
    assert o.order_status == xc.ORDER_SUCCEEDED
    d = detail(t, acc)
    assert d.m_dAvailable == 98_994.39  # 99,994.90 - 1,000.51
    assert d.m_dFinDebt == 9_001.49  # 10,002.00 - 1,000.51 (2.00 interest first, then 998.51 principal)
    (c,) = t.query_stk_compacts(acc)
    assert (c.repaid_fare, c.repaid_balance, c.real_compact_balance) == (2.00, 998.51, 9_001.49)
    # more than is owed is refused, not cut
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 9_001.50, FIX, 0)
    assert order(t, acc, oid).status_msg.startswith(f"[COUNTER] [{C.E_REPAY}][还款金额超过负债]")
    assert detail(t, acc).m_dAvailable == 98_994.39
    # a third decimal is no amount of money
    assert t.order_stock(acc, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 1.005, FIX, 0) == -1


def test_new_margin_buy_refused_below_the_maintenance_ratio(margin):
    t, acc, server = margin(cash=10_000.0)
    server.engine.set_price("600000.SH", 10.00, prev_close=10.00)
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 900, FIX, 10.00)
    assert order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED, order(t, acc, oid).status_msg  # fees 5.09
    server.engine.set_price("600000.SH", 1.50, prev_close=1.50)
    d = detail(t, acc)
    assert d.m_dPerAssurescaleValue == 1.2605  # (9,994.91 + 900 x 1.50) / 9,000
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 100, FIX, 1.50)
    o = order(t, acc, oid)
    assert o.order_status == xc.ORDER_JUNK
    assert o.status_msg.startswith(f"[COUNTER] [{C.E_RATIO}][维持担保比例低于规定比例，不允许融资融券]")
    # repaying is still allowed, and so is a collateral buy with the account's own cash
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 500.00, FIX, 0)
    assert order(t, acc, oid).order_status == xc.ORDER_SUCCEEDED


def test_margin_buy_beyond_available_margin_or_quota_is_refused(margin):
    t, acc, server = margin(cash=10_000.0, fin_quota=5_000.0)
    server.engine.set_price("600000.SH", 10.00, prev_close=10.00)
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 600, FIX, 10.00)  # 6,000 > quota 5,000
    assert order(t, acc, oid).status_msg.startswith(f"[COUNTER] [{C.E_QUOTA}][融资可用额度不足]")
    t2, acc2, server2 = t, acc, server
    oid = t2.order_stock(acc2, "600000.SH", xc.CREDIT_FIN_BUY, 500, FIX, 10.00)
    assert order(t2, acc2, oid).order_status == xc.ORDER_SUCCEEDED


def test_margin_buy_beyond_available_margin_is_refused(margin):
    t, acc, server = margin(cash=5_000.0)
    server.engine.set_price("600000.SH", 10.00, prev_close=10.00)
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 500, FIX, 10.00)  # 5,000 + 5.05 > 5,000
    assert order(t, acc, oid).status_msg.startswith(f"[COUNTER] [{C.E_MARGIN}][保证金可用余额不足]")


def test_a_resting_margin_buy_holds_quota_and_margin_until_cancelled(margin):
    t, acc, server = margin()
    oid = t.order_stock(acc, "600000.SH", xc.CREDIT_FIN_BUY, 1000, FIX, 9.50)  # rests below the last 10.00
    assert order(t, acc, oid).order_status == xc.ORDER_REPORTED
    d = detail(t, acc)
    assert d.m_dFinEnableQuota == 490_500.00 and d.m_dFinUsedQuota == 9_500.00
    assert d.m_dEnableBailBalance == 100_000.00 - 5.10 - 9_500.00  # fees held from cash, 9,500 x 1.0 held
    assert t.cancel_order_stock(acc, oid) == 0
    d = detail(t, acc)
    assert d.m_dFinEnableQuota == 500_000.00 and d.m_dEnableBailBalance == 100_000.00 and d.m_dAvailable == 100_000.0


def test_cash_account_has_no_credit(margin):
    from xtquant.xttype import StockAccount
    t, _, server = margin()
    cash_acc = StockAccount("SIM001")
    assert t.subscribe(cash_acc) == 0
    assert t.query_credit_detail(cash_acc) == []
    assert t.order_stock(cash_acc, "600000.SH", xc.CREDIT_FIN_BUY, 100, FIX, 10.00) == -1


def test_credit_lists_are_the_wheel_shapes(margin):
    t, acc, _ = margin()
    subj = {x.instrument_id: x for x in t.query_credit_subjects(acc)}
    assert (subj["600000.SH"].fin_ratio, subj["600000.SH"].slo_ratio, subj["600000.SH"].exchange_id) == \
        (1.0, 1.2, xc.SH_MARKET)
    assure = {x.instrument_id: x.assure_ratio for x in t.query_credit_assure(acc)}
    assert assure["600000.SH"] == 0.70 and "600321.SH" not in assure
    slo = {x.instrument_id: x.enable_amount for x in t.query_credit_slo_code(acc)}
    assert slo == C.DEFAULT_LENDABLE


def test_compacts_survive_a_restart(margin, tmp_path):
    t, acc, server = margin()
    fin_buy_1000(t, acc, server)
    server.engine.new_day()
    t.stop()
    server.close()
    t2, acc2, server2 = margin()
    (c,) = t2.query_stk_compacts(acc2)
    assert (c.real_compact_balance, c.real_compact_fare) == (10_000.00, 2.00)


def test_miniqmt_reports_the_margin_account_as_credit(margin):
    t, acc, _ = margin()
    kinds = {s.account_id: s.account_type for s in t.query_account_status()}
    assert kinds == {"CRD001": xc.CREDIT_ACCOUNT, "SIM001": xc.SECURITY_ACCOUNT}
    assert {i.account_id: i.account_type for i in t.query_account_infos()}["CRD001"] == xc.CREDIT_ACCOUNT

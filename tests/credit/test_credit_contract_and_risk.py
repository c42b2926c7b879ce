"""Credit sides in the contract (validation, fingerprints, the xtquant call) and the credit risk rules (RiskGate
alone: no Redis, no broker), with numbers at, just under and just over each limit."""

from __future__ import annotations

from datetime import date

import pytest
from xtquant import xtconstant as xc

from executor.broker.xt import credit as xt_credit
from executor.broker.xt import parsing
from executor.config import RiskLimits
from executor.safety.risk import RiskGate
from producer_lib import contract as c

S = c.Side
_n = 0


def o(side=S.FIN_BUY, volume=1000, price=10.0, code="600000.SH", **kw):
    global _n
    _n += 1
    return c.PlaceOrder(client_order_id=f"c{_n}", code=code, side=side, volume=volume, price=price, **kw)


def repay(amount=1000.51, special=False):
    global _n
    _n += 1
    side = S.DIRECT_CASH_REPAY_SPECIAL if special else S.DIRECT_CASH_REPAY
    return c.PlaceOrder(client_order_id=f"c{_n}", code="600000.SH", side=side, amount=amount)


def gate(tmp_path=None, **limits) -> RiskGate:
    g = RiskGate(RiskLimits(**limits), None if tmp_path is None else tmp_path / "risk.sqlite3", "A1",
                 clock=lambda: 1000.0, today=lambda: date(2026, 1, 5))
    g.open()
    return g


def verdict(g: RiskGate, cmd: c.PlaceOrder):
    ref = g.check(cmd)
    return None if ref is None else ref.details


# --- contract ---------------------------------------------------------------------------------------------------
def test_every_side_maps_to_its_xtquant_order_type_and_back():
    assert {s: parsing.SIDE_TO_ORDER_TYPE[s] for s in S} == {
        S.BUY: 23, S.SELL: 24, S.FIN_BUY: 27, S.SLO_SELL: 28, S.BUY_SECU_REPAY: 29, S.DIRECT_SECU_REPAY: 30,
        S.SELL_SECU_REPAY: 31, S.DIRECT_CASH_REPAY: 32, S.FIN_BUY_SPECIAL: 40, S.SLO_SELL_SPECIAL: 41,
        S.BUY_SECU_REPAY_SPECIAL: 42, S.DIRECT_SECU_REPAY_SPECIAL: 43, S.SELL_SECU_REPAY_SPECIAL: 44,
        S.DIRECT_CASH_REPAY_SPECIAL: 45}
    assert xc.CREDIT_DIRECT_CASH_REPAY_SPECIAL == 45 and xc.CREDIT_FIN_BUY_SPECIAL == 40
    assert all(parsing.ORDER_TYPE_TO_SIDE[v] is s for s, v in parsing.SIDE_TO_ORDER_TYPE.items())


def test_a_cash_repayment_is_an_amount_with_no_volume_and_no_price():
    cmd = repay(1000.51)
    assert (cmd.volume, cmd.amount, cmd.broker_volume) == (None, 1000.51, 1000)
    assert xt_credit.order_volume(cmd) == 1000.51 and isinstance(xt_credit.order_volume(cmd), float)
    assert xt_credit.order_price(cmd, xc.FIX_PRICE) == (xc.FIX_PRICE, 0.0)
    assert cmd.fingerprint() != repay(1000.52).fingerprint()
    for bad in ({"amount": 1.005}, {"amount": 0}, {"amount": None}, {"amount": 10.0, "volume": 10},
                {"amount": 10.0, "price": 1.0}):
        with pytest.raises(ValueError):
            c.PlaceOrder(client_order_id="x", code="600000.SH", side=S.DIRECT_CASH_REPAY,
                         **{"amount": 10.0, **bad})
    with pytest.raises(ValueError):  # an amount belongs to cash repayments only
        o(amount=10.0)


def test_a_direct_share_repayment_has_no_price():
    cmd = c.PlaceOrder(client_order_id="x", code="600000.SH", side=S.DIRECT_SECU_REPAY, volume=100)
    assert xt_credit.order_price(cmd, xc.FIX_PRICE) == (xc.FIX_PRICE, 0.0) and xt_credit.order_volume(cmd) == 100
    with pytest.raises(ValueError):
        o(side=S.DIRECT_SECU_REPAY, price=10.0)


def test_the_credit_queries_are_commands_with_results():
    for cmd, result in c.CREDIT_QUERY_TYPES.items():
        assert c.COMMAND_TYPES[cmd.TYPE] is cmd and c.RESULT_TYPES[cmd.TYPE] is result
    assert sorted(cmd.TYPE for cmd in c.CREDIT_QUERY_TYPES) == [
        "query_credit_assure", "query_credit_detail", "query_credit_slo_code", "query_credit_subjects",
        "query_stk_compacts"]


def test_query_objects_become_reports():
    from executor.sim.qmt.wire import CppStruct

    d = xt_credit.detail_report(CppStruct(account_id="A1", m_dEnableBailBalance=89_994.9, m_dPerAssurescaleValue=1.5,
                                          m_dFinDebt=float("nan")))
    assert (d.account, d.enable_bail_balance, d.maintenance_ratio, d.fin_debt) == ("A1", 89_994.9, 1.5, 0.0)
    k = xt_credit.compact_report(CppStruct(compact_id="1-2", instrument_id="600000.SH", compact_type=0,
                                           businessFare=2.0, real_compact_balance=5009.55))
    assert (k.compact_id, k.code, k.business_fare, k.real_compact_balance) == ("1-2", "600000.SH", 2.0, 5009.55)


# --- risk -------------------------------------------------------------------------------------------------------
def test_financing_per_order_is_inclusive():
    g = gate(max_financing_per_order_cny=10_000)
    assert verdict(g, o(volume=1000, price=10.0)) is None
    assert verdict(g, o(volume=1000, price=10.01)) == {"rule": "max_financing_per_order_cny", "limit": 10_000,
                                                       "value": 10_010.0}
    assert verdict(g, o(side=S.BUY, volume=5000)) is None  # a collateral buy is no financing
    assert verdict(g, o(side=S.FIN_BUY_SPECIAL, volume=2000)) is not None


def test_short_per_order_and_per_day(tmp_path):
    g = gate(tmp_path, max_short_per_order_cny=6_000, max_short_daily_cny=10_000)
    assert verdict(g, o(side=S.SLO_SELL, volume=600)) is None
    assert verdict(g, o(side=S.SLO_SELL, volume=700))["rule"] == "max_short_per_order_cny"
    assert verdict(g, o(side=S.SLO_SELL, volume=400)) is None  # 10,000 today: at the limit
    g.commit()
    g.close()
    g = gate(tmp_path, max_short_per_order_cny=6_000, max_short_daily_cny=10_000)  # a restart keeps the day
    assert verdict(g, o(side=S.SLO_SELL_SPECIAL, volume=1, price=10.0)) == {
        "rule": "max_short_daily_cny", "limit": 10_000, "value": 10_010.0}
    assert verdict(g, o(side=S.FIN_BUY, volume=100)) is None  # financing is counted apart


def test_financing_per_day():
    g = gate(max_financing_daily_cny=15_000)
    assert verdict(g, o(volume=1000)) is None
    assert verdict(g, o(volume=600))["value"] == 16_000.0
    assert verdict(g, o(volume=500)) is None


def test_new_debt_below_the_maintenance_ratio_is_refused_repayments_never():
    g = gate(min_maintenance_ratio_for_new_debt=1.5)
    assert g.needs_credit([o()]) and not g.needs_credit([repay()])
    assert verdict(g, o())["value"] is None  # no credit detail yet: unknown ratio refuses new debt
    g.set_credit([c.CreditDetailReport(account="A1", maintenance_ratio=1.4999, total_debt=10_000.0)], 1000.0)
    assert not g.needs_credit([o()])  # fresh enough (credit_cache_ms)
    assert verdict(g, o(side=S.SLO_SELL)) == {"rule": "min_maintenance_ratio_for_new_debt", "limit": 1.5,
                                              "value": 1.4999}
    assert verdict(g, repay()) is None
    assert verdict(g, o(side=S.SELL_SECU_REPAY, volume=100)) is None
    assert verdict(g, o(side=S.BUY_SECU_REPAY, volume=100)) is None
    g.set_credit([c.CreditDetailReport(account="A1", maintenance_ratio=1.5, total_debt=10_000.0)], 1000.0)
    assert verdict(g, o()) is None
    assert g.needs_credit([o()])  # that margin buy made the snapshot stale
    g.set_credit([c.CreditDetailReport(account="A1", maintenance_ratio=0.0, total_debt=0.0)], 1000.0)
    assert verdict(g, o()) is None  # no debt: no ratio to fall below


def test_a_cash_repayment_passes_the_volume_and_band_rules_and_is_valued_at_its_amount():
    g = gate(max_order_volume=100, price_band_pct=1.0, price_band_without_reference="refuse",
             max_order_notional_cny=1_000.51)
    assert verdict(g, repay(1000.51)) is None
    assert verdict(g, repay(1000.52))["rule"] == "max_order_notional_cny"


def test_sell_to_repay_counts_against_the_sellable_volume():
    g = gate(sell_within_sellable=True)
    assert g.needs_positions([o(side=S.SELL_SECU_REPAY, volume=100)])
    g.set_positions([c.PositionReport(code="600000.SH", volume=1000, can_use_volume=1000)], 1000.0)
    assert verdict(g, o(side=S.SELL_SECU_REPAY, volume=600)) is None
    assert verdict(g, o(side=S.DIRECT_SECU_REPAY, volume=500, price=None))["rule"] == "sellable_volume"


async def test_a_misspelt_keyword_of_repay_cash_is_an_error_not_dropped():
    # A repayment whose client_order_id was silently dropped would be retried under a new id: repaid twice.
    from producer_lib import Client, SyncClient

    client = Client("redis://127.0.0.1:1/0", "ACC1")  # never reached: the call fails before anything is sent
    with pytest.raises(TypeError, match="clientorderid"):
        await client.repay_cash("600000.SH", 10.0, clientorderid="repay-1")
    await client.aclose()
    sync = SyncClient("redis://127.0.0.1:1/0", "ACC1")
    with pytest.raises(TypeError, match="clientorderid"):
        sync.repay_cash("600000.SH", 10.0, clientorderid="repay-1")
    sync.close()

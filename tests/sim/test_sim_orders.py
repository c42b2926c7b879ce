"""A-share rules enforced by the trader, with real numbers."""

from datetime import datetime

import pytest
from xtquant import xtconstant as xc

from executor.sim import AccountSeed, SimConfig
from executor.sim import engine as E
from executor.sim.credit import E_NOT_CREDIT
from sim_helpers import ACC, BUY, FIX, SELL, settle


def status(t, oid):
    return t.query_stock_order(ACC, oid).order_status


def err_ids(rec):
    return [e.error_id for e in rec.of("on_order_error")]


def test_star_lots(sim):
    t, rec = sim()
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 150, FIX, 80.00)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 200, FIX, 80.00)) == xc.ORDER_REPORTED
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 201, FIX, 80.00)) == xc.ORDER_REPORTED
    settle(t)
    assert err_ids(rec) == [E.E_LOT]
    assert "STAR" in rec.of("on_order_error")[0].error_msg or "200" in rec.of("on_order_error")[0].error_msg


def test_main_board_lot(sim):
    t, rec = sim()
    oid = t.order_stock(ACC, "600000.SH", BUY, 150, FIX, 9.50)
    o = t.query_stock_order(ACC, oid)
    assert o.order_status == xc.ORDER_JUNK
    assert o.status_msg.startswith("[COUNTER] [100201][委托数量不是整手] volume 150 is not a multiple of the board lot 100")


def test_t1_stock_vs_t0_convertible_bond(sim):
    t, rec = sim()
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 1000, FIX, 10.00)) == xc.ORDER_SUCCEEDED
    sell = t.order_stock(ACC, "600000.SH", SELL, 1000, FIX, 10.00)
    o = t.query_stock_order(ACC, sell)
    assert o.order_status == xc.ORDER_JUNK and "T+1" in o.status_msg
    pos = t.query_stock_position(ACC, "600000.SH")
    assert (pos.volume, pos.can_use_volume, pos.yesterday_volume) == (1000, 0, 0)
    assert status(t, t.order_stock(ACC, "113052.SH", BUY, 100, FIX, 120.000)) == xc.ORDER_SUCCEEDED
    assert status(t, t.order_stock(ACC, "113052.SH", SELL, 100, FIX, 120.000)) == xc.ORDER_SUCCEEDED
    # next day the stock becomes sellable
    t.new_day()
    pos = t.query_stock_position(ACC, "600000.SH")
    assert (pos.volume, pos.can_use_volume, pos.yesterday_volume) == (1000, 1000, 1000)
    assert status(t, t.order_stock(ACC, "600000.SH", SELL, 1000, FIX, 10.00)) == xc.ORDER_SUCCEEDED


def test_limit_up_boundary(sim):
    t, rec = sim()
    # 600000.SH prev close 10.00 -> limit up 11.00, limit down 9.00
    assert t.market.limits("600000.SH") == (9.00, 11.00)
    bad = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 11.01)
    ok = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 11.00)
    low = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 8.99)
    assert status(t, bad) == xc.ORDER_JUNK and status(t, low) == xc.ORDER_JUNK
    assert status(t, ok) == xc.ORDER_SUCCEEDED  # marketable: fills at the last 10.00
    settle(t)
    assert err_ids(rec) == [E.E_PRICE_LIMIT, E.E_PRICE_LIMIT]
    assert t.query_stock_order(ACC, ok).traded_price == 10.00


def test_tick_size(sim):
    t, rec = sim()
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.995)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "510300.SH", BUY, 100, FIX, 3.995)) == xc.ORDER_REPORTED
    settle(t)
    assert err_ids(rec) == [E.E_TICK]


def test_fees_and_cash_hand_computed(sim):
    cfg = SimConfig(accounts={"SIM001": AccountSeed(cash=100_000.00, positions={"600000.SH": (2000, 9.00)})})
    t, rec = sim(cfg)
    # buy 1000 @ 10.00: 10,000.00 + commission 5.00 (min) + transfer 0.10 = 10,005.10
    b = t.order_stock(ACC, "600000.SH", BUY, 1000, FIX, 10.00)
    trade = [x for x in t.query_stock_trades(ACC) if x.order_id == b][0]
    assert trade.traded_amount == 10000.00 and trade.commission == 5.10
    assert t.query_stock_asset(ACC).cash == pytest.approx(100_000.00 - 10_005.10)
    # sell 1000 (yesterday's) @ 11.00 after the price moves: 11,000.00 - (5.00 + 5.50 stamp + 0.11) = 10,989.39
    t.market.set_price("600000.SH", 11.00)
    s = t.order_stock(ACC, "600000.SH", SELL, 1000, FIX, 11.00)
    trade = [x for x in t.query_stock_trades(ACC) if x.order_id == s][0]
    assert trade.commission == 10.61
    a = t.query_stock_asset(ACC)
    assert a.cash == pytest.approx(100_000.00 - 10_005.10 + 10_989.39)
    assert a.m_dCash == a.cash
    assert a.fetch_balance == pytest.approx(100_000.00 - 10_005.10)  # today's sale proceeds not withdrawable
    assert a.market_value == pytest.approx(2000 * 11.00)
    assert a.total_asset == pytest.approx(a.cash + a.frozen_cash + a.market_value)
    p = t.query_stock_position(ACC, "600000.SH")
    assert p.m_nVolume == p.volume == 2000 and p.can_use_volume == 1000 and p.last_price == 11.00
    # cost: 2000 @ 9.00 = 18,000 + 10,005.10 = 28,005.10 for 3000; sold 1000 at the average -> 2000 left
    assert p.avg_price == pytest.approx(28005.10 / 3000, abs=1e-4)
    assert p.float_profit == pytest.approx((11.00 - p.avg_price) * 2000, abs=0.01)


def test_commission_minimum_cumulative_over_partial_fills(sim):
    t, rec = sim(SimConfig(fill_volume_cap=300))
    oid = t.order_stock(ACC, "600000.SH", BUY, 1000, FIX, 10.00)
    for _ in range(3):
        t.market.set_price("600000.SH", 10.00)
    fills = [x.commission for x in t.query_stock_trades(ACC) if x.order_id == oid]
    # 300@10 = 3000: 5.00 min + 0.03; then 3000 more: 0 + 0.03 (twice); last 100: 1000 -> 0 + 0.01
    assert fills == [5.03, 0.03, 0.03, 0.01]
    a = t.query_stock_asset(ACC)
    assert a.frozen_cash == 0.0 and a.cash == pytest.approx(1_000_000.00 - 10_000.00 - 5.10)


def test_cash_frozen_and_released(sim):
    t, rec = sim()
    oid = t.order_stock(ACC, "600000.SH", BUY, 1000, FIX, 9.50)
    a = t.query_stock_asset(ACC)
    # 9,500.00 + commission 5.00 + transfer 0.095 -> 0.10 = 9,505.10
    assert a.frozen_cash == 9505.10 and a.cash == pytest.approx(1_000_000.00 - 9505.10)
    assert t.cancel_order_stock(ACC, oid) == 0
    a = t.query_stock_asset(ACC)
    assert a.frozen_cash == 0.0 and a.cash == 1_000_000.00


def test_sell_freezes_volume(sim):
    t, rec = sim(SimConfig(accounts={"SIM001": AccountSeed(positions={"600000.SH": 1000})}))
    oid = t.order_stock(ACC, "600000.SH", SELL, 400, FIX, 10.50)
    p = t.query_stock_position(ACC, "600000.SH")
    assert (p.volume, p.can_use_volume, p.frozen_volume) == (1000, 600, 400)
    t.cancel_order_stock(ACC, oid)
    p = t.query_stock_position(ACC, "600000.SH")
    assert (p.volume, p.can_use_volume, p.frozen_volume) == (1000, 1000, 0)


def test_insufficient_funds(sim):
    t, rec = sim(SimConfig(accounts={"SIM001": AccountSeed(cash=10_000.00)}))
    # 1000 @ 10.00 needs 10,005.10
    oid = t.order_stock(ACC, "600000.SH", BUY, 1000, FIX, 10.00)
    assert status(t, oid) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 900, FIX, 10.00)) == xc.ORDER_SUCCEEDED
    settle(t)
    assert err_ids(rec) == [E.E_FUNDS]


def test_odd_lot_sells_through_trader(sim):
    t, rec = sim(SimConfig(accounts={"SIM001": AccountSeed(positions={"600000.SH": 4880, "688981.SH": 350})}))
    assert status(t, t.order_stock(ACC, "600000.SH", SELL, 50, FIX, 10.00)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "600000.SH", SELL, 380, FIX, 10.00)) == xc.ORDER_SUCCEEDED
    assert status(t, t.order_stock(ACC, "600000.SH", SELL, 80, FIX, 10.00)) == xc.ORDER_JUNK  # odd part gone
    assert status(t, t.order_stock(ACC, "688981.SH", SELL, 201, FIX, 90.00)) == xc.ORDER_SUCCEEDED
    assert status(t, t.order_stock(ACC, "688981.SH", SELL, 100, FIX, 90.00)) == xc.ORDER_JUNK  # 149 left
    assert status(t, t.order_stock(ACC, "688981.SH", SELL, 149, FIX, 90.00)) == xc.ORDER_SUCCEEDED
    settle(t)
    assert err_ids(rec) == [E.E_ODD_LOT, E.E_ODD_LOT, E.E_ODD_LOT]


def test_per_order_cap(sim):
    cfg = SimConfig(accounts={"SIM001": AccountSeed(cash=1e9)})
    t, rec = sim(cfg)
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 100_001, FIX, 80.00)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 100_000, FIX, 80.00)) == xc.ORDER_REPORTED
    assert status(t, t.order_stock(ACC, "688981.SH", BUY, 50_001, xc.MARKET_MINE_PRICE_FIRST, 0)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 1_000_100, FIX, 9.00)) == xc.ORDER_JUNK
    assert status(t, t.order_stock(ACC, "300750.SZ", BUY, 300_100, FIX, 240.00)) == xc.ORDER_JUNK
    settle(t)
    assert err_ids(rec) == [E.E_MAX_VOLUME] * 4


def test_tier1_refusals(sim):
    t, rec = sim()
    cases = [("999999.SH", BUY, 100, FIX, 10.0, E.E_BAD_CODE),       # malformed class
             ("600036.SH", BUY, 100, FIX, 10.0, E.E_BAD_CODE),       # valid shape, not in universe, no price
             ("600000.SH", BUY, 0, FIX, 10.0, E.E_BAD_VOLUME),
             ("600000.SH", BUY, -100, FIX, 10.0, E.E_BAD_VOLUME),
             ("600000.SH", xc.ETF_PURCHASE, 100, FIX, 10.0, E.E_BAD_ORDER_TYPE),  # not simulated
             ("600000.SH", xc.CREDIT_FIN_BUY, 100, FIX, 10.0, E_NOT_CREDIT),  # a cash account: no margin buy
             ("600000.SH", BUY, 100, xc.MARKET_BEST, 10.0, E.E_BAD_PRICE_TYPE),
             ("600000.SH", BUY, 100, xc.MARKET_SZ_CONVERT_5_CANCEL, 0, E.E_MARKET_TYPE_EXCHANGE),
             ("000001.SZ", BUY, 100, xc.MARKET_SH_CONVERT_5_CANCEL, 0, E.E_MARKET_TYPE_EXCHANGE)]
    for code, ot, vol, pt, px, _ in cases:
        assert t.order_stock(ACC, code, ot, vol, pt, px) == -1
    settle(t)
    errs = rec.of("on_order_error")
    assert [e.error_id for e in errs] == [c[-1] for c in cases]
    assert all(e.order_id == -1 and e.error_msg.startswith("[COUNTER] [") for e in errs)
    # 999999.SH is well formed: the message says no board has it, not "malformed"
    assert "malformed" not in errs[0].error_msg and "no security 999999.SH" in errs[0].error_msg
    assert "no price" in errs[1].error_msg
    assert t.query_stock_orders(ACC) == []
    # an unknown code becomes tradable once priced
    t.market.set_price("600036.SH", 35.00, prev_close=35.00, name="招商银行")
    assert t.order_stock(ACC, "600036.SH", BUY, 100, FIX, 35.00) > 0


def test_price_type_reported_as_broker_code(sim):
    t, rec = sim()
    cases = [("600000.SH", FIX, 9.00, 50), ("600000.SH", xc.LATEST_PRICE, 0, 50),
             ("600000.SH", xc.MARKET_SH_CONVERT_5_CANCEL, 0, 88), ("000001.SZ", xc.MARKET_SZ_CONVERT_5_CANCEL, 0, 88),
             ("600000.SH", xc.MARKET_SH_CONVERT_5_LIMIT, 0, 85), ("600000.SH", xc.MARKET_PEER_PRICE_FIRST, 0, 84),
             ("600000.SH", xc.MARKET_MINE_PRICE_FIRST, 0, 86), ("000001.SZ", xc.MARKET_SZ_INSTBUSI_RESTCANCEL, 0, 87),
             ("000001.SZ", xc.MARKET_SZ_FULL_OR_CANCEL, 0, 89)]
    for code, pt, px, want in cases:
        oid = t.order_stock(ACC, code, BUY, 100, pt, px)
        o = t.query_stock_order(ACC, oid)
        assert o.price_type == want, (pt, o.price_type)
    latest = t.query_stock_orders(ACC)[1]
    assert latest.price == 10.00 and latest.order_status == xc.ORDER_SUCCEEDED


def test_market_orders_ioc_fok_and_protection(sim):
    t, rec = sim(SimConfig(fill_volume_cap=300))
    ioc = t.order_stock(ACC, "000001.SZ", BUY, 1000, xc.MARKET_SZ_INSTBUSI_RESTCANCEL, 0)
    o = t.query_stock_order(ACC, ioc)
    assert (o.order_status, o.traded_volume, o.traded_price) == (xc.ORDER_PART_CANCEL, 300, 11.00)
    fok = t.order_stock(ACC, "000001.SZ", BUY, 1000, xc.MARKET_SZ_FULL_OR_CANCEL, 0)
    assert t.query_stock_order(ACC, fok).order_status == xc.ORDER_CANCELED
    rest = t.order_stock(ACC, "600000.SH", BUY, 1000, xc.MARKET_SH_CONVERT_5_LIMIT, 0)
    o = t.query_stock_order(ACC, rest)
    assert (o.order_status, o.traded_volume, o.price) == (xc.ORDER_PART_SUCC, 300, 10.00)
    # the frozen cash of a market buy uses the protection price (limit up 11.00) for the rest
    assert t.query_stock_asset(ACC).frozen_cash > 700 * 10.00
    t.market.set_price("600000.SH", 10.00)
    t.market.set_price("600000.SH", 10.00)
    o = t.query_stock_order(ACC, rest)
    assert (o.order_status, o.traded_volume) == (xc.ORDER_PART_SUCC, 900)
    # own-best rests at the last price and only fills on a later price update
    mine = t.order_stock(ACC, "600000.SH", BUY, 100, xc.MARKET_MINE_PRICE_FIRST, 0)
    assert t.query_stock_order(ACC, mine).order_status == xc.ORDER_REPORTED
    t.market.set_price("600000.SH", 9.99)
    assert t.query_stock_order(ACC, mine).order_status == xc.ORDER_SUCCEEDED


def test_resting_limit_fills_when_price_reaches_it(sim):
    t, rec = sim()
    b = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.80)
    t.market.set_price("600000.SH", 9.81)
    assert status(t, b) == xc.ORDER_REPORTED
    t.market.set_price("600000.SH", 9.75)
    o = t.query_stock_order(ACC, b)
    assert o.order_status == xc.ORDER_SUCCEEDED and o.traded_price == 9.75  # fills at the last (<= limit)


def test_remark_truncated_and_fields(sim):
    t, rec = sim()
    oid = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00, "strat", "备注" * 5)  # 30 bytes
    o = t.query_stock_order(ACC, oid)
    assert o.order_remark == "备注备注备注备注"  # 24 bytes
    assert o.strategy_name == "strat" and o.offset_flag == xc.OFFSET_FLAG_OPEN and o.order_sysid
    assert isinstance(o.order_time, int) and o.instrument_name == "浦发银行"
    unknown = t.query_stock_order(ACC, 987654)
    assert unknown is None
    assert t.cancel_order_stock(ACC, 987654) == -1


def test_sessions_with_injected_clock(sim):
    now = [datetime(2025, 6, 3, 8, 0)]
    t, rec = sim(SimConfig(session_clock=True, clock=lambda: now[0]))
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 10.00)) == xc.ORDER_JUNK  # pre-open
    now[0] = datetime(2025, 6, 3, 9, 16)
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, xc.MARKET_PEER_PRICE_FIRST, 0)) == xc.ORDER_JUNK
    call = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 10.00)  # marketable but call auction: rests
    assert status(t, call) == xc.ORDER_REPORTED
    c1 = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.50)
    assert t.cancel_order_stock(ACC, c1) == 0  # 09:15-09:20 cancels allowed
    now[0] = datetime(2025, 6, 3, 9, 22)
    c2 = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.50)
    assert t.cancel_order_stock(ACC, c2) == -1  # 09:20-09:25 no cancel
    now[0] = datetime(2025, 6, 3, 9, 31)
    t.market.set_price("600000.SH", 10.00)
    assert status(t, call) == xc.ORDER_SUCCEEDED
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, xc.MARKET_PEER_PRICE_FIRST, 0)) == \
        xc.ORDER_SUCCEEDED
    assert t.cancel_order_stock(ACC, c2) == 0
    now[0] = datetime(2025, 6, 3, 14, 58)
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, xc.MARKET_PEER_PRICE_FIRST, 0)) == xc.ORDER_JUNK
    c3 = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.50)
    assert status(t, c3) == xc.ORDER_REPORTED and t.cancel_order_stock(ACC, c3) == -1
    now[0] = datetime(2025, 6, 3, 15, 1)
    assert status(t, t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 10.00)) == xc.ORDER_JUNK
    settle(t)
    assert err_ids(rec) == [E.E_SESSION, E.E_SESSION_MARKET, E.E_SESSION_MARKET, E.E_SESSION]
    assert [e.error_id for e in rec.of("on_cancel_error")] == [E.E_CANCEL_WINDOW, E.E_CANCEL_WINDOW]
    # order_time follows the injected clock (naive Asia/Shanghai): 15:01 CST = 07:01 UTC
    last = t.query_stock_orders(ACC)[-1]
    assert last.order_time == int(datetime(2025, 6, 3, 7, 1).timestamp() - datetime(1970, 1, 1).timestamp())

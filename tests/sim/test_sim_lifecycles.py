"""Exact callback sequences of every lifecycle, threading and callback-failure behaviour."""

import logging
import threading

from xtquant import xtconstant as xc
from xtquant import xttype as xt

from executor.sim import SimConfig
from executor.sim import engine as E
from sim_helpers import ACC, BUY, FIX, SELL, Recorder, settle


def run_async(t, rec, *args):
    seq = t.order_stock_async(ACC, *args)
    settle(t)
    resp = [r for r in rec.of("on_order_stock_async_response") if r.seq == seq]
    assert len(resp) == 1
    return seq, resp[0]


def test_A_accept_and_fills(sim):
    t, rec = sim(SimConfig(fill_volume_cap=600))
    seq, resp = run_async(t, rec, "600000.SH", BUY, 1000, FIX, 10.00, "s", "r")
    assert resp.order_id > 0 and resp.error_msg == "" and resp.order_remark == "r"
    t.market.set_price("600000.SH", 10.00)
    settle(t)
    assert rec.seq() == ["response", "order:50",
                         "trade", "order:55", "position", "asset",
                         "trade", "order:56", "position", "asset"]
    orders = rec.of("on_stock_order")
    assert orders[0].order_sysid and orders[0].order_id == resp.order_id
    assert [o.traded_volume for o in orders] == [0, 600, 1000]
    trades = rec.of("on_stock_trade")
    assert len({x.traded_id for x in trades}) == 2 and all(isinstance(x, xt.XtTrade) for x in trades)
    assert isinstance(orders[0], xt.XtOrder) and isinstance(rec.of("on_stock_position")[0], xt.XtPosition)
    assert isinstance(rec.of("on_stock_asset")[0], xt.XtAsset)
    assert isinstance(resp, xt.XtOrderResponse) and resp.seq == seq


def test_C_cancel_unfilled_buy_and_sell(sim):
    from executor.sim import AccountSeed
    t, rec = sim(SimConfig(accounts={"SIM001": AccountSeed(positions={"600000.SH": 1000})}))
    _, resp = run_async(t, rec, "600000.SH", BUY, 100, FIX, 9.00)
    rec.clear()
    cseq = t.cancel_order_stock_async(ACC, resp.order_id)
    settle(t)
    assert rec.seq() == ["cancel_response:0", "order:51", "order:54", "asset"]
    cr = rec.of("on_cancel_order_stock_async_response")[0]
    assert isinstance(cr, xt.XtCancelOrderResponse) and cr.seq == cseq and cr.order_id == resp.order_id
    rec.clear()
    _, resp = run_async(t, rec, "600000.SH", SELL, 100, FIX, 11.00)
    rec.clear()
    t.cancel_order_stock_async(ACC, resp.order_id)
    settle(t)
    assert rec.seq() == ["cancel_response:0", "order:51", "order:54", "position"]
    assert rec.of("on_stock_position")[0].can_use_volume == 1000


def test_D_cancel_after_partial_fill(sim):
    t, rec = sim(SimConfig(fill_volume_cap=300))
    _, resp = run_async(t, rec, "600000.SH", BUY, 1000, FIX, 10.00)
    rec.clear()
    t.cancel_order_stock_async(ACC, resp.order_id)
    settle(t)
    assert rec.seq() == ["cancel_response:0", "order:52", "order:53", "asset"]
    final = rec.of("on_stock_order")[-1]
    assert final.traded_volume == 300
    a = t.query_stock_asset(ACC)
    assert a.frozen_cash == 0.0


def test_E1_tier1_refusal_async_and_sync(sim):
    t, rec = sim()
    seq, resp = run_async(t, rec, "600000.SH", BUY, 0, FIX, 10.00, "s", "r")
    assert resp.order_id == -1 and "[COUNTER] [100003]" in resp.error_msg
    assert rec.seq() == ["response", "order_error"]
    err = rec.of("on_order_error")[0]
    assert err.order_id == -1 and err.seq == seq and err.error_id == E.E_BAD_VOLUME and err.order_remark == "r"
    rec.clear()
    # sync: returns -1; like the real wrapper the reply goes to the caller, on_order_error is still pushed
    assert t.order_stock(ACC, "600000.SH", BUY, 0, FIX, 10.00) == -1
    settle(t)
    assert rec.seq() == ["order_error"]
    assert t.query_stock_orders(ACC) == []


def test_E2_tier2_refusal(sim):
    t, rec = sim()
    seq, resp = run_async(t, rec, "600000.SH", BUY, 150, FIX, 10.00)
    assert resp.order_id > 0 and resp.error_msg == ""
    assert rec.seq() == ["response", "order:57", "order_error"]
    o = rec.of("on_stock_order")[0]
    err = rec.of("on_order_error")[0]
    assert o.status_msg == err.error_msg and err.order_id == resp.order_id and err.error_id == E.E_LOT
    assert err.seq == seq
    rec.clear()
    oid = t.order_stock(ACC, "600000.SH", BUY, 150, FIX, 10.00)
    assert oid == resp.order_id + 1
    settle(t)
    assert rec.seq() == ["order:57", "order_error"]


def test_F_cancel_refused(sim):
    t, rec = sim()
    t.cancel_order_stock_async(ACC, 424242)
    settle(t)
    assert rec.seq() == ["cancel_response:-1", "cancel_error"]
    ce = rec.of("on_cancel_error")[0]
    assert isinstance(ce, xt.XtCancelError) and ce.order_id == 424242 and ce.error_id == E.E_CANCEL_UNKNOWN
    rec.clear()
    _, resp = run_async(t, rec, "600000.SH", BUY, 100, FIX, 10.00)  # fills at once
    rec.clear()
    t.cancel_order_stock_async(ACC, resp.order_id)
    settle(t)
    assert rec.seq() == ["cancel_response:-1", "cancel_error"]
    assert rec.of("on_cancel_error")[0].error_id == E.E_CANCEL_TERMINAL
    assert t.query_stock_order(ACC, resp.order_id).order_status == xc.ORDER_SUCCEEDED
    rec.clear()
    assert t.cancel_order_stock(ACC, resp.order_id) == -1
    settle(t)
    assert rec.seq() == ["cancel_error"]


def test_cancel_by_sysid(sim):
    t, rec = sim()
    oid = t.order_stock(ACC, "000001.SZ", BUY, 100, FIX, 10.50)
    sysid = t.query_stock_order(ACC, oid).order_sysid
    assert t.cancel_order_stock_sysid(ACC, xc.SH_MARKET, sysid) == -1  # wrong market
    assert t.cancel_order_stock_sysid(ACC, "SZ", sysid) == 0
    assert t.query_stock_order(ACC, oid).order_status == xc.ORDER_CANCELED
    oid = t.order_stock(ACC, "000001.SZ", BUY, 100, FIX, 10.50)
    sysid = t.query_stock_order(ACC, oid).order_sysid
    settle(t)
    rec.clear()
    t.cancel_order_stock_sysid_async(ACC, xc.SZ_MARKET, sysid)
    settle(t)
    assert rec.seq() == ["cancel_response:0", "order:51", "order:54", "asset"]
    assert rec.of("on_cancel_order_stock_async_response")[0].order_sysid == sysid


def test_G_ioc_nothing_filled(sim):
    t, rec = sim()
    t.market.set_price("600000.SH", 11.00)  # at limit up: a market buy can still fill at 11.00
    t.market.set_price("600000.SH", 11.50)  # above the band (caller-controlled): no fill for a market buy
    _, resp = run_async(t, rec, "600000.SH", BUY, 100, xc.MARKET_SH_CONVERT_5_CANCEL, 0)
    assert rec.seq() == ["response", "order:50", "order:54", "asset"]


def test_G_ioc_partial(sim):
    t, rec = sim(SimConfig(fill_volume_cap=200))
    _, resp = run_async(t, rec, "000001.SZ", BUY, 500, xc.MARKET_SZ_CONVERT_5_CANCEL, 0)
    assert rec.seq() == ["response", "order:50", "trade", "order:55", "position", "asset", "order:53", "asset"]


def test_end_of_day_cancels_open_orders(sim):
    t, rec = sim(SimConfig(fill_volume_cap=100))
    a = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00)
    b = t.order_stock(ACC, "600000.SH", BUY, 300, FIX, 10.00)
    settle(t)
    rec.clear()
    assert t.end_of_day() == 2
    settle(t)
    assert rec.seq() == ["order:54", "asset", "order:53", "asset"]
    assert t.query_stock_asset(ACC).frozen_cash == 0.0
    t.new_day()
    assert t.query_stock_orders(ACC) == [] and t.query_stock_trades(ACC) == []
    assert t.market.prev_close("600000.SH") == 10.00
    assert t.query_stock_position(ACC, "600000.SH").can_use_volume == 100


def test_callback_exception_does_not_stop_later_pushes(sim):
    """An exception in one push callback is the program's: later pushes still come, on the one push thread.
    (What the wheel loses after a raising response callback: tests/qmtsim/test_real_class_behaviours.py.)"""
    class Boom(Recorder):
        def __init__(self):
            super().__init__()
            inner = self.on_stock_order

            def on_stock_order(o):
                inner(o)
                raise RuntimeError("user bug")
            self.on_stock_order = on_stock_order

    rec = Boom()
    t, _ = sim()
    t.register_callback(rec)
    t.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
    settle(t)
    assert rec.seq() == ["response", "order:50", "trade", "order:56", "position", "asset"]
    assert len(rec.threads) == 1


def test_pushes_reach_other_subscribed_instances_only(tmp_path):
    from sim_helpers import make_trader
    a, ra = make_trader(tmp_path / "p", session=1)
    b, rb = make_trader(tmp_path / "p", session=2)
    c, rc = make_trader(tmp_path / "p", session=3, subscribe=False)
    try:
        a.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
        a.order_stock_async(ACC, "600000.SH", BUY, 150, FIX, 10.00)  # tier 2
        settle(a), settle(b), settle(c)
        assert ra.seq() == ["response", "order:50", "trade", "order:56", "position", "asset",
                            "response", "order:57", "order_error"]
        assert rb.seq() == ["order:50", "trade", "order:56", "position", "asset", "order:57"]
        assert rc.seq() == []
        assert b.query_stock_orders(ACC)[0].order_id == ra.of("on_stock_order")[0].order_id
    finally:
        for t in (c, b, a):
            t.stop()


def test_queries_and_account_info(sim):
    t, rec = sim()
    infos = t.query_account_infos()
    assert [(i.account_id, i.login_status) for i in infos] == [("SIM001", xc.ACCOUNT_STATUS_OK)]
    st = t.query_account_status()
    assert isinstance(st[0], xt.XtAccountStatus) and st[0].status == xc.ACCOUNT_STATUS_OK
    got = {}
    ev = threading.Event()

    def keep(name):
        def f(x):
            got[name] = x
            if len(got) == 6:
                ev.set()
        return f
    t.query_stock_asset_async(ACC, keep("asset"))
    t.query_stock_orders_async(ACC, keep("orders"))
    t.query_stock_trades_async(ACC, keep("trades"))
    t.query_stock_positions_async(ACC, keep("positions"))
    t.query_account_infos_async(keep("infos"))
    t.query_account_status_async(keep("status"))
    assert ev.wait(5)
    assert got["asset"].cash == 1_000_000.00 and got["orders"] == [] and got["positions"] == []
    assert t.query_stock_asset(xt.StockAccount("NOPE")) is None
    assert t.subscribe(xt.StockAccount("NOPE")) == -1
    assert t.unsubscribe(ACC) == 0
    t.set_relaxed_response_order_enabled(True)
    ev2 = threading.Event()
    t.query_stock_asset_async(ACC, lambda a: ev2.set())
    assert ev2.wait(5)
    assert t.set_timeout(100) is None


def test_subscribe_pushes_the_accounts_login_state(sim):
    t, rec = sim()
    assert rec.wait_count("on_account_status", 1)
    (status,) = rec.of("on_account_status")
    assert isinstance(status, xt.XtAccountStatus)
    assert (status.account_id, status.status) == ("SIM001", xc.ACCOUNT_STATUS_OK)

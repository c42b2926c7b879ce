"""Faults on demand (in-process and through SimControl), cross-process prices, replay and random walk."""

import subprocess
import sys
import textwrap
import threading
import time

from xtquant import xtconstant as xc

from executor.sim import RandomWalk, RandomWalkConfig, SimControl, replay_csv
from executor.sim import engine as E
from sim_helpers import ACC, BUY, FIX, Recorder, SimTrader, make_trader, settle


def test_disconnect_in_process(tmp_path):
    a, ra = make_trader(tmp_path / "p", session=1)
    b, rb = make_trader(tmp_path / "p", session=2)
    try:
        resting = a.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00)
        a.faults.disconnect(down_ms=60_000)
        assert ra.wait_count("on_disconnected") and rb.wait_count("on_disconnected")
        assert a.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) == -1
        settle(a)
        ra.clear()
        seq = a.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 9.00)
        assert ra.wait_count("on_order_error")
        resp = ra.of("on_order_stock_async_response")[0]
        assert (resp.seq, resp.order_id) == (seq, -1) and "[COUNTER] [100001]" in resp.error_msg
        assert ra.seq() == ["response", "order_error"]
        assert a.cancel_order_stock(ACC, resting) == -1
        assert a.query_stock_orders(ACC) is None and a.query_stock_asset(ACC) is None
        assert a.subscribe(ACC) == -1  # the session is dead for good: a new instance is needed (docs/architecture.md X5)
        assert a.connected is True  # like the real attribute, never cleared
        # a new instance cannot connect while MiniQMT is "down"
        c = SimTrader(tmp_path / "p", 3, Recorder())
        c.start()
        assert c.connect() == -1
        c.stop()
    finally:
        b.stop()
        a.stop()


def test_reconnect_with_new_instance_needs_subscribe(tmp_path):
    a, ra = make_trader(tmp_path / "p", session=1)
    try:
        a.faults.disconnect(down_ms=0)
        assert ra.wait_count("on_disconnected")
        rec = Recorder()
        n = SimTrader(tmp_path / "p", 2, rec)
        n.start()
        assert n.connect() == 0
        n.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
        settle(n)
        assert rec.seq() == ["response"]  # not subscribed: no on_stock_* pushes
        assert n.subscribe(ACC) == 0
        n.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
        settle(n)
        assert rec.seq()[1:] == ["response", "order:50", "trade", "order:56", "position", "asset"]
        n.stop()
    finally:
        a.stop()


def test_disconnect_through_simcontrol(tmp_path):
    a, ra = make_trader(tmp_path / "p")
    ctl = SimControl(tmp_path / "p")
    try:
        cid = ctl.disconnect(down_ms=0)
        assert ctl.wait_applied(cid)
        assert ra.wait_count("on_disconnected")
    finally:
        ctl.close()
        a.stop()


def test_reject_next(sim):
    t, rec = sim()
    t.faults.reject_next(2, message="broker busy")
    assert t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) == -1
    assert t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) == -1
    assert t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) > 0
    settle(t)
    errs = rec.of("on_order_error")
    assert [e.error_id for e in errs] == [E.E_INJECTED, E.E_INJECTED] and "broker busy" in errs[0].error_msg


def test_reject_next_through_simcontrol(sim, tmp_path):
    t, rec = sim()
    ctl = SimControl(tmp_path / "sim")
    assert ctl.wait_applied(ctl.reject_next(1, message="x"))
    ctl.close()
    assert t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) == -1
    assert t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00) > 0


def test_delay_pushes(sim):
    t, rec = sim()
    t.faults.delay_pushes(150)
    t0 = time.monotonic()
    t.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
    assert rec.wait_count("on_stock_asset")
    assert time.monotonic() - t0 >= 0.14
    assert rec.seq() == ["response", "order:50", "trade", "order:56", "position", "asset"]
    t.faults.delay_pushes(0)


def test_drop_next_push(sim):
    t, rec = sim()
    t.faults.drop_next_push("order", 1)
    t.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 10.00)
    settle(t)
    assert rec.seq() == ["response", "trade", "order:56", "position", "asset"]
    rec.clear()
    t.faults.drop_next_push("trade", 1)
    oid = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 10.00)
    settle(t)
    assert rec.seq() == ["order:50", "order:56", "position", "asset"]
    assert len(t.query_stock_trades(ACC)) == 2  # the state changed; only the push was lost
    assert t.query_stock_order(ACC, oid).order_status == xc.ORDER_SUCCEEDED
    rec.clear()
    t.faults.drop_next_push("any", 2)
    t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 10.00)
    settle(t)
    assert rec.seq() == ["order:56", "position", "asset"]


def test_call_latency(sim):
    t, rec = sim()
    t.faults.set_call_latency(40)
    t0 = time.monotonic()
    t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.00)
    assert time.monotonic() - t0 >= 0.039
    t0 = time.monotonic()
    t.order_stock_async(ACC, "600000.SH", BUY, 100, FIX, 9.00)
    assert rec.wait_count("on_order_stock_async_response")
    assert time.monotonic() - t0 >= 0.039  # the response comes one "round trip" later
    t.faults.set_call_latency(0)


def test_set_price_from_another_process(sim, tmp_path):
    t, rec = sim()
    oid = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.50)
    code = textwrap.dedent(f"""
        from executor.sim import SimControl
        c = SimControl({str(tmp_path / 'sim')!r})
        assert c.wait_applied(c.set_price("600000.SH", 9.40), timeout=10)
        print(c.orders()[0]["order_status"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(xc.ORDER_SUCCEEDED)
    assert rec.wait_for(lambda r: any(o.order_status == xc.ORDER_SUCCEEDED for o in r.of("on_stock_order")))
    assert t.query_stock_order(ACC, oid).traded_price == 9.40


def test_replay_csv(sim, tmp_path):
    t, rec = sim()
    oid = t.order_stock(ACC, "600000.SH", BUY, 100, FIX, 9.90)
    csv_path = tmp_path / "ticks.csv"
    csv_path.write_text("code,time,last\n600000.SH,09:30:00,10.01\n000001.SZ,09:30:01,11.10\n"
                        "600000.SH,09:30:02,9.95\n600000.SH,09:30:03,9.88\n600000.SH,09:30:04,9.93\n",
                        encoding="utf-8")
    assert replay_csv(t, csv_path) == 5
    o = t.query_stock_order(ACC, oid)
    assert o.order_status == xc.ORDER_SUCCEEDED and o.traded_price == 9.88
    assert t.market.last("600000.SH") == 9.93 and t.market.last("000001.SZ") == 11.10


def test_random_walk_is_seeded_and_stays_in_limits(sim):
    t, rec = sim()
    cfg = RandomWalkConfig(seed=42, sigma=0.05, codes=["600000.SH"])
    w = RandomWalk(t.engine, cfg)
    path1 = []
    for _ in range(50):
        w.step()
        path1.append(t.market.last("600000.SH"))
    down, up = t.market.limits("600000.SH")
    assert all(down <= p <= up for p in path1)
    t.market.set_price("600000.SH", 10.00)
    w2 = RandomWalk(t.engine, cfg)
    path2 = []
    for _ in range(50):
        w2.step()
        path2.append(t.market.last("600000.SH"))
    assert path1 == path2

"""The wheel's own, unmodified ``xtquant.xttrader.XtQuantTrader`` over the simulated MiniQMT process.

Every count is read back from the simulated MiniQMT's own records (``SimControl.orders``: its SQLite store)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from qmt_helpers import WAIT, Recorder, StockAccount, XtQuantTrader, xc
from support import QmtSim, child_env

import xtquant.xtpythonclient
from executor.sim.qmt import is_stand_in

ACC = StockAccount("SIM001")


def test_the_class_is_the_wheels_own_over_the_stand_in(connect):
    trader, rec = connect()
    assert type(trader).__module__ == "xtquant.xttrader"
    assert is_stand_in(xtquant.xtpythonclient)
    status = rec.wait_for("on_account_status")
    assert (status.account_id, status.status) == ("SIM001", xc.ACCOUNT_STATUS_OK)


def test_async_order_fills_with_callbacks_on_the_wheels_push_thread(qmt, connect):
    _, ctl = qmt
    trader, rec = connect()
    seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "s1", "qa-1")
    assert seq > 0
    resp = rec.wait_for("on_order_stock_async_response")
    assert resp.seq == seq and resp.order_id > 0 and resp.error_msg == ""
    trade = rec.wait_for("on_stock_trade", lambda t: t.order_id == resp.order_id)
    assert trade.traded_volume == 100 and trade.traded_price == 10.00
    rec.wait_for("on_stock_order", lambda o: o.order_id == resp.order_id and o.order_status == xc.ORDER_SUCCEEDED)
    rec.wait_for("on_stock_position", lambda p: p.stock_code == "600000.SH" and p.volume == 100)
    # callbacks run on the wheel's single ThreadPoolExecutor thread, never on the stand-in's reader thread
    threads = {t for n, _, t in rec.events}
    assert len(threads) == 1 and next(iter(threads)).startswith("ThreadPoolExecutor")
    rows = ctl.orders("SIM001")
    assert [(r["order_id"], r["order_volume"], r["order_remark"]) for r in rows] == [(resp.order_id, 100, "qa-1")]


def test_sync_order_cancel_and_queries(qmt, connect):
    _, ctl = qmt
    trader, rec = connect()
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 200, xc.FIX_PRICE, 9.50, "s1", "rest-1")
    assert oid > 0
    rest = trader.query_stock_order(ACC, oid)
    assert rest.order_id == oid and rest.order_status == xc.ORDER_REPORTED
    assert [o.order_id for o in trader.query_stock_orders(ACC, cancelable_only=True)] == [oid]
    asset = trader.query_stock_asset(ACC)
    assert asset.frozen_cash > 0 and asset.account_id == "SIM001"
    assert trader.cancel_order_stock(ACC, oid) == 0
    rec.wait_for("on_stock_order", lambda o: o.order_id == oid and o.order_status == xc.ORDER_CANCELED)
    assert trader.query_stock_orders(ACC, cancelable_only=True) == []
    assert trader.query_stock_trades(ACC) == []
    # async cancel of a final order: refused through the response, then on_cancel_error
    cseq = trader.cancel_order_stock_async(ACC, oid)
    cresp = rec.wait_for("on_cancel_order_stock_async_response")
    assert (cresp.seq, cresp.cancel_result, cresp.order_id) == (cseq, -1, oid)
    err = rec.wait_for("on_cancel_error")
    assert err.order_id == oid and "final" in err.error_msg
    infos = trader.query_account_infos()
    assert [i.account_id for i in infos] == ["SIM001"]
    assert [s.account_id for s in trader.query_account_status()] == ["SIM001"]
    assert [(r["order_id"], r["order_status"]) for r in ctl.orders("SIM001")] == [(oid, xc.ORDER_CANCELED)]


def test_queries_answer_none_where_miniqmt_has_nothing(connect):
    trader, _ = connect()
    other = StockAccount("NOT-SERVED")
    assert trader.query_stock_orders(other) is None
    assert trader.query_stock_trades(other) is None
    assert trader.query_stock_positions(other) is None
    assert trader.query_stock_asset(other) is None
    assert trader.query_stock_order(ACC, 987654) is None
    assert trader.query_stock_position(ACC, "600000.SH") is None


def test_empty_lists_answer_none_when_switched_on(tmp_path):
    server = QmtSim(tmp_path / "um", "--empty-as-none")
    try:
        t = XtQuantTrader(str(server.path), 7, Recorder())
        t.start()
        assert t.connect() == 0
        assert t.query_stock_orders(ACC) is None and t.query_stock_trades(ACC) is None
        assert t.query_stock_asset(ACC) is not None
        t.stop()
    finally:
        server.stop()


def test_connect_is_minus_one_when_no_simulated_miniqmt_serves_the_path(tmp_path):
    t = XtQuantTrader(str(tmp_path / "nobody"), 8, Recorder())
    t.start()
    assert t.connect() == -1 and t.connected is False
    t.stop()


def test_connect_is_minus_one_after_the_server_was_killed(tmp_path):
    server = QmtSim(tmp_path / "um")
    server.kill()  # SIGKILL: its endpoint file stays behind, nobody listens
    t = XtQuantTrader(str(server.path), 9, Recorder())
    t.start()
    assert t.connect() == -1
    t.stop()


def test_server_exit_pushes_on_disconnected(qmt, connect):
    server, _ = qmt
    trader, rec = connect()
    server.kill()
    rec.wait_for("on_disconnected")
    # the one-shot link is dead: a sync order is refused, not hung (answered like the binary on a dead link)
    assert trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0) == -1


def test_simcontrol_disconnect_reaches_the_wheel(qmt, connect):
    _, ctl = qmt
    trader, rec = connect()
    ctl.disconnect()
    rec.wait_for("on_disconnected")


CHILD = textwrap.dedent("""
    import json, sys, threading
    from executor.sim.qmt import install
    install()
    from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
    from xtquant.xttype import StockAccount
    done = threading.Event()
    class CB(XtQuantTraderCallback):
        def on_stock_order(self, o):
            print(json.dumps(["order", o.order_id, o.order_status, o.order_remark]), flush=True)
            if o.order_status == 56:
                done.set()
        def on_stock_trade(self, t):
            print(json.dumps(["trade", t.order_id, t.traded_volume]), flush=True)
    t = XtQuantTrader(sys.argv[1], 4242, CB())
    t.start()
    assert t.connect() == 0 and t.subscribe(StockAccount("SIM001")) == 0
    print(json.dumps(["ready", type(t).__module__]), flush=True)
    ok = done.wait(30)
    t.stop()
    sys.exit(0 if ok else 3)
""")


def test_two_sessions_in_two_processes_both_receive_the_accounts_pushes(qmt, connect):
    server, ctl = qmt
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(server.path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        # its JSON line (importing xtquant may print a line of its own first, in a fresh virtualenv)
        first = json.loads(next((line for line in iter(child.stdout.readline, "") if line.startswith("[")), "null"))
        assert first == ["ready", "xtquant.xttrader"], child.stderr.read()
        trader, rec = connect()
        seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 300, xc.FIX_PRICE, 10.00, "", "two-1")
        resp = rec.wait_for("on_order_stock_async_response", lambda r: r.seq == seq)
        rec.wait_for("on_stock_order", lambda o: o.order_id == resp.order_id and o.order_status == 56)
        out, err = child.communicate(timeout=WAIT * 2)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
    seen = [json.loads(line) for line in out.splitlines()]
    assert ["trade", resp.order_id, 300] in seen
    assert ["order", resp.order_id, 56, "two-1"] in seen
    assert len(ctl.orders("SIM001")) == 1  # one order in MiniQMT's records, seen by both sessions

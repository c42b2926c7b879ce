"""A simulated MiniQMT killed with SIGKILL leaves exactly its committed day behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from xtquant import xtconstant as xc

from sim_helpers import ACC, Recorder, SimTrader

CHILD = textwrap.dedent("""
    import json, sys, threading
    from executor.sim.qmt import QmtSimServer, install
    install()
    from xtquant import xtconstant as xc
    from xtquant.xttrader import XtQuantTrader
    from xtquant.xttype import StockAccount

    server = QmtSimServer(sys.argv[1]).start()  # the simulated MiniQMT, in this process: the one killed

    acc = StockAccount("SIM001")
    responses = {}
    ev = threading.Event()

    class CB:
        def on_order_stock_async_response(self, r):
            responses[r.seq] = r.order_id
            if len(responses) == 3:
                ev.set()
        def __getattr__(self, name):
            return lambda *a: None

    t = XtQuantTrader(sys.argv[1], 7, CB())
    t.start(); assert t.connect() == 0; t.subscribe(acc)
    sync_id = t.order_stock(acc, "600000.SH", xc.STOCK_BUY, 1000, xc.FIX_PRICE, 10.00, "dur", "sync-fill")
    seqs = [t.order_stock_async(acc, "600000.SH", xc.STOCK_BUY, 500, xc.FIX_PRICE, 9.00, "dur", "rest-买"),
            t.order_stock_async(acc, "113052.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 120.000, "dur", "cb-fill"),
            t.order_stock_async(acc, "113052.SH", xc.STOCK_SELL, 50, xc.FIX_PRICE, 120.000, "dur", "cb-sell")]
    assert ev.wait(10)
    print(json.dumps({"sync": sync_id, "async": [responses[s] for s in seqs]}), flush=True)
    i = 0
    while True:  # keep the engine busy so the kill lands mid-activity
        i += 1
        t.order_stock_async(acc, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.00 if i % 2 else 10.00,
                            "dur", f"loop-{i}")
""")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX-only")
def test_sigkill_durability(tmp_path):
    path = tmp_path / "dur"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # its JSON line (importing xtquant may print a line of its own first, in a fresh virtualenv)
        line = next((x for x in iter(proc.stdout.readline, "") if x.startswith(("[", "{"))), "")
        assert line, proc.stderr.read()
        ids = json.loads(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    rec = Recorder()
    t = SimTrader(path, 8, rec)
    t.start()
    assert t.connect() == 0
    try:
        orders = {o.order_id: o for o in t.query_stock_orders(ACC)}
        s = orders[ids["sync"]]
        assert (s.order_remark, s.order_status, s.traded_volume) == ("sync-fill", xc.ORDER_SUCCEEDED, 1000)
        rest, cbf, cbs = (orders[i] for i in ids["async"])
        assert (rest.order_remark, rest.order_status) == ("rest-买", xc.ORDER_REPORTED)
        assert (cbf.order_remark, cbf.order_status) == ("cb-fill", xc.ORDER_SUCCEEDED)
        assert (cbs.order_remark, cbs.order_status) == ("cb-sell", xc.ORDER_SUCCEEDED)  # T+0 bond
        # the whole file is consistent: cash + frozen + everything spent on fills == initial cash
        trades = t.query_stock_trades(ACC)
        spent = sum((x.traded_amount + x.commission) if x.order_type == xc.STOCK_BUY
                    else -(x.traded_amount - x.commission) for x in trades)
        a = t.query_stock_asset(ACC)
        assert a.cash + a.frozen_cash + spent == pytest.approx(1_000_000.00, abs=0.005)
        frozen = sum(round(o.price * (o.order_volume - o.traded_volume), 2) for o in orders.values()
                     if o.order_status in (xc.ORDER_REPORTED, xc.ORDER_PART_SUCC))
        assert a.frozen_cash >= frozen
        bought = {}
        for x in trades:
            bought[x.stock_code] = bought.get(x.stock_code, 0) + (x.traded_volume if x.order_type == xc.STOCK_BUY
                                                                  else -x.traded_volume)
        pos = {p.stock_code: p.volume for p in t.query_stock_positions(ACC)}
        assert {k: v for k, v in pos.items() if v} == {k: v for k, v in bought.items() if v}
        assert pos["113052.SH"] == 50
        # order ids continue after the restart
        assert t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.00) > max(orders)
        # resting orders survived in the book: they still fill
        t.market.set_price("600000.SH", 8.99)
        assert t.query_stock_order(ACC, rest.order_id).order_status == xc.ORDER_SUCCEEDED
    finally:
        t.stop()

"""A request the simulated MiniQMT fails on (a simulator bug) is answered as failed: the wheel's sync call returns
instead of waiting forever, and the session goes on serving."""

from __future__ import annotations

import time

import pytest
from qmt_helpers import WAIT, Recorder, StockAccount, XtQuantTrader, xc

from executor.sim import SimControl
from executor.sim.qmt import server as qmt_server
from executor.sim.qmt.wire import E_INTERNAL

ACC = StockAccount("SIM001")


@pytest.fixture
def served(tmp_path, wheel_loop, monkeypatch):
    """An in-process simulated MiniQMT whose asset query and first order request raise."""
    calls = {"order": 0}
    real_order = qmt_server._Connection._orderStockWithSeq

    def broken_asset(self, seq, f):
        raise RuntimeError("simulated bug in the asset query")

    def order_once_broken(self, seq, f):
        calls["order"] += 1
        if calls["order"] == 1:
            raise RuntimeError("simulated bug in the order handler")
        return real_order(self, seq, f)

    monkeypatch.setattr(qmt_server._Connection, "_queryStockAssetWithSeq", broken_asset)
    monkeypatch.setattr(qmt_server._Connection, "_orderStockWithSeq", order_once_broken)
    server = qmt_server.QmtSimServer(tmp_path / "um").start()
    trader = XtQuantTrader(str(tmp_path / "um"), 31, Recorder())
    trader.start()
    assert trader.connect() == 0 and trader.subscribe(ACC) == 0
    yield trader, server
    trader.stop()
    server.close()


def test_a_failing_request_is_answered_and_the_session_goes_on(served):
    trader, server = served
    assert trader.query_stock_asset(ACC) is None  # answered (as failed), not a hang
    assert trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.50, "s", "broken") == -1
    err = trader.callback.wait_for("on_order_error", lambda e: e.order_remark == "broken")
    assert err.error_id == E_INTERNAL and "simulated bug in the order handler" in err.error_msg
    # the same session still serves: the next order is placed, and the broker holds only it
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.50, "s", "after")
    assert oid > 0
    ctl = SimControl(server.path)
    try:
        deadline = time.monotonic() + WAIT  # MiniQMT commits on its own thread: bounded wait for the row
        while not ctl.orders("SIM001") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(r["order_id"], r["order_remark"]) for r in ctl.orders("SIM001")] == [(oid, "after")]
    finally:
        ctl.close()

"""The push orders and late refusals MiniQMT produces (reference 6.1 rule 5, 6.2 F, 8.11), switched on in the
simulated MiniQMT (SimControl cross-process, Faults in-process) and seen through the wheel's own XtQuantTrader.
Counts and states come from that MiniQMT's own records."""

from __future__ import annotations

import itertools

import pytest
from qmt_helpers import Recorder, StockAccount, XtQuantTrader, xc

from executor.sim.engine import E_CANCEL_LATE
from executor.sim.qmt import QmtSimServer

ACC = StockAccount("SIM001")
_sessions = itertools.count(7000)


def _order_of(rec: Recorder, name: str, oid: int) -> list[int]:
    """Positions in the callback sequence of ``name`` callbacks about order ``oid``."""
    with rec.cv:
        return [i for i, (n, o, _) in enumerate(rec.events) if n == name and getattr(o, "order_id", None) == oid]


def _apply(ctl, control_id: int) -> None:
    assert ctl.wait_applied(control_id, timeout=15)


def test_by_default_the_answer_comes_before_the_order_pushes(qmt, connect):
    trader, rec = connect()
    seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "default")
    r = rec.wait_for("on_order_stock_async_response", lambda x: x.seq == seq)
    rec.wait_for("on_stock_order", lambda o: o.order_id == r.order_id and o.order_status == xc.ORDER_SUCCEEDED)
    assert _order_of(rec, "on_order_stock_async_response", r.order_id)[0] < _order_of(rec, "on_stock_order",
                                                                                       r.order_id)[0]


def test_answer_last_order_pushes_and_trades_precede_the_placement_answer(qmt, connect):
    _, ctl = qmt
    _apply(ctl, ctl.push_order(answer_last=True))
    trader, rec = connect()
    seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "late-answer")
    r = rec.wait_for("on_order_stock_async_response", lambda x: x.seq == seq)
    answer = _order_of(rec, "on_order_stock_async_response", r.order_id)[0]
    orders, trades = _order_of(rec, "on_stock_order", r.order_id), _order_of(rec, "on_stock_trade", r.order_id)
    assert orders and trades and max(orders + trades) < answer
    # the sync order_stock waits for the same answer: its order's pushes were handed to the strategy before it returns
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "sync-late-answer")
    assert oid > 0 and _order_of(rec, "on_stock_order", oid) and _order_of(rec, "on_stock_trade", oid)
    assert [r["order_remark"] for r in ctl.orders("SIM001")] == ["late-answer", "sync-late-answer"]


def test_a_refusal_before_its_answer_still_reaches_on_order_error_once(qmt, connect):
    """The counter's 57 push and the error arrive before the answer; the wheel parks the error until the answer."""
    _, ctl = qmt
    _apply(ctl, ctl.push_order(answer_last=True))
    trader, rec = connect()
    seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 12.00, "", "refused")
    r = rec.wait_for("on_order_stock_async_response", lambda x: x.seq == seq)
    err = rec.wait_for("on_order_error", lambda e: e.order_id == r.order_id)
    assert err.error_msg.startswith("[COUNTER] [100302][委托价格超出涨跌停限制]")
    marker = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "marker")
    assert marker > 0 and len(rec.of("on_order_error")) == 1
    assert {x["order_remark"]: x["order_status"] for x in ctl.orders("SIM001")} == {
        "refused": xc.ORDER_JUNK, "marker": xc.ORDER_SUCCEEDED}


def test_trades_first_a_fill_arrives_before_its_order_update(qmt, connect):
    _, ctl = qmt
    _apply(ctl, ctl.push_order(trades_first=True))
    trader, rec = connect()
    # immediately marketable: its trade comes before the order's first update (50)
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "now")
    rec.wait_for("on_stock_order", lambda o: o.order_id == oid and o.order_status == xc.ORDER_SUCCEEDED)
    assert _order_of(rec, "on_stock_trade", oid)[0] < _order_of(rec, "on_stock_order", oid)[0]
    # resting, filled by a price move: the trade comes before the update to 56
    rest = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.90, "", "later")
    rec.wait_for("on_stock_order", lambda o: o.order_id == rest)
    _apply(ctl, ctl.set_price("600000.SH", 9.90))
    rec.wait_for("on_stock_order", lambda o: o.order_id == rest and o.order_status == xc.ORDER_SUCCEEDED)
    with rec.cv:
        seq = [(n, getattr(o, "order_status", None)) for n, o, _ in rec.events
               if n in ("on_stock_trade", "on_stock_order") and getattr(o, "order_id", None) == rest]
    assert seq == [("on_stock_order", xc.ORDER_REPORTED), ("on_stock_trade", None),
                   ("on_stock_order", xc.ORDER_SUCCEEDED)]
    assert len([t for t in ctl.trades("SIM001")]) == 2


@pytest.mark.parametrize("form", ["sync", "async"])
def test_a_cancel_answered_0_is_refused_later_and_the_order_keeps_working(qmt, connect, form):
    _, ctl = qmt
    trader, rec = connect()
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.50, "", "keep")
    _apply(ctl, ctl.refuse_cancels_late(1, after_ms=100))
    if form == "sync":
        assert trader.cancel_order_stock(ACC, oid) == 0  # "the cancel instruction was sent" (reference 2.2)
    else:
        seq = trader.cancel_order_stock_async(ACC, oid)
        r = rec.wait_for("on_cancel_order_stock_async_response", lambda x: x.seq == seq)
        assert (r.cancel_result, r.order_id) == (0, oid)
    err = rec.wait_for("on_cancel_error", lambda e: e.order_id == oid)
    assert err.error_id == E_CANCEL_LATE and err.error_msg.startswith("[COUNTER] [")
    (row,) = [x for x in ctl.orders("SIM001") if x["order_id"] == oid]
    assert row["order_status"] == xc.ORDER_REPORTED  # still working, nothing released
    assert not [o for o in rec.of("on_stock_order") if o.order_id == oid and o.order_status != xc.ORDER_REPORTED]
    # the switch was for one cancel: the next one cancels
    assert trader.cancel_order_stock(ACC, oid) == 0
    rec.wait_for("on_stock_order", lambda o: o.order_id == oid and o.order_status == xc.ORDER_CANCELED)
    assert len(rec.of("on_cancel_error")) == 1


def test_in_process_faults_switch_the_same_push_orders(tmp_path, wheel_loop):
    server = QmtSimServer(tmp_path / "userdata_mini").start()
    made = []
    try:
        server.engine.set_price("600000.SH", 10.00, prev_close=10.00)
        server.engine.faults.push_order(answer_last=True, trades_first=True)
        rec = Recorder()
        trader = XtQuantTrader(str(server.path), next(_sessions), rec)
        made.append(trader)
        trader.start()
        assert trader.connect() == 0 and trader.subscribe(ACC) == 0
        seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "inproc")
        r = rec.wait_for("on_order_stock_async_response", lambda x: x.seq == seq)
        with rec.cv:
            names = [n for n, o, _ in rec.events if getattr(o, "order_id", None) == r.order_id]
        assert names[0] == "on_stock_trade" and names[-1] == "on_order_stock_async_response"
        server.engine.faults.reset()
        seq = trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "after-reset")
        r2 = rec.wait_for("on_order_stock_async_response", lambda x: x.seq == seq)
        rec.wait_for("on_stock_order", lambda o: o.order_id == r2.order_id and o.order_status == xc.ORDER_SUCCEEDED)
        with rec.cv:
            names = [n for n, o, _ in rec.events if getattr(o, "order_id", None) == r2.order_id]
        assert names[0] == "on_order_stock_async_response"
    finally:
        for t in made:
            t.stop()
        server.close()

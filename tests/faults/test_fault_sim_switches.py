"""The simulator's slow-broker switches the fault suite relies on: a latency distribution per call (seeded), answers
delivered when due (a quick one overtakes a slow one), pushes in every order the docs say MiniQMT may produce, and
these standing conditions surviving a restart of the simulated MiniQMT on the same folder."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from sim_helpers import ACC, BUY, FIX, make_trader  # noqa: E402

import pytest  # noqa: E402

from executor.sim.control import SimControl  # noqa: E402


@pytest.fixture(autouse=True)
def _main_thread_loop(wheel_loop):
    """The wheel's XtQuantTrader is built on the main thread here (see tests/conftest.py::wheel_loop)."""
    yield


def _orders(t, n: int, price: float = 10.00, volume: int = 100) -> list[int]:
    return [t.order_stock_async(ACC, "600000.SH", BUY, volume, FIX, price) for _ in range(n)]


def test_latency_distribution_reorders_answers_and_is_reproducible(tmp_path):
    t, rec = make_trader(tmp_path / "sim")
    try:
        t.faults.set_call_latency(50, max_ms=500, seed=7)
        draws = [t.faults.call_latency() for _ in range(200)]
        assert min(draws) >= 50 and max(draws) <= 500 and len(set(draws)) > 150  # a distribution, not a constant
        t.faults.set_call_latency(50, max_ms=500, seed=7)
        assert [t.faults.call_latency() for _ in range(200)] == draws  # seeded: reproducible
        seqs = _orders(t, 30, price=9.50)
        assert rec.wait_count("on_order_stock_async_response", 30, timeout=10)
        answered = [r.seq for r in rec.of("on_order_stock_async_response")]
        assert sorted(answered) == sorted(seqs)
        assert answered != sorted(answered)  # a quicker answer overtook a slower one
    finally:
        t.stop()


def test_reorder_pushes_produces_every_documented_order(tmp_path):
    t, rec = make_trader(tmp_path / "sim")
    try:
        t.faults.reorder_pushes(1.0, split_fills=True, seed=3)
        oids_by_seq: dict[int, int] = {}
        _orders(t, 40)
        _orders(t, 5, volume=150)  # odd lots: 57 + on_order_error
        assert rec.wait_count("on_order_stock_async_response", 45)
        assert rec.wait_count("on_stock_trade", 80)
        assert rec.wait_count("on_order_error", 5)
        with rec.cond:
            events = list(rec.events)
        for r in rec.of("on_order_stock_async_response"):
            oids_by_seq[r.seq] = r.order_id
        seen = {"order_before_response": 0, "trade_before_order56": 0, "order56_before_trade": 0,
                "partial_after_filled": 0, "trade_after_filled": 0}
        per: dict[int, list[tuple[str, object]]] = {}
        for name, obj in events:
            oid = getattr(obj, "order_id", None)
            if oid is not None:
                per.setdefault(oid, []).append((name, obj))
        for oid, evs in per.items():
            names = [n for n, _ in evs]
            if "on_order_error" in names:  # never before its answer (reference 6.1 rule 2)
                assert names.index("on_order_stock_async_response") < names.index("on_order_error")
            statuses = [o.order_status for n, o in evs if n == "on_stock_order"]
            if "on_stock_order" in names and names.index("on_stock_order") < names.index(
                    "on_order_stock_async_response"):
                seen["order_before_response"] += 1
            if 56 in statuses:
                i56 = next(i for i, (n, o) in enumerate(evs) if n == "on_stock_order" and o.order_status == 56)
                trades = [i for i, (n, _) in enumerate(evs) if n == "on_stock_trade"]
                assert len(trades) == 2  # split fills: two trades per marketable order
                seen["trade_before_order56"] += trades[0] < i56
                seen["order56_before_trade"] += trades[-1] > i56
                seen["trade_after_filled"] += trades[-1] > i56
                seen["partial_after_filled"] += any(n == "on_stock_order" and o.order_status == 55
                                                    for n, o in evs[i56 + 1:])
        assert all(v > 0 for v in seen.values()), seen
    finally:
        t.stop()


def test_standing_conditions_survive_an_engine_restart(tmp_path):
    path = tmp_path / "sim"
    t, _ = make_trader(path)
    ctl = SimControl(path)
    try:
        assert ctl.wait_applied(ctl.set_call_latency(50, max_ms=500, seed=1))
        assert ctl.wait_applied(ctl.reorder_pushes(0.5, seed=2))
        assert ctl.wait_applied(ctl.reject_next(3))  # a one-shot fault: not replayed
    finally:
        t.stop()
    t, rec = make_trader(path)  # a new simulated MiniQMT on the same folder (MiniQMT restarted)
    try:
        f = t.faults
        assert f.latency_range == (50.0, 500.0) and f.reorder_p == 0.5 and f.split_fills and f.reject_n == 0
        started = time.monotonic()
        done = threading.Event()
        t.query_stock_orders_async(ACC, lambda _r: done.set())
        assert done.wait(5)
        assert time.monotonic() - started >= 0.049
        assert ctl.wait_applied(ctl.reset_faults())
        assert f.latency_range is None and f.reorder_p == 0
    finally:
        t.stop()
        ctl.close()

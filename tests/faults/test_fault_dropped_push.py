"""7. A broker push lost on the way (SimControl.drop_next_push): the state changed at the broker, the callback never
came. Reconciliation (the executor's periodic query of the broker's orders and trades) must detect the difference
and publish what was missed, exactly once.

Proves, against the simulator's records: every fill at the broker has exactly one order_filled event with its trade
id, and the last order_updated event of every order carries the broker's current status, within a bounded time
(a few reconciliation intervals; the executor runs with --probe-interval-ms 1000).
"""

from __future__ import annotations

import asyncio
import json
import time
import random
import secrets
from collections import Counter

import pytest

import producer_lib as pl
from executor.sim.control import SimControl
from harness import CODE, ExecutorProc, Report, await_until, env_int, read_events, sim_trades

RECONCILE_WAIT_S = 6.0  # 6 reconciliation intervals (--probe-interval-ms 1000)


async def _executor(tmp_path, redis_server, account):
    ex = ExecutorProc(redis_server.url, account, tmp_path / "ex")
    ex.start()
    await ex.wait_serving()
    return ex


def post_drop_next_push(ctl: SimControl, kind: str, n: int) -> int:
    """SimControl.drop_next_push(kind, n), bypassing its bug: ``_post(self, kind, **payload)`` is called with
    ``kind=`` in the payload -> TypeError (see test_simcontrol_drop_next_push_works_cross_process). Writes the same
    control row the method means to write."""
    try:
        return ctl.drop_next_push(kind, n)
    except TypeError:
        with ctl._lock:
            cur = ctl._conn.execute("INSERT INTO control (kind, payload, created) VALUES (?, ?, ?)",
                                    ("drop_next_push", json.dumps({"kind": kind, "n": int(n)}), time.time()))
            return int(cur.lastrowid)


async def _drop(ctl: SimControl, kind: str, n: int) -> None:
    cid = post_drop_next_push(ctl, kind, n)
    assert await asyncio.to_thread(ctl.wait_applied, cid, 10.0), "the simulator never applied drop_next_push"


def _fills_published(r, keys, sim_path, account) -> tuple[list, Counter]:
    trades = sim_trades(sim_path, account)
    published = Counter((ev.order_id, ev.data.trade.trade_id) for ev in read_events(r, keys)
                        if ev.type == "order_filled" and ev.data is not None)
    return trades, published


async def _dropped_fills(tmp_path, redis_server, seed, record_property, rounds: int) -> None:
    rng = random.Random(seed)
    account = f"D{secrets.token_hex(4)}"
    keys = pl.contract.Keys(account)
    ex = await _executor(tmp_path, redis_server, account)
    ctl = SimControl(ex.sim_path)
    r = redis_server.client()
    report = Report("dropped-fill-push", seed)
    try:
        async with pl.Client(redis_server.url, account) as client:
            for i in range(rounds):
                await _drop(ctl, "trade", 1)
                ack = await client.buy(CODE, 100 * rng.randint(1, 5), 10.0, client_order_id=f"df{i}{account}"[:24])
                report.add("filled_orders_with_dropped_trade_push")

                def converged():
                    trades, published = _fills_published(r, keys, ex.sim_path, account)
                    mine = [t for t in trades if t["order_id"] == ack.order_id]
                    return mine and all(published[(t["order_id"], t["traded_id"])] >= 1 for t in mine)
                try:
                    await await_until(converged, RECONCILE_WAIT_S, f"an order_filled event for order {ack.order_id}"
                                                                   " whose trade push was dropped")
                    report.add("recovered_by_reconciliation")
                except AssertionError as exc:
                    report.violate("fill_event_lost", str(exc)[:200])
        trades, published = _fills_published(r, keys, ex.sim_path, account)
        report.add("fills_at_broker", len(trades))
        report.add("fills_published_twice", sum(1 for n in published.values() if n > 1))
        for key, n in published.items():
            if n > 1:
                report.violate("fill_published_twice", f"order {key[0]} trade {key[1]}: {n} events")
    finally:
        report.emit(record_property)
        ctl.close()
        ex.terminate()
        r.close()
    report.assert_clean()


async def _dropped_order_updates(tmp_path, redis_server, seed, record_property, rounds: int) -> None:
    account = f"D{secrets.token_hex(4)}"
    keys = pl.contract.Keys(account)
    ex = await _executor(tmp_path, redis_server, account)
    ctl = SimControl(ex.sim_path)
    r = redis_server.client()
    report = Report("dropped-order-push", seed)
    try:
        async with pl.Client(redis_server.url, account) as client:
            for i in range(rounds):
                ack = await client.buy(CODE, 100, 9.5, client_order_id=f"do{i}{account}"[:24])
                await _drop(ctl, "order", 2)  # the cancel's 51 (reported_cancel) and 54 (canceled) pushes
                await client.cancel_order(ack.order_id)
                await await_until(lambda: any(o["order_id"] == ack.order_id and o["order_status"] == 54
                                              for o in ctl.orders(account)), 10, "the cancel at the broker")
                report.add("cancelled_orders_with_dropped_status_pushes")

                def converged():
                    last = None
                    for ev in read_events(r, keys):
                        if ev.type == "order_updated" and ev.data is not None and ev.order_id == ack.order_id:
                            last = ev.data.order.status_code
                    return last == 54
                try:
                    await await_until(converged, RECONCILE_WAIT_S, f"order_updated 'canceled' for order "
                                                                   f"{ack.order_id} whose status pushes were dropped")
                    report.add("recovered_by_reconciliation")
                except AssertionError as exc:
                    report.violate("order_status_not_published", str(exc)[:200])
    finally:
        report.emit(record_property)
        ctl.close()
        ex.terminate()
        r.close()
    report.assert_clean()


async def test_dropped_fill_push_is_reconciled_quick(tmp_path, redis_server, seed, record_property):
    await _dropped_fills(tmp_path, redis_server, seed, record_property, rounds=1)


async def test_dropped_order_push_is_reconciled_quick(tmp_path, redis_server, seed, record_property):
    await _dropped_order_updates(tmp_path, redis_server, seed, record_property, rounds=1)


@pytest.mark.slow
async def test_dropped_pushes_many(tmp_path, redis_server, seed, record_property):
    rounds = env_int("XTQ_FAULT_ITERATIONS", 5)
    await _dropped_fills(tmp_path / "fills", redis_server, seed, record_property, rounds=rounds)
    await _dropped_order_updates(tmp_path / "orders", redis_server, seed, record_property, rounds=rounds)


def test_simcontrol_drop_next_push_works_cross_process(tmp_path):
    """BUG (executor/sim/control.py:58): drop_next_push calls ``self._post("drop_next_push", kind=kind, ...)`` but
    ``_post(self, kind, **payload)`` already takes ``kind`` -> TypeError; the documented cross-process fault cannot
    be injected. Fix: ``def _post(self, control_kind: str, /, **payload)``."""
    ctl = SimControl(tmp_path / "sim")
    try:
        assert ctl.drop_next_push("trade", 1) > 0
    finally:
        ctl.close()

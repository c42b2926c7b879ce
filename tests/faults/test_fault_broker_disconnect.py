"""4. The broker (MiniQMT, here the simulator) disconnects mid-run for ``down_ms`` (SimControl.disconnect).

Proves: while it is down, orders are refused cleanly with broker_unavailable (never acked: no reply before the
broker can be back is an ack, and none of them is at the broker); the executor reconnects by itself and publishes
broker_disconnected / broker_connected(reconnect) events; orders in flight at the cut end as outcome_unknown and are
resolved by reconciliation / query_outcome consistently with the broker's records; plus every invariant of the
SIGKILL test (no duplicate, no late order, one reply per entry, pending drained).

Slow variant: the same with a slow broker (every call answered in 50-500 ms, pushes in every order MiniQMT may
produce, harness.SLOW_BROKER), before and after the reconnect: statuses must never move backwards.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time

import pytest

import producer_lib as pl
from executor.sim.control import SimControl
from harness import CODE, Report, await_until, env_int, iterations, read_events, run_scenario

DOWN_MS = 4000


async def disconnect_broker(ctx) -> None:
    ex, report, rng = ctx["ex"], ctx["report"], ctx["rng"]
    ctl = SimControl(ex.sim_path)
    try:
        posted = time.time()
        cid = ctl.disconnect(down_ms=DOWN_MS)
        assert await asyncio.to_thread(ctl.wait_applied, cid, 10.0), "the simulator never applied the disconnect"
        back_at = posted + DOWN_MS / 1000.0  # the broker cannot accept anything before this
        async with pl.Client(ex.redis_url, ex.account) as client:
            async def down() -> bool:
                try:
                    return not (await asyncio.wait_for(client.ping(), 2.0)).broker_connected
                except (asyncio.TimeoutError, pl.XtqueueError):
                    return False
            await await_until(down, 20, "the executor to see the broker down")
            # probes: orders sent while the broker is certainly still down
            i = 0
            while time.time() < back_at - 1.0 and i < 25:
                coid = f"dn{secrets.token_hex(6)}"
                i += 1
                try:
                    ack = await client.buy(CODE, 100, 9.5, client_order_id=coid, deadline=rng.uniform(1, 3))
                    verdict, oid = "acked", ack.order_id
                except pl.XtqueueError as exc:
                    verdict, oid = type(exc).__name__, exc.order_id
                ended = time.time()
                ctx.setdefault("probes", []).append((coid, verdict, oid, ended))
                if ended < back_at:
                    report.add(f"probe_while_down_{verdict}")
                    if verdict != "BrokerUnavailable":
                        report.violate("not_refused_while_down", f"{coid}: {verdict} (order {oid})")
            async def up() -> bool:
                try:
                    return (await asyncio.wait_for(client.ping(), 2.0)).broker_connected
                except (asyncio.TimeoutError, pl.XtqueueError):
                    return False
            await await_until(up, 60, "the executor to reconnect to the broker")
            report.add("reconnected")
    finally:
        ctl.close()


async def _run(tmp_path, redis_server, seed, record_property, *, runs, n_orders, cuts, producers,
               slow_broker=False, title="broker-disconnect"):
    total = Report(title, seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"{title}#{i}", seed)
        account = f"B{secrets.token_hex(4)}"
        probes: list = []

        async def fault(ctx):
            await disconnect_broker(ctx)
            probes.extend(ctx.pop("probes", []))

        result = await run_scenario(workdir=tmp_path / f"run{i}", server=redis_server, rng=rng, report=report,
                                    n_orders=n_orders, producers=producers, concurrency=4, n_faults=cuts,
                                    fault=fault, account=account, ttl_range=(2.0, 8.0), slow_broker=slow_broker)
        # probes refused while down are not at the broker; an acked probe is there with its order id
        by_coid = {row["order_remark"]: row for row in __import__("executor.sim.control", fromlist=["x"])
                   .SimControl(tmp_path / f"run{i}" / "sim").orders(account)}
        for coid, verdict, oid, _ in probes:
            if verdict == "BrokerUnavailable" and coid in by_coid:
                report.violate("refused_but_placed", f"probe {coid} refused but at the broker")
            if verdict == "acked" and by_coid.get(coid, {}).get("order_id") != oid:
                report.violate("ack_not_at_broker", f"probe {coid} acked {oid}")
        types = [ev.type for ev in result["events"]]
        report.add("events_broker_disconnected", types.count("broker_disconnected"))
        report.add("events_broker_reconnected", sum(1 for ev in result["events"] if ev.type == "broker_connected"
                                                    and ev.data is not None and ev.data.reconnect))
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_no_duplicate_or_late()
    if slow_broker:
        total.assert_clean("status_moved_backwards")
    total.assert_clean("order_never_answered", "not_refused_while_down", "duplicate_at_broker", "placed_after_deadline",
                       "entry_without_reply", "extra_replies", "reply_without_entry", "replies_disagree",
                       "ack_not_at_broker", "refused_but_placed", "rejected_but_live", "outcome_wrong",
                       "outcome_unresolved", "placed_never_answered", "pending_left", "calls_not_ended",
                       "untyped_client_error")
    assert total.counts.get("probe_while_down_BrokerUnavailable", 0) >= 1, total.line()
    assert total.counts.get("reconnected", 0) == total.counts.get("faults", 0) >= 1, total.line()
    assert total.counts.get("events_broker_reconnected", 0) >= total.counts["reconnected"], total.line()
    assert total.counts.get("events_broker_disconnected", 0) >= total.counts["reconnected"], total.line()


async def test_broker_disconnect_quick(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=1, n_orders=150, cuts=1, producers=2)


@pytest.mark.slow
async def test_broker_disconnect_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 3, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), cuts=env_int("XTQ_FAULT_CUTS", 3),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6))


@pytest.mark.slow
async def test_broker_disconnect_slow_broker_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 3, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), cuts=env_int("XTQ_FAULT_CUTS", 3),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6), slow_broker=True, title="broker-disconnect-slow-broker")

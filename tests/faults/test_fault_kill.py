"""1. SIGKILL of the executor at random points while concurrent producers send orders.

Proves, from the simulator's SQLite records and the raw streams: every client order id at most once at the broker,
no order placed after its deadline, every command entry exactly one reply (replies of a client order id agree),
every ack at the broker, nothing placed for an order refused as expired/unavailable, the pending list drains.
"""

from __future__ import annotations

import random
import secrets

import pytest

from harness import SHORT_LEASE, Report, env_int, iterations, run_scenario


async def kill_and_restart(ctx) -> None:
    ex, rng = ctx["ex"], ctx["rng"]
    ex.kill()
    # half the restarts keep the consumer name (a service with a configured executor id), half get host-pid
    ex.start(rng.choice([None, "fault-fixed-id"]))
    await ex.wait_serving()


async def _run(tmp_path, redis_server, seed, record_property, *, runs, n_orders, kills, producers, concurrency):
    total = Report("sigkill", seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"sigkill#{i}", seed)
        await run_scenario(workdir=tmp_path / f"run{i}", server=redis_server, rng=rng, report=report,
                           n_orders=n_orders, producers=producers, concurrency=concurrency,
                           n_faults=kills, fault=kill_and_restart, account=f"K{secrets.token_hex(4)}",
                           executor_extra=SHORT_LEASE)
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_clean("duplicate_at_broker", "placed_after_deadline", "entry_without_reply", "extra_replies",
                       "reply_without_entry", "replies_disagree", "ack_not_at_broker", "refused_but_placed",
                       "rejected_but_live", "outcome_wrong", "outcome_unresolved", "placed_never_answered",
                       "pending_left", "calls_not_ended", "untyped_client_error")
    assert total.counts.get("duplicates", 0) == 0 and total.counts.get("late", 0) == 0
    assert total.counts.get("faults", 0) >= 1


async def test_sigkill_quick(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=1, n_orders=200, kills=3, producers=3,
               concurrency=6)


@pytest.mark.slow
async def test_sigkill_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 5, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), kills=env_int("XTQ_FAULT_KILLS", 6),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6), concurrency=8)

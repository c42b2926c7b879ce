"""3. Redis crashes (SIGKILL) and restarts on the same port mid-run: without persistence, and with AOF (fsync
always).

Proves, as in the SIGKILL test: no client order id twice at the broker, nothing placed after its deadline, no order
placed for a request refused as expired/unavailable, every call ends with a typed outcome (query_outcome resolves
the unknown ones, consistently with the broker), the executor keeps serving (group re-created after the data
loss) and its pending list drains. With AOF nothing acknowledged is lost, so every command entry has exactly one
reply; without persistence the entries and replies written before the crash are gone, so replies are checked for
the entries still on the stream.
"""

from __future__ import annotations

import asyncio
import random
import secrets

import pytest

from harness import Report, env_int, iterations, run_scenario

CORE = ("duplicate_at_broker", "placed_after_deadline", "entry_without_reply", "extra_replies", "replies_disagree",
        "ack_not_at_broker", "refused_but_placed", "rejected_but_live", "outcome_wrong", "outcome_unresolved",
        "pending_left", "calls_not_ended", "untyped_client_error")


async def restart_redis(ctx) -> None:
    server, rng = ctx["server"], ctx["rng"]
    await asyncio.to_thread(server.restart, rng.uniform(0.05, 1.0))  # the outage: 50 ms .. 1 s
    await ctx["ex"].wait_serving()  # the same executor process serves again


async def _run(tmp_path, server, seed, record_property, *, aof: bool, runs, n_orders, restarts, producers):
    title = "redis-restart-aof" if aof else "redis-restart-nopersist"
    total = Report(title, seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"{title}#{i}", seed)
        await run_scenario(workdir=tmp_path / f"run{i}", server=server, rng=rng, report=report,
                           n_orders=n_orders, producers=producers, concurrency=6, n_faults=restarts,
                           fault=restart_redis, account=f"R{secrets.token_hex(4)}", commands_lost=not aof)
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_clean(*CORE, *(("reply_without_entry", "placed_never_answered") if aof else ()))
    assert total.counts.get("duplicates", 0) == 0 and total.counts.get("late", 0) == 0
    assert total.counts.get("faults", 0) >= 1


async def test_redis_restart_without_persistence_quick(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, aof=False, runs=1, n_orders=150, restarts=2,
               producers=3)


async def test_redis_restart_with_aof_quick(tmp_path, redis_server_aof, seed, record_property):
    await _run(tmp_path, redis_server_aof, seed, record_property, aof=True, runs=1, n_orders=150, restarts=2,
               producers=3)


@pytest.mark.slow
@pytest.mark.parametrize("aof", [False, True], ids=["nopersist", "aof"])
async def test_redis_restart_many(tmp_path, seed, record_property, aof):
    from harness import RedisServer

    server = RedisServer(tmp_path / "redis", aof=aof).start()
    try:
        await _run(tmp_path, server, seed, record_property, aof=aof, runs=iterations(1, 3, True),
                   n_orders=env_int("XTQ_FAULT_ORDERS", 1000), restarts=env_int("XTQ_FAULT_RESTARTS", 4),
                   producers=env_int("XTQ_FAULT_PRODUCERS", 6))
    finally:
        server.stop()

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
import time

import pytest

from harness import Report, await_until, env_int, iterations, run_scenario

CORE = ("duplicate_at_broker", "placed_after_deadline", "entry_without_reply", "extra_replies", "replies_disagree",
        "ack_not_at_broker", "refused_but_placed", "rejected_but_live", "outcome_wrong", "outcome_unresolved",
        "pending_left", "calls_not_ended", "untyped_client_error")


async def restart_redis(ctx) -> None:
    server, rng = ctx["server"], ctx["rng"]
    await asyncio.to_thread(server.restart, rng.uniform(0.05, 1.0))  # the outage: 50 ms .. 1 s
    # the executor serves again (restarted by the harness's supervisor if it stepped down: the lease key was lost)
    deadline = time.monotonic() + 90
    while True:
        await await_until(lambda: ctx["ex"].alive and ctx.get("serving", True), 60, "executor alive")
        try:
            await ctx["ex"].wait_serving(timeout=30)
            return
        except AssertionError:
            if ctx["ex"].alive or time.monotonic() > deadline:
                raise  # exited: the supervisor restarts it, then we ask again


async def _run(tmp_path, server, seed, record_property, *, aof: bool, runs, n_orders, restarts, producers):
    title = "redis-restart-aof" if aof else "redis-restart-nopersist"
    total = Report(title, seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"{title}#{i}", seed)
        await run_scenario(workdir=tmp_path / f"run{i}", server=server, rng=rng, report=report,
                           n_orders=n_orders, producers=producers, concurrency=6, n_faults=restarts,
                           fault=restart_redis, account=f"R{secrets.token_hex(4)}", commands_lost=not aof,
                           supervise=True)
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_clean(*CORE, *(("reply_without_entry", "placed_never_answered") if aof else ()))
    total.assert_no_duplicate_or_late()
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


async def test_sole_executor_keeps_serving_and_publishing_fills_after_redis_data_loss(tmp_path, redis_server):
    """BUG: with the lease (default lease_ms=5000), a Redis restart WITHOUT persistence deletes the lease key; the
    only executor's next renew / fenced finish fails (executor/lease.py renew(): GET != our value) and it steps down
    and exits 3 although no other executor exists, and the events it spooled while Redis was down are DROPPED
    ("lease lost: events of this executor dropped", executor/events.py): a fill that happened during the outage is
    never published - a lost fill event. Expected: a lease key that has vanished (not taken by another executor) is
    re-acquired, and spooled broker events are published by whoever holds the lease (or reconciled from the
    broker's trade list)."""
    import producer_lib as pl
    from executor.sim.control import SimControl
    from harness import CODE, ExecutorProc, read_events, sim_trades

    account = f"S{secrets.token_hex(4)}"
    keys = pl.contract.Keys(account)
    ex = ExecutorProc(redis_server.url, account, tmp_path / "ex")
    ex.start()
    await ex.wait_serving()
    ctl = SimControl(ex.sim_path)
    try:
        async with pl.Client(redis_server.url, account) as client:
            ack = await client.buy(CODE, 100, 9.5, client_order_id=f"lf{account}"[:24])
        await asyncio.to_thread(redis_server.kill)
        cid = ctl.set_price(CODE, 9.40)  # the resting buy fills while Redis is down: the fill event is spooled
        assert await asyncio.to_thread(ctl.wait_applied, cid, 10)
        await await_until(lambda: any(t["order_id"] == ack.order_id for t in sim_trades(ex.sim_path, account)), 10,
                          "the fill at the broker")
        await asyncio.to_thread(redis_server.start)  # same port, empty: the lease key is gone
        r = redis_server.client()
        try:
            def fill_published():
                return any(ev.type == "order_filled" and ev.order_id == ack.order_id for ev in read_events(r, keys))
            await await_until(fill_published, 20, f"the order_filled event of order {ack.order_id}")
            # and the same process still serves (answers a ping after the Redis restart, does not exit 3)
            await ex.wait_serving(timeout=20)
            assert ex.alive, f"the only executor exited (rc={ex.proc.returncode}) after the Redis restart"
        finally:
            r.close()
    finally:
        ctl.close()
        ex.terminate()

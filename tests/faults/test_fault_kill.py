"""1. SIGKILL of the executor at random points while concurrent producers send orders.

Proves, from the simulator's SQLite records and the raw streams: every client order id at most once at the broker,
no order placed after its deadline, every command entry exactly one reply (replies of a client order id agree),
every ack at the broker, nothing placed for an order refused as expired/unavailable, the pending list drains.

Slow variants: the same under a slow broker (every call answered in 50-500 ms, pushes in every order MiniQMT may
produce: statuses must never move backwards), and with a hostile strategy beside the producers (every producer and
the hostile one on their own ACL users from `xtqueue acl`): its explicit future ids, MAXLEN 0, 5,000-field and
600-deep entries and claims of other strategies' names, reply streams and used client order ids must change
nothing for the others; the same attacks on the shared stream and the others' streams are refused by Redis.
"""

from __future__ import annotations

import random
import secrets

import pytest

from harness import (HOSTILE, HOSTILE_KINDS, SHORT_LEASE, RedisServer, Report, await_until, env_int, iterations,
                     make_acl, run_scenario)

INVARIANTS = ("duplicate_at_broker", "placed_after_deadline", "entry_without_reply", "extra_replies",
              "reply_without_entry", "replies_disagree", "ack_not_at_broker", "refused_but_placed",
              "rejected_but_live", "outcome_wrong", "outcome_unresolved", "placed_never_answered", "pending_left",
              "calls_not_ended", "untyped_client_error", "order_never_answered", "executor_not_serving",
              "producer_not_on_own_stream")
# what a slow broker's push orders must not break (docs/architecture.md X8: statuses never move backwards)
SLOW_BROKER_INVARIANTS = ("status_moved_backwards",)
# what a hostile strategy must not achieve
HOSTILE_INVARIANTS = ("entry_id_ahead_of_clock", "valid_order_refused", "order_attributed_to_other_strategy",
                      "reply_in_foreign_stream", "entry_never_settled", "foreign_stream_written",
                      "squatted_coid_placed", "producer_not_own_user")


async def kill_and_restart(ctx) -> None:
    ex, rng = ctx["ex"], ctx["rng"]
    ctx["restarting"] = True  # a supervisor (hostile runs) leaves this restart to the fault
    ex.kill()
    hostile, work = ctx.get("hostile"), ctx["work"]
    if hostile is not None:  # no executor reads now: entries queue up; MAXLEN 0 on them must be refused by Redis
        # (the shared and the others' streams), on its own stream it trims only its own unread entries
        target = min(work.sent + 2 * work.n_producers, work.hold_point)  # (the next fault's hold stops the work)
        await await_until(lambda: work.sent >= target, 30, f"{target} calls started while the executor is down")
        await hostile.attack("maxlen0", own=False)
    # half the restarts keep the consumer name (a service with a configured executor id), half get host-pid
    ex.start(rng.choice([None, "fault-fixed-id"]))
    ctx["restarting"] = False
    try:
        await ex.wait_serving()
    except AssertionError as exc:  # reported with every other violation of the run (the next fault restarts it)
        ctx["report"].violate("executor_not_serving", str(exc)[-1500:])


async def _run(tmp_path, redis_server, seed, record_property, *, runs, n_orders, kills, producers, concurrency,
               slow_broker=False, hostile_attacks=0, title="sigkill"):
    total = Report(title, seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"{title}#{i}", seed)
        account = f"K{secrets.token_hex(4)}"
        server, acl = redis_server, None
        if hostile_attacks:  # every strategy (and the hostile one) on its own ACL user, on a server of its own
            acl = make_acl(tmp_path / f"acl{i}", account, [f"p{k}" for k in range(producers)] + [HOSTILE])
            server = RedisServer(tmp_path / f"redis-acl{i}", aclfile=acl.aclfile, admin=acl.admin()).start()
        try:
            await run_scenario(workdir=tmp_path / f"run{i}", server=server, rng=rng, report=report,
                               n_orders=n_orders, producers=producers, concurrency=concurrency,
                               n_faults=kills, fault=kill_and_restart, account=account,
                               executor_extra=SHORT_LEASE, slow_broker=slow_broker, acl=acl,
                               hostile_attacks=hostile_attacks, supervise=bool(hostile_attacks))
        finally:
            if server is not redis_server:
                server.stop()
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_no_duplicate_or_late()
    names = INVARIANTS + (SLOW_BROKER_INVARIANTS if slow_broker else ()) + (HOSTILE_INVARIANTS if hostile_attacks
                                                                            else ())
    total.assert_clean(*names)
    assert total.counts.get("faults", 0) >= 1
    if hostile_attacks:  # every kind of attack reached its own stream and was refused on the others'
        for kind in HOSTILE_KINDS:
            assert total.counts.get(f"hostile_{kind}", 0) >= 1, total.line()
            assert total.counts.get(f"hostile_{kind}_foreign_refused", 0) >= 2, total.line()
        assert total.counts.get("producer_users_checked", 0) == runs * producers, total.line()


async def test_sigkill_quick(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=1, n_orders=200, kills=3, producers=3,
               concurrency=6)


@pytest.mark.slow
async def test_sigkill_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 5, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), kills=env_int("XTQ_FAULT_KILLS", 6),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6), concurrency=8)


@pytest.mark.slow
async def test_sigkill_slow_broker_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 3, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), kills=env_int("XTQ_FAULT_KILLS", 6),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6), concurrency=8, slow_broker=True,
               title="sigkill-slow-broker")


@pytest.mark.slow
async def test_sigkill_hostile_strategy_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 3, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), kills=env_int("XTQ_FAULT_KILLS", 6),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6), concurrency=8,
               hostile_attacks=env_int("XTQ_FAULT_ATTACKS", 12), title="sigkill-hostile")

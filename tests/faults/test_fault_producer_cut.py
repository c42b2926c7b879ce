"""2. The producer's connection is cut in the middle of sending (a TCP proxy between the producers and Redis cuts
the connection right after forwarding an XADD, so the entry IS on the stream but the client never hears so, or
before forwarding it). The library re-sends the same entry (same command id and client order id, ttl reduced).

Proves: the re-sent entries (resent_entries > 0) never make a second order (duplicates=0 at the broker), each entry
gets exactly one reply and the replies of one client order id agree, no order after its deadline, every call ends
with a typed outcome consistent with the broker, pending drains. Executor SIGKILLs are mixed in.
"""

from __future__ import annotations

import random
import secrets

import pytest

from harness import SHORT_LEASE, CuttingProxy, Report, env_int, iterations, run_scenario
from test_fault_kill import kill_and_restart

CHECKS = ("duplicate_at_broker", "placed_after_deadline", "entry_without_reply", "extra_replies",
          "reply_without_entry", "replies_disagree", "ack_not_at_broker", "refused_but_placed", "rejected_but_live",
          "outcome_wrong", "outcome_unresolved", "placed_never_answered", "pending_left", "calls_not_ended",
          "untyped_client_error")


async def _run(tmp_path, redis_server, seed, record_property, *, runs, n_orders, kills, producers):
    total = Report("producer-cut", seed)
    for i in range(runs):
        rng = random.Random(seed * 1000 + i)
        report = Report(f"producer-cut#{i}", seed)
        proxy = await CuttingProxy(redis_server.port, random.Random(rng.random()), p_after=0.12,
                                   p_before=0.04).start()
        try:
            await run_scenario(workdir=tmp_path / f"run{i}", server=redis_server, rng=rng, report=report,
                               n_orders=n_orders, producers=producers, concurrency=6, n_faults=kills,
                               fault=kill_and_restart, account=f"P{secrets.token_hex(4)}",
                               producer_url=proxy.url, executor_extra=SHORT_LEASE)
        finally:
            await proxy.close()
        report.add("connections_cut_after_xadd", proxy.cut_after)
        report.add("connections_cut_before_xadd", proxy.cut_before)
        report.emit()
        total.merge(report)
    total.emit(record_property)
    total.assert_clean(*CHECKS)
    total.assert_no_duplicate_or_late()
    assert total.counts.get("connections_cut_after_xadd", 0) >= 1, total.line()
    assert total.counts.get("resent_entries", 0) >= 1, total.line()


async def test_producer_connection_cut_quick(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=1, n_orders=200, kills=1, producers=3)


@pytest.mark.slow
async def test_producer_connection_cut_many(tmp_path, redis_server, seed, record_property):
    await _run(tmp_path, redis_server, seed, record_property, runs=iterations(1, 3, True),
               n_orders=env_int("XTQ_FAULT_ORDERS", 1000), kills=env_int("XTQ_FAULT_KILLS", 3),
               producers=env_int("XTQ_FAULT_PRODUCERS", 6))

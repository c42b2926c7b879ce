"""Events: per-account seq 1..n without holes, client order id on every order event, the durable spool."""

from __future__ import annotations

import socket

import redis.asyncio as aioredis
from fakes import PUSH_FIRST, FakeBroker, order, wait_event
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from executor.events import EventPublisher
from producer_lib import contract as c


async def test_events_have_seq_without_holes_and_carry_coid(make_executor, client):
    broker = FakeBroker(script={"o2": PUSH_FIRST})
    ex = make_executor(broker)
    await client.send(order("o1"))
    await client.send(order("o2"))
    await ex.run_until_idle()
    await client.send(c.CancelOrder(client_order_id="o1"))
    await ex.run_until_idle()
    await client.replies(3)
    events = await client.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events[:2]] == ["executor_started", "broker_connected"]
    order_events = [e for e in events if e.type in ("order_responded", "order_updated", "cancel_responded")]
    assert len(order_events) == 6  # 2 per order, 2 for the cancel
    for e in order_events:
        assert e.client_order_id in ("o1", "o2") and e.order_id in (1001, 1002)
    cancel = next(e for e in events if e.type == "cancel_responded")
    assert cancel.client_order_id == "o1"  # CancelResponded carries no remark: filled from the order id map
    responded = [e.data for e in events if e.type == "order_responded"]
    assert {d.client_order_id for d in responded} == {"o1", "o2"}
    assert ex.publisher.last_seq == events[-1].seq


async def test_seq_resumes_after_restart(make_executor, client, account, r):
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    await ex.stop()
    ex2 = make_executor(FakeBroker())
    await ex2.run_until_idle()
    await ex2.stop()
    events = await client.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == ["executor_started", "broker_connected", "executor_stopped"] * 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ev(i: int) -> c.Event:
    return c.AccountStatusChanged(status=i, status_name=f"s{i}")


async def test_spool_while_redis_unreachable_then_publish_in_order(r, account, tmp_path):
    keys = c.Keys(account)
    dead = aioredis.Redis(port=_closed_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.2)
    pub = EventPublisher(r, keys, tmp_path / "spool.sqlite3", retry_max_s=0.05)
    await pub.start()
    for i in range(3):
        pub.publish(_ev(i))
    assert await pub.flush(5)
    pub.redis = dead  # Redis gone for the publisher
    for i in range(3, 10):
        pub.publish(_ev(i))
    assert not await pub.flush(0.3)
    assert pub.spool.count == 7 and not pub.redis_ok  # durable, not just in memory
    pub.redis = r  # Redis back
    pub.publish(_ev(10))
    assert await pub.flush(5)
    await pub.close()
    await dead.aclose()
    events = [c.decode_event(sid, f) for sid, f in await r.xrange(keys.events)]
    assert [e.seq for e in events] == list(range(1, 12))
    assert [e.data.status for e in events] == list(range(11))


async def test_spool_survives_restart_and_skips_what_reached_the_stream(r, account, tmp_path):
    keys = c.Keys(account)
    dead = aioredis.Redis(port=_closed_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.2)
    pub = EventPublisher(dead, keys, tmp_path / "spool.sqlite3", retry_max_s=0.05)
    await pub.start()  # Redis down from the start: seqs are assigned once the stream can be read
    for i in range(4):
        pub.publish(_ev(i))
    assert not await pub.flush(0.3)
    await pub.close(timeout_s=0.1)
    await dead.aclose()
    # Meanwhile another publisher wrote seq 1..2 (as if a batch had reached Redis before its answer was lost).
    for seq in (1, 2):
        await r.xadd(keys.events, c.encode_event(_ev(100 + seq), account=account, seq=seq))
    pub2 = EventPublisher(r, keys, tmp_path / "spool.sqlite3")
    await pub2.start()
    assert await pub2.flush(5)
    pub2.publish(_ev(99))
    assert await pub2.flush(5)
    await pub2.close()
    events = [c.decode_event(sid, f) for sid, f in await r.xrange(keys.events)]
    assert [e.seq for e in events] == list(range(1, 8))
    assert [e.data.status for e in events] == [101, 102, 0, 1, 2, 3, 99]


async def test_executor_events_spooled_when_publisher_loses_redis(make_executor, client, r):
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    dead = aioredis.Redis(port=_closed_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.2)
    ex.publisher.redis = dead
    ex.publisher.retry_max_s = 0.05
    for i in range(5):
        ex.on_broker_event(_ev(i))
    assert not await ex.publisher.flush(0.3)
    ex.publisher.redis = r
    assert await ex.publisher.flush(5)
    await dead.aclose()
    events = await client.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.data.status for e in events if e.type == "account_status"] == list(range(5))


async def test_a_published_order_status_never_moves_backwards(make_executor, client, r, account):
    """Issue #10 (found by the slow-broker fault run): MiniQMT may push an older state after a newer one (a partial
    fill after "filled", "reported" after "part_succ"). The event stream shows each order's states only forward."""
    broker = FakeBroker()
    ex = make_executor(broker)
    cmd = order("fwd")
    await client.send(cmd)
    await ex.run_until_idle()
    (reply,) = await client.replies(1)
    oid = reply.result.order_id
    S = c.OrderStatus
    broker.emit(c.OrderUpdated(order=broker.report(oid, cmd, S.PART_SUCC, 55, traded=50)))
    broker.emit(c.OrderUpdated(order=broker.report(oid, cmd, S.SUCCEEDED, 56, traded=100)))
    broker.emit(c.OrderUpdated(order=broker.report(oid, cmd, S.PART_SUCC, 55, traded=50)))  # stale
    broker.emit(c.OrderUpdated(order=broker.report(oid, cmd, S.REPORTED, 50)))  # stale
    broker.emit(c.AccountStatusChanged(status=0, status_name="end"))  # a marker published after them
    await wait_event(r, account, lambda e: e.type == "account_status")
    updates = [e.data.order for e in await client.events()
               if e.type == "order_updated" and e.order_id == oid]
    assert [(u.status, u.traded_volume) for u in updates][-2:] == [(S.PART_SUCC, 50), (S.SUCCEEDED, 100)]
    volumes = [u.traded_volume for u in updates]
    assert volumes == sorted(volumes)
    assert updates[-1].status is S.SUCCEEDED
    await ex.stop()

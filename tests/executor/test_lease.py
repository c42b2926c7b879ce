"""One active executor per account: a standby takes over a lapsed lease and resolves its predecessor's pending
entries; a leader that lost its lease trades, answers and acknowledges nothing more (fenced by Redis and by the
broker-thread guard)."""

from __future__ import annotations

import asyncio

from fakes import FakeBroker, order

from producer_lib import contract as c


async def _until(predicate, timeout_s: float = 5.0, step_s: float = 0.02):
    """Poll real state (bounded) until ``predicate()`` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (result := await predicate()):
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(step_s)
    return result


async def _leave_pending(r, keys, consumer):
    try:
        await r.xgroup_create(keys.commands, c.COMMAND_GROUP, id="0", mkstream=True)
    except Exception:
        pass
    await r.xreadgroup(c.COMMAND_GROUP, consumer, {keys.commands: ">"})


async def test_standby_waits_then_takes_over_and_resolves_the_old_leaders_entries(make_executor, client, r):
    await r.set(client.keys.lease, "1:old-leader", px=60_000)  # a live leader
    await client.send(order("held-by-old"))
    await _leave_pending(r, client.keys, consumer="old-leader")  # it read the command, then died
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=1_000, lease_renew_ms=50)
    serving = asyncio.create_task(ex.run())
    await asyncio.sleep(0.3)  # several acquisition attempts while the old lease is alive
    assert broker.placed == [] and not ex.lease.valid()
    await r.delete(client.keys.lease)  # the old leader's lease lapses
    (reply,) = await client.replies(1)
    assert reply.ok and reply.result.client_order_id == "held-by-old"
    assert [p.client_order_id for p in broker.placed] == ["held-by-old"]
    assert ex.lease.valid() and (await r.get(client.keys.lease)).decode() == f"{ex.lease.token}:ex-test"
    ex.request_stop()
    await serving
    assert await r.get(client.keys.lease) is None  # released on a clean stop: a standby need not wait


async def test_leader_whose_lease_was_taken_writes_no_reply_and_no_ack(make_executor, client, r):
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=60_000, lease_renew_ms=60_000)
    await ex.start()
    await r.set(client.keys.lease, "999:successor", px=60_000)  # taken over behind its back
    await client.send(c.Ping())
    await ex._poll_once(block_ms=200)
    await _until(lambda: _true(ex.fenced))
    await ex.stop()
    assert await r.xlen(client.reply_to) == 0  # Redis refused the stale leader's reply ...
    pending = await r.xpending(client.keys.commands, c.COMMAND_GROUP)
    assert pending["pending"] == 1  # ... and its ack: the entry waits for the successor


async def test_paused_leader_does_not_reach_the_broker(make_executor, client, r):
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=60_000, lease_renew_ms=60_000)
    await ex.start()
    ex.lease._valid_until_mono = 0.0  # as after a SIGSTOP longer than the lease: the local deadline passed ...
    assert not await broker_guard_allows(broker)  # ... so the broker thread refuses at once, before Redis is asked
    await r.set(client.keys.lease, "999:successor", px=60_000)  # ... and a standby took the lapsed lease
    await client.send(order("after-pause"))
    assert await ex._poll_once(block_ms=200) == 0
    assert ex.fenced and broker.placed == []
    assert not await broker_guard_allows(broker)
    await ex.stop()
    assert (await r.get(client.keys.lease)) == b"999:successor"  # the successor's lease is left alone


async def test_paused_leader_whose_lease_nobody_took_confirms_it_and_serves(make_executor, client, r):
    """Issue #10, 11b: past its local deadline (a pause, or Redis unreachable) a leader does not know whether a
    standby took over; Redis tells it on the next round trip. Nobody did: the lease is confirmed, same token."""
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=60_000, lease_renew_ms=60_000)
    await ex.start()
    token = ex.lease.token
    ex.lease._valid_until_mono = 0.0
    await r.delete(client.keys.lease)  # it even lapsed in Redis meanwhile; no standby tried to acquire it
    await client.send(order("after-pause"))
    assert await ex._poll_once(block_ms=500) == 1
    (reply,) = await client.replies(1)
    assert reply.ok, reply
    assert [p.client_order_id for p in broker.placed] == ["after-pause"]
    assert not ex.fenced and ex.lease.valid() and ex.lease.token == token
    assert (await r.get(client.keys.lease)).decode() == f"{token}:ex-test"


async def test_lapsed_lease_after_a_standby_tried_to_take_it_is_lost(make_executor, client, r):
    """The key lapsed and a standby bumped the token counter (it tried to acquire, even if it then lost the
    race): this leader may have been superseded, so it steps down and places nothing."""
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=60_000, lease_renew_ms=60_000)
    await ex.start()
    ex.lease._valid_until_mono = 0.0
    await r.delete(client.keys.lease)
    await r.incr(ex.lease.token_key)  # a standby's try_acquire
    await client.send(order("after-lapse"))
    assert await ex._poll_once(block_ms=200) == 0
    assert ex.fenced and broker.placed == []
    await ex.stop()
    assert await r.get(client.keys.lease) is None  # it did not re-establish its lapsed lease


async def _true(value):
    return value


async def broker_guard_allows(broker) -> bool:
    return broker.guard is None or broker.guard()


async def test_sole_leader_survives_redis_losing_its_data(make_executor, client, r):
    """A Redis restart without persistence deletes the lease key: nobody took it, so the still-valid leader
    re-establishes it (on renewal, or when settling commands) instead of stepping down."""
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=5_000, lease_renew_ms=50)
    serving = asyncio.create_task(ex.run())
    await _until(lambda: _true(ex.lease.valid()))
    await r.delete(client.keys.lease)  # as after a restart without persistence
    await client.send(c.Ping())
    (reply,) = await client.replies(1)
    assert reply.ok and not ex.fenced
    await _until(lambda: r.get(client.keys.lease))
    assert (await r.get(client.keys.lease)).decode() == ex.lease.value
    ex.request_stop()
    await serving
    assert not ex.fenced


async def test_order_in_flight_when_the_lease_lapses_is_answered_once_it_is_confirmed(make_executor, client, r):
    """Issue #10, 11b: the broker answers an order while the leader's lease is past its local deadline (an outage
    or a pause). The answer is held, not thrown away with a step-down: once Redis confirms nobody took over, the
    caller gets the ack and the order's events are published."""
    from fakes import NO_RESPONSE

    broker = FakeBroker(script={"in-flight": NO_RESPONSE})
    ex = make_executor(broker, lease_ms=60_000, lease_renew_ms=60_000)
    serving = asyncio.create_task(ex.run())
    await _until(lambda: _true(ex.lease.valid()))
    await client.send(order("in-flight"))
    await _until(lambda: _true(len(broker.placed) == 1))
    ex.lease._valid_until_mono = 0.0  # the lease lapses by the local clock while the order is at the broker
    cmd = broker.placed[0]
    broker.emit(c.OrderResponded(trader=broker.connects, order_id=7001, seq=1))
    broker.emit(c.OrderUpdated(order=broker.report(7001, cmd, c.OrderStatus.REPORTED, 50)))
    (reply,) = await client.replies(1)
    assert reply.ok and reply.result.order_id == 7001
    assert not ex.fenced and ex.lease.valid()
    assert [p.client_order_id for p in broker.placed] == ["in-flight"]
    await _until(lambda: _has_event(client, 7001))
    ex.request_stop()
    await serving
    assert not ex.fenced


async def _has_event(client, order_id: int) -> bool:
    return any(e.type == "order_updated" and e.order_id == order_id for e in await client.events())

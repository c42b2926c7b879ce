"""The loop survives what production throws at it: a vanished stream/group, broker disconnects, silent rejections,
Redis connection cuts."""

from __future__ import annotations

import json

from fakes import FakeBroker, order, wait_event

from producer_lib import contract as c


async def test_nogroup_after_stream_deleted_group_recreated(make_executor, client, r):
    ex = make_executor(FakeBroker())
    await client.send(c.Ping())
    await ex.run_until_idle()
    await client.replies(1)
    await r.delete(client.keys.commands)  # e.g. a Redis restart without persistence
    cid = await client.send(c.Ping())  # recreates the stream, without the group
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.command_id == cid and rep.ok
    groups = await r.xinfo_groups(client.keys.commands)
    assert [g["name"] for g in groups] == [c.COMMAND_GROUP.encode()]


async def test_broker_disconnect_reconnect_events(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    broker.connect_failures = 1  # the first reconnect attempt fails
    broker.drop()
    await wait_event(r, account, lambda e: e.type == "broker_disconnected")
    ev = await wait_event(r, account, lambda e: e.type == "broker_connected" and e.data.reconnect)
    assert ev.data.session == 100
    assert broker.connects == 2
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok


async def test_probe_failure_marks_down_then_reconnects(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    broker.probe_ok = False
    ev = await wait_event(r, account, lambda e: e.type == "broker_disconnected")
    assert ev.data.reason == "probe failed"
    await client.send(c.QueryAsset())
    broker.probe_ok = True
    await wait_event(r, account, lambda e: e.type == "broker_connected" and e.data.reconnect)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok or rep.error.code is c.ErrorCode.BROKER_UNAVAILABLE  # depending on which came first
    events = await client.events()
    assert sum(e.type == "broker_disconnected" for e in events) == 1


async def test_silent_rejection_found_by_reconciliation(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    oid = rep.result.order_id
    # The counter turned it into a 废单 without any callback (seen in the field).
    broker.orders[oid] = broker.orders[oid].model_copy(update={"status": c.OrderStatus.JUNK, "status_code": 57,
                                                               "status_msg": "no funds"})
    ev = await wait_event(r, account, lambda e: e.type == "order_rejected")
    assert ev.data.detected_by == "reconciliation" and ev.client_order_id == "o1" and ev.order_id == oid
    assert ev.data.error_msg == "no funds"
    assert ex.journal.get("o1").rejection_seen


async def test_heartbeat(make_executor, client, r, account):
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    raw = await r.get(client.keys.heartbeat)
    beat = json.loads(raw)
    assert beat["executor_id"] == "ex-test" and beat["connected"] is True and beat["broker"] == "fake"
    assert 0 < await r.ttl(client.keys.heartbeat) <= c.HEARTBEAT_TTL_S


async def test_redis_connections_killed_loop_keeps_serving(make_executor, client, r):
    ex = make_executor(FakeBroker())
    await client.send(c.Ping())
    await ex.run_until_idle()
    await client.replies(1)
    # Cut the executor's connections only: the Redis is shared with other tests and processes.
    ours = [i["id"] for i in await r.client_list() if i.get("name", "").startswith(f"xtq-executor:{client.keys.account}:")]
    assert ours, "the executor's connections are named xtq-executor:ACCOUNT:ID"
    for client_id in ours:
        await r.client_kill_filter(_id=client_id)
    cid = await client.send(c.Ping())
    for _ in range(5):  # a cut may cost a poll or two (back-off), never the command
        await ex.run_until_idle()
        if await r.xlen(client.reply_to) >= 2:
            break
    (rep,) = await client.replies(1)
    assert rep.command_id == cid and rep.ok


async def test_a_retried_settlement_writes_no_second_reply(r, account):
    """Redis ran the finish script but its answer was lost: the executor retries the same batch. Entries are acked
    first and answered only if the ack took, so the retry writes nothing (one command, one reply)."""
    from executor.transport import CommandTransport, Finish

    keys = c.Keys(account)
    transport = CommandTransport(r, keys, "consumer-1")
    await transport.ensure_group()
    sid = (await r.xadd(keys.commands, {"v": "1"})).decode()
    await transport.read_new(10, None)
    reply_to = keys.replies("cli")
    item = Finish(stream_id=sid, reply_to=reply_to,
                  reply=c.encode_reply(account=account, command_id="cmd-1", command_type="ping",
                                       result=c.OrderAck(order_id=1, client_order_id="x", status="reported")))
    assert await transport.finish([item]) == []
    assert await transport.finish([item]) == []  # the retry
    assert await r.xlen(reply_to) == 1
    assert (await r.xpending(keys.commands, c.COMMAND_GROUP))["pending"] == 0


async def test_settlement_of_an_entry_lost_with_redis_data_still_replies(r, account):
    from executor.transport import CommandTransport, Finish

    keys = c.Keys(account)
    transport = CommandTransport(r, keys, "consumer-1")
    await transport.ensure_group()
    sid = (await r.xadd(keys.commands, {"v": "1"})).decode()
    await transport.read_new(10, None)
    await r.delete(keys.commands)  # Redis restarted without persistence: the stream and group are gone
    reply_to = keys.replies("cli")
    item = Finish(stream_id=sid, reply_to=reply_to,
                  reply=c.encode_reply(account=account, command_id="cmd-1", command_type="ping",
                                       result=c.OrderAck(order_id=1, client_order_id="x", status="reported")))
    assert await transport.finish([item]) == []
    assert await r.xlen(reply_to) == 1


async def test_command_stream_trimmed_but_never_past_a_pending_or_undelivered_entry(r, account):
    from executor.transport import CommandTransport

    keys = c.Keys(account)
    transport = CommandTransport(r, keys, "consumer-1")
    await transport.ensure_group()
    await transport.sync_clock()
    old = [(await r.xadd(keys.commands, {"n": str(i)}, id=f"{1000 + i}-0")).decode() for i in range(4)]
    entries, _ = await transport.read_new(3, None)  # delivers 1000..1002; 1003 stays undelivered
    await r.xack(keys.commands, c.COMMAND_GROUP, entries[0].stream_id)  # 1000 answered; 1001, 1002 pending
    await transport.trim_commands(keep_ms=0, approximate=False)
    left = [sid.decode() for sid, _ in await r.xrange(keys.commands)]
    assert left == old[1:]  # only the answered entry went
    await r.xack(keys.commands, c.COMMAND_GROUP, old[1], old[2])
    await transport.trim_commands(keep_ms=0, approximate=False)
    assert [sid.decode() for sid, _ in await r.xrange(keys.commands)] == [old[2], old[3]]  # 1003 never delivered

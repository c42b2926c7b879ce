"""Every command type gets its typed reply; bad input gets a typed error + dead letter and the loop goes on."""

from __future__ import annotations

import pytest
from fakes import JUNK, PUSH_FIRST, REJECT, SILENT, UNAVAILABLE, FakeBroker, order

from producer_lib import contract as c

E = c.ErrorCode


async def test_place_order_ack_carries_first_status(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)
    cmd = order("o1")
    cid = await client.send(cmd)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok and rep.command_id == cid and rep.client_order_id == "o1"
    assert isinstance(rep.result, c.OrderAck)
    assert rep.result.order_id == 1001 and rep.result.status is c.OrderStatus.REPORTED
    assert rep.result.duplicate is False
    assert broker.placed == [cmd]
    assert await client.r.xpending(client.keys.commands, c.COMMAND_GROUP) == \
        {"pending": 0, "min": None, "max": None, "consumers": []}


@pytest.mark.parametrize("behaviour, code, status", [
    (PUSH_FIRST, None, c.OrderStatus.REPORTED),  # the status push beat the response
    (SILENT, None, c.OrderStatus.UNREPORTED),  # no status within ack_wait_ms
    (REJECT, E.BROKER_REJECTED, None),  # order_id -1
    (JUNK, E.BROKER_REJECTED, None),  # first status 57
    (UNAVAILABLE, E.BROKER_UNAVAILABLE, None),
])
async def test_place_order_outcomes(make_executor, client, behaviour, code, status):
    broker = FakeBroker(script={"o1": behaviour})
    ex = make_executor(broker)
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    if code is None:
        assert rep.ok and rep.result.status is status and rep.result.order_id > 0
    else:
        assert not rep.ok and rep.error.code is code
    if behaviour == REJECT:
        assert "insufficient funds" in rep.error.broker_message
    if behaviour == JUNK:
        assert rep.error.order_id == 1001 and rep.error.broker_message == "price out of limits"
    state = {REJECT: c.OutcomeState.REJECTED, JUNK: c.OutcomeState.REJECTED, UNAVAILABLE: c.OutcomeState.REFUSED}
    assert ex.journal.get("o1").state is state.get(behaviour, c.OutcomeState.PLACED)


async def test_queries_cancel_ping_outcome(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)
    await client.send(order("o1"))
    await ex.run_until_idle()
    await client.replies(1)
    sent = [
        (c.QueryAsset(), c.AssetReport),
        (c.QueryPositions(code="000001.SZ"), c.PositionsResult),
        (c.QueryOrders(client_order_id="o1"), c.OrdersResult),
        (c.QueryOrders(order_id=1001), c.OrdersResult),
        (c.QueryTrades(), c.TradesResult),
        (c.QueryAccountStatus(), c.AccountStatusResult),
        (c.QueryOutcome(client_order_id="o1"), c.OutcomeResult),
        (c.QueryOutcome(client_order_id="never"), c.OutcomeResult),
        (c.Ping(), c.PingResult),
        (c.CancelOrder(client_order_id="o1"), c.CancelAck),
    ]
    ids = [await client.send(cmd) for cmd, _ in sent]
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(len(sent))}
    for cid, (cmd, model) in zip(ids, sent):
        rep = reps[cid]
        assert rep.ok, (cmd, rep.error)
        assert isinstance(rep.result, model), cmd
        assert rep.command_type == cmd.TYPE
    positions = reps[ids[1]].result.positions
    assert [p.code for p in positions] == ["000001.SZ"]
    assert [o.order_id for o in reps[ids[2]].result.orders] == [1001]
    assert [o.client_order_id for o in reps[ids[3]].result.orders] == ["o1"]
    assert reps[ids[6]].result.state is c.OutcomeState.PLACED and reps[ids[6]].result.order_id == 1001
    assert reps[ids[7]].result.state is c.OutcomeState.NOT_FOUND
    ping = reps[ids[8]].result
    assert ping.broker == "fake" and ping.broker_connected and ping.executor_id == "ex-test"
    assert reps[ids[9]].result.order_id == 1001 and reps[ids[9]].result.client_order_id == "o1"
    assert broker.cancels == [dict(order_id=1001, sysid=None, market=None)]


async def test_cancel_unknown_and_refused(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)
    a = await client.send(c.CancelOrder(client_order_id="nope"))
    b = await client.send(c.CancelOrder(order_id=424242))
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(2)}
    assert reps[a].error.code is E.NOT_FOUND
    assert reps[b].error.code is E.NOT_FOUND
    # a known order that is already final: the broker refuses the cancel
    await client.send(order("o1", volume=200))
    await ex.run_until_idle()
    await client.replies(1)
    broker.orders[1001] = broker.orders[1001].model_copy(update={"status": c.OrderStatus.SUCCEEDED})
    d = await client.send(c.CancelOrder(order_id=1001))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.command_id == d and rep.error.code is E.BROKER_REJECTED
    assert rep.error.broker_message == "order not cancelable"


async def test_expired_order_never_reaches_broker_but_late_cancel_runs(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)
    await client.send(order("o1"))
    await ex.run_until_idle()
    await client.replies(1)
    late = await client.send(order("o2"), ttl_ms=0)
    await client.r.time()  # at least one ms passes on the server clock before the executor reads it
    cancel = await client.send(c.CancelOrder(client_order_id="o1"), ttl_ms=0)
    query = await client.send(c.QueryAsset(), ttl_ms=0)
    import asyncio
    await asyncio.sleep(0.005)  # ttl 0: any server time after the entry id is past the deadline
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(3)}
    assert reps[late].error.code is E.EXPIRED and "nothing was placed" in reps[late].error.message
    assert reps[cancel].ok and isinstance(reps[cancel].result, c.CancelAck)
    assert reps[query].error.code is E.EXPIRED
    assert [p.client_order_id for p in broker.placed] == ["o1"]
    assert ex.journal.get("o2").state is c.OutcomeState.EXPIRED


async def test_duplicate_client_order_id_places_once(make_executor, client):
    broker = FakeBroker(script={"o1": SILENT})  # the first is still waiting for its status when the repeat comes
    ex = make_executor(broker)
    first = await client.send(order("o1"))
    again = await client.send(order("o1"))
    await ex.run_until_idle()
    later = await client.send(order("o1"))
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(3)}
    assert len(broker.placed) == 1
    assert reps[first].result.duplicate is False
    assert reps[again].result.duplicate is True and reps[later].result.duplicate is True
    assert {r.result.order_id for r in reps.values()} == {1001}


async def test_duplicate_of_rejection_gets_same_error(make_executor, client):
    broker = FakeBroker(script={"o1": REJECT})
    ex = make_executor(broker)
    await client.send(order("o1"))
    await ex.run_until_idle()
    await client.send(order("o1"))
    await ex.run_until_idle()
    a, b = await client.replies(2)
    assert a.error == b.error and a.error.code is E.BROKER_REJECTED
    assert len(broker.placed) == 1


async def test_conflict(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)
    await client.send(order("o1"))
    in_batch = await client.send(order("o1", volume=300))
    await ex.run_until_idle()
    after = await client.send(order("o1", price=11.0))
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(3)}
    assert reps[in_batch].error.code is E.CONFLICT and reps[after].error.code is E.CONFLICT
    assert len(broker.placed) == 1


def _raw(acc, **over):
    fields = c.encode_command(c.QueryAsset(), account=acc, command_id="bad1",
                              reply_to=c.Keys(acc).replies("tc"), ttl_ms=10_000)
    if "body" in over:  # a msgpack body is protocol 2, which the executor still reads
        fields[c.F_VERSION] = "2"
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def _v3(acc, **body):
    """A protocol 3 place_order whose b.* fields are given as they would be typed into redis-cli."""
    return _raw(acc, type="place_order", coid="x1", **{k.replace("__", "."): v for k, v in body.items()})


@pytest.mark.parametrize("name, build, code", [
    ("garbage body", lambda a: _raw(a, type="place_order", body=b"\xc1\xff\x00"), E.INVALID_REQUEST),
    ("wrong types", lambda a: _raw(a, type="place_order", coid="x1",
                                   body=c.pack({"code": 600000, "side": "buy", "volume": "many"})), E.INVALID_REQUEST),
    ("unknown command", lambda a: _raw(a, type="launch_rocket"), E.UNKNOWN_COMMAND),
    ("missing fields", lambda a: _raw(a, type="place_order", coid="x1", body=c.pack({"side": "buy"})),
     E.INVALID_REQUEST),
    ("volume -100", lambda a: _raw(a, type="place_order", coid="x1",
                                   body=c.pack({"code": "600000.SH", "side": "buy", "volume": -100, "price": 10.0})),
     E.INVALID_REQUEST),
    ("bad code", lambda a: _raw(a, type="place_order", coid="x1",
                                body=c.pack({"code": "600000", "side": "buy", "volume": 100, "price": 10.0})),
     E.INVALID_REQUEST),
    ("v3 wrong types", lambda a: _v3(a, b__code="600000.SH", b__side="buy", b__volume="many", b__price="10"),
     E.INVALID_REQUEST),
    ("v3 bare code", lambda a: _v3(a, b__code="600000", b__side="buy", b__volume="100", b__price="10"),
     E.INVALID_REQUEST),  # the wire takes only the normalized form (the library normalizes before sending)
    ("v3 lower-case side", lambda a: _v3(a, b__code="600000.SH", b__side="BUY", b__volume="100", b__price="10"),
     E.INVALID_REQUEST),
    ("v3 JSON in a command", lambda a: _v3(a, b__code="600000.SH", b__side="buy", b__volume="100",
                                           j__price="10"), E.INVALID_REQUEST),
    ("v3 nested name", lambda a: _v3(a, b__code="600000.SH", b__side="buy", b__volume="100", b__price__x="10"),
     E.INVALID_REQUEST),
    ("v3 with a msgpack body too", lambda a: {**_v3(a, b__code="600000.SH", b__side="buy", b__volume="100",
                                                    b__price="10"), "body": c.pack({})}, E.INVALID_REQUEST),
    ("v3 unknown body field", lambda a: _v3(a, b__code="600000.SH", b__side="buy", b__volume="100",
                                            b__price="10", b__leverage="10"), E.INVALID_REQUEST),
    ("bad ttl", lambda a: _raw(a, ttl_ms="soon"), E.INVALID_REQUEST),
    ("bad version", lambda a: _raw(a, v="9"), E.UNSUPPORTED_VERSION),
    ("other account in envelope", lambda a: _raw(a, account="SOMEONE"), E.INVALID_REQUEST),
])
async def test_bad_input_typed_error_dead_letter_loop_goes_on(make_executor, client, account, name, build, code):
    broker = FakeBroker()
    ex = make_executor(broker)
    bad_id = await client.send_raw(build(account))
    good = await client.send(c.Ping())
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(2)}
    assert reps["bad1"].error.code is code, reps["bad1"].error
    assert reps[good].ok
    (dead,) = await client.dead()
    assert dead["src_id"] == bad_id.encode() and dead["reason"] == code.value.encode()
    assert dead["orig.type"] and dead["orig.id"] == b"bad1"
    assert broker.placed == []
    assert (await client.r.xpending(client.keys.commands, c.COMMAND_GROUP))["pending"] == 0


async def test_undecodable_routing_and_foreign_reply_to(make_executor, client, account, r):
    ex = make_executor()
    other = c.Keys("OTHER" + account).replies("tc")
    await client.send(c.Ping(), reply_to=other)  # valid command, reply_to of another account: not executed
    await client.send(order("o1"), reply_to="some:random:key")
    await client.send_raw({b"id": b"\xff\xfe", b"type": b"ping"})  # not UTF-8: nothing readable
    good = await client.send(c.Ping())
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.command_id == good and rep.ok
    assert not await r.exists(other) and not await r.exists("some:random:key")
    dead = await client.dead()
    assert [d["reason"] for d in dead] == [b"invalid_request"] * 3
    assert all(d["replied"] == b"0" for d in dead)
    assert ex.broker.placed == []


async def test_internal_error_in_one_command_does_not_stop_the_loop(make_executor, client, monkeypatch):
    broker = FakeBroker()
    ex = make_executor(broker)

    async def boom():
        raise RuntimeError("adapter bug")
    monkeypatch.setattr(broker, "query_trades", boom)
    bad = await client.send(c.QueryTrades())
    good = await client.send(c.Ping())
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(2)}
    assert reps[bad].error.code is E.INTERNAL
    assert reps[good].ok
    (dead,) = await client.dead()
    assert dead["reason"] == b"internal"


async def test_broker_down_orders_and_queries_unavailable(make_executor, client):
    broker = FakeBroker(connect_failures=10_000)
    ex = make_executor(broker)
    a = await client.send(order("o1"))
    b = await client.send(c.QueryAsset())
    p = await client.send(c.Ping())
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(3)}
    assert reps[a].error.code is E.BROKER_UNAVAILABLE and reps[b].error.code is E.BROKER_UNAVAILABLE
    assert reps[p].result.broker_connected is False
    assert broker.placed == []


async def test_readable_v3_command_as_typed_in_redis_cli_is_placed(make_executor, client):
    """Protocol 3: a place_order written field by field (what an operator could XADD with redis-cli) is placed."""
    broker = FakeBroker()
    ex = make_executor(broker)
    await client.send_raw(_v3(client.keys.account, b__code="600000.SH", b__side="buy", b__volume="100",
                              b__price="10.5"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok and rep.result.order_id > 0
    (placed,) = broker.placed
    assert (placed.code, placed.side, placed.volume, placed.price) == ("600000.SH", c.Side.BUY, 100, 10.5)


async def test_a_protocol_2_command_gets_a_protocol_2_reply(make_executor, client, r):
    """A client of the previous protocol (msgpack body) is still served, and answered in its own form."""
    broker = FakeBroker()
    ex = make_executor(broker)
    fields = _raw(client.keys.account, type="place_order", coid="old1",
                  body=c.pack({"code": "600000.SH", "side": "buy", "volume": 100, "price": 10.0}))
    await client.send_raw(fields)
    await ex.run_until_idle()
    ((sid, raw),) = await r.xrange(client.keys.replies("tc"))
    assert raw[b"v"] == b"2" and b"body" in raw and not any(k.startswith(b"b.") for k in raw)
    assert c.unpack(raw[b"body"])["client_order_id"] == "old1"
    rep = c.decode_reply(sid, raw)
    assert rep.ok and rep.result.client_order_id == "old1" and rep.result.order_id > 0

"""One command stream per strategy (contract.Keys.command_stream): the executor discovers them, reads them in one
XREADGROUP, and keeps the group, recovery, settlement, NOGROUP repair and trimming per stream; identity and the
deadline come from the stream and the server clock, never from what an entry says about itself."""

from __future__ import annotations

import asyncio

from fakes import Client, FakeBroker, order

from producer_lib import contract as c


async def _server_ms(r) -> int:
    secs, usecs = await r.time()
    return secs * 1000 + usecs // 1000


async def test_a_new_strategy_is_served_without_a_restart(make_executor, r, account):
    ex = make_executor(FakeBroker(), stream_discovery_ms=100)
    task = asyncio.create_task(ex.run())
    try:
        anon = Client(r, account)
        await anon.send(c.Ping())
        assert (await anon.replies(1))[0].ok  # the executor runs; no strategy stream exists yet
        s1 = Client(r, account, strategy="s1")
        cid = await s1.send(c.Ping())  # creates xtq:{A}:cmd:s1 while the executor runs
        (rep,) = await s1.replies(1)
        assert rep.command_id == cid and rep.ok
        assert c.Keys(account).command_stream("s1") in ex.transport.streams
    finally:
        ex.request_stop()
        await task


async def test_same_ids_on_two_streams_are_each_answered_and_acked_on_their_own(make_executor, r, account):
    keys = c.Keys(account)
    clients = [Client(r, account), Client(r, account, strategy="s1"), Client(r, account, strategy="s2")]
    sid = f"{await _server_ms(r)}-0"
    cids = []
    for cl in clients:  # one entry id, three streams
        cid = c.new_command_id()
        await r.xadd(cl.stream, c.encode_command(c.Ping(), account=account, command_id=cid, reply_to=cl.reply_to,
                                                 ttl_ms=30_000), id=sid)
        cids.append(cid)
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    for cl, cid in zip(clients, cids):
        (rep,) = await cl.replies(1)
        assert rep.command_id == cid and rep.ok
        assert (await r.xpending(cl.stream, c.COMMAND_GROUP))["pending"] == 0
    assert set(ex.transport.streams) == {keys.commands, keys.command_stream("s1"), keys.command_stream("s2")}


async def test_pending_entries_of_a_strategy_stream_are_recovered(make_executor, r, account):
    s1 = Client(r, account, strategy="s1")
    await r.xgroup_create(s1.stream, c.COMMAND_GROUP, id="0", mkstream=True)
    cid = await s1.send(order("rec-1"))
    await r.xreadgroup(c.COMMAND_GROUP, "dead-consumer", {s1.stream: ">"})  # read, never answered
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await s1.replies(1)
    assert rep.command_id == cid and rep.ok and [o.client_order_id for o in broker.placed] == ["rec-1"]
    assert (await r.xpending(s1.stream, c.COMMAND_GROUP))["pending"] == 0


async def test_nogroup_on_a_strategy_stream_is_repaired(make_executor, r, account):
    s1 = Client(r, account, strategy="s1")
    await s1.send(c.Ping())
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    await s1.replies(1)
    await r.xgroup_destroy(s1.stream, c.COMMAND_GROUP)  # the group vanished from one stream only
    cid = await s1.send(c.Ping())
    await ex.run_until_idle()  # the group is re-created at 0: the first ping is answered again (harmless)
    rep = await s1.reply_for(cid)
    assert rep is not None and rep.ok


async def test_discovery_is_bounded_and_ignores_other_names(make_executor, r, account):
    keys = c.Keys(account)
    for name in ("a", "b", "c"):
        await Client(r, account, strategy=name).send(c.Ping())
    await r.xadd(f"{keys.commands}:bad.name", {"v": "x"})  # no strategy name: never a command stream
    ex = make_executor(FakeBroker(), max_command_streams=2)  # the account's own stream + one strategy
    await ex.run_until_idle()
    assert set(ex.transport.streams) == {keys.commands, keys.command_stream("a")}
    assert (await r.xpending(keys.command_stream("a"), c.COMMAND_GROUP))["pending"] == 0
    for name in ("b", "c"):  # not served: no group created on them, nothing read
        assert await r.xinfo_groups(keys.command_stream(name)) == []


async def test_trimming_works_per_stream(make_executor, r, account):
    clients = [Client(r, account), Client(r, account, strategy="s1")]
    for cl in clients:
        await cl.send(c.Ping())
        await cl.send(c.Ping())
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    for cl in clients:
        await cl.replies(2)
    trimmed = await ex.transport.trim_commands(keep_ms=0, approximate=False)
    assert set(trimmed) == {cl.stream for cl in clients}
    for cl in clients:  # each down to its last delivered entry (XTRIM MINID keeps the id it is given)
        assert await r.xlen(cl.stream) == 1


async def test_identity_binds_to_the_stream(make_executor, r, account):
    broker = FakeBroker()
    s1 = Client(r, account, strategy="s1")
    named_other = await s1.send(order("as-s2", strategy="s2"))  # s1's stream, s2's name
    unnamed = await s1.send(order("unnamed"))  # no name: it is s1's
    own = await s1.send(order("own", strategy="s1"))
    other_reply = c.Keys(account).replies("s2.victim")
    await s1.send(order("into-s2"), reply_to=other_reply)  # answers into s2's reply stream
    ex = make_executor(broker)
    await ex.run_until_idle()
    got = {rep.command_id: rep for rep in await s1.replies(3)}
    assert got[named_other].error.code is c.ErrorCode.UNAUTHORIZED
    assert got[unnamed].ok and got[own].ok
    assert await r.xlen(other_reply) == 0
    assert sorted((o.client_order_id, o.strategy) for o in broker.placed) == [("own", "s1"), ("unnamed", "s1")]
    dead = {f[b"orig.coid"].decode(): f[b"reason"].decode() for _, f in await r.xrange(c.Keys(account).dead_letter)}
    assert dead == {"as-s2": "unauthorized", "into-s2": "unauthorized"}


async def test_entry_id_ahead_of_the_server_clock_is_refused(make_executor, r, account):
    broker = FakeBroker()
    cl = Client(r, account)
    ahead = c.encode_command(order("ahead"), account=account, command_id="ahead-1", reply_to=cl.reply_to,
                             ttl_ms=1_000)
    await r.xadd(cl.stream, ahead, id=f"{await _server_ms(r) + 60_000}-0")
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await cl.replies(1)
    assert rep.error.code is c.ErrorCode.ID_AHEAD and broker.placed == []


async def test_a_strategy_cannot_cancel_another_strategys_order(make_executor, r, account):
    """Ownership (docs/security.md, threat model): cancels bind to the stream's owner like placing does; another
    strategy's order is answered as one that does not exist. tests/executor/test_owners.py has the rest."""
    broker = FakeBroker()
    s1, s2 = Client(r, account, strategy="s1"), Client(r, account, strategy="s2")
    await s1.send(order("s1-order"))
    await r.xgroup_create(s2.stream, c.COMMAND_GROUP, id="0", mkstream=True)  # s2's stream exists at start
    ex = make_executor(broker)
    await ex.run_until_idle()
    assert (await s1.replies(1))[0].ok
    cid = await s2.send(c.CancelOrder(client_order_id="s1-order"))
    await ex.run_until_idle()
    rep = await s2.reply_for(cid)
    assert rep.error.code is c.ErrorCode.NOT_FOUND and not broker.cancels


async def test_one_read_of_many_streams_stays_within_max_in_flight(make_executor, r, account):
    """XREADGROUP's COUNT is per stream: with several streams one read must still not exceed max_in_flight."""
    clients = [Client(r, account, strategy=f"s{i}") for i in range(3)]
    for cl in clients:
        for _ in range(5):
            await cl.send(c.Ping())
    ex = make_executor(FakeBroker(), max_in_flight=4)
    await ex.start()
    assert 1 <= await ex._poll_once(block_ms=None) <= 4
    await ex.run_until_idle()
    for cl in clients:  # and everything is answered in the end
        assert len(await cl.replies(5)) == 5

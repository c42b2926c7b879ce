"""Crash recovery: entries left pending by a consumer that died are resolved before anything new is served."""

from __future__ import annotations

import asyncio

from fakes import FakeBroker, order

from executor.broker.base import BrokerTimeoutError
from executor.journal import Journal, Record
from producer_lib import contract as c

E = c.ErrorCode
S = c.OutcomeState


async def _leave_pending(r, keys, consumer="dead-1") -> list[str]:
    """A consumer reads everything on the stream and dies before acking."""
    try:
        await r.xgroup_create(keys.commands, c.COMMAND_GROUP, id="0", mkstream=True)
    except Exception:
        pass
    resp = await r.xreadgroup(c.COMMAND_GROUP, consumer, {keys.commands: ">"})
    return [sid.decode() for sid, _ in resp[0][1]] if resp else []


def _journal(settings, *records: Record) -> None:
    j = Journal(settings.state_dir / f"journal-{settings.account}.sqlite3", settings.account)
    j.open()
    j.save(records, c.now_ms() - 60_000)
    j.close()


def _pending_record(cmd: c.PlaceOrder, state=S.PENDING) -> Record:
    return Record(coid=cmd.client_order_id, fingerprint=cmd.fingerprint(), state=state)


async def test_found_at_broker_acked_with_real_id(make_executor, settings_for, client, r):
    cmd = order("o1")
    broker = FakeBroker()
    broker.report(7777, cmd, c.OrderStatus.PART_SUCC, 55, traded=50)  # the dead executor had placed it
    cid = await client.send(cmd)
    assert len(await _leave_pending(r, client.keys)) == 1
    _journal(settings_for(), _pending_record(cmd))
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.command_id == cid and rep.ok
    assert rep.result.order_id == 7777 and rep.result.status is c.OrderStatus.PART_SUCC
    assert broker.placed == []
    assert ex.journal.get("o1").state is S.PLACED and ex.journal.get("o1").order_id == 7777
    assert (await r.xpending(client.keys.commands, c.COMMAND_GROUP))["pending"] == 0


async def test_not_found_is_placed_once(make_executor, settings_for, client, r):
    a, b = order("o1"), order("o2")
    await client.send(a)
    await client.send(b)
    await _leave_pending(r, client.keys)
    _journal(settings_for(), _pending_record(a))  # o1 was handed to the broker; o2 has no record at all
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    reps = await client.replies(2)
    assert all(rep.ok and rep.result.order_id > 0 for rep in reps)
    assert sorted(p.client_order_id for p in broker.placed) == ["o1", "o2"]


async def test_recovered_before_new_commands(make_executor, client, r):
    await client.send(order("old"))
    await _leave_pending(r, client.keys)
    await client.send(order("new"))
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    assert [p.client_order_id for p in broker.placed] == ["old", "new"]


async def test_expired_while_down(make_executor, settings_for, client, r):
    cmd = order("o1")
    await client.send(cmd, ttl_ms=1)
    await _leave_pending(r, client.keys)
    _journal(settings_for(), _pending_record(cmd))
    await asyncio.sleep(0.01)  # ttl 1 ms: the deadline is behind us
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.EXPIRED and "nothing was placed" in rep.error.message
    assert broker.placed == []
    assert ex.journal.get("o1").state is S.EXPIRED


async def test_broker_list_unavailable_gives_outcome_unknown(make_executor, settings_for, client, r):
    cmd = order("o1")
    await client.send(cmd)
    await _leave_pending(r, client.keys)
    _journal(settings_for(), _pending_record(cmd))
    broker = FakeBroker(query_orders_error=BrokerTimeoutError)
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.OUTCOME_UNKNOWN
    assert broker.placed == []  # never retried blindly
    assert ex.journal.get("o1").state is S.UNKNOWN
    # A repeat while the list is still unavailable: still unknown, still nothing placed.
    await client.send(cmd)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.OUTCOME_UNKNOWN and broker.placed == []
    # The list comes back and shows the order: the repeat is answered with it.
    broker.query_orders_error = None
    broker.report(4242, cmd, c.OrderStatus.REPORTED, 50)
    await client.send(cmd)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok and rep.result.order_id == 4242 and rep.result.duplicate
    assert broker.placed == []


async def test_final_in_journal_answered_from_it(make_executor, settings_for, client, r):
    from executor.journal import StoredReply
    cmd = order("o1")
    ack = c.OrderAck(order_id=55, client_order_id="o1", status=c.OrderStatus.REPORTED)
    await client.send(cmd)
    await _leave_pending(r, client.keys)
    _journal(settings_for(), _pending_record(cmd).evolve(state=S.PLACED, order_id=55,
                                                         reply=StoredReply.of(result=ack)))
    broker = FakeBroker()
    ex = make_executor(broker)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.result.order_id == 55 and rep.result.duplicate
    assert broker.placed == []


async def test_too_many_deliveries_dead_lettered_not_executed(make_executor, client, r):
    await client.send(order("o1"))
    for i in range(5):  # five consumers took it and died
        await _leave_pending(r, client.keys, consumer=f"dead-{i}")
        pend = await r.xpending_range(client.keys.commands, c.COMMAND_GROUP, "-", "+", 10)
        await r.xclaim(client.keys.commands, c.COMMAND_GROUP, f"dead-{i}", 0, [pend[0]["message_id"]])
    broker = FakeBroker()
    ex = make_executor(broker, max_deliveries=5)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.OUTCOME_UNKNOWN
    assert broker.placed == []
    (dead,) = await client.dead()
    assert dead["reason"] == b"max_deliveries"


async def test_live_rival_entries_left_alone_until_idle(make_executor, client, r, account):
    import json
    await client.send(order("o1"))
    await _leave_pending(r, client.keys, consumer="rival")
    secs, usecs = await r.time()
    ts = secs * 1000 + usecs // 1000  # to the ms: whole seconds would age it up to 1 s, past the freshness window
    await r.set(client.keys.heartbeat, json.dumps({"executor_id": "rival", "ts_ms": ts}), ex=5)
    broker = FakeBroker()
    ex = make_executor(broker, lease_ms=0)  # without a lease, a fresh rival heartbeat is the sign of a live peer
    await ex.run_until_idle()
    assert broker.placed == []  # the rival is alive and its entry is not idle yet
    assert (await r.xpending(client.keys.commands, c.COMMAND_GROUP))["pending"] == 1


async def test_an_id_placed_by_a_predecessor_with_another_journal_is_not_placed_again(make_executor, client):
    """A takeover by an executor with its own state dir: its journal has never seen the id, but the broker has it
    (the old leader placed it). A re-sent command with that id is answered from the broker's record."""
    cmd = order("placed-by-old")
    broker = FakeBroker()
    broker.next_order_id += 1
    broker.report(broker.next_order_id, cmd, c.OrderStatus.REPORTED, 50)  # on the broker's books already
    ex = make_executor(broker)
    await client.send(cmd)  # a fresh entry (the producer re-sent it): delivered once, unknown to this journal
    await ex.run_until_idle()
    (reply,) = await client.replies(1)
    assert reply.ok and reply.result.order_id == broker.next_order_id and reply.result.duplicate
    assert broker.placed == []


async def test_query_outcome_of_an_id_only_the_broker_knows(make_executor, client):
    """After a takeover by an executor with its own state dir, the outcome of an id the old leader placed comes
    from the broker's books, not 'not_found'."""
    cmd = order("old-leaders")
    broker = FakeBroker()
    broker.next_order_id += 1
    broker.report(broker.next_order_id, cmd, c.OrderStatus.REPORTED, 50)
    ex = make_executor(broker)
    known = await client.send(c.QueryOutcome(client_order_id="old-leaders"))
    unknown = await client.send(c.QueryOutcome(client_order_id="never-sent"))
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(2)}
    assert (reps[known].result.state, reps[known].result.order_id) == (c.OutcomeState.PLACED, broker.next_order_id)
    assert reps[unknown].result.state is c.OutcomeState.NOT_FOUND


class _LaggingList(FakeBroker):
    """MiniQMT answers order lists from its own cache: the first ``lag`` lists do not show orders placed just
    before (by a predecessor whose journal this executor cannot see)."""

    def __init__(self, lag: int, hidden: str, **kw) -> None:
        super().__init__(**kw)
        self.lag, self.hidden, self.lists = lag, hidden, 0

    async def query_orders(self, cancelable_only: bool = False, *, strict: bool = False) -> list[c.OrderReport]:
        orders = await super().query_orders(cancelable_only, strict=strict)
        self.lists += 1
        if self.lists <= self.lag:
            orders = [o for o in orders if o.client_order_id != self.hidden]
        return orders


async def test_predecessor_order_missing_from_a_lagging_list_is_not_placed_again(make_executor, client, r):
    """Issue #10, suspected item: a leader with its own state dir takes over an entry its predecessor had handed to
    the broker moments before dying; the broker's list does not show it yet. No journal record here must not skip
    the settle wait: the list is asked again after it, the order found, and nothing placed twice."""
    cmd = order("o1")
    broker = _LaggingList(lag=2, hidden="o1")
    broker.report(7777, cmd, c.OrderStatus.REPORTED, 50)  # the predecessor placed it; its journal is elsewhere
    cid = await client.send(cmd)
    assert len(await _leave_pending(r, client.keys)) == 1
    ex = make_executor(broker, recovery_settle_ms=300)
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.command_id == cid and rep.ok and rep.result.order_id == 7777
    assert broker.placed == []
    assert broker.lists > 2  # it did ask again after the lagging answers

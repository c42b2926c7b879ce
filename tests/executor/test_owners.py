"""Ownership (docs/security.md, threat model): which command stream's owner may act on which order. The journal
records the owner of each client order id; orders it has no record of belong to the strategy_name the broker
records; the stream without a strategy acts for the whole account. The attacks through a strategy's own ACL user
and a real executor are in tests/security/test_ownership.py."""

from __future__ import annotations

import sqlite3

from fakes import Client, FakeBroker, order

from executor.journal import Journal, Record
from producer_lib import contract as c

E = c.ErrorCode
S = c.OutcomeState


def broker_order(order_id: int, coid: str, strategy: str, sysid: str = "") -> c.OrderReport:
    """An order already at the broker that this executor's journal does not know (a predecessor's, or manual)."""
    return c.OrderReport(order_id=order_id, client_order_id=coid, order_sysid=sysid, code="600000.SH",
                         side=c.Side.BUY, order_type=23, volume=100, price=10.5, price_type=50,
                         status=c.OrderStatus.REPORTED, status_code=50, strategy=strategy)


async def ask(ex, cl: Client, cmd: c.Command) -> c.Reply:
    cid = await cl.send(cmd)
    await ex.run_until_idle()
    return await cl.reply_for(cid)


async def test_the_stream_without_a_strategy_acts_for_the_account(make_executor, r, account):
    broker = FakeBroker()
    s1, anyone = Client(r, account, strategy="s1"), Client(r, account)
    await s1.send(order("s1-a"))
    ex = make_executor(broker)
    await ex.run_until_idle()
    ack = (await s1.replies(1))[0].result
    assert ex.journal.get("s1-a").owner == "s1"
    out = (await ask(ex, anyone, c.QueryOutcome(client_order_id="s1-a"))).result
    assert (out.state, out.order_id) == (S.PLACED, ack.order_id)
    assert (await ask(ex, anyone, c.CancelOrder(client_order_id="s1-a"))).ok
    assert broker.cancels == [dict(order_id=ack.order_id, sysid=None, market=None)]


async def test_orders_without_a_journal_record_belong_to_the_broker_recorded_strategy(make_executor, r, account):
    broker = FakeBroker()
    broker.orders[7] = broker_order(7, "pred-1", "s1", sysid="S7")  # a predecessor placed it for s1
    broker.orders[8] = broker_order(8, "manual-1", "", sysid="S8")  # owner unknown (strategy_name not returned)
    s1, s2, anyone = (Client(r, account, strategy="s1"), Client(r, account, strategy="s2"), Client(r, account))
    for cl in (s1, s2):
        await r.xgroup_create(cl.stream, c.COMMAND_GROUP, id="0", mkstream=True)
    ex = make_executor(broker)
    await ex.run_until_idle()
    for cmd in (c.CancelOrder(client_order_id="pred-1"), c.CancelOrder(order_id=7),
                c.CancelOrder(sysid="S7", market="SH")):
        assert (await ask(ex, s2, cmd)).error.code is E.NOT_FOUND
    assert (await ask(ex, s2, c.QueryOutcome(client_order_id="pred-1"))).result.state is S.NOT_FOUND
    assert (await ask(ex, s2, c.QueryOrders(client_order_id="pred-1"))).result.orders == []
    books = (await ask(ex, s2, c.QueryOrders())).result.orders  # the account's books stay account-wide
    assert sorted(o.order_id for o in books) == [7, 8]
    # An unattributable order: no named strategy may act on it, the account-wide stream may.
    assert (await ask(ex, s1, c.CancelOrder(client_order_id="manual-1"))).error.code is E.NOT_FOUND
    assert (await ask(ex, s1, c.CancelOrder(order_id=8))).error.code is E.NOT_FOUND
    assert (await ask(ex, s1, c.QueryOutcome(client_order_id="manual-1"))).result.state is S.NOT_FOUND
    squat = (await ask(ex, s2, order("pred-1"))).error  # never placed again, nothing of the order told
    assert squat.code is E.OUTCOME_UNKNOWN and squat.order_id is None and "7" not in squat.message
    assert broker.cancels == [] and broker.placed == []
    out = (await ask(ex, s1, c.QueryOutcome(client_order_id="pred-1"))).result
    assert (out.state, out.order_id) == (S.PLACED, 7)
    assert (await ask(ex, s1, c.CancelOrder(sysid="S7", market="SH"))).error.code is not E.NOT_FOUND
    assert (await ask(ex, s1, c.CancelOrder(order_id=7))).ok
    assert (await ask(ex, anyone, c.CancelOrder(client_order_id="manual-1"))).ok
    assert [x["order_id"] or x["sysid"] for x in broker.cancels] == ["S7", 7, 8]


async def test_a_conflict_shows_the_first_order_only_to_its_owner(make_executor, r, account):
    s1, s2 = Client(r, account, strategy="s1"), Client(r, account, strategy="s2")
    await s1.send(order("taken"))
    await r.xgroup_create(s2.stream, c.COMMAND_GROUP, id="0", mkstream=True)
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    foreign = (await ask(ex, s2, order("taken", volume=300))).error
    assert foreign.code is E.CONFLICT and set(foreign.details) == {"this"} and foreign.order_id is None
    own = (await ask(ex, s1, order("taken", volume=300))).error
    assert own.code is E.CONFLICT and own.details["first"].startswith("600000.SH|buy|100|")


def test_a_journal_from_before_owners_is_migrated(tmp_path):
    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)  # the schema before the owner column
    db.executescript("""
        CREATE TABLE orders (account TEXT NOT NULL, coid TEXT NOT NULL, fingerprint TEXT NOT NULL,
            state TEXT NOT NULL, order_id INTEGER, reply BLOB, command_id TEXT NOT NULL DEFAULT '',
            stream_id TEXT NOT NULL DEFAULT '', deadline_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL, rejection_seen INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (account, coid));
        INSERT INTO orders (account, coid, fingerprint, state, order_id, created_ms, updated_ms)
            VALUES ('A', 'old-1', 'fp', 'placed', 5, 1, 1);
    """)
    db.close()
    journal = Journal(path, "A")
    journal.open()
    try:
        old = journal.get("old-1")
        assert (old.state, old.order_id, old.owner) == (S.PLACED, 5, None)  # not recorded: the broker decides
        journal.save([Record(coid="new-1", fingerprint="fp", state=S.PENDING, owner="s1")], 2)
        journal.save([journal.get("new-1").evolve(state=S.PLACED, order_id=6, owner="s2")], 3)
        assert journal.get("new-1").owner == "s1"  # recorded once, with the intent; never changed
    finally:
        journal.close()
    journal = Journal(path, "A")
    journal.open()  # opening again: the column is there already
    try:
        assert journal.get("new-1").owner == "s1" and journal.get("old-1").owner is None
    finally:
        journal.close()

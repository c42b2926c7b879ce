"""Every fill the broker reports reaches the event stream exactly once, whatever happened to the executor meanwhile
(issue #10, defect 5): the record of published fills and order statuses kept with the stream (executor/events.py),
reconciled against the broker's lists at every start (executor/supervision.py ``_publish_missed_pushes``).

Counts come from the simulator's own trade records (its SQLite file) against the raw event stream.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import redis.exceptions as rex
from fakes import FakeBroker, order

import producer_lib as pl
from executor.app import build_executor
from executor.broker import sim_config_for
from executor.events import EventPublisher
from executor.sim.qmt import QmtSimServer
from producer_lib import contract as c

CODE = "600000.SH"  # simulator last price 10.00


def sim_trades(settings) -> list[dict]:
    db = sqlite3.connect(f"file:{settings.sim_path / 'xtsim.sqlite3'}?mode=ro", uri=True)
    try:
        cur = db.execute("SELECT * FROM trades WHERE account_id=?", (settings.account,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        db.close()


def fill_events(events: list[c.EventMessage]) -> Counter:
    return Counter((e.order_id, e.data.trade.trade_id) for e in events if e.type == "order_filled")


def broker_moves_price(settings, last: float) -> None:
    """The broker (MiniQMT) goes on while no executor runs: the price moves, resting orders fill there."""
    with QmtSimServer(settings.sim_path, sim_config_for(settings)) as server:
        server.engine.set_price(CODE, last)
        server.engine.flush()


async def _serve_once(settings) -> None:
    ex = build_executor(settings)
    try:
        await ex.run_until_idle()
    finally:
        await ex.stop()


async def test_fill_while_the_executor_is_down_is_published_once_after_each_restart(settings_for, client, tmp_path):
    settings = settings_for(broker="sim", sim_path=tmp_path / "sim", ack_wait_ms=2_000, broker_timeout_ms=5_000)
    ex = build_executor(settings)
    try:
        await client.send(order("rest-1", code=CODE, price=9.5, volume=100))  # below the market: rests
        await ex.run_until_idle()
        [reply] = await client.replies(1)
        oid = reply.result.order_id
        assert reply.ok and oid > 0
    finally:
        await ex.stop()
    broker_moves_price(settings, 9.40)  # the order fills while no executor runs
    trades = [t for t in sim_trades(settings) if t["order_id"] == oid]
    assert len(trades) == 1, trades

    await _serve_once(settings)  # restart: the first reconciliation pass publishes the fill
    events = await client.events()
    assert fill_events(events) == Counter({(oid, trades[0]["traded_id"]): 1})
    filled = next(e for e in events if e.type == "order_filled")
    assert filled.data.detected_by == "reconciliation" and filled.client_order_id == "rest-1"
    # the order's last status on the stream is the broker's (56 succeeded), found by reconciliation too
    updates = [e.data for e in events if e.type == "order_updated" and e.order_id == oid]
    assert updates[-1].order.status_code == 56 and updates[-1].detected_by == "reconciliation"

    await _serve_once(settings)  # restart again: nothing published twice
    await _serve_once(settings_for(broker="sim", sim_path=tmp_path / "sim", ack_wait_ms=2_000,
                                   broker_timeout_ms=5_000, state_dir=tmp_path / "another-state",
                                   executor_id="ex-other"))  # another host: its own state dir
    events = await client.events()
    assert fill_events(events) == Counter({(oid, trades[0]["traded_id"]): 1})
    assert len([e for e in events if e.type == "order_updated" and e.order_id == oid]) == len(updates)
    assert [e.type for e in events].count("executor_started") == 4


async def test_a_fill_in_a_fenced_executors_spool_is_kept_and_never_published_twice(r, account, tmp_path):
    """A leader that lost its lease keeps its spool (it used to delete it); when its state dir leads again the
    spool is published, and a fill its successor already published by reconciliation is not written twice."""
    keys = c.Keys(account)
    trade = c.TradeReport(trade_id="T1", order_id=7, client_order_id="o7", code=CODE, order_type=23, price=9.4,
                          volume=100, amount=940.0, traded_time=1_764_556_800)
    old = EventPublisher(r, keys, tmp_path / "a" / "spool.sqlite3", retry_max_s=0.05)
    leading = [False]
    old.guard = lambda: leading[0]  # fenced: this executor no longer holds the lease
    await old.start()
    old.publish(c.OrderFilled(trade=trade), client_order_id="o7", order_id=7)
    old.publish(c.ExecutorStopped(executor_id="old", reason="lease lost"))
    await old.close(timeout_s=0.2)
    assert await r.xlen(keys.events) == 0  # nothing written while fenced

    successor = EventPublisher(r, keys, tmp_path / "b" / "spool.sqlite3")  # another state dir
    await successor.start()
    successor.publish(c.OrderFilled(trade=trade, detected_by="reconciliation"), client_order_id="o7", order_id=7)
    assert await successor.flush(5)
    await successor.close()

    again = EventPublisher(r, keys, tmp_path / "a" / "spool.sqlite3")  # the old state dir leads again
    await again.start()
    assert again.spool.count == 2  # kept: the fenced leader deleted nothing
    assert await again.flush(5)
    await again.close()
    events = [c.decode_event(sid, f) for sid, f in await r.xrange(keys.events)]
    assert [e.type for e in events] == ["order_filled", "executor_stopped"]
    assert events[0].data.detected_by == "reconciliation"
    assert [e.seq for e in events] == [1, 2]  # the fill not written again leaves no hole
    assert again.skipped == 1


async def test_an_older_order_status_never_moves_the_stream_backwards(r, account, tmp_path):
    keys = c.Keys(account)
    pub = EventPublisher(r, keys, tmp_path / "spool.sqlite3")
    await pub.start()

    def report(status: c.OrderStatus, code: int, traded: int) -> c.OrderUpdated:
        return c.OrderUpdated(order=c.OrderReport(order_id=5, client_order_id="o5", code=CODE, order_type=23,
                                                  volume=100, price=9.5, price_type=50, status=status,
                                                  status_code=code, traded_volume=traded, order_time=1_764_556_800))

    pub.publish(report(c.OrderStatus.REPORTED, 50, 0))
    pub.publish(report(c.OrderStatus.SUCCEEDED, 56, 100))
    pub.publish(report(c.OrderStatus.REPORTED, 50, 0))  # a late push / a spooled event of a fenced leader
    assert await pub.flush(5)
    await pub.close()
    events = [c.decode_event(sid, f) for sid, f in await r.xrange(keys.events)]
    assert [e.data.order.status_code for e in events] == [50, 56]
    assert [e.seq for e in events] == [1, 2]


async def test_a_batch_whose_answer_was_lost_is_not_written_twice(r, account, tmp_path):
    keys = c.Keys(account)
    pub = EventPublisher(r, keys, tmp_path / "spool.sqlite3", retry_max_s=0.05)
    await pub.start()
    script = pub._script
    lost = [True]

    async def answer_lost(**kw):
        result = await script(**kw)  # Redis ran it...
        if lost[0]:
            lost[0] = False
            raise rex.ConnectionError("connection reset")  # ...and the answer never came back
        return result

    pub._script = answer_lost
    for i in range(3):
        pub.publish(c.AccountStatusChanged(status=i, status_name=f"s{i}"))
    assert await pub.flush(5)
    await pub.close()
    events = [c.decode_event(sid, f) for sid, f in await r.xrange(keys.events)]
    assert [e.data.status for e in events] == [0, 1, 2] and [e.seq for e in events] == [1, 2, 3]


async def test_subscriber_is_told_by_a_gap_after_an_executor_that_did_not_stop(make_executor, r, account, redis_url):
    """Events the predecessor held in memory when it died cannot be recovered (fills can, by reconciliation): the
    next executor_started comes after a skipped seq, which Client.events() reports as a Gap. A clean stop: none."""
    keys = c.Keys(account)
    await r.xadd(keys.events, c.encode_event(c.AccountStatusChanged(status=1, status_name="s"), account=account,
                                             seq=1))  # the last event of an executor that was killed
    ex = make_executor(FakeBroker())
    await ex.run_until_idle()
    await ex.stop()
    ex2 = make_executor(FakeBroker(), executor_id="ex-test-2")  # after a clean stop: no gap
    await ex2.run_until_idle()
    await ex2.stop()
    seen: list = []
    async with pl.Client(redis_url, account) as client:
        async for item in client.events(from_id="0-0", block_ms=100):
            seen.append(item)
            if isinstance(item, pl.EventMessage) and item.type == "executor_stopped" and \
                    item.data.executor_id == "ex-test-2":
                break
    kinds = [type(x).__name__ if isinstance(x, pl.Gap) else x.type for x in seen]
    assert kinds == ["account_status", "Gap", "executor_started", "broker_connected", "executor_stopped",
                     "executor_started", "broker_connected", "executor_stopped"], kinds
    gap = seen[1]
    assert (gap.expected_seq, gap.got_seq) == (2, 3)


async def test_after_redis_lost_the_stream_the_days_fills_are_published_again(make_executor, client, r, account):
    """A Redis restart without persistence loses the stream and its record together: the executor notices (its next
    batch finds the stream behind its seq), skips a seq (a Gap) and reconciliation publishes the day's fills again,
    once, on the new stream."""
    import asyncio

    from fakes import wait_event

    broker = FakeBroker()
    broker.trades.append(c.TradeReport(trade_id="T9", order_id=9, client_order_id="o9", code=CODE, order_type=23,
                                       price=9.4, volume=100, amount=940.0, traded_time=1_764_556_800))
    ex = make_executor(broker)
    serving = asyncio.create_task(ex.run())
    try:
        first = await wait_event(r, account, lambda e: e.type == "order_filled")  # no push: reconciliation
        assert first.data.detected_by == "reconciliation"
        lost = [k async for k in r.scan_iter(match=f"xtq:{{{account}}}:*")]
        await r.delete(*lost)  # what a restart without persistence does to the account's keys
        ex.on_broker_event(c.AccountStatusChanged(status=2, status_name="s"))  # the next batch finds the loss
        again = await wait_event(r, account, lambda e: e.type == "order_filled")
        events = await client.events()
        assert [e.type for e in events].count("order_filled") == 1
        assert events[0].type == "account_status" and events[0].seq > first.seq + 1  # a Gap for subscribers
        assert again.data.trade.trade_id == "T9" and again.data.detected_by == "reconciliation"
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    finally:
        ex.request_stop()
        await serving

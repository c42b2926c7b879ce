"""8. Fills that no executor published when they happened (issue #10, defect 5): the executor is SIGKILLed between
the broker's fill push and the event's publication; a leader is fenced with the fill only in its spool and a
standby with ANOTHER state dir takes over.

Proves, against the simulator's own trade records and the raw event stream: each fill reaches the stream exactly
once (``detected_by=reconciliation`` when no executor had published it), also after further restarts, and a
fenced leader keeps its spool (its events are published when its state dir leads again; the fill in it is not
written twice).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections import Counter

import producer_lib as pl
from executor.sim.control import SimControl
from harness import (CODE, SHORT_LEASE, ExecutorProc, MiniQmtProc, await_until, read_events, sim_trades)
from producer_lib import contract as c

LEASE = ("--lease-ms", "2000", "--lease-renew-ms", "250")


def fills_on_stream(r, keys) -> Counter:
    return Counter((ev.order_id, ev.data.trade.trade_id) for ev in read_events(r, keys)
                   if ev.type == "order_filled" and ev.data is not None)


def fill_events(r, keys, order_id: int) -> list[c.EventMessage]:
    return [ev for ev in read_events(r, keys) if ev.type == "order_filled" and ev.order_id == order_id]


def spooled_types(state_dir, account) -> list[str]:
    """The event types waiting in an executor's durable spool (its SQLite file)."""
    path = state_dir / f"events-{account}.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [str(c.unpack(blob).get(c.F_TYPE, "")) for (blob,) in db.execute("SELECT fields FROM spool")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


async def _rest_order(url: str, account: str, coid: str) -> int:
    async with pl.Client(url, account) as client:
        ack = await client.buy(CODE, 100, 9.5, client_order_id=coid)  # below the 10.00 market: rests
    return ack.order_id


async def _fill_at_broker(ctl: SimControl, sim_path, account: str, order_id: int) -> dict:
    cid = ctl.set_price(CODE, 9.40)
    assert await asyncio.to_thread(ctl.wait_applied, cid, 10), "the simulator never applied the price"
    trades = await await_until(lambda: [t for t in sim_trades(sim_path, account) if t["order_id"] == order_id], 10,
                               f"the fill of order {order_id} at the broker")
    assert len(trades) == 1
    return trades[0]


async def _events_settled(url: str, account: str, r, keys) -> None:
    """Everything an executor queued before now is on the stream: its publisher is FIFO, so once the events of an
    order placed now are there, so is whatever reconciliation published before."""
    oid = await _rest_order(url, account, f"mk{secrets.token_hex(6)}")
    await await_until(lambda: any(ev.order_id == oid for ev in read_events(r, keys)), 20,
                      f"the events of marker order {oid}")


async def test_sigkill_between_the_fill_push_and_its_publication(tmp_path, redis_server):
    account = f"F{secrets.token_hex(4)}"
    keys = c.Keys(account)
    ex = ExecutorProc(redis_server.url, account, tmp_path / "ex", extra=SHORT_LEASE)
    ex.start()
    await ex.wait_serving()
    ctl = SimControl(ex.sim_path)
    r = redis_server.client()
    try:
        oid = await _rest_order(redis_server.url, account, f"fk{account}"[:24])
        # From here the executor's writes wait inside Redis (its event script cannot run) ...
        r.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
        try:
            trade = await _fill_at_broker(ctl, ex.sim_path, account, oid)
            audit = ex.state_dir / f"audit-{account}.log"
            # ... the fill push reached the executor (its audit file records every broker event) ...
            await await_until(lambda: audit.exists() and str(trade["traded_id"]) in audit.read_text(errors="replace"),
                              20, "the fill push in the executor's audit file")
            ex.kill()  # ... and it dies before its event was written
        finally:
            r.execute_command("CLIENT", "UNPAUSE")
        assert not fill_events(r, keys, oid), "the killed executor's event was written after all"
        key = (oid, str(trade["traded_id"]))

        ex.start()
        await ex.wait_serving()
        await await_until(lambda: fill_events(r, keys, oid), 20, f"the order_filled of order {oid}")
        await _events_settled(redis_server.url, account, r, keys)
        [event] = fill_events(r, keys, oid)
        # Which of the two safety nets publishes it depends on how far the killed executor got: its durable spool
        # (the publish had timed out against the paused Redis and the event was spooled: "callback") or, when it
        # died before that, the restarted executor's reconciliation. Either way: exactly once.
        assert event.data.detected_by in ("callback", "reconciliation")
        assert fills_on_stream(r, keys)[key] == 1

        ex.terminate()  # and once more: nothing is published twice
        ex.start("fault-fixed-id")
        await ex.wait_serving()
        await _events_settled(redis_server.url, account, r, keys)
        fills = [t for t in sim_trades(ex.sim_path, account)]
        on_stream = fills_on_stream(r, keys)
        assert {(t["order_id"], str(t["traded_id"])): on_stream[(t["order_id"], str(t["traded_id"]))]
                for t in fills} == {(t["order_id"], str(t["traded_id"])): 1 for t in fills}
        assert sum(on_stream.values()) == len(fills)
    finally:
        ctl.close()
        ex.terminate()
        r.close()


def deny_event_writes(r, keys) -> None:
    """The default user (every process here) keeps every key of the account but the event stream and its record:
    the leader's events can only go to its spool."""
    r.execute_command("ACL", "SETUSER", "default", "resetkeys",
                      *(f"~{k}" for k in (keys.commands, f"{keys.base}:reply:*", keys.dead_letter, keys.audit,
                                          keys.heartbeat, keys.lease, f"{keys.lease}:token", keys.halt)))


def allow_all_keys(r) -> None:
    r.execute_command("ACL", "SETUSER", "default", "resetkeys", "allkeys")


async def test_takeover_by_a_standby_with_another_state_dir_and_the_fenced_leaders_spool(tmp_path, redis_server):
    account = f"F{secrets.token_hex(4)}"
    keys = c.Keys(account)
    miniqmt = MiniQmtProc(tmp_path / "ex" / "sim", account).start()  # one MiniQMT for A and B, outliving both
    a = ExecutorProc(redis_server.url, account, tmp_path / "ex", name="A", sim_path=miniqmt.sim_path, extra=LEASE)
    b = ExecutorProc(redis_server.url, account, tmp_path / "ex", name="B", sim_path=miniqmt.sim_path, extra=LEASE)
    assert a.state_dir != b.state_dir
    a.start("exA-1")
    await a.wait_serving()
    b.start("exB-1")
    await await_until(lambda: "standing by" in b.log_tail(20000), 60, "executor B to stand by")
    ctl = SimControl(a.sim_path)
    r = redis_server.client()
    try:
        oid = await _rest_order(redis_server.url, account, f"ft{account}"[:24])
        deny_event_writes(r, keys)
        try:
            trade = await _fill_at_broker(ctl, a.sim_path, account, oid)
            await await_until(lambda: "order_filled" in spooled_types(a.state_dir, account), 20,
                              "the fill in A's spool")
            # Another executor takes the lease (A's renewal fails: A is fenced and steps down, exit 3).
            r.set(keys.lease, "999999:intruder", px=60_000)
            rc = await asyncio.to_thread(a.proc.wait, 30)
            assert rc == 3, a.log_tail()
        finally:
            allow_all_keys(r)
        r.delete(keys.lease)  # the other executor is gone too
        # The fenced leader kept its spool: the fill and its executor_stopped (it used to delete them).
        assert {"order_filled", "executor_stopped"} <= set(spooled_types(a.state_dir, account))
        assert not fill_events(r, keys, oid)

        # B, with its own state dir, takes over once that lease lapses: it never received the fill's push.
        await b.wait_serving()
        await await_until(lambda: fill_events(r, keys, oid), 20, f"the order_filled of order {oid}")
        await _events_settled(redis_server.url, account, r, keys)
        [event] = fill_events(r, keys, oid)
        # Which of the two safety nets publishes it depends on how far the killed executor got: its durable spool
        # (the publish had timed out against the paused Redis and the event was spooled: "callback") or, when it
        # died before that, the restarted executor's reconciliation. Either way: exactly once.
        assert event.data.detected_by in ("callback", "reconciliation")

        # A's state dir leads again (B stops cleanly): its spool is published, the fill in it not twice.
        a.start("exA-2")
        await await_until(lambda: "standing by" in a.log_tail(20000).split("===== start")[-1], 60,
                          "executor A to stand by")
        assert b.terminate() == 0
        await a.wait_serving()
        await await_until(lambda: any(ev.type == "executor_stopped" and ev.data.executor_id == "exA-1"
                                      for ev in read_events(r, keys)), 20,
                          "the fenced leader's spooled executor_stopped on the stream")
        await _events_settled(redis_server.url, account, r, keys)
        assert spooled_types(a.state_dir, account) == []
        fills = sim_trades(a.sim_path, account)
        on_stream = fills_on_stream(r, keys)
        assert len(fills) >= 1 and all(on_stream[(t["order_id"], str(t["traded_id"]))] == 1 for t in fills)
        assert sum(on_stream.values()) == len(fills)
        assert (oid, str(trade["traded_id"])) in on_stream
    finally:
        ctl.close()
        r.close()
        for ex in (a, b):
            ex.terminate()
        miniqmt.stop()

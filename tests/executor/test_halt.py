"""The kill switch: a plain Redis SET of xtq:{ACCOUNT}:halt stops the very next order; cancels pass; resume lifts
it; the executor announces each change on the event stream; `xtqueue halt --cancel-open` cancels open orders."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from fakes import FakeBroker, order, wait_event

from producer_lib import contract as c

E = c.ErrorCode


@contextlib.asynccontextmanager
async def running(ex):
    """The executor serving in the background (the real loop, blocking reads), stopped at the end."""
    task = asyncio.create_task(ex.run())
    try:
        yield task
    finally:
        ex.request_stop()
        await asyncio.wait_for(task, 10)


async def ask(client, cmd, timeout_ms=5_000) -> c.Reply:
    cid = await client.send(cmd)
    (rep,) = await client.replies(1, timeout_ms)
    assert rep.command_id == cid
    return rep


async def test_plain_set_stops_the_next_order_and_resume_lifts_it(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker, halt_poll_ms=60_000)  # only the per-batch read can catch the change in time
    keys = c.Keys(account)
    async with running(ex):
        assert (await ask(client, order("o1"))).ok
        await r.set(keys.halt, "runaway strategy")  # what `redis-cli SET xtq:{A}:halt "runaway strategy"` does
        rep = await ask(client, order("o2"))  # the very next command
        assert rep.error.code is E.HALTED
        assert "runaway strategy" in rep.error.message and rep.error.details == {"reason": "runaway strategy"}
        assert [p.client_order_id for p in broker.placed] == ["o1"]
        assert ex.journal.get("o2").state is c.OutcomeState.REFUSED
        halted = await wait_event(r, account, lambda m: m.type == "account_halted")
        assert halted.data.reason == "runaway strategy" and halted.data.executor_id == "ex-test"

        await r.delete(keys.halt)  # `xtqueue resume` / `redis-cli DEL`
        assert (await ask(client, order("o3"))).ok
        await wait_event(r, account, lambda m: m.type == "account_resumed")
    assert [p.client_order_id for p in broker.placed] == ["o1", "o3"]
    types = [m.type for m in await client.events() if m.type.startswith("account_")]
    assert types == ["account_halted", "account_resumed"]  # each change announced once


async def test_empty_value_still_halts(make_executor, client, r, account):
    ex = make_executor(FakeBroker())
    await r.set(c.Keys(account).halt, "")
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.HALTED


async def test_cancels_and_queries_pass_while_halted(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    async with running(ex):
        placed = await ask(client, order("o1"))
        await r.set(c.Keys(account).halt, "stop")
        assert (await ask(client, c.CancelOrder(client_order_id="o1"))).ok
        assert (await ask(client, c.QueryOrders())).ok
        assert (await ask(client, c.Ping())).ok
        again = await ask(client, order("o1"))  # a repeat of an id already placed is answered, not refused
        assert again.ok and again.result.duplicate
    assert broker.cancels == [dict(order_id=placed.result.order_id, sysid=None, market=None)]


async def test_announced_without_orders_by_the_poll(make_executor, r, account):
    ex = make_executor(FakeBroker(), halt_poll_ms=20)
    async with running(ex):
        await r.set(c.Keys(account).halt, "lunch")
        ev = await wait_event(r, account, lambda m: m.type == "account_halted", timeout_ms=3_000)
        assert ev.data.reason == "lunch"


async def test_change_made_while_no_executor_ran_is_announced_at_start(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    await r.set(c.Keys(account).halt, "overnight")
    await ex.run_until_idle()
    await ex.stop()
    await r.delete(c.Keys(account).halt)
    ex2 = make_executor(broker)  # same state_dir: it knows it announced "halted" last
    await ex2.run_until_idle()
    types = [m.type for m in await client.events() if m.type.startswith("account_")]
    assert types == ["account_halted", "account_resumed"]


async def test_unreadable_switch_fails_closed(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker, halt_poll_ms=60_000)
    await ex.start()
    await r.rpush(c.Keys(account).halt, "not a string")  # the GET read with the batch fails (WRONGTYPE)
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.HALTED and "could not be read" in rep.error.message
    assert broker.placed == []


@pytest.fixture
def cli_run(monkeypatch):
    import os

    from click.testing import CliRunner

    from xtqueue import cli as cli_mod

    for name in [n for n in os.environ if n.startswith("XTQUEUE_")]:
        monkeypatch.delenv(name)

    async def run(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli_mod.cli, list(args))
    return run


async def test_cli_halt_cancel_open_and_resume(make_executor, client, r, account, cli_run):
    broker = FakeBroker()
    ex = make_executor(broker)
    async with running(ex):
        a = await ask(client, order("o1"))
        b = await ask(client, order("o2"))
        res = await cli_run("halt", account, "--reason", "fat finger", "--cancel-open")
        assert res.exit_code == 0, res.output
        assert "2 of 2 open orders: cancel sent" in res.output
        assert await r.get(c.Keys(account).halt) == b"fat finger"
        assert sorted(x["order_id"] for x in broker.cancels) == sorted([a.result.order_id, b.result.order_id])
        assert (await ask(client, order("o3"))).error.code is E.HALTED
        res = await cli_run("resume", account)
        assert res.exit_code == 0 and "resumed" in res.output
        assert await r.get(c.Keys(account).halt) is None
        assert (await ask(client, order("o4"))).ok
        res = await cli_run("resume", account)
        assert "was not halted" in res.output

"""The kill switch: one XADD to xtq:{ACCOUNT}:halt stops the very next order; cancels pass; resume lifts it; the
executor announces each change on the event stream; `xtqueue halt --cancel-open` cancels open orders; a stale
read never lifts a halt (versions)."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from fakes import FakeBroker, order, wait_event

from producer_lib import contract as c

E = c.ErrorCode


async def halt_on(r, account, reason="stop"):
    """What `redis-cli XADD 'xtq:{A}:halt' '*' halted 1 reason "..."` does."""
    return await r.xadd(c.Keys(account).halt, c.halt_entry(True, reason))


async def halt_off(r, account):
    """What `redis-cli XADD 'xtq:{A}:halt' '*' halted 0` does."""
    return await r.xadd(c.Keys(account).halt, c.halt_entry(False))


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


async def test_one_xadd_stops_the_next_order_and_resume_lifts_it(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker, halt_poll_ms=60_000)  # only the per-batch read can catch the change in time
    async with running(ex):
        assert (await ask(client, order("o1"))).ok
        await halt_on(r, account, "runaway strategy")
        rep = await ask(client, order("o2"))  # the very next command
        assert rep.error.code is E.HALTED
        assert "runaway strategy" in rep.error.message and rep.error.details == {"reason": "runaway strategy"}
        assert [p.client_order_id for p in broker.placed] == ["o1"]
        assert ex.journal.get("o2").state is c.OutcomeState.REFUSED
        halted = await wait_event(r, account, lambda m: m.type == "account_halted")
        assert halted.data.reason == "runaway strategy" and halted.data.executor_id == "ex-test"

        await halt_off(r, account)  # `xtqueue resume`
        assert (await ask(client, order("o3"))).ok
        await wait_event(r, account, lambda m: m.type == "account_resumed")
    assert [p.client_order_id for p in broker.placed] == ["o1", "o3"]
    types = [m.type for m in await client.events() if m.type.startswith("account_")]
    assert types == ["account_halted", "account_resumed"]  # each change announced once


async def test_an_entry_without_halted_0_halts(make_executor, client, r, account):
    ex = make_executor(FakeBroker())
    await r.xadd(c.Keys(account).halt, {"note": "typo: no halted field"})  # fail closed: only halted 0 resumes
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.HALTED


async def test_cancels_and_queries_pass_while_halted(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    async with running(ex):
        placed = await ask(client, order("o1"))
        await halt_on(r, account)
        assert (await ask(client, c.CancelOrder(client_order_id="o1"))).ok
        assert (await ask(client, c.QueryOrders())).ok
        assert (await ask(client, c.Ping())).ok
        again = await ask(client, order("o1"))  # a repeat of an id already placed is answered, not refused
        assert again.ok and again.result.duplicate
    assert broker.cancels == [dict(order_id=placed.result.order_id, sysid=None, market=None)]


async def test_announced_without_orders_by_the_poll(make_executor, r, account):
    ex = make_executor(FakeBroker(), halt_poll_ms=20)
    async with running(ex):
        await halt_on(r, account, "lunch")
        ev = await wait_event(r, account, lambda m: m.type == "account_halted", timeout_ms=3_000)
        assert ev.data.reason == "lunch"


async def test_change_made_while_no_executor_ran_is_announced_at_start(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker)
    await halt_on(r, account, "overnight")
    await ex.run_until_idle()
    await ex.stop()
    await halt_off(r, account)
    ex2 = make_executor(broker)  # same state_dir: it knows it announced "halted" last
    await ex2.run_until_idle()
    types = [m.type for m in await client.events() if m.type.startswith("account_")]
    assert types == ["account_halted", "account_resumed"]


async def test_unreadable_switch_fails_closed(make_executor, client, r, account):
    broker = FakeBroker()
    ex = make_executor(broker, halt_poll_ms=60_000)
    await ex.start()
    await r.set(c.Keys(account).halt, "an old-style SET")  # the read with the batch fails (WRONGTYPE)
    await client.send(order("o1"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.error.code is E.HALTED and "could not be read" in rep.error.message
    assert broker.placed == []


@pytest.fixture
def cli_run(monkeypatch, redis_url):
    import os

    from click.testing import CliRunner

    from xtqueue import cli as cli_mod

    for name in [n for n in os.environ if n.startswith("XTQUEUE_")]:
        monkeypatch.delenv(name)

    async def run(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli_mod.cli, ["--redis-url", redis_url, *args])
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
        assert c.halt_state(await r.xrevrange(c.Keys(account).halt, count=1))[1:] == (True, "fat finger")
        assert sorted(x["order_id"] for x in broker.cancels) == sorted([a.result.order_id, b.result.order_id])
        assert (await ask(client, order("o3"))).error.code is E.HALTED
        res = await cli_run("resume", account)
        assert res.exit_code == 0 and "resumed" in res.output
        assert c.halt_state(await r.xrevrange(c.Keys(account).halt, count=1))[1] is False
        assert (await ask(client, order("o4"))).ok
        res = await cli_run("resume", account)
        assert "was not halted" in res.output


async def test_cli_resume_lifts_a_halt_whose_key_was_lost(make_executor, client, r, account, cli_run):
    """The key deleted (or lost in a failover) after the executor saw the halt: it stays halted, and
    `xtqueue resume` still writes the newer resume entry that lifts it."""
    ex = make_executor(FakeBroker(), halt_poll_ms=60_000)
    async with running(ex):
        await halt_on(r, account, "stop")
        assert (await ask(client, order("o1"))).error.code is E.HALTED
        await r.delete(c.Keys(account).halt)
        assert (await ask(client, order("o2"))).error.code is E.HALTED  # a missing key is version 0: older
        res = await cli_run("resume", account)
        assert res.exit_code == 0 and "resumed" in res.output, res.output
        assert (await ask(client, order("o3"))).ok


async def test_cli_refuses_to_write_over_an_old_style_value(r, account, cli_run):
    await r.set(c.Keys(account).halt, "old-style SET")
    for command in ("halt", "resume"):
        res = await cli_run(command, account)
        assert res.exit_code == 1 and "not a stream" in res.output and "DEL" in res.output, res.output
    assert await r.get(c.Keys(account).halt) == b"old-style SET"


# --- versions: a stale read never lifts a halt (issue #10, defect 8) ---------------------------------------------
def _switch(r, account, tmp_path, announced: list):
    from executor.safety.halt import HaltSwitch
    return HaltSwitch(r, c.Keys(account), "ex-test", tmp_path / "halt.json", announced.append)


async def test_a_stale_not_halted_answer_arriving_late_does_not_lift_the_halt(r, account, tmp_path):
    """The two readers (the batch's pipelined read and the background watch) answered out of order: the watch's
    read ran before the halt was written, its answer is observed after the batch's read saw the halt."""
    announced: list = []
    sw = _switch(r, account, tmp_path, announced)
    key = c.Keys(account).halt
    assert await sw.refresh() is False
    watch_sent = sw.begin_read()
    watch_answer = await r.xrevrange(key, count=1)  # Redis ran it: not halted
    await halt_on(r, account, "runaway")
    batch_sent = sw.begin_read()
    assert sw.observe_read(await r.xrevrange(key, count=1), batch_sent) is True
    assert sw.observe_read(watch_answer, watch_sent) is True  # the stale answer is older: ignored
    assert sw.halted and sw.reason == "runaway"
    # ... and the other way round: a stale "halted" answer does not undo a resume
    watch_sent = sw.begin_read()
    watch_answer = await r.xrevrange(key, count=1)  # halted
    await halt_off(r, account)
    assert sw.observe_read(await r.xrevrange(key, count=1), sw.begin_read()) is False
    assert sw.observe_read(watch_answer, watch_sent) is False
    assert [e.TYPE for e in announced] == ["account_halted", "account_resumed"]  # no flip-flop announced


async def test_a_failed_read_is_cleared_only_by_a_read_sent_after_it(r, account, tmp_path):
    sw = _switch(r, account, tmp_path, [])
    key = c.Keys(account).halt
    watch_sent = sw.begin_read()
    watch_answer = await r.xrevrange(key, count=1)  # nothing there: not halted
    assert sw.observe_read(ConnectionError("read failed"), sw.begin_read()) is True  # the batch's read failed
    assert sw.observe_read(watch_answer, watch_sent) is True  # sent before the failure was seen: still unknown
    assert sw.observe_read(await r.xrevrange(key, count=1), sw.begin_read()) is False  # a newer read clears it


async def test_a_failure_seen_late_does_not_outvote_a_read_sent_after_it(r, account, tmp_path):
    """Right after a Redis outage: the background read went out before Redis came back and failed, the batch's read
    went out after and was answered, but the failure is observed in between. The first orders after the outage
    must not be refused as halted for nothing (seen in tests/faults/test_fault_redis_outage.py under load)."""
    sw = _switch(r, account, tmp_path, [])
    key = c.Keys(account).halt
    watch_sent = sw.begin_read()  # fails: Redis still down
    batch_sent = sw.begin_read()  # answered: Redis back
    batch_answer = await r.xrevrange(key, count=1)
    assert sw.observe_read(ConnectionError("read failed"), watch_sent) is True
    assert sw.observe_read(batch_answer, batch_sent) is False and not sw.unknown
    # ... but a halt written meanwhile is still seen by the read that saw it
    watch_sent = sw.begin_read()
    await halt_on(r, account, "runaway")
    batch_sent = sw.begin_read()
    batch_answer = await r.xrevrange(key, count=1)
    assert sw.observe_read(ConnectionError("read failed"), watch_sent) is True
    assert sw.observe_read(batch_answer, batch_sent) is True and sw.reason == "runaway"


async def test_the_watch_answering_late_does_not_lift_the_halt(r, account, tmp_path):
    """``watch`` itself, its read held between Redis' answer and the switch (an adversarial scheduling)."""
    announced: list = []
    sw = _switch(r, account, tmp_path, announced)
    held, release, next_read = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real = sw.redis
    reads = []

    class LateRedis:  # answers the watch's first read only after `release`
        def __getattr__(self, name):
            method = getattr(real, name)

            async def call(*a, **kw):
                answer = await method(*a, **kw)
                reads.append(answer)
                if len(reads) == 1:
                    held.set()
                    await release.wait()
                elif len(reads) == 2:
                    next_read.set()  # the watch observes this answer before it next yields
                return answer
            return call

    sw.redis = LateRedis()
    watch = asyncio.create_task(sw.watch(0.001))
    try:
        await asyncio.wait_for(held.wait(), 5)  # the watch's read ran: not halted
        await halt_on(r, account, "stop")
        assert sw.observe_read(await r.xrevrange(c.Keys(account).halt, count=1), sw.begin_read()) is True
        release.set()
        await asyncio.wait_for(next_read.wait(), 5)  # the stale answer was observed, and a fresh one since
        assert reads[0] == [] and sw.halted and sw.reason == "stop"
        assert [e.TYPE for e in announced] == ["account_halted"]
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def test_deleting_the_key_does_not_lift_a_halt_seen_even_across_a_restart(r, account, tmp_path):
    sw = _switch(r, account, tmp_path, [])
    await halt_on(r, account, "night")
    assert await sw.refresh() is True
    await r.delete(c.Keys(account).halt)  # gone (a DEL, a lost key): version 0 is older than what was seen
    assert await sw.refresh() is True
    again = _switch(r, account, tmp_path, [])  # a restart: the state file keeps the version
    assert await again.refresh() is True and again.reason == "night"
    # The key was deleted, so the next entry's id comes from the server clock alone: within the millisecond of the
    # halt seen it would be that same version (not newer, rightly ignored). An operator's XADD comes later.
    while await _server_ms(r) <= again.version[0]:
        await asyncio.sleep(0.001)
    await halt_off(r, account)
    assert await again.refresh() is False


async def _server_ms(r) -> int:
    seconds, micros = await r.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_no_order_written_after_the_halt_is_placed_while_the_watch_answers_late(settings_for, tmp_path,
                                                                                         account, monkeypatch):
    """End to end on the simulator: the background watch's read runs before `xtqueue halt`, its answer is held and
    delivered while the executor admits the next order (a sell, so the executor awaits a position query from a
    slowed broker between reading the batch and admitting it). That order must be refused, and the simulator must
    hold no order at all."""
    from click.testing import CliRunner

    import producer_lib as pl
    from executor.app import build_executor
    from executor.sim import SimConfig
    from executor.sim.config import AccountSeed
    from executor.sim.control import SimControl
    from executor.sim.qmt import QmtSimServer
    from xtqueue import cli as cli_mod

    for name in [n for n in os.environ if n.startswith("XTQUEUE_")]:
        monkeypatch.delenv(name)
    sim_path = tmp_path / "sim"
    sim_path.mkdir()
    seeded = QmtSimServer(sim_path, SimConfig(accounts={account: AccountSeed(cash=1e6,  # the executor trades on it
                                                                             positions={"600000.SH": 10_000})})).start()
    settings = settings_for(broker="sim", sim_path=sim_path, halt_poll_ms=10, ack_wait_ms=2_000,
                            broker_timeout_ms=5_000, risk={"sell_within_sellable": True, "positions_cache_ms": 0})
    ex = build_executor(settings)
    held, release = asyncio.Event(), asyncio.Event()
    real = ex.halt.redis

    answered = asyncio.Event()

    class LateRedis:  # once armed, holds the answer of the watch's next read until the order's batch was read,
        armed = False  # and its later reads until the order was answered (a slow watch)

        def __getattr__(self, name):
            method = getattr(real, name)

            async def call(*a, **kw):
                if held.is_set():
                    await answered.wait()
                answer = await method(*a, **kw)
                if self.armed and not held.is_set():
                    held.set()
                    await release.wait()
                return answer
            return call

    late = ex.halt.redis = LateRedis()
    read_new = ex.transport.read_new

    async def reading(*a, **kw):
        entries, halt_raw = await read_new(*a, **kw)
        if entries and held.is_set():
            release.set()  # the stale answer reaches the switch at the engine's next await
        return entries, halt_raw

    ex.transport.read_new = reading
    serving = asyncio.create_task(ex.run())
    ctl = SimControl(sim_path)
    try:
        async with pl.Client(settings.redis_url, account) as client:
            await client.ping()
            assert ctl.wait_applied(ctl.set_call_latency(150))  # a broker answering in 150 ms
            late.armed = True
            await asyncio.wait_for(held.wait(), 5)  # the watch's read ran at Redis: not halted
            res = await asyncio.to_thread(CliRunner().invoke, cli_mod.cli,
                                          ["--redis-url", settings.redis_url, "halt", account, "--reason", "race"])
            assert res.exit_code == 0, res.output
            try:
                with pytest.raises(pl.Halted):  # written after the halt: refused
                    await client.sell("600000.SH", 100, 9.5, client_order_id="after-halt")
            finally:
                answered.set()
            assert release.is_set()  # the stale answer was delivered during that order's admission
        assert ctl.orders(account) == []  # the broker's own records: nothing was placed
    finally:
        release.set()
        answered.set()
        ex.request_stop()
        await asyncio.wait_for(serving, 10)
        ctl.close()
        seeded.close()


async def test_cli_halt_cancel_open_without_an_executor_halts_and_says_the_cancels_were_not_sent(r, account, cli_run):
    res = await cli_run("halt", account, "--reason", "no one home", "--cancel-open")
    assert res.exit_code == 1
    assert f"halted {account}" in res.output
    assert f"no executor serves {account} now: open orders were NOT cancelled" in res.output
    assert c.halt_state(await r.xrevrange(c.Keys(account).halt, count=1))[1:] == (True, "no one home")

"""A command that reaches the executor more than once, and broker answers that outlive their trader instance
(issue #10: defects 3 and 4, and the suspected re-placement of a repeated client order id).

Every test runs the real engine on the real adapter over the simulator, and counts from the simulator's own order
records (``SimControl.orders``): exactly one broker order per client order id, the right order cancelled."""

from __future__ import annotations

import asyncio

import pytest
from support import CutAfterXadd  # the TCP proxy that cuts a connection after an XADD

import producer_lib as pl
from executor.app import build_executor
from executor.sim.control import SimControl
from producer_lib import contract as c


KEY = "alpha-secret-key-0123456789abcdef"
SIGNED = dict(signing_keys=f"alpha-1:alpha:{KEY}", signing_required=["alpha"], signing_window_ms=30_000)


def sim_orders(sim: SimControl, account: str, remark: str) -> list[dict]:
    return [o for o in sim.orders(account) if o["order_remark"] == remark]


async def slow_broker(sim: SimControl, **faults: float) -> None:
    for name, ms in faults.items():
        assert await asyncio.to_thread(sim.wait_applied, getattr(sim, name)(ms))


@pytest.fixture
async def serving(settings_for, tmp_path):
    """start(**settings) -> (executor, SimControl): a real executor on the simulator, served until the test ends."""
    started: list[tuple] = []

    async def start(**kw):
        settings = settings_for(broker="sim", sim_path=tmp_path / "sim", **kw)
        ex = build_executor(settings)
        task = asyncio.create_task(ex.run())
        sim = SimControl(tmp_path / "sim")
        started.append((ex, task, sim))
        async with pl.Client(settings.redis_url, settings.account, strategy="alpha", signing_key=KEY,
                             key_id="alpha-1") as client:
            # Answered once start-up is done (the simulator runs then: a fault posted earlier would be skipped).
            assert (await client.ping()).broker_connected
        return ex, sim

    yield start
    for ex, task, sim in started:
        ex.request_stop()
        await asyncio.wait_for(task, 20)
        sim.close()


@pytest.fixture
def proxy(account, redis_url):
    p = CutAfterXadd.to(redis_url, c.Keys(account).commands.encode())
    yield p
    p.close()


# --- defect 3: a signed command re-sent by the client after a connection cut ---------------------------------------
async def test_signed_order_resent_after_a_cut_is_answered_with_its_placement(serving, proxy, account):
    """The XADD lands, its answer is lost, the client re-sends the same command id. With a broker answering in
    150 ms the copy used to be refused as ``replayed`` ("nothing was placed") before the first copy's ack, while
    the order was placed and filled."""
    ex, sim = await serving(broker_timeout_ms=5_000, ack_wait_ms=2_000, **SIGNED)
    await slow_broker(sim, set_call_latency=150)
    async with pl.Client(proxy.url, account, strategy="alpha", signing_key=KEY, key_id="alpha-1") as client:
        await client.ping()
        proxy.armed.set()
        ack = await client.buy("600000.SH", 100, 10.5, client_order_id="resent-1")  # marketable: fills
        assert proxy.cut.is_set()  # the first copy's connection was cut after it landed: the client re-sent
        orders = sim_orders(sim, account, "resent-1")
        assert [o["order_id"] for o in orders] == [ack.order_id]


async def test_signed_cancel_resent_after_a_cut_gets_the_first_copys_answer(serving, proxy, account):
    """A repeated cancel (same command id, same signed content) is not sent to the broker again: it is answered
    with the first copy's outcome, so the caller sees the cancel accepted, never "refused" nor "rejected"."""
    ex, sim = await serving(broker_timeout_ms=5_000, ack_wait_ms=2_000, **SIGNED)
    async with pl.Client(proxy.url, account, strategy="alpha", signing_key=KEY, key_id="alpha-1") as client:
        ack = await client.buy("600000.SH", 100, 9.5, client_order_id="rest-1")  # below the market: rests
        await slow_broker(sim, set_call_latency=150)
        proxy.armed.set()
        cancelled = await client.cancel_order(client_order_id="rest-1")
        assert proxy.cut.is_set()
        assert cancelled.order_id == ack.order_id
    [order] = sim_orders(sim, account, "rest-1")
    assert order["order_id"] == ack.order_id


# --- defect 4: request seqs restart with every trader instance ----------------------------------------------------
async def _events_until(client: pl.Client, mark: str, done, timeout: float = 30.0) -> list:
    seen: list = []

    async def follow():
        async for event in client.events(from_id=mark):
            if isinstance(event, pl.Gap):
                continue
            seen.append(event)
            if done(seen):
                return

    await asyncio.wait_for(follow(), timeout)
    return seen


async def test_a_late_answer_from_the_previous_trader_is_not_given_to_the_next_traders_order(serving, account):
    """Orders A get no answer in time from trader #1 (the broker answers 5 s late); its liveness probe fails too,
    so the executor reconnects (trader #2: request seqs start again) and orders B get the same seqs, and time out
    as well. Matched by seq alone, a late answer to A could give B's journal records A's order ids, and
    cancel(client_order_id=B) cancel A's order. With the wheel's own class, trader #1's answers die with it (the
    adapter stops it once trader #2 is connected: its link is closed), so every A and B order must be found by
    reconciliation, each under its own client order id. (Answers stamped with the trader generation that sent
    the request: tests/broker/test_adapter_sim.py::test_disconnect_refuses_then_reconnect_with_a_new_trader.)"""
    n = 5
    # broker_timeout 0.5 s: the order answer timeout and the probe timeout; the first probe of a new trader comes
    # probe_interval after its reconciliation, so B time out before trader #2 is given up in turn.
    ex, sim = await serving(broker_timeout_ms=500, ack_wait_ms=300, probe_interval_ms=1_500, **SIGNED)
    async with pl.Client(ex.settings.redis_url, account, strategy="alpha", signing_key=KEY,
                         key_id="alpha-1") as client:
        mark = await client.last_event_id()
        await slow_broker(sim, delay_pushes=5_000)
        firsts = await asyncio.gather(*(client.buy("600000.SH", 100, 9.5, client_order_id=f"A{i}", deadline=30)
                                        for i in range(n)), return_exceptions=True)
        assert all(isinstance(r, pl.OutcomeUnknown) for r in firsts), firsts  # no answer within broker_timeout
        await _events_until(client, mark, lambda seen: any(e.type == "broker_connected" and e.data.reconnect
                                                           for e in seen))
        seconds = await asyncio.gather(*(client.buy("600000.SH", 100, 9.4, client_order_id=f"B{i}", deadline=30)
                                         for i in range(n)), return_exceptions=True)
        assert all(isinstance(r, pl.OutcomeUnknown) for r in seconds), seconds
        await slow_broker(sim, delay_pushes=0)
        broker_ids = {}
        for coid in [f"B{i}" for i in range(n)] + [f"A{i}" for i in range(n)]:
            [order] = sim_orders(sim, account, coid)  # exactly one broker order per client order id
            broker_ids[coid] = order["order_id"]

        async def resolved(coid: str) -> c.OutcomeResult:  # once reconciliation has read the broker's list
            for _ in range(100):
                outcome = await client.query_outcome(coid)
                if outcome.state is not c.OutcomeState.UNKNOWN:
                    return outcome
                await asyncio.sleep(0.1)
            return outcome

        for coid, oid in broker_ids.items():
            outcome = await resolved(coid)
            assert (outcome.state, outcome.order_id) == (c.OutcomeState.PLACED, oid), (coid, outcome)
        cancelled = await _while_reconnecting(client, mark, lambda: client.cancel_order(client_order_id="B0"))
        assert cancelled.order_id == broker_ids["B0"]


async def _while_reconnecting(client: pl.Client, mark: str, call):
    """``call()``, again after the next reconnect when the broker was down (the slow broker may have cost the
    executor a trader instance or two after the last answers)."""
    for _ in range(5):
        try:
            return await call()
        except pl.BrokerUnavailable:
            connected = len([e for e in await _events_until(client, mark, lambda seen: True, 1)
                             if e.type == "broker_connected"])
            await _events_until(client, mark, lambda seen: sum(e.type == "broker_connected" for e in seen)
                                > connected)
    return await call()


# --- suspected (b): a refusal not yet journaled, and a repeat of its client order id -------------------------------
async def test_a_repeat_admitted_before_the_refusal_is_journaled_gets_the_refusal(settings_for, tmp_path, account):
    """Copy 1 of client order id X is refused (its deadline passed before the executor read it: "nothing was
    placed"); copy 2 of X (same order, a later deadline) is read in the same batch, before that refusal is
    journaled. Once journaled, a refusal is what every repeat of X gets; before, copy 2 found no record and was
    placed, so one caller was told "nothing was placed" for an order the broker has."""
    import redis.asyncio as aioredis

    settings = settings_for(broker="sim", sim_path=tmp_path / "sim", broker_timeout_ms=5_000, ack_wait_ms=2_000)
    r = aioredis.Redis.from_url(settings.redis_url)
    async with pl.Client(settings.redis_url, account) as client:
        first = asyncio.create_task(client.buy("600000.SH", 100, 9.5, client_order_id="X1", deadline=0.3))
        # no executor yet: wait (on the Redis clock, which deadlines use) until copy 1's deadline has passed
        while True:
            entries = await r.xrange(c.Keys(account).commands)
            if entries:
                break
            await asyncio.sleep(0.01)
        deadline_ms = c.stream_id_ms(entries[0][0].decode()) + 300
        while True:
            seconds, micros = await r.time()
            if seconds * 1000 + micros // 1000 > deadline_ms:
                break
            await asyncio.sleep(0.05)
        second = asyncio.create_task(client.buy("600000.SH", 100, 9.5, client_order_id="X1", deadline=30))
        while len(await r.xrange(c.Keys(account).commands)) < 2:
            await asyncio.sleep(0.01)
        ex = build_executor(settings)  # reads both copies in one batch
        serving = asyncio.create_task(ex.run())
        try:
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert isinstance(outcomes[0], pl.Expired), outcomes
            sim = SimControl(tmp_path / "sim")
            placed = sim_orders(sim, account, "X1")
            sim.close()
            # one client order id, one outcome: the order was not placed, and the repeat says so too
            assert placed == [] and isinstance(outcomes[1], pl.Expired), (placed, outcomes)
            assert (await client.query_outcome("X1")).state is c.OutcomeState.EXPIRED
        finally:
            ex.request_stop()
            await asyncio.wait_for(serving, 20)
            await r.aclose()


# --- suspected (a): a client order id repeated after a broker timeout ---------------------------------------------
async def test_an_order_repeated_after_a_broker_timeout_is_never_placed_twice(serving, account):
    """The broker answers after broker_timeout: the order is answered outcome_unknown, and its client re-sends the
    same client order id (at once, and again after the broker's late answer), with no settle delay at all
    (recovery_settle_ms=0). A repeat is placed again only when the broker's order list, read after the first
    request was handed over, does not show it; the simulator's list shows every order it took (its commit
    precedes its answer), and an unreadable list answers outcome_unknown. Exactly one broker order results."""
    ex, sim = await serving(broker_timeout_ms=1_000, ack_wait_ms=300, probe_interval_ms=60_000,
                            recovery_settle_ms=0, **SIGNED)
    async with pl.Client(ex.settings.redis_url, account, strategy="alpha", signing_key=KEY,
                         key_id="alpha-1") as client:
        mark = await client.last_event_id()
        await slow_broker(sim, delay_pushes=1_500)
        with pytest.raises(pl.OutcomeUnknown):
            await client.buy("600000.SH", 100, 9.5, client_order_id="T1", deadline=30)
        # The order list is as slow as the answer: unknown (never a blind retry), or, when the late answer has
        # been journaled while the list was awaited, that answer.
        repeat = await asyncio.gather(client.buy("600000.SH", 100, 9.5, client_order_id="T1", deadline=30),
                                      return_exceptions=True)
        await slow_broker(sim, delay_pushes=0)
        await _events_until(client, mark, lambda seen: any(e.type == "order_responded" for e in seen))
        again = await client.buy("600000.SH", 100, 9.5, client_order_id="T1", deadline=30)
        [order] = sim_orders(sim, account, "T1")
        assert again.order_id == order["order_id"] and again.duplicate
        assert isinstance(repeat[0], pl.OutcomeUnknown) or repeat[0].order_id == order["order_id"], repeat

"""The engine against the real adapter (XtBroker) on the simulator. Skipped until both can be imported."""

from __future__ import annotations

import pytest
from fakes import order

from producer_lib import contract as c

try:
    from executor.broker import make_broker  # noqa: F401
    import executor.sim  # noqa: F401
    HAVE_SIM = True
except Exception:  # pragma: no cover - until the adapter and simulator land
    HAVE_SIM = False


@pytest.mark.skipif(not HAVE_SIM, reason="executor.broker.make_broker / executor.sim not importable yet")
async def test_engine_on_real_adapter_and_simulator(settings_for, client, tmp_path):
    from executor.app import build_executor

    settings = settings_for(broker="sim", sim_path=tmp_path / "sim", ack_wait_ms=2_000, broker_timeout_ms=5_000)
    ex = build_executor(settings)
    try:
        buy = order("int-1", code="600000.SH", price=10.5, volume=100)  # above the 10.00 market: fills
        place = await client.send(buy)
        again = await client.send(buy)
        ping = await client.send(c.Ping())
        await ex.run_until_idle()
        reps = {rep.command_id: rep for rep in await client.replies(3)}
        ack = reps[place].result
        assert reps[place].ok and ack.order_id > 0 and ack.client_order_id == "int-1", reps[place]
        assert reps[again].result.order_id == ack.order_id and reps[again].result.duplicate
        assert reps[ping].result.broker == "sim" and reps[ping].result.broker_connected
        outcome = await client.send(c.QueryOutcome(client_order_id="int-1"))
        orders = await client.send(c.QueryOrders(client_order_id="int-1"))
        asset = await client.send(c.QueryAsset())
        await ex.run_until_idle()
        reps = {rep.command_id: rep for rep in await client.replies(3)}
        assert reps[outcome].result.state is c.OutcomeState.PLACED
        assert [o.order_id for o in reps[orders].result.orders] == [ack.order_id]
        assert isinstance(reps[asset].result, c.AssetReport)
        events = await client.events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        mine = [e for e in events if e.order_id == ack.order_id]
        assert mine and all(e.client_order_id == "int-1" for e in mine)
        assert {"order_responded", "order_updated"} <= {e.type for e in mine}
    finally:
        await ex.stop()


@pytest.mark.skipif(not HAVE_SIM, reason="executor.broker.make_broker / executor.sim not importable yet")
async def test_following_events_from_a_mark_taken_before_placing_sees_the_orders_fill(settings_for, tmp_path):
    """The README's pattern: last_event_id() before placing, events(from_id=mark) after. A marketable order's fill
    is published before the reply arrives, so events("$") started after placing would miss it."""
    import asyncio

    from executor.app import build_executor
    from producer_lib import Client

    settings = settings_for(broker="sim", sim_path=tmp_path / "sim", ack_wait_ms=2_000, broker_timeout_ms=5_000)
    ex = build_executor(settings)
    serving = asyncio.create_task(ex.run())
    try:
        async with Client(settings.redis_url, settings.account) as client:
            await client.ping()
            mark = await client.last_event_id()
            ack = await client.buy("600000.SH", 100, 10.5)  # above the 10.00 market: fills at once

            async def fill():
                async for event in client.events(from_id=mark):
                    if event.type == "order_filled" and event.order_id == ack.order_id:
                        return event

            event = await asyncio.wait_for(fill(), 10)
            assert event.data.trade.volume == 100 and event.client_order_id == ack.client_order_id
    finally:
        ex.request_stop()
        await serving

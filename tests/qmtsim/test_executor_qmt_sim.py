"""End to end: `xtqueue executor --broker sim` drives the wheel's own XtQuantTrader (through the same adapter as
`--broker xt`) over a simulated MiniQMT in its own process, reached by the public client over real Redis. Replies
are checked against that MiniQMT's own records (SimControl reads its SQLite store)."""

from __future__ import annotations

import asyncio

import pytest
from support import miniqmt_and_executor

from executor.sim import SimControl
from producer_lib import BrokerRejected, Client, contract as c


@pytest.fixture
def stack(redis_url, account, tmp_path, redis_client):
    with miniqmt_and_executor(redis_url, account, tmp_path, "--probe-interval-ms", "300",
                              "--reconnect-max-backoff-ms", "300") as (executor, control):
        yield executor.proc, control


async def _wait_event(client: Client, mark: str, predicate, timeout_s: float = 15.0):
    async def scan():
        async for event in client.events(from_id=mark):
            if isinstance(event, c.EventMessage) and predicate(event):
                return event
    return await asyncio.wait_for(scan(), timeout_s)


def _row(control: SimControl, account: str, coid: str) -> dict:
    (row,) = [r for r in control.orders(account) if r["order_remark"] == coid]
    return row


async def test_the_executor_trades_through_the_real_class_on_the_simulated_miniqmt(stack, redis_url, account):
    proc, control = stack
    async with Client(redis_url, account, strategy="qmtsim") as client:
        mark = await client.last_event_id()
        pong = await client.ping()  # waits until the executor serves
        assert (pong.broker, pong.broker_connected) == ("sim", True)

        filled = await client.buy("600000.SH", 100, 10.00)
        row = _row(control, account, filled.client_order_id)
        assert (row["order_id"], row["traded_volume"]) == (filled.order_id, 100)
        fill = await _wait_event(client, mark, lambda e: e.type == "order_filled" and e.order_id == filled.order_id)
        assert fill.client_order_id == filled.client_order_id

        resting = await client.buy("600000.SH", 200, 9.50)
        assert resting.status is c.OrderStatus.REPORTED
        await client.cancel_order(resting.order_id)
        await _wait_event(client, mark, lambda e: e.type == "order_updated" and e.order_id == resting.order_id
                          and e.data.order.status is c.OrderStatus.CANCELED)
        assert _row(control, account, resting.client_order_id)["order_status"] == 54

        with pytest.raises(BrokerRejected) as odd_lot:
            await client.buy("600000.SH", 150, 10.00)
        assert _row(control, account, odd_lot.value.client_order_id)["order_status"] == 57

        (pos,) = await client.query_positions("600000.SH")
        assert (pos.volume, pos.can_use_volume) == (100, 0)
        assert {o.order_id for o in await client.query_orders()} == {r["order_id"] for r in control.orders(account)}

        # MiniQMT drops every session: the executor's trader hears on_disconnected and reconnects a new session
        control.disconnect(down_ms=300)
        await _wait_event(client, mark, lambda e: e.type == "broker_disconnected")
        await _wait_event(client, mark, lambda e: e.type == "broker_connected" and e.data.reconnect)
        again = await client.buy("600000.SH", 100, 10.00)
        assert _row(control, account, again.client_order_id)["traded_volume"] == 100
    assert len(control.orders(account)) == 4  # each order reached MiniQMT exactly once

"""End to end: a real executor process on the simulator, driven through producer_lib (async and sync) over real
Redis. Every operation of the usual HTTP wrapper and more; replies are checked against the simulator's own records
(its SQLite file, read through SimControl); every event type is observed on the event stream; and the raw streams
read as redis-cli shows them carry plain-text routing fields. The executor is the shared ``executor_process``
fixture (tests/conftest.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from executor.sim import SimControl
from producer_lib import BrokerRejected, Client, SyncClient, contract as c

SIM_ORDER_STATUS_CANCELED = 54


def _sim_order(control: SimControl, account: str, coid: str) -> dict:
    (row,) = [r for r in control.orders(account) if r["order_remark"] == coid]
    return row


async def _wait_event(client: Client, mark: str, predicate, timeout_s: float = 10.0):
    async def scan():
        async for event in client.events(from_id=mark):
            if not isinstance(event, c.EventMessage):
                continue
            if predicate(event):
                return event
    return await asyncio.wait_for(scan(), timeout_s)


async def test_every_operation_through_the_async_client(executor_process, redis_url, account):
    _proc, control = executor_process
    async with Client(redis_url, account, strategy="e2e") as client:
        mark = await client.last_event_id()

        pong = await client.ping()
        assert (pong.broker, pong.broker_connected) == ("sim", True)
        status = await client.query_account_status()
        assert (status.account, status.status) == (account, 0)
        asset = await client.query_asset()
        assert (asset.cash, asset.frozen_cash) == pytest.approx(control.cash(account))

        # A marketable limit buy fills at once; the ack carries the broker's order id.
        filled = await client.buy("600000.SH", 100, 10.50)
        row = _sim_order(control, account, filled.client_order_id)
        assert row["order_id"] == filled.order_id and row["traded_volume"] == 100
        # A resting buy below the market.
        resting = await client.place_order("600000.SH", "buy", 100, 9.50)
        assert resting.status is c.OrderStatus.REPORTED

        orders = await client.query_orders()
        assert {o.order_id for o in orders} >= {filled.order_id, resting.order_id}
        assert [o.order_id for o in await client.query_orders(order_id=filled.order_id)] == [filled.order_id]
        (one,) = await client.query_orders(client_order_id=resting.client_order_id)
        assert one.order_id == resting.order_id
        assert [o.order_id for o in await client.query_orders(cancelable_only=True)] == [resting.order_id]

        trades = await client.query_trades()
        assert [(t.order_id, t.volume) for t in trades] == [(filled.order_id, 100)]
        (pos,) = await client.query_positions("600000.SH")
        assert (pos.volume, pos.can_use_volume) == (100, 0)  # T+1
        assert [p.code for p in await client.query_positions()] == ["600000.SH"]
        outcome = await client.query_outcome(filled.client_order_id)
        assert (outcome.state, outcome.order_id) == (c.OutcomeState.PLACED, filled.order_id)

        # Cancels: by order id, by client order id, by exchange contract number; a refused one.
        await client.cancel_order(resting.order_id)
        by_coid = await client.buy("000001.SZ", 100, 10.50)  # below its 11.00 market, inside the -10% limit
        await client.cancel_order(client_order_id=by_coid.client_order_id)
        by_sysid = await client.buy("600000.SH", 100, 9.40)
        sysid = _sim_order(control, account, by_sysid.client_order_id)["order_sysid"]
        await client.cancel_order(sysid=sysid, market="SH")
        for ack in (resting, by_coid, by_sysid):
            await _wait_event(client, mark, lambda e, oid=ack.order_id: e.type == "order_updated"
                              and e.order_id == oid and e.data.order.status is c.OrderStatus.CANCELED)
            assert _sim_order(control, account, ack.client_order_id)["order_status"] == SIM_ORDER_STATUS_CANCELED
        with pytest.raises(BrokerRejected) as refused_cancel:
            await client.cancel_order(resting.order_id)
        assert refused_cancel.value.broker_message

        # A counter rejection (odd lot on the main board) is a typed error carrying the broker's own text.
        with pytest.raises(BrokerRejected) as odd_lot:
            await client.buy("600000.SH", 150, 10.00)
        assert "150" in odd_lot.value.broker_message
        assert _sim_order(control, account, odd_lot.value.client_order_id)["order_status"] == 57

        # The broker link drops and comes back: both are events, and the executor serves again.
        control.disconnect(down_ms=500)
        await _wait_event(client, mark, lambda e: e.type == "broker_disconnected")
        await _wait_event(client, mark, lambda e: e.type == "broker_connected" and e.data.reconnect)
        assert (await client.ping()).broker_connected

        # Every XtQuantTraderCallback, plus the executor's own connection and lifecycle events (executor_stopped
        # comes at shutdown; the kill-switch events have their own tests).
        expected = {"order_updated", "order_filled", "order_rejected", "cancel_rejected", "order_responded",
                    "cancel_responded", "asset_updated", "position_updated", "account_status", "broker_connected",
                    "broker_disconnected", "executor_started"}
        seen: dict[str, c.EventMessage] = {}

        async def collect():
            async for event in client.events(from_id="0"):
                seen.setdefault(event.type, event)
                if expected <= set(seen):
                    return
        try:
            await asyncio.wait_for(collect(), 10)
        finally:
            assert expected <= set(seen), f"never seen: {expected - set(seen)}"
        assert seen["order_filled"].client_order_id == filled.client_order_id
        assert seen["order_filled"].data.trade.volume == 100


def test_the_sync_client_shares_the_api(executor_process, redis_url, account):
    _proc, control = executor_process
    with SyncClient(redis_url, account) as client:
        assert client.ping().broker_connected
        ack = client.buy("510300.SH", 1000, 4.20)  # an ETF, marketable
        assert _sim_order(control, account, ack.client_order_id)["order_id"] == ack.order_id
        assert [p.code for p in client.query_positions()] == ["510300.SH"]
        assert client.query_asset().cash == pytest.approx(control.cash(account)[0])
        assert client.query_outcome(ack.client_order_id).state is c.OutcomeState.PLACED


def test_raw_streams_read_as_redis_cli_shows_them(executor_process, redis_url, account):
    raw = redis.Redis.from_url(redis_url)  # no decoding: bytes exactly as redis-cli prints them
    keys = c.Keys(account)
    with SyncClient(redis_url, account, strategy="rawcheck") as client:  # its reply stream goes at close
        ack = client.buy("600000.SH", 100, 10.50)
        (_sid, command), = [e for e in raw.xrange(keys.command_stream("rawcheck")) if e[1][b"coid"] == ack.client_order_id.encode()]
        for field in (b"v", b"type", b"account", b"id", b"coid", b"reply_to", b"ttl_ms", b"sent_ms"):
            command[field].decode("ascii")  # plain ASCII text, no msgpack
        assert (command[b"type"], command[b"account"]) == (b"place_order", account.encode())
        assert int(command[b"sent_ms"]) > 0 and int(command[b"ttl_ms"]) <= c.DEFAULT_ORDER_TTL_MS
        reply_key = command[b"reply_to"].decode()
        (_rid, reply), = [e for e in raw.xrange(reply_key) if e[1][b"id"] == command[b"id"]]
    assert (reply[b"type"], reply[b"cmd"], reply[b"ok"], reply[b"error"]) == (b"reply", b"place_order", b"1", b"")
    fill = [f for _i, f in raw.xrange(keys.events) if f[b"type"] == b"order_filled"]
    assert fill and fill[0][b"coid"] == ack.client_order_id.encode()
    assert fill[0][b"order_id"] == str(ack.order_id).encode() and int(fill[0][b"seq"]) > 0
    raw.close()

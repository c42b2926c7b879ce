"""XtBroker on the simulator: the adapter driving xtquant's own XtQuantTrader (over the stand-in binary) against a
simulated MiniQMT hosted in a thread of the test process, end to end."""

from __future__ import annotations

import asyncio

import pytest

from executor.broker import BrokerUnavailableError
from executor.broker.xt.adapter import XtBroker
from executor.sim import AccountSeed, MarketView, SimConfig, SimControl
from executor.sim.qmt import QmtSimServer, install
from producer_lib import contract as c

install()
from xtquant.xttrader import XtQuantTrader  # noqa: E402

ACCOUNT = "SIM001"


class Recorder:
    def __init__(self) -> None:
        self.events: list[c.Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: c.Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate, timeout: float = 5.0):
        async def _wait():
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def broker(tmp_path):
    config = SimConfig(accounts={ACCOUNT: AccountSeed(cash=1_000_000.0, positions={"000001.SZ": 1000})})
    server = QmtSimServer(tmp_path, config).start()
    b = XtBroker(name="sim", account_id=ACCOUNT, path=str(tmp_path), session_ids=[101, 102, 103],
                 trader_factory=XtQuantTrader, timeout_s=5.0)
    rec = Recorder()
    b.set_event_sink(rec)
    await b.connect()
    b.recorder = rec
    b.control = SimControl(tmp_path)
    b.market = MarketView(server.engine)
    yield b
    await b.close()
    b.control.close()
    server.close()


def _order(coid, code="600000.SH", side="buy", volume=100, price=None, **kw):
    return c.PlaceOrder(client_order_id=coid, code=code, side=side, volume=volume,
                        price=price, **kw)


async def test_marketable_buy_flows_response_then_reported_then_fill(broker):
    price = round(broker.market.last("600000.SH") * 1.02, 2)  # above the market: fills at once
    key = await broker.place_order(_order("buy-1", price=price))
    filled = await broker.recorder.wait_for(
        lambda e: isinstance(e, c.OrderUpdated) and e.order.status is c.OrderStatus.SUCCEEDED)
    kinds = [type(e).__name__ for e in broker.recorder.events]
    resp = next(e for e in broker.recorder.events if isinstance(e, c.OrderResponded))
    assert (resp.trader, resp.seq) == key and resp.client_order_id == "buy-1" and resp.order_id > 0
    assert kinds.index("OrderResponded") < kinds.index("OrderUpdated") < kinds.index("OrderFilled")
    assert filled.order.client_order_id == "buy-1" and filled.order.traded_volume == 100
    fill = next(e for e in broker.recorder.events if isinstance(e, c.OrderFilled))
    assert fill.trade.client_order_id == "buy-1" and fill.trade.side is c.Side.BUY
    orders = await broker.query_orders(strict=True)
    assert [(o.order_id, o.status) for o in orders] == [(resp.order_id, c.OrderStatus.SUCCEEDED)]
    (pos,) = [p for p in await broker.query_positions() if p.code == "600000.SH"]
    assert pos.volume == 100 and pos.can_use_volume == 0  # T+1
    trades = await broker.query_trades()
    assert [t.client_order_id for t in trades] == ["buy-1"]


async def test_resting_order_cancel_and_refused_cancel(broker):
    await broker.place_order(_order("rest-1", price=9.50))  # below the market: rests
    working = await broker.recorder.wait_for(
        lambda e: isinstance(e, c.OrderUpdated) and e.order.status is c.OrderStatus.REPORTED)
    oid = working.order.order_id
    assert [o.order_id for o in await broker.query_orders(cancelable_only=True)] == [oid]
    answer = await broker.cancel_order(order_id=oid)
    assert answer.cancel_result == 0
    await broker.recorder.wait_for(
        lambda e: isinstance(e, c.OrderUpdated) and e.order.order_id == oid and e.order.status is c.OrderStatus.CANCELED)
    again = await broker.cancel_order(order_id=oid)
    assert again.cancel_result == -1 and again.error_msg
    await broker.recorder.wait_for(lambda e: isinstance(e, c.CancelRejected) and e.order_id == oid)


async def test_counter_rejection_arrives_as_status_57_and_order_error(broker):
    await broker.place_order(_order("lot-150", volume=150, price=10.0))
    junk = await broker.recorder.wait_for(
        lambda e: isinstance(e, c.OrderUpdated) and e.order.status is c.OrderStatus.JUNK)
    err = await broker.recorder.wait_for(lambda e: isinstance(e, c.OrderRejected))
    assert junk.order.client_order_id == err.client_order_id == "lot-150"
    assert err.error_msg and err.order_id == junk.order.order_id


async def test_asset_and_account_status(broker):
    asset = await broker.query_asset()
    assert asset.account == ACCOUNT and asset.cash == pytest.approx(1_000_000.0)
    status = await broker.query_account_status()
    assert (status.status, status.status_name) == (0, "ok")
    assert await broker.probe()


async def test_disconnect_refuses_then_reconnect_with_a_new_trader(broker):
    first = broker._trader
    applied = broker.control.disconnect(down_ms=0)
    await broker.recorder.wait_for(lambda e: isinstance(e, c.BrokerDisconnected))
    assert broker.control.wait_applied(applied)
    assert not broker.connected
    with pytest.raises(BrokerUnavailableError):
        await broker.place_order(_order("while-down", price=10.0))
    await broker.connect()
    assert broker._trader is not first and broker.connected and await broker.probe()
    key = await broker.place_order(_order("after-reconnect", price=9.0))
    await broker.recorder.wait_for(
        lambda e: isinstance(e, c.OrderUpdated) and e.order.client_order_id == "after-reconnect")
    # seqs restart with the new trader instance; its requests and answers name that instance
    resp = next(e for e in broker.recorder.events if isinstance(e, c.OrderResponded))
    assert (resp.trader, resp.seq) == key and key.trader == 2


async def test_account_status_push_becomes_an_event(broker):
    event = await broker.recorder.wait_for(lambda e: isinstance(e, c.AccountStatusChanged))
    assert (event.status, event.status_name) == (0, "ok")

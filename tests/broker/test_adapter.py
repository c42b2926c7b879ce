"""XtBroker's threading and failure handling, against a scripted XtQuantTrader double.

The double answers on its own push thread, and can answer *before* the request call has returned its seq — the
ordering xtquant does not rule out (docs/architecture.md X7). The adapter must pair answers with requests either way."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from xtquant import xttype

from executor.broker import BrokerDeadlinePassedError, BrokerTimeoutError, BrokerUnavailableError
from executor.broker.base import RequestKey
from executor.broker.xt.adapter import XtBroker
from producer_lib import contract as c


class ScriptedTrader:
    """The XtQuantTrader surface XtBroker uses, with pushes on a single push thread like the wrapper's."""

    instances: list[ScriptedTrader] = []

    def __init__(self, path, session, callback=None, *, connect_rc=0, answer_before_return=True):
        self.path, self.session, self.callback = path, session, callback
        self.connect_rc = connect_rc
        self.answer_before_return = answer_before_return
        self.push = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        self.seq = 0
        self.calls: list[tuple] = []
        self.silent = False
        self.caller_threads: set[str] = set()
        ScriptedTrader.instances.append(self)

    def register_callback(self, cb):
        self.callback = cb

    def start(self):
        pass

    def stop(self):
        self.push.shutdown(wait=False)

    def connect(self):
        return self.connect_rc

    def subscribe(self, account):
        return 0

    def _next(self):
        self.caller_threads.add(threading.current_thread().name)
        self.seq += 1
        return self.seq

    def _answer(self, fn, *args):
        if self.silent:
            return
        done = self.push.submit(fn, *args)
        if self.answer_before_return:
            done.result()  # the answer is delivered before the request call returns

    def order_stock_async(self, account, code, order_type, volume, price_type, price, strategy, remark):
        seq = self._next()
        self.calls.append(("order", code, order_type, volume, price_type, price, strategy, remark))
        resp = xttype.XtOrderResponse(account.account_id, 1000 + seq, strategy, remark, "", seq)
        self._answer(self.callback.on_order_stock_async_response, resp)
        return seq

    def cancel_order_stock_async(self, account, order_id):
        seq = self._next()
        self.calls.append(("cancel", order_id))
        resp = xttype.XtCancelOrderResponse(account.account_id, 0 if order_id > 0 else -1, order_id, "", seq, "")
        self._answer(self.callback.on_cancel_order_stock_async_response, resp)
        return seq

    def query_stock_orders_async(self, account, callback, cancelable_only=False):
        self._next()
        self._answer(callback, None if self.silent is None else [])

    def query_account_status_async(self, callback):
        self._next()
        self._answer(callback, [xttype.XtAccountStatus("A1", 2, 0)])

    def disconnect(self):
        self.push.submit(self.callback.on_disconnected).result()


def make_broker(**trader_kw):
    ScriptedTrader.instances.clear()
    broker = XtBroker(name="scripted", account_id="A1", path="/nowhere", session_ids=[101, 102],
                      trader_factory=lambda p, s: ScriptedTrader(p, s, **trader_kw), timeout_s=1.0)
    events: list[c.Event] = []
    arrived = asyncio.Event()

    def sink(e):
        events.append(e)
        arrived.set()

    broker.set_event_sink(sink)
    return broker, events, arrived


def _order(coid="coid-1"):
    return c.PlaceOrder(client_order_id=coid, code="600000.SH", side="buy", volume=100, price=10.0, strategy="s")


@pytest.mark.parametrize("answer_first", [True, False])
async def test_place_order_sends_remark_and_the_answer_arrives_as_an_event(answer_first):
    broker, events, arrived = make_broker(answer_before_return=answer_first)
    await broker.connect()
    key = await broker.place_order(_order())
    seq = key.seq
    while not events:
        await arrived.wait()
        arrived.clear()
    (resp,) = [e for e in events if isinstance(e, c.OrderResponded)]
    assert (resp.seq, resp.order_id, resp.client_order_id) == (seq, 1000 + seq, "coid-1")
    assert resp.trader == key.trader == 1  # the answer names the trader instance that took the request
    trader = ScriptedTrader.instances[-1]
    assert trader.calls == [("order", "600000.SH", 23, 100, 11, 10.0, "s", "coid-1")]
    # xtquant is only ever called from the one broker thread, never from the event loop's thread
    assert all(name.startswith("xt-broker") for name in trader.caller_threads)
    await broker.close()


async def test_a_batch_sends_in_order_and_skips_an_order_whose_deadline_passed_while_waiting():
    # The first order of the batch holds the broker thread; the second one's deadline passes meanwhile, so it must
    # not be sent at all (checked on the broker thread right before its call); the third has time and goes out.
    broker, _, _ = make_broker()
    await broker.connect()
    trader = ScriptedTrader.instances[-1]
    entered, gate = threading.Event(), threading.Event()
    plain = trader.order_stock_async

    def slow_first(account, code, order_type, volume, price_type, price, strategy, remark):
        if remark == "first":
            entered.set()
            gate.wait(5)
        return plain(account, code, order_type, volume, price_type, price, strategy, remark)

    trader.order_stock_async = slow_first
    now = time.monotonic()
    batch = asyncio.ensure_future(broker.place_orders([_order("first"), _order("late"), _order("third")],
                                                      [now + 60, now + 0.05, now + 60]))
    assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
    await asyncio.sleep(max(0.0, now + 0.05 - time.monotonic()) + 0.01)  # until the known deadline has passed
    gate.set()
    first, late, third = await batch
    assert isinstance(first, RequestKey) and isinstance(third, RequestKey)
    assert isinstance(late, BrokerDeadlinePassedError)
    assert [call[-1] for call in trader.calls] == ["first", "third"]
    await broker.close()


@pytest.mark.parametrize("answer_first", [True, False])
async def test_cancel_pairs_its_response_whichever_comes_first(answer_first):
    broker, _, _ = make_broker(answer_before_return=answer_first)
    await broker.connect()
    ok = await broker.cancel_order(order_id=1001)
    refused = await broker.cancel_order(order_id=-5)
    assert (ok.order_id, ok.cancel_result) == (1001, 0)
    assert refused.cancel_result == -1
    await broker.close()


async def test_silent_broker_times_out_instead_of_hanging():
    broker, _, _ = make_broker()
    await broker.connect()
    ScriptedTrader.instances[-1].silent = True
    with pytest.raises(BrokerTimeoutError):
        await broker.cancel_order(order_id=1, timeout_s=0.2)
    with pytest.raises(BrokerTimeoutError):
        await broker.query_orders()
    await broker.close()


async def test_connect_failure_is_unavailable_and_calls_refuse_without_touching_xtquant():
    broker, _, _ = make_broker(connect_rc=-1)
    with pytest.raises(BrokerUnavailableError):
        await broker.connect()
    assert not broker.connected
    with pytest.raises(BrokerUnavailableError):
        await broker.place_order(_order())
    assert ScriptedTrader.instances[-1].calls == []


async def test_disconnect_marks_down_publishes_once_and_reconnect_uses_a_new_trader_and_session():
    broker, events, arrived = make_broker()
    await broker.connect()
    first = ScriptedTrader.instances[-1]
    first.disconnect()
    while not any(isinstance(e, c.BrokerDisconnected) for e in events):
        await arrived.wait()
        arrived.clear()
    assert not broker.connected
    assert not await broker.probe()
    await broker.connect()
    second = ScriptedTrader.instances[-1]
    assert second is not first and (first.session, second.session) == (101, 102)
    first.callback.on_disconnected()  # a replaced (stopped) trader's farewell must not take the new link down
    assert broker.connected and await broker.probe()
    assert sum(isinstance(e, c.BrokerDisconnected) for e in events) == 1
    await broker.close()


async def test_strict_order_query_refuses_to_read_none_as_empty():
    broker, _, _ = make_broker()
    await broker.connect()
    trader = ScriptedTrader.instances[-1]
    trader.silent = None  # answers None, as xtquant does for "failed (or empty)"
    assert await broker.query_orders() == []
    with pytest.raises(BrokerUnavailableError):
        await broker.query_orders(strict=True)
    await broker.close()


async def test_guard_false_means_nothing_reaches_xtquant():
    from executor.broker import BrokerFencedError

    broker, _, _ = make_broker()
    await broker.connect()
    broker.guard = lambda: False  # the lease is gone (checked on the broker thread, right before the call)
    with pytest.raises(BrokerFencedError):
        await broker.place_order(_order())
    with pytest.raises(BrokerFencedError):
        await broker.cancel_order(order_id=1001)
    assert ScriptedTrader.instances[-1].calls == []
    await broker.close()

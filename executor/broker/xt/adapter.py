"""XtBroker: the one adapter between the engine and an ``XtQuantTrader``-shaped object.

The trader comes from a factory ``(path, session) -> trader``: ``xtquant.xttrader.XtQuantTrader``, over the real
binary (MiniQMT) or over the stand-in of executor/sim/qmt (the simulated MiniQMT). Nothing in this file knows which.

Why it is built the way it is (the facts are listed in docs/architecture.md, "Facts about xtquant"):
- xtquant's sync calls block with no timeout and are not safe to call concurrently, and constructing a trader
  replaces the calling thread's asyncio loop (X1): every trader call runs on one dedicated broker thread,
  never on the event loop's thread.
- Callbacks arrive one at a time on the trader's push thread and exceptions raised there vanish silently (X2):
  each callback is translated to a contract event right there, inside try/except with logging, and handed to the
  loop through one FIFO (``_LoopInbox``: one ``call_soon_threadsafe`` per burst), which keeps arrival order.
- We use the ``_async`` variants for orders, cancels and queries, so a hung MiniQMT cannot wedge the broker
  thread forever; their answers are awaited with a timeout.
- The connection is one-shot and ``on_connected`` never fires (X5): ``connect()`` always builds a new
  trader with the next session id of a bounded pool, starts, connects and subscribes; connection state is ours,
  driven by ``on_disconnected`` and ``probe()``.
- ``query_stock_orders`` returns ``None`` for "failed" and sometimes for "empty" (X9): ``strict=True`` turns
  ``None`` into an error, so reconciliation never reads an unknown list as an empty one.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from xtquant.xttype import StockAccount

from producer_lib import contract as c

from .. import base
from . import credit, parsing

log = logging.getLogger("executor.broker")

TraderFactory = Callable[[str, int], Any]


class XtBroker(base.Broker):
    """Drives one account through an XtQuantTrader-shaped object (real or simulated)."""

    def __init__(self, *, name: str, account_id: str, trader_factory: TraderFactory, path: str,
                 session_ids: Iterable[int], executor_id: str = "", timeout_s: float = 10.0,
                 account_type: str = "STOCK", closers: Iterable[Callable[[], None]] = ()) -> None:
        self.name = name
        self._closers = list(closers)  # run last by close(): what the factory started (a simulated MiniQMT)
        self._account = StockAccount(account_id, account_type)
        if isinstance(self._account, str):  # xttype returns an error string instead of raising (X11)
            raise ValueError(self._account)
        self._factory = trader_factory
        self._path = path
        self._sessions = itertools.cycle(list(session_ids) or [100])
        self._executor_id = executor_id
        self._timeout_s = timeout_s
        self._thread = self._new_thread()
        self._trader: Any = None
        self._generation = 0
        self._trader_generation = 0  # the generation of self._trader: stamped on every request key it returns
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: base.EventSink | None = None
        # Cancel responses may arrive on the push thread before cancel_order_stock_async has returned its seq on
        # the broker thread; this rendezvous (under one lock) pairs them whichever comes first, by (generation, seq):
        # seqs restart with every trader instance.
        self._lock = threading.Lock()
        self._cancel_waiters: dict[base.RequestKey, asyncio.Future[c.CancelResponded]] = {}
        self._early_cancel_responses: dict[base.RequestKey, c.CancelResponded] = {}
        self._inbox: _LoopInbox | None = None  # other threads -> the event loop (see _LoopInbox)
        self._order_reports: dict[tuple, c.OrderReport] = {}  # the last full order list, by raw fields
        self._trade_reports: dict[tuple, c.TradeReport] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def session(self) -> int | None:
        return getattr(self, "_session", None)

    def set_event_sink(self, sink: base.EventSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox_for(self._loop)
        session = next(self._sessions)
        generation = self._generation + 1

        def build() -> Any:
            self._generation = generation  # pushes of older traders are now stale
            callback = _Callback(self, generation)
            trader = self._factory(self._path, session)
            if not hasattr(trader, "oldloop"):
                # The wheel's __del__ puts back the main thread's loop from ``oldloop``, which its constructor sets
                # only on the main thread: built here, on the broker thread, a trader collected on the main thread
                # would raise AttributeError there. The loop it should find is the one this broker serves.
                trader.oldloop = self._loop
            trader.register_callback(callback)
            trader.start()
            rc = trader.connect()
            if rc != 0:
                _stop_quietly(trader)
                raise base.BrokerUnavailableError(f"connect() returned {rc} (session {session}): is MiniQMT "
                                                  "running, logged in, in 极简模式, and the path right?")
            rc = trader.subscribe(self._account)
            if rc != 0:
                _stop_quietly(trader)
                raise base.BrokerUnavailableError(f"subscribe() returned {rc} for account "
                                                  f"{self._account.account_id}")
            return trader

        trader = await self._run(build, timeout_s=self._timeout_s)
        old, self._trader = self._trader, trader
        self._trader_generation = generation
        self._session = session
        self._connected = True
        if old is not None:  # a dead trader's stop() may block: never on our threads
            threading.Thread(target=_stop_quietly, args=(old,), daemon=True, name="xt-stop-old").start()
        log.info("broker connected", extra={"broker": self.name, "session": session})

    async def close(self) -> None:
        trader, self._trader = self._trader, None
        self._connected = False
        if trader is not None:
            try:
                await asyncio.wait_for(self._thread.submit(self._inbox_for(asyncio.get_running_loop()),
                                                           lambda: _stop_quietly(trader)), self._timeout_s)
            except Exception:
                log.warning("trader stop() did not finish in time")
        self._thread.shutdown()
        for close in self._closers:
            await asyncio.to_thread(close)

    # --- orders and cancels -----------------------------------------------------------------------------------
    async def place_order(self, cmd: c.PlaceOrder) -> base.RequestKey:
        result = (await self.place_orders([cmd]))[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def place_orders(self, cmds: list[c.PlaceOrder],
                           deadlines: list[float] | None = None) -> list[base.RequestKey | BaseException]:
        """One hop to the broker thread for the whole batch; order_stock_async for each, in order. Immediately
        before each call: its deadline (monotonic) and the lease guard."""
        account = self._account
        generation = self._trader_generation  # of the trader _call hands to send() (read together, no await)
        if deadlines is None:
            deadlines = [float("inf")] * len(cmds)
        calls = [(cmd.code, parsing.SIDE_TO_ORDER_TYPE[cmd.side], credit.order_volume(cmd),
                  *credit.order_price(cmd, parsing.PRICE_TYPE_TO_XT[cmd.price_type]), cmd.strategy,
                  cmd.client_order_id, deadline)
                 for cmd, deadline in zip(cmds, deadlines)]

        def send(trader: Any) -> list[base.RequestKey | BaseException]:
            out: list[base.RequestKey | BaseException] = []
            monotonic = time.monotonic
            for code, order_type, volume, price_type, price, strategy, remark, deadline in calls:
                if monotonic() > deadline:
                    out.append(base.BrokerDeadlinePassedError("deadline passed before the order was sent"))
                    continue
                try:
                    self._check_guard()
                    seq = trader.order_stock_async(account, code, order_type, volume, price_type, price, strategy,
                                                   remark)
                except Exception as exc:  # this order; the batch goes on (a fenced guard fails every later one)
                    out.append(exc)
                    continue
                if not isinstance(seq, int) or seq <= 0:
                    out.append(base.BrokerUnavailableError(f"order_stock_async returned {seq!r}"))
                else:
                    out.append(base.RequestKey(generation, seq))
            return out

        try:
            return await self._call(send)
        except Exception as exc:  # not connected (nothing sent) or the broker thread is stuck (may have been sent)
            return [exc] * len(cmds)

    async def cancel_order(self, *, order_id: int | None = None, sysid: str | None = None,
                           market: c.Market | None = None, timeout_s: float | None = None) -> c.CancelResponded:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[c.CancelResponded] = loop.create_future()
        account = self._account
        generation = self._trader_generation

        def send(trader: Any) -> c.CancelResponded | None:
            self._check_guard()
            if sysid is not None:
                seq = trader.cancel_order_stock_sysid_async(account, parsing.MARKET_TO_XT[c.Market(market)], sysid)
            else:
                seq = trader.cancel_order_stock_async(account, order_id)
            if not isinstance(seq, int) or seq <= 0:
                raise base.BrokerUnavailableError(f"cancel request returned {seq!r}")
            key = base.RequestKey(generation, seq)
            with self._lock:
                early = self._early_cancel_responses.pop(key, None)
                if early is None:
                    self._cancel_waiters[key] = waiter
                    waiter.key = key  # type: ignore[attr-defined]
            return early

        early = await self._call(send)
        if early is not None:
            return early
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s or self._timeout_s)
        except asyncio.TimeoutError:
            with self._lock:
                self._cancel_waiters.pop(getattr(waiter, "key", None), None)  # type: ignore[arg-type]
            raise base.BrokerTimeoutError("no answer to the cancel request") from None

    def _cancel_answered(self, event: c.CancelResponded) -> None:
        """Push thread: pair a cancel response with its waiter, or park it until the seq is known."""
        key = base.RequestKey(event.trader, event.seq)
        with self._lock:
            waiter = self._cancel_waiters.pop(key, None)
            if waiter is None:
                if len(self._early_cancel_responses) > 10_000:  # responses to cancels nobody waits for
                    self._early_cancel_responses.clear()
                self._early_cancel_responses[key] = event
                return
        inbox = self._inbox
        if inbox is not None:
            inbox.put(_resolve, waiter, event)

    # --- queries ----------------------------------------------------------------------------------------------
    async def query_asset(self) -> c.AssetReport:
        result = await self._query(lambda t, cb: t.query_stock_asset_async(self._account, cb))
        if result is None:
            raise base.BrokerUnavailableError("query_stock_asset returned None")
        return parsing.asset_report(result)

    async def query_positions(self) -> list[c.PositionReport]:
        result = await self._query(lambda t, cb: t.query_stock_positions_async(self._account, cb))
        return [parsing.position_report(p) for p in result or []]

    async def query_orders(self, cancelable_only: bool = False, *, strict: bool = False) -> list[c.OrderReport]:
        result = await self._query(lambda t, cb: t.query_stock_orders_async(self._account, cb, cancelable_only))
        if result is None and strict:
            raise base.BrokerUnavailableError("query_stock_orders returned None: the order list is unknown")
        if cancelable_only:
            return [parsing.order_report(o) for o in result or []]
        # The full list comes back every reconciliation pass (the whole day's orders): an order whose raw fields
        # are unchanged since the last full list keeps its report object instead of being translated again.
        out, self._order_reports = _translate(result, self._order_reports, parsing.order_key, parsing.order_report)
        return out

    async def query_order(self, order_id: int) -> c.OrderReport | None:
        for order in await self.query_orders(strict=True):
            if order.order_id == order_id:
                return order
        return None

    async def query_trades(self) -> list[c.TradeReport]:
        result = await self._query(lambda t, cb: t.query_stock_trades_async(self._account, cb))
        out, self._trade_reports = _translate(result, self._trade_reports, parsing.trade_key, parsing.trade_report)
        return out

    async def query_account_status(self) -> c.AccountStatusResult:
        result = await self._query(lambda t, cb: t.query_account_status_async(cb))
        for status in result or []:
            if getattr(status, "account_id", None) == self._account.account_id:
                code = int(getattr(status, "status", -1))
                return c.AccountStatusResult(account=self._account.account_id, status=code,
                                             status_name=parsing.account_status_name(code))
        return c.AccountStatusResult(account=self._account.account_id, status=-1,
                                     status_name="not_reported_by_broker")

    async def query_credit(self, cmd: c.Command) -> Any:
        """One of the five credit queries (contract.CREDIT_QUERY_TYPES): the broker's list as its result model."""
        method, translate, wrap = credit.QUERIES[type(cmd)]
        result = await self._query(lambda t, cb: getattr(t, method)(self._account, cb))
        return wrap([translate(x) for x in result or []])

    async def probe(self) -> bool:
        if not self._connected:
            return False
        try:
            result = await self._query(lambda t, cb: t.query_account_status_async(cb),
                                       timeout_s=min(self._timeout_s, 3.0))
        except Exception:
            return False
        return result is not None

    # --- plumbing ---------------------------------------------------------------------------------------------
    async def _query(self, start: Callable[[Any, Callable[[Any], None]], Any],
                     timeout_s: float | None = None) -> Any:
        """Run an xtquant ``query_*_async`` and await the result its callback delivers."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        inbox = self._inbox_for(loop)

        def callback(result: Any) -> None:  # on the trader's push thread
            inbox.put(_resolve, answer, result)

        await self._call(lambda trader: start(trader, callback))
        timer = loop.call_later(timeout_s or self._timeout_s, _expire, answer)
        try:
            return await answer
        except _Stuck:
            raise base.BrokerTimeoutError("the broker did not answer the query in time") from None
        finally:
            timer.cancel()

    async def _call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(trader)`` on the broker thread. Refuses at once when not connected."""
        if not self._connected or self._trader is None:
            raise base.BrokerUnavailableError("broker not connected")
        trader = self._trader
        return await self._run(lambda: fn(trader), timeout_s=self._timeout_s)

    async def _run(self, fn: Callable[[], Any], *, timeout_s: float) -> Any:
        loop = asyncio.get_running_loop()
        future = self._thread.submit(self._inbox_for(loop), fn)
        # The answer wakes this task directly (no wait_for wrapper: one loop iteration less per broker call).
        timer = loop.call_later(timeout_s, _expire, future)
        try:
            return await future
        except _Stuck:
            # The broker thread is stuck inside xtquant (sync calls have no timeout). Abandon it: later calls get a
            # fresh thread, and the link counts as down until a reconnect succeeds.
            log.error("broker call stuck for %.1fs; abandoning the broker thread", timeout_s)
            self._thread = self._new_thread()
            self._mark_disconnected("a broker call did not return")
            raise base.BrokerTimeoutError("the broker call did not return in time") from None
        finally:
            timer.cancel()

    def _check_guard(self) -> None:
        """Broker thread, immediately before a trading call: a leader paused past its lease must not trade."""
        guard = self.guard
        if guard is not None and not guard():
            raise base.BrokerFencedError("lease lost: the request was not sent")

    def _new_thread(self) -> _BrokerThread:
        return _BrokerThread("xt-broker")

    def _post(self, event: c.Event) -> None:
        """Push thread → event loop, preserving order (through the inbox: one loop wake-up per burst)."""
        loop, inbox = self._loop, self._inbox
        if loop is None or loop.is_closed() or inbox is None or not inbox.put(self._deliver, event):
            log.warning("broker event after shutdown dropped: %s", event.TYPE)

    def _inbox_for(self, loop: asyncio.AbstractEventLoop) -> _LoopInbox:
        """The inbox of ``loop`` (created on the loop's own thread: connect() and every broker call)."""
        inbox = self._inbox
        if inbox is None or inbox.loop is not loop:
            inbox = self._inbox = _LoopInbox(loop)
        return inbox

    def _deliver(self, event: c.Event) -> None:
        if self._sink is None:
            return
        try:
            self._sink(self.observed(event))  # per-order answers first (base.Broker.observed), then the engine
        except Exception:
            log.exception("event sink failed on %s", event.TYPE)

    def _mark_disconnected(self, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        log.warning("broker disconnected: %s", reason)
        self._post(c.BrokerDisconnected(executor_id=self._executor_id, reason=reason))

    def _on_disconnected(self, generation: int) -> None:
        if generation == self._generation:  # a replaced trader's farewell is not news
            self._mark_disconnected("on_disconnected")


class _Callback:
    """The XtQuantTraderCallback we register: translate on the push thread, never raise."""

    def __init__(self, broker: XtBroker, generation: int) -> None:
        self._broker = broker
        self._generation = generation

    def _emit(self, translate: Callable[[Any], c.Event], obj: Any) -> c.Event | None:
        try:
            event = translate(obj)
        except Exception:
            log.exception("could not translate a broker callback (%s)", getattr(translate, "__name__", "?"))
            return None
        self._broker._post(event)
        return event

    def on_connected(self) -> None:  # never fired by xtquant (X5); kept for completeness
        pass

    def on_disconnected(self) -> None:
        self._broker._on_disconnected(self._generation)

    def on_account_status(self, status: Any) -> None:
        self._emit(parsing.account_status_changed, status)

    def on_stock_asset(self, asset: Any) -> None:
        self._emit(parsing.asset_updated, asset)

    def on_stock_order(self, order: Any) -> None:
        self._emit(parsing.order_updated, order)

    def on_stock_trade(self, trade: Any) -> None:
        self._emit(parsing.order_filled, trade)

    def on_stock_position(self, position: Any) -> None:
        self._emit(parsing.position_updated, position)

    def on_order_error(self, error: Any) -> None:
        self._emit(parsing.order_rejected, error)

    def on_cancel_error(self, error: Any) -> None:
        self._emit(parsing.cancel_rejected, error)

    def on_order_stock_async_response(self, response: Any) -> None:
        # Stamped with this callback's trader instance: its seq means nothing without it (base.RequestKey).
        self._emit(functools.partial(parsing.order_responded, trader=self._generation), response)

    def on_cancel_order_stock_async_response(self, response: Any) -> None:
        try:
            event = parsing.cancel_responded(response, trader=self._generation)
        except Exception:
            log.exception("could not translate a cancel response")
            return
        self._broker._cancel_answered(event)
        self._broker._post(event)


def _translate(raw: Any, cache: dict[tuple, Any], key: Callable[[Any], tuple],
               translate: Callable[[Any], Any]) -> tuple[list[Any], dict[tuple, Any]]:
    """Reports of a raw xtquant list, reusing the report of any entry whose raw fields are in ``cache`` (reports are
    frozen models); returns the reports and the cache for the next list (only this list's entries)."""
    out, fresh = [], {}
    for obj in raw or []:
        k = key(obj)
        try:
            report = cache.get(k) or translate(obj)
            fresh[k] = report
        except TypeError:  # an unhashable raw field: translated without the cache
            report = translate(obj)
        out.append(report)
    return out, fresh


class _LoopInbox:
    """Calls handed from other threads (pushes, query answers, broker-thread results) to one event loop, in the
    order they were put: a FIFO drained by ONE call_soon_threadsafe per burst instead of one each. An item is
    appended BEFORE the flag is read and the drain clears the flag BEFORE it pops, so every item is either taken
    by a drain already scheduled or schedules its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[tuple[Callable[..., Any], tuple]] = collections.deque()
        self._scheduled = False

    def put(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Any thread. False when the loop is closed (the call will not run)."""
        self._items.append((fn, args))
        if self._scheduled:
            return True
        self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            return False
        return True

    def _drain(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            fn, args = items.popleft()
            try:
                fn(*args)
            except Exception:  # one bad item must not strand the ones behind it
                log.exception("handing a broker result to the event loop failed")


class _Stuck(Exception):
    """A broker call outlived its timeout (set on its future by the loop's timer)."""


class _BrokerThread:
    """The one thread that calls into xtquant: calls run in submission order; each result comes back to the loop
    with one call_soon_threadsafe (lighter than run_in_executor + wait_for, which take extra loop iterations)."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, inbox: _LoopInbox, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = inbox.loop.create_future()
        self._queue.put((inbox, future, fn))
        return future

    def shutdown(self) -> None:
        """The thread ends after the call it is in (if any); calls still queued are not run."""
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            inbox, future, fn = item
            if future.cancelled():  # read across threads: at worst the call runs and its result is dropped
                continue
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the awaiting task, never lost in this thread
                result, error = None, exc
            if not inbox.put(_settle, future, result, error):  # the loop is closed: nobody waits any more
                return


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # timed out or cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(_Stuck())


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _stop_quietly(trader: Any) -> None:
    try:
        trader.stop()
    except Exception:
        log.warning("trader stop() raised", exc_info=True)

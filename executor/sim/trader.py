"""``SimXtQuantTrader``: a pure-Python twin of ``xtquant.xttrader.XtQuantTrader`` over the simulated broker.

Same constructor (plus ``config=``), same methods, return values and failure values; returned and pushed objects
are real ``xtquant.xttype`` instances. Behaviour choices (each also listed in executor/sim/README.md):

* Pushes run on ONE callback thread per trader, one at a time, in order; an exception from a user callback is
  logged (``logging.getLogger("executor.sim").exception``) and the thread goes on.
* Sync calls (``order_stock``, cancels, queries, ``subscribe``) execute directly on the caller's thread under the
  engine lock and wait only for the SQLite commit, never for the callback thread: calling them from inside a
  callback works (the real wrapper deadlocks there; do not rely on this against real QMT).
* As in the real wrapper, the sync ``order_stock`` / ``cancel_order_stock*`` deliver their reply to the caller,
  NOT to ``on_order_stock_async_response`` / ``on_cancel_order_stock_async_response``; ``on_order_error`` /
  ``on_cancel_error`` are still pushed for them.
* ``on_order_error`` / ``on_cancel_error`` go only to the trader that sent the request; ``on_stock_*`` pushes go
  to every connected trader (of this process) subscribed to the account, including for orders other instances
  placed.
* ``connect()`` before ``start()`` returns -1. After a disconnect the instance is dead for good (one-shot):
  orders -1 / response order_id -1, cancels -1, queries ``None``, subscribe -1; build a new instance.
* ``run_forever()`` returns after ``stop()`` (the real one never returns). ``set_timeout`` is a no-op.
* ``on_connected`` never fires (as in the real wheel); ``on_account_status(ACCOUNT_STATUS_OK)`` is pushed once
  after each successful ``subscribe``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from xtquant import xtconstant as xc
from xtquant import xttype as xt

from .config import SimConfig
from .engine import NOARG, Engine, acquire_engine, release_engine
from .market import MarketView
from .objects import BUILDERS, GROUP, SimXtAccountInfo

log = logging.getLogger("executor.sim")


class _Worker:
    """A single callback thread (the wrapper's ThreadPoolExecutor(max_workers=1))."""

    def __init__(self, trader: "SimXtQuantTrader", name: str) -> None:
        self._trader = trader
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, items) -> None:
        self.q.put(items)

    def stop(self) -> None:
        self.q.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=30)

    def _run(self) -> None:
        # Items wait in a heap by the time they are due. In order (FIFO: an item is due no earlier than the one
        # queued before it) unless the faults make answers independent (Faults.independent: a quick answer
        # overtakes a slow one).
        mono = time.monotonic
        faults = self._trader._engine.faults
        heap: list[tuple[float, int, Any, Any]] = []
        count = itertools.count()
        last_due = 0.0
        stopping = False
        while heap or not stopping:
            if not stopping:
                wait = None if not heap else heap[0][0] - mono()
                try:
                    items = self.q.get(timeout=wait) if wait is None or wait > 0 else self.q.get_nowait()
                except queue.Empty:
                    items = ()
                if items is None:
                    stopping = True  # deliver what is queued, then end
                    continue
                if items:
                    independent = faults.independent
                    for nb, fn, arg in items:
                        due = nb if independent else max(nb, last_due)
                        last_due = max(last_due, due)
                        heapq.heappush(heap, (due, next(count), fn, arg))
                    continue
            due, _, fn, arg = heapq.heappop(heap)
            d = due - mono()
            if d > 0:
                time.sleep(d)
            self._call(fn, arg)

    def _call(self, fn: Any, arg: Any) -> None:
        trader = self._trader
        if fn is GROUP:  # deferred pushes: (callback name, constructor arguments), built here
            for name, args in arg:
                try:
                    cb = trader.callback
                    if cb is None:
                        continue
                    m = getattr(cb, name)
                    m(BUILDERS[name](args))
                except Exception:
                    log.exception("xtsim: user callback %s raised", name)
            return
        try:
            if fn.__class__ is str:
                cb = trader.callback
                if cb is None:
                    return  # the real wrapper raises inside its executor and drops it silently
                m = getattr(cb, fn)
                if arg is NOARG:
                    m()
                else:
                    m(arg)
            else:
                fn(arg)
        except Exception:
            log.exception("xtsim: user callback %s raised", getattr(fn, "__name__", fn))


class SimXtQuantTrader:
    def __init__(self, path, session, callback=None, *, config: SimConfig | None = None) -> None:
        self.path = Path(path)
        self.session = session
        self.callback = callback
        self.connected = False  # like the real attribute: set by connect(), never cleared on disconnect
        self._engine: Engine = acquire_engine(self.path, config)
        self._connected = False
        self._disconnected = False
        self._started = False
        self._stopped = False
        self._subs: set[str] = set()
        self._seq = itertools.count(1)
        self._worker: _Worker | None = None
        self._relaxed_worker: _Worker | None = None
        self._relaxed = False
        self._stop_event = threading.Event()
        with self._engine.lock:
            self._engine.traders.append(self)

    # --- simulator extras ---------------------------------------------------------------------------------
    @property
    def market(self) -> MarketView:
        """In-process price control: ``trader.market.set_price(code, last, prev_close=None, name=None)``."""
        return MarketView(self._engine)

    @property
    def faults(self):
        """Faults on demand for this path: disconnect, reject_next, delay_pushes, drop_next_push, set_call_latency."""
        return self._engine.faults

    @property
    def engine(self) -> Engine:
        return self._engine

    def end_of_day(self) -> int:
        """Cancel every open order (54 / 53 pushes). Returns the number cancelled."""
        return self._engine.end_of_day()

    def new_day(self) -> None:
        """Roll to the next trading day (end_of_day first; T+1 shares become sellable; prev_close = last)."""
        self._engine.new_day()

    def flush(self) -> None:
        """Wait until every state change so far is committed and its pushes queued to the callback thread."""
        self._engine.flush()

    # --- lifecycle ----------------------------------------------------------------------------------------
    def register_callback(self, callback) -> None:
        self.callback = callback

    def start(self) -> None:
        if self._started or self._stopped:
            return None
        self._started = True
        tag = f"{self.session}"
        self._worker = _Worker(self, f"xtsim-push-{tag}")
        self._relaxed_worker = _Worker(self, f"xtsim-resp-{tag}")
        return None

    def stop(self) -> None:
        if self._stopped:
            return None
        self._stopped = True
        eng = self._engine
        eng.flush()
        with eng.lock:
            self._connected = False
            if self in eng.traders:
                eng.traders.remove(self)
            eng.invalidate_targets()
        for w in (self._worker, self._relaxed_worker):
            if w is not None:
                w.stop()
        self._stop_event.set()
        release_engine(eng)
        return None

    def connect(self) -> int:
        if not self._started or self._stopped or self._disconnected:
            return -1
        if self._connected:
            return 0
        self._latency()
        r = self._engine.connect(self)
        with self._engine.lock:
            self._connected = r == 0
            self._engine.invalidate_targets()
        self.connected = r == 0
        return r

    def run_forever(self) -> None:
        self._stop_event.wait()

    def sleep(self, t: float) -> None:
        time.sleep(t)

    def set_timeout(self, timeout=0) -> None:
        return None

    def set_relaxed_response_order_enabled(self, enabled) -> None:
        self._relaxed = bool(enabled)

    def subscribe(self, account) -> int:
        aid = self._aid(account)
        self._latency()
        with self._engine.lock:
            if not self._connected or aid not in self._engine.accounts:
                return -1
            self._subs.add(aid)
            self._engine.invalidate_targets()
        # MiniQMT reports the account's login state to a subscribed session; the simulator's accounts are logged
        # in, so one on_account_status(ACCOUNT_STATUS_OK) follows a successful subscribe.
        self._deliver([(0, "on_account_status",
                        xt.XtAccountStatus(aid, xc.SECURITY_ACCOUNT, xc.ACCOUNT_STATUS_OK))])
        return 0

    def unsubscribe(self, account) -> int:
        aid = self._aid(account)
        with self._engine.lock:
            if not self._connected or aid not in self._subs:
                return -1
            self._subs.discard(aid)
            self._engine.invalidate_targets()
        return 0

    # --- internals ----------------------------------------------------------------------------------------
    @staticmethod
    def _aid(account) -> str | None:
        aid = getattr(account, "account_id", None)
        return aid if isinstance(aid, str) else None

    def _latency(self) -> None:
        ms = self._engine.faults.call_latency()
        if ms > 0:
            time.sleep(ms / 1000.0)

    def _deliver(self, items: list) -> None:
        w = self._worker
        if w is None:  # not started: nothing can have been subscribed
            return
        if self._relaxed and self._relaxed_worker is not None:
            replies = [it for it in items if it[1].__class__ is not str]
            if replies:
                self._relaxed_worker.put(replies)
                items = [it for it in items if it[1].__class__ is str]
        if items:
            w.put(items)

    def _ok(self) -> bool:
        return self._connected and not self._stopped

    # --- orders -------------------------------------------------------------------------------------------
    def order_stock_async(self, account, stock_code, order_type, order_volume, price_type, price, strategy_name='',
                          order_remark='') -> int:
        seq = next(self._seq)
        self._engine.place(self, self._aid(account), stock_code, order_type, order_volume, price_type, price,
                           strategy_name, order_remark, seq, True)
        return seq

    def order_stock(self, account, stock_code, order_type, order_volume, price_type, price, strategy_name='',
                    order_remark='') -> int:
        self._latency()
        seq = next(self._seq)
        oid, gen = self._engine.place(self, self._aid(account), stock_code, order_type, order_volume, price_type,
                                      price, strategy_name, order_remark, seq, False)
        self._engine.wait_committed(gen)
        return oid

    def cancel_order_stock_async(self, account, order_id) -> int:
        seq = next(self._seq)
        self._engine.cancel(self, self._aid(account), order_id, None, None, seq, True)
        return seq

    def cancel_order_stock(self, account, order_id) -> int:
        self._latency()
        seq = next(self._seq)
        r, gen = self._engine.cancel(self, self._aid(account), order_id, None, None, seq, False)
        self._engine.wait_committed(gen)
        return r

    def cancel_order_stock_sysid_async(self, account, market, sysid) -> int:
        seq = next(self._seq)
        self._engine.cancel(self, self._aid(account), None, market, sysid, seq, True)
        return seq

    def cancel_order_stock_sysid(self, account, market, sysid) -> int:
        self._latency()
        seq = next(self._seq)
        r, gen = self._engine.cancel(self, self._aid(account), None, market, sysid, seq, False)
        self._engine.wait_committed(gen)
        return r

    # --- queries ------------------------------------------------------------------------------------------
    def _query(self, fn: Callable[[], Any]):
        self._latency()
        if not self._ok():
            return None
        return fn()

    def _query_async(self, fn: Callable[[], Any], callback) -> int:
        seq = next(self._seq)
        result = fn() if self._ok() else None
        self._engine.emit_reply(self, callback, result)
        return seq

    def query_stock_asset(self, account):
        return self._query(lambda: self._engine.q_asset(self._aid(account)))

    def query_stock_asset_async(self, account, callback) -> None:
        self._query_async(lambda: self._engine.q_asset(self._aid(account)), callback)
        return None  # the real wrapper returns None here

    def query_stock_order(self, account, order_id):
        return self._query(lambda: self._engine.q_order(self._aid(account), order_id))

    def query_stock_orders(self, account, cancelable_only=False):
        return self._query(lambda: self._engine.q_orders(self._aid(account), cancelable_only))

    def query_stock_orders_async(self, account, callback, cancelable_only=False) -> int:
        return self._query_async(lambda: self._engine.q_orders(self._aid(account), cancelable_only), callback)

    def query_stock_trades(self, account):
        return self._query(lambda: self._engine.q_trades(self._aid(account)))

    def query_stock_trades_async(self, account, callback) -> int:
        return self._query_async(lambda: self._engine.q_trades(self._aid(account)), callback)

    def query_stock_position(self, account, stock_code):
        return self._query(lambda: self._engine.q_position(self._aid(account), stock_code))

    def query_stock_positions(self, account):
        return self._query(lambda: self._engine.q_positions(self._aid(account)))

    def query_stock_positions_async(self, account, callback) -> int:
        return self._query_async(lambda: self._engine.q_positions(self._aid(account)), callback)

    def _account_infos(self):
        return [SimXtAccountInfo(a, xc.ACCOUNT_STATUS_OK) for a in self._engine.accounts]

    def _account_status(self):
        return [xt.XtAccountStatus(a, xc.SECURITY_ACCOUNT, xc.ACCOUNT_STATUS_OK) for a in self._engine.accounts]

    def query_account_infos(self):
        return self._query(self._account_infos)

    query_account_info = query_account_infos

    def query_account_infos_async(self, callback) -> int:
        return self._query_async(self._account_infos, callback)

    def query_account_status(self):
        return self._query(self._account_status)

    def query_account_status_async(self, callback) -> int:
        return self._query_async(self._account_status, callback)

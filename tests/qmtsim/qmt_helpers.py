"""Helpers of the simulated-MiniQMT tests: the wheel's own XtQuantTrader, a recorder of its callbacks. The qmt-sim
child process and child_env are tests/support.py's."""

from __future__ import annotations

import threading
from typing import Any, Callable

from executor.sim.qmt import install

install()  # before the wheel's xttrader is imported anywhere in this process

from xtquant import xtconstant as xc  # noqa: E402
from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback  # noqa: E402
from xtquant.xttype import StockAccount  # noqa: E402

WAIT = 15.0  # bound of every wait for an event that must come (a failure, never a hung run)


class Recorder(XtQuantTraderCallback):
    """Every callback as (name, object, thread name); ``wait_for(pred)`` awaits a matching one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str]] = []
        self.cv = threading.Condition()

    def _add(self, name: str, obj: Any) -> None:
        with self.cv:
            self.events.append((name, obj, threading.current_thread().name))
            self.cv.notify_all()

    def of(self, name: str) -> list[Any]:
        with self.cv:
            return [o for n, o, _ in self.events if n == name]

    def wait_for(self, name: str, pred: Callable[[Any], bool] = lambda o: True, timeout: float = WAIT) -> Any:
        with self.cv:
            found: list[Any] = []

            def seen() -> bool:
                found[:] = [o for n, o, _ in self.events if n == name and pred(o)]
                return bool(found)

            if not self.cv.wait_for(seen, timeout):
                raise AssertionError(f"no {name} matching within {timeout}s; got {[n for n, _, _ in self.events]}")
            return found[0]

    def on_disconnected(self):
        self._add("on_disconnected", None)

    def on_account_status(self, status):
        self._add("on_account_status", status)

    def on_stock_asset(self, asset):
        self._add("on_stock_asset", asset)

    def on_stock_order(self, order):
        self._add("on_stock_order", order)

    def on_stock_trade(self, trade):
        self._add("on_stock_trade", trade)

    def on_stock_position(self, position):
        self._add("on_stock_position", position)

    def on_order_error(self, order_error):
        self._add("on_order_error", order_error)

    def on_cancel_error(self, cancel_error):
        self._add("on_cancel_error", cancel_error)

    def on_order_stock_async_response(self, response):
        self._add("on_order_stock_async_response", response)

    def on_cancel_order_stock_async_response(self, response):
        self._add("on_cancel_order_stock_async_response", response)


def unwedge(trader: XtQuantTrader, freed: threading.Event) -> bool:
    """Free a push thread stuck in a sync call made inside a callback, so the test can stop the trader.

    The answer it waits for sits in the same single-thread executor's queue, behind the stuck callback (that is
    the hazard shown). Running the queued work items here, on the test's thread, sets the waiting Future.
    Returns whether ``freed`` was set within WAIT."""
    import queue as _queue
    import time as _time

    work = trader.executor._work_queue
    deadline = _time.monotonic() + WAIT
    while not freed.is_set() and _time.monotonic() < deadline:
        try:
            item = work.get(timeout=0.05)
        except _queue.Empty:
            continue
        if item is None:  # shutdown sentinel: leave it for the executor
            work.put(None)
            break
        item.run()
    return freed.wait(WAIT)


__all__ = ["Recorder", "StockAccount", "WAIT", "XtQuantTrader", "unwedge", "xc"]

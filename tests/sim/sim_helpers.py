"""Shared helpers for the simulator tests: a recording callback and a trader factory.

Every trader here is xtquant's own ``XtQuantTrader`` (the wheel's class, over the stand-in binary) connected to a
simulated MiniQMT (``QmtSimServer``) hosted in a thread of the test process, so a test can steer that MiniQMT's
engine directly (prices, faults, day roll) while its client goes through the same wire as any other program.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from executor.sim.qmt import QmtSimServer, install

install()  # before the wheel's xttrader is imported anywhere in this process

from xtquant import xtconstant as xc  # noqa: E402
from xtquant.xttrader import XtQuantTrader  # noqa: E402
from xtquant.xttype import StockAccount  # noqa: E402

from executor.sim import MarketView, SimConfig  # noqa: E402

ACC = StockAccount("SIM001")
CALLBACKS = ("on_connected", "on_disconnected", "on_account_status", "on_stock_asset", "on_stock_order",
             "on_stock_trade", "on_stock_position", "on_order_error", "on_cancel_error",
             "on_order_stock_async_response", "on_cancel_order_stock_async_response")


class Recorder:
    """Records every callback as (name, obj) and lets tests wait for a condition without sleeping."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.cond = threading.Condition()
        self.threads: set[str] = set()
        for name in CALLBACKS:
            setattr(self, name, self._make(name))

    def _make(self, name):
        def cb(*args):
            with self.cond:
                self.threads.add(threading.current_thread().name)
                self.events.append((name, args[0] if args else None))
                self.cond.notify_all()
        cb.__name__ = name
        return cb

    def wait_for(self, pred, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def wait_count(self, name: str, n: int = 1, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda r: r.count(name) >= n, timeout)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.events if n == name)

    def of(self, name: str) -> list:
        with self.cond:
            return [o for n, o in self.events if n == name]

    def seq(self, order_id: int | None = None) -> list[str]:
        """Compact trace: callback names, with the status for on_stock_order (e.g. 'order:50')."""
        out = []
        with self.cond:
            evs = list(self.events)
        for n, o in evs:
            if n == "on_account_status":  # the login-state push after subscribe belongs to no order's lifecycle
                continue
            if order_id is not None and n in ("on_stock_order", "on_stock_trade", "on_order_error") \
                    and getattr(o, "order_id", None) != order_id:
                continue
            if n == "on_stock_order":
                out.append(f"order:{o.order_status}")
            elif n == "on_order_stock_async_response":
                out.append("response")
            elif n == "on_cancel_order_stock_async_response":
                out.append(f"cancel_response:{o.cancel_result}")
            else:
                out.append(n[3:].replace("stock_", ""))
        return out

    def clear(self) -> None:
        with self.cond:
            self.events.clear()


_servers: dict[str, list[Any]] = {}  # resolved path -> [server, users]
_servers_lock = threading.Lock()


def acquire_server(path: Path, config: SimConfig | None = None) -> QmtSimServer:
    """The in-process simulated MiniQMT serving ``path`` (started on first use; the first config wins)."""
    key = str(Path(path).resolve())
    with _servers_lock:
        ent = _servers.get(key)
        if ent is None:
            ent = _servers[key] = [QmtSimServer(path, config).start(), 0]
        ent[1] += 1
        return ent[0]


def release_server(server: QmtSimServer) -> None:
    key = str(server.path.resolve())
    with _servers_lock:
        ent = _servers.get(key)
        if ent is None or ent[0] is not server:
            return
        ent[1] -= 1
        if ent[1] > 0:
            return
        del _servers[key]
    server.close()


class SimTrader:
    """The wheel's trader (every xtquant call is forwarded to it: ``self.xt``) beside the simulated MiniQMT it
    talks to (``market``, ``faults``, ``flush``, ``end_of_day``, ``new_day``, ``engine``: the test's hands on the
    broker, not part of any trader API). ``stop()`` stops the trader and lets go of the server."""

    def __init__(self, path: Path, session: int, callback: Any, config: SimConfig | None = None) -> None:
        self.server = acquire_server(path, config)
        self.engine = self.server.engine
        self.path = Path(path)
        self.xt = XtQuantTrader(str(path), session, callback)
        self._stopped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.xt, name)

    @property
    def market(self) -> MarketView:
        return MarketView(self.engine)

    @property
    def faults(self):
        return self.engine.faults

    def flush(self) -> None:
        self.engine.flush()

    def end_of_day(self) -> int:
        return self.engine.end_of_day()

    def new_day(self) -> None:
        self.engine.new_day()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.xt.stop()
        finally:
            release_server(self.server)


def make_trader(path: Path, config: SimConfig | None = None, session: int = 101, subscribe: bool = True):
    rec = Recorder()
    t = SimTrader(path, session, rec, config)
    t.start()
    assert t.connect() == 0
    if subscribe:
        assert t.subscribe(ACC) == 0
    return t, rec


def settle(trader) -> None:
    """Wait until every push generated so far has been delivered (a no-op query answered through the queue)."""
    done = threading.Event()
    trader.flush()
    trader.query_stock_orders_async(ACC, lambda _r: done.set())
    assert done.wait(5.0), "callback thread did not drain"


BUY, SELL, FIX = xc.STOCK_BUY, xc.STOCK_SELL, xc.FIX_PRICE

"""How many order_stock_async calls per second the simulator accepts AND fills in one process.

Marketable limit buys (each fills at once), every callback counted; the clock stops when the last order's
final on_stock_order (status 56) has been delivered. Run: /work/venv/bin/python bench/sim_throughput.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from xtquant import xtconstant as xc
from xtquant.xttype import StockAccount

from executor.sim import AccountSeed, SimConfig, SimXtQuantTrader


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.callbacks = 0
        self.filled = 0
        self.done = threading.Event()

    def on_order_stock_async_response(self, r):
        self.callbacks += 1

    def on_stock_order(self, o):
        self.callbacks += 1
        if o.order_status == xc.ORDER_SUCCEEDED:
            self.filled += 1
            if self.filled == self.n:
                self.done.set()

    def on_stock_trade(self, t):
        self.callbacks += 1

    def on_stock_position(self, p):
        self.callbacks += 1

    def on_stock_asset(self, a):
        self.callbacks += 1

    def on_order_error(self, e):
        self.callbacks += 1

    def on_disconnected(self):
        pass


def run(n: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        cb = Counter(n)
        cfg = SimConfig(accounts={"BENCH": AccountSeed(cash=1e12)})
        t = SimXtQuantTrader(str(Path(d) / "sim"), 1, cb, config=cfg)
        t.start()
        assert t.connect() == 0
        acc = StockAccount("BENCH")
        assert t.subscribe(acc) == 0
        t0 = time.perf_counter()
        for i in range(n):
            t.order_stock_async(acc, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "bench", f"b{i}")
        if not cb.done.wait(600):
            raise SystemExit(f"only {cb.filled}/{n} orders filled")
        dt = time.perf_counter() - t0
        t.stop()
        return dt, cb.callbacks


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    run(2_000)  # warm-up
    dt, callbacks = run(n)
    print(f"sim_throughput: {n} order_stock_async accepted+filled in {dt:.2f}s = {n / dt:,.0f} orders/s "
          f"({callbacks:,} callbacks, {callbacks / dt:,.0f} callbacks/s)")


if __name__ == "__main__":
    main()

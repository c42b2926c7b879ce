"""How many orders per second the simulated MiniQMT accepts AND fills, driven through xtquant's own XtQuantTrader
(the stand-in binary) from this process, the MiniQMT in its own process: the broker's capacity in the bench's
arrangement, so a bench figure can be told apart from a broker bound.

Marketable limit buys (each fills at once) sent with order_stock_async as fast as the wheel takes them, every
callback counted; the clock stops when the last order's final on_stock_order (status 56) has been delivered.

    python -m bench.sim_throughput [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from xtquant import xtconstant as xc
from xtquant.xttype import StockAccount

from bench import broker

ACCOUNT = "BENCH"


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.callbacks = 0
        self.filled = 0
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        self.n, self.filled = n, 0
        self.done.clear()

    def on_stock_order(self, o) -> None:
        self.callbacks += 1
        if o.order_status == xc.ORDER_SUCCEEDED:
            self.filled += 1
            if self.filled == self.n:
                self.done.set()

    def __getattr__(self, name: str):  # every other callback: counted
        if not name.startswith("on_"):
            raise AttributeError(name)

        def count(*args) -> None:
            self.callbacks += 1
        return count


def run(t, cb: Counter, account, n: int, tag: str) -> tuple[float, int]:
    cb.expect(n)
    before = cb.callbacks
    t0 = time.perf_counter()
    for i in range(n):
        t.order_stock_async(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "bench", f"{tag}{i}")
    if not cb.done.wait(600):
        raise SystemExit(f"only {cb.filled}/{n} orders filled")
    return time.perf_counter() - t0, cb.callbacks - before


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as d:
        qmt = broker.QmtSim(Path(d) / "qmt", ACCOUNT, log=Path(d) / "qmt.log")
        try:
            qmt.wait_ready()
            cb = Counter()
            t = broker.trader(qmt.path, 1, cb)
            account = StockAccount(ACCOUNT)
            if t.subscribe(account) != 0:
                raise SystemExit("subscribe failed")
            run(t, cb, account, 1_000, "w")  # warm-up
            mq, me = psutil.Process(qmt.proc.pid), psutil.Process()
            c0 = (sum(mq.cpu_times()[:2]), sum(me.cpu_times()[:2]))
            dt, callbacks = run(t, cb, account, n, "b")
            cpu_q, cpu_me = sum(mq.cpu_times()[:2]) - c0[0], sum(me.cpu_times()[:2]) - c0[1]
            t.stop()
        finally:
            qmt.stop()
    print(f"sim_throughput: {n:,} order_stock_async accepted+filled in {dt:.2f}s = {n / dt:,.0f} orders/s "
          f"({callbacks:,} callbacks); CPU per order: MiniQMT {cpu_q / n * 1e6:,.0f} us, "
          f"this process (the wheel + stand-in) {cpu_me / n * 1e6:,.0f} us")


if __name__ == "__main__":
    main()

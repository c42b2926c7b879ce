"""The one broker every arrangement of the bench trades through: xtquant's own ``XtQuantTrader`` (the wheel's
``xtquant/xttrader.py``, unmodified) over the stand-in binary (``executor.sim.qmt.install()``), against a simulated
MiniQMT that runs in a process of its own (``xtqueue qmt-sim --path DIR``), one per arrangement.

The executor's broker choice lives here only (``EXECUTOR_BROKER``): ``--broker sim`` is this arrangement (the
executor finds the bench's simulated MiniQMT serving the folder and starts none of its own).

    python -m bench.broker hop PATH ACCOUNT N OUT   # calibration: N order_stock_async calls, stamped, one at a time
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import spawn, stop_process

EXECUTOR_BROKER = ("--broker", "sim", "--sim-path")  # followed by the folder the qmt-sim serves
CASH = 1e13  # every arrangement's account: enough that no phase ever runs out


def executor_broker_args(path: Path) -> list[str]:
    return [*EXECUTOR_BROKER, str(path)]


class QmtSim:
    """A simulated MiniQMT in its own process (``xtqueue qmt-sim`` under ``bench._qmt_sim``, which stamps each
    order's arrival). ``stamps()`` is read after ``stop()``: the process writes them when it ends."""

    def __init__(self, path: Path, account: str, log: Path) -> None:
        self.path = path
        self.stamps_file = path.with_name(path.name + "-arrivals.json")
        self.proc = spawn(["-m", "bench._qmt_sim", str(self.stamps_file), "qmt-sim", "--path", str(path),
                           "--account", account, "--cash", str(CASH)], log=log)
        self.log = log

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        from executor.sim.qmt.endpoint import read_endpoint

        deadline = time.monotonic() + timeout_s
        while read_endpoint(self.path) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: qmt-sim at {self.path} did not come up:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)

    def stamps(self) -> dict[str, int]:
        """order remark -> wall clock (ns) at which MiniQMT received that order (its first arrival)."""
        try:
            return json.loads(self.stamps_file.read_text())
        except (OSError, ValueError):
            return {}


def trader(path: Path | str, session: int, callback: Any) -> Any:
    """The wheel's own XtQuantTrader, started, connected to the qmt-sim at ``path``."""
    from executor.sim.qmt import install

    install()
    from xtquant.xttrader import XtQuantTrader

    t = XtQuantTrader(str(path), session, callback)
    t.start()
    if t.connect() != 0:
        raise SystemExit(f"bench: XtQuantTrader could not connect to the qmt-sim at {path}")
    return t


class _Answers:
    """Callback of the hop calibration: wakes the caller when its order's response arrives."""

    def __init__(self) -> None:
        self.answered = threading.Event()

    def on_order_stock_async_response(self, r: Any) -> None:
        self.answered.set()

    def on_order_error(self, e: Any) -> None:
        self.answered.set()

    def __getattr__(self, name: str) -> Any:  # the other pushes are not needed here
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def hop(path: str, account_id: str, n: int, out: str) -> None:
    """The method's error: how long from calling ``order_stock_async`` to MiniQMT stamping the order's arrival
    (the wheel builds the request, the stand-in pickles it and writes it to loopback TCP, MiniQMT's session thread
    reads it). One order at a time, each after the previous one's response; its call time is written to ``out``."""
    from xtquant import xtconstant as xc
    from xtquant.xttype import StockAccount

    from bench.xtq import CODE, REST_PRICE

    cb = _Answers()
    t = trader(path, 901, cb)
    account = StockAccount(account_id)
    t.subscribe(account)
    called: dict[str, int] = {}
    for i in range(n):
        cb.answered.clear()
        remark = f"hop{i}"
        called[remark] = time.time_ns()
        t.order_stock_async(account, CODE, xc.STOCK_BUY, 100, xc.FIX_PRICE, REST_PRICE, "hop", remark)
        if not cb.answered.wait(10):
            raise SystemExit("bench: hop calibration: no answer within 10 s")
        time.sleep(0.002)  # let the push threads settle, as between two sequential orders
    Path(out).write_text(json.dumps(called))
    t.stop()


def run_hop(path: Path, account_id: str, n: int, out: Path) -> dict[str, int]:
    proc = spawn(["-m", "bench.broker", "hop", str(path), account_id, str(n), str(out)])
    try:
        proc.wait(60 + n * 0.05)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise SystemExit("bench: hop calibration did not finish") from None
    if proc.returncode != 0:
        raise SystemExit(f"bench: hop calibration exited {proc.returncode}")
    return json.loads(out.read_text())


if __name__ == "__main__":
    if sys.argv[1] == "hop":
        hop(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])

"""Runs ``xtqueue qmt-sim`` (the simulated MiniQMT, unchanged) with one bench-only probe: the wall clock (ns) at
which each order arrives, keyed by its order remark (xtqueue's client order id; the http requester's own id),
written as JSON to STAMPS when the process ends.

    python -m bench._qmt_sim STAMPS qmt-sim --path DIR --account ID --cash N

The probe reads the wire (executor/sim/qmt/wire.py: ``("call", "orderStockWithSeq", seq, fields)``) as each
message leaves ``Connection.recv`` on MiniQMT's session thread, so it costs the executor nothing and MiniQMT about
a microsecond per message; it knows nothing of the server's internals.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from multiprocessing import connection
from typing import Any, Callable

from bench._common import percentiles


def install_probe(stamps_file: str) -> Callable[[], None]:
    """Wrap ``Connection.recv`` in this process; returns the function that writes the stamps (also run at exit)."""
    arrivals: dict[str, int] = {}
    orig_recv = connection.Connection.recv

    def recv(self):
        msg = orig_recv(self)
        if type(msg) is tuple and len(msg) == 4 and msg[1] == "orderStockWithSeq":
            arrivals.setdefault(msg[3].get("m_strOrderRemark", ""), time.time_ns())
        return msg

    def dump() -> None:
        with open(stamps_file, "w", encoding="utf-8") as f:
            json.dump(arrivals, f)

    connection.Connection.recv = recv
    atexit.register(dump)
    return dump


def time_to_broker(sent: list[tuple[str, str, int]], arrivals: dict[str, int]) -> dict[str, Any]:
    """Per phase: MiniQMT's arrival stamp - the strategy's call stamp, of each order sent (ns -> percentiles)."""
    by: dict[str, list[int]] = {}
    unmatched = 0
    for phase, remark, called in sent:
        arrived = arrivals.get(remark)
        if arrived is None:
            unmatched += 1
            continue
        by.setdefault(phase, []).append(arrived - called)
    out: dict[str, Any] = {phase: percentiles(v) for phase, v in by.items() if phase != "warmup"}
    out["unmatched"] = unmatched  # sent but never seen at MiniQMT (refused before the broker): 0 expected
    out["_sequential_ns"] = by.get("sequential", [])
    return out


if __name__ == "__main__":
    install_probe(sys.argv[1])
    from xtqueue.cli import main

    main(sys.argv[2:])

"""The bench's time-to-broker measure: MiniQMT's arrival stamps are taken from the wire for orders only, and the
join with the strategy's call stamps counts every order that never arrived instead of dropping it silently."""

from __future__ import annotations

import atexit
import json
from multiprocessing import Pipe, connection

from bench import _qmt_sim
from bench._qmt_sim import time_to_broker


def test_arrivals_are_stamped_from_the_wire_for_orders_only(tmp_path, monkeypatch):
    monkeypatch.setattr(connection.Connection, "recv", connection.Connection.recv)  # restored after the test
    monkeypatch.setattr(atexit, "register", lambda fn: fn)
    out = tmp_path / "arrivals.json"
    dump = _qmt_sim.install_probe(str(out))
    a, b = Pipe()
    a.send(("call", "queryStockAssetWithSeq", 1, {"m_strAccountID": "A"}))
    a.send(("call", "orderStockWithSeq", 2, {"m_strOrderRemark": "x1"}))
    a.send(("call", "orderStockWithSeq", 3, {"m_strOrderRemark": "x1"}))  # a repeat keeps the first arrival
    a.send(("hello", 1, 7))
    msgs = [b.recv() for _ in range(4)]
    assert msgs[1] == ("call", "orderStockWithSeq", 2, {"m_strOrderRemark": "x1"})  # passed through unchanged
    dump()
    stamps = json.loads(out.read_text())
    assert list(stamps) == ["x1"]
    assert isinstance(stamps["x1"], int) and stamps["x1"] > 0


def test_the_join_counts_orders_that_never_arrived():
    sent = [("warmup", "w1", 100), ("sequential", "s1", 1_000), ("sequential", "s2", 2_000),
            ("64 in flight", "f1", 3_000), ("sequential", "lost", 4_000)]
    arrived = {"w1": 150, "s1": 1_500, "s2": 2_900, "f1": 3_010, "other": 9}
    out = time_to_broker(sent, arrived)
    assert out["unmatched"] == 1
    assert "warmup" not in out
    assert out["sequential"]["n"] == 2 and out["sequential"]["max_us"] == 0.9
    assert out["64 in flight"]["p50_us"] == 0.01

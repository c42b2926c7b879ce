"""Cross-process control of a running simulator through its SQLite file.

``SimControl(path)`` can be opened from ANY process (it only needs the file). Each call appends a row to the
``control`` table; the simulator's poll thread (every ``SimConfig.control_poll_ms``, default 20 ms) applies rows
in id order, commits, and records the last applied id, which ``wait_applied`` watches. Rows written while no
simulator runs on the path: price rows are applied when the next simulator starts; one-shot faults and day rows are
skipped (a fault is meant for the simulator that is running); the standing conditions (``set_call_latency``,
``delay_pushes``, ``reorder_pushes``, ``push_order``, ``reset_faults``) hold for every later simulator on the path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import open_db

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

log = logging.getLogger("executor.sim")

DEFAULT_DB = "xtsim.sqlite3"
STANDING = ("set_call_latency", "delay_pushes", "reorder_pushes", "push_order", "reset_faults")


class SimControl:
    def __init__(self, path, db_filename: str = DEFAULT_DB) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        self.path = p
        self._conn = open_db(p / db_filename)
        self._lock = threading.Lock()

    def _post(self, _control_kind: str, /, **payload: Any) -> int:
        # positional-only: a payload may itself carry a "kind" (drop_next_push does)
        with self._lock:
            cur = self._conn.execute("INSERT INTO control (kind, payload, created) VALUES (?, ?, ?)",
                                     (_control_kind, json.dumps(payload), time.time()))
            return int(cur.lastrowid)

    # --- market ---
    def set_price(self, code: str, last: float, prev_close: float | None = None, name: str | None = None) -> int:
        return self._post("price", code=code, last=float(last),
                          prev_close=None if prev_close is None else float(prev_close), name=name)

    # --- faults ---
    def disconnect(self, down_ms: float = 0) -> int:
        return self._post("disconnect", down_ms=float(down_ms))

    def reject_next(self, n: int = 1, message: str | None = None) -> int:
        return self._post("reject_next", n=int(n), message=message)

    def delay_pushes(self, ms: float, max_ms: float | None = None, seed: int | None = None) -> int:
        return self._post("delay_pushes", ms=float(ms), max_ms=max_ms, seed=seed)

    def drop_next_push(self, kind: str = "any", n: int = 1) -> int:
        return self._post("drop_next_push", kind=kind, n=int(n))

    def set_call_latency(self, ms: float, max_ms: float | None = None, seed: int | None = None) -> int:
        return self._post("set_call_latency", ms=float(ms), max_ms=max_ms, seed=seed)

    def reorder_pushes(self, probability: float = 1.0, split_fills: bool = True, seed: int | None = None) -> int:
        return self._post("reorder_pushes", probability=float(probability), split_fills=bool(split_fills), seed=seed)

    def push_order(self, answer_last: bool = False, trades_first: bool = False) -> int:
        return self._post("push_order", answer_last=bool(answer_last), trades_first=bool(trades_first))

    def refuse_cancels_late(self, n: int = 1, message: str | None = None, after_ms: float = 0.0) -> int:
        return self._post("refuse_cancels_late", n=int(n), message=message, after_ms=float(after_ms))

    def counter_refuse_next(self, n: int = 1, text: str | None = None, error_id: int = 0) -> int:
        return self._post("counter_refuse_next", n=int(n), text=text, error_id=int(error_id))

    def stale_order_lists(self, answers: int = 1) -> int:
        return self._post("stale_order_lists", answers=int(answers))

    def reset_faults(self) -> int:
        return self._post("reset_faults")

    # --- day ---
    def end_of_day(self) -> int:
        return self._post("end_of_day")

    def new_day(self) -> int:
        return self._post("new_day")

    # --- observation ---
    def applied_id(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='control_applied'").fetchone()
        return int(row[0]) if row else 0

    def wait_applied(self, control_id: int, timeout: float = 5.0) -> bool:
        """True once the running simulator has applied (and committed) control row ``control_id``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.applied_id() >= control_id:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def orders(self, account_id: str | None = None) -> list[dict]:
        """Committed orders of the current day, as dicts (column names of the ``orders`` table)."""
        with self._lock:
            day = self._conn.execute("SELECT value FROM meta WHERE key='day'").fetchone()
            cur = self._conn.execute("SELECT * FROM orders WHERE day=? ORDER BY order_id", (int(day[0]) if day else 1,))
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        return [r for r in rows if account_id is None or r["account_id"] == account_id]

    def trades(self, account_id: str | None = None) -> list[dict]:
        """Committed trades of the current day, as dicts (column names of the ``trades`` table)."""
        with self._lock:
            day = self._conn.execute("SELECT value FROM meta WHERE key='day'").fetchone()
            cur = self._conn.execute("SELECT * FROM trades WHERE day=? ORDER BY trade_seq",
                                     (int(day[0]) if day else 1,))
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        return [r for r in rows if account_id is None or r["account_id"] == account_id]

    def cash(self, account_id: str) -> tuple[float, float] | None:
        """(available cash, frozen cash) as committed."""
        with self._lock:
            r = self._conn.execute("SELECT cash, frozen_cash FROM accounts WHERE account_id=?",
                                   (account_id,)).fetchone()
        return (r[0], r[1]) if r else None

    def credit(self, account_id: str) -> dict | None:
        """A margin account's committed debts (executor/sim/credit.py: compacts, short-sale proceeds), or None."""
        with self._lock:
            r = self._conn.execute("SELECT value FROM meta WHERE key=?", (f"credit:{account_id}",)).fetchone()
        return json.loads(r[0]) if r else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class ControlPoller:
    """The simulator side: polls the control table and applies rows to the engine."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._conn = open_db(engine.store.path)
        self._stop = threading.Event()
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        applied = int(meta.get("control_applied", "0"))
        # price rows posted while no simulator ran are applied now; one-shot faults and day rows are not replayed
        for cid, kind, payload in self._conn.execute(
                "SELECT id, kind, payload FROM control WHERE id > ? AND kind='price' ORDER BY id", (applied,)):
            self._apply(kind, payload)
        # the broker's standing conditions (latency, push delay, push order) outlive an engine, like the real
        # MiniQMT outlives an executor restart or reconnect: replayed up to the last one switched off
        for cid, kind, payload in self._conn.execute(
                "SELECT id, kind, payload FROM control WHERE id <= ? AND kind IN (?, ?, ?, ?, ?) ORDER BY id",
                (engine.control_seen, *STANDING)):
            self._apply(kind, payload)
        self._last = engine.control_seen
        self._thread = threading.Thread(target=self._run, name="xtsim-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        try:
            self._conn.close()
        except Exception:  # pragma: no cover
            pass

    def _apply(self, kind: str, payload: str) -> None:
        eng = self._engine
        p = json.loads(payload) if payload else {}
        f = eng.faults
        try:
            if kind == "price":
                eng.set_price(p["code"], p["last"], p.get("prev_close"), p.get("name"))
            elif kind == "disconnect":
                eng.disconnect_all(p.get("down_ms", 0))
            elif kind == "reject_next":
                f.reject_next(p.get("n", 1), p.get("message"))
            elif kind == "delay_pushes":
                f.delay_pushes(p.get("ms", 0), p.get("max_ms"), p.get("seed"))
            elif kind == "drop_next_push":
                f.drop_next_push(p.get("kind", "any"), p.get("n", 1))
            elif kind == "set_call_latency":
                f.set_call_latency(p.get("ms", 0), p.get("max_ms"), p.get("seed"))
            elif kind == "reorder_pushes":
                f.reorder_pushes(p.get("probability", 1.0), p.get("split_fills", True), p.get("seed"))
            elif kind == "push_order":
                f.push_order(p.get("answer_last", False), p.get("trades_first", False))
            elif kind == "refuse_cancels_late":
                f.refuse_cancels_late(p.get("n", 1), p.get("message"), p.get("after_ms", 0.0))
            elif kind == "counter_refuse_next":
                f.counter_refuse_next(p.get("n", 1), p.get("text"), p.get("error_id", 0))
            elif kind == "stale_order_lists":
                f.stale_order_lists(p.get("answers", 1))
            elif kind == "reset_faults":
                f.reset()
            elif kind == "end_of_day":
                eng.end_of_day()
            elif kind == "new_day":
                eng.new_day()
            else:
                log.warning("xtsim: unknown control row kind %r", kind)
        except Exception:
            log.exception("xtsim: control row %s %s failed", kind, payload)

    def _run(self) -> None:
        interval = max(self._engine.config.control_poll_ms, 1) / 1000.0
        while not self._stop.wait(interval):
            try:
                rows = self._conn.execute("SELECT id, kind, payload FROM control WHERE id > ? ORDER BY id",
                                          (self._last,)).fetchall()
            except Exception:  # pragma: no cover - busy beyond timeout
                log.exception("xtsim: control poll failed")
                continue
            if not rows:
                continue
            for cid, kind, payload in rows:
                self._apply(kind, payload)
                self._last = cid
            eng = self._engine
            with eng.lock:
                eng._dirty_meta["control_applied"] = str(self._last)
                eng._engine_bump = eng._bump()

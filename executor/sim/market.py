"""Prices: the caller controls the last price of every code.

* In the simulated MiniQMT's process: ``MarketView(server.engine).set_price(code, last, prev_close=None, name=None)``.
* Cross-process: ``SimControl(path).set_price(...)``.
* Demo feed: ``RandomWalk`` (``SimConfig.random_walk``), a seeded log-normal walk kept inside the daily limits.
* Replay: ``replay_csv(target, path, realtime=False, speed=1.0)`` of a tick CSV.

Tick CSV format: a header row ``code,time,last`` then one row per tick, in time order, e.g.
``600000.SH,09:30:03,10.02``. ``time`` is ``HH:MM:SS[.ffffff]`` or ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (ISO also
accepted); it is only used to pace a realtime replay. Extra columns are ignored; blank lines are skipped.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import rules as R

if TYPE_CHECKING:  # pragma: no cover
    from .config import RandomWalkConfig
    from .engine import Engine

log = logging.getLogger("executor.sim")


class MarketView:
    """In-process price control and read-out for one simulator path."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine

    def set_price(self, code: str, last: float, prev_close: float | None = None, name: str | None = None) -> None:
        """Set the last price (and optionally prev_close / name); resting orders of ``code`` react at once."""
        self._engine.set_price(code, last, prev_close, name)

    def last(self, code: str) -> float | None:
        q = self._engine.quote(code)
        return q.last if q else None

    def prev_close(self, code: str) -> float | None:
        q = self._engine.quote(code)
        return q.prev_close if q else None

    def limits(self, code: str) -> tuple[float, float] | None:
        """(limit_down, limit_up) of today."""
        q = self._engine.quote(code)
        return (q.down, q.up) if q else None

    def codes(self) -> list[str]:
        return list(self._engine.quotes)


class RandomWalk:
    """Seeded random walk; ``step()`` advances every code once (tests call it directly, no thread needed)."""

    def __init__(self, engine: "Engine", cfg: "RandomWalkConfig") -> None:
        self._engine = engine
        self._cfg = cfg
        self._rng = random.Random(cfg.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        eng = self._engine
        codes = self._cfg.codes or sorted(eng.quotes)
        for code in codes:
            q = eng.quote(code)
            if q is None:
                continue
            nxt = q.last * math.exp(self._rng.gauss(0.0, self._cfg.sigma))
            nxt = min(max(R.round_half_up(nxt, q.inst.tick), q.down), q.up)
            eng.set_price(code, nxt)

    def start(self) -> "RandomWalk":
        self._thread = threading.Thread(target=self._run, name="xtsim-walk", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._cfg.interval_ms / 1000.0):
            try:
                self.step()
            except Exception:  # pragma: no cover
                log.exception("xtsim: random walk step failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _parse_time(s: str) -> float | None:
    s = (s or "").strip()
    if not s:
        return None
    for fmt in ("%H:%M:%S.%f", "%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            dt = datetime.strptime(s, fmt)
            return dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6 + \
                (dt.toordinal() * 86400.0 if dt.year > 1900 else 0.0)
        except ValueError:
            continue
    try:
        dt = datetime.fromisoformat(s)
        return dt.toordinal() * 86400.0 + dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6
    except ValueError:
        return None


def read_ticks(path: str | Path) -> list[tuple[str, float | None, float]]:
    """Parse a tick CSV (see the module docstring) into (code, seconds or None, last)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = (row.get("code") or "").strip()
            if not code:
                continue
            out.append((code, _parse_time(row.get("time", "")), float(row["last"])))
    return out


def replay_csv(target: Any, path: str | Path, realtime: bool = False, speed: float = 1.0) -> int:
    """Apply every tick of ``path`` to ``target`` (an Engine, a MarketView or a SimControl: anything with
    ``set_price`` or ``market.set_price``). With ``realtime`` the gaps between tick times are
    slept (divided by ``speed``). Returns the number of ticks applied."""
    setter = getattr(target, "set_price", None)
    if setter is None:
        setter = target.market.set_price
    prev_t = None
    n = 0
    for code, t, last in read_ticks(path):
        if realtime and t is not None and prev_t is not None and t > prev_t:
            time.sleep((t - prev_t) / max(speed, 1e-9))
        if t is not None:
            prev_t = t
        setter(code, last)
        n += 1
    return n

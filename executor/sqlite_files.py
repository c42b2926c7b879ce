"""The executor's local SQLite files (journal, event spool, risk counters) are opened one way: autocommit mode (each
writer says BEGIN/COMMIT itself), usable from any thread, WAL. ``synchronous=NORMAL`` survives a killed process;
``FULL`` (``journal_fsync``) also survives power loss.

Checkpoints (copying the WAL's pages into the database file, with its fsyncs) run on a thread of their own
(``_Checkpointer``), not inside a writer's commit: SQLite's automatic checkpoint runs in whichever commit crosses
its threshold, and on the order path that is the intent's commit right before the order goes to the broker (a
2-12 ms stall of that order and of the event loop, seen in ~1% of orders; bench/README.md). A checkpoint by another
connection is SQLite's documented way: writers go on appending to the WAL meanwhile, and a commit's durability does
not depend on it. The writer's own automatic checkpoint stays, at a far higher threshold, as the bound on the WAL's
size should the thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger("executor.sqlite")

CHECKPOINT_INTERVAL_S = 0.5
# Pages (of 4 KiB) a WAL may grow to before a writer's commit checkpoints it itself: only if the thread falls behind.
WRITER_CHECKPOINT_PAGES = 16_000


def open_wal_db(path: Path, schema: str, *, synchronous: str = "NORMAL",
                busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if busy_timeout_ms is not None:
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.executescript(schema)
    db.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
    _checkpointer.add(path)
    return db


def close_wal_db(path: Path, db: sqlite3.Connection) -> None:
    """Close a connection of ``open_wal_db``; the file's background checkpoints end with its last connection."""
    _checkpointer.remove(path)
    db.close()


class _Checkpointer:
    """One daemon thread per process, running while any file is open: every ``CHECKPOINT_INTERVAL_S`` a PASSIVE
    checkpoint of each open file, through a short-lived connection of its own (``mode=rw``: never creates a file)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, path: Path) -> None:
        with self._lock:
            self._open[str(Path(path).resolve())] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
                self._thread.start()

    def remove(self, path: Path) -> None:
        key = str(Path(path).resolve())
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def _run(self) -> None:
        wait = threading.Event().wait
        while True:
            wait(CHECKPOINT_INTERVAL_S)
            with self._lock:
                paths = list(self._open)
                if not paths:
                    self._thread = None  # the next add() starts a new one
                    return
            for path in paths:
                checkpoint(path)


def checkpoint(path: str | Path) -> None:
    """One PASSIVE checkpoint of ``path`` (copies what it can without waiting for any reader or writer)."""
    try:
        con = sqlite3.connect(Path(path).as_uri() + "?mode=rw", uri=True, timeout=0.0, isolation_level=None)
    except sqlite3.Error:  # the file went away (its owner closed and removed it)
        return
    try:
        con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # busy (another checkpoint) or gone: the next round tries again
        log.debug("checkpoint of %s skipped: %s", path, exc)
    finally:
        con.close()


_checkpointer = _Checkpointer()

"""The executor's local SQLite files (journal, event spool, risk counters) are opened one way: autocommit mode (each
writer says BEGIN/COMMIT itself), usable from any thread, WAL. ``synchronous=NORMAL`` survives a killed process;
``FULL`` (``journal_fsync``) also survives power loss."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_wal_db(path: Path, schema: str, *, synchronous: str = "NORMAL",
                busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if busy_timeout_ms is not None:
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.executescript(schema)
    return db

"""executor/sqlite_files.py: checkpoints run on their own thread, not inside the commits of the order path."""

from __future__ import annotations

import threading

from support import wait_until

from executor import sqlite_files
from executor.sqlite_files import close_wal_db, open_wal_db

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB);"


def test_a_writers_commit_leaves_checkpoints_to_the_background_thread(tmp_path):
    path = tmp_path / "j.sqlite3"
    db = open_wal_db(path, SCHEMA)
    try:
        # SQLite's own default (1,000 pages) would checkpoint inside the commit below; the writer's threshold is
        # far above it, so only the bound on a stalled thread remains.
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == sqlite_files.WRITER_CHECKPOINT_PAGES
        db.execute("BEGIN")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, b"x" * 4000) for i in range(1500)])  # > 1,000 pages
        db.execute("COMMIT")
        size_after_commit = path.stat().st_size
        # the commit itself did not copy the pages into the database file; the checkpoint thread does, soon
        assert size_after_commit < 1_000_000
        wait_until(lambda: path.stat().st_size > 5_000_000, 10, "the background checkpoint")
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1500
    finally:
        close_wal_db(path, db)


def test_the_thread_ends_with_the_last_file_and_never_creates_one(tmp_path):
    path = tmp_path / "s.sqlite3"
    db = open_wal_db(path, SCHEMA)
    assert str(path.resolve()) in sqlite_files._checkpointer.paths()
    close_wal_db(path, db)
    assert str(path.resolve()) not in sqlite_files._checkpointer.paths()
    # the thread ends, unless another test's file keeps it running
    wait_until(lambda: not any(t.name == "sqlite-checkpoints" for t in threading.enumerate())
               or bool(sqlite_files._checkpointer.paths()), 10, "the checkpoint thread to end")
    missing = tmp_path / "gone.sqlite3"
    sqlite_files.checkpoint(missing)
    assert not missing.exists()

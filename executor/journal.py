"""The idempotency journal: what the executor did with each client order id, durably, in SQLite.

One row per (account, client order id). The intent (state PENDING) is committed BEFORE the order is handed to the
broker; the first final outcome (the reply body) is recorded before that reply is written to Redis. A repeated
client order id is answered from here, never with a second broker call.
The row also records the id's owner: the strategy whose command stream sent it (executor/orderbook.py, ownership).

Durability: WAL, ``synchronous=NORMAL`` by default: a commit survives an executor crash (the process), not a power
loss. For the power-loss case recovery does not trust the journal alone: an order without a record is still looked
up in the broker's order list by its remark (= client order id) before anything is placed.
``journal_fsync=True`` switches to ``synchronous=FULL``.

All methods are synchronous and run on the event loop thread: one SQLite statement costs microseconds, and the
commits of one poll are batched into one transaction by the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from executor.sqlite_files import close_wal_db, open_wal_db
from producer_lib import contract as c

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    account        TEXT    NOT NULL,
    coid           TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    order_id       INTEGER,
    reply          BLOB,               -- msgpack {"ok": bool, "body": dict}: the first final outcome
    command_id     TEXT    NOT NULL DEFAULT '',
    stream_id      TEXT    NOT NULL DEFAULT '',
    deadline_ms    INTEGER NOT NULL DEFAULT 0,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    rejection_seen INTEGER NOT NULL DEFAULT 0,  -- an OrderRejected event was published for it
    owner          TEXT,               -- the strategy (command stream owner) that sent it; NULL = not recorded
    xt_remark      TEXT,               -- PlaceOrder.xt_remark: an xtquant program's own remark; NULL = not given
    xt_strategy    TEXT,               -- PlaceOrder.xt_strategy_name; NULL = not given
    PRIMARY KEY (account, coid)
);
CREATE INDEX IF NOT EXISTS orders_state ON orders (account, state);
CREATE INDEX IF NOT EXISTS orders_order_id ON orders (account, order_id);
CREATE INDEX IF NOT EXISTS orders_updated ON orders (updated_ms);
"""

_COLUMNS = ("coid, fingerprint, state, order_id, reply, command_id, stream_id, deadline_ms, created_ms, "
            "updated_ms, rejection_seen, owner, xt_remark, xt_strategy")

UNRESOLVED = (c.OutcomeState.PENDING, c.OutcomeState.UNKNOWN)


@dataclass(frozen=True, slots=True)
class StoredReply:
    """The reply a repeated client order id gets: a result body (OrderAck) or an ErrorInfo body."""

    ok: bool
    body: dict[str, Any]

    @classmethod
    def of(cls, result: c.OrderAck | None = None, error: c.ErrorInfo | None = None) -> StoredReply:
        model = result if result is not None else error
        assert model is not None
        return cls(ok=error is None, body=model.model_dump(mode="json"))

    def result(self) -> c.OrderAck | None:
        return c.OrderAck.model_validate(self.body) if self.ok else None

    def error(self) -> c.ErrorInfo | None:
        return None if self.ok else c.ErrorInfo.model_validate(self.body)


@dataclass(frozen=True, slots=True)
class Record:
    coid: str
    fingerprint: str
    state: c.OutcomeState
    order_id: int | None = None
    reply: StoredReply | None = None
    command_id: str = ""
    stream_id: str = ""
    deadline_ms: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    rejection_seen: bool = False
    # The strategy whose command stream sent the id ("" = the stream without a strategy); None = not recorded (a
    # row written before ownership was: the broker's record decides, see OrderBook.owner in executor/orderbook.py).
    owner: str | None = None
    # An xtquant program's own order_remark / strategy_name (PlaceOrder.xt_*), recorded with the intent, never changed
    xt_remark: str | None = None
    xt_strategy_name: str | None = None

    @property
    def final(self) -> bool:
        return self.state not in UNRESOLVED

    def evolve(self, **changes: Any) -> Record:
        return replace(self, **changes)


class Journal:
    def __init__(self, path: Path, account: str, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.account = account
        self._fsync = fsync
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        if self._db is not None:
            return
        self._db = open_wal_db(self.path, _SCHEMA, synchronous="FULL" if self._fsync else "NORMAL",
                               busy_timeout_ms=5000)
        _migrate(self._db)

    def close(self) -> None:
        if self._db is not None:
            close_wal_db(self.path, self._db)
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("journal is not open")
        return self._db

    # --- reads ----------------------------------------------------------------------------------------------
    def get(self, coid: str) -> Record | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM orders WHERE account=? AND coid=?",
                              (self.account, coid)).fetchone()
        return _record(row) if row else None

    def by_order_id(self, order_id: int) -> Record | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM orders WHERE account=? AND order_id=? LIMIT 1",
                              (self.account, order_id)).fetchone()
        return _record(row) if row else None

    def unresolved(self) -> list[Record]:
        """Records still PENDING or UNKNOWN: the broker may or may not have these orders."""
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM orders WHERE account=? AND state IN (?, ?)",
                               (self.account, *(s.value for s in UNRESOLVED))).fetchall()
        return [_record(r) for r in rows]

    # --- writes ---------------------------------------------------------------------------------------------
    def save(self, records: Iterable[Record], now_ms: int) -> None:
        """Insert or replace whole records, in ONE transaction. ``created_ms`` of an existing row is kept."""
        rows = [(self.account, r.coid, r.fingerprint, r.state.value, r.order_id,
                 None if r.reply is None else c.pack({"ok": r.reply.ok, "body": r.reply.body}),
                 r.command_id, r.stream_id, r.deadline_ms, r.created_ms or now_ms, now_ms, int(r.rejection_seen),
                 r.owner, r.xt_remark, r.xt_strategy_name)
                for r in records]
        if not rows:
            return
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO orders (account, coid, fingerprint, state, order_id, reply, command_id, stream_id, "
                "deadline_ms, created_ms, updated_ms, rejection_seen, owner, xt_remark, xt_strategy) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(account, coid) DO UPDATE SET fingerprint=excluded.fingerprint, state=excluded.state, "
                "order_id=excluded.order_id, reply=excluded.reply, command_id=excluded.command_id, "
                "stream_id=excluded.stream_id, deadline_ms=excluded.deadline_ms, updated_ms=excluded.updated_ms, "
                "rejection_seen=MAX(rejection_seen, excluded.rejection_seen), "
                "owner=COALESCE(orders.owner, excluded.owner), "  # recorded once, with the intent; never changed
                "xt_remark=COALESCE(orders.xt_remark, excluded.xt_remark), "
                "xt_strategy=COALESCE(orders.xt_strategy, excluded.xt_strategy) "
                # A final outcome is never downgraded to PENDING/UNKNOWN (e.g. by a late, racing write).
                "WHERE orders.state IN ('pending', 'unknown') OR excluded.state NOT IN ('pending', 'unknown')",
                rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def mark_rejection_seen(self, order_id: int) -> None:
        self.db.execute("UPDATE orders SET rejection_seen=1 WHERE account=? AND order_id=?", (self.account, order_id))

    def purge(self, before_ms: int) -> int:
        """Forget records not updated since ``before_ms`` (journal_retention_days; orders are day orders)."""
        cur = self.db.execute("DELETE FROM orders WHERE account=? AND updated_ms<?", (self.account, before_ms))
        return cur.rowcount


def _migrate(db: sqlite3.Connection) -> None:
    """Journal files written before a column existed (owner, xt_remark, xt_strategy) get it, NULL in their rows."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(orders)")}
    for name in ("owner", "xt_remark", "xt_strategy"):
        if name not in columns:
            db.execute(f"ALTER TABLE orders ADD COLUMN {name} TEXT")


def _record(row: tuple) -> Record:
    (coid, fingerprint, state, order_id, reply, command_id, stream_id, deadline_ms, created_ms, updated_ms,
     rejection_seen, owner, xt_remark, xt_strategy) = row
    stored = None
    if reply is not None:
        data = c.unpack(reply)
        stored = StoredReply(ok=bool(data["ok"]), body=data["body"])
    return Record(coid=coid, fingerprint=fingerprint, state=c.OutcomeState(state), order_id=order_id, reply=stored,
                  command_id=command_id, stream_id=stream_id, deadline_ms=deadline_ms, created_ms=created_ms,
                  updated_ms=updated_ms, rejection_seen=bool(rejection_seen), owner=owner,
                  xt_remark=xt_remark, xt_strategy_name=xt_strategy)

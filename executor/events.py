"""Publishing events to the account's event stream, with a per-account ``seq`` and a durable local spool.

Guarantees:

* every event gets the next ``seq`` (1, 2, 3 ... no holes), in the order ``publish()`` was called, and is written
  to the stream in that order (batched ``XADD``s in one MULTI/EXEC, so a batch is all-or-nothing on the server);
* when Redis cannot be reached, events go to a SQLite spool in ``state_dir`` and are published, in order and
  before any newer event, when Redis is back. None is dropped;
* a batch whose ``EXEC`` answer was lost (connection cut mid-flight) may or may not be on the stream: after
  reconnecting, the last ``seq`` on the stream tells which spooled events are already there, so nothing is
  written twice;
* on start, ``seq`` resumes after the highest of the stream's last entry and the spool.

Not covered: events still in memory (not yet written, not yet spooled) when the process dies. They leave memory
within one event-loop turn while Redis is up; the broker's order/trade lists are the source of truth after a crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rex
import structlog

from executor.sqlite_files import open_wal_db
from executor.transport import StreamAppender
from producer_lib import contract as c

log = structlog.get_logger("executor.events")

#: Errors that mean "Redis is not reachable now" (retry later), as opposed to a bug.
REDIS_DOWN_ERRORS = (rex.ConnectionError, rex.TimeoutError, OSError, asyncio.TimeoutError)

_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    rowid  INTEGER PRIMARY KEY AUTOINCREMENT,
    seq    INTEGER,          -- NULL until the stream's last seq is known (Redis down since start)
    fields BLOB NOT NULL     -- msgpack of the entry's fields, seq excluded
);
"""


class LeaseUndecided(Exception):
    """The guard cannot say yet whether this executor still leads: keep the events, publish them later."""


@dataclass(slots=True)
class _Item:
    fields: dict[str, Any]  # encode_event output; F_SEQ is set when the seq is assigned
    seq: int | None = None
    rowid: int | None = None  # set when the item lives in the spool


class EventSpool:
    """Durable FIFO of events that could not be written to Redis yet."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self.count = 0

    def open(self) -> None:
        if self._db is not None:
            return
        db = self._db = open_wal_db(self.path, _SPOOL_SCHEMA)
        self.count = db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "spool is not open"
        return self._db

    def append(self, items: list[_Item]) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            for item in items:
                fields = {k: v for k, v in item.fields.items() if k != c.F_SEQ}
                cur = db.execute("INSERT INTO spool (seq, fields) VALUES (?, ?)", (item.seq, c.pack(fields)))
                item.rowid = cur.lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.count += len(items)

    def head(self, limit: int) -> list[_Item]:
        rows = self.db.execute("SELECT rowid, seq, fields FROM spool ORDER BY rowid LIMIT ?", (limit,)).fetchall()
        items = []
        for rowid, seq, blob in rows:
            fields = c.unpack(blob)
            if seq is not None:
                fields[c.F_SEQ] = str(seq)
            items.append(_Item(fields=fields, seq=seq, rowid=rowid))
        return items

    def max_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM spool").fetchone()[0]

    def assign_seqs(self, next_seq: int) -> int:
        """Give the rows spooled before the seq was known their seqs, in order. Returns the next free seq."""
        rows = self.db.execute("SELECT rowid FROM spool WHERE seq IS NULL ORDER BY rowid").fetchall()
        if not rows:
            return next_seq
        db = self.db
        db.execute("BEGIN")
        for (rowid,) in rows:
            db.execute("UPDATE spool SET seq=? WHERE rowid=?", (next_seq, rowid))
            next_seq += 1
        db.execute("COMMIT")
        return next_seq

    def delete_through(self, rowid: int) -> None:
        cur = self.db.execute("DELETE FROM spool WHERE rowid<=?", (rowid,))
        self.count -= cur.rowcount

    def clear(self) -> None:
        self.db.execute("DELETE FROM spool")
        self.count = 0

    def delete_published(self, last_seq: int) -> None:
        cur = self.db.execute("DELETE FROM spool WHERE seq IS NOT NULL AND seq<=?", (last_seq,))
        self.count -= cur.rowcount


class EventPublisher:
    """Assigns seqs and writes events to ``Keys.events``; ``publish()`` is synchronous and never raises."""

    def __init__(self, redis: aioredis.Redis, keys: c.Keys, spool_path: Path, *, batch_max: int = 512,
                 maxlen: int = c.EVENT_STREAM_MAXLEN, retry_max_s: float = 2.0) -> None:
        self.redis = redis
        self.keys = keys
        self.spool = EventSpool(spool_path)
        self.batch_max = batch_max
        self.maxlen = maxlen
        self.retry_max_s = retry_max_s
        self._appender = StreamAppender(redis, keys.events, maxlen)
        self.last_seq = 0  # highest seq known to be on the stream
        self.redis_ok = True
        self._next_seq: int | None = None  # None until the stream's last seq has been read
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        # False once this executor lost the account's lease: its events are then dropped, since the successor
        # publishes the same broker pushes from its own connection with the stream's seq (two writers would
        # interleave two seq counters). None while the lease is undecided (past its local deadline during a pause
        # or an outage): events are held in the spool until it is decided.
        self.guard: Callable[[], bool | None] | None = None
        self._fenced_drops = 0

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.spool.open()
        try:
            await self._sync_seq()
        except REDIS_DOWN_ERRORS as exc:
            self._mark_down(exc)
        self._task = asyncio.create_task(self._run(), name="event-publisher")
        if self.spool.count:
            self._kick()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every published event is on the stream. False on timeout (the rest stays spooled)."""
        if self._task is None:
            return not self._queue and not self.spool.count
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush (bounded), spool whatever could not be written, stop."""
        await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._queue:
            self.spool.open()
            self._spool_queue()
        self.spool.close()

    # --- the one entry point --------------------------------------------------------------------------------
    def publish(self, event: c.Event, *, client_order_id: str = "", order_id: int | None = None) -> None:
        """Queue ``event`` for the stream. Called on the loop thread, in the order events happened."""
        fields = c.encode_event(event, account=self.keys.account, seq=0, client_order_id=client_order_id,
                                order_id=order_id)
        self._queue.append(_Item(fields=fields))
        self._kick()

    @property
    def pending(self) -> int:
        return len(self._queue) + self.spool.count

    # --- internals ------------------------------------------------------------------------------------------
    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self.spool.count:
                try:
                    if self._next_seq is None or not self.redis_ok:
                        await self._sync_seq()
                    await self._publish_batch()
                    backoff = 0.05
                except REDIS_DOWN_ERRORS as exc:
                    self._mark_down(exc)
                    self._spool_queue()
                    backoff = await self._sleep_spooling(backoff)
                except LeaseUndecided:
                    self._spool_queue()
                    backoff = await self._sleep_spooling(backoff)
                except Exception:  # a bug must not stop event publishing: keep the events, log, retry later
                    log.exception("event publisher failed; events kept in the spool")
                    self._spool_queue()
                    backoff = await self._sleep_spooling(backoff)
            if not self._queue and not self.spool.count:
                self._idle.set()

    async def _sync_seq(self) -> None:
        """Read the stream's last seq; drop spooled events already on it; resume seq after the highest known."""
        last = await self.redis.xrevrange(self.keys.events, "+", "-", count=1)
        stream_seq = 0
        if last:
            raw = last[0][1].get(c.F_SEQ.encode(), last[0][1].get(c.F_SEQ))
            stream_seq = int(raw or 0)
        if self.spool.count:
            self.spool.delete_published(stream_seq)
        highest = max(stream_seq, self.spool.max_seq(), self.last_seq, (self._next_seq or 1) - 1)
        self._next_seq = self.spool.assign_seqs(highest + 1)
        self.last_seq = max(self.last_seq, stream_seq)
        if not self.redis_ok:
            log.info("event stream reachable again", spooled=self.spool.count, last_seq=self.last_seq)
        self.redis_ok = True

    async def _publish_batch(self) -> None:
        verdict = True if self.guard is None else self.guard()
        if verdict is None:
            raise LeaseUndecided
        if not verdict:
            dropped = len(self._queue) + self.spool.count
            self._fenced_drops += dropped
            self._queue.clear()
            self.spool.clear()
            log.error("lease lost: events of this executor dropped (the leader publishes its own)", dropped=dropped)
            return
        from_spool = self.spool.count > 0  # spooled events always go before newer ones
        if from_spool:
            batch = self.spool.head(self.batch_max)
        else:
            batch = [self._queue[i] for i in range(min(self.batch_max, len(self._queue)))]
            for item in batch:
                if item.seq is None:
                    self._assign(item)
        await self._appender.add([item.fields for item in batch], self.redis)  # one command, atomic
        self.last_seq = batch[-1].seq or self.last_seq
        if from_spool:
            self.spool.delete_through(batch[-1].rowid)  # type: ignore[arg-type]
        else:
            for _ in batch:
                self._queue.popleft()

    def _assign(self, item: _Item) -> None:
        assert self._next_seq is not None
        item.seq = self._next_seq
        item.fields[c.F_SEQ] = str(item.seq)
        self._next_seq += 1

    def _spool_queue(self) -> None:
        """Move every in-memory event to the durable spool (seqs assigned if known), keeping order."""
        if not self._queue:
            return
        items = list(self._queue)
        if self._next_seq is not None:
            for item in items:
                if item.seq is None:
                    self._assign(item)
        self.spool.append(items)
        self._queue.clear()

    def _mark_down(self, exc: BaseException) -> None:
        if self.redis_ok:
            log.warning("event stream unreachable; spooling events locally", error=repr(exc))
        self.redis_ok = False

    async def _sleep_spooling(self, backoff: float) -> float:
        """Back off before retrying; events arriving meanwhile go to the spool at once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + backoff
        while (left := until - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
            self._wake.clear()
            self._spool_queue()
        return min(backoff * 2, self.retry_max_s)

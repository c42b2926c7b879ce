"""Publishing events to the account's event stream, with a per-account ``seq``, a durable local spool, and a record
of the fills and order statuses published.

Guarantees:

* events are written in the order ``publish()`` was called; each gets the next ``seq`` (1, 2, 3 ...), assigned by
  Redis itself inside the script that writes the batch (PUBLISH_SCRIPT), so a skipped event leaves no hole and two
  writers (a fenced leader's late batch, its successor) can never interleave two counters;
* the same script keeps, per account and trading day, the RECORD of what the stream holds: the trade ids of every
  ``order_filled`` and the furthest status of every order's ``order_updated``. An ``order_filled`` whose trade is
  recorded is not written again, an ``order_updated`` behind the recorded status is not written (never backwards).
  The record lives next to the stream, written atomically with it, so both survive or vanish together (a Redis
  restart without persistence loses both, and reconciliation then publishes the day's fills again on the new
  stream), and any executor of the account, whatever its state dir, reconciles the broker's lists against it
  (``recorded()``; executor/supervision.py ``_publish_missed_pushes``);
* when Redis cannot be reached, or this executor is not the leader, events go to a SQLite spool in ``state_dir``
  and are published, in order and before any newer event, when Redis is back (or when an executor on this state
  dir leads again). None is dropped;
* a batch whose answer was lost (connection cut mid-flight) may or may not be on the stream: every event carries
  its writer (one per publisher instance) and a serial, and the script skips serials of a writer already applied,
  so nothing is written twice;
* a subscriber is told by a Gap (a ``seq`` skipped) where events may be missing: before the ``executor_started``
  of an executor whose predecessor did not stop cleanly the same trading day (events it held in memory are lost;
  fills are published again by reconciliation, other events are not), and after the stream lost entries (Redis
  restarted without persistence).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio as aioredis
import structlog

from executor.sqlite_files import close_wal_db, open_wal_db
from producer_lib import contract as c
from producer_lib._connections import REDIS_DOWN_OR_IO_ERRORS

log = structlog.get_logger("executor.events")

#: Errors that mean "Redis is not reachable now" (retry later), as opposed to a bug (producer_lib/_connections.py).
REDIS_DOWN_ERRORS = REDIS_DOWN_OR_IO_ERRORS

#: The record of a trading day is kept this long (a restart the next morning still finds yesterday's).
RECORD_TTL_S = 3 * 86_400
_CN_OFFSET_S = 8 * 3600  # trading days are dates in China time (UTC+8, no DST)

# Record kinds of an item.
_PLAIN, _FILL, _ORDER = 0, 1, 2
# Gap flags of an item: none; always (the stream lost entries); unless the previous event is a clean
# executor_stopped of the same trading day (the executor_started of a new executor).
_NO_GAP, _GAP, _GAP_UNLESS_CLEAN = 0, 1, 2

# KEYS: 1 the event stream, 2.. record keys and writer marks (indexes in the items).
# ARGV: 1 MAXLEN (approximate), 2 seq floor (the highest seq this writer saw on the stream), 3 record ttl s,
#   4 the seq field name, 5 today (days since the epoch, China time), 6 items: ONE msgpack array of
#   [mark key index, serial, gap flag, record kind, record key index, member, rank, status code, flat fields].
# Returns [last seq, per item: seq written, 0 = not written (recorded already / behind), -1 = applied before,
#   1 if the stream had lost entries (its last seq below the floor: Redis lost its data, or it was deleted)].
# Each item is XADDed first (pcall: on an error the marks of what was written are still saved) and recorded after.
PUBLISH_SCRIPT = """
local seq_field = ARGV[4]
local seq = tonumber(ARGV[2])
local gap = false
local reset = 0
local last_type = nil
local last_day = nil
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then
  local stream_seq = 0
  local f = top[1][2]
  for i = 1, #f, 2 do
    if f[i] == seq_field then stream_seq = tonumber(f[i + 1]) or 0 end
    if f[i] == 'type' then last_type = f[i + 1] end
  end
  last_day = math.floor((math.floor(tonumber(string.match(top[1][1], '^(%d+)')) / 1000) + 28800) / 86400)
  if stream_seq < seq then gap = true; reset = 1 end
  if stream_seq > seq then seq = stream_seq end
elseif seq > 0 then
  gap = true
  reset = 1
end
local today = tonumber(ARGV[5])
local marks = {}
local touched = {}
local results = {}
local failure = nil
for n, item in ipairs(cmsgpack.unpack(ARGV[6])) do
  local wkey, serial, gflag, kind, rkey, member, rank, code, fields =
    item[1], item[2], item[3], item[4], item[5], item[6], item[7], item[8], item[9]
  local applied = marks[wkey]
  if applied == nil then applied = tonumber(redis.call('GET', KEYS[wkey]) or '0') end
  local out = -1
  if serial > applied then
    local write = true
    local prev = nil
    if kind == 1 then
      write = redis.call('SISMEMBER', KEYS[rkey], member) == 0
    elseif kind == 2 then
      prev = redis.call('HGET', KEYS[rkey], member)
      if prev then
        local prank, pcode = string.match(prev, '^(%d+):(%d+)$')
        prank, pcode = tonumber(prank), tonumber(pcode)
        write = rank > prank or (rank == prank and code ~= pcode)
      end
    end
    out = 0
    if write then
      if gflag == 1 then gap = true end
      if gflag == 2 and last_type ~= nil and not (last_type == 'executor_stopped' and last_day == today) then
        gap = true
      end
      if gap then seq = seq + 1 end
      seq = seq + 1
      for i = 1, #fields, 2 do
        if fields[i] == seq_field then fields[i + 1] = tostring(seq) end
      end
      local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
      if type(ok) == 'table' and ok.err then
        failure = ok.err
        seq = seq - 1
        if gap then seq = seq - 1 end
        break
      end
      gap = false
      last_type = nil
      for i = 1, #fields, 2 do
        if fields[i] == 'type' then last_type = fields[i + 1] end
      end
      last_day = today
      if kind == 1 then
        redis.call('SADD', KEYS[rkey], member)
        touched[rkey] = true
      elseif kind == 2 then
        redis.call('HSET', KEYS[rkey], member, rank .. ':' .. code)
        touched[rkey] = true
      end
      out = seq
    end
    applied = serial
  end
  marks[wkey] = applied
  results[n] = out
end
for wkey, applied in pairs(marks) do
  redis.call('SET', KEYS[wkey], applied, 'EX', ARGV[3])
end
for rkey, _ in pairs(touched) do
  redis.call('EXPIRE', KEYS[rkey], ARGV[3])
end
if failure then return redis.error_reply(failure) end
return {seq, results, reset}
"""

_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    rowid  INTEGER PRIMARY KEY AUTOINCREMENT,
    seq    INTEGER,          -- spool files of older versions: the seq assigned locally (NULL in this version)
    fields BLOB NOT NULL     -- msgpack of the entry's fields, seq excluded
);
"""
# Added to the files of older versions by EventSpool.open(): the event's writer and serial, its gap flag.
_SPOOL_COLUMNS = {"writer": "TEXT", "serial": "INTEGER", "gap": "INTEGER NOT NULL DEFAULT 0"}


def trading_day(epoch_s: float | int = 0) -> int:
    """Days since the epoch in China time (``epoch_s`` 0: now)."""
    return int(((epoch_s or time.time()) + _CN_OFFSET_S) // 86_400)


_Record = tuple[int, int, str, int, int]  # record kind, trading day, member, rank, status code
_NOT_RECORDED: _Record = (_PLAIN, 0, "", 0, 0)


@dataclass(slots=True)
class _Item:
    fields: dict[str, Any]  # encode_event output; F_SEQ is set by the script
    writer: str
    serial: int
    gap: int = _NO_GAP
    rowid: int | None = None  # set when the item lives in the spool
    record: _Record | None = None  # None: computed from the fields when needed


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
        have = {row[1] for row in db.execute("PRAGMA table_info(spool)")}
        for name, kind in _SPOOL_COLUMNS.items():
            if name not in have:
                db.execute(f"ALTER TABLE spool ADD COLUMN {name} {kind}")
        self.count = db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            close_wal_db(self.path, self._db)
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
                cur = db.execute("INSERT INTO spool (fields, writer, serial, gap) VALUES (?, ?, ?, ?)",
                                 (c.pack(fields), item.writer, item.serial, item.gap))
                item.rowid = cur.lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.count += len(items)

    def head(self, limit: int) -> list[_Item]:
        rows = self.db.execute("SELECT rowid, fields, writer, serial, gap FROM spool ORDER BY rowid LIMIT ?",
                               (limit,)).fetchall()
        items = []
        for rowid, blob, writer, serial, gap in rows:
            fields = c.unpack(blob)
            fields[c.F_SEQ] = "0"
            items.append(_Item(fields=fields, writer=writer, serial=serial, gap=gap, rowid=rowid))
        return items

    def adopt_legacy(self, stream_seq: int) -> None:
        """Rows of an older version (a locally assigned seq, no writer): those at or below the stream's last seq
        are on it already; the rest get a writer and serials of their own."""
        db = self.db
        if not db.execute("SELECT 1 FROM spool WHERE writer IS NULL LIMIT 1").fetchone():
            return
        db.execute("BEGIN")
        db.execute("DELETE FROM spool WHERE writer IS NULL AND seq IS NOT NULL AND seq>0 AND seq<=?", (stream_seq,))
        db.execute("UPDATE spool SET writer=?, serial=rowid, seq=NULL WHERE writer IS NULL",
                   ("legacy-" + secrets.token_hex(6),))
        db.execute("COMMIT")
        self.count = db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def delete_through(self, rowid: int) -> None:
        cur = self.db.execute("DELETE FROM spool WHERE rowid<=?", (rowid,))
        self.count -= cur.rowcount


class EventPublisher:
    """Writes events to ``Keys.events`` (seq, record: PUBLISH_SCRIPT); ``publish()`` is synchronous, never raises."""

    def __init__(self, redis: aioredis.Redis, keys: c.Keys, spool_path: Path, *, batch_max: int = 512,
                 maxlen: int = c.EVENT_STREAM_MAXLEN, retry_max_s: float = 2.0) -> None:
        self.redis = redis
        self.keys = keys
        self.spool = EventSpool(spool_path)
        self.batch_max = batch_max
        self.maxlen = maxlen
        self.retry_max_s = retry_max_s
        self._script = redis.register_script(PUBLISH_SCRIPT)
        self.writer = secrets.token_hex(8)  # this instance's events: (writer, serial) is applied at most once
        self._serial = 0
        self.last_seq = 0  # highest seq known to be on the stream
        self.redis_ok = True
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._closing = False
        # True while this executor holds the account's lease. False (lost) or None (undecided: a pause or an
        # outage past its local deadline): its events wait in the spool, never dropped (a successor does not receive
        # the pushes this executor received before), and are published when an executor on this state dir leads
        # again; the record keeps them from duplicating a fill or moving an order backwards.
        self.guard: Callable[[], bool | None] | None = None
        self.skipped = 0  # events not written: recorded already (a fill) or behind the record (an order status)
        self.stream_resets = 0  # times the stream (and with it the record) was found to have lost entries

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
        """Flush (bounded; not while fenced), spool whatever could not be written, stop."""
        if self._leading():
            await self.flush(timeout_s)
        self._closing = True  # the loop ends by itself too: asyncio.wait_for can swallow a cancellation
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=max(timeout_s, 1.0))
            self._task = None
        if self._queue:
            self.spool.open()
            self._spool_queue()
        self.spool.close()

    # --- the one entry point --------------------------------------------------------------------------------
    def publish(self, event: c.Event, *, client_order_id: str = "", order_id: int | None = None,
                gap_unless_clean: bool = False) -> None:
        """Queue ``event`` for the stream. Called on the loop thread, in the order events happened.
        ``gap_unless_clean``: skip a seq (a Gap for subscribers) unless the stream's previous event is a clean
        ``executor_stopped`` of the same trading day (the ``executor_started`` of a new executor)."""
        fields = c.encode_event(event, account=self.keys.account, seq=0, client_order_id=client_order_id,
                                order_id=order_id)
        self._serial += 1
        self._queue.append(_Item(fields=fields, writer=self.writer, serial=self._serial,
                                 gap=_GAP_UNLESS_CLEAN if gap_unless_clean else _NO_GAP,
                                 record=_record_of_event(event)))
        self._kick()

    @property
    def pending(self) -> int:
        return len(self._queue) + self.spool.count

    async def recorded(self, trades: list[c.TradeReport], orders: list[c.OrderReport]
                       ) -> tuple[set[tuple[int, str]], dict[int, tuple[int, int]]] | None:
        """What the record says about these: the (order id, trade id) of the trades whose fill is on the stream,
        and the (rank, status code) of the last ``order_updated`` written per order id. None if Redis cannot be
        read (the caller compares again later)."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for trade in trades:
                pipe.sismember(self._fills_key(trading_day(trade.traded_time)), _fill_member(trade))
            for order in orders:
                pipe.hget(self._orders_key(trading_day(order.order_time)), str(order.order_id))
            answers = await pipe.execute()
        except REDIS_DOWN_ERRORS as exc:
            log.warning("reconciliation: the record of published events is unreadable", error=repr(exc))
            return None
        fills = {(t.order_id, t.trade_id) for t, a in zip(trades, answers) if a}
        ranks: dict[int, tuple[int, int]] = {}
        for order, raw in zip(orders, answers[len(trades):]):
            if raw:
                rank, _, code = (raw.decode() if isinstance(raw, bytes) else raw).partition(":")
                ranks[order.order_id] = (int(rank), int(code))
        return fills, ranks

    # --- internals ------------------------------------------------------------------------------------------
    def _fills_key(self, day: int) -> str:
        return f"{self.keys.events}:fills:{day}"

    def _orders_key(self, day: int) -> str:
        return f"{self.keys.events}:orders:{day}"

    def _leading(self) -> bool:
        return self.guard is None or self.guard() is True

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.05
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while (self._queue or self.spool.count) and not self._closing:
                try:
                    if not self._leading():
                        # Not the leader (now): keep everything, durably, for whoever leads on this state dir next.
                        self._spool_queue()
                        backoff = await self._sleep_spooling(backoff)
                        continue
                    await self._publish_batch()
                    backoff = 0.05
                except REDIS_DOWN_ERRORS as exc:
                    self._mark_down(exc)
                    self._spool_queue()
                    backoff = await self._sleep_spooling(backoff)
                except Exception:  # a bug must not stop event publishing: keep the events, log, retry later
                    log.exception("event publisher failed; events kept in the spool")
                    self._spool_queue()
                    backoff = await self._sleep_spooling(backoff)
            if not self._queue and not self.spool.count:
                self._idle.set()

    async def _sync_seq(self) -> None:
        """Read the stream's last seq (the floor of the next one; also what ping reports); adopt an older spool."""
        last = await self.redis.xrevrange(self.keys.events, "+", "-", count=1)
        stream_seq = 0
        if last:
            raw = last[0][1].get(c.F_SEQ.encode(), last[0][1].get(c.F_SEQ))
            stream_seq = int(raw or 0)
        self.spool.adopt_legacy(stream_seq)
        self.last_seq = max(self.last_seq, stream_seq)

    async def _publish_batch(self) -> None:
        from_spool = self.spool.count > 0  # spooled events always go before newer ones
        if from_spool:
            batch = self.spool.head(self.batch_max)
        else:
            batch = [self._queue[i] for i in range(min(self.batch_max, len(self._queue)))]
        keys: list[str] = [self.keys.events]
        index: dict[str, int] = {}

        def key_index(key: str) -> int:
            if key not in index:
                keys.append(key)
                index[key] = len(keys)  # Lua's KEYS are 1-based
            return index[key]

        packed = []
        for item in batch:
            kind, day, member, rank, code = item.record or _record_of(item.fields)
            rindex = key_index(self._fills_key(day) if kind == _FILL else self._orders_key(day)) if kind else 0
            packed.append([key_index(f"{self.keys.events}:writer:{item.writer}"), item.serial, item.gap, kind,
                           rindex, member, rank, code, [x for kv in item.fields.items() for x in kv]])
        args = [self.maxlen, self.last_seq, RECORD_TTL_S, c.F_SEQ, trading_day(),
                msgpack.packb(packed, use_bin_type=False)]  # Redis's Lua cmsgpack reads the raw type, not bin
        last_seq, results, reset = await self._script(keys=keys, args=args, client=self.redis)  # one command, atomic
        if reset:
            self.stream_resets += 1
            log.warning("the event stream lost entries (Redis lost its data?); a Gap tells subscribers, and "
                        "reconciliation publishes the day's fills again", last_seq=self.last_seq)
        if not self.redis_ok:
            log.info("event stream reachable again", spooled=self.spool.count, last_seq=last_seq)
            self.redis_ok = True
        self.last_seq = max(self.last_seq, int(last_seq))
        skipped = sum(1 for r in results if r == 0)
        if skipped:
            self.skipped += skipped
            log.info("events already on the stream (fill recorded, or order status not newer): not written again",
                     count=skipped)
        if from_spool:
            self.spool.delete_through(batch[-1].rowid)  # type: ignore[arg-type]
        else:
            for _ in batch:
                self._queue.popleft()

    def _spool_queue(self) -> None:
        """Move every in-memory event to the durable spool, keeping order."""
        if not self._queue:
            return
        self.spool.append(list(self._queue))
        self._queue.clear()

    def _mark_down(self, exc: BaseException) -> None:
        if self.redis_ok:
            log.warning("event stream unreachable; spooling events locally", error=repr(exc))
        self.redis_ok = False

    async def _sleep_spooling(self, backoff: float) -> float:
        """Back off before retrying; events arriving meanwhile go to the spool at once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + backoff
        while (left := until - loop.time()) > 0 and not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
            self._wake.clear()
            self._spool_queue()
        return min(backoff * 2, self.retry_max_s)


def _fill_member(trade: c.TradeReport) -> str:
    return f"{trade.order_id}:{trade.trade_id}"


def _record_of(fields: dict[str, Any]) -> _Record:
    """The record an encoded event keeps (a spooled one: decoded again)."""
    etype = fields.get(c.F_TYPE)
    if etype == c.OrderFilled.TYPE:
        return _record_of_event(c.OrderFilled.model_validate(c.read_body(fields)))
    if etype == c.OrderUpdated.TYPE:
        return _record_of_event(c.OrderUpdated.model_validate(c.read_body(fields)))
    return _NOT_RECORDED


def _record_of_event(event: c.Event) -> _Record:
    """(record kind, trading day, member, rank, status code): fills and order updates are recorded, the rest not."""
    if isinstance(event, c.OrderFilled) and event.trade.trade_id:
        return _FILL, trading_day(event.trade.traded_time), _fill_member(event.trade), 0, 0
    if isinstance(event, c.OrderUpdated):
        order = event.order
        return _ORDER, trading_day(order.order_time), str(order.order_id), c.order_rank(order), order.status_code
    return _NOT_RECORDED

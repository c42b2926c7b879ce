"""The executor's Redis side of the command stream: read, claim, reply + ack, dead-letter, server clock, heartbeat.

Only Redis I/O lives here; what a command means is the engine's business. Every key written is one of the account's
(``contract.Keys``): replies go only to keys that ``Keys.is_reply_stream`` accepts.

NOGROUP (the stream or the group vanished: ``DEL``, ``FLUSHALL``, a Redis restart without persistence) is repaired
here by re-creating the group at id ``0``, not ``$``: after a restart without persistence the stream is new, and
a producer may already have added commands before the executor noticed; ``$`` would silently skip them. ``0`` can
only re-deliver entries that were processed before the group vanished (when just the group was destroyed); those
are harmless: orders are answered from the journal or refused as expired, queries are answered again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis.asyncio as aioredis
import redis.exceptions as rex

from producer_lib import contract as c


@dataclass(slots=True)
class Entry:
    """One command stream entry as delivered to this consumer."""

    stream_id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1  # 1 for a first delivery (">"), more for a claimed/re-read entry

    @property
    def id_ms(self) -> int:
        return c.stream_id_ms(self.stream_id)


@dataclass(slots=True)
class Finish:
    """What to write for one processed entry: the reply (if any), a dead-letter record (if any), then XACK."""

    stream_id: str
    reply_to: str | None = None
    reply: dict[str, Any] | None = None
    dead: dict[str, Any] | None = None


@dataclass(slots=True)
class PendingInfo:
    stream_id: str
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(slots=True)
class ServerClock:
    """Redis server time estimated from the local monotonic clock: ``TIME`` measured now and then."""

    offset_ms: float = 0.0  # server epoch ms - local monotonic ms
    synced: bool = False
    last_sync_mono: float = field(default=0.0)

    def now_ms(self) -> int:
        return int(time.monotonic() * 1000.0 + self.offset_ms)


class Fenced(Exception):
    """This executor no longer holds the account's lease: it must not write, ack or trade any more."""


# Lua 5.1's unpack() -- and so every redis.call spread from a table -- fails past about 8,000 values and stops the
# script where it is: Redis keeps what the script had written and rolls nothing back. So no script here unpacks a
# table larger than SCRIPT_MAX_VALUES (the Python side never sends one, and each script checks every table before
# its first write), and every write after the first is a pcall: a script either fails before writing anything or
# runs to its end. One item can therefore never leave a batch half-written.
SCRIPT_MAX_VALUES = 1024  # field/value strings of one XADD (an entry's fields are bounded far below: contract.py)


class TooManyValues(ValueError):
    """An entry with more field/value strings than a script may unpack (SCRIPT_MAX_VALUES)."""


# KEYS: 1 lease, 2 command stream, 3 dead-letter stream, 4.. reply streams.
# ARGV: lease value ("" = no lease), group, reply maxlen, reply ttl s, dead maxlen, items, lease ms; items is ONE
#   msgpack array (unpacked by Redis's Lua cmsgpack: two arguments to pack instead of a dozen per command) of
#   [stream id, reply key index (0 = none), [reply field/value strings], [dead-letter field/value strings]].
# Each entry is XACKed FIRST and its reply / dead letter written only if that ack took (XACK = 1): if Redis ran the
# script but its answer was lost, the executor's retry finds the entries already acked and writes nothing twice.
# XACK 0 for an entry that no longer exists (Redis lost it: restart without persistence) still writes the reply,
# since nobody else can have answered it. Writes use pcall (see SCRIPT_MAX_VALUES): one bad key cannot stop the
# batch; their errors are returned.
FINISH_SCRIPT = """
if ARGV[1] ~= '' then
  local held = redis.call('GET', KEYS[1])
  if not held then
    -- the key vanished with Redis's data (restart without persistence): nobody took it, and the caller passes
    -- its lease value only while its own lease is valid by its monotonic clock, so it re-establishes it
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[7])
  elseif held ~= ARGV[1] then
    return redis.error_reply('FENCED this executor no longer holds the lease of ' .. KEYS[1])
  end
end
local items = cmsgpack.unpack(ARGV[6])
for i, item in ipairs(items) do
  local reply, dead = item[3], item[4]
  if type(reply) ~= 'table' or type(dead) ~= 'table' or #reply > MAX_VALUES or #dead > MAX_VALUES then
    return redis.error_reply('BADITEM item ' .. i .. ' is not settleable; nothing was written')
  end
end
local errors = {}
for _, item in ipairs(items) do
  local sid, key_index, reply, dead = item[1], item[2], item[3], item[4]
  local acked = redis.pcall('XACK', KEYS[2], ARGV[2], sid)
  local fresh = acked == 1
  if not fresh then  -- already acked (a retried batch), or the entry is gone with Redis's data
    local found = redis.pcall('XRANGE', KEYS[2], sid, sid)
    fresh = type(found) == 'table' and not found.err and #found == 0
  end
  if fresh then
    if key_index > 0 then
      local ok = redis.pcall('XADD', KEYS[key_index], 'MAXLEN', '~', ARGV[3], '*', unpack(reply))
      if type(ok) == 'table' and ok.err then errors[#errors + 1] = ok.err
      else redis.pcall('EXPIRE', KEYS[key_index], ARGV[4]) end
    end
    if #dead > 0 then
      local ok = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(dead))
      if type(ok) == 'table' and ok.err then errors[#errors + 1] = ok.err end
    end
  end
end
return errors
""".replace("MAX_VALUES", str(SCRIPT_MAX_VALUES))


# KEYS: 1 the stream. ARGV: 1 MAXLEN (approximate), 2 a msgpack array of entries, each a flat array of field/value
# strings. Many entries in one command with two arguments: one reply to parse instead of one per XADD, almost
# nothing to pack on our side, and the batch lands atomically, in order: every entry is checked before the first
# XADD (see SCRIPT_MAX_VALUES), so the script adds all of them or none.
XADD_MANY_SCRIPT = """
local entries = cmsgpack.unpack(ARGV[2])
for i, fields in ipairs(entries) do
  if type(fields) ~= 'table' or #fields == 0 or #fields > MAX_VALUES then
    return redis.error_reply('BADITEM entry ' .. i .. ' cannot be added; nothing was written')
  end
end
for _, fields in ipairs(entries) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
end
return #entries
""".replace("MAX_VALUES", str(SCRIPT_MAX_VALUES))


class StreamAppender:
    """Appends a batch of entries to one stream, in order, in ONE command (see XADD_MANY_SCRIPT)."""

    def __init__(self, redis: aioredis.Redis, key: str, maxlen: int) -> None:
        self.key = key
        self.maxlen = maxlen
        self._script = redis.register_script(XADD_MANY_SCRIPT)

    async def add(self, entries: list[dict[Any, Any]], client: aioredis.Redis | None = None) -> None:
        """``client``: another connection than the one registered (the script is loaded there if needed)."""
        packed = _pack([_flat(fields) for fields in entries])
        await self._script(keys=[self.key], args=[self.maxlen, packed], client=client)


def _flat(fields: dict[Any, Any]) -> list[Any]:
    """An entry's fields as the flat field/value list XADD takes; TooManyValues past what a script may unpack."""
    if 2 * len(fields) > SCRIPT_MAX_VALUES:
        raise TooManyValues(f"an entry of {len(fields)} fields; a script takes at most {SCRIPT_MAX_VALUES // 2}")
    return [x for kv in fields.items() for x in kv]


def is_nogroup(exc: BaseException) -> bool:
    return isinstance(exc, rex.ResponseError) and str(exc).startswith("NOGROUP")


class CommandTransport:
    def __init__(self, redis: aioredis.Redis, keys: c.Keys, consumer: str, *, group: str = c.COMMAND_GROUP) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.group = group
        self.clock = ServerClock()
        self._finish_script = redis.register_script(FINISH_SCRIPT)

    # --- group ----------------------------------------------------------------------------------------------
    async def ensure_group(self) -> bool:
        """Create the consumer group (and the stream) if missing. True if it had to be created."""
        try:
            await self.redis.xgroup_create(self.keys.commands, self.group, id="0", mkstream=True)
            return True
        except rex.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise

    # --- reading --------------------------------------------------------------------------------------------
    async def read_new(self, count: int, block_ms: int | None) -> tuple[list[Entry], Any]:
        """XREADGROUP ``>``: entries never delivered to any consumer of the group; and the kill switch's latest
        entry (or the exception reading it raised) as Redis saw it right after that read returned: the XREVRANGE
        is pipelined behind the (possibly blocking) read on one connection, so it runs after the read, in the same
        round trip (executor/halt.py reads the answer)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xreadgroup(self.group, self.consumer, {self.keys.commands: ">"}, count=count, block=block_ms)
        pipe.xrevrange(self.keys.halt, "+", "-", count=1)
        resp, halt = await pipe.execute(raise_on_error=False)
        if isinstance(resp, BaseException):
            raise resp
        return self._entries(resp), halt

    def _entries(self, resp: Any) -> list[Entry]:
        if not resp:
            return []
        out = []
        for _key, entries in resp:
            for sid, fields in entries:
                if sid is None:
                    continue
                out.append(Entry(_s(sid), fields or {}, 1))
        return out

    async def pending(self, *, min_idle_ms: int = 0, count: int = 1_000, start: str = "-") -> list[PendingInfo]:
        """The group's pending entries (any consumer) idle at least ``min_idle_ms``, oldest first."""
        rows = await self.redis.xpending_range(self.keys.commands, self.group, start, "+", count,
                                               idle=min_idle_ms or None)
        return [PendingInfo(_s(r["message_id"]), _s(r["consumer"]), int(r["time_since_delivered"]),
                            int(r["times_delivered"])) for r in rows]

    async def trim_commands(self, keep_ms: int, *, approximate: bool = True) -> str | None:
        """Drop command entries older than ``keep_ms`` (by the server clock), but never one still pending (read,
        not yet answered) or not yet delivered to the group. Returns the MINID used (None: nothing to trim)."""
        candidate = (self.clock.now_ms() - keep_ms, 0)
        floors = [candidate]
        summary = await self.redis.xpending(self.keys.commands, self.group)
        if summary and summary.get("pending") and summary.get("min"):
            floors.append(_id_tuple(summary["min"]))
        for group in await self.redis.xinfo_groups(self.keys.commands):
            if _s(group.get("name", b"")) == self.group:
                floors.append(_id_tuple(group.get("last-delivered-id") or b"0-0"))
        minid = min(floors)
        if minid <= (0, 0):
            return None
        text = f"{minid[0]}-{minid[1]}"
        await self.redis.xtrim(self.keys.commands, minid=text, approximate=approximate)
        return text

    async def claim(self, infos: list[PendingInfo], min_idle_ms: int) -> list[Entry]:
        """XCLAIM the given entries for this consumer. Entries deleted from the stream meanwhile are dropped from the
        pending list by Redis (>= 7) and are not returned; their ids are acked here for older servers."""
        if not infos:
            return []
        by_id = {i.stream_id: i for i in infos}
        resp = await self.redis.xclaim(self.keys.commands, self.group, self.consumer, min_idle_ms, list(by_id))
        out = []
        seen = set()
        for sid, fields in resp or []:
            if sid is None:
                continue
            sid = _s(sid)
            seen.add(sid)
            if not fields:
                continue
            out.append(Entry(sid, fields, by_id[sid].deliveries + 1))  # XCLAIM counts one more delivery
        gone = [sid for sid in by_id if sid not in seen]
        if gone:
            await self.redis.xack(self.keys.commands, self.group, *gone)
        return out

    # --- writing --------------------------------------------------------------------------------------------
    async def finish(self, items: list[Finish], lease_value: str | None = None,
                     lease_ms: int = 0) -> list[BaseException]:
        """Replies, dead letters and XACKs of a batch in ONE round trip, atomically (a Lua script: a reply is never
        written without its ack, nor the other way round). With ``lease_value`` the script first checks that this
        executor still holds the account's lease and writes nothing otherwise (raises ``Fenced``): a leader that
        was paused past its lease cannot answer or acknowledge commands its successor now owns.
        Returns per-command errors (e.g. WRONGTYPE on a reply key) without raising them; a connection error
        raises (nothing is known to be written: the caller retries).
        One item never holds up the others: an item that cannot be packed is settled with a dead letter that says
        so, and a batch the script refuses (it then writes nothing, see SCRIPT_MAX_VALUES) is settled item by
        item; only an item refused on its own is left pending (raised when it is alone)."""
        errors: list[BaseException] = []
        reply_keys: list[str] = []
        index: dict[str, int] = {}
        packed_items: list[list[Any]] = []
        for item in items:
            key_index = 0
            if item.reply is not None and item.reply_to:
                key_index = index.get(item.reply_to, 0)
                if not key_index:
                    reply_keys.append(item.reply_to)
                    key_index = index[item.reply_to] = len(reply_keys) + 3  # KEYS[1..3]: lease, commands, dead
            try:
                reply = _flat(item.reply) if key_index else []  # type: ignore[arg-type]
                packed_items.append([item.stream_id, key_index, reply, _flat(item.dead) if item.dead else []])
            except TooManyValues as exc:
                errors.append(exc)
                packed_items.append(self._degraded(item, key_index, exc))
        try:
            array = _pack(packed_items)
        except Exception:  # a value msgpack cannot take: find the item(s), so the others still go
            array = msgpack.Packer(use_bin_type=False).pack_array_header(len(packed_items))
            for item, values in zip(items, packed_items):
                try:
                    array += _pack(values)
                except Exception as exc:
                    errors.append(exc)
                    array += _pack(self._degraded(item, values[1], exc))
        args: list[Any] = [lease_value or "", self.group, c.REPLY_STREAM_MAXLEN, c.REPLY_STREAM_TTL_S,
                           c.DEAD_LETTER_MAXLEN, array, lease_ms]
        try:
            written = await self._finish_script(keys=[self.keys.lease, self.keys.commands, self.keys.dead_letter,
                                                      *reply_keys], args=args)
        except rex.ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise Fenced(str(exc)) from None
            if len(items) == 1:
                raise
            # The script wrote nothing (it fails only before its first write): settle each item on its own, so
            # the one it refused cannot leave the others unanswered.
            errors = []
            for item in items:
                try:
                    errors += await self.finish([item], lease_value, lease_ms)
                except rex.ResponseError as one:  # (Fenced is not one: it goes up)
                    errors.append(one)
            return errors
        return errors + [rex.ResponseError(_s(e)) for e in written or []]

    @staticmethod
    def _degraded(item: Finish, key_index: int, exc: BaseException) -> list[Any]:
        """An item whose reply or dead letter cannot go through the script: its reply alone if that can go (the
        caller is still answered), and a dead letter saying why instead of its own."""
        dead = _flat(_unsettleable(item.stream_id, exc))
        try:
            reply = _flat(item.reply) if key_index else []  # type: ignore[arg-type]
            _pack(reply)
            return [item.stream_id, key_index, reply, dead]
        except Exception:
            return [item.stream_id, 0, [], dead]

    # --- clock and health -----------------------------------------------------------------------------------
    async def sync_clock(self) -> ServerClock:
        """Measure the Redis server clock (TIME), correcting for half the round trip."""
        t0 = time.monotonic()
        secs, usecs = await self.redis.time()
        t1 = time.monotonic()
        server_ms = secs * 1000.0 + usecs / 1000.0
        self.clock.offset_ms = server_ms - (t0 + t1) * 500.0
        self.clock.synced = True
        self.clock.last_sync_mono = t1
        return self.clock

    async def heartbeat(self, payload: dict[str, Any]) -> None:
        await self.redis.set(self.keys.heartbeat, json.dumps(payload, separators=(",", ":")), ex=c.HEARTBEAT_TTL_S)

    async def read_heartbeat(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.heartbeat)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=False)  # Redis's Lua cmsgpack reads the raw type, not bin


def _unsettleable(stream_id: str, exc: BaseException) -> dict[str, Any]:
    """The dead letter of an entry whose own reply or dead letter could not be written: enough to find it."""
    message = f"{type(exc).__name__}: {exc}"[:300].encode("utf-8", "backslashreplace")
    return {"src_id": stream_id, "reason": "unsettleable", "message": message, "replied": "0"}


def _id_tuple(stream_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = _s(stream_id).partition("-")
    return int(ms), int(seq or 0)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

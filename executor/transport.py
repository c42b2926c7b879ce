"""The executor's Redis side of the command stream: read, claim, reply + ack, dead-letter, server clock, heartbeat.

Only Redis I/O lives here; what a command means is the engine's business. Every key written is one of the account's
(``contract.Keys``): replies go only to keys that ``Keys.is_reply_stream`` accepts.

NOGROUP (the stream or the group vanished: ``DEL``, ``FLUSHALL``, a Redis restart without persistence) is repaired
here by re-creating the group at id ``0``, not ``$``: after a restart without persistence the stream is new, and
a producer may already have added commands before the executor noticed; ``$`` would silently skip them. ``0`` can
only re-deliver entries that were processed before the group vanished (when just the group was destroyed); those
are harmless: orders are answered from the journal or refused as expired, queries are answered again.

Several command streams: each strategy writes a stream of its own (``Keys.command_stream``), so the stream names the
sender (only its ACL user may XADD there). One XREADGROUP reads them all; the group, pending-entry recovery, idle
claim, settlement (XACK on the entry's own stream) and trimming work per stream, and each ``Entry`` carries its stream
and owner. Discovery (``discover``): SCAN for ``<base>:cmd:*`` streams, every ``stream_discovery_ms``. Choice: the
keys that exist are the only evidence used. A configured list would need a restart (or a reload) for every new
strategy; a discovery set written by strategies would be one more key each may write. A key's name is identity only
because creating it takes XADD on exactly that key; nothing a strategy writes inside an entry names a stream.
Bounded: at most ``max_streams`` streams are served (names that are no strategy name are ignored); beyond that new
streams are logged and left unread, so a deployment without ACL users cannot be made to read unbounded keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis.asyncio as aioredis
import redis.exceptions as rex
import structlog

from producer_lib import contract as c

log = structlog.get_logger("executor")


@dataclass(slots=True)
class Entry:
    """One command stream entry as delivered to this consumer."""

    stream_id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1  # 1 for a first delivery (">"), more for a claimed/re-read entry
    stream: str = ""  # the command stream it was read from ("" = the account's stream without a strategy)
    owner: str = ""  # the strategy owning that stream: the sender's identity ("" = no strategy)
    read_ms: int | None = None  # the Redis server clock (estimated) when it was read or claimed

    @property
    def id_ms(self) -> int:
        return c.stream_id_ms(self.stream_id)

    @property
    def ahead_ms(self) -> int:
        """How far the entry id's time is ahead of the server clock at read (> 0 only for a chosen id)."""
        return 0 if self.read_ms is None else self.id_ms - self.read_ms

    @property
    def base_ms(self) -> int:
        """Where its ttl counts from: the id's time, never later than the server clock at read (a producer may
        choose an id in the future; such an entry is refused, and its id never moves a deadline)."""
        return self.id_ms if self.read_ms is None else min(self.id_ms, self.read_ms)

    @property
    def ref(self) -> str:
        """Unique across the account's command streams (two streams may hold the same id)."""
        return f"{self.stream} {self.stream_id}"


@dataclass(slots=True)
class Finish:
    """What to write for one processed entry: the reply (if any), a dead-letter record (if any), then XACK."""

    stream_id: str
    reply_to: str | None = None
    reply: dict[str, Any] | None = None
    dead: dict[str, Any] | None = None
    stream: str = ""  # the command stream the entry was read from ("" = the account's own)


@dataclass(slots=True)
class PendingInfo:
    stream_id: str
    consumer: str
    idle_ms: int
    deliveries: int
    stream: str = ""

    @property
    def ref(self) -> str:
        return f"{self.stream} {self.stream_id}"


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
SCRIPT_MAX_VALUES = 1024  # field/value strings of one XADD (an entry's fields are bounded far below: producer_lib/contract)


class TooManyValues(ValueError):
    """An entry with more field/value strings than a script may unpack (SCRIPT_MAX_VALUES)."""


# KEYS: 1 lease, 2 dead-letter stream, 3.. command streams and reply streams.
# ARGV: lease value ("" = no lease), group, reply maxlen, reply ttl s, dead maxlen, items, lease ms; items is ONE
#   msgpack array (unpacked by Redis's Lua cmsgpack: two arguments to pack instead of a dozen per command) of
#   [command stream key index, stream id, reply key index (0 = none), [reply field/value strings],
#   [dead-letter field/value strings]].
# Each entry is XACKed FIRST (on the stream it was read from) and its reply / dead letter written only if that ack
# took (XACK = 1): if Redis ran the script but its answer was lost, the executor's retry finds the entries already
# acked and writes nothing twice. XACK 0 for an entry that no longer exists (Redis lost it: restart without
# persistence) still writes the reply, since nobody else can have answered it. Writes use pcall (see
# SCRIPT_MAX_VALUES): one bad key cannot stop the batch; their errors are returned.
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
  local reply, dead = item[4], item[5]
  if type(reply) ~= 'table' or type(dead) ~= 'table' or #reply > MAX_VALUES or #dead > MAX_VALUES then
    return redis.error_reply('BADITEM item ' .. i .. ' is not settleable; nothing was written')
  end
end
local errors = {}
for _, item in ipairs(items) do
  local stream, sid, key_index, reply, dead = KEYS[item[1]], item[2], item[3], item[4], item[5]
  local acked = redis.pcall('XACK', stream, ARGV[2], sid)
  local fresh = acked == 1
  if not fresh then  -- already acked (a retried batch), or the entry is gone with Redis's data
    local found = redis.pcall('XRANGE', stream, sid, sid)
    fresh = type(found) == 'table' and not found.err and #found == 0
  end
  if fresh then
    if key_index > 0 then
      local ok = redis.pcall('XADD', KEYS[key_index], 'MAXLEN', '~', ARGV[3], '*', unpack(reply))
      if type(ok) == 'table' and ok.err then errors[#errors + 1] = ok.err
      else redis.pcall('EXPIRE', KEYS[key_index], ARGV[4]) end
    end
    if #dead > 0 then
      local ok = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(dead))
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
    def __init__(self, redis: aioredis.Redis, keys: c.Keys, consumer: str, *, group: str = c.COMMAND_GROUP,
                 max_streams: int = 256) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.group = group
        self.max_streams = max_streams
        # Command stream key -> owner (strategy name; "" for the stream of clients without one). Always holds the
        # account's own stream; the strategies' streams join through discover().
        self.streams: dict[str, str] = {keys.commands: ""}
        self.clock = ServerClock()
        self._finish_script = redis.register_script(FINISH_SCRIPT)
        self._over_cap: set[str] = set()  # streams left unread beyond max_streams (logged once each)

    # --- streams and group ----------------------------------------------------------------------------------
    async def discover(self) -> list[str]:
        """Find the strategies' command streams (SCAN; see the module docstring) and create the group on each new
        one at id 0 (what its strategy sent before discovery is read too). Returns the streams added."""
        found: list[str] = []
        async for raw in self.redis.scan_iter(match=self.keys.command_stream_pattern, count=1000, _type="stream"):
            key = _s(raw)
            if key not in self.streams and self.keys.command_stream_owner(key):
                found.append(key)
        added = []
        for key in sorted(found):
            if len(self.streams) >= self.max_streams:
                if key not in self._over_cap and len(self._over_cap) < 1000:
                    self._over_cap.add(key)
                    log.error("command stream not served: max_command_streams reached", stream=key,
                              max_streams=self.max_streams)
                continue
            if await self._create_group(key, mkstream=False) is not None:
                self.streams[key] = self.keys.command_stream_owner(key) or ""
                added.append(key)
        if added:
            log.info("command streams discovered", streams=added)
        return added

    async def _create_group(self, key: str, *, mkstream: bool) -> bool | None:
        """True: created; False: it existed; None: the stream does not exist (and ``mkstream`` was off)."""
        try:
            await self.redis.xgroup_create(key, self.group, id="0", mkstream=mkstream)
            return True
        except rex.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            if not mkstream and "requires the key to exist" in str(exc):
                return None
            raise

    async def ensure_group(self) -> bool:
        """Create the consumer group on every command stream served (and the account's own stream if missing).
        A strategy's stream that no longer exists is dropped (discovery finds it again once it is written).
        True if a group had to be created."""
        created = False
        for key in list(self.streams):
            done = await self._create_group(key, mkstream=key == self.keys.commands)
            if done is None:
                del self.streams[key]
            created = created or bool(done)
        return created

    # --- reading --------------------------------------------------------------------------------------------
    async def read_new(self, count: int, block_ms: int | None) -> tuple[list[Entry], Any]:
        """XREADGROUP ``>`` on every command stream (``count`` per stream): entries never delivered to any consumer
        of the group; and the kill switch's latest entry (or the exception reading it raised) as Redis saw it right
        after that read returned: the XREVRANGE is pipelined behind the (possibly blocking) read on one connection,
        so it runs after the read, in the same round trip (executor/safety/halt.py reads the answer)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xreadgroup(self.group, self.consumer, {k: ">" for k in self.streams}, count=count, block=block_ms)
        pipe.xrevrange(self.keys.halt, "+", "-", count=1)
        resp, halt = await pipe.execute(raise_on_error=False)
        if isinstance(resp, BaseException):
            raise resp
        return self._entries(resp), halt

    def _entries(self, resp: Any) -> list[Entry]:
        if not resp:
            return []
        out = []
        read_ms = self.clock.now_ms() if self.clock.synced else None
        for key, entries in resp:
            key = _s(key)
            owner = self.streams.get(key, "")
            for sid, fields in entries:
                if sid is None:
                    continue
                out.append(Entry(_s(sid), fields or {}, 1, key, owner, read_ms))
        return out

    async def pending(self, stream: str | None = None, *, min_idle_ms: int = 0, count: int = 1_000,
                      start: str = "-") -> list[PendingInfo]:
        """One stream's pending entries in the group (any consumer) idle at least ``min_idle_ms``, oldest first
        (``stream`` default: the account's own stream)."""
        stream = stream or self.keys.commands
        rows = await self.redis.xpending_range(stream, self.group, start, "+", count, idle=min_idle_ms or None)
        return [PendingInfo(_s(r["message_id"]), _s(r["consumer"]), int(r["time_since_delivered"]),
                            int(r["times_delivered"]), stream) for r in rows]

    async def trim_commands(self, keep_ms: int, *, approximate: bool = True) -> dict[str, str]:
        """Drop command entries older than ``keep_ms`` (by the server clock), per stream, but never one still
        pending (read, not yet answered) or not yet delivered to the group. Returns the MINID used per stream."""
        out = {}
        for stream in list(self.streams):
            minid = await self._trim_one(stream, keep_ms, approximate)
            if minid is not None:
                out[stream] = minid
        return out

    async def _trim_one(self, stream: str, keep_ms: int, approximate: bool) -> str | None:
        candidate = (self.clock.now_ms() - keep_ms, 0)
        floors = [candidate]
        summary = await self.redis.xpending(stream, self.group)
        if summary and summary.get("pending") and summary.get("min"):
            floors.append(_id_tuple(summary["min"]))
        for group in await self.redis.xinfo_groups(stream):
            if _s(group.get("name", b"")) == self.group:
                floors.append(_id_tuple(group.get("last-delivered-id") or b"0-0"))
        minid = min(floors)
        if minid <= (0, 0):
            return None
        text = f"{minid[0]}-{minid[1]}"
        await self.redis.xtrim(stream, minid=text, approximate=approximate)
        return text

    async def claim(self, infos: list[PendingInfo], min_idle_ms: int) -> list[Entry]:
        """XCLAIM the given entries (of one or more streams) for this consumer. Entries deleted from the stream
        meanwhile are dropped from the pending list by Redis (>= 7) and are not returned; their ids are acked here
        for older servers."""
        out = []
        by_stream: dict[str, dict[str, PendingInfo]] = {}
        for i in infos:
            by_stream.setdefault(i.stream or self.keys.commands, {})[i.stream_id] = i
        for stream, by_id in by_stream.items():
            resp = await self.redis.xclaim(stream, self.group, self.consumer, min_idle_ms, list(by_id))
            read_ms = self.clock.now_ms() if self.clock.synced else None
            owner = self.streams.get(stream, self.keys.command_stream_owner(stream) or "")
            seen = set()
            for sid, fields in resp or []:
                if sid is None:
                    continue
                sid = _s(sid)
                seen.add(sid)
                if not fields:
                    continue
                # XCLAIM counts one more delivery
                out.append(Entry(sid, fields, by_id[sid].deliveries + 1, stream, owner, read_ms))
            gone = [sid for sid in by_id if sid not in seen]
            if gone:
                await self.redis.xack(stream, self.group, *gone)
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
        keys: list[str] = []
        index: dict[str, int] = {}

        def key_index(key: str) -> int:
            if key not in index:
                keys.append(key)
                index[key] = len(keys) + 2  # KEYS[1..2]: lease, dead letters
            return index[key]

        packed_items: list[list[Any]] = []
        for item in items:
            stream_index = key_index(item.stream or self.keys.commands)
            reply_index = key_index(item.reply_to) if item.reply is not None and item.reply_to else 0
            try:
                reply = _flat(item.reply) if reply_index else []  # type: ignore[arg-type]
                packed_items.append([stream_index, item.stream_id, reply_index, reply,
                                     _flat(item.dead) if item.dead else []])
            except TooManyValues as exc:
                errors.append(exc)
                packed_items.append(self._degraded(item, stream_index, reply_index, exc))
        try:
            array = _pack(packed_items)
        except Exception:  # a value msgpack cannot take: find the item(s), so the others still go
            array = msgpack.Packer(use_bin_type=False).pack_array_header(len(packed_items))
            for item, values in zip(items, packed_items):
                try:
                    array += _pack(values)
                except Exception as exc:
                    errors.append(exc)
                    array += _pack(self._degraded(item, values[0], values[2], exc))
        args: list[Any] = [lease_value or "", self.group, c.REPLY_STREAM_MAXLEN, c.REPLY_STREAM_TTL_S,
                           c.DEAD_LETTER_MAXLEN, array, lease_ms]
        try:
            written = await self._finish_script(keys=[self.keys.lease, self.keys.dead_letter, *keys], args=args)
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
    def _degraded(item: Finish, stream_index: int, key_index: int, exc: BaseException) -> list[Any]:
        """An item whose reply or dead letter cannot go through the script: its reply alone if that can go (the
        caller is still answered), and a dead letter saying why instead of its own."""
        dead = _flat({**_unsettleable(item.stream_id, exc), "src_stream": item.stream})
        try:
            reply = _flat(item.reply) if key_index else []  # type: ignore[arg-type]
            _pack(reply)
            return [stream_index, item.stream_id, key_index, reply, dead]
        except Exception:
            return [stream_index, item.stream_id, 0, [], dead]

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

    async def heartbeat(self, beat: c.Heartbeat) -> None:
        await self.redis.set(self.keys.heartbeat, beat.encode(), ex=c.HEARTBEAT_TTL_S)

    async def read_heartbeat(self) -> c.Heartbeat | None:
        return c.Heartbeat.decode(await self.redis.get(self.keys.heartbeat))


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

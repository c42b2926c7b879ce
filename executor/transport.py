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


def is_nogroup(exc: BaseException) -> bool:
    return isinstance(exc, rex.ResponseError) and str(exc).startswith("NOGROUP")


class CommandTransport:
    def __init__(self, redis: aioredis.Redis, keys: c.Keys, consumer: str, *, group: str = c.COMMAND_GROUP) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.group = group
        self.clock = ServerClock()

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
    async def read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        """XREADGROUP ``>``: entries never delivered to any consumer of the group."""
        resp = await self.redis.xreadgroup(self.group, self.consumer, {self.keys.commands: ">"}, count=count,
                                           block=block_ms)
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
    async def finish(self, items: list[Finish]) -> list[BaseException]:
        """Replies, dead letters and XACKs of a batch in ONE round trip (MULTI/EXEC: a reply is never written without
        its ack, nor the other way round). Returns per-command errors (e.g. WRONGTYPE on a reply key) without
        raising them; a connection error raises (nothing is known to be written: the caller retries)."""
        pipe = self.redis.pipeline(transaction=True)
        touched: set[str] = set()
        for item in items:
            if item.reply is not None and item.reply_to:
                pipe.xadd(item.reply_to, item.reply, maxlen=c.REPLY_STREAM_MAXLEN, approximate=True)
                touched.add(item.reply_to)
            if item.dead is not None:
                pipe.xadd(self.keys.dead_letter, item.dead, maxlen=c.DEAD_LETTER_MAXLEN, approximate=True)
        for key in touched:
            pipe.expire(key, c.REPLY_STREAM_TTL_S)
        pipe.xack(self.keys.commands, self.group, *[item.stream_id for item in items])
        results = await pipe.execute(raise_on_error=False)
        return [r for r in results if isinstance(r, BaseException)]

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


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""The floor: a minimal Redis-streams request/reply loop with nothing else.

Same Redis, same client library (redis-py + hiredis), same stream layout as xtqueue: the requester XADDs to a
command stream, a responder process reads it with XREADGROUP, XADDs the reply to the requester's reply stream and
XACKs (reply + ack in one pipelined round trip); the requester's one reader task XREADs its reply stream and
resolves the waiting future. Events: a publisher process XADDs entries carrying its clock, a subscriber XREADs.

    python -m bench.floor respond URL          # the responder (until SIGTERM)
    python -m bench.floor publish URL N GAP_MS # N pairs of events, one pair every GAP_MS
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from typing import Any

import msgpack
import redis
import redis.asyncio as aioredis

CMD = "floor:{BENCH}:cmd"
EVENTS = "floor:{BENCH}:events"
GROUP = "responders"
BODY = msgpack.packb({"code": "600000.SH", "side": "buy", "volume": 100, "price_type": "limit", "price": 9.5})
REPLY_BODY = msgpack.packb({"order_id": 123456, "client_order_id": "c" * 20, "status": "reported",
                            "status_msg": "", "duplicate": False})


def respond(url: str) -> None:
    r = redis.Redis.from_url(url)
    try:
        r.xgroup_create(CMD, GROUP, id="0", mkstream=True)
    except redis.ResponseError:
        pass
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    r.set("floor:ready", "1")
    while not stop:
        resp = r.xreadgroup(GROUP, "r1", {CMD: ">"}, count=128, block=200)
        if not resp:
            continue
        pipe = r.pipeline(transaction=False)
        ids = []
        for _key, entries in resp:
            for sid, fields in entries:
                ids.append(sid)
                pipe.xadd(fields[b"reply_to"], {"id": fields[b"id"], "ok": "1", "body": REPLY_BODY},
                          maxlen=1000, approximate=True)
        pipe.xack(CMD, GROUP, *ids)
        pipe.execute()


def publish(url: str, n: int, gap_ms: float) -> None:
    r = redis.Redis.from_url(url)
    body = msgpack.packb({"order": {"order_id": 1, "status": "reported", "code": "600000.SH", "volume": 100}})
    next_t = time.perf_counter()
    seq = 0
    for _ in range(n):  # pairs, like an order's response + status pushes
        for _ in range(2):
            seq += 1
            r.xadd(EVENTS, {"seq": str(seq), "ts_ns": str(time.time_ns()), "body": body}, maxlen=100_000,
                   approximate=True)
        next_t += gap_ms / 1000.0
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    r.xadd(EVENTS, {"seq": "0", "ts_ns": "0", "end": "1"})


class FloorRequester:
    """The requester side: one reader task on its own reply stream, futures by id (as producer_lib.Client)."""

    name = "floor"

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.reply_key = f"floor:{{BENCH}}:reply:{secrets.token_hex(8)}"
        self.pending: dict[bytes, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None
        self.counter = 0
        self.closed = False

    async def start(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        last: Any = "0-0"
        while not self.closed:
            try:
                resp = await self.redis.xread({self.reply_key: last}, count=256, block=2000)
            except redis.ConnectionError:
                if self.closed:
                    return
                raise
            for _key, entries in resp or []:
                for sid, fields in entries:
                    last = sid
                    fut = self.pending.pop(fields[b"id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msgpack.unpackb(fields[b"body"]))

    async def call(self, i: int) -> Any:
        self.counter += 1
        cid = b"%d" % self.counter
        fut = asyncio.get_running_loop().create_future()
        self.pending[cid] = fut
        await self.redis.xadd(CMD, {"id": cid, "reply_to": self.reply_key, "body": BODY})
        return await fut

    async def close(self) -> None:
        self.closed = True
        if self.reader:
            self.reader.cancel()
            # redis-py 8.1 can swallow a cancel that lands inside a blocking XREAD: the loop checks `closed` too,
            # and closing the pool ends a read that is still blocked.
            await asyncio.wait({self.reader}, timeout=0.5)
        await asyncio.wait({asyncio.ensure_future(self.redis.aclose())}, timeout=3)
        if self.reader and not self.reader.done():
            await asyncio.wait({self.reader}, timeout=3)


async def subscribe_floor(url: str, ready: asyncio.Event) -> list[int]:
    """XREAD the event stream from now on until the end marker; latency = receipt - publisher clock (ns)."""
    r = aioredis.Redis.from_url(url)
    newest = await r.xrevrange(EVENTS, count=1)
    last: Any = newest[0][0] if newest else "0-0"
    out: list[int] = []
    ready.set()
    try:
        while True:
            resp = await r.xread({EVENTS: last}, count=256, block=2000)
            for _key, entries in resp or []:
                for sid, fields in entries:
                    last = sid
                    if fields.get(b"end"):
                        return out
                    msgpack.unpackb(fields[b"body"])
                    out.append(time.time_ns() - int(fields[b"ts_ns"]))
    finally:
        await r.aclose()


if __name__ == "__main__":
    if sys.argv[1] == "respond":
        respond(sys.argv[2])
    elif sys.argv[1] == "publish":
        publish(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))

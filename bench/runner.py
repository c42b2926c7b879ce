"""Load patterns shared by the three systems: sequential calls, k calls in flight, and the HTTP requester."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, Protocol

import aiohttp

from bench._common import percentiles


class Requester(Protocol):
    name: str

    async def start(self) -> None: ...

    async def call(self, i: int) -> Any: ...

    async def close(self) -> None: ...


class Sent:
    """What a requester records of each order it sends, for the time to broker (bench/README.md): the phase, the
    order's remark at MiniQMT and the wall clock (ns) at the strategy's call. Kept on the requester's side only."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}{secrets.token_hex(3)}"  # unique across requesters on one MiniQMT
        self.phase = ""
        self.calls: list[tuple[str, str, int]] = []
        self._n = 0

    def next(self) -> str:
        self._n += 1
        remark = f"{self.prefix}{self._n}"
        self.calls.append((self.phase, remark, time.time_ns()))
        return remark


class HttpRequester:
    """A kept-alive aiohttp session against the Sanic wrapper: GET /order per call (a blocking order_stock)."""

    name = "http"

    def __init__(self, base: str, limit: int = 256) -> None:
        self.sent = Sent("h")
        self.base = base
        self.limit = limit
        self.session: aiohttp.ClientSession | None = None
        self.url = f"{base}/order"
        self.params = {"code": "600000.SH", "side": "buy", "volume": "100", "price": "9.5", "strategy": "bench"}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=600, force_close=False)
        self.session = aiohttp.ClientSession(connector=connector)
        async with self.session.get(f"{self.base}/health") as resp:
            await resp.json()

    async def call(self, i: int) -> Any:
        assert self.session is not None
        params = {**self.params, "remark": self.sent.next()}
        async with self.session.get(self.url, params=params) as resp:
            body = await resp.json()
        if not body.get("ok"):
            raise RuntimeError(f"http order refused: {body}")
        return body

    async def get(self, path: str) -> Any:
        assert self.session is not None
        async with self.session.get(f"{self.base}{path}") as resp:
            return await resp.json()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def sequential(req: Requester, n: int) -> list[int]:
    """n calls one after another; each call's round trip in ns."""
    out = []
    pc = time.perf_counter_ns
    for i in range(n):
        t0 = pc()
        await req.call(i)
        out.append(pc() - t0)
    return out


async def in_flight(req: Requester, k: int, duration_s: float, max_calls: int | None = None) -> dict[str, Any]:
    """k workers, each calling back to back, for duration_s (or until max_calls in all). Returns calls/s and the
    latency percentiles of every call."""
    lat: list[int] = []
    pc = time.perf_counter_ns
    stop_at = time.perf_counter() + duration_s
    budget = [max_calls if max_calls is not None else 1 << 62]

    async def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            t0 = pc()
            await req.call(i)
            lat.append(pc() - t0)
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(k)))
    wall = time.perf_counter() - t0
    return {"in_flight": k, "calls": len(lat), "wall_s": round(wall, 3), "calls_per_s": round(len(lat) / wall, 1),
            "latency": percentiles(lat)}


async def burst(req: Requester, n: int, cap: int) -> dict[str, Any]:
    """n calls sent as fast as possible with at most cap outstanding; orders per second over the whole burst."""
    sem = asyncio.Semaphore(cap)
    lat: list[int] = []
    pc = time.perf_counter_ns

    async def one(i: int) -> None:
        async with sem:
            t0 = pc()
            await req.call(i)
            lat.append(pc() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    return {"orders": n, "cap_in_flight": cap, "wall_s": round(wall, 3), "orders_per_s": round(n / wall, 1),
            "latency": percentiles(lat)}

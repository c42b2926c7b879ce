"""xtqueue side of the bench: producer_lib.Client → Redis → executor process → simulator.

    python -m bench.xtq pace URL ACCOUNT N GAP_MS   # N resting limit buys, one every GAP_MS (event latency)
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bench.runner import Sent
from producer_lib import Client
from producer_lib import client as client_module

ACCOUNT = "BENCH"
CODE = "600000.SH"  # last 10.00 in the simulator's universe
REST_PRICE = 9.50  # a limit buy below the market: accepted and reported, rests (no fill)


class XtqRequester:
    name = "xtqueue"

    def __init__(self, url: str, account: str = ACCOUNT, **redis_kwargs: Any) -> None:
        self.client = Client(url, account, strategy="bench", **redis_kwargs)
        self.sent = Sent("x")

    async def start(self) -> None:
        await self.client.ping()

    async def call(self, i: int) -> Any:
        # the client order id travels to MiniQMT as the order remark, where bench._qmt_sim stamps its arrival
        ack = await self.client.buy(CODE, 100, REST_PRICE, client_order_id=self.sent.next())
        if not ack.order_id:
            raise RuntimeError(f"no order id: {ack}")
        return ack

    async def close(self) -> None:
        await self.client.aclose()


class _PushProbe:
    """Reads the bench-only ``bench_push_ns`` field (set by bench._executor) of the entry Client.events() is
    about to yield: wraps the decoder the client module uses."""

    def __init__(self) -> None:
        self.last_push_ns = 0
        self._orig = client_module.decode_event_entry

    def __enter__(self) -> _PushProbe:
        orig = self._orig

        def decode(stream_id: Any, fields: dict) -> Any:
            raw = fields.get(b"bench_push_ns")
            self.last_push_ns = int(raw) if raw else 0
            return orig(stream_id, fields)

        client_module.decode_event_entry = decode
        return self

    def __exit__(self, *exc: Any) -> None:
        client_module.decode_event_entry = self._orig


async def subscribe_xtq(url: str, n_orders: int, ready: asyncio.Event, timeout_s: float) -> dict[str, list[int]]:
    """Client.events() from now on; per event: receipt wall clock - simulator push wall clock (ns). Stops after
    the order_updated of the n_orders-th order placed by the pacer (strategy "pace")."""
    out: dict[str, list[int]] = {"all": [], "order_updated": [], "order_responded": []}
    seen_orders = 0
    async with Client(url, ACCOUNT) as client:
        with _PushProbe() as probe:
            gen = client.events("$", block_ms=200)
            deadline = time.monotonic() + timeout_s
            first = asyncio.ensure_future(gen.__anext__())
            await asyncio.sleep(0.3)  # the first XREAD ("$" resolved) is out before the pacer starts
            ready.set()
            msg = await first
            while True:
                now = time.time_ns()
                if getattr(msg, "type", None) and probe.last_push_ns:
                    lat = now - probe.last_push_ns
                    out["all"].append(lat)
                    if msg.type in out:
                        out[msg.type].append(lat)
                    if msg.type == "order_updated":
                        seen_orders += 1
                        if seen_orders >= n_orders:
                            break
                if time.monotonic() > deadline:
                    break
                msg = await gen.__anext__()
            await gen.aclose()
    return out


async def _pace(url: str, n: int, gap_ms: float) -> None:
    async with Client(url, ACCOUNT, strategy="pace") as client:
        next_t = time.perf_counter()
        for _ in range(n):
            await client.buy(CODE, 100, REST_PRICE)
            next_t += gap_ms / 1000.0
            delay = next_t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


if __name__ == "__main__":
    if sys.argv[1] == "pace":
        asyncio.run(_pace(sys.argv[2], int(sys.argv[4]), float(sys.argv[5])))

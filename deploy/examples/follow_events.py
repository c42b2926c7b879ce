"""Follow an account's events, resuming where the last run stopped; re-sync by query after a Gap.

What it shows:

* ``Client.events(from_id)`` resuming after the stream id saved by the previous run (``--state-file``), so a
  restarted subscriber neither misses nor repeats events; the first run starts from the oldest event still in
  the stream (``"0"``);
* saving the id *after* an event is handled (a crash replays at most that one event: make handling idempotent);
* ``Gap``: events were lost before the next one, either because the per-account ``seq`` jumped or because
  entries after the saved id were trimmed from the stream. The answer is to re-sync from the broker's own
  lists (``query_orders``, ``query_positions``, ``query_asset``), then go on with the events;
* stopping after ``--max-events`` events or after ``--timeout`` seconds, whichever comes first.

Run it against an executor (on Linux, on the simulator)::

    xtqueue executor --broker sim --account SIM001 &
    python deploy/examples/follow_events.py --max-events 5      # first run: from the oldest event
    xtqueue buy 600000.SH 100 10.00                              # (in another terminal) more events
    python deploy/examples/follow_events.py --timeout 3         # resumes after the saved id

Exit code 0 (events handled, or the timeout passed). Output: follow_events.out.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from producer_lib import Client, EventMessage, Gap


def load_position(path: Path) -> str:
    try:
        return path.read_text().strip() or "0"
    except FileNotFoundError:
        return "0"


def save_position(path: Path, stream_id: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(stream_id)
    os.replace(tmp, path)  # atomic: a crash leaves the old id or the new one, never half a file


def describe(ev: EventMessage) -> str:
    d = ev.data
    if ev.type == "order_updated":
        o = d.order
        return f"order {o.order_id} {o.code} {o.side.value if o.side else ''} {o.status.value} " \
               f"{o.traded_volume}/{o.volume}"
    if ev.type == "order_filled":
        t = d.trade
        return f"fill {t.trade_id}: order {t.order_id} {t.code} {t.volume} @ {t.price:.2f}"
    if ev.type == "order_rejected":
        return f"order {d.order_id} rejected: {d.error_msg}"
    if ev.type == "position_updated":
        return f"{d.position.code} volume {d.position.volume} sellable {d.position.can_use_volume}"
    if ev.type == "asset_updated":
        return f"cash {d.asset.cash:,.2f} total {d.asset.total_asset:,.2f}"
    if d is None:
        return f"(type unknown to this library version: {ev.raw})"
    return ", ".join(f"{k}={v}" for k, v in d.model_dump(mode="json").items())


async def resync(client: Client) -> None:
    """After a Gap: the broker's lists are the truth. A real subscriber would rebuild its state from these."""
    orders = await client.query_orders()
    positions = await client.query_positions()
    asset = await client.query_asset()
    working = [o.order_id for o in orders if not o.status.is_final]
    print(f"re-synced by query: {len(orders)} orders today ({len(working)} working), {len(positions)} positions, "
          f"cash {asset.cash:,.2f}")


async def follow(client: Client, state: Path, max_events: int) -> int:
    start = load_position(state)
    print("starting from the oldest event in the stream" if start == "0" else f"resuming after {start}")
    handled = 0
    async for item in client.events(start):
        if isinstance(item, Gap):
            print(f"GAP ({item.reason}): expected seq {item.expected_seq}, next available {item.got_seq}")
            await resync(client)
            continue
        print(f"seq {item.seq:>4}  {item.stream_id}  {item.type:<17} {item.client_order_id or '-':<22} "
              f"{describe(item)}")
        save_position(state, item.stream_id)
        handled += 1
        if handled >= max_events:
            break
    return handled


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--account", default="SIM001")
    p.add_argument("--state-file", type=Path, default=None,
                   help="where the last handled stream id is kept [default: ./follow_events.<ACCOUNT>.pos]")
    p.add_argument("--max-events", type=int, default=20, help="stop after this many events")
    p.add_argument("--timeout", type=float, default=30.0, help="stop after this many seconds")
    args = p.parse_args()
    state = args.state_file or Path(f"follow_events.{args.account}.pos")

    async with Client(args.redis_url, args.account) as client:
        task = asyncio.ensure_future(follow(client, state, args.max_events))
        done, _ = await asyncio.wait([task], timeout=args.timeout)
        if task in done:
            print(f"stopped after {task.result()} events; position saved in {state}")
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            print(f"stopped after the {args.timeout:g} s timeout; position saved in {state}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

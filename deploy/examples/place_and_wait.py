"""Place one limit order with the asyncio Client and wait for its fill through the event stream.

What it shows:

* remembering where the account's event stream ends *before* placing, so no event of the order can be missed
  (a marketable order fills within milliseconds, often before the reply to place_order arrives);
* the three outcomes a caller must handle: ``BrokerRejected`` (nothing is working, the broker's text says why),
  ``Expired`` (the executor reached the order after its deadline: nothing was placed) and ``OutcomeUnknown``
  (no answer in time: ask with ``query_outcome``, never resend with a new client order id);
* waiting for the order's fills (``order_filled``) until its status is final (``order_updated``), bounded by
  ``--wait``; if the order is still working then, one ``query_orders`` says where it stands.

Run it against an executor (on Linux, on the simulator)::

    xtqueue executor --broker sim --account SIM001 &
    python deploy/examples/place_and_wait.py                       # 600000.SH buy 100 @ 10.00: fills at once
    python deploy/examples/place_and_wait.py --price 9.50 --wait 2  # rests below the market: still working
    python deploy/examples/place_and_wait.py --volume 150           # odd lot: the broker rejects it

Exit code: 0 placed (filled or working), 2 refused (nothing was placed), 3 outcome unknown.
Output of the first command: place_and_wait.out.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import redis.asyncio as aioredis

from producer_lib import BrokerRejected, Client, Expired, Gap, OrderStatus, OutcomeUnknown, Rejected, contract


async def event_stream_end(redis_url: str, account: str) -> str:
    """The id of the newest entry of the account's event stream ("0-0" if it is empty). Following from here
    after placing an order sees every event of that order."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        newest = await r.xrevrange(contract.Keys(account).events, count=1)
    finally:
        await r.aclose()
    return newest[0][0].decode() if newest else "0-0"


async def wait_for_fill(client: Client, start_id: str, coid: str, order_id: int) -> str:
    """Print the order's events until its status is final; returns that status."""
    filled = 0
    async for item in client.events(start_id):
        if isinstance(item, Gap):  # events were trimmed away: the order list is the truth
            orders = await client.query_orders(order_id=order_id)
            print(f"gap in the event stream ({item.reason}); order {order_id} is {orders[0].status.value}")
            if orders[0].status.is_final:
                return orders[0].status.value
            continue
        if item.client_order_id != coid:
            continue  # another order's event (other strategies share the account's stream)
        if item.type == "order_filled":
            trade = item.data.trade
            filled += trade.volume
            print(f"  seq {item.seq}: filled {trade.volume} @ {trade.price:.2f} (total {filled}), "
                  f"fees {trade.commission:.2f}")
        elif item.type == "order_updated":
            order = item.data.order
            print(f"  seq {item.seq}: status {order.status.value} ({order.traded_volume}/{order.volume} filled)")
            if order.status.is_final:
                return order.status.value
        elif item.type == "order_rejected":
            print(f"  seq {item.seq}: rejected by the broker: {item.data.error_msg}")
            return OrderStatus.JUNK.value
    raise AssertionError("unreachable: events() only ends by an exception")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--account", default="SIM001")
    p.add_argument("--code", default="600000.SH")
    p.add_argument("--volume", type=int, default=100)
    p.add_argument("--price", type=float, default=10.00)
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the order to be final")
    args = p.parse_args()

    async with Client(args.redis_url, args.account, strategy="example") as client:
        start_id = await event_stream_end(args.redis_url, args.account)
        print(f"placing: {args.code} buy {args.volume} @ {args.price:.2f} (events followed after {start_id})")
        try:
            ack = await client.buy(args.code, args.volume, args.price, deadline=5.0)
        except BrokerRejected as e:
            print(f"rejected by the broker, nothing is working: {e.broker_message} (order {e.order_id})")
            return 2
        except Expired as e:
            print(f"expired: the executor reached it after its deadline, nothing was placed ({e.client_order_id})")
            return 2
        except Rejected as e:  # InvalidRequest, BrokerUnavailable, Conflict, ...: nothing was placed
            print(f"refused ({e.code.value if e.code else 'local'}): {e.message}")
            return 2
        except OutcomeUnknown as e:
            outcome = await client.query_outcome(e.client_order_id)
            print(f"outcome unknown ({e.message}); query_outcome says: {outcome.state.value} {outcome.message}")
            print("do NOT resend with a new client order id; resend with the same one if needed")
            return 3
        print(f"placed: order {ack.order_id}, client order id {ack.client_order_id}, first status "
              f"{ack.status.value}")
        try:
            final = await asyncio.wait_for(wait_for_fill(client, start_id, ack.client_order_id, ack.order_id),
                                           args.wait)
        except asyncio.TimeoutError:
            orders = await client.query_orders(order_id=ack.order_id)
            state = orders[0].status.value if orders else "not in today's orders"
            print(f"not final after {args.wait:g} s: order {ack.order_id} is {state} (still working)")
            return 0
        print(f"done: order {ack.order_id} is {final}")
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""The SyncClient (no asyncio): asset, positions, one buy, and the cancel of a resting order.

What it shows:

* ``SyncClient`` as a context manager: the same methods as the asyncio ``Client``, without ``await``;
* ``query_asset`` and ``query_positions`` (A-shares are T+1: shares bought today show ``can_use_volume`` 0);
* a marketable limit buy (``buy``) and what its ``OrderAck`` says;
* a limit buy below the market, which rests (status ``reported``), then ``cancel_order``: the ``CancelAck`` only
  says the broker took the request; the final status (``canceled``) arrives later (as an ``order_updated`` event),
  so the script asks ``query_orders(order_id=...)`` until the order is final, for at most 10 s.

Run it against an executor (on Linux, on the simulator)::

    xtqueue executor --broker sim --account SIM001 &
    python deploy/examples/sync_client.py

Exit code 0 on success; a typed error (``producer_lib.XtqueueError``) ends it with its message and exit code 1.
Output: sync_client.out.txt.
"""

from __future__ import annotations

import argparse
import sys
import time

from producer_lib import SyncClient, XtqueueError


def wait_final(client: SyncClient, order_id: int, timeout_s: float) -> str:
    """Ask the broker's order list until order ``order_id`` is final, at most ``timeout_s`` seconds.

    (A sync script that must not block cannot use ``events()`` for this: it yields only when an event arrives, so
    its wait cannot be bounded. The asyncio Client can: see place_and_wait.py.)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        orders = client.query_orders(order_id=order_id)
        status = orders[0].status if orders else None
        if status is not None and (status.is_final or time.monotonic() > deadline):
            return status.value
        if time.monotonic() > deadline:
            return "not found"
        time.sleep(0.1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--account", default="SIM001")
    p.add_argument("--code", default="600000.SH")
    args = p.parse_args()

    with SyncClient(args.redis_url, args.account, strategy="example") as client:
        pong = client.ping()
        print(f"executor {pong.executor_id}: broker {pong.broker}, connected {pong.broker_connected}")

        asset = client.query_asset()
        print(f"asset: cash {asset.cash:,.2f}  frozen {asset.frozen_cash:,.2f}  market value "
              f"{asset.market_value:,.2f}  total {asset.total_asset:,.2f}")

        ack = client.buy(args.code, 100, 10.00)
        print(f"buy: order {ack.order_id} ({ack.client_order_id}) status {ack.status.value}")

        for pos in client.query_positions():
            print(f"position: {pos.code} {pos.instrument_name} volume {pos.volume} sellable {pos.can_use_volume} "
                  f"avg price {pos.avg_price:.4f}")

        resting = client.buy(args.code, 200, 9.50)
        print(f"resting buy: order {resting.order_id} status {resting.status.value}")
        open_ids = [o.order_id for o in client.query_orders(cancelable_only=True)]
        print(f"cancelable orders: {open_ids}")

        cancel = client.cancel_order(resting.order_id)
        print(f"cancel sent for order {cancel.order_id} (client order id {cancel.client_order_id})")
        final = wait_final(client, resting.order_id, timeout_s=10.0)
        print(f"order {resting.order_id} is now {final}")
        return 0 if final == "canceled" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except XtqueueError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)

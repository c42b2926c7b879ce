"""What to do after OutcomeUnknown: ask with query_outcome, and resend only with the SAME client order id.

``OutcomeUnknown`` (and its subclass ``CommandTimeout``) means the order may or may not have been placed: the
reply did not come in time, the connection dropped mid-send, or the executor itself could not tell yet. Sending
the order again with a NEW client order id can buy twice. The safe moves are:

1. ``query_outcome(client_order_id)``: ``pending`` (being placed now: ask again shortly), ``placed`` (it has a
   broker order id), ``rejected`` / ``expired`` / ``refused`` (nothing was placed), ``unknown`` (sent to the
   broker without an answer and not in its order list yet: ask again), ``not_found`` (the executor never saw it:
   it may still be waiting in the stream, e.g. while the executor is down);
2. if you must send again, reuse the same client order id: the executor answers a repeat from its journal
   (``duplicate=True``, the same order id) and never places it twice. After the order's deadline has passed a
   repeat that was never placed is refused as ``expired``: nothing old can sneak in late.

This script provokes a ``CommandTimeout`` by waiting only 1 ms for the reply (the order's deadline stays the default
10 s, so the executor places it), then does exactly the above.

Run it against an executor (on Linux, on the simulator)::

    xtqueue executor --broker sim --account SIM001 &
    python deploy/examples/outcome_after_timeout.py

Exit code 0 when the outcome was resolved and the repeat was answered as a duplicate. Output:
outcome_after_timeout.out.txt.
"""

from __future__ import annotations

import argparse
import sys
import time

from producer_lib import CommandTimeout, OutcomeState, OutcomeUnknown, SyncClient, contract

NOT_YET = (OutcomeState.PENDING, OutcomeState.UNKNOWN, OutcomeState.NOT_FOUND)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--account", default="SIM001")
    p.add_argument("--code", default="600000.SH")
    args = p.parse_args()

    with SyncClient(args.redis_url, args.account, strategy="example") as client:
        coid = contract.new_client_order_id()  # choose the id yourself and keep it (log it) before sending
        print(f"placing {args.code} buy 100 @ 10.00 with client order id {coid}, waiting only 1 ms for the reply")
        try:
            ack = client.buy(args.code, 100, 10.00, client_order_id=coid, timeout=0.001)
            print(f"answered within 1 ms after all: order {ack.order_id}")
        except OutcomeUnknown as exc:
            kind = "CommandTimeout" if isinstance(exc, CommandTimeout) else type(exc).__name__
            print(f"{kind}: {exc.message}")

        # 1. Ask. PENDING / UNKNOWN / NOT_FOUND are not answers yet (NOT_FOUND: the order may still be waiting in
        #    the command stream): ask again, a little later, for a bounded time.
        deadline = time.monotonic() + 15.0
        while True:
            outcome = client.query_outcome(coid)
            print(f"query_outcome({coid}): {outcome.state.value}"
                  + (f", order {outcome.order_id}" if outcome.order_id else "")
                  + (f" ({outcome.message})" if outcome.message else ""))
            if outcome.state not in NOT_YET or time.monotonic() > deadline:
                break
            time.sleep(0.2)

        if outcome.state is OutcomeState.PLACED:
            if outcome.order is not None:
                print(f"the order is {outcome.order.status.value}: {outcome.order.traded_volume}/"
                      f"{outcome.order.volume} filled")
        elif outcome.state in (OutcomeState.REJECTED, OutcomeState.EXPIRED, OutcomeState.REFUSED):
            print("nothing was placed; a new decision (and a new client order id) is safe")
            return 0
        else:
            print("still not known: keep asking; if you resend, use the same client order id")
            return 3

        # 2. A resend with the SAME id is answered from the journal, never placed twice.
        again = client.buy(args.code, 100, 10.00, client_order_id=coid)
        print(f"resent with the same client order id: order {again.order_id}, duplicate={again.duplicate}")
        same = [o for o in client.query_orders(client_order_id=coid)]
        print(f"orders carrying {coid} at the broker: {len(same)}")
        return 0 if again.duplicate and again.order_id == outcome.order_id and len(same) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Runs ``xtqueue executor`` (the real CLI, all guarantees on) with one bench-only probe: each event entry gets an
extra field ``bench_push_ns``, the wall clock (ns) at which the simulator's callback thread handed that callback
to the adapter. Clients ignore unknown fields. The probe costs a few microseconds per event.

    python -m bench._executor --redis-url URL executor --broker sim ...
"""

from __future__ import annotations

import collections
import sys
import threading
import time


def install_probe() -> None:
    from executor.broker.xt import adapter
    from producer_lib import contract

    local = threading.local()
    fifo: collections.deque[int] = collections.deque()  # push thread -> loop thread, same order as _post
    current = [0]

    orig_emit = adapter._Callback._emit
    orig_post = adapter.XtBroker._post
    orig_deliver = adapter.XtBroker._deliver
    orig_encode = contract.encode_event

    def emit(self, translate, obj):
        local.t = time.time_ns()
        try:
            return orig_emit(self, translate, obj)
        finally:
            local.t = 0

    def post(self, event):
        fifo.append(getattr(local, "t", 0) or time.time_ns())
        orig_post(self, event)

    def deliver(self, event):
        current[0] = fifo.popleft() if fifo else 0
        try:
            orig_deliver(self, event)
        finally:
            current[0] = 0

    def encode_event(*args, **kwargs):
        fields = orig_encode(*args, **kwargs)
        fields["bench_push_ns"] = str(current[0] or time.time_ns())
        return fields

    adapter._Callback._emit = emit
    adapter.XtBroker._post = post
    adapter.XtBroker._deliver = deliver
    contract.encode_event = encode_event


if __name__ == "__main__":
    install_probe()
    from xtqueue.cli import main

    main(sys.argv[1:])

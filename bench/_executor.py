"""Runs ``xtqueue executor`` (the real CLI, all guarantees on) with two bench-only probes:

* each event entry gets an extra field ``bench_push_ns``, the wall clock (ns) at which the broker's callback thread
  (the wheel's push executor) handed that callback to the adapter. Clients ignore unknown fields. It costs a few
  microseconds per event.
* with ``BENCH_THREADS_FILE`` set, a thread of its own writes ``{thread name: native id}`` there every half second
  (when it changed), so the bench can read each thread's CPU (psutil) and tell the stand-in binary's reader thread
  apart from the executor's own. Off the executor's path.

    python -m bench._executor --redis-url URL executor --broker sim --sim-path DIR ...
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time

from bench._common import THREADS_ENV, publish_thread_ids


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
    if os.environ.get(THREADS_ENV):
        publish_thread_ids(os.environ[THREADS_ENV])
    from xtqueue.cli import main

    main(sys.argv[1:])

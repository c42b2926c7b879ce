"""One MiniQMT session as the simulator engine sees it: connected or not, the accounts it subscribed, and the one
thread that delivers its pushes and answers, in order, to a sink.

The simulated MiniQMT (``executor/sim/qmt/server.py``) makes one ``Session`` per connected client; its sink turns
each push into the binding call the binary makes on that client. What the engine decides (executor/sim/engine.py)
and what a session does with it stay apart:

* the engine appends ``(session, not_before, what, arg)`` items in generation order and hands them over only after
  the state they report is committed (group commit);
* a session's worker delivers them one at a time: ``what`` is a push name (``"on_stock_order"``, ...) called on
  the sink with ``arg`` (or without argument for ``NOARG``), ``GROUP`` (pushes whose objects are built here, on
  the worker, from constructor arguments: objects.BUILDERS), or a callable answer (``fn(arg)``);
* errors (``on_order_error`` / ``on_cancel_error``) go to the session that sent the request only; account pushes
  to every connected session subscribed to the account (``Engine._targets``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Any

from .objects import BUILDERS, GROUP

log = logging.getLogger("executor.sim")

NOARG = object()  # marks a push without argument (on_disconnected)


class Session:
    """Engine-side state of one client session. ``sink`` has one method per push name (``on_stock_order(x)``,
    ``on_disconnected()``, ...). Created detached; ``Engine.attach`` connects it, ``Engine.detach`` ends it."""

    def __init__(self, engine: Any, name: str, sink: Any) -> None:
        self.engine = engine
        self.name = name
        self.sink = sink
        self.connected = False
        self.disconnected = False  # the link dropped (Faults.disconnect): the session is dead for good
        self.subs: set[str] = set()
        self._worker = _Worker(self, f"qmt-sim-push-{name}")

    def deliver(self, items: list) -> None:
        """Queue ``(not_before, what, arg)`` items (the engine's dispatch, or a push outside the commit pipeline)."""
        self._worker.put(items)

    def stop(self) -> None:
        """Deliver what is queued, then end the worker (waits for it unless called on it)."""
        self._worker.stop()


class _Worker:
    """A session's single delivery thread, like the wheel's ThreadPoolExecutor(max_workers=1) on the client side."""

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, items) -> None:
        self.q.put(items)

    def stop(self) -> None:
        self.q.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=30)

    def _run(self) -> None:
        # Items wait in a heap by the time they are due. In order (FIFO: an item is due no earlier than the one
        # queued before it) unless the faults make answers independent (Faults.independent: a quick answer
        # overtakes a slow one).
        mono = time.monotonic
        faults = self._session.engine.faults
        heap: list[tuple[float, int, Any, Any]] = []
        count = itertools.count()
        last_due = 0.0
        stopping = False
        while heap or not stopping:
            if not stopping:
                wait = None if not heap else heap[0][0] - mono()
                try:
                    items = self.q.get(timeout=wait) if wait is None or wait > 0 else self.q.get_nowait()
                except queue.Empty:
                    items = ()
                if items is None:
                    stopping = True  # deliver what is queued, then end
                    continue
                if items:
                    independent = faults.independent
                    for nb, fn, arg in items:
                        due = nb if independent else max(nb, last_due)
                        last_due = max(last_due, due)
                        heapq.heappush(heap, (due, next(count), fn, arg))
                    continue
            due, _, fn, arg = heapq.heappop(heap)
            d = due - mono()
            if d > 0:
                time.sleep(d)
            self._call(fn, arg)

    def _call(self, fn: Any, arg: Any) -> None:
        sink = self._session.sink
        if fn is GROUP:  # deferred pushes: (push name, constructor arguments), built here
            for name, args in arg:
                try:
                    getattr(sink, name)(BUILDERS[name](args))
                except Exception:
                    log.exception("qmt-sim: delivering %s failed", name)
            return
        try:
            if fn.__class__ is str:
                m = getattr(sink, fn)
                if arg is NOARG:
                    m()
                else:
                    m(arg)
            else:
                fn(arg)
        except Exception:
            log.exception("qmt-sim: delivering %s failed", getattr(fn, "__name__", fn))

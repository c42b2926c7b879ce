"""The broker adapter boundary: everything venue-specific sits behind this class.

The engine (executor/engine.py) talks only to ``Broker``. There is one implementation, ``XtBroker``
(executor/broker/xt/adapter.py), which drives xtquant's own ``xtquant.xttrader.XtQuantTrader``: over the real binary
(MiniQMT, Windows) or over the stand-in binary of executor/sim/qmt (the simulated MiniQMT, anywhere). So the
simulator and the live venue share every line above the binary.

| method                  | required | what it does                                                                 |
|-------------------------|----------|------------------------------------------------------------------------------|
| connect()               | yes      | new trader instance, start, connect, subscribe; raise BrokerUnavailableError |
| close()                 | yes      | stop the trader and the broker thread                                        |
| place_order(cmd)        | yes      | order_stock_async; returns its RequestKey; the answer comes as an event      |
| place_orders(cmds, ...) | no       | a batch in one hop; per order its seq or error (default: place_order each)    |
| submit_orders(...)      | given    | place_orders + per-order answers (answers.py): what the engine calls          |
| cancel_order(...)       | yes      | cancel_order_stock(_sysid)_async; returns the broker's CancelResponded       |
| query_*()               | yes      | snapshots as contract reports; ``None`` lists are never read as "empty"      |
| probe()                 | yes      | cheap liveness check used by the engine's supervisor                         |

The engine never sees a request seq: ``submit_orders`` hands each order's outcome (placed with its order id and
first status, rejected with the broker's text, or unknown) to a per-order reply; ``answers.py`` derives it from
the events every adapter passes through ``observed()`` before its sink.

Threading: every trader call runs on ONE dedicated broker thread (xtquant calls block and are not thread-safe);
callbacks arrive on the trader's push thread, are translated to contract events there, and are handed to the
engine's event loop in arrival order (one ``loop.call_soon_threadsafe`` per burst). The engine never blocks on
xtquant.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from producer_lib import contract as c

from .answers import OrderAnswers, PlaceResult, Placed, Rejected, Reply, RequestKey, Responded, Unknown

__all__ = ["Broker", "BrokerDeadlinePassedError", "BrokerError", "BrokerFencedError", "BrokerRefusedError",
           "BrokerTimeoutError", "BrokerUnavailableError", "EventSink", "PlaceResult", "Placed", "Rejected", "Reply",
           "RequestKey", "Responded", "Unknown"]

log = logging.getLogger("executor.broker")


class BrokerError(Exception):
    """Base of errors raised by a broker adapter."""


class BrokerUnavailableError(BrokerError):
    """MiniQMT is not connected (or the call failed because the link is down). Nothing was sent."""


class BrokerTimeoutError(BrokerError):
    """The broker did not answer in time. For an order, its outcome is unknown."""


class BrokerFencedError(BrokerError):
    """This executor lost the account's lease: the request was NOT sent (checked right before the call)."""


class BrokerDeadlinePassedError(BrokerError):
    """The order's deadline passed before the broker thread reached it: it was NOT sent."""


class BrokerRefusedError(BrokerError):
    """The broker refused a request synchronously (e.g. a cancel with cancel_result -1)."""

    def __init__(self, message: str, *, error_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id


#: Called on the engine's event loop, once per broker callback, in arrival order.
EventSink = Callable[[c.Event], None]


class Broker(abc.ABC):
    """What the engine needs from a venue. See the module docstring for the required table."""

    name: str = "base"  # "sim" or "xt": reported by ping
    #: Checked on the broker thread immediately before every order and cancel call; False → BrokerFencedError.
    #: The engine sets it to its lease's ``valid`` (one active executor per account).
    guard: Callable[[], bool] | None = None

    _answers: OrderAnswers | None = None

    # --- per-order answers (answers.py): what the engine uses -------------------------------------------------
    @property
    def answers(self) -> OrderAnswers:
        if self._answers is None:
            self._answers = OrderAnswers()
        return self._answers

    def configure_answers(self, *, response_timeout_s: float, first_status_wait_s: float) -> None:
        """How long an order request may wait for its response, and an order for its first status."""
        self.answers.response_timeout_s = response_timeout_s
        self.answers.first_status_wait_s = first_status_wait_s

    async def submit_orders(self, cmds: list[c.PlaceOrder], deadlines: list[float],
                            replies: Sequence[Reply]) -> None:
        """Send ``cmds`` in this order (``place_orders``); each order's outcome goes to its ``replies[i]``, in
        order for the requests that failed (the exception ``place_orders`` gave: not sent, or unknown for a
        timeout), later for the others: ``Responded`` (its order id), then one PlaceResult, and after ``Unknown``
        possibly a late answer."""
        try:
            results = await self.place_orders(cmds, deadlines)
        except Exception as exc:  # an adapter that raised for the whole batch: it may have sent some of them
            results = [exc] * len(cmds)
        answers = self.answers
        for cmd, result, reply in zip(cmds, results, replies):
            if isinstance(result, BaseException):
                reply(result)  # type: ignore[arg-type]
            else:
                answers.expect(result, cmd.client_order_id, reply)

    def requests_lost(self, why: str) -> None:
        """The engine counts the link as down: requests not answered yet are answered ``Unknown(why)``."""
        self.answers.lost(why)

    def observed(self, event: c.Event) -> c.Event:
        """Every event passes here before the engine's sink (the adapter's delivery path): the per-order answers
        learn from it and fill in its client order id when known. Never raises."""
        try:
            return self.answers.observe(event)
        except Exception:
            log.exception("per-order answers failed on %s", event.TYPE)
            return event

    # --- the venue ----------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True between a successful connect() and the next disconnect."""

    @abc.abstractmethod
    def set_event_sink(self, sink: EventSink) -> None:
        """Where translated callbacks go. Must be called before connect()."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Create a new trader, start, connect and subscribe. Raises BrokerUnavailableError on failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the trader and the broker thread. Idempotent."""

    @abc.abstractmethod
    async def place_order(self, cmd: c.PlaceOrder) -> RequestKey:
        """Send the order (order_stock_async, remark = client order id). Returns the trader instance and seq.

        The broker's answer arrives later through the sink as ``OrderResponded`` carrying the same trader and seq,
        followed by ``OrderUpdated`` / ``OrderRejected`` events. Raises BrokerUnavailableError when not connected."""

    async def place_orders(self, cmds: list[c.PlaceOrder],
                           deadlines: list[float] | None = None) -> list[RequestKey | BaseException]:
        """Send several orders in this order; per order its request key or the exception ``place_order`` would
        have raised for it. ``deadlines``: per order a ``time.monotonic()`` instant after which it must not be
        sent (BrokerDeadlinePassedError instead), checked immediately before its call. Adapters override this to
        hand the whole batch to their broker thread at once; a stuck broker call fails the orders with
        BrokerTimeoutError (they may have been sent)."""
        out: list[RequestKey | BaseException] = []
        for i, cmd in enumerate(cmds):
            if deadlines is not None and time.monotonic() > deadlines[i]:
                out.append(BrokerDeadlinePassedError("deadline passed before the order was sent"))
                continue
            try:
                out.append(await self.place_order(cmd))
            except Exception as exc:
                out.append(exc)
        return out

    @abc.abstractmethod
    async def cancel_order(self, *, order_id: int | None = None, sysid: str | None = None,
                           market: c.Market | None = None, timeout_s: float = 5.0) -> c.CancelResponded:
        """Send a cancel and wait for the broker's response (cancel_result 0 = sent, -1 = refused)."""

    @abc.abstractmethod
    async def query_asset(self) -> c.AssetReport: ...

    @abc.abstractmethod
    async def query_positions(self) -> list[c.PositionReport]: ...

    @abc.abstractmethod
    async def query_orders(self, cancelable_only: bool = False, *, strict: bool = False) -> list[c.OrderReport]:
        """Today's orders. Raises BrokerUnavailableError/BrokerTimeoutError when the answer is not known. xtquant
        answers None for "failed" and for "empty": with ``strict`` that None raises BrokerUnavailableError, so a
        reconciliation never reads an unknown list as an empty one; without it, None reads as []."""

    @abc.abstractmethod
    async def query_order(self, order_id: int) -> c.OrderReport | None: ...

    @abc.abstractmethod
    async def query_trades(self) -> list[c.TradeReport]: ...

    @abc.abstractmethod
    async def query_account_status(self) -> c.AccountStatusResult: ...

    async def query_credit(self, cmd: c.Command) -> Any:
        """One of the five credit queries (contract.CREDIT_QUERY_TYPES) -> its result model."""
        raise BrokerUnavailableError(f"{self.name} answers no credit queries")

    @abc.abstractmethod
    async def probe(self) -> bool:
        """True if the broker answers a cheap query now. Never raises."""

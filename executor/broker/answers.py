"""Per-order answers out of xtquant's callbacks: request seq -> order id -> first status.

xtquant answers an order request with ``on_order_stock_async_response`` (its request seq and the order id, or -1),
then reports the order through pushes keyed by that order id (docs/architecture.md, X6). Nothing orders these
(X7): a push can come before the response, and the response can come before ``order_stock_async`` has returned
the seq on the broker thread. Seqs restart with every XtQuantTrader, so a request is known by its RequestKey
(trader instance, seq).

``OrderAnswers`` turns that into one ``PlaceResult`` per order, handed to the ``reply`` callback given with the
request, on the event loop: ``Placed`` (order id and first status; ``unreported`` if no status came within the
first-status wait), ``Rejected`` (the broker's own text), or ``Unknown`` (no answer within the response timeout,
or the link was lost first). An answer that comes after ``Unknown`` is handed to ``reply`` once more, as the late
answer. It also stamps its request's client order id on the ``OrderResponded`` event, so the engine never needs
a seq. Loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from producer_lib import contract as c


class RequestKey(NamedTuple):
    """One order request: the trader instance that took it (the adapter's connection generation) and the seq it
    returned. xtquant's seqs restart with every XtQuantTrader, so after a reconnect a seq alone may name a request
    of the previous instance: an answer (``OrderResponded.trader``, ``.seq``) is matched by both (X6)."""

    trader: int
    seq: int


@dataclass(frozen=True, slots=True)
class Responded:
    """Not a result yet: the broker answered with this order id; the first status is awaited."""

    order_id: int


@dataclass(frozen=True, slots=True)
class Placed:
    """The broker took the order: its id and its first status (``unreported`` if none came in time)."""

    order_id: int
    status: c.OrderStatus
    status_msg: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The broker refused the request (``order_id`` None: no order was created) or rejected the order."""

    broker_message: str
    error_id: int | None = None
    order_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """No answer: whether the order exists is unknown (reconciliation or a late answer will tell)."""

    why: str


PlaceResult = Placed | Rejected | Unknown
Reply = Callable[["PlaceResult | Responded"], None]


@dataclass(eq=False, slots=True)
class _Request:
    key: RequestKey
    coid: str
    reply: Reply
    order_id: int | None = None
    answered: bool = False  # a PlaceResult was handed to reply (a later one is the late answer)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Fifo(dict):
    """A dict that forgets its oldest keys beyond ``limit`` (bounded memory)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: object, value: object) -> None:
        self[key] = value
        if len(self) > self.limit:
            del self[next(iter(self))]


class OrderAnswers:
    def __init__(self, response_timeout_s: float = 10.0, first_status_wait_s: float = 2.0) -> None:
        self.response_timeout_s = response_timeout_s
        self.first_status_wait_s = first_status_wait_s
        self._by_key: dict[RequestKey, _Request] = {}  # requests not answered yet (response or first status)
        self._by_order_id: dict[int, _Request] = {}  # requests awaiting their first status
        self._late = _Fifo(10_000)  # key -> request answered Unknown: a late response is still handed on
        self._early_responses = _Fifo(10_000)  # key -> OrderResponded that beat order_stock_async's return
        self._first_status = _Fifo(20_000)  # order id -> first OrderReport / OrderRejected seen
        self._responded = _Fifo(100_000)  # order ids whose OrderResponded has been matched

    # --- requests ---------------------------------------------------------------------------------------------
    def expect(self, key: RequestKey, coid: str, reply: Reply) -> None:
        """An order request just sent (``key`` returned by the trader): answer it through ``reply``."""
        req = _Request(key, coid, reply)
        self._by_key[key] = req
        early = self._early_responses.pop(key, None)
        if early is not None:
            self._responded_to(req, early)
        else:
            req.timer = asyncio.get_running_loop().call_later(self.response_timeout_s, self._response_timeout, req)

    def lost(self, why: str) -> None:
        """The link is down: every request not answered yet is answered Unknown now (a late response of the same
        trader instance, still delivered after a reconnect, is handed on later)."""
        for req in list(self._by_key.values()):
            self._late.put(req.key, req)
            self._answer(req, Unknown(why))
        self._by_key.clear()
        self._early_responses.clear()

    # --- events (the adapter hands each one here before the engine's sink) ------------------------------------
    def observe(self, ev: c.Event) -> c.Event:
        """Learn from one broker event; returns it, with its client order id filled in when known here."""
        if isinstance(ev, c.OrderResponded):
            return self._on_responded(ev)
        if isinstance(ev, c.OrderUpdated):
            self._on_status(ev.order.order_id, ev.order)
        elif isinstance(ev, c.OrderRejected) and ev.order_id > 0:
            self._on_status(ev.order_id, ev)
        return ev

    def _on_responded(self, ev: c.OrderResponded) -> c.Event:
        key = RequestKey(ev.trader, ev.seq)
        req = self._by_key.get(key)
        late = self._late.pop(key, None) if req is None else None
        if req is not None:
            self._responded_to(req, ev)
        elif late is not None:
            self._late_response(late, ev)
        else:
            self._early_responses.put(key, ev)
        mine = req or late
        if mine is not None and ev.order_id > 0:
            # Only once matched to its request: a response parked as early (it beat order_stock_async's return)
            # must not stop the order's first status from being kept for it.
            self._responded.put(ev.order_id, True)
        if mine is not None and mine.coid and not ev.client_order_id:
            ev = ev.model_copy(update={"client_order_id": mine.coid})
        return ev

    def _responded_to(self, req: _Request, ev: c.OrderResponded) -> None:
        req.cancel_timer()
        if ev.order_id <= 0:
            self._answer(req, Rejected(broker_message=ev.error_msg))
            return
        req.order_id = ev.order_id
        self._responded.put(ev.order_id, True)
        req.reply(Responded(ev.order_id))
        first = self._first_status.pop(ev.order_id, None)
        if first is not None:
            self._first_status_of(req, first)
            return
        self._by_order_id[ev.order_id] = req
        req.timer = asyncio.get_running_loop().call_later(self.first_status_wait_s, self._first_status_timeout,
                                                          req)

    def _on_status(self, oid: int, first: c.OrderReport | c.OrderRejected) -> None:
        req = self._by_order_id.get(oid)
        if req is not None:
            self._first_status_of(req, first)
        elif oid not in self._responded and oid not in self._first_status:
            # Pushes may precede the order's OrderResponded (X7): keep the first one.
            self._first_status.put(oid, first)

    def _first_status_of(self, req: _Request, first: c.OrderReport | c.OrderRejected) -> None:
        req.cancel_timer()
        self._by_order_id.pop(req.order_id, None)  # type: ignore[arg-type]
        if isinstance(first, c.OrderRejected):
            self._answer(req, Rejected(broker_message=first.error_msg, error_id=first.error_id or None,
                                       order_id=req.order_id))
        elif first.status is c.OrderStatus.JUNK:
            self._answer(req, Rejected(broker_message=first.status_msg, order_id=req.order_id))
        else:
            self._answer(req, Placed(req.order_id, first.status, first.status_msg))  # type: ignore[arg-type]

    def _late_response(self, req: _Request, ev: c.OrderResponded) -> None:
        """The answer to a request already answered Unknown."""
        if ev.order_id > 0:
            first = self._first_status.get(ev.order_id)
            status = first.status if isinstance(first, c.OrderReport) else c.OrderStatus.UNREPORTED
            req.reply(Placed(ev.order_id, status))
        else:
            req.reply(Rejected(broker_message=ev.error_msg))

    # --- timers -----------------------------------------------------------------------------------------------
    def _response_timeout(self, req: _Request) -> None:
        req.timer = None
        if req.answered:
            return
        self._by_key.pop(req.key, None)
        self._late.put(req.key, req)  # a late OrderResponded is still handed on
        self._answer(req, Unknown("the broker did not answer the order request in time"))

    def _first_status_timeout(self, req: _Request) -> None:
        req.timer = None
        if not req.answered:
            self._by_order_id.pop(req.order_id, None)  # type: ignore[arg-type]
            self._answer(req, Placed(req.order_id, c.OrderStatus.UNREPORTED))  # type: ignore[arg-type]

    def _answer(self, req: _Request, result: PlaceResult) -> None:
        req.cancel_timer()
        if self._by_key.get(req.key) is req:
            del self._by_key[req.key]
        if not req.answered:
            req.answered = True
            req.reply(result)

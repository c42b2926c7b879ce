"""Placing: admitted orders (intents committed) handed to the broker, and each one's first known status.

``dispatch`` hands a batch to the broker in stream order, each deadline re-checked right before its call. Each
order's answer comes back as one result (executor/broker/answers.py, behind the adapter boundary): placed with its
order id and first status, rejected with the broker's text, or unknown (no answer in time, or the link was lost
first). Here that result becomes the command's outcome and journal record; an answer after "unknown" still settles
the journal. The engine never sees xtquant's request seqs.
"""

from __future__ import annotations

import asyncio
import functools
import time

import structlog

from executor.broker.base import (BrokerDeadlinePassedError, BrokerFencedError, BrokerTimeoutError,
                                  BrokerUnavailableError, Placed, PlaceResult, Rejected, Responded)
from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.jobs import Job, Outcome, Placement, error
from executor.journal import Record, StoredReply
from executor.leadership import Leadership
from executor.orderbook import OrderBook
from executor.safety.stage import Safety
from executor.transport import ServerClock
from producer_lib import contract as c

log = structlog.get_logger("executor")

E = c.ErrorCode
S = c.OutcomeState


class Placer:
    def __init__(self, settings: ExecutorSettings, link: BrokerLink, clock: ServerClock, book: OrderBook,
                 safety: Safety, leadership: Leadership) -> None:
        self.settings = settings
        self.link = link
        self.clock = clock
        self.book = book
        self.safety = safety
        self.leadership = leadership
        link.broker.configure_answers(response_timeout_s=settings.broker_timeout_ms / 1000.0,
                                      first_status_wait_s=settings.ack_wait_ms / 1000.0)

    # --- outcomes -------------------------------------------------------------------------------------------------
    def expired(self, base: Record) -> Outcome:
        out = error(E.EXPIRED, "deadline passed before the executor reached the order; nothing was placed",
                    details={"deadline_ms": base.deadline_ms, "server_now_ms": self.clock.now_ms()})
        assert out.error is not None
        out.record = base.evolve(state=S.EXPIRED, reply=StoredReply.of(error=out.error))
        return out

    @staticmethod
    def unknown(p: Placement, why: str) -> Outcome:
        return error(E.OUTCOME_UNKNOWN, f"{why}; whether the order was placed is unknown; ask with query_outcome",
                     record=p.record.evolve(state=S.UNKNOWN))

    def resolve(self, p: Placement, outcome: Outcome) -> None:
        if not p.future.done():
            self.safety.placement_done(p, outcome)
            p.future.set_result(outcome)

    async def await_placement(self, job: Job, p: Placement) -> Outcome:
        # The placement stays findable by coid until its outcome is journaled (Settler.finish), so a repeat arriving
        # meanwhile still gets this outcome instead of a journal miss.
        job.placement = p
        return await p.future

    @staticmethod
    async def await_duplicate(future: asyncio.Future) -> Outcome:
        """A repeat of a client order id still in flight: the same outcome, once known, marked duplicate."""
        first: Outcome = await asyncio.shield(future)
        if isinstance(first.result, c.OrderAck):
            return Outcome(result=first.result.model_copy(update={"duplicate": True}))
        return Outcome(result=first.result, error=first.error)

    # --- out to the broker ----------------------------------------------------------------------------------------
    async def dispatch(self, placements: list[Placement]) -> None:
        """Hand admitted orders (intents committed) to the broker, in stream order. Each one's outcome comes back
        through its reply (``_answered``)."""
        now_ms = self.clock.now_ms()
        sending = []
        for p in placements:
            if now_ms > p.deadline_ms:  # re-checked at the last moment before the broker
                self.resolve(p, self.expired(p.record))
            else:
                sending.append(p)
        if not sending:
            return
        # Each deadline again on the broker thread right before its call, on the local monotonic clock (the
        # server-clock deadline translated now): a batch's last order must not go out after its deadline.
        mono = time.monotonic()
        deadlines = [mono + (p.deadline_ms - now_ms) / 1000.0 for p in sending]
        await self.link.broker.submit_orders([p.cmd for p in sending], deadlines,
                                             [functools.partial(self._answered, p) for p in sending])

    def on_broker_lost(self) -> None:
        """The link is down: orders whose request got no answer yet are outcome_unknown until reconciliation finds
        them, or until a late answer of this trader instance (still delivered after the reconnect)."""
        self.link.broker.requests_lost("the broker disconnected before answering the order request")

    def _answered(self, p: Placement, result: PlaceResult | Responded | BaseException) -> None:
        """The broker's answer for one order (executor/broker/answers.py), on the loop."""
        if isinstance(result, BaseException):
            self._send_failed(p, result)
        elif isinstance(result, Responded):
            self.book.coid_by_order_id.put(result.order_id, p.coid)
        elif p.future.done():
            self._late_answer(p, result)
        elif isinstance(result, Placed):
            ack = c.OrderAck(order_id=result.order_id, client_order_id=p.coid, status=result.status,
                             status_msg=result.status_msg)
            self.resolve(p, Outcome(result=ack, record=p.record.evolve(state=S.PLACED, order_id=result.order_id,
                                                                         reply=StoredReply.of(result=ack))))
        elif isinstance(result, Rejected):
            err = _rejection(result)
            known = {} if result.order_id is None else {"order_id": result.order_id}
            self.resolve(p, Outcome(error=err, record=p.record.evolve(state=S.REJECTED, **known,
                                                                        reply=StoredReply.of(error=err))))
        else:
            self.resolve(p, self.unknown(p, result.why))

    def _send_failed(self, p: Placement, exc: BaseException) -> None:
        if isinstance(exc, BrokerDeadlinePassedError):  # not sent
            self.resolve(p, self.expired(p.record))
        elif isinstance(exc, BrokerFencedError):  # nothing was sent by us; a successor may own this entry now
            self.leadership.fence_if_lost(str(exc))
            self.resolve(p, self.unknown(p, "this executor could not confirm its lease before placing the order "
                                            "(paused, or Redis unreachable), so it did not send it"))
        elif isinstance(exc, BrokerUnavailableError):
            self.resolve(p, error(E.BROKER_UNAVAILABLE, f"the broker is not connected; nothing was placed "
                                                        f"({exc})", record=p.record.evolve(state=S.REFUSED)))
        else:  # timeout or anything else: it may have reached MiniQMT
            if not isinstance(exc, BrokerTimeoutError):
                log.error("place_order failed", coid=p.coid, error=repr(exc))
            self.resolve(p, self.unknown(p, f"the broker did not confirm the order request ({exc!r})"))

    def _late_answer(self, p: Placement, result: PlaceResult) -> None:
        """The answer to an order already reported outcome_unknown: settle its journal record now."""
        if isinstance(result, Placed):
            ack = c.OrderAck(order_id=result.order_id, client_order_id=p.coid, status=result.status)
            rec = p.record.evolve(state=S.PLACED, order_id=result.order_id, reply=StoredReply.of(result=ack))
        elif isinstance(result, Rejected):
            rec = p.record.evolve(state=S.REJECTED, reply=StoredReply.of(error=_rejection(result)))
        else:
            return
        order_id = result.order_id if result.order_id is not None else -1
        log.warning("late broker answer to an order reported outcome_unknown", coid=p.coid, order_id=order_id)
        try:
            self.book.journal.save([rec], c.now_ms())
        except Exception:
            log.exception("journal: recording a late answer failed", coid=p.coid)


def _rejection(result: Rejected) -> c.ErrorInfo:
    """No order id: the broker refused the request; with one: it rejected the order it had created."""
    if result.order_id is None:
        return c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker refused the order",
                           broker_message=result.broker_message)
    extra = {} if result.error_id is None else {"broker_error_id": result.error_id}
    return c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                       broker_message=result.broker_message, order_id=result.order_id, **extra)

"""Placing: admitted orders (intents committed) handed to the broker, and each one's first known status.

``dispatch`` hands a batch to the broker in stream order, each deadline re-checked right before its call. An order
is then answered from the broker's events: its ``OrderResponded`` (matched by RequestKey: trader instance and seq)
gives the order id, the first ``OrderUpdated`` / ``OrderRejected`` of that id gives the first status. xtquant does
not order these callbacks (docs/architecture.md, "Facts about xtquant"), so a response that beats place_order's
return and a status that beats its response are kept until their order arrives. No answer in time:
``outcome_unknown``; a late answer still settles the journal.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from executor.broker.base import (BrokerDeadlinePassedError, BrokerFencedError, BrokerTimeoutError,
                                  BrokerUnavailableError, RequestKey)
from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.jobs import Fifo, Job, Outcome, Placement, error
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
        # Answers are matched by RequestKey (trader instance, seq), never by seq alone: seqs restart with every new
        # XtQuantTrader, and an answer of the previous instance may arrive after the reconnect.
        self._by_seq: dict[RequestKey, Placement] = {}  # request key -> placement awaiting OrderResponded
        self._by_order_id: dict[int, Placement] = {}  # order id -> placement awaiting its first status
        self._late: Fifo = Fifo(10_000)  # key -> placement answered outcome_unknown; a late answer is journaled
        self._early_responses: Fifo = Fifo(10_000)  # key -> OrderResponded that beat place_order's return
        self._first_status: Fifo = Fifo(20_000)  # order id -> first OrderReport / OrderRejected seen
        self._responded: Fifo = Fifo(100_000)  # order ids whose OrderResponded has been seen

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
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if p.seq is not None and self._by_seq.get(p.seq) is p:
            del self._by_seq[p.seq]
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
        """Hand admitted orders (intents committed) to the broker, in stream order. Outcomes come via events."""
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
        try:
            results = await self.link.broker.place_orders([p.cmd for p in sending], deadlines)
        except Exception as exc:  # an adapter that raised for the whole batch: it may have sent some of them
            results = [exc] * len(sending)
        loop = asyncio.get_running_loop()
        for p, result in zip(sending, results):
            if isinstance(result, BaseException):
                self._send_failed(p, result)
                continue
            p.sent = True
            p.seq = result
            self._by_seq[result] = p
            early = self._early_responses.pop(result, None)
            if early is not None:
                self._on_order_response(p, early)
            elif not p.future.done():
                p.timer = loop.call_later(self.settings.broker_timeout_ms / 1000.0, self._response_timeout, p)

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

    def _response_timeout(self, p: Placement) -> None:
        if p.future.done():
            return
        if p.seq is not None:
            self._by_seq.pop(p.seq, None)
            self._late.put(p.seq, p)  # a late OrderResponded still resolves the journal
        self.resolve(p, self.unknown(p, "the broker did not answer the order request in time"))

    # --- back from the broker (executor/tracking.py routes the events here) ---------------------------------------
    def on_responded(self, ev: c.OrderResponded) -> str:
        """An order request's answer. Returns the client order id it belongs to ("" if unknown)."""
        key = RequestKey(ev.trader, ev.seq)
        p = self._by_seq.get(key)
        late = self._late.pop(key, None) if p is None else None
        coid = (p.coid if p else late.coid if late else "") or ev.client_order_id
        if p is not None:
            self._on_order_response(p, ev)
        elif late is not None:
            self._late_response(late, ev)
        else:
            self._early_responses.put(key, ev)
        if ev.order_id > 0:
            if p is not None or late is not None:
                # Only once matched to its placement: a response parked in _early_responses (it beat
                # place_order's return) must not stop the order's first status from being kept for it.
                self._responded.put(ev.order_id, True)
            if coid:
                self.book.coid_by_order_id.put(ev.order_id, coid)
        return coid

    def on_status(self, oid: int, first: c.OrderReport | c.OrderRejected) -> None:
        """An order push or rejection of order ``oid``: the first status of a placement waiting for one."""
        p = self._by_order_id.get(oid)
        if p is not None:
            self._on_first_status(p, first)
        elif oid not in self._responded and oid not in self._first_status:
            # Pushes may precede the order's OrderResponded (xtquant does not order them): keep the first one.
            self._first_status.put(oid, first)

    def on_broker_lost(self) -> None:
        """Orders whose request got no answer yet: their outcome is unknown until reconciliation finds them, or
        until a late answer of this trader instance (still delivered after the reconnect; matched by its key)."""
        for p in list(self._by_seq.values()):
            if p.seq is not None:
                self._late.put(p.seq, p)
            self.resolve(p, self.unknown(p, "the broker disconnected before answering the order request"))
        self._by_seq.clear()
        self._early_responses.clear()

    def _on_order_response(self, p: Placement, ev: c.OrderResponded) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if ev.order_id <= 0:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker refused the order",
                              broker_message=ev.error_msg)
            self.resolve(p, Outcome(error=err, record=p.record.evolve(state=S.REJECTED,
                                                                        reply=StoredReply.of(error=err))))
            return
        p.order_id = ev.order_id
        self._responded.put(ev.order_id, True)
        self.book.coid_by_order_id.put(ev.order_id, p.coid)
        first = self._first_status.pop(ev.order_id, None)
        if first is not None:
            self._on_first_status(p, first)
            return
        self._by_order_id[ev.order_id] = p
        p.timer = asyncio.get_running_loop().call_later(self.settings.ack_wait_ms / 1000.0, self._ack_timeout, p)

    def _on_first_status(self, p: Placement, first: c.OrderReport | c.OrderRejected) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        self._by_order_id.pop(p.order_id, None)  # type: ignore[arg-type]
        if isinstance(first, c.OrderRejected):
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=first.error_msg, broker_error_id=first.error_id or None,
                              order_id=p.order_id)
        elif first.status is c.OrderStatus.JUNK:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=first.status_msg, order_id=p.order_id)
        else:
            self._ack(p, first.status, first.status_msg)
            return
        self.resolve(p, Outcome(error=err, record=p.record.evolve(state=S.REJECTED, order_id=p.order_id,
                                                                    reply=StoredReply.of(error=err))))

    def _ack_timeout(self, p: Placement) -> None:
        if not p.future.done():
            self._by_order_id.pop(p.order_id, None)  # type: ignore[arg-type]
            self._ack(p, c.OrderStatus.UNREPORTED, "")

    def _ack(self, p: Placement, status: c.OrderStatus, status_msg: str) -> None:
        assert p.order_id is not None
        ack = c.OrderAck(order_id=p.order_id, client_order_id=p.coid, status=status, status_msg=status_msg)
        self.resolve(p, Outcome(result=ack, record=p.record.evolve(state=S.PLACED, order_id=p.order_id,
                                                                     reply=StoredReply.of(result=ack))))

    def _late_response(self, p: Placement, ev: c.OrderResponded) -> None:
        """The answer to an order already reported outcome_unknown: settle its journal record now."""
        if ev.order_id > 0:
            first = self._first_status.get(ev.order_id)
            status = first.status if isinstance(first, c.OrderReport) else c.OrderStatus.UNREPORTED
            ack = c.OrderAck(order_id=ev.order_id, client_order_id=p.coid, status=status)
            rec = p.record.evolve(state=S.PLACED, order_id=ev.order_id, reply=StoredReply.of(result=ack))
        else:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker refused the order",
                              broker_message=ev.error_msg)
            rec = p.record.evolve(state=S.REJECTED, reply=StoredReply.of(error=err))
        log.warning("late broker answer to an order reported outcome_unknown", coid=p.coid, order_id=ev.order_id)
        try:
            self.book.journal.save([rec], c.now_ms())
        except Exception:
            log.exception("journal: recording a late answer failed", coid=p.coid)

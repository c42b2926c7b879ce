"""Admission: what happens to each place_order, decided synchronously in stream order.

One of: the answer already known (a repeat of a final id: the same answer; an id in flight: its future), a refusal
(conflicting reuse of an id, deadline passed, kill switch, broker down, a risk limit), an answer from the broker's
own books (an id this executor never journaled, or one left unresolved by a crash), or a new ``Placement`` whose
intent the loop commits to the journal before executor/placing.py hands it to the broker.

An unresolved id (PENDING/UNKNOWN) or a re-delivered entry is first looked up in the broker's order list by remark
(``lookup``); if that list cannot be had, the answer is ``outcome_unknown``, never a blind retry. On real MiniQMT a
request in flight when the executor died may show up in the list a little later, so an unresolved record updated
less than ``recovery_settle_ms`` ago (or, with no record here, a re-delivered entry read within that time of this
executor taking over) is looked up once more after that delay before being re-placed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.jobs import Job, Outcome, Placement, error, replay
from executor.journal import UNRESOLVED, Record
from executor.orderbook import OrderBook
from executor.placing import Placer
from executor.safety.stage import Safety
from executor.transport import ServerClock
from producer_lib import contract as c

log = structlog.get_logger("executor")

E = c.ErrorCode
S = c.OutcomeState


@dataclass(slots=True)
class Known:
    """Result of one broker order-list lookup for a batch: which coids were looked up, and what was found
    (``found`` None = the list could not be obtained)."""

    coids: set[str] = field(default_factory=set)
    found: dict[str, c.OrderReport] | None = None
    records: dict[str, Record | None] | None = None  # journal reads of this batch, when reusable (see lookup)


NO_LOOKUP = Known()


class Admission:
    def __init__(self, settings: ExecutorSettings, clock: ServerClock, link: BrokerLink, book: OrderBook,
                 placer: Placer, safety: Safety) -> None:
        self.settings = settings
        self.clock = clock
        self.link = link
        self.book = book
        self.placer = placer
        self.safety = safety
        self.serving_since_ms = 0  # when this executor took over the account (the loop sets it at start)

    async def lookup(self, orders: list[Job]) -> Known:
        """The broker's orders by remark, fetched once per batch, only when some order needs it: a re-delivered
        entry, or a client order id whose journal record is unresolved (PENDING/UNKNOWN) and not in flight."""
        book = self.book
        need: list[tuple[Job, Record | None]] = []
        read: dict[str, Record | None] = {}
        for job in orders:
            coid = job.cmd.client_order_id  # type: ignore[union-attr]
            if coid in book.placements:
                continue
            rec = read[coid] = book.unsaved.get(coid) or book.journal.get(coid)
            if rec is not None and rec.final:
                continue
            if rec is not None or job.entry.deliveries > 1:
                need.append((job, rec))
        if not need:
            # Every record read is absent or final, and neither changes until this batch is admitted (admission
            # is the only writer of new ids; final records are never rewritten): admission reuses them.
            return Known(records=read)
        coids = {job.cmd.client_order_id for job, _ in need}  # type: ignore[union-attr]
        found = await book.orders_by_coid()
        if found is not None and self.settings.recovery_settle_ms:
            # An order handed to the broker moments ago may not be in its list yet (MiniQMT answers queries from
            # its own cache): before re-placing such one, ask again once, after the settle delay.
            recent = [rec.updated_ms for job, rec in need if rec is not None and rec.state in UNRESOLVED
                      and rec.coid not in found]
            # A re-delivered entry this journal never saw may have been handed to the broker by a predecessor with
            # another state dir, at the latest when this executor took over (its broker guard stops it then).
            recent += [self.serving_since_ms for job, rec in need if rec is None and job.entry.deliveries > 1
                       and job.cmd.client_order_id not in found]  # type: ignore[union-attr]
            wait_ms = max(recent, default=0) + self.settings.recovery_settle_ms - c.now_ms()
            if recent and wait_ms > 0:
                log.info("waiting for the broker's order list to settle", wait_ms=wait_ms, orders=len(recent))
                await asyncio.sleep(wait_ms / 1000.0)
                found = await book.orders_by_coid()
        return Known(coids=coids, found=found)

    def admit(self, job: Job, known: Known) -> Outcome | Placement | asyncio.Future:
        """Decide what happens to one place_order, synchronously: an immediate Outcome, a new Placement (intent to
        commit and dispatch), or the future of the same client order id already in flight."""
        book = self.book
        cmd: c.PlaceOrder = job.cmd  # type: ignore[assignment]
        env = job.env
        assert env is not None
        coid, fp = cmd.client_order_id, cmd.fingerprint()
        owner = job.entry.owner  # the fingerprint names it too (cmd.strategy is bound to it by executor/intake.py)
        live = book.placements.get(coid)
        if live is not None:
            if live.fingerprint != fp:
                return self._conflict(coid, book.shown(owner, live.record.owner, live.fingerprint), fp)
            return live.future
        rec = book.unsaved.get(coid)  # decided earlier in this batch or a recent one, not yet journaled
        if rec is None:
            rec = known.records[coid] if known.records is not None and coid in known.records \
                else book.journal.get(coid)
        if rec is not None and rec.fingerprint != fp:
            return self._conflict(coid, book.shown(owner, rec.owner, rec.fingerprint), fp)
        if rec is not None and rec.final:
            return replay(rec)
        base = rec or Record(coid=coid, fingerprint=fp, state=S.PENDING, owner=owner, xt_remark=cmd.xt_remark,
                             xt_strategy_name=cmd.xt_strategy_name)
        base = base.evolve(fingerprint=fp, command_id=env.command_id, stream_id=job.entry.stream_id,
                           deadline_ms=job.deadline_ms)
        if coid in known.coids:
            if known.found is None:
                return error(E.OUTCOME_UNKNOWN, "the broker's order list cannot be obtained now, so whether this "
                                                "order was placed is unknown; ask again with query_outcome",
                             record=None if rec is not None and rec.state is S.UNKNOWN
                             else base.evolve(state=S.UNKNOWN))
            report = known.found.get(coid)
            if report is not None:
                if rec is None:
                    return self._found_at_broker(base, report, cmd, owner)
                return book.outcome_from_report(base, report, duplicate=True)
        at_broker = book.at_broker.get(coid) if rec is None else None
        if at_broker is not None:
            return self._found_at_broker(base, at_broker, cmd, owner)
        if self.clock.now_ms() > job.deadline_ms:
            return self.placer.expired(base)
        if cmd.side.is_credit and self.settings.account_type != "CREDIT":
            # Refused here, not left to the broker: what a STOCK account's counter does with a credit order type
            # is the counter's business, and a strategy's credential must not find out by trying.
            return error(E.INVALID_REQUEST, f"side {cmd.side.value} needs a CREDIT (信用) account; this executor trades "
                                            f"a {self.settings.account_type} account; nothing was placed",
                         record=base.evolve(state=S.REFUSED), details={"account_type": self.settings.account_type})
        halt = self.safety.halt
        if halt.halted:  # the kill switch, as read for this batch (docs/operations.md)
            return error(E.HALTED, halt.refusal_message(), record=base.evolve(state=S.REFUSED),
                         details={"reason": halt.reason})
        if not self.link.up:
            return error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected; nothing was placed",
                         record=base.evolve(state=S.REFUSED))
        refusal = self.safety.risk.check(cmd, fresh=rec is None)  # pre-trade limits (executor/safety/risk.py)
        if refusal is not None:
            return error(E.RISK_REJECTED, f"risk limit {refusal.rule}: {refusal.message}; nothing was placed",
                         record=base.evolve(state=S.REFUSED), details=refusal.details)
        loop = asyncio.get_running_loop()
        p = Placement(cmd=cmd, coid=coid, fingerprint=fp, record=base.evolve(state=S.PENDING),
                      deadline_ms=job.deadline_ms, future=loop.create_future())
        book.placements[coid] = p
        return p

    @staticmethod
    def _conflict(coid: str, first: str | None, now: str) -> Outcome:
        """``first``: what the id was used for, shown only to the order's owner (OrderBook.shown). Another
        strategy's use of the id tells nothing of that order (no fields, no order id): ids are account-wide
        (order_remark)."""
        if first is None:
            return error(E.CONFLICT, f"client order id {coid!r} is already in use on this account; nothing was "
                                     "placed (use unpredictable ids: contract.new_client_order_id)",
                         details={"this": now})
        return error(E.CONFLICT, f"client order id {coid!r} was already used for a different order; nothing new "
                                 "was placed", details={"first": first, "this": now})

    def _found_at_broker(self, base: Record, report: c.OrderReport, cmd: c.PlaceOrder, owner: str) -> Outcome:
        """An id this executor's journal does not know, in the broker's orders: placed by a predecessor whose
        journal this executor cannot see (another state dir), or outside xtqueue. Answered, never placed again;
        its order id and fields are told only to its owner (OrderBook.owner: the strategy_name it was placed
        with)."""
        book = self.book
        if not book.may_act(owner, book.owner(base.coid, report)):
            # Not "conflict" (= nothing of yours was placed): it may be this strategy's own order on a broker that
            # does not return strategy_name on order rows. Nothing of that order is told.
            return error(E.OUTCOME_UNKNOWN, f"client order id {base.coid!r} is already used by an order at the "
                                            "broker that this executor cannot attribute to you; nothing was placed "
                                            "now; never resend it with a new id before you know (docs/security.md)")
        if (report.code, report.side, report.volume) != (cmd.code, cmd.side, cmd.broker_volume):
            return self._conflict(base.coid, f"{report.code}|{report.side}|{report.volume} at the broker",
                                  cmd.fingerprint())
        # Its owner is the broker's record of it (the account-wide stream answering it does not become the owner).
        return book.outcome_from_report(base.evolve(owner=book.owner(base.coid, report)), report, duplicate=True)

"""What this executor knows of the account's orders, and whose each one is.

Four sources, asked in this order: the orders in flight (``placements``: intent committed, outcome not yet
journaled), outcomes decided but not yet journaled (``unsaved``), the journal, and the broker's own books (its order
list at start and at every reconciliation, and every order push since: ``at_broker``). An id this executor's journal
does not know may have been placed by a predecessor with another state dir; the broker's books decide then.

Ownership (docs/security.md, threat model): a strategy acts on, and is told about, its own orders only.
"""

from __future__ import annotations

import structlog

from executor.brokerlink import BrokerLink
from executor.jobs import Fifo, Outcome, Placement
from executor.journal import Journal, Record, StoredReply
from executor.safety.risk import RiskGate
from producer_lib import contract as c

log = structlog.get_logger("executor")

E = c.ErrorCode
S = c.OutcomeState


class OrderBook:
    def __init__(self, journal: Journal, link: BrokerLink, risk: RiskGate) -> None:
        self.journal = journal
        self.link = link
        self.risk = risk
        self.placements: dict[str, Placement] = {}  # coid -> placement until its outcome is journaled
        # coid -> record of an order answered at admission (refused, expired, found at the broker...) until the
        # settler has journaled it: a repeat admitted meanwhile (same batch, next batch) must see it, not a miss.
        self.unsaved: dict[str, Record] = {}
        self.coid_by_order_id: Fifo = Fifo(500_000)  # order id -> client order id (events without a remark)
        # The broker's orders by remark (client order id), from its order list at start and every order push since:
        # an id this executor's journal does not know may have been placed by a predecessor (another state dir).
        self.at_broker: Fifo = Fifo(500_000)

    def record(self, coid: str) -> Record | None:
        """The latest decision on ``coid``: in flight, decided but not yet journaled, or journaled."""
        live = self.placements.get(coid)
        return live.record if live is not None else self.unsaved.get(coid) or self.journal.get(coid)

    def index(self, orders: list[c.OrderReport]) -> dict[str, c.OrderReport]:
        """The broker's order list by client order id; also the open orders for the risk limit."""
        self.risk.sync_orders(orders)
        by_coid: dict[str, c.OrderReport] = {}
        for order in orders:
            if not order.client_order_id:
                continue
            if order.client_order_id in by_coid:
                log.error("two broker orders carry one client order id", coid=order.client_order_id,
                          order_ids=[by_coid[order.client_order_id].order_id, order.order_id])
                continue  # the first (lowest id) is the one we answer with
            by_coid[order.client_order_id] = order
            self.coid_by_order_id.put(order.order_id, order.client_order_id)
            self.at_broker.put(order.client_order_id, order)
        return by_coid

    async def orders_by_coid(self) -> dict[str, c.OrderReport] | None:
        """None when the list cannot be obtained (it must never be read as empty)."""
        orders = await self.link.orders()
        return None if orders is None else self.index(orders)

    def outcome_from_report(self, base: Record, report: c.OrderReport, *, duplicate: bool) -> Outcome:
        """The outcome of an order found in the broker's list (recovery / unresolved ids)."""
        self.coid_by_order_id.put(report.order_id, base.coid)
        if report.status is c.OrderStatus.JUNK:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=report.status_msg, order_id=report.order_id)
            return Outcome(error=err, record=base.evolve(state=S.REJECTED, order_id=report.order_id,
                                                         reply=StoredReply.of(error=err)))
        ack = c.OrderAck(order_id=report.order_id, client_order_id=base.coid, status=report.status,
                         status_msg=report.status_msg, duplicate=duplicate)
        stored = StoredReply.of(result=ack.model_copy(update={"duplicate": False}))
        return Outcome(result=ack, record=base.evolve(state=S.PLACED, order_id=report.order_id, reply=stored))

    # --- ownership ------------------------------------------------------------------------------------------------
    def owner(self, coid: str, report: c.OrderReport | None = None) -> str | None:
        """The strategy that placed client order id ``coid``: this executor's record (the command stream owner it
        came from, journaled with the intent), else the broker's: the strategy_name the order was placed with
        (the adapter sends cmd.strategy, bound to the stream owner by executor/intake.py). None = unknown: placed
        outside xtqueue, by an executor before protocol 2, or a broker whose order rows do not return strategy_name
        (docs/architecture.md, "Facts about xtquant"); nobody but the account-wide stream may act on such an
        order."""
        if coid:
            rec = self.record(coid)
            if rec is not None and rec.owner is not None:
                return rec.owner
            if report is None:
                report = self.at_broker.get(coid)
        return (report.strategy or None) if report is not None else None

    async def owner_of_order_id(self, order_id: int) -> str | None:
        """The owner of broker order ``order_id`` (see owner); asks the broker when this executor does not know
        it. Broker errors propagate: an owner that cannot be established is not guessed."""
        rec = self.journal.by_order_id(order_id)
        coid = rec.coid if rec is not None else self.coid_by_order_id.get(order_id, "")
        owner = self.owner(coid) if coid else None
        if owner is None:
            report = await self.link.call(self.link.broker.query_order(order_id))
            if report is not None:
                owner = self.owner(report.client_order_id, report)
        return owner

    @staticmethod
    def may_act(requester: str, owner: str | None) -> bool:
        """A strategy may act on (cancel, ask about) its own orders only. The stream without a strategy
        (``xtq:{A}:cmd``) acts for the whole account: under ``xtqueue acl`` only xtq-admin may write it, and
        without ACL users any client may write any stream, so a name there would be a claim, not an identity."""
        return requester == "" or (owner is not None and owner == requester)

    def shown(self, requester: str, owner: str | None, what: str) -> str | None:
        """``what`` (an order's fields) if ``requester`` may see that order, else None: told nothing."""
        return what if self.may_act(requester, owner) else None

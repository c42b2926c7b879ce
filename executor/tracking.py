"""Broker events in: each one routed once, in arrival order, to whoever needs it, then published.

``Tracker.route(event)`` is the broker's event sink (and the way reconciliation's findings come in, marked
``detected_by="reconciliation"``). Per event: the order it belongs to (client order id from the remark, or from the
order id), duplicates and stale pushes dropped (a published status never moves backwards), the broker's up/down
state (executor/brokerlink.py; pending order requests then become unknown, executor/placing.py), the safety stage
(audit trail, risk counters), and last the event stream. An order's own answer and first status reach
executor/placing.py through the adapter (executor/broker/answers.py), before the event comes here. It never raises; an event is published even if tracking it
failed.
"""

from __future__ import annotations

import contextlib

import structlog

from executor.brokerlink import BrokerLink
from executor.events import EventPublisher
from executor.jobs import Fifo
from executor.orderbook import OrderBook
from executor.placing import Placer
from executor.safety.stage import Safety
from producer_lib import contract as c

log = structlog.get_logger("executor")


class Tracker:
    def __init__(self, link: BrokerLink, book: OrderBook, placer: Placer, safety: Safety,
                 publisher: EventPublisher) -> None:
        self.link = link
        self.book = book
        self.placer = placer
        self.safety = safety
        self.publisher = publisher
        # What this process published (dedupe), valid while publisher.stream_resets == stream_resets.
        self.last_report: Fifo = Fifo(100_000)  # order id -> last OrderReport published
        self.seen_trades: Fifo = Fifo(200_000)  # (order id, trade id, volume, price) of fills published
        self.rejections_seen: Fifo = Fifo(100_000)  # order ids with an OrderRejected published
        self.stream_resets = 0

    def route(self, event: c.Event) -> None:
        """Called on the loop thread, in arrival order. Never raises."""
        try:
            keep, coid, order_id, event = self._track(event)
        except Exception:
            log.exception("tracking a broker event failed", event=event.TYPE)
            keep, coid, order_id = True, "", getattr(event, "order_id", None)
        # A dropped order push (duplicate or stale) must not move the risk gate's open orders backwards either.
        self.safety.observe(event, coid, risk=keep or not isinstance(event, c.OrderUpdated))
        if keep:
            self.publisher.publish(event, client_order_id=coid, order_id=order_id)

    def broker_lost(self, reason: str) -> bool:
        """The broker went down: True if it was up (the transition is then acted on and published once)."""
        if not self.link.mark_down(reason):
            return False
        self.placer.on_broker_lost()
        return True

    def forget_if_stream_reset(self) -> None:
        """The stream and its record were lost together: what this process published is gone as well."""
        if self.stream_resets != self.publisher.stream_resets:
            self.stream_resets = self.publisher.stream_resets
            self.seen_trades.clear()
            self.last_report.clear()

    def _track(self, ev: c.Event) -> tuple[bool, str, int | None, c.Event]:
        """Returns (publish?, client order id, order id, event with its client order id filled in)."""
        book = self.book
        if isinstance(ev, c.OrderUpdated):
            order = ev.order
            oid = order.order_id
            coid = order.client_order_id or book.coid_by_order_id.get(oid, "")
            if order.client_order_id:
                book.coid_by_order_id.put(oid, order.client_order_id)
                book.at_broker.put(order.client_order_id, order)
            last = self.last_report.get(oid)
            if last == order:
                log.info("duplicate order push dropped", order_id=oid, status=order.status.value)
                return False, coid, oid, ev
            if last is not None and not c.is_ahead(order, last):
                # MiniQMT may push an older state after a newer one (a partial fill after "filled"): a published
                # status never moves backwards, so the stale push is not published (docs/architecture.md).
                log.info("stale order push dropped", order_id=oid, status=order.status.value,
                         last_status=last.status.value)
                return False, coid, oid, ev
            self.last_report.put(oid, order)
            return True, coid, oid, ev
        if isinstance(ev, c.OrderFilled):
            trade = ev.trade
            oid = trade.order_id
            coid = trade.client_order_id or book.coid_by_order_id.get(oid, "")
            if trade.trade_id:
                key = (oid, trade.trade_id, trade.volume, trade.price)
                if key in self.seen_trades:
                    log.info("duplicate fill push dropped", order_id=oid, trade_id=trade.trade_id)
                    return False, coid, oid, ev
                self.seen_trades.put(key, True)
            return True, coid, oid, ev
        if isinstance(ev, c.OrderResponded):
            coid = ev.client_order_id  # filled in by the adapter for its own requests (broker/answers.py)
            if ev.order_id > 0 and coid:
                book.coid_by_order_id.put(ev.order_id, coid)
            return True, coid, (ev.order_id if ev.order_id > 0 else None), ev
        if isinstance(ev, c.OrderRejected):
            oid = ev.order_id
            coid = ev.client_order_id or book.coid_by_order_id.get(oid, "")
            if oid > 0:
                self.rejections_seen.put(oid, True)
                with contextlib.suppress(Exception):
                    book.journal.mark_rejection_seen(oid)
            if coid and not ev.client_order_id:
                ev = ev.model_copy(update={"client_order_id": coid})
            return True, coid, (oid if oid > 0 else None), ev
        if isinstance(ev, (c.CancelResponded, c.CancelRejected)):
            coid = getattr(ev, "client_order_id", "") or book.coid_by_order_id.get(ev.order_id, "")
            if coid and isinstance(ev, c.CancelRejected) and not ev.client_order_id:
                ev = ev.model_copy(update={"client_order_id": coid})
            return True, coid, (ev.order_id if ev.order_id > 0 else None), ev
        if isinstance(ev, c.BrokerDisconnected):
            return self.broker_lost(ev.reason or "disconnected"), "", None, ev
        if isinstance(ev, c.BrokerConnected):
            return False, "", None, ev  # the engine announces connections itself (after connect() succeeded)
        return True, "", None, ev

"""Broker supervision and reconciliation: keep MiniQMT connected, and settle what its pushes alone cannot.

``Supervisor.run`` reconnects with back-off while the broker is down, and probes it every ``probe_interval_ms``
while up. After every (re)connect and every good probe it reconciles against the broker's own lists: unresolved
journal records get their outcome, a rejection without its callback gets its OrderRejected, and every fill or order
change the event stream does not hold yet is published, marked ``detected_by="reconciliation"``. xtquant does not
guarantee its pushes (docs/architecture.md, "Facts about xtquant"), so this is how each fill reaches the stream
exactly once, also across crashes, restarts and takeovers.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from executor.broker.base import BrokerError
from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.events import EventPublisher
from executor.orderbook import OrderBook
from executor.tracking import Tracker
from producer_lib import contract as c

log = structlog.get_logger("executor")

S = c.OutcomeState


class Supervisor:
    def __init__(self, settings: ExecutorSettings, link: BrokerLink, book: OrderBook, tracker: Tracker,
                 publisher: EventPublisher, executor_id: str, stopping: asyncio.Event) -> None:
        self.settings = settings
        self.link = link
        self.book = book
        self.tracker = tracker
        self.publisher = publisher
        self.executor_id = executor_id
        self.stopping = stopping

    async def first_connect(self) -> None:
        """At start: one attempt now (``run`` keeps trying while the executor serves); on success, the open orders
        for the risk limit and what was missed while no executor published."""
        if await self.link.connect():
            orders = await self.link.orders()
            if orders is not None:
                self.book.index(orders)  # also the open orders for the risk limit (re-synced at reconciliation)
                await self._publish_missed_pushes(orders)

    async def run(self) -> None:
        """Reconnect with back-off while down; probe and reconcile while up."""
        link = self.link
        backoff = 0.1
        max_backoff = self.settings.reconnect_max_backoff_ms / 1000.0
        while not self.stopping.is_set():
            try:
                if not link.up:
                    if await link.connect():
                        backoff = 0.1
                        await self.reconcile()
                    else:
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, max_backoff)
                    continue
                link.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(link.changed.wait(), self.settings.probe_interval_ms / 1000.0)
                if not link.up:
                    continue
                if not (link.broker.connected and await link.broker.probe()):
                    if self.tracker.broker_lost("probe failed"):
                        self.publisher.publish(c.BrokerDisconnected(executor_id=self.executor_id,
                                                                    reason="probe failed"))
                    continue
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker supervision failed; continuing")
                await asyncio.sleep(1.0)

    async def reconcile(self) -> None:
        """Settle what pushes alone cannot: unresolved journal records, rejections without an OrderRejected, and
        order / fill pushes the broker never delivered. One order list per pass; the journal is read only for the
        few orders that need it."""
        book, tracker = self.book, self.tracker
        orders = await self.link.orders()
        if orders is None:
            return
        found = book.index(orders)
        await self._publish_missed_pushes(orders)
        now = c.now_ms()
        settled = []
        for rec in book.journal.unresolved():
            if rec.coid in book.placements:
                continue
            report = found.get(rec.coid)
            if report is not None:
                out = book.outcome_from_report(rec, report, duplicate=False)
                assert out.record is not None
                settled.append(out.record)
        if settled:
            book.journal.save(settled, now)
            log.info("reconciliation settled unresolved orders", count=len(settled))
        since = now - 86_400_000
        for coid, report in found.items():
            if report.status is not c.OrderStatus.JUNK or report.order_id in tracker.rejections_seen:
                continue
            rec = book.journal.get(coid)  # placed by us, and no OrderRejected published for it yet
            if rec is None or rec.state is not S.PLACED or rec.rejection_seen or rec.updated_ms < since:
                continue
            tracker.rejections_seen.put(report.order_id, True)
            book.journal.mark_rejection_seen(report.order_id)
            log.warning("order rejected without a callback; publishing OrderRejected", coid=coid,
                        order_id=report.order_id)
            self._found(c.OrderRejected(order_id=report.order_id, client_order_id=coid,
                                        error_msg=report.status_msg, detected_by="reconciliation"))

    def _found(self, event: c.Event) -> None:
        """What reconciliation found is routed like a push: through the adapter's per-order answers (an order
        still waiting for its first status learns it here too), then the tracker."""
        self.tracker.route(self.link.broker.observed(event))

    async def _publish_missed_pushes(self, orders: list[c.OrderReport]) -> None:
        """Compare the broker's lists with the record of what the event stream holds and publish what the broker is
        AHEAD on (``detected_by="reconciliation"``): every fill not on the stream, every order further along than
        its last ``order_updated``. The record is kept in Redis with the stream (EventPublisher.recorded), so after
        a crash, a restart, a fence, a takeover by an executor with another state dir or a reconnect, the day's
        fills reach the stream exactly once. Runs at start, after each reconnect and each probe.

        A snapshot is never allowed to move an order backwards (it may be older than a push already published): an
        order is published only if it filled more, or filled the same and moved to a later status. Orders of
        others (no client order id, nothing published for them) are never replayed."""
        link, book, tracker = self.link, self.book, self.tracker
        try:
            trades = await link.call(link.broker.query_trades())
        except (BrokerError, asyncio.TimeoutError) as exc:
            log.warning("reconciliation: broker lists unavailable", error=repr(exc))
            return
        except Exception:  # an adapter bug must not stop start-up or supervision; the next pass retries
            log.exception("reconciliation: reading the broker's lists failed")
            return
        for order in orders:
            if order.client_order_id and order.client_order_id not in book.at_broker:
                book.at_broker.put(order.client_order_id, order)
        tracker.forget_if_stream_reset()
        # Only what this process has not published or learned yet is looked up in the record.
        fresh = [t for t in trades if t.trade_id
                 and (t.order_id, t.trade_id, t.volume, t.price) not in tracker.seen_trades]
        moved = [o for o in orders if (last := tracker.last_report.get(o.order_id)) is not o
                 and (last is None or c.is_ahead(o, last))]
        if not fresh and not moved:
            return
        recorded = await self.publisher.recorded(fresh, moved)
        if recorded is None:
            return  # the record is unreadable (Redis down): the next pass compares again
        on_stream, ranks = recorded
        for trade in fresh:
            if (trade.order_id, trade.trade_id) in on_stream:
                tracker.seen_trades.put((trade.order_id, trade.trade_id, trade.volume, trade.price), True)
                continue
            log.warning("fill without a push; publishing it", order_id=trade.order_id, trade_id=trade.trade_id)
            self._found(c.OrderFilled(trade=trade, detected_by="reconciliation"))
        for order in moved:
            published = ranks.get(order.order_id)
            if (published is not None and c.order_rank(order) <= published[0]
                    or published is None and order.order_id not in tracker.last_report
                    and not order.client_order_id):
                tracker.last_report.put(order.order_id, order)  # learn: on the stream already, or not ours
                continue
            log.warning("order change without a push; publishing it", order_id=order.order_id,
                        status=order.status.value)
            self._found(c.OrderUpdated(order=order, detected_by="reconciliation"))

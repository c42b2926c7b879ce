"""Every command but place_order: ping, query_outcome, cancel_order and the broker queries.

Each runs as its own task, once per (reply stream, command id, content) (``once``). A strategy acts on and is told
about its own orders only (OrderBook.may_act); another's order is answered exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable

from pydantic import BaseModel

from executor.broker.base import (BrokerError, BrokerRefusedError, BrokerTimeoutError, BrokerUnavailableError)
from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.events import EventPublisher
from executor.jobs import Fifo, Job, Outcome, Stats, error
from executor.orderbook import OrderBook
from executor.transport import ServerClock
from producer_lib import contract as c

E = c.ErrorCode
S = c.OutcomeState


class Commands:
    def __init__(self, settings: ExecutorSettings, clock: ServerClock, link: BrokerLink, book: OrderBook,
                 publisher: EventPublisher, stats: Stats, *, executor_id: str, version: str) -> None:
        self.settings = settings
        self.clock = clock
        self.link = link
        self.book = book
        self.publisher = publisher
        self.stats = stats
        self.executor_id = executor_id
        self.version = version
        self._firsts: Fifo = Fifo(10_000)  # (reply stream, command id, type, body digest) -> first copy (once)

    def once(self, job: Job) -> Awaitable[Outcome]:
        """Repeats: a non-order command runs once per (reply stream, command id, content). A copy of it (the
        client's own re-send after a connection cut, or a signed entry added again: executor/safety/auth.py lets
        both through) waits for the first copy and is answered with its outcome: a cancel is not sent to the broker
        a second time, a query is not run again. Orders need no such memory: their client order id is the key
        (executor/admission.py). Per process and bounded, like the signature replay memory; a cancel's answer is
        kept after it ran (a copy may come seconds later), a query's only while it runs."""
        env = job.env
        assert env is not None
        digest = hashlib.blake2b(c.body_bytes(job.entry.fields), digest_size=16)
        key = (env.reply_to, env.command_id, env.type, digest.digest())
        first = self._firsts.get(key)
        if first is None:
            first = asyncio.ensure_future(self._execute(job))
            self._firsts.put(key, first)
            if not isinstance(job.cmd, c.CancelOrder):
                def forget(done: asyncio.Future) -> None:
                    if self._firsts.get(key) is done:  # a query's answer may be large; a later copy runs again
                        del self._firsts[key]

                first.add_done_callback(forget)
            return first
        return self._repeat_of(first)

    @staticmethod
    async def _repeat_of(first: asyncio.Future) -> Outcome:
        out: Outcome = await asyncio.shield(first)
        return Outcome(result=out.result, error=out.error)  # the answer only: recorded once, dead-lettered once

    async def _execute(self, job: Job) -> Outcome:
        """One non-order command -> its Outcome."""
        cmd = job.cmd
        if isinstance(cmd, c.Ping):
            return Outcome(result=self.ping_result())
        if isinstance(cmd, c.QueryOutcome):
            return await self._query_outcome(cmd, job.entry.owner)
        if isinstance(cmd, c.CancelOrder):
            return await self._cancel(cmd, job.entry.owner)  # Choice: cancels run even past their deadline
        # Broker queries. Choice: past its deadline a broker query is not run (its caller has given up, and a
        # backlog of stale queries would hold up the broker thread); ping and query_outcome are always answered.
        if self.clock.now_ms() > job.deadline_ms:
            return error(E.EXPIRED, "deadline passed before the executor reached the query; it was not run")
        if not self.link.up:
            return error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected")
        try:
            return Outcome(result=await self.link.call(self._query(cmd, job.entry.owner)))
        except (BrokerError, asyncio.TimeoutError) as exc:
            return error(E.BROKER_UNAVAILABLE, f"the broker did not answer the query ({exc!r})")

    async def _query(self, cmd: c.Command | None, requester: str = "") -> BaseModel:
        b = self.link.broker
        if isinstance(cmd, c.QueryAsset):
            return await b.query_asset()
        if isinstance(cmd, c.QueryPositions):
            positions = await b.query_positions()
            if cmd.code is not None:
                positions = [p for p in positions if p.code == cmd.code]
            return c.PositionsResult(positions=positions)
        if isinstance(cmd, c.QueryOrders):
            if cmd.order_id is not None and not cmd.cancelable_only and cmd.client_order_id is None:
                one = await b.query_order(cmd.order_id)
                orders = [one] if one is not None else []
            else:
                orders = await b.query_orders(cmd.cancelable_only)
                if cmd.order_id is not None:
                    orders = [o for o in orders if o.order_id == cmd.order_id]
                if cmd.client_order_id is not None:
                    orders = [o for o in orders if o.client_order_id == cmd.client_order_id]
            if cmd.order_id is not None or cmd.client_order_id is not None:
                # A look-up of one order answers with the strategy's own only; the unfiltered list is the
                # account's books (docs/security.md, threat model).
                book = self.book
                orders = [o for o in orders if book.may_act(requester, book.owner(o.client_order_id, o))]
            return c.OrdersResult(orders=orders)
        if isinstance(cmd, c.QueryTrades):
            return c.TradesResult(trades=await b.query_trades())
        if isinstance(cmd, c.QueryAccountStatus):
            return await b.query_account_status()
        if type(cmd) in c.CREDIT_QUERY_TYPES:
            return await b.query_credit(cmd)
        raise TypeError(f"no handler for {type(cmd).__name__}")

    async def _cancel(self, cmd: c.CancelOrder, requester: str = "") -> Outcome:
        """``requester``: the command stream's owner. A strategy cancels its own orders only; another's (or one
        whose owner is unknown) is answered exactly as an order that does not exist (OrderBook.may_act)."""
        book, link = self.book, self.link
        if not link.up:
            return error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected; nothing was cancelled")
        coid = cmd.client_order_id
        order_id = cmd.order_id
        known = False  # the order is known to exist (journal / events / broker list)
        if cmd.sysid is None:
            if order_id is None:
                assert coid is not None
                try:
                    order_id = await self._order_id_for(coid, requester)
                except BrokerUnavailableError as exc:
                    return error(E.BROKER_UNAVAILABLE, f"cannot resolve the order to cancel ({exc})")
                if order_id is None:
                    return error(E.NOT_FOUND, f"no order with client order id {coid!r}")
                known = True
            else:
                coid = book.coid_by_order_id.get(order_id)
                known = coid is not None
                if requester:
                    try:
                        mine = book.may_act(requester, await book.owner_of_order_id(order_id))
                    except (BrokerError, asyncio.TimeoutError) as exc:
                        return error(E.BROKER_UNAVAILABLE, f"cannot resolve the order to cancel ({exc!r}); nothing "
                                                           "was cancelled")
                    if not mine:
                        return error(E.NOT_FOUND, f"no order {order_id} at the broker")
        elif requester:
            orders = await link.orders()
            if orders is None:
                return error(E.BROKER_UNAVAILABLE, "cannot resolve the order to cancel (the broker's order list "
                                                   "cannot be obtained); nothing was cancelled")
            market = cmd.market.value if cmd.market is not None else ""
            if not any(o.order_sysid == cmd.sysid and o.code.endswith(f".{market}")
                       and book.may_act(requester, book.owner(o.client_order_id, o)) for o in orders):
                return error(E.NOT_FOUND, f"no order with sysid {cmd.sysid!r} on {market}")
        try:
            resp: c.CancelResponded = await link.call(link.broker.cancel_order(
                order_id=order_id if cmd.sysid is None else None, sysid=cmd.sysid, market=cmd.market,
                timeout_s=self.settings.broker_timeout_ms / 1000.0))
            result, message = resp.cancel_result, resp.error_msg
        except BrokerRefusedError as exc:
            result, message = -1, exc.message
        except BrokerUnavailableError as exc:
            return error(E.BROKER_UNAVAILABLE, f"the broker is not connected; nothing was cancelled ({exc})")
        except (BrokerTimeoutError, asyncio.TimeoutError) as exc:
            return error(E.OUTCOME_UNKNOWN, f"the broker did not answer the cancel in time ({exc!r}); watch the "
                                            "order's events or query it", order_id=order_id)
        if result == 0:
            return Outcome(result=c.CancelAck(order_id=order_id, client_order_id=coid, sysid=cmd.sysid))
        if cmd.sysid is None and not known and order_id is not None:
            with contextlib.suppress(Exception):
                if await link.call(link.broker.query_order(order_id)) is None:
                    return error(E.NOT_FOUND, f"no order {order_id} at the broker", broker_message=message)
        return error(E.BROKER_REJECTED, "the broker refused the cancel", broker_message=message, order_id=order_id)

    async def _order_id_for(self, coid: str, requester: str = "") -> int | None:
        """The order id of ``requester``'s order ``coid``; None if there is none (another's is none)."""
        book = self.book
        live = book.placements.get(coid)
        if live is not None and book.may_act(requester, live.record.owner):
            first: Outcome = await asyncio.shield(live.future)
            oid = getattr(first.result, "order_id", None) or (first.error.order_id if first.error else None)
            if oid:
                return oid
        rec = book.journal.get(coid)
        if rec is not None and rec.order_id and book.may_act(requester, book.owner(coid)):
            return rec.order_id
        found = await book.orders_by_coid()
        if found is None:
            raise BrokerUnavailableError("the broker's order list cannot be obtained")
        report = found.get(coid)
        return report.order_id if report and book.may_act(requester, book.owner(coid, report)) else None

    async def _query_outcome(self, cmd: c.QueryOutcome, requester: str = "") -> Outcome:
        """``requester``: the command stream's owner. Another strategy's id (or one whose owner is unknown) takes
        the path of an id this executor never saw, and so gets the same answer (not_found, or unknown while the
        broker's list cannot be read)."""
        book = self.book
        coid = cmd.client_order_id
        mine = book.may_act(requester, book.owner(coid))
        if coid in book.placements and mine:
            return Outcome(result=c.OutcomeResult(client_order_id=coid, state=S.PENDING,
                                                  message="being placed now"))
        rec = book.journal.get(coid) if mine else None
        if rec is None:
            # Not in this executor's journal: a predecessor with another state dir may have placed it, so the
            # broker's own books decide (known from pushes, else its order list right now).
            at_broker = book.at_broker.get(coid)
            if at_broker is None or not book.may_act(requester, book.owner(coid, at_broker)):
                found = await book.orders_by_coid()  # another's takes the path of an unknown id
                if found is None:
                    return Outcome(result=c.OutcomeResult(
                        client_order_id=coid, state=S.UNKNOWN,
                        message="not in this executor's journal, and the broker's order list cannot be read now"))
                at_broker = found.get(coid)
            if at_broker is not None and not book.may_act(requester, book.owner(coid, at_broker)):
                at_broker = None
            if at_broker is None:
                return Outcome(result=c.OutcomeResult(client_order_id=coid, state=S.NOT_FOUND,
                                                      message="neither this executor nor the broker has this id"))
            state = S.REJECTED if at_broker.status is c.OrderStatus.JUNK else S.PLACED
            return Outcome(result=c.OutcomeResult(client_order_id=coid, state=state, order_id=at_broker.order_id,
                                                  message="found in the broker's orders", order=at_broker))
        order: c.OrderReport | None = None
        if not rec.final:
            found = await book.orders_by_coid()
            if found is not None and coid in found:
                order = found[coid]
                rec = book.outcome_from_report(rec, order, duplicate=False).record  # type: ignore[assignment]
                assert rec is not None
                book.journal.save([rec], c.now_ms())
        elif rec.order_id and self.link.up:
            with contextlib.suppress(Exception):  # best effort: the current state of the order
                order = await self.link.call(self.link.broker.query_order(rec.order_id))
        message = ""
        if rec.reply is not None and not rec.reply.ok:
            message = str(rec.reply.body.get("message", ""))
        elif rec.state is S.UNKNOWN:
            message = "sent to the broker without a known answer; not in its order list (yet)"
        return Outcome(result=c.OutcomeResult(client_order_id=coid, state=rec.state, order_id=rec.order_id,
                                              message=message, order=order, xt_remark=rec.xt_remark,
                                              xt_strategy_name=rec.xt_strategy_name))

    def ping_result(self) -> c.PingResult:
        return c.PingResult(executor_id=self.executor_id, version=self.version, broker=self.link.broker.name,
                            broker_connected=self.link.up, redis_ok=self.publisher.redis_ok,
                            uptime_s=round(time.monotonic() - self.stats.started_mono, 3),
                            last_event_seq=self.publisher.last_seq, commands_done=self.stats.commands_done,
                            account_type=self.settings.account_type)

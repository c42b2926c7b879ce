"""The far side of the remote stand-in binary: one xtqueue ``Client`` per connected ``XtQuantTrader``.

Every call the wheel makes on its binary client (``orderStockWithSeq``, ``queryStockOrdersWithSeq``, ...) becomes a
command to the account's executor; every answer and every broker push comes back as the binding call the real
binary makes (``bindOnOrderStockRespCallback(seq, resp)``, ``bindOnStockOrderCallback(order)``, ...). All of that
happens on this session's own thread (an asyncio loop), in arrival order, as the binary calls bindings from its own
thread: the wheel then runs the program's callbacks on its single push thread.

Where answers come from, in the order MiniQMT gives them:

* pushes (``on_stock_order``, ``on_stock_trade``, ``on_stock_position``, ``on_stock_asset``,
  ``on_account_status``, ``on_order_error``) are the account's event stream, which the executor fills from
  MiniQMT's callbacks in MiniQMT's order; they are delivered after ``subscribe`` (as MiniQMT pushes a subscribed
  account's changes), from the stream position taken at ``connect``;
* an order's response (``on_order_stock_async_response``) is the executor's ``order_responded`` event for that
  order (MiniQMT's own response, at its place among the pushes), or the command's reply when that comes first or
  when xtqueue refused the order before the broker (expired, risk, halted, not connected): once per order;
* ``on_order_error`` of this session's order is fired once, from whichever of the broker's push and the reply
  arrives first (the wheel itself holds it back until the response, xtquant/xttrader.py);
* ``on_disconnected``: the executor publishes ``broker_disconnected`` (MiniQMT gone) or ``executor_stopped``, or two
  checks in a row (``ping``, every ``ping_interval_s``) go unanswered or find MiniQMT disconnected. Like the
  binary's link it is one-shot: later calls are refused as on a dead link; build a new XtQuantTrader to reconnect.

The client order id: every order gets a fresh one (``contract.new_client_order_id``); it is what the broker holds
as ``order_remark`` and how the executor finds the order there (de-duplication, recovery). The program's own
``order_remark`` (cut to MiniQMT's 24 bytes) and ``strategy_name`` travel beside it (``PlaceOrder.xt_remark`` /
``xt_strategy_name``), are journaled by the executor with the intent, and replace the broker's values in every
object this session hands the program: from its own map for orders it placed, from ``query_outcome`` (the
executor's journal) for an order of this strategy it does not know (placed before a restart, or by another process
of the strategy). An order placed outside a remote trader shows the broker's values (remark = its client order id).

A lost answer: the client re-sends the same entry (same client order id, ttl reduced) when a send fails on the
connection, and the executor de-duplicates by client order id. When no answer comes (CommandTimeout after the
deadline + 3 s, or OutcomeUnknown), the session asks ``query_outcome`` until the executor knows (placed, refused,
expired, or not found once the deadline has passed): an order is never answered -1 while it may be at the broker,
and never sent again under a new id.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producer_lib import (BrokerRejected, Client, ClientClosed, Gap, OutcomeUnknown, Rejected, XtqueueError,
                          contract as c)

from . import credit as cr
from . import translate as tr
from .settings import RemoteSettings

log = logging.getLogger("xtqueue.compat.remote")

Fire = Callable[[str, tuple], None]
_LOOKUP_CACHE = 100_000  # client order id -> Texts, for orders this session did not place
# This session's own orders and cancels, kept for their later answers and events: the oldest go beyond these (a
# trading day's orders fit many times over; a program that runs for weeks does not grow without end).
_OWN_MAX = 200_000
_CANCELS_MAX = 100_000


@dataclass(slots=True)
class _Own:
    """An order this session placed: the seq the wheel waits on and the program's own texts."""

    seq: int
    texts: tr.Texts
    responded: bool = False
    errored: bool = False


class RemoteSession:
    """One connected trader's link to the executor. ``connect()`` (from the program's thread) returns 0 or -1;
    ``call(entry, seq, fields)`` queues one binary entry point; ``close()`` ends it."""

    def __init__(self, settings: RemoteSettings, fire: Fire) -> None:
        self.settings = settings
        self._fire = fire
        self.account = settings.account
        self.account_type: str | None = None  # what the executor trades, from its ping (None: it does not say)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="xtpythonclient-xtqueue", daemon=True)
        self._client: Client | None = None
        self._tasks: set[asyncio.Task] = set()
        self._own: dict[str, _Own] = {}
        self._texts: dict[str, tr.Texts] = {}
        self._cancels: dict[Any, str] = {}  # order id or ("sysid", sysid) -> sent | ok | err_fired | event_fired
        self._subscribed = False
        self._dead = False
        self._closed = False

    # --- lifecycle (program thread) -------------------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def connect(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        try:
            ok = future.result(self.settings.connect_timeout_s + 5)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the executor is "connect failed"
            future.cancel()
            log.warning("xtqueue remote: cannot reach the executor of %s at %s: %s %s", self.account,
                        self.settings.safe_url, type(exc).__name__, exc)
            ok = False
        if not ok:
            self.close()
        return 0 if ok else -1

    async def _connect(self) -> bool:
        self._client = Client(self.settings.redis_url, self.account, **self.settings.client_kwargs())
        mark = await asyncio.wait_for(self._client.last_event_id(), self.settings.connect_timeout_s)
        pong = await asyncio.wait_for(self._client.ping(), self.settings.connect_timeout_s)
        if not pong.broker_connected:
            log.warning("xtqueue remote: the executor of %s runs but is not connected to MiniQMT", self.account)
            return False
        self.account_type = pong.account_type
        self._spawn(self._pump(mark))
        self._spawn(self._watch())
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._dead = True
        if not self._thread.is_alive():
            self._loop.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(10)
        except Exception:  # noqa: BLE001 - closing must not raise into the program's stop()
            log.debug("xtqueue remote: close did not finish cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def alive(self) -> bool:
        return not self._dead

    def call(self, entry: str, seq: int, fields: dict) -> bool:
        """Queue one entry point on the session's thread; False when the link is dead (the caller refuses it)."""
        if self._dead or self._closed:
            return False
        try:
            self._loop.call_soon_threadsafe(self._dispatch, entry, seq, fields)
        except RuntimeError:  # the loop is closed
            return False
        return True

    # --- the link's end -------------------------------------------------------------------------------------
    def _down(self, reason: str) -> None:
        """One-shot, as the binary's link: on_disconnected once; the session refuses every later call."""
        if self._dead:
            return
        self._dead = True
        log.warning("xtqueue remote: link to MiniQMT of %s lost (%s): on_disconnected", self.account, reason)
        self._fire("bindOnDisconnectedCallback", ())

    async def _watch(self) -> None:
        failures = 0
        while not self._dead:
            await asyncio.sleep(self.settings.ping_interval_s)
            try:
                pong = await asyncio.wait_for(self._client.ping(), self.settings.ping_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - no answer, Redis down, executor gone: all "unanswered"
                failures += 1
                log.info("xtqueue remote: check %d of the executor of %s failed: %r", failures, self.account, exc)
                if failures >= 2:
                    self._down(f"the executor did not answer twice in a row ({type(exc).__name__})")
                continue
            failures = 0
            if not pong.broker_connected:
                self._down("the executor reports MiniQMT disconnected")

    # --- pushes: the account's event stream ----------------------------------------------------------------
    async def _pump(self, mark: str) -> None:
        assert self._client is not None
        async for message in self._client.events(from_id=mark):
            if self._dead:
                return
            if isinstance(message, Gap):
                log.warning("xtqueue remote: events of %s were lost (%s): query orders and trades to re-sync",
                            self.account, message)
                continue
            try:
                await self._on_event(message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not end the pushes
                log.exception("xtqueue remote: event %s (%s) could not be delivered", message.stream_id,
                              message.type)

    async def _on_event(self, m: c.EventMessage) -> None:
        ev = m.data
        if isinstance(ev, c.BrokerDisconnected):
            self._down(f"the executor lost MiniQMT: {ev.reason}")
        elif isinstance(ev, c.ExecutorStopped):
            self._down(f"the executor stopped: {ev.reason}")
        elif isinstance(ev, c.OrderResponded):
            if ev.client_order_id in self._own:
                self._respond(ev.client_order_id, ev.order_id, ev.error_msg)
        elif isinstance(ev, c.OrderRejected):
            own = self._own.get(ev.client_order_id)
            if own is not None:
                self._order_error(ev.client_order_id, ev.order_id, ev.error_id, ev.error_msg)
            elif self._subscribed:
                texts = await self._texts_of(ev.client_order_id, ev.strategy)
                self._fire("bindOnOrderErrorCallback",
                           (tr.order_error(self.account, ev.order_id, ev.error_id, ev.error_msg, texts, 0),))
        elif isinstance(ev, c.CancelRejected):
            self._cancel_rejected(ev)
        elif not self._subscribed:
            return
        elif isinstance(ev, c.OrderUpdated):
            texts = await self._texts_of(ev.order.client_order_id, ev.order.strategy)
            self._fire("bindOnStockOrderCallback", (tr.order(self.account, ev.order, texts),))
        elif isinstance(ev, c.OrderFilled):
            texts = await self._texts_of(ev.trade.client_order_id, ev.trade.strategy)
            self._fire("bindOnStockTradeCallback", (tr.trade(self.account, ev.trade, texts),))
        elif isinstance(ev, c.PositionUpdated):
            self._fire("bindOnStockPositionCallback", (tr.position(self.account, ev.position),))
        elif isinstance(ev, c.AssetUpdated):
            self._fire("bindOnStockAssetCallback", (tr.asset(ev.asset),))
        elif isinstance(ev, c.AccountStatusChanged):
            self._fire("bindOnUpdateAccountStatusCallback",
                       (tr.CppStruct(m_strAccountID=self.account, m_nAccountType=self._xt_type,
                                     m_nStatus=ev.status),))

    async def _texts_of(self, coid: str, strategy: str) -> tr.Texts:
        """The program's remark and strategy name for an order the broker knows by ``coid``."""
        own = self._own.get(coid)
        if own is not None:
            return own.texts
        if not coid:
            return tr.broker_texts(coid, strategy)
        known = self._texts.get(coid)
        if known is not None:
            return known
        # Only this strategy's orders can carry this strategy's programs' texts (the broker's strategy_name is the
        # xtqueue strategy the executor placed it with; empty on brokers that do not return it).
        if strategy not in ("", self.settings.strategy):
            return tr.broker_texts(coid, strategy)
        try:
            c.validate_client_order_id(coid)
        except ValueError:  # a remark typed by hand in the client, not a client order id
            return tr.broker_texts(coid, strategy)
        try:
            out = await asyncio.wait_for(self._client.query_outcome(coid), self.settings.ping_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - shown as the broker has it; asked again next time
            log.info("xtqueue remote: texts of order %s unknown for now: %r", coid, exc)
            return tr.broker_texts(coid, strategy)
        texts = tr.Texts(coid if out.xt_remark is None else out.xt_remark,
                         strategy if out.xt_strategy_name is None else out.xt_strategy_name)
        if len(self._texts) >= _LOOKUP_CACHE:
            self._texts.pop(next(iter(self._texts)))
        self._texts[coid] = texts
        return texts

    # --- entry points (session thread) ----------------------------------------------------------------------
    def _dispatch(self, entry: str, seq: int, f: dict) -> None:
        from executor.sim.qmt.wire import refusal

        if not self._dead:
            try:
                if entry in cr.QUERIES:
                    self._credit_query(entry, seq, f)
                else:
                    getattr(self, "_" + entry)(seq, f)
                return
            except Exception:  # noqa: BLE001 - a bug here must not leave a sync call waiting forever
                log.exception("xtqueue remote: %s failed before anything was sent; answered as refused", entry)
        for binding, args in refusal(entry, seq, f):  # the answers of a call on a dead link
            self._fire(binding, args)

    @property
    def _xt_type(self) -> int:
        return cr.XT_ACCOUNT_TYPES[self.account_type or "STOCK"]

    def _refusal(self, f: dict) -> str | None:
        """Why the request's account is not the executor's (another id, or another type: credit.py); None if it is.
        A wrong type is a program set up for another account: said in the log as well as in the answer."""
        why = cr.account_refusal(f, self.account, self.account_type)
        if why is not None and f.get("m_strAccountID") == self.account:
            log.warning("xtqueue remote: refused: %s", why)
        return why

    def _served(self, f: dict) -> bool:
        return self._refusal(f) is None

    def _subscribeWithSeq(self, seq: int, f: dict) -> None:
        ok = self._served(f)
        self._subscribed = self._subscribed or ok
        self._fire("bindOnSubscribeRespCallback", (seq, 0 if ok else -1))

    def _unsubscribeWithSeq(self, seq: int, f: dict) -> None:
        ok = self._served(f)
        if ok:
            self._subscribed = False
        self._fire("bindOnUnsubscribeRespCallback", (seq, 0 if ok else -1))

    # orders
    def _orderStockWithSeq(self, seq: int, f: dict) -> None:
        texts = tr.Texts(tr.cut_remark(f.get("m_strOrderRemark", "")),
                         f.get("m_strStrategyName", "")[:c.XT_TEXT_MAX_CHARS])
        order_type = f.get("m_nOrderType")
        side = cr.side_of(order_type)
        why = self._refusal(f)
        if why is None and side is None:
            why = (f"order type {order_type} is not served by xtqueue (stock buy 23 and sell 24; on a CREDIT "
                   "account also 27-32 and 40-45)")
        if why is None:
            why = cr.credit_side_refusal(side, order_type, self.account_type)
        price_type = c.PriceType.LIMIT if side is not None and side.is_direct else \
            tr.PRICE_TYPES.get(f.get("m_nPriceType"))
        if why is None and price_type is None:
            why = f"price type {f.get('m_nPriceType')} is not served by xtqueue"
        if why is not None:
            return self._refuse_order(seq, texts, c.ErrorCode.INVALID_REQUEST, why + "; nothing was placed")
        coid = c.new_client_order_id()
        _bounded_put(self._own, coid, _Own(seq, texts), _OWN_MAX)
        price = f.get("m_dPrice") if price_type is c.PriceType.LIMIT and not side.is_direct else None
        # a direct cash repayment: the amount in yuan is the float the wheel put beside int(volume)
        amount = f.get("m_dOrderAmount") if side.is_cash_repay else None
        self._spawn(self._place(coid, f.get("m_strStockCode", ""), side, f.get("m_nOrderVolume", 0), price,
                                price_type, amount))

    async def _place(self, coid: str, code: str, side: c.Side, volume: int, price: float | None,
                     price_type: c.PriceType, amount: float | None = None) -> None:
        own = self._own[coid]
        sent = time.monotonic()
        ttl_s = self.settings.order_ttl_ms / 1000
        kw = dict(client_order_id=coid, deadline=ttl_s, xt_remark=own.texts.remark,
                  xt_strategy_name=own.texts.strategy_name)
        try:
            if side.is_cash_repay:
                ack = await self._client.repay_cash(code, amount, special=side is c.Side.DIRECT_CASH_REPAY_SPECIAL,
                                                    **kw)
            else:
                ack = await self._client.place_order(code, side, volume, price, price_type=price_type, **kw)
        except BrokerRejected as e:
            oid = e.order_id or -1
            text = tr.error_text(c.ErrorCode.BROKER_REJECTED, e.message, e.broker_message)
            self._respond(coid, oid, text)
            self._order_error(coid, oid, e.broker_error_id or tr.xtqueue_error_id(c.ErrorCode.BROKER_REJECTED), text)
        except OutcomeUnknown as e:
            log.warning("xtqueue remote: no answer yet for order %s (%s); asking the executor", coid, e.message)
            await self._resolve(coid, sent + ttl_s)
        except ClientClosed:
            return
        except (Rejected, XtqueueError) as e:
            code = e.code or c.ErrorCode.INTERNAL
            self._refused(coid, code, e.message)
        else:
            self._respond(coid, ack.order_id, "")

    async def _resolve(self, coid: str, deadline: float) -> None:
        """Ask until the executor knows what became of ``coid``; answer the program from that."""
        delay = 0.2
        asked_since = time.monotonic()
        while not self._closed:
            try:
                out = await self._client.query_outcome(coid)
            except ClientClosed:
                return
            except XtqueueError as exc:
                out = None
                log.info("xtqueue remote: outcome of %s not known yet: %s", coid, exc)
            if out is not None:
                S = c.OutcomeState
                if out.state is S.PLACED and out.order_id:
                    return self._respond(coid, out.order_id, "")
                if out.state is S.REJECTED:
                    oid = out.order_id or -1
                    text = tr.error_text(c.ErrorCode.BROKER_REJECTED, out.message, out.message or None)
                    self._respond(coid, oid, text)
                    return self._order_error(coid, oid, tr.xtqueue_error_id(c.ErrorCode.BROKER_REJECTED), text)
                if out.state in (S.EXPIRED, S.REFUSED):  # refused before the broker (the reply's code is gone)
                    code = c.ErrorCode.EXPIRED if out.state is S.EXPIRED else None
                    return self._refused(coid, code, out.message or out.state.value)
                if out.state is S.NOT_FOUND and time.monotonic() > deadline + 1:
                    # Past its deadline the executor refuses the entry whenever it reads it: never placed.
                    return self._refused(coid, c.ErrorCode.EXPIRED, "the order never reached the executor before "
                                                                    "its deadline; nothing was placed")
            if time.monotonic() - asked_since > 30:
                asked_since = time.monotonic()
                log.warning("xtqueue remote: the outcome of order %s is still unknown; still asking", coid)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _refused(self, coid: str, code: c.ErrorCode | None, message: str) -> None:
        """Refused by xtqueue before the broker (``code`` None: refused, the reason only in ``message``)."""
        text = tr.error_text(code or "refused", message)
        self._respond(coid, -1, text)
        self._order_error(coid, -1, tr.xtqueue_error_id(code), text)

    def _refuse_order(self, seq: int, texts: tr.Texts, code: c.ErrorCode, message: str) -> None:
        text = tr.error_text(code, message)
        self._fire("bindOnOrderStockRespCallback",
                   (seq, tr.CppStruct(m_strAccountID=self.account, m_nOrderID=-1, m_strStrategyName=texts.strategy_name,
                                      m_strOrderRemark=texts.remark, m_strErrorMsg=text)))
        self._fire("bindOnOrderErrorCallback",
                   (tr.order_error(self.account, -1, tr.xtqueue_error_id(code), text, texts, seq),))

    def _respond(self, coid: str, order_id: int, error_msg: str) -> None:
        own = self._own.get(coid)
        if own is None or own.responded:
            return
        own.responded = True
        self._fire("bindOnOrderStockRespCallback",
                   (own.seq, tr.CppStruct(m_strAccountID=self.account, m_nOrderID=order_id,
                                          m_strStrategyName=own.texts.strategy_name,
                                          m_strOrderRemark=own.texts.remark, m_strErrorMsg=error_msg)))

    def _order_error(self, coid: str, order_id: int, error_id: int, message: str) -> None:
        own = self._own.get(coid)
        if own is None or own.errored:
            return
        own.errored = True
        self._fire("bindOnOrderErrorCallback",
                   (tr.order_error(self.account, order_id, error_id, message, own.texts, own.seq),))

    # cancels
    def _cancelOrderStockWithSeq(self, seq: int, f: dict) -> None:
        sysid = f.get("m_strOrderSysID", "")
        order_id = f.get("m_nOrderID", 0)
        market = tr.MARKETS.get(f.get("m_nMarket")) or (c.Market(f["m_strMarket"])
                                                        if f.get("m_strMarket") in c.Market.__members__ else None)
        key: Any = ("sysid", sysid) if sysid else order_id
        if not self._served(f):
            return self._cancel_answer(seq, key, order_id, sysid, market, c.ErrorCode.INVALID_REQUEST,
                                       f"account {f.get('m_strAccountID')!r} is not served here")
        if sysid and market is None:
            return self._cancel_answer(seq, key, order_id, sysid, market, c.ErrorCode.INVALID_REQUEST,
                                       f"market {f.get('m_nMarket')!r} / {f.get('m_strMarket')!r} is not SH, SZ or BJ")
        _bounded_put(self._cancels, key, "sent", _CANCELS_MAX)
        self._spawn(self._cancel(seq, key, order_id, sysid, market))

    async def _cancel(self, seq: int, key: Any, order_id: int, sysid: str, market: c.Market | None) -> None:
        try:
            if sysid:
                await self._client.cancel_order(sysid=sysid, market=market)
            else:
                await self._client.cancel_order(order_id if order_id > 0 else None)  # 0/-1: refused as invalid
        except ClientClosed:
            return
        except XtqueueError as e:
            self._cancel_answer(seq, key, order_id, sysid, market, e.code or c.ErrorCode.INTERNAL, e.message,
                                e.broker_message, e.broker_error_id)
        else:
            self._fire("bindOnCancelOrderStockRespCallback",
                       (seq, tr.CppStruct(m_strAccountID=self.account, m_nCancelResult=0,
                                          m_nOrderID=order_id if not sysid else -1, m_strOrderSysID=sysid,
                                          m_strErrorMsg="")))
            if self._cancels.get(key) == "sent":
                self._cancels[key] = "ok"

    def _cancel_answer(self, seq: int, key: Any, order_id: int, sysid: str, market: c.Market | None,
                       code: c.ErrorCode, message: str, broker_message: str | None = None,
                       broker_error_id: int | None = None) -> None:
        """A refused cancel: cancel_result -1, then on_cancel_error unless the broker's push already gave it."""
        text = tr.error_text(code, message, broker_message)
        self._fire("bindOnCancelOrderStockRespCallback",
                   (seq, tr.CppStruct(m_strAccountID=self.account, m_nCancelResult=-1,
                                      m_nOrderID=order_id if not sysid else -1, m_strOrderSysID=sysid,
                                      m_strErrorMsg=text)))
        if self._cancels.get(key) == "event_fired":
            self._cancels.pop(key, None)
            return
        self._cancels[key] = "err_fired"
        self._fire("bindOnCancelErrorCallback",
                   (tr.cancel_error(self.account, order_id if not sysid else -1,
                                    tr.MARKET_CODES.get(market, -1), sysid,
                                    broker_error_id or tr.xtqueue_error_id(code, cancel=True), text),))

    def _cancel_rejected(self, ev: c.CancelRejected) -> None:
        """The broker refused a cancel: delivered for this session's own cancels only (the wheel would hold one for
        another's cancel forever, xtquant/xttrader.py on_push_CancelError); once per cancel."""
        key: Any = ev.order_id if ev.order_id in self._cancels else ("sysid", ev.order_sysid)
        state = self._cancels.get(key)
        if state is None:
            return
        if state == "err_fired":
            self._cancels.pop(key, None)
            return
        if state == "event_fired":
            return
        self._cancels[key] = "event_fired"
        self._fire("bindOnCancelErrorCallback",
                   (tr.cancel_error(self.account, ev.order_id, ev.market if ev.market is not None else -1,
                                    ev.order_sysid, ev.error_id, ev.error_msg),))

    # queries: the answer is what the sync call returns (None = failed, as xtquant)
    def _query(self, binding: str, seq: int, f: dict | None, fetch: Callable[[], Any]) -> None:
        if f is not None and not self._served(f):
            self._fire(binding, (seq, None))  # an account this MiniQMT does not serve
            return

        async def run() -> None:
            try:
                value = await fetch()
            except ClientClosed:
                return
            except Exception as exc:  # noqa: BLE001 - any failure of a query is xtquant's None
                log.warning("xtqueue remote: %s failed: %s", binding.removeprefix("bindOn").removesuffix("Callback"),
                            exc)
                value = None
            self._fire(binding, (seq, value))

        self._spawn(run())

    def _queryStockAssetWithSeq(self, seq: int, f: dict) -> None:
        async def fetch() -> list:
            return [tr.asset(await self._client.query_asset())]
        self._query("bindOnQueryStockAssetCallback", seq, f, fetch)

    def _queryStockOrdersWithSeq(self, seq: int, f: dict) -> None:
        order_id = f.get("m_nOrderID", 0)

        async def fetch() -> list | None:
            if order_id:
                if order_id < 0:
                    return None
                reports = await self._client.query_orders(order_id=order_id)
            else:
                reports = await self._client.query_orders(cancelable_only=bool(f.get("m_bCanCancel")))
            texts = await asyncio.gather(*(self._texts_of(r.client_order_id, r.strategy) for r in reports))
            out = [tr.order(self.account, r, t) for r, t in zip(reports, texts)]
            return (out or None) if order_id else out
        self._query("bindOnQueryStockOrdersCallback", seq, f, fetch)

    def _queryStockTradesWithSeq(self, seq: int, f: dict) -> None:
        async def fetch() -> list:
            reports = await self._client.query_trades()
            texts = await asyncio.gather(*(self._texts_of(r.client_order_id, r.strategy) for r in reports))
            return [tr.trade(self.account, r, t) for r, t in zip(reports, texts)]
        self._query("bindOnQueryStockTradesCallback", seq, f, fetch)

    def _queryStockPositionsWithSeq(self, seq: int, f: dict) -> None:
        code = f.get("m_strStockCode", "")

        async def fetch() -> list | None:
            if code and not c.CODE_RE.fullmatch(code):
                return None
            reports = await self._client.query_positions(code or None)
            out = [tr.position(self.account, r) for r in reports]
            return (out or None) if code else out
        self._query("bindOnQueryStockPositionsCallback", seq, f, fetch)

    def _queryAccountInfosWithSeq(self, seq: int, f: dict) -> None:
        async def fetch() -> list:
            status = await self._client.query_account_status()
            return [tr.account_info(self.account, status.status, self._xt_type)]
        self._query("bindOnQueryAccountInfosCallback", seq, None, fetch)

    def _queryAccountStatusWithSeq(self, seq: int, f: dict) -> None:
        async def fetch() -> list:
            status = await self._client.query_account_status()
            return [tr.account_status(self.account, status.status, self._xt_type)]
        self._query("bindOnQueryAccountStatusCallback", seq, None, fetch)

    def _credit_query(self, entry: str, seq: int, f: dict) -> None:
        """One of the five credit queries (credit.QUERIES): the executor's list as the manual's objects."""
        binding, method, build = cr.QUERIES[entry]

        async def fetch() -> list:
            return [build(self.account, r) for r in await getattr(self._client, method)()]
        self._query(binding, seq, f, fetch)


def _bounded_put(d: dict, key: Any, value: Any, limit: int) -> None:
    """``d[key] = value``, dropping the oldest keys beyond ``limit`` (dicts keep insertion order)."""
    d[key] = value
    while len(d) > limit:
        del d[next(iter(d))]

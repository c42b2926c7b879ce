"""A scripted in-memory Broker for engine tests: emits events through the sink the way xtquant does (answers arrive
later, on the loop, possibly pushes before the response), and records every call so tests can assert what reached
the broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from executor.broker.base import Broker, BrokerTimeoutError, BrokerUnavailableError, EventSink, RequestKey
from producer_lib import contract as c

# Behaviours a test can script per client order id (FakeBroker.script[coid] = "...").
NORMAL = "normal"  # response(order_id) -> OrderUpdated(reported)
PUSH_FIRST = "push_first"  # OrderUpdated(reported) before the response
REJECT = "reject"  # response(order_id -1, error_msg)
JUNK = "junk"  # response(order_id) -> OrderUpdated(junk 57) + OrderRejected
SILENT = "silent"  # response(order_id) and no status at all
NO_RESPONSE = "no_response"  # nothing at all
UNAVAILABLE = "unavailable"  # place_order raises BrokerUnavailableError
# The answer arrives before place_order has returned its seq (the simulator and MiniQMT both allow this: the push
# thread can beat the broker thread's return): response and status are delivered synchronously inside the call.
JUNK_BEFORE_RETURN = "junk_before_return"
REPORTED_BEFORE_RETURN = "reported_before_return"


@dataclass
class FakeBroker(Broker):
    name: str = "fake"
    script: dict[str, str] = field(default_factory=dict)
    placed: list[c.PlaceOrder] = field(default_factory=list)  # every place_order call, in order
    cancels: list[dict] = field(default_factory=list)
    orders: dict[int, c.OrderReport] = field(default_factory=dict)  # the broker's order book
    trades: list[c.TradeReport] = field(default_factory=list)
    connect_failures: int = 0  # connect() fails this many times first
    query_orders_error: type[Exception] | None = None
    probe_ok: bool = True
    next_order_id: int = 1000
    session: int = 100

    def __post_init__(self) -> None:
        self._sink: EventSink | None = None
        self._connected = False
        self._seq = 0
        self.connects = 0
        self.closed = False

    # --- lifecycle ---
    @property
    def connected(self) -> bool:
        return self._connected

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        await asyncio.sleep(0)
        if self.connect_failures > 0:
            self.connect_failures -= 1
            raise BrokerUnavailableError("MiniQMT not running")
        self.connects += 1
        self._connected = True
        self._seq = 0  # a new trader instance: request seqs restart

    async def close(self) -> None:
        self._connected = False
        self.closed = True

    def drop(self, reason: str = "MiniQMT exited") -> None:
        """Simulate on_disconnected."""
        self._connected = False
        self.emit(c.BrokerDisconnected(executor_id="", reason=reason))

    # --- emitting like xtquant: later, on the loop, in order ---
    def emit(self, event: c.Event) -> None:
        assert self._sink is not None
        asyncio.get_running_loop().call_soon(self.deliver, event)

    def deliver(self, event: c.Event) -> None:
        """As an adapter delivers: through the per-order answers (Broker.observed), then the sink."""
        assert self._sink is not None
        self._sink(self.observed(event))

    def report(self, order_id: int, cmd: c.PlaceOrder, status: c.OrderStatus, code: int, msg: str = "",
               traded: int = 0) -> c.OrderReport:
        rep = c.OrderReport(order_id=order_id, client_order_id=cmd.client_order_id, code=cmd.code, side=cmd.side,
                            order_type=23 if cmd.side is c.Side.BUY else 24, volume=cmd.volume,
                            price=cmd.price or 0.0, price_type=50, status=status, status_code=code, status_msg=msg,
                            traded_volume=traded, strategy=cmd.strategy)  # strategy_name, as the adapter sends it
        self.orders[order_id] = rep
        return rep

    # --- trading ---
    async def place_order(self, cmd: c.PlaceOrder) -> RequestKey:
        self._check()
        behaviour = self.script.get(cmd.client_order_id, NORMAL)
        if behaviour == UNAVAILABLE:
            raise BrokerUnavailableError("not connected")
        self.placed.append(cmd)
        self._seq += 1
        seq = self._seq
        if behaviour == NO_RESPONSE:
            return RequestKey(self.connects, seq)
        if behaviour == REJECT:
            self.emit(c.OrderResponded(trader=self.connects, order_id=-1, seq=seq,
                                       error_msg="[COUNTER][260200] insufficient funds"))
            return RequestKey(self.connects, seq)
        self.next_order_id += 1
        oid = self.next_order_id
        if behaviour in (JUNK_BEFORE_RETURN, REPORTED_BEFORE_RETURN):
            self.deliver(c.OrderResponded(trader=self.connects, order_id=oid, seq=seq,
                                        client_order_id=cmd.client_order_id))
            if behaviour == JUNK_BEFORE_RETURN:
                self.deliver(c.OrderUpdated(order=self.report(oid, cmd, c.OrderStatus.JUNK, 57, "lot size")))
                self.deliver(c.OrderRejected(order_id=oid, error_id=-7, error_msg="lot size"))
            else:
                self.deliver(c.OrderUpdated(order=self.report(oid, cmd, c.OrderStatus.REPORTED, 50)))
        elif behaviour == PUSH_FIRST:
            self.emit(c.OrderUpdated(order=self.report(oid, cmd, c.OrderStatus.REPORTED, 50)))
            self.emit(c.OrderResponded(trader=self.connects, order_id=oid, seq=seq))
        elif behaviour == JUNK:
            self.emit(c.OrderResponded(trader=self.connects, order_id=oid, seq=seq))
            self.emit(c.OrderUpdated(order=self.report(oid, cmd, c.OrderStatus.JUNK, 57, "price out of limits")))
            self.emit(c.OrderRejected(order_id=oid, error_id=-61, error_msg="price out of limits"))
        elif behaviour == SILENT:
            self.report(oid, cmd, c.OrderStatus.UNREPORTED, 48)
            self.emit(c.OrderResponded(trader=self.connects, order_id=oid, seq=seq))
        else:
            self.emit(c.OrderResponded(trader=self.connects, order_id=oid, seq=seq))
            self.emit(c.OrderUpdated(order=self.report(oid, cmd, c.OrderStatus.REPORTED, 50)))
        return RequestKey(self.connects, seq)

    async def cancel_order(self, *, order_id: int | None = None, sysid: str | None = None,
                           market: c.Market | None = None, timeout_s: float = 5.0) -> c.CancelResponded:
        self._check()
        self.cancels.append(dict(order_id=order_id, sysid=sysid, market=market))
        self._seq += 1
        order = self.orders.get(order_id or -1)
        if order is None or order.status.is_final:
            return c.CancelResponded(order_id=order_id or -1, cancel_result=-1, seq=self._seq,
                                     error_msg="order not cancelable")
        resp = c.CancelResponded(order_id=order.order_id, cancel_result=0, seq=self._seq)
        self.emit(resp)
        done = order.model_copy(update={"status": c.OrderStatus.CANCELED, "status_code": 54})
        self.orders[order.order_id] = done
        self.emit(c.OrderUpdated(order=done))
        return resp

    async def query_asset(self) -> c.AssetReport:
        self._check()
        return c.AssetReport(account="X", cash=1.0, frozen_cash=0.0, market_value=0.0, total_asset=1.0)

    async def query_positions(self) -> list[c.PositionReport]:
        self._check()
        return [c.PositionReport(code="600000.SH", volume=100, can_use_volume=100),
                c.PositionReport(code="000001.SZ", volume=200, can_use_volume=0)]

    async def query_orders(self, cancelable_only: bool = False, *, strict: bool = False) -> list[c.OrderReport]:
        self._check()
        if self.query_orders_error is not None:
            raise self.query_orders_error("order list unavailable")
        orders = sorted(self.orders.values(), key=lambda o: o.order_id)
        return [o for o in orders if not (cancelable_only and o.status.is_final)]

    async def query_order(self, order_id: int) -> c.OrderReport | None:
        self._check()
        return self.orders.get(order_id)

    async def query_trades(self) -> list[c.TradeReport]:
        self._check()
        return list(self.trades)

    async def query_account_status(self) -> c.AccountStatusResult:
        self._check()
        return c.AccountStatusResult(account="X", status=0, status_name="ok")

    async def probe(self) -> bool:
        return self._connected and self.probe_ok

    def _check(self) -> None:
        if not self._connected:
            raise BrokerUnavailableError("not connected")


class Client:
    """A minimal producer for tests: XADD commands, read replies (BLOCK, never sleep-and-hope)."""

    def __init__(self, r: aioredis.Redis, account: str, client_id: str | None = None, strategy: str = "") -> None:
        self.r = r
        self.keys = c.Keys(account)
        self.stream = self.keys.command_stream(strategy)  # a strategy's own command stream
        self.reply_to = self.keys.replies(client_id or (f"{strategy}.tc" if strategy else "tc"))
        self._last = "0"

    async def send(self, cmd: c.Command, *, ttl_ms: int = 10_000, command_id: str | None = None,
                   reply_to: str | None = None) -> str:
        cid = command_id or c.new_command_id()
        fields = c.encode_command(cmd, account=self.keys.account, command_id=cid,
                                  reply_to=reply_to or self.reply_to, ttl_ms=ttl_ms)
        await self.r.xadd(self.stream, fields)
        return cid

    async def send_raw(self, fields: dict) -> str:
        return (await self.r.xadd(self.stream, fields)).decode()

    async def replies(self, n: int, timeout_ms: int = 5_000) -> list[c.Reply]:
        """The next ``n`` replies on this client's stream (blocking reads, bounded)."""
        out: list[c.Reply] = []
        while len(out) < n:
            resp = await self.r.xread({self.reply_to: self._last}, count=n - len(out), block=timeout_ms)
            if not resp:
                raise AssertionError(f"expected {n} replies, got {len(out)}: {out}")
            for sid, fields in resp[0][1]:
                self._last = sid.decode()
                out.append(c.decode_reply(sid, fields))
        return out

    async def reply_for(self, command_id: str) -> c.Reply:
        """All replies so far, the one answering ``command_id``."""
        entries = await self.r.xrange(self.reply_to)
        for sid, fields in entries:
            rep = c.decode_reply(sid, fields)
            if rep.command_id == command_id:
                return rep
        raise AssertionError(f"no reply for {command_id}")

    async def events(self) -> list[c.EventMessage]:
        return [c.decode_event(sid, f) for sid, f in await self.r.xrange(self.keys.events)]

    async def dead(self) -> list[dict]:
        return [{k.decode(): v for k, v in f.items()} for _sid, f in await self.r.xrange(self.keys.dead_letter)]



def order(coid: str | None = None, **kw) -> c.PlaceOrder:
    base = dict(client_order_id=coid or c.new_client_order_id(), code="600000.SH", side=c.Side.BUY, volume=100,
                price=10.5)
    base.update(kw)
    return c.PlaceOrder(**base)


async def wait_event(r: aioredis.Redis, account: str, predicate, timeout_ms: int = 5_000) -> c.EventMessage:
    """Block on the event stream until an event matching ``predicate`` is there (bounded; no sleeping)."""
    key = c.Keys(account).events
    last = "0"
    import time as _time
    deadline = _time.monotonic() + timeout_ms / 1000
    while _time.monotonic() < deadline:
        resp = await r.xread({key: last}, block=200)
        for sid, fields in (resp[0][1] if resp else []):
            last = sid.decode()
            msg = c.decode_event(sid, fields)
            if predicate(msg):
                return msg
    raise AssertionError("event not seen")

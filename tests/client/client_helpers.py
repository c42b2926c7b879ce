"""Helpers of the client tests: a fake responder (a test double of the executor's reply behaviour only) and
event-stream helpers (the TCP proxy that cuts a connection after an XADD is tests/support.py's).

The shared ``redis_url``, ``account`` and ``redis_client`` fixtures (tests/conftest.py) give a real Redis, a
fresh account per test and clean-up of its keys.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import redis

from producer_lib import contract
from producer_lib.contract import (
    AccountStatusResult,
    AssetReport,
    CancelAck,
    CancelOrder,
    ErrorInfo,
    OrderAck,
    OrderReport,
    OrdersResult,
    OrderStatus,
    OutcomeResult,
    OutcomeState,
    Ping,
    PingResult,
    PlaceOrder,
    PositionReport,
    PositionsResult,
    QueryAccountStatus,
    QueryAsset,
    QueryOrders,
    QueryOutcome,
    QueryPositions,
    QueryTrades,
    Side,
    TradeReport,
    TradesResult,
)

Handler = Callable[[contract.Envelope, contract.Command], Any]


def canned_result(env: contract.Envelope, cmd: contract.Command, account: str, placed: dict[str, int]) -> Any:
    """A plausible successful result for each command type."""
    if isinstance(cmd, PlaceOrder):
        duplicate = cmd.client_order_id in placed
        order_id = placed.setdefault(cmd.client_order_id, 1000 + len(placed))
        return OrderAck(order_id=order_id, client_order_id=cmd.client_order_id, status=OrderStatus.REPORTED,
                        duplicate=duplicate)
    if isinstance(cmd, CancelOrder):
        return CancelAck(order_id=cmd.order_id, client_order_id=cmd.client_order_id, sysid=cmd.sysid)
    if isinstance(cmd, QueryAsset):
        return AssetReport(account=account, cash=1000.0, frozen_cash=0.0, market_value=500.0, total_asset=1500.0)
    if isinstance(cmd, QueryPositions):
        return PositionsResult(positions=[PositionReport(code=cmd.code or "600000.SH", volume=100,
                                                         can_use_volume=100)])
    if isinstance(cmd, QueryOrders):
        return OrdersResult(orders=[OrderReport(order_id=cmd.order_id or 1001,
                                                client_order_id=cmd.client_order_id or "abc", code="600000.SH",
                                                side=Side.BUY, order_type=23, volume=100, price=10.5, price_type=50,
                                                status=OrderStatus.REPORTED, status_code=50)])
    if isinstance(cmd, QueryTrades):
        return TradesResult(trades=[TradeReport(trade_id="T1", order_id=1001, code="600000.SH", side=Side.BUY,
                                                order_type=23, price=10.5, volume=100, amount=1050.0)])
    if isinstance(cmd, QueryAccountStatus):
        return AccountStatusResult(account=account, status=0, status_name="ok")
    if isinstance(cmd, QueryOutcome):
        return OutcomeResult(client_order_id=cmd.client_order_id, state=OutcomeState.PLACED, order_id=1001)
    if isinstance(cmd, Ping):
        return PingResult(executor_id="fake", version="test", broker="sim", broker_connected=True, uptime_s=1.0,
                          last_event_seq=0, commands_done=0)
    raise AssertionError(f"no canned result for {cmd!r}")


class Responder:
    """Reads the account's command stream with XREADGROUP and answers each entry on its reply_to stream.

    ``handler(env, cmd)`` may return a result model, an ErrorInfo, a list of them (several replies), or None
    (no reply); by default every command gets its canned result.
    """

    def __init__(self, redis_url: str | redis.Redis, account: str, handler: Handler | None = None,
                 strategies: tuple[str, ...] = ("", "s1")) -> None:
        self.account = account
        self.keys = contract.Keys(account)
        # The command streams read: the account's own and these strategies' (contract.Keys.command_stream).
        self.streams = [self.keys.command_stream(s) for s in strategies]
        self.redis = redis.Redis.from_url(redis_url) if isinstance(redis_url, str) else redis_url
        self.handler = handler
        self.placed: dict[str, int] = {}
        self.seen: list[tuple[contract.Envelope, contract.Command]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"responder-{account}")

    def start(self) -> Responder:
        try:
            for stream in self.streams:
                self.redis.xgroup_create(stream, contract.COMMAND_GROUP, id="0", mkstream=True)
        except redis.ResponseError:  # BUSYGROUP
            pass
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.redis.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.redis.xreadgroup(contract.COMMAND_GROUP, "fake", dict.fromkeys(self.streams, ">"),
                                             count=100, block=50)
            for key, entries in response or []:
                for stream_id, fields in entries:
                    self._answer(fields)
                    self.redis.xack(key, contract.COMMAND_GROUP, stream_id)

    def _answer(self, fields: dict) -> None:
        try:
            env, cmd = contract.decode_command(fields)
        except contract.ContractError as exc:
            self._reply(exc.reply_to, exc.command_id, exc.command_type, exc.client_order_id,
                        ErrorInfo(code=exc.code, message=exc.message))
            return
        self.seen.append((env, cmd))
        outcome = self.handler(env, cmd) if self.handler else canned_result(env, cmd, self.account, self.placed)
        for item in outcome if isinstance(outcome, list) else [outcome]:
            if item is not None:
                self._reply(env.reply_to, env.command_id, env.type, env.client_order_id, item)

    def _reply(self, reply_to: str, command_id: str, command_type: str, coid: str, item: Any) -> None:
        if isinstance(item, dict):  # raw fields, for malformed replies
            self.redis.xadd(reply_to, item)
            return
        kwargs = {"error": item} if isinstance(item, ErrorInfo) else {"result": item}
        self.redis.xadd(reply_to, contract.encode_reply(account=self.account, command_id=command_id,
                                                        command_type=command_type, client_order_id=coid, **kwargs))


def add_event(r: redis.Redis, account: str, seq: int, event: contract.Event | None = None, **kw: Any) -> str:
    """XADD one event with the given seq; returns its stream id."""
    event = event or contract.AccountStatusChanged(status=0, status_name=f"status {seq}")
    stream_id = r.xadd(contract.Keys(account).events, contract.encode_event(event, account=account, seq=seq, **kw))
    return stream_id.decode()


def blocked_connections(r: redis.Redis, name: str) -> int:
    """How many connections named ``name`` are blocked in a command (CLIENT LIST flag b)."""
    return sum(1 for c in r.client_list() if c.get("name") == name and "b" in c.get("flags", ""))


def raw_commands(r: redis.Redis, account: str, command_type: str | None = None) -> list[dict[str, Any]]:
    """The account's command streams (its own and every strategy's) as decoded envelopes (plain dicts), oldest
    first."""
    out = []
    keys = contract.Keys(account)
    streams = [keys.commands, *(k.decode() for k in r.scan_iter(match=keys.command_stream_pattern))]
    entries = sorted((e for s in streams for e in r.xrange(s)), key=lambda e: contract.stream_id_ms(e[0]))
    for stream_id, fields in entries:
        env = contract.decode_envelope(fields)
        if command_type is None or env.type == command_type:
            out.append({"stream_id": stream_id.decode(), **env.model_dump()})
    return out

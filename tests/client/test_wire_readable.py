"""Protocol 3 (issue #14): every scalar of a command, reply and event is a plain-text field a person reads with
`redis-cli XRANGE` (names such as 浦发银行 as UTF-8 text, not msgpack); nested values and None are JSON text.
Every model survives the round trip; protocol 2 entries (one msgpack body) are still read."""

from __future__ import annotations

import json

import pytest

from producer_lib import contract as c

ORDER = c.OrderReport(order_id=1001, client_order_id="c1", order_sysid="S1", code="600000.SH", side=c.Side.BUY,
                      order_type=23, volume=200, price=10.01, price_type=50, status=c.OrderStatus.PART_SUCC,
                      status_code=55, traded_volume=100, traded_price=10.0, order_time=1_760_000_000,
                      strategy="alpha", instrument_name="浦发银行", status_msg="部分成交")
TRADE = c.TradeReport(trade_id="T9", order_id=1001, client_order_id="c1", code="600000.SH", side=c.Side.BUY,
                      order_type=23, price=10.0, volume=100, amount=1000.0, traded_time=1_760_000_001,
                      commission=5.0, instrument_name="浦发银行")
POSITION = c.PositionReport(code="600000.SH", volume=100, can_use_volume=0, avg_price=10.0, market_value=1001.0,
                            last_price=10.01, instrument_name="浦发银行")
ASSET = c.AssetReport(account="SIM001", cash=998_995.0, frozen_cash=1001.0, market_value=1001.0,
                      total_asset=1_000_997.0)

EVENTS = [
    c.OrderUpdated(order=ORDER), c.OrderFilled(trade=TRADE),
    c.OrderRejected(order_id=1002, client_order_id="c2", error_id=-61, error_msg="委托数量必须是100的整数倍"),
    c.CancelRejected(order_id=1001, client_order_id="c1", error_msg="already filled"),
    c.OrderResponded(order_id=1003, client_order_id="c3", seq=5), c.CancelResponded(order_id=1001, cancel_result=0,
                                                                                    seq=6),
    c.AssetUpdated(asset=ASSET), c.PositionUpdated(position=POSITION),
    c.AccountStatusChanged(status=0, status_name="ok"), c.BrokerConnected(executor_id="e1", session=101),
    c.BrokerDisconnected(executor_id="e1", reason="probe failed"),
    c.ExecutorStarted(executor_id="e1", broker="sim", version="0.1.0"), c.ExecutorStopped(executor_id="e1"),
    c.AccountHalted(executor_id="e1", reason="风控"), c.AccountResumed(executor_id="e1"),
]
RESULTS = [
    ("place_order", c.OrderAck(order_id=1001, client_order_id="c1", status=c.OrderStatus.REPORTED, duplicate=True)),
    ("cancel_order", c.CancelAck(order_id=1001)),
    ("query_orders", c.OrdersResult(orders=[ORDER])), ("query_trades", c.TradesResult(trades=[TRADE])),
    ("query_positions", c.PositionsResult(positions=[POSITION])), ("query_asset", ASSET),
    ("query_account_status", c.AccountStatusResult(account="SIM001", status=0, status_name="ok")),
    ("query_outcome", c.OutcomeResult(client_order_id="c1", state=c.OutcomeState.PLACED, order_id=1001,
                                      order=ORDER)),
    ("ping", c.PingResult(executor_id="e1", version="0.1.0", broker="sim", broker_connected=True, uptime_s=1.5,
                                   last_event_seq=4, commands_done=2)),
]


def _as_redis(entry: dict) -> dict[bytes, bytes]:
    """What redis-py returns for the entry (every name and value as bytes): what redis-cli shows."""
    return {k.encode(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in entry.items()}


def _no_msgpack(entry: dict[bytes, bytes]) -> None:
    assert b"body" not in entry
    for name, value in entry.items():
        value.decode("utf-8")  # every value is UTF-8 text
        if name.startswith(b"j."):
            json.loads(value)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.TYPE)
def test_every_event_is_plain_text_and_round_trips(event):
    raw = _as_redis(c.encode_event(event, account="SIM001", seq=7, client_order_id="c1", order_id=1001))
    _no_msgpack(raw)
    message = c.decode_event("1-0", raw)
    assert message.data == event and message.seq == 7 and message.order_id == 1001


def test_an_order_event_reads_field_by_field():
    raw = _as_redis(c.encode_event(c.OrderUpdated(order=ORDER), account="SIM001", seq=1))
    assert raw[b"b.order.code"] == b"600000.SH" and raw[b"b.order.side"] == b"buy"
    assert raw[b"b.order.volume"] == b"200" and raw[b"b.order.price"] == b"10.01"
    assert raw[b"b.order.status"] == b"part_succ" and raw[b"b.order.traded_volume"] == b"100"
    assert raw[b"b.order.instrument_name"].decode() == "浦发银行"
    fill = _as_redis(c.encode_event(c.OrderFilled(trade=TRADE), account="SIM001", seq=2))
    assert fill[b"b.trade.volume"] == b"100" and fill[b"b.trade.price"] == b"10.0" and fill[b"b.trade.amount"] \
        == b"1000.0"
    # the body's own seq (xtquant's request seq) never takes the envelope's seq
    resp = _as_redis(c.encode_event(c.OrderResponded(order_id=3, seq=5), account="SIM001", seq=9))
    assert resp[b"seq"] == b"9" and resp[b"b.seq"] == b"5"


@pytest.mark.parametrize("command_type, result", RESULTS, ids=[r[0] for r in RESULTS])
def test_every_reply_is_plain_text_and_round_trips(command_type, result):
    raw = _as_redis(c.encode_reply(account="SIM001", command_id="x", command_type=command_type, result=result))
    _no_msgpack(raw)
    assert c.decode_reply("1-0", raw).result == result


def test_error_reply_reads_field_by_field():
    info = c.ErrorInfo(code=c.ErrorCode.BROKER_REJECTED, message="the broker refused", broker_message="资金不足",
                       broker_error_id=-61, order_id=5, details={"limit": 100, "nested": {"a": [1, 2]}})
    raw = _as_redis(c.encode_reply(account="A", command_id="x", command_type="place_order", error=info))
    _no_msgpack(raw)
    assert raw[b"b.code"] == b"broker_rejected" and raw[b"b.broker_message"].decode() == "资金不足"
    assert json.loads(raw[b"j.details"]) == {"limit": 100, "nested": {"a": [1, 2]}}
    assert c.decode_reply("1-0", raw).error == info


def test_every_command_is_plain_text_and_round_trips():
    commands = [c.PlaceOrder(client_order_id="c1", code="600000.SH", side=c.Side.SELL, volume=100, price=10.5,
                             strategy="alpha"),
                c.PlaceOrder(client_order_id="c2", code="000001.SZ", side=c.Side.BUY, volume=100,
                             price_type=c.PriceType.SZ_FOK),
                c.CancelOrder(order_id=1001), c.CancelOrder(sysid="S1", market=c.Market.SH),
                c.QueryPositions(code="600000.SH"), c.QueryOrders(cancelable_only=True), c.QueryTrades(),
                c.QueryAsset(), c.QueryAccountStatus(), c.QueryOutcome(client_order_id="c1"), c.Ping()]
    for command in commands:
        raw = _as_redis(c.encode_command(command, account="A", command_id="x", reply_to="r", ttl_ms=5_000))
        _no_msgpack(raw)
        assert not any(k.startswith(b"j.") for k in raw)  # a command is flat and None-free
        assert c.decode_command(raw)[1] == command
    raw = _as_redis(c.encode_command(commands[0], account="A", command_id="x", reply_to="r", ttl_ms=5_000))
    assert (raw[b"v"], raw[b"b.code"], raw[b"b.side"], raw[b"b.volume"], raw[b"b.price"]) == (
        b"3", b"600000.SH", b"sell", b"100", b"10.5")


def test_protocol_2_entries_are_still_read():
    event = c.OrderFilled(trade=TRADE)
    old_event = {b"v": b"2", b"type": b"order_filled", b"account": b"A", b"seq": b"3", b"coid": b"c1",
                 b"order_id": b"1001", b"ts_ms": b"1", b"body": c.pack(event.model_dump(mode="json"))}
    assert c.decode_event("1-0", old_event).data == event
    ack = c.OrderAck(order_id=1, client_order_id="c1", status=c.OrderStatus.REPORTED)
    old_reply = {b"v": b"2", b"type": b"reply", b"account": b"A", b"id": b"x", b"cmd": b"place_order", b"ok": b"1",
                 b"error": b"", b"coid": b"c1", b"ts_ms": b"1", b"body": c.pack(ack.model_dump(mode="json"))}
    assert c.decode_reply("1-0", old_reply).result == ack
    reply_v2 = c.encode_reply(account="A", command_id="x", command_type="place_order", result=ack, version="2")
    assert reply_v2["v"] == "2" and c.unpack(reply_v2["body"]) == ack.model_dump(mode="json")


def test_an_undecodable_v3_event_is_still_delivered_untyped():
    from producer_lib._events import decode_event_entry

    raw = {b"v": b"3", b"type": b"order_filled", b"seq": b"4", b"coid": b"c", b"order_id": b"7",
           b"b.trade": b"nonsense"}
    message = decode_event_entry(b"5-0", raw)
    assert message.data is None and message.raw["trade"] == "nonsense" and "_decode_error" in message.raw

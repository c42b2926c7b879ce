"""SyncClient against a real Redis and a fake responder. Mirrors test_client.py."""

from __future__ import annotations

import concurrent.futures
import threading
from datetime import datetime, timedelta, timezone

import pytest
from support import wait_until

from producer_lib import (
    AccountStatusResult,
    AssetReport,
    CancelAck,
    SyncClient,
    ClientClosed,
    CommandTimeout,
    ErrorCode,
    EventMessage,
    Expired,
    Gap,
    InvalidRequest,
    Market,
    OrderAck,
    OrderReport,
    OrderStatus,
    OutcomeResult,
    OutcomeState,
    OutcomeUnknown,
    PingResult,
    PositionReport,
    PriceType,
    Side,
    TradeReport,
    contract,
)
from producer_lib._exceptions import ERROR_CLASSES

from client_helpers import add_event, blocked_connections, raw_commands

WAIT = 10  # generous upper bound for awaiting anything that should happen promptly


@pytest.fixture
def client(redis_url, account, redis_client):
    with SyncClient(redis_url, account, strategy="s1") as c:
        yield c


def reader_tasks(client: SyncClient) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"xtqueue-reply-reader-{client.client_id}"]


POOL = concurrent.futures.ThreadPoolExecutor(max_workers=50, thread_name_prefix="caller")


def gather(*calls):
    """Run the calls concurrently on threads; results in order (the sync twin of asyncio.gather)."""
    futures = [POOL.submit(call) for call in calls]
    return [f.result(WAIT + 30) for f in futures]


# --- results ---------------------------------------------------------------------------------------------------
def test_every_method_returns_its_typed_result(client, responder):
    ack = client.place_order("600000.SH", Side.BUY, 100, 10.5)
    assert isinstance(ack, OrderAck) and ack.status is OrderStatus.REPORTED and not ack.duplicate
    assert isinstance(client.buy("600000.SH", 100, 10.5), OrderAck)
    assert isinstance(client.sell("000001.SZ", 200, price_type=PriceType.LATEST), OrderAck)
    cancel = client.cancel_order(ack.order_id)
    assert isinstance(cancel, CancelAck) and cancel.order_id == ack.order_id
    assert (client.cancel_order(sysid="123", market=Market.SH)).sysid == "123"
    assert isinstance(client.query_asset(), AssetReport)
    positions = client.query_positions("000001.SZ")
    assert [type(p) for p in positions] == [PositionReport] and positions[0].code == "000001.SZ"
    orders = client.query_orders(cancelable_only=True, client_order_id=ack.client_order_id)
    assert [type(o) for o in orders] == [OrderReport] and orders[0].client_order_id == ack.client_order_id
    assert [type(t) for t in client.query_trades()] == [TradeReport]
    assert isinstance(client.query_account_status(), AccountStatusResult)
    outcome = client.query_outcome(ack.client_order_id)
    assert isinstance(outcome, OutcomeResult) and outcome.state is OutcomeState.PLACED
    assert isinstance(client.ping(), PingResult)


def test_order_fields_reach_the_executor(client, responder):
    client.place_order("600000.SH", "sell", 300, 9.87, price_type="limit", strategy="s1",
                             client_order_id="my-order-1")
    client.cancel_order(client_order_id="my-order-1", market="SH")
    (env, order), (cenv, cancel) = responder.seen
    assert (order.code, order.side, order.volume, order.price, order.price_type) == (
        "600000.SH", Side.SELL, 300, 9.87, PriceType.LIMIT)
    assert env.client_order_id == order.client_order_id == "my-order-1"
    assert env.strategy == "s1" and env.reply_to == client.reply_stream and env.account == client.account
    assert cancel.client_order_id == "my-order-1" and cancel.market is Market.SH
    client.buy("600000.SH", 100, 10.0)
    assert responder.seen[-1][0].strategy == "s1"  # the client's default strategy


def test_deadline_sets_ttl(client, redis_client, account, responder):
    client.buy("600000.SH", 100, 10.0)
    client.buy("600000.SH", 100, 10.0, deadline=2.5)
    client.buy("600000.SH", 100, 10.0, deadline=datetime.now(timezone.utc) + timedelta(seconds=60))
    client.ping()
    ttls = [e["ttl_ms"] for e in raw_commands(redis_client, account)]
    assert ttls[0] == contract.DEFAULT_ORDER_TTL_MS and ttls[1] == 2500
    assert 55_000 < ttls[2] <= 60_000 and ttls[3] == contract.DEFAULT_COMMAND_TTL_MS


# --- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", list(ErrorCode))
def test_each_error_code_raises_its_exception_with_fields(client, responder, code):
    responder.handler = lambda env, cmd: contract.ErrorInfo(
        code=code, message="nope", broker_message="资金不足", broker_error_id=-61, order_id=77, details={"k": 1})
    with pytest.raises(ERROR_CLASSES[code]) as info:
        client.place_order("600000.SH", "buy", 100, 10.0, client_order_id="coid-err")
    err = info.value
    assert type(err) is ERROR_CLASSES[code]
    assert (err.code, err.message, err.client_order_id, err.order_id) == (code, "nope", "coid-err", 77)
    assert (err.broker_message, err.broker_error_id, err.details) == ("资金不足", -61, {"k": 1})
    assert err.command_id == responder.seen[0][0].command_id


def test_undecodable_reply_is_outcome_unknown(client, responder):
    def garbage(env, cmd):
        return {contract.F_ID: env.command_id, contract.F_COID: env.client_order_id, contract.F_OK: "1",
                contract.F_CMD: env.type, contract.F_BODY: b"\xc1"}

    responder.handler = garbage
    with pytest.raises(OutcomeUnknown) as info:
        client.buy("600000.SH", 100, 10.0, client_order_id="coid-bad-reply")
    assert info.value.client_order_id == "coid-bad-reply"


def test_duplicate_replies_are_ignored(client, responder):
    responder.handler = lambda env, cmd: [contract.OrderAck(order_id=5, client_order_id=cmd.client_order_id,
                                                            status=OrderStatus.REPORTED)] * 2
    first = client.buy("600000.SH", 100, 10.0)
    responder.handler = None
    assert (client.ping()).executor_id == "fake"
    assert first.order_id == 5


def test_timeout_raises_command_timeout_with_the_client_order_id(client):
    with pytest.raises(CommandTimeout) as info:  # nobody answers
        client.buy("600000.SH", 100, 10.0, client_order_id="coid-timeout", timeout=0.2)
    assert isinstance(info.value, OutcomeUnknown)
    assert info.value.client_order_id == "coid-timeout" and info.value.command_id
    assert "query_outcome" in str(info.value)


# --- local validation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coid", ["x" * 25, "订单", "has space", "", "a\n", 123])
def test_invalid_client_order_id_raises_before_sending(client, redis_client, account, coid):
    with pytest.raises(InvalidRequest) as info:
        client.buy("600000.SH", 100, 10.0, client_order_id=coid)
    assert info.value.code is ErrorCode.INVALID_REQUEST and info.value.command_id is None
    assert redis_client.exists(contract.Keys(account).commands) == 0


@pytest.mark.parametrize("kwargs", [
    dict(code="990000", side="buy", volume=100, price=1.0),  # a bare code of no known exchange
    dict(code="600000.SH", side="hold", volume=100, price=1.0),
    dict(code="600000.SH", side="buy", volume=0, price=1.0),
    dict(code="600000.SH", side="buy", volume=100),  # a limit order needs a price
    dict(code="600000.SH", side="buy", volume=100, price_type="sz_fok"),  # SZSE only
    dict(code="600000.SH", side="buy", volume=100, price=1.0, deadline=None),
    dict(code="600000.SH", side="buy", volume=100, price=1.0, deadline=datetime(2030, 1, 1)),  # naive
    dict(code="600000.SH", side="buy", volume=100, price=1.0, timeout=0),
])
def test_invalid_orders_raise_before_sending(client, redis_client, account, kwargs):
    with pytest.raises(InvalidRequest):
        client.place_order(**kwargs)
    assert redis_client.exists(contract.Keys(account).commands) == 0


def test_past_deadline_raises_expired_before_sending(client, redis_client, account):
    with pytest.raises(Expired) as info:
        client.buy("600000.SH", 100, 10.0, deadline=datetime.now(timezone.utc) - timedelta(seconds=1),
                         client_order_id="late")
    assert info.value.client_order_id == "late"
    assert redis_client.exists(contract.Keys(account).commands) == 0


def test_cancel_needs_exactly_one_selector(client):
    with pytest.raises(InvalidRequest):
        client.cancel_order()
    with pytest.raises(InvalidRequest):
        client.cancel_order(1, client_order_id="abc")
    with pytest.raises(InvalidRequest):
        client.cancel_order(sysid="123")  # needs the market


def test_generated_client_order_ids_are_unique_and_fit(client, responder, redis_client, account):
    acks = gather(*(lambda: client.buy("600000.SH", 100, 10.0) for _ in range(20)))
    coids = [a.client_order_id for a in acks]
    assert len(set(coids)) == 20
    assert all(len(c.encode("ascii")) <= contract.CLIENT_ORDER_ID_MAX_BYTES for c in coids)
    assert sorted(e["client_order_id"] for e in raw_commands(redis_client, account)) == sorted(coids)


# --- one reader, many waiters ----------------------------------------------------------------------------------
def test_fifty_concurrent_awaits_are_served_by_one_reader(client, responder):
    results = gather(*(client.ping for _ in range(25)),
                     *(lambda: client.buy("600000.SH", 100, 10.0) for _ in range(25)))
    assert [type(r) for r in results] == [PingResult] * 25 + [OrderAck] * 25
    assert len(reader_tasks(client)) == 1
    assert not client._pending


# --- lifecycle -------------------------------------------------------------------------------------------------
def test_use_after_close_raises_client_closed(redis_url, account, redis_client):
    client = SyncClient(redis_url, account)
    client.close()
    with pytest.raises(ClientClosed):
        client.ping()
    with pytest.raises(ClientClosed):
        with client:
            pass
    client.close()  # idempotent


def test_close_fails_waiting_commands_and_stops_the_reader(redis_url, account, redis_client):
    client = SyncClient(redis_url, account)
    waiting = POOL.submit(client.buy, "600000.SH", 100, 10.0, client_order_id="coid-closed")
    wait_until(lambda: client._pending, WAIT, "the command to be pending", 0.01)
    wait_until(lambda: redis_client.exists(contract.Keys(account).commands), WAIT, "the command to be sent", 0.01)
    client.close()
    with pytest.raises(ClientClosed) as info:
        waiting.result(WAIT)
    assert info.value.client_order_id == "coid-closed"
    assert reader_tasks(client) == []
    assert redis_client.exists(client.reply_stream) == 0


def test_lazy_reader_and_context_manager(redis_url, account, redis_client, responder):
    with SyncClient(redis_url, account) as client:
        assert reader_tasks(client) == []
        client.ping()
        assert len(reader_tasks(client)) == 1
    assert reader_tasks(client) == []


# --- re-send after a dropped connection ------------------------------------------------------------------------
def test_connection_cut_after_xadd_resends_the_same_command(proxy, account, redis_client, responder):
    with SyncClient(proxy.url, account) as client:
        client.ping()  # connections through the proxy are up, the reader is running
        proxy.armed.set()
        ack = client.buy("600000.SH", 100, 10.0, client_order_id="coid-resend")
    assert proxy.cut.is_set()
    assert ack.client_order_id == "coid-resend"
    sent = raw_commands(redis_client, account, "place_order")
    assert len(sent) == 2
    assert sent[0]["command_id"] == sent[1]["command_id"]
    assert sent[0]["client_order_id"] == sent[1]["client_order_id"] == "coid-resend"
    assert sent[1]["ttl_ms"] <= sent[0]["ttl_ms"]
    assert [cmd.client_order_id for _, cmd in responder.seen if cmd.TYPE == "place_order"] == ["coid-resend"] * 2


def test_a_refusal_of_the_resent_copy_is_not_the_outcome(proxy, account, responder):
    """As the async twin (test_client.py): the re-sent copy's refusal arrives first; the first copy's ack wins."""
    from test_client import refuse_the_resent_copy

    responder.handler = refuse_the_resent_copy(responder)
    with SyncClient(proxy.url, account) as client:
        client.ping()
        proxy.armed.set()
        ack = client.buy("600000.SH", 100, 10.0, client_order_id="coid-held")
    assert proxy.cut.is_set() and ack.order_id == 77


# --- events ----------------------------------------------------------------------------------------------------
def take(it, n: int) -> list:
    return [POOL.submit(next, it).result(WAIT) for _ in range(n)]


def test_events_from_start_and_resume_after_an_id(client, redis_client, account):
    ids = [add_event(redis_client, account, seq, client_order_id=f"c{seq}") for seq in (1, 2, 3)]
    it = client.events("0", block_ms=50)
    got = take(it, 3)
    it.close()
    assert [m.seq for m in got] == [1, 2, 3] and all(isinstance(m, EventMessage) for m in got)
    assert got[0].stream_id == ids[0] and got[0].client_order_id == "c1"
    assert got[0].data == contract.AccountStatusChanged(status=0, status_name="status 1")
    it = client.events(ids[1], block_ms=50)
    assert [m.seq for m in take(it, 1)] == [3]
    it.close()


def test_events_dollar_yields_only_new_events(redis_url, account, redis_client):
    add_event(redis_client, account, 1)
    name = f"evt-{account}"
    with SyncClient(redis_url, account, client_name=name) as client:
        it = client.events("$", block_ms=5_000)
        first = POOL.submit(next, it)
        wait_until(lambda: blocked_connections(redis_client, name) == 1, WAIT, "events() to block", 0.01)
        add_event(redis_client, account, 2)
        message = first.result(WAIT)
        it.close()
    assert message.seq == 2


def test_events_report_a_seq_gap(client, redis_client, account):
    for seq in (1, 2, 4):
        add_event(redis_client, account, seq)
    it = client.events("0", block_ms=50)
    got = take(it, 4)
    it.close()
    assert [getattr(m, "seq", None) for m in got] == [1, 2, None, 4]
    assert got[2] == Gap(expected_seq=3, got_seq=4, reason="seq")


def test_events_report_a_trimmed_resume_id(client, redis_client, account):
    ids = [add_event(redis_client, account, seq) for seq in range(1, 6)]
    redis_client.xtrim(contract.Keys(account).events, maxlen=2, approximate=False)  # keeps seq 4, 5
    it = client.events(ids[0], block_ms=50)
    got = take(it, 3)
    it.close()
    assert got[0] == Gap(expected_seq=None, got_seq=4, reason="trimmed")  # seq of ids[0] is gone too
    assert [m.seq for m in got[1:]] == [4, 5]
    # The resume id itself was trimmed: reported even though seq 4 follows it (a re-sync is harmless).
    it = client.events(ids[2], block_ms=50)
    assert take(it, 2) == [Gap(expected_seq=None, got_seq=4, reason="trimmed"), got[1]]
    it.close()
    # Resuming from an entry still there reports nothing.
    it = client.events(ids[3], block_ms=50)
    assert [m.seq for m in take(it, 1)] == [5]
    it.close()
    it = client.events("0", block_ms=50)
    assert (take(it, 1))[0] == Gap(expected_seq=1, got_seq=4, reason="trimmed")
    it.close()


def test_events_filter_by_type_still_reports_gaps(client, redis_client, account):
    fill = contract.OrderFilled(trade=contract.TradeReport(trade_id="T9", order_id=9, code="600000.SH",
                                                           order_type=23, price=10.0, volume=100, amount=1000.0))
    add_event(redis_client, account, 1)
    add_event(redis_client, account, 2, fill, client_order_id="c2", order_id=9)
    add_event(redis_client, account, 4, fill, order_id=9)
    it = client.events("0", types=["order_filled"], block_ms=50)
    got = take(it, 3)
    it.close()
    assert got[0].type == "order_filled" and got[0].seq == 2 and got[0].order_id == 9
    assert got[0].data.trade.trade_id == "T9"
    assert got[1] == Gap(3, 4, "seq") and got[2].seq == 4


def test_events_deliver_undecodable_entries_untyped(client, redis_client, account):
    redis_client.xadd(contract.Keys(account).events, {contract.F_TYPE: "order_filled", contract.F_SEQ: "1",
                                                      contract.F_BODY: contract.pack({"trade": {"bad": 1}})})
    it = client.events("0", block_ms=50)
    (message,) = take(it, 1)
    it.close()
    assert message.seq == 1 and message.data is None and message.raw["trade"] == {"bad": 1}


def test_events_after_close_raise_client_closed(redis_url, account, redis_client):
    client = SyncClient(redis_url, account)
    it = client.events("0", block_ms=50)
    client.close()
    with pytest.raises(ClientClosed):
        next(it)

"""Client (asyncio) against a real Redis and a fake responder. Mirrored by test_sync_client.py."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from producer_lib import (
    AccountStatusResult,
    AssetReport,
    CancelAck,
    Client,
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

from client_helpers import add_event, blocked_connections, canned_result, raw_commands

WAIT = 10  # generous upper bound for awaiting anything that should happen promptly


@pytest.fixture
async def client(redis_url, account, redis_client):
    async with Client(redis_url, account, strategy="s1") as c:
        yield c


async def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def reader_tasks(client: Client) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"xtqueue-reply-reader-{client.client_id}"]


# --- results ---------------------------------------------------------------------------------------------------
async def test_every_method_returns_its_typed_result(client, responder):
    ack = await client.place_order("600000.SH", Side.BUY, 100, 10.5)
    assert isinstance(ack, OrderAck) and ack.status is OrderStatus.REPORTED and not ack.duplicate
    assert isinstance(await client.buy("600000.SH", 100, 10.5), OrderAck)
    assert isinstance(await client.sell("000001.SZ", 200, price_type=PriceType.LATEST), OrderAck)
    cancel = await client.cancel_order(ack.order_id)
    assert isinstance(cancel, CancelAck) and cancel.order_id == ack.order_id
    assert (await client.cancel_order(sysid="123", market=Market.SH)).sysid == "123"
    assert isinstance(await client.query_asset(), AssetReport)
    positions = await client.query_positions("000001.SZ")
    assert [type(p) for p in positions] == [PositionReport] and positions[0].code == "000001.SZ"
    orders = await client.query_orders(cancelable_only=True, client_order_id=ack.client_order_id)
    assert [type(o) for o in orders] == [OrderReport] and orders[0].client_order_id == ack.client_order_id
    assert [type(t) for t in await client.query_trades()] == [TradeReport]
    assert isinstance(await client.query_account_status(), AccountStatusResult)
    outcome = await client.query_outcome(ack.client_order_id)
    assert isinstance(outcome, OutcomeResult) and outcome.state is OutcomeState.PLACED
    assert isinstance(await client.ping(), PingResult)


async def test_order_fields_reach_the_executor(client, responder):
    await client.place_order("600000.SH", "sell", 300, 9.87, price_type="limit", strategy="s1",
                             client_order_id="my-order-1")
    await client.cancel_order(client_order_id="my-order-1", market="SH")
    (env, order), (cenv, cancel) = responder.seen
    assert (order.code, order.side, order.volume, order.price, order.price_type) == (
        "600000.SH", Side.SELL, 300, 9.87, PriceType.LIMIT)
    assert env.client_order_id == order.client_order_id == "my-order-1"
    assert env.strategy == "s1" and env.reply_to == client.reply_stream and env.account == client.account
    assert cancel.client_order_id == "my-order-1" and cancel.market is Market.SH
    await client.buy("600000.SH", 100, 10.0)
    assert responder.seen[-1][0].strategy == "s1"  # the client's default strategy


async def test_deadline_sets_ttl(client, redis_client, account, responder):
    await client.buy("600000.SH", 100, 10.0)
    await client.buy("600000.SH", 100, 10.0, deadline=2.5)
    await client.buy("600000.SH", 100, 10.0, deadline=datetime.now(timezone.utc) + timedelta(seconds=60))
    await client.ping()
    ttls = [e["ttl_ms"] for e in raw_commands(redis_client, account)]
    assert ttls[0] == contract.DEFAULT_ORDER_TTL_MS and ttls[1] == 2500
    assert 55_000 < ttls[2] <= 60_000 and ttls[3] == contract.DEFAULT_COMMAND_TTL_MS


# --- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", list(ErrorCode))
async def test_each_error_code_raises_its_exception_with_fields(client, responder, code):
    responder.handler = lambda env, cmd: contract.ErrorInfo(
        code=code, message="nope", broker_message="资金不足", broker_error_id=-61, order_id=77, details={"k": 1})
    with pytest.raises(ERROR_CLASSES[code]) as info:
        await client.place_order("600000.SH", "buy", 100, 10.0, client_order_id="coid-err")
    err = info.value
    assert type(err) is ERROR_CLASSES[code]
    assert (err.code, err.message, err.client_order_id, err.order_id) == (code, "nope", "coid-err", 77)
    assert (err.broker_message, err.broker_error_id, err.details) == ("资金不足", -61, {"k": 1})
    assert err.command_id == responder.seen[0][0].command_id


async def test_undecodable_reply_is_outcome_unknown(client, responder):
    def garbage(env, cmd):
        return {contract.F_ID: env.command_id, contract.F_COID: env.client_order_id, contract.F_OK: "1",
                contract.F_CMD: env.type, contract.F_BODY: b"\xc1"}

    responder.handler = garbage
    with pytest.raises(OutcomeUnknown) as info:
        await client.buy("600000.SH", 100, 10.0, client_order_id="coid-bad-reply")
    assert info.value.client_order_id == "coid-bad-reply"


async def test_duplicate_replies_are_ignored(client, responder):
    responder.handler = lambda env, cmd: [contract.OrderAck(order_id=5, client_order_id=cmd.client_order_id,
                                                            status=OrderStatus.REPORTED)] * 2
    first = await client.buy("600000.SH", 100, 10.0)
    responder.handler = None
    assert (await client.ping()).executor_id == "fake"
    assert first.order_id == 5


async def test_timeout_raises_command_timeout_with_the_client_order_id(client):
    with pytest.raises(CommandTimeout) as info:  # nobody answers
        await client.buy("600000.SH", 100, 10.0, client_order_id="coid-timeout", timeout=0.2)
    assert isinstance(info.value, OutcomeUnknown)
    assert info.value.client_order_id == "coid-timeout" and info.value.command_id
    assert "query_outcome" in str(info.value)


# --- local validation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coid", ["x" * 25, "订单", "has space", "", "a\n", 123])
async def test_invalid_client_order_id_raises_before_sending(client, redis_client, account, coid):
    with pytest.raises(InvalidRequest) as info:
        await client.buy("600000.SH", 100, 10.0, client_order_id=coid)
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
async def test_invalid_orders_raise_before_sending(client, redis_client, account, kwargs):
    with pytest.raises(InvalidRequest):
        await client.place_order(**kwargs)
    assert redis_client.exists(contract.Keys(account).commands) == 0


async def test_past_deadline_raises_expired_before_sending(client, redis_client, account):
    with pytest.raises(Expired) as info:
        await client.buy("600000.SH", 100, 10.0, deadline=datetime.now(timezone.utc) - timedelta(seconds=1),
                         client_order_id="late")
    assert info.value.client_order_id == "late"
    assert redis_client.exists(contract.Keys(account).commands) == 0


async def test_cancel_needs_exactly_one_selector(client):
    with pytest.raises(InvalidRequest):
        await client.cancel_order()
    with pytest.raises(InvalidRequest):
        await client.cancel_order(1, client_order_id="abc")
    with pytest.raises(InvalidRequest):
        await client.cancel_order(sysid="123")  # needs the market


async def test_generated_client_order_ids_are_unique_and_fit(client, responder, redis_client, account):
    acks = await asyncio.gather(*(client.buy("600000.SH", 100, 10.0) for _ in range(20)))
    coids = [a.client_order_id for a in acks]
    assert len(set(coids)) == 20
    assert all(len(c.encode("ascii")) <= contract.CLIENT_ORDER_ID_MAX_BYTES for c in coids)
    assert sorted(e["client_order_id"] for e in raw_commands(redis_client, account)) == sorted(coids)


# --- one reader, many waiters ----------------------------------------------------------------------------------
async def test_fifty_concurrent_awaits_are_served_by_one_reader(client, responder):
    results = await asyncio.gather(*(client.ping() for _ in range(25)),
                                   *(client.buy("600000.SH", 100, 10.0) for _ in range(25)))
    assert [type(r) for r in results] == [PingResult] * 25 + [OrderAck] * 25
    assert len(reader_tasks(client)) == 1
    assert not client._pending


async def test_more_commands_in_flight_than_pooled_connections_wait_for_one(redis_url, account, redis_client,
                                                                            responder):
    # 40 calls over 3 connections (one is the reply reader's): the rest queue for a connection instead of failing
    # with "Too many connections" (which would read as a failed send).
    async with Client(redis_url, account, max_connections=3) as small:
        results = await asyncio.gather(*(small.ping() for _ in range(40)))
        assert [type(r) for r in results] == [PingResult] * 40
        assert len(raw_commands(redis_client, account, "ping")) == 40


# --- lifecycle -------------------------------------------------------------------------------------------------
async def test_use_after_close_raises_client_closed(redis_url, account, redis_client):
    client = Client(redis_url, account)
    await client.aclose()
    with pytest.raises(ClientClosed):
        await client.ping()
    with pytest.raises(ClientClosed):
        async with client:
            pass
    await client.aclose()  # idempotent


async def test_close_fails_waiting_commands_and_stops_the_reader(redis_url, account, redis_client):
    client = Client(redis_url, account)
    waiting = asyncio.create_task(client.buy("600000.SH", 100, 10.0, client_order_id="coid-closed"))
    await wait_until(lambda: client._pending, "the command to be pending")
    await wait_until(lambda: redis_client.exists(contract.Keys(account).commands), "the command to be sent")
    await client.aclose()
    with pytest.raises(ClientClosed) as info:
        await waiting
    assert info.value.client_order_id == "coid-closed"
    assert reader_tasks(client) == []
    assert redis_client.exists(client.reply_stream) == 0


async def test_lazy_reader_and_context_manager(redis_url, account, redis_client, responder):
    async with Client(redis_url, account) as client:
        assert reader_tasks(client) == []
        await client.ping()
        assert len(reader_tasks(client)) == 1
    assert reader_tasks(client) == []


# --- re-send after a dropped connection ------------------------------------------------------------------------
async def test_connection_cut_after_xadd_resends_the_same_command(proxy, account, redis_client, responder):
    async with Client(proxy.url, account) as client:
        await client.ping()  # connections through the proxy are up, the reader is running
        proxy.armed.set()
        ack = await client.buy("600000.SH", 100, 10.0, client_order_id="coid-resend")
    assert proxy.cut.is_set()
    assert ack.client_order_id == "coid-resend"
    sent = raw_commands(redis_client, account, "place_order")
    assert len(sent) == 2
    assert sent[0]["command_id"] == sent[1]["command_id"]
    assert sent[0]["client_order_id"] == sent[1]["client_order_id"] == "coid-resend"
    assert sent[1]["ttl_ms"] <= sent[0]["ttl_ms"]
    assert [cmd.client_order_id for _, cmd in responder.seen if cmd.TYPE == "place_order"] == ["coid-resend"] * 2


def refuse_the_resent_copy(responder, both: bool = False, ack: bool = True):
    """A handler answering as an executor that refuses a repeated command id did (issue #10, defect 3): nothing for
    the first copy yet; for the re-sent copy a refusal, then (unless ``both``) the first copy's real ack."""
    copies: dict[str, int] = {}

    def handle(env, cmd):
        if cmd.TYPE != "place_order":
            return canned_result(env, cmd, responder.account, responder.placed)
        copies[env.command_id] = copies.get(env.command_id, 0) + 1
        refusal = contract.ErrorInfo(code=ErrorCode.UNAUTHORIZED, message="replayed: command id seen before")
        if copies[env.command_id] == 1:
            return refusal if both else None
        real = OrderAck(order_id=77, client_order_id=cmd.client_order_id, status=OrderStatus.REPORTED)
        return [refusal] if both or not ack else [refusal, real]
    return handle


async def test_a_refusal_of_the_resent_copy_is_not_the_outcome(proxy, account, responder):
    """The re-sent copy's refusal ("not executed") arrives before the first copy's ack: the caller gets the ack."""
    responder.handler = refuse_the_resent_copy(responder)
    async with Client(proxy.url, account) as client:
        await client.ping()
        proxy.armed.set()
        ack = await client.buy("600000.SH", 100, 10.0, client_order_id="coid-held")
    assert proxy.cut.is_set() and ack.order_id == 77


async def test_every_copy_refused_is_a_refusal_and_a_lone_refusal_leaves_the_outcome_unknown(proxy, account,
                                                                                            responder):
    from producer_lib import Unauthorized

    responder.handler = refuse_the_resent_copy(responder, both=True)
    async with Client(proxy.url, account) as client:
        await client.ping()
        proxy.armed.set()
        with pytest.raises(Unauthorized):
            await client.buy("600000.SH", 100, 10.0, client_order_id="coid-both")
        responder.handler = refuse_the_resent_copy(responder, ack=False)
        proxy.armed.set()
        with pytest.raises(OutcomeUnknown) as info:
            await client.buy("600000.SH", 100, 10.0, client_order_id="coid-lone", timeout=1.0)
        assert not isinstance(info.value, Unauthorized) and "query_outcome" in str(info.value)


# --- events ----------------------------------------------------------------------------------------------------
async def take(it, n: int) -> list:
    return [await asyncio.wait_for(it.__anext__(), WAIT) for _ in range(n)]


async def test_events_from_start_and_resume_after_an_id(client, redis_client, account):
    ids = [add_event(redis_client, account, seq, client_order_id=f"c{seq}") for seq in (1, 2, 3)]
    it = client.events("0", block_ms=50)
    got = await take(it, 3)
    await it.aclose()
    assert [m.seq for m in got] == [1, 2, 3] and all(isinstance(m, EventMessage) for m in got)
    assert got[0].stream_id == ids[0] and got[0].client_order_id == "c1"
    assert got[0].data == contract.AccountStatusChanged(status=0, status_name="status 1")
    it = client.events(ids[1], block_ms=50)
    assert [m.seq for m in await take(it, 1)] == [3]
    await it.aclose()


async def test_events_dollar_yields_only_new_events(redis_url, account, redis_client):
    add_event(redis_client, account, 1)
    name = f"evt-{account}"
    async with Client(redis_url, account, client_name=name) as client:
        it = client.events("$", block_ms=5_000)
        first = asyncio.create_task(it.__anext__())
        await wait_until(lambda: blocked_connections(redis_client, name) == 1, "events() to block")
        add_event(redis_client, account, 2)
        message = await asyncio.wait_for(first, WAIT)
        await it.aclose()
    assert message.seq == 2


async def test_events_report_a_seq_gap(client, redis_client, account):
    for seq in (1, 2, 4):
        add_event(redis_client, account, seq)
    it = client.events("0", block_ms=50)
    got = await take(it, 4)
    await it.aclose()
    assert [getattr(m, "seq", None) for m in got] == [1, 2, None, 4]
    assert got[2] == Gap(expected_seq=3, got_seq=4, reason="seq")


async def test_events_report_a_trimmed_resume_id(client, redis_client, account):
    ids = [add_event(redis_client, account, seq) for seq in range(1, 6)]
    redis_client.xtrim(contract.Keys(account).events, maxlen=2, approximate=False)  # keeps seq 4, 5
    it = client.events(ids[0], block_ms=50)
    got = await take(it, 3)
    await it.aclose()
    assert got[0] == Gap(expected_seq=None, got_seq=4, reason="trimmed")  # seq of ids[0] is gone too
    assert [m.seq for m in got[1:]] == [4, 5]
    # The resume id itself was trimmed: reported even though seq 4 follows it (a re-sync is harmless).
    it = client.events(ids[2], block_ms=50)
    assert await take(it, 2) == [Gap(expected_seq=None, got_seq=4, reason="trimmed"), got[1]]
    await it.aclose()
    # Resuming from an entry still there reports nothing.
    it = client.events(ids[3], block_ms=50)
    assert [m.seq for m in await take(it, 1)] == [5]
    await it.aclose()
    it = client.events("0", block_ms=50)
    assert (await take(it, 1))[0] == Gap(expected_seq=1, got_seq=4, reason="trimmed")
    await it.aclose()


async def test_events_report_a_gap_when_the_stream_was_emptied_after_the_resume_id(client, redis_client, account):
    ids = [add_event(redis_client, account, seq) for seq in range(1, 6)]
    redis_client.xtrim(contract.Keys(account).events, maxlen=0, approximate=False)  # seq 3..5 gone with the rest
    it = client.events(ids[1], block_ms=50)
    (gap,) = await take(it, 1)  # reported before anything is read: the stream is empty now
    assert gap.reason == "trimmed"
    add_event(redis_client, account, 6)
    assert [m.seq for m in await take(it, 1)] == [6]
    await it.aclose()


async def test_events_filter_by_type_still_reports_gaps(client, redis_client, account):
    fill = contract.OrderFilled(trade=contract.TradeReport(trade_id="T9", order_id=9, code="600000.SH",
                                                           order_type=23, price=10.0, volume=100, amount=1000.0))
    add_event(redis_client, account, 1)
    add_event(redis_client, account, 2, fill, client_order_id="c2", order_id=9)
    add_event(redis_client, account, 4, fill, order_id=9)
    it = client.events("0", types=["order_filled"], block_ms=50)
    got = await take(it, 3)
    await it.aclose()
    assert got[0].type == "order_filled" and got[0].seq == 2 and got[0].order_id == 9
    assert got[0].data.trade.trade_id == "T9"
    assert got[1] == Gap(3, 4, "seq") and got[2].seq == 4


async def test_events_deliver_undecodable_entries_untyped(client, redis_client, account):
    redis_client.xadd(contract.Keys(account).events, {contract.F_TYPE: "order_filled", contract.F_SEQ: "1",
                                                      contract.F_BODY: contract.pack({"trade": {"bad": 1}})})
    it = client.events("0", block_ms=50)
    (message,) = await take(it, 1)
    await it.aclose()
    assert message.seq == 1 and message.data is None and message.raw["trade"] == {"bad": 1}


async def test_events_after_close_raise_client_closed(redis_url, account, redis_client):
    client = Client(redis_url, account)
    it = client.events("0", block_ms=50)
    await client.aclose()
    with pytest.raises(ClientClosed):
        await it.__anext__()

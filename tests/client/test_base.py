"""Fast unit tests of the shared core (_base), the exception map, and both clients on fakeredis."""

from __future__ import annotations

import inspect
import threading
import warnings
from datetime import datetime, timedelta, timezone

import fakeredis
import pytest
import redis
from client_helpers import Responder

from producer_lib import (
    BrokerRejected,
    Client,
    ClientClosed,
    CommandTimeout,
    ErrorCode,
    ExecutorError,
    Expired,
    Gap,
    InvalidRequest,
    OrderAck,
    OutcomeUnknown,
    PingResult,
    Rejected,
    SyncClient,
    XtqueueError,
    _exceptions,
    contract,
)
from producer_lib._base import (
    DEFAULT,
    ORDER_REPLY_MARGIN_S,
    BaseClient,
)
from producer_lib._events import (
    SeqTracker,
    decode_event_entry,
    normalize_from_id,
    resume_point,
    trimmed_after,
    xread_entries,
)
from producer_lib._exceptions import ERROR_CLASSES, error_from_info

T0 = 1000.0  # a monotonic instant for building commands


@pytest.fixture
def base() -> BaseClient:
    return BaseClient("ACC1", strategy="s")


def test_a_client_speaks_for_its_own_strategy_only():
    """The strategy names the command stream (contract.Keys.command_stream), so a client cannot send as another."""
    assert BaseClient("ACC1", strategy="s")._command_key == "xtq:{ACC1}:cmd:s"
    assert BaseClient("ACC1")._command_key == "xtq:{ACC1}:cmd"
    for bad in ("has space", "a.b", "x" * 41):
        with pytest.raises(ValueError):
            BaseClient("ACC1", strategy=bad)
    with pytest.raises(ValueError):
        BaseClient("ACC1", strategy="s", client_id="t.123")  # its replies would be another strategy's
    with pytest.raises(InvalidRequest):
        BaseClient("ACC1", strategy="s")._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit",
                                                            strategy="other", client_order_id=None, deadline=None,
                                                            timeout=None, started=T0)


# --- exceptions ------------------------------------------------------------------------------------------------
def test_every_error_code_has_an_exception():
    assert set(ERROR_CLASSES) == set(ErrorCode)


def test_tree():
    assert issubclass(CommandTimeout, OutcomeUnknown) and issubclass(OutcomeUnknown, XtqueueError)
    for cls in (ERROR_CLASSES[c] for c in ErrorCode if c not in (ErrorCode.OUTCOME_UNKNOWN, ErrorCode.INTERNAL)):
        assert issubclass(cls, Rejected), cls
    assert not issubclass(ExecutorError, (Rejected, OutcomeUnknown))
    assert issubclass(ClientClosed, RuntimeError) and not issubclass(ClientClosed, XtqueueError)


def test_each_exception_has_a_one_sentence_docstring():
    for name, cls in vars(_exceptions).items():
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ in (_exceptions.__name__,
                                                                                          "producer_lib"):
            doc = cls.__doc__ or ""
            assert doc.strip().endswith(".") and doc.count(". ") == 0 and "\n" not in doc.strip(), name


def test_error_from_info_carries_every_field():
    info = contract.ErrorInfo(code=ErrorCode.BROKER_REJECTED, message="m", broker_message="b", broker_error_id=-1,
                              order_id=5, details={"x": 1})
    err = error_from_info(info, command_id="cid", client_order_id="coid")
    assert type(err) is BrokerRejected
    assert (err.code, err.message, err.command_id, err.client_order_id) == (ErrorCode.BROKER_REJECTED, "m", "cid",
                                                                             "coid")
    assert (err.order_id, err.broker_message, err.broker_error_id, err.details) == (5, "b", -1, {"x": 1})
    assert "coid" in str(err) and "b" in str(err)


# --- building commands -----------------------------------------------------------------------------------------
def test_place_order_entry(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 10.5, price_type="limit", strategy=None,
                                   client_order_id=None, deadline=DEFAULT, timeout=None, started=T0)
    env, cmd = contract.decode_command(prep.entry)
    assert env.command_id == prep.command_id and env.client_order_id == prep.client_order_id == cmd.client_order_id
    assert env.reply_to == base.reply_stream == contract.Keys("ACC1").replies(base.client_id)
    assert env.ttl_ms == contract.DEFAULT_ORDER_TTL_MS and env.strategy == "s" and env.account == "ACC1"
    assert prep.wait_s == contract.DEFAULT_ORDER_TTL_MS / 1000 + ORDER_REPLY_MARGIN_S


def test_generated_client_order_ids_are_unique_and_fit(base):
    coids = {base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                     client_order_id=None, deadline=DEFAULT, timeout=None,
                                     started=T0).client_order_id for _ in range(1000)}
    assert len(coids) == 1000
    assert all(len(c.encode("ascii")) <= contract.CLIENT_ORDER_ID_MAX_BYTES for c in coids)


def test_client_ids_are_random_per_instance():
    assert BaseClient("A").client_id != BaseClient("A").client_id
    assert BaseClient("A", client_id="mine").reply_stream == "xtq:{A}:reply:mine"
    with pytest.raises(ValueError):
        BaseClient("A", client_id="bad id")
    with pytest.raises(TypeError):
        BaseClient(None)


@pytest.mark.parametrize("deadline, ttl_ms", [(DEFAULT, contract.DEFAULT_ORDER_TTL_MS), (2.5, 2500), (1, 1000),
                                              (0.0019, 1)])
def test_deadline_seconds_to_ttl(base, deadline, ttl_ms):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c", deadline=deadline, timeout=None, started=T0)
    assert prep.ttl_ms == ttl_ms and prep.wait_s == pytest.approx(ttl_ms / 1000 + ORDER_REPLY_MARGIN_S)


def test_deadline_datetime_to_ttl(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c", timeout=None, started=T0,
                                   deadline=datetime.now(timezone(timedelta(hours=8))) + timedelta(seconds=30))
    assert 29_000 < prep.ttl_ms <= 30_000


@pytest.mark.parametrize("deadline, error", [
    (None, InvalidRequest), (True, InvalidRequest), ("10", InvalidRequest), (float("inf"), InvalidRequest),
    (datetime(2030, 1, 1), InvalidRequest), (48 * 3600, InvalidRequest), (0, Expired), (-1, Expired),
    (datetime.now(timezone.utc) - timedelta(seconds=5), Expired),
])
def test_bad_deadlines(base, deadline, error):
    with pytest.raises(error) as info:
        base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                client_order_id="c", deadline=deadline, timeout=None, started=T0)
    assert info.value.client_order_id == "c" and info.value.command_id is None


def test_explicit_timeout_and_query_wait(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c", deadline=DEFAULT, timeout=1.5, started=T0)
    assert prep.wait_s == 1.5 and prep.ttl_ms == contract.DEFAULT_ORDER_TTL_MS
    ping = base._build_ping(T0)
    assert ping.ttl_ms == contract.DEFAULT_COMMAND_TTL_MS and ping.wait_s == contract.DEFAULT_COMMAND_TTL_MS / 1000
    cancel = base._build_cancel_order(5, client_order_id=None, sysid=None, market=None, timeout=None, started=T0)
    assert cancel.wait_s == contract.DEFAULT_COMMAND_TTL_MS / 1000 and cancel.client_order_id == ""


def test_retry_entry_keeps_ids_and_reduces_ttl(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c", deadline=2, timeout=None, started=T0)
    again = prep.retry_entry(T0 + 0.5004)
    assert {k: v for k, v in again.items() if k != contract.F_TTL_MS} == \
        {k: v for k, v in prep.entry.items() if k != contract.F_TTL_MS}
    assert again[contract.F_TTL_MS] == "1499"  # elapsed rounded up: never later than the caller's deadline
    assert prep.retry_entry(T0 + 2.0) is None
    assert prep.remaining_s(T0 + 1) == pytest.approx(prep.wait_s - 1) and prep.remaining_s(T0 + 100) == 0


# --- replies ---------------------------------------------------------------------------------------------------
def reply(prep, **kwargs) -> contract.Reply:
    fields = contract.encode_reply(account="ACC1", command_id=prep.command_id, command_type=prep.command_type,
                                   client_order_id=prep.client_order_id, **kwargs)
    cid, decoded = BaseClient._decode_reply_entry(b"1-1", {k.encode(): v for k, v in fields.items()})
    assert cid == prep.command_id
    return decoded


def test_finish_returns_results_and_raises_errors(base):
    prep = base._build_query_positions(None, T0)
    result = contract.PositionsResult(positions=[contract.PositionReport(code="600000.SH", volume=1,
                                                                         can_use_volume=1)])
    assert base._finish(prep, reply(prep, result=result)) == list(result.positions)
    with pytest.raises(ExecutorError) as info:
        base._finish(prep, reply(prep, error=contract.ErrorInfo(code=ErrorCode.INTERNAL, message="bug")))
    assert info.value.command_id == prep.command_id


def test_a_reply_of_the_wrong_type_is_outcome_unknown(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c", deadline=DEFAULT, timeout=None, started=T0)
    wrong = contract.Reply(stream_id="1-1", command_id=prep.command_id, command_type="ping", account="ACC1",
                           result=PingResult(executor_id="e", version="v", broker="sim", broker_connected=True,
                                             uptime_s=1, last_event_seq=0, commands_done=0))
    with pytest.raises(OutcomeUnknown) as info:
        base._finish(prep, wrong)
    assert info.value.client_order_id == "c"


def test_unreadable_replies():
    assert BaseClient._decode_reply_entry(b"1-1", {b"wake": b"close"}) is None
    cid, outcome = BaseClient._decode_reply_entry(b"1-1", {b"id": b"abc", b"coid": b"c", b"ok": b"0",
                                                           b"error": b"from_the_future",
                                                           b"body": contract.pack({"code": "from_the_future",
                                                                                   "message": "?"})})
    assert cid == "abc" and isinstance(outcome, OutcomeUnknown) and outcome.client_order_id == "c"


def test_timeout_error_names_the_client_order_id(base):
    prep = base._build_place_order("600000.SH", "buy", 100, 1.0, price_type="limit", strategy=None,
                                   client_order_id="c1", deadline=DEFAULT, timeout=None, started=T0)
    err = base._timeout_error(prep)
    assert isinstance(err, CommandTimeout) and err.client_order_id == "c1" and "query_outcome('c1')" in str(err)


def test_send_errors():
    base = BaseClient("A")
    prep = base._build_ping(T0)
    assert isinstance(base._send_error(prep, redis.ConnectionError("x"), 4), OutcomeUnknown)
    assert isinstance(base._send_error(prep, redis.TimeoutError("x"), 4), OutcomeUnknown)
    assert type(base._send_error(prep, redis.ResponseError("OOM"), 1)) is Rejected
    assert type(base._send_error(prep, redis.exceptions.NoPermissionError("NOPERM"), 1)).__name__ == "Unauthorized"


# --- events ----------------------------------------------------------------------------------------------------
def event_fields(seq: int) -> dict:
    fields = contract.encode_event(contract.AccountStatusChanged(status=0, status_name="ok"), account="A", seq=seq)
    return {k.encode(): v.encode() if isinstance(v, str) else v for k, v in fields.items()}


def test_seq_tracker():
    tracker = SeqTracker(1)
    got = [tracker.check(decode_event_entry(f"{s}-0", event_fields(s))) for s in (1, 2, 5, 6, 6)]
    assert got == [None, None, Gap(3, 5, "seq"), None, Gap(7, 6, "seq")]
    assert SeqTracker(None).check(decode_event_entry("9-0", event_fields(9))) is None


def test_resume_points():
    assert resume_point("$", last_entry=None, from_entry=None, info=None)[0] == "0-0"
    last_id, tracker, gap = resume_point("$", last_entry=(b"7-0", event_fields(7)), from_entry=None, info=None)
    assert (last_id, tracker.expected, gap) == ("7-0", 8, None)
    info = {"length": 2, "entries-added": 2, "max-deleted-entry-id": b"0-0", "first-entry": (b"1-0", event_fields(1))}
    last_id, tracker, gap = resume_point("0-0", last_entry=None, from_entry=None, info=info)
    assert (last_id, tracker.expected, gap) == ("0-0", 1, None)
    trimmed = {**info, "length": 1, "first-entry": (b"2-0", event_fields(2))}
    last_id, tracker, gap = resume_point("0-0", last_entry=None, from_entry=None, info=trimmed)
    assert (last_id, tracker.expected, gap) == ("0-0", None, Gap(1, 2, "trimmed"))
    assert resume_point("1-0", last_entry=None, from_entry=(b"1-0", event_fields(1)), info=info)[1].expected == 2


def test_trimmed_after():
    first = (b"10-0", event_fields(4))
    redis7 = {"length": 2, "entries-added": 5, "max-deleted-entry-id": b"0-0", "first-entry": first}
    assert trimmed_after("0-0", redis7, False)
    assert trimmed_after("5-0", redis7, False)
    assert not trimmed_after("10-0", redis7, True)
    assert not trimmed_after("12-0", redis7, False)
    assert trimmed_after("12-0", {**redis7, "max-deleted-entry-id": b"13-0"}, True)  # XDEL after the resume id
    old_server = {"first-entry": first}
    assert trimmed_after("0-0", old_server, False) and trimmed_after("5-0", old_server, False)
    assert not trimmed_after("0-0", {"first-entry": (b"1-0", event_fields(1))}, False)
    # The stream is gone (Redis lost its data, or the key was deleted): after a saved id, everything may be missing.
    assert trimmed_after("5-0", None, False)
    assert not trimmed_after("0-0", None, False)
    # Trimmed to empty: entries after the resume id existed unless it was the last id ever generated.
    emptied = {"length": 0, "entries-added": 5, "first-entry": None, "last-generated-id": b"12-0"}
    assert trimmed_after("5-0", emptied, False)
    assert not trimmed_after("12-0", emptied, False)


def test_normalize_from_id():
    assert [normalize_from_id(x) for x in ("$", "0", "0-0", "17", "17-3", b"17-3")] == \
        ["$", "0-0", "0-0", "17-0", "17-3", "17-3"]
    for bad in ("", "abc", "1-x", ">"):
        with pytest.raises(ValueError):
            normalize_from_id(bad)


def test_undecodable_event_is_delivered_untyped():
    fields = {b"type": b"order_filled", b"seq": b"3", b"coid": b"c", b"order_id": b"7",
              b"body": contract.pack({"trade": "nonsense"})}
    message = decode_event_entry(b"5-0", fields)
    assert (message.seq, message.type, message.client_order_id, message.order_id, message.data) == (
        3, "order_filled", "c", 7, None)
    assert message.raw["trade"] == "nonsense" and "_decode_error" in message.raw


def test_xread_shapes():
    entry = (b"1-0", {b"a": b"1"})
    assert xread_entries([[b"k", [entry]]]) == [entry]
    assert xread_entries({b"k": [[entry]]}) == [entry]
    assert xread_entries(None) == [] and xread_entries([]) == []


# --- redis options ---------------------------------------------------------------------------------------------
def test_decode_responses_is_refused():
    with pytest.raises(ValueError):
        SyncClient(account="A", decode_responses=True)
    with pytest.raises(ValueError):
        Client(account="A", redis=fakeredis.FakeAsyncRedis(decode_responses=True))


def test_own_connections_do_not_retry_by_themselves():
    client = SyncClient(account="A")
    assert client._redis.connection_pool.connection_kwargs["retry"].get_retries() == 0
    client.close()


def test_a_given_client_that_retries_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SyncClient(account="A", redis=redis.Redis(retry=redis.retry.Retry(redis.backoff.NoBackoff(), 3)))
    assert any(issubclass(w.category, RuntimeWarning) for w in caught)


# --- both clients on fakeredis ---------------------------------------------------------------------------------
@pytest.fixture
def fake_server():
    return fakeredis.FakeServer()


@pytest.fixture
def fake_responder(fake_server):
    r = Responder(fakeredis.FakeRedis(server=fake_server), "FAKE").start()
    yield r
    r.stop()


def test_sync_client_on_fakeredis(fake_server, fake_responder):
    with SyncClient(account="FAKE", redis=fakeredis.FakeRedis(server=fake_server)) as client:
        ack = client.buy("600000.SH", 100, 10.0, client_order_id="fk-1")
        assert isinstance(ack, OrderAck) and ack.client_order_id == "fk-1"
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.ping())) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(results) == 10 and all(isinstance(r, PingResult) for r in results)


async def test_async_client_on_fakeredis(fake_server, fake_responder):
    async with Client(account="FAKE", redis=fakeredis.FakeAsyncRedis(server=fake_server)) as client:
        ack = await client.sell("000001.SZ", 100, price_type="latest", client_order_id="fk-2")
        assert isinstance(ack, OrderAck) and ack.client_order_id == "fk-2"
    with pytest.raises(ClientClosed):
        await client.ping()


def test_invalid_request_sends_nothing_on_fakeredis():
    r = fakeredis.FakeRedis()
    with SyncClient(account="FAKE", redis=r) as client:
        with pytest.raises(InvalidRequest):
            client.buy("600000.SH", 100, 10.0, client_order_id="x" * 25)
    assert r.keys("*") == []

"""Signed commands: the canonical bytes, the client signing, and the executor refusing unsigned, wrongly signed,
altered, replayed and expired commands with ``unauthorized`` (never executed), accepting the rest."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from fakes import FakeBroker, order

import producer_lib as pl
from executor.safety.auth import AuthConfigError, AuthPolicy, CommandAuth, parse_keys_text
from executor.config import ExecutorSettings
from executor.engine import Executor
from producer_lib import contract as c
from producer_lib import signing

E = c.ErrorCode
ACCOUNT = "SIGACC"
KEY_A = "alpha-secret-key-0123456789abcdef"
KEY_B = "beta-secret-key-0123456789abcdefgh"


def entry(cmd: c.Command | None = None, *, strategy: str = "alpha", command_id: str | None = None,
          ttl_ms: int = 10_000) -> dict:
    keys = c.Keys(ACCOUNT)
    cmd = cmd or order(None)
    return c.encode_command(cmd, account=ACCOUNT, command_id=command_id or c.new_command_id(),
                            reply_to=keys.replies(f"{strategy}.t1"), ttl_ms=ttl_ms)


# --- the format ----------------------------------------------------------------------------------------------------
def test_canonical_bytes_are_netstrings_in_the_documented_order():
    fields = {"v": "1", "type": "ping", "account": "A", "id": "x", "coid": "", "strategy": "", "reply_to": "r",
              "ttl_ms": "5", "sent_ms": "99", "body": b"\x80"}
    assert signing.canonical_bytes(fields, "k1", 1700000000000) == (
        b"13:xtq-cmd-sig-1,2:k1,13:1700000000000,1:1,4:ping,1:A,1:x,0:,0:,1:r,1:5,1:\x80,")
    # bytes keys/values (as the executor reads them) give the same bytes; sent_ms is not covered
    as_bytes = {k.encode(): (v if isinstance(v, bytes) else v.encode()) for k, v in fields.items()}
    as_bytes[b"sent_ms"] = b"12345"
    assert signing.canonical_bytes(as_bytes, "k1", 1700000000000) == signing.canonical_bytes(fields, "k1",
                                                                                             1700000000000)


def test_sign_and_verify_every_covered_field():
    signer = signing.Signer(KEY_A, "alpha-1")
    signed = signer.sign(entry())
    sig = signing.parse_sig(signed[c.F_SIG])
    secret = signing.secret_bytes(KEY_A)
    assert sig.key_id == "alpha-1" and abs(sig.ts_ms - time.time() * 1000) < 5_000
    assert signing.verify_mac(secret, signed, sig)
    assert not signing.verify_mac(signing.secret_bytes(KEY_B), signed, sig)
    for name in (*signing.SIGNED_FIELDS, c.F_BODY):
        altered = dict(signed)
        altered[name] = (altered[name] + "x") if isinstance(altered[name], str) else altered[name] + b"\x00"
        assert not signing.verify_mac(secret, altered, sig), name
    assert not signing.verify_mac(secret, signed, signing.ParsedSig(sig.key_id, sig.ts_ms + 1, sig.mac))
    assert "alpha-secret" not in repr(signer)


@pytest.mark.parametrize("bad", ["", "k1:123", "k1:abc:" + "0" * 64, "k 1:1:" + "0" * 64, "k1:1:" + "0" * 63,
                                 "k1:1:" + "G" * 64])
def test_malformed_sig_is_refused(bad):
    with pytest.raises(signing.SignatureError):
        signing.parse_sig(bad)


def test_short_keys_and_bad_config_are_refused():
    with pytest.raises(signing.SignatureError):
        signing.Signer("short", "k1")
    with pytest.raises(AuthConfigError):
        AuthPolicy({}, {"alpha"})  # required without a key
    with pytest.raises(AuthConfigError) as info:
        parse_keys_text("k1:alpha:short")
    assert "short" not in str(info.value)  # never echo what may be a secret
    assert parse_keys_text(f"k1:alpha:{KEY_A}, k2:beta:{KEY_B}") == {"k1": ("alpha", KEY_A), "k2": ("beta", KEY_B)}


def test_client_signs_and_names_its_reply_stream_after_the_strategy():
    client = pl.SyncClient("redis://127.0.0.1:1/0", "A1", strategy="alpha", signing_key=KEY_A)
    assert client.client_id.startswith("alpha.") and client.reply_stream.startswith("xtq:{A1}:reply:alpha.")
    prep = client._build_ping(time.monotonic())
    sig = signing.parse_sig(prep.entry[c.F_SIG])
    assert sig.key_id == "alpha"  # key id defaults to the strategy
    assert signing.verify_mac(signing.secret_bytes(KEY_A), prep.entry, sig)
    retry = prep.retry_entry(time.monotonic() + 0.5)  # a re-send reduces the ttl: signed again
    assert retry[c.F_TTL_MS] != prep.entry[c.F_TTL_MS]
    assert signing.verify_mac(signing.secret_bytes(KEY_A), retry, signing.parse_sig(retry[c.F_SIG]))
    with pytest.raises(ValueError):  # a strategy name names its command stream: no spaces
        pl.SyncClient("redis://127.0.0.1:1/0", "A1", strategy="has space")
    unsigned = pl.SyncClient("redis://127.0.0.1:1/0", "A1")
    assert "." not in unsigned.client_id and c.F_SIG not in unsigned._build_ping(time.monotonic()).entry
    assert c.strategy_of_client_id("alpha.abc") == "alpha" and c.strategy_of_client_id("abc") == ""


def test_signing_key_must_belong_to_the_streams_owner():
    auth = CommandAuth(AuthPolicy({"a1": ("alpha", KEY_A), "b1": ("beta", KEY_B)}, {"beta"}, window_ms=5_000),
                       lambda: int(time.time() * 1000))
    e = signing.Signer(KEY_A, "a1").sign(entry(command_id="own-1"))
    env = c.decode_envelope(e)
    assert auth.check(e, env, "1-0", 1, owner="alpha") is None
    assert "not to the stream's 'beta'" in auth.check(e, env, "1-1", 1, owner="beta")  # alpha's key on beta's stream
    unsigned = entry(command_id="own-2", strategy="gamma")
    # beta must sign: an unsigned command on beta's stream is refused whatever it names itself
    assert "unsigned" in auth.check(unsigned, c.decode_envelope(unsigned), "1-2", 1, owner="beta")


def test_redelivery_is_not_a_replay_and_memory_is_bounded():
    now = [1_700_000_000_000]
    auth = CommandAuth(AuthPolicy({"a1": ("alpha", KEY_A)}, {"alpha"}, window_ms=1_000, replay_cache=2),
                       lambda: now[0])
    signer = signing.Signer(KEY_A, "a1")
    e1 = signer.sign(entry(command_id="c1"), ts_ms=now[0])
    env1 = c.decode_envelope(e1)
    sid = f"{now[0]}-0"
    assert auth.check(e1, env1, sid, 1) is None
    assert auth.check(e1, env1, sid, 2) is None  # the same entry delivered again
    # the same command added again (a client re-send: ttl reduced, signed anew) is a repeat, answered by the engine
    # with the first copy's outcome; the same id signed for another command is a replay and refused
    resent = signer.sign({**e1, c.F_TTL_MS: "9000"}, ts_ms=now[0] + 1)
    assert auth.check(resent, c.decode_envelope(resent), f"{now[0]}-1", 1) is None
    other = signer.sign(entry(c.Ping(), command_id="c1"), ts_ms=now[0] + 2)
    assert "replayed" in auth.check(other, c.decode_envelope(other), f"{now[0]}-2", 1)
    now[0] += 5_000  # long after: a re-delivery is judged by its stream id, a new entry by the server clock
    assert auth.check(e1, env1, sid, 2) is None
    assert "expired" in auth.check(e1, env1, f"{now[0]}-0", 1)
    # full memory of ids still inside the window: the oldest is forgotten, its timestamp refused from then on
    es = [signer.sign(entry(command_id=f"d{i}"), ts_ms=now[0] + i) for i in range(3)]
    for i, e in enumerate(es):
        assert auth.check(e, c.decode_envelope(e), f"{now[0]}-{i + 10}", 1) is None
    assert "memory full" in auth.check(es[0], c.decode_envelope(es[0]), f"{now[0]}-99", 1)


# --- the executor ------------------------------------------------------------------------------------------------
@pytest.fixture
async def r(plain_redis):
    client = aioredis.Redis.from_url(plain_redis.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_executor(plain_redis, tmp_path):
    made: list[Executor] = []

    def make(broker: FakeBroker, **kw) -> Executor:
        base = dict(account=ACCOUNT, redis_url=plain_redis.url, state_dir=tmp_path / "state", executor_id="ex-sig",
                    block_ms=50, ack_wait_ms=300, broker_timeout_ms=1_000, recovery_settle_ms=0,
                    heartbeat_interval_ms=200, probe_interval_ms=200, shutdown_timeout_ms=3_000,
                    signing_keys=f"alpha-1:alpha:{KEY_A},beta-1:beta:{KEY_B}", signing_required=["alpha"],
                    signing_window_ms=5_000)
        base.update(kw)
        ex = Executor(ExecutorSettings(**base), broker)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.stop()


async def _run(ex: Executor, r: aioredis.Redis, entries: list[dict]) -> dict[str, c.Reply]:
    """XADD the entries, let the executor serve them; the reply to each command id (all of them under id + "*")."""
    keys = c.Keys(ACCOUNT)
    for e in entries:  # each on the command stream of the strategy its reply stream names (its sender's own)
        owner = c.strategy_of_client_id(str(e[c.F_REPLY_TO]).rpartition(":")[2])
        await r.xadd(keys.command_stream(owner), e)
    try:
        await ex.run_until_idle()
    finally:
        await ex.stop()
    out: dict = {}
    for stream in {e[c.F_REPLY_TO] for e in entries}:
        for sid, fields in await r.xrange(stream):
            rep = c.decode_reply(sid, fields)
            out.setdefault(rep.command_id, rep)
            out.setdefault(rep.command_id + "*", []).append(rep)
    return out


async def test_executor_refuses_bad_signatures_and_runs_good_ones(make_executor, r):
    broker = FakeBroker()
    ex = make_executor(broker)
    a = signing.Signer(KEY_A, "alpha-1")
    good = a.sign(entry(order("good")))
    wrong_key = signing.Signer(KEY_B, "alpha-1").sign(entry(order("wrongkey")))
    altered = a.sign(entry(order("altered", volume=100)))
    altered[c.F_BODY] = entry(order("altered", volume=10_000))[c.F_BODY]
    unknown_key = signing.Signer(KEY_A, "nobody").sign(entry(order("unknownkey")))
    unsigned = entry(order("unsigned"))
    unsigned_cancel = entry(c.CancelOrder(client_order_id="good"))
    expired = a.sign(entry(order("expired")), ts_ms=int(time.time() * 1000) - 60_000)
    future = a.sign(entry(order("future")), ts_ms=int(time.time() * 1000) + 60_000)
    impostor = signing.Signer(KEY_B, "beta-1").sign(entry(order("impostor")))  # beta's key, alpha's reply stream
    garbage = {**entry(order("garbage")), c.F_SIG: "alpha-1:1:nothex"}
    beta_unsigned = entry(order("beta_free"), strategy="beta")  # beta need not sign
    bad = {"wrongkey": wrong_key, "altered": altered, "unknownkey": unknown_key, "unsigned": unsigned,
           "unsigned_cancel": unsigned_cancel, "expired": expired, "future": future, "impostor": impostor,
           "garbage": garbage}
    replies = await _run(ex, r, [good, *bad.values(), beta_unsigned])
    assert replies[good[c.F_ID]].ok and replies[beta_unsigned[c.F_ID]].ok
    for name, e in bad.items():
        rep = replies[e[c.F_ID]]
        assert not rep.ok and rep.error.code is E.UNAUTHORIZED, (name, rep)
    assert [p.client_order_id for p in broker.placed] == ["good", "beta_free"]
    assert broker.cancels == []
    dead = await r.xrange(c.Keys(ACCOUNT).dead_letter)
    assert len(dead) == len(bad)
    assert all(b"unauthorized" in fields.values() for _, fields in dead)
    assert KEY_A.encode() not in b"".join(v for _, f in dead for v in f.values())


async def test_repeated_command_gets_the_first_outcome_and_is_not_executed_twice(make_executor, r):
    """A signed entry added again (a client re-send, or a captured entry) is a repeat, not a refusal: both copies
    get the first copy's answer; the order is placed once and the cancel sent once. The same command id signed for
    another command is refused as replayed."""
    broker = FakeBroker()
    ex = make_executor(broker)
    signer = signing.Signer(KEY_A, "alpha-1")
    signed = signer.sign(entry(c.CancelOrder(client_order_id="once")))  # its own order (ownership: orderbook.py)
    first_order = signer.sign(entry(order("once")))
    other = signer.sign(entry(order("other"), command_id=signed[c.F_ID]))
    replies = await _run(ex, r, [first_order, signed, dict(first_order), dict(signed), other])
    for cid in (first_order[c.F_ID], signed[c.F_ID]):
        reps = [rep for rep in replies[cid + "*"] if rep.client_order_id != "other"]
        assert len(reps) == 2 and all(rep.error is None or rep.error.code is not E.UNAUTHORIZED for rep in reps)
        assert len({rep.result.order_id if rep.result else rep.error.code for rep in reps}) == 1, reps
    [refused] = [rep for rep in replies[signed[c.F_ID] + "*"] if rep.client_order_id == "other"]
    assert refused.error.code is E.UNAUTHORIZED and "replayed" in refused.error.message
    assert [p.client_order_id for p in broker.placed] == ["once"] and len(broker.cancels) == 1


async def test_signing_required_of_everyone(make_executor, r):
    broker = FakeBroker()
    ex = make_executor(broker, signing_required=["*"])
    beta_unsigned = entry(order("beta"), strategy="beta")
    no_strategy = c.encode_command(c.Ping(), account=ACCOUNT, command_id="p1", reply_to=c.Keys(ACCOUNT).replies("x1"),
                                   ttl_ms=5_000)
    replies = await _run(ex, r, [beta_unsigned, no_strategy])
    for e in (beta_unsigned, no_strategy):
        assert replies[e[c.F_ID]].error.code is E.UNAUTHORIZED
    assert broker.placed == []


async def test_library_client_end_to_end(make_executor, plain_redis):
    broker = FakeBroker()
    ex = make_executor(broker)
    task = asyncio.create_task(ex.run())
    try:
        async with pl.Client(plain_redis.url, ACCOUNT, strategy="alpha", signing_key=KEY_A,
                             key_id="alpha-1") as client:
            ack = await client.buy("600000.SH", 100, 10.0, client_order_id="lib1")
            assert ack.client_order_id == "lib1"
        async with pl.Client(plain_redis.url, ACCOUNT, strategy="alpha", signing_key=KEY_B,
                             key_id="alpha-1") as client:
            with pytest.raises(pl.Unauthorized):
                await client.buy("600000.SH", 100, 10.0, client_order_id="lib2")
        async with pl.Client(plain_redis.url, ACCOUNT, strategy="alpha") as client:  # unsigned
            with pytest.raises(pl.Unauthorized):
                await client.ping()
    finally:
        ex.request_stop()
        await asyncio.wait_for(task, 15)
    assert [p.client_order_id for p in broker.placed] == ["lib1"]

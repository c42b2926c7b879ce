"""6. Arbitrary bytes and arbitrary field values fed into the command stream of a real executor process.

Proves: the executor never crashes (same process answers a ping after every example), every entry is acked (the
pending list drains), every readable request (UTF-8 routing fields, an id, reply_to = a reply stream of the account)
gets exactly one reply that decodes to a typed result or a typed error (an ErrorCode), and every entry that could
not be answered is in the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

from harness import ExecutorProc, Report, drained, env_int, pending_count
from support import wait_until
from producer_lib import contract as c

ACCOUNT = "FUZZ01"
KEYS = c.Keys(ACCOUNT)
REPLY = KEYS.replies("fuzzer")
# Protocol 3 body fields too (b.* text, j.* JSON that a command may not carry, dotted names it may not use).
BODY_FIELDS = ["b.code", "b.side", "b.volume", "b.price", "b.price_type", "b.order_id", "j.price", "b.order.code"]
FIELD_NAMES = [c.F_VERSION, c.F_TYPE, c.F_ACCOUNT, c.F_ID, c.F_COID, c.F_REPLY_TO, c.F_TTL_MS, c.F_SENT_MS,
               c.F_STRATEGY, c.F_BODY, c.F_SIG, *BODY_FIELDS]
# Shrinking a failure costs one bounded wait per step: on by default, XTQ_FAULT_FUZZ_SHRINK=0 turns it off.
PHASES = ([Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("XTQ_FAULT_FUZZ_SHRINK") == "0"
          else [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
BODY_KEYS = sorted({name for cls in c.COMMAND_TYPES.values() for name in cls.model_fields} | {"x", ""})

junk_bytes = st.binary(max_size=64)
junk_text = st.text(max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), junk_text, junk_bytes)
json_like = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(junk_text, inner, max_size=4)),
                         max_leaves=12)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(BODY_KEYS), json_like, max_size=6).map(lambda d: msgpack.packb(d)),
    json_like.map(lambda v: msgpack.packb(v)),
    junk_bytes,
    st.just(b""),
    st.integers(17, 1_200).map(lambda depth: b"\x81\xa1a" * depth + b"\xc0"),  # nested past the bound (issue #10)
)
values = {
    c.F_VERSION: st.one_of(st.just("1"), st.just("2"), st.just("3"), junk_text, junk_bytes),
    c.F_TYPE: st.one_of(st.sampled_from(sorted(c.COMMAND_TYPES) + ["reply", ""]), junk_text, junk_bytes),
    c.F_ACCOUNT: st.one_of(st.just(ACCOUNT), junk_text, junk_bytes),
    c.F_ID: st.one_of(*[st.text("0123456789abcdef", min_size=1, max_size=24)] * 4, junk_text, junk_bytes,
                      st.text(min_size=65, max_size=120)),
    c.F_COID: st.one_of(st.text("abcdef0123456789", min_size=1, max_size=24), junk_text, junk_bytes),
    c.F_REPLY_TO: st.one_of(*[st.just(REPLY)] * 5, junk_text, junk_bytes, st.just(KEYS.commands)),
    c.F_TTL_MS: st.one_of(st.integers(-10, 10**12).map(str), junk_text, junk_bytes),
    c.F_SENT_MS: st.one_of(st.integers(-10, 10**14).map(str), junk_text),
    c.F_STRATEGY: st.one_of(junk_text, junk_bytes),
    c.F_BODY: bodies,
    c.F_SIG: junk_bytes,
    **{name: st.one_of(junk_text, junk_bytes, st.integers(-10, 10**12).map(str), st.just("600000.SH"))
       for name in BODY_FIELDS},
}


@st.composite
def mutated_commands(draw):
    """A well-formed command entry (place_order, cancel, queries, ping) with 0-2 fields replaced by junk."""
    coid = draw(st.text("abcdef0123456789", min_size=1, max_size=24))
    command = draw(st.sampled_from([
        c.PlaceOrder(client_order_id=coid, code="600000.SH", side=c.Side.BUY, volume=100, price=9.5),
        c.PlaceOrder(client_order_id=coid, code="000001.SZ", side=c.Side.SELL, volume=100, price=11.0),
        c.CancelOrder(client_order_id=coid), c.CancelOrder(order_id=1), c.QueryOrders(), c.QueryAsset(),
        c.QueryOutcome(client_order_id=coid), c.Ping(), c.QueryPositions(), c.QueryTrades(),
        c.QueryAccountStatus()]))
    fields = c.encode_command(command, account=ACCOUNT, command_id=draw(st.text("0123456789abcdef", min_size=1,
                                                                                  max_size=24)),
                              reply_to=REPLY, ttl_ms=draw(st.integers(0, 60_000)))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(FIELD_NAMES))
        fields[name] = draw(values[name])
    if draw(st.integers(0, 9)) == 0:  # wider than a Lua script may unpack (issue #10): refused, dead-lettered
        fields.update({f"x{i}": "y" for i in range(draw(st.sampled_from([40, 5_000])))})
    return fields


@st.composite
def entries(draw):
    if draw(st.booleans()):
        return draw(mutated_commands())
    fields = {}
    for name in FIELD_NAMES:
        if draw(st.integers(0, 9)) < 8:  # mostly present
            fields[name] = draw(values[name])
    for _ in range(draw(st.integers(0, 2))):
        fields[draw(st.one_of(junk_bytes, junk_text).filter(bool))] = draw(st.one_of(junk_bytes, junk_text))
    if not fields:
        fields["x"] = b""
    return fields


def _utf8(v) -> str | None:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return None


def readable(fields: dict) -> str | None:
    """The command id a reply must carry, or None when the request cannot be answered (no id / no reply_to /
    routing fields that are not text)."""
    routing = {name: _utf8(fields.get(name)) for name in (c.F_ID, c.F_REPLY_TO, c.F_TYPE, c.F_COID)}
    if any(v is None for v in routing.values()):
        return None
    if not routing[c.F_ID] or routing[c.F_REPLY_TO] != REPLY:
        return None
    return routing[c.F_ID]


def _run(tmp_path, redis_server, seed, record_property, max_examples: int) -> None:
    r = redis_server.client()
    ex = ExecutorProc(redis_server.url, ACCOUNT, tmp_path / "ex")
    ex.start()
    asyncio.run(ex.wait_serving())
    pid = ex.pid
    report = Report("fuzz", seed)
    state = {"reply_from": "0-0", "dead_from": "0-0"}

    @hseed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=st.lists(entries(), min_size=1, max_size=8))
    def one_batch(batch):
        sent: list[tuple[str, str | None]] = []
        for fields in batch:
            try:
                sid = r.xadd(KEYS.commands, fields)
            except Exception as exc:  # Redis itself refuses (never seen): not the executor's problem
                report.add(f"xadd_refused_{type(exc).__name__}")
                continue
            sent.append((sid.decode(), readable(fields)))
        report.add("entries", len(sent))
        want = [cid for _, cid in sent if cid is not None]
        report.add("readable", len(want))

        def answered():
            got = r.xrange(REPLY, f"({state['reply_from']}", "+") if state["reply_from"] != "0-0" else r.xrange(REPLY)
            ids = [f.get(b"id", b"") for _, f in got]
            return sum(1 for i in ids if i) >= len(want) and drained(r, KEYS) and got
        try:
            got = wait_until(lambda: answered() if want else drained(r, KEYS), 10,
                             f"replies to {len(want)} readable entries and XPENDING 0")
        except AssertionError:
            seen = r.xrange(REPLY, f"({state['reply_from']}", "+") if state["reply_from"] != "0-0" else r.xrange(REPLY)
            raise AssertionError(f"sent {sent}, replies {[(f.get(b'id'), f.get(b'error')) for _, f in seen]}, "
                                 f"pending {pending_count(r, KEYS)}, entries {batch}") from None
        assert ex.alive, "executor died:\n" + ex.log_tail()
        replies = list(got) if want else []
        if not want:  # entries without an id may still be answered (with an empty id): read what came
            replies = (r.xrange(REPLY, f"({state['reply_from']}", "+") if state["reply_from"] != "0-0"
                       else r.xrange(REPLY))
        if replies:
            state["reply_from"] = replies[-1][0].decode()
        expected = Counter(want)
        seen: Counter = Counter()
        for sid, fields in replies:
            rep = c.decode_reply(sid, fields)  # raises if not a well-formed, typed reply
            if rep.error is not None:
                assert isinstance(rep.error.code, c.ErrorCode)
                report.add(f"error_{rep.error.code.value}")
            else:
                report.add(f"ok_{rep.command_type}")
            if rep.command_id == "":
                report.add("replies_with_empty_id")  # to an entry without an id field: nobody can match it
                continue
            match = [cid for cid in expected if rep.command_id in (cid, cid[:64])]
            assert match, f"reply to {rep.command_id!r}, which no readable entry of this batch carries"
            if rep.command_id != match[0]:
                report.add("reply_id_truncated_to_64")
            seen[match[0]] += 1
        assert seen == expected, f"replies per command id {dict(seen)} != readable entries {dict(expected)}"
        # whatever could not be answered is dead-lettered with its source id
        unanswerable = {sid for sid, cid in sent if cid is None}
        if unanswerable:
            dead = {f.get(b"src_id", b"").decode() for _, f in r.xrange(KEYS.dead_letter)}
            missing = unanswerable - dead
            assert not missing, f"unanswerable entries not dead-lettered: {missing}"
            report.add("dead_lettered_unanswerable", len(unanswerable))

    try:
        one_batch()
        pong = asyncio.run(ex.wait_serving(timeout=20))
        assert ex.pid == pid and pong.executor_id == ex.executor_id
    finally:
        report.emit(record_property)
        ex.terminate()
        r.close()


def test_fuzz_command_stream_quick(tmp_path, redis_server, seed, record_property):
    _run(tmp_path, redis_server, seed, record_property, max_examples=25)


@pytest.mark.slow
def test_fuzz_command_stream_long(tmp_path, redis_server, seed, record_property):
    _run(tmp_path, redis_server, seed, record_property, max_examples=env_int("XTQ_FAULT_FUZZ_EXAMPLES", 600))

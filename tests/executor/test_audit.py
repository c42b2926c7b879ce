"""The audit trail: accepted and refused commands, decisions and broker results, in the audit stream and the
rotating file, with secrets masked."""

from __future__ import annotations

import json

from fakes import REJECT, FakeBroker, order

from executor.safety.audit import mask
from producer_lib import contract as c


def _stream(entries):
    out = []
    for _sid, f in entries:
        fields = {k.decode(): v.decode() for k, v in f.items()}
        fields["data"] = json.loads(fields["data"])
        out.append(fields)
    return out


async def test_audit_stream_and_file(make_executor, client, r, account, settings_for):
    broker = FakeBroker(script={"rej": REJECT})
    ex = make_executor(broker, risk={"max_order_volume": 500})
    ok = await client.send(order("acc", volume=100))
    refused = await client.send(order("big", volume=600))
    rejected = await client.send(order("rej"))
    await client.send(c.Ping())
    await ex.run_until_idle()
    await client.replies(4)
    await ex.stop()  # flushes the trail

    stream = _stream(await r.xrange(c.Keys(account).audit))
    path = settings_for().state_dir / f"audit-{account}.log"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["data"] for e in stream] == lines  # the same records in both copies

    by = lambda kind, **kw: [d for d in lines if d["kind"] == kind and all(d.get(k) == v for k, v in kw.items())]
    # every command as received
    assert {d["id"] for d in by("command")} >= {ok, refused, rejected}
    cmd = by("command", id=refused)[0]
    assert cmd["type"] == "place_order" and cmd["fields"]["b.volume"] == "600" and cmd["coid"] == "big"
    # decisions: accepted, refused (with the rule and numbers)
    assert by("decision", id=ok)[0]["decision"] == "accepted"
    d = by("decision", id=refused)[0]
    assert d["decision"] == "refused" and d["code"] == "risk_rejected"
    assert d["details"] == {"rule": "max_order_volume", "limit": 500, "value": 600}
    # what each sender was told
    assert by("reply", id=ok)[0]["ok"] is True and by("reply", id=ok)[0]["result"]["order_id"] > 0
    assert by("reply", id=refused)[0]["error"]["code"] == "risk_rejected"
    assert by("reply", id=rejected)[0]["error"]["code"] == "broker_rejected"
    # broker results: the response and the status of the accepted order, the refusal of the rejected one
    broker_types = {(d["type"], d.get("coid", "")) for d in by("broker")}
    assert ("order_responded", "acc") in broker_types and ("order_updated", "acc") in broker_types
    assert any(d["type"] == "order_responded" and d["event"]["order_id"] == -1 for d in by("broker"))
    assert all(e["account"] == account and e["kind"] == e["data"]["kind"] for e in stream)


async def test_secrets_are_masked(make_executor, client, r, account, settings_for):
    ex = make_executor(FakeBroker())
    fields = c.encode_command(c.Ping(), account=account, command_id="sig1", reply_to=client.reply_to,
                              ttl_ms=10_000)
    fields[c.F_SIG] = "v1:k1:1700000000000:deadbeefcafebabe"
    await client.send_raw(fields)
    await ex.run_until_idle()
    await client.replies(1)
    ex.audit.record("note", {"redis_url": "rediss://executor:hunter2@redis.internal:6380/0", "password": "x",
                             "nested": {"signature": "abc", "ok": "visible"}})
    await ex.stop()
    text = (settings_for().state_dir / f"audit-{account}.log").read_text()
    raw = " ".join(f[b"data"].decode() for _sid, f in await r.xrange(c.Keys(account).audit))
    for copy in (text, raw):
        assert "deadbeefcafebabe" not in copy and "hunter2" not in copy and '"abc"' not in copy
        assert '"sig":"***"' in copy and "rediss://executor:***@redis.internal" in copy and "visible" in copy


def test_mask():
    assert mask({"sig": "s", "body": {"api_key": "k", "token_ttl": 5, "price": 1.5}, "x": ["a://u:p@h"]}) == \
        {"sig": "***", "body": {"api_key": "***", "token_ttl": "***", "price": 1.5}, "x": ["a://u:***@h"]}
    assert mask({"design": "kept", "signal": "kept"}) == {"design": "kept", "signal": "kept"}


async def test_audit_can_be_switched_off(make_executor, client, r, account, settings_for):
    ex = make_executor(FakeBroker(), audit_enabled=False)
    await client.send(order("o1"))
    await ex.run_until_idle()
    await client.replies(1)
    await ex.stop()
    assert await r.xlen(c.Keys(account).audit) == 0
    assert not (settings_for().state_dir / f"audit-{account}.log").exists()


def test_the_quick_secret_scan_knows_every_listed_word():
    # _maybe_secret spells _MAYBE_SECRET out for speed: the two must not drift apart (a word only in the list
    # would let a secret-like field through unmasked).
    from executor.safety import audit

    for word in audit._MAYBE_SECRET:
        assert audit._maybe_secret(f'{{"x{word.upper()}y": 1}}'), word
    assert not audit._maybe_secret('{"b.code":"600000.SH","b.side":"buy","b.volume":"100"}')

"""One hostile entry on the command stream (a strategy's own Redis connection can XADD anything there) must not
abort the settlement or the audit of the commands read with it (issue #10, defects 6 and 7), and the audit file's
rotation must not lose records when Windows refuses to rename a file another process holds open.

The attacks go in beside normal commands of the public client, all queued before the executor reads, so they are
read in ONE batch; the commands answered at once (a repeated order, pings) are then settled in one script call with
the hostile entry's dead letter."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from pathlib import Path

import msgpack
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from executor.safety import audit
from executor import transport as transport_module
from executor.app import build_executor
from executor.safety.audit import AuditTrail
from executor.transport import (FINISH_SCRIPT, XADD_MANY_SCRIPT, CommandTransport, Finish, StreamAppender,
                                TooManyValues)
from executor.sim.control import SimControl
from producer_lib import Client
from producer_lib import contract as c

try:
    import executor.sim  # noqa: F401
    HAVE_SIM = True
except Exception:  # pragma: no cover
    HAVE_SIM = False

pytestmark = pytest.mark.skipif(not HAVE_SIM, reason="executor.sim not importable")


def _sim_settings(settings_for, tmp_path):
    return settings_for(broker="sim", sim_path=tmp_path / "sim", ack_wait_ms=2_000, broker_timeout_ms=5_000)


async def _serve(settings):
    ex = build_executor(settings)
    return ex, asyncio.create_task(ex.run())


async def _stop(ex, task) -> None:
    ex.request_stop()
    await task


async def _queued(r: aioredis.Redis, key: str, n: int) -> None:
    """Until the command stream holds ``n`` entries (the clients' XADDs are done; bounded: never hangs a run)."""
    for _ in range(3_000):
        if await r.xlen(key) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the command stream never held {n} entries")


def _hostile_fields(account: str, reply_to: str, command_id: str, **extra) -> dict:
    fields = {c.F_VERSION: c.PROTOCOL_VERSION, c.F_TYPE: "ping", c.F_ACCOUNT: account, c.F_ID: command_id,
              c.F_COID: "", c.F_STRATEGY: "", c.F_REPLY_TO: reply_to, c.F_TTL_MS: "30000", c.F_BODY: b"\x80"}
    fields.update(extra)
    return fields


async def test_an_entry_too_wide_for_a_script_costs_no_other_command_its_answer(settings_for, tmp_path, r, account):
    """Defect 6: an entry of 5,000 fields made the settlement script's unpack() fail after its XACK: the entry was
    never dead-lettered and every command settled after it in that script call stayed unanswered until the idle
    claim (the callers' timeouts came first: OutcomeUnknown for placed orders)."""
    settings = _sim_settings(settings_for, tmp_path)
    keys = c.Keys(account)
    ex, task = await _serve(settings)
    async with Client(settings.redis_url, account, strategy="alpha") as client:
        first = await client.buy("600000.SH", 100, 10.5, client_order_id="wide-a")  # placed before the attack
        await _stop(ex, task)
        base = await r.xlen(keys.command_stream("alpha"))

        # The batch: new orders, the same order again (answered from the journal at once), pings, and the hostile
        # entry, XADDed with the strategy's own Redis connection.
        calls = [client.buy("600000.SH", 100, 10.5, client_order_id=f"wide-b{i}") for i in range(3)]
        calls += [client.buy("600000.SH", 100, 10.5, client_order_id="wide-a"), client.ping(), client.ping()]
        pending = [asyncio.ensure_future(call) for call in calls]
        strategy_redis = aioredis.Redis.from_url(settings.redis_url)
        wide = _hostile_fields(account, keys.replies("alpha.attacker"), "wide-1", type="no_such_command")
        wide.update({f"x{i}": "y" for i in range(5_000)})
        hostile_id = (await strategy_redis.xadd(keys.command_stream("alpha"), wide)).decode()
        await strategy_redis.aclose()
        await _queued(r, keys.command_stream("alpha"), base + len(calls) + 1)

        ex, task = await _serve(settings)
        try:
            results = await asyncio.gather(*pending)  # all answered (a failure raises CommandTimeout/OutcomeUnknown)
        finally:
            await _stop(ex, task)
    acks = results[:4]
    assert all(a.order_id > 0 for a in acks)
    assert acks[3].order_id == first.order_id and acks[3].duplicate
    assert all(p.executor_id == ex.executor_id for p in results[4:])
    # placed exactly once each, by the broker's own records
    placed = Counter(o["order_remark"] for o in SimControl(settings.sim_path).orders(account))
    assert {coid: placed[coid] for coid in ("wide-a", "wide-b0", "wide-b1", "wide-b2")} == dict.fromkeys(
        ("wide-a", "wide-b0", "wide-b1", "wide-b2"), 1)
    # the hostile entry: refused, dead-lettered with its reason and a bounded copy, answered, acknowledged
    dead = [{k.decode(): v for k, v in f.items()} for _, f in await r.xrange(keys.dead_letter)]
    mine = [d for d in dead if d["src_id"].decode() == hostile_id]
    assert len(mine) == 1, dead
    assert mine[0]["reason"] == b"invalid_request" and f"{len(wide)} fields".encode() in mine[0]["message"]
    assert mine[0]["orig_fields"] == str(len(wide)).encode() and mine[0]["orig.id"] == b"wide-1"
    assert len([k for k in mine[0] if k.startswith("orig.")]) == c.MAX_ENTRY_FIELDS
    reply = [c.decode_reply(sid, f) for sid, f in await r.xrange(keys.replies("alpha.attacker"))]
    assert [(rep.command_id, rep.error.code) for rep in reply] == [("wide-1", c.ErrorCode.INVALID_REQUEST)]
    assert (await r.xpending(keys.command_stream("alpha"), c.COMMAND_GROUP))["pending"] == 0


def _audit_lines(state_dir: Path, account: str) -> list[dict]:
    lines = []
    for path in sorted(state_dir.glob(f"audit-{account}.log*")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines


async def test_a_deeply_nested_body_costs_no_other_record_of_its_audit_batch(settings_for, tmp_path, r, account):
    """Defect 7: a body nested 600 levels made masking recurse into RecursionError and the whole audit batch (every
    command read with it) was lost from the file and the stream. Now decoding refuses it (typed, before anything
    walks it), and every other record of the batch is in both copies."""
    settings = _sim_settings(settings_for, tmp_path)
    keys = c.Keys(account)
    async with Client(settings.redis_url, account, strategy="alpha") as client:
        calls = [client.buy("600000.SH", 100, 10.5, client_order_id=f"deep-b{i}") for i in range(3)]
        calls += [client.ping(), client.query_outcome("deep-b0")]
        pending = [asyncio.ensure_future(call) for call in calls]
        strategy_redis = aioredis.Redis.from_url(settings.redis_url)
        body = b"\x81\xa1a" * 600 + b"\xc0"  # {"a": {"a": ... nil}}, 600 maps deep
        deep = _hostile_fields(account, keys.replies("alpha.attacker"), "deep-1", **{c.F_BODY: body})
        hostile_id = (await strategy_redis.xadd(keys.command_stream("alpha"), deep)).decode()
        await strategy_redis.aclose()
        await _queued(r, keys.command_stream("alpha"), len(calls) + 1)
        ex, task = await _serve(settings)
        try:
            results = await asyncio.gather(*pending)
        finally:
            await _stop(ex, task)  # writes the rest of the trail
    assert all(a.order_id > 0 for a in results[:3])
    reply = [c.decode_reply(sid, f) for sid, f in await r.xrange(keys.replies("alpha.attacker"))]
    assert [(rep.command_id, rep.error.code) for rep in reply] == [("deep-1", c.ErrorCode.INVALID_REQUEST)]
    assert "nested deeper than" in reply[0].error.message

    commands = {sid.decode(): f for sid, f in await r.xrange(keys.command_stream("alpha"))}
    ours = {sid for sid in commands if sid != hostile_id}
    assert len(ours) == len(calls)
    lines = _audit_lines(settings.state_dir, account)
    stream = [json.loads(f[b"data"]) for _, f in await r.xrange(keys.audit)]
    for copy in (lines, stream):
        assert {d["stream_id"] for d in copy if d["kind"] == "command"} == ours | {hostile_id}
        assert {d["stream_id"] for d in copy if d["kind"] == "reply"} == ours | {hostile_id}
        assert {d["coid"] for d in copy if d["kind"] == "decision"} >= {"deep-b0", "deep-b1", "deep-b2"}
        hostile = [d for d in copy if d["kind"] == "command" and d["stream_id"] == hostile_id]
        assert "refused: nested deeper than" in hostile[0]["fields"]["body"]
    assert not [d for d in lines if d["kind"] == "unauditable"]


async def test_a_record_that_cannot_be_serialized_is_recorded_unauditable_alone(r, account, tmp_path):
    """Per-record isolation: whatever makes one record fail, it is written as ``unauditable`` with its stream id and
    the records flushed with it are all written."""

    class Hostile:
        def __str__(self) -> str:
            raise ValueError("no text for you")

    keys = c.Keys(account)
    trail = AuditTrail(r, keys, tmp_path / "audit.log", "ex-test", flush_delay_s=0)
    trail.start()
    trail.command("1-1", 1, {b"id": b"before", b"type": b"ping"})
    trail.command("2-1", 1, {b"id": b"bad", b"x": Hostile()})
    nested: list = ["deep"]
    for _ in range(2_000):  # past orjson's limit (255) and Python's recursion limit
        nested = [nested]
    trail.record("halt", nested)
    trail.command("3-1", 1, {b"id": b"after", b"type": b"ping"})
    await trail.close()
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    stream = [json.loads(f[b"data"]) for _, f in await r.xrange(keys.audit)]
    assert lines == stream
    assert [(d["kind"], d.get("stream_id")) for d in lines] == [("command", "1-1"), ("unauditable", "2-1"),
                                                                 ("halt", None), ("command", "3-1")]
    assert "no text for you" in lines[1]["error"] and lines[1]["of_kind"] == "command"
    depth, value = 0, lines[2]["data"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert depth < audit.MASK_MAX_DEPTH and f"nested deeper than {audit.MASK_MAX_DEPTH}" in value


async def test_audit_rotation_refused_as_on_windows_loses_no_record(r, account, tmp_path, monkeypatch):
    """Windows refuses to rename a file another process holds open (no FILE_SHARE_DELETE): os.replace/os.rename
    raise PermissionError. The trail keeps every record in the current file while that lasts, and rotates once the
    file is free again, with nothing lost."""
    path = tmp_path / "audit.log"
    held = {"on": True}
    real_replace, real_rename = os.replace, os.rename

    def windows(real):
        def rename(src, dst, *a, **kw):
            if held["on"] and Path(src) == path:
                raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                          "process", str(src))
            return real(src, dst, *a, **kw)
        return rename

    monkeypatch.setattr(os, "replace", windows(real_replace))
    monkeypatch.setattr(os, "rename", windows(real_rename))
    errors: list[str] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record.getMessage()[:80]))
    keys = c.Keys(account)
    trail = AuditTrail(r, keys, path, "ex-test", file_max_bytes=4_096, file_backups=3, flush_delay_s=0)
    trail.start()

    handler = trail._handler

    async def write(start: int, n: int) -> None:
        for i in range(start, start + n):  # one flush (one file write, one size check) per record
            before = trail.written
            trail.record("halt", {"n": i, "pad": "x" * 200})
            for _ in range(10_000):  # until flushed (bounded: never hangs a run)
                if trail.written > before:
                    break
                await asyncio.sleep(0.001)
        last = f'"n":{start + n - 1},'  # the record that triggers a rotation is written after it: current file
        for _ in range(1_000):  # until the file thread has written it (bounded: it fails on a lost record)
            if path.exists() and last in path.read_text():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"record {start + n - 1} never reached the file; handler errors: {errors}")

    await write(0, 60)  # ~16 kB: four times the size limit, every rotation refused
    assert not list(tmp_path.glob("audit.log.*"))
    held["on"] = False  # the reader closed the file
    await write(60, 60)
    await trail.close()
    assert errors == [] and handler.failed_rotations >= 1
    assert (tmp_path / "audit.log.1").exists()
    numbers = []
    for p in [tmp_path / f"audit.log.{i}" for i in (3, 2, 1)] + [path]:
        if p.exists():
            numbers += [json.loads(line)["data"]["n"] for line in p.read_text().splitlines()]
    # oldest backups beyond file_backups are dropped by design; every record in the files is in order and the
    # newest 4 files hold a contiguous tail ending with the last record
    assert numbers == list(range(numbers[0], 120))
    assert numbers[0] == 0 or len(list(tmp_path.glob("audit.log.*"))) == 3


# --- the settlement mechanism itself ---------------------------------------------------------------------------------
async def _pending_entries(r: aioredis.Redis, keys: c.Keys, n: int) -> tuple[CommandTransport, list[str]]:
    transport = CommandTransport(r, keys, "settle-test")
    await transport.ensure_group()
    for i in range(n):
        await r.xadd(keys.commands, {"id": f"cmd-{i}"})
    entries, _ = await transport.read_new(n, None)
    return transport, [e.stream_id for e in entries]


def _answer(keys: c.Keys, sid: str, command_id: str) -> Finish:
    return Finish(stream_id=sid, reply_to=keys.replies("t.settle"),
                  reply=c.encode_reply(account=keys.account, command_id=command_id, command_type="ping",
                                       result=c.PingResult(executor_id="x", version="0", broker="sim",
                                                           broker_connected=True, redis_ok=True, uptime_s=0,
                                                           last_event_seq=0, commands_done=0)))


async def test_the_settlement_script_refuses_a_table_too_wide_before_writing_anything(r, account):
    """A script that stops midway keeps what it wrote (Redis rolls nothing back): the table is checked first."""
    keys = c.Keys(account)
    transport, (first, second) = await _pending_entries(r, keys, 2)
    wide = [x for i in range(5_000) for x in (f"f{i}", "v")]
    items = msgpack.packb([[3, first, 0, [], ["src_id", first]], [3, second, 0, [], wide]], use_bin_type=False)
    script = r.register_script(FINISH_SCRIPT)
    with pytest.raises(redis.exceptions.ResponseError, match="BADITEM"):
        await script(keys=[keys.lease, keys.dead_letter, keys.commands],  # KEYS[3]: the entries' command stream
                     args=["", c.COMMAND_GROUP, 100, 60, 100, items, 0])
    assert (await r.xpending(keys.commands, c.COMMAND_GROUP))["pending"] == 2  # not even the first one acked
    assert await r.xlen(keys.dead_letter) == 0


async def test_one_item_the_script_refuses_leaves_the_others_of_its_batch_settled(r, account, monkeypatch):
    keys = c.Keys(account)
    transport, (first, bad, last) = await _pending_entries(r, keys, 3)
    wide = {f"f{i}": "v" for i in range(5_000)}
    # An item too wide to pack is settled by a dead letter saying so; the others are answered.
    refused = _answer(keys, bad, "two")
    refused.dead = wide
    errors = await transport.finish([_answer(keys, first, "one"), refused, _answer(keys, last, "three")])
    assert [type(e).__name__ for e in errors] == ["TooManyValues"]
    replies = [c.decode_reply(sid, f).command_id for sid, f in await r.xrange(keys.replies("t.settle"))]
    assert replies == ["one", "two", "three"]  # its caller is still answered
    dead = [{k.decode(): v.decode() for k, v in f.items()} for _, f in await r.xrange(keys.dead_letter)]
    assert [(d["src_id"], d["reason"]) for d in dead] == [(bad, "unsettleable")]
    assert (await r.xpending(keys.commands, c.COMMAND_GROUP))["pending"] == 0

    # An item the script itself refuses (here: the Python-side bound switched off) costs only itself: the batch is
    # settled item by item and the refused one stays pending, nothing written for it.
    transport, (first, bad, last) = await _pending_entries(r, keys, 3)
    monkeypatch.setattr(transport_module, "_flat", lambda fields: [x for kv in fields.items() for x in kv])
    errors = await transport.finish([_answer(keys, first, "four"), Finish(stream_id=bad, dead=wide),
                                     _answer(keys, last, "five")])
    assert len(errors) == 1 and "BADITEM" in str(errors[0])
    replies = [c.decode_reply(sid, f).command_id for sid, f in await r.xrange(keys.replies("t.settle"))]
    assert replies == ["one", "two", "three", "four", "five"]
    pending = await r.xpending_range(keys.commands, c.COMMAND_GROUP, "-", "+", 10)
    assert [p["message_id"].decode() for p in pending] == [bad]
    assert await r.xlen(keys.dead_letter) == 1


async def test_appending_an_entry_too_wide_writes_nothing_of_its_batch(r, account):
    keys = c.Keys(account)
    appender = StreamAppender(r, keys.audit, 1_000)
    with pytest.raises(TooManyValues):
        await appender.add([{"a": "1"}, {f"f{i}": "v" for i in range(5_000)}])
    script = r.register_script(XADD_MANY_SCRIPT)
    wide = [x for i in range(5_000) for x in (f"f{i}", "v")]
    with pytest.raises(redis.exceptions.ResponseError, match="BADITEM"):
        await script(keys=[keys.audit], args=[1_000, msgpack.packb([["a", "1"], wide], use_bin_type=False)])
    assert await r.xlen(keys.audit) == 0


def test_a_rotation_cut_short_by_a_crash_is_finished_at_the_next_start(tmp_path):
    """Between moving the current file aside and placing it as backup 1 the process may die: the next start places
    it, so its records stay in the trail's files."""
    path = tmp_path / "audit.log"
    (tmp_path / "audit.log.1").write_text('{"n":1}\n')
    (tmp_path / "audit.log.rotating").write_text('{"n":2}\n')
    handler = audit.AuditFileHandler(path, 4_096, 3)
    handler.close()
    assert (tmp_path / "audit.log.2").read_text() == '{"n":1}\n'
    assert (tmp_path / "audit.log.1").read_text() == '{"n":2}\n'
    assert not (tmp_path / "audit.log.rotating").exists()

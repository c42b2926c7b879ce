"""The audit trail: every command, every admission decision, every reply and every broker result, kept long.

Two copies, written off the hot path by one background task (the engine only appends a tuple to a list):

* the stream ``xtq:{ACCOUNT}:audit`` (``MAXLEN ~ audit_stream_maxlen``, default 2 000 000): plain-text fields
  ``ts_ms kind account executor id coid data`` (``data`` is JSON), so ``redis-cli XREVRANGE xtq:{A}:audit + - COUNT
  20`` reads as is;
* the file ``state_dir/audit-ACCOUNT.log``: one JSON object per line, rotated by size (``AuditFileHandler``:
  ``audit_file_max_mb`` per file, ``audit_file_backups`` old files; a rotation that fails, as on Windows while
  another process holds the file open, keeps writing to the current file and is retried later).

Kinds: ``command`` (the entry as received: routing fields and decoded body), ``decision`` (orders only: accepted /
refused / duplicate, with the error code and the risk rule), ``reply`` (what the command's sender was told),
``broker`` (each broker event: responses, statuses, fills, rejections, cancels, positions, connection), ``halt``
(kill switch changes seen).

Secrets are masked before anything is written: values of fields named like ``sig``, ``signature``, ``password``,
``secret``, ``token``, ``hmac`` become ``***``, and ``scheme://user:password@`` in any string becomes
``scheme://user:***@``.

When Redis is unreachable the stream copy waits (bounded: the oldest entries beyond 100 000 are dropped from the
stream copy with a warning); the file copy is written regardless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import os
import queue
import re
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog

from executor.transport import StreamAppender
from producer_lib import contract as c

log = structlog.get_logger("executor.audit")

_SECRET_NAME = re.compile(r"(^|_|\.)(sig|signature|password|passwd|pwd|secret|token|hmac|api_key)($|_)", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)", re.I)
MASK = "***"
# A cheap test on the serialized line: every case ``mask`` changes (a secret-like key, a URL with a password) leaves
# one of these in the JSON text, so a line without any of them is written as is, without rebuilding the document.
# (Substring tests on the lower-cased line: an alternation regex costs ~10x more here.)
_MAYBE_SECRET = ("sig", "password", "passwd", "pwd", "secret", "token", "hmac", "api_key", "://")


def _maybe_secret(line: str) -> bool:
    low = line.lower()
    # spelled out: five records an order, and a generator over _MAYBE_SECRET costs nearly twice this (2.4 against
    # 1.4 µs on a place_order line)
    return ("sig" in low or "password" in low or "passwd" in low or "pwd" in low or "secret" in low
            or "token" in low or "hmac" in low or "api_key" in low or "://" in low)
_REDIS_BACKLOG = 100_000
_STREAM_BATCH = 2_000  # entries per script call


# Deeper than this, a value is written as a marker: masking (and the JSON dump after it) recurse once per level, so
# no payload can bring them near Python's recursion limit. What the executor records is a few levels deep; command
# bodies are refused past contract.MAX_BODY_NESTING before they get here.
MASK_MAX_DEPTH = 32


def mask(value: Any, name: str = "", _depth: int = 0) -> Any:
    """``value`` with secrets replaced (recursively through dicts and lists, ``MASK_MAX_DEPTH`` levels at most)."""
    if name and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, (dict, list, tuple)) and _depth >= MASK_MAX_DEPTH:
        return f"<nested deeper than {MASK_MAX_DEPTH} levels, not recorded>"
    if isinstance(value, dict):
        return {str(k): mask(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v, "", _depth + 1) for v in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", value)
    return value


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _json_value(value: Any, fast: bool) -> Any:
    """A model as JSON: pre-serialized by pydantic (embedded by orjson as is) or as plain values (maskable)."""
    if not hasattr(value, "model_dump_json"):
        return value
    return orjson.Fragment(value.model_dump_json()) if fast else value.model_dump(mode="json")


def entry_fields(fields: dict) -> dict[str, Any]:
    """A command entry's fields as JSON-able values: text fields decoded, the msgpack body unpacked; an entry beyond
    the contract's bounds is recorded cut to them (contract.bounded_fields), with its real size."""
    bounded, cut = c.bounded_fields(fields)
    out: dict[str, Any] = {}
    for k, v in bounded.items():
        name = _text(k)
        if name == c.F_BODY:
            try:
                out[name] = c.unpack_body(v)
            except c.NestingTooDeep as exc:
                out[name] = f"<{len(v)} bytes, refused: {exc}>"
            except Exception:
                out[name] = f"<{len(v)} bytes, not msgpack>"
        else:
            out[name] = _text(v)
    if cut:
        count, size = c.entry_size(fields)
        out["<cut>"] = f"entry of {count} fields and {size} bytes; recorded cut to the contract's bounds"
    return out


class AuditFileHandler(logging.handlers.RotatingFileHandler):
    """``RotatingFileHandler`` whose rotation never costs a record. On Windows a file another process holds open
    without FILE_SHARE_DELETE (an editor, ``Get-Content -Wait``, a log shipper) cannot be renamed: the stock handler
    then loses the record, and the next one, and every one after (each retries the rename and fails again). Here a
    failed rotation leaves every file where it was, the records go on into the current file, and the rotation is
    tried again after another ``retry_bytes`` were written."""

    def __init__(self, filename: Path, max_bytes: int, backups: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.retry_bytes = max(max_bytes // 16, 1)
        self._retry_at = 0  # file size before which a failed rotation is not tried again
        self.failed_rotations = 0
        moving = Path(self.baseFilename + ".rotating")
        if moving.exists():  # a rotation interrupted by a crash: finish it
            try:
                self._shift_and_place(moving)
            except OSError as exc:
                log.warning("audit: could not finish an interrupted rotation", file=str(moving), error=repr(exc))

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if not super().shouldRollover(record):
            return False
        return self.stream is None or self.stream.tell() >= self._retry_at

    def doRollover(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        try:
            if self.backupCount > 0:
                self._rotate()
            self._retry_at = 0
        except OSError as exc:
            self.failed_rotations += 1
            log.warning("audit: file rotation failed (held open by another process?); writing on to the current "
                        "file, rotation retried later", file=self.baseFilename, error=repr(exc))
            self.stream = self._open()
            self._retry_at = self.stream.tell() + self.retry_bytes
            return
        self.stream = self._open()

    def _rotate(self) -> None:
        base = Path(self.baseFilename)
        moving = base.with_name(base.name + ".rotating")
        # The current file moves first: when a reader holds it this fails before any backup has moved, so a failed
        # rotation leaves every file as it was (shifting backups first would drop the oldest at each retry).
        os.replace(base, moving)
        try:
            self._shift_and_place(moving)
        except OSError:
            os.replace(moving, base)  # a held backup: the current file goes back, records keep going to it
            raise

    def _shift_and_place(self, moving: Path) -> None:
        base = self.baseFilename
        for i in range(self.backupCount - 1, 0, -1):
            source = Path(f"{base}.{i}")
            if source.exists():
                os.replace(source, f"{base}.{i + 1}")
        os.replace(moving, f"{base}.1")


class AuditTrail:
    def __init__(self, redis: aioredis.Redis, keys: c.Keys, path: Path | None, executor_id: str, *,
                 stream_maxlen: int = c.AUDIT_STREAM_MAXLEN, file_max_bytes: int = 100 << 20,
                 file_backups: int = 20, enabled: bool = True, flush_delay_s: float = 0.005) -> None:
        self.redis = redis
        self.keys = keys
        self.path = path
        self.executor_id = executor_id
        self.stream_maxlen = stream_maxlen
        self.file_max_bytes = file_max_bytes
        self.file_backups = file_backups
        self.enabled = enabled
        self.flush_delay_s = flush_delay_s
        self._appender = StreamAppender(redis, keys.audit, stream_maxlen)
        self._queue: list[tuple[int, str, str, str, Any]] = []  # (ts_ms, kind, command id, coid, payload)
        self._backlog: list[dict[str, str]] = []  # stream entries not written yet (Redis down)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._handler: logging.Handler | None = None
        self._listener: logging.handlers.QueueListener | None = None
        self._file_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = False
        self.written = 0

    # --- appending (hot path: a tuple onto a list) ---------------------------------------------------------------
    def record(self, kind: str, payload: Any, *, command_id: str = "", coid: str = "") -> None:
        if not self.enabled:
            return
        self._queue.append((c.now_ms(), kind, command_id, coid, payload))
        self._wake.set()

    def command(self, stream_id: str, deliveries: int, fields: dict) -> None:
        self.record("command", ("fields", stream_id, deliveries, fields))

    def decision(self, command_id: str, coid: str, decision: str, error: c.ErrorInfo | None = None) -> None:
        self.record("decision", ("decision", decision, error), command_id=command_id, coid=coid)

    def reply(self, command_id: str, command_type: str, coid: str, stream_id: str, result: Any,
              error: c.ErrorInfo | None) -> None:
        self.record("reply", ("reply", command_type, stream_id, result, error), command_id=command_id, coid=coid)

    def broker(self, event: c.Event, coid: str = "") -> None:
        # (Fields read from __dict__: getattr of a field a pydantic model lacks takes its slow __getattr__ path.)
        coid = coid or event.__dict__.get("client_order_id") or ""
        self.record("broker", ("event", event), coid=coid)

    # --- lifecycle ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = AuditFileHandler(self.path, self.file_max_bytes, self.file_backups)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handler = handler
            # The file is written by the listener's own thread: the event loop only enqueues records.
            self._listener = logging.handlers.QueueListener(self._file_queue, handler)
            self._listener.start()
        self._task = asyncio.create_task(self._run(), name="audit")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (bounded by ``timeout_s`` for the stream copy), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._task.cancel()
                log.warning("audit: stream copy not fully written on close", left=len(self._backlog))
            self._task = None
        if self._listener is not None:
            self._listener.stop()  # drains the file queue
            self._listener = None
        if self._handler is not None:
            self._handler.close()
            self._handler = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing and self.flush_delay_s:
                # Let records gather for a few ms: fewer, larger writes, and the loop serves commands first.
                await asyncio.sleep(self.flush_delay_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("audit write failed")
                if self._closing:
                    return
                await asyncio.sleep(0.5)
            if self._closing and not self._queue and not self._backlog:
                return

    # --- writing (background) -----------------------------------------------------------------------------------------
    async def flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            docs, lines = [], []
            for item in batch:
                try:
                    doc, line = self._line(item)
                except Exception as exc:  # one record never costs the others theirs
                    doc, line = self._unauditable(item, exc)
                docs.append(doc)
                lines.append(line)
            if self._listener is not None:
                # One record per batch: one write, one flush and one rollover check for all its lines.
                self._file_queue.put(logging.LogRecord("xtqueue.audit", logging.INFO, "", 0, "\n".join(lines),
                                                       None, None))
            account, executor = self.keys.account, self.executor_id
            for d, line in zip(docs, lines):
                self._backlog.append({"ts_ms": str(d["ts_ms"]), "kind": d["kind"], "account": account,
                                      "executor": executor, "id": d.get("id", ""), "coid": d.get("coid", ""),
                                      "data": line})
            if len(self._backlog) > _REDIS_BACKLOG:
                dropped = len(self._backlog) - _REDIS_BACKLOG
                del self._backlog[:dropped]
                log.warning("audit stream backlog full; oldest entries kept in the file only", dropped=dropped)
        if self._backlog:
            entries = self._backlog[:_STREAM_BATCH]
            try:
                await self._appender.add(entries)
            except Exception as exc:
                log.warning("audit stream write failed; will retry", error=repr(exc), pending=len(entries))
                if self._closing:
                    raise
                await asyncio.sleep(0.2)
                self._wake.set()
                return
            del self._backlog[:len(entries)]
            self.written += len(entries)
            if self._backlog:
                self._wake.set()

    def _line(self, item: tuple[int, str, str, str, Any]) -> tuple[dict[str, Any], str]:
        """(document, its JSON line), secrets masked. Fast path: models serialized by pydantic straight to JSON
        and embedded as is (orjson), the line scanned for anything that may need masking; only a line that may
        hold a secret (or that orjson cannot take) is rebuilt as plain values, masked and dumped again."""
        doc = self._doc(item, fast=True)
        try:
            line = orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int beyond 64 bits: the slow path's json module takes anything
            line = ""
        if line and not _maybe_secret(line):
            return doc, line
        doc = mask(self._doc(item, fast=False))
        return doc, json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)

    def _unauditable(self, item: tuple[int, str, str, str, Any], exc: Exception) -> tuple[dict[str, Any], str]:
        """The record written in place of one that could not be serialized: what it was and where it came from."""
        ts_ms, kind, command_id, coid, payload = item
        try:
            error = f"{type(exc).__name__}: {exc}"[:300]
        except Exception:
            error = type(exc).__name__
        doc: dict[str, Any] = {"ts_ms": ts_ms, "kind": "unauditable", "account": self.keys.account,
                               "executor": self.executor_id, "of_kind": kind, "error": error}
        tag = payload[0] if isinstance(payload, tuple) and payload else None
        stream_id = payload[1] if tag == "fields" else payload[2] if tag == "reply" else None
        if isinstance(stream_id, str):
            doc["stream_id"] = stream_id
        if command_id:
            doc["id"] = command_id
        if coid:
            doc["coid"] = coid
        log.warning("audit: record not serializable; recorded as unauditable", kind=kind,
                    stream_id=doc.get("stream_id", ""), error=doc["error"])
        return doc, json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=repr)

    def _doc(self, item: tuple[int, str, str, str, Any], *, fast: bool) -> dict[str, Any]:
        ts_ms, kind, command_id, coid, payload = item
        doc: dict[str, Any] = {"ts_ms": ts_ms, "kind": kind, "account": self.keys.account,
                               "executor": self.executor_id}
        tag = payload[0] if isinstance(payload, tuple) and payload else None
        if tag == "fields":
            _, stream_id, deliveries, fields = payload
            data = entry_fields(fields)
            command_id = command_id or str(data.get(c.F_ID, ""))
            coid = coid or str(data.get(c.F_COID, ""))
            doc.update(stream_id=stream_id, deliveries=deliveries, type=data.get(c.F_TYPE, ""),
                       strategy=data.get(c.F_STRATEGY, ""), fields=data)
        elif tag == "decision":
            _, decision, error = payload
            doc["decision"] = decision
            if error is not None:
                doc.update(code=error.code.value, message=error.message, details=error.details)
        elif tag == "reply":
            _, command_type, stream_id, result, error = payload
            doc.update(type=command_type, stream_id=stream_id, ok=error is None)
            if error is not None:
                doc["error"] = _json_value(error, fast)
            elif result is not None:
                doc["result"] = _json_value(result, fast)
        elif tag == "event":
            event = payload[1]
            doc.update(type=event.TYPE, event=_json_value(event, fast))
            fields = event.__dict__
            order_id = fields.get("order_id")
            if order_id is None:
                inner = fields.get("order") or fields.get("trade")
                if inner is not None:
                    order_id = inner.order_id
                    coid = coid or inner.client_order_id or ""
            if order_id is not None:
                doc["order_id"] = order_id
        else:
            doc["data"] = payload
        if command_id:
            doc["id"] = command_id
        if coid:
            doc["coid"] = coid
        return doc

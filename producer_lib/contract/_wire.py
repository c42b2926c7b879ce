"""The wire encoding: protocol 2/3 entries (body as msgpack, or b.*/j.* fields), their bounds, and the one
encode/decode pair per direction (commands, replies, events)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from pydantic import BaseModel, ValidationError

from producer_lib.contract._keys import (
    F_ACCOUNT, F_BODY, F_CMD, F_COID, F_ERROR, F_ID, F_JSON_PREFIX, F_OK, F_ORDER_ID, F_REPLY_TO, F_SCALAR_PREFIX,
    F_SENT_MS, F_SEQ, F_STRATEGY, F_TS_MS, F_TTL_MS, F_TYPE, F_VERSION, MAX_BODY_NESTING, MAX_ENTRY_BYTES,
    MAX_ENTRY_FIELDS, MAX_TTL_MS, PROTOCOL_VERSION, SUPPORTED_VERSIONS, _ENVELOPE_NAMES, now_ms,
)
from producer_lib.contract._enums import ErrorCode
from producer_lib.contract._models import COMMAND_TYPES, Command, ErrorInfo, RESULT_TYPES, _Model
from producer_lib.contract._events import EVENT_TYPES, Event


# --- Encoding ---------------------------------------------------------------------------------------------------
def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


class NestingTooDeep(ValueError):
    """msgpack data nested deeper than ``MAX_BODY_NESTING``: refused before anything walks it recursively."""


def unpack_body(data: bytes) -> Any:
    """A command body (written by a producer: untrusted) unpacked within the contract's bounds. msgpack bounds every
    length by the data's own (at most ``MAX_ENTRY_BYTES`` here: decode_envelope, bounded_fields) and its C unpacker's
    nesting (1,024: StackError); the depth walk below is iterative, so no input reaches a recursion limit here, and
    whatever this returns is at most ``MAX_BODY_NESTING`` deep."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.StackError, RecursionError):
        raise NestingTooDeep(f"nested deeper than {MAX_BODY_NESTING} levels") from None
    stack = [(obj, 1)] if isinstance(obj, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_BODY_NESTING:
                    raise NestingTooDeep(f"nested deeper than {MAX_BODY_NESTING} levels")
                stack.append((child, depth + 1))
    return obj


def entry_size(fields: dict) -> tuple[int, int]:
    """(fields, bytes of names and values added up) of a stream entry."""
    try:  # bytes/str names and values (what Redis returns): counted in C
        return len(fields), sum(map(len, fields)) + sum(map(len, fields.values()))
    except TypeError:
        return len(fields), sum(_size(k) + _size(v) for k, v in fields.items())


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, str)) else len(str(value))


def bounded_fields(fields: dict) -> tuple[dict, bool]:
    """A copy of an entry's fields cut to ``MAX_ENTRY_FIELDS`` fields and ``MAX_ENTRY_BYTES`` bytes (the envelope's
    own fields first, so a cut copy still says what it was), and whether anything was cut. An entry within the
    bounds is copied as is."""
    count, size = entry_size(fields)
    if count <= MAX_ENTRY_FIELDS and size <= MAX_ENTRY_BYTES:
        return dict(fields), False
    known = {n for name in _ENVELOPE_NAMES for n in (name, name.encode())}
    order = [k for k in fields if k in known] + [k for k in fields if k not in known]
    out: dict = {}
    budget = MAX_ENTRY_BYTES
    for name in order[:MAX_ENTRY_FIELDS]:
        value = fields[name]
        key = name[:128] if isinstance(name, (bytes, str)) else name
        room = budget - _size(key)
        if room <= 0:
            break
        if isinstance(value, (bytes, str)):
            value = value[:room]
        out[key] = value
        budget -= _size(key) + _size(value)
    return out, True


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _field(fields: dict, name: str) -> Any:
    """Read a field from a stream entry whose keys may be bytes (decode_responses=False) or str."""
    value = fields.get(name.encode())
    if value is None:
        value = fields.get(name)
    return value


class Envelope(_Model):
    """The routing part of a command entry, as read from the stream."""

    version: str
    type: str
    account: str
    command_id: str
    client_order_id: str = ""
    reply_to: str = ""
    ttl_ms: int
    sent_ms: int = 0
    strategy: str = ""


def encode_command(command: Command, *, account: str, command_id: str, reply_to: str, ttl_ms: int,
                   sent_ms: int | None = None) -> dict[str, Any]:
    """Build the stream entry (field → value) of a command."""
    data = command.model_dump(mode="json", exclude_none=True)
    coid = data.pop("client_order_id", "") if "client_order_id" in command.ENVELOPE_FIELDS else ""
    strategy = data.pop("strategy", "") if "strategy" in command.ENVELOPE_FIELDS else ""
    entry = {
        F_VERSION: PROTOCOL_VERSION,
        F_TYPE: command.TYPE,
        F_ACCOUNT: account,
        F_ID: command_id,
        F_COID: coid or "",
        F_STRATEGY: strategy or "",
        F_REPLY_TO: reply_to,
        F_TTL_MS: str(int(ttl_ms)),
        F_SENT_MS: str(now_ms() if sent_ms is None else sent_ms),
    }
    for name, value in data.items():  # a command body is flat and None-free (exclude_none)
        entry[F_SCALAR_PREFIX + name] = _scalar_text(value)
    return entry


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_NESTED: dict[type, frozenset[str]] = {}  # per model class: its fields that hold a nested report (flattened)


def _nested_fields(cls: type) -> frozenset[str]:
    found = _NESTED.get(cls)
    if found is None:
        found = frozenset(name for name, info in cls.model_fields.items()  # type: ignore[attr-defined]
                          if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
        _NESTED[cls] = found
    return found


def _put_body(entry: dict[str, Any], model: BaseModel, data: dict[str, Any], prefix: str = "") -> None:
    """``model`` (dumped as ``data``) into ``entry`` as b.* / j.* fields; a nested report is flattened."""
    nested = _nested_fields(type(model))
    scalar, as_json = F_SCALAR_PREFIX + prefix, F_JSON_PREFIX + prefix
    for name, value in data.items():
        kind = type(value)
        if kind is str:
            entry[scalar + name] = value
        elif kind is int or kind is float:
            entry[scalar + name] = str(value)
        elif kind is bool:
            entry[scalar + name] = "true" if value else "false"
        elif kind is dict and name in nested:
            _put_body(entry, getattr(model, name), value, f"{prefix}{name}.")
        else:  # None, a list, a dict that is not a report
            entry[as_json + name] = _json_text(value)


# Per field name (as read from Redis): (0 not a body field / 1 b.* / 2 j.*, the name as text, its path). Field
# names of replies and events are a small fixed set; the bound keeps garbage names from growing it.
_PATHS: dict[Any, tuple[int, str, tuple[str, ...]]] = {}
_PATHS_MAX = 4_096


def _path_of(key: Any) -> tuple[int, str, tuple[str, ...]]:
    hit = _PATHS.get(key)
    if hit is None:
        name = key.decode("utf-8") if type(key) is bytes else str(key)
        kind = 1 if name[:2] == F_SCALAR_PREFIX else 2 if name[:2] == F_JSON_PREFIX else 0
        hit = (kind, name, tuple(name[2:].split(".")) if kind else ())
        if len(_PATHS) < _PATHS_MAX:
            _PATHS[key] = hit
    return hit


def read_body(fields: dict, *, flat: bool = False) -> dict[str, Any]:
    """The body of an entry: its msgpack ``body`` field (protocol 2) or its b.* / j.* fields (3) as a dict for the
    models to validate (pydantic turns "100" into 100 where the model says int). ``flat`` (commands: written by
    producers, untrusted) allows b.<name> fields only. ValueError for anything unreadable."""
    raw = _field(fields, F_BODY)
    if raw is not None and _text(_field(fields, F_VERSION)) != "3":  # protocol 2 (or an entry naming none)
        return unpack_body(raw)
    body: dict[str, Any] = {}
    for key, value in fields.items():
        kind, name, parts = _path_of(key)
        if kind == 1:
            item: Any = value.decode("utf-8") if type(value) is bytes else value
        elif kind == 2 and not flat:
            try:  # written by the executor (replies, events); a hostile depth ends in RecursionError, not a crash
                item = json.loads(value)
            except RecursionError:
                raise ValueError(f"{name} is nested too deeply") from None
        elif kind == 2 or (flat and name == F_BODY):
            raise ValueError(f"a command's body is b.<name> text fields only, not {name!r}")
        else:
            continue
        if len(parts) == 1:  # the common case: a top-level field
            leaf, node = parts[0], body
        else:
            if flat or not all(parts):
                raise ValueError(f"bad body field name {name!r}")
            node = body
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if type(node) is not dict:
                    raise ValueError(f"body field {name!r} clashes with another")
            leaf = parts[-1]
        if not leaf or leaf in node:
            raise ValueError(f"bad or repeated body field {name!r}")
        node[leaf] = item
    return body


def body_bytes(fields: dict) -> bytes:
    """An entry's body as bytes, for comparing two entries' content: the msgpack field (protocol 2) or the b.* /
    j.* fields, sorted, as netstrings (3)."""
    raw = _field(fields, F_BODY)
    if raw is not None and _text(_field(fields, F_VERSION)) != "3":  # protocol 2 (or an entry naming none)
        return raw if isinstance(raw, bytes) else str(raw).encode()
    items = []
    for key, value in fields.items():
        name = key if isinstance(key, bytes) else str(key).encode()
        if name.startswith((F_SCALAR_PREFIX.encode(), F_JSON_PREFIX.encode())):
            data = value if isinstance(value, bytes) else str(value).encode()
            items.append(b"%d:%s,%d:%s," % (len(name), name, len(data), data))
    return b"".join(sorted(items))


class ContractError(Exception):
    """A stream entry that cannot be turned into a command. Carries whatever routing was readable."""

    def __init__(self, code: ErrorCode, message: str, *, command_id: str = "", reply_to: str = "",
                 command_type: str = "", client_order_id: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command_id = command_id
        self.reply_to = reply_to
        self.command_type = command_type
        self.client_order_id = client_order_id
        self.details = details or {}


class EntryTooLarge(ContractError):
    """A command entry with more fields or bytes than the contract allows (``MAX_ENTRY_FIELDS``,
    ``MAX_ENTRY_BYTES``): refused, never executed."""


class BodyTooDeep(ContractError):
    """A command body nested deeper than ``MAX_BODY_NESTING``: refused, never executed."""


def decode_envelope(fields: dict) -> Envelope:
    """Read the routing fields of a command entry. Raises ContractError (with what was readable) on failure."""
    try:
        command_id = _text(_field(fields, F_ID))
        reply_to = _text(_field(fields, F_REPLY_TO))
        ctype = _text(_field(fields, F_TYPE))
        coid = _text(_field(fields, F_COID))
    except UnicodeDecodeError:
        raise ContractError(ErrorCode.INVALID_REQUEST, "routing fields are not UTF-8 text") from None
    known = dict(command_id=command_id[:64], reply_to=reply_to, command_type=ctype[:64], client_order_id=coid[:64])
    count, size = entry_size(fields)
    if count > MAX_ENTRY_FIELDS or size > MAX_ENTRY_BYTES:
        raise EntryTooLarge(ErrorCode.INVALID_REQUEST,
                            f"entry has {count} fields and {size} bytes; a command has at most {MAX_ENTRY_FIELDS} "
                            f"fields and {MAX_ENTRY_BYTES} bytes", **known,
                            details={"fields": count, "bytes": size, "max_fields": MAX_ENTRY_FIELDS,
                                     "max_bytes": MAX_ENTRY_BYTES})
    try:
        version = _text(_field(fields, F_VERSION))
        account = _text(_field(fields, F_ACCOUNT))
        ttl_raw = _text(_field(fields, F_TTL_MS))
        sent_raw = _text(_field(fields, F_SENT_MS))
        strategy = _text(_field(fields, F_STRATEGY))
    except UnicodeDecodeError:
        raise ContractError(ErrorCode.INVALID_REQUEST, "routing fields are not UTF-8 text", **known) from None
    if not command_id:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"missing field {F_ID!r}", **known)
    if version not in SUPPORTED_VERSIONS:
        raise ContractError(ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol version {version!r} is not supported (this executor speaks "
                            f"{', '.join(sorted(SUPPORTED_VERSIONS))})", **known)
    try:
        ttl_ms = int(ttl_raw) if ttl_raw else -1
        sent_ms = int(sent_raw) if sent_raw else 0
    except ValueError:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"{F_TTL_MS}/{F_SENT_MS} must be integers", **known) from None
    if not 0 <= ttl_ms <= MAX_TTL_MS:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"{F_TTL_MS} must be between 0 and {MAX_TTL_MS}", **known)
    try:
        return Envelope(version=version, type=ctype, account=account, command_id=command_id, client_order_id=coid,
                        reply_to=reply_to, ttl_ms=ttl_ms, sent_ms=sent_ms, strategy=strategy)
    except ValidationError as exc:
        raise ContractError(ErrorCode.INVALID_REQUEST, _validation_message(exc), **known) from None


def decode_command(fields: dict, envelope: Envelope | None = None) -> tuple[Envelope, Command]:
    """Turn a stream entry into (envelope, command). Raises ContractError for anything unreadable or invalid."""
    env = envelope or decode_envelope(fields)
    known = dict(command_id=env.command_id, reply_to=env.reply_to, command_type=env.type,
                 client_order_id=env.client_order_id)
    cls = COMMAND_TYPES.get(env.type)
    if cls is None:
        raise ContractError(ErrorCode.UNKNOWN_COMMAND, f"unknown command type {env.type!r}", **known)
    if env.version == "2":
        raw = _field(fields, F_BODY)
        try:
            data = unpack_body(raw) if raw else {}
        except NestingTooDeep as exc:
            raise BodyTooDeep(ErrorCode.INVALID_REQUEST, f"body is {exc}", **known,
                              details={"max_nesting": MAX_BODY_NESTING}) from None
        except Exception:
            raise ContractError(ErrorCode.INVALID_REQUEST, "body is not valid msgpack", **known) from None
        if not isinstance(data, dict):
            raise ContractError(ErrorCode.INVALID_REQUEST, "body must be a msgpack map", **known)
    else:
        try:
            data = read_body(fields, flat=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(ErrorCode.INVALID_REQUEST, f"body: {exc}"[:300], **known) from None
    for name in cls.ENVELOPE_FIELDS:
        if name in data:
            raise ContractError(ErrorCode.INVALID_REQUEST, f"{name!r} belongs in the envelope, not the body", **known)
    if "client_order_id" in cls.ENVELOPE_FIELDS and env.client_order_id:
        data["client_order_id"] = env.client_order_id
    if "strategy" in cls.ENVELOPE_FIELDS and env.strategy:
        data["strategy"] = env.strategy
    try:
        return env, cls.model_validate(data)
    except ValidationError as exc:
        raise ContractError(ErrorCode.INVALID_REQUEST, _validation_message(exc), **known) from None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def encode_reply(*, account: str, command_id: str, command_type: str, client_order_id: str = "",
                 result: BaseModel | None = None, error: ErrorInfo | None = None,
                 version: str = PROTOCOL_VERSION) -> dict[str, Any]:
    """Build the stream entry of a reply: exactly one of ``result`` / ``error``; in the protocol ``version`` of the
    command it answers (a v2 client reads only v2 replies)."""
    if (result is None) == (error is None):
        raise ValueError("a reply carries exactly one of result and error")
    model = result if result is not None else error
    body = model.model_dump(mode="json")  # type: ignore[union-attr]
    entry = {
        F_VERSION: version if version in SUPPORTED_VERSIONS else PROTOCOL_VERSION,
        F_TYPE: "reply",
        F_ACCOUNT: account,
        F_ID: command_id,
        F_CMD: command_type,
        F_COID: client_order_id or "",
        F_OK: "1" if error is None else "0",
        F_ERROR: "" if error is None else error.code.value,
        F_TS_MS: str(now_ms()),
    }
    if entry[F_VERSION] == "2":
        entry[F_BODY] = pack(body)
    else:
        _put_body(entry, model, body)  # type: ignore[arg-type]
    return entry


class Reply(_Model):
    """A decoded reply: ``result`` on success (a RESULT_TYPES model), ``error`` on failure."""

    stream_id: str
    command_id: str
    command_type: str
    account: str
    client_order_id: str = ""
    ts_ms: int = 0
    result: Any = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_reply(stream_id: str | bytes, fields: dict) -> Reply:
    ctype = _text(_field(fields, F_CMD))
    ok = _text(_field(fields, F_OK)) == "1"
    body = read_body(fields)
    result: Any = None
    error: ErrorInfo | None = None
    if ok:
        cls = RESULT_TYPES.get(ctype)
        result = cls.model_validate(body) if cls else body
    else:
        error = ErrorInfo.model_validate(body)
    return Reply(stream_id=_text(stream_id), command_id=_text(_field(fields, F_ID)), command_type=ctype,
                 account=_text(_field(fields, F_ACCOUNT)), client_order_id=_text(_field(fields, F_COID)),
                 ts_ms=int(_text(_field(fields, F_TS_MS)) or 0), result=result, error=error)


def encode_event(event: Event, *, account: str, seq: int, client_order_id: str = "", order_id: int | None = None,
                 ts_ms: int | None = None) -> dict[str, Any]:
    entry = {
        F_VERSION: PROTOCOL_VERSION,
        F_TYPE: event.TYPE,
        F_ACCOUNT: account,
        F_SEQ: str(seq),
        F_COID: client_order_id or "",
        F_ORDER_ID: "" if order_id is None else str(order_id),
        F_TS_MS: str(now_ms() if ts_ms is None else ts_ms),
    }
    _put_body(entry, event, event.model_dump(mode="json"))
    return entry


class EventMessage(_Model):
    """One entry of an account's event stream, decoded. ``data`` is the typed event (None if the type is unknown
    to this version of the library: ``raw`` then holds the body)."""

    stream_id: str
    type: str
    account: str
    seq: int
    client_order_id: str = ""
    order_id: int | None = None
    ts_ms: int = 0
    data: Any = None
    raw: dict[str, Any] | None = None


def decode_event(stream_id: str | bytes, fields: dict) -> EventMessage:
    etype = _text(_field(fields, F_TYPE))
    body = read_body(fields)
    cls = EVENT_TYPES.get(etype)
    data = cls.model_validate(body) if cls else None
    order_id = _text(_field(fields, F_ORDER_ID))
    return EventMessage(stream_id=_text(stream_id), type=etype, account=_text(_field(fields, F_ACCOUNT)),
                        seq=int(_text(_field(fields, F_SEQ)) or 0), client_order_id=_text(_field(fields, F_COID)),
                        order_id=int(order_id) if order_id else None, ts_ms=int(_text(_field(fields, F_TS_MS)) or 0),
                        data=data, raw=None if cls else body)

"""The bookkeeping of the event stream, for both clients: resume ids, trimmed-stream and seq-gap detection (``Gap``),
decoding one event entry. No Redis calls: the twins (client.py, sync_client.py) read the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

from . import contract
from .contract import EventMessage


@dataclass(frozen=True)
class Gap:
    """Marker yielded by events(): events were lost before the next one. Re-sync by query (orders, trades...).

    ``reason`` is ``"seq"`` when the per-account seq jumped (``expected_seq`` → ``got_seq``), or ``"trimmed"``
    when entries after the resume id were trimmed from the stream (``got_seq`` is the first seq still there).
    """

    expected_seq: int | None
    got_seq: int | None
    reason: str

    SEQ: ClassVar[str] = "seq"
    TRIMMED: ClassVar[str] = "trimmed"



def parse_stream_id(value: Any) -> tuple[int, int]:
    text = contract._text(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def normalize_from_id(from_id: Any) -> str:
    """"$" (only new), "0" / "0-0" (from the start) or an entry id "ms-seq" / "ms" to resume after."""
    text = contract._text(from_id).strip()
    if text == "$":
        return text
    try:
        ms, seq = parse_stream_id(text)
    except ValueError:
        raise ValueError(f"from_id must be '$', '0' or a stream id like '1700000000000-0', not {from_id!r}") from None
    if ms < 0 or seq < 0:
        raise ValueError(f"invalid stream id {from_id!r}")
    return f"{ms}-{seq}"


def event_types_filter(types: Iterable[str] | None) -> frozenset[str] | None:
    if types is None:
        return None
    if isinstance(types, str):  # a lone string would be taken as its characters
        types = [types]
    return frozenset(str(getattr(t, "value", t)) for t in types)


def _info_get(info: dict, name: str) -> Any:
    value = info.get(name)
    return info.get(name.encode()) if value is None else value


def trimmed_after(from_id: str, info: dict | None, from_entry_exists: bool) -> bool:
    """True when entries after ``from_id`` may have been removed, so a reader resuming there could miss some.

    Trimming removes the oldest entries, so: the entry at ``from_id`` still there → nothing after it was trimmed;
    ``from_id`` older than the first entry → it was trimmed away, and possibly entries after it too (reported,
    even if only ``from_id`` itself went: a needless re-sync is harmless, a missed fill is not).
    """
    if info is None:
        # No stream. From the start nothing can be missing; but a saved id means the stream once had entries
        # (Redis lost its data, or someone deleted the key): whatever came after that id is gone.
        return from_id != "0-0"
    max_deleted = _info_get(info, "max-deleted-entry-id")  # Redis >= 7; moved by XDEL (not by trimming)
    if max_deleted is not None and parse_stream_id(max_deleted) > parse_stream_id(from_id):
        return True
    if from_id == "0-0":  # from the start: anything ever removed is missing
        added, length = _info_get(info, "entries-added"), _info_get(info, "length")
        if added is not None and length is not None:
            return int(added) > int(length)
        return first_entry_seq(info) not in (None, 1)
    if from_entry_exists:
        return False
    first = _info_get(info, "first-entry")
    if first:
        return parse_stream_id(first[0]) > parse_stream_id(from_id)
    # Empty stream: trimmed to nothing (or re-created after data loss). Entries after from_id are missing unless
    # from_id was the last id ever generated.
    last_generated = _info_get(info, "last-generated-id")
    return last_generated is None or parse_stream_id(last_generated) != parse_stream_id(from_id)


def first_entry_seq(info: dict | None) -> int | None:
    first = _info_get(info, "first-entry") if info else None
    if not first:
        return None
    try:
        return int(contract._text(contract._field(first[1], contract.F_SEQ)) or 0) or None
    except (ValueError, UnicodeDecodeError):
        return None


def decode_event_entry(stream_id: Any, fields: dict) -> EventMessage:
    """Decode an event entry; one this version cannot validate is still delivered (``data`` None, ``raw`` set)
    rather than dropped: a lost fill is worse than an untyped one."""
    try:
        return contract.decode_event(stream_id, fields)
    except Exception as exc:
        def text(name: str) -> str:
            try:
                return contract._text(contract._field(fields, name))
            except UnicodeDecodeError:
                return ""

        try:
            body = contract.read_body(fields)
        except Exception:
            body = None
        raw = dict(body) if isinstance(body, dict) else {"body": body}
        raw["_decode_error"] = f"{type(exc).__name__}: {exc}"[:500]

        def number(name: str) -> int | None:
            value = text(name)
            return int(value) if value.isdigit() else None

        return EventMessage(stream_id=contract._text(stream_id), type=text(contract.F_TYPE),
                            account=text(contract.F_ACCOUNT), seq=number(contract.F_SEQ) or 0,
                            client_order_id=text(contract.F_COID), order_id=number(contract.F_ORDER_ID),
                            ts_ms=number(contract.F_TS_MS) or 0, data=None, raw=raw)


class SeqTracker:
    """Follows the per-account seq of an event stream and reports the first event after a hole."""

    def __init__(self, expected: int | None) -> None:
        self.expected = expected

    def check(self, message: EventMessage) -> Gap | None:
        if message.seq <= 0:  # no seq on the entry: nothing to compare
            return None
        gap = None
        if self.expected is not None and message.seq != self.expected:
            gap = Gap(expected_seq=self.expected, got_seq=message.seq, reason=Gap.SEQ)
        self.expected = message.seq + 1
        return gap


def entry_seq(fields: dict) -> int | None:
    try:
        return int(contract._text(contract._field(fields, contract.F_SEQ)) or 0) or None
    except (ValueError, UnicodeDecodeError):
        return None


def xread_entries(response: Any) -> list[tuple[Any, dict]]:
    """The entries of a one-stream XREAD answer (RESP2 list or RESP3 dict)."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: {key: [[(id, fields), ...]]}
        batches = [value[0] if value else [] for value in response.values()]
    else:  # RESP2: [[key, [(id, fields), ...]], ...]
        batches = [item[1] for item in response]
    return [(sid, fields or {}) for batch in batches for sid, fields in batch]


def resume_point(from_id: str, *, last_entry: tuple[Any, dict] | None, from_entry: tuple[Any, dict] | None,
                 info: dict | None) -> tuple[str, SeqTracker, Gap | None]:
    """Where events() starts reading, the seq it expects next, and a Gap to report first (if any).

    ``last_entry`` is the stream's newest entry (for "$"); ``from_entry`` the entry at ``from_id`` if it still
    exists; ``info`` the XINFO STREAM answer (None when the stream does not exist).
    """
    if from_id == "$":
        if last_entry is None:
            return "0-0", SeqTracker(None), None
        seq = entry_seq(last_entry[1])
        return contract._text(last_entry[0]), SeqTracker(seq + 1 if seq else None), None
    if from_id == "0-0":
        expected: int | None = 1
    else:
        seq = entry_seq(from_entry[1]) if from_entry is not None else None
        expected = seq + 1 if seq else None
    if trimmed_after(from_id, info, from_entry is not None):
        # The tracker restarts at the first entry still there, so the same hole is not reported twice.
        return from_id, SeqTracker(None), Gap(expected_seq=expected, got_seq=first_entry_seq(info),
                                             reason=Gap.TRIMMED)
    return from_id, SeqTracker(expected), None

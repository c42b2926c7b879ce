"""The kill switch (``Keys.halt``, a stream): the fields of one change and the state read from the latest entry."""

from __future__ import annotations

from typing import Any

from producer_lib.contract._wire import _field


# --- Kill switch (xtq:{ACCOUNT}:halt, a stream; docs/operations.md "Kill switch") ---------------------------------
# Every change is one XADD with id "*": Redis assigns the id, strictly increasing per key, and that id is the
# version of the state it carries, so a reader can tell an older observation from a newer one. The latest entry is
# the state: "halted" "0" means resumed, any other value (or none) means halted (fail closed).
HALT_F_HALTED = "halted"
HALT_F_REASON = "reason"
HALT_MAXLEN = 1_000  # entries kept (approximate trim): the history of who halted when


def halt_entry(halted: bool, reason: str = "") -> dict[str, str]:
    """The fields of one kill switch change (XADD key MAXLEN ~ HALT_MAXLEN * ...)."""
    return {HALT_F_HALTED: "1" if halted else "0", HALT_F_REASON: reason}


def halt_state(entries: Any) -> tuple[tuple[int, int], bool, str | None]:
    """``XREVRANGE key + - COUNT 1`` of the halt key read as ``(version, halted, reason)``. No entry (no key, or an
    emptied stream) is version (0, 0), not halted. Raises ValueError for an entry id that is not "ms-seq"."""
    if not entries:
        return (0, 0), False, None
    sid, fields = entries[0]
    ms, _, seq = (sid.decode() if isinstance(sid, bytes) else str(sid)).partition("-")
    version = (int(ms), int(seq or 0))

    def text(name: str) -> str | None:
        value = _field(fields or {}, name)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else None if value is None else str(value)

    flag, reason = text(HALT_F_HALTED), text(HALT_F_REASON) or ""
    if flag is not None and flag.strip() == "0":
        return version, False, None
    return version, True, reason

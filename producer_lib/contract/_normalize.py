"""Code and side normalization: a code or side as a person types it, as the wire wants it."""

from __future__ import annotations

import re
from typing import Any

from producer_lib.ashare import CODE_RE
from producer_lib.contract._enums import _SIDE_VALUES


# A bare six-digit code's exchange, by its leading digits (the boards of executor/sim/rules.py, plus B shares).
# Index codes are not orders' business, so 000xxx is Shenzhen; 204xxx (SSE repo) is listed before 200 (SZSE B).
# A prefix not listed is refused with a clear message: the user adds .SH/.SZ/.BJ.
_EXCHANGE_OF_PREFIX: tuple[tuple[str, str], ...] = (
    ("204", "SH"), ("900", "SH"), ("200", "SZ"),
    ("60", "SH"), ("68", "SH"), ("50", "SH"), ("51", "SH"), ("52", "SH"), ("53", "SH"), ("56", "SH"), ("58", "SH"),
    ("11", "SH"),
    ("00", "SZ"), ("30", "SZ"), ("15", "SZ"), ("16", "SZ"), ("12", "SZ"),
    ("43", "BJ"), ("83", "BJ"), ("87", "BJ"), ("92", "BJ"),
)


def normalize_code(value: Any) -> str:
    """A code as a person types it, as the wire wants it: ``" 600000.sh"`` → ``"600000.SH"``, and a bare
    ``"600000"`` → ``"600000.SH"`` by its leading digits (``_EXCHANGE_OF_PREFIX``). ValueError, saying what to
    type, when it is not a code or its exchange cannot be told. The CLI and the producer library both use it; the
    executor accepts only the normalized form."""
    if not isinstance(value, str):
        raise ValueError(f"code must be a string like '600000.SH', not {value!r}")
    text = value.strip().upper()
    if re.fullmatch(r"[0-9]{6}", text):
        for prefix, exchange in _EXCHANGE_OF_PREFIX:
            if text.startswith(prefix):
                return f"{text}.{exchange}"
        raise ValueError(f"cannot tell the exchange of {value.strip()!r}: give it with its suffix, e.g. "
                         f"{text}.SH (Shanghai), {text}.SZ (Shenzhen) or {text}.BJ (Beijing)")
    if not CODE_RE.fullmatch(text):
        raise ValueError(f"{value!r} is not a code like 600000.SH, 000001.SZ or 830799.BJ (six digits, a dot, the "
                         "exchange; or the six digits alone)")
    return text


def normalize_side(value: Any) -> str:
    """``"BUY"``/``" Buy "``/``Side.BUY`` → ``"buy"``; the credit sides likewise (``"FIN_BUY"`` → ``"fin_buy"``).
    ValueError for anything that is not a Side."""
    text = str(getattr(value, "value", value)).strip().lower() if isinstance(value, str) else None
    if text not in _SIDE_VALUES:
        credit = ", ".join(sorted(_SIDE_VALUES - {"buy", "sell"}))
        raise ValueError(f"side must be buy or sell (or a credit side: {credit}), not {value!r}")
    return text

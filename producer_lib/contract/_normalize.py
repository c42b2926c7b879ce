"""Code and side normalization: a code or side as a person types it, as the wire wants it."""

from __future__ import annotations

from typing import Any

from producer_lib.ashare import BARE_CODE_RE, CODE_RE, exchange_of_digits
from producer_lib.contract._enums import _SIDE_VALUES


def normalize_code(value: Any) -> str:
    """A code as a person types it, as the wire wants it: ``" 600000.sh"`` → ``"600000.SH"``, and a bare
    ``"600000"`` → ``"600000.SH"`` by its leading digits (``ashare.exchange_of_digits``). ValueError, saying what to
    type, when it is not a code or its exchange cannot be told. The CLI and the producer library both use it; the
    executor accepts only the normalized form."""
    if not isinstance(value, str):
        raise ValueError(f"code must be a string like '600000.SH', not {value!r}")
    text = value.strip().upper()
    if BARE_CODE_RE.fullmatch(text):
        exchange = exchange_of_digits(text)
        if exchange is not None:
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

"""The simulated counter's refusals: stable error ids and the refusal text, shaped like the broker counter's."""

from __future__ import annotations

from typing import Any

from . import rules as R


# --- error ids (stable) -------------------------------------------------------------------------------------
# tier 1: MiniQMT refuses before an order exists
E_DISCONNECTED = 100001
E_BAD_CODE = 100002
E_BAD_VOLUME = 100003
E_BAD_ORDER_TYPE = 100004
E_BAD_PRICE_TYPE = 100005
E_MARKET_TYPE_EXCHANGE = 100006
E_UNKNOWN_ACCOUNT = 100007
E_INJECTED = 100009
# tier 2: the counter refuses (order row with status 57)
E_LOT = 100201
E_MAX_VOLUME = 100202
E_TICK = 100301
E_PRICE_LIMIT = 100302
E_BAD_PRICE = 100303
E_FUNDS = 260200  # the counter's own id for 可用资金不足, as QMT reports it (executor/sim/README.md)
E_SELLABLE = 100501
E_ODD_LOT = 100502
E_SESSION = 12313  # the counter's own id for 当前时间不允许此类证券交易, as seen on MiniQMT (issue #11)
E_SESSION_MARKET = 100602
# cancels
E_CANCEL_UNKNOWN = 100701
E_CANCEL_TERMINAL = 100702
E_CANCEL_WINDOW = 100703
E_CANCEL_DISCONNECTED = 100704
E_CANCEL_LATE = 100705  # refused by the exchange after the counter took the cancel (Faults.refuse_cancels_late)


def msg(code: int, zh: str, en: str) -> str:
    """A refusal text shaped like the broker counter's (``[COUNTER] [12313][当前时间不允许此类证券交易]``, as
    MiniQMT reports it); the English detail after it is the simulator's. Nobody may parse it: the ids above say what it is."""
    return f"[COUNTER] [{code}][{zh}] {en}"



def _bad_code_text(code: Any) -> str:
    """Why a code has no quote: malformed (not six digits and an exchange), of no board of that exchange (999999.SH
    is well formed, but no SSE board starts 999), or a real board's code the simulator has no price for."""
    if not isinstance(code, str) or not R.CODE_RE.fullmatch(code):
        return f"malformed code {code!r}: six digits, a dot, SH/SZ/BJ"
    if R.classify(code) is None:
        return f"no security {code}: no board of {code[-2:]} has codes starting {code[:3]}"
    return f"unknown security code {code!r}: the simulator has no price for it (SimControl.set_price)"

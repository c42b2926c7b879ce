"""A-share facts, defined once: the stock-code pattern, the boards by code prefix, a bare code's exchange by its
prefix, and each board's lot, minimum buy, tick and daily price limit.

Used by the contract (a code's shape), the executor's risk limits (boards) and the simulator (lots, ticks, limits).
The numbers are those docs/architecture.md ("Facts about xtquant and the A-share market") lists; where a number is
not certain the stricter choice is taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A stock code: six ASCII digits (never \d: it also matches full-width and other Unicode digits, which would slip
# past blocked codes and boards), a dot, the exchange. Use CODE_RE.fullmatch ("$" alone also matches before a
# trailing newline).
CODE_RE = re.compile(r"^([0-9]{6})\.(SH|SZ|BJ)$")
BARE_CODE_RE = re.compile(r"[0-9]{6}")  # the six digits alone (fullmatch), as a person may type a code

# --- boards ---------------------------------------------------------------------------------------------------
SH_MAIN = "SH_MAIN"  # 上交所主板
STAR = "STAR"  # 科创板
SZ_MAIN = "SZ_MAIN"  # 深交所主板
CHINEXT = "CHINEXT"  # 创业板
BSE = "BSE"  # 北交所
ETF = "ETF"
LOF = "LOF"
CB = "CB"  # convertible bond 可转债

STOCK_BOARDS = frozenset({SH_MAIN, STAR, SZ_MAIN, CHINEXT, BSE})

_SH_ETF = ("510", "511", "512", "513", "515", "516", "517", "518", "520", "530", "560", "561", "562", "563", "588")
_SH_CB4 = ("1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1110", "1111", "1112", "1113",
           "1114", "1180", "1181", "1182", "1183", "1184")
_SZ_CB3 = ("122", "123", "124", "125", "126", "127", "128", "129")


def board_of(digits: str, suffix: str) -> str | None:
    """The board of a code's six digits on exchange ``suffix`` ("SH", "SZ", "BJ"); None: of no known board
    (indexes, repos, unknown prefixes)."""
    p2, p3, p4 = digits[:2], digits[:3], digits[:4]
    if suffix == "SH":
        if p3 in ("688", "689"):
            return STAR
        if p2 == "60":
            return SH_MAIN
        if p3 in _SH_ETF:
            return ETF
        if p3 in ("501", "502", "506"):
            return LOF
        if p3 in ("110", "112", "113") or p4 in _SH_CB4:
            return CB
        return None
    if suffix == "SZ":
        if p3 in ("000", "001", "002", "003", "004"):
            return SZ_MAIN
        if p2 == "30":
            return CHINEXT
        if p3 in ("158", "159"):
            return ETF
        if p2 == "16":
            return LOF
        if p4 in ("1210", "1211", "1212", "1213", "1214") or p3 in _SZ_CB3:
            return CB
        return None
    if suffix == "BJ":
        if p2 in ("43", "83", "87") or p3 == "920":
            return BSE
        return None
    return None


def board_of_code(code: str) -> str | None:
    """The board of ``code`` ("600000.SH"); None for a malformed code or one of no known board."""
    m = CODE_RE.fullmatch(code) if isinstance(code, str) else None
    return board_of(m.group(1), m.group(2)) if m else None


# --- the exchange of a bare code ------------------------------------------------------------------------------
# A bare six-digit code's exchange, by its leading digits: the boards above, plus B shares and SSE repos (not
# boards: no rules below). Index codes are not orders' business, so 000xxx is Shenzhen; 204xxx (SSE repo) is listed
# before 200 (SZSE B). A prefix not listed has no exchange here: the user adds .SH/.SZ/.BJ.
EXCHANGE_OF_PREFIX: tuple[tuple[str, str], ...] = (
    ("204", "SH"), ("900", "SH"), ("200", "SZ"),
    ("60", "SH"), ("68", "SH"), ("50", "SH"), ("51", "SH"), ("52", "SH"), ("53", "SH"), ("56", "SH"), ("58", "SH"),
    ("11", "SH"), *((p, "SH") for p in _SH_CB4 if p.startswith("100")),
    ("00", "SZ"), ("30", "SZ"), ("15", "SZ"), ("16", "SZ"), ("12", "SZ"),
    ("43", "BJ"), ("83", "BJ"), ("87", "BJ"), ("92", "BJ"),
)


def exchange_of_digits(digits: str) -> str | None:
    """"SH", "SZ" or "BJ" for a bare code's six digits (``EXCHANGE_OF_PREFIX``); None when its prefix tells none."""
    for prefix, exchange in EXCHANGE_OF_PREFIX:
        if digits.startswith(prefix):
            return exchange
    return None


# --- lots, ticks, limits --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BoardRules:
    """``lot``: the buy step; ``min_qty``: the smallest buy; ``tick``: the price step; ``limit_pct``: the daily
    price limit from the previous close; ``t0``: sellable the day it is bought; ``is_stock``: stamp duty and
    transfer fee apply."""

    lot: int
    min_qty: int
    tick: float
    limit_pct: float
    t0: bool
    is_stock: bool


BOARD_RULES: dict[str, BoardRules] = {
    SH_MAIN: BoardRules(100, 100, 0.01, 0.10, False, True),  # ST stocks: 5% (a per-code override)
    SZ_MAIN: BoardRules(100, 100, 0.01, 0.10, False, True),
    CHINEXT: BoardRules(100, 100, 0.01, 0.20, False, True),
    STAR: BoardRules(1, 200, 0.01, 0.20, False, True),  # min 200, then steps of 1
    BSE: BoardRules(1, 100, 0.01, 0.30, False, True),  # min 100, then steps of 1
    ETF: BoardRules(100, 100, 0.001, 0.10, False, False),
    LOF: BoardRules(100, 100, 0.001, 0.10, False, False),
    CB: BoardRules(10, 10, 0.001, 0.20, True, False),  # 1 lot = 10 bonds; T+0
}

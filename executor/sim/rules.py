"""A-share trading rules as pure functions: board classification, lots, ticks, price limits, fees, sessions.

Boards, lots, ticks and limits are docs/architecture.md's A1-A3, held by producer_lib/ashare.py. Where a number is
not certain, the value here is the stricter (safer-for-the-caller) choice and is listed in executor/sim/README.md.
Nothing here touches state; the engine feeds in holdings/prices and gets verdicts back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time as dtime

from xtquant import xtconstant as xc

# The boards, their code prefixes and each board's lot, tick and limit have one home: producer_lib/ashare.py.
from producer_lib.ashare import (BOARD_RULES, BSE, CB, CHINEXT, CODE_RE, ETF, LOF, SH_MAIN, STAR,  # noqa: F401
                                 STOCK_BOARDS, SZ_MAIN, board_of)

# --- boards --------------------------------------------------------------------------------------------------

MARKET_OF_SUFFIX = {"SH": xc.SH_MARKET, "SZ": xc.SZ_MARKET, "BJ": xc.MARKET_ENUM_BEIJING}


@dataclass(frozen=True, slots=True)
class Instrument:
    """Static facts about a code. ``lot`` is the buy step; ``min_qty`` the smallest buy (STAR 200, BSE 100)."""

    code: str
    board: str
    market: int  # xtconstant SH_MARKET / SZ_MARKET / MARKET_ENUM_BEIJING
    suffix: str  # "SH" / "SZ" / "BJ"
    lot: int
    min_qty: int
    tick: float
    limit_pct: float
    t0: bool  # sellable the day it is bought
    is_stock: bool  # stamp duty + transfer fee apply


def classify(code: str, *, st: bool = False, st_limit_pct: float = 0.05, limit_pct: float | None = None,
             t0: bool | None = None) -> Instrument | None:
    """Instrument facts for ``code`` ("600000.SH"), or None when the code is malformed or of no known class.

    ``st`` switches a main-board stock to ``st_limit_pct``; ``limit_pct``/``t0`` override (e.g. a STAR-index ETF
    at 20%, a money-market ETF that is T+0) — the universe table passes these per code.
    """
    m = CODE_RE.fullmatch(code) if isinstance(code, str) else None
    if not m:
        return None
    digits, suffix = m.group(1), m.group(2)
    board = board_of(digits, suffix)
    if board is None:
        return None
    market = MARKET_OF_SUFFIX[suffix]
    rules = BOARD_RULES[board]
    lot, min_qty, tick, pct, is_t0, is_stock = (rules.lot, rules.min_qty, rules.tick, rules.limit_pct, rules.t0,
                                                rules.is_stock)
    if st and board in (SH_MAIN, SZ_MAIN):
        pct = st_limit_pct
    if limit_pct is not None:
        pct = limit_pct
    if t0 is not None:
        is_t0 = t0
    return Instrument(code, board, market, suffix, lot, min_qty, tick, pct, is_t0, is_stock)


# --- money and price rounding ---------------------------------------------------------------------------------

def round_half_up(x: float, step: float) -> float:
    """Round to a multiple of ``step`` (0.01, 0.001), halves up; the epsilon absorbs binary float noise."""
    n = math.floor(x / step + 0.5 + 1e-9)
    return round(n * step, 6)


def money(x: float) -> float:
    """Round a CNY amount to the cent, halves up (the epsilon lifts binary ties such as 2.675 -> 2.68)."""
    # floor(n)/100 is the same double as float("n/100"); round(x, 2) is avoided: it goes through dtoa and is
    # the hottest call of the simulator otherwise.
    return math.floor(x * 100.0 + 0.5 + 1e-6) / 100.0


def on_tick(price: float, tick: float) -> bool:
    q = price / tick
    return abs(q - round(q)) < 1e-6


def price_limits(prev_close: float, inst: Instrument) -> tuple[float, float]:
    """(limit_down, limit_up) from the previous close, rounded to the tick (SZSE rule text: round half up)."""
    up = round_half_up(prev_close * (1.0 + inst.limit_pct), inst.tick)
    down = round_half_up(prev_close * (1.0 - inst.limit_pct), inst.tick)
    return max(down, inst.tick), up


# --- order size -----------------------------------------------------------------------------------------------

#: (limit-order max, market-order max) per order; None = no cap. ChiNext numbers are unverified (ref 7.2).
DEFAULT_MAX_ORDER_VOLUME: dict[str, tuple[int | None, int | None]] = {
    SH_MAIN: (1_000_000, 1_000_000),
    SZ_MAIN: (1_000_000, 1_000_000),
    STAR: (100_000, 50_000),
    CHINEXT: (300_000, 150_000),
    BSE: (1_000_000, 1_000_000),
    ETF: (None, None),
    LOF: (None, None),
    CB: (None, None),
}


def buy_volume_error(volume: int, inst: Instrument) -> str | None:
    """None if ``volume`` is a valid buy quantity; otherwise an English reason."""
    if inst.board in (STAR, BSE):
        if volume < inst.min_qty:
            return (f"volume {volume} is below the minimum {inst.min_qty} "
                    f"({'STAR min 200, then steps of 1' if inst.board == STAR else 'BSE min 100, then steps of 1'})")
        return None
    if volume % inst.lot:
        extra = " (convertible bonds trade in lots of 10)" if inst.board == CB else " (STAR min 200)"
        return f"volume {volume} is not a multiple of the board lot {inst.lot}{extra}"
    return None


def sell_volume_error(volume: int, sellable: int, inst: Instrument) -> str | None:
    """Odd-lot rule for sells (ref 7.2). ``sellable`` is can_use_volume before this order.

    Round-lot boards: ``q % lot == 0`` or ``q % lot == sellable % lot`` (the whole odd part goes in one order).
    STAR/BSE: ``q >= min_qty`` or ``q == sellable`` (a remainder below the minimum is sold in one order).
    Volume vs. holdings is checked separately (insufficient sellable volume).
    """
    if inst.board in (STAR, BSE):
        if volume >= inst.min_qty or volume == sellable:
            return None
        return (f"sell volume {volume} is below the minimum {inst.min_qty} and is not the whole remaining "
                f"holding {sellable}")
    if volume % inst.lot == 0 or volume % inst.lot == sellable % inst.lot:
        return None
    return (f"sell volume {volume} is not a multiple of {inst.lot} and its odd part {volume % inst.lot} is not "
            f"the holding's odd part {sellable % inst.lot} (odd lots must be sold in one order)")


# --- fees -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeeSchedule:
    commission_rate: float = 0.00025
    min_commission: float = 5.00
    stamp_duty_rate: float = 0.0005  # sells of stocks only
    transfer_fee_rate: float = 0.00001  # both sides, SH/SZ/BJ stocks only


def cum_commission(cum_amount: float, fees: FeeSchedule) -> float:
    """Commission owed for an order after ``cum_amount`` yuan has traded (the minimum applies per order)."""
    if cum_amount <= 0:
        return 0.0
    return money(max(cum_amount * fees.commission_rate, fees.min_commission))


def fill_fees(inst: Instrument, is_sell: bool, amount: float, cum_amount_before: float,
              fees: FeeSchedule) -> tuple[float, float, float]:
    """(commission increment, stamp duty, transfer fee) for one fill of ``amount`` yuan, each rounded to 0.01."""
    comm = money(cum_commission(cum_amount_before + amount, fees) - cum_commission(cum_amount_before, fees))
    stamp = money(amount * fees.stamp_duty_rate) if (is_sell and inst.is_stock) else 0.0
    transfer = money(amount * fees.transfer_fee_rate) if inst.is_stock else 0.0
    return comm, stamp, transfer


def buy_freeze(inst: Instrument, price: float, volume: int, cum_amount: float, cum_comm_charged: float,
               fees: FeeSchedule) -> float:
    """Cash to hold for the unfilled ``volume`` of a buy at worst ``price`` (an upper bound of what it can cost)."""
    if volume <= 0:
        return 0.0
    amount = price * volume
    comm = cum_commission(cum_amount + amount, fees) - cum_comm_charged
    transfer = money(amount * fees.transfer_fee_rate) if inst.is_stock else 0.0
    return money(amount + max(comm, 0.0) + transfer)


# --- price types ----------------------------------------------------------------------------------------------

# Broker price-type codes reported in XtOrder.price_type (EBrokerPriceType, ref 5.4). xtconstant has no names
# for these, so they are named here once.
BROKER_PRICE_LIMIT = 50
BROKER_PRICE_PEER_FIRST = 84
BROKER_PRICE_CONVERT_5_LIMIT = 85
BROKER_PRICE_MINE_FIRST = 86
BROKER_PRICE_INSTBUSI_RESTCANCEL = 87
BROKER_PRICE_CONVERT_5_CANCEL = 88
BROKER_PRICE_FULL_OR_CANCEL = 89

BROKER_PRICE_TYPE = {
    xc.FIX_PRICE: BROKER_PRICE_LIMIT,
    xc.LATEST_PRICE: BROKER_PRICE_LIMIT,  # converted to a limit at the last price
    xc.MARKET_SH_CONVERT_5_CANCEL: BROKER_PRICE_CONVERT_5_CANCEL,
    xc.MARKET_SZ_CONVERT_5_CANCEL: BROKER_PRICE_CONVERT_5_CANCEL,
    xc.MARKET_SH_CONVERT_5_LIMIT: BROKER_PRICE_CONVERT_5_LIMIT,
    xc.MARKET_PEER_PRICE_FIRST: BROKER_PRICE_PEER_FIRST,
    xc.MARKET_MINE_PRICE_FIRST: BROKER_PRICE_MINE_FIRST,
    xc.MARKET_SZ_INSTBUSI_RESTCANCEL: BROKER_PRICE_INSTBUSI_RESTCANCEL,
    xc.MARKET_SZ_FULL_OR_CANCEL: BROKER_PRICE_FULL_OR_CANCEL,
}

#: Exchange market price types valid per market (ref 5.3): SH/BJ 42-45, SZ 44-48.
MARKET_TYPES_BY_MARKET = {
    xc.SH_MARKET: frozenset({xc.MARKET_SH_CONVERT_5_CANCEL, xc.MARKET_SH_CONVERT_5_LIMIT,
                             xc.MARKET_PEER_PRICE_FIRST, xc.MARKET_MINE_PRICE_FIRST}),
    xc.MARKET_ENUM_BEIJING: frozenset({xc.MARKET_SH_CONVERT_5_CANCEL, xc.MARKET_SH_CONVERT_5_LIMIT,
                                       xc.MARKET_PEER_PRICE_FIRST, xc.MARKET_MINE_PRICE_FIRST}),
    xc.SZ_MARKET: frozenset({xc.MARKET_PEER_PRICE_FIRST, xc.MARKET_MINE_PRICE_FIRST,
                             xc.MARKET_SZ_INSTBUSI_RESTCANCEL, xc.MARKET_SZ_CONVERT_5_CANCEL,
                             xc.MARKET_SZ_FULL_OR_CANCEL}),
}
ALL_MARKET_TYPES = frozenset().union(*MARKET_TYPES_BY_MARKET.values())

#: Market types whose unfilled rest is cancelled at once (IOC); 48 is fill-or-kill.
IOC_TYPES = frozenset({xc.MARKET_SH_CONVERT_5_CANCEL, xc.MARKET_SZ_CONVERT_5_CANCEL,
                       xc.MARKET_SZ_INSTBUSI_RESTCANCEL, xc.MARKET_SZ_FULL_OR_CANCEL})
#: Market types whose rest stays working as a limit at the last price.
REST_AT_LAST_TYPES = frozenset({xc.MARKET_SH_CONVERT_5_LIMIT, xc.MARKET_PEER_PRICE_FIRST,
                                xc.MARKET_MINE_PRICE_FIRST})


# --- trading sessions -----------------------------------------------------------------------------------------

PHASE_CLOSED = "closed"
PHASE_OPEN_CALL = "open_call"  # 09:15-09:20 orders and cancels
PHASE_OPEN_CALL_NO_CANCEL = "open_call_no_cancel"  # 09:20-09:25
PHASE_PAUSE = "pause"  # 09:25-09:30 (treated as closed for orders and cancels; unverified, safest)
PHASE_CONTINUOUS = "continuous"  # 09:30-11:30, 13:00-14:57
PHASE_CLOSE_CALL = "close_call"  # 14:57-15:00 limit orders only, no cancels

_T = dtime


def session_phase(now: datetime) -> str:
    t = now.time()
    if _T(9, 15) <= t < _T(9, 20):
        return PHASE_OPEN_CALL
    if _T(9, 20) <= t < _T(9, 25):
        return PHASE_OPEN_CALL_NO_CANCEL
    if _T(9, 25) <= t < _T(9, 30):
        return PHASE_PAUSE
    if _T(9, 30) <= t < _T(11, 30) or _T(13, 0) <= t < _T(14, 57):
        return PHASE_CONTINUOUS
    if _T(14, 57) <= t < _T(15, 0):
        return PHASE_CLOSE_CALL
    return PHASE_CLOSED


def orders_allowed(phase: str) -> bool:
    return phase in (PHASE_OPEN_CALL, PHASE_OPEN_CALL_NO_CANCEL, PHASE_CONTINUOUS, PHASE_CLOSE_CALL)


def market_orders_allowed(phase: str) -> bool:
    return phase == PHASE_CONTINUOUS


def cancels_allowed(phase: str) -> bool:
    # Outside trading hours a cancel of a resting day order is still accepted by brokers' counters (they queue
    # it); in the exchange's no-cancel windows it is refused.
    return phase not in (PHASE_OPEN_CALL_NO_CANCEL, PHASE_PAUSE, PHASE_CLOSE_CALL)


def immediate_matching(phase: str) -> bool:
    """Only the continuous auction matches on arrival; call-auction orders wait for the next price update."""
    return phase == PHASE_CONTINUOUS


# --- remark ---------------------------------------------------------------------------------------------------

def cut_remark(remark: str, limit: int = 24) -> str:
    """MiniQMT keeps at most 24 bytes of UTF-8 (a Chinese char = 3); never split a character."""
    if not remark:
        return ""
    b = str(remark).encode("utf-8")
    if len(b) <= limit:
        return str(remark)
    return b[:limit].decode("utf-8", errors="ignore")

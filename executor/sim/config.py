"""Simulator settings: accounts, fees, rule overrides, clock, market feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .credit import CreditTerms
from .universe import DEFAULT_UNIVERSE, UniverseEntry

SHANGHAI = timezone(timedelta(hours=8))


def shanghai_now() -> datetime:
    """Naive Asia/Shanghai wall time (the exchange clock)."""
    return datetime.now(SHANGHAI).replace(tzinfo=None)


@dataclass
class AccountSeed:
    """Initial state of an account. ``positions``: code -> volume, or code -> (volume, avg_price).

    Seeded positions are yesterday's holdings: fully sellable today. ``credit``: a margin (两融) account with these
    terms (executor/sim/credit.py); None for a cash account.
    """

    cash: float = 1_000_000.00
    positions: dict[str, int | tuple[int, float]] = field(default_factory=dict)
    credit: CreditTerms | None = None


@dataclass
class RandomWalkConfig:
    """A seeded random walk over ``codes`` (default: the whole universe) every ``interval_ms``."""

    seed: int = 0
    sigma: float = 0.002  # per step, log-return standard deviation
    interval_ms: int = 500
    codes: list[str] | None = None


@dataclass
class SimConfig:
    accounts: dict[str, AccountSeed] = field(default_factory=lambda: {"SIM001": AccountSeed()})
    universe: dict[str, UniverseEntry] = field(default_factory=lambda: dict(DEFAULT_UNIVERSE))
    # fees
    commission_rate: float = 0.00025
    min_commission: float = 5.00
    stamp_duty_rate: float = 0.0005
    transfer_fee_rate: float = 0.00001
    # rules
    st_limit_pct: float = 0.05  # ±5% (the 2026 change to ±10% is unverified: set 0.10 to follow it)
    max_order_volume: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # board overrides
    fill_volume_cap: int | None = None  # max volume one order fills per price update (None: all at once)
    # sessions
    session_clock: bool = False
    clock: Callable[[], datetime] = shanghai_now
    # machinery
    control_poll_ms: int = 20
    db_filename: str = "xtsim.sqlite3"
    sqlite_synchronous: str = "NORMAL"  # WAL + NORMAL survives a process kill; FULL also survives power loss
    random_walk: RandomWalkConfig | None = None
    replay_csv: str | None = None  # path of a tick CSV replayed (as fast as possible) when the engine starts

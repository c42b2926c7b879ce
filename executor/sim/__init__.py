"""A pure-Python twin of ``xtquant.xttrader.XtQuantTrader`` for Linux development, tests and benchmarks.

    from executor.sim import SimXtQuantTrader, SimConfig, SimControl

See executor/sim/README.md for the behaviour choices and the fault/market controls.
"""

from .config import AccountSeed, RandomWalkConfig, SimConfig
from .control import SimControl
from .engine import Faults
from .market import MarketView, RandomWalk, read_ticks, replay_csv
from .trader import SimXtQuantTrader
from .universe import DEFAULT_UNIVERSE, UniverseEntry

__all__ = [
    "AccountSeed",
    "DEFAULT_UNIVERSE",
    "Faults",
    "MarketView",
    "RandomWalk",
    "RandomWalkConfig",
    "SimConfig",
    "SimControl",
    "SimXtQuantTrader",
    "UniverseEntry",
    "read_ticks",
    "replay_csv",
]

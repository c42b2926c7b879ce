"""The simulated broker behind the simulated MiniQMT (executor/sim/qmt): A-share rules, matching, SQLite
durability, faults on demand, prices under the caller's control. Programs reach it through xtquant's own
``XtQuantTrader`` over the stand-in binary; prices and faults are set with ``SimControl(DIR)`` from any process.

    from executor.sim import SimConfig, SimControl
    from executor.sim.qmt import QmtSimServer, install

See executor/sim/README.md for the behaviour choices and the fault/market controls.
"""

from .config import AccountSeed, RandomWalkConfig, SimConfig
from .control import SimControl
from .engine import Faults
from .market import MarketView, RandomWalk, read_ticks, replay_csv
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
    "UniverseEntry",
    "read_ticks",
    "replay_csv",
]

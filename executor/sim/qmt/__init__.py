"""A simulated MiniQMT in a process of its own, and a stand-in for xtquant's binary ``xtpythonclient``, so that
the wheel's own, unmodified ``xtquant.xttrader.XtQuantTrader`` runs on Linux against simulated accounts.

    from executor.sim.qmt import install, QmtSimServer
    server = QmtSimServer("/tmp/userdata_mini").start()      # or: xtqueue qmt-sim --path /tmp/userdata_mini
    install()                                                # in the trading process, before importing xttrader
    from xtquant.xttrader import XtQuantTrader

See executor/sim/README.md ("Simulated MiniQMT").
"""

from .install import install, is_stand_in, uninstall
from .child import ChildMiniQmt
from .endpoint import serving
from .server import FolderBusyError, QmtSimServer, serve

__all__ = ["ChildMiniQmt", "FolderBusyError", "QmtSimServer", "install", "is_stand_in", "serve", "serving",
           "uninstall"]

"""Make ``xtquant.xtpythonclient`` importable where the real binary cannot load, without touching the wheel.

``install()`` appends a finder to the END of ``sys.meta_path``. Python asks it only after every regular finder
failed to find ``xtquant.xtpythonclient``: on Windows the wheel's ``xtpythonclient.cp3XX-win_amd64.pyd`` is found
first and the stand-in is never used; on Linux (no loadable extension suffix matches) the finder loads
``executor/sim/qmt/xtpythonclient.py`` under that name. Nothing on disk is written or patched.

``install(first=True)`` puts the finder FIRST instead: the stand-in is used even where the real binary would load.
That is paper trading's guarantee (``xtqueue run --qmt-sim``): a program meant for the simulated MiniQMT never
reaches a real one. ``PATH_ENV``, when set, is the folder every stand-in client connects to, whatever path the
program passes (an unmodified program passes its own, e.g. ``D:\\国金QMT\\userdata_mini``).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

TARGET = "xtquant.xtpythonclient"
PATH_ENV = "XTQUEUE_QMT_SIM_PATH"
_SOURCE = Path(__file__).with_name("xtpythonclient.py")


class _StandInFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        return importlib.util.spec_from_file_location(TARGET, _SOURCE)


def install(*, first: bool = False) -> None:
    """Idempotent. Call it before ``from xtquant.xttrader import XtQuantTrader``. ``first``: before the regular
    finders (the stand-in even where the real binary loads)."""
    if first:
        uninstall()
        sys.meta_path.insert(0, _StandInFinder())
    elif not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        sys.meta_path.append(_StandInFinder())


def install_first() -> None:
    """``install(first=True)``: what ``xtqueue run --qmt-sim`` installs in every Python it starts."""
    install(first=True)


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _StandInFinder)]


def is_stand_in(module) -> bool:
    """True when ``module`` (``xtquant.xtpythonclient``) is this stand-in rather than the real binary."""
    return getattr(module, "__file__", None) is not None and Path(module.__file__).resolve() == _SOURCE.resolve()

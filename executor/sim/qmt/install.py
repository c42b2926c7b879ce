"""Make ``xtquant.xtpythonclient`` importable where the real binary cannot load, without touching the wheel.

``install()`` appends a finder to the END of ``sys.meta_path``. Python asks it only after every regular finder
failed to find ``xtquant.xtpythonclient``: on Windows the wheel's ``xtpythonclient.cp3XX-win_amd64.pyd`` is found
first and the stand-in is never used; on Linux (no loadable extension suffix matches) the finder loads
``executor/sim/qmt/xtpythonclient.py`` under that name. Nothing on disk is written or patched.
``install(first=True)`` is for a process that trades on the simulated MiniQMT only (``--broker sim``, and paper
trading under ``xtqueue run --qmt-sim``): the finder goes FIRST, so the stand-in is used on Windows too; a program
meant for the simulated MiniQMT never reaches a real one. ``PATH_ENV``, when set, is the folder every stand-in client
connects to, whatever path the program passes (an unmodified program passes its own, e.g.
``D:\\国金QMT\\userdata_mini``).
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
    """Idempotent. Call it before ``from xtquant.xttrader import XtQuantTrader``.

    ``first=True`` (``xtqueue executor --broker sim``): the stand-in is used even where the real binary would
    load, because the real binary talks to a real MiniQMT, never to the simulated one; such a process cannot use
    the real binary at all, so it raises if the real one was already imported."""
    if first:
        loaded = sys.modules.get(TARGET)
        if loaded is not None and not is_stand_in(loaded):
            raise RuntimeError("xtquant.xtpythonclient (the real binary) is already imported in this process: the "
                               "simulated MiniQMT needs the stand-in (one broker kind per process)")
        if not sys.meta_path or not isinstance(sys.meta_path[0], _StandInFinder):
            uninstall()
            sys.meta_path.insert(0, _StandInFinder())
        return
    if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        sys.meta_path.append(_StandInFinder())


def install_first() -> None:
    """``install(first=True)``: what ``xtqueue run --qmt-sim`` installs in every Python it starts."""
    install(first=True)


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _StandInFinder)]


def is_stand_in(module) -> bool:
    """True when ``module`` (``xtquant.xtpythonclient``) is this stand-in rather than the real binary."""
    return getattr(module, "__file__", None) is not None and Path(module.__file__).resolve() == _SOURCE.resolve()

"""The wheel's own ``XtQuantTrader`` on Linux, trading a real MiniQMT through xtqueue.

    from xtqueue.compat.remote import install; install()     # before importing xttrader
    from xtquant.xttrader import XtQuantTrader                # the wheel's own, unmodified class
    trader = XtQuantTrader(path, session, callback)           # path: a folder with xtqueue-remote.toml, or any
    trader.start(); trader.connect(); trader.subscribe(acc)   # folder when the environment says it all

or, for a program that must not change at all: ``python -m xtqueue.compat.remote prog.py ARGS`` (or ``xtqueue run
--redis URL -- python prog.py ARGS``). Where the executor is and as whom to speak: settings.py. How each call and
callback maps onto xtqueue, and what is not served: session.py and binary.py; README "Run your xtquant program
unchanged".
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

from .settings import RemoteSettings, SettingsError, load_settings

TARGET = "xtquant.xtpythonclient"
_SOURCE = Path(__file__).with_name("binary.py")

__all__ = ["RemoteSettings", "SettingsError", "install", "is_remote", "load_settings", "uninstall"]


class _RemoteFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        return importlib.util.spec_from_file_location(TARGET, _SOURCE)


class AlreadyLoaded(RuntimeError):
    """``xtquant.xtpythonclient`` was imported before install(): another binary (or stand-in) is already in use."""


def install() -> None:
    """Make ``import xtquant.xtpythonclient`` load the remote stand-in. Idempotent. Unlike the simulated MiniQMT's
    stand-in it goes FIRST in ``sys.meta_path``: asked for the remote, a program trades through xtqueue even on a
    Windows machine where the real binary would load. Raises AlreadyLoaded if another xtpythonclient is in use
    (the simulated MiniQMT's stand-in, or the real binary): one process trades through one."""
    loaded = sys.modules.get(TARGET)
    if loaded is not None and not is_remote(loaded):
        raise AlreadyLoaded(f"{TARGET} is already loaded from {getattr(loaded, '__file__', '?')}; call install() "
                            "before anything imports xtquant.xttrader")
    if not any(isinstance(f, _RemoteFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _RemoteFinder())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RemoteFinder)]


def is_remote(module) -> bool:
    """True when ``module`` (``xtquant.xtpythonclient``) is this stand-in."""
    return getattr(module, "STAND_IN", None) == "xtqueue-remote"

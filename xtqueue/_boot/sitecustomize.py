"""Run by every Python that ``xtqueue run`` starts, while the interpreter starts (xtqueue/launch.py).

It calls ``XTQUEUE_RUN_INSTALL`` (``module:function``, e.g. the stand-in for xtquant's binary), then imports the
``sitecustomize`` this one shadows (the user's own, or the distribution's), with this folder taken off
``sys.path`` so the program's ``sys.path`` is as without the launcher. If the install fails the process ends
here, exit code 1: a program the launcher was asked to redirect must not run without it (on Windows it would
reach the real MiniQMT).
"""

import importlib
import os
import sys

_HERE = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))


def _install() -> None:
    spec = os.environ.get("XTQUEUE_RUN_INSTALL", "")
    if not spec:
        return
    module, _, function = spec.partition(":")
    try:
        getattr(importlib.import_module(module), function)()
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the program must not start
        sys.stderr.write(f"xtqueue run: {sys.executable} could not install {spec}: {type(exc).__name__}: {exc}\n"
                         "  (is xtqueue installed in the environment of this Python?)\n")
        sys.stderr.flush()
        os._exit(1)


def _chain() -> None:
    sys.path[:] = [p for p in sys.path if os.path.normcase(os.path.abspath(p or os.curdir)) != _HERE]
    mine = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise  # the user's sitecustomize failed: site.py reports it as it would without the launcher
        if mine is not None:
            sys.modules["sitecustomize"] = mine


_install()
_chain()

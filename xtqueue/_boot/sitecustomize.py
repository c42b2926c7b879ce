"""Run by every Python that ``xtqueue run`` starts, while the interpreter starts (xtqueue/launch.py).

It puts a finder first on ``sys.meta_path`` that waits for the program's first import of
``xtquant.xtpythonclient`` (the binary that the launcher replaces; ``xtquant.xttrader`` imports it first thing),
then calls ``XTQUEUE_RUN_INSTALL`` (``module:function``) and lets the finders that installs answer. Deferred so
that a Python of the command that never trades (pip, a helper script) does not pay for importing the stand-in.
If the install fails, that import fails, naming why: a program the launcher was asked to redirect must not reach
the real binary (on Windows it would reach the real MiniQMT).

Then it imports the ``sitecustomize`` this one shadows (the user's own, or the distribution's), with this folder
taken off ``sys.path`` so the program's ``sys.path`` is as without the launcher.
"""

import importlib
import os
import sys

_HERE = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_REPLACED = "xtquant.xtpythonclient"


class _InstallOnFirstImport:
    def __init__(self, spec: str) -> None:
        self.spec = spec

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _REPLACED:
            return None
        sys.meta_path.remove(self)
        module, _, function = self.spec.partition(":")
        try:
            getattr(importlib.import_module(module), function)()
        except Exception as exc:
            raise ImportError(f"xtqueue run: {sys.executable} could not install {self.spec} before importing "
                              f"{fullname}: {type(exc).__name__}: {exc} (is xtqueue installed in the environment "
                              "of this Python?)", name=fullname) from exc
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            found = find(fullname, path, target) if find is not None else None
            if found is not None:
                return found
        return None


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


if os.environ.get("XTQUEUE_RUN_INSTALL"):
    sys.meta_path.insert(0, _InstallOnFirstImport(os.environ["XTQUEUE_RUN_INSTALL"]))
_chain()

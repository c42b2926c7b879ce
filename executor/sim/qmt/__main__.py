"""Run an unmodified xtquant program against a simulated MiniQMT:

    python -m executor.sim.qmt prog.py [args...]      # or: python -m executor.sim.qmt -m package.module [args...]

The stand-in binary is installed (install.py), then the program runs as ``__main__`` with its own arguments; its
``from xtquant.xttrader import XtQuantTrader`` is the wheel's class, and the path it passes is the folder a
``xtqueue qmt-sim --path DIR`` serves.
"""

from __future__ import annotations

import runpy
import sys

from .install import install


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        raise SystemExit(0 if argv else 2)
    install()
    if argv[0] == "-m" and len(argv) > 1:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, str(__import__("pathlib").Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

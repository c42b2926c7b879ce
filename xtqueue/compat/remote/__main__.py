"""Run an unmodified xtquant program against a real MiniQMT through xtqueue:

    python -m xtqueue.compat.remote prog.py [args...]      # or: python -m xtqueue.compat.remote -m pkg.module [args]

The remote stand-in binary is installed first (xtqueue/compat/remote/__init__.py), then the program runs as
``__main__`` with its own arguments. Settings come from the environment (XTQUEUE_REDIS_URL, XTQUEUE_ACCOUNT,
XTQUEUE_STRATEGY, ...) or ``xtqueue-remote.toml`` in the folder the program passes to XtQuantTrader (settings.py).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from . import install


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
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

"""``python -m executor``: the executor, through the xtqueue CLI when it is installed, else settings from the
environment only (XTQUEUE_*)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from xtqueue.cli import main as cli_main
    except ImportError:
        cli_main = None
    if cli_main is not None:
        return int(cli_main(["executor", *argv]) or 0)
    from executor.app import run
    from executor.config import ExecutorSettings

    return run(ExecutorSettings())


if __name__ == "__main__":
    sys.exit(main())

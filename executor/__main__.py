"""``python -m executor``: the executor command (executor/command.py), with the same flags as ``xtqueue executor``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from executor.command import main as command_main

    return command_main(argv)


if __name__ == "__main__":
    sys.exit(main())

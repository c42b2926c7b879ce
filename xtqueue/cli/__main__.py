"""``python -m xtqueue.cli``: the same as ``python -m xtqueue``."""

from xtqueue.cli import main

main()

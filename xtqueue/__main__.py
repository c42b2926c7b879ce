"""``python -m xtqueue``: the same as the ``xtqueue`` command."""

from xtqueue.cli import main

if __name__ == "__main__":
    main()

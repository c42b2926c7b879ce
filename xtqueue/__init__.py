"""xtqueue: a Redis-streams order executor for XunTou QMT / miniQMT.

This package holds the ``xtqueue`` command (``xtqueue.cli``) and its demo; strategies import ``producer_lib``,
the worker is ``executor``.
"""

from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("xtqueue")
except Exception:  # pragma: no cover - not installed (running from a checkout)
    __version__ = "0+unknown"

__all__ = ["__version__"]

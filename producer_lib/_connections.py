"""Connection plumbing shared by the executor and the async client.

redis-py's synchronous connections pack commands with hiredis (C); its asyncio connections still use a pure-Python
packer whose cost grows with every argument (it re-joins a growing buffer per argument). Our hot commands carry many
arguments (the executor's settlement script, pipelines of XADDs), so asyncio pools get a connection class that packs
with redis-py's own hiredis serializer: byte-for-byte the same wire format.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as _rex
from redis.asyncio.connection import ConnectionPool

#: "Redis cannot be reached now" (retry later), as redis-py raises it: the one definition. The clients catch these.
REDIS_DOWN_ERRORS = (_rex.ConnectionError, _rex.TimeoutError)
#: The same for the executor's asyncio loop, plus what a socket or a bounded wait raises beneath redis-py
#: (asyncio.TimeoutError is not an OSError before Python 3.11).
REDIS_DOWN_OR_IO_ERRORS = (*REDIS_DOWN_ERRORS, OSError, asyncio.TimeoutError)

try:
    import hiredis
    from redis.connection import HiredisRespSerializer
    from redis.utils import HIREDIS_AVAILABLE
except ImportError:  # pragma: no cover - older redis-py: keep its packer
    HIREDIS_AVAILABLE = False

_FAST: dict[type, type] = {}


def _fast_class(base: type) -> type:
    cls = _FAST.get(base)
    if cls is None:
        packer = HiredisRespSerializer()

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            # redis-py's serializer, minus its per-argument bytearray/memoryview conversion (a generator over
            # every argument): hiredis is tried as is and the serializer is the fallback for anything it refuses.
            first = args[0]
            if isinstance(first, str):
                if " " in first:  # e.g. "CLIENT SETNAME": the server expects the words as separate arguments
                    return packer.pack(*args)
            elif b" " in first:
                return packer.pack(*args)
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                return packer.pack(*args)  # converts or raises redis-py's DataError

        cls = type(f"HiredisPack{base.__name__}", (base,), {"pack_command": pack_command})
        _FAST[base] = cls
    return cls


def use_hiredis_packer(pool: ConnectionPool) -> ConnectionPool:
    """Make ``pool`` create connections that pack commands with hiredis (no-op without hiredis). Call before the
    pool has made a connection. Works for TCP, TLS and unix-socket pools alike (the class the URL chose is kept
    as the base)."""
    if HIREDIS_AVAILABLE:
        pool.connection_class = _fast_class(pool.connection_class)
    return pool

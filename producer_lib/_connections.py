"""Connection plumbing shared by the executor and the async client.

redis-py's synchronous connections pack commands with hiredis (C); its asyncio connections still use a pure-Python
packer whose cost grows with every argument (it re-joins a growing buffer per argument). Our hot commands carry many
arguments (the executor's settlement script, pipelines of XADDs), so asyncio pools get a connection class that packs
with redis-py's own hiredis serializer: byte-for-byte the same wire format.

The same class sends without ``asyncio.wait_for`` when nothing has to be waited for. With a socket timeout set,
redis-py wraps every send in ``wait_for`` (a task, a timer and an extra event-loop pass per command) although the
write almost always lands in the socket at once; here the timeout applies only when the socket did not take the
whole command and the send really waits for the buffer to drain, as redis-py does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as _rex
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError, TimeoutError

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

        async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
            writer, reader = self._writer, self._reader
            if (writer is None or reader is None or not isinstance(command, list) or not self.socket_timeout
                    or (check_health and self.health_check_interval) or writer.transport.is_closing()
                    or reader.exception() is not None):
                return await base.send_packed_command(self, command, check_health)  # connects, checks, raises
            try:
                writer.writelines(command)
                if writer.transport.get_write_buffer_size():  # the socket did not take it all: wait, bounded
                    await asyncio.wait_for(writer.drain(), self.socket_timeout)
            except asyncio.TimeoutError:
                await self.disconnect(nowait=True)
                raise TimeoutError("Timeout writing to socket") from None
            except OSError as e:
                await self.disconnect(nowait=True)
                raise ConnectionError(f"Error while writing to socket: {e!r}") from e
            except BaseException:  # as redis-py: a half-sent command leaves the connection unusable
                await self.disconnect(nowait=True)
                raise

        cls = type(f"HiredisPack{base.__name__}", (base,), {"pack_command": pack_command,
                                                            "send_packed_command": send_packed_command})
        _FAST[base] = cls
    return cls


def use_hiredis_packer(pool: ConnectionPool) -> ConnectionPool:
    """Make ``pool`` create connections that pack commands with hiredis (no-op without hiredis). Call before the
    pool has made a connection. Works for TCP, TLS and unix-socket pools alike (the class the URL chose is kept
    as the base)."""
    if HIREDIS_AVAILABLE:
        pool.connection_class = _fast_class(pool.connection_class)
    return pool

"""The asyncio connection class of producer_lib/_connections.py sends without ``asyncio.wait_for`` when the socket
takes the whole command; these tests hold it to redis-py's behaviour where it must wait or fail: a command larger
than the socket buffer still arrives whole, a peer that stops reading makes the send time out (never hang), and a
connection the server closed fails loudly, never drops a command silently."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from producer_lib._connections import use_hiredis_packer


def _client(url: str, **kw) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=2.0, health_check_interval=0,
                                     **kw)
    use_hiredis_packer(client.connection_pool)
    return client


async def test_a_command_larger_than_the_socket_buffer_arrives_whole(redis_url, account, redis_client):
    key = f"conn:{{{account}}}:big"
    value = bytes(range(256)) * (32 * 1024)  # 8 MiB: the socket takes it in many writes, drain() must wait
    client = _client(redis_url)
    try:
        assert await client.set(key, value)
        assert await client.get(key) == value
        assert await client.ping()
    finally:
        await client.aclose()


async def test_a_peer_that_stops_reading_makes_the_send_time_out(redis_url):
    # A listener that accepts (the kernel does) and never reads: once both socket buffers are full, drain() waits.
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    host, port = sink.getsockname()
    pool = aioredis.ConnectionPool(host=host, port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0),
                                   health_check_interval=0, protocol=2)
    use_hiredis_packer(pool)
    conn = pool.connection_class(**pool.connection_kwargs)
    try:
        # connect the stream without redis-py's handshake (the sink never answers one)
        conn._reader, conn._writer = await asyncio.open_connection(host, port)
        big = [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$67108864\r\n", b"x" * (64 * 1024 * 1024), b"\r\n"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(redis.exceptions.TimeoutError):
            await asyncio.wait_for(conn.send_packed_command(big, check_health=False), 10)
        assert loop.time() - started < 5
        assert not conn.is_connected  # a half-sent command leaves nothing usable behind
    finally:
        await conn.disconnect()
        sink.close()


async def test_a_connection_the_server_closed_fails_loudly(redis_url, account, redis_client):
    client = _client(redis_url, single_connection_client=True)
    try:
        my_id = await client.client_id()
        redis_client.client_kill_filter(_id=my_id)
        with pytest.raises(redis.exceptions.ConnectionError):
            # the write may still land in the kernel; the command must then fail on its answer, not vanish
            await client.set(f"conn:{{{account}}}:after-kill", "1")
        assert await client.ping()  # the next command reconnects
    finally:
        await client.aclose()

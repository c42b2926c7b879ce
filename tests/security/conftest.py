"""Fixtures of the security tests; the helpers they use live in security_helpers.py."""

from __future__ import annotations

import pytest
import redis
from security_helpers import RedisServer


@pytest.fixture
def plain_redis(tmp_path):
    """A redis-server without ACL users (signing tests)."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def plain_r(plain_redis):
    client = redis.Redis.from_url(plain_redis.url)
    yield client
    client.close()

"""Engine test fixtures: a real Redis at 127.0.0.1:6379, a fresh random account per test (keys removed after), a
FakeBroker, and an ``executor`` factory whose executors are stopped at the end of the test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from executor.config import ExecutorSettings
from executor.engine import Executor
from fakes import Client, FakeBroker

@pytest.fixture
async def r(redis_url) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def account(r: aioredis.Redis) -> AsyncIterator[str]:
    acc = "T" + secrets.token_hex(6)
    yield acc
    keys = [k async for k in r.scan_iter(match=f"xtq:{{{acc}}}:*")]
    if keys:
        await r.delete(*keys)


@pytest.fixture
def settings_for(tmp_path, account, redis_url):
    def make(**kw) -> ExecutorSettings:
        base = dict(account=account, redis_url=redis_url, state_dir=tmp_path / "state", executor_id="ex-test",
                    block_ms=50, ack_wait_ms=300, broker_timeout_ms=1_000, recovery_settle_ms=0,
                    heartbeat_interval_ms=200, probe_interval_ms=200, reconnect_max_backoff_ms=200,
                    shutdown_timeout_ms=3_000)
        base.update(kw)
        return ExecutorSettings(**base)
    return make


@pytest.fixture
async def make_executor(settings_for):
    made: list[Executor] = []

    def make(broker: FakeBroker | None = None, **kw) -> Executor:
        ex = Executor(settings_for(**kw), broker or FakeBroker())
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.stop()


@pytest.fixture
def client(r, account) -> Client:
    return Client(r, account)

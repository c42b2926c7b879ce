"""Fault-suite fixtures: every test gets its own redis-server process on a free port (never the shared 6379) and
its own directories; POSIX only (signals)."""

from __future__ import annotations

import sys

import pytest

from harness import RedisServer, seed_from_env

if sys.platform == "win32":  # pragma: no cover
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def seed() -> int:
    value = seed_from_env()
    print(f"\n[fault] seed={value} (re-run with XTQ_FAULT_SEED={value})", flush=True)
    return value


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_aof(tmp_path):
    server = RedisServer(tmp_path / "redis-aof", aof=True).start()
    yield server
    server.stop()

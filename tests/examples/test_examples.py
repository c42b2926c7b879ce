"""The scripts in deploy/examples/, each run as a subprocess against a real executor process on the simulator.

One executor per module, on a fresh random account (its keys are deleted at the end). Each example must exit as
documented and print its key lines. Every wait is bounded: the executor is awaited with ``SyncClient.ping()``,
each script with a subprocess timeout.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from support import ExecutorProcess

from producer_lib import CommandTimeout, SyncClient, contract

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
SCRIPT_TIMEOUT_S = 60
START_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def executor(redis_url, tmp_path_factory):
    """(redis_url, account) of an executor process on the simulator, answering pings."""
    account = f"EX{secrets.token_hex(4)}"
    proc = ExecutorProcess(redis_url, account, tmp_path_factory.mktemp("executor"), "--lease-ms", "0").start()
    try:
        _wait_ready(redis_url, account, proc.proc)
        yield redis_url, account
    finally:
        proc.stop(15)
        r = redis.Redis.from_url(redis_url)
        for key in r.scan_iter(match=f"*{{{account}}}*", count=1000):
            r.delete(key)
        r.close()


def _wait_ready(redis_url: str, account: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with SyncClient(redis_url, account) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the executor exited with {proc.returncode} before answering")
            try:
                if client.ping().broker_connected:
                    return
            except CommandTimeout:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the executor did not answer a ping in time")


def run_example(name: str, executor, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    redis_url, account = executor
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / name), "--redis-url", redis_url, "--account", account,
                           *args], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=cwd, env=env)


def _ok(proc: subprocess.CompletedProcess, code: int = 0) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


# --- place_and_wait.py --------------------------------------------------------------------------------------------
def test_place_and_wait_fills(executor):
    out = _ok(run_example("place_and_wait.py", executor))
    assert re.search(r"^placed: order \d+, client order id \w+, first status \w+", out, re.M), out
    assert re.search(r"filled 100 @ 10\.00 \(total 100\)", out), out
    assert re.search(r"^done: order \d+ is succeeded$", out, re.M), out


def test_place_and_wait_resting_order_times_out_working(executor):
    out = _ok(run_example("place_and_wait.py", executor, "--price", "9.50", "--wait", "1"))
    assert re.search(r"^not final after 1 s: order \d+ is reported \(still working\)$", out, re.M), out


def test_place_and_wait_broker_rejection(executor):
    out = _ok(run_example("place_and_wait.py", executor, "--volume", "150"), code=2)
    assert "rejected by the broker, nothing is working: [COUNTER] [100201]" in out, out


# --- sync_client.py -----------------------------------------------------------------------------------------------
def test_sync_client(executor):
    out = _ok(run_example("sync_client.py", executor))
    assert "broker sim, connected True" in out, out
    assert re.search(r"^asset: cash [\d,.]+ ", out, re.M), out
    assert re.search(r"^buy: order \d+ \(\w+\) status \w+", out, re.M), out
    assert re.search(r"^position: 600000\.SH \S+ volume \d+ sellable 0 ", out, re.M), out  # T+1: bought today
    resting = re.search(r"^resting buy: order (\d+) status reported$", out, re.M)
    assert resting, out
    assert f"cancel sent for order {resting.group(1)}" in out, out
    assert f"order {resting.group(1)} is now canceled" in out, out


# --- outcome_after_timeout.py -------------------------------------------------------------------------------------
def test_outcome_after_timeout(executor):
    out = _ok(run_example("outcome_after_timeout.py", executor))
    assert "CommandTimeout: no reply to place_order" in out, out
    placed = re.search(r"^query_outcome\((\w+)\): placed, order (\d+)$", out, re.M)
    assert placed, out
    coid, order_id = placed.groups()
    assert f"resent with the same client order id: order {order_id}, duplicate=True" in out, out
    assert f"orders carrying {coid} at the broker: 1" in out, out


# --- follow_events.py ---------------------------------------------------------------------------------------------
def _seqs(out: str) -> list[int]:
    return [int(s) for s in re.findall(r"^seq\s+(\d+)\s", out, re.M)]


def test_follow_events_resumes_and_resyncs_after_a_trim(executor, tmp_path):
    redis_url, account = executor
    state = tmp_path / "pos"
    # First run: from the oldest event, three events, position saved.
    first = _ok(run_example("follow_events.py", executor, "--state-file", str(state), "--max-events", "3"))
    assert "starting from the oldest event in the stream" in first, first
    assert _seqs(first) == [1, 2, 3], first
    assert "stopped after 3 events" in first, first
    saved = state.read_text().strip()
    assert saved == re.findall(r"^seq\s+\d+\s+(\S+)", first, re.M)[-1]

    # More events, then a resume: it goes on at seq 4 without repeating or skipping.
    with SyncClient(redis_url, account) as client:
        client.buy("600000.SH", 100, 10.00)
    second = _ok(run_example("follow_events.py", executor, "--state-file", str(state), "--max-events", "2"))
    assert f"resuming after {saved}" in second, second
    assert _seqs(second) == [4, 5], second

    # Everything after the saved position but the newest two entries is trimmed away: a Gap, then a re-sync.
    r = redis.Redis.from_url(redis_url)
    try:
        events_key = contract.Keys(account).events
        r.xtrim(events_key, maxlen=2, approximate=False)
        newest_seq = int(r.xrevrange(events_key, count=1)[0][1][b"seq"])
    finally:
        r.close()
    third = _ok(run_example("follow_events.py", executor, "--state-file", str(state), "--max-events", "2"))
    assert re.search(r"^GAP \(trimmed\): expected seq \w+, next available \d+$", third, re.M), third
    assert re.search(r"^re-synced by query: \d+ orders today \(\d+ working\), \d+ positions, cash ", third,
                     re.M), third
    assert _seqs(third) == [newest_seq - 1, newest_seq], third


def test_follow_events_stops_at_the_timeout(executor, tmp_path):
    redis_url, account = executor
    state = tmp_path / "pos"
    r = redis.Redis.from_url(redis_url)
    try:  # resume after the newest event: nothing more will come
        state.write_text(r.xrevrange(contract.Keys(account).events, count=1)[0][0].decode())
    finally:
        r.close()
    started = time.monotonic()
    out = _ok(run_example("follow_events.py", executor, "--state-file", str(state), "--timeout", "1"))
    assert "stopped after the 1 s timeout" in out, out
    assert time.monotonic() - started < 20


def test_examples_have_docstrings_and_captured_output():
    for script in sorted(EXAMPLES.glob("*.py")):
        text = script.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{script.name}: no docstring"
        assert "--redis-url" in text and "--account" in text and "SIM001" in text, script.name
        assert (EXAMPLES / f"{script.stem}.out.txt").is_file(), f"{script.name}: no captured output"

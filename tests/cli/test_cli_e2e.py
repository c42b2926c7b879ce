"""The commands against a real executor on the simulator (a child process), over the real Redis of the tests.

Skipped until executor.app and executor.sim can be imported.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cli_support import needs_executor
from support import ExecutorProcess
from producer_lib import contract as c

pytestmark = needs_executor


def xtq(redis_url: str, account: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
    return subprocess.run([sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def live(redis_url, tmp_path_factory):
    """(redis_url, account) with an executor on the simulator running for this module."""
    account = f"E{secrets.token_hex(5)}"  # the executor seeds the simulator's account from --account/--sim-cash
    url = redis_url
    client = redis.Redis.from_url(redis_url)
    executor = ExecutorProcess(url, account, tmp_path_factory.mktemp("e2e"), clean_env=True).start()
    deadline = time.monotonic() + 60
    while True:
        if not executor.alive:
            pytest.fail("executor exited at start:\n" + executor.log()[-3000:])
        if xtq(url, account, "ping", timeout=30).returncode == 0:
            break
        if time.monotonic() > deadline:
            executor.kill()
            pytest.fail("executor never answered ping:\n" + executor.log()[-3000:])
        time.sleep(0.3)
    yield url, account
    try:
        assert executor.stop(20) is not None
    finally:
        for key in client.scan_iter(match=f"*{{{account}}}*"):
            client.delete(key)
        client.close()


def _wait_for(fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_ping_status_and_check(live):
    url, account = live
    out = xtq(url, account, "ping", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["broker"] == "sim"
    assert xtq(url, account, "status").returncode == 0
    check = xtq(url, account, "executor", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_status_from_redis_alone(live):
    """`xtqueue status`: the executor from its heartbeat (up, leader, broker, Beijing time), the kill switch, the
    command stream's backlog, the last event; JSON for scripts; a halted account shows it."""
    url, account = live
    out = xtq(url, account, "status", "--json")
    assert out.returncode == 0, out.stderr
    (rep,) = json.loads(out.stdout)["accounts"]
    ex = rep["executor"]
    assert rep["account"] == account and ex["alive"] and ex["connected"] is True and ex["broker"] == "sim"
    assert ex["leader"] == ex["executor_id"] and ex["last_beat_beijing"].endswith("北京时间 (UTC+8)")
    assert rep["halted"] is False and rep["last_event"]["seq"] >= 1
    assert any(st["stream"] == c.Keys(account).commands and st["unanswered"] == 0 for st in rep["command_streams"])
    assert xtq(url, account, "halt", "--reason", "status test").returncode == 0
    try:
        text = xtq(url, account, "status")
        assert text.returncode == 0, text.stderr
        assert f"account {account}: executor" in text.stdout and "HALTED (status test)" in text.stdout
    finally:
        assert xtq(url, account, "resume").returncode == 0
    with_ping = json.loads(xtq(url, account, "status", "--ping", "--json").stdout)
    assert with_ping["ping"]["broker"] == "sim" and with_ping["account_status"]["account"] == account


def test_status_without_executor_says_so(redis_url):
    account = f"N{secrets.token_hex(5)}"
    out = xtq(redis_url, account, "status")
    assert out.returncode == 1
    assert f"account {account}: NO executor" in out.stdout


def test_buy_fills_and_shows_in_orders_trades_positions(live):
    url, account = live
    coid = "e2e" + secrets.token_hex(4)
    out = xtq(url, account, "buy", "600000.SH", "300", "10.5", "--client-order-id", coid)
    assert out.returncode == 0, out.stderr
    assert "placed: order" in out.stdout and coid in out.stdout

    def filled():
        rows = json.loads(xtq(url, account, "orders", "--client-order-id", coid, "--json").stdout)
        return rows and rows[0]["status"] == "succeeded"

    assert _wait_for(filled)
    trades = json.loads(xtq(url, account, "trades", "--json").stdout)
    assert any(t["client_order_id"] == coid for t in trades)
    positions = json.loads(xtq(url, account, "positions", "600000.SH", "--json").stdout)
    assert positions and positions[0]["volume"] >= 300
    outcome = json.loads(xtq(url, account, "outcome", coid, "--json").stdout)
    assert outcome["state"] == "placed"
    assert "cash" in xtq(url, account, "asset").stdout
    # same client order id again: no second order
    again = xtq(url, account, "buy", "600000.SH", "300", "10.5", "--client-order-id", coid, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["duplicate"] is True


def _refused(url, account, *order_args):
    """The order is refused: as a typed error (exit 2, one line, the broker's text) or, when the executor's reply
    came before the broker's verdict, as an accepted order that turns junk (废单). Returns the broker's text."""
    out = xtq(url, account, *order_args, "--json")
    if out.returncode != 0:
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.startswith("error [") and "Traceback" not in out.stderr
        return out.stderr
    order_id = json.loads(out.stdout)["order_id"]

    def junk():
        rows = json.loads(xtq(url, account, "orders", "--order-id", str(order_id), "--json").stdout)
        return rows[0] if rows and rows[0]["status"] == "junk" else None

    row = _wait_for(junk)
    assert row, f"order {order_id} was not refused"
    return row["status_msg"]


def test_t_plus_1_sell_is_refused(live):
    url, account = live
    assert xtq(url, account, "buy", "000001.SZ", "100", "12").returncode == 0
    text = _refused(url, account, "sell", "000001.SZ", "100", "10")
    assert "T+1" in text or "可用" in text


def test_odd_lot_buy_is_refused_with_broker_text(live):
    url, account = live
    text = _refused(url, account, "buy", "600000.SH", "150", "10.5")
    assert "整手" in text or "lot" in text


def test_cancel_resting_order(live):
    url, account = live
    coid = "cx" + secrets.token_hex(4)
    assert xtq(url, account, "buy", "600519.SH", "100", "1400", "--client-order-id", coid).returncode == 0
    open_rows = json.loads(xtq(url, account, "orders", "--open", "--json").stdout)
    assert any(r["client_order_id"] == coid for r in open_rows)
    out = xtq(url, account, "cancel", "--client-order-id", coid)
    assert out.returncode == 0, out.stderr

    def cancelled():
        rows = json.loads(xtq(url, account, "orders", "--client-order-id", coid, "--json").stdout)
        return rows and rows[0]["status"] == "canceled"

    assert _wait_for(cancelled)


def test_tail_shows_the_fills(live):
    url, account = live
    out = xtq(url, account, "tail", "--all", "--type", "order_filled", "--count", "1")
    assert out.returncode == 0, out.stderr
    assert "order_filled" in out.stdout


def test_unknown_outcome_is_not_found(live):
    url, account = live
    out = xtq(url, account, "outcome", "never" + secrets.token_hex(4), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "not_found"

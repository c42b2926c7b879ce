"""Issue #14's first hour of a new user, one test per stumble, with `xtqueue` run as a subprocess the way a person
runs it: every failure is one or two lines (what happened, whether anything was sent, what to do), never a
traceback (that needs --debug), never a password; Ctrl+C during an order names the client order id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer_lib import contract as c

ROOT = Path(__file__).resolve().parents[2]
SECRET_URL_PW = "Url5ecretPw"
SECRET_ENV_PW = "Env5ecretPw"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_") and k not in ("LANG", "LC_ALL")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def xtq(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtqueue", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or _env(), cwd=str(ROOT))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _short_and_clean(proc: subprocess.CompletedProcess, max_lines: int = 2) -> None:
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert 1 <= len(err) <= max_lines, proc.stderr
    assert err[0].startswith("error ["), proc.stderr


def _beat(redis_client, account: str, **fields) -> None:
    """A heartbeat as the executor writes it (executor/engine.py _beat), for an executor that never answers."""
    beat = {"executor_id": "stand-in", "pid": 1, "broker": "sim", "connected": True, "last_seq": 0,
            "ts_ms": int(time.time() * 1000), "version": "0", "lease_token": None, **fields}
    redis_client.set(c.Keys(account).heartbeat, json.dumps(beat), ex=60)


# --- configuration mistakes: one line, exit 2, nothing sent ------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--redis-url", "localhost:6390", "ping"], "is not a Redis URL"),
    (["--account", "资金账号", "ping"], "is not an account id"),
    (["ping", "--account", "你的资金账号"], "is not an account id"),
    (["tail", "--from", "garbage"], "is not a stream id"),
    (["tail", "--type", "order_fild"], "is not an event type"),
    (["buy", "990000", "100", "10"], "cannot tell the exchange"),
    (["executor", "--broker", "xt"], "needs qmt_path"),
    (["--tls-ca", "x.pem", "ping"], "No such option"),  # one name per TLS setting: --redis-ca-cert
])
def test_argument_mistakes_are_two_lines_without_traceback(args, says):
    proc = xtq(*args)
    assert proc.returncode == 2, proc.stderr
    _short_and_clean(proc, max_lines=4 if "executor" in args else 2)
    assert says in proc.stderr and "--help" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="the real xtquant client does load on Windows")
def test_broker_xt_off_windows_is_one_line():
    proc = xtq("executor", "--broker", "xt", "--qmt-path", str(ROOT), "--redis-url",
               f"redis://127.0.0.1:{_closed_port()}/0")
    assert proc.returncode == 1
    _short_and_clean(proc, max_lines=1)
    assert "--broker sim" in proc.stderr and "Nothing was started" in proc.stderr


# --- Redis or executor missing: fast, honest, nothing sent ---------------------------------------------------------
def test_redis_refusing_connections_is_one_line_and_nothing_sent():
    proc = xtq("--redis-url", f"redis://127.0.0.1:{_closed_port()}/0", "buy", "600000", "100", "10")
    assert proc.returncode == 1
    _short_and_clean(proc, max_lines=1)
    assert "cannot reach Redis" in proc.stderr and "nothing was sent" in proc.stderr


def test_no_executor_is_answered_from_the_heartbeat_and_nothing_is_sent(redis_url, account, redis_client):
    other = account + "B"
    _beat(redis_client, other)  # an executor of another account on the same Redis: the likely typo
    try:
        for args in (["buy", "600000.SH", "100", "10"], ["ping"], ["orders"]):
            # A bound, not a timing assertion: without the heartbeat check, ping waited 30 s.
            proc = xtq("--redis-url", redis_url, "--account", account, *args, timeout=15)
            assert proc.returncode == 1, proc.stderr
            _short_and_clean(proc)
            assert f"no executor serves account {account}" in proc.stderr and "nothing was sent" in proc.stderr
            assert other in proc.stderr  # "executors run for: ... (wrong --account?)"
        assert redis_client.exists(c.Keys(account).commands, c.Keys(account).command_stream("")) == 0
        assert not list(redis_client.scan_iter(match=f"*{{{account}}}:cmd*"))
    finally:
        redis_client.delete(c.Keys(other).heartbeat)


# --- Ctrl+C while an order waits ---------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_ctrl_c_during_an_order_prints_its_client_order_id(redis_url, account, redis_client):
    _beat(redis_client, account)  # "an executor runs" but never answers: the order waits
    proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account, "buy",
                             "600000.SH", "100", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=str(ROOT))
    stream = c.Keys(account).command_stream("")
    deadline = time.monotonic() + 20
    while not redis_client.exists(stream) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert redis_client.exists(stream), "the order never reached the command stream"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    ((_, fields),) = redis_client.xrange(stream)
    coid = fields[c.F_COID.encode()].decode()
    assert proc.returncode == 3, err  # outcome unknown, as the exit codes say
    assert "Aborted" not in err and "Traceback" not in err
    assert f"outcome {coid}" in err and "may or may not have been placed" in err
    assert len(err.strip().splitlines()) == 2


# --- no secret under any failure path that prints ------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["ping"],  # Redis unreachable
    ["buy", "600000.SH", "100", "10"],
    ["tail", "--type", "nope"],
    ["halt", "--reason", "x"],
])
def test_no_password_in_any_error_output(args):
    url = f"redis://admin:{SECRET_URL_PW}@127.0.0.1:{_closed_port()}/0"
    proc = xtq("--redis-url", url, *args, env=_env(XTQUEUE_REDIS_PASSWORD=SECRET_ENV_PW))
    assert proc.returncode != 0
    for secret in (SECRET_URL_PW, SECRET_ENV_PW):
        assert secret not in proc.stdout and secret not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_password_in_an_unexpected_error(run, fake_client):
    """A bug's one line is scrubbed of the passwords it may carry (a URL, the password option)."""
    url = f"redis://admin:{SECRET_URL_PW}@127.0.0.1:6379/0"
    fake_client.error = RuntimeError(f"boom connecting {url} with {SECRET_ENV_PW}")
    result = run("--redis-url", url, "--redis-password", SECRET_ENV_PW, "asset")
    assert result.exit_code == 1 and "error [internal]" in result.output
    assert SECRET_URL_PW not in result.output and SECRET_ENV_PW not in result.output


# --- global options after the command name ------------------------------------------------------------------------
def test_global_options_after_the_subcommand(run, fake_client, monkeypatch):
    seen = {}
    monkeypatch.setattr("xtqueue.cli._connect.client", lambda g, strategy="": seen.setdefault("g", g) and fake_client)
    result = run("orders", "--account", "ACC9", "--redis-url", "redis://10.0.0.9:6379/1")
    assert result.exit_code == 0, result.output
    assert seen["g"].account == "ACC9" and seen["g"].redis_url == "redis://10.0.0.9:6379/1"
    assert "orders of ACC9" in result.output


# --- readable values ----------------------------------------------------------------------------------------------
def test_enums_print_as_their_value():
    ack = c.OrderAck(order_id=1, client_order_id="a", status=c.OrderStatus.REPORTED)
    assert str(ack.status) == "reported" and f"{ack.status}" == "reported" and f"{c.Side.BUY:>4}" == " buy"
    assert str(c.ErrorCode.HALTED) == "halted" and c.OrderStatus("junk") is c.OrderStatus.JUNK


@pytest.mark.parametrize("typed, wire", [("600000.sh", "600000.SH"), (" 600000 ", "600000.SH"),
                                         ("000001", "000001.SZ"), ("300750", "300750.SZ"), ("688981", "688981.SH"),
                                         ("510300", "510300.SH"), ("159915", "159915.SZ"), ("830799", "830799.BJ"),
                                         ("920001", "920001.BJ"), ("204001", "204001.SH"), ("200002", "200002.SZ")])
def test_one_normalization_of_codes(typed, wire):
    assert c.normalize_code(typed) == wire


@pytest.mark.parametrize("typed", ["990000", "700000", "60000", "600000.HK", "６０００００", "600000.S H"])
def test_codes_that_cannot_be_told_are_refused_with_what_to_type(typed):
    with pytest.raises(ValueError) as info:
        c.normalize_code(typed)
    assert "600000.SH" in str(info.value) or ".SH" in str(info.value)


def test_the_library_accepts_what_the_cli_accepts(redis_url, account, redis_client):
    """`600000.sh`, `BUY`, `600000`: the library normalizes as the CLI does; the wire carries 600000.SH / buy."""
    from producer_lib import SyncClient
    from producer_lib._base import BaseClient

    base = BaseClient(account)
    for code, side in (("600000.sh", "BUY"), ("600000", "Buy"), (" 600000.SH", c.Side.BUY)):
        prep = base._build_place_order(code, side, 100, 10.0, price_type="limit", strategy=None,
                                       client_order_id=None, deadline=5, timeout=None, started=time.monotonic())
        _, command = c.decode_command(prep.entry)
        assert (command.code, command.side) == ("600000.SH", c.Side.BUY)
    with SyncClient(redis_url, account) as client:
        with pytest.raises(Exception) as info:
            client.buy("990000", 100, 10.0)
    assert "cannot tell the exchange" in str(info.value)
    assert redis_client.exists(c.Keys(account).command_stream("")) == 0


# --- the library: missing executor, refused connection ---------------------------------------------------------------
def test_library_redis_refused_is_not_outcome_unknown():
    import producer_lib as pl

    with pl.SyncClient(f"redis://127.0.0.1:{_closed_port()}/0", "A1") as client:
        with pytest.raises(pl.RedisUnavailable) as info:
            client.ping()
        assert not isinstance(info.value, pl.OutcomeUnknown) and "nothing was sent" in str(info.value)
        with pytest.raises(pl.RedisUnavailable):
            client.buy("600000.SH", 100, 10.0, deadline=2)


async def test_async_library_redis_refused_is_not_outcome_unknown():
    import producer_lib as pl

    async with pl.Client(f"redis://127.0.0.1:{_closed_port()}/0", "A1") as client:
        with pytest.raises(pl.RedisUnavailable):
            await client.ping()


def test_library_require_executor(redis_url, account, redis_client):
    import producer_lib as pl

    with pl.SyncClient(redis_url, account, require_executor=True) as client:
        with pytest.raises(pl.ExecutorNotRunning) as info:
            client.buy("600000.SH", 100, 10.0)
        assert isinstance(info.value, pl.Rejected) and "nothing was sent" in str(info.value)
        assert redis_client.exists(c.Keys(account).command_stream("")) == 0
        _beat(redis_client, account)  # now "an executor runs" (never answers): the order is sent
        with pytest.raises(pl.CommandTimeout):
            client.buy("600000.SH", 100, 10.0, timeout=0.5)
        assert redis_client.xlen(c.Keys(account).command_stream("")) == 1


async def test_async_library_require_executor(redis_url, account, redis_client):
    import producer_lib as pl

    async with pl.Client(redis_url, account, require_executor=True) as client:
        with pytest.raises(pl.ExecutorNotRunning):
            await client.ping()
    assert redis_client.exists(c.Keys(account).command_stream("")) == 0


# --- a recovered order is not "placed before" to its sender ----------------------------------------------------------
def test_duplicate_answer_to_a_fresh_id_says_placed_once(run, fake_client, monkeypatch):
    ack = c.OrderAck(order_id=7, client_order_id="x", status=c.OrderStatus.REPORTED, duplicate=True)
    monkeypatch.setattr(fake_client, "place_order", lambda *a, **kw: ack.model_copy(
        update={"client_order_id": kw["client_order_id"]}))
    fresh = run("buy", "600000.SH", "100", "10")
    assert "placed once" in fresh.output and "placed before" not in fresh.output
    again = run("buy", "600000.SH", "100", "10", "--client-order-id", "mine-1")
    assert "mine-1 had been placed before" in again.output


# --- Chinese and Beijing time ---------------------------------------------------------------------------------------
def test_chinese_headers_and_status_names(run, fake_client):
    result = run("--lang", "zh", "orders")
    assert result.exit_code == 0, result.output
    assert "状态" in result.output and "部成" in result.output and "买入" in result.output
    assert "part_succ" not in result.output
    assert "16:53:20" in result.output  # order_time 1_760_000_000 in Beijing time, whatever the machine's zone


def test_locale_chooses_chinese_and_json_stays_wire_values(monkeypatch):
    from xtqueue import _render

    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert _render.lang_from_env() == "zh"

    _render.set_lang("zh")
    try:
        assert _render.fmt(c.OrderStatus.JUNK) == "废单" and _render.fmt_epoch_s(1_760_000_000) == "16:53:20"
        assert _render.json_line(c.OrderAck(order_id=1, client_order_id="a", status=c.OrderStatus.JUNK)) \
            == '{"order_id":1,"client_order_id":"a","status":"junk","status_msg":"","duplicate":false}'
    finally:
        _render.set_lang("en")


def test_tail_announces_itself_on_stderr(redis_url, account):
    child = subprocess.Popen([sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "tail", "--account",
                              account], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                             cwd=str(ROOT))
    try:
        line = child.stderr.readline()
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=20)
    assert line.startswith(f"following events of account {account}") and "Ctrl+C ends" in line
    assert child.returncode in (0, 130)


def test_py_typed_ships():
    for package in ("producer_lib", "xtqueue", "executor"):
        assert (ROOT / package / "py.typed").is_file()


# --- the journal's folder does not depend on the current directory -------------------------------------------------
def test_state_dir_and_sim_path_default_to_the_user_data_folder(tmp_path):
    """Started from two different folders, the executor's defaults are the same per-user folder (platformdirs), not
    ./xtqueue-state: a start from elsewhere would otherwise be a fresh journal (idempotency lost)."""
    env = {k: v for k, v in _env(HOME=str(tmp_path / "home"), XDG_DATA_HOME="").items() if k != "XDG_DATA_HOME"}
    code = ("from executor.config import ExecutorSettings as S; s = S(); "
            "print(s.state_dir); print(s.sim_path); print(S(state_dir='rel').state_dir)")
    outs = []
    for cwd in (tmp_path, ROOT):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(cwd),
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout.splitlines())
    (state, sim, rel), (state2, sim2, rel2) = outs
    assert state == state2 == str(tmp_path / "home" / ".local" / "share" / "xtqueue" / "state")
    assert sim == sim2 == str(tmp_path / "home" / ".local" / "share" / "xtqueue" / "sim")
    assert rel == str(tmp_path / "rel") and rel2 == str(ROOT / "rel")  # a relative path is made absolute, once
    help_text = "".join(xtq("executor", "--help", env=env).stdout.split())  # the help wraps long defaults
    assert str(tmp_path / "home" / ".local" / "share" / "xtqueue" / "state") in help_text

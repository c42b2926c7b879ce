"""`xtqueue executor`: flags built from ExecutorSettings (one schema), settings precedence, and --check."""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

import pytest

from executor.config import ExecutorSettings
from producer_lib import contract as c
from xtqueue import cli as cli_mod


def _executor_params():
    import click

    cmd = cli_mod.cli.commands["executor"]
    return {p.name: p for p in cmd.get_params(click.Context(cmd)) if p.name}


def test_every_settings_field_is_a_flag():
    params = _executor_params()
    for name, field in ExecutorSettings.model_fields.items():
        assert name in params, f"no flag for ExecutorSettings.{name}"
        opt = params[name]
        assert f"--{name.replace('_', '-')}" in opt.opts
        assert opt.default is None, "a flag not given must leave env/file/defaults in charge"
        if field.annotation is bool:
            assert opt.secondary_opts == [f"--no-{name.replace('_', '-')}"]
    # The group's own options (--lang, --debug, ...) are copied onto each subcommand once one runs (add_global_options):
    # not settings, and present or not depending on which test ran first.
    from xtqueue.cli._options import global_option_list

    group_options = {o.name for o in global_option_list()}
    extra = (set(params) - set(ExecutorSettings.model_fields) - {"config_file", "check", "_click_default_help", "help"}
             - group_options)
    assert not extra, f"flags without a settings field: {extra}"


def test_literal_fields_are_choices():
    import click

    params = _executor_params()
    for name, field in ExecutorSettings.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal:
            assert isinstance(params[name].type, click.Choice)
            assert list(params[name].type.choices) == [str(a) for a in typing.get_args(field.annotation)]


@pytest.fixture
def fake_app(monkeypatch):
    """A stand-in executor.app whose run() records the settings it got and returns 0."""
    seen: list = []
    module = types.ModuleType("executor.app")

    def run(settings):
        seen.append(settings)
        return 0

    module.run = run
    monkeypatch.setitem(sys.modules, "executor.app", module)
    return seen


def test_flags_reach_the_settings(run, fake_app, tmp_path):
    result = run("executor", "--account", "ACC9", "--redis-url", "redis://10.0.0.1:6380/2", "--broker", "sim",
                 "--batch-size", "64", "--sim-path", str(tmp_path / "sim"), "--sim-random-walk", "--sim-seed", "3",
                 "--session-ids", "100-102,105", "--sim-cash", "5000.5", "--log-json")
    assert result.exit_code == 0, result.output
    (s,) = fake_app
    assert s.account == "ACC9" and s.redis_url == "redis://10.0.0.1:6380/2" and s.broker == "sim"
    assert s.batch_size == 64 and s.sim_path == tmp_path / "sim" and s.sim_random_walk is True and s.sim_seed == 3
    assert s.session_ids == [100, 101, 102, 105] and s.sim_cash == 5000.5 and s.log_json is True


def test_no_flag_means_model_default(run, fake_app):
    result = run("executor")
    assert result.exit_code == 0, result.output
    (s,) = fake_app
    assert s == ExecutorSettings()


def test_negative_boolean_flag(run, fake_app):
    assert run("executor", "--no-sim-random-walk").exit_code == 0
    assert fake_app[0].sim_random_walk is False


def test_global_options_are_used_when_typed(run, fake_app):
    result = run("--account", "GLOBAL1", "--redis-url", "redis://h:1/0", "executor")
    assert result.exit_code == 0, result.output
    assert fake_app[0].account == "GLOBAL1" and fake_app[0].redis_url == "redis://h:1/0"


def test_config_file_beats_global_defaults_and_flags_beat_the_file(run, fake_app, tmp_path):
    cfg = tmp_path / "executor.toml"
    cfg.write_text('account = "FILE1"\nredis_url = "redis://file:6379/1"\nbatch_size = 7\n', encoding="utf-8")
    assert run("executor", "--config", str(cfg)).exit_code == 0
    assert (fake_app[0].account, fake_app[0].redis_url, fake_app[0].batch_size) == ("FILE1", "redis://file:6379/1", 7)
    assert run("executor", "--config", str(cfg), "--batch-size", "9").exit_code == 0
    assert fake_app[1].batch_size == 9 and fake_app[1].account == "FILE1"


def test_run_exit_code_is_passed_on(run, monkeypatch):
    module = types.ModuleType("executor.app")
    module.run = lambda settings: 4
    monkeypatch.setitem(sys.modules, "executor.app", module)
    assert run("executor").exit_code == 4


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--account", "bad account!"], ["--broker", "ib"],
                                  ["--session-ids", "a,b"], ["--config", "/nonexistent/x.toml"]])
def test_invalid_settings_are_usage_errors(run, fake_app, args):
    result = run("executor", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not fake_app


# --- --check ---------------------------------------------------------------------------------------------------
def _beat(**over):
    """The executor's heartbeat JSON (contract.Heartbeat, written by executor/housekeeping.py)."""
    beat = {"executor_id": "win-1", "pid": 1, "broker": "xt", "connected": True, "last_seq": 0, "ts_ms": c.now_ms(),
            "version": "0.1.0"}
    beat.update(over)
    return json.dumps(beat)


def test_check_without_heartbeat_fails(run, redis_url, account, redis_client):
    result = run("--redis-url", redis_url, "executor", "--account", account, "--check")
    assert result.exit_code == 1
    assert "no heartbeat" in result.output and c.Keys(account).heartbeat in result.output


def test_check_with_connected_broker_passes(run, redis_url, account, redis_client):
    redis_client.set(c.Keys(account).heartbeat, _beat(), px=5000)
    result = run("executor", "--redis-url", redis_url, "--account", account, "--check")
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "win-1" in result.output


def test_check_with_disconnected_broker_fails(run, redis_url, account, redis_client):
    redis_client.set(c.Keys(account).heartbeat, _beat(connected=False), px=5000)
    result = run("executor", "--redis-url", redis_url, "--account", account, "--check")
    assert result.exit_code == 1
    assert "not connected" in result.output


def test_check_accepts_the_ping_field_name(run, redis_url, account, redis_client):
    beat = json.loads(_beat())
    del beat["connected"]
    redis_client.set(c.Keys(account).heartbeat, json.dumps({**beat, "broker_connected": True}), px=5000)
    assert run("executor", "--redis-url", redis_url, "--account", account, "--check").exit_code == 0


def test_check_with_garbage_heartbeat_fails(run, redis_url, account, redis_client):
    redis_client.set(c.Keys(account).heartbeat, b"\xff not json", px=5000)
    result = run("executor", "--redis-url", redis_url, "--account", account, "--check")
    assert result.exit_code == 1 and "JSON" in result.output


def test_check_honours_key_prefix(run, redis_url, account, redis_client):
    redis_client.set(c.Keys(account, "other").heartbeat, _beat(), px=5000)
    assert run("executor", "--redis-url", redis_url, "--account", account, "--check").exit_code == 1
    result = run("executor", "--redis-url", redis_url, "--account", account, "--key-prefix", "other", "--check")
    assert result.exit_code == 0, result.output


def test_check_with_redis_down_fails(run, account):
    result = run("executor", "--redis-url", "redis://127.0.0.1:1/0", "--account", account, "--check")
    assert result.exit_code == 1 and "cannot read" in result.output


def test_check_as_a_subprocess(redis_url, account, redis_client):
    import subprocess

    cmd = [sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account, "executor", "--check"]
    assert subprocess.run(cmd, capture_output=True, timeout=60).returncode == 1
    redis_client.set(c.Keys(account).heartbeat, _beat(), px=5000)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

"""Every command has working help, with or without the producer library and executor installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xtqueue import cli as cli_mod

COMMANDS = sorted(cli_mod.cli.commands)


def test_the_expected_commands_exist():
    assert set(COMMANDS) == {"executor", "order", "buy", "sell", "cancel", "positions", "orders", "trades", "asset",
                             "status", "outcome", "ping", "tail", "demo", "halt", "resume", "acl",
                             "qmt-sim", "repay", "credit", "compacts", "credit-subjects", "slo-codes", "assure", "http", "run"}


def test_top_level_help(run):
    result = run("--help")
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output
    assert "XTQUEUE_REDIS_URL" in result.output and "XTQUEUE_ACCOUNT" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help(run, name):
    result = run(name, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: xtqueue {name}" in result.output


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "xtqueue", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "executor" in out.stdout and "demo" in out.stdout


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and "xtqueue" in result.output


def test_price_types_match_the_contract():
    from producer_lib import contract as c

    assert cli_mod.PRICE_TYPES == [p.value for p in c.PriceType]


def test_order_sides_are_the_contract_sides_but_the_cash_repayments():
    from producer_lib import contract as c

    assert cli_mod.ORDER_SIDES == [s.value for s in c.Side if not s.is_cash_repay]

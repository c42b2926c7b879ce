"""Order and query commands against a fake client: arguments reach the library, output is readable, --json parses,
and each error family ends in one line and its exit code."""

from __future__ import annotations

import json

import pytest

from producer_lib import contract as c
from xtqueue import _render

pl = _render._exceptions_module()
needs_sync_client = pytest.mark.skipif(not hasattr(__import__("producer_lib"), "SyncClient"),
                                       reason="producer_lib.SyncClient not landed yet")


# --- orders ----------------------------------------------------------------------------------------------------
def test_buy_passes_arguments(run, fake_client):
    result = run("buy", "600000.sh", "100", "10.01", "--strategy", "alpha", "--client-order-id", "my-1",
                 "--deadline", "5")
    assert result.exit_code == 0, result.output
    name, args, kw = fake_client.calls[0]
    assert name == "place_order" and args == ("600000.SH", "buy", 100, 10.01)
    assert kw == {"price_type": "limit", "strategy": "alpha", "client_order_id": "my-1", "deadline": 5.0}
    assert "placed: order 1001" in result.output and "my-1" in result.output


def test_order_and_sell(run, fake_client):
    assert run("order", "000001.SZ", "SELL", "200", "11").exit_code == 0
    assert run("sell", "000001.SZ", "200", "--price-type", "latest").exit_code == 0
    assert fake_client.calls[0][1] == ("000001.SZ", "sell", 200, 11.0)
    assert fake_client.calls[1][1] == ("000001.SZ", "sell", 200, None)
    assert fake_client.calls[1][2]["price_type"] == "latest"


def test_order_json(run, fake_client):
    result = run("buy", "600000.SH", "100", "10", "--json")
    assert json.loads(result.output)["order_id"] == 1001


@pytest.mark.parametrize("args", [["buy", "990000", "100", "10"], ["buy", "600000.SH", "0", "10"],
                                  ["buy", "600000.SH", "100"], ["order", "600000.SH", "hold", "100", "10"],
                                  ["buy", "600000.SH", "100", "-1"]])
def test_bad_order_arguments_are_usage_errors(run, fake_client, args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert not fake_client.calls


def test_cancel_selectors(run, fake_client):
    assert run("cancel", "1001").exit_code == 0
    assert run("cancel", "--client-order-id", "abc").exit_code == 0
    assert run("cancel", "--sysid", "S1", "--market", "sh").exit_code == 0
    assert [call[1:] for call in fake_client.calls] == [
        ((1001,), {"client_order_id": None, "sysid": None, "market": None}),
        ((None,), {"client_order_id": "abc", "sysid": None, "market": None}),
        ((None,), {"client_order_id": None, "sysid": "S1", "market": "SH"}),
    ]


@pytest.mark.parametrize("args", [[], ["1", "--client-order-id", "x"], ["--sysid", "S1"], ["1", "--market", "SH"]])
def test_cancel_needs_exactly_one_selector(run, fake_client, args):
    assert run("cancel", *args).exit_code == 2
    assert not fake_client.calls


# --- queries ---------------------------------------------------------------------------------------------------
def test_positions_table(run, fake_client):
    result = run("positions")
    assert result.exit_code == 0, result.output
    assert "600000.SH" in result.output and "浦发银行" in result.output and "can_use" in result.output


def test_positions_one_code(run, fake_client):
    assert run("positions", "600000.sh").exit_code == 0
    assert fake_client.calls[0][1] == ("600000.SH",)


def test_orders_filters(run, fake_client):
    result = run("orders", "--open", "--order-id", "1001", "--client-order-id", "abc123")
    assert result.exit_code == 0, result.output
    assert fake_client.calls[0][2] == {"cancelable_only": True, "order_id": 1001, "client_order_id": "abc123"}
    assert "part_succ" in result.output and "1001" in result.output


@pytest.mark.parametrize("command,check", [
    ("positions", lambda d: d[0]["code"] == "600000.SH"),
    ("orders", lambda d: d[0]["status"] == "part_succ"),
    ("trades", lambda d: d[0]["trade_id"] == "T9"),
    ("asset", lambda d: d["cash"] == 998_995.0),
    ("ping", lambda d: d["executor_id"] == "host-1" and d["round_trip_ms"] >= 0),
])
def test_read_commands_json(run, fake_client, command, check):
    result = run(command, "--json")
    assert result.exit_code == 0, result.output
    assert check(json.loads(result.output))


def test_outcome(run, fake_client):
    result = run("outcome", "abc123")
    assert result.exit_code == 0, result.output
    assert "placed" in result.output and "1001" in result.output
    data = json.loads(run("outcome", "abc123", "--json").output)
    assert data["state"] == "placed" and data["order"]["order_id"] == 1001


@pytest.mark.parametrize("command", ["trades", "asset", "ping"])
def test_read_commands_plain(run, fake_client, command):
    result = run(command)
    assert result.exit_code == 0, result.output
    assert result.output.strip()


# --- errors ----------------------------------------------------------------------------------------------------
def _err(cls, code, message="refused", **kw):
    return cls(message, code=code, command_id="cmd1", client_order_id="coid1", **kw)


ERRORS = [
    (lambda: _err(pl.BrokerRejected, c.ErrorCode.BROKER_REJECTED, "the broker refused the order", order_id=77,
                  broker_message="委托数量必须是100的整数倍"), 2, "error [broker_rejected]: the broker refused the order; "
                                                      "broker said: 委托数量必须是100的整数倍"),
    (lambda: _err(pl.Expired, c.ErrorCode.EXPIRED, "deadline passed"), 2, "error [expired]: deadline passed"),
    (lambda: _err(pl.InvalidRequest, c.ErrorCode.INVALID_REQUEST, "volume: bad"), 2, "error [invalid_request]"),
    (lambda: _err(pl.BrokerUnavailable, c.ErrorCode.BROKER_UNAVAILABLE, "MiniQMT down"), 2,
     "error [broker_unavailable]"),
    (lambda: _err(pl.RiskRejected, c.ErrorCode.RISK_REJECTED), 2, "error [risk_rejected]"),
    (lambda: _err(pl.Halted, c.ErrorCode.HALTED), 2, "error [halted]"),
    (lambda: _err(pl.Conflict, c.ErrorCode.CONFLICT), 2, "error [conflict]"),
    (lambda: _err(pl.NotFound, c.ErrorCode.NOT_FOUND), 2, "error [not_found]"),
    (lambda: _err(pl.Unauthorized, c.ErrorCode.UNAUTHORIZED), 2, "error [unauthorized]"),
    (lambda: _err(pl.OutcomeUnknown, c.ErrorCode.OUTCOME_UNKNOWN, "not known yet"), 3, "error [outcome_unknown]"),
    (lambda: pl.CommandTimeout("no reply within 10 s", client_order_id="coid1"), 3, "error [command_timeout]"),
    (lambda: _err(pl.ExecutorError, c.ErrorCode.INTERNAL, "boom"), 1, "error [internal]: boom"),
]


@pytest.mark.parametrize("make,code,text", ERRORS)
def test_typed_errors_are_one_line_with_exit_code(run, fake_client, make, code, text):
    fake_client.error = make()
    result = run("buy", "600000.SH", "150", "10")
    assert result.exit_code == code, result.output
    assert text in result.stderr
    assert "Traceback" not in result.output
    assert "coid1" in result.stderr
    if code == 3:
        assert "xtqueue outcome coid1" in result.stderr


def test_broker_rejection_shows_order_id(run, fake_client):
    fake_client.error = ERRORS[0][0]()
    result = run("buy", "600000.SH", "150", "10")
    assert "order 77" in result.stderr


@needs_sync_client
@pytest.mark.parametrize("command", ["positions", "orders", "trades", "asset", "status", "ping", "tail"])
def test_redis_unreachable_is_one_line(run, command):
    result = run("--redis-url", "redis://127.0.0.1:1/0", command, "--json" if command != "tail" else "--all")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error [redis]: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "Traceback" not in result.output


def test_password_is_not_printed(run):
    result = run("--redis-url", "redis://user:s3cret@127.0.0.1:1/0", "ping")
    assert result.exit_code == 1 and "s3cret" not in result.output and "***" in result.stderr


def test_unexpected_errors_are_one_line_and_their_traceback_needs_debug(run, fake_client):
    fake_client.error = ZeroDivisionError("bug")
    result = run("asset")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("error [internal]: ZeroDivisionError: bug") and "--debug" in result.output
    assert len(result.output.strip().splitlines()) == 2
    for args in (["--debug", "asset"], ["asset", "--debug"]):  # before or after the command name
        result = run(*args)
        assert isinstance(result.exception, ZeroDivisionError), args

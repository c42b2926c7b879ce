"""Helpers for the CLI tests: run `xtqueue` in-process (click's CliRunner) and a fake client for the read commands."""

from __future__ import annotations

import os
from typing import Any

import pytest
from click.testing import CliRunner

from producer_lib import contract as c
from xtqueue import cli as cli_mod
from xtqueue.cli import _connect


@pytest.fixture
def run(monkeypatch):
    """run(*args) -> click Result. The environment's XTQUEUE_* variables are cleared first."""
    for name in [n for n in os.environ if n.startswith("XTQUEUE_")]:
        monkeypatch.delenv(name)

    def _run(*args: str, **kw: Any):
        return CliRunner().invoke(cli_mod.cli, list(args), catch_exceptions=kw.pop("catch_exceptions", True), **kw)

    return _run


ORDER = c.OrderReport(order_id=1001, client_order_id="abc123", order_sysid="S1", code="600000.SH", side=c.Side.BUY,
                      order_type=23, volume=200, price=10.01, price_type=50, status=c.OrderStatus.PART_SUCC,
                      status_code=55, traded_volume=100, traded_price=10.0, order_time=1_760_000_000,
                      strategy="alpha", instrument_name="浦发银行")
TRADE = c.TradeReport(trade_id="T9", order_id=1001, client_order_id="abc123", code="600000.SH", side=c.Side.BUY,
                      order_type=23, price=10.0, volume=100, amount=1000.0, traded_time=1_760_000_001,
                      commission=5.0)
POSITION = c.PositionReport(code="600000.SH", volume=100, can_use_volume=0, on_road_volume=0, avg_price=10.0,
                            market_value=1001.0, last_price=10.01, instrument_name="浦发银行")
ASSET = c.AssetReport(account="SIM001", cash=998_995.0, frozen_cash=1001.0, market_value=1001.0,
                      total_asset=1_000_997.0)
PONG = c.PingResult(executor_id="host-1", version="0.1.0", broker="sim", broker_connected=True, uptime_s=12.5,
                    last_event_seq=42, commands_done=7)


class FakeClient:
    """Stands in for producer_lib.SyncClient: records calls, returns canned reports, or raises ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, tuple, dict]] = []

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def _call(self, name: str, args: tuple, kwargs: dict, result: Any) -> Any:
        self.calls.append((name, args, kwargs))
        if self.error is not None:
            raise self.error
        return result

    def place_order(self, code, side, volume, price=None, **kw):
        coid = kw.get("client_order_id") or "fresh0001"
        return self._call("place_order", (code, side, volume, price), kw,
                          c.OrderAck(order_id=1001, client_order_id=coid, status=c.OrderStatus.REPORTED))

    def cancel_order(self, order_id=None, **kw):
        return self._call("cancel_order", (order_id,), kw,
                          c.CancelAck(order_id=order_id or 1001, client_order_id=kw.get("client_order_id")))

    def query_positions(self, code=None):
        return self._call("query_positions", (code,), {}, [POSITION])

    def query_orders(self, **kw):
        return self._call("query_orders", (), kw, [ORDER])

    def query_trades(self):
        return self._call("query_trades", (), {}, [TRADE])

    def query_asset(self):
        return self._call("query_asset", (), {}, ASSET)

    def query_account_status(self):
        return self._call("query_account_status", (), {},
                          c.AccountStatusResult(account="SIM001", status=0, status_name="ok"))

    def query_outcome(self, coid):
        return self._call("query_outcome", (coid,), {},
                          c.OutcomeResult(client_order_id=coid, state=c.OutcomeState.PLACED, order_id=1001,
                                          order=ORDER))

    def ping(self):
        return self._call("ping", (), {}, PONG)


@pytest.fixture
def fake_client(monkeypatch):
    """Install a FakeClient as the CLI's client; returns it (set ``.error`` to make every call raise)."""
    fake = FakeClient()
    monkeypatch.setattr(_connect, "client", lambda g, strategy="": fake)
    return fake

"""Shared by the CLI tests: sample events of every type, and the skip marker of the end-to-end tests."""

from __future__ import annotations

import importlib.util

import pytest

from producer_lib import contract as c


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


# End-to-end tests need the executor engine and the simulator; they skip until both can be imported.
HAVE_EXECUTOR = _importable("executor.app") and _importable("executor.sim")
needs_executor = pytest.mark.skipif(not HAVE_EXECUTOR, reason="executor.app / executor.sim not importable yet")


def sample_events():
    """[(event, client_order_id, order_id)], in stream order."""
    order = c.OrderReport(order_id=1001, client_order_id="c1", code="600000.SH", side=c.Side.BUY, order_type=23,
                          volume=100, price=10.0, price_type=50, status=c.OrderStatus.REPORTED, status_code=50)
    trade = c.TradeReport(trade_id="T1", order_id=1001, client_order_id="c1", code="600000.SH", side=c.Side.BUY,
                          order_type=23, price=10.0, volume=100, amount=1000.0)
    return [
        (c.OrderUpdated(order=order), "c1", 1001),
        (c.OrderFilled(trade=trade), "c1", 1001),
        (c.OrderRejected(order_id=1002, client_order_id="c2", error_id=-61, error_msg="委托数量必须是100的整数倍"),
         "c2", 1002),
        (c.CancelRejected(order_id=1001, client_order_id="c1", error_msg="already filled"), "c1", 1001),
        (c.OrderResponded(order_id=1003, client_order_id="c3", seq=5), "c3", 1003),
        (c.CancelResponded(order_id=1001, cancel_result=0, seq=6), "c1", 1001),
        (c.AssetUpdated(asset=c.AssetReport(account="A", cash=1.0, frozen_cash=0.0, market_value=2.0,
                                            total_asset=3.0)), "", None),
        (c.PositionUpdated(position=c.PositionReport(code="600000.SH", volume=100, can_use_volume=0)), "", None),
        (c.AccountStatusChanged(status=0, status_name="ok"), "", None),
        (c.BrokerConnected(executor_id="e1", session=101), "", None),
        (c.BrokerDisconnected(executor_id="e1", reason="probe failed"), "", None),
        (c.ExecutorStarted(executor_id="e1", broker="sim", version="0.1.0"), "", None),
        (c.ExecutorStopped(executor_id="e1", reason="SIGTERM"), "", None),
        (c.AccountHalted(executor_id="e1", reason="operator: runaway strategy"), "", None),
        (c.AccountResumed(executor_id="e1"), "", None),
    ]

"""Events: what happened at the broker or the executor, each naming the xtquant callback it comes from."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from producer_lib.contract._models import AssetReport, OrderReport, PositionReport, TradeReport, _Model


# Events (what happened; each names the xtquant callback it comes from).
class Event(_Model):
    TYPE: ClassVar[str] = ""


class OrderUpdated(Event):
    """on_stock_order: an order changed (status, filled volume)."""

    TYPE: ClassVar[str] = "order_updated"
    order: OrderReport
    # "reconciliation": the push was missing; the executor found the change in the broker's order list
    detected_by: Literal["callback", "reconciliation"] = "callback"


class OrderFilled(Event):
    """on_stock_trade: one fill."""

    TYPE: ClassVar[str] = "order_filled"
    trade: TradeReport
    # "reconciliation": the push was missing; the executor found the fill in the broker's trade list
    detected_by: Literal["callback", "reconciliation"] = "callback"


class OrderRejected(Event):
    """on_order_error: the broker refused an order."""

    TYPE: ClassVar[str] = "order_rejected"
    order_id: int
    client_order_id: str = ""
    error_id: int = 0
    error_msg: str = ""
    strategy: str = ""
    detected_by: Literal["callback", "reconciliation"] = "callback"


class CancelRejected(Event):
    """on_cancel_error: the broker refused a cancel."""

    TYPE: ClassVar[str] = "cancel_rejected"
    order_id: int
    client_order_id: str = ""
    order_sysid: str = ""
    market: int | None = None
    error_id: int = 0
    error_msg: str = ""


class OrderResponded(Event):
    """on_order_stock_async_response: the broker's answer to an order request (order_id -1 = refused)."""

    TYPE: ClassVar[str] = "order_responded"
    order_id: int
    client_order_id: str = ""
    # xtquant's request number: diagnostic only (nothing should rely on it; it may be left out in a later protocol,
    # hence optional). The adapter matches answers by (trader, seq) itself: executor/broker/answers.py.
    seq: int = 0
    error_msg: str = ""
    strategy: str = ""
    # Adapter-internal, never published: the trader instance (the adapter's connection generation) that answered.
    trader: int = Field(0, exclude=True)


class CancelResponded(Event):
    """on_cancel_order_stock_async_response: the broker's answer to a cancel request (0 = sent)."""

    TYPE: ClassVar[str] = "cancel_responded"
    order_id: int
    order_sysid: str = ""
    cancel_result: int
    seq: int = 0  # as OrderResponded.seq
    error_msg: str = ""
    trader: int = Field(0, exclude=True)  # as OrderResponded.trader


class AssetUpdated(Event):
    """on_stock_asset."""

    TYPE: ClassVar[str] = "asset_updated"
    asset: AssetReport


class PositionUpdated(Event):
    """on_stock_position."""

    TYPE: ClassVar[str] = "position_updated"
    position: PositionReport


class AccountStatusChanged(Event):
    """on_account_status."""

    TYPE: ClassVar[str] = "account_status"
    status: int
    status_name: str


class BrokerConnected(Event):
    """The executor connected (or reconnected) and subscribed to MiniQMT (xtquant never fires on_connected)."""

    TYPE: ClassVar[str] = "broker_connected"
    executor_id: str
    session: int
    reconnect: bool = False


class BrokerDisconnected(Event):
    """on_disconnected, or the executor's probe found MiniQMT gone."""

    TYPE: ClassVar[str] = "broker_disconnected"
    executor_id: str
    reason: str = ""


class ExecutorStarted(Event):
    TYPE: ClassVar[str] = "executor_started"
    executor_id: str
    broker: str
    version: str


class ExecutorStopped(Event):
    TYPE: ClassVar[str] = "executor_stopped"
    executor_id: str
    reason: str = ""


class AccountHalted(Event):
    """The executor saw the account's kill switch (the ``halt`` key) turned on: new orders are refused."""

    TYPE: ClassVar[str] = "account_halted"
    executor_id: str
    reason: str = ""


class AccountResumed(Event):
    """The executor saw the account's kill switch turned off: new orders are admitted again."""

    TYPE: ClassVar[str] = "account_resumed"
    executor_id: str


EVENT_TYPES: dict[str, type[Event]] = {
    e.TYPE: e
    for e in (OrderUpdated, OrderFilled, OrderRejected, CancelRejected, OrderResponded, CancelResponded,
              AssetUpdated, PositionUpdated, AccountStatusChanged, BrokerConnected, BrokerDisconnected,
              ExecutorStarted, ExecutorStopped, AccountHalted, AccountResumed)
}

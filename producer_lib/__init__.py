"""xtqueue producer library: send orders to the XunTou QMT executor through Redis streams and follow its events.

    async with Client("redis://host:6379/0", "ACCOUNT") as client:
        ack = await client.buy("600000.SH", 100, 10.5)

``Client`` (asyncio) and ``SyncClient`` (threads) have the same methods. The wire contract is
``producer_lib.contract``.
"""

from . import contract
from ._base import Gap
from ._exceptions import (
    BrokerRejected,
    BrokerUnavailable,
    ClientClosed,
    CommandTimeout,
    Conflict,
    Expired,
    ExecutorError,
    Halted,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    Rejected,
    RiskRejected,
    Unauthorized,
    XtqueueError,
)
from .client import Client
from .contract import (
    AccountHalted,
    AccountResumed,
    AccountStatusChanged,
    AccountStatusResult,
    AssetReport,
    AssetUpdated,
    BrokerConnected,
    BrokerDisconnected,
    CancelAck,
    CancelRejected,
    CancelResponded,
    ErrorCode,
    Event,
    EventMessage,
    ExecutorStarted,
    ExecutorStopped,
    Market,
    OrderAck,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderResponded,
    OrderStatus,
    OrderUpdated,
    OutcomeResult,
    OutcomeState,
    PingResult,
    PositionReport,
    PositionUpdated,
    PriceType,
    Side,
    TradeReport,
)
from .sync_client import SyncClient

__all__ = [
    "AccountHalted",
    "AccountResumed",
    "AccountStatusChanged",
    "AccountStatusResult",
    "AssetReport",
    "AssetUpdated",
    "BrokerConnected",
    "BrokerDisconnected",
    "BrokerRejected",
    "BrokerUnavailable",
    "CancelAck",
    "CancelRejected",
    "CancelResponded",
    "Client",
    "ClientClosed",
    "CommandTimeout",
    "Conflict",
    "ErrorCode",
    "Event",
    "EventMessage",
    "ExecutorError",
    "ExecutorStarted",
    "ExecutorStopped",
    "Expired",
    "Gap",
    "Halted",
    "InvalidRequest",
    "Market",
    "NotFound",
    "OrderAck",
    "OrderFilled",
    "OrderRejected",
    "OrderReport",
    "OrderResponded",
    "OrderStatus",
    "OrderUpdated",
    "OutcomeResult",
    "OutcomeState",
    "OutcomeUnknown",
    "PingResult",
    "PositionReport",
    "PositionUpdated",
    "PriceType",
    "Rejected",
    "RiskRejected",
    "Side",
    "SyncClient",
    "TradeReport",
    "Unauthorized",
    "XtqueueError",
    "contract",
]

# Tracebacks and reprs show the public path (producer_lib.Client), not the private module.
for _name in ("Client", "SyncClient", "Gap", "XtqueueError", "OutcomeUnknown", "CommandTimeout", "Rejected",
              "Expired", "InvalidRequest", "BrokerRejected", "BrokerUnavailable", "RiskRejected", "Halted",
              "Unauthorized", "Conflict", "NotFound", "ExecutorError", "ClientClosed"):
    globals()[_name].__module__ = __name__
del _name

"""Commands, broker reports and the results of successful replies (the bodies the wire carries)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from producer_lib.ashare import CODE_RE
from producer_lib.contract._keys import CLIENT_ORDER_ID_MAX_BYTES, PROTOCOL_VERSION, XT_TEXT_MAX_CHARS, _COID_RE
from producer_lib.contract._enums import (
    ErrorCode, Market, OrderStatus, OutcomeState, PRICE_TYPE_MARKETS, PriceType, Side,
)


# --- Models -----------------------------------------------------------------------------------------------------
class _Model(BaseModel):
    # Results, reports and events ignore fields they do not know: an executor one version ahead may add a field
    # without breaking every client. Commands (below) forbid them: the executor refuses what it cannot honour.
    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)


StockCode = Annotated[str, Field(pattern=CODE_RE.pattern, description='"600000.SH"-style code')]
ClientOrderId = Annotated[str, Field(pattern=_COID_RE.pattern, max_length=CLIENT_ORDER_ID_MAX_BYTES)]


# Commands (imperative names). Fields marked "envelope" travel as plain-text routing fields, not in the body.
class Command(_Model):
    """Base of every command. ``TYPE`` is the value of the envelope ``type`` field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = ""
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset()


class PlaceOrder(Command):
    """Place one order (xtquant ``order_stock_async``). The client order id is the idempotency key."""

    TYPE: ClassVar[str] = "place_order"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id", "strategy"})

    client_order_id: ClientOrderId
    code: StockCode
    side: Side
    volume: int | None = Field(default=None, gt=0, le=100_000_000,
                               description="shares (张 for bonds); every side but a direct cash repayment")
    price_type: PriceType = PriceType.LIMIT
    price: float | None = Field(default=None, gt=0, le=1_000_000, description="required for limit orders")
    strategy: str = Field(default="", max_length=64)
    amount: float | None = Field(default=None, gt=0, le=1_000_000_000,
                                 description="yuan, at most two decimals: a direct cash repayment only")
    # An xtquant program's own order_remark and strategy_name (xtqueue/compat/remote): the broker gets the client
    # order id and the strategy above instead (the executor finds orders by them); the executor keeps these with
    # the intent and gives them back in query_outcome, so the program sees its own values. None = not given.
    # Not part of the fingerprint: they never reach the broker.
    xt_remark: str | None = Field(default=None, max_length=XT_TEXT_MAX_CHARS)
    xt_strategy_name: str | None = Field(default=None, max_length=XT_TEXT_MAX_CHARS)

    @model_validator(mode="after")
    def _price_matches_type(self) -> PlaceOrder:
        if self.side.is_cash_repay:
            if self.amount is None or self.volume is not None:
                raise ValueError("a direct cash repayment gives an amount in yuan and no volume")
            if abs(self.amount * 100 - round(self.amount * 100)) > 1e-6:
                raise ValueError("a repayment amount has at most two decimals (fen)")
        elif self.volume is None or self.amount is not None:
            raise ValueError(f"a {self.side.value} order gives a volume and no amount")
        if self.side.is_direct:
            if self.price_type is not PriceType.LIMIT or self.price is not None:
                raise ValueError("a direct repayment has no price and no price type")
            return self
        if self.price_type is PriceType.LIMIT and self.price is None:
            raise ValueError("a limit order needs a price")
        exchange = self.code.rsplit(".", 1)[1]
        if exchange not in PRICE_TYPE_MARKETS[self.price_type]:
            raise ValueError(f"price type {self.price_type.value} is not accepted on {exchange}")
        return self

    def fingerprint(self) -> str:
        """The order fields a repeated client order id must match (anything else is a conflict)."""
        price = "" if self.price is None else f"{self.price:.4f}"
        volume = self.volume if self.amount is None else f"{self.amount:.2f}CNY"
        return f"{self.code}|{self.side.value}|{volume}|{self.price_type.value}|{price}|{self.strategy}"

    @property
    def broker_volume(self) -> int:
        """The ``order_volume`` the broker reports for this order: the volume, or a cash repayment's whole yuan
        (xtquant sends ``int(volume)`` beside the exact amount, reference 2.1)."""
        return self.volume if self.volume is not None else int(self.amount or 0)


class CancelOrder(Command):
    """Cancel an order, by broker order id, by client order id, or by exchange contract number (sysid + market)."""

    TYPE: ClassVar[str] = "cancel_order"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})

    order_id: int | None = Field(default=None, gt=0)
    client_order_id: ClientOrderId | None = None
    sysid: str | None = Field(default=None, min_length=1, max_length=64)
    market: Market | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> CancelOrder:
        given = sum(x is not None for x in (self.order_id, self.client_order_id, self.sysid))
        if given != 1:
            raise ValueError("give exactly one of order_id, client_order_id, sysid")
        if self.sysid is not None and self.market is None:
            raise ValueError("a cancel by sysid needs the market (SH, SZ or BJ)")
        return self


class QueryAsset(Command):
    TYPE: ClassVar[str] = "query_asset"


class QueryPositions(Command):
    TYPE: ClassVar[str] = "query_positions"
    code: StockCode | None = None


class QueryOrders(Command):
    """Today's orders: all, cancelable only, or one (by order id or client order id)."""

    TYPE: ClassVar[str] = "query_orders"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})
    cancelable_only: bool = False
    order_id: int | None = Field(default=None, gt=0)
    client_order_id: ClientOrderId | None = None


class QueryTrades(Command):
    TYPE: ClassVar[str] = "query_trades"


class QueryAccountStatus(Command):
    TYPE: ClassVar[str] = "query_account_status"


class QueryOutcome(Command):
    """What happened to a client order id (placed? rejected? expired? unknown?). Safe to ask at any time."""

    TYPE: ClassVar[str] = "query_outcome"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})
    client_order_id: ClientOrderId


class Ping(Command):
    TYPE: ClassVar[str] = "ping"


COMMAND_TYPES: dict[str, type[Command]] = {
    c.TYPE: c
    for c in (PlaceOrder, CancelOrder, QueryAsset, QueryPositions, QueryOrders, QueryTrades, QueryAccountStatus,
              QueryOutcome, Ping)
}


# Reports: snapshots of broker state.
class AssetReport(_Model):
    account: str
    cash: float
    frozen_cash: float
    market_value: float
    total_asset: float
    fetch_balance: float = 0.0


class OrderReport(_Model):
    order_id: int
    client_order_id: str = ""  # the order's remark: "" for orders not placed through xtqueue
    order_sysid: str = ""
    code: str
    side: Side | None = None  # None for order types other than stock buy/sell
    order_type: int
    volume: int
    price: float
    price_type: int  # the broker's code as MiniQMT reports it (50 limit, 88 best-5 IOC, ...)
    status: OrderStatus
    status_code: int
    status_msg: str = ""
    traded_volume: int = 0
    traded_price: float = 0.0
    order_time: int = 0  # epoch seconds
    strategy: str = ""
    instrument_name: str = ""


class TradeReport(_Model):
    trade_id: str
    order_id: int
    client_order_id: str = ""
    order_sysid: str = ""
    code: str
    side: Side | None = None
    order_type: int
    price: float
    volume: int
    amount: float
    traded_time: int = 0  # epoch seconds
    commission: float = 0.0
    strategy: str = ""
    instrument_name: str = ""


class PositionReport(_Model):
    code: str
    volume: int
    can_use_volume: int
    frozen_volume: int = 0
    on_road_volume: int = 0
    yesterday_volume: int = 0
    open_price: float = 0.0
    avg_price: float = 0.0
    market_value: float = 0.0
    last_price: float = 0.0
    instrument_name: str = ""


# Results: the body of a successful reply, one per command type.
class OrderAck(_Model):
    """The broker took the order: it has an order id. ``status`` is the first status the broker reported."""

    order_id: int
    client_order_id: str
    status: OrderStatus
    status_msg: str = ""
    duplicate: bool = False  # True when answered from the journal: this id had been placed before


class CancelAck(_Model):
    """The broker took the cancel request (xtquant cancel_result 0). The final status arrives as an event."""

    order_id: int | None = None
    client_order_id: str | None = None
    sysid: str | None = None


class OrdersResult(_Model):
    orders: list[OrderReport]


class TradesResult(_Model):
    trades: list[TradeReport]


class PositionsResult(_Model):
    positions: list[PositionReport]


class AccountStatusResult(_Model):
    account: str
    status: int  # xtconstant ACCOUNT_STATUS_* (0 = ok)
    status_name: str


class OutcomeResult(_Model):
    client_order_id: str
    state: OutcomeState
    order_id: int | None = None
    message: str = ""
    order: OrderReport | None = None
    # PlaceOrder.xt_remark / xt_strategy_name as journaled with the intent (None: not given, or not in the journal)
    xt_remark: str | None = None
    xt_strategy_name: str | None = None


class PingResult(_Model):
    executor_id: str
    version: str
    protocol: str = PROTOCOL_VERSION
    broker: str  # "sim" or "xt"
    broker_connected: bool
    redis_ok: bool = True
    leader: bool = True
    uptime_s: float
    last_event_seq: int
    commands_done: int
    # "STOCK" or "CREDIT": the account type the executor trades (its xtquant StockAccount). None from an executor
    # older than this field: a client that must not trade the wrong type (xtqueue/compat) then assumes nothing.
    account_type: str | None = None


RESULT_TYPES: dict[str, type[_Model]] = {
    PlaceOrder.TYPE: OrderAck,
    CancelOrder.TYPE: CancelAck,
    QueryAsset.TYPE: AssetReport,
    QueryPositions.TYPE: PositionsResult,
    QueryOrders.TYPE: OrdersResult,
    QueryTrades.TYPE: TradesResult,
    QueryAccountStatus.TYPE: AccountStatusResult,
    QueryOutcome.TYPE: OutcomeResult,
    Ping.TYPE: PingResult,
}


class ErrorInfo(_Model):
    """The body of an error reply."""

    code: ErrorCode
    message: str
    broker_message: str | None = None  # the broker's own text, verbatim, for broker refusals
    broker_error_id: int | None = None
    order_id: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)

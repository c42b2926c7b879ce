"""The contract's enumerations: sides, price types, markets, order statuses (with the one table of status
order and finality), error codes and outcome states."""

from __future__ import annotations

from enum import Enum
from typing import Protocol


# --- Enums ------------------------------------------------------------------------------------------------------
class _TextEnum(str, Enum):
    """An enum that prints as its value (``print(ack.status)`` → ``reported``, as on the wire)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Side(_TextEnum):
    """What an order does. ``buy``/``sell`` are xtquant's STOCK_BUY/STOCK_SELL (23/24); on a CREDIT account the
    same numbers are 担保品买入/卖出 (collateral buy/sell). The others need a CREDIT account (reference 5.2); the
    ``_special`` ones are the 专项 (special position) variants 40–45 of 27–32."""

    BUY = "buy"  # 23 买入 / 担保品买入
    SELL = "sell"  # 24 卖出 / 担保品卖出
    FIN_BUY = "fin_buy"  # 27 融资买入 margin buy: opens a financing compact
    SLO_SELL = "slo_sell"  # 28 融券卖出 short sell: opens a securities compact
    BUY_SECU_REPAY = "buy_secu_repay"  # 29 买券还券 buy shares to return them to a short compact
    DIRECT_SECU_REPAY = "direct_secu_repay"  # 30 直接还券 return held shares to a short compact (no price)
    SELL_SECU_REPAY = "sell_secu_repay"  # 31 卖券还款 sell held shares, proceeds repay financing
    DIRECT_CASH_REPAY = "direct_cash_repay"  # 32 直接还款 repay financing with cash: ``amount`` in yuan, no volume
    FIN_BUY_SPECIAL = "fin_buy_special"  # 40 专项融资买入
    SLO_SELL_SPECIAL = "slo_sell_special"  # 41 专项融券卖出
    BUY_SECU_REPAY_SPECIAL = "buy_secu_repay_special"  # 42 专项买券还券
    DIRECT_SECU_REPAY_SPECIAL = "direct_secu_repay_special"  # 43 专项直接还券
    SELL_SECU_REPAY_SPECIAL = "sell_secu_repay_special"  # 44 专项卖券还款
    DIRECT_CASH_REPAY_SPECIAL = "direct_cash_repay_special"  # 45 专项直接还款

    @property
    def is_credit(self) -> bool:
        """Needs a CREDIT account."""
        return self not in (Side.BUY, Side.SELL)

    @property
    def is_buy(self) -> bool:
        """Buys at the exchange (the price band's buy side)."""
        return self in _BUY_SIDES

    @property
    def is_cash_repay(self) -> bool:
        """A direct cash repayment: an ``amount`` in yuan, no volume, no price."""
        return self in (Side.DIRECT_CASH_REPAY, Side.DIRECT_CASH_REPAY_SPECIAL)

    @property
    def is_direct(self) -> bool:
        """No exchange order (a direct repayment): no price."""
        return self in _DIRECT_SIDES

    @property
    def uses_holding(self) -> bool:
        """Sells or hands over shares the account holds (counts against the sellable volume)."""
        return self in _HOLDING_SIDES

    @property
    def opens_debt(self) -> bool:
        """Opens a compact: margin buy or short sell."""
        return self in _DEBT_SIDES


_BUY_SIDES = frozenset({Side.BUY, Side.FIN_BUY, Side.BUY_SECU_REPAY, Side.FIN_BUY_SPECIAL,
                        Side.BUY_SECU_REPAY_SPECIAL})
_DIRECT_SIDES = frozenset({Side.DIRECT_SECU_REPAY, Side.DIRECT_CASH_REPAY, Side.DIRECT_SECU_REPAY_SPECIAL,
                           Side.DIRECT_CASH_REPAY_SPECIAL})
_HOLDING_SIDES = frozenset({Side.SELL, Side.SELL_SECU_REPAY, Side.DIRECT_SECU_REPAY, Side.SELL_SECU_REPAY_SPECIAL,
                            Side.DIRECT_SECU_REPAY_SPECIAL})
_DEBT_SIDES = frozenset({Side.FIN_BUY, Side.SLO_SELL, Side.FIN_BUY_SPECIAL, Side.SLO_SELL_SPECIAL})
_SIDE_VALUES = frozenset(s.value for s in Side)


class PriceType(_TextEnum):
    """Price types a strategy may send. The executor maps each onto xtconstant's value."""

    LIMIT = "limit"  # FIX_PRICE 11, all exchanges
    LATEST = "latest"  # LATEST_PRICE 5, all exchanges
    SH_BEST5_CANCEL = "sh_best5_cancel"  # MARKET_SH_CONVERT_5_CANCEL 42, SSE/BSE
    SH_BEST5_LIMIT = "sh_best5_limit"  # MARKET_SH_CONVERT_5_LIMIT 43, SSE/BSE
    PEER_BEST = "peer_best"  # MARKET_PEER_PRICE_FIRST 44, SSE/SZSE/BSE
    OWN_BEST = "own_best"  # MARKET_MINE_PRICE_FIRST 45, SSE/SZSE/BSE
    SZ_IOC = "sz_ioc"  # MARKET_SZ_INSTBUSI_RESTCANCEL 46, SZSE
    SZ_BEST5_CANCEL = "sz_best5_cancel"  # MARKET_SZ_CONVERT_5_CANCEL 47, SZSE
    SZ_FOK = "sz_fok"  # MARKET_SZ_FULL_OR_CANCEL 48, SZSE


# Which exchanges accept which market price type (limit and latest go everywhere).
PRICE_TYPE_MARKETS: dict[PriceType, frozenset[str]] = {
    PriceType.LIMIT: frozenset({"SH", "SZ", "BJ"}),
    PriceType.LATEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.SH_BEST5_CANCEL: frozenset({"SH", "BJ"}),
    PriceType.SH_BEST5_LIMIT: frozenset({"SH", "BJ"}),
    PriceType.PEER_BEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.OWN_BEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.SZ_IOC: frozenset({"SZ"}),
    PriceType.SZ_BEST5_CANCEL: frozenset({"SZ"}),
    PriceType.SZ_FOK: frozenset({"SZ"}),
}


class Market(_TextEnum):
    SH = "SH"
    SZ = "SZ"
    BJ = "BJ"


class OrderStatus(_TextEnum):
    """Order status, one per xtconstant ORDER_* value (the number in the comment)."""

    UNREPORTED = "unreported"  # 48 未报
    WAIT_REPORTING = "wait_reporting"  # 49 待报
    REPORTED = "reported"  # 50 已报: working at the exchange
    REPORTED_CANCEL = "reported_cancel"  # 51 已报待撤: cancel pending, NOT final
    PARTSUCC_CANCEL = "partsucc_cancel"  # 52 部成待撤: partly filled, cancel pending, NOT final
    PART_CANCEL = "part_cancel"  # 53 部撤: partly filled, rest cancelled (final)
    CANCELED = "canceled"  # 54 已撤 (final)
    PART_SUCC = "part_succ"  # 55 部成: partly filled, rest working
    SUCCEEDED = "succeeded"  # 56 已成 (final)
    JUNK = "junk"  # 57 废单: rejected (final)
    UNKNOWN = "unknown"  # 255, or any code this version does not know

    @property
    def is_final(self) -> bool:
        return self in FINAL_ORDER_STATUSES


#: How far an order has come, by status: the one table of status order, finality and allowed moves. With the traded
#: volume it is what "a published status never moves backwards" compares (``is_ahead``): MiniQMT can push an older
#: state after a newer one, e.g. a partial fill after "filled" (docs/architecture.md, "Facts about xtquant").
STATUS_RANK = {
    OrderStatus.UNREPORTED: 0, OrderStatus.WAIT_REPORTING: 0, OrderStatus.UNKNOWN: 0,
    OrderStatus.REPORTED: 1, OrderStatus.PART_SUCC: 2, OrderStatus.REPORTED_CANCEL: 2,
    OrderStatus.PARTSUCC_CANCEL: 3,
    OrderStatus.PART_CANCEL: 4, OrderStatus.CANCELED: 4, OrderStatus.SUCCEEDED: 4, OrderStatus.JUNK: 4,
}
FINAL_RANK = 4  # the final statuses: nothing follows them
FINAL_ORDER_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == FINAL_RANK)


class _Ranked(Protocol):
    """What the status table ranks: an order's status and filled volume (contract.OrderReport; the models import
    this module, not the other way round)."""

    status: OrderStatus
    traded_volume: int


def order_rank(order: _Ranked) -> int:
    """How far an order has come, as one number: more filled, then a later status, is larger."""
    return order.traded_volume * 10 + STATUS_RANK.get(order.status, 0)


def is_ahead(report: _Ranked, last: _Ranked) -> bool:
    """True if ``report`` is a later state of the order than ``last`` (more filled, or further along): the allowed
    moves. A final status is never followed by a non-final one."""
    if last.status.is_final and not report.status.is_final:
        return False
    if report.traded_volume != last.traded_volume:
        return report.traded_volume > last.traded_volume
    return STATUS_RANK.get(report.status, 0) > STATUS_RANK.get(last.status, 0)


class ErrorCode(_TextEnum):
    """Why a command failed. Each maps to one exception class in producer_lib (see _exceptions.py)."""

    INVALID_REQUEST = "invalid_request"  # malformed, wrong types, failed validation: nothing was placed
    UNKNOWN_COMMAND = "unknown_command"  # command type this executor does not know: nothing was done
    UNSUPPORTED_VERSION = "unsupported_version"  # protocol version mismatch: nothing was done
    EXPIRED = "expired"  # deadline passed before the executor reached the order: nothing was placed
    CONFLICT = "conflict"  # client order id reused with different order fields: nothing new was placed
    BROKER_REJECTED = "broker_rejected"  # the broker (MiniQMT / counter / exchange) refused it
    BROKER_UNAVAILABLE = "broker_unavailable"  # MiniQMT not connected: nothing was placed
    OUTCOME_UNKNOWN = "outcome_unknown"  # the executor cannot know yet whether the broker has it: ask again
    RISK_REJECTED = "risk_rejected"  # refused by a pre-trade risk limit: nothing was placed
    HALTED = "halted"  # the account's kill switch is on: nothing was placed
    UNAUTHORIZED = "unauthorized"  # signature missing/wrong/replayed, or names another strategy: nothing was done
    ID_AHEAD = "id_ahead"  # stream entry id ahead of the Redis server clock (chosen by the producer): not done
    NOT_FOUND = "not_found"  # the order to cancel / query does not exist
    INTERNAL = "internal"  # executor bug; the command was not executed


class OutcomeState(_TextEnum):
    """What happened to one client order id, as the executor's journal knows it."""

    PENDING = "pending"  # intent recorded, broker answer not yet known
    PLACED = "placed"  # the broker accepted it and gave an order id
    REJECTED = "rejected"  # the broker refused it
    EXPIRED = "expired"  # refused before reaching the broker: deadline passed
    REFUSED = "refused"  # refused before reaching the broker for another reason (risk, halt, unavailable)
    UNKNOWN = "unknown"  # sent to the broker, no answer and not found: may still appear
    NOT_FOUND = "not_found"  # the executor has never seen this client order id

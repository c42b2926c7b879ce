"""The simulated broker's records: quotes, cash accounts, positions and orders (one row each in SQLite)."""

from __future__ import annotations

from xtquant import xtconstant as xc

from . import rules as R


BUY, SELL = xc.STOCK_BUY, xc.STOCK_SELL
ORDER_SUCCEEDED, ORDER_PART_SUCC = xc.ORDER_SUCCEEDED, xc.ORDER_PART_SUCC
OPEN_STATUSES = frozenset({xc.ORDER_UNREPORTED, xc.ORDER_WAIT_REPORTING, xc.ORDER_REPORTED, xc.ORDER_PART_SUCC,
                           xc.ORDER_REPORTED_CANCEL, xc.ORDER_PARTSUCC_CANCEL})



class Quote:
    __slots__ = ("code", "name", "last", "prev_close", "inst", "down", "up")

    def __init__(self, code: str, name: str, last: float, prev_close: float, inst: R.Instrument):
        self.code, self.name, self.inst = code, name, inst
        self.last = last
        self.set_prev_close(prev_close)

    def set_prev_close(self, prev_close: float) -> None:
        self.prev_close = prev_close
        self.down, self.up = R.price_limits(prev_close, self.inst)


class Account:
    __slots__ = ("account_id", "cash", "frozen_cash", "sell_proceeds")

    def __init__(self, account_id: str, cash: float, frozen_cash: float = 0.0, sell_proceeds: float = 0.0):
        self.account_id, self.cash, self.frozen_cash, self.sell_proceeds = account_id, cash, frozen_cash, sell_proceeds

    def row(self) -> tuple:
        return (self.account_id, self.cash, self.frozen_cash, self.sell_proceeds)


class Position:
    __slots__ = ("account_id", "code", "volume", "can_use", "frozen", "yesterday", "cost_total", "open_amount",
                 "open_volume")

    def __init__(self, account_id, code, volume=0, can_use=0, frozen=0, yesterday=0, cost_total=0.0,
                 open_amount=0.0, open_volume=0):
        self.account_id, self.code = account_id, code
        self.volume, self.can_use, self.frozen, self.yesterday = volume, can_use, frozen, yesterday
        self.cost_total, self.open_amount, self.open_volume = cost_total, open_amount, open_volume

    def row(self) -> tuple:
        return (self.account_id, self.code, self.volume, self.can_use, self.frozen, self.yesterday,
                self.cost_total, self.open_amount, self.open_volume)


class Order:
    __slots__ = ("order_id", "day", "account_id", "code", "order_type", "volume", "req_price_type", "price_type",
                 "price", "freeze_price", "traded_volume", "traded_amount", "status", "status_msg",
                 "strategy_name", "remark", "sysid", "order_time", "frozen", "cum_commission", "cum_fees",
                 "wait_update", "inst", "name")

    def row(self) -> tuple:
        return (self.order_id, self.day, self.account_id, self.code, self.order_type, self.volume,
                self.req_price_type, self.price_type, self.price, self.freeze_price, self.traded_volume,
                self.traded_amount, self.status, self.status_msg, self.strategy_name, self.remark, self.sysid,
                self.order_time, self.frozen, self.cum_commission, self.cum_fees, self.wait_update)

    @classmethod
    def from_row(cls, r: tuple) -> "Order":
        o = cls()
        (o.order_id, o.day, o.account_id, o.code, o.order_type, o.volume, o.req_price_type, o.price_type, o.price,
         o.freeze_price, o.traded_volume, o.traded_amount, o.status, o.status_msg, o.strategy_name, o.remark,
         o.sysid, o.order_time, o.frozen, o.cum_commission, o.cum_fees, o.wait_update) = r
        o.inst = None
        o.name = ""
        return o

    @property
    def remaining(self) -> int:
        return self.volume - self.traded_volume

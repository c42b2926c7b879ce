"""The engine's answers: xtquant objects built from the records, and the query calls."""

from __future__ import annotations

import math

from xtquant import xtconstant as xc

from . import credit as C
from . import rules as R
from .objects import build_asset, build_order, build_position, build_trade
from .book import OPEN_STATUSES, SELL, Order, Position

_floor = math.floor
# Hot paths below inline rules.money(x) as ``_floor(x * 100.0 + 0.5 + 1e-6) / 100.0`` (the very same expression,
# so the very same doubles) to save a Python call per rounding; everything else calls R.money.


class Queries:
    """Engine part: xt object builders and queries (its state is set in Engine.__init__)."""

    # ------------------------------------------------------------------------------------------------------
    # object builders
    def _secu(self, account_id: str, inst: R.Instrument | None) -> str:
        by_suffix = self._secu_cache.get(account_id)
        if by_suffix is None:
            by_suffix = self._secu_cache[account_id] = {}
        suffix = inst.suffix if inst else ""
        v = by_suffix.get(suffix)
        if v is None:
            v = by_suffix[suffix] = f"{suffix}{account_id}"  # a stand-in shareholder code
        return v

    # *_args: the constructor arguments of a pushed/returned object, fixed now (objects.build_* builds it)
    def order_args(self, o: Order) -> tuple:
        tp = o.traded_amount / o.traded_volume if o.traded_volume else 0.0
        return (o.account_id, o.code, o.order_id, o.sysid, o.order_time, o.order_type, o.volume,
                o.price_type, o.price, o.traded_volume, tp, o.status, o.status_msg, o.strategy_name,
                o.remark, xc.DIRECTION_FLAG_LONG,
                xc.OFFSET_FLAG_CLOSE if C.SIDE.get(o.order_type) == SELL else xc.OFFSET_FLAG_OPEN,
                self._secu(o.account_id, o.inst), o.name)

    def trade_args(self, r: tuple) -> tuple:
        (seq, day, traded_id, order_id, account_id, code, order_type, price, volume, amount, commission,
         traded_time) = r
        o = self.orders.get(order_id)
        q = self.quotes.get(code)
        return (account_id, code, order_type, traded_id, traded_time, price, volume, amount, order_id,
                o.sysid if o else "", o.strategy_name if o else "", o.remark if o else "",
                xc.DIRECTION_FLAG_LONG, xc.OFFSET_FLAG_CLOSE if C.SIDE.get(order_type) == SELL else xc.OFFSET_FLAG_OPEN,
                commission, self._secu(account_id, q.inst if q else None), q.name if q else "")

    def position_args(self, p: Position) -> tuple:
        q = self.quotes.get(p.code)
        last = q.last if q else 0.0
        avg = p.cost_total / p.volume if p.volume else 0.0
        opn = p.open_amount / p.open_volume if p.open_volume and p.volume else 0.0
        mv = _floor(p.volume * last * 100.0 + 0.5 + 1e-6) / 100.0
        return ((p.account_id, p.code, p.volume, p.can_use, opn, mv, p.frozen, 0, p.yesterday, avg,
                 xc.DIRECTION_FLAG_LONG, last, (last - avg) / avg if avg else 0.0,
                 self._secu(p.account_id, q.inst if q else None), q.name if q else ""),
                _floor((last - avg) * p.volume * 100.0 + 0.5 + 1e-6) / 100.0 if p.volume else 0.0)

    def asset_args(self, account_id: str) -> tuple:
        a = self.accounts[account_id]
        mv = 0.0
        quotes = self.quotes
        for p in self.positions[account_id].values():
            if p.volume:
                q = quotes.get(p.code)
                if q is not None:
                    mv += p.volume * q.last
        mv = _floor(mv * 100.0 + 0.5 + 1e-6) / 100.0
        cash, frozen = a.cash, a.frozen_cash
        fetch = cash - a.sell_proceeds
        if fetch < 0.0:  # == max(fetch, 0.0), NaN and -0.0 included
            fetch = 0.0
        return ((account_id, cash, frozen, mv, _floor((cash + frozen + mv) * 100.0 + 0.5 + 1e-6) / 100.0,
                 _floor(fetch * 100.0 + 0.5 + 1e-6) / 100.0),
                _floor((cash + frozen) * 100.0 + 0.5 + 1e-6) / 100.0)

    def xt_order(self, o: Order):
        return build_order(self.order_args(o))

    def xt_trade(self, r: tuple):
        return build_trade(self.trade_args(r))

    def xt_position(self, p: Position):
        return build_position(self.position_args(p))

    def xt_asset(self, account_id: str):
        return build_asset(self.asset_args(account_id))


    # ------------------------------------------------------------------------------------------------------
    # queries (under the lock; return fresh objects)
    def q_asset(self, account_id: str):
        with self.lock:
            return self.xt_asset(account_id) if account_id in self.accounts else None

    def q_orders(self, account_id: str, cancelable_only: bool = False):
        with self.lock:
            if account_id not in self.accounts:
                return None
            stale = self.faults.stale_answer(account_id, cancelable_only)
            if stale is not None:
                return stale
            return [self.xt_order(o) for o in self.orders.values()
                    if o.account_id == account_id and (not cancelable_only or o.status in OPEN_STATUSES)]

    def q_order(self, account_id: str, order_id: int):
        with self.lock:
            o = self.orders.get(order_id)
            if o is None or o.account_id != account_id:
                return None
            return self.xt_order(o)

    def q_trades(self, account_id: str):
        with self.lock:
            if account_id not in self.accounts:
                return None
            return [self.xt_trade(r) for r in self.trades.get(account_id, [])]

    def q_positions(self, account_id: str):
        with self.lock:
            if account_id not in self.accounts:
                return None
            return [self.xt_position(p) for p in self.positions[account_id].values()]

    def q_position(self, account_id: str, code: str):
        with self.lock:
            p = self.positions.get(account_id, {}).get(code)
            return self.xt_position(p) if p is not None else None

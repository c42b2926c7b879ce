"""The engine's orders and cancels: the two refusal tiers, acceptance, matching against quotes, fills, cancels."""

from __future__ import annotations

import math
import time
from typing import Any

from xtquant import xtconstant as xc
from xtquant import xttype as xt

from . import credit as C
from . import rules as R
from .objects import BUILDERS, GROUP, SimXtOrderError
from .book import BUY, OPEN_STATUSES, ORDER_PART_SUCC, ORDER_SUCCEEDED, SELL, Order, Position, Quote
from .refusals import (E_BAD_CODE, E_BAD_ORDER_TYPE, E_BAD_PRICE, E_BAD_PRICE_TYPE, E_BAD_VOLUME,
    E_CANCEL_DISCONNECTED, E_CANCEL_LATE, E_CANCEL_TERMINAL, E_CANCEL_UNKNOWN, E_CANCEL_WINDOW, E_DISCONNECTED,
    E_FUNDS, E_INJECTED, E_LOT, E_MARKET_TYPE_EXCHANGE, E_MAX_VOLUME, E_ODD_LOT, E_PRICE_LIMIT, E_SELLABLE,
    E_SESSION, E_SESSION_MARKET, E_TICK, E_UNKNOWN_ACCOUNT, _bad_code_text, msg)

_floor = math.floor
# Hot paths below inline rules.money(x) as ``_floor(x * 100.0 + 0.5 + 1e-6) / 100.0`` (the very same expression,
# so the very same doubles) to save a Python call per rounding; everything else calls R.money.


class Matching:
    """Engine part: order placement, matching and cancels (its state is set in Engine.__init__)."""

    # ------------------------------------------------------------------------------------------------------
    # orders
    def place(self, session, account_id: str, code: str, order_type: int, volume: Any, price_type: int,
              price: Any, strategy_name: str, remark: str, seq: int, async_call: bool) -> tuple[int, int]:
        """Returns (order_id or -1, generation to wait for)."""
        remark = R.cut_remark(remark or "")
        strategy_name = strategy_name or ""
        with self.lock:
            self._begin(async_call)
            err = self._tier1(session, account_id, code, order_type, volume, price_type)
            if err is not None:
                eid, text = err
                if async_call:
                    self._emit(session, "on_order_stock_async_response",
                               xt.XtOrderResponse(account_id, -1, strategy_name, remark, text, seq))
                self._emit(session, "on_order_error",
                           SimXtOrderError(account_id, -1, eid, text, strategy_name, remark, seq))
                return -1, self._bump()
            q = self.quotes[code]
            inst = q.inst
            amount = float(volume)  # a cash repayment's "volume" is an amount in yuan (credit.py)
            volume = int(volume)
            side = C.SIDE[order_type]
            o = Order()
            o.order_id = self.next_order_id
            self.next_order_id += 1
            o.day, o.account_id, o.code, o.order_type, o.volume = self.day, account_id, code, order_type, volume
            o.req_price_type = price_type
            o.price_type = R.BROKER_PRICE_TYPE[price_type]
            is_market = price_type in R.ALL_MARKET_TYPES
            try:
                px = float(price) if price is not None else 0.0
            except (TypeError, ValueError):
                px = float("nan")
            o.price = px if price_type == xc.FIX_PRICE else q.last
            o.traded_volume, o.traded_amount = 0, 0.0
            o.status, o.status_msg = xc.ORDER_REPORTED, ""
            o.strategy_name, o.remark, o.sysid = strategy_name, remark, ""
            o.order_time = self.now_epoch()
            o.frozen = o.cum_commission = o.cum_fees = 0.0
            o.inst, o.name = inst, q.name
            phase = self.phase()
            o.wait_update = 1 if (price_type == xc.MARKET_MINE_PRICE_FIRST or
                                  (phase is not None and not R.immediate_matching(phase))) else 0
            # protection price for market buys is the limit-up (what the counter freezes)
            o.freeze_price = (q.up if (is_market and side == BUY) else o.price)
            if order_type in C.DIRECT_CASH_REPAY:
                o.freeze_price = amount
            self.orders[o.order_id] = o
            rej = self._tier2(o, q, is_market, phase)
            if rej is None and self.faults.counter_n > 0:
                f = self.faults
                f.counter_n -= 1
                rej = f.counter_error_id, f.counter_text
                o.frozen = 0.0  # refused: nothing is frozen for it (_tier2 computed the buy's freeze)
            if async_call:
                self._defer(session, "on_order_stock_async_response",
                            (account_id, o.order_id, strategy_name, remark, "", seq))
            if rej is not None:
                eid, text = rej
                o.status, o.status_msg = xc.ORDER_JUNK, text
                self._dirty_orders[o.order_id] = o
                self._emit_acct(account_id, "on_stock_order", self.order_args, o)
                self._emit(session, "on_order_error",
                           SimXtOrderError(account_id, o.order_id, eid, text, strategy_name, remark, seq))
                return o.order_id, self._bump()
            # accepted: freeze, report
            if order_type in C.DIRECT:
                self.credit.direct(o)
                o.sysid = str(700000000 + o.order_id)
                self.orders_by_sysid[o.sysid] = o
                self._dirty_orders[o.order_id] = o
                self._emit_acct(account_id, "on_stock_order", self.order_args, o)
                if order_type in C.DIRECT_SECU_REPAY:
                    self._emit_acct(account_id, "on_stock_position", self.position_args,
                                    self.positions[account_id][code])
                self._emit_acct(account_id, "on_stock_asset", self.asset_args, account_id)
                return o.order_id, self._bump()
            if side == BUY:
                a = self.accounts[account_id]
                a.cash = _floor((a.cash - o.frozen) * 100.0 + 0.5 + 1e-6) / 100.0
                a.frozen_cash = _floor((a.frozen_cash + o.frozen) * 100.0 + 0.5 + 1e-6) / 100.0
                self._dirty_acct.add(account_id)
            elif order_type not in C.SLO_SELL:  # a short sale borrows: nothing of the account's is held
                p = self.positions[account_id][code]
                p.can_use -= volume
                p.frozen += volume
                self._dirty_pos[(account_id, code)] = p
            o.sysid = str(700000000 + o.order_id)
            self.orders_by_sysid[o.sysid] = o
            self._dirty_orders[o.order_id] = o
            self._emit_acct(account_id, "on_stock_order", self.order_args, o)
            self._on_accept(o, q, is_market)
            return o.order_id, self._bump()

    def _tier1(self, session, account_id, code, order_type, volume, price_type) -> tuple[int, str] | None:
        if not session.connected:
            return E_DISCONNECTED, msg(E_DISCONNECTED, "交易连接已断开", "not connected to MiniQMT")
        if account_id not in self.accounts:
            return E_UNKNOWN_ACCOUNT, msg(E_UNKNOWN_ACCOUNT, "资金账号不存在", f"unknown account {account_id!r}")
        f = self.faults
        if f.reject_n > 0:
            f.reject_n -= 1
            return E_INJECTED, msg(E_INJECTED, "模拟拒单", f.reject_message)
        if order_type not in C.SIDE:
            return E_BAD_ORDER_TYPE, msg(E_BAD_ORDER_TYPE, "不支持的委托类型",
                                         f"order_type {order_type!r} is not a stock or credit order type")
        err = self.credit.tier1(account_id, order_type, volume)
        if err is not None:
            return err
        if price_type not in R.BROKER_PRICE_TYPE:
            return E_BAD_PRICE_TYPE, msg(E_BAD_PRICE_TYPE, "不支持的报价类型",
                                         f"price_type {price_type!r} is not supported")
        q = self.quotes.get(code) if isinstance(code, str) else None
        if q is None:
            return E_BAD_CODE, msg(E_BAD_CODE, "证券代码错误或未知", _bad_code_text(code))
        if price_type in R.ALL_MARKET_TYPES and price_type not in R.MARKET_TYPES_BY_MARKET[q.inst.market]:
            return E_MARKET_TYPE_EXCHANGE, msg(E_MARKET_TYPE_EXCHANGE, "该市场不支持此市价类型",
                                               f"price_type {price_type} is not valid on {q.inst.suffix}")
        if order_type in C.DIRECT_CASH_REPAY:
            return None  # an amount, checked by credit.tier1
        if isinstance(volume, bool) or not isinstance(volume, (int, float)) or volume != volume \
                or int(volume) != volume or volume <= 0:
            return E_BAD_VOLUME, msg(E_BAD_VOLUME, "委托数量必须为正整数", f"volume {volume!r} must be a positive integer")
        return None

    def _tier2(self, o: Order, q: Quote, is_market: bool, phase: str | None) -> tuple[int, str] | None:
        inst = q.inst
        if phase is not None:
            if not R.orders_allowed(phase):
                return E_SESSION, msg(E_SESSION, "当前时间不允许此类证券交易", f"market closed (session phase {phase})")
            if is_market and not R.market_orders_allowed(phase):
                return E_SESSION_MARKET, msg(E_SESSION_MARKET, "当前时段不接受市价委托",
                                             f"market orders only in the continuous auction (phase {phase})")
        side = C.SIDE[o.order_type]
        if side is None:  # a direct repayment: no exchange order
            return self.credit.tier2(o, q, 0.0)
        caps = self.max_volume.get(inst.board, (None, None))
        cap = caps[1] if is_market else caps[0]
        if cap is not None and o.volume > cap:
            return E_MAX_VOLUME, msg(E_MAX_VOLUME, "委托数量超过单笔上限",
                                     f"volume {o.volume} exceeds the per-order maximum {cap} for {inst.board}")
        if side == BUY:
            e = R.buy_volume_error(o.volume, inst)
            if e:
                return E_LOT, msg(E_LOT, "委托数量不是整手", e)
        px = o.price
        if not is_market:
            if not (px > 0) or math.isinf(px):
                return E_BAD_PRICE, msg(E_BAD_PRICE, "委托价格无效", f"price {px!r} must be positive")
            if not R.on_tick(px, inst.tick):
                return E_TICK, msg(E_TICK, "委托价格不符合最小价格变动单位",
                                   f"price {px} is not a multiple of the tick {inst.tick}")
            if px > q.up + 1e-9 or px < q.down - 1e-9:
                return E_PRICE_LIMIT, msg(E_PRICE_LIMIT, "委托价格超出涨跌停限制",
                                          f"price {px} is outside the daily limits [{q.down}, {q.up}]")
        credit = self.credit.is_credit(o.account_id)
        if side == BUY:
            need = R.buy_freeze(inst, o.freeze_price, o.volume, 0.0, 0.0, self.fees)
            if o.order_type not in C.FIN_BUY:  # a margin buy's amount is lent; credit.tier2 holds its fees
                cash = self.credit.spendable(o.account_id)
                if need > cash + 1e-9:
                    return E_FUNDS, msg(E_FUNDS, "可用资金不足", f"needs {need:.2f} CNY, available {cash:.2f}")
                o.frozen = need
            if credit:
                return self.credit.tier2(o, q, need)
        elif o.order_type in C.SLO_SELL:
            return self.credit.tier2(o, q, 0.0)
        else:
            p = self.positions[o.account_id].get(o.code)
            sellable = p.can_use if p else 0
            if o.volume > sellable:
                t1 = ""
                if p and p.volume - p.frozen > sellable and not inst.t0:
                    t1 = f" ({p.volume - p.frozen - sellable} bought today are not sellable until T+1)"
                return E_SELLABLE, msg(E_SELLABLE, "可用股份不足",
                                       f"sell volume {o.volume} exceeds sellable {sellable}{t1}")
            e = R.sell_volume_error(o.volume, sellable, inst)
            if e:
                return E_ODD_LOT, msg(E_ODD_LOT, "零股须一次性卖出", e)
            if credit:
                return self.credit.tier2(o, q, 0.0)
        return None

    def _on_accept(self, o: Order, q: Quote, is_market: bool) -> None:
        if o.wait_update:
            return self._rest(o)
        pt = o.req_price_type
        if not is_market:
            if self._marketable(o, q):
                qty = self._cap(o)
                if self.faults.split_fills and qty > 1:  # two trades: a partial fill can arrive after "filled"
                    self._fill(o, qty // 2, q.last)
                    qty -= qty // 2
                self._fill(o, qty, q.last)
            return self._rest(o) if o.status in OPEN_STATUSES else None
        # market types: reference/fill price is the last, inside the protection band
        ok = (q.last <= q.up + 1e-9) if o.order_type == BUY else (q.last >= q.down - 1e-9)
        if pt == xc.MARKET_SZ_FULL_OR_CANCEL:
            if ok and self._cap(o) >= o.remaining:
                self._fill(o, o.remaining, q.last)
            else:
                self._finish_cancel(o)
            return None
        if ok:
            self._fill(o, self._cap(o), q.last)
        if o.status not in OPEN_STATUSES:
            return None
        if pt in R.IOC_TYPES:
            self._finish_cancel(o)
            return None
        return self._rest(o)  # 43/44: the rest works as a limit at the last price

    def _rest(self, o: Order) -> None:
        self.book.setdefault(o.code, []).append(o)

    def _cap(self, o: Order) -> int:
        cap = self.config.fill_volume_cap
        return o.remaining if cap is None else min(o.remaining, int(cap))

    @staticmethod
    def _marketable(o: Order, q: Quote) -> bool:
        if C.SIDE[o.order_type] == BUY:
            return q.last <= o.price + 1e-9
        return q.last >= o.price - 1e-9

    def _fill(self, o: Order, qty: int, px: float) -> None:
        if qty <= 0:
            return
        inst = o.inst
        fl = _floor
        amount = fl(px * qty * 100.0 + 0.5 + 1e-6) / 100.0
        comm, stamp, transfer = R.fill_fees(inst, C.SIDE[o.order_type] == SELL, amount, o.traded_amount, self.fees)
        fee = fl((comm + stamp + transfer) * 100.0 + 0.5 + 1e-6) / 100.0
        o.traded_volume += qty
        o.traded_amount = fl((o.traded_amount + amount) * 100.0 + 0.5 + 1e-6) / 100.0
        o.cum_commission = fl((o.cum_commission + comm) * 100.0 + 0.5 + 1e-6) / 100.0
        o.cum_fees = fl((o.cum_fees + fee) * 100.0 + 0.5 + 1e-6) / 100.0
        aid = o.account_id
        acct = self.accounts[aid]
        book = self.positions[aid]
        p = book.get(o.code)
        if p is None:
            p = book[o.code] = Position(aid, o.code)
        if o.order_type in C.CREDIT_ONLY:
            self.credit.fill(o, qty, amount, fee, p, acct)
        elif o.order_type == BUY:
            rest = o.volume - o.traded_volume
            new_frozen = R.buy_freeze(inst, o.freeze_price, rest, o.traded_amount, o.cum_commission,
                                      self.fees) if rest > 0 else 0.0
            release = fl((o.frozen - new_frozen) * 100.0 + 0.5 + 1e-6) / 100.0
            o.frozen = new_frozen
            acct.frozen_cash = fl((acct.frozen_cash - release) * 100.0 + 0.5 + 1e-6) / 100.0
            acct.cash = fl((acct.cash + release - amount - fee) * 100.0 + 0.5 + 1e-6) / 100.0
            p.volume += qty
            if inst.t0:
                p.can_use += qty
            p.cost_total = fl((p.cost_total + amount + fee) * 100.0 + 0.5 + 1e-6) / 100.0
            p.open_amount = fl((p.open_amount + amount) * 100.0 + 0.5 + 1e-6) / 100.0
            p.open_volume += qty
        else:
            avg = p.cost_total / p.volume if p.volume else 0.0
            p.volume -= qty
            p.frozen -= qty
            p.cost_total = R.money(p.cost_total - avg * qty) if p.volume else 0.0
            if not p.volume:
                p.open_amount, p.open_volume = 0.0, 0
            net = R.money(amount - fee)
            acct.cash = R.money(acct.cash + net)
            acct.sell_proceeds = R.money(acct.sell_proceeds + net)
        if o.volume == o.traded_volume:
            o.status = ORDER_SUCCEEDED
            self._unbook(o)
        else:
            o.status = ORDER_PART_SUCC
        tseq = self.next_trade_seq
        self.next_trade_seq += 1
        trow = (tseq, self.day, str(800000000 + tseq), o.order_id, aid, o.code, o.order_type, px, qty,
                amount, fee, self.now_epoch())
        self._new_trades.append(trow)
        self.trades.setdefault(aid, []).append(trow)
        self._dirty_orders[o.order_id] = o
        self._dirty_pos[(aid, o.code)] = p
        self._dirty_acct.add(aid)
        if self._drop_armed:
            self._emit_acct(aid, "on_stock_trade", self.trade_args, trow)
            self._emit_acct(aid, "on_stock_order", self.order_args, o)
            self._emit_acct(aid, "on_stock_position", self.position_args, p)
            self._emit_acct(aid, "on_stock_asset", self.asset_args, aid)
            return
        targets = self._targets(aid)
        if not targets:
            return
        pairs = (("on_stock_trade", self.trade_args(trow)), ("on_stock_order", self.order_args(o)),
                 ("on_stock_position", self.position_args(p)), ("on_stock_asset", self.asset_args(aid)))
        if len(targets) == 1:  # hot path: objects built on the callback thread
            t = targets[0]
            g = self._grp
            pushes = self._pushes
            if g is not None and pushes and pushes[-1] is g and g[0] is t and g[1] == self._nb:
                g[3].extend(pairs)
            else:
                self._grp = g = (t, self._nb, GROUP, list(pairs))
                pushes.append(g)
            return
        nb = self._nb  # several sessions: build each object once, share it
        objs = [(name, BUILDERS[name](args)) for name, args in pairs]
        app = self._pushes.append
        for t in targets:
            for name, obj in objs:
                app((t, nb, name, obj))

    def _unbook(self, o: Order) -> None:
        lst = self.book.get(o.code)
        if lst:
            try:
                lst.remove(o)
            except ValueError:
                pass

    def _finish_cancel(self, o: Order, pending_push: bool = False) -> None:
        """Cancel the unfilled rest: release the freeze, final status 54/53 (with 51/52 first if asked)."""
        aid = o.account_id
        if pending_push:
            o.status = xc.ORDER_PARTSUCC_CANCEL if o.traded_volume else xc.ORDER_REPORTED_CANCEL
            self._emit_acct(aid, "on_stock_order", None, self.order_args(o))
        o.status = xc.ORDER_PART_CANCEL if o.traded_volume else xc.ORDER_CANCELED
        self._unbook(o)
        self._dirty_orders[o.order_id] = o
        self._emit_acct(aid, "on_stock_order", self.order_args, o)
        if o.order_type in C.SLO_SELL:  # nothing was held but the quota and margin the open order counted
            self._emit_acct(aid, "on_stock_asset", self.asset_args, aid)
        elif C.SIDE[o.order_type] == BUY:
            a = self.accounts[aid]
            a.cash = R.money(a.cash + o.frozen)
            a.frozen_cash = R.money(a.frozen_cash - o.frozen)
            o.frozen = 0.0
            self._dirty_acct.add(aid)
            self._emit_acct(aid, "on_stock_asset", self.asset_args, aid)
        else:
            p = self.positions[aid][o.code]
            rest = o.remaining
            p.can_use += rest
            p.frozen -= rest
            self._dirty_pos[(aid, o.code)] = p
            self._emit_acct(aid, "on_stock_position", self.position_args, p)

    # ------------------------------------------------------------------------------------------------------
    # cancels
    def cancel(self, session, account_id: str, order_id: int | None, market: Any, sysid: str | None, seq: int,
               async_call: bool) -> tuple[int, int]:
        """Returns (cancel_result 0/-1, generation)."""
        with self.lock:
            self._begin(async_call)
            o: Order | None = None
            err: tuple[int, str] | None = None
            mkt = market
            if isinstance(market, str):
                mkt = xc.MARKET_STR_TO_ENUM_MAPPING.get(market, -1)
            if not session.connected:
                err = E_CANCEL_DISCONNECTED, msg(E_CANCEL_DISCONNECTED, "交易连接已断开", "not connected to MiniQMT")
            elif account_id not in self.accounts:
                err = E_CANCEL_UNKNOWN, msg(E_CANCEL_UNKNOWN, "资金账号不存在", f"unknown account {account_id!r}")
            else:
                if sysid is None:
                    o = self.orders.get(order_id) if isinstance(order_id, int) else None
                else:
                    o = self.orders_by_sysid.get(str(sysid))
                    if o is not None and o.inst.market != mkt:
                        o = None
                if o is None or o.account_id != account_id:
                    o = None
                    what = f"order_sysid {sysid!r} on market {market!r}" if sysid is not None else \
                        f"order_id {order_id!r}"
                    err = E_CANCEL_UNKNOWN, msg(E_CANCEL_UNKNOWN, "委托不存在", f"no such order: {what}")
                elif o.status not in OPEN_STATUSES:
                    err = E_CANCEL_TERMINAL, msg(E_CANCEL_TERMINAL, "委托已是终态，不可撤",
                                                 f"order {o.order_id} is already final (status {o.status})")
                else:
                    ph = self.phase()
                    if ph is not None and not R.cancels_allowed(ph):
                        err = E_CANCEL_WINDOW, msg(E_CANCEL_WINDOW, "当前时段不允许撤单",
                                                   f"cancels are refused in phase {ph}")
            oid = o.order_id if o is not None else (order_id if sysid is None and isinstance(order_id, int) else -1)
            resp_sysid = "" if sysid is None else str(sysid)
            result = -1 if err else 0
            if async_call:
                self._emit(session, "on_cancel_order_stock_async_response",
                           xt.XtCancelOrderResponse(account_id, result, oid, resp_sysid, seq,
                                                    err[1] if err else ""))
            if err:
                self._emit(session, "on_cancel_error",
                           xt.XtCancelError(account_id, oid, mkt if sysid is not None else
                                            (o.inst.market if o is not None else -1), resp_sysid, err[0], err[1]))
                return -1, self._bump()
            f = self.faults
            if f.late_cancel_n > 0:  # taken now, refused later: the order keeps working, its status unchanged
                f.late_cancel_n -= 1
                if f.late_cancel_ms > 0:
                    self._nb = max(self._nb, time.monotonic()) + f.late_cancel_ms / 1000.0
                self._emit(session, "on_cancel_error",
                           xt.XtCancelError(account_id, oid, o.inst.market if sysid is None else mkt, resp_sysid,
                                            E_CANCEL_LATE, f.late_cancel_text))
                return 0, self._bump()
            self._finish_cancel(o, pending_push=True)
            return 0, self._bump()

"""Margin (两融) accounts of the simulated MiniQMT: eligible lists, quotas, compacts (负债合约), interest, available
margin (保证金可用余额), the maintenance ratio (维持担保比例) and the counter's refusals. Used by the engine
(executor/sim/engine.py) for every account seeded with ``AccountSeed(credit=CreditTerms(...))``.

Order types (xtconstant's STOCK_BUY/SELL and CREDIT_* values): 23/24 collateral buy/sell (as on a cash account, but a collateral buy needs a code on
the collateral list and may not spend short-sale proceeds); 27 margin buy and 28 short sell open compacts; 29
buy-to-repay and 30 direct securities repayment return shares to short compacts; 31 sell-to-repay and 32 direct
cash repayment pay margin compacts down (32's "volume" is an amount in yuan, carried by ``m_dOrderAmount``). 40–45
are the 专项 (special position) variants of 27–32: they open, and repay only, compacts of the special position
(``cashgroup_prop`` 1); quotas are shared.

Figures (the exchanges' margin rules, 上交所/深交所《融资融券交易实施细则》; what is not there is marked as a choice):
* available margin = cash (less unspent short-sale proceeds) + Σ collateral value × haircut
  + Σ (margin-bought value − financed amount) × haircut (a loss counts at 100 %)
  + Σ (short-sale amount − short value) × haircut (a loss counts at 100 %)
  − Σ financed amount × margin ratio − Σ short value × short margin ratio − unpaid interest
  − what open margin/short orders hold (their unfilled amount at their price × ratio).
  So a margin buy filled at the last price lowers it by amount × fin_ratio + fees.
* maintenance ratio = (cash + frozen cash + market value of all holdings) / (financed amount + short value +
  unpaid interest); 0.0 while there is no debt (no ratio is defined; look at m_dTotalDebt).
* interest accrues once per trading day at ``new_day()``: unpaid balance × annual rate / 360, rounded to the cent
  (the 360-day year is the brokers' usual convention; unverified for any one broker).
* repayment order (choice, the common broker contract wording 先息后本, 按开仓日期先后): compacts oldest first, and
  within each compact interest before principal. Sell-to-repay proceeds beyond the debt stay as cash.
* refusals: a margin buy or short sell of a code not on the subject list, a short sell beyond the lendable
  amount, beyond the quota or the available margin, and any new debt while the maintenance ratio is below
  ``CreditTerms.new_debt_min_ratio`` (default 1.30, the usual 平仓线; configurable, unverified for any one broker);
  a repayment beyond the debt is refused rather than cut (a caller never repays less than asked without knowing).

State (compacts, short-sale proceeds) is written with the engine's other rows, in the same transaction, as one
JSON meta row per account; the terms come from the configuration at every start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from xtquant import xtconstant as xc

from . import rules as R
from .book import BUY, OPEN_STATUSES, SELL, Order, Quote
from .refusals import E_FUNDS, E_LOT, E_SELLABLE, msg

FIN_BUY = {xc.CREDIT_FIN_BUY, xc.CREDIT_FIN_BUY_SPECIAL}
SLO_SELL = {xc.CREDIT_SLO_SELL, xc.CREDIT_SLO_SELL_SPECIAL}
BUY_SECU_REPAY = {xc.CREDIT_BUY_SECU_REPAY, xc.CREDIT_BUY_SECU_REPAY_SPECIAL}
DIRECT_SECU_REPAY = {xc.CREDIT_DIRECT_SECU_REPAY, xc.CREDIT_DIRECT_SECU_REPAY_SPECIAL}
SELL_SECU_REPAY = {xc.CREDIT_SELL_SECU_REPAY, xc.CREDIT_SELL_SECU_REPAY_SPECIAL}
DIRECT_CASH_REPAY = {xc.CREDIT_DIRECT_CASH_REPAY, xc.CREDIT_DIRECT_CASH_REPAY_SPECIAL}
SPECIAL = {xc.CREDIT_FIN_BUY_SPECIAL, xc.CREDIT_SLO_SELL_SPECIAL, xc.CREDIT_BUY_SECU_REPAY_SPECIAL,
           xc.CREDIT_DIRECT_SECU_REPAY_SPECIAL, xc.CREDIT_SELL_SECU_REPAY_SPECIAL,
           xc.CREDIT_DIRECT_CASH_REPAY_SPECIAL}
CREDIT_ONLY = FIN_BUY | SLO_SELL | BUY_SECU_REPAY | DIRECT_SECU_REPAY | SELL_SECU_REPAY | DIRECT_CASH_REPAY
DIRECT = DIRECT_SECU_REPAY | DIRECT_CASH_REPAY  # no exchange order: done by the counter at once
#: the exchange side of each order type (None: no exchange order)
SIDE: dict[int, int | None] = {BUY: BUY, SELL: SELL, **{t: BUY for t in FIN_BUY | BUY_SECU_REPAY},
                               **{t: SELL for t in SLO_SELL | SELL_SECU_REPAY}, **{t: None for t in DIRECT}}

FIN, SLO = 0, 1  # compact_type
COMPACT_DAYS = 180  # a compact falls due six months after it opens (the exchanges' maximum term)

# error ids (stable; refusals.py holds the others)
E_NOT_CREDIT = 100901
E_NOT_SUBJECT = 100902
E_NOT_LENDABLE = 100903
E_QUOTA = 100904
E_MARGIN = 100905
E_RATIO = 100906
E_REPAY = 100907
E_NOT_COLLATERAL = 100908
E_AMOUNT = 100909


@dataclass
class CreditTerms:
    """A margin account's contract with its broker. ``subjects``: code -> (fin_ratio, slo_ratio) (融资/融券保证金比例);
    ``assure``: code -> haircut (折算率); ``lendable``: code -> shares the broker can lend (可融券数量)."""

    fin_quota: float = 500_000.0  # 融资授信额度
    slo_quota: float = 500_000.0  # 融券授信额度
    fin_rate: float = 0.072  # annual; 10,000 yuan owed for one day costs 2.00
    slo_rate: float = 0.108  # annual; 10,000 yuan short for one day costs 3.00
    new_debt_min_ratio: float = 1.30
    subjects: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SUBJECTS))
    assure: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ASSURE))
    lendable: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LENDABLE))


# Illustrative lists over the default universe (executor/sim/universe.py). Ratios follow the exchanges' current
# minimums (融资保证金比例 ≥ 100 %, 融券 ≥ 120 %) and haircut caps (SSE 180 / SZSE 100 constituents ≤ 70 %, other
# stocks ≤ 65 %, ETFs ≤ 90 %); the ST stock and the bonds are on no list.
DEFAULT_SUBJECTS = {"600000.SH": (1.0, 1.2), "601318.SH": (1.0, 1.2), "600519.SH": (1.0, 1.2),
                    "000001.SZ": (1.0, 1.2), "000858.SZ": (1.0, 1.2), "300750.SZ": (1.0, 1.2),
                    "688981.SH": (1.0, 1.2), "510300.SH": (1.0, 1.2)}
DEFAULT_ASSURE = {"600000.SH": 0.70, "601318.SH": 0.70, "600519.SH": 0.70, "000001.SZ": 0.70, "000858.SZ": 0.70,
                  "300750.SZ": 0.65, "688981.SH": 0.50, "510300.SH": 0.90, "159915.SZ": 0.80, "511880.SH": 0.90}
DEFAULT_LENDABLE = {"600000.SH": 100_000, "601318.SH": 50_000, "510300.SH": 1_000_000}  # 000001.SZ: none


def _m(x: float) -> float:
    return R.money(x)


@dataclass
class Compact:
    compact_id: str
    kind: int  # FIN / SLO
    code: str
    special: bool
    open_date: int  # YYYYMMDD
    business_vol: int = 0
    real_vol: int = 0
    business_balance: float = 0.0
    real_balance: float = 0.0
    fare: float = 0.0  # all interest accrued so far (businessFare)
    real_fare: float = 0.0  # unpaid
    repaid_fare: float = 0.0
    repaid_balance: float = 0.0

    @property
    def open(self) -> bool:
        return self.real_balance > 0.0 or self.real_vol > 0 or self.real_fare > 0.0


class CreditBook:
    """One margin account's debts."""

    def __init__(self, account_id: str, terms: CreditTerms, state: dict | None = None) -> None:
        self.account_id, self.terms = account_id, terms
        state = state or {}
        self.compacts = [Compact(**c) for c in state.get("compacts", [])]
        self.slo_sell_balance = float(state.get("slo_sell_balance", 0.0))  # proceeds of short sales, all time
        self.used_slo_sell_balance = float(state.get("used_slo_sell_balance", 0.0))  # spent on buy-to-repay
        self.next_compact = int(state.get("next_compact", 1))
        self.lent = {k: int(v) for k, v in state.get("lent", {}).items()}  # code -> shares lent out, outstanding

    def dump(self) -> str:
        return json.dumps({"compacts": [c.__dict__ for c in self.compacts], "slo_sell_balance": self.slo_sell_balance,
                           "used_slo_sell_balance": self.used_slo_sell_balance, "next_compact": self.next_compact,
                           "lent": self.lent}, ensure_ascii=False)

    @property
    def surplus_slo_cash(self) -> float:
        return _m(max(self.slo_sell_balance - self.used_slo_sell_balance, 0.0))

    def open_compacts(self, kind: int, code: str | None = None, special: bool | None = None) -> list[Compact]:
        out = [c for c in self.compacts if c.kind == kind and c.open and (code is None or c.code == code)
               and (special is None or c.special == special)]
        out.sort(key=lambda c: (c.open_date, int(c.compact_id.rsplit("-", 1)[-1])))
        return out


class CreditDesk:
    """The engine's margin counter: checks, freezes, fills and repayments of credit orders; the credit queries."""

    def __init__(self, engine: Any, meta: dict[str, str]) -> None:
        # engine: the Engine (executor/sim/engine.py) that owns this desk; not imported, as the engine imports this
        self.engine = engine
        self.books: dict[str, CreditBook] = {}
        for aid, seed in engine.config.accounts.items():
            terms = getattr(seed, "credit", None)
            if terms is not None:
                raw = meta.get(f"credit:{aid}")
                self.books[aid] = CreditBook(aid, terms, json.loads(raw) if raw else None)

    # --- helpers --------------------------------------------------------------------------------------------
    def is_credit(self, account_id: str) -> bool:
        return account_id in self.books

    def touch(self, book: CreditBook) -> None:
        self.engine._dirty_meta[f"credit:{book.account_id}"] = book.dump()

    def _last(self, code: str) -> float:
        q = self.engine.quotes.get(code)
        return q.last if q is not None else 0.0

    def _date(self) -> int:
        d = self.engine.config.clock()
        return d.year * 10000 + d.month * 100 + d.day

    def spendable(self, account_id: str) -> float:
        """Cash an ordinary buy may spend: short-sale proceeds are only for buying the shares back."""
        a = self.engine.accounts[account_id]
        book = self.books.get(account_id)
        return a.cash if book is None else _m(a.cash - book.surplus_slo_cash)

    def _open_orders(self, account_id: str, skip: int = 0) -> list["Order"]:
        """Open margin buys and short sells of the account (``skip``: the order being checked itself)."""
        return [o for o in self.engine.orders.values()
                if o.account_id == account_id and o.status in OPEN_STATUSES and o.order_type in FIN_BUY | SLO_SELL
                and o.order_id != skip]

    def figures(self, account_id: str, skip: int = 0) -> dict[str, float]:
        """Every figure of the credit detail, computed from the live state (under the engine lock)."""
        eng, book = self.engine, self.books[account_id]
        t = book.terms
        a = eng.accounts[account_id]
        fin_vol: dict[str, int] = {}
        fin_principal = fin_fare = slo_value = slo_fare = 0.0
        fin_term = slo_term = margin_used = 0.0
        for c in book.open_compacts(FIN):
            last = self._last(c.code)
            fin_vol[c.code] = fin_vol.get(c.code, 0) + c.real_vol
            fin_principal += c.real_balance
            fin_fare += c.real_fare
            gain = c.real_vol * last - c.real_balance
            fin_term += gain * (t.assure.get(c.code, 0.0) if gain > 0 else 1.0)
            margin_used += c.real_balance * t.subjects.get(c.code, (1.0, 1.0))[0]
        for c in book.open_compacts(SLO):
            last = self._last(c.code)
            value = c.real_vol * last
            slo_value += value
            slo_fare += c.real_fare
            gain = c.real_balance - value
            slo_term += gain * (t.assure.get(c.code, 0.0) if gain > 0 else 1.0)
            margin_used += value * t.subjects.get(c.code, (1.0, 1.0))[1]
        mv = stock_mv = collateral = 0.0
        for p in eng.positions[account_id].values():
            if not p.volume:
                continue
            last = self._last(p.code)
            q = eng.quotes.get(p.code)
            mv += p.volume * last
            if q is None or q.inst.is_stock:
                stock_mv += p.volume * last
            collateral += max(p.volume - fin_vol.get(p.code, 0), 0) * last * t.assure.get(p.code, 0.0)
        held = fin_held = slo_held = 0.0
        for o in self._open_orders(account_id, skip):
            rest = o.volume - o.traded_volume
            ratios = t.subjects.get(o.code, (1.0, 1.0))
            if o.order_type in FIN_BUY:
                fin_held += rest * o.freeze_price
                held += rest * o.freeze_price * ratios[0]
            else:
                slo_held += rest * o.price
                held += rest * o.price * ratios[1]
        debt = fin_principal + fin_fare + slo_value + slo_fare
        surplus = book.surplus_slo_cash
        avail = (a.cash - surplus + collateral + fin_term + slo_term - margin_used - fin_fare - slo_fare - held)
        total = a.cash + a.frozen_cash + mv
        fin_used = fin_principal
        slo_used = sum(c.real_balance for c in book.open_compacts(SLO))
        return {
            "balance": _m(total), "available": _m(a.cash), "frozen_cash": _m(a.frozen_cash), "market_value": _m(mv),
            "stock_value": _m(stock_mv), "fund_value": _m(mv - stock_mv),
            "fetch_balance": _m(max(a.cash - a.sell_proceeds - surplus, 0.0)),
            "total_debt": _m(debt), "enable_bail": _m(avail),
            "ratio": round(total / debt, 4) if debt > 0 else 0.0, "assure_asset": _m(total - debt),
            "fin_debt": _m(fin_principal + fin_fare), "fin_deal_avl": _m(fin_principal), "fin_fee": _m(fin_fare),
            "slo_debt": _m(slo_value + slo_fare), "slo_market_value": _m(slo_value), "slo_fee": _m(slo_fare),
            "fin_max_quota": _m(t.fin_quota), "fin_used_quota": _m(fin_used + fin_held),
            "fin_enable_quota": _m(max(t.fin_quota - fin_used - fin_held, 0.0)),
            "slo_max_quota": _m(t.slo_quota), "slo_used_quota": _m(slo_used + slo_held),
            "slo_enable_quota": _m(max(t.slo_quota - slo_used - slo_held, 0.0)),
            "slo_sell_balance": _m(book.slo_sell_balance), "used_slo_sell_balance": _m(book.used_slo_sell_balance),
            "surplus_slo_sell_balance": surplus,
        }

    def lendable_left(self, book: CreditBook, code: str, skip: int = 0) -> int:
        held = sum(o.volume - o.traded_volume for o in self._open_orders(book.account_id, skip)
                   if o.order_type in SLO_SELL and o.code == code)
        return max(book.terms.lendable.get(code, 0) - book.lent.get(code, 0) - held, 0)

    # --- tier 1 / tier 2 -------------------------------------------------------------------------------------
    def tier1(self, account_id: str, order_type: int, volume: Any) -> tuple[int, str] | None:
        if order_type in CREDIT_ONLY and account_id not in self.books:
            return E_NOT_CREDIT, msg(E_NOT_CREDIT, "非信用账号不允许信用交易",
                                         f"order_type {order_type} needs a credit account; {account_id!r} is not one")
        if order_type in DIRECT_CASH_REPAY:
            ok = isinstance(volume, (int, float)) and not isinstance(volume, bool) and volume == volume \
                and volume > 0 and abs(volume * 100 - round(volume * 100)) < 1e-6 and volume < 1e12
            if not ok:
                return E_AMOUNT, msg(E_AMOUNT, "还款金额无效", f"repayment amount {volume!r} must be positive yuan "
                                                             "with at most two decimals")
        return None

    def tier2(self, o: "Order", q: "Quote", need: float) -> tuple[int, str] | None:
        """The counter's credit checks of an order that exists; ``need``: the cash a cash-paying buy freezes."""
        aid, t = o.account_id, o.order_type
        book = self.books[aid]
        terms = book.terms
        if t == BUY:
            if o.code not in terms.assure:
                return E_NOT_COLLATERAL, msg(E_NOT_COLLATERAL, "非担保品证券不允许担保品买入",
                                             f"{o.code} is not on the collateral list")
            return None
        if t in FIN_BUY | SLO_SELL:
            ratios = terms.subjects.get(o.code)
            if ratios is None:
                what = "融资" if t in FIN_BUY else "融券"
                return E_NOT_SUBJECT, msg(E_NOT_SUBJECT, f"该证券不是{what}标的",
                                          f"{o.code} is not a {'margin' if t in FIN_BUY else 'short'} subject")
            f = self.figures(aid, o.order_id)
            if f["total_debt"] > 0 and f["ratio"] < terms.new_debt_min_ratio:
                return E_RATIO, msg(E_RATIO, "维持担保比例低于规定比例，不允许融资融券",
                                    f"maintenance ratio {f['ratio']:.4f} is below {terms.new_debt_min_ratio:.2f}")
            if t in FIN_BUY:
                amount = o.freeze_price * o.volume
                if amount > f["fin_enable_quota"] + 1e-9:
                    return E_QUOTA, msg(E_QUOTA, "融资可用额度不足",
                                        f"needs {amount:.2f} of quota, {f['fin_enable_quota']:.2f} left")
                fees = _m(need - amount)
                margin = _m(amount * ratios[0]) + fees
                if margin > f["enable_bail"] + 1e-9:
                    return E_MARGIN, msg(E_MARGIN, "保证金可用余额不足",
                                         f"needs {margin:.2f} of margin, {f['enable_bail']:.2f} available")
                if fees > self.spendable(aid) + 1e-9:
                    return E_FUNDS, msg(E_FUNDS, "可用资金不足", f"fees need {fees:.2f} CNY")
                o.frozen = fees
                return None
            left = self.lendable_left(book, o.code, o.order_id)
            if o.volume > left:
                return E_NOT_LENDABLE, msg(E_NOT_LENDABLE, "可融券数量不足",
                                           f"short sell of {o.volume} {o.code}: {left} lendable")
            e = R.buy_volume_error(o.volume, o.inst)  # a short sale borrows whole lots
            if e:
                return E_LOT, msg(E_LOT, "委托数量不是整手", e)
            amount = o.price * o.volume
            if amount > f["slo_enable_quota"] + 1e-9:
                return E_QUOTA, msg(E_QUOTA, "融券可用额度不足",
                                    f"needs {amount:.2f} of quota, {f['slo_enable_quota']:.2f} left")
            margin = _m(amount * ratios[1])
            if margin > f["enable_bail"] + 1e-9:
                return E_MARGIN, msg(E_MARGIN, "保证金可用余额不足",
                                     f"needs {margin:.2f} of margin, {f['enable_bail']:.2f} available")
            return None
        special = t in SPECIAL
        if t in BUY_SECU_REPAY | DIRECT_SECU_REPAY:
            owed = sum(c.real_vol for c in book.open_compacts(SLO, o.code, special))
            if o.volume > owed:
                return E_REPAY, msg(E_REPAY, "还券数量超过融券负债",
                                    f"returns {o.volume} {o.code}, {owed} owed")
            if t in DIRECT_SECU_REPAY:
                p = self.engine.positions[aid].get(o.code)
                can = p.can_use if p else 0
                if o.volume > can:
                    return E_SELLABLE, msg(E_SELLABLE, "可用股份不足", f"returns {o.volume}, {can} available")
            return None
        if t in SELL_SECU_REPAY:
            if not book.open_compacts(FIN, None, special):
                return E_REPAY, msg(E_REPAY, "无融资负债，不需要卖券还款", "no margin debt to repay")
            return None
        if t in DIRECT_CASH_REPAY:
            amount = o.freeze_price  # a cash repayment's amount in yuan (engine.place keeps it there)
            owed = _m(sum(c.real_balance + c.real_fare for c in book.open_compacts(FIN, None, special)))
            if amount > owed + 1e-9:
                return E_REPAY, msg(E_REPAY, "还款金额超过负债", f"repays {amount:.2f}, {owed:.2f} owed")
            if amount > self.spendable(aid) + 1e-9:
                return E_FUNDS, msg(E_FUNDS, "可用资金不足", f"repays {amount:.2f}, {self.spendable(aid):.2f} "
                                                         "available")
            return None
        return None

    # --- fills ------------------------------------------------------------------------------------------------
    def fill(self, o: "Order", qty: int, amount: float, fee: float, p: Any, acct: Any) -> None:
        """A fill of a credit-only exchange order (27/28/29/31 and the special variants): cash, position and
        compacts move together."""
        eng, book = self.engine, self.books[o.account_id]
        t, special = o.order_type, o.order_type in SPECIAL
        if t in FIN_BUY:
            rest = o.volume - o.traded_volume
            new_frozen = _m(R.buy_freeze(o.inst, o.freeze_price, rest, o.traded_amount, o.cum_commission,
                                         eng.fees) - o.freeze_price * rest) if rest > 0 else 0.0
            release = _m(o.frozen - new_frozen)
            o.frozen = new_frozen
            acct.frozen_cash = _m(acct.frozen_cash - release)
            acct.cash = _m(acct.cash + release - fee)
            p.volume += qty
            if o.inst.t0:
                p.can_use += qty
            p.cost_total = _m(p.cost_total + amount + fee)
            p.open_amount = _m(p.open_amount + amount)
            p.open_volume += qty
            c = self._order_compact(book, o, FIN, special)
            c.business_vol += qty
            c.real_vol += qty
            c.business_balance = _m(c.business_balance + amount)
            c.real_balance = _m(c.real_balance + amount)
        elif t in SLO_SELL:
            acct.cash = _m(acct.cash + amount - fee)
            book.slo_sell_balance = _m(book.slo_sell_balance + amount - fee)
            book.lent[o.code] = book.lent.get(o.code, 0) + qty
            c = self._order_compact(book, o, SLO, special)
            c.business_vol += qty
            c.real_vol += qty
            c.business_balance = _m(c.business_balance + amount)
            c.real_balance = _m(c.real_balance + amount)
        elif t in BUY_SECU_REPAY:
            rest = o.volume - o.traded_volume
            new_frozen = R.buy_freeze(o.inst, o.freeze_price, rest, o.traded_amount, o.cum_commission,
                                      eng.fees) if rest > 0 else 0.0
            release = _m(o.frozen - new_frozen)
            o.frozen = new_frozen
            acct.frozen_cash = _m(acct.frozen_cash - release)
            acct.cash = _m(acct.cash + release - amount - fee)
            book.used_slo_sell_balance = _m(min(book.used_slo_sell_balance + amount + fee, book.slo_sell_balance))
            self._return_shares(book, o.code, qty, special, acct)
        elif t in SELL_SECU_REPAY:
            avg = p.cost_total / p.volume if p.volume else 0.0
            p.volume -= qty
            p.frozen -= qty
            p.cost_total = R.money(p.cost_total - avg * qty) if p.volume else 0.0
            if not p.volume:
                p.open_amount, p.open_volume = 0.0, 0
            net = _m(amount - fee)
            left = self._repay_cash(book, net, special)
            acct.cash = _m(acct.cash + left)
            acct.sell_proceeds = _m(acct.sell_proceeds + left)
        self.touch(book)

    def _order_compact(self, book: CreditBook, o: "Order", kind: int, special: bool) -> Compact:
        cid = f"{o.day}-{o.order_id}"  # one compact per order, fills add to it
        for c in book.compacts:
            if c.compact_id == cid:
                return c
        c = Compact(cid, kind, o.code, special, self._date())
        book.compacts.append(c)
        return c

    def _repay_cash(self, book: CreditBook, amount: float, special: bool) -> float:
        """Pay margin compacts down with ``amount`` (oldest first, interest before principal); returns the rest."""
        left = _m(amount)
        for c in book.open_compacts(FIN, None, special):
            if left <= 0:
                break
            pay = min(left, c.real_fare)
            c.real_fare, c.repaid_fare, left = _m(c.real_fare - pay), _m(c.repaid_fare + pay), _m(left - pay)
            pay = min(left, c.real_balance)
            if pay > 0 and c.real_balance > 0:
                # shares leave the compact in proportion to the principal repaid (the compact's 未还合约数量)
                back = int(round(c.real_vol * pay / c.real_balance)) if pay < c.real_balance else c.real_vol
                c.real_vol -= back
            c.real_balance, c.repaid_balance, left = _m(c.real_balance - pay), _m(c.repaid_balance + pay), \
                _m(left - pay)
        return left

    def _return_shares(self, book: CreditBook, code: str, qty: int, special: bool, acct: Any) -> None:
        """Return ``qty`` shares to short compacts of ``code`` (oldest first); each compact's interest is paid in
        cash as its shares come back, then the principal shrinks in proportion."""
        left = qty
        for c in book.open_compacts(SLO, code, special):
            if left <= 0:
                break
            fare = c.real_fare
            if fare > 0:
                acct.cash = _m(acct.cash - fare)
                c.real_fare, c.repaid_fare = 0.0, _m(c.repaid_fare + fare)
            n = min(left, c.real_vol)
            part = c.real_balance if n == c.real_vol else _m(c.real_balance * n / c.real_vol)
            c.real_vol -= n
            c.real_balance, c.repaid_balance = _m(c.real_balance - part), _m(c.repaid_balance + part)
            book.lent[code] = max(book.lent.get(code, 0) - n, 0)
            left -= n

    # --- direct repayments (no exchange order) ----------------------------------------------------------------
    def direct(self, o: "Order") -> None:
        """Done by the counter at once: the order is 56 with its whole volume (amount) done."""
        eng, book = self.engine, self.books[o.account_id]
        acct = eng.accounts[o.account_id]
        special = o.order_type in SPECIAL
        if o.order_type in DIRECT_CASH_REPAY:
            amount = o.freeze_price
            left = self._repay_cash(book, amount, special)
            acct.cash = _m(acct.cash - amount + left)
            o.traded_amount = _m(amount - left)
        else:
            p = eng.positions[o.account_id][o.code]
            p.volume -= o.volume
            p.can_use -= o.volume
            p.cost_total = _m(p.cost_total * p.volume / (p.volume + o.volume)) if p.volume else 0.0
            if not p.volume:
                p.open_amount, p.open_volume = 0.0, 0
            self._return_shares(book, o.code, o.volume, special, acct)
            eng._dirty_pos[(o.account_id, o.code)] = p
        o.traded_volume = o.volume
        o.status = xc.ORDER_SUCCEEDED
        eng._dirty_acct.add(o.account_id)
        self.touch(book)

    # --- day boundary ---------------------------------------------------------------------------------------
    def accrue(self) -> None:
        """One day of interest on every unpaid balance (called by Engine.new_day)."""
        for book in self.books.values():
            for c in book.compacts:
                if c.real_balance <= 0:
                    continue
                rate = book.terms.fin_rate if c.kind == FIN else book.terms.slo_rate
                day = _m(c.real_balance * rate / 360.0)
                c.fare, c.real_fare = _m(c.fare + day), _m(c.real_fare + day)
            self.touch(book)

    # --- queries (the wheel's objects: C++ structs with the attribute names of WD:667-757) ------------------------
    def q_detail(self, account_id: str) -> list | None:
        from .qmt.wire import CppStruct
        if account_id not in self.books:
            return None
        f = self.figures(account_id)
        names = {"balance": "m_dBalance", "available": "m_dAvailable", "frozen_cash": "m_dFrozenCash",
                 "market_value": "m_dMarketValue", "stock_value": "m_dStockValue", "fund_value": "m_dFundValue",
                 "fetch_balance": "m_dFetchBalance", "total_debt": "m_dTotalDebt",
                 "enable_bail": "m_dEnableBailBalance", "ratio": "m_dPerAssurescaleValue",
                 "assure_asset": "m_dAssureAsset", "fin_debt": "m_dFinDebt", "fin_deal_avl": "m_dFinDealAvl",
                 "fin_fee": "m_dFinFee", "slo_debt": "m_dSloDebt", "slo_market_value": "m_dSloMarketValue",
                 "slo_fee": "m_dSloFee", "fin_max_quota": "m_dFinMaxQuota", "fin_enable_quota": "m_dFinEnableQuota",
                 "fin_used_quota": "m_dFinUsedQuota", "slo_max_quota": "m_dSloMaxQuota",
                 "slo_enable_quota": "m_dSloEnableQuota", "slo_used_quota": "m_dSloUsedQuota",
                 "slo_sell_balance": "m_dSloSellBalance", "used_slo_sell_balance": "m_dUsedSloSellBalance",
                 "surplus_slo_sell_balance": "m_dSurplusSloSellBalance"}
        row = {v: f[k] for k, v in names.items()}
        d = self.engine.config.clock()
        return [CppStruct(account_type=xc.CREDIT_ACCOUNT, account_id=account_id, m_nStatus=xc.ACCOUNT_STATUS_OK,
                          m_nUpdateTime=d.hour * 10000 + d.minute * 100 + d.second, m_nCalcConfig=0,
                          m_dPositionProfit=0.0, m_dOtherFare=0.0, **row)]

    def _market(self, code: str) -> int:
        q = self.engine.quotes.get(code)
        inst = q.inst if q is not None else R.classify(code)
        return inst.market if inst is not None else -1

    def q_compacts(self, account_id: str) -> list | None:
        from .qmt.wire import CppStruct
        book = self.books.get(account_id)
        if book is None:
            return None
        return [CppStruct(account_type=xc.CREDIT_ACCOUNT, account_id=account_id, compact_type=c.kind,
                          cashgroup_prop=1 if c.special else 0, exchange_id=self._market(c.code),
                          open_date=c.open_date, business_vol=c.business_vol, real_compact_vol=c.real_vol,
                          ret_end_date=_add_days(c.open_date, COMPACT_DAYS), business_balance=c.business_balance,
                          businessFare=c.fare, real_compact_balance=c.real_balance, real_compact_fare=c.real_fare,
                          repaid_fare=c.repaid_fare, repaid_balance=c.repaid_balance, instrument_id=c.code,
                          compact_id=c.compact_id, position_str=c.compact_id)
                for c in book.open_compacts(FIN) + book.open_compacts(SLO)]

    def q_subjects(self, account_id: str) -> list | None:
        from .qmt.wire import CppStruct
        book = self.books.get(account_id)
        if book is None:
            return None
        # status 0 = allowed (the counter's 正常); every listed subject is open for both here
        return [CppStruct(account_type=xc.CREDIT_ACCOUNT, account_id=account_id, slo_status=0, fin_status=0,
                          exchange_id=self._market(code), fin_ratio=r[0], slo_ratio=r[1], instrument_id=code)
                for code, r in sorted(book.terms.subjects.items())]

    def q_slo_codes(self, account_id: str) -> list | None:
        from .qmt.wire import CppStruct
        book = self.books.get(account_id)
        if book is None:
            return None
        return [CppStruct(account_type=xc.CREDIT_ACCOUNT, account_id=account_id, cashgroup_prop=0,
                          exchange_id=self._market(code), enable_amount=self.lendable_left(book, code),
                          instrument_id=code) for code in sorted(book.terms.lendable)]

    def q_assure(self, account_id: str) -> list | None:
        from .qmt.wire import CppStruct
        book = self.books.get(account_id)
        if book is None:
            return None
        return [CppStruct(account_type=xc.CREDIT_ACCOUNT, account_id=account_id, assure_status=0,
                          exchange_id=self._market(code), assure_ratio=r, instrument_id=code)
                for code, r in sorted(book.terms.assure.items())]


def _add_days(yyyymmdd: int, days: int) -> int:
    from datetime import date, timedelta
    d = date(yyyymmdd // 10000, yyyymmdd // 100 % 100, yyyymmdd % 100) + timedelta(days=days)
    return d.year * 10000 + d.month * 100 + d.day

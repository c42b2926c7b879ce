"""Pre-trade risk limits: checked on every new order before the broker is called.

The limits come from the executor's settings (``[risk]`` in the TOML file, see ``RiskLimits``); every one is off
by default, so an executor without a ``[risk]`` section behaves as before. A refusal is a ``risk_rejected`` reply
whose ``details`` are ``{"rule": ..., "limit": ..., "value": ...}``; nothing reaches the broker and the journal
records the client order id as REFUSED (a refused id stays refused: send the order again under a new id).

Every rule compares the value the order WOULD bring about with the limit, and is **inclusive**: ``value == limit``
is allowed, ``value > limit`` is refused (for the sell side of the price band: ``price == floor`` is allowed,
``price < floor`` is refused). Amounts in CNY, volumes in shares (张 for bonds), rates in orders per second.

| rule (details["rule"])         | value compared                                   | refused when             |
|--------------------------------|--------------------------------------------------|--------------------------|
| trading_enabled                | -                                                | trading_enabled = false  |
| allowed_codes / blocked_codes  | the order's code                                 | not in / in the list     |
| allowed_boards / blocked_boards| the code's board (classify_board)                | not in / in the list     |
| max_order_volume               | the order's volume                               | volume > limit           |
| max_order_notional_cny         | price x volume (market orders: reference price)  | notional > limit         |
| price_band_pct                 | limit price vs reference price                   | buy > ref*(1+pct/100), sell < ref*(1-pct/100) |
| sellable_volume                | sell volume vs can_use_volume - own sells in flight | volume > sellable     |
| max_open_orders                | open orders (incl. in flight) + 1                | > limit                  |
| max_daily_orders               | orders admitted today + 1                        | > limit                  |
| max_daily_notional_cny         | notional admitted today + this order's           | > limit                  |
| max_orders_per_s_per_strategy  | token bucket per strategy (capacity = burst)     | fewer than 1 token left  |
| max_financing_per_order_cny    | a margin buy's price x volume (融资)             | notional > limit         |
| max_short_per_order_cny        | a short sell's price x volume (融券)             | notional > limit         |
| max_financing_daily_cny        | margin buys admitted today + this one            | > limit                  |
| max_short_daily_cny            | short sells admitted today + this one            | > limit                  |
| min_maintenance_ratio_for_new_debt | the account's 维持担保比例 (query_credit_detail) | a margin buy / short sell while ratio < limit (and debt > 0) |

Credit sides (contract.Side): margin buys and buy-to-repay are buys and short sells sells for the band and the
notional; sell-to-repay and direct share repayment count against the sellable volume like a sell; a direct cash
repayment (no volume, no price) is valued at its amount and passes the per-order volume and band rules. The
maintenance ratio comes from a credit detail query cached ``credit_cache_ms`` and asked again after every batch
that admitted new debt (orders of one batch share one snapshot); while none could be obtained, new debt is refused
(repayments never are). The ratio checked is the account's before the order (the counter's own
available-margin check covers what the order adds).

The rate limit's strategy is the owner of the command stream the order came from (only that strategy's ACL user
can write it; the engine binds ``strategy`` to it), never a name the command gives itself; buckets are bounded.

Choices (decisions of this project where the rules leave it open):

* **Day** = the calendar date in China (UTC+8, no DST). The day's counters (orders, notional) count orders the
  executor admitted and handed to the broker, including those the broker later rejected (conservative), and are
  persisted in ``state_dir/risk-ACCOUNT.sqlite3`` in the same batch before the orders are dispatched, so a
  restart does not reset them.
* **Market orders and the band**: without a reference price a market order is refused when
  ``price_band_without_reference = "refuse"`` (nothing bounds its fill price); with one it passes the band (it has
  no price of its own; the exchange's protection band for market orders applies).
* **Reference price** for the band and for valuing market orders: the most recent of a position's ``last_price``
  (position query or ``position_updated`` event) and the price of the last fill seen (``order_filled``). When none
  is known, ``price_band_without_reference`` decides: ``"allow"`` (default: the executor has no market data feed
  and the exchange enforces its own daily price limits) or ``"refuse"``. A market order with no reference price
  cannot be valued: when a notional limit is set, it is refused (rule = that limit, value = None).
* **Open orders** = non-final orders at the broker (from order events; re-synced from ``query_orders`` at start and
  at every reconciliation) plus orders admitted whose broker order id is not known yet, including those answered
  ``outcome_unknown`` (counted until an order event or list shows their client order id). A list never lowers the
  count below what the executor learned itself: an order it knows open (or pending) that the list does not show
  stays counted (the list may be older than its answer), unless it was learned on an earlier China date. A
  snapshot older than a fresh event can re-count a just-finished order until the next reconciliation (errs on the
  safe side).
* **Sellable volume**: ``can_use_volume`` from a position query cached ``positions_cache_ms``, minus the volume of
  this executor's sells admitted but not yet reflected in that snapshot (accepted by the broker after the query
  was sent, or not yet accepted). When no position snapshot could ever be obtained, sells are refused.
* An order re-placed by crash recovery (its intent was journaled before) is checked against the static rules only
  (enabled, codes, boards, per-order size, band): it was counted when it was first admitted.

Cost: all checks are in-memory; a position query runs at most once per ``positions_cache_ms`` and only for a batch
that contains a sell while ``sell_within_sellable`` is on; counters are committed once per batch.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from executor.config import RiskLimits
from executor.sqlite_files import close_wal_db, open_wal_db
from producer_lib import ashare as A
from producer_lib import contract as c

_CHINA = timezone(timedelta(hours=8))
_EPS = 1e-9
_MAX_BUCKETS = 1_024  # rate-limit buckets kept (one per command stream owner; see _forget_full_buckets)


# --- boards (producer_lib/ashare.py holds the prefixes) -------------------------------------------------------
_BOARD_NAME = {A.SH_MAIN: "main", A.SZ_MAIN: "main", A.STAR: "star", A.CHINEXT: "chinext", A.BSE: "bse",
               A.ETF: "etf", A.LOF: "lof", A.CB: "cb"}


def classify_board(code: str) -> str:
    """The board of ``code``: main (SSE/SZSE main boards), star (科创板), chinext (创业板), bse (北交所), etf, lof,
    cb (convertible bonds), or other (anything else: indexes, repos, unknown prefixes)."""
    return _BOARD_NAME.get(A.board_of_code(code), "other")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Refusal:
    rule: str
    limit: Any
    value: Any
    message: str

    @property
    def details(self) -> dict[str, Any]:
        return {"rule": self.rule, "limit": self.limit, "value": self.value}


_FINANCING = frozenset({c.Side.FIN_BUY, c.Side.FIN_BUY_SPECIAL})
_SHORT = frozenset({c.Side.SLO_SELL, c.Side.SLO_SELL_SPECIAL})


def china_today() -> date:
    return datetime.now(_CHINA).date()


def _num(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


@dataclass(slots=True)
class _Sell:
    code: str
    volume: int
    acked_mono: float | None = None  # when the broker had it (its frozen volume shows in later snapshots)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS daily (
    account  TEXT NOT NULL,
    day      TEXT NOT NULL,       -- China date, YYYY-MM-DD
    orders   INTEGER NOT NULL,
    notional REAL NOT NULL,       -- CNY
    PRIMARY KEY (account, day)
);
CREATE TABLE IF NOT EXISTS daily_credit (
    account   TEXT NOT NULL,
    day       TEXT NOT NULL,
    financing REAL NOT NULL,      -- CNY of margin buys admitted
    short     REAL NOT NULL,      -- CNY of short sells admitted
    PRIMARY KEY (account, day)
);
"""


class RiskGate:
    """The per-account risk state and checks. Synchronous, loop-thread only; ``clock`` (monotonic seconds) and
    ``today`` are injectable for tests."""

    def __init__(self, limits: RiskLimits, path: Path | None, account: str, *,
                 clock: Callable[[], float] = time.monotonic, today: Callable[[], date] = china_today) -> None:
        self.limits = limits
        self.path = path
        self.account = account
        self.clock = clock
        self.today = today
        self._db: sqlite3.Connection | None = None
        self.day: date = today()
        self.orders_today = 0
        self.notional_today = 0.0
        self._dirty = False
        # Both keep the China date each entry was learned: an order is open until the broker reports it final,
        # and only a later day's list (A-share orders never outlive their day) drops one it does not show.
        self.open_orders: dict[int, date] = {}  # non-final broker order ids
        self.pending: dict[str, date] = {}  # admitted client order ids whose order id is not known yet, including
        # those answered outcome_unknown (they may be at the broker)
        self.ref_price: dict[str, float] = {}  # code -> last known price
        self.sellable: dict[str, int] | None = None  # code -> can_use_volume from the last snapshot
        self.sellable_t0 = -math.inf  # monotonic time the snapshot's query was sent
        self._sells: dict[str, _Sell] = {}  # coid -> own sell not (yet known to be) in the snapshot
        self._buckets: dict[str, list[float]] = {}  # stream owner -> [tokens, last refill monotonic]
        self.financing_today = 0.0
        self.short_today = 0.0
        self.credit_ratio: tuple[float, float] | None = None  # (maintenance ratio, total debt) of the last snapshot
        self.credit_t0 = -math.inf

    def _forget_full_buckets(self, now: float, rate: float, burst: int) -> None:
        """Bounded memory: a bucket refilled to its capacity is the same as a new one, so it can go; if none is
        full, the one refilled longest ago goes (owners are real command streams, at most max_command_streams)."""
        full = [k for k, (tokens, t) in self._buckets.items() if tokens + (now - t) * rate >= burst]
        for key in full or [min(self._buckets, key=lambda k: self._buckets[k][1])]:
            del self._buckets[key]

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def open(self) -> None:
        if self.path is None or self._db is not None:
            return
        self._db = open_wal_db(self.path, _SCHEMA)
        self._load(self.today())

    def close(self) -> None:
        if self._db is not None:
            self.commit()
            close_wal_db(self.path, self._db)
            self._db = None

    def _load(self, day: date) -> None:
        self.day = day
        self.orders_today, self.notional_today = 0, 0.0
        self.financing_today, self.short_today = 0.0, 0.0
        if self._db is not None:
            row = self._db.execute("SELECT orders, notional FROM daily WHERE account=? AND day=?",
                                   (self.account, day.isoformat())).fetchone()
            if row:
                self.orders_today, self.notional_today = int(row[0]), float(row[1])
            row = self._db.execute("SELECT financing, short FROM daily_credit WHERE account=? AND day=?",
                                   (self.account, day.isoformat())).fetchone()
            if row:
                self.financing_today, self.short_today = float(row[0]), float(row[1])

    def commit(self) -> None:
        """Persist the day's counters (once per batch, before its orders are dispatched)."""
        if not self._dirty or self._db is None:
            return
        self._db.execute("INSERT INTO daily (account, day, orders, notional) VALUES (?,?,?,?) "
                         "ON CONFLICT(account, day) DO UPDATE SET orders=excluded.orders, notional=excluded.notional",
                         (self.account, self.day.isoformat(), self.orders_today, self.notional_today))
        if self.financing_today or self.short_today:
            self._db.execute("INSERT INTO daily_credit (account, day, financing, short) VALUES (?,?,?,?) "
                             "ON CONFLICT(account, day) DO UPDATE SET financing=excluded.financing, "
                             "short=excluded.short",
                             (self.account, self.day.isoformat(), self.financing_today, self.short_today))
        self._dirty = False

    # --- what a batch needs -------------------------------------------------------------------------------------------
    def needs_positions(self, orders: Iterable[c.PlaceOrder]) -> bool:
        if not self.limits.sell_within_sellable:
            return False
        if not any(o.side.uses_holding for o in orders):
            return False
        return self.clock() - self.sellable_t0 > self.limits.positions_cache_ms / 1000.0

    def needs_credit(self, orders: Iterable[c.PlaceOrder]) -> bool:
        """True when a margin buy or short sell in the batch needs a fresher maintenance ratio."""
        if self.limits.min_maintenance_ratio_for_new_debt is None:
            return False
        if not any(o.side.opens_debt for o in orders):
            return False
        return self.clock() - self.credit_t0 > self.limits.credit_cache_ms / 1000.0

    def set_credit(self, details: Iterable[c.CreditDetailReport], t0: float) -> None:
        """A credit detail snapshot whose query was sent at monotonic ``t0``."""
        for d in details:
            if d.account == self.account or not d.account:
                self.credit_ratio = (d.maintenance_ratio, d.total_debt)
                self.credit_t0 = t0
                return

    def set_positions(self, positions: Iterable[c.PositionReport], t0: float) -> None:
        """A position snapshot whose query was sent at monotonic ``t0``."""
        self.sellable = {p.code: p.can_use_volume for p in positions}
        self.sellable_t0 = t0
        for p in positions:
            if p.last_price > 0:
                self.ref_price[p.code] = p.last_price
        for coid in [k for k, s in self._sells.items() if s.acked_mono is not None and s.acked_mono <= t0]:
            del self._sells[coid]

    def sellable_now(self, code: str) -> int | None:
        if self.sellable is None:
            return None
        own = sum(s.volume for s in self._sells.values() if s.code == code)
        return self.sellable.get(code, 0) - own

    def open_count(self) -> int:
        return len(self.open_orders) + len(self.pending)

    # --- the check --------------------------------------------------------------------------------------------------
    def check(self, cmd: c.PlaceOrder, *, fresh: bool = True) -> Refusal | None:
        """None = allowed (and counted: day, open orders, rate, own sells); else the first rule that refuses."""
        lim = self.limits
        refusal = self._static(cmd)
        if refusal is not None or not fresh:
            return refusal
        day = self.today()
        if day != self.day:
            self.commit()
            self._load(day)
        notional = self._notional(cmd)
        refusal = self._credit(cmd, notional)
        if refusal is not None:
            return refusal
        if lim.sell_within_sellable and cmd.side.uses_holding:
            can = self.sellable_now(cmd.code)
            if can is None:
                return Refusal("sellable_volume", None, cmd.volume,
                               "sellable volume unknown (no position snapshot from the broker); sell refused")
            if cmd.volume > can:
                return Refusal("sellable_volume", can, cmd.volume,
                               f"sell volume {cmd.volume} exceeds the sellable volume {can} of {cmd.code} "
                               "(can_use_volume minus this executor's sells in flight)")
        if lim.max_open_orders is not None and self.open_count() + 1 > lim.max_open_orders:
            return Refusal("max_open_orders", lim.max_open_orders, self.open_count() + 1,
                           f"{self.open_count()} orders are open; at most {lim.max_open_orders} may be")
        if lim.max_daily_orders is not None and self.orders_today + 1 > lim.max_daily_orders:
            return Refusal("max_daily_orders", lim.max_daily_orders, self.orders_today + 1,
                           f"{self.orders_today} orders today; at most {lim.max_daily_orders} per day")
        if lim.max_daily_notional_cny is not None:
            if notional is None:
                return Refusal("max_daily_notional_cny", lim.max_daily_notional_cny, None,
                               "a market order without a reference price cannot be valued")
            total = self.notional_today + notional
            if total > lim.max_daily_notional_cny + 1e-6:
                return Refusal("max_daily_notional_cny", lim.max_daily_notional_cny, _num(total),
                               f"today's notional would be {total:.2f} CNY; at most "
                               f"{lim.max_daily_notional_cny:.2f} per day")
        if lim.max_orders_per_s_per_strategy is not None:
            now = self.clock()
            rate, burst = lim.max_orders_per_s_per_strategy, lim.burst
            # cmd.strategy is the owner of the command stream the order came from (engine: _decode binds it), so
            # one strategy has one bucket whatever names its commands give themselves.
            if cmd.strategy not in self._buckets and len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full_buckets(now, rate, burst)
            bucket = self._buckets.setdefault(cmd.strategy, [float(burst), now])
            bucket[0] = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if bucket[0] < 1.0 - _EPS:
                return Refusal("max_orders_per_s_per_strategy", rate, _num(bucket[0]),
                               f"strategy {cmd.strategy!r} sends more than {rate:g} orders/s (burst {burst}); "
                               f"{bucket[0]:.3f} tokens left")
            bucket[0] -= 1.0
        # Allowed: count it.
        self.orders_today += 1
        self.notional_today += notional or 0.0
        self._dirty = True
        self.pending[cmd.client_order_id] = self.day
        if cmd.side.uses_holding:
            self._sells[cmd.client_order_id] = _Sell(cmd.code, cmd.volume or 0)
        if cmd.side in _FINANCING:
            self.financing_today += notional or 0.0
        elif cmd.side in _SHORT:
            self.short_today += notional or 0.0
        if cmd.side.opens_debt:
            self.credit_t0 = -math.inf  # the snapshot predates this debt: the next batch asks the broker again
        return None

    def _credit(self, cmd: c.PlaceOrder, notional: float | None) -> Refusal | None:
        """The credit rules of a margin buy or short sell (nothing else opens debt)."""
        lim = self.limits
        if cmd.side in _FINANCING:
            per_order, daily, today, what = (lim.max_financing_per_order_cny, lim.max_financing_daily_cny,
                                             self.financing_today, "financing")
        elif cmd.side in _SHORT:
            per_order, daily, today, what = (lim.max_short_per_order_cny, lim.max_short_daily_cny,
                                             self.short_today, "short")
        else:
            return None
        rule = f"max_{what}_per_order_cny"
        if per_order is not None:
            if notional is None:
                return Refusal(rule, per_order, None, "a market order without a reference price cannot be valued")
            if notional > per_order + 1e-6:
                return Refusal(rule, per_order, _num(notional),
                               f"{what} of {notional:.2f} CNY exceeds {per_order:.2f} per order")
        rule = f"max_{what}_daily_cny"
        if daily is not None:
            if notional is None:
                return Refusal(rule, daily, None, "a market order without a reference price cannot be valued")
            if today + notional > daily + 1e-6:
                return Refusal(rule, daily, _num(today + notional),
                               f"today's {what} would be {today + notional:.2f} CNY; at most {daily:.2f} per day")
        floor = lim.min_maintenance_ratio_for_new_debt
        if floor is not None:
            if self.credit_ratio is None:
                return Refusal("min_maintenance_ratio_for_new_debt", floor, None,
                               "maintenance ratio unknown (no credit detail from the broker); new debt refused")
            ratio, debt = self.credit_ratio
            if debt > 0 and ratio < floor - _EPS:
                return Refusal("min_maintenance_ratio_for_new_debt", floor, _num(ratio),
                               f"maintenance ratio {ratio:.4f} is below {floor:g}; no new margin debt")
        return None

    def _notional(self, cmd: c.PlaceOrder) -> float | None:
        if cmd.volume is None:  # a direct cash repayment: its amount
            return cmd.amount
        if cmd.side.is_direct:  # a direct share repayment: no price of its own
            ref = self.ref_price.get(cmd.code)
            return None if ref is None else ref * cmd.volume
        price = cmd.price if cmd.price_type is c.PriceType.LIMIT else self.ref_price.get(cmd.code)
        return None if price is None else price * cmd.volume

    def _static(self, cmd: c.PlaceOrder) -> Refusal | None:
        lim = self.limits
        if not lim.trading_enabled:
            return Refusal("trading_enabled", False, True, "trading is disabled for this account (risk config)")
        if lim.allowed_codes and cmd.code not in lim.allowed_codes:
            return Refusal("allowed_codes", list(lim.allowed_codes), cmd.code, f"{cmd.code} is not an allowed code")
        if cmd.code in lim.blocked_codes:
            return Refusal("blocked_codes", list(lim.blocked_codes), cmd.code, f"{cmd.code} is a blocked code")
        if lim.allowed_boards or lim.blocked_boards:
            board = classify_board(cmd.code)
            if lim.allowed_boards and board not in lim.allowed_boards:
                return Refusal("allowed_boards", list(lim.allowed_boards), board,
                               f"{cmd.code} is on board {board}, not an allowed board")
            if board in lim.blocked_boards:
                return Refusal("blocked_boards", list(lim.blocked_boards), board,
                               f"{cmd.code} is on board {board}, a blocked board")
        if lim.max_order_volume is not None and cmd.volume is not None and cmd.volume > lim.max_order_volume:
            return Refusal("max_order_volume", lim.max_order_volume, cmd.volume,
                           f"volume {cmd.volume} exceeds {lim.max_order_volume} per order")
        notional = self._notional(cmd)
        if lim.max_order_notional_cny is not None:
            if notional is None:
                return Refusal("max_order_notional_cny", lim.max_order_notional_cny, None,
                               "a market order without a reference price cannot be valued")
            if notional > lim.max_order_notional_cny + 1e-6:
                return Refusal("max_order_notional_cny", lim.max_order_notional_cny, _num(notional),
                               f"notional {notional:.2f} CNY exceeds {lim.max_order_notional_cny:.2f} per order")
        if lim.price_band_pct is not None and not cmd.side.is_direct:
            # Market orders too: without a reference price nothing bounds where one fills. With one, a market
            # order has no price of its own to compare; the exchange's protection band for market orders applies.
            ref = self.ref_price.get(cmd.code)
            if ref is None:
                if lim.price_band_without_reference == "refuse":
                    return Refusal("price_band_pct", lim.price_band_pct, None,
                                   f"no reference price is known for {cmd.code}; refused (price band)")
            elif cmd.price_type is not c.PriceType.LIMIT or cmd.price is None:
                pass
            elif cmd.side.is_buy:
                cap = ref * (1 + lim.price_band_pct / 100.0)
                if cmd.price > cap + _EPS:
                    return Refusal("price_band_pct", _num(cap), cmd.price,
                                   f"buy at {cmd.price} is more than {lim.price_band_pct:g}% above the reference "
                                   f"price {ref} (at most {cap:.4f})")
            else:
                floor = ref * (1 - lim.price_band_pct / 100.0)
                if cmd.price < floor - _EPS:
                    return Refusal("price_band_pct", _num(floor), cmd.price,
                                   f"sell at {cmd.price} is more than {lim.price_band_pct:g}% below the reference "
                                   f"price {ref} (at least {floor:.4f})")
        return None

    # --- tracking ---------------------------------------------------------------------------------------------------
    def placement_done(self, coid: str, *, order_id: int | None, status: c.OrderStatus | None,
                       placed: bool | None) -> None:
        """An admitted order's first outcome. ``placed``: True = the broker has it, False = it does not (refused,
        rejected, expired), None = unknown: it stays counted as open until the broker shows it (an order event
        or list carrying its client order id)."""
        if placed is None:
            return
        self.pending.pop(coid, None)
        if placed and order_id and status is not None and not status.is_final:
            self.open_orders[order_id] = self.today()
        sell = self._sells.get(coid)
        if sell is not None:
            if placed is False:
                del self._sells[coid]
            elif sell.acked_mono is None:
                sell.acked_mono = self.clock()

    def on_event(self, ev: c.Event) -> None:
        if isinstance(ev, c.OrderUpdated):
            o = ev.order
            if o.status.is_final:
                self.open_orders.pop(o.order_id, None)
            else:
                self.open_orders.setdefault(o.order_id, self.today())
            if o.client_order_id:
                self.pending.pop(o.client_order_id, None)
        elif isinstance(ev, c.OrderRejected):
            self.open_orders.pop(ev.order_id, None)
        elif isinstance(ev, c.OrderFilled):
            if ev.trade.price > 0:
                self.ref_price[ev.trade.code] = ev.trade.price
        elif isinstance(ev, c.PositionUpdated):
            if ev.position.last_price > 0:
                self.ref_price[ev.position.code] = ev.position.last_price

    def sync_orders(self, orders: Iterable[c.OrderReport]) -> None:
        """Today's full order list from the broker: its non-final orders are open, its final ones are not. The list
        may be older than what this executor learned since it was asked (MiniQMT answers from its own cache): an
        order it does not show stays as known (open, or pending with its client order id), unless it was learned
        on an earlier day (orders do not outlive their trading day)."""
        orders = list(orders)
        today = self.today()
        listed = {o.order_id for o in orders}
        kept = {oid: d for oid, d in self.open_orders.items() if oid not in listed and d == today}
        self.open_orders = {o.order_id: today for o in orders if not o.status.is_final}
        self.open_orders.update(kept)
        shown = {o.client_order_id for o in orders if o.client_order_id}
        self.pending = {coid: d for coid, d in self.pending.items() if coid not in shown and d == today}

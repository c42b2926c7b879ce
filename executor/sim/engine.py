"""The simulated broker: accounts, order book, matching, and the commit-then-push pipeline.

One ``Engine`` serves one folder, owned by the simulated MiniQMT serving it (``executor/sim/qmt/server.py``, which
also runs the control poller and the price feeds beside it). Every client session attaches a ``Session``
(executor/sim/session.py), so pushes reach every subscribed session, including for orders another session placed,
as MiniQMT's per-account subscription does. Other processes steer it through ``SimControl`` (control rows polled
from SQLite).

Threading:
* Calls (orders, cancels, queries, price updates) execute on the caller's thread under ``self.lock`` (an RLock).
  Nothing in here waits for a delivery thread.
* Every mutation marks rows dirty and appends its pushes to ``self._pushes`` in generation order.
* One committer thread writes the dirty rows in one SQLite transaction (group commit), then hands the pushes to
  each session's single delivery thread. So no push (in particular no order response) is delivered before the
  state it reports is committed.
"""

from __future__ import annotations

import calendar
import logging
import math
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable

from xtquant import xtconstant as xc
from xtquant import xttype as xt

from . import credit as C
from . import rules as R
from .config import SimConfig, shanghai_now
from .objects import (BUILDERS, GROUP, SimXtOrderError, build_asset, build_order, build_position,
                      build_trade)
from .session import NOARG, Session
from .store import Store

log = logging.getLogger("executor.sim")
_time = time.time
_floor = math.floor
# Hot paths below inline rules.money(x) as ``_floor(x * 100.0 + 0.5 + 1e-6) / 100.0`` (the very same expression,
# so the very same doubles) to save a Python call per rounding; everything else calls R.money.

BUY, SELL = xc.STOCK_BUY, xc.STOCK_SELL
ORDER_SUCCEEDED, ORDER_PART_SUCC = xc.ORDER_SUCCEEDED, xc.ORDER_PART_SUCC
OPEN_STATUSES = frozenset({xc.ORDER_UNREPORTED, xc.ORDER_WAIT_REPORTING, xc.ORDER_REPORTED, xc.ORDER_PART_SUCC,
                           xc.ORDER_REPORTED_CANCEL, xc.ORDER_PARTSUCC_CANCEL})

# --- error ids (stable) -------------------------------------------------------------------------------------
# tier 1: MiniQMT refuses before an order exists
E_DISCONNECTED = 100001
E_BAD_CODE = 100002
E_BAD_VOLUME = 100003
E_BAD_ORDER_TYPE = 100004
E_BAD_PRICE_TYPE = 100005
E_MARKET_TYPE_EXCHANGE = 100006
E_UNKNOWN_ACCOUNT = 100007
E_INJECTED = 100009
# tier 2: the counter refuses (order row with status 57)
E_LOT = 100201
E_MAX_VOLUME = 100202
E_TICK = 100301
E_PRICE_LIMIT = 100302
E_BAD_PRICE = 100303
E_FUNDS = 260200  # the counter's own id for 可用资金不足, as seen on QMT (reference 6.2 E, BQ#156)
E_SELLABLE = 100501
E_ODD_LOT = 100502
E_SESSION = 12313  # the counter's own id for 当前时间不允许此类证券交易, as seen on MiniQMT (issue #11)
E_SESSION_MARKET = 100602
# cancels
E_CANCEL_UNKNOWN = 100701
E_CANCEL_TERMINAL = 100702
E_CANCEL_WINDOW = 100703
E_CANCEL_DISCONNECTED = 100704
E_CANCEL_LATE = 100705  # refused by the exchange after the counter took the cancel (Faults.refuse_cancels_late)


def msg(code: int, zh: str, en: str) -> str:
    """A refusal text shaped like the broker counter's (``[COUNTER] [12313][当前时间不允许此类证券交易]``, reference
    6.2 E); the English detail after it is the simulator's. Nobody may parse it: the ids above say what it is."""
    return f"[COUNTER] [{code}][{zh}] {en}"


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
    def is_sell(self) -> bool:
        return C.SIDE.get(self.order_type) == SELL

    @property
    def remaining(self) -> int:
        return self.volume - self.traded_volume


class Faults:
    """Faults on demand (also reachable cross-process through ``SimControl``). Shared by all sessions on a path."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self.reject_n = 0
        self.reject_message = ""
        self.delay_ms = 0.0
        self.call_latency_ms = 0.0
        self.drop = {"order": 0, "trade": 0, "position": 0, "asset": 0, "any": 0}
        self.stale_orders: list[tuple[str, bool, Any]] | None = None  # (account, open, xt order) when armed
        self.stale_left = 0
        self.stale_given = 0
        self._stale_answered = threading.Condition()
        # Distributions instead of constants (a real broker's answers vary per call): (low, high) ms drawn per call
        # from one seeded generator. While one is set, answers are due in their own time: a quick answer overtakes
        # a slow one (executor/sim/session.py), as answers of a remote counter do.
        self.latency_range: tuple[float, float] | None = None
        self.delay_range: tuple[float, float] | None = None
        self.reorder_p = 0.0
        self.split_fills = False
        self.rng = random.Random()
        # push orders MiniQMT produces, as standing switches (push_order) and late refusals (one-shot counts)
        self.answer_last = False
        self.trades_first = False
        self.late_cancel_n = 0
        self.late_cancel_text = ""
        self.late_cancel_ms = 0.0
        self.counter_n = 0
        self.counter_text = ""
        self.counter_error_id = 0

    def disconnect(self, down_ms: float = 0) -> None:
        """Fire on_disconnected on every connected session of this path; new connects fail for ``down_ms``."""
        self._engine.disconnect_all(down_ms)

    def reject_next(self, n: int = 1, message: str | None = None) -> None:
        """Refuse the next ``n`` orders before they exist (tier 1), with ``message``."""
        with self._engine.lock:
            self.reject_n = int(n)
            self.reject_message = message or "注入的拒单 / injected rejection"

    def delay_pushes(self, ms: float, max_ms: float | None = None, seed: int | None = None) -> None:
        """Deliver every later push (responses included) ``ms`` after the event; 0 switches it off. With ``max_ms``
        each operation's pushes are delayed by a uniform draw from [ms, max_ms] (reproducible with ``seed``)."""
        with self._engine.lock:
            self.delay_ms = float(ms)
            self.delay_range = self._range(ms, max_ms, seed)

    def drop_next_push(self, kind: str = "any", n: int = 1) -> None:
        """Silently drop the next ``n`` pushes of ``kind`` ("order", "trade", "position", "asset" or "any" of
        these four). The state still changes; only the push is lost (for reconciliation tests)."""
        if kind not in self.drop:
            raise ValueError(f"kind must be one of {sorted(self.drop)}")
        with self._engine.lock:
            self.drop[kind] += int(n)
            self._engine._drop_armed = True

    def set_call_latency(self, ms: float, max_ms: float | None = None, seed: int | None = None) -> None:
        """Every sync broker call sleeps ``ms`` before it runs; async calls return at once and their pushes are
        delivered ``ms`` later (pipelined, as a real broker round trip would be). With ``max_ms`` each call draws
        its latency uniformly from [ms, max_ms] (reproducible with ``seed``)."""
        with self._engine.lock:
            self.call_latency_ms = float(ms)
            self.latency_range = self._range(ms, max_ms, seed)

    def reorder_pushes(self, probability: float = 1.0, split_fills: bool = True, seed: int | None = None) -> None:
        """Push orders MiniQMT may produce (docs: xtquant-trading-api.md 6.1 rule 5, field-lessons.md): with
        ``probability`` the pushes of one broker operation arrive shuffled (order updates and trades before the
        placement answer, a trade before or after its order update, an older order update after the final one);
        on_order_error / on_cancel_error still follow their answer. ``split_fills``: a marketable order's
        immediate fill is two trades, so a partial fill can arrive after "filled". 0 switches it off."""
        with self._engine.lock:
            self.reorder_p = float(probability)
            self.split_fills = bool(split_fills) and self.reorder_p > 0
            if seed is not None:
                self.rng.seed(seed)

    def push_order(self, answer_last: bool = False, trades_first: bool = False) -> None:
        """Push orders MiniQMT produces (reference 6.1 rule 5, 8.11), deterministic (``reorder_pushes`` is the
        random kind). ``answer_last``: the answer to an order or cancel (``on_order_stock_async_response`` /
        ``on_cancel_order_stock_async_response``, which the wheel's sync ``order_stock`` / ``cancel_order_stock``
        also wait for) arrives after that operation's ``on_stock_order`` / ``on_stock_trade`` pushes.
        ``trades_first``: an operation's trades arrive before its order updates (a fill before the order's first
        update, and, with ``answer_last``, before the answer). Both False switches it off."""
        with self._engine.lock:
            self.answer_last = bool(answer_last)
            self.trades_first = bool(trades_first)

    def refuse_cancels_late(self, n: int = 1, message: str | None = None, after_ms: float = 0.0) -> None:
        """The next ``n`` cancels of a working order are taken (answer ``cancel_result`` 0, so the wheel's sync
        ``cancel_order_stock`` returns 0) and then refused (``on_cancel_error``, ``after_ms`` later): the order keeps
        working, as when the exchange refuses a cancel the counter had accepted (reference 6.2 F)."""
        with self._engine.lock:
            self.late_cancel_n = int(n)
            self.late_cancel_text = message or msg(E_CANCEL_LATE, "撤单失败，交易所拒绝撤单",
                                                   "the exchange refused the cancel; the order keeps working")
            self.late_cancel_ms = float(after_ms)

    def counter_refuse_next(self, n: int = 1, text: str | None = None, error_id: int = 0) -> None:
        """The counter refuses the next ``n`` orders after they exist (status 57 with ``status_msg`` = ``text`` and
        ``on_order_error(error_id, text)``), ``text`` verbatim: an error text nobody has seen before."""
        with self._engine.lock:
            self.counter_n = int(n)
            self.counter_text = text if text is not None else msg(E_INJECTED, "柜台拒单", "injected counter refusal")
            self.counter_error_id = int(error_id) if error_id else E_INJECTED

    def _range(self, ms: float, max_ms: float | None, seed: int | None) -> tuple[float, float] | None:
        if seed is not None:
            self.rng.seed(seed)
        return (float(ms), float(max_ms)) if max_ms is not None and float(max_ms) > float(ms) else None

    @property
    def independent(self) -> bool:
        """True while a latency or delay distribution is set (answers are due in their own time)."""
        return self.latency_range is not None or self.delay_range is not None

    def call_latency(self) -> float:
        """This call's latency in ms (a draw while a distribution is set)."""
        r = self.latency_range
        return self.rng.uniform(*r) if r is not None else self.call_latency_ms

    def push_delay(self) -> float:
        r = self.delay_range
        return self.rng.uniform(*r) if r is not None else self.delay_ms

    def stale_order_lists(self, answers: int = 1) -> None:
        """The next ``answers`` order list answers (``query_stock_orders*``) show the orders as they are now, not as
        they will be then: MiniQMT answers queries from its own cache, which can lag behind the orders it has
        accepted and pushed. 0 switches it off."""
        eng = self._engine
        with eng.lock:
            self.stale_left = max(0, int(answers))
            self.stale_orders = [(o.account_id, o.status in OPEN_STATUSES, eng.xt_order(o))
                                 for o in eng.orders.values()] if self.stale_left else None

    def stale_answer(self, account_id: str, cancelable_only: bool) -> list | None:
        """Engine side (under the engine lock): the armed snapshot for one answer, or None when not armed."""
        if self.stale_left <= 0 or self.stale_orders is None:
            return None
        self.stale_left -= 1
        out = [x for acct, is_open, x in self.stale_orders if acct == account_id and (is_open or not cancelable_only)]
        with self._stale_answered:
            self.stale_given += 1
            self._stale_answered.notify_all()
        return out

    def wait_stale_answers(self, n: int, timeout: float = 5.0) -> bool:
        """Block until ``n`` stale order list answers were given in all (tests, in-process)."""
        with self._stale_answered:
            return self._stale_answered.wait_for(lambda: self.stale_given >= n, timeout)

    def reset(self) -> None:
        with self._engine.lock:
            self.stale_left, self.stale_orders = 0, None
            self.reject_n = 0
            self.delay_ms = 0.0
            self.call_latency_ms = 0.0
            self.latency_range = self.delay_range = None
            self.reorder_p = 0.0
            self.split_fills = False
            self.answer_last = self.trades_first = False
            self.late_cancel_n = self.counter_n = 0
            for k in self.drop:
                self.drop[k] = 0


_DROP_KIND = {"on_stock_order": "order", "on_stock_trade": "trade", "on_stock_position": "position",
              "on_stock_asset": "asset"}


class Engine:
    def __init__(self, path: Path, config: SimConfig) -> None:
        self.path = path
        self.config = config
        self.fees = R.FeeSchedule(config.commission_rate, config.min_commission, config.stamp_duty_rate,
                                  config.transfer_fee_rate)
        self.max_volume = dict(R.DEFAULT_MAX_ORDER_VOLUME)
        self.max_volume.update(config.max_order_volume)
        self.lock = threading.RLock()
        self._work = threading.Condition(self.lock)
        self._commit_cv = threading.Condition()
        self.faults = Faults(self)
        self.sessions: list[Session] = []
        self.down_until = 0.0  # time.time() before which attach() fails
        self._closing = False

        # dirty state for the committer
        self._gen = 0
        self._committed_gen = 0
        self._dirty_orders: dict[int, Order] = {}
        self._dirty_pos: dict[tuple[str, str], Position] = {}
        self._deleted_pos: list[tuple[str, str]] = []
        self._dirty_acct: set[str] = set()
        self._new_trades: list[tuple] = []
        self._dirty_prices: set[str] = set()
        self._dirty_meta: dict[str, str] = {}
        self._pushes: list[tuple] = []
        self._grp: tuple | None = None  # the GROUP item at the end of self._pushes that deferred pushes extend
        self._targets_cache: dict[str, list] = {}
        self._drop_armed = False
        self._secu_cache: dict[str, dict[str, str]] = {}  # account_id -> suffix -> secu_account
        self._nb = 0.0  # not-before (monotonic) for pushes emitted by the running operation
        self._op_mark: int | None = None  # index in _pushes where the running operation's pushes start (reorder)

        path.mkdir(parents=True, exist_ok=True)
        self.store = Store(path / config.db_filename, config.sqlite_synchronous)
        self._load()
        self.credit = C.CreditDesk(self, self.store.meta())  # margin accounts (executor/sim/credit.py)

        self._committer = threading.Thread(target=self._commit_loop, name="xtsim-commit", daemon=True)
        self._committer.start()

    # ------------------------------------------------------------------------------------------------------
    # loading
    def _load(self) -> None:
        st = self.store
        meta = st.meta()
        self.day = int(meta.get("day", "1"))
        self.down_until = float(meta.get("down_until", "0"))
        max_o, max_t = st.max_ids()
        self.next_order_id = max(int(meta.get("next_order_id", "1")), max_o + 1)
        self.next_trade_seq = max(int(meta.get("next_trade_seq", "1")), max_t + 1)
        self.quotes: dict[str, Quote] = {}
        for code, entry in self.config.universe.items():
            self._make_quote(code, entry.prev_close, entry.prev_close, entry.name, entry.limit_pct, entry.t0)
        for code, last, prev_close, name in st.load_prices():
            q = self.quotes.get(code)
            if q is None:
                self._make_quote(code, last, prev_close, name)
            else:
                q.last = last
                q.name = name or q.name
                q.set_prev_close(prev_close)
        self.accounts: dict[str, Account] = {r[0]: Account(*r) for r in st.load_accounts()}
        self.positions: dict[str, dict[str, Position]] = {}
        for r in st.load_positions():
            p = Position(*r)
            self.positions.setdefault(p.account_id, {})[p.code] = p
        for acct_id, seed in self.config.accounts.items():
            if acct_id in self.accounts:
                continue  # the file wins over the seed once an account exists
            self.accounts[acct_id] = Account(acct_id, R.money(seed.cash))
            self._dirty_acct.add(acct_id)
            book = self.positions.setdefault(acct_id, {})
            for code, spec in seed.positions.items():
                vol, avg = (spec, None) if isinstance(spec, int) else (int(spec[0]), float(spec[1]))
                if avg is None:
                    q = self.quotes.get(code)
                    avg = q.prev_close if q else 0.0
                p = Position(acct_id, code, vol, vol, 0, vol, R.money(avg * vol), R.money(avg * vol), vol)
                book[code] = p
                self._dirty_pos[(acct_id, code)] = p
        for a in self.accounts:
            self.positions.setdefault(a, {})
        self.orders: dict[int, Order] = {}
        self.orders_by_sysid: dict[str, Order] = {}
        self.book: dict[str, list[Order]] = {}  # code -> open orders in time priority
        for r in st.load_orders(self.day):
            o = Order.from_row(r)
            q = self.quotes.get(o.code)
            o.inst = q.inst if q else R.classify(o.code)
            o.name = q.name if q else ""
            self.orders[o.order_id] = o
            if o.sysid:
                self.orders_by_sysid[o.sysid] = o
            if o.status in OPEN_STATUSES:
                self.book.setdefault(o.code, []).append(o)
        self.trades: dict[str, list[tuple]] = {}
        for r in st.load_trades(self.day):
            self.trades.setdefault(r[4], []).append(r)
        if self._dirty_acct or self._dirty_pos:
            self._flush_sync()
        self.control_seen = st.max_control_id()  # faults queued before this engine started are not replayed

    def _make_quote(self, code, last, prev_close, name, limit_pct=None, t0=None) -> Quote | None:
        inst = R.classify(code, st="ST" in (name or ""), st_limit_pct=self.config.st_limit_pct,
                          limit_pct=limit_pct, t0=t0)
        if inst is None:
            return None
        q = Quote(code, name or code, last, prev_close, inst)
        self.quotes[code] = q
        return q

    # ------------------------------------------------------------------------------------------------------
    # committer
    def _bump(self) -> int:
        if self._op_mark is not None:  # the end of an operation under reorder_pushes / push_order
            f = self.faults
            if f.reorder_p:
                for item in self._pushes[self._op_mark:]:
                    if item[2] is GROUP and f.rng.random() < f.reorder_p:
                        f.rng.shuffle(item[3])
            if f.answer_last or f.trades_first:
                self._push_order(self._op_mark, f.answer_last, f.trades_first)
            self._op_mark = None
        self._gen += 1
        self._work.notify()
        return self._gen

    def _commit_loop(self) -> None:
        while True:
            with self.lock:
                while self._committed_gen_local() and not self._closing:
                    self._work.wait()
                if self._closing and self._committed_gen_local():
                    return
                gen = self._gen
                orders = [o.row() for o in self._dirty_orders.values()]
                self._dirty_orders.clear()
                positions = [p.row() for p in self._dirty_pos.values()]
                self._dirty_pos.clear()
                deleted, self._deleted_pos = self._deleted_pos, []
                accounts = [self.accounts[a].row() for a in self._dirty_acct]
                self._dirty_acct.clear()
                trades, self._new_trades = self._new_trades, []
                prices = [(c, self.quotes[c].last, self.quotes[c].prev_close, self.quotes[c].name)
                          for c in self._dirty_prices]
                self._dirty_prices.clear()
                self._dirty_meta["next_order_id"] = str(self.next_order_id)
                self._dirty_meta["next_trade_seq"] = str(self.next_trade_seq)
                meta = list(self._dirty_meta.items())
                self._dirty_meta.clear()
                pushes, self._pushes = self._pushes, []
                self._taken_gen = gen
            for attempt in range(50):
                try:
                    self.store.write(orders, positions, deleted, accounts, trades, prices, meta)
                    break
                except Exception:  # pragma: no cover - disk full, locked for > busy_timeout, ...
                    log.exception("xtsim: commit failed (attempt %d); retrying", attempt + 1)
                    time.sleep(0.1)
            with self._commit_cv:
                self._committed_gen = gen
                self._commit_cv.notify_all()
            if pushes:
                self._dispatch(pushes)

    _ANSWERS = frozenset({"on_order_stock_async_response", "on_cancel_order_stock_async_response"})

    def _push_order(self, mark: int, answer_last: bool, trades_first: bool) -> None:
        """Faults.push_order: re-sort the running operation's pushes (``self._pushes[mark:]``), stably, per session:
        trades first and/or answers last; everything else keeps its order."""
        flat = []  # (session, nb, deferred, name, payload)
        for session, nb, fn, arg in self._pushes[mark:]:
            if fn is GROUP:
                flat.extend((session, nb, True, name, args) for name, args in arg)
            else:
                flat.append((session, nb, False, fn, arg))

        def rank(e: tuple) -> int:
            name = e[3]
            if answer_last and name in self._ANSWERS:
                return 2
            if trades_first and name == "on_stock_trade":
                return 0
            return 1

        flat.sort(key=rank)
        out: list[tuple] = []
        for session, nb, deferred, name, payload in flat:
            if deferred:
                last = out[-1] if out else None
                if last is not None and last[2] is GROUP and last[0] is session and last[1] == nb:
                    last[3].append((name, payload))
                else:
                    out.append((session, nb, GROUP, [(name, payload)]))
            else:
                out.append((session, nb, name, payload))
        self._pushes[mark:] = out
        self._grp = None  # nothing later may extend a re-sorted group

    def _committed_gen_local(self) -> bool:
        """True when nothing new has been generated since the last batch was taken."""
        return self._gen == getattr(self, "_taken_gen", 0)

    def _dispatch(self, pushes: list[tuple]) -> None:
        per: dict[Any, list] = {}
        for session, nb, fn, arg in pushes:
            lst = per.get(session)
            if lst is None:
                per[session] = lst = []
            lst.append((nb, fn, arg))
        for session, items in per.items():
            session.deliver(items)

    def wait_committed(self, gen: int, timeout: float | None = 30.0) -> bool:
        with self._commit_cv:
            return self._commit_cv.wait_for(lambda: self._committed_gen >= gen, timeout)

    def flush(self) -> None:
        """Block until everything generated so far is committed and handed to the callback threads."""
        with self.lock:
            gen = self._bump()
        self.wait_committed(gen)

    def _flush_sync(self) -> None:
        # start-up only (no committer yet): write seeds directly
        accounts = [self.accounts[a].row() for a in self._dirty_acct]
        positions = [p.row() for p in self._dirty_pos.values()]
        self.store.write([], positions, [], accounts, [], [], [("day", str(self.day))])
        self._dirty_acct.clear()
        self._dirty_pos.clear()

    def close(self) -> None:
        self.flush()
        with self.lock:
            self._closing = True
            self._work.notify_all()
        self._committer.join(timeout=10)
        self.store.close()

    # ------------------------------------------------------------------------------------------------------
    # push emission (always under self.lock)
    def _emit(self, session, fn, arg=NOARG) -> None:
        self._pushes.append((session, self._nb, fn, arg))

    def _targets(self, account_id: str) -> list:
        # cached: rebuilt only after a connect/subscribe/disconnect/stop (invalidate_targets)
        lst = self._targets_cache.get(account_id)
        if lst is None:
            lst = self._targets_cache[account_id] = [t for t in self.sessions if t.connected and account_id in t.subs]
        return lst

    def invalidate_targets(self) -> None:
        with self.lock:
            self._targets_cache.clear()

    def _drop(self, name: str) -> bool:
        if not self._drop_armed:
            return False
        d = self.faults.drop
        kind = _DROP_KIND[name]
        if d[kind] > 0:
            d[kind] -= 1
            return True
        if d["any"] > 0:
            d["any"] -= 1
            return True
        self._drop_armed = any(d.values())
        return False

    def _defer(self, session, name: str, args: tuple) -> None:
        """Queue a push whose object is built on the callback thread from ``args`` (see objects.BUILDERS).

        Consecutive deferred pushes to the same session with the same not-before share one GROUP item, so the
        queue order is exactly the emission order."""
        nb = self._nb
        pushes = self._pushes
        g = self._grp
        if g is not None and pushes and pushes[-1] is g and g[0] is session and g[1] == nb:
            g[3].append((name, args))
        else:
            self._grp = g = (session, nb, GROUP, [(name, args)])
            pushes.append(g)

    def _emit_acct(self, account_id: str, name: str, argsfn: Callable[[Any], tuple] | None, x: Any) -> None:
        """Push ``name`` to every subscribed session; the constructor arguments are ``argsfn(x)`` (or ``x``)."""
        if self._drop_armed and self._drop(name):
            return
        targets = self._targets(account_id)
        if not targets:
            return
        args = argsfn(x) if argsfn is not None else x
        if len(targets) == 1:
            self._defer(targets[0], name, args)
            return
        obj = BUILDERS[name](args)  # several sessions: one object shared by all of them, as before
        nb = self._nb
        for t in targets:
            self._pushes.append((t, nb, name, obj))

    def _begin(self, async_call: bool) -> None:
        f = self.faults
        delay = f.push_delay() + (f.call_latency() if async_call else 0.0)
        self._nb = time.monotonic() + delay / 1000.0 if delay > 0 else 0.0
        if f.reorder_p or f.answer_last or f.trades_first:
            self._grp = None  # this operation's pushes form a group of their own, re-ordered in _bump
            self._op_mark = len(self._pushes)

    # ------------------------------------------------------------------------------------------------------
    # object builders
    def now_epoch(self) -> int:
        clk = self.config.clock
        if clk is shanghai_now:
            return int(_time())
        dt = clk()
        if dt.tzinfo is None:  # naive Asia/Shanghai
            return calendar.timegm(dt.timetuple()) - 8 * 3600
        return int(dt.timestamp())

    def phase(self) -> str | None:
        if not self.config.session_clock:
            return None
        return R.session_phase(self.config.clock())

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

    # ------------------------------------------------------------------------------------------------------
    # market
    def set_price(self, code: str, last: float, prev_close: float | None = None, name: str | None = None) -> None:
        last = float(last)
        if not (last > 0) or math.isinf(last):
            raise ValueError(f"last price must be positive, got {last!r}")
        with self.lock:
            self._begin(False)
            q = self.quotes.get(code)
            if q is None:
                q = self._make_quote(code, last, float(prev_close) if prev_close else last, name or code)
                if q is None:
                    raise ValueError(f"cannot classify code {code!r} (board unknown)")
            else:
                q.last = last
                if name and name != q.name:
                    q.name = name
                    u = self.config.universe.get(code)
                    inst = R.classify(code, st="ST" in name, st_limit_pct=self.config.st_limit_pct,
                                      limit_pct=u.limit_pct if u else None, t0=u.t0 if u else None)
                    if inst is not None:
                        q.inst = inst
                        q.set_prev_close(q.prev_close)
                if prev_close:
                    q.set_prev_close(float(prev_close))
            self._dirty_prices.add(code)
            self._match_code(q)
            self._bump()

    def _match_code(self, q: Quote) -> None:
        lst = self.book.get(q.code)
        if not lst:
            return
        phase = self.phase()
        if phase is not None and phase in (R.PHASE_CLOSED, R.PHASE_PAUSE):
            return
        for o in list(lst):
            if o.status not in OPEN_STATUSES:
                continue
            if o.wait_update:
                o.wait_update = 0
                self._dirty_orders[o.order_id] = o
            if self._marketable(o, q):
                self._fill(o, self._cap(o), q.last)

    def quote(self, code: str) -> Quote | None:
        return self.quotes.get(code)

    # ------------------------------------------------------------------------------------------------------
    # day boundaries
    def end_of_day(self) -> int:
        """Cancel every open order (final 54/53 pushes only). Returns how many were cancelled."""
        with self.lock:
            self._begin(False)
            n = 0
            for o in list(self.orders.values()):
                if o.status in OPEN_STATUSES:
                    self._finish_cancel(o)
                    n += 1
            gen = self._bump()
        self.wait_committed(gen)
        return n

    def new_day(self) -> None:
        """Roll to the next trading day: open orders cancelled, T+1 shares become sellable, prev_close = last."""
        self.end_of_day()
        with self.lock:
            self.day += 1
            self._dirty_meta["day"] = str(self.day)
            self.credit.accrue()
            for aid, book in self.positions.items():
                for code, p in list(book.items()):
                    if p.volume == 0:
                        del book[code]
                        self._deleted_pos.append((aid, code))
                        continue
                    p.yesterday = p.volume
                    p.can_use = p.volume
                    p.frozen = 0
                    self._dirty_pos[(aid, code)] = p
            for a in self.accounts.values():
                a.sell_proceeds = 0.0
                self._dirty_acct.add(a.account_id)
            for q in self.quotes.values():
                q.set_prev_close(q.last)
                self._dirty_prices.add(q.code)
            self.orders.clear()
            self.orders_by_sysid.clear()
            self.book.clear()
            self.trades.clear()
            gen = self._bump()
        self.wait_committed(gen)

    # ------------------------------------------------------------------------------------------------------
    # connections
    def attach(self, session: Session) -> int:
        """Connect ``session`` (0), or -1 while MiniQMT is down (Faults.disconnect with ``down_ms``)."""
        with self.lock:
            if time.time() < self.down_until or session.disconnected:
                return -1
            session.connected = True
            if session not in self.sessions:
                self.sessions.append(session)
            self._targets_cache.clear()
            return 0

    def detach(self, session: Session) -> None:
        """The session ended: what it has queued is still delivered, nothing new is generated for it."""
        self.flush()
        with self.lock:
            session.connected = False
            if session in self.sessions:
                self.sessions.remove(session)
            self._targets_cache.clear()
        session.stop()

    def disconnect_all(self, down_ms: float = 0) -> None:
        with self.lock:
            self._begin(False)
            self.down_until = time.time() + float(down_ms) / 1000.0
            self._dirty_meta["down_until"] = repr(self.down_until)
            self._targets_cache.clear()
            for t in self.sessions:
                if t.connected:
                    t.connected = False
                    t.disconnected = True
                    self._emit(t, "on_disconnected")
            gen = self._bump()
        self.wait_committed(gen)

    def emit_reply(self, session, fn: Callable[[Any], None], arg: Any, async_call: bool = True) -> None:
        """Queue an async query answer behind the pushes already generated (same FIFO as the real wrapper)."""
        with self.lock:
            self._begin(async_call)
            self._pushes.append((session, self._nb, fn, arg))
            self._bump()

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


def _bad_code_text(code: Any) -> str:
    """Why a code has no quote: malformed (not six digits and an exchange), of no board of that exchange (999999.SH
    is well formed, but no SSE board starts 999), or a real board's code the simulator has no price for."""
    if not isinstance(code, str) or not R.CODE_RE.fullmatch(code):
        return f"malformed code {code!r}: six digits, a dot, SH/SZ/BJ"
    if R.classify(code) is None:
        return f"no security {code}: no board of {code[-2:]} has codes starting {code[:3]}"
    return f"unknown security code {code!r}: the simulator has no price for it (SimControl.set_price)"

"""The simulated broker: accounts, order book, matching, and the commit-then-push pipeline.

``Engine`` is this module's state, loading, prices, day boundaries and sessions; its other parts are modules of
their own: ``matching.py`` (orders, cancels, fills), ``delivery.py`` (group commit, then pushes), ``queries.py``
(xtquant objects and queries), ``faults.py`` (faults on demand), ``book.py`` (the records), ``refusals.py`` (error
ids and texts, also importable from here).

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
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import credit as C
from . import rules as R
from .config import SimConfig, shanghai_now
from .session import Session
from .store import Store
from .book import OPEN_STATUSES, Account, Order, Position, Quote
from .faults import Faults
from .delivery import Delivery
from .matching import Matching
from .queries import Queries
from .refusals import *  # noqa: F401,F403  the error ids and msg, still importable from here

_time = time.time


class Engine(Delivery, Matching, Queries):
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
    # clock
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

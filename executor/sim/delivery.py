"""The engine's commit-then-push pipeline: group commit of dirty rows, then pushes to each session in order."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from .objects import BUILDERS, GROUP
from .session import NOARG

log = logging.getLogger("executor.sim")


_DROP_KIND = {"on_stock_order": "order", "on_stock_trade": "trade", "on_stock_position": "position",
              "on_stock_asset": "asset"}


class Delivery:
    """Engine part: the committer thread and push emission (its state is set in Engine.__init__)."""

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

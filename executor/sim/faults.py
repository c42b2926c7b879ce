"""Faults on demand for the simulated MiniQMT: refusals, latency, dropped/delayed/reordered pushes, stale answers."""

from __future__ import annotations

import random
import threading
from typing import Any

from .book import OPEN_STATUSES
from .refusals import E_CANCEL_LATE, E_INJECTED, msg


class Faults:
    """Faults on demand (also reachable cross-process through ``SimControl``). Shared by all sessions on a path."""

    def __init__(self, engine: Any) -> None:
        # engine: the Engine (executor/sim/engine.py) that owns these faults; not imported, as the engine imports this
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
        """Push orders MiniQMT may produce (docs/architecture.md X7, X8): with
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
        """Push orders MiniQMT produces (docs/architecture.md X7: nothing orders answers and pushes), deterministic (``reorder_pushes`` is the
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
        working, as when the exchange refuses a cancel the counter had accepted."""
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

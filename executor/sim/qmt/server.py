"""The simulated MiniQMT: a process of its own serving the simulated accounts of one folder.

``QmtSimServer(path, config).start()`` (or ``xtqueue qmt-sim --path DIR``) runs the simulator engine
(``executor/sim/engine.py``: A-share rules, matching, SQLite durability in ``DIR``, faults, prices), its control
poller and price feeds, and accepts any number of sessions, from any number of processes, through the stand-in
binary (``xtpythonclient.py``). Each connection gets an engine ``Session`` (executor/sim/session.py: one delivery
thread, pushes after their commit, latency and reordering faults) whose sink forwards every push and answer to the
connection as the binding call the binary makes; every session subscribed to an account receives that account's
pushes, whoever placed the order; an error push goes to the session that sent the request only. Prices and faults
are set from any process with ``SimControl(DIR)`` (executor/sim/control.py).

One simulated MiniQMT per folder: the server holds a lock file in the folder for its life (``filelock``: the same
code on Linux and Windows); a second one on the same folder waits for it, then fails with ``FolderBusyError``.

Answers: orders and cancels are answered through the response push (``bindOnOrderStockRespCallback`` /
``bindOnCancelOrderStockRespCallback``) for sync and async calls alike, as the binary does (the wheel's sync
``order_stock`` waits for that push). Queries answer a list, or None where this MiniQMT has nothing: an account it
does not serve, an order id it does not know, a session that is not connected; with ``empty_as_none=True`` an
empty order/trade/position list is None too (docs/architecture.md X9).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from xtquant import xtconstant as xc
from xtquant import xttype as xt

from executor.sim.config import SimConfig
from executor.sim.control import ControlPoller
from executor.sim.credit import DIRECT_CASH_REPAY
from executor.sim.engine import Engine
from executor.sim.market import RandomWalk, replay_csv
from executor.sim.objects import SimXtAccountInfo
from executor.sim.session import Session

from . import other_calls
from .endpoint import hang_up, new_authkey, no_delay, remove_endpoint, write_endpoint
from .wire import ANSWER, CALLS, E_INTERNAL, E_NOT_CONNECTED, INTERNAL, NOT_CONNECTED, PROTOCOL, CppStruct, failed, refusal

log = logging.getLogger("executor.sim.qmt")

LOCK_FILE = "xtqueue-qmt-sim.lock"


class FolderBusyError(RuntimeError):
    """Another simulated MiniQMT serves this folder (it holds the folder's lock file)."""


def _kind(engine: Engine, account_id: str) -> int:
    """The xtconstant account type MiniQMT reports for an account: CREDIT for a margin account."""
    return xc.CREDIT_ACCOUNT if engine.credit.is_credit(account_id) else xc.SECURITY_ACCOUNT


class _Forward:
    """A session's sink: turns each push of the engine into the binding call the binary makes."""

    def __init__(self, conn: "_Connection") -> None:
        self._send = conn.send

    def on_stock_order(self, x: Any) -> None:
        self._send("bindOnStockOrderCallback", (x,))

    def on_stock_trade(self, x: Any) -> None:
        self._send("bindOnStockTradeCallback", (x,))

    def on_stock_position(self, x: Any) -> None:
        self._send("bindOnStockPositionCallback", (x,))

    def on_stock_asset(self, x: Any) -> None:
        self._send("bindOnStockAssetCallback", (x,))

    def on_order_error(self, x: Any) -> None:
        self._send("bindOnOrderErrorCallback", (x,))

    def on_cancel_error(self, x: Any) -> None:
        self._send("bindOnCancelErrorCallback", (x,))

    def on_disconnected(self) -> None:
        self._send("bindOnDisconnectedCallback", ())

    def on_account_status(self, x: Any) -> None:
        self._send("bindOnUpdateAccountStatusCallback",
                   (CppStruct(m_strAccountID=x.account_id, m_nAccountType=x.account_type, m_nStatus=x.status),))

    def on_order_stock_async_response(self, r: Any) -> None:
        self._send("bindOnOrderStockRespCallback",
                   (r.seq, CppStruct(m_strAccountID=r.account_id, m_nOrderID=r.order_id,
                                     m_strStrategyName=r.strategy_name, m_strOrderRemark=r.order_remark,
                                     m_strErrorMsg=r.error_msg)))

    def on_cancel_order_stock_async_response(self, r: Any) -> None:
        self._send("bindOnCancelOrderStockRespCallback",
                   (r.seq, CppStruct(m_strAccountID=r.account_id, m_nCancelResult=r.cancel_result,
                                     m_nOrderID=r.order_id, m_strOrderSysID=r.order_sysid,
                                     m_strErrorMsg=r.error_msg)))


class _Connection:
    """One connected stand-in client: its engine session and the thread reading its requests."""

    def __init__(self, server: "QmtSimServer", conn: Any) -> None:
        self.server = server
        self.engine: Engine = server.engine
        self.conn = conn
        self.session: Session | None = None
        self._send_lock = threading.Lock()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="qmt-sim-session", daemon=True)

    def send(self, binding: str, args: tuple) -> None:
        if self._closed:
            return
        try:
            with self._send_lock:
                self.conn.send(("cb", binding, args))
        except (OSError, ValueError, EOFError):
            self._closed = True  # the client went away; its requests loop ends on its own

    def close(self) -> None:
        self._closed = True
        hang_up(self.conn)

    def _run(self) -> None:
        try:
            kind, protocol, name = self.conn.recv()
            if kind != "hello" or protocol != PROTOCOL:
                self.conn.send(("hello", -1))
                return
            self._latency()
            session = Session(self.engine, str(name), _Forward(self))
            self.session = session
            rc = self.engine.attach(session)
            self.conn.send(("hello", rc))
            if rc != 0:
                return
            while True:
                msg = self.conn.recv()
                _, entry, seq, fields = msg
                handler = getattr(self, "_" + entry, None)
                if handler is None and entry in ANSWER:
                    handler = functools.partial(self._other_call, entry)
                if handler is None:
                    log.error("qmt-sim: unknown entry point %r from session %s", entry, name)
                    continue
                try:
                    handler(seq, fields)
                except (EOFError, OSError):
                    raise
                except Exception as exc:  # a simulator bug: answer the call (a sync caller must not hang), go on
                    log.exception("qmt-sim: %s failed for session %s; answered as failed", entry, name)
                    for binding, args in refusal(entry, seq, fields,
                                                 error=(E_INTERNAL, INTERNAL.format(E_INTERNAL, repr(exc)[:200]))):
                        self.send(binding, args)
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("qmt-sim: session failed")
        finally:
            self.close()
            if self.session is not None:
                self.engine.detach(self.session)
            self.server._forget(self)

    def _latency(self) -> None:
        ms = self.engine.faults.call_latency()
        if ms > 0:
            time.sleep(ms / 1000.0)

    def _ok(self) -> bool:
        s = self.session
        return s is not None and s.connected and not self._closed

    # --- entry points (names as in wire.CALLS) ---------------------------------------------------------
    def _reply(self, binding: str, seq: int, value: Any) -> None:
        # behind the pushes already generated, with the call latency fault applied (engine.emit_reply)
        self.engine.emit_reply(self.session, lambda v: self.send(binding, (seq, v)), value)

    def _answer_session_call(self, binding: str, seq: int, value: Any) -> None:
        # (un)subscribe: answered after the call latency only, not behind the push delay fault (delay_pushes slows
        # the account's pushes and the answers of orders, cancels and queries; a session can still subscribe)
        ms = self.engine.faults.call_latency()
        nb = time.monotonic() + ms / 1000.0 if ms > 0 else 0.0
        self.session.deliver([(nb, lambda v: self.send(binding, (seq, v)), value)])

    def _subscribeWithSeq(self, seq: int, f: dict) -> None:
        aid, eng = f.get("m_strAccountID", ""), self.engine
        with eng.lock:
            ok = self._ok() and aid in eng.accounts
            if ok:
                self.session.subs.add(aid)
                eng.invalidate_targets()
        if ok:
            # MiniQMT reports the account's login state to a subscribed session; the simulator's accounts are
            # logged in, so one on_account_status(ACCOUNT_STATUS_OK) follows a successful subscribe.
            self.session.deliver([(0, "on_account_status",
                                   xt.XtAccountStatus(aid, _kind(eng, aid), xc.ACCOUNT_STATUS_OK))])
        self._answer_session_call("bindOnSubscribeRespCallback", seq, 0 if ok else -1)

    def _unsubscribeWithSeq(self, seq: int, f: dict) -> None:
        aid, eng = f.get("m_strAccountID", ""), self.engine
        with eng.lock:
            ok = self._ok() and aid in self.session.subs
            if ok:
                self.session.subs.discard(aid)
                eng.invalidate_targets()
        self._answer_session_call("bindOnUnsubscribeRespCallback", seq, 0 if ok else -1)

    def _orderStockWithSeq(self, seq: int, f: dict) -> None:
        # a direct cash repayment's "volume" is yuan: the wheel sends it whole only in m_dOrderAmount (xtquant/xttrader.py)
        volume = f.get("m_dOrderAmount") if f["m_nOrderType"] in DIRECT_CASH_REPAY else f["m_nOrderVolume"]
        self.engine.place(self.session, f["m_strAccountID"], f["m_strStockCode"], f["m_nOrderType"],
                          volume, f["m_nPriceType"], f["m_dPrice"], f["m_strStrategyName"],
                          f["m_strOrderRemark"], seq, True)

    def _cancelOrderStockWithSeq(self, seq: int, f: dict) -> None:
        if f.get("m_strOrderSysID"):
            market = f["m_strMarket"] or f["m_nMarket"]
            self.engine.cancel(self.session, f["m_strAccountID"], None, market, f["m_strOrderSysID"], seq, True)
        else:
            self.engine.cancel(self.session, f["m_strAccountID"], f["m_nOrderID"], None, None, seq, True)

    def _query(self, binding: str, seq: int, fn: Any, listed: bool = True) -> None:
        value = fn() if self._ok() else None
        if listed and not value and self.server.empty_as_none:
            value = None
        self._reply(binding, seq, value)

    def _queryStockAssetWithSeq(self, seq: int, f: dict) -> None:
        e = self.engine
        self._query("bindOnQueryStockAssetCallback", seq,
                    lambda: (lambda a: [a] if a is not None else None)(e.q_asset(f["m_strAccountID"])), False)

    def _queryStockOrdersWithSeq(self, seq: int, f: dict) -> None:
        e, aid = self.engine, f["m_strAccountID"]
        if f.get("m_nOrderID"):
            self._query("bindOnQueryStockOrdersCallback", seq,
                        lambda: (lambda o: [o] if o is not None else None)(e.q_order(aid, f["m_nOrderID"])), False)
        else:
            self._query("bindOnQueryStockOrdersCallback", seq, lambda: e.q_orders(aid, bool(f.get("m_bCanCancel"))))

    def _queryStockTradesWithSeq(self, seq: int, f: dict) -> None:
        e = self.engine
        self._query("bindOnQueryStockTradesCallback", seq, lambda: e.q_trades(f["m_strAccountID"]))

    def _queryStockPositionsWithSeq(self, seq: int, f: dict) -> None:
        e, aid, code = self.engine, f["m_strAccountID"], f.get("m_strStockCode")
        if code:
            self._query("bindOnQueryStockPositionsCallback", seq,
                        lambda: (lambda p: [p] if p is not None else None)(e.q_position(aid, code)), False)
        else:
            self._query("bindOnQueryStockPositionsCallback", seq, lambda: e.q_positions(aid))

    def _queryAccountInfosWithSeq(self, seq: int, f: dict) -> None:
        e = self.engine
        self._query("bindOnQueryAccountInfosCallback", seq,
                    lambda: [SimXtAccountInfo(a, xc.ACCOUNT_STATUS_OK, _kind(e, a)) for a in e.accounts], False)

    def _queryAccountStatusWithSeq(self, seq: int, f: dict) -> None:
        e = self.engine
        self._query("bindOnQueryAccountStatusCallback", seq,
                    lambda: [xt.XtAccountStatus(a, _kind(e, a), xc.ACCOUNT_STATUS_OK) for a in e.accounts],
                    False)

    # --- entry points beyond stock trading: credit, IPO, transfers, smt, export, bank, CTP, smart algo ----------
    def _other_call(self, entry: str, seq: int, f: dict) -> None:
        value = other_calls.answer(self.engine, entry, f) if self._ok() else \
            failed(entry, f, NOT_CONNECTED.format(E_NOT_CONNECTED))
        self._reply(CALLS[entry][1], seq, value)


class QmtSimServer:
    """A simulated MiniQMT serving ``path``. ``start()`` returns once it accepts sessions; ``close()`` ends it.

    ``lock_timeout_s``: how long ``start()`` waits for another simulated MiniQMT on the folder to end (one that is
    shutting down, say) before it raises ``FolderBusyError``."""

    def __init__(self, path: str | Path, config: SimConfig | None = None, *, empty_as_none: bool = False,
                 host: str = "127.0.0.1", lock_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.config = config or SimConfig()
        self.empty_as_none = empty_as_none
        self._host = host
        self._lock_timeout_s = lock_timeout_s
        self._authkey = new_authkey()
        self._folder_lock: FileLock | None = None
        self._listener: Listener | None = None
        self._engine: Engine | None = None
        self._poller: ControlPoller | None = None
        self._feeds: list[RandomWalk] = []
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._accepter: threading.Thread | None = None

    @property
    def engine(self) -> Engine:
        """The simulator engine (in-process control for tests: ``set_price``, ``faults``, ``flush``, ...)."""
        if self._engine is None:
            raise RuntimeError("the simulated MiniQMT is not started")
        return self._engine

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.address

    def start(self) -> "QmtSimServer":
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK_FILE))
        try:
            lock.acquire(timeout=self._lock_timeout_s)
        except Timeout:
            raise FolderBusyError(f"another simulated MiniQMT serves {self.path} (it holds {LOCK_FILE})") from None
        self._folder_lock = lock
        try:
            self._engine = Engine(self.path, self.config)
            self._poller = ControlPoller(self._engine)
            self._poller.start()
            if self.config.random_walk is not None:
                self._feeds.append(RandomWalk(self._engine, self.config.random_walk).start())
            if self.config.replay_csv:
                replay_csv(self._engine, self.config.replay_csv)
            self._listener = Listener((self._host, 0), authkey=self._authkey)
        except BaseException:
            self._shutdown_engine()
            raise
        host, port = self._listener.address
        write_endpoint(self.path, host, port, self._authkey)
        self._accepter = threading.Thread(target=self._accept, name="qmt-sim-accept", daemon=True)
        self._accepter.start()
        return self

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn = self._listener.accept()
            except OSError:
                if self._closing:
                    return
                continue
            except Exception:  # a client without the key (AuthenticationError) or one that hung up mid-handshake
                continue
            if self._closing:
                conn.close()
                return
            no_delay(conn)
            c = _Connection(self, conn)
            with self._lock:
                self._conns.add(c)
            c.thread.start()

    def _forget(self, c: _Connection) -> None:
        with self._lock:
            self._conns.discard(c)

    def session_count(self) -> int:
        with self._lock:
            return len(self._conns)

    def close(self) -> None:
        if self._closing or self._listener is None:
            return
        self._closing = True
        remove_endpoint(self.path, self._authkey)
        # Wake the blocking accept() so its thread ends. From a thread of its own: an accepter that saw _closing
        # between two accepts has ended already, nobody answers the handshake, and Client() has no timeout (the
        # stop hung for good); closing the listener below ends that connection attempt.
        address, authkey = self._listener.address, self._authkey
        threading.Thread(target=_wake, args=(address, authkey), name="qmt-sim-wake", daemon=True).start()
        if self._accepter is not None:
            self._accepter.join(timeout=5)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        for c in conns:
            c.thread.join(timeout=10)
        self._shutdown_engine()

    def _shutdown_engine(self) -> None:
        for f in self._feeds:
            f.stop()
        if self._poller is not None:
            self._poller.stop()
        if self._engine is not None:
            self._engine.close()
        if self._poller is not None:
            self._poller.join(timeout=5)
        if self._folder_lock is not None:
            self._folder_lock.release()

    def __enter__(self) -> "QmtSimServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _wake(address: tuple[str, int], authkey: bytes) -> None:
    try:
        Client(address, authkey=authkey).close()
    except Exception:  # refused or reset: the accepter has ended and the listener is closed
        pass


def serve(path: str | Path, config: SimConfig | None = None, *, empty_as_none: bool = False,
          ready: Any = None, exit_on_stdin_eof: bool = False) -> None:
    """Run a simulated MiniQMT until SIGINT/SIGTERM (the ``xtqueue qmt-sim`` command).

    ``exit_on_stdin_eof``: also end when standard input reaches end of file. A parent that keeps the write end of
    a pipe to our stdin (and never writes) thereby takes this server down with it, however it ends: the system
    closes the pipe of a process that exits or is killed (SIGKILL, TerminateProcess), on Linux and Windows alike.
    """
    import signal
    import sys

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    if exit_on_stdin_eof:
        def lifeline() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()

        threading.Thread(target=lifeline, name="qmt-sim-lifeline", daemon=True).start()
    server = QmtSimServer(path, config, empty_as_none=empty_as_none).start()
    try:
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.close()

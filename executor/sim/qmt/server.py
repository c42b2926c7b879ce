"""The simulated MiniQMT: a process of its own serving the simulated accounts of one folder.

``QmtSimServer(path, config).start()`` (or ``xtqueue qmt-sim --path DIR``) runs the simulator engine
(``executor/sim/engine.py``: A-share rules, matching, SQLite durability in ``DIR``, faults, prices) and accepts any
number of sessions, from any number of processes, through the stand-in binary (``xtpythonclient.py``). Each
session is a ``SimXtQuantTrader`` of this process whose callback forwards every push and answer to its connection,
so everything the in-process simulator does (push order, group commit before any push, latency and reordering
faults, one callback thread per session) holds here unchanged, and every session subscribed to an account receives
that account's pushes, whoever placed the order. Prices and faults are set from any process with
``SimControl(DIR)`` (executor/sim/control.py), as for the in-process simulator.

Answers: orders and cancels are answered through the response push (``bindOnOrderStockRespCallback`` /
``bindOnCancelOrderStockRespCallback``) for sync and async calls alike, as the binary does (the wheel's sync
``order_stock`` waits for that push). Queries answer a list, or None where this MiniQMT has nothing: an account it
does not serve, an order id it does not know, a session that is not connected; with ``empty_as_none=True`` an
empty order/trade/position list is None too (the manual's "None = failed or no orders", reference §8.20).
"""

from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from executor.sim.config import SimConfig
from executor.sim.engine import acquire_engine, release_engine
from executor.sim.trader import SimXtQuantTrader

from .endpoint import hang_up, new_authkey, no_delay, remove_endpoint, write_endpoint
from .wire import PROTOCOL, CppStruct

log = logging.getLogger("executor.sim.qmt")


class _Account:
    """What SimXtQuantTrader reads of a StockAccount."""

    def __init__(self, account_id: str, account_type: int) -> None:
        self.account_id = account_id
        self.account_type = account_type


class _Forward:
    """The session's callback: turns each push of the simulator into the binding call the binary makes."""

    def __init__(self, session: "_Session") -> None:
        self._send = session.send

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


class _Session:
    """One connected stand-in client: its SimXtQuantTrader and the thread reading its requests."""

    def __init__(self, server: "QmtSimServer", conn: Any) -> None:
        self.server = server
        self.conn = conn
        self.trader: SimXtQuantTrader | None = None
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
            kind, protocol, session = self.conn.recv()
            if kind != "hello" or protocol != PROTOCOL:
                self.conn.send(("hello", -1))
                return
            trader = SimXtQuantTrader(str(self.server.path), session, _Forward(self))
            self.trader = trader
            trader.start()
            rc = trader.connect()
            self.conn.send(("hello", rc))
            if rc != 0:
                return
            while True:
                msg = self.conn.recv()
                _, entry, seq, fields = msg
                handler = getattr(self, "_" + entry, None)
                if handler is None:
                    log.error("qmt-sim: unknown entry point %r from session %s", entry, session)
                    continue
                handler(seq, fields)
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("qmt-sim: session failed")
        finally:
            self.close()
            if self.trader is not None:
                self.trader.stop()
            self.server._forget(self)

    # --- entry points (names as in wire.CALLS) ---------------------------------------------------------
    @staticmethod
    def _acct(fields: dict) -> _Account:
        return _Account(fields.get("m_strAccountID", ""), fields.get("m_nAccountType", 0))

    def _reply(self, binding: str, seq: int, value: Any) -> None:
        # behind the pushes already generated, with the call latency fault applied (engine.emit_reply)
        t = self.trader
        t.engine.emit_reply(t, lambda v: self.send(binding, (seq, v)), value)

    def _subscribeWithSeq(self, seq: int, f: dict) -> None:
        self._reply("bindOnSubscribeRespCallback", seq, self.trader.subscribe(self._acct(f)))

    def _unsubscribeWithSeq(self, seq: int, f: dict) -> None:
        self._reply("bindOnUnsubscribeRespCallback", seq, self.trader.unsubscribe(self._acct(f)))

    def _orderStockWithSeq(self, seq: int, f: dict) -> None:
        t = self.trader
        t.engine.place(t, f["m_strAccountID"], f["m_strStockCode"], f["m_nOrderType"], f["m_nOrderVolume"],
                       f["m_nPriceType"], f["m_dPrice"], f["m_strStrategyName"], f["m_strOrderRemark"], seq, True)

    def _cancelOrderStockWithSeq(self, seq: int, f: dict) -> None:
        t = self.trader
        if f.get("m_strOrderSysID"):
            market = f["m_strMarket"] or f["m_nMarket"]
            t.engine.cancel(t, f["m_strAccountID"], None, market, f["m_strOrderSysID"], seq, True)
        else:
            t.engine.cancel(t, f["m_strAccountID"], f["m_nOrderID"], None, None, seq, True)

    def _query(self, binding: str, seq: int, fn: Any, listed: bool = True) -> None:
        t = self.trader
        value = fn() if t._ok() else None
        if listed and not value and self.server.empty_as_none:
            value = None
        self._reply(binding, seq, value)

    def _queryStockAssetWithSeq(self, seq: int, f: dict) -> None:
        e = self.trader.engine
        self._query("bindOnQueryStockAssetCallback", seq,
                    lambda: (lambda a: [a] if a is not None else None)(e.q_asset(f["m_strAccountID"])), False)

    def _queryStockOrdersWithSeq(self, seq: int, f: dict) -> None:
        e, aid = self.trader.engine, f["m_strAccountID"]
        if f.get("m_nOrderID"):
            self._query("bindOnQueryStockOrdersCallback", seq,
                        lambda: (lambda o: [o] if o is not None else None)(e.q_order(aid, f["m_nOrderID"])), False)
        else:
            self._query("bindOnQueryStockOrdersCallback", seq, lambda: e.q_orders(aid, bool(f.get("m_bCanCancel"))))

    def _queryStockTradesWithSeq(self, seq: int, f: dict) -> None:
        e = self.trader.engine
        self._query("bindOnQueryStockTradesCallback", seq, lambda: e.q_trades(f["m_strAccountID"]))

    def _queryStockPositionsWithSeq(self, seq: int, f: dict) -> None:
        e, aid, code = self.trader.engine, f["m_strAccountID"], f.get("m_strStockCode")
        if code:
            self._query("bindOnQueryStockPositionsCallback", seq,
                        lambda: (lambda p: [p] if p is not None else None)(e.q_position(aid, code)), False)
        else:
            self._query("bindOnQueryStockPositionsCallback", seq, lambda: e.q_positions(aid))

    def _queryAccountInfosWithSeq(self, seq: int, f: dict) -> None:
        self._query("bindOnQueryAccountInfosCallback", seq, self.trader._account_infos, False)

    def _queryAccountStatusWithSeq(self, seq: int, f: dict) -> None:
        self._query("bindOnQueryAccountStatusCallback", seq, self.trader._account_status, False)


class QmtSimServer:
    """A simulated MiniQMT serving ``path``. ``start()`` returns once it accepts sessions; ``close()`` ends it."""

    def __init__(self, path: str | Path, config: SimConfig | None = None, *, empty_as_none: bool = False,
                 host: str = "127.0.0.1") -> None:
        self.path = Path(path)
        self.config = config or SimConfig()
        self.empty_as_none = empty_as_none
        self._host = host
        self._authkey = new_authkey()
        self._listener: Listener | None = None
        self._engine: Any = None
        self._sessions: set[_Session] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._accepter: threading.Thread | None = None

    @property
    def engine(self) -> Any:
        return self._engine

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.address

    def start(self) -> "QmtSimServer":
        self.path.mkdir(parents=True, exist_ok=True)
        self._engine = acquire_engine(self.path, self.config)  # held for the server's life: the first config wins
        self._listener = Listener((self._host, 0), authkey=self._authkey)
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
            s = _Session(self, conn)
            with self._lock:
                self._sessions.add(s)
            s.thread.start()

    def _forget(self, s: _Session) -> None:
        with self._lock:
            self._sessions.discard(s)

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        if self._closing or self._listener is None:
            return
        self._closing = True
        remove_endpoint(self.path, self._authkey)
        try:  # wake the blocking accept() so its thread ends
            Client(self._listener.address, authkey=self._authkey).close()
        except Exception:
            pass
        self._listener.close()
        if self._accepter is not None:
            self._accepter.join(timeout=5)
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        for s in sessions:
            s.thread.join(timeout=10)
        release_engine(self._engine)

    def __enter__(self) -> "QmtSimServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(path: str | Path, config: SimConfig | None = None, *, empty_as_none: bool = False,
          ready: Any = None) -> None:
    """Run a simulated MiniQMT until SIGINT/SIGTERM (the ``xtqueue qmt-sim`` command)."""
    import signal

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    server = QmtSimServer(path, config, empty_as_none=empty_as_none).start()
    try:
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.close()

"""A stand-in for xtquant's Windows binary module ``xtquant.xtpythonclient`` (see ``install.py``).

Loaded under the name ``xtquant.xtpythonclient`` only where the real binary cannot load, it lets the wheel's own,
unmodified ``xtquant/xttrader.py`` run on Linux against a simulated MiniQMT (``server.py``). It implements exactly
what ``XtQuantTrader`` uses for stock accounts: the client's lifecycle (``init``/``start``/``stop``/``connect``/
``setTimeout``/``nextSeq``), every ``bindOn...Callback`` the constructor calls, and the entry points listed in
``wire.CALLS`` with their request structs. Anything else the wheel reaches for (credit, IPO, transfers, smt,
export, smart algo) raises ``MissingEntryPoint`` naming it: a newer wheel, or a method not simulated yet, fails
loudly instead of hanging on an answer that never comes.

Like the binary, every call is asynchronous: it sends the request and returns; the answer comes back later through
the callback the wheel bound for it (``bindOnOrderStockRespCallback(seq, resp)``, ...), called on this client's
own reader thread. The wheel then hands it to its executors; that is where its real threading behaviour
(single push thread, sync calls inside a callback never returning) comes from.

Request structs are typed like C++ fields: ``m_n*`` take integers (``operator.index``: ints, numpy ints, bools;
never floats or strings), ``m_d*`` take what converts to a C double without parsing (numbers, numpy numbers; not
strings), ``m_str*`` take ``str``, ``m_b*`` take bools. A wrong type raises ``TypeError`` when the wheel assigns it,
before anything is sent. (The real binary's exact conversions are unverified; refusing is the safe direction: a
program refused here is not one that fails only in production.)
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import threading
from multiprocessing.connection import Client
from typing import Any

from executor.sim.qmt.endpoint import hang_up, no_delay, read_endpoint
from executor.sim.qmt.install import PATH_ENV
from executor.sim.qmt.wire import CALLS, PROTOCOL, refusal

log = logging.getLogger("executor.sim.qmt")

WHEEL_VERSION = "xtquant_250807"  # the wheel this stand-in was written against (xtquant/__init__.py __version__)


class MissingEntryPoint(NotImplementedError):
    """The wheel called something this stand-in does not implement."""

    def __init__(self, what: str) -> None:
        super().__init__(f"xtquant.xtpythonclient stand-in (xtqueue, written for {WHEEL_VERSION}): {what} is not "
                         "implemented; see executor/sim/README.md (Simulated MiniQMT)")


# --- request structs ----------------------------------------------------------------------------------------------
def _as_int(v: Any) -> int:
    return operator.index(v)


def _as_double(v: Any) -> float:
    if isinstance(v, (str, bytes)):
        raise TypeError(f"a C double field does not take {type(v).__name__} {v!r}")
    return float(v)


def _as_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if not isinstance(v, str):
        raise TypeError(f"a C string field does not take {type(v).__name__} {v!r}")
    return v


def _as_bool(v: Any) -> bool:
    return bool(operator.index(v))


_CONVERT = {"m_n": _as_int, "m_d": _as_double, "m_s": _as_str, "m_b": _as_bool}
_DEFAULT = {"m_n": 0, "m_d": 0.0, "m_s": "", "m_b": False}

_ACCOUNT = ("m_nAccountType", "m_strAccountID")
_STRUCTS: dict[str, tuple[str, ...]] = {
    "SubscribeReq": _ACCOUNT,
    "UnsubscribeReq": _ACCOUNT,
    "OrderStockReq": _ACCOUNT + ("m_strStockCode", "m_nOrderType", "m_nOrderVolume", "m_nPriceType", "m_dPrice",
                                 "m_strStrategyName", "m_strOrderRemark", "m_strOrderRemarkNew", "m_dOrderAmount",
                                 "m_strStockCode1", "m_strAccountID1"),
    "CancelOrderStockReq": _ACCOUNT + ("m_nOrderID", "m_strMarket", "m_nMarket", "m_strOrderSysID"),
    "QueryStockAssetReq": _ACCOUNT,
    "QueryStockOrdersReq": _ACCOUNT + ("m_nOrderID", "m_bCanCancel"),
    "QueryStockTradesReq": _ACCOUNT,
    "QueryStockPositionsReq": _ACCOUNT + ("m_strStockCode", "m_strStockCode1"),
    "QueryAccountInfosReq": (),
    "QueryAccountStatusReq": (),
}


class _Struct:
    _fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        for f in self._fields:
            object.__setattr__(self, f, _DEFAULT[f[:3]])
        object.__setattr__(self, "_set", set())

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            raise MissingEntryPoint(f"field {type(self).__name__}.{name}")
        object.__setattr__(self, name, _CONVERT[name[:3]](value))
        self._set.add(name)

    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._fields}


def _struct(name: str, fields: tuple[str, ...]) -> type:
    return type(name, (_Struct,), {"_fields": fields, "__module__": __name__, "__slots__": ()})


for _name, _fields in _STRUCTS.items():
    globals()[_name] = _struct(_name, _fields)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # import machinery probes (__path__, ...): a plain "not there"
        raise AttributeError(name)
    raise MissingEntryPoint(f"xtpythonclient.{name}")


# --- the client -------------------------------------------------------------------------------------------------
#: every binding XtQuantTrader.__init__ makes (xtquant/xttrader.py); binding anything else fails loudly
BINDINGS = frozenset({
    "bindOnSubscribeRespCallback", "bindOnUnsubscribeRespCallback", "bindOnQueryStockAssetCallback",
    "bindOnQueryStockOrdersCallback", "bindOnQueryStockTradesCallback", "bindOnQueryStockPositionsCallback",
    "bindOnQueryCreditDetailRespCallback", "bindOnQueryStkCompactsRespCallback",
    "bindOnQueryCreditSubjectsRespCallback", "bindOnQueryCreditSloCodeRespCallback",
    "bindOnQueryCreditAssureRespCallback", "bindOnQueryNewPurchaseLimitCallback", "bindOnQueryIPODataCallback",
    "bindOnTransferRespCallback", "bindOnQueryComFundRespCallback", "bindOnSmtQueryQuoterRespCallback",
    "bindOnSmtQueryOrderRespCallback", "bindOnSmtQueryCompactRespCallback",
    "bindOnQueryPositionStatisticsRespCallback", "bindOnExportDataRespCallback",
    "bindOnSyncTransactionFromExternalRespCallback", "bindOnBankTransferRespCallback",
    "bindOnQueryBankInfoRespCallback", "bindOnQueryBankAmountRespCallback",
    "bindOnQueryBankTransferStreamRespCallback", "bindOnQuerySecuAccountRespCallback",
    "bindOnCtpInternalTransferRespCallback", "bindOnGetSmartAlgoParamRespCallback",
    "bindOnSmartOrderStockRespCallback", "bindOnQuerySmartAlgoTaskRespCallback",
    "bindOnOperateSmartAlgoTaskRespCallback", "bindOnQueryAccountInfosCallback", "bindOnQueryAccountStatusCallback",
    "bindOnOrderStockRespCallback", "bindOnCancelOrderStockRespCallback", "bindOnDisconnectedCallback",
    "bindOnUpdateAccountStatusCallback", "bindOnStockAssetCallback", "bindOnStockOrderCallback",
    "bindOnStockTradeCallback", "bindOnStockPositionCallback", "bindOnOrderErrorCallback",
    "bindOnCancelErrorCallback", "bindOnSmtAppointmentRespCallback",
})


class XtQuantAsyncClient:
    def __init__(self, path: bytes, name: str, session: int) -> None:
        # the wheel passes path.encode('gb18030') (xtquant/xttrader.py, XtQuantTrader.__init__)
        self._path = path.decode("gb18030") if isinstance(path, bytes) else str(path)
        if os.environ.get(PATH_ENV):  # xtqueue run --qmt-sim DIR: DIR, whatever path the program passes
            self._path = os.environ[PATH_ENV]
        self._name = name
        self._session = session
        self._binds: dict[str, Any] = {}
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._conn: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._timeout = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingEntryPoint(f"XtQuantAsyncClient.{name}")

    # lifecycle
    def init(self) -> int:
        return 0

    def start(self) -> int:
        return 0

    def stop(self) -> int:
        self._stopping = True
        conn, self._conn = self._conn, None
        if conn is not None:
            hang_up(conn)
        return 0

    def setTimeout(self, timeout: Any = 0) -> None:
        self._timeout = timeout  # unit and effect unknown for the binary (reference §1.4): recorded only

    def nextSeq(self) -> int:
        with self._seq_lock:
            return next(self._seq)

    def connect(self) -> int:
        """0 when a simulated MiniQMT serves the path and accepts the session; -1 otherwise."""
        if self._conn is not None:
            return 0
        found = read_endpoint(self._path)
        if found is None:
            return -1
        address, authkey = found
        try:
            conn = Client(address, authkey=authkey)
        except Exception:  # refused, reset, or a stale endpoint file left by a killed server
            return -1
        no_delay(conn)
        try:
            conn.send(("hello", PROTOCOL, int(self._session)))
            kind, rc = conn.recv()
        except Exception:
            conn.close()
            return -1
        if kind != "hello" or rc != 0:
            conn.close()
            return -1 if rc == 0 else rc
        self._stopping = False
        self._conn = conn
        self._reader = threading.Thread(target=self._read, args=(conn,), name=f"xtpythonclient-{self._session}",
                                        daemon=True)
        self._reader.start()
        return 0

    # the answer path: the reader thread calls what the wheel bound, in arrival order
    def _read(self, conn: Any) -> None:
        while True:
            try:
                msg = conn.recv()
            except Exception:  # EOF, reset, or stop() closed the connection under this recv (its handle is gone)
                break
            try:
                _, binding, args = msg
                self._fire(binding, args)
            except Exception:  # the binary's thread survives a raising binding; keep ours alive too
                log.exception("xtpythonclient stand-in: binding %s raised", msg[1] if len(msg) > 1 else msg)
        if not self._stopping:  # MiniQMT went away: the one-shot link is dead (reference §8.1-8.3)
            self._conn = None
            self._fire("bindOnDisconnectedCallback", ())

    def _fire(self, binding: str, args: tuple) -> None:
        fn = self._binds.get(binding)
        if fn is not None:
            fn(*args)

    def _call(self, entry: str, seq: int, req: Any) -> None:
        struct, _ = CALLS[entry]
        if type(req).__name__ != struct or not isinstance(req, _Struct):
            raise TypeError(f"{entry} takes a {struct}, not {type(req).__name__}")
        seq = _as_int(seq)
        fields = req.fields()
        conn = self._conn
        if conn is not None:
            try:
                with self._send_lock:
                    conn.send(("call", entry, seq, fields))
                return
            except (OSError, ValueError):
                pass  # the link is gone: answered below like any call on a dead link
        for binding, args in refusal(entry, seq, fields):
            self._fire(binding, args)


def _binder(name: str):
    def bind(self: XtQuantAsyncClient, callback: Any) -> None:
        self._binds[name] = callback
    bind.__name__ = name
    return bind


def _caller(name: str):
    def call(self: XtQuantAsyncClient, seq: int, req: Any) -> None:
        self._call(name, seq, req)
    call.__name__ = name
    return call


for _name in BINDINGS:
    setattr(XtQuantAsyncClient, _name, _binder(_name))
for _name in CALLS:
    setattr(XtQuantAsyncClient, _name, _caller(_name))
del _name, _fields

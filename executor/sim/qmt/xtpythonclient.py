"""A stand-in for xtquant's Windows binary module ``xtquant.xtpythonclient`` (see ``install.py``).

Loaded under the name ``xtquant.xtpythonclient`` only where the real binary cannot load, it lets the wheel's own,
unmodified ``xtquant/xttrader.py`` run on Linux against a simulated MiniQMT (``server.py``). It implements exactly
what ``XtQuantTrader`` uses for stock accounts: the client's lifecycle (``init``/``start``/``stop``/``connect``/
``setTimeout``/``nextSeq``), every ``bindOn...Callback`` the constructor calls, and every entry point the pinned
wheel's xttrader.py calls (``wire.CALLS``: stock trading, credit, IPO, transfers, smt, export, bank, smart algo)
with their request structs. Anything else (a newer wheel's new call, a struct field this one does not have)
raises ``MissingEntryPoint`` naming it: it fails loudly instead of hanging on an answer that never comes.

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
# the bank/CTP structs name their fields without the m_ type prefix (xtquant/xttrader.py bank_transfer_in, ...)
_PLAIN = {"account_type": "m_n", "account_id": "m_s", "fund_pwd": "m_s", "direction": "m_n", "bank_account": "m_s",
          "bank_no": "m_s", "bank_pwd": "m_s", "balance": "m_d", "start_date": "m_s", "end_date": "m_s",
          "opt_account_id": "m_s", "ft_account_id": "m_s"}


def _kind(field: str) -> str:
    return _PLAIN.get(field) or field[:3]


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
    "QueryCreditDetailReq": _ACCOUNT,
    "QueryStkCompactsReq": _ACCOUNT,
    "QueryCreditSubjectsReq": _ACCOUNT,
    "QueryCreditSloCodeReq": _ACCOUNT,
    "QueryCreditAssureReq": _ACCOUNT,
    "QueryNewPurchaseLimitReq": _ACCOUNT,
    "QueryIPODataReq": ("m_strIPOType",),
    "TransferParam": _ACCOUNT + ("m_nOrderType", "m_dPrice", "m_strStockCode", "m_nOrderVolume",
                                 "m_nCreditTransferType", "m_strStockCode1"),
    "QueryComFundReq": _ACCOUNT,
    "QueryComPositionReq": _ACCOUNT,
    "SmtQueryQuoterReq": _ACCOUNT,
    "SmtNegotiateOrderReq": _ACCOUNT + ("m_strSrcGroupID", "m_strOrderCode", "m_nDate", "m_nAmount", "m_dApplyRate",
                                        "m_dSubFareRate", "m_dFineRate"),
    "SmtAppointmentOrderReq": _ACCOUNT + ("m_strOrderCode", "m_nDate", "m_nAmount", "m_dApplyRate"),
    "SmtAppointmentCancelReq": _ACCOUNT + ("m_strApplyId",),
    "SmtQueryOrderReq": _ACCOUNT,
    "SmtQueryCompactReq": _ACCOUNT,
    "SmtCompactRenewalReq": _ACCOUNT + ("m_strCompactId", "m_strOrderCode", "m_nDeferDays", "m_nDeferNum",
                                        "m_dApplyRate"),
    "SmtCompactReturnReq": _ACCOUNT + ("m_strSrcGroupId", "m_strCompactId", "m_strOrderCode", "m_nOccurAmount"),
    "QueryPositionStatisticsReq": _ACCOUNT,
    "BankTransferReq": ("account_type", "account_id", "fund_pwd", "direction", "bank_account", "bank_no", "bank_pwd",
                        "balance"),
    "QueryBankInfoReq": ("account_type", "account_id"),
    "QueryBankAmountReq": ("account_type", "account_id", "bank_no", "bank_account", "bank_pwd"),
    "QueryBankTransferStreamReq": ("account_type", "account_id", "start_date", "end_date", "bank_no", "bank_account"),
    "QuerySecuAccountReq": ("account_type", "account_id"),
    "CtpInternalTransferReq": ("opt_account_id", "ft_account_id", "direction", "balance"),
    "OperateSmartAlgoTaskReq": _ACCOUNT + ("m_nTaskId", "m_nOperateType"),
}


class _Struct:
    _fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        for f in self._fields:
            object.__setattr__(self, f, _DEFAULT[_kind(f)])
        object.__setattr__(self, "_set", set())

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            raise MissingEntryPoint(f"field {type(self).__name__}.{name}")
        object.__setattr__(self, name, _CONVERT[_kind(name)](value))
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
        self._timeout = timeout  # unit and effect unknown for the binary: recorded only

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
        if not self._stopping:  # MiniQMT went away: the one-shot link is dead (docs/architecture.md X5)
            self._conn = None
            self._fire("bindOnDisconnectedCallback", ())

    def _fire(self, binding: str, args: tuple) -> None:
        fn = self._binds.get(binding)
        if fn is not None:
            fn(*args)

    def _call(self, entry: str, seq: int, *args: Any) -> None:
        struct, _ = CALLS[entry]
        if struct is None:
            fields = {"args": [_raw(entry, a) for a in args]}
        else:
            (req,) = args
            if type(req).__name__ != struct or not isinstance(req, _Struct):
                raise TypeError(f"{entry} takes a {struct}, not {type(req).__name__}")
            fields = req.fields()
        seq = _as_int(seq)
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


def _raw(entry: str, a: Any) -> Any:
    """A raw argument (export_data, smart algo, ...): BSON documents are decoded here, so a malformed one fails at the
    call, before anything is sent; lists (of BSON documents or of names) element by element."""
    if isinstance(a, (bytes, bytearray)):
        from xtquant import xtbson

        return xtbson.BSON(bytes(a)).decode()
    if isinstance(a, (list, tuple)):
        return [_raw(entry, x) for x in a]
    if isinstance(a, str):
        return a
    raise TypeError(f"{entry} does not take {type(a).__name__} {a!r}")


def _binder(name: str):
    def bind(self: XtQuantAsyncClient, callback: Any) -> None:
        self._binds[name] = callback
    bind.__name__ = name
    return bind


def _caller(name: str):
    def call(self: XtQuantAsyncClient, seq: int, *args: Any) -> None:
        self._call(name, seq, *args)
    call.__name__ = name
    return call


for _name in BINDINGS:
    setattr(XtQuantAsyncClient, _name, _binder(_name))
for _name in CALLS:
    setattr(XtQuantAsyncClient, _name, _caller(_name))
del _name, _fields

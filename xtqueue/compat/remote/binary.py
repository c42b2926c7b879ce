"""A stand-in for xtquant's Windows binary ``xtquant.xtpythonclient`` whose far side is xtqueue (see ``install``).

Loaded under the name ``xtquant.xtpythonclient`` (never imported under its own name), it lets the wheel's own,
unmodified ``xtquant.xttrader.XtQuantTrader`` trade a real MiniQMT on Windows through the account's xtqueue
executor. Same shape as the simulated MiniQMT's stand-in (``executor/sim/qmt/xtpythonclient.py``, whose typed
request structs it uses): the client's lifecycle, every ``bindOn...Callback`` the constructor makes, and the entry
points of ``executor.sim.qmt.wire.CALLS``; the work is done by ``session.RemoteSession``.

``connect()`` reads the settings (``settings.py``: ``<path>/xtqueue-remote.toml``, then the environment), asks the
executor whether it runs and has MiniQMT, and returns 0, or -1 as the binary does when MiniQMT cannot be reached.

Credit (两融) accounts are served: orders of the credit order types and the five credit queries, with the
account's type checked against the one the executor trades (``credit.py``). What the executor does not serve
(IPO, fund/stock transfers, bank, SMT, export, smart algo: the request structs and entry points of ``UNSERVED``)
fails as xtquant fails when its binary lacks an entry point: the wheel's
call raises ``AttributeError`` (here ``NotServed``, also a ``NotImplementedError``) naming it, before anything is
sent. Never a silent answer.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

from executor.sim.qmt import xtpythonclient as _sim
from executor.sim.qmt.wire import CALLS, refusal
from xtqueue.compat.remote.session import RemoteSession
from xtqueue.compat.remote.settings import SettingsError, load_settings

log = logging.getLogger("xtqueue.compat.remote")

STAND_IN = "xtqueue-remote"  # is_remote(): this module's marker

#: entry points of the wheel (xtquant/xttrader.py) the executor does not serve, with the XtQuantTrader methods
UNSERVED: dict[str, str] = {
    "queryNewPurchaseLimitWithSeq": "query_new_purchase_limit(_async)",
    "queryIPODataWithSeq": "query_ipo_data(_async)",
    "transferWithSeq": "fund_transfer, secu_transfer",
    "queryComFundWithSeq": "query_com_fund",
    "queryComPositionWithSeq": "query_com_position",
    "queryPositionStatisticsWithSeq": "query_position_statistics",
    "exportDataWithSeq": "export_data, query_data",
    "syncTransactionFromExternalWithSeq": "sync_transaction_from_external",
    "bankTransferWithSeq": "bank_transfer_in/out(_async)",
    "queryBankInfoWithSeq": "query_bank_info",
    "queryBankAmountWithSeq": "query_bank_amount",
    "queryBankTransferStreamWithSeq": "query_bank_transfer_stream",
    "querySecuAccountWithSeq": "query_secu_account",
    "ctpInternalTransferWithSeq": "ctp_transfer_option_to_future/future_to_option(_async)",
    "smtQueryQuoterWithSeq": "smt_query_quoter",
    "smtNegotiateOrderWithSeq": "smt_negotiate_order_async",
    "smtAppointmentOrderWithSeq": "smt_appointment_order_async",
    "smtAppointmentCancelWithSeq": "smt_appointment_cancel_async",
    "smtQueryOrderWithSeq": "smt_query_order",
    "smtQueryCompactWithSeq": "smt_query_compact",
    "smtCompactRenewalWithSeq": "smt_compact_renewal_async",
    "smtCompactReturnWithSeq": "smt_compact_return_async",
    "getSmartAlgoParamWithSeq": "get_smart_algo_param",
    "smartOrderStockWithSeq": "smart_algo_order_async",
    "querySmartAlgoTaskWithSeq": "query_smart_algo_task",
    "operateSmartAlgoTaskWithSeq": "cancel_smart_algo_task_async",
}


class NotServed(AttributeError, NotImplementedError):
    """The program called something of xtquant the xtqueue executor does not serve (see ``UNSERVED``)."""

    def __init__(self, what: str) -> None:
        method = UNSERVED.get(what) or UNSERVED.get(_entry_of_struct(what))
        super().__init__(
            f"xtquant.xtpythonclient (xtqueue remote) has no {what}"
            + (f": XtQuantTrader.{method} is not served by the xtqueue executor" if method else "")
            + " (served: stock and credit orders and cancels, sync and async, the stock asset, order, trade, "
              "position and account queries, and the five credit queries); see README 'Run your xtquant program "
              "unchanged'")


def _entry_of_struct(name: str) -> str:
    """The entry point a request struct is built for, by the binary's naming (QueryCreditDetailReq ->
    queryCreditDetailWithSeq, TransferParam -> transferWithSeq)."""
    stem = name.removesuffix("Req").removesuffix("Param")
    return stem[:1].lower() + stem[1:] + "WithSeq"


# the request structs the wheel builds for the served entry points (typed like C++ fields): the simulated
# MiniQMT's stand-in defines them once
for _name in _sim._STRUCTS:
    if _entry_of_struct(_name) not in UNSERVED:  # the simulated MiniQMT's stand-in also has the unserved ones
        globals()[_name] = getattr(_sim, _name)
del _name


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotServed(name)


class XtQuantAsyncClient:
    def __init__(self, path: bytes, name: str, session: int) -> None:
        # the wheel passes path.encode('gb18030') (xtquant/xttrader.py, XtQuantTrader.__init__)
        self._path = path.decode("gb18030") if isinstance(path, bytes) else str(path)
        self._name = name
        self._session_id = session
        self._binds: dict[str, Any] = {}
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._link: RemoteSession | None = None
        self._timeout = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotServed(name)

    # lifecycle
    def init(self) -> int:
        return 0

    def start(self) -> int:
        return 0

    def stop(self) -> int:
        link, self._link = self._link, None
        if link is not None:
            link.close()
        return 0

    def setTimeout(self, timeout: Any = 0) -> None:
        self._timeout = timeout  # unit and effect unknown for the binary: recorded only

    def nextSeq(self) -> int:
        with self._seq_lock:
            return next(self._seq)

    def connect(self) -> int:
        """0 when the account's executor answers and is connected to MiniQMT; -1 otherwise (reason logged)."""
        if self._link is not None and self._link.alive:
            return 0
        try:
            settings = load_settings(self._path)
        except SettingsError as exc:
            log.warning("xtqueue remote: connect() failed: %s", exc)
            return -1
        link = RemoteSession(settings, self._fire)
        if link.connect() != 0:
            return -1
        self._link = link
        return 0

    def _fire(self, binding: str, args: tuple) -> None:
        fn = self._binds.get(binding)
        if fn is not None:
            fn(*args)

    def _call(self, entry: str, seq: int, req: Any) -> None:
        struct, _ = CALLS[entry]
        if type(req).__name__ != struct or not isinstance(req, _sim._Struct):
            raise TypeError(f"{entry} takes a {struct}, not {type(req).__name__}")
        seq = _sim._as_int(seq)
        fields = req.fields()
        link = self._link
        if link is not None and link.call(entry, seq, fields):
            return
        for binding, args in refusal(entry, seq, fields):  # never connected, stopped, or the link is dead
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


for _name in _sim.BINDINGS:
    setattr(XtQuantAsyncClient, _name, _binder(_name))
for _name in CALLS:
    if _name not in UNSERVED:
        setattr(XtQuantAsyncClient, _name, _caller(_name))
del _name

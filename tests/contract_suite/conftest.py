"""Builds the XtQuantTrader under test: always the wheel's own class; by default over the stand-in binary on a
simulated MiniQMT (executor/sim/qmt), on Windows over the real binary and MiniQMT when XTQUEUE_QMT_PATH and
XTQUEUE_QMT_ACCOUNT are set (see README.md here)."""

from __future__ import annotations

import os
import random
import sys
import threading

import pytest

REAL = sys.platform == "win32" and bool(os.environ.get("XTQUEUE_QMT_PATH")) and \
    bool(os.environ.get("XTQUEUE_QMT_ACCOUNT"))


class ContractRecorder:
    """An XtQuantTraderCallback-compatible recorder (xttrader cannot be imported on Linux)."""

    NAMES = ("on_connected", "on_disconnected", "on_account_status", "on_stock_asset", "on_stock_order",
             "on_stock_trade", "on_stock_position", "on_order_error", "on_cancel_error",
             "on_order_stock_async_response", "on_cancel_order_stock_async_response")

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.cond = threading.Condition()
        for n in self.NAMES:
            setattr(self, n, self._make(n))

    def _make(self, name):
        def cb(*args):
            with self.cond:
                self.events.append((name, args[0] if args else None))
                self.cond.notify_all()
        return cb

    def wait_for(self, pred, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.events), timeout)


class Venue:
    """What a contract case needs: the trader, its recorder, the account and a resting price."""

    def __init__(self, trader, rec, account, code: str, rest_buy_price: float, real: bool) -> None:
        self.trader, self.rec, self.account, self.code, self.rest_buy_price, self.real = \
            trader, rec, account, code, rest_buy_price, real


def _build(tmp_path):
    from xtquant import xttype

    rec = ContractRecorder()
    server = None
    if REAL:
        from xtquant.xttrader import XtQuantTrader  # Windows only

        trader = XtQuantTrader(os.environ["XTQUEUE_QMT_PATH"], random.randint(100000, 999999), rec)
        account = xttype.StockAccount(os.environ["XTQUEUE_QMT_ACCOUNT"])
        code = os.environ.get("XTQUEUE_QMT_CODE", "600000.SH")
        # a limit buy far below the market but inside the daily band: rests, never fills
        rest = float(os.environ.get("XTQUEUE_QMT_REST_PRICE", "0"))
    else:  # the wheel's own class over the stand-in binary, on a simulated MiniQMT in a thread of this process
        from executor.sim.qmt import QmtSimServer, install

        server = QmtSimServer(tmp_path / "userdata_mini").start()
        install()
        from xtquant.xttrader import XtQuantTrader

        trader = XtQuantTrader(str(server.path), 101, rec)
        assert type(trader).__module__ == "xtquant.xttrader"
        account = xttype.StockAccount("SIM001")
        code, rest = "600000.SH", 9.01  # prev close 10.00, limit down 9.00
    trader.start()
    assert trader.connect() == 0
    assert trader.subscribe(account) == 0
    if REAL and rest <= 0:
        pytest.skip("set XTQUEUE_QMT_REST_PRICE to a price inside the band but far below the market")
    v = Venue(trader, rec, account, code, rest, REAL)
    v.server = server
    return v


@pytest.fixture(params=["real"] if REAL else ["qmt-sim"])
def venue(tmp_path, request):
    if REAL:
        request.applymarker(pytest.mark.qmt)
    request.getfixturevalue("wheel_loop")  # the wheel's own class is built here (tests/conftest.py::wheel_loop)
    v = _build(tmp_path)
    yield v
    try:
        orders = v.trader.query_stock_orders(v.account, True) or []
        for o in orders:  # never leave a resting order behind on a real account
            if o.order_remark.startswith("xtq-ct"):
                v.trader.cancel_order_stock(v.account, o.order_id)
    finally:
        v.trader.stop()
        if v.server is not None:
            v.server.close()


def pytest_collection_modifyitems(config, items):
    if REAL:
        for item in items:
            if "contract_suite" in str(item.fspath):
                item.add_marker(pytest.mark.qmt)

"""Behaviours of the real class that the in-process twin (executor/sim/trader.py, removed since: issue #11) did not have, each
shown on the wheel's own XtQuantTrader over the simulated MiniQMT. Counts come from MiniQMT's own records."""

from __future__ import annotations

import threading

import pytest
from qmt_helpers import WAIT, Recorder, StockAccount, unwedge, xc

from xtquant.xtpythonclient import MissingEntryPoint  # the stand-in, as the wheel loaded it

ACC = StockAccount("SIM001")
HANG_BOUND = 2.0  # how long a call that can never return is watched before the test says so


class NumpyLikeInt:
    """What numpy.int64 offers the wheel (int(), index, float), for machines without numpy."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __int__(self) -> int:
        return self.v

    def __index__(self) -> int:
        return self.v

    def __float__(self) -> float:
        return float(self.v)


def _volumes():
    yield pytest.param(NumpyLikeInt(100), id="numpy-like-int")
    yield pytest.param(100.9, id="float-100.9")
    try:
        import numpy
    except ImportError:
        return
    yield pytest.param(numpy.int64(100), id="numpy.int64")


@pytest.mark.parametrize("volume", list(_volumes()))
def test_the_wheel_converts_the_volume_with_int(qmt, connect, volume):
    _, ctl = qmt
    trader, rec = connect()
    oid = trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, volume, xc.FIX_PRICE, 10.00, "", "vol")
    assert oid > 0
    assert [r["order_volume"] for r in ctl.orders("SIM001")] == [100]


def test_a_string_volume_is_refused_before_anything_is_sent(qmt, connect):
    # int("100") passes, but the wheel also assigns the raw value to the double field m_dOrderAmount; a C double
    # field does not take a str (executor/sim/qmt/xtpythonclient.py). Unverified on the binary: the safe direction.
    _, ctl = qmt
    trader, rec = connect()
    with pytest.raises(TypeError):
        trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, "100", xc.FIX_PRICE, 10.00)
    trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "marker")
    assert [r["order_remark"] for r in ctl.orders("SIM001")] == ["marker"]


def test_order_stock_async_without_a_callback_raises_and_sends_nothing(qmt, connect):
    _, ctl = qmt
    trader, _ = connect(callback=None)
    with pytest.raises(AttributeError):
        trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "nocb")
    # a later sync order (no callback needed) is the only one MiniQMT ever saw
    assert trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "after") > 0
    assert [r["order_remark"] for r in ctl.orders("SIM001")] == ["after"]


class RaisingResponse(Recorder):
    def on_order_stock_async_response(self, response):
        super().on_order_stock_async_response(response)
        if response.order_remark == "boom":
            raise RuntimeError("strategy bug in on_order_stock_async_response")


@pytest.mark.parametrize("raising", [False, True], ids=["control", "raising-response"])
def test_an_exception_in_the_order_response_loses_on_order_error(qmt, connect, raising):
    _, ctl = qmt
    trader, rec = connect(callback=RaisingResponse() if raising else Recorder())
    # refused by the counter (price above the +10% limit of 11.00): order row 57, then on_order_error
    trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 12.00, "", "boom")
    rec.wait_for("on_order_stock_async_response", lambda r: r.order_remark == "boom")
    # pushes run in order on one thread: once a later order's response is in, the error would have come before it
    trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "marker")
    rec.wait_for("on_stock_order", lambda o: o.order_remark == "marker" and o.order_status == xc.ORDER_SUCCEEDED)
    errors = rec.of("on_order_error")
    rows = {r["order_remark"]: r["order_status"] for r in ctl.orders("SIM001")}
    assert rows["boom"] == xc.ORDER_JUNK  # MiniQMT refused it and pushed the error ...
    if raising:
        assert errors == []  # ... which the wheel parked for good behind the response that raised
    else:
        assert [(e.order_remark, e.error_id) for e in errors] == [("boom", 100302)]  # outside the price limits


@pytest.mark.parametrize("relaxed", [False, True], ids=["default", "relaxed"])
@pytest.mark.parametrize("call", ["query_stock_orders", "order_stock"])
def test_a_sync_call_inside_a_callback_does_not_return(qmt, connect, call, relaxed):
    """The hazard for strategy authors (executor/sim/README.md): the answer waits behind the callback on the same
    thread. Relaxed response order frees queries, never order_stock. Shown with a bounded wait, not 'fixed'."""
    trader, _ = connect()
    if relaxed:
        trader.set_relaxed_response_order_enabled(True)
    entered, returned = threading.Event(), threading.Event()

    class Inside(Recorder):
        def on_stock_order(self, order):
            if order.order_remark != "trigger" or entered.is_set():
                return
            entered.set()
            if call == "query_stock_orders":
                trader.query_stock_orders(ACC)
            else:
                trader.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "", "inside")
            returned.set()

    trader.register_callback(Inside())
    trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.00, "", "trigger")
    assert entered.wait(WAIT)
    try:
        if call == "query_stock_orders" and relaxed:
            assert returned.wait(WAIT)
        else:
            assert not returned.wait(HANG_BOUND)
    finally:
        # freed by hand: the answer was there all along, queued behind the callback
        assert unwedge(trader, returned)


def test_a_method_the_stand_in_does_not_implement_fails_loudly(connect):
    """What a newer wheel could reach for (every entry point of the pinned one is answered: test_entry_points.py)."""
    from xtquant import xtpythonclient

    trader, _ = connect()
    with pytest.raises(MissingEntryPoint, match="XtQuantAsyncClient.someNewEntryPoint"):
        trader.async_client.someNewEntryPoint(1)
    with pytest.raises(MissingEntryPoint, match="xtpythonclient.SomeNewReq"):
        xtpythonclient.SomeNewReq()
    with pytest.raises(MissingEntryPoint, match="QueryCreditDetailReq.m_nSomeNewField"):
        xtpythonclient.QueryCreditDetailReq().m_nSomeNewField = 1


def test_the_constructor_installs_its_own_asyncio_loop_on_the_calling_thread(qmt):
    import asyncio

    from qmt_helpers import XtQuantTrader

    server, _ = qmt
    seen = {}

    def build():
        import gc

        t = XtQuantTrader(str(server.path), 31, Recorder())
        seen["same"] = asyncio.get_event_loop() is t.loop
        # collected here: the wheel's __del__ on the main thread reads an oldloop only main-thread traders have
        del t
        gc.collect()

    th = threading.Thread(target=build)
    th.start()
    th.join(WAIT)
    assert seen == {"same": True}


def test_sleep_never_returns(connect):
    trader, _ = connect()
    returned = threading.Event()

    def nap():
        trader.sleep(0.01)  # waits on trader.loop, which nothing runs
        returned.set()

    threading.Thread(target=nap, daemon=True).start()
    assert not returned.wait(HANG_BOUND)


def test_stop_inside_a_callback_raises(qmt, connect):
    trader, _ = connect()
    raised: list[BaseException] = []
    done = threading.Event()

    class StopInside(Recorder):
        def on_stock_order(self, order):
            if order.order_remark != "stop-here" or done.is_set():
                return
            try:
                trader.stop()
            except BaseException as exc:  # shutdown(wait=True) joins the very thread it runs on
                raised.append(exc)
            done.set()

    trader.register_callback(StopInside())
    trader.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.00, "", "stop-here")
    assert done.wait(WAIT)
    assert len(raised) == 1 and isinstance(raised[0], RuntimeError)


def test_the_constructor_raises_on_a_main_thread_after_asyncio_run(qmt):
    """A hazard of the real class: after asyncio.run() the main thread has no loop, and the constructor's
    asyncio.get_event_loop() raises (xtquant/xttrader.py). Shown in a fresh interpreter."""
    import subprocess
    import sys
    import textwrap

    from support import child_env

    server, _ = qmt
    code = textwrap.dedent("""
        import asyncio, sys
        from executor.sim.qmt import install
        install()
        from xtquant.xttrader import XtQuantTrader
        XtQuantTrader(sys.argv[1], 1, None)          # fine: the main thread still gets a default loop
        async def noop():
            pass
        asyncio.run(noop())
        try:
            XtQuantTrader(sys.argv[1], 2, None)
        except RuntimeError as exc:
            print("raised", type(exc).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(server.path)], capture_output=True, text=True,
                         timeout=WAIT * 4, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["raised", "RuntimeError"]

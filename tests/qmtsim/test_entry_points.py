"""Every public method of the pinned wheel's own XtQuantTrader, over the stand-in binary and the simulated MiniQMT,
returns xtquant's type or its failure value (issue #11: 48 methods the twin lacked). The list of methods is derived
from the class: a newer wheel with a method this file does not know fails here, and an entry point the stand-in
does not know fails loudly at the call (MissingEntryPoint), never hangs."""

from __future__ import annotations

import csv
import inspect
import itertools
import threading
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from qmt_helpers import WAIT, Recorder, StockAccount, XtQuantTrader, xc
from support import QmtSim

from executor.sim import SimControl
from xtquant import xttype as xt

ACC = StockAccount("SIM001")
UNKNOWN = StockAccount("NOSUCH")
HANG_BOUND = 2.0
_sessions = itertools.count(5000)


def public_methods() -> list[str]:
    return sorted(n for n, v in inspect.getmembers(XtQuantTrader) if not n.startswith("_") and callable(v))


class Rec(Recorder):
    """Recorder plus the async answers beyond stock trading."""

    def on_smt_appointment_async_response(self, response):
        self._add("on_smt_appointment_async_response", response)

    def on_bank_transfer_async_response(self, response):
        self._add("on_bank_transfer_async_response", response)

    def on_ctp_internal_transfer_async_response(self, response):
        self._add("on_ctp_internal_transfer_async_response", response)

    def on_smart_algo_order_async_response(self, response):
        self._add("on_smart_algo_order_async_response", response)

    def on_operate_smart_task_async_response(self, response):
        self._add("on_operate_smart_task_async_response", response)


@pytest.fixture(scope="module")
def miniqmt(tmp_path_factory):
    path = tmp_path_factory.mktemp("entry") / "userdata_mini"
    server = QmtSim(path)
    ctl = SimControl(path)
    assert ctl.wait_applied(ctl.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
    yield server, ctl
    ctl.close()
    server.stop()


@pytest.fixture
def ctx(miniqmt, tmp_path):
    server, ctl = miniqmt
    made: list[XtQuantTrader] = []

    def make(connect: bool = True, path: str | None = None) -> tuple[XtQuantTrader, Rec]:
        rec = Rec()
        t = XtQuantTrader(path or str(server.path), next(_sessions), rec)
        t.start()
        made.append(t)
        if connect:
            assert t.connect() == 0
            assert t.subscribe(ACC) == 0
        return t, rec

    trader, rec = make()
    yield SimpleNamespace(t=trader, rec=rec, ctl=ctl, make=make, path=server.path, tmp=tmp_path)
    for t in reversed(made):
        t.stop()


def _async_answer(ctx, call: Callable[[Callable[[Any], None]], Any]) -> tuple[Any, Any]:
    """Run ``call(callback)``; return (what it returned, what the callback received)."""
    got, done = [], threading.Event()
    returned = call(lambda x: (got.append(x), done.set()))
    assert done.wait(WAIT), "the async answer never came"
    return returned, got[0]


def _seq(v: Any) -> bool:
    return isinstance(v, int) and v > 0


def _resting_order(ctx, remark: str) -> Any:
    """A buy below the market (works at MiniQMT) and its XtOrder once reported."""
    oid = ctx.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.50, "ep", remark)
    assert oid > 0
    return ctx.t.query_stock_order(ACC, oid)


def _never_returns(fn: Callable[[], Any]) -> None:
    returned = threading.Event()
    threading.Thread(target=lambda: (fn(), returned.set()), daemon=True).start()
    assert not returned.wait(HANG_BOUND)


def _is_list_of(v: Any, cls: type | None) -> bool:
    return isinstance(v, list) and (cls is None or all(isinstance(x, cls) for x in v))


def _refused_pair(v: Any) -> bool:
    return isinstance(v, tuple) and v[0] is False and isinstance(v[1], str) and v[1].startswith("[COUNTER] [")


# --- one recipe per public method: it calls the method over the simulated MiniQMT and checks the answer ----------
def r_start(c):
    t = XtQuantTrader(str(c.path), next(_sessions), Rec())
    assert t.start() is None
    t.stop()


def r_stop(c):
    t, _ = c.make()
    assert t.stop() is None


def r_connect(c):
    t, _ = c.make(connect=False)
    assert t.connect() == 0 and t.connected is True
    lone, _ = c.make(connect=False, path=str(c.tmp / "no_miniqmt_here"))
    assert lone.connect() == -1  # no MiniQMT serves that folder


def r_register_callback(c):
    other = Rec()
    assert c.t.register_callback(other) is None
    c.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "rc")
    other.wait_for("on_stock_trade", lambda x: x.order_remark == "rc")


def r_set_timeout(c):
    assert c.t.set_timeout(1000) is None
    assert isinstance(c.t.query_stock_asset(ACC), xt.XtAsset)


def r_set_relaxed_response_order_enabled(c):
    assert c.t.set_relaxed_response_order_enabled(True) is None
    assert _is_list_of(c.t.query_stock_orders(ACC), xt.XtOrder)


def r_subscribe(c):
    assert c.t.subscribe(ACC) == 0


def r_unsubscribe(c):
    assert c.t.unsubscribe(ACC) == 0


def r_sleep(c):
    _never_returns(lambda: c.t.sleep(0.01))  # waits on trader.loop, which nothing runs (reference 8.16)


def r_run_forever(c):
    _never_returns(c.t.run_forever)


def r_common_op_sync_with_seq(c):
    from xtquant import xtpythonclient

    req = xtpythonclient.QueryStockAssetReq()
    req.m_nAccountType, req.m_strAccountID = ACC.account_type, ACC.account_id
    seq = c.t.async_client.nextSeq()
    (asset,) = c.t.common_op_sync_with_seq(seq, (c.t.async_client.queryStockAssetWithSeq, seq, req))
    assert isinstance(asset, xt.XtAsset)


def r_common_op_async_with_seq(c):
    from xtquant import xtpythonclient

    req = xtpythonclient.QueryStockTradesReq()
    req.m_nAccountType, req.m_strAccountID = ACC.account_type, ACC.account_id
    seq = c.t.async_client.nextSeq()
    returned, got = _async_answer(c, lambda cb: c.t.common_op_async_with_seq(
        seq, (c.t.async_client.queryStockTradesWithSeq, seq, req), cb))
    assert returned == seq and _is_list_of(got, xt.XtTrade)


def r_order_stock(c):
    assert c.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "os") > 0
    assert c.t.order_stock(UNKNOWN, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "os-x") == -1


def r_order_stock_async(c):
    seq = c.t.order_stock_async(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "osa")
    r = c.rec.wait_for("on_order_stock_async_response", lambda x: x.order_remark == "osa")
    assert _seq(seq) and isinstance(r, xt.XtOrderResponse) and r.seq == seq and r.order_id > 0


def r_cancel_order_stock(c):
    o = _resting_order(c, "cos")
    assert c.t.cancel_order_stock(ACC, o.order_id) == 0
    assert c.t.cancel_order_stock(ACC, 987654) == -1


def r_cancel_order_stock_async(c):
    o = _resting_order(c, "cosa")
    seq = c.t.cancel_order_stock_async(ACC, o.order_id)
    r = c.rec.wait_for("on_cancel_order_stock_async_response", lambda x: x.seq == seq)
    assert isinstance(r, xt.XtCancelOrderResponse) and r.cancel_result == 0


def r_cancel_order_stock_sysid(c):
    o = _resting_order(c, "coss")
    assert o.order_sysid
    assert c.t.cancel_order_stock_sysid(ACC, "SH", o.order_sysid) == 0


def r_cancel_order_stock_sysid_async(c):
    o = _resting_order(c, "cossa")
    seq = c.t.cancel_order_stock_sysid_async(ACC, xc.SH_MARKET, o.order_sysid)
    r = c.rec.wait_for("on_cancel_order_stock_async_response", lambda x: x.seq == seq)
    assert isinstance(r, xt.XtCancelOrderResponse) and (r.cancel_result, r.order_sysid) == (0, o.order_sysid)


def r_query_account_infos(c):
    infos = c.t.query_account_infos()
    assert isinstance(infos, list) and "SIM001" in {i.account_id for i in infos}


def r_query_account_info(c):  # an alias of query_account_infos in the wheel
    assert "SIM001" in {i.account_id for i in c.t.query_account_info()}


def r_query_account_infos_async(c):
    seq, got = _async_answer(c, c.t.query_account_infos_async)
    assert _seq(seq) and "SIM001" in {i.account_id for i in got}


def r_query_account_status(c):
    assert _is_list_of(c.t.query_account_status(), xt.XtAccountStatus)


def r_query_account_status_async(c):
    seq, got = _async_answer(c, c.t.query_account_status_async)
    assert _seq(seq) and _is_list_of(got, xt.XtAccountStatus) and got


def r_query_stock_asset(c):
    assert isinstance(c.t.query_stock_asset(ACC), xt.XtAsset)
    assert c.t.query_stock_asset(UNKNOWN) is None


def r_query_stock_asset_async(c):
    returned, got = _async_answer(c, lambda cb: c.t.query_stock_asset_async(ACC, cb))
    assert returned is None and isinstance(got, xt.XtAsset)  # this one returns None, not a seq (the wheel's code)


def r_query_stock_order(c):
    o = _resting_order(c, "qso")
    assert isinstance(o, xt.XtOrder) and o.order_remark == "qso"
    assert c.t.query_stock_order(ACC, 987654) is None


def r_query_stock_orders(c):
    _resting_order(c, "qsos")
    assert _is_list_of(c.t.query_stock_orders(ACC), xt.XtOrder)
    assert c.t.query_stock_orders(UNKNOWN) is None


def r_query_stock_orders_async(c):
    seq, got = _async_answer(c, lambda cb: c.t.query_stock_orders_async(ACC, cb))
    assert _seq(seq) and _is_list_of(got, xt.XtOrder)


def r_query_stock_trades(c):
    c.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "qst")
    trades = c.t.query_stock_trades(ACC)
    assert _is_list_of(trades, xt.XtTrade) and "qst" in {x.order_remark for x in trades}


def r_query_stock_trades_async(c):
    seq, got = _async_answer(c, lambda cb: c.t.query_stock_trades_async(ACC, cb))
    assert _seq(seq) and _is_list_of(got, xt.XtTrade)


def r_query_stock_position(c):
    c.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "qsp")
    assert isinstance(c.t.query_stock_position(ACC, "600000.SH"), xt.XtPosition)
    assert c.t.query_stock_position(ACC, "000001.SZ") is None


def r_query_stock_positions(c):
    assert _is_list_of(c.t.query_stock_positions(ACC), xt.XtPosition)


def r_query_stock_positions_async(c):
    seq, got = _async_answer(c, lambda cb: c.t.query_stock_positions_async(ACC, cb))
    assert _seq(seq) and _is_list_of(got, xt.XtPosition)


def _credit(name: str):
    """A credit query on a stock account: an empty list (nothing there), None for an account not served."""
    def sync(c):
        assert getattr(c.t, name)(ACC) == []
        assert getattr(c.t, name)(UNKNOWN) is None

    def async_(c):
        seq, got = _async_answer(c, lambda cb: getattr(c.t, name + "_async")(ACC, cb))
        assert _seq(seq) and got == []
    return sync, async_


def r_query_new_purchase_limit(c):
    assert c.t.query_new_purchase_limit(ACC) == {}  # the wheel turns the answer into {"KCB"|"SH"|"SZ": shares}


def r_query_new_purchase_limit_async(c):
    seq, got = _async_answer(c, lambda cb: c.t.query_new_purchase_limit_async(ACC, cb))
    assert _seq(seq) and got == []


def r_query_ipo_data(c):
    assert c.t.query_ipo_data() == {}


def r_query_ipo_data_async(c):
    seq, got = _async_answer(c, c.t.query_ipo_data_async)
    assert _seq(seq) and got == []


def r_fund_transfer(c):
    assert _refused_pair(c.t.fund_transfer(ACC, xc.FUNDS_TRANSFER_NORMAL_TO_SPEED, 100.0))


def r_secu_transfer(c):
    assert _refused_pair(c.t.secu_transfer(ACC, xc.SECU_TRANSFER_NORMAL_TO_SPEED, "600000.SH", 100,
                                           xc.TRANS_TRANSFER_SHARE))


def r_query_com_fund(c):
    r = c.t.query_com_fund(ACC)
    assert isinstance(r, dict) and r["success"] is False and r["error"].startswith("[COUNTER] [")


def r_query_com_position(c):
    assert c.t.query_com_position(ACC) == []


def r_smt_query_quoter(c):
    assert c.t.smt_query_quoter(ACC) == []


def r_smt_query_order(c):
    assert c.t.smt_query_order(ACC) == []


def r_smt_query_compact(c):
    assert c.t.smt_query_compact(ACC) == []


def _smt(call: Callable[[Any], int]):
    def recipe(c):
        seq = call(c)
        r = c.rec.wait_for("on_smt_appointment_async_response", lambda x: x.seq == seq)
        assert _seq(seq) and isinstance(r, xt.XtSmtAppointmentResponse) and r.success is False and r.msg
    return recipe


r_smt_negotiate_order_async = _smt(lambda c: c.t.smt_negotiate_order_async(ACC, "G1", "600000.SH", 14, 1000, 0.08,
                                                                           {"subFareRate": 0.01, "fineRate": 0.02}))
r_smt_appointment_order_async = _smt(lambda c: c.t.smt_appointment_order_async(ACC, "600000.SH", 14, 1000, 0.08))
r_smt_compact_renewal_async = _smt(lambda c: c.t.smt_compact_renewal_async(ACC, "C1", "600000.SH", 7, 1000, 0.08))
r_smt_compact_return_async = _smt(lambda c: c.t.smt_compact_return_async(ACC, "G1", "C1", "600000.SH", 1000))


def r_smt_appointment_cancel_async(c):
    # the wheel's own bug (reference 2.4): it reads an undefined name before anything is sent
    with pytest.raises(NameError):
        c.t.smt_appointment_cancel_async(ACC, "A1")
    assert c.rec.of("on_smt_appointment_async_response") == []


def r_query_position_statistics(c):
    assert c.t.query_position_statistics(ACC) == []


def r_export_data(c):
    c.t.order_stock(ACC, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.00, "ep", "exp")
    out = c.tmp / "deal.csv"
    r = c.t.export_data(ACC, str(out), "deal")
    assert isinstance(r, dict) and "error" not in r
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(x["order_remark"], x["traded_volume"]) for x in rows if x["order_remark"] == "exp"] == [("exp", "100")]
    bad = c.t.export_data(ACC, str(c.tmp / "x.csv"), "no_such_type")
    assert bad["error"]["msg"].startswith("[COUNTER] [")


def r_query_data(c):
    # the success path reads the CSV with pandas (the wheel imports it there); the refusal comes back as the dict
    r = c.t.query_data(ACC, str(c.tmp / "q.csv"), "no_such_type")
    assert isinstance(r, dict) and r["error"]["msg"].startswith("[COUNTER] [")


def r_sync_transaction_from_external(c):
    deal = {"m_strExchangeID": "SH", "m_strInstrumentID": "600000"}
    r = c.t.sync_transaction_from_external("ADD", "DEAL", ACC, [deal])
    assert isinstance(r, dict) and r["error"]["msg"].startswith("[COUNTER] [")


def r_bank_transfer_in(c):
    assert _refused_pair(c.t.bank_transfer_in(ACC, "B1", "6222000000000000", 100.0, "bank-secret", "fund-secret"))


def r_bank_transfer_out(c):
    assert _refused_pair(c.t.bank_transfer_out(ACC, "B1", "6222000000000000", 100.0))


def _bank_async(method: str, callback: str, args: Callable[[], tuple]):
    def recipe(c):
        seq = getattr(c.t, method)(*args())
        r = c.rec.wait_for(callback, lambda x: x.seq == seq)
        assert _seq(seq) and isinstance(r, xt.XtBankTransferResponse) and r.success is False and r.msg
    return recipe


r_bank_transfer_in_async = _bank_async("bank_transfer_in_async", "on_bank_transfer_async_response",
                                       lambda: (ACC, "B1", "6222000000000000", 100.0))
r_bank_transfer_out_async = _bank_async("bank_transfer_out_async", "on_bank_transfer_async_response",
                                        lambda: (ACC, "B1", "6222000000000000", 100.0))
r_ctp_transfer_option_to_future_async = _bank_async("ctp_transfer_option_to_future_async",
                                                    "on_ctp_internal_transfer_async_response",
                                                    lambda: ("OPT1", "FT1", 100.0))
r_ctp_transfer_future_to_option_async = _bank_async("ctp_transfer_future_to_option_async",
                                                    "on_ctp_internal_transfer_async_response",
                                                    lambda: ("OPT1", "FT1", 100.0))


def r_ctp_transfer_option_to_future(c):
    assert _refused_pair(c.t.ctp_transfer_option_to_future("OPT1", "FT1", 100.0))


def r_ctp_transfer_future_to_option(c):
    assert _refused_pair(c.t.ctp_transfer_future_to_option("OPT1", "FT1", 100.0))


def r_query_bank_info(c):
    assert c.t.query_bank_info(ACC) == []


def r_query_bank_amount(c):
    assert c.t.query_bank_amount(ACC, "B1", "6222000000000000", "bank-secret") == []


def r_query_bank_transfer_stream(c):
    assert c.t.query_bank_transfer_stream(ACC, "20261125", "20261129") == []


def r_query_secu_account(c):
    assert c.t.query_secu_account(ACC) == []


def r_get_smart_algo_param(c):
    assert c.t.get_smart_algo_param(["VWAP"]) == {}


def r_smart_algo_order_async(c):
    seq = c.t.smart_algo_order_async(ACC, "600000.SH", xc.STOCK_BUY, 1000, xc.FIX_PRICE, 10.00, "ep", "algo",
                                     "VWAP", "09:30:00", "14:30:00", {})
    r = c.rec.wait_for("on_smart_algo_order_async_response", lambda x: x.seq == seq)
    assert _seq(seq) and isinstance(r, xt.XtSmartAlgoOrderResponse)
    assert (r.account_id, r.order_remark) == ("SIM001", "algo") and r.error_msg.startswith("[COUNTER] [")
    assert not [o for o in c.ctl.orders("SIM001") if o["order_remark"] == "algo"]  # nothing reached the book


def r_query_smart_algo_task(c):
    assert c.t.query_smart_algo_task(ACC) == []


def r_cancel_smart_algo_task_async(c):
    seq = c.t.cancel_smart_algo_task_async(ACC, 42)
    r = c.rec.wait_for("on_operate_smart_task_async_response", lambda x: x.seq == seq)
    assert _seq(seq) and isinstance(r, xt.XtOperateSmartTaskResponse) and r.success is False and r.error_msg


RECIPES: dict[str, Callable[[Any], None]] = {n[2:]: f for n, f in dict(globals()).items() if n.startswith("r_")}
for _name in ("query_credit_detail", "query_stk_compacts", "query_credit_subjects", "query_credit_slo_code",
              "query_credit_assure"):
    RECIPES[_name], RECIPES[_name + "_async"] = _credit(_name)


def test_the_stand_in_knows_every_entry_point_and_binding_the_wheel_uses():
    """Read from the wheel's own source: what XtQuantTrader calls on, and binds of, its client."""
    import re

    import xtquant.xttrader as wheel
    from xtquant import xtpythonclient

    from executor.sim.qmt.wire import CALLS

    src = inspect.getsource(wheel)
    calls = set(re.findall(r"self\.async_client\.(\w+WithSeq)\b", src))
    binds = set(re.findall(r"self\.async_client\.(bindOn\w+)\(", src))
    assert calls and calls == set(CALLS)
    assert binds and binds <= xtpythonclient.BINDINGS


def test_every_public_method_of_the_wheel_has_a_recipe():
    assert len(public_methods()) >= 79  # the pinned wheel (xtquant_250807) has 79
    assert set(public_methods()) == set(RECIPES)


@pytest.mark.parametrize("name", public_methods())
def test_each_public_method_answers_xtquant_types_over_the_simulated_miniqmt(ctx, name):
    RECIPES[name](ctx)


@pytest.mark.parametrize("call, failure", [
    (lambda t: t.query_credit_detail(ACC), None),
    (lambda t: t.query_position_statistics(ACC), None),
    (lambda t: t.query_new_purchase_limit(ACC), {}),
    (lambda t: t.query_smart_algo_task(ACC), []),
    (lambda t: t.get_smart_algo_param(["VWAP"]), {}),
    (lambda t: t.query_com_fund(ACC)["success"], False),
    (lambda t: t.fund_transfer(ACC, xc.FUNDS_TRANSFER_NORMAL_TO_SPEED, 1.0)[0], False),
    (lambda t: t.bank_transfer_in(ACC, "B1", "1", 1.0)[0], False),
], ids=["credit", "position-statistics", "purchase-limit", "smart-task", "smart-param", "com-fund", "transfer",
        "bank"])
def test_without_a_miniqmt_the_calls_answer_their_failure_value_at_once(ctx, call, failure):
    lone, _ = ctx.make(connect=False, path=str(ctx.tmp / "no_miniqmt_here"))
    assert lone.connect() == -1
    assert call(lone) == failure

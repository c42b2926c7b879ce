"""easytrader's MiniqmtTrader (PyPI, unchanged; the ``thirdparty`` extra) trades through ``xtqueue run --redis``: a real
executor on a simulated MiniQMT, two trading days, every figure checked against MiniQMT's own records."""

from __future__ import annotations

import textwrap

from remote_helpers import WAIT, Program

import easytrader  # noqa: F401  the thirdparty extra (part of test): a missing install fails, never skips

EASYTRADER_PATH = r"D:\国金证券QMT交易端\userdata_mini"  # MiniqmtTrader.connect's own default: means nothing here

PROGRAM = textwrap.dedent("""
    import json, sys, threading, time
    import easytrader
    from easytrader.miniqmt.miniqmt_trader import DefaultXtQuantTraderCallback

    heard, lock = [], threading.Lock()

    class Heard(DefaultXtQuantTraderCallback):   # easytrader's own callback, recording what arrives
        def on_stock_order(self, order):
            super().on_stock_order(order)
            with lock:
                heard.append(["order", order.order_id, order.order_status])

        def on_stock_trade(self, trade):
            super().on_stock_trade(trade)
            with lock:
                heard.append(["trade", trade.order_id, trade.traded_volume])

        def on_stock_position(self, position):
            with lock:
                heard.append(["position", position.stock_code, position.volume])

    def wait(pred, timeout=20):
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            time.sleep(0.05)

    user = easytrader.use("miniqmt")
    user.connect(sys.argv[1], sys.argv[2], trader_callback=Heard())
    out = {"class": type(user.trader).__module__ + "." + type(user.trader).__name__,
           "balance_before": user.balance, "position_before": user.position}
    out["buy"] = user.buy("600000", price=10.00, amount=300)
    out["resting"] = user.buy("600000", price=9.50, amount=200)
    out["cancel"] = user.cancel_entrust(out["resting"]["entrust_no"])
    status = lambda: {e["order_id"]: e["order_status"] for e in user.today_entrusts}
    wait(lambda: status().get(out["resting"]["entrust_no"]) == 54)
    out["entrusts"], out["trades"], out["position"] = user.today_entrusts, user.today_trades, user.position
    out["balance"] = user.balance
    print(json.dumps(out, ensure_ascii=False), flush=True)
    sys.stdin.readline()                                # the test closes the day and opens the next
    day2 = {"position_before": user.position}
    day2["sell"] = user.sell("600000", price=10.00, amount=100)
    wait(lambda: user.today_trades)
    day2["entrusts"], day2["trades"], day2["position"] = user.today_entrusts, user.today_trades, user.position
    wait(lambda: any(h[0] == "trade" and h[1] == day2["sell"]["entrust_no"] for h in heard))
    with lock:
        day2["heard"] = list(heard)
    print(json.dumps(day2, ensure_ascii=False), flush=True)
""")


def test_easytrader_miniqmt_trades_two_days_through_the_queue(stack):
    start_cash = stack.control.cash(stack.account)[0]
    prog = Program(PROGRAM, stack.workdir, [EASYTRADER_PATH, stack.account], stack.env(), "easy", launcher=True)
    day1 = prog.next(timeout=WAIT * 4)
    assert day1["class"] == "xtquant.xttrader.XtQuantTrader"
    assert day1["balance_before"][0]["cash"] == start_cash and day1["position_before"] == []
    by_id = {o["order_id"]: o for o in stack.control.orders(stack.account)}
    assert set(by_id) == {day1["buy"]["entrust_no"], day1["resting"]["entrust_no"]}
    bought, resting = by_id[day1["buy"]["entrust_no"]], by_id[day1["resting"]["entrust_no"]]
    assert (bought["traded_volume"], bought["order_status"]) == (300, 56)
    assert (resting["traded_volume"], resting["order_status"]) == (0, 54)
    assert day1["cancel"] == {"success": True, "message": "success"}
    entrusts = {e["order_id"]: e for e in day1["entrusts"]}
    assert {oid: (e["order_volume"], e["traded_volume"], e["order_status"]) for oid, e in entrusts.items()} == {
        oid: (o["order_volume"], o["traded_volume"], o["order_status"]) for oid, o in by_id.items()}
    assert entrusts[bought["order_id"]]["order_status_name"] == "已成"
    assert entrusts[bought["order_id"]]["order_remark"] == ""  # easytrader sends none; it gets none back
    assert sum(t["traded_volume"] for t in day1["trades"]) == 300
    assert [(p["stock_code"], p["volume"], p["can_use_volume"]) for p in day1["position"]] == [("600000.SH", 300, 0)]
    cash, _frozen = stack.control.cash(stack.account)
    assert day1["balance"][0]["cash"] == cash

    assert stack.control.wait_applied(stack.control.end_of_day(), timeout=15)
    assert stack.control.wait_applied(stack.control.new_day(), timeout=15)
    prog.send("go")
    day2 = prog.next(timeout=WAIT * 4)
    assert prog.wait() == 0, prog.stderr()
    assert [(p["volume"], p["can_use_volume"]) for p in day2["position_before"]] == [(300, 300)]
    sold = {o["order_id"]: o for o in stack.control.orders(stack.account)}[day2["sell"]["entrust_no"]]
    assert (sold["order_type"], sold["traded_volume"], sold["order_status"]) == (24, 100, 56)
    assert [(t["order_id"], t["traded_volume"]) for t in day2["trades"]] == [(sold["order_id"], 100)]
    assert [(p["volume"], p["can_use_volume"]) for p in day2["position"]] == [(200, 200)]
    # its callbacks arrived: the fills and order updates of both days, and position pushes
    heard = day2["heard"]
    assert ["trade", bought["order_id"], 300] in heard and ["trade", sold["order_id"], 100] in heard
    assert ["order", resting["order_id"], 54] in heard and ["order", sold["order_id"], 56] in heard
    assert any(h[0] == "position" for h in heard)

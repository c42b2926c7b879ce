"""A margin (两融) account through the remote trader: unmodified xtquant programs (credit_programs.py) with
``StockAccount(id, 'CREDIT')`` against a real executor run with ``--account-type CREDIT`` on a simulated MiniQMT
started with ``--credit``. Orders and debts are checked against that MiniQMT's own records (SimControl reads its
SQLite store): each order there once, with its credit order type, and the compacts moved by exactly what was
repaid."""

from __future__ import annotations

import credit_programs
import redis
from remote_helpers import WAIT, Program
from support import CutAfterXadd, wait_until

from producer_lib import Side, SyncClient, contract as c

FIN_BUY, SELL_SECU_REPAY, DIRECT_CASH_REPAY = 27, 31, 32  # xtconstant CREDIT_* order types
ORDER_SUCCEEDED = 56


def _rows(stack, order_type: int | None = None) -> list[dict]:
    return [r for r in stack.control.orders(stack.account) if order_type is None or r["order_type"] == order_type]


def _compacts(stack) -> list[dict]:
    return (stack.control.credit(stack.account) or {}).get("compacts", [])


def _cb(out: dict, kind: str, **match) -> list[dict]:
    return [e for e in out["callbacks"] if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def _borrow(stack) -> None:
    """A margin buy of 1,000 600000.SH at 10.00, placed by a strategy of its own: a 10,000 yuan compact."""
    with SyncClient(stack.redis_url, stack.account, strategy="setup") as client:
        client.place_order("600000.SH", Side.FIN_BUY, 1000, 10.00)
    wait_until(lambda: [x for x in _compacts(stack) if round(x["real_balance"], 2) == 10_000.0], WAIT, "the compact")


def test_an_unmodified_program_borrows_repays_and_queries_a_margin_account(credit_stack):
    stack = credit_stack
    prog = Program(credit_programs.MARGIN, stack.workdir, ["D:\\国金QMT交易端\\userdata_mini", stack.account],
                   stack.env(), launcher=True)
    day1 = prog.next(timeout=WAIT * 6)
    assert (day1["connect"], day1["subscribe"], day1["fin_buy_filled"]) == (0, 0, True), prog.stderr()
    (fin,) = _rows(stack)  # the one order at MiniQMT: the margin buy, with its credit order type
    assert (fin["order_id"], fin["order_type"], fin["traded_volume"]) == (day1["fin_buy"], FIN_BUY, 1000)
    c.validate_client_order_id(fin["order_remark"])  # the broker holds the client order id
    (broker_compact,) = _compacts(stack)
    assert round(broker_compact["real_balance"], 2) == 10_000.0
    # the queries read as the manual names them
    assert None not in day1["day1"].values(), prog.stderr()
    (detail,) = day1["day1"]["detail"]
    assert (detail["cls"], detail["account_id"], detail["account_type"]) == ("XtCreditDetail", stack.account, 3)
    assert (detail["m_dFinDebt"], detail["m_dEnableBailBalance"]) == (10_000.0, 89_994.90)
    (compact,) = day1["day1"]["compacts"]
    assert (compact["cls"], compact["instrument_id"], compact["real_compact_vol"], compact["real_compact_balance"],
            compact["compact_type"]) == ("XtStkCompacts", "600000.SH", 1000, 10_000.0, 0)

    assert stack.control.wait_applied(stack.control.new_day(), timeout=15)  # T+1, and a day of interest: 2.00
    prog.send("go")
    out = prog.next(timeout=WAIT * 6)
    assert prog.wait() == 0, prog.stderr()

    # each order at MiniQMT once, with its order type; the program was told those ids
    (sell,) = _rows(stack, SELL_SECU_REPAY)
    (cash,) = _rows(stack, DIRECT_CASH_REPAY)
    assert len(_rows(stack)) == 2
    assert (sell["order_id"], sell["traded_volume"]) == (out["sell_repay"], 500) and out["sell_repay_filled"]
    assert (cash["order_id"], cash["order_status"]) == (out["cash_repay"], ORDER_SUCCEEDED) and out["cash_repay_done"]
    # the debt moved by exactly the two repayments: 5,000 - 7.55 fees = 4,992.45 (2.00 interest first, 4,990.45
    # principal), then 1,000.51 in cash
    (broker_compact,) = _compacts(stack)
    assert (round(broker_compact["repaid_fare"], 2), round(broker_compact["repaid_balance"], 2),
            round(broker_compact["real_balance"], 2)) == (2.00, 4_990.45 + 1_000.51, 4_009.04)

    day2 = out["day2"]
    (detail,) = day2["detail"]
    assert detail["m_dFinDebt"] == 4_009.04 and detail["m_dTotalDebt"] >= 4_009.04
    (compact,) = day2["compacts"]
    assert (compact["repaid_fare"], compact["repaid_balance"], compact["real_compact_balance"]) == \
        (2.00, 5_990.96, 4_009.04)
    assert compact["compact_id"] == broker_compact["compact_id"]
    subjects = {s["instrument_id"]: s for s in day2["subjects"]}
    assert (subjects["600000.SH"]["fin_ratio"], subjects["600000.SH"]["slo_ratio"]) == (1.0, 1.2)
    assert {s["cls"] for s in day2["subjects"]} == {"XtCreditSubjects"}
    lendable = {s["instrument_id"]: s["enable_amount"] for s in day2["slo_codes"]}
    assert lendable["600000.SH"] == 100_000 and "000001.SZ" not in lendable
    haircuts = {a["instrument_id"]: a["assure_ratio"] for a in day2["assure"]}
    assert haircuts["600000.SH"] == 0.70 and {a["cls"] for a in day2["assure"]} == {"XtCreditAssure"}
    assert out["day2_async"] == day2  # the _async twins answer the same
    assert out["asset_cash"] == stack.control.cash(stack.account)[0]
    assert out["status"] == [[stack.account, 3]]  # xtconstant.CREDIT_ACCOUNT

    # the program's own remarks come back on the credit orders' pushes and in the query
    remarks = {out["sell_repay"]: "repay-sell", out["cash_repay"]: "repay-cash"}
    assert {e["order_id"]: e["remark"] for e in _cb(out, "order")} == {day1["fin_buy"]: "fin-1", **remarks}
    assert {o["order_id"]: o["remark"] for o in out["orders"]} == remarks  # today's orders (day 2)
    assert not _cb(out, "order_error")


def test_a_repayment_whose_answer_is_lost_repays_once(credit_stack):
    stack = credit_stack
    _borrow(stack)
    proxy = CutAfterXadd.to(stack.redis_url, b"direct_cash_repay", armed=True)
    try:
        prog = Program(credit_programs.ONE_REPAY, stack.workdir, [str(stack.qmt_path), stack.account],
                       stack.env(redis_url=proxy.url))
        assert prog.next() == {"ready": True}
        prog.send("go")
        out = prog.next()
        assert prog.wait() == 0, prog.stderr()
    finally:
        proxy.close()
    assert proxy.cut.is_set()  # the XADD landed and its answer was lost: the client sent the same entry again
    (row,) = _rows(stack, DIRECT_CASH_REPAY)  # repaid once, and the program was told that order
    assert (row["order_id"], row["order_status"]) == (out["order_id"], ORDER_SUCCEEDED)
    assert [round(x["real_balance"], 2) for x in _compacts(stack)] == [10_000.0 - 1_000.51]
    assert {e["remark"] for e in _cb(out, "order")} == {"repay-once"}


def test_an_executor_killed_mid_repayment_repays_once_and_the_program_gets_its_id(credit_stack):
    """The counter takes the repayment at once but its answer reaches the executor 3 s later; the executor is
    SIGKILLed in between. A new executor finds the repayment in MiniQMT's list by its client order id; the
    program's order_stock returns that order's id and nothing is repaid twice."""
    stack = credit_stack
    _borrow(stack)
    cash_before = stack.control.cash(stack.account)[0]
    prog = Program(credit_programs.ONE_REPAY, stack.workdir, [str(stack.qmt_path), stack.account],
                   {**stack.env(), "XTQUEUE_ORDER_TTL_MS": "30000"})
    assert prog.next() == {"ready": True}
    assert stack.control.wait_applied(stack.control.delay_pushes(3000), timeout=15)
    prog.send("go")
    wait_until(lambda: _rows(stack, DIRECT_CASH_REPAY), WAIT, "the repayment at MiniQMT")
    stack.executor.kill()
    assert stack.control.wait_applied(stack.control.reset_faults(), timeout=15)
    redis.Redis.from_url(stack.redis_url).delete(c.Keys(stack.account).heartbeat)
    stack.executor.start()
    out = prog.next(timeout=WAIT * 4)
    assert prog.wait() == 0, prog.stderr()
    (row,) = _rows(stack, DIRECT_CASH_REPAY)
    assert (row["order_id"], row["order_status"]) == (out["order_id"], ORDER_SUCCEEDED)
    assert [round(x["real_balance"], 2) for x in _compacts(stack)] == [10_000.0 - 1_000.51]
    assert stack.control.cash(stack.account)[0] == round(cash_before - 1_000.51, 2)


def _wrong_type(stack, given: str, served: str) -> None:
    prog = Program(credit_programs.WRONG_TYPE, stack.workdir, [str(stack.qmt_path), stack.account, given],
                   stack.env())
    out = prog.next(timeout=WAIT * 3)
    assert prog.wait() == 0, prog.stderr()
    assert out["connect"] == 0 and out["subscribe"] == -1  # as MiniQMT answers an account it does not serve
    assert (out["buy"], out["fin_buy"], out["cash_repay"]) == (-1, -1, -1)
    assert out["asset"] is None and out["orders"] is None
    for name in ("detail", "compacts", "subjects", "slo_codes", "assure"):
        assert out[name] is None and out["async"][name] is None, name
    errors = _cb(out, "order_error")
    assert {e["remark"] for e in errors} == {"buy", "fin", "repay"}
    for e in errors:  # the reason, in the error and in the log
        assert f"given as a {given} account" in e["msg"] and f"as a {served} account" in e["msg"], e
        assert "nothing was placed" in e["msg"]
    assert f"given as a {given} account" in prog.stderr()
    assert _rows(stack) == []  # nothing reached MiniQMT


def test_a_credit_account_against_an_executor_trading_a_stock_account_fails_clearly(stack):
    _wrong_type(stack, "CREDIT", "STOCK")


def test_a_stock_account_against_an_executor_trading_a_credit_account_fails_clearly(credit_stack):
    _wrong_type(credit_stack, "STOCK", "CREDIT")

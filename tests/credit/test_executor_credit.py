"""End to end on a CREDIT account: `xtqueue executor --account-type CREDIT --broker sim` drives the wheel's own
XtQuantTrader over a simulated MiniQMT (its own process) whose account is a margin account; a strategy uses
producer_lib and the CLI. Figures are checked against that MiniQMT's own records (SimControl)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

import producer_lib as pl
from producer_lib import contract as c

from support import child_env

FIN_BUY, SELL_SECU_REPAY, DIRECT_CASH_REPAY = 27, 31, 32


async def _served(client: pl.Client, timeout: float = 60.0) -> pl.PingResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            pong = await asyncio.wait_for(client.ping(), 2.0)
            if pong.broker_connected:
                return pong
        except (asyncio.TimeoutError, pl.XtqueueError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the executor never served")


async def _wait_event(client: pl.Client, mark: str, predicate, timeout_s: float = 15.0):
    async def scan():
        async for event in client.events(from_id=mark):
            if isinstance(event, c.EventMessage) and predicate(event):
                return event
    return await asyncio.wait_for(scan(), timeout_s)


def _cli(redis_url: str, account: str, *args: str):
    out = subprocess.run([sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account, *args],
                         capture_output=True, text=True, timeout=60, env=child_env())
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout) if "--json" in args else out.stdout


def _rows(control, account: str, order_type: int) -> list[dict]:
    return [r for r in control.orders(account) if r["order_type"] == order_type]


async def test_margin_buy_fill_sell_to_repay_and_the_five_queries(credit_stack, redis_url, account):
    start, control = credit_stack
    start()
    async with pl.Client(redis_url, account, strategy="margin") as client:
        await _served(client)
        mark = await client.last_event_id()
        buy = await client.place_order("600000.SH", pl.Side.FIN_BUY, 1000, 10.00)
        fill = await _wait_event(client, mark, lambda e: e.type == "order_filled" and e.order_id == buy.order_id)
        assert (fill.data.trade.side, fill.data.trade.volume, fill.data.trade.order_type) == \
            (pl.Side.FIN_BUY, 1000, FIN_BUY)
        (compact,) = await client.query_stk_compacts()
        assert (compact.code, compact.real_compact_vol, compact.real_compact_balance) == ("600000.SH", 1000, 10_000.0)
        (detail,) = await client.query_credit_detail()
        assert (detail.account, detail.fin_debt, detail.enable_bail_balance) == (account, 10_000.0, 89_994.90)

        assert control.wait_applied(control.new_day(), timeout=15)  # T+1, and one day of interest: 2.00
        await _served(client)
        repay = await client.place_order("600000.SH", pl.Side.SELL_SECU_REPAY, 500, 10.00)
        (row,) = _rows(control, account, SELL_SECU_REPAY)
        assert (row["order_id"], row["order_remark"]) == (repay.order_id, repay.client_order_id)
        await _wait_event(client, mark, lambda e: e.type == "order_filled" and e.order_id == repay.order_id)
        (compact,) = await client.query_stk_compacts()
        # 5,000 - 7.55 fees = 4,992.45: 2.00 interest first, then 4,990.45 principal
        assert (compact.repaid_fare, compact.repaid_balance, compact.real_compact_balance) == \
            (2.00, 4_990.45, 5_009.55)
        subjects = {s.code: s for s in await client.query_credit_subjects()}
        assert (subjects["600000.SH"].fin_ratio, subjects["600000.SH"].slo_ratio) == (1.0, 1.2)
        lendable = {s.code: s.enable_amount for s in await client.query_credit_slo_code()}
        assert lendable["600000.SH"] == 100_000 and "000001.SZ" not in lendable
        haircuts = {a.code: a.assure_ratio for a in await client.query_credit_assure()}
        assert haircuts["600000.SH"] == 0.70

        with pytest.raises(pl.BrokerRejected) as refused:
            await client.place_order("000001.SZ", pl.Side.SLO_SELL, 100, 11.00)
        assert refused.value.broker_message.startswith("[COUNTER] [100903][可融券数量不足]")

    # the CLI, Chinese names beside English in its help
    detail = _cli(redis_url, account, "credit", "--json")
    assert detail[0]["fin_debt"] == 5_009.55
    assert [x["real_compact_balance"] for x in _cli(redis_url, account, "compacts", "--json")] == [5_009.55]
    assert {x["code"] for x in _cli(redis_url, account, "credit-subjects", "--json")} >= {"600000.SH"}
    assert _cli(redis_url, account, "slo-codes", "--json")
    assert _cli(redis_url, account, "assure", "--json")
    ack = _cli(redis_url, account, "repay", "600000.SH", "1000.51", "--json")
    assert ack["status"] == "succeeded"
    assert _cli(redis_url, account, "credit", "--json")[0]["fin_debt"] == 4_009.04  # 5,009.55 - 1,000.51
    text = _cli(redis_url, account, "compacts")
    assert "4009.04" in text.replace(",", "")
    # one of each at the broker, by its own records
    assert [len(_rows(control, account, t)) for t in (SELL_SECU_REPAY, DIRECT_CASH_REPAY)] == [1, 1]
    state = control.credit(account)
    assert [round(x["real_balance"], 2) for x in state["compacts"]] == [4_009.04]


async def test_sigkill_during_a_repayment_leaves_exactly_one_repayment_at_the_broker(credit_stack, redis_url,
                                                                                     account):
    start, control = credit_stack
    proc = start()
    coid = "repay-kill-1"
    async with pl.Client(redis_url, account, strategy="margin") as client:
        await _served(client)
        await client.place_order("600000.SH", pl.Side.FIN_BUY, 1000, 10.00)
        # the counter takes the repayment at once but its answer reaches the executor 3 s later: the executor is
        # killed between the broker having it and the executor knowing it
        assert control.wait_applied(control.delay_pushes(3000), timeout=15)
        sent = asyncio.create_task(client.repay_cash("600000.SH", 1000.51, client_order_id=coid, timeout=2.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not [r for r in control.orders(account) if r["order_remark"] == coid]:
            assert loop.time() < deadline, "the repayment never reached the broker"
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with pytest.raises((pl.OutcomeUnknown, pl.CommandTimeout)):
            await sent
        assert control.wait_applied(control.reset_faults(), timeout=15)

        start()  # same state dir: recovery finds the intent and the broker's order
        await _served(client)
        again = await client.repay_cash("600000.SH", 1000.51, client_order_id=coid)  # the strategy retries
        assert again.duplicate and again.client_order_id == coid
        outcome = await client.query_outcome(coid)
        assert outcome.state is c.OutcomeState.PLACED and outcome.order_id == again.order_id
        with pytest.raises(pl.Conflict):  # the same id for another amount: nothing new is repaid
            await client.repay_cash("600000.SH", 1000.52, client_order_id=coid)
    (row,) = [r for r in control.orders(account) if r["order_remark"] == coid]
    assert (row["order_type"], row["order_status"]) == (DIRECT_CASH_REPAY, 56)
    assert len(_rows(control, account, DIRECT_CASH_REPAY)) == 1
    (compact,) = control.credit(account)["compacts"]
    assert (round(compact["repaid_balance"], 2), round(compact["real_balance"], 2)) == (1_000.51, 8_999.49)
    assert control.cash(account)[0] == round(100_000 - 5.10 - 1_000.51, 2)


async def test_the_executor_refuses_new_debt_below_its_maintenance_ratio(credit_stack, redis_url, account):
    start, control = credit_stack
    start("--risk", json.dumps({"min_maintenance_ratio_for_new_debt": 20, "max_financing_per_order_cny": 10_000}))
    async with pl.Client(redis_url, account, strategy="margin") as client:
        await _served(client)
        with pytest.raises(pl.RiskRejected) as big:
            await client.place_order("600000.SH", pl.Side.FIN_BUY, 1100, 10.00)
        assert big.value.details == {"rule": "max_financing_per_order_cny", "limit": 10_000, "value": 11_000.0}
        await client.place_order("600000.SH", pl.Side.FIN_BUY, 1000, 10.00)  # no debt yet: no ratio to fall below
        with pytest.raises(pl.RiskRejected) as low:  # ratio now (99,994.90 + 10,000) / 10,000 = 10.9995 < 20
            await client.place_order("600000.SH", pl.Side.FIN_BUY, 100, 10.00)
        assert low.value.details == {"rule": "min_maintenance_ratio_for_new_debt", "limit": 20, "value": 10.9995}
        await client.repay_cash("600000.SH", 100.00)  # repaying is never refused
    assert [len(_rows(control, account, t)) for t in (FIN_BUY, DIRECT_CASH_REPAY)] == [1, 1]

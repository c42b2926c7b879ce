"""Attacks through a real executor (`xtqueue executor --broker sim`, the wheel's own XtQuantTrader) on the push
orders and late refusals MiniQMT produces, switched on in the simulated MiniQMT from this process (SimControl):
pushes before the placement answer, trades before their order update, a cancel taken (0) and refused later, and an
error text nobody has seen before. Every count comes from that MiniQMT's own records."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support import miniqmt_and_executor

from executor.sim import SimControl
from producer_lib import BrokerRejected, Client, contract as c

STRATEGY = "pushorder"


@pytest.fixture
def stack(redis_url, account, tmp_path, redis_client):
    with miniqmt_and_executor(redis_url, account, tmp_path) as (executor, control):
        yield control


async def _events_until(client: Client, mark: str, predicate, timeout_s: float = 20.0) -> list[c.EventMessage]:
    """Every event after ``mark`` up to and including the first that matches ``predicate``."""
    seen: list[c.EventMessage] = []

    async def scan():
        async for event in client.events(from_id=mark):
            assert isinstance(event, c.EventMessage), f"unexpected gap: {event!r}"
            seen.append(event)
            if predicate(event):
                return seen
    return await asyncio.wait_for(scan(), timeout_s)


def _rows_by_remark(control: SimControl, account: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in control.orders(account):
        out.setdefault(r["order_remark"], []).append(r)
    return out


def _final_status(events: list[c.EventMessage], order_id: int) -> c.OrderStatus | None:
    ups = [e.data.order for e in events if e.type == "order_updated" and e.order_id == order_id]
    return ups[-1].status if ups else None


@pytest.mark.parametrize("answer_last, trades_first", [(True, False), (False, True), (True, True)],
                         ids=["pushes-before-answer", "trade-before-order", "both"])
async def test_pushes_out_of_order_no_duplicate_right_statuses_each_fill_once(stack, redis_url, account,
                                                                               answer_last, trades_first):
    control = stack
    assert control.wait_applied(control.push_order(answer_last=answer_last, trades_first=trades_first), timeout=15)
    async with Client(redis_url, account, strategy=STRATEGY) as client:
        await client.ping()
        mark = await client.last_event_id()
        # concurrently: filled at once, resting, refused by the counter (above the +10% limit)
        buys = [client.buy("600000.SH", 100, 10.00) for _ in range(4)] + \
               [client.buy("600000.SH", 100, 9.50) for _ in range(3)] + \
               [client.buy("600000.SH", 100, 12.00) for _ in range(2)]
        results = await asyncio.gather(*buys, return_exceptions=True)
        filled, resting, refused = results[:4], results[4:7], results[7:]
        assert all(isinstance(r, c.OrderAck) for r in filled + resting), results
        assert all(isinstance(r, BrokerRejected) for r in refused), refused
        for ack in resting:
            await client.cancel_order(ack.order_id)
        # a price move fills nothing (all resting ones are cancelled); a marker order closes the scenario
        marker = await client.buy("600000.SH", 100, 10.00)
        events = await _events_until(client, mark, lambda e: e.type == "order_updated" and e.order_id ==
                                     marker.order_id and e.data.order.status is c.OrderStatus.SUCCEEDED)
        rows = _rows_by_remark(control, account)
        coids = [r.client_order_id for r in filled + resting + refused] + [marker.client_order_id]
        # no order twice at MiniQMT: each client order id is exactly one of MiniQMT's rows, and nothing else is there
        assert sorted(rows) == sorted(coids) and all(len(v) == 1 for v in rows.values())
        # final statuses: the executor's view (events, query) is MiniQMT's
        broker = {coid: rows[coid][0] for coid in coids}
        for ack in filled + [marker]:
            assert broker[ack.client_order_id]["order_status"] == 56
            assert _final_status(events, ack.order_id) is c.OrderStatus.SUCCEEDED
        for ack in resting:
            final = await _events_until(client, mark, lambda e: e.type == "order_updated" and e.order_id ==
                                        ack.order_id and e.data.order.status is c.OrderStatus.CANCELED)
            assert final and broker[ack.client_order_id]["order_status"] == 54
        for exc in refused:
            assert broker[exc.client_order_id]["order_status"] == 57
        queried = {o.client_order_id: o.status for o in await client.query_orders()}
        assert {k: queried[k] for k in coids} == {
            coid: {56: c.OrderStatus.SUCCEEDED, 54: c.OrderStatus.CANCELED, 57: c.OrderStatus.JUNK}[
                broker[coid]["order_status"]] for coid in coids}
        # the switch was on: in the published stream (the push order the executor heard) the answer comes after the
        # order's pushes, and/or its fill before its first order update
        for ack in filled:
            kinds = [e.type for e in events if e.order_id == ack.order_id]
            if answer_last:
                assert kinds.index("order_filled") < kinds.index("order_responded"), kinds
            if trades_first:
                assert kinds.index("order_filled") < kinds.index("order_updated"), kinds
        # fills: each of MiniQMT's trades published exactly once, nothing else
        fills = Counter(e.data.trade.trade_id for e in events if e.type == "order_filled")
        assert fills == Counter(t["traded_id"] for t in control.trades(account))
        assert len(fills) == 5


async def test_a_cancel_taken_then_refused_is_reported_as_refused_not_cancelled(stack, redis_url, account):
    control = stack
    text = "[COUNTER] [-990277][撤单失败：交易所拒绝撤单（测试）]"
    async with Client(redis_url, account, strategy=STRATEGY) as client:
        await client.ping()
        mark = await client.last_event_id()
        ack = await client.buy("600000.SH", 100, 9.50)
        assert control.wait_applied(control.refuse_cancels_late(1, message=text, after_ms=150), timeout=15)
        taken = await client.cancel_order(ack.order_id)
        assert isinstance(taken, c.CancelAck)  # MiniQMT's 0: the request was taken, nothing more
        events = await _events_until(client, mark, lambda e: e.type == "cancel_rejected"
                                     and e.order_id == ack.order_id)
        rejected = events[-1]
        assert (rejected.client_order_id, rejected.data.error_msg) == (ack.client_order_id, text)
        assert _final_status(events, ack.order_id) is not c.OrderStatus.CANCELED
        (row,) = [r for r in control.orders(account) if r["order_remark"] == ack.client_order_id]
        assert row["order_status"] == 50
        (mine,) = await client.query_orders(client_order_id=ack.client_order_id)
        assert mine.status is c.OrderStatus.REPORTED
        # it keeps working: a price move fills it, the fill is published once, the order ends SUCCEEDED, not CANCELED
        assert control.wait_applied(control.set_price("600000.SH", 9.50), timeout=15)
        events = await _events_until(client, mark, lambda e: e.type == "order_updated" and e.order_id ==
                                     ack.order_id and e.data.order.status is c.OrderStatus.SUCCEEDED)
        assert not [e for e in events if e.type == "order_updated" and e.order_id == ack.order_id
                    and e.data.order.status in (c.OrderStatus.CANCELED, c.OrderStatus.PART_CANCEL)]
        assert [e.data.trade.trade_id for e in events if e.type == "order_filled" and e.order_id == ack.order_id] \
            == [t["traded_id"] for t in control.trades(account) if t["order_id"] == ack.order_id]
        assert len(control.orders(account)) == 1


@pytest.mark.parametrize("answer_last", [False, True], ids=["answer-first", "answer-last"])
async def test_an_opaque_counter_text_reaches_the_strategy_unchanged(stack, redis_url, account, answer_last):
    """The executor never parses broker texts (executor/broker/xt/parsing.py passes them through): a text and an id
    it has never seen come back verbatim, typed as a broker refusal."""
    control = stack
    text = "[COUNTER] [-880123][营业部风控：该客户当日禁止买入（柜台自定义，测试用）] 附加说明 / extra"
    assert control.wait_applied(control.push_order(answer_last=answer_last), timeout=15)
    assert control.wait_applied(control.counter_refuse_next(1, text=text, error_id=-880123), timeout=15)
    async with Client(redis_url, account, strategy=STRATEGY) as client:
        await client.ping()
        mark = await client.last_event_id()
        with pytest.raises(BrokerRejected) as refused:
            await client.buy("600000.SH", 100, 10.00)
        assert refused.value.broker_message == text
        (row,) = control.orders(account)
        assert (row["order_remark"], row["order_status"], row["status_msg"]) == (
            refused.value.client_order_id, 57, text)
        events = await _events_until(client, mark, lambda e: e.type == "order_rejected")
        assert (events[-1].data.error_id, events[-1].data.error_msg) == (-880123, text)
        # the next order is not affected
        assert (await client.buy("600000.SH", 100, 10.00)).order_id > row["order_id"]

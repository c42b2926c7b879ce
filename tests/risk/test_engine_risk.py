"""Risk limits inside the executor: a refusal is a typed risk_rejected reply naming the rule and the numbers,
nothing reaches the broker, the journal records REFUSED; counters survive a restart; open orders and sellable
volume come from the broker."""

from __future__ import annotations

from fakes import SILENT, FakeBroker, order

from producer_lib import contract as c

E = c.ErrorCode


async def _answers(ex, client, *cmds):
    """Send ``cmds``, serve them, return their replies in the order sent (replies arrive in completion order)."""
    ids = [await client.send(cmd) for cmd in cmds]
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(len(ids))}
    return [reps[i] for i in ids]


async def test_refusal_is_typed_and_nothing_reaches_the_broker(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker, risk={"max_order_volume": 1000})
    ok = await client.send(order("at", volume=1000))
    over = await client.send(order("over", volume=1100))
    await ex.run_until_idle()
    reps = {rep.command_id: rep for rep in await client.replies(2)}
    assert reps[ok].ok
    err = reps[over].error
    assert err.code is E.RISK_REJECTED
    assert err.details == {"rule": "max_order_volume", "limit": 1000, "value": 1100}
    assert "max_order_volume" in err.message and "nothing was placed" in err.message
    assert [p.client_order_id for p in broker.placed] == ["at"]
    assert ex.journal.get("over").state is c.OutcomeState.REFUSED
    # A repeat of the refused id gets the same refusal (first outcome), never a broker call.
    await client.send(order("over", volume=1100))
    await ex.run_until_idle()
    (again,) = await client.replies(1)
    assert again.error.code is E.RISK_REJECTED and len(broker.placed) == 1


async def test_daily_counters_survive_a_restart(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker, risk={"max_daily_orders": 2})
    reps = await _answers(ex, client, order("d1"), order("d2"))
    await ex.stop()
    ex2 = make_executor(broker, risk={"max_daily_orders": 2})
    reps += await _answers(ex2, client, order("d3"))
    assert [r.ok for r in reps] == [True, True, False]
    assert reps[2].error.details == {"rule": "max_daily_orders", "limit": 2, "value": 3}
    assert len(broker.placed) == 2


async def test_open_orders_reconciled_at_start_and_tracked_from_events(make_executor, client):
    broker = FakeBroker()
    # Two orders already open at the broker (placed by a predecessor or by hand), one finished.
    for oid, status in ((501, c.OrderStatus.REPORTED), (502, c.OrderStatus.PART_SUCC),
                        (503, c.OrderStatus.SUCCEEDED)):
        broker.orders[oid] = c.OrderReport(order_id=oid, code="600000.SH", side=c.Side.BUY, order_type=23,
                                           volume=100, price=10.0, price_type=50, status=status, status_code=50)
    ex = make_executor(broker, risk={"max_open_orders": 3})
    a, b = await _answers(ex, client, order("o1"),  # 2 open + 1 = 3: at
                          order("o2"))  # 4: over
    assert a.ok and b.error.details == {"rule": "max_open_orders", "limit": 3, "value": 4}
    await client.send(c.CancelOrder(order_id=501))  # an order finishes -> room for one more
    await ex.run_until_idle()
    await client.replies(1)
    await client.send(order("o3"))
    await ex.run_until_idle()
    (rep,) = await client.replies(1)
    assert rep.ok


async def test_sells_limited_to_sellable_volume(make_executor, client):
    broker = FakeBroker(script={"s1": SILENT})  # FakeBroker holds 600000.SH can_use 100, 000001.SZ can_use 0
    ex = make_executor(broker, risk={"sell_within_sellable": True, "positions_cache_ms": 60_000})
    reps = await _answers(ex, client, order("s1", side=c.Side.SELL, volume=60),
                          order("s2", side=c.Side.SELL, volume=41),  # 100 - 60 in flight = 40 left: over
                          order("s3", side=c.Side.SELL, volume=40),  # at
                          order("s4", code="000001.SZ", side=c.Side.SELL, volume=100))
    assert [r.ok for r in reps] == [True, False, True, False]
    assert reps[1].error.details == {"rule": "sellable_volume", "limit": 40, "value": 41}
    assert reps[3].error.details == {"rule": "sellable_volume", "limit": 0, "value": 100}
    assert [p.client_order_id for p in broker.placed] == ["s1", "s3"]


async def test_price_band_from_the_position_last_price(make_executor, client, monkeypatch):
    broker = FakeBroker()

    async def positions():
        return [c.PositionReport(code="600000.SH", volume=100, can_use_volume=100, last_price=10.0)]
    monkeypatch.setattr(broker, "query_positions", positions)
    ex = make_executor(broker, risk={"price_band_pct": 2, "sell_within_sellable": True})
    reps = await _answers(ex, client, order("p0", side=c.Side.SELL, volume=100, price=9.80),  # floor; positions
                          order("p1", price=10.20),  # at the cap
                          order("p2", price=10.21))  # over
    assert [r.ok for r in reps] == [True, True, False]
    assert reps[2].error.details == {"rule": "price_band_pct", "limit": 10.2, "value": 10.21}


async def test_risk_flag_and_env_take_json(tmp_path, monkeypatch):
    from executor.config import ExecutorSettings

    monkeypatch.setenv("XTQUEUE_RISK", '{"max_daily_orders": 5, "blocked_codes": ["600000.SH"]}')
    s = ExecutorSettings(state_dir=tmp_path)
    assert s.risk.max_daily_orders == 5 and s.risk.blocked_codes == ["600000.SH"]


async def test_a_credit_side_on_a_stock_account_is_refused_before_the_broker(make_executor, client):
    broker = FakeBroker()
    ex = make_executor(broker)  # account_type STOCK (the default)
    reps = await _answers(ex, client, order("margin", side=c.Side.FIN_BUY),
                          order("repay", side=c.Side.DIRECT_CASH_REPAY, volume=None, price=None, amount=100.0),
                          order("plain"))
    for rep in reps[:2]:
        assert rep.error.code is E.INVALID_REQUEST
        assert "needs a CREDIT" in rep.error.message and rep.error.details == {"account_type": "STOCK"}
    assert reps[2].ok
    assert [p.client_order_id for p in broker.placed] == ["plain"]
    assert ex.journal.get("margin").state is c.OutcomeState.REFUSED

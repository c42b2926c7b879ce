"""Risk gaps of issue #10 (defect 10), each attacked through the public client against a real executor on the
simulator; what reached the broker is read from the simulator's own records.

* a market order skipped the price band even with ``price_band_without_reference = "refuse"``;
* an order answered outcome_unknown dropped out of the open-order count (``max_open_orders`` under-counted);
* an order list older than the executor's own acks (MiniQMT answers from its cache) lowered the count;
* a code written with non-ASCII digits passed validation, and blocked codes and boards did not match it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import Client as RawClient

import producer_lib as pl
from producer_lib import contract as c


@dataclass
class Rig:
    ex: Any
    client: pl.Client
    ctl: Any  # SimControl: the simulator's records and faults
    engine: Any  # the simulator's engine (in-process faults that report back)
    account: str

    def orders(self) -> list[dict]:
        return self.ctl.orders(self.account)


@pytest.fixture
async def sim_rig(settings_for, tmp_path, account):
    """``rig(**settings)``: an executor on the simulator, serving in the background, and a public client."""
    from executor.app import build_executor
    from executor.broker import sim_config_for
    from executor.sim.control import SimControl
    from executor.sim.qmt import QmtSimServer

    stack = contextlib.AsyncExitStack()

    async def rig(**kw) -> Rig:
        sim_path = tmp_path / "sim"
        settings = settings_for(broker="sim", sim_path=sim_path, **{"ack_wait_ms": 2_000, **kw})
        # the simulated MiniQMT the executor connects to, in a thread of this process: its engine is in reach
        server = QmtSimServer(sim_path, sim_config_for(settings)).start()
        stack.callback(server.close)
        ex = build_executor(settings)
        serving = asyncio.create_task(ex.run())

        async def stop() -> None:
            ex.request_stop()
            await asyncio.wait_for(serving, 15)
        stack.push_async_callback(stop)
        client = await stack.enter_async_context(pl.Client(settings.redis_url, account))
        await client.ping()  # serving, broker connected
        engine = server.engine
        ctl = SimControl(sim_path)
        stack.callback(ctl.close)
        return Rig(ex, client, ctl, engine, account)

    async with stack:
        yield rig


async def _event(client: pl.Client, mark: str, predicate, timeout_s: float = 10.0) -> c.EventMessage:
    async def follow():
        async for ev in client.events(from_id=mark):
            if isinstance(ev, c.EventMessage) and predicate(ev):
                return ev
    return await asyncio.wait_for(follow(), timeout_s)


async def test_a_market_order_without_a_reference_price_is_refused_by_the_band(sim_rig):
    rig = await sim_rig(risk={"price_band_pct": 5, "price_band_without_reference": "refuse"})
    with pytest.raises(pl.RiskRejected) as err:  # no position, no fill: no reference price for 600000.SH
        await rig.client.buy("600000.SH", 100, price_type="latest")
    assert err.value.details == {"rule": "price_band_pct", "limit": 5.0, "value": None}
    assert rig.orders() == []  # the broker never saw it (with a reference it passes: tests/risk/test_rules.py)


async def test_an_order_of_unknown_outcome_counts_as_open(sim_rig):
    """A broker answering later than broker_timeout_ms: the order is answered outcome_unknown, but it is at the
    broker. It must keep counting against max_open_orders until the broker says otherwise."""
    rig = await sim_rig(broker_timeout_ms=300, probe_interval_ms=60_000, risk={"max_open_orders": 1})
    mark = await rig.client.last_event_id()
    assert rig.ctl.wait_applied(rig.ctl.delay_pushes(1_500))  # every answer and push arrives 1.5 s late
    with pytest.raises(pl.OutcomeUnknown):
        await rig.client.buy("600000.SH", 100, 9.0, client_order_id="slow-a")  # below the market: rests
    with pytest.raises(pl.RiskRejected) as err:
        await rig.client.buy("600000.SH", 100, 9.0, client_order_id="next-b")
    assert err.value.details == {"rule": "max_open_orders", "limit": 1, "value": 2}
    assert [o["order_remark"] for o in rig.orders()] == ["slow-a"]  # the broker's records: one order
    # The broker shows it, then it is cancelled: the count falls and the next order passes.
    assert rig.ctl.wait_applied(rig.ctl.delay_pushes(0))
    seen = await _event(rig.client, mark, lambda e: e.type == "order_updated" and e.client_order_id == "slow-a")
    await rig.client.cancel_order(seen.order_id)
    await _event(rig.client, mark, lambda e: e.type == "order_updated" and e.client_order_id == "slow-a"
                 and e.data.order.status.is_final)
    await rig.client.buy("600000.SH", 100, 9.0, client_order_id="next-c")
    assert [o["order_remark"] for o in rig.orders()] == ["slow-a", "next-c"]


async def test_a_stale_order_list_never_lowers_the_open_count(sim_rig):
    """MiniQMT answers order queries from its cache, which can lag behind the orders it has accepted: a
    reconciliation pass reading such a list must not forget orders the executor itself placed."""
    rig = await sim_rig(probe_interval_ms=100, risk={"max_open_orders": 2})
    faults = rig.engine.faults
    faults.stale_order_lists(1_000_000)  # from now on every order list shows the book as it is now: empty
    await rig.client.buy("600000.SH", 100, 9.0, client_order_id="rest-a")
    await rig.client.buy("600000.SH", 100, 9.0, client_order_id="rest-b")
    # Two more stale answers: the first was asked after both acks, and its pass ended before the second was asked.
    assert await asyncio.to_thread(faults.wait_stale_answers, faults.stale_given + 2, 10)
    with pytest.raises(pl.RiskRejected) as err:
        await rig.client.buy("600000.SH", 100, 9.0, client_order_id="third-c")
    assert err.value.details == {"rule": "max_open_orders", "limit": 2, "value": 3}
    assert sorted(o["order_remark"] for o in rig.orders()) == ["rest-a", "rest-b"]


@pytest.mark.parametrize("code, rule", [("６００000.SH", "blocked_codes"),  # full-width digits
                                        ("٦٠٠٠٠٠.SH", "blocked_boards")])  # Arabic-Indic digits
async def test_a_code_with_non_ascii_digits_is_refused(sim_rig, r, account, code, rule):
    rig = await sim_rig(risk={"blocked_codes": ["600000.SH"], "blocked_boards": ["main"]})
    with pytest.raises((pl.InvalidRequest, ValueError)):  # the public client refuses it before sending
        await rig.client.buy(code, 100, 10.5)
    # A strategy writing the entry itself (its ACL allows XADD to the command stream) gets it refused too.
    raw = RawClient(r, account, strategy="hostile")  # on its own command stream
    cmd = c.PlaceOrder.model_construct(client_order_id="nonascii", code=code, side=c.Side.BUY, volume=100,
                                       price_type=c.PriceType.LIMIT, price=10.5, strategy="")
    await raw.send(cmd)
    (rep,) = await raw.replies(1, 10_000)
    assert rep.error is not None and rep.error.code is c.ErrorCode.INVALID_REQUEST, (rule, rep)
    assert rig.orders() == []

"""Ownership: a strategy acts only on its own orders. A hostile strategy (mallory) with its own generated ACL user
and the public client tries to cancel, ask about and squat the orders of an honest one (beta) on a real redis-server
loaded with the generated ACL file and a real executor process on the simulator. Whether an order is still working
comes from the simulator's own store.

On the code before the fix, mallory's cancels went through, query_outcome named beta's order, and a conflict's
``details.first`` showed the other order's fields (each test below fails there)."""

from __future__ import annotations

import re

import pytest
from security_helpers import ExecutorProc
from test_identity import ACCOUNT, client, connect, generated, server, start_executor, until  # noqa: F401

import producer_lib as pl
from executor.sim.control import SimControl
from producer_lib import contract as c

REPORTED, CANCELED = 50, 54  # xtconstant order statuses, as the simulator stores them
PRICE = 9.5  # a buy below the simulator's 10.00 for 600000.SH: rests, working, until cancelled


def rows(proc: ExecutorProc, coid: str) -> list[dict]:
    """The simulated broker's orders carrying ``coid`` as their remark (its own records)."""
    return [row for row in SimControl(proc.workdir / "sim").orders(ACCOUNT) if row["order_remark"] == coid]


async def started(proc: ExecutorProc, times: int = 1) -> None:
    await until(lambda: proc.log_path.read_text(errors="replace").count("executor started") >= times,
                "the executor to start", proc)


def tells_nothing(err: pl.XtqueueError, order_id: int | None, *secrets: str) -> None:
    """Neither the message, the details nor the order id of the error carry anything of the other order (the
    details may hold only what the caller itself sent: ``this``)."""
    text = f"{err.message} {err.details} {err.broker_message or ''}"
    assert err.order_id is None and set(err.details) <= {"this"}, err
    if order_id is not None:
        assert not re.search(rf"(?<![\w.-]){order_id}(?![\w.-])", text), (order_id, text)
    for secret in secrets:
        assert secret not in text, (secret, text)


async def test_a_strategy_cannot_cancel_or_learn_another_strategys_order(server, generated, tmp_path):
    proc = start_executor(server, generated, tmp_path / "ex")
    try:
        async with client(server, generated, "beta") as beta, client(server, generated, "mallory") as mallory:
            await started(proc)
            ack = await beta.buy("600000.SH", 100, PRICE, client_order_id="beta-own-1", timeout=30)
            await until(lambda: [r["order_status"] for r in rows(proc, "beta-own-1")] == [REPORTED],
                        "beta's order to rest at the broker", proc)

            with pytest.raises(pl.NotFound) as by_coid:
                await mallory.cancel_order(client_order_id="beta-own-1")
            with pytest.raises(pl.NotFound) as by_id:
                await mallory.cancel_order(ack.order_id)
            # ... answered exactly as orders that do not exist
            with pytest.raises(pl.NotFound) as no_coid:
                await mallory.cancel_order(client_order_id="no-such-order")
            with pytest.raises(pl.NotFound) as no_id:
                await mallory.cancel_order(ack.order_id + 1000)
            assert by_coid.value.message == no_coid.value.message.replace("no-such-order", "beta-own-1")
            assert by_id.value.message == no_id.value.message.replace(str(ack.order_id + 1000), str(ack.order_id))
            tells_nothing(by_coid.value, ack.order_id, "600000", str(PRICE))
            tells_nothing(by_id.value, None, "600000", str(PRICE), "beta-own-1")

            outcome = await mallory.query_outcome("beta-own-1")
            assert (outcome.state, outcome.order_id, outcome.order) == (c.OutcomeState.NOT_FOUND, None, None)
            assert outcome.message == (await mallory.query_outcome("no-such-order")).message
            assert await mallory.query_orders(client_order_id="beta-own-1") == []
            assert await mallory.query_orders(order_id=ack.order_id) == []

            # Still working at the broker, never asked to cancel.
            assert [r["order_status"] for r in rows(proc, "beta-own-1")] == [REPORTED]

            # Its owner may.
            mine = await beta.query_outcome("beta-own-1")
            assert (mine.state, mine.order_id) == (c.OutcomeState.PLACED, ack.order_id)
            assert [o.order_id for o in await beta.query_orders(client_order_id="beta-own-1")] == [ack.order_id]
            await beta.cancel_order(client_order_id="beta-own-1")
            await until(lambda: [r["order_status"] for r in rows(proc, "beta-own-1")] == [CANCELED],
                        "beta's own cancel", proc)
    finally:
        proc.stop()


async def test_a_squatted_client_order_id_reveals_nothing(server, generated, tmp_path):
    proc = start_executor(server, generated, tmp_path / "ex")
    try:
        async with client(server, generated, "beta") as beta, client(server, generated, "mallory") as mallory:
            await started(proc)
            # mallory takes an id beta will use (predictable ids can be taken: docs/security.md)
            squat = await mallory.buy("600000.SH", 300, 9.6, client_order_id="beta-next", timeout=30)
            with pytest.raises(pl.Conflict) as taken:
                await beta.buy("600000.SH", 100, PRICE, client_order_id="beta-next", timeout=30)
            tells_nothing(taken.value, squat.order_id, "300", "9.6", "mallory")
            assert [(r["order_volume"], r["strategy_name"]) for r in rows(proc, "beta-next")] == [(300, "mallory")]

            # beta's order already placed: mallory re-sends its id (other fields, then the same fields)
            ack = await beta.buy("600000.SH", 100, PRICE, client_order_id="beta-own-2", timeout=30)
            with pytest.raises(pl.Conflict) as other_fields:
                await mallory.buy("000001.SZ", 200, 11.0, client_order_id="beta-own-2", timeout=30)
            with pytest.raises(pl.Conflict) as same_fields:
                await mallory.buy("600000.SH", 100, PRICE, client_order_id="beta-own-2", timeout=30)
            for err in (other_fields.value, same_fields.value):
                tells_nothing(err, ack.order_id, "|beta")
            assert "600000" not in str(other_fields.value.details)
            assert len(rows(proc, "beta-own-2")) == 1

            # Its owner still sees its own conflict in full.
            with pytest.raises(pl.Conflict) as own:
                await beta.buy("600000.SH", 200, PRICE, client_order_id="beta-own-2", timeout=30)
            assert "600000.SH|buy|100|" in own.value.details["first"]
    finally:
        proc.stop()


async def test_a_predecessors_orders_belong_to_the_strategy_the_broker_records(server, generated, tmp_path):
    """An executor with another state dir has no journal record of the order: the broker's strategy_name (what
    the placing executor sent: the stream's owner) decides. The simulator returns it on order rows."""
    first = start_executor(server, generated, tmp_path / "ex")
    try:
        async with client(server, generated, "beta") as beta:
            await started(first)
            ack = await beta.buy("600000.SH", 100, PRICE, client_order_id="beta-old-1", timeout=30)
    finally:
        first.stop()
    # the same simulated broker, a fresh state dir: nothing of the first executor's journal
    second = start_executor(server, generated, tmp_path / "ex", "--state-dir", str(tmp_path / "state-2"))
    try:
        async with client(server, generated, "beta") as beta, client(server, generated, "mallory") as mallory:
            await started(second, 2)
            with pytest.raises(pl.NotFound):
                await mallory.cancel_order(client_order_id="beta-old-1")
            with pytest.raises(pl.NotFound):
                await mallory.cancel_order(ack.order_id)
            assert (await mallory.query_outcome("beta-old-1")).state is c.OutcomeState.NOT_FOUND
            with pytest.raises(pl.OutcomeUnknown) as squat:  # never "placed" to mallory, never placed again
                await mallory.buy("600000.SH", 100, PRICE, client_order_id="beta-old-1", timeout=30)
            tells_nothing(squat.value, ack.order_id, "600000", str(PRICE))
            assert [r["order_status"] for r in rows(second, "beta-old-1")] == [REPORTED]

            mine = await beta.query_outcome("beta-old-1")
            assert (mine.state, mine.order_id) == (c.OutcomeState.PLACED, ack.order_id)
            again = await beta.buy("600000.SH", 100, PRICE, client_order_id="beta-old-1", timeout=30)
            assert (again.order_id, again.duplicate) == (ack.order_id, True)
            await beta.cancel_order(ack.order_id)
            await until(lambda: [r["order_status"] for r in rows(second, "beta-old-1")] == [CANCELED],
                        "beta's own cancel", second)
    finally:
        second.stop()

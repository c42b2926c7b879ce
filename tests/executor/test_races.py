"""Orderings xtquant allows and the engine must survive: the broker's answer can reach the loop before
place_order has returned its request seq (the push thread beats the broker thread)."""

from __future__ import annotations

from producer_lib import contract as c

from fakes import JUNK_BEFORE_RETURN, REPORTED_BEFORE_RETURN, FakeBroker


async def test_rejection_that_beats_the_seq_is_a_rejection_not_an_ack(make_executor, client):
    broker = FakeBroker(script={"early-junk": JUNK_BEFORE_RETURN})
    ex = make_executor(broker)
    await client.send(c.PlaceOrder(client_order_id="early-junk", code="600000.SH", side="buy", volume=150, price=10.0))
    await ex.run_until_idle()
    (reply,) = await client.replies(1)
    assert not reply.ok and reply.error.code is c.ErrorCode.BROKER_REJECTED
    assert reply.error.broker_message == "lot size"
    assert reply.error.order_id == broker.next_order_id


async def test_status_that_beats_the_seq_acks_with_that_status(make_executor, client):
    broker = FakeBroker(script={"early-ok": REPORTED_BEFORE_RETURN})
    ex = make_executor(broker)
    await client.send(c.PlaceOrder(client_order_id="early-ok", code="600000.SH", side="buy", volume=100, price=10.0))
    await ex.run_until_idle()
    (reply,) = await client.replies(1)
    assert reply.ok and reply.result.status is c.OrderStatus.REPORTED  # not "unreported" after ack_wait_ms

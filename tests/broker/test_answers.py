"""OrderAnswers (executor/broker/answers.py): xtquant's callbacks in every order they can come in (docs/architecture.md
X6, X7) give each order exactly one result, matched by (trader instance, seq), never by seq alone."""

from __future__ import annotations

import asyncio

from executor.broker.answers import OrderAnswers, Placed, Rejected, RequestKey, Responded, Unknown
from producer_lib import contract as c

def _report(oid: int, status: c.OrderStatus = c.OrderStatus.REPORTED, msg: str = "") -> c.OrderReport:
    return c.OrderReport(order_id=oid, client_order_id="", code="600000.SH", side=c.Side.BUY, order_type=23,
                         volume=100, price=10.0, price_type=50, status=status, status_code=50, status_msg=msg)


def _answers(response_s: float = 5.0, first_status_s: float = 5.0) -> OrderAnswers:
    return OrderAnswers(response_timeout_s=response_s, first_status_wait_s=first_status_s)


class Replies:
    def __init__(self) -> None:
        self.got: list[object] = []
        self.changed = asyncio.Event()

    def __call__(self, result: object) -> None:
        self.got.append(result)
        self.changed.set()

    def results(self) -> list[object]:
        return [r for r in self.got if not isinstance(r, Responded)]

    async def wait(self, n: int, timeout_s: float = 2.0) -> list[object]:
        async def enough() -> None:
            while len(self.results()) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), timeout_s)  # bounded: a missing answer fails the test, never hangs it
        return self.results()


async def test_response_then_status_gives_one_placed_result_and_stamps_the_client_order_id():
    a, replies = _answers(), Replies()
    a.expect(RequestKey(1, 7), "coid-1", replies)
    ev = a.observe(c.OrderResponded(trader=1, seq=7, order_id=501))
    a.observe(c.OrderUpdated(order=_report(501)))
    a.observe(c.OrderUpdated(order=_report(501, c.OrderStatus.PART_SUCC)))  # later pushes change nothing
    assert ev.client_order_id == "coid-1"
    assert replies.got == [Responded(501), Placed(501, c.OrderStatus.REPORTED)]


async def test_status_push_before_the_response_is_kept_for_it():
    a, replies = _answers(), Replies()
    a.expect(RequestKey(1, 1), "x", replies)
    a.observe(c.OrderUpdated(order=_report(900, c.OrderStatus.JUNK, "price out of limits")))
    a.observe(c.OrderResponded(trader=1, seq=1, order_id=900))
    assert replies.results() == [Rejected(broker_message="price out of limits", order_id=900)]


async def test_response_before_the_seq_is_known_is_matched_when_it_is():
    a, replies = _answers(), Replies()
    early = a.observe(c.OrderResponded(trader=3, seq=4, order_id=77))  # the push thread beat the broker thread
    assert early.client_order_id == ""  # nobody's request yet
    a.observe(c.OrderRejected(order_id=77, error_id=-61, error_msg="lot size"))
    a.expect(RequestKey(3, 4), "y", replies)
    assert replies.results() == [Rejected(broker_message="lot size", error_id=-61, order_id=77)]


async def test_a_seq_of_another_trader_instance_answers_nothing():
    """Seqs restart with every XtQuantTrader: the previous instance's answer with the same seq is not ours."""
    a, replies = _answers(response_s=0.05), Replies()
    a.expect(RequestKey(2, 1), "new", replies)
    a.observe(c.OrderResponded(trader=1, seq=1, order_id=11))
    a.observe(c.OrderUpdated(order=_report(11)))
    assert await replies.wait(1) == [Unknown("the broker did not answer the order request in time")]


async def test_refused_request_has_no_order_id():
    a, replies = _answers(), Replies()
    a.expect(RequestKey(1, 2), "z", replies)
    a.observe(c.OrderResponded(trader=1, seq=2, order_id=-1, error_msg="insufficient funds"))
    assert replies.got == [Rejected(broker_message="insufficient funds")]


async def test_no_status_in_time_is_placed_unreported():
    a, replies = _answers(first_status_s=0.05), Replies()
    a.expect(RequestKey(1, 3), "w", replies)
    a.observe(c.OrderResponded(trader=1, seq=3, order_id=42))
    assert await replies.wait(1) == [Placed(42, c.OrderStatus.UNREPORTED)]


async def test_late_response_after_unknown_is_handed_on_once_more():
    a, replies = _answers(response_s=0.05), Replies()
    a.expect(RequestKey(1, 5), "late", replies)
    assert await replies.wait(1) == [Unknown("the broker did not answer the order request in time")]
    a.observe(c.OrderUpdated(order=_report(55, c.OrderStatus.PART_SUCC)))
    ev = a.observe(c.OrderResponded(trader=1, seq=5, order_id=55))
    assert ev.client_order_id == "late"
    assert replies.results()[1:] == [Placed(55, c.OrderStatus.PART_SUCC)]
    a.observe(c.OrderResponded(trader=1, seq=5, order_id=55))  # a repeat is nobody's now
    assert len(replies.results()) == 2


async def test_lost_link_answers_unknown_also_after_the_response_and_never_twice():
    a, replies = _answers(), Replies()
    a.expect(RequestKey(1, 8), "a", replies)
    a.expect(RequestKey(1, 9), "b", replies)
    a.observe(c.OrderResponded(trader=1, seq=8, order_id=80))  # "a" waits for its first status
    a.lost("link down")
    a.observe(c.OrderUpdated(order=_report(80)))  # too late for "a": it was answered unknown
    assert replies.results() == [Unknown("link down"), Unknown("link down")]
    a.observe(c.OrderResponded(trader=1, seq=9, order_id=90))  # "b"'s late answer, after the reconnect
    assert replies.results()[2:] == [Placed(90, c.OrderStatus.UNREPORTED)]

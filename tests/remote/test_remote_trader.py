"""The wheel's own XtQuantTrader, on Linux, trading through xtqueue: unmodified programs (programs.py) run in their
own interpreters through ``python -m xtqueue.compat.remote``, against a real executor on a simulated MiniQMT.
Everything is checked against MiniQMT's own records (SimControl reads its SQLite store) and the executor's event
stream, never against what the stand-in says of itself."""

from __future__ import annotations

import time

import programs
import pytest
import redis
from remote_helpers import WAIT, Program, wait_serving
from support import CutAfterXadd

from producer_lib import contract as c

ORDER_CANCELED, ORDER_SUCCEEDED, ORDER_JUNK = 54, 56, 57


def _broker(stack) -> dict[int, dict]:
    return {r["order_id"]: r for r in stack.control.orders(stack.account)}


def _events(stack) -> list[c.EventMessage]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return [c.decode_event(sid, f) for sid, f in client.xrange(c.Keys(stack.account).events)]
    finally:
        client.close()


def _cb(out: dict, kind: str, **match) -> list[dict]:
    return [e for e in out["callbacks"] if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_an_unmodified_program_trades_queries_and_hears_every_callback(stack):
    # through the launcher; the path is the program's own Windows folder, which means nothing here
    prog = Program(programs.EVERYTHING, stack.workdir, ["D:\\国金QMT交易端\\userdata_mini", stack.account],
                   stack.env(), launcher=True)
    out = prog.next(timeout=WAIT * 6)
    assert prog.wait() == 0, prog.stderr()
    broker = _broker(stack)
    assert (out["connect"], out["subscribe"]) == (0, 0)

    # every order reached MiniQMT once, with a client order id as its remark there; the program sees its own
    placed = [out[k] for k in ("filled", "resting", "async_oid", "odd_lot", "long", "split", "exact", "same_remark",
                               "by_sysid", "by_sysid_async")]
    assert all(isinstance(oid, int) and oid > 0 for oid in placed), out
    assert set(broker) == set(placed), (broker, out)  # nothing else reached MiniQMT (credit type, other account)
    assert len({r["order_remark"] for r in broker.values()}) == len(broker)  # unique at the broker
    for row in broker.values():
        c.validate_client_order_id(row["order_remark"])
    assert broker[out["filled"]]["traded_volume"] == 100
    assert broker[out["resting"]]["order_status"] == ORDER_CANCELED
    assert broker[out["async_oid"]]["order_status"] == ORDER_CANCELED
    assert broker[out["odd_lot"]]["order_status"] == ORDER_JUNK
    assert broker[out["by_sysid"]]["order_status"] == broker[out["by_sysid_async"]]["order_status"] == ORDER_CANCELED
    assert out["cancel_sysid"] == 0
    (sysid_resp,) = _cb(out, "cancel_response", seq=out["cancel_sysid_async_seq"])
    assert sysid_resp["result"] == 0

    remarks = {out["filled"]: ("buy-1", "我的策略"), out["resting"]: ("rest-1", "s2"),
               out["async_oid"]: ("async-1", "s3"), out["odd_lot"]: ("odd-1", "s4"),
               out["long"]: ("中文备注中文备注", "s5"),  # MiniQMT keeps 24 bytes: 8 Chinese characters
               out["split"]: ("a" * 22, "s5"),  # a character the 24-byte cut would split is dropped whole
               out["exact"]: ("x" * 24, "s5"), out["same_remark"]: ("buy-1", "s5"),
               out["by_sysid"]: ("sysid-1", "s8"), out["by_sysid_async"]: ("sysid-2", "s8")}
    # the remark and strategy name come back unchanged in every XtOrder / XtTrade: pushes and queries
    pushed = _cb(out, "order")
    assert {e["order_id"] for e in pushed} == set(placed)
    for e in pushed:
        assert (e["remark"], e["strategy"]) == remarks[e["order_id"]], e
        assert e["cls"] and e["m_id"] == e["order_id"]
    for o in out["orders"]:
        assert (o["remark"], o["strategy"]) == remarks[o["order_id"]] and o["cls"], o
    assert {o["order_id"] for o in out["orders"]} == set(broker)
    for t in _cb(out, "trade") + out["trades"]:
        assert (t["remark"], t["strategy"]) == remarks[t["order_id"]] and t["cls"], t
    assert sum(t["volume"] for t in _cb(out, "trade")) == sum(r["traded_volume"] for r in broker.values()) == 100
    assert out["one"]["order_id"] == out["filled"] and out["one"]["remark"] == "buy-1"
    assert out["no_order"] is None and out["no_position"] is None
    assert {o["order_id"] for o in out["cancelable"]} == {
        oid for oid, r in broker.items() if r["order_status"] in (48, 49, 50, 55)}

    # the async responses carry the program's seq; order errors follow their response, once each
    (resp,) = _cb(out, "order_response", seq=out["async_seq"])
    assert (resp["order_id"], resp["remark"], resp["strategy"]) == (out["async_oid"], "async-1", "s3")
    (odd_error,) = _cb(out, "order_error", order_id=out["odd_lot"])
    assert odd_error["remark"] == "odd-1" and odd_error["msg"]
    (cancel_resp,) = _cb(out, "cancel_response", seq=out["cancel_async_seq"])
    assert (cancel_resp["result"], cancel_resp["order_id"]) == (0, out["async_oid"])
    assert out["cancel"] == 0
    # refusals: -1 and the error callback, as xtquant; nothing reached MiniQMT for them
    assert out["credit_type"] == -1 and out["other_account"] == -1
    refused = [e for e in _cb(out, "order_error") if e["order_id"] == -1]
    assert {e["remark"] for e in refused} == {"fin", "nope"}
    (fin_error,) = [e for e in refused if e["remark"] == "fin"]  # a credit order type on a stock account
    assert "needs a CREDIT account" in fin_error["msg"] and "trades a STOCK account" in fin_error["msg"]
    (nope_error,) = [e for e in refused if e["remark"] == "nope"]
    assert "not served" in nope_error["msg"]
    assert out["cancel_unknown"] == -1 and out["cancel_filled"] == -1
    assert {e["order_id"] for e in _cb(out, "cancel_error")} == {987654321, out["filled"]}
    assert len(_cb(out, "cancel_error")) == 2  # once each

    # queries answer what MiniQMT has
    cash, frozen = stack.control.cash(stack.account)
    assert (out["asset"]["cash"], out["asset"]["m_cash"], out["asset"]["cls"]) == (cash, cash, True)
    assert out["positions"] == [dict(code="600000.SH", volume=100, can_use=0, m_volume=100)]
    assert out["position"] == dict(code="600000.SH", volume=100)
    assert out["status"] == [[stack.account, 0]] and out["infos"] == [[stack.account, 0]]
    assert out["other_asset"] is None
    assert out["async_queries"]["orders"] == out["orders"] or {
        o["order_id"] for o in out["async_queries"]["orders"]} == set(broker)
    assert out["async_queries"]["trades"] == 1 and out["async_queries"]["positions"] == 1
    assert out["async_queries"]["status"] == [0]

    # what the executor does not serve fails as a binary without the entry point does: AttributeError, loudly
    assert out["unserved"][:2] == ["NotServed", True] and "query_ipo_data" in out["unserved"][2]
    assert out["credit_on_stock"] == []  # a credit query is served; for a stock account MiniQMT has nothing
    assert out["unserved_transfer"][0] == "NotServed" and "fund_transfer" in out["unserved_transfer"][1]
    assert not _cb(out, "connected")  # xtquant never fires on_connected (docs/architecture.md X5); neither does this

    # pushes come in the order MiniQMT gave them (the executor's event stream): per order, the same statuses
    events = _events(stack)
    for oid in placed:
        streamed = [e.data.order.status_code for e in events if e.type == "order_updated" and e.order_id == oid]
        heard = [e["status"] for e in pushed if e["order_id"] == oid]
        assert heard == streamed, (oid, heard, streamed)
    # position and asset pushes: every one the executor published, in its order, as xttype objects
    positions = [(e.data.position.code, e.data.position.volume) for e in events if e.type == "position_updated"]
    heard_positions = _cb(out, "position")
    assert positions and [(e["code"], e["volume"]) for e in heard_positions] == positions
    assert all(e["cls"] and e["m_volume"] == e["volume"] for e in heard_positions)
    assets = [e.data.asset.cash for e in events if e.type == "asset_updated"]
    heard_assets = _cb(out, "asset")
    assert assets and [e["cash"] for e in heard_assets] == assets
    assert all(e["cls"] and e["m_cash"] == e["cash"] for e in heard_assets)
    # callbacks run on the wheel's one push thread
    assert len({e["thread"] for e in out["callbacks"]}) == 1

    # a program started later (another process) sees the same remarks: the executor journaled them
    later = Program(programs.QUERIES, stack.workdir, [str(stack.qmt_path), stack.account], stack.env(), "later")
    seen = later.next()
    assert later.wait() == 0, later.stderr()
    for o in seen["orders"]:
        assert (o["remark"], o["strategy"]) == remarks[o["order_id"]], o
    assert [(t["remark"], t["strategy"]) for t in seen["trades"]] == [("buy-1", "我的策略")]


def test_an_order_whose_answer_is_lost_is_placed_once(stack):
    proxy = CutAfterXadd.to(stack.redis_url, b"place_order", armed=True)
    try:
        prog = Program(programs.ONE_ORDER, stack.workdir, [str(stack.qmt_path), stack.account],
                       stack.env(redis_url=proxy.url))
        assert prog.next() == {"ready": True}
        prog.send("go")
        out = prog.next()
        assert prog.wait() == 0, prog.stderr()
    finally:
        proxy.close()
    assert proxy.cut.is_set()  # the XADD landed and its answer was lost: the client re-sent the same entry
    broker = _broker(stack)
    assert list(broker) == [out["order_id"]]  # exactly one order at MiniQMT, the one the program was told
    assert broker[out["order_id"]]["traded_volume"] == 100
    assert {e["remark"] for e in _cb(out, "order") + _cb(out, "trade")} == {"only-once"}
    assert _cb(out, "order", order_id=out["order_id"], status=ORDER_SUCCEEDED)


def test_an_executor_killed_mid_order_places_it_once_and_the_program_gets_its_id(stack):
    """MiniQMT answers slowly; the executor is SIGKILLed while the order is at MiniQMT. A new executor takes the
    entry over and finds the order in MiniQMT's list; the program's order_stock returns that order's id."""
    prog = Program(programs.ONE_ORDER, stack.workdir, [str(stack.qmt_path), stack.account],
                   {**stack.env(), "XTQUEUE_ORDER_TTL_MS": "30000"})
    assert prog.next() == {"ready": True}
    assert stack.control.wait_applied(stack.control.set_call_latency(2500), timeout=15)
    prog.send("go")
    deadline = time.monotonic() + WAIT
    while not stack.control.orders(stack.account) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stack.control.orders(stack.account), "the order never reached MiniQMT"
    stack.executor.kill()
    assert stack.control.wait_applied(stack.control.set_call_latency(0), timeout=15)
    redis.Redis.from_url(stack.redis_url).delete(c.Keys(stack.account).heartbeat)
    stack.executor.start()
    out = prog.next(timeout=WAIT * 4)
    assert prog.wait() == 0, prog.stderr()
    broker = _broker(stack)
    assert list(broker) == [out["order_id"]], (broker, out)  # one order at MiniQMT, and its id told to the program
    assert broker[out["order_id"]]["traded_volume"] == 100


def test_the_executor_going_away_fires_on_disconnected_and_a_new_trader_reconnects(stack):
    prog = Program(programs.DISCONNECT, stack.workdir, [str(stack.qmt_path), stack.account], stack.env())
    assert prog.next() == {"ready": True}
    stack.executor.kill()
    out = prog.next(timeout=WAIT * 3)
    assert out["disconnected"] is True
    assert len(_cb(out, "disconnected")) == 1
    assert out["after"] == -1  # the link is one-shot, as xtquant's: refused, nothing placed
    assert [e["remark"] for e in _cb(out, "order_error")] == ["after-dc"]
    redis.Redis.from_url(stack.redis_url).delete(c.Keys(stack.account).heartbeat)
    stack.executor.start()
    wait_serving(stack.redis_url, stack.account, executor=stack.executor)
    prog.send("go")
    again = prog.next(timeout=WAIT * 3)
    assert prog.wait() == 0, prog.stderr()
    assert (again["reconnect"], again["subscribe"]) == (0, 0)
    assert list(_broker(stack)) == [again["order_id"]]  # only the order after the reconnect reached MiniQMT


def test_miniqmt_disconnecting_from_the_executor_fires_on_disconnected(stack):
    prog = Program(programs.DISCONNECT, stack.workdir, [str(stack.qmt_path), stack.account], stack.env())
    assert prog.next() == {"ready": True}
    stack.control.disconnect(down_ms=2000)
    out = prog.next(timeout=WAIT * 3)
    assert out["disconnected"] is True and len(_cb(out, "disconnected")) == 1
    assert any(e.type == "broker_disconnected" for e in _events(stack))
    prog.send("go")
    again = prog.next(timeout=WAIT * 3)
    assert prog.wait() == 0, prog.stderr()
    assert again["reconnect"] == 0 and again["order_id"] > 0
    assert list(_broker(stack)) == [again["order_id"]]


def test_an_account_status_push_reaches_on_account_status(stack):
    """MiniQMT pushes the account's status on (re)subscription; here the test publishes one as the executor does
    (contract.encode_event on the account's event stream) while the program is subscribed."""
    prog = Program(programs.STATUS, stack.workdir, [str(stack.qmt_path), stack.account], stack.env())
    assert prog.next() == {"ready": True}
    client = redis.Redis.from_url(stack.redis_url)
    try:
        last = client.xrevrange(c.Keys(stack.account).events, count=1)
        seq = int(last[0][1][b"seq"]) + 1 if last else 1
        client.xadd(c.Keys(stack.account).events, c.encode_event(
            c.AccountStatusChanged(status=3, status_name="failed"), account=stack.account, seq=seq))
    finally:
        client.close()
    out = prog.next()
    assert prog.wait() == 0, prog.stderr()
    (status,) = _cb(out, "account_status")
    assert (status["status"], status["account"], status["cls"]) == (3, stack.account, True)


@pytest.mark.executor_flags("--lease-ms", "0")  # one executor: its freeze is not a hand-over
def test_an_order_whose_reply_never_comes_is_asked_for_and_never_sent_again(stack):
    """The executor freezes (SIGSTOP) with the order at MiniQMT and no reply written; the program's wait runs out
    (deadline + 3 s). The trader asks query_outcome until the executor, thawed, says what happened; the program's
    order_stock returns the order's id, and MiniQMT has that one order only."""
    import os
    import signal

    prog = Program(programs.ONE_ORDER, stack.workdir, [str(stack.qmt_path), stack.account],
                   {**stack.env(), "XTQUEUE_ORDER_TTL_MS": "1500"})
    assert prog.next() == {"ready": True}
    assert stack.control.wait_applied(stack.control.set_call_latency(1000), timeout=15)
    prog.send("go")
    deadline = time.monotonic() + WAIT
    while not stack.control.orders(stack.account) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stack.control.orders(stack.account), "the order never reached MiniQMT"
    os.kill(stack.executor.proc.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + WAIT
        while "asking the executor" not in prog.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "asking the executor" in prog.stderr(), prog.stderr()
    finally:
        os.kill(stack.executor.proc.pid, signal.SIGCONT)
    out = prog.next(timeout=WAIT * 3)
    assert prog.wait() == 0, prog.stderr()
    broker = _broker(stack)
    assert list(broker) == [out["order_id"]], (broker, out)
    assert {e["remark"] for e in _cb(out, "order")} == {"only-once"}

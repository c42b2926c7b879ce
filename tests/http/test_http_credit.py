"""`xtqueue http` on a margin (两融) account: an executor run with `--account-type CREDIT` on a simulated MiniQMT
started with `--credit` (its own process), driven by plain HTTP. What was placed and repaid is counted from the
simulated MiniQMT's own records (SimControl), the shapes key by key against http_shapes."""

from __future__ import annotations

import threading

import pytest
from support import miniqmt_and_executor, wait_until
from test_http_wrapper import HttpServer, _rows, get, http_server  # noqa: F401

from executor.sim import SimControl
from producer_lib import SyncClient
from xtqueue.compat import http_shapes as shapes

FIN_BUY, DIRECT_CASH_REPAY = 27, 32  # xtconstant order types


@pytest.fixture
def credit_http(tmp_path, redis_url, account, redis_client):
    """(HttpServer, SimControl): `xtqueue http` over a CREDIT executor on a margin account (cash 100,000,
    600000.SH at 10.00)."""
    with miniqmt_and_executor(redis_url, account, tmp_path, "--account-type", "CREDIT", "--probe-interval-ms", "300",
                              "--reconnect-max-backoff-ms", "300",
                              sim_args=("--credit", "--cash", "100000")) as (executor, control):
        with SyncClient(redis_url, account) as probe:
            wait_until(lambda: _serving(probe), 60, "the executor serving")
        server = HttpServer(tmp_path, redis_url, account).wait_listening()
        try:
            yield server, control
        finally:
            server.stop()


def _serving(probe: SyncClient) -> bool:
    try:
        return probe.ping().broker_connected
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _debt(control: SimControl, account: str) -> list[float]:
    return [round(x["real_balance"], 2) for x in (control.credit(account) or {}).get("compacts", [])]


def test_a_margin_buy_a_cash_repayment_retried_and_the_credit_queries(credit_http, account):
    server, control = credit_http
    base = server.base
    assert get(f"{base}/login?account_id={account}&account_type=CREDIT")[:2] == (200, {"status": 0})
    status, body, _ = get(f"{base}/login")  # the classic default is STOCK: not what this executor trades
    assert status == 400 and body["status"] == -1 and "CREDIT account" in body["error"]["message"]

    # 融资买入 through the classic order route: direction names the credit side
    status, placed, _ = get(f"{base}/place_order?stock_code=600000.SH&direction=fin_buy&volumn=1000&price=10")
    assert status == 200 and list(placed) == ["order_id"]
    (row,) = _rows(control, account, order_id=placed["order_id"])
    assert (row["order_type"], row["order_volume"]) == (FIN_BUY, 1000)
    wait_until(lambda: _debt(control, account) == [10_000.0], 15, "the compact")
    assert get(f"{base}/query/order?order_id={placed['order_id']}")[1][0]["委托类型"] == FIN_BUY

    status, detail, _ = get(f"{base}/query/credit_detail")
    assert status == 200 and list(detail) == list(shapes.DETAIL_KEYS.values())
    assert (detail["融资负债"], detail["可用保证金"]) == (10_000.0, 89_994.90)
    status, compacts, _ = get(f"{base}/query/stk_compacts")
    assert status == 200 and [list(x) for x in compacts] == [list(shapes.COMPACT_KEYS.values())]
    assert (compacts[0]["股票代码"], compacts[0]["未还合约数量"], compacts[0]["未还合约金额"]) == \
        ("600000.SH", 1000, 10_000.0)

    # 直接还款 with a client order id; the retry of a GET whose answer was lost, and two more at once: one repayment
    url = f"{base}/repay_cash?stock_code=600000.SH&amount=1000.51&client_order_id=repay-web-1"
    status, first, headers = get(url)
    assert (status, first) == (200, {"order_id": first["order_id"], "client_order_id": "repay-web-1",
                                     "duplicate": False})
    assert headers["x-xtqueue-client-order-id"] == "repay-web-1"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(get(url))) for _ in range(2)]
    for t in threads:
        t.start()
    again = get(url)
    for t in threads:
        t.join(30)
    assert len(results) == 2
    for status, body, _ in [again, *results]:
        assert (status, body) == (200, {"order_id": first["order_id"], "client_order_id": "repay-web-1",
                                        "duplicate": True})
    status, body, _ = get(url.replace("1000.51", "1000.52"))  # the same id for another amount: refused
    assert status == 409 and body["order_id"] == -1 and body["error"]["code"] == "conflict"
    (repaid,) = _rows(control, account, order_type=DIRECT_CASH_REPAY)
    assert (repaid["order_id"], repaid["order_remark"], repaid["order_status"]) == \
        (first["order_id"], "repay-web-1", 56)
    assert _debt(control, account) == [round(10_000.0 - 1_000.51, 2)]
    assert get(f"{base}/query/stk_compacts")[1][0]["未还合约金额"] == 8_999.49
    assert get(f"{base}/query/credit_detail")[1]["融资负债"] == 8_999.49

    subjects = {x["股票代码"]: x for x in get(f"{base}/query/credit_subjects")[1]}
    assert list(subjects["600000.SH"]) == list(shapes.SUBJECT_KEYS.values())
    assert (subjects["600000.SH"]["融资保证金比例"], subjects["600000.SH"]["融券保证金比例"]) == (1.0, 1.2)
    lendable = {x["股票代码"]: x["融券可融数量"] for x in get(f"{base}/query/credit_slo_code")[1]}
    assert lendable["600000.SH"] == 100_000
    haircuts = {x["股票代码"]: x["担保品折算比例"] for x in get(f"{base}/query/credit_assure")[1]}
    assert haircuts["600000.SH"] == 0.70

    # a cash repayment has an amount: not an order with a volume
    status, body, _ = get(f"{base}/place_order?stock_code=600000.SH&direction=direct_cash_repay&volumn=100")
    assert status == 400 and body["order_id"] == -1 and "/repay_cash" in body["error"]["message"]
    assert len(control.orders(account)) == 2  # the margin buy and the one repayment


def test_credit_requests_to_an_executor_trading_a_stock_account_are_refused(http_server, account):
    server, control = http_server
    base = server.base
    status, body, _ = get(f"{base}/login?account_type=CREDIT")
    assert status == 400 and body["status"] == -1 and "STOCK account" in body["error"]["message"]
    for path in ("place_order?stock_code=600000.SH&direction=fin_buy&volumn=100&price=10",
                 "repay_cash?stock_code=600000.SH&amount=100"):
        status, body, _ = get(f"{base}/{path}")
        assert status == 400 and body["order_id"] == -1, body
        assert "needs a CREDIT" in body["error"]["message"] and "STOCK account" in body["error"]["message"]
    for route in ("credit_detail", "stk_compacts", "credit_subjects", "credit_slo_code", "credit_assure"):
        status, body, _ = get(f"{base}/query/{route}")
        assert status == 400 and body["error"]["code"] == "invalid_request", route
    assert control.orders(account) == []  # nothing reached the broker

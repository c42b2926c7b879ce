"""`xtqueue http` against a real executor on the simulator, driven by plain HTTP (urllib) as the classic wrapper's
scripts drive it (requests.get(url).json()). Shapes are asserted key by key against the classic wrapper's
(xtqueue/compat/http_shapes.py); what was placed is counted from the simulator's own records (SimControl)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from executor.sim import SimControl
from support import ExecutorProcess, child_env, free_port, redis_server_binary, wait_until

ORDER_KEYS = ["股票代码", "委托数量", "成交数量", "委托价格", "委托类型", "委托状态", "订单编号", "柜台合同编号",
              "报单时间"]
TRADE_KEYS = ["股票代码", "委托类型", "成交数量", "成交均价", "成交金额", "成交时间", "成交编号", "柜台合同编号"]
HOLDING_KEYS = ["股票代码", "持仓", "可用持仓", "成本", "持仓市值"]
ASSET_KEYS = ["总资产", "现金", "持仓市值", "冻结金额"]
STOCK_BUY, STOCK_SELL = 23, 24  # xtconstant order_type
TOKEN = "t0ken-for-the-http-tests-0123456789"


class HttpServer:
    """`xtqueue http` in its own process, on a free loopback port."""

    def __init__(self, tmp_path: Path, redis_url: str, account: str, *args: str, env: dict[str, str] | None = None,
                 name: str = "http") -> None:
        self.port = free_port()
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account, "http",
             "--port", str(self.port), *args], stdout=self._log, stderr=subprocess.STDOUT, env=child_env(clean=True, **(env or {})))
        self.base = f"http://127.0.0.1:{self.port}/xtquant/trade"

    def wait_listening(self, timeout_s: float = 20.0) -> HttpServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"xtqueue http did not listen within {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 20.0) -> tuple[int, object, dict]:
    """(HTTP status, JSON body, headers) of one GET; error statuses too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8")), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode("utf-8")), dict(exc.headers)


@pytest.fixture
def http_server(tmp_path, redis_url, account, executor_process):
    server = HttpServer(tmp_path, redis_url, account).wait_listening()
    yield server, executor_process[1]
    server.stop()


def _rows(control: SimControl, account: str, **match) -> list[dict]:
    return [r for r in control.orders(account) if all(r[k] == v for k, v in match.items())]


def test_the_classic_clients_requests_get_the_classic_shapes(http_server, account):
    server, control = http_server
    base = server.base

    assert get(f"{base}/login?account_id={account}")[:2] == (200, {"status": 0})

    status, asset, _ = get(f"{base}/query/assets")
    assert status == 200 and list(asset) == ASSET_KEYS
    assert (asset["现金"], asset["冻结金额"]) == pytest.approx(control.cash(account))

    # The classic client's order: stock_code, price, volumn; direction defaults to buy. A marketable buy fills.
    status, placed, headers = get(f"{base}/place_order?stock_code=600000.SH&price=10.5&volumn=100")
    assert status == 200 and list(placed) == ["order_id"]  # exactly the classic body
    (row,) = _rows(control, account, order_id=placed["order_id"])
    assert (row["stock_code"], row["order_type"], row["order_volume"], row["price"], row["traded_volume"]) == \
        ("600000.SH", STOCK_BUY, 100, 10.5, 100)
    assert row["order_remark"] == headers["x-xtqueue-client-order-id"]  # the order's client order id, for outcome

    # A resting buy below the market, then its cancel: the classic cancel body, then 委托状态 已撤.
    resting = get(f"{base}/place_order?stock_code=600000.SH&direction=buy&price=9.5&volumn=200")[1]["order_id"]
    status, one, _ = get(f"{base}/query/order?order_id={resting}")
    assert status == 200 and len(one) == 1 and list(one[0]) == ORDER_KEYS
    (rest_row,) = _rows(control, account, order_id=resting)
    assert one[0] == {"股票代码": "600000.SH", "委托数量": 200, "成交数量": 0, "委托价格": 9.5, "委托类型": STOCK_BUY,
                      "委托状态": "已报", "订单编号": resting, "柜台合同编号": rest_row["order_sysid"],
                      "报单时间": rest_row["order_time"]}
    assert get(f"{base}/cancel_order?order_id={resting}")[:2] == (200, {"cancel_order_result": 0})
    wait_until(lambda: get(f"{base}/query/order?order_id={resting}")[1][0]["委托状态"] == "已撤", 15, "已撤")
    assert _rows(control, account, order_id=resting)[0]["order_status"] == 54

    status, orders, _ = get(f"{base}/query/order")
    assert status == 200 and all(list(o) == ORDER_KEYS for o in orders)
    assert {o["订单编号"]: o["委托状态"] for o in orders} == {placed["order_id"]: "已成", resting: "已撤"}
    assert get(f"{base}/query/order?order_id=987654321")[:2] == (200, [])  # not found: [] as the classic

    status, trades, _ = get(f"{base}/query/trade")
    assert status == 200 and len(trades) == 1 and list(trades[0]) == TRADE_KEYS
    assert (trades[0]["股票代码"], trades[0]["委托类型"], trades[0]["成交数量"], trades[0]["柜台合同编号"]) == \
        ("600000.SH", STOCK_BUY, 100, row["order_sysid"])
    assert trades[0]["成交金额"] == pytest.approx(row["traded_amount"])

    status, holding, _ = get(f"{base}/query/holding")
    assert status == 200 and len(holding) == 1 and len(holding[0]) == 1  # each row in a one-item list
    assert list(holding[0][0]) == HOLDING_KEYS
    assert (holding[0][0]["股票代码"], holding[0][0]["持仓"], holding[0][0]["可用持仓"]) == ("600000.SH", 100, 0)

    # The classic defaults: no parameter at all is 100 shares of 510300.SH bought at 4.4.
    before = len(control.orders(account))
    status, default, _ = get(f"{base}/place_order")
    assert status == 200 and default["order_id"] > 0
    (d,) = _rows(control, account, order_id=default["order_id"])
    assert (d["stock_code"], d["order_type"], d["order_volume"], d["price"]) == ("510300.SH", STOCK_BUY, 100, 4.4)
    assert len(control.orders(account)) == before + 1


def test_the_classic_posts_own_session_answers_as_the_post_shows(http_server, account):
    """The requests of the classic wrapper's post (0x01-0x04: login, a convertible bond order, its cancel, the
    order's query), sent verbatim, answer what the post printed: {'status': 0}, {'order_id': N},
    {'cancel_order_result': 0}, and the order with 委托状态 已撤."""
    server, control = http_server
    assert control.wait_applied(control.set_price("113025.SH", 310.0, prev_close=310.0), timeout=15)
    base = server.base
    assert get(f"{base}/login?account_id={account}")[1] == {"status": 0}
    placed = get(f"{base}/place_order?stock_code=113025.SH&price=300&volumn=10")[1]
    assert list(placed) == ["order_id"] and placed["order_id"] > 0
    n = placed["order_id"]
    assert get(f"{base}/cancel_order?order_id={n}")[1] == {"cancel_order_result": 0}
    wait_until(lambda: get(f"{base}/query/order?order_id={n}")[1][0]["委托状态"] == "已撤", 15, "已撤")
    (row,) = _rows(control, account, order_id=n)
    assert get(f"{base}/query/order?order_id={n}")[1] == [
        {"股票代码": "113025.SH", "委托数量": 10, "成交数量": 0, "委托价格": 300.0, "委托类型": 23, "委托状态": "已撤",
         "订单编号": n, "柜台合同编号": row["order_sysid"], "报单时间": row["order_time"]}]
    assert (row["stock_code"], row["order_volume"], row["price"], row["order_status"]) == ("113025.SH", 10, 300.0, 54)
    assert len(control.orders(account)) == 1


def test_a_retried_place_order_with_a_client_order_id_places_once(http_server, account):
    server, control = http_server
    url = f"{server.base}/place_order?stock_code=600000.SH&direction=buy&volumn=100&price=9.3&client_order_id=web-7"
    first = get(url)
    assert first[0] == 200 and first[1] == {"order_id": first[1]["order_id"], "client_order_id": "web-7",
                                            "duplicate": False}
    # The retry of a GET whose answer was lost, and three more at once: the same order, nothing new at the broker.
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(get(url))) for _ in range(3)]
    for t in threads:
        t.start()
    again = get(url)
    for t in threads:
        t.join(30)
    for status, body, _ in [again, *results]:
        assert (status, body) == (200, {"order_id": first[1]["order_id"], "client_order_id": "web-7",
                                        "duplicate": True})
    assert len(_rows(control, account, order_remark="web-7")) == 1
    # The same id with another volume is a conflict, typed, and places nothing.
    status, body, _ = get(url.replace("volumn=100", "volumn=200"))
    assert status == 409 and body["order_id"] == -1 and body["error"]["code"] == "conflict"
    assert len(_rows(control, account, order_remark="web-7")) == 1
    assert len(control.orders(account)) == 1

    # Without a client order id, each GET is a new order (the classic wrapper's promise, documented).
    plain = f"{server.base}/place_order?stock_code=600000.SH&volumn=100&price=9.3"
    ids = {get(plain)[1]["order_id"], get(plain)[1]["order_id"]}
    assert len(ids) == 2 and len(control.orders(account)) == 3


def test_failures_answer_a_typed_error_body(http_server, account):
    server, control = http_server
    base = server.base
    # The broker's refusal (an odd lot on the main board): its own text, and the classic failure value -1.
    status, body, headers = get(f"{base}/place_order?stock_code=600000.SH&volumn=150&price=10")
    assert status == 422 and body["order_id"] == -1
    assert body["error"]["code"] == "broker_rejected" and "150" in body["error"]["broker_message"]
    assert body["error"]["outcome_unknown"] is False
    (junk,) = _rows(control, account, order_remark=headers["x-xtqueue-client-order-id"])
    assert junk["order_status"] == 57
    count = len(control.orders(account))

    # Refused here before anything is sent: "Buy" would have been a sell in the classic wrapper.
    for query, field in (("direction=Buy&volumn=100&price=10", "direction"), ("volumn=abc&price=10", "volumn"),
                         ("volumn=100&price=x", "price"), ("volumn=0&price=10", "volumn")):
        status, body, _ = get(f"{base}/place_order?stock_code=600000.SH&{query}")
        assert status == 400 and body["order_id"] == -1 and body["error"]["code"] == "invalid_request", query
        assert field in body["error"]["message"]
    # not a code (a bare six-digit code is one: the library infers its exchange, producer_lib.contract.normalize_code)
    status, body, _ = get(f"{base}/place_order?stock_code=60000&volumn=100&price=10")
    assert status == 400 and body["order_id"] == -1 and body["error"]["code"] == "invalid_request"
    assert len(control.orders(account)) == count  # none of them reached the broker

    # A cancel the broker refuses (the order is final) and a cancel of nothing.
    status, body, _ = get(f"{base}/cancel_order?order_id={junk['order_id']}")
    assert status == 422 and body["cancel_order_result"] == -1 and body["error"]["code"] == "broker_rejected"
    status, body, _ = get(f"{base}/cancel_order")
    assert status == 400 and body["cancel_order_result"] == -1 and body["error"]["code"] == "invalid_request"
    status, body, _ = get(f"{base}/login?account_id=SOMEONE_ELSE")
    assert status == 400 and body["status"] == -1 and body["error"]["code"] == "invalid_request"
    status, body, _ = get(f"{base}/query/outcome")  # a required parameter missing: the same error body
    assert status == 400 and body["error"]["code"] == "invalid_request" and "client_order_id" in body["error"]["message"]
    status, body, _ = get(f"{base}/query/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body, _ = get(f"{base}/query/outcome?client_order_id=never-sent")
    assert status == 200 and body["state"] == "not_found"


def test_the_event_stream_delivers_a_fill(http_server, account):
    server, control = http_server
    req = urllib.request.Request(f"{server.base}/events?types=order_filled,order_updated")
    with urllib.request.urlopen(req, timeout=20) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.readline().decode().startswith(": xtqueue events of")  # the starting point is fixed now
        placed = get(f"{server.base}/place_order?stock_code=600000.SH&price=10.5&volumn=100")[1]["order_id"]
        event: dict = {}
        for _ in range(200):  # bounded: the order's few events arrive first
            line = stream.readline().decode("utf-8").rstrip("\n")
            if line == "":  # the end of one event
                if event.get("event") == "order_filled":
                    break
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = json.loads(value) if name == "data" else value
        else:
            raise AssertionError("no order_filled event")
    data = event["data"]
    assert (data["type"], data["order_id"], data["account"]) == ("order_filled", placed, account)
    assert data["data"]["trade"]["volume"] == 100 and list(data["classic"]) == TRADE_KEYS
    assert data["classic"]["成交数量"] == 100 and data["classic"]["柜台合同编号"] == \
        _rows(control, account, order_id=placed)[0]["order_sysid"]
    assert data["stream_id"] == event["id"]

    # A follower that was away replays from the stream's start: the same fill under the same id.
    with urllib.request.urlopen(f"{server.base}/events?from=0&types=order_filled", timeout=20) as replay:
        lines = [replay.readline().decode("utf-8").rstrip("\n") for _ in range(6)]
    assert lines[1:4] == ["", f"id: {event['id']}", "event: order_filled"] and lines[5] == ""
    assert json.loads(lines[4].removeprefix("data: "))["order_id"] == placed
    status, body, _ = get(f"{server.base}/events?types=order_fill")
    assert status == 400 and body["error"]["code"] == "invalid_request"


def test_browser_requests_from_other_sites_and_foreign_host_names_are_refused(http_server, account):
    server, control = http_server
    url = f"{server.base}/place_order?stock_code=600000.SH&price=10.5&volumn=100"
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"},
                    {"Host": "evil.example:7800"}):  # the last: a DNS-rebinding page reaching 127.0.0.1
        status, body, _ = get(url, headers=headers)
        assert status in (401, 403) and body["error"]["code"] == "unauthorized", headers
    assert control.orders(account) == []
    assert get(f"{server.base}/query/assets", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_a_token_is_required_when_set_and_never_printed(tmp_path, redis_url, account, executor_process):
    control = executor_process[1]
    server = HttpServer(tmp_path, redis_url, account, env={"XTQUEUE_HTTP_TOKEN": TOKEN}, name="token")
    try:
        server.wait_listening()
        url = f"{server.base}/place_order?stock_code=600000.SH&price=10.5&volumn=100"
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            status, body, _ = get(url, headers=headers)
            assert (status, body["order_id"], body["error"]["code"]) == (401, -1, "unauthorized")
        assert control.orders(account) == []
        status, body, _ = get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body["order_id"] > 0
        assert get(f"{server.base}/query/assets?token={TOKEN}")[0] == 200
    finally:
        server.stop()
    assert TOKEN not in server.log()
    assert len(control.orders(account)) == 1


def test_it_refuses_to_listen_beyond_loopback_without_a_token(tmp_path, redis_url, account):
    server = HttpServer(tmp_path, redis_url, account, "--host", "0.0.0.0")
    try:
        assert server.proc.wait(30) == 2
    finally:
        server.stop()
    assert "needs a token" in server.log()


# --- as a strategy: its own ACL user and signing key ----------------------------------------------------------------
ROLES = """
accounts = ["H1"]

[strategies.web]
accounts = ["H1"]
sign = true
"""


@pytest.fixture
def acl_redis(tmp_path):
    """A redis-server of its own, loaded with the users `xtqueue acl` writes for ROLES (default user off)."""
    from xtqueue import acl

    (tmp_path / "roles.toml").write_text(ROLES)
    generated = acl.generate(tmp_path / "roles.toml", tmp_path / "users.acl", tmp_path / "secrets")
    port = free_port()
    (tmp_path / "redis").mkdir()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path / "redis"), "--aclfile",
                             str(generated.aclfile)], stdout=subprocess.DEVNULL)
    wait_until(lambda: _listening(port) or proc.poll() is not None, 10, "redis-server")
    assert proc.poll() is None
    yield f"redis://127.0.0.1:{port}/0", tmp_path / "secrets"
    proc.terminate()
    proc.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_it_trades_as_a_strategy_with_its_own_acl_user_and_signed_commands(tmp_path, acl_redis):
    from xtqueue.acl import read_credentials

    url, secrets_dir = acl_redis
    executor_creds = read_credentials(secrets_dir / "xtq-executor-H1.env")
    executor = ExecutorProcess(url, "H1", tmp_path, "--signing-keys-file",
                               str(secrets_dir / "executor-H1.signing.toml"), "--signing-required", "web",
                               clean_env=True, env={k: executor_creds[k] for k in ("XTQUEUE_REDIS_USERNAME",
                                                                                  "XTQUEUE_REDIS_PASSWORD")}).start()
    web = secrets_dir / "xtq-strategy-web.env"
    server = HttpServer(tmp_path, url, "H1", "--credentials", str(web))
    try:
        server.wait_listening()
        assert get(f"{server.base}/login", timeout=40)[:2] == (200, {"status": 0})  # waits for the executor
        status, body, headers = get(f"{server.base}/place_order?stock_code=600000.SH&price=10.5&volumn=100")
        assert status == 200 and body["order_id"] > 0
        control = SimControl(tmp_path / "sim")
        try:
            (row,) = control.orders("H1")
        finally:
            control.close()
        # Placed as the strategy of its credentials, with its signature checked (signing is required for web).
        assert (row["order_id"], row["strategy_name"], row["order_remark"]) == \
            (body["order_id"], "web", headers["x-xtqueue-client-order-id"])
    finally:
        server.stop()
        executor.stop()
    creds = read_credentials(web)
    assert "as strategy web" in server.log()
    for secret in (creds["XTQUEUE_REDIS_PASSWORD"], creds["XTQUEUE_SIGNING_KEY"]):
        assert secret not in server.log()


def test_an_unknown_outcome_never_reads_as_not_placed(tmp_path, redis_url, account, redis_client):
    """No executor answers: the order may still be executed later (until its deadline), so the body has no classic
    order_id at all (a script checking order_id == -1 must not resend), but the client order id to ask about."""
    server = HttpServer(tmp_path, redis_url, account, "--deadline", "0.5")
    try:
        server.wait_listening()
        status, body, headers = get(f"{server.base}/place_order?stock_code=600000.SH&price=10.5&volumn=100")
    finally:
        server.stop()
    assert status == 504 and "order_id" not in body
    assert body["error"]["code"] == "outcome_unknown" and body["error"]["outcome_unknown"] is True
    assert body["error"]["client_order_id"] == headers["x-xtqueue-client-order-id"]


def test_the_openapi_page_documents_the_classic_routes_and_shapes(http_server):
    server, _ = http_server
    root = server.base.removesuffix("/xtquant/trade")
    status, spec, _ = get(f"{root}/openapi.json")
    assert status == 200
    paths = spec["paths"]
    for route in ("login", "query/assets", "query/holding", "query/trade", "query/order", "place_order",
                  "cancel_order", "query/outcome", "events"):
        assert f"/xtquant/trade/{route}" in paths, route
    place = paths["/xtquant/trade/place_order"]["get"]
    assert {p["name"]: p["schema"].get("default") for p in place["parameters"]} == {
        "stock_code": "510300.SH", "direction": "buy", "volumn": "100", "price": "4.4", "client_order_id": None}
    example = paths["/xtquant/trade/query/order"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert list(example[0]) == ORDER_KEYS
    with urllib.request.urlopen(f"{root}/docs", timeout=20) as page:
        assert page.status == 200 and b"swagger" in page.read().lower()


def test_event_streams_are_bounded_and_a_closed_one_frees_its_slot(tmp_path, redis_url, account, redis_client):
    server = HttpServer(tmp_path, redis_url, account, "--max-event-streams", "1")
    try:
        server.wait_listening()
        first = urllib.request.urlopen(f"{server.base}/events", timeout=20)
        assert first.readline().startswith(b": xtqueue events of")
        status, body, _ = get(f"{server.base}/events")
        assert status == 503 and body["error"]["code"] == "too_many_streams"
        first.close()  # the client goes away: the server ends that stream and frees its slot

        def reopened():
            try:
                with urllib.request.urlopen(f"{server.base}/events", timeout=20) as again:
                    return again.readline().startswith(b": xtqueue events of")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                return False
        wait_until(reopened, 15, "a free event stream slot")
        # An empty idempotency key is refused (a fresh id in its place would silently lose the idempotency).
        status, body, _ = get(f"{server.base}/place_order?stock_code=600000.SH&price=10&volumn=100&client_order_id=")
        assert (status, body["order_id"], body["error"]["code"]) == (400, -1, "invalid_request")
    finally:
        server.stop()

"""``xtqueue http``: the classic HTTP wrapper's API, served over the queue (docs/http.md).

Scripts written for the classic Sanic wrapper around XtQuantTrader (``GET /xtquant/trade/place_order?...`` on port
7800; shapes in xtqueue/compat/http_shapes.py) switch by pointing at this server: same routes, parameters,
defaults, JSON keys and success values. Behind it is a producer_lib Client with a strategy's own Redis credentials,
so every order carries a client order id and a deadline and reaches the broker at most once.

Beyond the classic API: ``client_order_id`` on place_order (a retried GET with the same id places once),
``/query/outcome``, an error body ``{"error": {"code": ...}}`` with a non-2xx status on every failure, the account's
events as server-sent events (``/events``), and the OpenAPI page (``/docs``).

Web framework: FastAPI on uvicorn. Its request and response models are pydantic (already xtqueue's contract
library), it writes the OpenAPI page from the handlers, and both are pure Python wheels on Windows and Linux.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer_lib import Client, Gap, XtqueueError, contract
from xtqueue.compat import http_shapes as shapes
from xtqueue.compat.http_answers import (_CLASSIC_FAILED, COID_HEADER, Refused, _error_response, _failure, _float,
                                        _int, _refused, _side, _unexpected)

log = logging.getLogger("xtqueue.http")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7800  # the classic wrapper's port
PREFIX = "/xtquant/trade"  # the classic wrapper's route prefix
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_EVENT_STREAMS = 32  # default of concurrent /events followers; one more is answered 503
TOO_MANY_STREAMS = "too_many_streams"  # the one error code of this server's own (not a command's)
KEEPALIVE_S = 15.0  # an idle event stream sends a comment this often (proxies keep it; a gone client is noticed)
_STREAM_ID_RE = re.compile(r"^(\$|0|[0-9]{1,20}(-[0-9]{1,20})?)$")


@dataclass
class HttpSettings:
    """Everything ``xtqueue http`` runs with. ``token``: required on every request when set (HTTP side)."""

    redis_url: str
    account: str
    strategy: str = ""
    redis_kwargs: dict[str, Any] = field(default_factory=dict)
    signing_key: str | None = None
    key_id: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    deadline_s: float | None = None  # the orders' deadline; None = producer_lib's default
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    max_event_streams: int = MAX_EVENT_STREAMS

    def __repr__(self) -> str:  # secrets stay out of any repr that reaches a log
        return f"HttpSettings(account={self.account!r}, strategy={self.strategy!r}, host={self.host!r}, " \
               f"port={self.port})"


class SettingsError(ValueError):
    """Settings this server refuses to start with (said in one line)."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(s: HttpSettings) -> None:
    if not is_loopback(s.host) and not s.token:
        raise SettingsError(f"binding to {s.host} (beyond this machine) needs a token: set XTQUEUE_HTTP_TOKEN or "
                            "--token-file; anyone who reaches the port could otherwise trade the account")
    if s.token is not None and len(s.token) < 16:
        raise SettingsError("the HTTP token must be at least 16 characters (e.g. python -c \"import secrets; "
                            "print(secrets.token_urlsafe(32))\")")
    if bool(s.ssl_certfile) != bool(s.ssl_keyfile):
        raise SettingsError("--ssl-certfile and --ssl-keyfile go together")


# --- the app ----------------------------------------------------------------------------------------------------
def create_app(settings: HttpSettings) -> FastAPI:
    """The ASGI app; its producer_lib clients live as long as it runs (the lifespan)."""

    def new_client(max_connections: int) -> Client:
        return Client(settings.redis_url, settings.account, strategy=settings.strategy,
                      signing_key=settings.signing_key, key_id=settings.key_id,
                      **{"max_connections": max_connections, **settings.redis_kwargs})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.event_slots = asyncio.Semaphore(settings.max_event_streams)
        # Each event stream holds a connection in a blocking read: they get a pool of their own, so followers can
        # never take the connections that orders wait for.
        own, events_own = new_client(128), new_client(settings.max_event_streams + 1)
        app.state.client, app.state.events_client = own, events_own
        try:
            yield
        finally:
            await own.aclose()
            await events_own.aclose()

    app = FastAPI(title="xtqueue http", version="1", lifespan=lifespan,
                  description="The classic xtquant HTTP wrapper's API (/xtquant/trade, port 7800) served over "
                              "xtqueue. 经 xtqueue 提供经典 xtquant HTTP 接口。See docs/http.md.")
    bearer = HTTPBearer(auto_error=False, description="Required when the server has a token (XTQUEUE_HTTP_TOKEN).")

    async def guard(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        _check_request(settings, request, credentials)

    router = APIRouter(prefix=PREFIX, dependencies=[Depends(guard)])

    def documented(path: str) -> dict[str, Any]:
        """The classic shape (and the error body) of a route, as examples on the OpenAPI page."""
        responses: dict[int | str, Any] = {200: {"content": {"application/json": {"example": shapes.EXAMPLES[path]}}}}
        if path in shapes.ERROR_EXAMPLES:
            responses["4XX"] = {"description": "Refused, nothing done: the classic failure value and the error",
                                "content": {"application/json": {"example": shapes.ERROR_EXAMPLES[path]}}}
        return {"responses": responses}

    def the_client(request: Request) -> Client:
        return request.app.state.client

    async def executor_type(request: Request) -> str | None:
        """STOCK or CREDIT: the account type the executor trades (its ping says it; asked once, then kept). None
        when it cannot be asked now or is too old to say: the executor and its broker then answer for themselves."""
        known = getattr(request.app.state, "account_type", None)
        if known is None:
            try:
                known = request.app.state.account_type = (await the_client(request).ping()).account_type
            except Exception as exc:  # noqa: BLE001 - the command itself will say what is wrong
                log.info("the executor's account type is unknown for now: %s: %s", type(exc).__name__, exc)
        return known

    async def credit_refusal(request: Request, what: str) -> Refused | None:
        """A credit (两融) request on an executor that trades a STOCK account: refused before anything is sent."""
        kind = await executor_type(request)
        if kind is not None and kind != "CREDIT":
            return Refused(400, contract.ErrorCode.INVALID_REQUEST,
                           f"{what} needs a CREDIT (两融) account; the executor of {settings.account} trades a "
                           f"{kind} account (account_type in its settings); nothing was sent")
        return None

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # unknown route, ...
        code = contract.ErrorCode.NOT_FOUND if exc.status_code == 404 else contract.ErrorCode.INVALID_REQUEST
        return _refused(Refused(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}"))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:  # FastAPI's own checks
        what = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
                         for e in exc.errors())
        return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST, what),
                        _CLASSIC_FAILED.get(request.url.path.removeprefix(PREFIX)))

    @app.exception_handler(Refused)
    async def on_refused(request: Request, exc: Refused) -> JSONResponse:  # the guard's refusals
        # The path only: the query string may hold the token.
        log.warning("refused %r from %s: %s", request.url.path, request.client.host if request.client else "?",
                    exc.message)
        return _refused(exc, _CLASSIC_FAILED.get(request.url.path.removeprefix(PREFIX)))

    @router.get("/login", summary="账号登录 / Log in (is the executor serving, its broker connected?)",
                **documented("/login"))
    async def login(request: Request,
                    account_id: str = Query("", description="Must be empty or this server's account."),
                    account_type: str = Query("STOCK", description="STOCK, or CREDIT (两融): the type the "
                                              "executor trades (account_type in its settings)."),
                    session_id: str | None = Query(None, description="Ignored: the executor owns the session."),
                    qmt_dir: str | None = Query(None, description="Ignored: the executor owns MiniQMT's path.")
                    ) -> JSONResponse:
        failed = _CLASSIC_FAILED["/login"]
        if account_id and account_id != settings.account:
            return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST,
                                    f"this server serves account {settings.account}, not {account_id}"), failed)
        try:
            pong = await the_client(request).ping()
        except XtqueueError as exc:
            return _failure(exc, failed)
        except Exception as exc:  # noqa: BLE001 - Redis down etc.: a readable body, never a traceback
            return _unexpected(exc, "login")
        request.app.state.account_type = pong.account_type
        served = pong.account_type or "STOCK"  # an executor too old to say trades what it always did: STOCK
        if account_type.upper() != served:
            return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST,
                                    f"account_type={account_type!r}: the executor of {settings.account} trades a "
                                    f"{served} account"), failed)
        if not pong.broker_connected:
            return _error_response(shapes.local_error(contract.ErrorCode.BROKER_UNAVAILABLE,
                                                      f"the executor {pong.executor_id} runs but its broker "
                                                      f"({pong.broker}) is not connected"), 503, failed)
        return JSONResponse({"status": 0})

    @router.get("/query/assets", summary="查询总资产 / Asset",
                **documented("/query/assets"))
    async def query_assets(request: Request) -> JSONResponse:
        return await _query(request, "query/assets", lambda c: c.query_asset(), shapes.assets)

    @router.get("/query/holding", summary="查询当前持仓 / Positions",
                **documented("/query/holding"))
    async def query_holding(request: Request) -> JSONResponse:
        return await _query(request, "query/holding", lambda c: c.query_positions(), shapes.holding)

    @router.get("/query/trade", summary="查询当日成交 / Today's trades",
                **documented("/query/trade"))
    async def query_trade(request: Request) -> JSONResponse:
        return await _query(request, "query/trade", lambda c: c.query_trades(),
                            lambda rows: [shapes.trade_row(t) for t in rows])

    @router.get("/query/order", summary="查询当日委托 / Today's orders, or one (?order_id= or ?client_order_id=)",
                **documented("/query/order"))
    async def query_order(request: Request,
                          order_id: str = Query("", description="Broker order id: a list of it, [] if not found."),
                          client_order_id: str | None = Query(None, description="Or by client order id.")
                          ) -> JSONResponse:
        kwargs: dict[str, Any] = {}
        if order_id != "":
            kwargs["order_id"] = _int("order_id", order_id, minimum=1)
        if client_order_id:
            kwargs["client_order_id"] = client_order_id
        return await _query(request, "query/order", lambda c: c.query_orders(**kwargs),
                            lambda rows: [shapes.order_row(o) for o in rows])

    @router.get("/query/outcome", summary="订单结果 / What happened to a client order id (after an unknown outcome)")
    async def query_outcome(request: Request, client_order_id: str = Query(...)) -> JSONResponse:
        return await _query(request, "query/outcome", lambda c: c.query_outcome(client_order_id),
                            lambda r: r.model_dump(mode="json"))

    async def _query(request: Request, what: str, call: Any, shape: Any) -> JSONResponse:
        try:
            result = await call(the_client(request))
        except XtqueueError as exc:
            return _failure(exc)
        except Exception as exc:  # noqa: BLE001
            return _unexpected(exc, what)
        return JSONResponse(shape(result))

    @router.get("/place_order", summary="下单 / Place a limit order (classic defaults apply to missing parameters)",
                **documented("/place_order"))
    async def place_order(request: Request,
                          stock_code: str = Query("510300.SH", description="Classic default 510300.SH."),
                          direction: str = Query("buy", description="buy or sell (classic default buy); on a "
                                                 "CREDIT account also fin_buy, slo_sell, buy_secu_repay, "
                                                 "direct_secu_repay, sell_secu_repay and the *_special variants."),
                          volumn: str = Query("100", description="Shares (the classic spelling; default 100)."),
                          price: str = Query("4.4", description="Limit price (classic default 4.4)."),
                          client_order_id: str | None = Query(
                              None, description="Idempotency key (≤24 of A-Z a-z 0-9 _ - .): the same id again "
                                                "places nothing new and answers the first order's id."),
                          ) -> JSONResponse:
        failed = _CLASSIC_FAILED["/place_order"]
        try:
            side, volume, limit = _side(direction), _int("volumn", volumn, minimum=1), _float("price", price)
        except Refused as exc:
            return _refused(exc, failed)
        if side.is_credit and (refused := await credit_refusal(request, f"direction={side.value}")) is not None:
            return _refused(refused, failed)
        if side.is_direct:
            limit = None  # a direct repayment (直接还券) has no price: the classic default's 4.4 is not one
        if client_order_id == "":
            return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST,
                                    "client_order_id is empty: give the idempotency key, or leave it out"), failed)
        kwargs: dict[str, Any] = {}
        if client_order_id is not None:
            kwargs["client_order_id"] = client_order_id
        if settings.deadline_s is not None:
            kwargs["deadline"] = settings.deadline_s
        try:
            ack = await the_client(request).place_order(stock_code, side, volume, limit, **kwargs)
        except XtqueueError as exc:
            log.info("place_order %r %s %d @ %s coid %r: %s", stock_code, side.value, volume, limit,
                     exc.client_order_id, shapes.error_code(exc).value)
            return _failure(exc, failed)
        except Exception as exc:  # noqa: BLE001
            return _unexpected(exc, "place_order")
        log.info("place_order %r %s %d @ %s coid %r: order %d%s", stock_code, side.value, volume, limit,
                 ack.client_order_id, ack.order_id, " (duplicate)" if ack.duplicate else "")
        body: dict[str, Any] = {"order_id": ack.order_id}
        if client_order_id is not None:  # a request in the classic form gets the classic body, nothing more
            body.update(client_order_id=ack.client_order_id, duplicate=ack.duplicate)
        return JSONResponse(body, headers={COID_HEADER: ack.client_order_id})

    @router.get("/cancel_order", summary="撤单 / Cancel (by order_id, or client_order_id)",
                **documented("/cancel_order"))
    async def cancel_order(request: Request,
                           order_id: str = Query("0", description="Broker order id."),
                           client_order_id: str | None = Query(None, description="Or the client order id.")
                           ) -> JSONResponse:
        failed = _CLASSIC_FAILED["/cancel_order"]
        try:
            if client_order_id:
                if order_id not in ("", "0"):
                    raise Refused(400, contract.ErrorCode.INVALID_REQUEST, "give order_id or client_order_id")
                target: dict[str, Any] = {"client_order_id": client_order_id}
            else:
                target = {"order_id": _int("order_id", order_id, minimum=1)}
        except Refused as exc:
            return _refused(exc, failed)
        try:
            if "order_id" in target:
                await the_client(request).cancel_order(target["order_id"])
            else:
                await the_client(request).cancel_order(client_order_id=target["client_order_id"])
        except XtqueueError as exc:
            log.info("cancel_order %s: %s", target, shapes.error_code(exc).value)
            return _failure(exc, failed)
        except Exception as exc:  # noqa: BLE001
            return _unexpected(exc, "cancel_order")
        log.info("cancel_order %s: sent", target)
        return JSONResponse({"cancel_order_result": 0})

    @router.get("/events", summary="事件流 / The account's events as server-sent events (text/event-stream)",
                response_class=StreamingResponse, response_model=None)
    async def events(request: Request,
                     from_id: str | None = Query(None, alias="from",
                                                 description="Resume after this stream id (0: from the start)."),
                     types: str | None = Query(None, description="Comma-separated event types, e.g. order_filled."),
                     last_event_id: str | None = Header(None, description="Set by EventSource on reconnect.")
                     ) -> Any:
        start = from_id or last_event_id or "$"
        if not _STREAM_ID_RE.fullmatch(start):
            return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST,
                                    f"from={start!r} is not a stream id (like 1700000000000-0), 0 or $"))
        wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
        if wanted and (unknown := sorted(set(wanted) - set(contract.EVENT_TYPES))):
            return _refused(Refused(400, contract.ErrorCode.INVALID_REQUEST,
                                    f"unknown event types {unknown}; known: {sorted(contract.EVENT_TYPES)}"))
        c = request.app.state.events_client
        try:
            # "$" is fixed to the newest id now, before the response starts: an order placed once the client has
            # the response's first line cannot publish its events before the stream's starting point.
            if start == "$":
                start = await c.last_event_id()
        except Exception as exc:  # noqa: BLE001
            return _unexpected(exc, "events")
        slots: asyncio.Semaphore = request.app.state.event_slots
        if slots.locked():
            return _refused(Refused(503, TOO_MANY_STREAMS, f"{settings.max_event_streams} event streams are open "
                                                           "already (--max-event-streams); try again later"))
        await slots.acquire()  # free (checked just above, nothing awaited between): returns at once
        return _EventStream(_sse(c, start, wanted), slots)

    from xtqueue.compat import http_credit

    http_credit.add_routes(router, the_client=the_client, documented=documented, credit_refusal=credit_refusal,
                           deadline_s=settings.deadline_s)
    app.include_router(router)
    return app


class _EventStream(StreamingResponse):
    """The event stream's response; it gives its slot back however it ends (even if its body never started)."""

    def __init__(self, lines: AsyncIterator[str], slot: asyncio.Semaphore) -> None:
        super().__init__(lines, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


async def _sse(client: Client, start: str, types: list[str] | None) -> AsyncIterator[str]:
    """The stream's lines. A task reads the events into a queue, so the response can send keep-alive comments
    while nothing happens; when the response ends (the client went away), the task is cancelled."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1_000)

    async def follow() -> None:
        async for item in client.events(start, types=types):
            await queue.put(item)

    reader = asyncio.get_running_loop().create_task(follow(), name="xtqueue-http-events")
    try:
        yield f": xtqueue events of {client.account} after {start}\n\n"
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if reader in done:  # the reader ended (the client was closed): end the stream
                    return
                yield ": keep-alive\n\n"
                continue
            item = getter.result()
            if isinstance(item, Gap):
                # Events were lost (trimmed, or a seq hole): the client should re-sync by the queries.
                data = {"reason": item.reason, "expected_seq": item.expected_seq, "got_seq": item.got_seq}
                yield f"event: gap\ndata: {json.dumps(data)}\n\n"
                continue
            yield (f"id: {item.stream_id}\nevent: {item.type}\n"
                   f"data: {json.dumps(_event_data(item), ensure_ascii=False)}\n\n")
    finally:
        reader.cancel()


def _event_data(message: contract.EventMessage) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    # Orders and fills also in the classic query rows' shape, so a classic script can reuse its parsing.
    if isinstance(message.data, contract.OrderUpdated):
        data["classic"] = shapes.order_row(message.data.order)
    elif isinstance(message.data, contract.OrderFilled):
        data["classic"] = shapes.trade_row(message.data.trade)
    return data


def _check_request(settings: HttpSettings, request: Request,
                   credentials: HTTPAuthorizationCredentials | None) -> None:
    """Who may call. A web page in the user's browser must not trade: a GET is easy to forge from any page
    (<img src=...>), so requests a browser marks as cross-site are refused, and without a token the Host must be
    a loopback name (a DNS-rebinding page reaches 127.0.0.1 under its own name). With a token, it is required."""
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    host_header = request.headers.get("host", "")
    if fetch_site in ("cross-site", "same-site") or (origin is not None and urlsplit(origin).netloc != host_header):
        raise Refused(403, contract.ErrorCode.UNAUTHORIZED, "requests from another web site are refused")
    if settings.token:
        given = (credentials.credentials if credentials is not None
                 else request.headers.get("x-xtqueue-token") or request.query_params.get("token") or "")
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise Refused(401, contract.ErrorCode.UNAUTHORIZED,
                          "missing or wrong token (Authorization: Bearer <token>, or ?token=)")
        return
    hostname = urlsplit(f"//{host_header}").hostname or ""
    if not is_loopback(hostname):
        raise Refused(403, contract.ErrorCode.UNAUTHORIZED,
                      f"Host {host_header!r} is not a loopback name; this server has no token, so it serves "
                      "only requests to 127.0.0.1 / localhost")


# --- running ----------------------------------------------------------------------------------------------------
def serve(settings: HttpSettings, ready: Any = None) -> None:
    """Run until Ctrl+C. ``ready(url)`` is called once the port listens."""
    import uvicorn

    check_settings(settings)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
                            ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
                            server_header=False)
    scheme = "https" if settings.ssl_certfile else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and ready is not None:  # the port listens now
                ready(f"{scheme}://{host}:{settings.port}{PREFIX}")

    _Server(config).run()

"""``xtqueue http``: the routes of credit (两融) accounts, beside the classic wrapper's (docs/http.md).

The classic wrapper has no credit routes. These follow its forms: GET with query parameters, Chinese keys (the
names of the wheel's manual, shapes in http_shapes.py), ``{"order_id": N}`` for an order, -1 beside the error when
nothing was done. Credit orders other than a cash repayment go through ``/place_order`` (``direction=fin_buy``,
...); a direct cash repayment (直接还款) has an amount in yuan, not a volume: ``/repay_cash``. On an executor that
trades a STOCK account every one of them is refused here (400) before anything is sent.

    /repay_cash?stock_code=&amount=[&special=1][&client_order_id=]   {"order_id": N}
    /query/credit_detail     {"总资产", "可用金额", ..., "维持担保比例", "融资负债", ...}   (信用资产)
    /query/stk_compacts      [{"股票代码", "合约编号", "未还合约金额", ...}]               (负债合约)
    /query/credit_subjects   [{"股票代码", "融资保证金比例", "融券保证金比例", ...}]        (融资融券标的)
    /query/credit_slo_code   [{"股票代码", "融券可融数量", ...}]                         (可融券)
    /query/credit_assure     [{"股票代码", "担保品折算比例", ...}]                        (担保品)
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from producer_lib import Client, XtqueueError, contract
from xtqueue.compat import http_shapes as shapes

#: route -> (summary, producer_lib's query, the body of its list)
QUERIES: dict[str, tuple[str, str, Callable[[list], Any]]] = {
    "/query/stk_compacts": ("负债合约 / Debt compacts (credit accounts)", "query_stk_compacts",
                            lambda rows: [shapes.keyed(r, shapes.COMPACT_KEYS) for r in rows]),
    "/query/credit_subjects": ("融资融券标的 / Margin-eligible securities (credit accounts)", "query_credit_subjects",
                               lambda rows: [shapes.keyed(r, shapes.SUBJECT_KEYS) for r in rows]),
    "/query/credit_slo_code": ("可融券 / Lendable securities (credit accounts)", "query_credit_slo_code",
                               lambda rows: [shapes.keyed(r, shapes.SLO_CODE_KEYS) for r in rows]),
    "/query/credit_assure": ("担保品 / Collateral and haircuts (credit accounts)", "query_credit_assure",
                             lambda rows: [shapes.keyed(r, shapes.ASSURE_KEYS) for r in rows]),
}


def add_routes(router: APIRouter, *, the_client: Callable[[Request], Client], documented: Callable[[str], dict],
               credit_refusal: Callable[..., Any], deadline_s: float | None) -> None:
    """The credit routes on ``router`` (http.create_app's, behind its guard)."""
    from xtqueue.compat.http_answers import (_CLASSIC_FAILED, COID_HEADER, Refused, _failure, _float, _refused,
                                             _unexpected, log)

    async def fetch(request: Request, route: str, method: str) -> JSONResponse | list:
        """The executor's list, or the response of a refusal or failure."""
        refused = await credit_refusal(request, route)
        if refused is not None:
            return _refused(refused)
        try:
            return await getattr(the_client(request), method)()
        except XtqueueError as exc:
            return _failure(exc)
        except Exception as exc:  # noqa: BLE001 - Redis down etc.: a readable body, never a traceback
            return _unexpected(exc, route.removeprefix("/"))

    @router.get("/query/credit_detail", summary="信用资产 / Credit account: assets, debts, quotas, maintenance ratio",
                **documented("/query/credit_detail"))
    async def query_credit_detail(request: Request) -> JSONResponse:
        rows = await fetch(request, "/query/credit_detail", "query_credit_detail")
        if isinstance(rows, JSONResponse):
            return rows
        if not rows:  # one row per account; none: the counter does not know it as a margin account
            return _refused(Refused(404, contract.ErrorCode.NOT_FOUND, "the broker has no credit detail for this "
                                                                       "account (is it a margin account?)"))
        return JSONResponse(shapes.keyed(rows[0], shapes.DETAIL_KEYS))

    def query_route(route: str, summary: str, method: str, shape: Callable[[list], Any]) -> None:
        async def handler(request: Request) -> JSONResponse:
            rows = await fetch(request, route, method)
            return rows if isinstance(rows, JSONResponse) else JSONResponse(shape(rows))
        handler.__name__ = method
        router.get(route, summary=summary, **documented(route))(handler)

    for route, (summary, method, shape) in QUERIES.items():
        query_route(route, summary, method, shape)

    @router.get("/repay_cash", summary="直接还款 / Repay margin debt with cash (credit accounts)",
                **documented("/repay_cash"))
    async def repay_cash(request: Request,
                         stock_code: str = Query(..., description="The security the repayment names (xtquant's "
                                                                  "order needs one), e.g. 600000.SH."),
                         amount: str = Query(..., description="Yuan, at most two decimals."),
                         special: bool = Query(False, description="专项直接还款 (order type 45) instead of 32."),
                         client_order_id: str | None = Query(
                             None, description="Idempotency key: the same id again repays nothing new and answers "
                                               "the first repayment's order id."),
                         ) -> JSONResponse:
        failed = _CLASSIC_FAILED["/repay_cash"]
        try:
            value = _float("amount", amount)
            if client_order_id == "":
                raise Refused(400, contract.ErrorCode.INVALID_REQUEST,
                              "client_order_id is empty: give the idempotency key, or leave it out")
        except Refused as exc:
            return _refused(exc, failed)
        if (refused := await credit_refusal(request, "/repay_cash")) is not None:
            return _refused(refused, failed)
        kwargs: dict[str, Any] = {"special": special}
        if client_order_id is not None:
            kwargs["client_order_id"] = client_order_id
        if deadline_s is not None:
            kwargs["deadline"] = deadline_s
        try:
            ack = await the_client(request).repay_cash(stock_code, value, **kwargs)
        except XtqueueError as exc:
            log.info("repay_cash %r %.2f coid %r: %s", stock_code, value, exc.client_order_id,
                     shapes.error_code(exc).value)
            return _failure(exc, failed)
        except Exception as exc:  # noqa: BLE001
            return _unexpected(exc, "repay_cash")
        log.info("repay_cash %r %.2f coid %r: order %d%s", stock_code, value, ack.client_order_id, ack.order_id,
                 " (duplicate)" if ack.duplicate else "")
        body: dict[str, Any] = {"order_id": ack.order_id}
        if client_order_id is not None:
            body.update(client_order_id=ack.client_order_id, duplicate=ack.duplicate)
        return JSONResponse(body, headers={COID_HEADER: ack.client_order_id})

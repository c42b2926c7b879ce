"""The answers of ``xtqueue http`` (xtqueue/compat/http.py and its credit routes, http_credit.py): a refusal made
before anything is sent, a failed command as a typed error body beside the classic failure value, and the parsing of
the classic query parameters."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from producer_lib import ExecutorError, Rejected, XtqueueError, contract
from xtqueue.compat import http_shapes as shapes

log = logging.getLogger("xtqueue.http")

COID_HEADER = "X-Xtqueue-Client-Order-Id"


# --- errors as responses ----------------------------------------------------------------------------------------
class Refused(Exception):
    """A request this server refuses before sending anything (bad parameter, missing token, ...)."""

    def __init__(self, status: int, code: contract.ErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(error: dict[str, Any], status: int, classic: dict[str, Any] | None = None,
                    coid: str | None = None) -> JSONResponse:
    headers = {COID_HEADER: coid} if coid else None
    return JSONResponse({**(classic or {}), "error": error}, status_code=status, headers=headers)


def _failure(exc: XtqueueError, classic: dict[str, Any] | None = None) -> JSONResponse:
    """The response for a failed command. The classic failure value (-1) is added only when nothing was done: an
    unknown outcome must not read as "not placed" to a script that checks ``order_id > 0`` and resends."""
    code = shapes.error_code(exc)
    nothing_done = isinstance(exc, (Rejected, ExecutorError))  # ExecutorError: the command was not executed
    return _error_response(shapes.error_info(exc), shapes.HTTP_STATUS.get(code, 500),
                           classic if nothing_done else None, exc.client_order_id)


def _refused(exc: Refused, classic: dict[str, Any] | None = None) -> JSONResponse:
    return _error_response(shapes.local_error(exc.code, exc.message), exc.status, classic)


def _unexpected(exc: Exception, what: str) -> JSONResponse:
    # Redis unreachable and the like: the type only in the body; the log line has the message (no secrets: the
    # URL and credentials are not part of redis-py's messages).
    log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
    error = shapes.local_error(contract.ErrorCode.OUTCOME_UNKNOWN, f"{what} failed in this server "
                               f"({type(exc).__name__}); for an order, ask /query/outcome before resending")
    return _error_response({**error, "outcome_unknown": True}, 502)


# Nothing was done: the classic body's failure value, for scripts that only read it.
_CLASSIC_FAILED: dict[str, dict[str, int]] = {
    "/login": {"status": shapes.FAILED_LOGIN},
    "/place_order": {"order_id": shapes.FAILED_ORDER_ID},
    "/cancel_order": {"cancel_order_result": shapes.FAILED_CANCEL},
    "/repay_cash": {"order_id": shapes.FAILED_ORDER_ID},
}


# --- parameters -------------------------------------------------------------------------------------------------
def _int(name: str, text: str | None, *, minimum: int | None = None) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise Refused(400, contract.ErrorCode.INVALID_REQUEST, f"{name}={text!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise Refused(400, contract.ErrorCode.INVALID_REQUEST, f"{name} must be at least {minimum}, got {value}")
    return value


def _float(name: str, text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise Refused(400, contract.ErrorCode.INVALID_REQUEST, f"{name}={text!r} is not a number") from None


#: what ``direction`` may say: buy, sell, and on a CREDIT account the credit sides (the names of contract.Side); a
#: direct cash repayment has an amount, not a volume: /repay_cash
DIRECTIONS: dict[str, contract.Side] = {s.value: s for s in contract.Side if not s.is_cash_repay}


def _side(direction: str) -> contract.Side:
    # The classic handler sells on anything but "buy" (a typo sold); here only the listed names are orders.
    side = DIRECTIONS.get(direction)
    if side is None:
        more = "; a direct cash repayment is /repay_cash" if direction.endswith("cash_repay") else ""
        raise Refused(400, contract.ErrorCode.INVALID_REQUEST, f"direction={direction!r}: give buy or sell (on a "
                      f"CREDIT account also {', '.join(s for s in DIRECTIONS if s not in ('buy', 'sell'))}){more}")
    return side

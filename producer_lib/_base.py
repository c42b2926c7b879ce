"""The I/O-free core shared by Client (asyncio) and SyncClient (threads).

Everything that does not touch Redis lives here: account keys and the per-instance client id, building command
entries (command id, client order id, ttl, reply stream), deadlines and wait timeouts, turning a reply into a
result or an exception (the bookkeeping of the event stream is _events.py). The twins add only the Redis calls,
the reply reader and the waiting.
"""

from __future__ import annotations

import enum
import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ValidationError
from redis import exceptions as redis_errors

from . import contract
from ._connections import REDIS_DOWN_ERRORS
from ._exceptions import (
    ClientClosed,
    CommandTimeout,
    ExecutorNotRunning,
    Expired,
    InvalidRequest,
    OutcomeUnknown,
    RedisUnavailable,
    Rejected,
    Unauthorized,
    XtqueueError,
    error_from_info,
)
from .contract import (
    DEFAULT_COMMAND_TTL_MS,
    DEFAULT_ORDER_TTL_MS,
    MAX_TTL_MS,
    AccountStatusResult,
    AssetReport,
    CancelAck,
    CREDIT_QUERY_TYPES,
    CancelOrder,
    Command,
    ErrorCode,
    Keys,
    OrderAck,
    OrdersResult,
    OutcomeResult,
    Ping,
    PingResult,
    PlaceOrder,
    PositionsResult,
    QueryAccountStatus,
    QueryAsset,
    QueryOrders,
    QueryOutcome,
    QueryPositions,
    QueryTrades,
    Reply,
    TradesResult,
)

log = logging.getLogger("producer_lib")

# A caller that times out on an order must know its deadline has passed (so the executor refuses it from now on):
# wait this much longer than the deadline for the reply.
ORDER_REPLY_MARGIN_S = 3.0
# XADD attempts after the first one when the connection fails mid-send; the same entry is re-sent each time.
SEND_RETRIES = 3
SEND_BACKOFF_S = (0.05, 0.2, 0.5)
# The reply reader and events() reconnect with this back-off (seconds, doubled up to the cap).
RECONNECT_BACKOFF_S = 0.05
RECONNECT_BACKOFF_MAX_S = 2.0
# One XREAD BLOCK of the reply reader; bounds how long a closed SyncClient's thread may linger if it cannot be woken.
READ_BLOCK_MS = 2_000
READ_COUNT = 256
CONNECTION_ERRORS = REDIS_DOWN_ERRORS  # producer_lib/_connections.py
# require_executor: a heartbeat seen this recently is not read again before the next command.
HEARTBEAT_FRESH_S = 1.0


def connect_failed(exc: BaseException) -> bool:
    """True when redis-py failed to OPEN the connection (refused, unknown host, connect timeout): nothing was
    written, so the command never reached Redis. A failure on an open connection may have delivered it."""
    text = str(exc)
    return "connecting to" in text or text.startswith("Timeout connecting")


class _DefaultType:
    """Type of DEFAULT: "use the default", kept apart from None and from any explicit value."""

    _instance: ClassVar[_DefaultType | None] = None

    def __new__(cls) -> _DefaultType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _DefaultType()


class ClientState(enum.Enum):
    UNOPENED = 1  # constructed; opens itself on first use (or on __enter__)
    OPENED = 2  # in use
    CLOSED = 3  # closed: every further call raises ClientClosed; cannot be reopened


@dataclass
class Prepared:
    """One command ready to send: its entry plus what the waiting side needs."""

    command_id: str
    command_type: str
    client_order_id: str  # "" when the command concerns no order
    entry: dict[str, Any]
    ttl_ms: int
    wait_s: float
    started: float  # local monotonic clock when built: measures retries and the wait
    result_type: type[BaseModel]
    unwrap: Callable[[Any], Any] = field(default=lambda result: result)
    signer: Any = None  # signing.Signer of a signing client: a re-sent entry is signed again
    copies: int = 1  # entries that may have reached the stream (an XADD that failed on the connection may have)
    refusals: int = 0  # Unauthorized replies received so far
    held: Reply | None = None  # a refusal that did not settle the call (see BaseClient._held)
    connect_failures: int = 0  # XADDs that failed to open their connection (so never reached Redis)

    def retry_entry(self, now: float) -> dict[str, Any] | None:
        """The same entry with its ttl reduced by the time spent so far, or None when no time is left.

        A ttl counts from the entry's stream id; a re-sent entry gets a later id, so without the reduction the
        executor would accept it past the caller's deadline.
        """
        ttl_ms = self.ttl_ms - math.ceil((now - self.started) * 1000)
        if ttl_ms <= 0:
            return None
        entry = {**self.entry, contract.F_TTL_MS: str(ttl_ms)}
        return entry if self.signer is None else self.signer.sign(entry)

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.started + self.wait_s - now)


def _identity(result: Any) -> Any:
    return result


def _local_invalid(message: str, client_order_id: Any = None) -> InvalidRequest:
    coid = client_order_id if isinstance(client_order_id, str) else None
    return InvalidRequest(message, code=ErrorCode.INVALID_REQUEST, client_order_id=coid,
                          details={"raised": "locally, nothing was sent"})


class BaseClient:
    """Account, keys, client id, lifecycle and command building shared by both clients."""

    def __init__(self, account: str | None, *, strategy: str = "", client_id: str | None = None,
                 key_prefix: str = contract.KEY_PREFIX, signing_key: str | bytes | None = None,
                 key_id: str | None = None, require_executor: bool = False) -> None:
        if account is None:
            raise TypeError("account is required (the fund account id the executor serves)")
        self._keys = Keys(account, key_prefix)
        # One reply stream per instance: the reader starts at 0-0 on it, so no reply can be missed. Named
        # "<strategy>.<random>" so a Redis ACL can give each strategy its own reply streams (contract.new_client_id).
        self.client_id = client_id or contract.new_client_id(strategy if isinstance(strategy, str) else "")
        # Signed commands (producer_lib/signing.py): key_id defaults to the strategy name.
        self._signer = None
        if signing_key is not None:
            from .signing import Signer

            self._signer = Signer(signing_key, key_id or strategy)
        self._reply_key = self._keys.replies(self.client_id)
        if not isinstance(strategy, str) or strategy and not contract.STRATEGY_PREFIX_RE.fullmatch(strategy):
            raise ValueError("strategy must be 1-40 of A-Z a-z 0-9 _ - (it names the command stream), or empty")
        if contract.strategy_of_client_id(self.client_id) != strategy:
            raise ValueError(f"client id {self.client_id!r} must be '{strategy}.<random>' for strategy {strategy!r}"
                             if strategy else f"client id {self.client_id!r} must name no strategy (no dot)")
        self.strategy = strategy
        # The stream this client writes: its strategy's own (the executor takes the sender's identity from it and
        # answers only into that strategy's reply streams; contract.Keys.command_stream).
        self._command_key = self._keys.command_stream(strategy)
        self._state = ClientState.UNOPENED
        # Read the heartbeat before sending (at most once a second): no executor → ExecutorNotRunning, nothing sent.
        # Off by default: a command sent while a standby takes over (no heartbeat for about a second) is served by
        # it; with this on, the caller gets the refusal and decides.
        self.require_executor = require_executor
        self._executor_seen_at = float("-inf")

    @property
    def account(self) -> str:
        return self._keys.account

    @property
    def reply_stream(self) -> str:
        return self._reply_key

    def _check_open(self) -> None:
        if self._state is ClientState.CLOSED:
            raise ClientClosed(f"the client {self.client_id} is closed")
        self._state = ClientState.OPENED

    # --- building commands -----------------------------------------------------------------------------------
    def _prepare(self, command: Command, *, ttl_ms: int, wait_s: float, result_type: type[BaseModel],
                 unwrap: Callable[[Any], Any] = _identity, started: float) -> Prepared:
        command_id = contract.new_command_id()
        entry = contract.encode_command(command, account=self.account, command_id=command_id,
                                        reply_to=self._reply_key, ttl_ms=ttl_ms)
        if self._signer is not None:
            entry = self._signer.sign(entry)
        coid = getattr(command, "client_order_id", None) or ""
        return Prepared(command_id=command_id, command_type=command.TYPE, client_order_id=coid, entry=entry,
                        ttl_ms=ttl_ms, wait_s=wait_s, started=started, result_type=result_type, unwrap=unwrap,
                        signer=self._signer)

    @staticmethod
    def _model(cls: type[Command], coid: str | None, **fields: Any) -> Command:
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise _local_invalid(contract._validation_message(exc), coid) from None

    @staticmethod
    def _client_order_id(value: Any, *, generate: bool) -> str | None:
        if value is None:
            return contract.new_client_order_id() if generate else None
        try:
            return contract.validate_client_order_id(value)
        except ValueError as exc:
            raise _local_invalid(str(exc), value) from None

    @staticmethod
    def _order_ttl_ms(deadline: Any, coid: str) -> int:
        """Deadline (seconds from now, or an aware datetime) → ttl in ms. Refuses None: an order without a
        deadline is the stale-order bug."""
        if deadline is DEFAULT:
            return DEFAULT_ORDER_TTL_MS
        if isinstance(deadline, datetime):
            if deadline.tzinfo is None or deadline.utcoffset() is None:
                raise _local_invalid("deadline must be an aware datetime (with a time zone)", coid)
            seconds = (deadline - datetime.now(timezone.utc)).total_seconds()
        elif isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
            seconds = float(deadline)
        else:
            raise _local_invalid(f"deadline must be seconds from now or an aware datetime, not {deadline!r}", coid)
        if not math.isfinite(seconds):
            raise _local_invalid(f"deadline must be finite, not {deadline!r}", coid)
        ttl_ms = math.floor(seconds * 1000)  # round down: never later than asked
        if ttl_ms <= 0:
            raise Expired("the deadline has already passed; nothing was sent", code=ErrorCode.EXPIRED,
                          client_order_id=coid, details={"raised": "locally, nothing was sent"})
        if ttl_ms > MAX_TTL_MS:
            raise _local_invalid(f"deadline is more than {MAX_TTL_MS // 3_600_000} h away", coid)
        return ttl_ms

    @staticmethod
    def _wait_s(timeout: Any, default_s: float, coid: str | None) -> float:
        if timeout is None:
            return default_s
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout)
                or timeout <= 0):
            raise _local_invalid(f"timeout must be a positive number of seconds, not {timeout!r}", coid)
        return float(timeout)

    def _build_place_order(self, code: str, side: Any, volume: int | None, price: float | None, *, price_type: Any,
                           strategy: str | None, client_order_id: str | None, deadline: Any,
                           timeout: float | None, started: float, xt_remark: str | None = None,
                           xt_strategy_name: str | None = None, amount: float | None = None) -> Prepared:
        coid = self._client_order_id(client_order_id, generate=True)
        assert coid is not None
        if isinstance(volume, bool):
            raise _local_invalid("volume must be an integer number of shares", coid)
        if strategy not in (None, self.strategy):
            raise _local_invalid(f"this client speaks for strategy {self.strategy!r} (its command stream); "
                                 f"create a Client(strategy={strategy!r}) to send as another", coid)
        try:  # the same normalization as the CLI (contract.normalize_code): case, bare six digits
            code, side = contract.normalize_code(code), contract.normalize_side(side)
        except ValueError as exc:
            raise _local_invalid(str(exc), coid) from None
        if isinstance(amount, bool):
            raise _local_invalid("amount must be a number of yuan", coid)
        command = self._model(PlaceOrder, coid, client_order_id=coid, code=code, side=side, volume=volume,
                              price=price, price_type=price_type, strategy=self.strategy, xt_remark=xt_remark,
                              xt_strategy_name=xt_strategy_name, amount=amount)
        ttl_ms = self._order_ttl_ms(deadline, coid)
        wait_s = self._wait_s(timeout, ttl_ms / 1000 + ORDER_REPLY_MARGIN_S, coid)
        return self._prepare(command, ttl_ms=ttl_ms, wait_s=wait_s, result_type=OrderAck, started=started)

    def _build_cancel_order(self, order_id: int | None, *, client_order_id: str | None, sysid: str | None,
                            market: Any, timeout: float | None, started: float) -> Prepared:
        coid = self._client_order_id(client_order_id, generate=False)
        if isinstance(order_id, bool):
            raise _local_invalid("order_id must be an integer", coid)
        command = self._model(CancelOrder, coid, order_id=order_id, client_order_id=coid, sysid=sysid,
                              market=market)
        wait_s = self._wait_s(timeout, DEFAULT_COMMAND_TTL_MS / 1000, coid)
        return self._prepare(command, ttl_ms=DEFAULT_COMMAND_TTL_MS, wait_s=wait_s, result_type=CancelAck,
                             started=started)

    def _build_query(self, cls: type[Command], result_type: type[BaseModel], *, started: float,
                     unwrap: Callable[[Any], Any] = _identity, coid: str | None = None, **fields: Any) -> Prepared:
        command = self._model(cls, coid, **fields)
        return self._prepare(command, ttl_ms=DEFAULT_COMMAND_TTL_MS, wait_s=DEFAULT_COMMAND_TTL_MS / 1000,
                             result_type=result_type, unwrap=unwrap, started=started)

    def _build_query_asset(self, started: float) -> Prepared:
        return self._build_query(QueryAsset, AssetReport, started=started)

    def _build_query_positions(self, code: str | None, started: float) -> Prepared:
        if code is not None:
            try:
                code = contract.normalize_code(code)
            except ValueError as exc:
                raise _local_invalid(str(exc)) from None
        return self._build_query(QueryPositions, PositionsResult, started=started,
                                 unwrap=lambda r: list(r.positions), code=code)

    def _build_query_orders(self, cancelable_only: bool, order_id: int | None, client_order_id: str | None,
                            started: float) -> Prepared:
        coid = self._client_order_id(client_order_id, generate=False)
        return self._build_query(QueryOrders, OrdersResult, started=started, unwrap=lambda r: list(r.orders),
                                 coid=coid, cancelable_only=cancelable_only, order_id=order_id,
                                 client_order_id=coid)

    def _build_query_trades(self, started: float) -> Prepared:
        return self._build_query(QueryTrades, TradesResult, started=started, unwrap=lambda r: list(r.trades))

    def _build_query_account_status(self, started: float) -> Prepared:
        return self._build_query(QueryAccountStatus, AccountStatusResult, started=started)

    def _build_query_outcome(self, client_order_id: str, started: float) -> Prepared:
        coid = self._client_order_id(client_order_id, generate=False)
        if coid is None:
            raise _local_invalid("query_outcome needs a client order id")
        return self._build_query(QueryOutcome, OutcomeResult, started=started, coid=coid, client_order_id=coid)

    def _build_credit_query(self, cls: type[Command], started: float) -> Prepared:
        """One of the five credit queries; the caller gets the list (CREDIT_QUERY_TYPES names the result)."""
        result_type = CREDIT_QUERY_TYPES[cls]
        (field,) = result_type.model_fields
        return self._build_query(cls, result_type, started=started, unwrap=lambda r: list(getattr(r, field)))

    def _build_ping(self, started: float) -> Prepared:
        return self._build_query(Ping, PingResult, started=started)

    # --- replies ---------------------------------------------------------------------------------------------
    @staticmethod
    def _decode_reply_entry(stream_id: Any, fields: dict) -> tuple[str, Reply | XtqueueError] | None:
        """(command id, decoded reply or the error to raise), or None for an entry naming no command."""
        try:
            command_id = contract._text(contract._field(fields, contract.F_ID))
            coid = contract._text(contract._field(fields, contract.F_COID))
        except UnicodeDecodeError:
            return None
        if not command_id:
            return None
        try:
            return command_id, contract.decode_reply(stream_id, fields)
        except Exception as exc:  # a reply we cannot read may still report a placed order
            return command_id, OutcomeUnknown(
                f"the reply could not be read ({type(exc).__name__}: {exc}); ask query_outcome before resending",
                command_id=command_id, client_order_id=coid or None)

    @staticmethod
    def _finish(prep: Prepared, reply: Reply) -> Any:
        coid = reply.client_order_id or prep.client_order_id or None
        if reply.error is not None:
            raise error_from_info(reply.error, command_id=prep.command_id, client_order_id=coid)
        if not isinstance(reply.result, prep.result_type):
            raise OutcomeUnknown(
                f"the reply to {prep.command_type} is a {reply.command_type!r} reply with an unexpected body; "
                "ask query_outcome before resending", command_id=prep.command_id, client_order_id=coid)
        return prep.unwrap(reply.result)

    @staticmethod
    def _held(prep: Prepared, outcome: Reply | XtqueueError) -> bool:
        """True if this reply must not settle the call: a refusal (Unauthorized: "not executed") of one copy of a
        command sent more than once, while another copy's answer may still come. That copy may have been executed
        (the first one, whose connection was cut after its XADD landed), so the refusal is not the outcome. Every
        copy refused settles the call with the refusal; a timeout with a held refusal is OutcomeUnknown."""
        if prep.copies <= 1 or not isinstance(outcome, Reply) or outcome.error is None \
                or outcome.error.code is not ErrorCode.UNAUTHORIZED:
            return False
        prep.refusals += 1
        if prep.refusals >= prep.copies:
            return False
        prep.held = outcome
        return True

    @staticmethod
    def _timeout_error(prep: Prepared) -> OutcomeUnknown:
        coid = prep.client_order_id or None
        if prep.held is not None and prep.held.error is not None:
            return OutcomeUnknown(
                f"{prep.command_type} was sent {prep.copies} times (connection failures); one copy was refused "
                f"({prep.held.error.message}) and no other answer came within {prep.wait_s:.1f} s: another copy "
                f"may have been executed; ask query_outcome({coid!r}) before resending",
                command_id=prep.command_id, client_order_id=coid)
        if prep.command_type == PlaceOrder.TYPE:
            message = (f"no reply to place_order within {prep.wait_s:.1f} s: the order may or may not have been "
                       f"placed; ask query_outcome({coid!r}), never resend it with a new client order id")
        else:
            message = f"no reply to {prep.command_type} within {prep.wait_s:.1f} s (is the executor running?)"
        return CommandTimeout(message, command_id=prep.command_id, client_order_id=coid)

    def _heartbeat_verdict(self, raw: Any, now: float, prep: Prepared) -> None:
        """Raise ExecutorNotRunning when the heartbeat key held nothing (``raw`` None); note a live one."""
        if contract.decode_heartbeat(raw) is not None:
            self._executor_seen_at = now
            return
        raise ExecutorNotRunning(
            f"no executor serves account {self.account}: its heartbeat {self._keys.heartbeat} is absent (not "
            "running, or on another Redis/database or account); nothing was sent",
            command_id=prep.command_id, client_order_id=prep.client_order_id or None,
            details={"raised": "locally, nothing was sent"})

    @staticmethod
    def _unreachable(prep: Prepared, exc: Exception) -> RedisUnavailable:
        return RedisUnavailable(f"Redis did not answer ({type(exc).__name__}: {exc}): {prep.command_type} was not "
                                "sent", command_id=prep.command_id, client_order_id=prep.client_order_id or None,
                                details={"raised": "locally, nothing was sent"})

    def _heartbeat_due(self, now: float) -> bool:
        return self.require_executor and now - self._executor_seen_at >= HEARTBEAT_FRESH_S

    @staticmethod
    def _send_error(prep: Prepared, exc: Exception, attempts: int) -> XtqueueError:
        """What a failed XADD becomes. Only connection failures leave the outcome unknown."""
        coid = prep.client_order_id or None
        ids = dict(command_id=prep.command_id, client_order_id=coid)
        if isinstance(exc, (redis_errors.AuthenticationError, redis_errors.AuthorizationError,
                            redis_errors.NoPermissionError)):
            return Unauthorized(f"Redis refused the command: {exc}", **ids)
        if isinstance(exc, CONNECTION_ERRORS) and prep.connect_failures >= attempts:
            return RedisUnavailable(
                f"could not connect to Redis ({type(exc).__name__}: {exc}; {attempts} attempts): {prep.command_type} "
                "never left, nothing was sent", **ids, details={"raised": "locally, nothing was sent"})
        if isinstance(exc, CONNECTION_ERRORS):
            return OutcomeUnknown(
                f"sending {prep.command_type} failed {attempts} times ({type(exc).__name__}: {exc}); an attempt may "
                f"still have reached the executor: ask query_outcome({coid!r}) before resending", **ids)
        return Rejected(f"Redis refused the command ({type(exc).__name__}: {exc})", **ids)

    @staticmethod
    def _closed_while_waiting(prep: Prepared) -> ClientClosed:
        coid = prep.client_order_id or None
        return ClientClosed(f"the client was closed while waiting for the reply to {prep.command_type}; its "
                            f"outcome is unknown (client order id {coid!r}: ask query_outcome)",
                            command_id=prep.command_id, client_order_id=coid)



def redis_kwargs_with_defaults(redis_kwargs: dict[str, Any], no_retry: Any) -> dict[str, Any]:
    """Options for Redis.from_url. redis-py's own retry would re-send an XADD with its original ttl (a late order),
    so it is off unless the caller insists; this library re-sends itself, with the ttl reduced."""
    kwargs = dict(redis_kwargs)
    check_redis_options(kwargs.get("decode_responses"))
    kwargs.setdefault("retry", no_retry)
    return kwargs


def check_given_redis(client: Any) -> None:
    """Checks on a Redis client passed in by the caller (the library does not own or reconfigure it)."""
    check_redis_options(client.connection_pool.connection_kwargs.get("decode_responses"))
    retry = client.connection_pool.connection_kwargs.get("retry")
    if retry is not None and retry.get_retries() > 0:
        warnings.warn("the given Redis client retries commands itself: a re-sent XADD keeps its full ttl, so an "
                      "order may be executed after its deadline; create it with retry=Retry(NoBackoff(), 0)",
                      RuntimeWarning, stacklevel=3)


def check_redis_options(decode_responses: Any) -> None:
    if decode_responses:
        raise ValueError("producer_lib needs a Redis client with decode_responses=False (bodies are msgpack)")

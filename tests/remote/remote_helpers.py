"""Helpers of the remote-trader tests: a simulated MiniQMT, a real executor on it (restartable), and unmodified
xtquant programs run in subprocesses through ``python -m xtqueue.compat.remote``.

The test process itself never imports xtquant.xttrader: each program is its own interpreter, as in production."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WAIT = 20.0  # bound of every wait for something that must happen


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    for name in [k for k in env if k.startswith("XTQUEUE_")]:
        del env[name]  # only what the test gives
    env.update(extra)
    return env


class QmtSim:
    """``xtqueue qmt-sim --path DIR --account ACCOUNT [EXTRA...]`` as a child process (``--credit``: a margin
    account)."""

    def __init__(self, path: Path, account: str, *extra: str) -> None:
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "qmt-sim", "--path", str(path), "--account",
                                      account, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=child_env())
        lines: queue.Queue = queue.Queue()
        # until the serving line: importing xtquant may print first (its update check, in a fresh virtualenv)
        threading.Thread(target=lambda: lines.put(next((line for line in iter(self.proc.stdout.readline, "")
                                                         if line.startswith("qmt-sim: serving")), "")),
                         daemon=True).start()
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            first = ""
        if not first.startswith("qmt-sim: serving"):
            self.stop()
            raise RuntimeError(f"qmt-sim did not start: {first!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Executor:
    """``xtqueue executor --broker sim`` on the simulated MiniQMT at qmt_path, for one account; ``start()`` again
    after ``kill()`` (same state dir). ``extra``: more options (``--account-type CREDIT``)."""

    def __init__(self, redis_url: str, account: str, qmt_path: Path, workdir: Path, *extra: str) -> None:
        self.args = [sys.executable, "-m", "xtqueue", "executor", "--redis-url", redis_url, "--account", account,
                     "--broker", "sim", "--sim-path", str(qmt_path), "--state-dir", str(workdir / "state"),
                     "--probe-interval-ms", "300", "--reconnect-max-backoff-ms", "300", "--claim-idle-ms", "1000",
                     *extra]
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> "Executor":
        self.runs += 1
        self._log = open(self.workdir / f"executor-{self.runs}.log", "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=child_env())
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._log.close()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("executor-*.log")))


def wait_serving(redis_url: str, account: str, timeout: float = 60.0, executor: "Executor | None" = None) -> None:
    """Until the account's executor's heartbeat says it is connected to MiniQMT."""
    import redis

    from producer_lib import contract

    key = contract.Keys(account).heartbeat
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = client.get(key)
            if raw and json.loads(raw).get("connected"):
                return
            if executor is not None and executor.proc is not None and executor.proc.poll() is not None:
                raise AssertionError(f"the executor exited: {executor.log()}")
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"the executor of {account} did not serve within {timeout}s")


class Program:
    """An unmodified xtquant program (source text) run through ``python -m xtqueue.compat.remote``; it prints lines
    of JSON. ``lines()`` reads them as they come; ``result()`` waits for the end."""

    def __init__(self, source: str, workdir: Path, args: list[str], env: dict[str, str], name: str = "prog",
                 launcher: bool = False) -> None:
        """``launcher``: ``xtqueue --account A run --redis URL --strategy S -- python prog.py`` with only the
        password-free rest of ``env``; else the explicit call ``python -m xtqueue.compat.remote prog.py``."""
        self.file = workdir / f"{name}.py"
        self.file.write_text(source, encoding="utf-8")
        if launcher:
            env = dict(env)
            argv = [sys.executable, "-m", "xtqueue", "--account", env.pop("XTQUEUE_ACCOUNT"), "run", "--redis",
                    env.pop("XTQUEUE_REDIS_URL"), "--strategy", env.pop("XTQUEUE_STRATEGY"), "--",
                    sys.executable, str(self.file), *args]
        else:
            argv = [sys.executable, "-m", "xtqueue.compat.remote", str(self.file), *args]
        self.proc = subprocess.Popen(argv,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     env=child_env(**env), stdin=subprocess.PIPE)
        self._out: queue.Queue = queue.Queue()
        self._err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._err.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._out.put(line)
        self._out.put(None)

    def next(self, timeout: float = WAIT * 3) -> Any:
        try:
            line = self._out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the program printed nothing within {timeout}s; stderr:\n{self.stderr()}") from None
        if line is None:
            raise AssertionError(f"the program ended (rc {self.proc.wait()}); stderr:\n{self.stderr()}")
        return json.loads(line)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = WAIT * 3) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the program did not end within {timeout}s; stderr:\n{self.stderr()}") from None

    def stderr(self) -> str:
        return "".join(self._err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class CutAfterXadd:
    """TCP proxy to Redis: the first XADD containing ``marker`` is forwarded, then that connection is cut before
    Redis's answer reaches the client (the entry has landed; the client sees a dropped connection)."""

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream = upstream
        self.marker = marker
        self.armed = threading.Event()
        self.armed.set()
        self.cut = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

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
                if doomed.is_set():
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

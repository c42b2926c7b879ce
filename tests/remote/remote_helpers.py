"""Helpers of the remote-trader tests: unmodified xtquant programs run in subprocesses through ``python -m
xtqueue.compat.remote``, and the wait for an executor to serve (the simulated MiniQMT, the executor and the
connection-cutting proxy are tests/support.py's).

The test process itself never imports xtquant.xttrader: each program is its own interpreter, as in production."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support import ExecutorProcess, child_env

WAIT = 20.0  # bound of every wait for something that must happen


def wait_serving(redis_url: str, account: str, timeout: float = 60.0,
                 executor: ExecutorProcess | None = None) -> None:
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
                                     env=child_env(clean=True, **env), stdin=subprocess.PIPE)
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

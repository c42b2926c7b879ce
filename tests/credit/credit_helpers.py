"""Helpers of the credit tests: a simulated MiniQMT process with a margin account, a CREDIT executor."""

from __future__ import annotations


import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class QmtSim:
    """``xtqueue qmt-sim --path DIR --credit`` as a child process (the simulated MiniQMT outlives executors)."""

    def __init__(self, path: Path, *extra: str) -> None:
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "qmt-sim", "--path", str(path), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
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


def start_executor(redis_url: str, account: str, qmt_path: Path, state: Path, log: Path, *extra: str):
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "xtqueue", "executor", "--redis-url", redis_url, "--account", account,
             "--account-type", "CREDIT", "--broker", "sim", "--sim-path", str(qmt_path), "--state-dir", str(state),
             "--probe-interval-ms", "300", "--reconnect-max-backoff-ms", "300", "--recovery-settle-ms", "500",
             "--lease-ms", "2000", "--lease-renew-ms", "250", *extra],
            stdout=fh, stderr=subprocess.STDOUT, env=child_env())



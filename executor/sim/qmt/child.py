"""A simulated MiniQMT as a child process that cannot outlive its parent (``xtqueue executor --broker sim``, and
``xtqueue run --start-sim`` for the program it runs).

``ChildMiniQmt(path, args).ensure()`` does nothing while some simulated MiniQMT serves ``path`` (one started by
hand with ``xtqueue qmt-sim``, one shared by several executors, or a test's in-process server). Otherwise it starts
``python -m xtqueue qmt-sim --path DIR --exit-on-stdin-eof ARGS`` and waits for its serving line. The child reads
its standard input, a pipe only this process holds the write end of, until end of file: when this process exits,
however it exits (SIGKILL and TerminateProcess included), the system closes the pipe and the child shuts down
cleanly (its last commits flushed); ``close()`` does the same sooner. It runs in a session/process group of its
own, so a Ctrl+C meant for the executor (or the program) does not end it before their own orderly shutdown has
finished with it.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .endpoint import serving

READY_PREFIX = "qmt-sim: serving"


class ChildMiniQmt:
    def __init__(self, path: str | os.PathLike, args: list[str], *, start_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.args = list(args)
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def ensure(self) -> bool:
        """Return once a simulated MiniQMT serves the folder, starting the child if none does: True when this call
        started it, False when one already served."""
        with self._lock:
            if serving(self.path):
                return False
            self._end_child()  # one that runs but does not serve is of no use (a stale start)
            self._proc = self._spawn()
            return True

    def _spawn(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "xtqueue", "qmt-sim", "--path", str(self.path), "--exit-on-stdin-eof",
               *self.args]
        kw: dict[str, Any] = {}
        if os.name == "nt":
            kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kw["start_new_session"] = True
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, **kw)
        lines: queue.Queue = queue.Queue()

        def read() -> None:  # until the serving line, then drain
            # Not only the first line: importing xtquant may print first (its update check writes a line to stdout
            # when setuptools' pkg_resources is installed, as in a fresh virtualenv).
            ready = False
            for raw in iter(proc.stdout.readline, b""):
                if not ready and raw.decode("utf-8", "replace").startswith(READY_PREFIX):
                    lines.put(raw.decode("utf-8", "replace"))
                    ready = True
            if not ready:
                lines.put("")

        threading.Thread(target=read, name="qmt-sim-child-out", daemon=True).start()
        try:
            line = lines.get(timeout=self.start_timeout_s)
        except queue.Empty:
            line = ""
        if not line.startswith(READY_PREFIX):
            self._end(proc)
            raise RuntimeError(f"the simulated MiniQMT for {self.path} did not start (exit code {proc.poll()}); "
                               "its error is on this process's standard error")
        return proc

    def close(self) -> None:
        """End the child (if this object started one): close its lifeline, give it time to flush, then kill."""
        with self._lock:
            self._end_child()

    def _end_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._end(proc)

    @staticmethod
    def _end(proc: subprocess.Popen) -> None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

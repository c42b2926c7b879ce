"""``xtqueue run``: start a command whose Python processes get a stand-in installed at startup.

The child gets ``xtqueue/_boot`` first on ``PYTHONPATH`` and ``XTQUEUE_RUN_INSTALL=module:function``; the
``sitecustomize`` there, run while the interpreter starts, arranges for that function to be called before the
program's first import of ``xtquant.xtpythonclient``, then hands over to the ``sitecustomize`` it shadowed (see
``_boot/sitecustomize.py``). So it reaches every Python the command starts however it is spelled (``python
prog.py``, ``python -m pkg``, a shell script, multiprocessing workers), and nothing of the program or of the
environment's site-packages is changed. A Python started with
``-I``, ``-E`` or ``-S`` ignores ``PYTHONPATH``/``site`` and does not see it.

The exit code is the command's; Ctrl-C reaches it once (from the terminal, or forwarded when only this process
got it) and this process waits for it to end; a command killed by a signal kills this process with the same one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

INSTALL_ENV = "XTQUEUE_RUN_INSTALL"  # "module:function" that _boot/sitecustomize.py calls at the child's startup
BOOT_DIR = Path(__file__).resolve().with_name("_boot")
EXIT_NOT_STARTED = 127  # the command could not be started (as a shell says for a missing command)


class CommandNotStarted(Exception):
    """The command could not be started (not found, not executable)."""


def child_env(install: str, extra: Mapping[str, str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the command: ``base`` (default: this process's), the boot folder first on PYTHONPATH
    (the user's own entries kept after it), ``INSTALL_ENV=install`` and ``extra``."""
    env = dict(os.environ if base is None else base)
    given = env.get("PYTHONPATH", "")
    # kept verbatim, empty entries too (one means the current directory); none added when there was none
    kept = [p for p in given.split(os.pathsep) if not (p and _same(p, BOOT_DIR))] if given else []
    env["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR), *kept])
    env[INSTALL_ENV] = install
    env.update(extra)
    return env


def _same(a: str | os.PathLike, b: Path) -> bool:
    try:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(str(b))
    except (TypeError, ValueError):
        return False


def run(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command`` with ``env`` until it ends; its exit code (negative -N: killed by signal N, POSIX)."""
    started: list[subprocess.Popen] = []
    pending: list[int] = []  # a signal that came before the command existed: sent to it once it does

    def forward(signum: int) -> None:
        if started:
            _send(started[0], signum)
        else:
            pending.append(signum)

    def on_interrupt(signum, frame):
        # A terminal's Ctrl-C goes to its whole foreground process group (on Windows: every process on the
        # console), the command included: forwarding it too would interrupt the command a second time, inside
        # its own clean-up. Forwarded only when it cannot have come that way.
        if sys.platform != "win32" and not _in_terminal_foreground():
            forward(signum)

    def on_other(signum, frame):
        forward(signum)

    # Installed before the command starts, so no signal falls between; handlers are not inherited (a process
    # that execs starts with default dispositions for every caught signal).
    previous = {}
    interrupts = [signal.SIGINT] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])  # Ctrl+Break
    others = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    try:
        for s in interrupts:
            previous[s] = signal.signal(s, on_interrupt)
        for s in others:
            previous[s] = signal.signal(s, on_other)
    except ValueError:  # not the main thread (run() called from a library): no handlers, the command still runs
        pass
    try:
        try:
            proc = subprocess.Popen(list(command), env=dict(env))
        except OSError as exc:  # FileNotFoundError, PermissionError, a Windows "not a valid application"
            raise CommandNotStarted(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
        started.append(proc)
        for signum in pending:
            _send(proc, signum)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # a handler could not be installed: keep waiting for the command's end
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def exit_like(returncode: int) -> None:
    """End this process as the command ended: its exit code, or (POSIX) the signal that killed it, so that a
    shell sees "killed by SIGINT" rather than an exit code it treats as an error of its own."""
    if returncode < 0 and sys.platform != "win32":
        signum = -returncode
        try:
            signal.signal(signum, signal.SIG_DFL)
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signum)
        except (OSError, ValueError):
            pass
        raise SystemExit(128 + signum)
    raise SystemExit(returncode)


def _send(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except OSError:  # already gone
        pass


def _in_terminal_foreground() -> bool:
    """True when this process is in its terminal's foreground process group (so a Ctrl-C went to the command
    too); False without a terminal (a signal then can only have been sent to this process)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            continue
    return False

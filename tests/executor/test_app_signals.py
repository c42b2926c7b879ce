"""executor/app.py: every stop signal the platform offers stops the executor cleanly, and on Windows closing the
console window does too (issue #10, suspected item: a console close was not a clean shutdown).

Windows ends a process as soon as its console control handler returns; the C runtime's handler behind
``signal.signal(SIGBREAK)`` returns at once, so a Python SIGBREAK handler alone never gets to stop anything on a
close. These tests run on any platform: ``sys.platform``, ``signal`` and kernel32 are replaced where needed.
"""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from executor import app


class _Signals:
    """signal.signal stand-in: records the handlers (no real handler is ever installed)."""

    def __init__(self) -> None:
        self.handlers: dict[int, object] = {}

    def __call__(self, signum: int, handler: object) -> object:
        old = self.handlers.get(signum, signal.SIG_DFL)
        self.handlers[signum] = handler
        return old


@pytest.fixture
def signals(monkeypatch):
    rec = _Signals()
    monkeypatch.setattr(signal, "signal", rec)
    return rec


def test_every_stop_signal_of_the_platform_is_handled(signals, monkeypatch):
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)  # what Windows has on top of SIGINT/SIGTERM
    monkeypatch.setattr(sys, "platform", "linux")
    stops = []
    restore = app._install_signal_handlers(lambda: stops.append(1))
    assert set(signals.handlers) == {signal.SIGINT, signal.SIGTERM, 21}
    signals.handlers[21](21, None)
    assert stops == [1]
    restore()
    assert all(h is signal.SIG_DFL for h in signals.handlers.values())


class _Kernel32:
    def __init__(self) -> None:
        self.handlers: list = []
        self.calls: list[tuple[object, bool]] = []

    def SetConsoleCtrlHandler(self, routine, add: bool) -> int:  # noqa: N802 - the Win32 name
        self.calls.append((routine, add))
        if add:
            self.handlers.append(routine)
        else:
            self.handlers.remove(routine)
        return 1


def test_console_close_requests_the_stop_and_holds_windows_off_until_stopped(signals, monkeypatch):
    kernel32 = _Kernel32()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(app, "_console_api", lambda: (kernel32, lambda fn: fn))  # WINFUNCTYPE(...)(fn) -> fn
    stop_requested = threading.Event()
    stopped = threading.Event()
    restore = app._install_signal_handlers(stop_requested.set, stopped)
    (routine,) = kernel32.handlers

    # Ctrl+C / Ctrl+Break are left to the C runtime, hence to the SIGINT/SIGBREAK handlers
    assert routine(app.CTRL_C_EVENT) is False and routine(app.CTRL_BREAK_EVENT) is False
    assert not stop_requested.is_set()

    answers = []
    closing = threading.Thread(target=lambda: answers.append(routine(app.CTRL_CLOSE_EVENT)))
    closing.start()
    assert stop_requested.wait(10)  # the executor was asked to stop ...
    closing.join(0.2)
    assert closing.is_alive() and answers == []  # ... and Windows is held off (returning would end the process)
    stopped.set()  # the executor finished stop()
    closing.join(10)
    assert answers == [True]
    restore()
    assert kernel32.handlers == [] and kernel32.calls[-1] == (routine, False)


def test_no_console_handler_off_windows(signals, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")

    def fail() -> None:
        raise AssertionError("kernel32 asked for off Windows")

    monkeypatch.setattr(app, "_console_api", fail)
    app._install_signal_handlers(lambda: None)()

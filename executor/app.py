"""Wiring and process lifecycle: ``build_executor(settings)`` and the blocking ``run(settings)``.

Shutdown: Ctrl+C (SIGINT), SIGTERM, and on Windows Ctrl+Break (SIGBREAK) set a stop event through
``loop.call_soon_threadsafe`` from a ``signal.signal`` handler (``loop.add_signal_handler`` does not exist on
Windows). The executor then stops reading, finishes in-flight commands (bounded by ``shutdown_timeout_ms``),
closes the broker, publishes ExecutorStopped and flushes events.

Closing the console window (CTRL_CLOSE_EVENT) is different: Windows ends the process as soon as the console control
handler returns, and the C runtime's handler behind ``signal.signal`` returns at once, before any Python code runs.
So on Windows a handler of our own (``SetConsoleCtrlHandler``) asks for the same stop and keeps Windows waiting until
the executor has stopped. Windows waits about 5 seconds for that, whatever ``shutdown_timeout_ms`` says: what is not
finished by then (answers, ExecutorStopped, the lease release) is left as after a crash: the entries stay pending
and the next executor (or the standby, after lease_ms) resolves them; spooled events are published at the next start.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from executor.config import ExecutorSettings
from executor.engine import Executor
from executor.logs import configure, hide, mask_url

log = structlog.get_logger("executor.app")


def build_executor(settings: ExecutorSettings) -> Executor:
    """The executor for ``settings``, with the broker from ``executor.broker.make_broker``."""
    from executor.broker import make_broker  # imported here: the adapter package is optional at import time

    return Executor(settings, make_broker(settings))


EXIT_LEASE_LOST = 3


def run(settings: ExecutorSettings) -> int:
    """Run the executor until a stop signal. Returns the process exit code: 0 clean, 1 failed, EXIT_LEASE_LOST (3)
    when it stepped down because another executor took over the account (a supervisor restarts it as standby)."""
    configure(settings.log_level, settings.log_json)
    hide(*_secrets(settings))
    log.info("starting executor", account=settings.account, broker=settings.broker,
             redis=mask_url(settings.redis_url), state_dir=str(settings.state_dir))
    try:
        fenced = asyncio.run(_main(settings))
        return EXIT_LEASE_LOST if fenced else 0
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        return 1
    except Exception:
        log.exception("executor failed")
        return 1


def _secrets(settings: ExecutorSettings) -> list[str]:
    """Every secret the settings hold, for ``logs.hide``: the Redis password (flag/env, or in the URL) and the
    signing keys."""
    found = []
    if settings.redis_password is not None:
        found.append(settings.redis_password.get_secret_value())
    try:
        password = urlsplit(settings.redis_url).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    try:
        from executor.safety.auth import AuthPolicy

        found += [key.secret.decode("utf-8", "replace") for key in AuthPolicy.from_settings(settings).keys.values()]
    except Exception:  # an unusable signing configuration: the engine refuses to start and says why
        pass
    return found


async def _main(settings: ExecutorSettings) -> bool:
    executor = build_executor(settings)
    loop = asyncio.get_running_loop()
    stopped = threading.Event()
    restore = _install_signal_handlers(lambda: loop.call_soon_threadsafe(executor.request_stop), stopped)
    try:
        await executor.run()
    finally:
        stopped.set()
        restore()
    return executor.fenced


def _install_signal_handlers(stop: Any, stopped: threading.Event | None = None) -> Any:
    """Route SIGINT/SIGTERM/SIGBREAK (every one this platform has) to ``stop``, and on Windows the console close
    too (``_install_console_close_handler``); returns a function restoring the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}
    seen = {"count": 0}

    def handler(signum: int, _frame: Any) -> None:
        seen["count"] += 1
        if seen["count"] > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop waiting
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass

    unhook = _install_console_close_handler(stop, stopped or threading.Event()) if sys.platform == "win32" else None

    def restore() -> None:
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError):
                pass
        if unhook is not None:
            unhook()

    return restore


# Console control events (wincon.h). Ctrl+C and Ctrl+Break reach the SIGINT/SIGBREAK handlers through the C runtime.
CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT = 0, 1, 2, 5, 6
_CLOSE_EVENTS = {CTRL_CLOSE_EVENT: "console closed", CTRL_LOGOFF_EVENT: "log-off", CTRL_SHUTDOWN_EVENT: "shutdown"}
CLOSE_WAIT_S = 30.0  # longer than Windows lets a closing console wait (about 5 s): it decides, not us


def _console_api() -> tuple[Any, Any]:
    """kernel32 and the HandlerRoutine function type (Windows only; a test passes fakes)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    return kernel32, ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined]


def _install_console_close_handler(stop: Any, stopped: threading.Event) -> Any:
    """Windows: on a console close, log-off or shutdown, request the stop and hold Windows off until the executor
    has stopped (the handler runs on a thread Windows creates; returning ends the process). Returns an uninstaller,
    or None if the handler could not be installed (then a console close ends the process at once, as before)."""
    try:
        kernel32, handler_type = _console_api()
    except (ImportError, OSError, AttributeError) as exc:
        log.warning("console close handler unavailable: closing the window ends the executor abruptly",
                    error=repr(exc))
        return None

    def on_event(event: int) -> bool:
        why = _CLOSE_EVENTS.get(event)
        if why is None:
            return False  # Ctrl+C / Ctrl+Break: the next handler (the C runtime's, then ours through signal)
        log.info("stop requested", signal=why)
        stop()
        stopped.wait(CLOSE_WAIT_S)
        return True

    routine = handler_type(on_event)  # referenced by the closure below: it must outlive the registration
    if not kernel32.SetConsoleCtrlHandler(routine, True):
        log.warning("console close handler not installed: closing the window ends the executor abruptly")
        return None

    def uninstall() -> None:
        kernel32.SetConsoleCtrlHandler(routine, False)

    return uninstall

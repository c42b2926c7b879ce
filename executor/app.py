"""Wiring and process lifecycle: ``build_executor(settings)`` and the blocking ``run(settings)``.

Shutdown: Ctrl+C (SIGINT), SIGTERM, and on Windows Ctrl+Break / console close (SIGBREAK) set a stop event through
``loop.call_soon_threadsafe`` from a ``signal.signal`` handler (``loop.add_signal_handler`` does not exist on
Windows). The executor then stops reading, finishes in-flight commands (bounded by ``shutdown_timeout_ms``),
closes the broker, publishes ExecutorStopped and flushes events.
"""

from __future__ import annotations

import asyncio
import signal
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
        from executor.auth import AuthPolicy

        found += [key.secret.decode("utf-8", "replace") for key in AuthPolicy.from_settings(settings).keys.values()]
    except Exception:  # an unusable signing configuration: the engine refuses to start and says why
        pass
    return found


async def _main(settings: ExecutorSettings) -> bool:
    executor = build_executor(settings)
    loop = asyncio.get_running_loop()
    restore = _install_signal_handlers(lambda: loop.call_soon_threadsafe(executor.request_stop))
    try:
        await executor.run()
    finally:
        restore()
    return executor.fenced


def _install_signal_handlers(stop: Any) -> Any:
    """Route SIGINT/SIGTERM/SIGBREAK to ``stop``; returns a function restoring the previous handlers."""
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

    def restore() -> None:
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError):
                pass

    return restore

"""Logging: structlog for the executor's own lines, stdlib ``logging`` (the simulator, redis, xtquant glue) routed
through the same renderer. Console lines by default, one JSON object per line with ``log_json``.

Secrets never reach a log line, and neither do the local variables of a traceback:

* exceptions are rendered as plain tracebacks, never with locals (structlog's default renderer shows every frame's
  locals when ``rich`` or ``better-exceptions`` is installed: the settings, so the Redis URL with its password,
  and rendering a huge structure that way blocked the event loop for longer than the lease);
* every rendered line, traceback included, goes through ``redact``: ``scheme://user:password@`` becomes
  ``scheme://user:***@``, and every value registered with ``hide`` (the Redis password, signing keys) becomes
  ``***``, whatever key, message or exception text it appears in;
* an exception nobody caught (main thread, other threads) is logged the same way instead of printed by Python.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

import structlog

from producer_lib.redis_options import mask_url  # the one URL masking (re-exported: executor.logs.mask_url)

_hidden: set[str] = set()
_MIN_HIDDEN_LEN = 4  # shorter values would mask ordinary words; they are no secrets worth the name anyway


def hide(*values: str | None) -> None:
    """Register secrets (passwords, keys) that ``redact`` replaces by ``***`` in every rendered line (also as
    they appear escaped inside a repr or a JSON string)."""
    for value in values:
        if value and len(value) >= _MIN_HIDDEN_LEN:
            _hidden.update({value, repr(value)[1:-1], json.dumps(value)[1:-1]})


def redact(text: str) -> str:
    """``text`` with URL passwords and every ``hide``-registered secret masked (longest first)."""
    if "://" in text and "@" in text:
        text = mask_url(text)
    for secret in sorted(_hidden, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redact_values(_logger, _name, event_dict):
    """Before rendering (JSON escapes what it renders): every string value, the formatted traceback included."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The last step before a line is written: whatever was rendered (messages, values, tracebacks) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def console_colors(stream: Any) -> bool:
    """Colours only on a terminal, and on Windows only with colorama (structlog's ConsoleRenderer raises
    SystemError for ``colors=True`` on Windows without it). ``NO_COLOR`` switches them off."""
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return False
    if sys.platform == "win32":
        try:
            import colorama  # noqa: F401
        except ImportError:
            return False
    return True


def configure(level: str = "INFO", json: bool = False, stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger once per process (idempotent). Lines go to ``stream``
    (default: ``sys.stderr``)."""
    stream = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
        _redact_values,
    ]
    # plain_traceback: the traceback module's text, no locals, whatever else is installed.
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=console_colors(stream),
                                                   exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = _RedactingFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([structlog.processors.format_exc_info, _redact_values] if json else []), renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("xtqueue")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "xtqueue"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, None)  # one line, no traceback
        return
    logging.getLogger("executor").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("executor").critical("uncaught exception in thread %s", name,
                                           exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

"""Logging: structlog for the executor's own lines, stdlib ``logging`` (the simulator, redis, xtquant glue) routed
through the same renderer. Console lines by default, one JSON object per line with ``log_json``.

Secrets never reach a log line: ``mask_url`` hides the password of a redis:// URL, and a processor applies it to
any value logged under a key containing ``url``.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)", re.I)


def mask_url(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)


def _mask_urls(_logger, _name, event_dict):
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value and "@" in value:
            event_dict[key] = mask_url(value)
    return event_dict


def configure(level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and the stdlib root logger once per process (idempotent)."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
        _mask_urls,
    ]
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([structlog.processors.format_exc_info] if json else []), renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("xtqueue")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "xtqueue"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)

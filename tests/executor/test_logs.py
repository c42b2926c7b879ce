"""executor/logs.py: tracebacks without locals, secrets masked in whatever is rendered, console colours that never
need colorama (issue #10: defect 11a, the logging part of defect 7, and a suspected item)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest
import structlog

from executor import logs

SECRET = 'pw"with\\quote-9d41'  # a quote and a backslash: escaped differently by repr and by JSON


class _Stderr(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def stderr(monkeypatch):
    """configure() writing into a buffer; structlog, the root logger and the excepthooks restored afterwards."""
    buf = _Stderr()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    monkeypatch.setattr(logs, "_hidden", set())
    root = logging.getLogger()
    level = root.level
    yield buf
    for handler in [h for h in root.handlers if h.get_name() == "xtqueue"]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


class _Watched:
    """A local whose repr is expensive (a huge structure): rendering it is what blocked the loop."""

    reprs = 0

    def __repr__(self) -> str:
        type(self).reprs += 1
        return "WATCHED-" + "x" * 100


def _fail_holding_big_state() -> None:
    watched = _Watched()  # noqa: F841 - a local of the failing frame
    big = {i: list(range(50)) for i in range(2_000)}  # noqa: F841
    raise ValueError("boom")


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_exceptions_are_rendered_without_frame_variables(stderr, as_json):
    logs.configure("INFO", json=as_json, stream=stderr)
    _Watched.reprs = 0
    try:
        _fail_holding_big_state()
    except ValueError:
        structlog.get_logger("executor").exception("executor failed")
    out = stderr.getvalue()
    assert "ValueError: boom" in out and "_fail_holding_big_state" in out
    assert _Watched.reprs == 0 and "WATCHED" not in out  # no frame's locals were rendered (nor even repr'd)
    assert "locals" not in out


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
def test_hidden_secrets_are_masked_in_values_messages_and_tracebacks(stderr, as_json):
    logs.configure("INFO", json=as_json, stream=stderr)
    logs.hide(SECRET)
    log = structlog.get_logger("executor")
    log.warning("connecting", url=f"redis://user:{SECRET}@10.0.0.5:6379/0", settings={"password": SECRET})
    logging.getLogger("redis").warning("auth failed for %s", SECRET)  # a foreign (stdlib) line
    try:
        raise ConnectionError(f"cannot log in with {SECRET}")
    except ConnectionError:
        log.exception("redis failed")
    out = stderr.getvalue()
    for form in (SECRET, repr(SECRET)[1:-1], json.dumps(SECRET)[1:-1]):
        assert form not in out, out
    assert out.count("***") >= 4
    if as_json:
        assert [json.loads(line)["event"] for line in out.splitlines()][:2] == ["connecting", "auth failed for ***"]


def test_uncaught_exception_in_a_thread_is_logged_masked(stderr):
    logs.configure("INFO", stream=stderr)
    logs.hide(SECRET)

    def fail() -> None:
        raise RuntimeError(f"thread saw {SECRET}")

    t = threading.Thread(target=fail, name="broker")
    t.start()
    t.join()
    out = stderr.getvalue()
    assert "uncaught exception in thread broker" in out and "RuntimeError: thread saw ***" in out
    assert SECRET not in out


def test_console_on_windows_without_colorama_does_not_need_it(stderr, monkeypatch):
    """structlog's ConsoleRenderer(colors=True) raises SystemError on Windows without colorama (structlog/dev.py,
    ``_init_terminal`` under ``_IS_WINDOWS``). Reproduced here on any platform: Windows, a console (TTY), no
    colorama, and structlog's Windows check."""
    console = _Stderr(tty=True)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "colorama", None)  # import colorama -> ImportError
    monkeypatch.delenv("NO_COLOR", raising=False)

    def windows_init_terminal(who: str, force_colors: bool) -> None:
        raise SystemError(f"{who} with `colors=True` on Windows requires the colorama package installed.")

    monkeypatch.setattr(structlog.dev, "_init_terminal", windows_init_terminal)
    logs.configure("INFO", stream=console)
    structlog.get_logger("executor").info("plain line", n=1)
    out = console.getvalue()
    assert "plain line" in out and "\x1b[" not in out


def test_console_colours_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not logs.console_colors(_Stderr(tty=False))
    if sys.platform != "win32":
        assert logs.console_colors(_Stderr(tty=True))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not logs.console_colors(_Stderr(tty=True))

"""The executor's own command (执行器命令): its flags, built from ``ExecutorSettings`` (one schema), the settings
loaded from flags > environment XTQUEUE_* > TOML file > defaults, and ``--check`` (the heartbeat read, for Windows
autostart and monitoring). ``xtqueue executor`` (xtqueue/cli/processes.py) and ``python -m executor``
(executor/__main__.py) both run it, so the executor never imports the xtqueue command.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any, Sequence

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}  # as the xtqueue command's
EXIT_ERROR = 1  # as the xtqueue command's: anything else (Redis unreachable, executor error)
EXIT_INTERRUPTED = 130  # Ctrl+C with nothing pending (the shell's 128 + SIGINT)


class CommandError(click.ClickException):
    """One line ``error [KIND]: message`` and exit 1, as every error of the xtqueue command reads."""

    exit_code = EXIT_ERROR
    kind = "error"

    def __init__(self, kind: str | None, message: str) -> None:
        super().__init__(message)
        if kind:
            self.kind = kind

    def show(self, file: Any = None) -> None:
        click.echo(f"error [{self.kind}]: {self.message}", err=True)


def command_options() -> list[click.Option]:
    """Every flag of the executor command: ``--config``, ``--check``, then one per settings field."""
    return [
        click.Option(["--config", "config_file"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     envvar="XTQUEUE_CONFIG", show_envvar=True, metavar="FILE",
                     help="TOML file of settings (flags > environment XTQUEUE_* > file > defaults)."),
        click.Option(["--check"], is_flag=True,
                     help="Do not run: exit 0 if this executor's heartbeat is present and its broker is connected, "
                          "else 1, saying why (for Windows autostart / monitoring)."),
        *settings_options(),
    ]


def run(config_file: Path | None, check: bool, flags: dict[str, Any]) -> int:
    """The command's work: load and check the settings (a wrong one is a usage error, nothing started), then either
    read the heartbeat (``--check``) or run the executor until it stops; the exit code."""
    if config_file is not None and not Path(config_file).is_file():
        raise click.BadParameter(f"{config_file} does not exist", param_hint="--config")
    from executor.config import ExecutorSettings
    from pydantic import ValidationError

    try:
        settings = ExecutorSettings.load(config_file, **flags)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise click.UsageError("invalid executor settings (nothing was started):\n" + "\n".join(lines)) from None
    if check:
        from executor.safety.auth import redis_security_kwargs

        code, message = check_heartbeat(settings.redis_url, settings.account, settings.key_prefix,
                                        redis_security_kwargs(settings))
        click.echo(message, err=code != 0)
        return code
    if settings.broker == "xt":
        check_real_xtquant()
    import importlib

    app = importlib.import_module("executor.app")
    return int(app.run(settings) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m executor``: the same command, flags and messages as ``xtqueue executor``."""
    def callback(config_file: Path | None, check: bool, **flags: Any) -> None:
        click.get_current_context().exit(run(config_file, check, flags))

    # as the xtqueue command does without -v: the library's retry warnings stay out of one-line errors
    logging.getLogger("producer_lib").setLevel(logging.ERROR)
    def verbose(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value:
            logging.getLogger("producer_lib").setLevel(logging.INFO)
        return value

    # The xtqueue command's presentation options, accepted as they always were here (this ran through that command
    # before): only --verbose changes anything for the executor.
    presentation = [
        click.Option(["--lang"], default=None, type=click.Choice(["en", "zh"]), expose_value=False,
                     help="Column headers and status names in English or Chinese (中文) "
                          "[default: zh when LANG/LC_ALL is zh_*]."),
        click.Option(["-v", "--verbose"], is_flag=True, default=None, expose_value=False, callback=verbose,
                     help="Show the client library's warnings (retries, reconnects)."),
        click.Option(["--debug"], is_flag=True, default=None, expose_value=False,
                     help="Show the traceback of an error instead of one line."),
    ]
    cmd = click.Command("executor", callback=callback, params=[*command_options(), *presentation],
                        context_settings=CONTEXT,
                        help="Run the executor (执行器).\n\nReads commands from Redis, drives the broker (the "
                             "simulator or MiniQMT), publishes events.")
    try:
        code = cmd.main(args=list(argv) if argv is not None else None, prog_name="xtqueue executor",
                        standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "xtqueue executor"
        click.echo(f"error [usage]: {exc.format_message()}\n  nothing was sent; see: {where} --help", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0


# --- flags from the settings ------------------------------------------------------------------------------------
_RESERVED = {"config_file", "check"}


def settings_options() -> list[click.Option]:
    """One click option per ExecutorSettings field: the settings model is the only schema of the flags.

    bool → --x/--no-x; Literal → a choice; int/float/Path → typed; list[...] → comma-separated (ints also take
    ranges: 100-199). Every default is None, so a flag not given leaves the environment, the TOML file or the
    model's default in charge.
    """
    from executor.config import ExecutorSettings

    options = []
    for name, field in ExecutorSettings.model_fields.items():
        if name in _RESERVED:
            raise RuntimeError(f"ExecutorSettings.{name} clashes with a flag of `xtqueue executor`")
        flag = "--" + name.replace("_", "-")
        annotation = _unwrap_optional(field.annotation)
        kwargs: dict[str, Any] = {"default": None}
        origin = typing.get_origin(annotation)
        if annotation is bool:
            decls = [f"{flag}/--no-{name.replace('_', '-')}", name]
        else:
            decls = [flag, name]
            if origin is typing.Literal:
                kwargs["type"] = click.Choice([str(a) for a in typing.get_args(annotation)])
            elif origin in (list, tuple, set, frozenset):
                item = (typing.get_args(annotation) or (str,))[0]
                kwargs["type"] = _ListType(item)
            elif annotation is int:
                kwargs["type"] = click.INT
            elif annotation is float:
                kwargs["type"] = click.FLOAT
            elif isinstance(annotation, type) and issubclass(annotation, Path):
                kwargs["type"] = click.Path(path_type=Path)
            elif hasattr(annotation, "model_fields"):  # a nested section ([risk]): JSON on the command line
                kwargs["type"] = _JsonType()
            else:
                kwargs["type"] = click.STRING
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            shown = _list_text(default)
        elif hasattr(type(default), "model_fields"):
            shown = "{} (JSON object; usually the TOML table instead)"
        elif isinstance(default, bool):
            shown = flag[2:] if default else "no-" + flag[2:]
        else:
            shown = "" if default is None else str(default)
        description = field.description or name.replace("_", " ")
        kwargs["help"] = f"{description}  [default: {shown or 'none'}; env XTQUEUE_{name.upper()}]"
        options.append(click.Option(decls, **kwargs))
    return options


def _unwrap_optional(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _list_text(values: list) -> str:
    ints = all(isinstance(v, int) for v in values)
    if ints and len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)


class _JsonType(click.ParamType):
    """A JSON object, e.g. --risk '{"max_order_volume": 10000}'."""

    name = "JSON"

    def convert(self, value: Any, param: Any, ctx: Any) -> dict:
        import json

        if isinstance(value, dict):
            return value
        try:
            data = json.loads(value)
        except ValueError as exc:
            self.fail(f"not JSON: {exc}", param, ctx)
        if not isinstance(data, dict):
            self.fail("give a JSON object ({...})", param, ctx)
        return data


class _ListType(click.ParamType):
    """A comma-separated list; for int items, ``a-b`` is the inclusive range."""

    name = "LIST"

    def __init__(self, item: Any) -> None:
        self.item = item

    def convert(self, value: Any, param: Any, ctx: Any) -> list:
        if isinstance(value, list):
            return value
        out: list = []
        for part in (p.strip() for p in str(value).split(",")):
            if not part:
                continue
            if self.item is int:
                m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
                try:
                    out.extend(range(int(m.group(1)), int(m.group(2)) + 1) if m else [int(part)])
                except ValueError:
                    self.fail(f"{part!r} is not an integer (give e.g. 100,101,105 or 100-199)", param, ctx)
            else:
                out.append(part)
        if not out:
            self.fail("empty list", param, ctx)
        return out


def check_real_xtquant() -> None:
    """--broker xt needs xtquant's binary client, which exists only in the Windows wheel next to a MiniQMT: say so in
    one line instead of an ImportError traceback from inside xtquant."""
    try:
        from xtquant import xttrader  # noqa: F401
    except ImportError as exc:
        where = "on Windows next to a running MiniQMT" if sys.platform != "win32" else "with MiniQMT's xtquant"
        raise CommandError(
            "broker", f"--broker xt cannot load xtquant's trading client here ({exc}); it runs {where}. Nothing was "
            "started. On this machine use --broker sim (xtquant's own trader class on a simulated MiniQMT, see "
            "`xtqueue qmt-sim`)."
        ) from None


def check_heartbeat(redis_url: str, account: str, key_prefix: str | None = None,
                    redis_kwargs: dict[str, Any] | None = None) -> tuple[int, str]:
    """(exit code, reason) from the account's heartbeat key: 0 only if present and the broker is connected."""
    import redis
    from producer_lib import contract

    key = contract.Keys(account, key_prefix or contract.KEY_PREFIX).heartbeat
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3, **(redis_kwargs or {}))
        try:
            raw = client.get(key)
            ttl_ms = client.pttl(key) if raw is not None else -2
        finally:
            client.close()
    except redis.RedisError as exc:
        return 1, f"unhealthy: cannot read {key} from Redis ({exc})"
    if raw is None:
        return 1, f"unhealthy: no heartbeat at {key}: the executor is not running (or not on this Redis/account)"
    beat = contract.Heartbeat.decode(raw)  # the one reader of the heartbeat
    if beat is None:
        return 1, f"unhealthy: heartbeat at {key} is not a readable JSON object"
    who = beat.executor_id or "executor"
    age = f", beat {max(0.0, time.time() - beat.ts_ms / 1000):.1f}s ago" if beat.ts_ms > 0 else ""
    broker = beat.broker or "?"
    if not beat.connected:
        return 1, f"unhealthy: {who} is running{age} but its broker ({broker}) is not connected"
    return 0, f"ok: {who} is running{age}, broker {broker} connected (heartbeat expires in {max(ttl_ms, 0)} ms)"

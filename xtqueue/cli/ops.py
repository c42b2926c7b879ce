"""Commands that operate an account rather than trade on it: ``status`` (is an executor up, from Redis alone),
``tail`` (follow the events), ``halt``/``resume`` (the kill switch) and ``acl`` (the Redis users of a roles file)."""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from xtqueue import _render as r

from . import _connect
from ._connect import CliError, NoExecutor, client_unchecked, read_heartbeat, redis_checked
from ._options import CONTEXT, Globals, json_option, mask_url


# --- status -----------------------------------------------------------------------------------------------------
@click.command()
@click.option("--ping", "with_ping", is_flag=True,
              help="Also ask the executor of --account (a round trip) for its ping and the broker's account status.")
@json_option
@click.pass_obj
def status(g: Globals, with_ping: bool, as_json: bool) -> None:
    """Is an executor up, for every account on this Redis (执行器状态).

    Read from Redis alone, in milliseconds, whether or not an executor runs: per account its heartbeat (executor,
    leader, broker connected, last beat in Beijing time), the kill switch, the command streams' backlog (waiting =
    not yet read, unanswered = read, not yet acknowledged) and the last event. All accounts with a heartbeat or
    streams unless --account is given. Exit 0 when every account shown has a live executor with its broker
    connected, else 1.
    """
    client = redis_checked(g)
    try:
        accounts = [g.account] if g.account_given else (_accounts_on(client) or [g.account])
        reports = [_account_report(client, account) for account in accounts]
    finally:
        client.close()
    extra: dict[str, Any] = {}
    if with_ping:
        with _connect.client(g) as c:
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


@click.command()
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
    probe = redis_checked(g)
    try:
        beat = read_heartbeat(probe, g.account)
    finally:
        probe.close()
    where = {"$": "new events only", "0-0": "the oldest event still kept"}.get(start, f"after {start}")
    filt = f", types {', '.join(types)}" if types else ""
    click.echo(f"following events of account {g.account} on {mask_url(g.redis_url)} ({where}{filt}); Ctrl+C ends"
               + ("" if beat is not None else f"\n  note: no executor serves {g.account} right now (no heartbeat); "
                                              "events appear once one runs"), err=True)
    try:
        with client_unchecked(g) as c:
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


def _gap_fields(gap: Any) -> dict[str, Any]:
    if hasattr(type(gap), "model_fields"):
        return {k: getattr(gap, k) for k in type(gap).model_fields}
    return {k: v for k, v in getattr(gap, "__dict__", {}).items() if not k.startswith("_")}


# --- kill switch ------------------------------------------------------------------------------------------------
@click.command()
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
    client = redis_checked(g)
    try:
        version = _halt_write(client, contract.Keys(account).halt, True, reason)
    finally:
        client.close()
    click.echo(f"halted {account}: new orders are refused ({reason}); cancels still pass (version {version}). "
               f"Lift with: xtqueue resume {account}")
    if not cancel_open:
        return
    failed = 0
    try:
        opened = _connect.client(dataclasses.replace(g, account=account))
    except NoExecutor:
        # The halt above is written and holds for whichever executor serves next; only the cancels need one now.
        click.echo(f"no executor serves {account} now: open orders were NOT cancelled (the halt holds: the next "
                   f"executor reads it before any order). Once one runs: xtqueue halt {account} --cancel-open",
                   err=True)
        sys.exit(r.EXIT_ERROR)
    with opened as c:
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


@click.command()
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
    client = redis_checked(g)
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


# --- Redis ACL users ---------------------------------------------------------------------------------------------
@click.command("acl", context_settings=CONTEXT)
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


acl_command.no_globals = True  # type: ignore[attr-defined]  # it uses neither Redis nor an account

"""Reaching Redis and the account's executor, and the one-line errors when one cannot: a Redis connection that
answered PING, the heartbeat read, and the SyncClient a command sends with, made only after the heartbeat says an
executor serves the account (so a wrong URL or a missing executor is one clear line, nothing sent)."""

from __future__ import annotations

import re
from typing import Any

import click

from xtqueue import _render as r

from ._options import Globals, mask_url


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


def redis_checked(g: Globals, redis_kwargs: dict[str, Any] | None = None) -> Any:
    """A Redis connection that answered PING; RedisUnreachable (one line, nothing sent) otherwise. ``redis_kwargs``:
    the connection's security options when not the global ones (xtqueue http's credential file)."""
    import redis

    kwargs = g.redis_kwargs if redis_kwargs is None else redis_kwargs
    try:
        client = redis.Redis.from_url(g.redis_url, socket_connect_timeout=3, socket_timeout=3, **kwargs)
    except ValueError as exc:  # a URL redis-py cannot parse
        raise RedisUnreachable(f"bad --redis-url {mask_url(g.redis_url)}: {exc}") from None
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        client.close()
        raise RedisUnreachable(f"Redis at {mask_url(g.redis_url)} refused the login ({exc}): check "
                               "--redis-username / XTQUEUE_REDIS_PASSWORD; nothing was sent") from None
    except redis.RedisError as exc:
        client.close()
        raise RedisUnreachable(f"cannot reach Redis at {mask_url(g.redis_url)}: {exc}; nothing was sent") from None
    return client


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


def client(g: Globals, strategy: str = "") -> Any:
    """A SyncClient, after checking once that Redis answers and that an executor serves the account (its
    heartbeat): a wrong URL, a Redis that is down or a missing executor is one clear line (exit 1, nothing sent)
    within a second, instead of the client's wait ending in an 'outcome unknown'. Commands call it as
    ``_connect.client`` (the seam the tests replace with a fake)."""
    probe = redis_checked(g)
    try:
        beat = read_heartbeat(probe, g.account)
        if beat is None:
            raise NoExecutor(_no_executor_message(probe, g))
    finally:
        probe.close()
    return client_unchecked(g, strategy)


def client_unchecked(g: Globals, strategy: str = "") -> Any:
    """A SyncClient without the executor check (following events needs no executor)."""
    from producer_lib import SyncClient

    user = g.redis_security.get("username") or ""
    # Its command stream is cmd:<strategy>, its reply streams reply:<strategy>.* (xtqueue acl): nothing else.
    if not strategy and user.startswith("xtq-strategy-"):
        strategy = user.removeprefix("xtq-strategy-")
    return SyncClient(g.redis_url, g.account, strategy=strategy, **g.redis_kwargs)


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
            f"start one: xtqueue executor --account {g.account} --redis-url {mask_url(g.redis_url)}")
    return (f"no executor serves account {g.account} on {mask_url(g.redis_url)} (no heartbeat at {key}); "
            f"nothing was sent\n  {hint}")

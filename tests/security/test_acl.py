"""Redis ACL users from `xtqueue acl`: each role can do what it must and is refused (NOPERM) everything else, on a
real redis-server loaded with the generated ACL file; a real executor process on the simulator serves strategies
through their ACL users, a subscriber reads events. One server runs with TLS (CA and certificates made here)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from security_helpers import ROOT, ExecutorProc, RedisServer, openssl_certs

import producer_lib as pl
from producer_lib import contract as c
from xtqueue import acl
from xtqueue.cli import cli

ROLES = """
accounts = ["A1", "A2"]

[strategies.alpha]
accounts = ["A1"]
sign = true

[strategies.beta]
accounts = ["A1", "A2"]

[subscribers.dash]
accounts = ["A1"]

[operators.ops]
"""

K1, K2 = c.Keys("A1"), c.Keys("A2")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("acl")
    (d / "roles.toml").write_text(ROLES)
    result = acl.generate(d / "roles.toml", d / "users.acl", d / "secrets")
    return d, result


def creds(generated, user: str) -> dict[str, str]:
    d, _ = generated
    return acl.read_credentials(d / "secrets" / f"{user}.env")


@pytest.fixture(scope="module")
def server(generated, tmp_path_factory):
    d, result = generated
    srv = RedisServer(tmp_path_factory.mktemp("redis-acl"), aclfile=result.aclfile).start()
    yield srv
    srv.stop()


def connect(server: RedisServer, generated, user: str, **kw) -> redis.Redis:
    cr = creds(generated, user)
    return redis.Redis.from_url(server.url, username=cr["XTQUEUE_REDIS_USERNAME"],
                                password=cr["XTQUEUE_REDIS_PASSWORD"], **kw)


def refused(call, *args, **kw) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        call(*args, **kw)


# --- the files ---------------------------------------------------------------------------------------------------
def test_generated_files_hold_secrets_privately(generated):
    d, result = generated
    assert stat.S_IMODE(os.stat(d / "secrets").st_mode) == 0o700
    for path in [*result.credential_files.values(), *result.signing_files.values()]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    text = result.aclfile.read_text()
    assert "user default reset off" in text
    for user in result.users:
        assert user.password not in text and len(user.password) >= 40
        assert f"user {user.name} reset on #" in text
    alpha = creds(generated, "xtq-strategy-alpha")
    assert alpha["XTQUEUE_KEY_ID"].startswith("alpha-") and len(alpha["XTQUEUE_SIGNING_KEY"]) >= 40
    signing = (d / "secrets" / "executor-A1.signing.toml").read_text()
    assert alpha["XTQUEUE_SIGNING_KEY"] in signing and 'required = ["alpha"]' in signing
    assert not (d / "secrets" / "executor-A2.signing.toml").exists()  # alpha does not trade A2


def test_cli_keeps_passwords_unless_rotating_and_never_prints_them(tmp_path):
    (tmp_path / "roles.toml").write_text(ROLES)
    args = ["acl", str(tmp_path / "roles.toml"), "--out", str(tmp_path / "users.acl"), "--secrets-dir",
            str(tmp_path / "s")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    before = acl.read_credentials(tmp_path / "s" / "xtq-strategy-alpha.env")
    assert before["XTQUEUE_REDIS_PASSWORD"] not in first.output
    assert before["XTQUEUE_SIGNING_KEY"] not in first.output
    assert "xtq-strategy-alpha" in first.output and "xtq-executor-A2" in first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0
    assert acl.read_credentials(tmp_path / "s" / "xtq-strategy-alpha.env") == before
    rotated = CliRunner().invoke(cli, [*args, "--rotate"])
    assert rotated.exit_code == 0
    after = acl.read_credentials(tmp_path / "s" / "xtq-strategy-alpha.env")
    assert after["XTQUEUE_REDIS_PASSWORD"] != before["XTQUEUE_REDIS_PASSWORD"]
    assert after["XTQUEUE_SIGNING_KEY"] != before["XTQUEUE_SIGNING_KEY"]


@pytest.mark.parametrize("roles, message", [
    ('accounts = []', "accounts"),
    ('accounts = ["A1"]\n[strategies."a*"]\naccounts = ["A1"]', "names"),
    ('accounts = ["A1"]\n[strategies.x]\naccounts = ["B9"]', "not in the top-level"),
    ('accounts = ["A1"]\n[strategies.x]\n', "accounts"),
    ('accounts = ["A1"]\nkey_prefix = "x*"', "key_prefix"),
])
def test_bad_roles_files_are_refused(tmp_path, roles, message):
    (tmp_path / "roles.toml").write_text(roles)
    with pytest.raises(acl.RolesError, match=message):
        acl.generate(tmp_path / "roles.toml", tmp_path / "users.acl", tmp_path / "s")


# --- each role against a real Redis --------------------------------------------------------------------------------
def test_default_user_is_off(server):
    anon = redis.Redis.from_url(server.url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anon.ping()


def test_strategy_user(server, generated):
    admin = connect(server, generated, "xtq-admin")
    admin.xadd(K1.events, {"seq": "1"})
    admin.xadd(K2.events, {"seq": "1"})
    admin.xadd(K1.replies("beta.x1"), {"id": "1"})
    r = connect(server, generated, "xtq-strategy-alpha")
    assert r.ping()
    r.xadd(K1.command_stream("alpha"), {"v": "1"})  # its own command stream of its account
    mine = K1.replies("alpha.abc")
    r.xadd(mine, {"wake": "close"})
    assert r.xread({mine: "0"}) and r.delete(mine) == 1
    assert r.xrange(K1.events) and r.xrevrange(K1.events, count=1) and r.xinfo_stream(K1.events)
    r.xread({K1.events: "0"})
    refused(r.xadd, K2.command_stream("alpha"), {"v": "1"})  # another account's commands
    refused(r.xadd, K1.command_stream("beta"), {"v": "1"})  # another strategy's command stream
    refused(r.xadd, K1.commands, {"v": "1"})  # the stream of clients without a strategy (no ACL deployments)
    refused(r.xadd, K1.command_stream("alphabet"), {"v": "1"})  # a prefix is not a strategy
    refused(r.xread, {K1.replies("beta.x1"): "0"})  # another strategy's replies
    refused(r.xread, {K1.replies("alphabet.x1"): "0"})  # a prefix is not a strategy
    refused(r.delete, K1.replies("beta.x1"))
    refused(r.xadd, K1.events, {"seq": "2"})  # events are the executor's
    refused(r.xrange, K2.events)  # another account's events
    refused(r.xreadgroup, c.COMMAND_GROUP, "me", {K1.commands: ">"})
    refused(r.xrange, K1.commands)
    refused(r.xrange, K1.command_stream("alpha"))  # XADD only: no XTRIM, XDEL, reads of its own stream
    refused(r.xtrim, K1.command_stream("alpha"), maxlen=0)
    refused(r.xdel, K1.command_stream("alpha"), "1-1")
    refused(r.xadd, K1.dead_letter, {"x": "1"})
    assert r.get(K1.heartbeat) is None  # read-only: "no executor" answered before sending (issue #14)
    refused(r.set, K1.heartbeat, "{}")
    refused(r.get, K2.heartbeat)  # another account's
    refused(r.set, K1.halt, "stop")
    refused(r.xadd, K1.halt, c.halt_entry(False))  # a strategy cannot lift (or set) the kill switch
    refused(r.set, K1.lease, "1:me")
    refused(r.delete, K1.commands)
    refused(r.keys, "*")
    refused(r.config_get, "*")
    refused(r.flushall)
    refused(r.eval, "return 1", 0)


def test_subscriber_user(server, generated):
    admin = connect(server, generated, "xtq-admin")
    admin.xadd(K1.events, {"seq": "9"})
    r = connect(server, generated, "xtq-subscriber-dash")
    assert r.xread({K1.events: "0"}) and r.xrange(K1.events) and r.xrevrange(K1.events, count=1)
    assert r.xinfo_stream(K1.events)
    refused(r.xadd, K1.events, {"seq": "10"})
    refused(r.xadd, K1.commands, {"v": "1"})
    refused(r.xrange, K2.events)
    refused(r.xread, {K1.replies("alpha.x"): "0"})
    refused(r.xrange, K1.dead_letter)
    assert r.get(K1.heartbeat) is None  # read-only
    refused(r.set, K1.heartbeat, "{}")
    refused(r.get, K2.heartbeat)
    refused(r.delete, K1.events)
    refused(r.xtrim, K1.events, maxlen=0)


def test_operator_user(server, generated):
    admin = connect(server, generated, "xtq-admin")
    admin.xadd(K1.commands, {"v": "1"})
    admin.set(K2.heartbeat, "{}")
    r = connect(server, generated, "xtq-operator-ops")
    assert r.xrange(K1.commands) and r.get(K2.heartbeat) == b"{}"
    r.xrange(K1.dead_letter)
    r.xrange(K1.events)
    from xtqueue.cli.ops import _halt_read, _halt_write  # exactly what `xtqueue halt` / `xtqueue resume` send
    _halt_write(r, K1.halt, True, "runaway strategy")
    assert c.halt_state(_halt_read(r, K1.halt))[1:] == (True, "runaway strategy")
    _halt_write(r, K1.halt, False, "")
    assert c.halt_state(_halt_read(r, K1.halt))[1] is False
    assert r.xadd(K2.halt, {"halted": "1", "reason": "x"})  # the documented one-line redis-cli halt
    assert r.delete(K2.halt) == 1  # removing an old-style value (docs/operations.md)
    refused(r.set, K1.halt, "x")  # an unversioned value: not writable (executors would read it as unknown)
    refused(r.xadd, K1.commands, {"v": "1"})
    refused(r.xadd, K1.events, {"seq": "1"})
    refused(r.set, K1.heartbeat, "{}")
    refused(r.delete, K1.commands)
    refused(r.flushall)
    refused(r.config_get, "*")
    refused(r.get, "other:key")


def test_executor_user_is_confined_to_its_account(server, generated):
    r = connect(server, generated, "xtq-executor-A1")
    assert r.time() and r.set(K1.heartbeat, "{}") and r.get(K1.heartbeat) == b"{}"
    try:
        r.xgroup_create(K1.commands, c.COMMAND_GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        assert "BUSYGROUP" in str(exc)
    r.xadd(K1.replies("alpha.z"), {"id": "1"})
    r.xadd(K1.events, {"seq": "1"})
    r.scan(0, match=K1.command_stream_pattern, _type="stream")  # discovering the strategies' streams
    refused(r.xadd, K2.events, {"seq": "1"})
    refused(r.xreadgroup, c.COMMAND_GROUP, "x", {K2.commands: ">"})
    refused(r.set, K2.heartbeat, "{}")
    refused(r.xadd, K1.commands, {"v": "1"})  # it never sends commands
    refused(r.xread, {K1.replies("alpha.z"): "0"})  # nor reads strategies' replies
    refused(r.set, K1.halt, "x")  # the kill switch is the operators'
    refused(r.xadd, K1.halt, c.halt_entry(False))
    assert r.xrevrange(K1.halt, count=1) is not None  # it reads the switch (executor/safety/halt.py)
    refused(r.delete, K1.events)
    refused(r.flushall)
    refused(r.config_set, "appendonly", "no")
    refused(r.xtrim, K2.commands, maxlen=0)
    refused(r.xreadgroup, c.COMMAND_GROUP, "x", {K2.command_stream("beta"): ">"})
    refused(r.client_list)  # server-wide: every account's connections (fencing is the lease's job)
    refused(r.client_kill_filter, _id=1)


async def test_executor_user_can_trim_its_command_stream(server, generated):
    """The hourly trim (XPENDING, XINFO GROUPS, XTRIM MINID) runs under the executor's ACL user."""
    import redis.asyncio as aioredis

    from executor.transport import CommandTransport

    cr = creds(generated, "xtq-executor-A1")
    r = aioredis.Redis.from_url(server.url, username=cr["XTQUEUE_REDIS_USERNAME"],
                                password=cr["XTQUEUE_REDIS_PASSWORD"])
    transport = CommandTransport(r, K1, "trim-check")
    await transport.ensure_group()
    await transport.sync_clock()
    admin = connect(server, generated, "xtq-admin")
    admin.xadd(K1.commands, {"v": "1"})  # a strategy's command (the executor may not add one)
    admin.close()
    entries, _ = await transport.read_new(1000, None)  # this module's earlier tests left commands too
    await r.xack(K1.commands, c.COMMAND_GROUP, *[e.stream_id for e in entries])
    assert await transport.trim_commands(keep_ms=0, approximate=False) is not None  # XINFO + XTRIM: no NOPERM
    await r.aclose()


async def test_executor_user_can_hold_renew_and_reconfirm_its_lease(server, generated):
    """Every lease operation runs under the executor's ACL user: acquire, renew, confirm again after the local
    deadline passed and the key lapsed (the renewal script reads and sets the token counter), release."""
    import redis.asyncio as aioredis

    from executor.lease import Lease

    cr = creds(generated, "xtq-executor-A1")
    r = aioredis.Redis.from_url(server.url, username=cr["XTQUEUE_REDIS_USERNAME"],
                                password=cr["XTQUEUE_REDIS_PASSWORD"])
    admin = connect(server, generated, "xtq-admin")
    admin.delete(K1.lease)
    lease = Lease(r, K1, "acl-check", lease_ms=60_000)
    try:
        assert await lease.try_acquire()
        assert await lease.renew()
        lease._valid_until_mono = 0.0  # paused, or Redis unreachable, past the lease ...
        admin.delete(K1.lease)  # ... and the key lapsed meanwhile; nobody tried to take it
        assert await lease.renew() and lease.valid()
        assert admin.get(K1.lease) == f"{lease.token}:acl-check".encode()
        await lease.release()
        assert admin.get(K1.lease) is None
    finally:
        admin.close()
        await r.aclose()


# --- a real executor process serving strategies and a subscriber through their ACL users -------------------------
def _executor_env(generated, account: str) -> dict[str, str]:
    d, _ = generated
    cr = creds(generated, f"xtq-executor-{account}")
    env = {"XTQUEUE_REDIS_USERNAME": cr["XTQUEUE_REDIS_USERNAME"],
           "XTQUEUE_REDIS_PASSWORD": cr["XTQUEUE_REDIS_PASSWORD"]}
    signing = d / "secrets" / f"executor-{account}.signing.toml"
    if signing.exists():
        env["XTQUEUE_SIGNING_KEYS_FILE"] = str(signing)
    return env


async def _wait_ping(client: pl.Client, proc: ExecutorProc, timeout: float = 60.0) -> pl.PingResult:
    deadline = time.monotonic() + timeout
    while True:
        if proc.proc.poll() is not None:
            raise AssertionError("executor exited:\n" + proc.log())
        try:
            pong = await asyncio.wait_for(client.ping(), 3.0)
            if pong.broker_connected:
                return pong
        except (asyncio.TimeoutError, pl.CommandTimeout, pl.BrokerUnavailable):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("executor never answered:\n" + proc.log())
        await asyncio.sleep(0.1)


def _client(server: RedisServer, generated, user: str, account: str, strategy: str = "", *, sign: bool = False,
            **kw) -> pl.Client:
    cr = creds(generated, user)
    if sign:
        kw.update(signing_key=cr["XTQUEUE_SIGNING_KEY"], key_id=cr["XTQUEUE_KEY_ID"])
    return pl.Client(server.url, account, strategy=strategy, username=cr["XTQUEUE_REDIS_USERNAME"],
                     password=cr["XTQUEUE_REDIS_PASSWORD"], **kw)


async def test_executor_serves_strategies_and_subscriber_through_acl_users(server, generated, tmp_path):
    proc = ExecutorProc(tmp_path / "ex", server.url, "A1", _executor_env(generated, "A1"))
    try:
        async with _client(server, generated, "xtq-strategy-alpha", "A1", "alpha", sign=True) as alpha, \
                _client(server, generated, "xtq-strategy-beta", "A1", "beta") as beta, \
                _client(server, generated, "xtq-subscriber-dash", "A1") as dash:
            await _wait_ping(alpha, proc)
            events = dash.events("$", types=["order_updated", "order_filled"])
            first_event = asyncio.ensure_future(events.__anext__())
            ack = await alpha.buy("600000.SH", 100, 10.5, client_order_id="acl-alpha-1")
            assert ack.order_id > 0
            ack_b = await beta.buy("000001.SZ", 100, 11.0, client_order_id="acl-beta-1")
            assert ack_b.order_id > 0
            event = await asyncio.wait_for(first_event, 15)
            assert event.type in ("order_updated", "order_filled")
            await events.aclose()
            # alpha must sign (its executor's keys file says so): the same user without its key is refused
            async with _client(server, generated, "xtq-strategy-alpha", "A1", "alpha") as unsigned:
                with pytest.raises(pl.Unauthorized):
                    await unsigned.buy("600000.SH", 100, 10.5, client_order_id="acl-alpha-2")
            # alpha has no right on A2: Redis itself refuses the XADD
            async with _client(server, generated, "xtq-strategy-alpha", "A2", "alpha", sign=True) as other:
                with pytest.raises(pl.Unauthorized):
                    await other.ping()
            # the subscriber cannot send commands
            with pytest.raises(pl.Unauthorized):
                await dash.ping()
    finally:
        proc.stop()
    log = proc.log()
    assert "NOPERM" not in log and "no permissions" not in log.lower(), log
    for secret in (creds(generated, "xtq-executor-A1")["XTQUEUE_REDIS_PASSWORD"],
                   creds(generated, "xtq-strategy-alpha")["XTQUEUE_SIGNING_KEY"]):
        assert secret not in log


# --- TLS -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(generated, tmp_path_factory):
    _, result = generated
    certs = openssl_certs(tmp_path_factory.mktemp("certs"))
    srv = RedisServer(tmp_path_factory.mktemp("redis-tls"), aclfile=result.aclfile, tls=certs).start()
    srv.certs = certs  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def test_tls_refuses_plaintext_and_unknown_clients(tls_server, generated):
    certs = tls_server.certs
    plain = redis.Redis(host="127.0.0.1", port=tls_server.port, socket_timeout=2, username="xtq-admin",
                        password=creds(generated, "xtq-admin")["XTQUEUE_REDIS_PASSWORD"])  # no TLS
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    no_client_cert = connect(tls_server, generated, "xtq-admin", ssl_ca_certs=str(certs["ca"]), socket_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError):
        no_client_cert.ping()
    good = connect(tls_server, generated, "xtq-subscriber-dash", ssl_ca_certs=str(certs["ca"]),
                   ssl_certfile=str(certs["client_cert"]), ssl_keyfile=str(certs["client_key"]))
    assert good.ping()
    refused(good.xadd, K1.commands, {"v": "1"})  # ACLs apply over TLS too


async def test_executor_library_and_cli_over_tls(tls_server, generated, tmp_path):
    certs = tls_server.certs
    tls_env = {"XTQUEUE_REDIS_CA_CERT": str(certs["ca"]), "XTQUEUE_REDIS_CLIENT_CERT": str(certs["client_cert"]),
               "XTQUEUE_REDIS_CLIENT_KEY": str(certs["client_key"])}
    proc = ExecutorProc(tmp_path / "ex", tls_server.url, "A1", {**_executor_env(generated, "A1"), **tls_env})
    tls_kw = dict(ssl_ca_certs=str(certs["ca"]), ssl_certfile=str(certs["client_cert"]),
                  ssl_keyfile=str(certs["client_key"]))
    try:
        async with _client(tls_server, generated, "xtq-strategy-beta", "A1", "beta", **tls_kw) as beta:
            pong = await _wait_ping(beta, proc)
            assert pong.broker == "sim"
            ack = await beta.buy("600000.SH", 100, 10.5, client_order_id="tls-beta-1")
            assert ack.order_id > 0
        cr = creds(generated, "xtq-strategy-beta")
        env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
        env.update(tls_env, XTQUEUE_REDIS_USERNAME=cr["XTQUEUE_REDIS_USERNAME"],
                   XTQUEUE_REDIS_PASSWORD=cr["XTQUEUE_REDIS_PASSWORD"])
        out = subprocess.run([sys.executable, "-m", "xtqueue", "--redis-url", tls_server.url, "--account", "A1",
                              "outcome", "tls-beta-1", "--json"], env=env, cwd=str(ROOT), capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "placed" in out.stdout
        assert cr["XTQUEUE_REDIS_PASSWORD"] not in out.stdout + out.stderr
        # the executor's own health check, as the executor user over TLS
        ex_env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
        ex_env.update(_executor_env(generated, "A1"), **tls_env)
        check = subprocess.run([sys.executable, "-m", "xtqueue", "executor", "--check", "--redis-url",
                                tls_server.url, "--account", "A1"], env=ex_env, cwd=str(ROOT),
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.stop()
    assert "NOPERM" not in proc.log(), proc.log()

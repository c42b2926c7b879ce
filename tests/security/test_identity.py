"""Identity comes from credentials: a hostile strategy with its own generated ACL user (``xtqueue acl``) attacks
through raw redis commands, beside honest strategies using the public client, on a real redis-server loaded with
the generated ACL file and a real executor process on the simulator. Counts come from the simulator's own store.

The attacker tries every command stream key it could write (the account's shared stream of protocol 1, and its
own ``cmd:<strategy>`` of protocol 2) and uses whichever Redis accepts, so each test runs unchanged against the code
before the fix (where it fails) and after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis
from security_helpers import ExecutorProc, RedisServer

import producer_lib as pl
from executor.sim.control import SimControl
from producer_lib import contract as c
from xtqueue import acl

ROLES = """
accounts = ["A1", "A2"]

[strategies.beta]
accounts = ["A1"]

[strategies.mallory]
accounts = ["A1"]

[strategies.other]
accounts = ["A2"]
"""

ACCOUNT = "A1"
K1 = c.Keys(ACCOUNT)
MALLORY_REPLY = f"xtq:{{{ACCOUNT}}}:reply:mallory.attack"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("acl-identity")
    (d / "roles.toml").write_text(ROLES)
    return d, acl.generate(d / "roles.toml", d / "users.acl", d / "secrets")


def creds(generated, user: str) -> dict[str, str]:
    d, _ = generated
    return acl.read_credentials(d / "secrets" / f"{user}.env")


@pytest.fixture
def server(generated, tmp_path):
    srv = RedisServer(tmp_path / "redis", aclfile=generated[1].aclfile).start()  # a fresh server per attack
    yield srv
    srv.stop()


def connect(server: RedisServer, generated, user: str) -> redis.Redis:
    cr = creds(generated, user)
    return redis.Redis.from_url(server.url, username=cr["XTQUEUE_REDIS_USERNAME"],
                                password=cr["XTQUEUE_REDIS_PASSWORD"])


def client(server: RedisServer, generated, strategy: str) -> pl.Client:
    cr = creds(generated, f"xtq-strategy-{strategy}")
    return pl.Client(server.url, ACCOUNT, strategy=strategy, username=cr["XTQUEUE_REDIS_USERNAME"],
                     password=cr["XTQUEUE_REDIS_PASSWORD"])


def start_executor(server: RedisServer, generated, workdir: Path, *extra: str) -> ExecutorProc:
    cr = creds(generated, f"xtq-executor-{ACCOUNT}")
    env = {"XTQUEUE_REDIS_USERNAME": cr["XTQUEUE_REDIS_USERNAME"],
           "XTQUEUE_REDIS_PASSWORD": cr["XTQUEUE_REDIS_PASSWORD"]}
    return ExecutorProc(workdir, server.url, ACCOUNT, env, extra=extra)


def server_ms(r: redis.Redis) -> int:
    secs, usecs = r.time()
    return secs * 1000 + usecs // 1000


def order_entry(coid: str, *, strategy: str = "mallory", reply_to: str = MALLORY_REPLY,
                ttl_ms: int = 60_000) -> dict:
    cmd = c.PlaceOrder(client_order_id=coid, code="600000.SH", side="buy", volume=100, price=10.5,
                       strategy=strategy)
    return c.encode_command(cmd, account=ACCOUNT, command_id=f"cmd-{coid}", reply_to=reply_to, ttl_ms=ttl_ms)


def xadd_anywhere(r: redis.Redis, fields: dict, **kw) -> list[str]:
    """XADD to every command stream key of the account the attacker may try; the keys Redis accepted."""
    accepted = []
    for key in (f"xtq:{{{ACCOUNT}}}:cmd", f"xtq:{{{ACCOUNT}}}:cmd:mallory"):
        try:
            r.xadd(key, fields, **kw)
            accepted.append(key)
        except redis.exceptions.NoPermissionError:
            pass
    assert accepted, "the attacker could write no command stream at all"
    return accepted


def queued(admin: redis.Redis) -> dict[str, str]:
    """Client order id -> entry id of every command queued on any of the account's command streams."""
    out = {}
    for key in [K1.commands.encode(), *admin.scan_iter(match=f"{K1.commands}:*")]:
        for sid, fields in admin.xrange(key):
            out[fields.get(b"coid", b"").decode()] = sid.decode()
    return out


async def until(predicate, what: str, proc: ExecutorProc | None = None, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"executor exited while waiting for {what}:\n{proc.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{proc.log()}" if proc else ""))
        await asyncio.sleep(0.05)


def replies(r: redis.Redis, key: str) -> dict[str, c.Reply]:
    return {rep.command_id: rep for rep in (c.decode_reply(sid, f) for sid, f in r.xrange(key) if b"id" in f)}


def placed(proc: ExecutorProc, coids: list[str]) -> dict[str, int]:
    """How many orders the simulated broker holds per client order id (its own records)."""
    rows = SimControl(proc.workdir / "sim").orders(ACCOUNT)
    return {coid: sum(1 for row in rows if row["order_remark"] == coid) for coid in coids}


# --- (a) a chosen entry id does not move anyone's deadline -------------------------------------------------------
async def test_entry_id_in_the_future_moves_no_deadline(server, generated, tmp_path):
    admin = connect(server, generated, "xtq-admin")
    mallory = connect(server, generated, "xtq-strategy-mallory")
    future_id = f"{server_ms(admin) + 3_600_000}-0"
    xadd_anywhere(mallory, order_entry("forged-1"), id=future_id)  # one hour ahead of the server clock
    async with client(server, generated, "beta") as beta:
        # The executor is not running: beta's 1 s order waits on the stream until it is long past its deadline.
        task = asyncio.create_task(beta.buy("600000.SH", 100, 10.5, client_order_id="beta-late", deadline=1.0,
                                            timeout=90))
        await until(lambda: "beta-late" in queued(admin), "beta's order to be queued")
        t_queued = server_ms(admin)  # beta's entry id (Redis's clock at XADD) is at most this
        await until(lambda: server_ms(admin) > t_queued + 1_500, "the server clock to pass beta's deadline")
        proc = start_executor(server, generated, tmp_path / "ex")
        try:
            with pytest.raises(pl.Expired):
                await task
            await until(lambda: "cmd-forged-1" in replies(admin, MALLORY_REPLY), "the forged entry's answer", proc)
            assert placed(proc, ["beta-late", "forged-1"]) == {"beta-late": 0, "forged-1": 0}
            assert replies(admin, MALLORY_REPLY)["cmd-forged-1"].error.code is c.ErrorCode.ID_AHEAD
        finally:
            proc.stop()


# --- (b) MAXLEN cannot delete another strategy's queued commands -------------------------------------------------
async def test_maxlen_cannot_delete_other_strategies_commands(server, generated, tmp_path):
    admin = connect(server, generated, "xtq-admin")
    mallory = connect(server, generated, "xtq-strategy-mallory")
    coids = [f"beta-q{i}" for i in range(5)]
    async with client(server, generated, "beta") as beta:
        tasks = [asyncio.create_task(beta.buy("600000.SH", 100, 10.5, client_order_id=coid, deadline=120,
                                              timeout=60)) for coid in coids]
        await until(lambda: set(coids) <= set(queued(admin)), "beta's orders to be queued")
        xadd_anywhere(mallory, {"v": "x"}, maxlen=0, approximate=False)  # XADD <key> MAXLEN 0 * ...
        proc = start_executor(server, generated, tmp_path / "ex")
        try:
            acks = await asyncio.gather(*tasks)
            assert sorted(a.client_order_id for a in acks) == coids and all(a.order_id > 0 for a in acks)
            assert placed(proc, coids) == dict.fromkeys(coids, 1)
        finally:
            proc.stop()


# --- (c) the rate limit is keyed by the stream's owner, not by a name the command gives itself -------------------
async def test_self_declared_names_share_one_rate_limit(server, generated, tmp_path):
    admin = connect(server, generated, "xtq-admin")
    mallory = connect(server, generated, "xtq-strategy-mallory")
    risk = json.dumps({"max_orders_per_s_per_strategy": 0.001, "orders_burst_per_strategy": 1})
    names = ["", "mallory", *[f"s{i}" for i in range(2, 10)]]
    coids = [f"rate-{i}" for i in range(len(names))]
    for coid, name in zip(coids, names):
        xadd_anywhere(mallory, order_entry(coid, strategy=name))
    proc = start_executor(server, generated, tmp_path / "ex", "--risk", risk)
    try:
        got = await until(lambda: len(r := replies(admin, MALLORY_REPLY)) >= len(coids) and r,
                          "every order's answer", proc)
        counts = placed(proc, coids)
        assert sum(counts.values()) == 1, counts  # the burst of ONE strategy
        refused = [got[f"cmd-{coid}"].error.code for coid in coids if not counts[coid]]
        assert set(refused) <= {c.ErrorCode.RISK_REJECTED, c.ErrorCode.UNAUTHORIZED}, refused
    finally:
        proc.stop()


# --- (d) a strategy cannot write another's command stream nor make the executor write its reply stream -----------
async def test_strategy_cannot_use_another_strategys_streams(server, generated, tmp_path):
    admin = connect(server, generated, "xtq-admin")
    mallory = connect(server, generated, "xtq-strategy-mallory")
    with pytest.raises(redis.exceptions.NoPermissionError):
        mallory.xadd(f"xtq:{{{ACCOUNT}}}:cmd:beta", order_entry("into-beta"))
    beta_reply = f"xtq:{{{ACCOUNT}}}:reply:beta.victim"
    xadd_anywhere(mallory, order_entry("as-beta-reply", reply_to=beta_reply))  # answers into beta's stream
    xadd_anywhere(mallory, order_entry("as-beta-name", strategy="beta"))  # trades under beta's name
    proc = start_executor(server, generated, tmp_path / "ex")
    try:
        def settled():
            dead = {f.get(b"orig.coid", b"").decode() for _, f in admin.xrange(K1.dead_letter)}
            return ("as-beta-reply" in dead or replies(admin, beta_reply)) and \
                "cmd-as-beta-name" in replies(admin, MALLORY_REPLY)

        await until(settled, "both commands to be settled", proc)
        assert replies(admin, beta_reply) == {}  # nothing written into beta's replies
        assert replies(admin, MALLORY_REPLY)["cmd-as-beta-name"].error.code is c.ErrorCode.UNAUTHORIZED
        assert placed(proc, ["as-beta-reply", "as-beta-name"]) == {"as-beta-reply": 0, "as-beta-name": 0}
    finally:
        proc.stop()


# --- (e) the executor credential cannot list or cut other accounts' connections ----------------------------------
def test_executor_cannot_kill_another_accounts_client(server, generated):
    victim = connect(server, generated, "xtq-strategy-other")  # a strategy of account A2
    assert victim.ping()
    admin = connect(server, generated, "xtq-admin")
    (victim_id,) = [int(i["id"]) for i in admin.client_list() if i.get("user") == "xtq-strategy-other"]
    executor = connect(server, generated, f"xtq-executor-{ACCOUNT}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        executor.client_kill_filter(_id=victim_id)
    with pytest.raises(redis.exceptions.NoPermissionError):
        executor.client_list()
    assert victim.ping()  # the same connection, still there
    assert [int(i["id"]) for i in admin.client_list() if i.get("user") == "xtq-strategy-other"] == [victim_id]


async def test_paused_leader_holds_no_command_without_client_kill(server, generated, tmp_path):
    """What CLIENT KILL of a predecessor was for, under the generated ACL (no CLIENT rights): a leader paused
    (SIGSTOP) with its read blocking must not be handed commands once a standby has taken over. Reads are bounded
    by the lease (engine _poll_once), so the successor answers; the idle claim (10 min here) never has to."""
    import signal

    slow = ("--block-ms", "30000", "--lease-ms", "2000", "--lease-renew-ms", "200", "--claim-idle-ms", "600000")
    first = start_executor(server, generated, tmp_path / "ex1", *slow)
    second = None
    try:
        async with client(server, generated, "beta") as beta:
            await until(lambda: first.log().count("executor started"), "the first executor", first)
            assert (await beta.ping()).executor_id.endswith(f"-{first.proc.pid}")
            second = start_executor(server, generated, tmp_path / "ex2", *slow)
            await until(lambda: "standing by" in second.log(), "the standby", second)
            first.proc.send_signal(signal.SIGSTOP)  # paused in its blocking read
            pong = await beta.ping()  # sent while the paused leader's lease runs out
            assert pong.executor_id.endswith(f"-{second.proc.pid}")
            ack = await beta.buy("600000.SH", 100, 10.5, client_order_id="after-takeover", timeout=30)
            assert placed(second, ["after-takeover"]) == {"after-takeover": 1} and ack.order_id > 0
    finally:
        first.proc.send_signal(signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()


def test_only_the_admin_has_every_right(server, generated):
    _, result = generated
    rights = {u.name: u.rules for u in result.users}
    assert rights["xtq-admin"] == ["~*", "&*", "+@all"]
    for name, rules in rights.items():
        if name != "xtq-admin":
            assert "+@all" not in rules and "~*" not in rules and "allkeys" not in rules, name
    admin = connect(server, generated, "xtq-admin")
    assert admin.client_list() and admin.config_get("maxmemory")  # the Redis administrator's, no program's

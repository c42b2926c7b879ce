"""``xtqueue acl``: Redis ACL users for every role, generated from a roles file (least privilege per key and command).

::

    xtqueue acl roles.toml --out /etc/redis/users.acl --secrets-dir /etc/xtqueue/secrets

The roles file (TOML; deploy/redis/README.md has the full description)::

    key_prefix = "xtq"                      # optional, the executors' key_prefix
    accounts = ["8880001", "8880002"]       # every account an executor serves: one executor user each

    [strategies.alpha]                      # a strategy: send commands to these accounts, read its own replies
    accounts = ["8880001"]                  #   and these accounts' events
    sign = true                             # optional: also a signing key; its executors then require it

    [subscribers.dashboard]                 # read events only
    accounts = ["8880001"]                  # optional: default every account

    [operators.ops]                         # read every key of these accounts, set/clear their kill switch
                                            # optional accounts; default every account

Users: ``xtq-executor-<ACCOUNT>``, ``xtq-strategy-<name>``, ``xtq-subscriber-<name>``, ``xtq-operator-<name>``,
and ``xtq-admin`` (every right: for the Redis administrator only). The ``default`` user is switched off.

Outputs: the ACL file for Redis' ``aclfile`` directive (passwords only as SHA-256 hashes, ``#<hex>``), and in the
secrets folder (mode 0700) one file per user, ``<user>.env`` (mode 0600)::

    XTQUEUE_REDIS_USERNAME=xtq-strategy-alpha
    XTQUEUE_REDIS_PASSWORD=<secrets.token_urlsafe(32)>
    XTQUEUE_SIGNING_KEY=<...>                # strategies with sign = true
    XTQUEUE_KEY_ID=alpha-<8 hex>

and ``executor-<ACCOUNT>.signing.toml`` (mode 0600) for each account served by a signing strategy (the executor's
``signing_keys_file``). Running it again keeps the passwords and keys already in the secrets folder (so adding a
strategy does not log everyone out); ``--rotate`` draws new ones for every user. Secrets are never printed.

Command streams: a strategy may XADD to ``xtq:{ACCOUNT}:cmd:<strategy>`` only (contract.Keys.command_stream), so
the key it wrote names it: the executor takes that stream's owner as the sender (docs/protocol.md section 1).
Reply streams: a strategy's client names its reply stream ``reply:<strategy>.<random>`` (contract.new_client_id),
so the key pattern ``xtq:{ACCOUNT}:reply:<strategy>.*`` gives it its own replies and no one else's.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer_lib import contract as c

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ADMIN_USER = "xtq-admin"
_NAME_RE = c.STRATEGY_PREFIX_RE  # role names: 1-40 of A-Z a-z 0-9 _ -  (safe in usernames and key patterns)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")

# Commands every role may use that touch no key.
# (redis-py's CLIENT SETINFO on connect may be refused: it ignores that; Redis 7.0 does not know the command.)
_CONNECTION = ["+ping"]


class RolesError(ValueError):
    """A roles file that cannot be turned into ACL users."""


@dataclass
class Roles:
    key_prefix: str
    accounts: list[str]
    strategies: dict[str, dict[str, Any]]  # name -> {"accounts": [...], "sign": bool}
    subscribers: dict[str, list[str]]
    operators: dict[str, list[str]]


@dataclass
class User:
    name: str
    role: str
    rules: list[str]  # ACL rules after the password (keys, commands, selectors)
    password: str = field(repr=False, default="")
    accounts: list[str] = field(default_factory=list)
    signing: tuple[str, str] | None = field(repr=False, default=None)  # (key id, secret) for signing strategies

    def acl_line(self) -> str:
        digest = hashlib.sha256(self.password.encode("utf-8")).hexdigest()
        return " ".join(["user", self.name, "reset", "on", f"#{digest}", *self.rules])


def load_roles(path: Path) -> Roles:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RolesError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RolesError(f"{path}: not valid TOML: {exc}") from None
    return parse_roles(data)


def parse_roles(data: dict[str, Any]) -> Roles:
    unknown = set(data) - {"key_prefix", "accounts", "strategies", "subscribers", "operators"}
    if unknown:
        raise RolesError(f"unknown top-level keys {sorted(unknown)}")
    prefix = data.get("key_prefix", c.KEY_PREFIX)
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise RolesError("key_prefix must be 1-32 of A-Z a-z 0-9 _ -")
    accounts = data.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        raise RolesError("accounts must be a non-empty list of fund account ids")
    for acc in accounts:
        try:
            c.validate_account(acc)
        except ValueError as exc:
            raise RolesError(str(exc)) from None
    if len(set(accounts)) != len(accounts):
        raise RolesError("accounts lists an account twice")

    def section(name: str, *, need_accounts: bool, extra: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise RolesError(f"[{name}] must be a table of named entries")
        for entry_name, spec in table.items():
            where = f"[{name}.{entry_name}]"
            if not _NAME_RE.fullmatch(entry_name):
                raise RolesError(f"{where}: names must be 1-40 of A-Z a-z 0-9 _ - (they become key patterns)")
            if not isinstance(spec, dict):
                raise RolesError(f"{where} must be a table")
            bad = set(spec) - {"accounts", *extra}
            if bad:
                raise RolesError(f"{where}: unknown keys {sorted(bad)}")
            accs = spec.get("accounts")
            if accs is None and not need_accounts:
                accs = list(accounts)
            if not isinstance(accs, list) or not accs:
                raise RolesError(f"{where}: accounts must be a non-empty list")
            stray = [a for a in accs if a not in accounts]
            if stray:
                raise RolesError(f"{where}: accounts {stray} are not in the top-level accounts list")
            sign = spec.get("sign", False)
            if not isinstance(sign, bool):
                raise RolesError(f"{where}: sign must be true or false")
            out[entry_name] = {"accounts": list(dict.fromkeys(accs)), "sign": sign}
        return out

    strategies = section("strategies", need_accounts=True, extra=("sign",))
    subscribers = {k: v["accounts"] for k, v in section("subscribers", need_accounts=False).items()}
    operators = {k: v["accounts"] for k, v in section("operators", need_accounts=False).items()}
    return Roles(prefix, list(accounts), strategies, subscribers, operators)


# --- rules per role -----------------------------------------------------------------------------------------------
def _base(prefix: str, account: str) -> str:
    return f"{prefix}:{{{account}}}"


def _selector(patterns: list[str], commands: list[str]) -> str:
    return "(" + " ".join([*patterns, *commands]) + ")"


def strategy_rules(prefix: str, name: str, accounts: list[str]) -> list[str]:
    """XADD to its OWN command stream of each account (never another strategy's: Redis cannot restrict XADD's
    arguments, so a shared stream would let it choose ids or MAXLEN for everyone); its own reply streams (read,
    wake-up XADD, delete); read events."""
    bases = [_base(prefix, a) for a in accounts]
    return ["resetkeys", "resetchannels", "-@all", *_CONNECTION,
            _selector([f"~{b}:cmd:{name}" for b in bases], ["+xadd"]),
            _selector([f"~{b}:reply:{name}.*" for b in bases], ["+xread", "+xadd", "+xdel", "+del", "+expire"]),
            _selector([f"%R~{b}:events" for b in bases], ["+xread", "+xrange", "+xrevrange", "+xinfo|stream"])]


def subscriber_rules(prefix: str, accounts: list[str]) -> list[str]:
    bases = [_base(prefix, a) for a in accounts]
    return ["resetkeys", "resetchannels", "-@all", *_CONNECTION,
            _selector([f"%R~{b}:events" for b in bases], ["+xread", "+xrange", "+xrevrange", "+xinfo|stream"])]


def operator_rules(prefix: str, accounts: list[str]) -> list[str]:
    """Read every key of the accounts (streams, heartbeat, lease, dead letters, audit); set/clear the kill switch."""
    bases = [_base(prefix, a) for a in accounts]
    return ["resetkeys", "resetchannels", "-@all", *_CONNECTION, "+info", "+time", "+scan",
            _selector([f"%R~{b}:*" for b in bases], ["+@read", "-@dangerous", "+type", "+ttl", "+pttl"]),
            # the kill switch: XADD a change (xtqueue halt/resume); DEL an old non-stream value (docs/operations.md)
            _selector([f"~{b}:halt" for b in bases], ["+xadd", "+del"])]


def executor_rules(prefix: str, account: str) -> list[str]:
    """Exactly what executor/ calls on its account's keys (engine, transport, lease, events, halt, audit).
    SCAN finds the strategies' command streams (executor/transport.py); Redis applies no key pattern to SCAN, so it
    lists key names (never values) of the whole database. No CLIENT LIST / KILL: those are server-wide (every
    account's connections); a paused predecessor is fenced by the lease instead (executor/lease.py)."""
    b = _base(prefix, account)
    return ["resetkeys", "resetchannels", "-@all", *_CONNECTION,
            "+time", "+client|setname", "+scan",
            "+script|load",
            _selector([f"~{b}:cmd", f"~{b}:cmd:*"],
                      ["+xgroup|create", "+xreadgroup", "+xpending", "+xclaim", "+xack", "+xrange",
                       "+xinfo|groups", "+xtrim"]),  # xinfo/xtrim: trimming answered commands
            _selector([f"~{b}:reply:*"], ["+xadd", "+expire"]),
            _selector([f"~{b}:dead", f"~{b}:audit"], ["+xadd"]),
            _selector([f"~{b}:events"], ["+xadd", "+xrevrange"]),
            # the record of published fills / order statuses and the writers' marks (executor/events.py)
            _selector([f"~{b}:events:*"], ["+sismember", "+sadd", "+hget", "+hset", "+get", "+set", "+expire"]),
            _selector([f"~{b}:events", f"~{b}:events:*"], ["+evalsha", "+eval"]),  # events.PUBLISH_SCRIPT
            _selector([f"~{b}:heartbeat"], ["+get", "+set", "+pttl"]),  # pttl: xtqueue executor --check
            _selector([f"~{b}:lease"], ["+get", "+set", "+exists", "+pexpire", "+del"]),
            # incrby: redis-py sends INCR as INCRBY 1; get/set: the lease renewal reads it (was it superseded?)
            # and raises it back to the holder's token after Redis lost its data (executor/lease.py)
            _selector([f"~{b}:lease:token"], ["+incrby", "+get", "+set"]),
            _selector([f"%R~{b}:halt"], ["+xrevrange"]),  # the kill switch's latest entry (executor/safety/halt.py)
            # Lua (transport FINISH_SCRIPT and XADD_MANY_SCRIPT for events and audit, lease renew/release):
            # EVALSHA's declared keys; each call inside the script is checked against the rules above as well.
            _selector([f"~{b}:lease", f"~{b}:lease:token", f"~{b}:cmd", f"~{b}:cmd:*", f"~{b}:dead",
                       f"~{b}:reply:*", f"~{b}:events", f"~{b}:audit"], ["+evalsha", "+eval"])]


def admin_rules() -> list[str]:
    return ["~*", "&*", "+@all"]


# --- generation -----------------------------------------------------------------------------------------------------
def build_users(roles: Roles, existing: dict[str, dict[str, str]] | None = None, *, rotate: bool = False) -> list[User]:
    """Every user with its rules and secrets: kept from ``existing`` (credential files read back) unless rotating."""
    existing = {} if rotate or existing is None else existing

    def password(name: str) -> str:
        return existing.get(name, {}).get("XTQUEUE_REDIS_PASSWORD") or secrets.token_urlsafe(32)

    p = roles.key_prefix
    users = [User(ADMIN_USER, "admin", admin_rules(), password(ADMIN_USER), list(roles.accounts))]
    for acc in roles.accounts:
        name = f"xtq-executor-{acc}"
        users.append(User(name, "executor", executor_rules(p, acc), password(name), [acc]))
    for sname, spec in roles.strategies.items():
        name = f"xtq-strategy-{sname}"
        user = User(name, "strategy", strategy_rules(p, sname, spec["accounts"]), password(name), spec["accounts"])
        if spec["sign"]:
            old = existing.get(name, {})
            key_id, secret = old.get("XTQUEUE_KEY_ID"), old.get("XTQUEUE_SIGNING_KEY")
            if not key_id or not secret:
                key_id, secret = f"{sname}-{secrets.token_hex(4)}", secrets.token_urlsafe(32)
            user.signing = (key_id, secret)
        users.append(user)
    for sname, accs in roles.subscribers.items():
        name = f"xtq-subscriber-{sname}"
        users.append(User(name, "subscriber", subscriber_rules(p, accs), password(name), accs))
    for sname, accs in roles.operators.items():
        name = f"xtq-operator-{sname}"
        users.append(User(name, "operator", operator_rules(p, accs), password(name), accs))
    return users


def render_aclfile(users: list[User]) -> str:
    # Redis refuses comments in an ACL file: everything about it is in deploy/redis/README.md.
    lines = ["user default reset off"]
    lines += [u.acl_line() for u in users]
    return "\n".join(lines) + "\n"


def credential_text(user: User) -> str:
    lines = [f"# Redis credentials of {user.name} (role {user.role}; accounts {','.join(user.accounts)}). SECRET.",
             f"XTQUEUE_REDIS_USERNAME={user.name}", f"XTQUEUE_REDIS_PASSWORD={user.password}"]
    if user.signing is not None:
        lines += [f"XTQUEUE_KEY_ID={user.signing[0]}", f"XTQUEUE_SIGNING_KEY={user.signing[1]}"]
    return "\n".join(lines) + "\n"


def executor_signing_text(account: str, users: list[User]) -> str | None:
    """The executor's signing keys file for ``account``, or None when no signing strategy trades it."""
    signers = [u for u in users if u.signing is not None and account in u.accounts]
    if not signers:
        return None
    names = sorted(u.name.removeprefix("xtq-strategy-") for u in signers)
    lines = [f"# Signing keys of the strategies trading {account}, written by `xtqueue acl`. SECRET (mode 0600).",
             f"# Executor: signing_keys_file = this file (env XTQUEUE_SIGNING_KEYS_FILE).",
             "required = [" + ", ".join(f'"{n}"' for n in names) + "]", ""]
    for u in sorted(signers, key=lambda u: u.name):
        key_id, secret = u.signing  # type: ignore[misc]
        lines += [f'[keys."{key_id}"]', f'strategy = "{u.name.removeprefix("xtq-strategy-")}"',
                  f'secret = "{secret}"', ""]
    return "\n".join(lines)


def read_credentials(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode set before any byte is written)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Generated:
    users: list[User]
    aclfile: Path
    credential_files: dict[str, Path]
    signing_files: dict[str, Path]


def generate(roles_path: Path, out: Path, secrets_dir: Path, *, rotate: bool = False,
             acl_mode: int = 0o640) -> Generated:
    roles = load_roles(roles_path)
    secrets_dir = Path(secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(secrets_dir, 0o700)
    existing = {}
    for f in secrets_dir.glob("*.env"):
        existing[f.name[:-4]] = read_credentials(f)
    users = build_users(roles, existing, rotate=rotate)
    creds: dict[str, Path] = {}
    for u in users:
        path = secrets_dir / f"{u.name}.env"
        _write_private(path, credential_text(u))
        creds[u.name] = path
    signing_files: dict[str, Path] = {}
    for acc in roles.accounts:
        text = executor_signing_text(acc, users)
        path = secrets_dir / f"executor-{acc}.signing.toml"
        if text is not None:
            _write_private(path, text)
            signing_files[acc] = path
        elif path.exists():
            path.unlink()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_private(out, render_aclfile(users), acl_mode)
    return Generated(users, out, creds, signing_files)

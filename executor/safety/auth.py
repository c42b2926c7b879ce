"""Signed-command checks of the executor (the producer side and the exact signed bytes: producer_lib/signing.py).

Configured by ExecutorSettings: ``signing_keys_file`` (TOML, below) and/or ``signing_keys`` (env
``XTQUEUE_SIGNING_KEYS``: ``key_id:strategy:secret`` entries separated by commas), ``signing_required`` (strategy
names that must sign; ``*`` = every command must be signed), ``signing_window_ms`` and ``signing_replay_cache``.
Secrets are held as bytes here and never logged; ``repr`` shows key ids only. The keys file::

    # executor-ACCOUNT.signing.toml (mode 0600), written by `xtqueue acl` for strategies with sign = true
    required = ["alpha"]            # optional: added to signing_required
    [keys.alpha-1]
    strategy = "alpha"
    secret = "..."

A command is refused (``unauthorized``, nothing executed, dead-lettered) when:

* it is unsigned and must be signed: ``*`` is required, or the strategy it names (its ``strategy`` field, or the
  strategy prefix of its reply stream, ``reply:<strategy>.<random>``) is in the required list;
* its ``sig`` field is malformed, names an unknown key id, or its MAC does not match (any field altered, wrong key);
* it names another strategy than its key's: ``strategy`` field not empty and not the key's strategy, or reply
  stream not ``reply:<key's strategy>.<...>``;
* its timestamp is more than ``signing_window_ms`` away from the Redis server clock (``expired``);
* its command id was already accepted from another stream entry within the window for a different command
  (``replayed``: another signed content under the same id).

A copy of a command already accepted (same command id, same key, same signed content but for ``ttl_ms``, which a
client re-send reduces, and the signature's timestamp) is a repeat, not a replay: it is let through and the engine
answers it with the first copy's outcome (executor/commands.py, ``Commands.once``), so a client that re-sends after a
connection cut never reads "refused, nothing placed" while its first copy is being placed.

Re-deliveries of one entry (executor restart, idle claim) are the same entry, not replays: for them the timestamp
is judged against the entry's own stream id (the Redis server clock when it was added), since an order accepted
before a crash must be answered from the journal afterwards, never refused as if it had not been executed.

The replay memory is bounded (``signing_replay_cache`` ids). It forgets ids once their timestamp is out of the
window; when it is full of ids still inside the window it forgets the oldest and from then on refuses every
command whose timestamp is not newer than the newest forgotten one (fails closed). It is per process: after a
restart or a lease takeover, orders are still de-duplicated by client order id (the journal).
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from producer_lib import contract as c
from producer_lib import signing
from producer_lib.redis_options import TlsNeedsRediss, redis_security_kwargs as _redis_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_ENV_ENTRY_RE = re.compile(r"^([A-Za-z0-9_\-.]{1,64}):([A-Za-z0-9_\-]{1,40}):(\S{16,})$")
ALL = "*"


class AuthConfigError(ValueError):
    """Signing configuration that cannot be used (the executor refuses to start)."""


@dataclass(frozen=True)
class _Key:
    strategy: str
    secret: bytes

    def __repr__(self) -> str:
        return f"<key of {self.strategy!r}>"


class AuthPolicy:
    """Key ids → (strategy, secret), the strategies that must sign, the time window."""

    def __init__(self, keys: dict[str, tuple[str, str | bytes]], required: set[str] | frozenset[str] = frozenset(),
                 *, window_ms: int = 30_000, replay_cache: int = 200_000) -> None:
        self.keys: dict[str, _Key] = {}
        for key_id, (strategy, secret) in keys.items():
            signing.validate_key_id(key_id)
            if not c.STRATEGY_PREFIX_RE.fullmatch(strategy):
                raise AuthConfigError(f"signing key {key_id!r}: strategy {strategy!r} must be 1-40 of "
                                      "A-Z a-z 0-9 _ -")
            try:
                self.keys[key_id] = _Key(strategy, signing.secret_bytes(secret))
            except signing.SignatureError as exc:
                raise AuthConfigError(f"signing key {key_id!r}: {exc}") from None
        self.required = frozenset(required)
        if window_ms < 1:
            raise AuthConfigError("signing_window_ms must be positive")
        self.window_ms = window_ms
        self.replay_cache = replay_cache
        signers = {k.strategy for k in self.keys.values()}
        missing = sorted(s for s in self.required if s != ALL and s not in signers)
        if missing:
            raise AuthConfigError(f"signing required of {missing} but no key is configured for them")

    @property
    def active(self) -> bool:
        return bool(self.keys or self.required)

    def __repr__(self) -> str:
        return f"<AuthPolicy keys={sorted(self.keys)} required={sorted(self.required)} window_ms={self.window_ms}>"

    @classmethod
    def from_settings(cls, settings: Any) -> AuthPolicy:
        keys: dict[str, tuple[str, str]] = {}
        required = set(settings.signing_required or ())
        path = settings.signing_keys_file
        if path is not None:
            file_keys, file_required = load_keys_file(Path(path))
            keys.update(file_keys)
            required |= file_required
        if settings.signing_keys is not None:
            keys.update(parse_keys_text(settings.signing_keys.get_secret_value()))
        return cls(keys, required, window_ms=settings.signing_window_ms, replay_cache=settings.signing_replay_cache)


def load_keys_file(path: Path) -> tuple[dict[str, tuple[str, str]], set[str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthConfigError(f"cannot read signing keys file {path}: {type(exc).__name__}") from None
    keys: dict[str, tuple[str, str]] = {}
    for key_id, spec in (data.get("keys") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("strategy"), str) \
                or not isinstance(spec.get("secret"), str):
            raise AuthConfigError(f"{path}: [keys.{key_id}] needs strategy and secret strings")
        keys[key_id] = (spec["strategy"], spec["secret"])
    required = data.get("required", [])
    if not isinstance(required, list) or not all(isinstance(s, str) for s in required):
        raise AuthConfigError(f"{path}: required must be a list of strategy names")
    return keys, set(required)


def parse_keys_text(text: str) -> dict[str, tuple[str, str]]:
    keys: dict[str, tuple[str, str]] = {}
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        m = _ENV_ENTRY_RE.fullmatch(part)
        if m is None:  # never echo the entry: it holds a secret
            raise AuthConfigError("XTQUEUE_SIGNING_KEYS: each entry must be key_id:strategy:secret "
                                  "(secret at least 16 characters)")
        keys[m.group(1)] = (m.group(2), m.group(3))
    return keys


class CommandAuth:
    """Checks each command entry against the policy. ``now_ms`` is the Redis server clock (engine's ServerClock)."""

    def __init__(self, policy: AuthPolicy, now_ms: Callable[[], int]) -> None:
        self.policy = policy
        self.now_ms = now_ms
        # command id -> (stream id, sig ts, content digest) of the first copy accepted
        self._seen: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()
        self._horizon_ms = -1  # fail closed: refuse timestamps <= this (ids forgotten while inside the window)

    def check(self, fields: dict, env: c.Envelope, stream_id: str, deliveries: int, *,
              owner: str | None = None) -> str | None:
        """None if the command may run; otherwise the reason (for the ``unauthorized`` reply). ``owner``: the
        strategy whose command stream the entry was read from; a signing key must be that strategy's."""
        policy = self.policy
        raw = c._field(fields, c.F_SIG)
        claimed = {env.strategy, c.strategy_of_client_id(env.reply_to.rpartition(":")[2]), owner or ""} - {""}
        if not raw:
            if ALL in policy.required or claimed & policy.required:
                return "unsigned: this command must be signed"
            return None
        try:
            sig = signing.parse_sig(raw)
        except signing.SignatureError as exc:
            return f"bad signature: {exc}"
        key = policy.keys.get(sig.key_id)
        if key is None:
            return f"bad signature: unknown key id {sig.key_id!r}"
        if not signing.verify_mac(key.secret, fields, sig):
            return "bad signature: it does not match the command (altered, or signed with another key)"
        if env.strategy not in ("", key.strategy) or \
                c.strategy_of_client_id(env.reply_to.rpartition(":")[2]) != key.strategy:
            return f"key {sig.key_id!r} belongs to strategy {key.strategy!r}, which this command does not name"
        if owner is not None and key.strategy != owner:
            return f"key {sig.key_id!r} belongs to strategy {key.strategy!r}, not to the stream's {owner!r}"
        now = self.now_ms()
        judged = now if deliveries <= 1 else c.stream_id_ms(stream_id)
        if abs(judged - sig.ts_ms) > policy.window_ms:
            return (f"expired signature: signed at {sig.ts_ms}, Redis server time {judged} "
                    f"(window ±{policy.window_ms} ms)")
        self._forget(now)
        content = signing.content_digest(fields, sig.key_id)
        seen = self._seen.get(env.command_id)
        if seen is not None and seen[0] != stream_id and seen[2] != content:
            return (f"replayed: command id {env.command_id} was already received (entry {seen[0]}) for a different "
                    "command")
        if seen is None:
            if deliveries <= 1 and sig.ts_ms <= self._horizon_ms:
                return "replay check unavailable for a timestamp this old (replay memory full); send it again"
            self._remember(env.command_id, stream_id, sig.ts_ms, content)
        # Seen with the same content from another entry: a repeat of the same command (the client's own re-send
        # after a connection cut, or a captured entry added again). It is not refused: the engine answers it with
        # the first copy's outcome (orders by client order id, other commands by command id), never runs it twice.
        return None

    def _forget(self, now: int) -> None:
        limit = now - self.policy.window_ms
        while self._seen:
            cid, (_, ts, _) = next(iter(self._seen.items()))
            if ts >= limit:
                break
            del self._seen[cid]

    def _remember(self, command_id: str, stream_id: str, ts_ms: int, content: bytes) -> None:
        self._seen[command_id] = (stream_id, ts_ms, content)
        while len(self._seen) > self.policy.replay_cache:
            _, (_, ts, _) = self._seen.popitem(last=False)
            self._horizon_ms = max(self._horizon_ms, ts)


def redis_security_kwargs(settings: Any) -> dict[str, Any]:
    """Redis client options for the ACL user and TLS files of ``settings`` (only the ones that are set; the one
    mapping: producer_lib/redis_options.py).

    TLS files need a ``rediss://`` URL: with ``redis://`` they would be ignored, so that is refused. A user and a
    password in the URL itself win over these (redis-py's rule)."""
    password = settings.redis_password
    try:
        return _redis_options(str(settings.redis_url), settings.redis_username,
                              None if password is None else password.get_secret_value(),
                              settings.redis_ca_cert, settings.redis_client_cert, settings.redis_client_key)
    except TlsNeedsRediss:
        raise AuthConfigError("redis_ca_cert / redis_client_cert / redis_client_key need a rediss:// redis_url") \
            from None

"""Signed commands: an HMAC-SHA256 of a command entry's canonical bytes, with a per-strategy key.

Optional. Redis ACL users (``xtqueue acl``) already decide WHO may write a command stream; a signature adds
that the command was made by a holder of the strategy's key and was not altered, re-sent (replayed) or kept
for later. An executor configured to require signatures (``executor/safety/auth.py``) refuses anything else with an
``unauthorized`` reply before doing anything with it.

The ``sig`` field
-----------------
``sig = "<key_id>:<ts_ms>:<mac>"`` where ``key_id`` names the key (1-64 of ``A-Z a-z 0-9 _ - .``; the executor
maps it to a strategy and a secret), ``ts_ms`` is the producer's wall clock (Unix epoch ms, decimal) when it
signed, and ``mac`` is 64 lowercase hex digits: ``HMAC-SHA256(secret, canonical_bytes)``.

Canonical bytes (version 1)
---------------------------
The concatenation of these items, in this order, each written as a netstring ``<length>:<bytes>,`` (length:
decimal byte count, no leading zeros), so no two different commands share their canonical bytes::

    "xtq-cmd-sig-1"          domain tag (and version of this format)
    key_id                   as in the sig field
    ts_ms                    as in the sig field (decimal text)
    v                        envelope fields, each as the exact bytes stored in the stream entry (UTF-8 text);
    type                     a field missing from the entry counts as the empty string
    account
    id
    coid
    strategy
    reply_to
    ttl_ms
    body                     the raw msgpack bytes of the body field

``sent_ms`` is not covered (it is informational). The secret is the UTF-8 bytes of the key string
(``xtqueue acl`` generates ``secrets.token_urlsafe(32)``); at least 16 bytes are required.

Example: ``canonical_bytes`` of a ping from ``alpha`` starts ``13:xtq-cmd-sig-1,7:alpha-1,13:1700000000000,1:1,``
``4:ping,...``. Re-sending a command (the library does after a connection cut) reduces its ``ttl_ms``, so it is
signed again: same command id, new timestamp and signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

from . import contract

SIG_DOMAIN = b"xtq-cmd-sig-1"
SIGNED_FIELDS = (contract.F_VERSION, contract.F_TYPE, contract.F_ACCOUNT, contract.F_ID, contract.F_COID,
                 contract.F_STRATEGY, contract.F_REPLY_TO, contract.F_TTL_MS)  # then F_BODY
MIN_SECRET_BYTES = 16
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_SIG_RE = re.compile(r"^([A-Za-z0-9_\-.]{1,64}):(\d{1,15}):([0-9a-f]{64})$")


class SignatureError(ValueError):
    """A sig field that cannot be parsed, or a key that cannot be used."""


def validate_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise SignatureError(f"invalid key id {key_id!r}: 1-64 characters of A-Z a-z 0-9 _ - .")
    return key_id


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key: the UTF-8 bytes of the key string. Refuses short keys."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise SignatureError(f"a signing key needs at least {MIN_SECRET_BYTES} bytes")
    return raw


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def canonical_bytes(fields: dict, key_id: str, ts_ms: int) -> bytes:
    """The bytes the MAC covers, for a stream entry whose keys/values may be str or bytes."""
    parts = [SIG_DOMAIN, key_id.encode("ascii"), str(int(ts_ms)).encode("ascii")]
    parts.extend(_bytes(contract._field(fields, name)) for name in SIGNED_FIELDS)
    parts.append(_bytes(contract._field(fields, contract.F_BODY)))
    return b"".join(_netstring(p) for p in parts)


def content_digest(fields: dict, key_id: str) -> bytes:
    """What makes two signed entries the same command: the key and every signed field but ``ttl_ms`` (a client
    re-send reduces it and signs again; executor/safety/auth.py tells a repeat from a replayed id by this digest)."""
    parts = [key_id.encode("ascii")]
    parts.extend(_bytes(contract._field(fields, name)) for name in SIGNED_FIELDS if name != contract.F_TTL_MS)
    parts.append(_bytes(contract._field(fields, contract.F_BODY)))
    return hashlib.sha256(b"".join(_netstring(p) for p in parts)).digest()


def compute_mac(secret: bytes, fields: dict, key_id: str, ts_ms: int) -> str:
    return hmac.new(secret, canonical_bytes(fields, key_id, ts_ms), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ParsedSig:
    key_id: str
    ts_ms: int
    mac: str


def parse_sig(value: Any) -> ParsedSig:
    try:
        text = contract._text(value)
    except UnicodeDecodeError:
        raise SignatureError("the sig field is not text") from None
    m = _SIG_RE.fullmatch(text)
    if m is None:
        raise SignatureError("the sig field is not '<key_id>:<ts_ms>:<64 hex digits>'")
    return ParsedSig(m.group(1), int(m.group(2)), m.group(3))


def verify_mac(secret: bytes, fields: dict, sig: ParsedSig) -> bool:
    """True if ``sig.mac`` is the MAC of ``fields`` under ``secret`` (constant-time comparison)."""
    expected = compute_mac(secret, fields, sig.key_id, sig.ts_ms)
    return hmac.compare_digest(expected.encode("ascii"), sig.mac.encode("ascii"))


class Signer:
    """Signs command entries with one key. ``repr`` never shows the secret."""

    __slots__ = ("key_id", "_secret")

    def __init__(self, secret: str | bytes, key_id: str) -> None:
        self.key_id = validate_key_id(key_id)
        self._secret = secret_bytes(secret)

    def sign(self, entry: dict[str, Any], ts_ms: int | None = None) -> dict[str, Any]:
        """A copy of ``entry`` with its ``sig`` field set (any previous one replaced)."""
        ts = time.time_ns() // 1_000_000 if ts_ms is None else int(ts_ms)
        unsigned = {k: v for k, v in entry.items() if k != contract.F_SIG}
        mac = compute_mac(self._secret, unsigned, self.key_id, ts)
        return {**unsigned, contract.F_SIG: f"{self.key_id}:{ts}:{mac}"}

    def __repr__(self) -> str:
        return f"<Signer key_id={self.key_id!r}>"

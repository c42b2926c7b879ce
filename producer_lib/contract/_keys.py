"""Keys, the protocol version, envelope field names, identifiers and bounds of the wire contract."""

from __future__ import annotations

import re
import secrets
import time


# 3: every scalar of a body is a plain-text field of its own (b.<name>), so `redis-cli XRANGE` shows what was ordered,
#    filled and held; nested values and None as JSON text (j.<name>). 2: the body as one msgpack field ("body"),
#    still read (an executor answers a v2 command with a v2 reply). 2 itself: one command stream per strategy.
PROTOCOL_VERSION = "3"
SUPPORTED_VERSIONS = frozenset({"2", "3"})
KEY_PREFIX = "xtq"
COMMAND_GROUP = "executors"

# --- Envelope field names (plain-text routing fields; the body follows as b.* / j.* fields) --------------------
F_VERSION = "v"  # protocol version, "3"
F_TYPE = "type"  # command type (place_order, ...), "reply", or event type (order_updated, ...)
F_ACCOUNT = "account"  # fund account id
F_ID = "id"  # command id (on a reply: the id of the command it answers)
F_COID = "coid"  # client order id, "" when the entry concerns no order
F_REPLY_TO = "reply_to"  # commands: the stream key the reply goes to
F_TTL_MS = "ttl_ms"  # commands: time to live, counted from the stream entry id (Redis server clock)
# An entry id whose time is more than this ahead of the Redis server clock (as the executor reads it) was chosen by
# its producer (XADD <id>), not given by Redis: the entry is refused (id_ahead), its id never trusted as a deadline.
# The margin covers the executor's estimate of the server clock (re-measured every clock_sync_interval_ms).
ENTRY_ID_AHEAD_TOLERANCE_MS = 1_000
F_SENT_MS = "sent_ms"  # producer's wall clock at send time: for humans only, never trusted for deadlines
F_STRATEGY = "strategy"  # commands: strategy name: "" or the owner of the command stream it is written to
F_OK = "ok"  # replies: "1" success, "0" error
F_ERROR = "error"  # replies: error code ("" on success)
F_CMD = "cmd"  # replies: type of the command answered
F_SEQ = "seq"  # events: per-account sequence number, 1, 2, 3, ...; a hole marks possibly missing events
F_ORDER_ID = "order_id"  # events: broker order id ("" if unknown)
F_TS_MS = "ts_ms"  # replies / events: executor wall clock when written
F_BODY = "body"  # protocol 2 only: the whole body as msgpack
F_SIG = "sig"  # HMAC signature of a signed command (producer_lib/signing.py)
# Protocol 3 body fields: "b.<path>" holds a scalar as text (str as is, numbers in decimal, bools true/false), and
# "j.<path>" a list, dict or None as JSON; <path> names a nested report's field as "order.code". Prefixed, so a body
# field never takes an envelope field's name (an event's body has its own order_id and seq).
F_SCALAR_PREFIX = "b."
F_JSON_PREFIX = "j."
_ENVELOPE_NAMES = (F_VERSION, F_TYPE, F_ACCOUNT, F_ID, F_COID, F_REPLY_TO, F_TTL_MS, F_SENT_MS, F_STRATEGY, F_BODY,
                   F_SIG)  # a command's fields

CLIENT_ORDER_ID_MAX_BYTES = 24  # MiniQMT keeps 24 bytes of order_remark; the client order id travels there
_COID_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,24}$")
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")


# Bounds of one command entry (docs/protocol.md §2.1). A command has at most 11 fields and a few hundred bytes; an
# entry beyond these is refused at decode before anything walks it, and what the executor copies of it (dead letter,
# audit) is cut to them: one hostile entry must not cost the executor a Lua script (Lua 5.1's unpack() stops near
# 8,000 values), a recursion limit or megabytes of copies.
MAX_ENTRY_FIELDS = 32  # fields (name/value pairs) of one command entry
MAX_ENTRY_BYTES = 64 * 1024  # names and values of one command entry, added up
MAX_BODY_NESTING = 16  # maps/arrays inside one another in a body (a command body is one flat map)

XT_TEXT_MAX_CHARS = 64  # PlaceOrder.xt_remark / xt_strategy_name: an xtquant program's own texts, kept as given

DEFAULT_ORDER_TTL_MS = 10_000  # an order not reached within 10 s is refused as expired
DEFAULT_COMMAND_TTL_MS = 30_000  # queries and cancels; cancels are executed even when late
MAX_TTL_MS = 24 * 3600 * 1000


# --- Keys -------------------------------------------------------------------------------------------------------
class Keys:
    """Redis key builder for one account. All keys carry the hash tag ``{account}`` (one Cluster slot)."""

    __slots__ = ("account", "prefix", "base", "commands", "events", "dead_letter", "heartbeat", "lease", "halt",
                 "audit")

    def __init__(self, account: str, prefix: str = KEY_PREFIX) -> None:
        validate_account(account)
        self.account = account
        self.prefix = prefix
        self.base = f"{prefix}:{{{account}}}"
        self.commands = f"{self.base}:cmd"  # the stream of clients without a strategy name (see command_stream)
        self.events = f"{self.base}:events"
        self.dead_letter = f"{self.base}:dead"
        self.heartbeat = f"{self.base}:heartbeat"
        self.lease = f"{self.base}:lease"
        self.halt = f"{self.base}:halt"
        self.audit = f"{self.base}:audit"

    def command_stream(self, strategy: str = "") -> str:
        """The command stream a strategy writes: ``<base>:cmd:<strategy>``, or ``<base>:cmd`` for ``""``. Identity
        comes from this key: a strategy's ACL user may XADD to its own stream only (xtqueue/acl.py), and the
        executor treats the stream's owner as the sender, whatever the command says about itself."""
        if not strategy:
            return self.commands
        if not STRATEGY_PREFIX_RE.fullmatch(strategy):
            raise ValueError(f"invalid strategy name {strategy!r}: 1-40 of A-Z a-z 0-9 _ -")
        return f"{self.commands}:{strategy}"

    @property
    def command_stream_pattern(self) -> str:
        """SCAN pattern of the strategies' command streams (the executor discovers them with it)."""
        return f"{self.commands}:*"

    def command_stream_owner(self, key: str) -> str | None:
        """The strategy a command stream belongs to ("" for ``<base>:cmd``), or None if ``key`` is not one."""
        if key == self.commands:
            return ""
        head = f"{self.commands}:"
        name = key[len(head):] if key.startswith(head) else ""
        return name if STRATEGY_PREFIX_RE.fullmatch(name) else None

    def replies(self, client_id: str) -> str:
        if not _CLIENT_ID_RE.fullmatch(client_id):
            raise ValueError(f"invalid client id {client_id!r}")
        return f"{self.base}:reply:{client_id}"

    def is_reply_stream(self, key: str, strategy: str | None = None) -> bool:
        """True if ``key`` is a reply stream of this account (the executor writes replies nowhere else); with
        ``strategy``, also one of that strategy's (``reply:<strategy>.<...>``; for "" one naming no strategy)."""
        head = f"{self.base}:reply:"
        client_id = key[len(head):]
        if not key.startswith(head) or not _CLIENT_ID_RE.fullmatch(client_id):
            return False
        return strategy is None or strategy_of_client_id(client_id) == strategy


def validate_account(account: str) -> str:
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise ValueError(f"invalid account id {account!r}: 1-64 characters of A-Z a-z 0-9 _ - .")
    return account


def new_client_order_id() -> str:
    """A fresh client order id: 20 random hex characters, fits order_remark (24 bytes)."""
    return secrets.token_hex(10)


def new_command_id() -> str:
    return secrets.token_hex(12)


STRATEGY_PREFIX_RE = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")  # strategy names usable as a reply stream prefix


def new_client_id(strategy: str = "") -> str:
    """A fresh client id (names the reply stream). For a strategy whose name is 1-40 of ``A-Z a-z 0-9 _ -`` it is
    ``"<strategy>.<16 hex>"``, so the ACL key pattern ``xtq:{ACCOUNT}:reply:<strategy>.*`` covers exactly that
    strategy's reply streams (``xtqueue acl``); otherwise 16 hex characters (no dot)."""
    token = secrets.token_hex(8)
    return f"{strategy}.{token}" if strategy and STRATEGY_PREFIX_RE.fullmatch(strategy) else token


def strategy_of_client_id(client_id: str) -> str:
    """The strategy a client id names (the part before its first dot), or "" if it names none."""
    head, dot, _ = client_id.partition(".")
    return head if dot and STRATEGY_PREFIX_RE.fullmatch(head) else ""


def validate_client_order_id(value: str) -> str:
    if not isinstance(value, str) or not _COID_RE.fullmatch(value):
        raise ValueError(
            f"client order id {value!r} must be 1-{CLIENT_ORDER_ID_MAX_BYTES} ASCII characters of "
            "A-Z a-z 0-9 _ - . (it travels in order_remark, which MiniQMT cuts at 24 bytes)"
        )
    return value


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stream_id_ms(stream_id: str | bytes) -> int:
    """Milliseconds part of a Redis stream id: the Redis server clock when the entry was added."""
    if isinstance(stream_id, bytes):
        stream_id = stream_id.decode()
    return int(stream_id.split("-", 1)[0])


# Bounds (entries) for the streams; trimming is approximate (~) and never passes a pending command entry.
REPLY_STREAM_MAXLEN = 1_000
REPLY_STREAM_TTL_S = 3_600  # a reply stream nobody writes to for an hour disappears
EVENT_STREAM_MAXLEN = 1_000_000
COMMAND_STREAM_MAXLEN = 100_000
DEAD_LETTER_MAXLEN = 100_000
AUDIT_STREAM_MAXLEN = 2_000_000  # long retention (approximate trim); the executor's rotating file keeps more
HEARTBEAT_TTL_S = 5

"""The wire contract between strategies (producer_lib) and the executor: one module, imported by both sides.

Everything that crosses Redis is defined here: stream keys, the protocol version, envelope field names, every
command / reply / event model, and the one encode/decode pair for each direction. The executor imports this
module; this module imports nothing from the executor and nothing from xtquant.

Layout of one account's keys (all share the hash tag ``{ACCOUNT}`` so they live in one Redis Cluster slot)::

    xtq:{ACCOUNT}:cmd:{STRATEGY}    stream   commands of one strategy (consumer group "executors"); only that
                                             strategy's ACL user may XADD to it, so the key names the sender
    xtq:{ACCOUNT}:cmd               stream   commands of clients without a strategy name (deployments without
                                             ACL users; no strategy's ACL user may write it)
    xtq:{ACCOUNT}:reply:{CLIENT}    stream   replies to one client instance (bounded, expiring); a client of a
                                             strategy is named "{STRATEGY}.{random}" (see new_client_id), so
                                             Redis ACLs can give each strategy its own reply streams
    xtq:{ACCOUNT}:events            stream   every broker callback and executor event, with a per-account seq
    xtq:{ACCOUNT}:dead              stream   commands that could not be processed, with the reason
    xtq:{ACCOUNT}:heartbeat         string   executor health (JSON), refreshed every second, expires
    xtq:{ACCOUNT}:lease             string   fencing lease of the active executor
    xtq:{ACCOUNT}:halt              stream   kill switch: its latest entry is the state (halted 1/0, reason);
                                             the entry id, assigned by Redis, is the state's version
    xtq:{ACCOUNT}:audit             stream   audit trail: every command, decision and broker result (long)

An entry's routing fields are plain text, so ``redis-cli XRANGE`` alone tells an operator what it is; its ``body``
field is msgpack. Field names are the constants below (``F_*``). See docs/protocol.md for redis-cli sessions.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from producer_lib.ashare import CODE_RE  # the one definition of a code's shape (re-exported: contract.CODE_RE)

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

# A bare six-digit code's exchange, by its leading digits (the boards of executor/sim/rules.py, plus B shares).
# Index codes are not orders' business, so 000xxx is Shenzhen; 204xxx (SSE repo) is listed before 200 (SZSE B).
# A prefix not listed is refused with a clear message: the user adds .SH/.SZ/.BJ.
_EXCHANGE_OF_PREFIX: tuple[tuple[str, str], ...] = (
    ("204", "SH"), ("900", "SH"), ("200", "SZ"),
    ("60", "SH"), ("68", "SH"), ("50", "SH"), ("51", "SH"), ("52", "SH"), ("53", "SH"), ("56", "SH"), ("58", "SH"),
    ("11", "SH"),
    ("00", "SZ"), ("30", "SZ"), ("15", "SZ"), ("16", "SZ"), ("12", "SZ"),
    ("43", "BJ"), ("83", "BJ"), ("87", "BJ"), ("92", "BJ"),
)


def normalize_code(value: Any) -> str:
    """A code as a person types it, as the wire wants it: ``" 600000.sh"`` → ``"600000.SH"``, and a bare
    ``"600000"`` → ``"600000.SH"`` by its leading digits (``_EXCHANGE_OF_PREFIX``). ValueError, saying what to
    type, when it is not a code or its exchange cannot be told. The CLI and the producer library both use it; the
    executor accepts only the normalized form."""
    if not isinstance(value, str):
        raise ValueError(f"code must be a string like '600000.SH', not {value!r}")
    text = value.strip().upper()
    if re.fullmatch(r"[0-9]{6}", text):
        for prefix, exchange in _EXCHANGE_OF_PREFIX:
            if text.startswith(prefix):
                return f"{text}.{exchange}"
        raise ValueError(f"cannot tell the exchange of {value.strip()!r}: give it with its suffix, e.g. "
                         f"{text}.SH (Shanghai), {text}.SZ (Shenzhen) or {text}.BJ (Beijing)")
    if not CODE_RE.fullmatch(text):
        raise ValueError(f"{value!r} is not a code like 600000.SH, 000001.SZ or 830799.BJ (six digits, a dot, the "
                         "exchange; or the six digits alone)")
    return text


def normalize_side(value: Any) -> str:
    """``"BUY"``/``" Buy "``/``Side.BUY`` → ``"buy"``; the credit sides likewise (``"FIN_BUY"`` → ``"fin_buy"``).
    ValueError for anything that is not a Side."""
    text = str(getattr(value, "value", value)).strip().lower() if isinstance(value, str) else None
    if text not in _SIDE_VALUES:
        credit = ", ".join(sorted(_SIDE_VALUES - {"buy", "sell"}))
        raise ValueError(f"side must be buy or sell (or a credit side: {credit}), not {value!r}")
    return text


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


# --- Kill switch (xtq:{ACCOUNT}:halt, a stream; docs/operations.md "Kill switch") ---------------------------------
# Every change is one XADD with id "*": Redis assigns the id, strictly increasing per key, and that id is the
# version of the state it carries, so a reader can tell an older observation from a newer one. The latest entry is
# the state: "halted" "0" means resumed, any other value (or none) means halted (fail closed).
HALT_F_HALTED = "halted"
HALT_F_REASON = "reason"
HALT_MAXLEN = 1_000  # entries kept (approximate trim): the history of who halted when


def halt_entry(halted: bool, reason: str = "") -> dict[str, str]:
    """The fields of one kill switch change (XADD key MAXLEN ~ HALT_MAXLEN * ...)."""
    return {HALT_F_HALTED: "1" if halted else "0", HALT_F_REASON: reason}


def halt_state(entries: Any) -> tuple[tuple[int, int], bool, str | None]:
    """``XREVRANGE key + - COUNT 1`` of the halt key read as ``(version, halted, reason)``. No entry (no key, or an
    emptied stream) is version (0, 0), not halted. Raises ValueError for an entry id that is not "ms-seq"."""
    if not entries:
        return (0, 0), False, None
    sid, fields = entries[0]
    ms, _, seq = (sid.decode() if isinstance(sid, bytes) else str(sid)).partition("-")
    version = (int(ms), int(seq or 0))

    def text(name: str) -> str | None:
        value = _field(fields or {}, name)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else None if value is None else str(value)

    flag, reason = text(HALT_F_HALTED), text(HALT_F_REASON) or ""
    if flag is not None and flag.strip() == "0":
        return version, False, None
    return version, True, reason


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


# --- Enums ------------------------------------------------------------------------------------------------------
class _TextEnum(str, Enum):
    """An enum that prints as its value (``print(ack.status)`` → ``reported``, as on the wire)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Side(_TextEnum):
    """What an order does. ``buy``/``sell`` are xtquant's STOCK_BUY/STOCK_SELL (23/24); on a CREDIT account the
    same numbers are 担保品买入/卖出 (collateral buy/sell). The others need a CREDIT account (reference 5.2); the
    ``_special`` ones are the 专项 (special position) variants 40–45 of 27–32."""

    BUY = "buy"  # 23 买入 / 担保品买入
    SELL = "sell"  # 24 卖出 / 担保品卖出
    FIN_BUY = "fin_buy"  # 27 融资买入 margin buy: opens a financing compact
    SLO_SELL = "slo_sell"  # 28 融券卖出 short sell: opens a securities compact
    BUY_SECU_REPAY = "buy_secu_repay"  # 29 买券还券 buy shares to return them to a short compact
    DIRECT_SECU_REPAY = "direct_secu_repay"  # 30 直接还券 return held shares to a short compact (no price)
    SELL_SECU_REPAY = "sell_secu_repay"  # 31 卖券还款 sell held shares, proceeds repay financing
    DIRECT_CASH_REPAY = "direct_cash_repay"  # 32 直接还款 repay financing with cash: ``amount`` in yuan, no volume
    FIN_BUY_SPECIAL = "fin_buy_special"  # 40 专项融资买入
    SLO_SELL_SPECIAL = "slo_sell_special"  # 41 专项融券卖出
    BUY_SECU_REPAY_SPECIAL = "buy_secu_repay_special"  # 42 专项买券还券
    DIRECT_SECU_REPAY_SPECIAL = "direct_secu_repay_special"  # 43 专项直接还券
    SELL_SECU_REPAY_SPECIAL = "sell_secu_repay_special"  # 44 专项卖券还款
    DIRECT_CASH_REPAY_SPECIAL = "direct_cash_repay_special"  # 45 专项直接还款

    @property
    def is_credit(self) -> bool:
        """Needs a CREDIT account."""
        return self not in (Side.BUY, Side.SELL)

    @property
    def is_buy(self) -> bool:
        """Buys at the exchange (the price band's buy side)."""
        return self in _BUY_SIDES

    @property
    def is_cash_repay(self) -> bool:
        """A direct cash repayment: an ``amount`` in yuan, no volume, no price."""
        return self in (Side.DIRECT_CASH_REPAY, Side.DIRECT_CASH_REPAY_SPECIAL)

    @property
    def is_direct(self) -> bool:
        """No exchange order (a direct repayment): no price."""
        return self in _DIRECT_SIDES

    @property
    def uses_holding(self) -> bool:
        """Sells or hands over shares the account holds (counts against the sellable volume)."""
        return self in _HOLDING_SIDES

    @property
    def opens_debt(self) -> bool:
        """Opens a compact: margin buy or short sell."""
        return self in _DEBT_SIDES


_BUY_SIDES = frozenset({Side.BUY, Side.FIN_BUY, Side.BUY_SECU_REPAY, Side.FIN_BUY_SPECIAL,
                        Side.BUY_SECU_REPAY_SPECIAL})
_DIRECT_SIDES = frozenset({Side.DIRECT_SECU_REPAY, Side.DIRECT_CASH_REPAY, Side.DIRECT_SECU_REPAY_SPECIAL,
                           Side.DIRECT_CASH_REPAY_SPECIAL})
_HOLDING_SIDES = frozenset({Side.SELL, Side.SELL_SECU_REPAY, Side.DIRECT_SECU_REPAY, Side.SELL_SECU_REPAY_SPECIAL,
                            Side.DIRECT_SECU_REPAY_SPECIAL})
_DEBT_SIDES = frozenset({Side.FIN_BUY, Side.SLO_SELL, Side.FIN_BUY_SPECIAL, Side.SLO_SELL_SPECIAL})
_SIDE_VALUES = frozenset(s.value for s in Side)


class PriceType(_TextEnum):
    """Price types a strategy may send. The executor maps each onto xtconstant's value."""

    LIMIT = "limit"  # FIX_PRICE 11, all exchanges
    LATEST = "latest"  # LATEST_PRICE 5, all exchanges
    SH_BEST5_CANCEL = "sh_best5_cancel"  # MARKET_SH_CONVERT_5_CANCEL 42, SSE/BSE
    SH_BEST5_LIMIT = "sh_best5_limit"  # MARKET_SH_CONVERT_5_LIMIT 43, SSE/BSE
    PEER_BEST = "peer_best"  # MARKET_PEER_PRICE_FIRST 44, SSE/SZSE/BSE
    OWN_BEST = "own_best"  # MARKET_MINE_PRICE_FIRST 45, SSE/SZSE/BSE
    SZ_IOC = "sz_ioc"  # MARKET_SZ_INSTBUSI_RESTCANCEL 46, SZSE
    SZ_BEST5_CANCEL = "sz_best5_cancel"  # MARKET_SZ_CONVERT_5_CANCEL 47, SZSE
    SZ_FOK = "sz_fok"  # MARKET_SZ_FULL_OR_CANCEL 48, SZSE


# Which exchanges accept which market price type (limit and latest go everywhere).
PRICE_TYPE_MARKETS: dict[PriceType, frozenset[str]] = {
    PriceType.LIMIT: frozenset({"SH", "SZ", "BJ"}),
    PriceType.LATEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.SH_BEST5_CANCEL: frozenset({"SH", "BJ"}),
    PriceType.SH_BEST5_LIMIT: frozenset({"SH", "BJ"}),
    PriceType.PEER_BEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.OWN_BEST: frozenset({"SH", "SZ", "BJ"}),
    PriceType.SZ_IOC: frozenset({"SZ"}),
    PriceType.SZ_BEST5_CANCEL: frozenset({"SZ"}),
    PriceType.SZ_FOK: frozenset({"SZ"}),
}


class Market(_TextEnum):
    SH = "SH"
    SZ = "SZ"
    BJ = "BJ"


class OrderStatus(_TextEnum):
    """Order status, one per xtconstant ORDER_* value (the number in the comment)."""

    UNREPORTED = "unreported"  # 48 未报
    WAIT_REPORTING = "wait_reporting"  # 49 待报
    REPORTED = "reported"  # 50 已报: working at the exchange
    REPORTED_CANCEL = "reported_cancel"  # 51 已报待撤: cancel pending, NOT final
    PARTSUCC_CANCEL = "partsucc_cancel"  # 52 部成待撤: partly filled, cancel pending, NOT final
    PART_CANCEL = "part_cancel"  # 53 部撤: partly filled, rest cancelled (final)
    CANCELED = "canceled"  # 54 已撤 (final)
    PART_SUCC = "part_succ"  # 55 部成: partly filled, rest working
    SUCCEEDED = "succeeded"  # 56 已成 (final)
    JUNK = "junk"  # 57 废单: rejected (final)
    UNKNOWN = "unknown"  # 255, or any code this version does not know

    @property
    def is_final(self) -> bool:
        return self in FINAL_ORDER_STATUSES


#: How far an order has come, by status: the one table of status order, finality and allowed moves. With the traded
#: volume it is what "a published status never moves backwards" compares (``is_ahead``): MiniQMT can push an older
#: state after a newer one, e.g. a partial fill after "filled" (docs/architecture.md, "Facts about xtquant").
STATUS_RANK = {
    OrderStatus.UNREPORTED: 0, OrderStatus.WAIT_REPORTING: 0, OrderStatus.UNKNOWN: 0,
    OrderStatus.REPORTED: 1, OrderStatus.PART_SUCC: 2, OrderStatus.REPORTED_CANCEL: 2,
    OrderStatus.PARTSUCC_CANCEL: 3,
    OrderStatus.PART_CANCEL: 4, OrderStatus.CANCELED: 4, OrderStatus.SUCCEEDED: 4, OrderStatus.JUNK: 4,
}
FINAL_RANK = 4  # the final statuses: nothing follows them
FINAL_ORDER_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == FINAL_RANK)


def order_rank(order: OrderReport) -> int:
    """How far an order has come, as one number: more filled, then a later status, is larger."""
    return order.traded_volume * 10 + STATUS_RANK.get(order.status, 0)


def is_ahead(report: OrderReport, last: OrderReport) -> bool:
    """True if ``report`` is a later state of the order than ``last`` (more filled, or further along): the allowed
    moves. A final status is never followed by a non-final one."""
    if last.status.is_final and not report.status.is_final:
        return False
    if report.traded_volume != last.traded_volume:
        return report.traded_volume > last.traded_volume
    return STATUS_RANK.get(report.status, 0) > STATUS_RANK.get(last.status, 0)


class ErrorCode(_TextEnum):
    """Why a command failed. Each maps to one exception class in producer_lib (see _exceptions.py)."""

    INVALID_REQUEST = "invalid_request"  # malformed, wrong types, failed validation: nothing was placed
    UNKNOWN_COMMAND = "unknown_command"  # command type this executor does not know: nothing was done
    UNSUPPORTED_VERSION = "unsupported_version"  # protocol version mismatch: nothing was done
    EXPIRED = "expired"  # deadline passed before the executor reached the order: nothing was placed
    CONFLICT = "conflict"  # client order id reused with different order fields: nothing new was placed
    BROKER_REJECTED = "broker_rejected"  # the broker (MiniQMT / counter / exchange) refused it
    BROKER_UNAVAILABLE = "broker_unavailable"  # MiniQMT not connected: nothing was placed
    OUTCOME_UNKNOWN = "outcome_unknown"  # the executor cannot know yet whether the broker has it: ask again
    RISK_REJECTED = "risk_rejected"  # refused by a pre-trade risk limit: nothing was placed
    HALTED = "halted"  # the account's kill switch is on: nothing was placed
    UNAUTHORIZED = "unauthorized"  # signature missing/wrong/replayed, or names another strategy: nothing was done
    ID_AHEAD = "id_ahead"  # stream entry id ahead of the Redis server clock (chosen by the producer): not done
    NOT_FOUND = "not_found"  # the order to cancel / query does not exist
    INTERNAL = "internal"  # executor bug; the command was not executed


class OutcomeState(_TextEnum):
    """What happened to one client order id, as the executor's journal knows it."""

    PENDING = "pending"  # intent recorded, broker answer not yet known
    PLACED = "placed"  # the broker accepted it and gave an order id
    REJECTED = "rejected"  # the broker refused it
    EXPIRED = "expired"  # refused before reaching the broker: deadline passed
    REFUSED = "refused"  # refused before reaching the broker for another reason (risk, halt, unavailable)
    UNKNOWN = "unknown"  # sent to the broker, no answer and not found: may still appear
    NOT_FOUND = "not_found"  # the executor has never seen this client order id


# --- Models -----------------------------------------------------------------------------------------------------
class _Model(BaseModel):
    # Results, reports and events ignore fields they do not know: an executor one version ahead may add a field
    # without breaking every client. Commands (below) forbid them: the executor refuses what it cannot honour.
    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)


StockCode = Annotated[str, Field(pattern=CODE_RE.pattern, description='"600000.SH"-style code')]
ClientOrderId = Annotated[str, Field(pattern=_COID_RE.pattern, max_length=CLIENT_ORDER_ID_MAX_BYTES)]


# Commands (imperative names). Fields marked "envelope" travel as plain-text routing fields, not in the body.
class Command(_Model):
    """Base of every command. ``TYPE`` is the value of the envelope ``type`` field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = ""
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset()


class PlaceOrder(Command):
    """Place one order (xtquant ``order_stock_async``). The client order id is the idempotency key."""

    TYPE: ClassVar[str] = "place_order"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id", "strategy"})

    client_order_id: ClientOrderId
    code: StockCode
    side: Side
    volume: int | None = Field(default=None, gt=0, le=100_000_000,
                               description="shares (张 for bonds); every side but a direct cash repayment")
    price_type: PriceType = PriceType.LIMIT
    price: float | None = Field(default=None, gt=0, le=1_000_000, description="required for limit orders")
    strategy: str = Field(default="", max_length=64)
    amount: float | None = Field(default=None, gt=0, le=1_000_000_000,
                                 description="yuan, at most two decimals: a direct cash repayment only")
    # An xtquant program's own order_remark and strategy_name (xtqueue/compat/remote): the broker gets the client
    # order id and the strategy above instead (the executor finds orders by them); the executor keeps these with
    # the intent and gives them back in query_outcome, so the program sees its own values. None = not given.
    # Not part of the fingerprint: they never reach the broker.
    xt_remark: str | None = Field(default=None, max_length=XT_TEXT_MAX_CHARS)
    xt_strategy_name: str | None = Field(default=None, max_length=XT_TEXT_MAX_CHARS)

    @model_validator(mode="after")
    def _price_matches_type(self) -> PlaceOrder:
        if self.side.is_cash_repay:
            if self.amount is None or self.volume is not None:
                raise ValueError("a direct cash repayment gives an amount in yuan and no volume")
            if abs(self.amount * 100 - round(self.amount * 100)) > 1e-6:
                raise ValueError("a repayment amount has at most two decimals (fen)")
        elif self.volume is None or self.amount is not None:
            raise ValueError(f"a {self.side.value} order gives a volume and no amount")
        if self.side.is_direct:
            if self.price_type is not PriceType.LIMIT or self.price is not None:
                raise ValueError("a direct repayment has no price and no price type")
            return self
        if self.price_type is PriceType.LIMIT and self.price is None:
            raise ValueError("a limit order needs a price")
        exchange = self.code.rsplit(".", 1)[1]
        if exchange not in PRICE_TYPE_MARKETS[self.price_type]:
            raise ValueError(f"price type {self.price_type.value} is not accepted on {exchange}")
        return self

    def fingerprint(self) -> str:
        """The order fields a repeated client order id must match (anything else is a conflict)."""
        price = "" if self.price is None else f"{self.price:.4f}"
        volume = self.volume if self.amount is None else f"{self.amount:.2f}CNY"
        return f"{self.code}|{self.side.value}|{volume}|{self.price_type.value}|{price}|{self.strategy}"

    @property
    def broker_volume(self) -> int:
        """The ``order_volume`` the broker reports for this order: the volume, or a cash repayment's whole yuan
        (xtquant sends ``int(volume)`` beside the exact amount, reference 2.1)."""
        return self.volume if self.volume is not None else int(self.amount or 0)


class CancelOrder(Command):
    """Cancel an order, by broker order id, by client order id, or by exchange contract number (sysid + market)."""

    TYPE: ClassVar[str] = "cancel_order"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})

    order_id: int | None = Field(default=None, gt=0)
    client_order_id: ClientOrderId | None = None
    sysid: str | None = Field(default=None, min_length=1, max_length=64)
    market: Market | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> CancelOrder:
        given = sum(x is not None for x in (self.order_id, self.client_order_id, self.sysid))
        if given != 1:
            raise ValueError("give exactly one of order_id, client_order_id, sysid")
        if self.sysid is not None and self.market is None:
            raise ValueError("a cancel by sysid needs the market (SH, SZ or BJ)")
        return self


class QueryAsset(Command):
    TYPE: ClassVar[str] = "query_asset"


class QueryPositions(Command):
    TYPE: ClassVar[str] = "query_positions"
    code: StockCode | None = None


class QueryOrders(Command):
    """Today's orders: all, cancelable only, or one (by order id or client order id)."""

    TYPE: ClassVar[str] = "query_orders"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})
    cancelable_only: bool = False
    order_id: int | None = Field(default=None, gt=0)
    client_order_id: ClientOrderId | None = None


class QueryTrades(Command):
    TYPE: ClassVar[str] = "query_trades"


class QueryAccountStatus(Command):
    TYPE: ClassVar[str] = "query_account_status"


class QueryOutcome(Command):
    """What happened to a client order id (placed? rejected? expired? unknown?). Safe to ask at any time."""

    TYPE: ClassVar[str] = "query_outcome"
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"client_order_id"})
    client_order_id: ClientOrderId


class Ping(Command):
    TYPE: ClassVar[str] = "ping"


COMMAND_TYPES: dict[str, type[Command]] = {
    c.TYPE: c
    for c in (PlaceOrder, CancelOrder, QueryAsset, QueryPositions, QueryOrders, QueryTrades, QueryAccountStatus,
              QueryOutcome, Ping)
}


# Reports: snapshots of broker state.
class AssetReport(_Model):
    account: str
    cash: float
    frozen_cash: float
    market_value: float
    total_asset: float
    fetch_balance: float = 0.0


class OrderReport(_Model):
    order_id: int
    client_order_id: str = ""  # the order's remark: "" for orders not placed through xtqueue
    order_sysid: str = ""
    code: str
    side: Side | None = None  # None for order types other than stock buy/sell
    order_type: int
    volume: int
    price: float
    price_type: int  # the broker's code as MiniQMT reports it (50 limit, 88 best-5 IOC, ...)
    status: OrderStatus
    status_code: int
    status_msg: str = ""
    traded_volume: int = 0
    traded_price: float = 0.0
    order_time: int = 0  # epoch seconds
    strategy: str = ""
    instrument_name: str = ""


class TradeReport(_Model):
    trade_id: str
    order_id: int
    client_order_id: str = ""
    order_sysid: str = ""
    code: str
    side: Side | None = None
    order_type: int
    price: float
    volume: int
    amount: float
    traded_time: int = 0  # epoch seconds
    commission: float = 0.0
    strategy: str = ""
    instrument_name: str = ""


class PositionReport(_Model):
    code: str
    volume: int
    can_use_volume: int
    frozen_volume: int = 0
    on_road_volume: int = 0
    yesterday_volume: int = 0
    open_price: float = 0.0
    avg_price: float = 0.0
    market_value: float = 0.0
    last_price: float = 0.0
    instrument_name: str = ""


# Results: the body of a successful reply, one per command type.
class OrderAck(_Model):
    """The broker took the order: it has an order id. ``status`` is the first status the broker reported."""

    order_id: int
    client_order_id: str
    status: OrderStatus
    status_msg: str = ""
    duplicate: bool = False  # True when answered from the journal: this id had been placed before


class CancelAck(_Model):
    """The broker took the cancel request (xtquant cancel_result 0). The final status arrives as an event."""

    order_id: int | None = None
    client_order_id: str | None = None
    sysid: str | None = None


class OrdersResult(_Model):
    orders: list[OrderReport]


class TradesResult(_Model):
    trades: list[TradeReport]


class PositionsResult(_Model):
    positions: list[PositionReport]


class AccountStatusResult(_Model):
    account: str
    status: int  # xtconstant ACCOUNT_STATUS_* (0 = ok)
    status_name: str


class OutcomeResult(_Model):
    client_order_id: str
    state: OutcomeState
    order_id: int | None = None
    message: str = ""
    order: OrderReport | None = None
    # PlaceOrder.xt_remark / xt_strategy_name as journaled with the intent (None: not given, or not in the journal)
    xt_remark: str | None = None
    xt_strategy_name: str | None = None


class PingResult(_Model):
    executor_id: str
    version: str
    protocol: str = PROTOCOL_VERSION
    broker: str  # "sim" or "xt"
    broker_connected: bool
    redis_ok: bool = True
    leader: bool = True
    uptime_s: float
    last_event_seq: int
    commands_done: int


RESULT_TYPES: dict[str, type[_Model]] = {
    PlaceOrder.TYPE: OrderAck,
    CancelOrder.TYPE: CancelAck,
    QueryAsset.TYPE: AssetReport,
    QueryPositions.TYPE: PositionsResult,
    QueryOrders.TYPE: OrdersResult,
    QueryTrades.TYPE: TradesResult,
    QueryAccountStatus.TYPE: AccountStatusResult,
    QueryOutcome.TYPE: OutcomeResult,
    Ping.TYPE: PingResult,
}


# --- Credit (两融) accounts: the five credit queries (xtquant query_credit_detail, query_stk_compacts,
# query_credit_subjects, query_credit_slo_code, query_credit_assure; fields: the wheel's doc/xttrader.md). Each
# answers the broker's list; a STOCK account's executor answers them as MiniQMT does for it (usually empty).
class QueryCreditDetail(Command):
    TYPE: ClassVar[str] = "query_credit_detail"


class QueryStkCompacts(Command):
    TYPE: ClassVar[str] = "query_stk_compacts"


class QueryCreditSubjects(Command):
    TYPE: ClassVar[str] = "query_credit_subjects"


class QueryCreditSloCode(Command):
    TYPE: ClassVar[str] = "query_credit_slo_code"


class QueryCreditAssure(Command):
    TYPE: ClassVar[str] = "query_credit_assure"


class CreditDetailReport(_Model):
    """XtCreditDetail: the margin account's assets, debts and quotas (amounts in CNY)."""

    account: str
    status: int = 0  # m_nStatus
    balance: float = 0.0  # m_dBalance 总资产
    available: float = 0.0  # m_dAvailable 可用金额
    frozen_cash: float = 0.0  # m_dFrozenCash 冻结金额
    market_value: float = 0.0  # m_dMarketValue 总市值
    stock_value: float = 0.0  # m_dStockValue 股票市值
    fund_value: float = 0.0  # m_dFundValue 基金市值
    fetch_balance: float = 0.0  # m_dFetchBalance 可取金额
    position_profit: float = 0.0  # m_dPositionProfit 持仓盈亏
    total_debt: float = 0.0  # m_dTotalDebt 总负债
    enable_bail_balance: float = 0.0  # m_dEnableBailBalance 可用保证金
    maintenance_ratio: float = 0.0  # m_dPerAssurescaleValue 维持担保比例 (as a fraction: 1.30 = 130 %)
    assure_asset: float = 0.0  # m_dAssureAsset 净资产
    fin_debt: float = 0.0  # m_dFinDebt 融资负债
    fin_deal_avl: float = 0.0  # m_dFinDealAvl 融资本金
    fin_fee: float = 0.0  # m_dFinFee 融资息费
    slo_debt: float = 0.0  # m_dSloDebt 融券负债
    slo_market_value: float = 0.0  # m_dSloMarketValue 融券市值
    slo_fee: float = 0.0  # m_dSloFee 融券息费
    other_fare: float = 0.0  # m_dOtherFare 其它费用
    fin_max_quota: float = 0.0  # m_dFinMaxQuota 融资授信额度
    fin_enable_quota: float = 0.0  # m_dFinEnableQuota 融资可用额度
    fin_used_quota: float = 0.0  # m_dFinUsedQuota 融资冻结额度
    slo_max_quota: float = 0.0  # m_dSloMaxQuota 融券授信额度
    slo_enable_quota: float = 0.0  # m_dSloEnableQuota 融券可用额度
    slo_used_quota: float = 0.0  # m_dSloUsedQuota 融券冻结额度
    slo_sell_balance: float = 0.0  # m_dSloSellBalance 融券卖出资金
    used_slo_sell_balance: float = 0.0  # m_dUsedSloSellBalance 已用融券卖出资金
    surplus_slo_sell_balance: float = 0.0  # m_dSurplusSloSellBalance 剩余融券卖出资金


class CompactReport(_Model):
    """StkCompacts: one debt compact (负债合约)."""

    compact_id: str  # 合约编号
    code: str  # instrument_id
    compact_type: int  # 合约类型 (the broker's code: 0 financing, 1 securities on the simulator)
    cashgroup_prop: int = 0  # 头寸来源 (0 ordinary, 1 special position on the simulator)
    market: int = -1  # exchange_id
    open_date: int = 0  # YYYYMMDD
    ret_end_date: int = 0  # 到期日 YYYYMMDD
    business_vol: int = 0  # 合约证券数量
    real_compact_vol: int = 0  # 未还合约数量
    business_balance: float = 0.0  # 合约金额
    business_fare: float = 0.0  # businessFare 合约息费
    real_compact_balance: float = 0.0  # 未还合约金额
    real_compact_fare: float = 0.0  # 未还合约息费
    repaid_fare: float = 0.0  # 已还息费
    repaid_balance: float = 0.0  # 已还金额
    position_str: str = ""  # 定位串


class CreditSubjectReport(_Model):
    """CreditSubjects: a margin-eligible security (融资融券标的) and its margin ratios."""

    code: str
    market: int = -1
    fin_status: int = 0  # 融资状态 (the broker's code)
    slo_status: int = 0  # 融券状态
    fin_ratio: float = 0.0  # 融资保证金比例
    slo_ratio: float = 0.0  # 融券保证金比例


class SloCodeReport(_Model):
    """CreditSloCode: a lendable security (可融券) and how many shares can be borrowed."""

    code: str
    market: int = -1
    cashgroup_prop: int = 0  # 头寸来源
    enable_amount: int = 0  # 融券可融数量


class AssureReport(_Model):
    """CreditAssure: a collateral security (担保品) and its haircut."""

    code: str
    market: int = -1
    assure_status: int = 0  # 是否可做担保 (the broker's code)
    assure_ratio: float = 0.0  # 担保品折算比例


class CreditDetailResult(_Model):
    details: list[CreditDetailReport]  # normally one


class CompactsResult(_Model):
    compacts: list[CompactReport]


class CreditSubjectsResult(_Model):
    subjects: list[CreditSubjectReport]


class SloCodesResult(_Model):
    codes: list[SloCodeReport]


class AssuresResult(_Model):
    assures: list[AssureReport]


CREDIT_QUERY_TYPES: dict[type[Command], type[_Model]] = {
    QueryCreditDetail: CreditDetailResult, QueryStkCompacts: CompactsResult, QueryCreditSubjects: CreditSubjectsResult,
    QueryCreditSloCode: SloCodesResult, QueryCreditAssure: AssuresResult}
COMMAND_TYPES.update({cmd.TYPE: cmd for cmd in CREDIT_QUERY_TYPES})
RESULT_TYPES.update({cmd.TYPE: result for cmd, result in CREDIT_QUERY_TYPES.items()})


class ErrorInfo(_Model):
    """The body of an error reply."""

    code: ErrorCode
    message: str
    broker_message: str | None = None  # the broker's own text, verbatim, for broker refusals
    broker_error_id: int | None = None
    order_id: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


# Events (what happened; each names the xtquant callback it comes from).
class Event(_Model):
    TYPE: ClassVar[str] = ""


class OrderUpdated(Event):
    """on_stock_order: an order changed (status, filled volume)."""

    TYPE: ClassVar[str] = "order_updated"
    order: OrderReport
    # "reconciliation": the push was missing; the executor found the change in the broker's order list
    detected_by: Literal["callback", "reconciliation"] = "callback"


class OrderFilled(Event):
    """on_stock_trade: one fill."""

    TYPE: ClassVar[str] = "order_filled"
    trade: TradeReport
    # "reconciliation": the push was missing; the executor found the fill in the broker's trade list
    detected_by: Literal["callback", "reconciliation"] = "callback"


class OrderRejected(Event):
    """on_order_error: the broker refused an order."""

    TYPE: ClassVar[str] = "order_rejected"
    order_id: int
    client_order_id: str = ""
    error_id: int = 0
    error_msg: str = ""
    strategy: str = ""
    detected_by: Literal["callback", "reconciliation"] = "callback"


class CancelRejected(Event):
    """on_cancel_error: the broker refused a cancel."""

    TYPE: ClassVar[str] = "cancel_rejected"
    order_id: int
    client_order_id: str = ""
    order_sysid: str = ""
    market: int | None = None
    error_id: int = 0
    error_msg: str = ""


class OrderResponded(Event):
    """on_order_stock_async_response: the broker's answer to an order request (order_id -1 = refused)."""

    TYPE: ClassVar[str] = "order_responded"
    order_id: int
    client_order_id: str = ""
    # xtquant's request number: diagnostic only (nothing should rely on it; it may be left out in a later protocol,
    # hence optional). The adapter matches answers by (trader, seq) itself: executor/broker/answers.py.
    seq: int = 0
    error_msg: str = ""
    strategy: str = ""
    # Adapter-internal, never published: the trader instance (the adapter's connection generation) that answered.
    trader: int = Field(0, exclude=True)


class CancelResponded(Event):
    """on_cancel_order_stock_async_response: the broker's answer to a cancel request (0 = sent)."""

    TYPE: ClassVar[str] = "cancel_responded"
    order_id: int
    order_sysid: str = ""
    cancel_result: int
    seq: int = 0  # as OrderResponded.seq
    error_msg: str = ""
    trader: int = Field(0, exclude=True)  # as OrderResponded.trader


class AssetUpdated(Event):
    """on_stock_asset."""

    TYPE: ClassVar[str] = "asset_updated"
    asset: AssetReport


class PositionUpdated(Event):
    """on_stock_position."""

    TYPE: ClassVar[str] = "position_updated"
    position: PositionReport


class AccountStatusChanged(Event):
    """on_account_status."""

    TYPE: ClassVar[str] = "account_status"
    status: int
    status_name: str


class BrokerConnected(Event):
    """The executor connected (or reconnected) and subscribed to MiniQMT (xtquant never fires on_connected)."""

    TYPE: ClassVar[str] = "broker_connected"
    executor_id: str
    session: int
    reconnect: bool = False


class BrokerDisconnected(Event):
    """on_disconnected, or the executor's probe found MiniQMT gone."""

    TYPE: ClassVar[str] = "broker_disconnected"
    executor_id: str
    reason: str = ""


class ExecutorStarted(Event):
    TYPE: ClassVar[str] = "executor_started"
    executor_id: str
    broker: str
    version: str


class ExecutorStopped(Event):
    TYPE: ClassVar[str] = "executor_stopped"
    executor_id: str
    reason: str = ""


class AccountHalted(Event):
    """The executor saw the account's kill switch (the ``halt`` key) turned on: new orders are refused."""

    TYPE: ClassVar[str] = "account_halted"
    executor_id: str
    reason: str = ""


class AccountResumed(Event):
    """The executor saw the account's kill switch turned off: new orders are admitted again."""

    TYPE: ClassVar[str] = "account_resumed"
    executor_id: str


EVENT_TYPES: dict[str, type[Event]] = {
    e.TYPE: e
    for e in (OrderUpdated, OrderFilled, OrderRejected, CancelRejected, OrderResponded, CancelResponded,
              AssetUpdated, PositionUpdated, AccountStatusChanged, BrokerConnected, BrokerDisconnected,
              ExecutorStarted, ExecutorStopped, AccountHalted, AccountResumed)
}


# --- Encoding ---------------------------------------------------------------------------------------------------
def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


class NestingTooDeep(ValueError):
    """msgpack data nested deeper than ``MAX_BODY_NESTING``: refused before anything walks it recursively."""


def unpack_body(data: bytes) -> Any:
    """A command body (written by a producer: untrusted) unpacked within the contract's bounds. msgpack bounds every
    length by the data's own (at most ``MAX_ENTRY_BYTES`` here: decode_envelope, bounded_fields) and its C unpacker's
    nesting (1,024: StackError); the depth walk below is iterative, so no input reaches a recursion limit here, and
    whatever this returns is at most ``MAX_BODY_NESTING`` deep."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.StackError, RecursionError):
        raise NestingTooDeep(f"nested deeper than {MAX_BODY_NESTING} levels") from None
    stack = [(obj, 1)] if isinstance(obj, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_BODY_NESTING:
                    raise NestingTooDeep(f"nested deeper than {MAX_BODY_NESTING} levels")
                stack.append((child, depth + 1))
    return obj


def entry_size(fields: dict) -> tuple[int, int]:
    """(fields, bytes of names and values added up) of a stream entry."""
    try:  # bytes/str names and values (what Redis returns): counted in C
        return len(fields), sum(map(len, fields)) + sum(map(len, fields.values()))
    except TypeError:
        return len(fields), sum(_size(k) + _size(v) for k, v in fields.items())


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, str)) else len(str(value))


def bounded_fields(fields: dict) -> tuple[dict, bool]:
    """A copy of an entry's fields cut to ``MAX_ENTRY_FIELDS`` fields and ``MAX_ENTRY_BYTES`` bytes (the envelope's
    own fields first, so a cut copy still says what it was), and whether anything was cut. An entry within the
    bounds is copied as is."""
    count, size = entry_size(fields)
    if count <= MAX_ENTRY_FIELDS and size <= MAX_ENTRY_BYTES:
        return dict(fields), False
    known = {n for name in _ENVELOPE_NAMES for n in (name, name.encode())}
    order = [k for k in fields if k in known] + [k for k in fields if k not in known]
    out: dict = {}
    budget = MAX_ENTRY_BYTES
    for name in order[:MAX_ENTRY_FIELDS]:
        value = fields[name]
        key = name[:128] if isinstance(name, (bytes, str)) else name
        room = budget - _size(key)
        if room <= 0:
            break
        if isinstance(value, (bytes, str)):
            value = value[:room]
        out[key] = value
        budget -= _size(key) + _size(value)
    return out, True


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _field(fields: dict, name: str) -> Any:
    """Read a field from a stream entry whose keys may be bytes (decode_responses=False) or str."""
    value = fields.get(name.encode())
    if value is None:
        value = fields.get(name)
    return value


class Envelope(_Model):
    """The routing part of a command entry, as read from the stream."""

    version: str
    type: str
    account: str
    command_id: str
    client_order_id: str = ""
    reply_to: str = ""
    ttl_ms: int
    sent_ms: int = 0
    strategy: str = ""


def encode_command(command: Command, *, account: str, command_id: str, reply_to: str, ttl_ms: int,
                   sent_ms: int | None = None) -> dict[str, Any]:
    """Build the stream entry (field → value) of a command."""
    data = command.model_dump(mode="json", exclude_none=True)
    coid = data.pop("client_order_id", "") if "client_order_id" in command.ENVELOPE_FIELDS else ""
    strategy = data.pop("strategy", "") if "strategy" in command.ENVELOPE_FIELDS else ""
    entry = {
        F_VERSION: PROTOCOL_VERSION,
        F_TYPE: command.TYPE,
        F_ACCOUNT: account,
        F_ID: command_id,
        F_COID: coid or "",
        F_STRATEGY: strategy or "",
        F_REPLY_TO: reply_to,
        F_TTL_MS: str(int(ttl_ms)),
        F_SENT_MS: str(now_ms() if sent_ms is None else sent_ms),
    }
    for name, value in data.items():  # a command body is flat and None-free (exclude_none)
        entry[F_SCALAR_PREFIX + name] = _scalar_text(value)
    return entry


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_NESTED: dict[type, frozenset[str]] = {}  # per model class: its fields that hold a nested report (flattened)


def _nested_fields(cls: type) -> frozenset[str]:
    found = _NESTED.get(cls)
    if found is None:
        found = frozenset(name for name, info in cls.model_fields.items()  # type: ignore[attr-defined]
                          if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
        _NESTED[cls] = found
    return found


def _put_body(entry: dict[str, Any], model: BaseModel, data: dict[str, Any], prefix: str = "") -> None:
    """``model`` (dumped as ``data``) into ``entry`` as b.* / j.* fields; a nested report is flattened."""
    nested = _nested_fields(type(model))
    scalar, as_json = F_SCALAR_PREFIX + prefix, F_JSON_PREFIX + prefix
    for name, value in data.items():
        kind = type(value)
        if kind is str:
            entry[scalar + name] = value
        elif kind is int or kind is float:
            entry[scalar + name] = str(value)
        elif kind is bool:
            entry[scalar + name] = "true" if value else "false"
        elif kind is dict and name in nested:
            _put_body(entry, getattr(model, name), value, f"{prefix}{name}.")
        else:  # None, a list, a dict that is not a report
            entry[as_json + name] = _json_text(value)


# Per field name (as read from Redis): (0 not a body field / 1 b.* / 2 j.*, the name as text, its path). Field
# names of replies and events are a small fixed set; the bound keeps garbage names from growing it.
_PATHS: dict[Any, tuple[int, str, tuple[str, ...]]] = {}
_PATHS_MAX = 4_096


def _path_of(key: Any) -> tuple[int, str, tuple[str, ...]]:
    hit = _PATHS.get(key)
    if hit is None:
        name = key.decode("utf-8") if type(key) is bytes else str(key)
        kind = 1 if name[:2] == F_SCALAR_PREFIX else 2 if name[:2] == F_JSON_PREFIX else 0
        hit = (kind, name, tuple(name[2:].split(".")) if kind else ())
        if len(_PATHS) < _PATHS_MAX:
            _PATHS[key] = hit
    return hit


def read_body(fields: dict, *, flat: bool = False) -> dict[str, Any]:
    """The body of an entry: its msgpack ``body`` field (protocol 2) or its b.* / j.* fields (3) as a dict for the
    models to validate (pydantic turns "100" into 100 where the model says int). ``flat`` (commands: written by
    producers, untrusted) allows b.<name> fields only. ValueError for anything unreadable."""
    raw = _field(fields, F_BODY)
    if raw is not None and _text(_field(fields, F_VERSION)) != "3":  # protocol 2 (or an entry naming none)
        return unpack_body(raw)
    body: dict[str, Any] = {}
    for key, value in fields.items():
        kind, name, parts = _path_of(key)
        if kind == 1:
            item: Any = value.decode("utf-8") if type(value) is bytes else value
        elif kind == 2 and not flat:
            try:  # written by the executor (replies, events); a hostile depth ends in RecursionError, not a crash
                item = json.loads(value)
            except RecursionError:
                raise ValueError(f"{name} is nested too deeply") from None
        elif kind == 2 or (flat and name == F_BODY):
            raise ValueError(f"a command's body is b.<name> text fields only, not {name!r}")
        else:
            continue
        if len(parts) == 1:  # the common case: a top-level field
            leaf, node = parts[0], body
        else:
            if flat or not all(parts):
                raise ValueError(f"bad body field name {name!r}")
            node = body
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if type(node) is not dict:
                    raise ValueError(f"body field {name!r} clashes with another")
            leaf = parts[-1]
        if not leaf or leaf in node:
            raise ValueError(f"bad or repeated body field {name!r}")
        node[leaf] = item
    return body


def body_bytes(fields: dict) -> bytes:
    """An entry's body as bytes, for comparing two entries' content: the msgpack field (protocol 2) or the b.* /
    j.* fields, sorted, as netstrings (3)."""
    raw = _field(fields, F_BODY)
    if raw is not None and _text(_field(fields, F_VERSION)) != "3":  # protocol 2 (or an entry naming none)
        return raw if isinstance(raw, bytes) else str(raw).encode()
    items = []
    for key, value in fields.items():
        name = key if isinstance(key, bytes) else str(key).encode()
        if name.startswith((F_SCALAR_PREFIX.encode(), F_JSON_PREFIX.encode())):
            data = value if isinstance(value, bytes) else str(value).encode()
            items.append(b"%d:%s,%d:%s," % (len(name), name, len(data), data))
    return b"".join(sorted(items))


class ContractError(Exception):
    """A stream entry that cannot be turned into a command. Carries whatever routing was readable."""

    def __init__(self, code: ErrorCode, message: str, *, command_id: str = "", reply_to: str = "",
                 command_type: str = "", client_order_id: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command_id = command_id
        self.reply_to = reply_to
        self.command_type = command_type
        self.client_order_id = client_order_id
        self.details = details or {}


class EntryTooLarge(ContractError):
    """A command entry with more fields or bytes than the contract allows (``MAX_ENTRY_FIELDS``,
    ``MAX_ENTRY_BYTES``): refused, never executed."""


class BodyTooDeep(ContractError):
    """A command body nested deeper than ``MAX_BODY_NESTING``: refused, never executed."""


def decode_envelope(fields: dict) -> Envelope:
    """Read the routing fields of a command entry. Raises ContractError (with what was readable) on failure."""
    try:
        command_id = _text(_field(fields, F_ID))
        reply_to = _text(_field(fields, F_REPLY_TO))
        ctype = _text(_field(fields, F_TYPE))
        coid = _text(_field(fields, F_COID))
    except UnicodeDecodeError:
        raise ContractError(ErrorCode.INVALID_REQUEST, "routing fields are not UTF-8 text") from None
    known = dict(command_id=command_id[:64], reply_to=reply_to, command_type=ctype[:64], client_order_id=coid[:64])
    count, size = entry_size(fields)
    if count > MAX_ENTRY_FIELDS or size > MAX_ENTRY_BYTES:
        raise EntryTooLarge(ErrorCode.INVALID_REQUEST,
                            f"entry has {count} fields and {size} bytes; a command has at most {MAX_ENTRY_FIELDS} "
                            f"fields and {MAX_ENTRY_BYTES} bytes", **known,
                            details={"fields": count, "bytes": size, "max_fields": MAX_ENTRY_FIELDS,
                                     "max_bytes": MAX_ENTRY_BYTES})
    try:
        version = _text(_field(fields, F_VERSION))
        account = _text(_field(fields, F_ACCOUNT))
        ttl_raw = _text(_field(fields, F_TTL_MS))
        sent_raw = _text(_field(fields, F_SENT_MS))
        strategy = _text(_field(fields, F_STRATEGY))
    except UnicodeDecodeError:
        raise ContractError(ErrorCode.INVALID_REQUEST, "routing fields are not UTF-8 text", **known) from None
    if not command_id:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"missing field {F_ID!r}", **known)
    if version not in SUPPORTED_VERSIONS:
        raise ContractError(ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol version {version!r} is not supported (this executor speaks "
                            f"{', '.join(sorted(SUPPORTED_VERSIONS))})", **known)
    try:
        ttl_ms = int(ttl_raw) if ttl_raw else -1
        sent_ms = int(sent_raw) if sent_raw else 0
    except ValueError:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"{F_TTL_MS}/{F_SENT_MS} must be integers", **known) from None
    if not 0 <= ttl_ms <= MAX_TTL_MS:
        raise ContractError(ErrorCode.INVALID_REQUEST, f"{F_TTL_MS} must be between 0 and {MAX_TTL_MS}", **known)
    try:
        return Envelope(version=version, type=ctype, account=account, command_id=command_id, client_order_id=coid,
                        reply_to=reply_to, ttl_ms=ttl_ms, sent_ms=sent_ms, strategy=strategy)
    except ValidationError as exc:
        raise ContractError(ErrorCode.INVALID_REQUEST, _validation_message(exc), **known) from None


def decode_command(fields: dict, envelope: Envelope | None = None) -> tuple[Envelope, Command]:
    """Turn a stream entry into (envelope, command). Raises ContractError for anything unreadable or invalid."""
    env = envelope or decode_envelope(fields)
    known = dict(command_id=env.command_id, reply_to=env.reply_to, command_type=env.type,
                 client_order_id=env.client_order_id)
    cls = COMMAND_TYPES.get(env.type)
    if cls is None:
        raise ContractError(ErrorCode.UNKNOWN_COMMAND, f"unknown command type {env.type!r}", **known)
    if env.version == "2":
        raw = _field(fields, F_BODY)
        try:
            data = unpack_body(raw) if raw else {}
        except NestingTooDeep as exc:
            raise BodyTooDeep(ErrorCode.INVALID_REQUEST, f"body is {exc}", **known,
                              details={"max_nesting": MAX_BODY_NESTING}) from None
        except Exception:
            raise ContractError(ErrorCode.INVALID_REQUEST, "body is not valid msgpack", **known) from None
        if not isinstance(data, dict):
            raise ContractError(ErrorCode.INVALID_REQUEST, "body must be a msgpack map", **known)
    else:
        try:
            data = read_body(fields, flat=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(ErrorCode.INVALID_REQUEST, f"body: {exc}"[:300], **known) from None
    for name in cls.ENVELOPE_FIELDS:
        if name in data:
            raise ContractError(ErrorCode.INVALID_REQUEST, f"{name!r} belongs in the envelope, not the body", **known)
    if "client_order_id" in cls.ENVELOPE_FIELDS and env.client_order_id:
        data["client_order_id"] = env.client_order_id
    if "strategy" in cls.ENVELOPE_FIELDS and env.strategy:
        data["strategy"] = env.strategy
    try:
        return env, cls.model_validate(data)
    except ValidationError as exc:
        raise ContractError(ErrorCode.INVALID_REQUEST, _validation_message(exc), **known) from None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def encode_reply(*, account: str, command_id: str, command_type: str, client_order_id: str = "",
                 result: BaseModel | None = None, error: ErrorInfo | None = None,
                 version: str = PROTOCOL_VERSION) -> dict[str, Any]:
    """Build the stream entry of a reply: exactly one of ``result`` / ``error``; in the protocol ``version`` of the
    command it answers (a v2 client reads only v2 replies)."""
    if (result is None) == (error is None):
        raise ValueError("a reply carries exactly one of result and error")
    model = result if result is not None else error
    body = model.model_dump(mode="json")  # type: ignore[union-attr]
    entry = {
        F_VERSION: version if version in SUPPORTED_VERSIONS else PROTOCOL_VERSION,
        F_TYPE: "reply",
        F_ACCOUNT: account,
        F_ID: command_id,
        F_CMD: command_type,
        F_COID: client_order_id or "",
        F_OK: "1" if error is None else "0",
        F_ERROR: "" if error is None else error.code.value,
        F_TS_MS: str(now_ms()),
    }
    if entry[F_VERSION] == "2":
        entry[F_BODY] = pack(body)
    else:
        _put_body(entry, model, body)  # type: ignore[arg-type]
    return entry


class Reply(_Model):
    """A decoded reply: ``result`` on success (a RESULT_TYPES model), ``error`` on failure."""

    stream_id: str
    command_id: str
    command_type: str
    account: str
    client_order_id: str = ""
    ts_ms: int = 0
    result: Any = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_reply(stream_id: str | bytes, fields: dict) -> Reply:
    ctype = _text(_field(fields, F_CMD))
    ok = _text(_field(fields, F_OK)) == "1"
    body = read_body(fields)
    result: Any = None
    error: ErrorInfo | None = None
    if ok:
        cls = RESULT_TYPES.get(ctype)
        result = cls.model_validate(body) if cls else body
    else:
        error = ErrorInfo.model_validate(body)
    return Reply(stream_id=_text(stream_id), command_id=_text(_field(fields, F_ID)), command_type=ctype,
                 account=_text(_field(fields, F_ACCOUNT)), client_order_id=_text(_field(fields, F_COID)),
                 ts_ms=int(_text(_field(fields, F_TS_MS)) or 0), result=result, error=error)


def encode_event(event: Event, *, account: str, seq: int, client_order_id: str = "", order_id: int | None = None,
                 ts_ms: int | None = None) -> dict[str, Any]:
    entry = {
        F_VERSION: PROTOCOL_VERSION,
        F_TYPE: event.TYPE,
        F_ACCOUNT: account,
        F_SEQ: str(seq),
        F_COID: client_order_id or "",
        F_ORDER_ID: "" if order_id is None else str(order_id),
        F_TS_MS: str(now_ms() if ts_ms is None else ts_ms),
    }
    _put_body(entry, event, event.model_dump(mode="json"))
    return entry


class EventMessage(_Model):
    """One entry of an account's event stream, decoded. ``data`` is the typed event (None if the type is unknown
    to this version of the library: ``raw`` then holds the body)."""

    stream_id: str
    type: str
    account: str
    seq: int
    client_order_id: str = ""
    order_id: int | None = None
    ts_ms: int = 0
    data: Any = None
    raw: dict[str, Any] | None = None


def decode_event(stream_id: str | bytes, fields: dict) -> EventMessage:
    etype = _text(_field(fields, F_TYPE))
    body = read_body(fields)
    cls = EVENT_TYPES.get(etype)
    data = cls.model_validate(body) if cls else None
    order_id = _text(_field(fields, F_ORDER_ID))
    return EventMessage(stream_id=_text(stream_id), type=etype, account=_text(_field(fields, F_ACCOUNT)),
                        seq=int(_text(_field(fields, F_SEQ)) or 0), client_order_id=_text(_field(fields, F_COID)),
                        order_id=int(order_id) if order_id else None, ts_ms=int(_text(_field(fields, F_TS_MS)) or 0),
                        data=data, raw=None if cls else body)


# Bounds (entries) for the streams; trimming is approximate (~) and never passes a pending command entry.
REPLY_STREAM_MAXLEN = 1_000
REPLY_STREAM_TTL_S = 3_600  # a reply stream nobody writes to for an hour disappears
EVENT_STREAM_MAXLEN = 1_000_000
COMMAND_STREAM_MAXLEN = 100_000
DEAD_LETTER_MAXLEN = 100_000
AUDIT_STREAM_MAXLEN = 2_000_000  # long retention (approximate trim); the executor's rotating file keeps more
HEARTBEAT_TTL_S = 5



class Heartbeat(_Model):
    """The executor's heartbeat (``Keys.heartbeat``, JSON, expires after HEARTBEAT_TTL_S): written by the leading
    executor every heartbeat interval, read by ``xtqueue executor --check`` and by an executor starting without a
    lease (a fresh beat of another executor id = a live rival). ``connected``: its broker is connected."""

    executor_id: str = ""
    pid: int = 0
    broker: str = ""
    connected: bool = False
    last_seq: int = 0
    ts_ms: int = 0
    version: str = ""
    lease_token: int | None = None

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Heartbeat | None:
        """None for a missing or unreadable beat. ``broker_connected`` (PingResult's name) is read as
        ``connected``."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                return None
            if "connected" not in data and "broker_connected" in data:
                data["connected"] = data["broker_connected"]
            return cls.model_validate(data)
        except (ValueError, ValidationError):
            return None


def decode_heartbeat(raw: Any) -> dict[str, Any] | None:
    """The heartbeat as a plain dict (``Heartbeat.decode``, the one reader), or None when absent or unreadable: the
    CLI's and the library's view of it."""
    beat = Heartbeat.decode(raw)
    return None if beat is None else beat.model_dump()

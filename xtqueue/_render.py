"""Terminal output for the ``xtqueue`` commands: tables, key/value blocks, one-line events, one-line errors.

Rich renders tables when it is installed and stdout is a terminal; otherwise plain aligned text (what a pipe,
``grep`` or a log file wants). ``--json`` output never goes through here except :func:`print_json`.
Nothing in this module talks to Redis.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Iterable, Sequence

import click

# --- exit codes -------------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_ERROR = 1  # anything else: Redis unreachable, executor bug, unexpected reply
EXIT_REJECTED = 2  # nothing was placed/done: refused by validation, rules, risk, the broker, expiry
EXIT_UNKNOWN = 3  # the outcome is not known: ask with `xtqueue outcome COID`, do not resend blindly


def use_rich() -> bool:
    """Rich tables only on a real terminal; plain text for pipes and files."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return sys.stdout.isatty()


# --- language and time ------------------------------------------------------------------------------------------
# Times a person reads are Beijing time (the exchanges' clock), whatever the machine's zone; China keeps no summer
# time, so a fixed +08:00 is exact (and needs no tz database, which Windows lacks).
BEIJING = timezone(timedelta(hours=8), "CST")

# Chinese for the words a person reads: column headers, status and side names (--lang zh, or a zh_* locale).
ZH = {
    # columns
    "code": "代码", "name": "名称", "volume": "数量", "can_use": "可用", "frozen": "冻结", "on_road": "在途",
    "yesterday": "昨仓", "avg_price": "成本价", "last_price": "最新价", "market_value": "市值",
    "order_id": "委托号", "client_order_id": "客户委托号", "side": "方向", "price": "价格", "filled": "成交量",
    "fill_price": "成交均价", "status": "状态", "time": "时间", "strategy": "策略", "message": "说明",
    "trade_id": "成交号", "amount": "成交额", "commission": "佣金",
    # order statuses (contract.OrderStatus values; the xtconstant names in the comments there)
    "unreported": "未报", "wait_reporting": "待报", "reported": "已报", "reported_cancel": "已报待撤",
    "partsucc_cancel": "部成待撤", "part_cancel": "部撤", "canceled": "已撤", "part_succ": "部成",
    "succeeded": "已成", "junk": "废单", "unknown": "未知",
    # sides, outcome states, words of the order line
    "buy": "买入", "sell": "卖出", "placed": "已下单", "pending": "处理中", "rejected": "已拒绝", "expired": "已过期",
    "refused": "未下单", "not_found": "未找到",
}
_lang = "en"


def lang_from_env() -> str:
    """"zh" when the locale asks for Chinese (LC_ALL, LC_MESSAGES or LANG starting with zh), else "en"."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_lang(lang: str) -> None:
    global _lang
    _lang = "zh" if lang == "zh" else "en"


def t(word: str) -> str:
    """``word`` in the chosen language (unchanged in English or when there is no translation)."""
    return ZH.get(word, word) if _lang == "zh" else word


def status_text(value: Any) -> str:
    return t(str(getattr(value, "value", value)))


def side_text(value: Any) -> str:
    return t(str(getattr(value, "value", value)))


# --- values -----------------------------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """One cell: enums by value (in Chinese with --lang zh), floats without noise, None as empty."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        value = t(str(value.value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def fmt_epoch_s(value: int | float | None) -> str:
    """Seconds since the epoch → Beijing time of day."""
    if not value:
        return ""
    return datetime.fromtimestamp(value, BEIJING).strftime("%H:%M:%S")


def fmt_ts_ms(value: int | None) -> str:
    """Milliseconds since the epoch → Beijing time of day with milliseconds."""
    if not value:
        return "--:--:--.---"
    return datetime.fromtimestamp(value / 1000, BEIJING).strftime("%H:%M:%S") + f".{int(value) % 1000:03d}"


def fmt_beijing(value_s: float) -> str:
    """A full Beijing date and time, labelled (for one-off moments: a heartbeat, a halt)."""
    return datetime.fromtimestamp(value_s, BEIJING).strftime("%Y-%m-%d %H:%M:%S") + " 北京时间 (UTC+8)"


def dump(obj: Any) -> Any:
    """A pydantic model (or list of them) as JSON-ready data."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (list, tuple)):
        return [dump(x) for x in obj]
    if isinstance(obj, dict):
        return {k: dump(v) for k, v in obj.items()}
    return obj


def print_json(obj: Any) -> None:
    click.echo(json.dumps(dump(obj), ensure_ascii=False, indent=2))


def json_line(obj: Any) -> str:
    return json.dumps(dump(obj), ensure_ascii=False, separators=(",", ":"))


# --- tables -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    get: Any  # callable(row) -> value
    right: bool = False  # numbers are right-aligned


def col(header: str, attr: str, right: bool = False, f: Any = None) -> Column:
    def get(row: Any) -> Any:
        value = getattr(row, attr, None)
        return f(value) if f else value

    return Column(header, get, right)


def rows_of(rows: Iterable[Any], columns: Sequence[Column]) -> list[list[str]]:
    return [[fmt(c.get(r)) for c in columns] for r in rows]


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Plain aligned text (display width aware: a CJK character takes two columns)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - display_width(cell))
            out.append(pad + cell if right[i] else cell + pad)
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def display_width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def print_table(title: str, rows: Sequence[Any], columns: Sequence[Column], *, empty: str = "(none)") -> None:
    cells = rows_of(rows, columns)
    if use_rich():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for c in columns:
            table.add_column(t(c.header), justify="right" if c.right else "left", no_wrap=True)
        for r in cells:
            table.add_row(*r)
        Console().print(table if cells else f"{title}: {empty}")
        return
    if not cells:
        click.echo(f"{title}: {empty}")
        return
    click.echo(f"{title} ({len(cells)})")
    click.echo(plain_table([t(c.header) for c in columns], cells, [c.right for c in columns]))


def print_kv(title: str, items: Sequence[tuple[str, Any]]) -> None:
    pairs = [(k, fmt(v)) for k, v in items]
    if use_rich():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for k, v in pairs:
            table.add_row(k, v)
        Console().print(table)
        return
    click.echo(title)
    width = max(display_width(k) for k, _ in pairs) if pairs else 0
    for k, v in pairs:
        click.echo(f"  {k}{' ' * (width - display_width(k))}  {v}")


# --- columns of each report -------------------------------------------------------------------------------------
def _side(v: Any) -> Any:
    return v if v is not None else "-"


POSITION_COLUMNS = [
    col("code", "code"), col("name", "instrument_name"), col("volume", "volume", True),
    col("can_use", "can_use_volume", True), col("frozen", "frozen_volume", True),
    col("on_road", "on_road_volume", True), col("yesterday", "yesterday_volume", True),
    col("avg_price", "avg_price", True), col("last_price", "last_price", True),
    col("market_value", "market_value", True),
]

ORDER_COLUMNS = [
    col("order_id", "order_id", True), col("client_order_id", "client_order_id"), col("code", "code"),
    col("side", "side", f=_side), col("volume", "volume", True), col("price", "price", True),
    col("filled", "traded_volume", True), col("fill_price", "traded_price", True), col("status", "status"),
    col("time", "order_time", f=fmt_epoch_s), col("strategy", "strategy"), col("message", "status_msg"),
]

TRADE_COLUMNS = [
    col("trade_id", "trade_id"), col("order_id", "order_id", True), col("client_order_id", "client_order_id"),
    col("code", "code"), col("side", "side", f=_side), col("volume", "volume", True),
    col("price", "price", True), col("amount", "amount", True), col("commission", "commission", True),
    col("time", "traded_time", f=fmt_epoch_s), col("strategy", "strategy"),
]


COMPACT_COLUMNS = [
    col("compact_id", "compact_id"), col("code", "code"), col("type", "compact_type", True),
    col("open_date", "open_date", True), col("volume", "business_vol", True),
    col("unreturned", "real_compact_vol", True), col("amount", "business_balance", True),
    col("unpaid", "real_compact_balance", True), col("unpaid_fee", "real_compact_fare", True),
    col("repaid", "repaid_balance", True), col("repaid_fee", "repaid_fare", True), col("due", "ret_end_date", True),
]
SUBJECT_COLUMNS = [col("code", "code"), col("fin_ratio", "fin_ratio", True), col("slo_ratio", "slo_ratio", True),
                   col("fin_status", "fin_status", True), col("slo_status", "slo_status", True)]
SLO_CODE_COLUMNS = [col("code", "code"), col("lendable", "enable_amount", True),
                    col("source", "cashgroup_prop", True)]
ASSURE_COLUMNS = [col("code", "code"), col("haircut", "assure_ratio", True), col("status", "assure_status", True)]


def model_items(model: Any, skip: Iterable[str] = ()) -> list[tuple[str, Any]]:
    skipped = set(skip)
    return [(k, getattr(model, k)) for k in type(model).model_fields if k not in skipped]


# --- xtqueue status ---------------------------------------------------------------------------------------------
def status_text_block(rep: dict[str, Any]) -> str:
    """One account of `xtqueue status`, a few lines."""
    ex = rep["executor"]
    if ex["alive"]:
        broker = f"broker {ex.get('broker')} " + ("connected" if ex.get("connected") is True else "NOT connected")
        head = (f"account {rep['account']}: executor {ex.get('executor_id')} (pid {ex.get('pid')}) up, leader; "
                f"{broker}; last beat {ex.get('last_beat_beijing')} ({ex.get('beat_age_s')} s ago)")
    else:
        head = f"account {rep['account']}: NO executor (no heartbeat): commands wait (or expire) until one runs"
    lines = [head]
    if rep.get("halted"):
        lines.append(f"  kill switch: HALTED ({rep.get('halt_reason') or 'no reason given'}); lift: xtqueue resume "
                     f"{rep['account']}")
    elif rep.get("halted") is None:
        lines.append(f"  kill switch: {rep.get('halt_reason')}")
    else:
        lines.append("  kill switch: off")
    for st in rep.get("command_streams", []):
        waiting = "?" if st["waiting"] is None else st["waiting"]
        unanswered = "?" if st["unanswered"] is None else st["unanswered"]
        lines.append(f"  {st['stream']}: {st['length']} kept, {waiting} waiting, {unanswered} being executed")
    last = rep.get("last_event")
    lines.append(f"  last event: #{last['seq']} at {last['beijing']}" if last else "  last event: none")
    return "\n".join(lines)


# --- events -----------------------------------------------------------------------------------------------------
def event_details(msg: Any) -> str:
    """The key fields of one event, as short ``name=value`` text."""
    d = msg.data
    t = msg.type
    if d is None:
        raw = msg.raw or {}
        return " ".join(f"{k}={fmt(v)}" for k, v in list(raw.items())[:8])
    if t == "order_updated":
        o = d.order
        text = (f"{o.code} {fmt(o.side) or '-'} {o.volume}@{fmt(o.price)} status={fmt(o.status)} "
                f"filled={o.traded_volume}")
        if o.traded_volume:
            text += f"@{fmt(o.traded_price)}"
        if o.status_msg:
            text += f" msg={o.status_msg!r}"
        return text
    if t == "order_filled":
        tr = d.trade
        return (f"{tr.code} {fmt(tr.side) or '-'} filled {tr.volume}@{fmt(tr.price)} amount={fmt(tr.amount)} "
                f"trade_id={tr.trade_id}")
    if t == "order_rejected":
        return f"error_id={d.error_id} error={d.error_msg!r}"
    if t == "cancel_rejected":
        return f"error_id={d.error_id} error={d.error_msg!r}"
    if t == "order_responded":
        verdict = "refused" if d.order_id < 0 else "accepted"
        return f"{verdict} seq={d.seq}" + (f" error={d.error_msg!r}" if d.error_msg else "")
    if t == "cancel_responded":
        verdict = "sent" if d.cancel_result == 0 else f"failed({d.cancel_result})"
        return f"cancel {verdict}" + (f" error={d.error_msg!r}" if d.error_msg else "")
    if t == "asset_updated":
        a = d.asset
        return f"cash={fmt(a.cash)} frozen={fmt(a.frozen_cash)} market_value={fmt(a.market_value)} total={fmt(a.total_asset)}"
    if t == "position_updated":
        p = d.position
        return f"{p.code} volume={p.volume} can_use={p.can_use_volume} avg_price={fmt(p.avg_price)}"
    if t == "account_status":
        return f"status={d.status} ({d.status_name})"
    if t == "broker_connected":
        return f"executor={d.executor_id} session={d.session}" + (" reconnect" if d.reconnect else "")
    if t == "broker_disconnected":
        return f"executor={d.executor_id} reason={d.reason!r}"
    if t == "executor_started":
        return f"executor={d.executor_id} broker={d.broker} version={d.version}"
    if t == "executor_stopped":
        return f"executor={d.executor_id} reason={d.reason!r}"
    return " ".join(f"{k}={fmt(v)}" for k, v in model_items(d))


def event_line(msg: Any) -> str:
    """time, seq, type, client order id, order id, key fields."""
    coid = msg.client_order_id or "-"
    oid = "-" if msg.order_id is None else str(msg.order_id)
    return f"{fmt_ts_ms(msg.ts_ms)}  #{msg.seq:<6} {msg.type:<18} coid={coid} order={oid}  {event_details(msg)}"


def gap_line(gap: Any) -> str:
    """A Gap marker from producer_lib's events(): the asked-for position was trimmed away."""
    fields = {k: v for k, v in getattr(gap, "__dict__", {}).items() if not k.startswith("_")}
    if not fields and hasattr(type(gap), "model_fields"):
        fields = {k: getattr(gap, k) for k in type(gap).model_fields}
    detail = " ".join(f"{k}={fmt(v)}" for k, v in fields.items())
    return f"GAP: events were trimmed before they could be read ({detail}); re-sync with `xtqueue orders/positions`"


# --- errors -----------------------------------------------------------------------------------------------------
def _exceptions_module() -> Any:
    """Where the typed errors live: ``producer_lib`` (its private module while the package is being assembled)."""
    try:
        import producer_lib
    except ImportError:  # pragma: no cover - the library is a hard dependency
        return None
    if hasattr(producer_lib, "XtqueueError"):
        return producer_lib
    try:
        from producer_lib import _exceptions
    except ImportError:  # pragma: no cover
        return None
    return _exceptions


def _code_text(exc: Any) -> str:
    """The error code (``broker_rejected``); for errors raised locally without one, the class in snake_case."""
    code = getattr(exc, "code", None)
    if code is not None:
        return str(getattr(code, "value", code))
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def classify_error(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for an expected error, None for anything else (a bug: let it show a traceback)."""
    pl = _exceptions_module()
    base = getattr(pl, "XtqueueError", None)
    if base is not None and isinstance(exc, base):
        outcome_unknown = tuple(c for c in (getattr(pl, "OutcomeUnknown", None), getattr(pl, "CommandTimeout", None))
                                if c is not None)
        rejected = getattr(pl, "Rejected", None)
        if outcome_unknown and isinstance(exc, outcome_unknown):
            code = EXIT_UNKNOWN
        elif rejected is not None and isinstance(exc, rejected):
            code = EXIT_REJECTED
        else:
            code = EXIT_ERROR
        return code, error_line(exc, outcome_unknown=code == EXIT_UNKNOWN)
    try:
        import redis.exceptions as rx

        from producer_lib._connections import REDIS_DOWN_ERRORS
    except ImportError:  # pragma: no cover
        rx = None
    if rx is not None and isinstance(exc, REDIS_DOWN_ERRORS):
        return EXIT_ERROR, f"error [redis]: cannot reach Redis: {exc}"
    if rx is not None and isinstance(exc, rx.AuthenticationError):
        return EXIT_ERROR, f"error [redis]: authentication failed: {exc}"
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover
        ValidationError = ()  # type: ignore[assignment]
    if ValidationError and isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ())) or "value"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return EXIT_REJECTED, "error [invalid_request]: " + "; ".join(parts) + " (nothing was sent)"
    return None


def error_line(exc: Any, *, outcome_unknown: bool = False) -> str:
    """``error [broker_rejected]: <message>; broker said: <text> (order 123, coid abc, command 9f..)``"""
    code = _code_text(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = f"error [{code}]: {message}"
    broker_message = getattr(exc, "broker_message", None)
    if broker_message and broker_message not in message:
        text += f"; broker said: {broker_message}"
    where = []
    order_id = getattr(exc, "order_id", None)
    if order_id:
        where.append(f"order {order_id}")
    coid = getattr(exc, "client_order_id", None)
    if coid:
        where.append(f"coid {coid}")
    command_id = getattr(exc, "command_id", None)
    if command_id:
        where.append(f"command {command_id}")
    if where:
        text += f" ({', '.join(where)})"
    if outcome_unknown and coid:
        text += (f"\n  the order may or may not have been placed: check with `xtqueue outcome {coid}` before "
                 "sending it again (with the same --client-order-id it can never be placed twice)")
    return text

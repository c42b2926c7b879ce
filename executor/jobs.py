"""Jobs and outcomes: one command entry on its way through the executor, and what it produced.

A ``Job`` is one stream entry being handled; an ``Outcome`` is what it produced (exactly one of result / error, the
journal record to store before replying, and a dead-letter reason). A ``Placement`` is one order on its way to the
broker, from its committed intent to its first known status. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from executor.journal import Record, StoredReply
from executor.transport import Entry
from producer_lib import contract as c

E = c.ErrorCode
S = c.OutcomeState


class Fifo(dict):
    """A dict that forgets its oldest keys beyond ``limit`` (bounded memory for id maps and buffers)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.limit:
            del self[next(iter(self))]


@dataclass(slots=True)
class Outcome:
    """What one command produced: exactly one of result / error, plus what must be stored before replying."""

    result: BaseModel | None = None
    error: c.ErrorInfo | None = None
    record: Record | None = None  # journal row saved (in the batch transaction) before the reply is written
    dead_reason: str | None = None  # also dead-letter the entry under this reason code

    @property
    def verdict(self) -> str:
        return "ok" if self.error is None else self.error.code.value


def error(code: c.ErrorCode, message: str, *, record: Record | None = None, **kw: Any) -> Outcome:
    """An error outcome; a final journal ``record`` stores this error as the answer to any repeat."""
    err = c.ErrorInfo(code=code, message=message, **kw)
    if record is not None and record.final:
        record = record.evolve(reply=StoredReply.of(error=err))
    return Outcome(error=err, record=record)


def dead(code: c.ErrorCode, message: str, *, reason: str | None = None, **kw: Any) -> Outcome:
    """An error outcome whose entry also goes to the dead-letter stream (under ``reason``, default the code)."""
    out = error(code, message, **kw)
    out.dead_reason = reason or code.value
    return out


def internal(*, sent: bool) -> Outcome:
    """An executor bug while handling one command. For an order that may have reached the broker the honest answer
    is outcome_unknown, not internal ("not executed")."""
    if sent:
        return dead(E.OUTCOME_UNKNOWN, "executor error while placing: the order may or may not have reached the "
                                       "broker; ask with query_outcome", reason=E.INTERNAL.value)
    return dead(E.INTERNAL, "executor error; the command was not executed")


async def done(outcome: Outcome) -> Outcome:
    return outcome


def replay(rec: Record) -> Outcome:
    """A repeated client order id whose first outcome is final: that outcome again (acks marked duplicate)."""
    if rec.reply is None:  # settled by reconciliation without a stored reply: rebuild it from the record
        if rec.state is S.PLACED and rec.order_id:
            return Outcome(result=c.OrderAck(order_id=rec.order_id, client_order_id=rec.coid,
                                             status=c.OrderStatus.UNKNOWN, duplicate=True))
        return error(E.BROKER_REJECTED if rec.state is S.REJECTED else E.EXPIRED if rec.state is S.EXPIRED
                     else E.BROKER_UNAVAILABLE, f"this client order id was already answered ({rec.state.value})",
                     order_id=rec.order_id)
    ack = rec.reply.result()
    if ack is not None:
        return Outcome(result=ack.model_copy(update={"duplicate": True}))
    return Outcome(error=rec.reply.error())


@dataclass(slots=True, eq=False)
class Placement:
    """One order on its way to the broker: from intent to first known status."""

    cmd: c.PlaceOrder
    coid: str
    fingerprint: str
    record: Record  # the PENDING intent
    deadline_ms: int
    future: asyncio.Future  # its Outcome, once the broker's answer (or a refusal) is known


@dataclass(slots=True, eq=False)
class Job:
    entry: Entry
    started_ns: int
    env: c.Envelope | None = None
    cmd: c.Command | None = None
    placement: Placement | None = None  # set on the job that places the order (not on its duplicates)

    @property
    def deadline_ms(self) -> int:
        assert self.env is not None
        return self.entry.base_ms + self.env.ttl_ms  # the id's time, never ahead of the server clock at read


@dataclass(slots=True)
class Stats:
    """Counters shared by the loop (start time), the settler (commands done) and ping (reads both)."""

    started_mono: float = 0.0
    commands_done: int = 0

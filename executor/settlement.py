"""Settlement: every finished command is journaled, answered, dead-lettered if it must be, and acked.

``finish`` queues one command's settlement; the ``run`` task writes what is queued in batches: one journal
transaction, then one MULTI/EXEC to Redis (reply XADD + EXPIRE, dead letter, XACK) under the lease check of the
finish script (executor/transport.py). A settlement is shielded: a shutdown cannot cut it half-way. If the lease is
lost nothing is written: the entries stay pending for the successor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from executor.events import REDIS_DOWN_ERRORS
from executor.jobs import Job, Outcome, Stats
from executor.journal import Record
from executor.leadership import Leadership
from executor.orderbook import OrderBook
from executor.safety.audit import AuditTrail
from executor.transport import CommandTransport, Entry, Fenced, Finish
from producer_lib import contract as c

log = structlog.get_logger("executor")


class Settler:
    def __init__(self, transport: CommandTransport, keys: c.Keys, book: OrderBook, audit: AuditTrail,
                 leadership: Leadership, stats: Stats, executor_id: str) -> None:
        self.transport = transport
        self.keys = keys
        self.book = book
        self.audit = audit
        self.leadership = leadership
        self.stats = stats
        self.executor_id = executor_id
        self._queue: list[tuple[Finish, Record | None, asyncio.Future]] = []
        self._wake = asyncio.Event()

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    async def finish(self, job: Job, outcome: Outcome) -> None:
        """Record, reply, dead-letter, ack, log. The write runs under asyncio.shield: a shutdown cannot cut it."""
        env = job.env
        entry = job.entry
        reply_to = env.reply_to if env is not None and self.keys.is_reply_stream(env.reply_to, entry.owner) else None
        command_type = env.type if env is not None else ""
        coid = env.client_order_id if env is not None else ""
        self.audit.reply(env.command_id if env is not None else "", command_type, coid, entry.stream_id,
                         outcome.result, outcome.error)
        item = Finish(stream_id=entry.stream_id, stream=entry.stream)
        if reply_to is not None:
            assert env is not None
            item.reply_to = reply_to
            item.reply = c.encode_reply(account=self.keys.account, command_id=env.command_id,
                                        command_type=command_type, client_order_id=coid, result=outcome.result,
                                        error=outcome.error)
        if outcome.dead_reason is not None:
            item.dead = self._dead_letter(entry, outcome, replied=reply_to is not None)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, outcome.record, future))
        self._wake.set()
        try:
            await asyncio.shield(future)
        finally:
            book = self.book
            p = job.placement
            if p is not None and book.placements.get(p.coid) is p:
                del book.placements[p.coid]
            if outcome.record is not None and book.unsaved.get(outcome.record.coid) is outcome.record:
                del book.unsaved[outcome.record.coid]
            self.stats.commands_done += 1
            log.info("command", id=env.command_id if env else "", coid=coid, type=command_type,
                     us=(time.perf_counter_ns() - job.started_ns) // 1000, verdict=outcome.verdict,
                     stream_id=entry.stream_id)

    def _dead_letter(self, entry: Entry, outcome: Outcome, *, replied: bool) -> dict[Any, Any]:
        dead: dict[Any, Any] = {
            "src_id": entry.stream_id,
            "src_stream": entry.stream,
            "reason": outcome.dead_reason,
            "message": outcome.error.message if outcome.error else "",
            "replied": "1" if replied else "0",
            "executor": self.executor_id,
            "deliveries": str(entry.deliveries),
            "ts_ms": str(c.now_ms()),
        }
        fields, cut = c.bounded_fields(entry.fields)  # a hostile entry's copy is bounded (docs/protocol.md §2.4)
        if cut:
            dead["orig_fields"], dead["orig_bytes"] = (str(n) for n in c.entry_size(entry.fields))
        for name, value in fields.items():
            key = b"orig." + name if isinstance(name, bytes) else "orig." + str(name)
            dead[key] = value
        return dead

    async def run(self) -> None:
        """Writes finished commands in batches: one journal transaction, then one MULTI/EXEC to Redis."""
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                records = [r for _, r, _ in batch if r is not None]
                if records:
                    try:
                        self.book.journal.save(records, c.now_ms())
                    except Exception:  # still reply: a repeat is then resolved by the broker's order list
                        log.exception("journal: recording outcomes failed")
                items = [i for i, _, _ in batch]
                while True:
                    try:
                        if not await self.leadership.confirmed():  # after a pause or an outage; lost: Fenced below
                            raise Fenced("another executor took over the lease")
                        errors = await self.transport.finish(items, *self.leadership.proof())
                        for err in errors:
                            log.error("reply write failed", error=repr(err))
                        backoff = 0.05
                        break
                    except Fenced as exc:
                        # Nothing was written: the successor owns these entries (they stay pending for it).
                        self.leadership.step_down(f"lease lost; {len(items)} answers withheld ({exc})")
                        break
                    except REDIS_DOWN_ERRORS as exc:
                        # Not acked: if we die now the entries are re-delivered and answered from the journal.
                        log.warning("redis unreachable while replying; retrying", error=repr(exc), retry_s=backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
                    except Exception:
                        log.exception("reply write failed; entries left pending for recovery")
                        break
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

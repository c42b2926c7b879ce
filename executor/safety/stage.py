"""The safety stage of the engine: risk limits, kill switch and audit trail, driven at fixed points of an order's
trip (docs/architecture.md): once per batch before admission (``prepare``), per order at admission (the halt and
risk checks in executor/admission.py, then ``decided``), when the batch's intents are committed (``commit``), at
each order's first outcome (``placement_done``) and for every broker event (``observe``). A failure here is logged,
never raised into the loop: the limits fail closed on their own (executor/safety/risk.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis
import structlog

from executor.broker.base import BrokerError
from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.events import EventPublisher
from executor.jobs import Job, Outcome, Placement
from executor.safety.audit import AuditTrail
from executor.safety.halt import HaltSwitch
from executor.safety.risk import RiskGate
from producer_lib import contract as c

log = structlog.get_logger("executor")

E = c.ErrorCode


class Safety:
    def __init__(self, settings: ExecutorSettings, redis: aioredis.Redis, keys: c.Keys, executor_id: str,
                 state_dir: Path, publisher: EventPublisher) -> None:
        account = settings.account
        self.publisher = publisher
        self.risk = RiskGate(settings.risk, state_dir / f"risk-{account}.sqlite3", account)
        self.audit = AuditTrail(redis, keys, state_dir / f"audit-{account}.log", executor_id,
                                stream_maxlen=settings.audit_stream_maxlen,
                                file_max_bytes=settings.audit_file_max_mb << 20,
                                file_backups=settings.audit_file_backups, enabled=settings.audit_enabled)
        self.halt = HaltSwitch(redis, keys, executor_id, state_dir / f"halt-{account}.json", self._halt_changed)

    def _halt_changed(self, event: c.Event) -> None:
        self.publisher.publish(event)
        self.audit.record("halt", event.model_dump(mode="json"))

    async def prepare(self, orders: list[Job], halt_read: bool, link: BrokerLink) -> None:
        """Once per batch holding orders: read the kill switch (unless read with the batch); refresh positions if
        a sell needs them."""
        if not halt_read:
            await self.halt.refresh()
        cmds = [j.cmd for j in orders]
        if link.up and self.risk.needs_positions(cmds):  # type: ignore[arg-type]
            t0 = self.risk.clock()
            try:
                self.risk.set_positions(await link.call(link.broker.query_positions()), t0)
            except (BrokerError, asyncio.TimeoutError) as exc:
                log.warning("positions unavailable for the sellable-volume check", error=repr(exc))
        if link.up and self.risk.needs_credit(cmds):  # type: ignore[arg-type]
            t0 = self.risk.clock()
            try:
                result = await link.call(link.broker.query_credit(c.QueryCreditDetail()))
                self.risk.set_credit(result.details, t0)
            except (BrokerError, asyncio.TimeoutError) as exc:
                log.warning("credit detail unavailable for the maintenance-ratio check", error=repr(exc))

    def decided(self, job: Job, admitted: Outcome | Placement | asyncio.Future) -> None:
        env, coid = job.env, job.cmd.client_order_id  # type: ignore[union-attr]
        cid = env.command_id if env is not None else ""
        if isinstance(admitted, Placement):
            self.audit.decision(cid, coid, "accepted")
        elif isinstance(admitted, Outcome):
            self.audit.decision(cid, coid, "refused" if admitted.error is not None else "answered", admitted.error)
        else:
            self.audit.decision(cid, coid, "duplicate_in_flight")

    def commit(self) -> None:
        try:
            self.risk.commit()
        except Exception:
            log.exception("risk: saving the day's counters failed")

    def placement_done(self, p: Placement, outcome: Outcome) -> None:
        try:
            if isinstance(outcome.result, c.OrderAck):
                self.risk.placement_done(p.coid, order_id=outcome.result.order_id, status=outcome.result.status,
                                         placed=True)
            else:
                unknown = outcome.error is not None and outcome.error.code is E.OUTCOME_UNKNOWN
                self.risk.placement_done(p.coid, order_id=None, status=None, placed=None if unknown else False)
        except Exception:
            log.exception("risk: tracking an order outcome failed", coid=p.coid)

    def observe(self, event: c.Event, coid: str = "", *, risk: bool = True) -> None:
        self.audit.broker(event, coid)
        if not risk:
            return
        try:
            self.risk.on_event(event)
        except Exception:
            log.exception("risk: tracking a broker event failed", event=event.TYPE)

"""Leadership: one active executor per account (executor/lease.py holds the lease itself).

``Leadership`` decides when this executor may act: acquire (a hot standby waits here), renew, confirm after a
pause or an outage, and step down at once when Redis shows another executor's lease. Stepping down sets the shared
stop event; the loop sees it and stops without writing anything more (the process exits with EXIT_LEASE_LOST).
Without a lease (``lease_ms`` 0) every check passes.
"""

from __future__ import annotations

import asyncio

import structlog

from executor.config import ExecutorSettings
from executor.events import REDIS_DOWN_ERRORS
from executor.lease import Lease
from executor.transport import Fenced

log = structlog.get_logger("executor")


class Leadership:
    def __init__(self, lease: Lease | None, settings: ExecutorSettings, stopping: asyncio.Event) -> None:
        self.lease = lease
        self.settings = settings
        self.stopping = stopping
        self.fenced = False  # set when this executor lost its lease: it stops without writing anything more
        self._unconfirmed_logged = False

    async def _sleep_or_stop(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def become_leader(self) -> bool:
        """Acquire the account's lease, waiting as a hot standby while another executor holds it. A predecessor
        has no read pending any more by then (the loop bounds each read by the lease), so recovery at start
        takes over everything it was handed. False if stopped while standing by."""
        assert self.lease is not None
        waited = False
        while not self.stopping.is_set():
            try:
                if await self.lease.try_acquire():
                    break
                if not waited:
                    log.warning("standing by: another executor holds the lease", holder=await self.lease.holder())
                    waited = True
            except REDIS_DOWN_ERRORS as exc:
                log.warning("redis unreachable while standing by", error=repr(exc))
            await self._sleep_or_stop(self.settings.lease_renew_ms / 1000.0)
        if self.stopping.is_set():
            return False
        log.warning("leader of the account", token=self.lease.token, took_over=waited)
        return True

    async def keep(self) -> None:
        """Renew every lease_renew_ms. Redis unreachable past the lease's local deadline: undecided, not lost (a
        lone executor rides through an outage); only a successor's lease, seen in Redis, makes it step down."""
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.settings.lease_renew_ms / 1000.0)
            try:
                if not await self.confirmed(renew=True):
                    return
            except REDIS_DOWN_ERRORS as exc:
                if self.lease.undecided and not self._unconfirmed_logged:
                    self._unconfirmed_logged = True
                    log.warning("lease unconfirmed while Redis is unreachable: placing, answering and publishing "
                                "nothing until Redis says whether it is still ours", error=repr(exc))
            except Exception:  # e.g. NOPERM: keep trying (the lease lapses to undecided, never to a second leader)
                log.exception("lease renewal failed")

    async def confirmed(self, renew: bool = False) -> bool:
        """True while this executor may act as the leader: its lease is valid, or was just confirmed again by Redis
        (``renew``: always ask). False once another executor holds it: then it steps down. Redis errors propagate:
        the lease stays undecided and nothing is done meanwhile."""
        if self.lease is None or (self.lease.valid() and not renew):
            return True
        undecided = self.lease.undecided
        if await self.lease.renew():
            if undecided:
                self._unconfirmed_logged = False
                log.warning("lease confirmed again: no other executor took over", token=self.lease.token)
            return True
        self.step_down("lease lost: another executor took over")
        return False

    def valid(self) -> bool:
        """Valid by this executor's own clock (always, without a lease)."""
        return self.lease is None or self.lease.valid()

    def may_publish(self) -> bool | None:
        """The event publisher's guard: publish while the lease is valid, hold (keep spooling) while it is
        undecided, drop once it is lost (the successor publishes the broker's pushes itself)."""
        assert self.lease is not None
        return True if self.lease.valid() else None if self.lease.undecided else False

    def proof(self) -> tuple[str | None, int]:
        """What the finish script checks: our lease value, only while the lease is valid by our own clock."""
        if self.lease is None:
            return None, 0
        if not self.lease.valid():
            raise Fenced("the lease expired by this executor's own clock (paused, or Redis unreachable)")
        return self.lease.value, self.settings.lease_ms

    def fence_if_lost(self, why: str) -> None:
        """The broker refused to send for want of a valid lease: step down if Redis already showed a successor."""
        if self.lease is not None and self.lease.lost:
            self.step_down(why)

    def step_down(self, reason: str) -> None:
        """Stop at once without trading, answering or acknowledging anything more: a successor owns the account.
        Unanswered entries stay pending for it."""
        if self.fenced:
            return
        self.fenced = True
        log.error("stepping down", reason=reason)
        self.stopping.set()

"""Housekeeping: the heartbeat, the server clock, command stream trimming and journal retention.

All of it is hygiene: a failure is logged (or left to the poll loop, for Redis trouble) and retried next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import structlog

from executor.brokerlink import BrokerLink
from executor.config import ExecutorSettings
from executor.events import REDIS_DOWN_ERRORS, EventPublisher
from executor.journal import Journal
from executor.lease import Lease
from executor.transport import CommandTransport
from producer_lib import contract as c

log = structlog.get_logger("executor")


class Housekeeping:
    def __init__(self, settings: ExecutorSettings, transport: CommandTransport, journal: Journal, link: BrokerLink,
                 publisher: EventPublisher, lease: Lease | None, stopping: asyncio.Event, *, executor_id: str,
                 version: str) -> None:
        self.settings = settings
        self.transport = transport
        self.journal = journal
        self.link = link
        self.publisher = publisher
        self.lease = lease
        self.stopping = stopping
        self.executor_id = executor_id
        self.version = version

    def purge_journal(self) -> None:
        self.journal.purge(c.now_ms() - self.settings.journal_retention_days * 86_400_000)

    async def beat(self) -> None:
        """Write the heartbeat key (only while leading: a standby must not look like the live executor)."""
        if self.lease is None or self.lease.valid():
            await self.transport.heartbeat(c.Heartbeat(
                executor_id=self.executor_id, pid=os.getpid(), broker=self.link.broker.name,
                connected=self.link.up, last_seq=self.publisher.last_seq,
                ts_ms=self.transport.clock.now_ms(), version=self.version,
                lease_token=self.lease.token if self.lease is not None else None))

    async def run(self) -> None:
        settings = self.settings
        interval_s = settings.heartbeat_interval_ms / 1000.0
        next_clock = time.monotonic() + settings.clock_sync_interval_ms / 1000.0
        next_purge = time.monotonic() + 3600.0
        next_trim = time.monotonic() + 60.0
        while not self.stopping.is_set():  # also checked: a swallowed cancellation must not keep it alive
            try:
                await self.beat()
                if time.monotonic() >= next_clock:
                    await self.transport.sync_clock()
                    next_clock = time.monotonic() + settings.clock_sync_interval_ms / 1000.0
            except REDIS_DOWN_ERRORS:
                pass  # the poll loop reports Redis trouble; the heartbeat simply expires meanwhile
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")
            if time.monotonic() >= next_trim:
                next_trim = time.monotonic() + 60.0
                try:
                    await self.transport.trim_commands(settings.command_retention_ms)
                except Exception as exc:  # trimming is hygiene: never worth more than a log line
                    log.warning("trimming the command stream failed", error=repr(exc))
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + 3600.0
                with contextlib.suppress(Exception):
                    self.purge_journal()
            await asyncio.sleep(interval_s)

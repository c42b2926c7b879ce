"""The engine's side of the broker connection: up or down, connect, bounded calls, the order list.

``BrokerLink.up`` is the one flag every stage reads ("is MiniQMT connected now?"). It is set by ``connect()`` and
cleared by ``mark_down()`` (a BrokerDisconnected event, or a failed probe); who acts on the transition is decided
by the caller (executor/supervision.py, executor/tracking.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import structlog

from executor.broker.base import Broker, BrokerError
from executor.config import ExecutorSettings
from executor.events import EventPublisher
from producer_lib import contract as c

log = structlog.get_logger("executor")

_TIMEOUT = getattr(asyncio, "timeout", None)  # 3.11+; raises TimeoutError, which is asyncio.TimeoutError there


class BrokerLink:
    def __init__(self, broker: Broker, settings: ExecutorSettings, publisher: EventPublisher,
                 executor_id: str) -> None:
        self.broker = broker
        self.settings = settings
        self.publisher = publisher
        self.executor_id = executor_id
        self.up = False
        self.changed = asyncio.Event()  # set on every transition (wakes the supervisor)
        self.sessions = 0

    async def connect(self) -> bool:
        try:
            await self.broker.connect()
        except Exception as exc:
            log.warning("broker connect failed", error=repr(exc))
            return False
        reconnect = self.sessions > 0
        self.sessions += 1
        self.up = True
        self.changed.set()
        self.publisher.publish(c.BrokerConnected(executor_id=self.executor_id,
                                                 session=int(getattr(self.broker, "session", 0) or 0),
                                                 reconnect=reconnect))
        log.info("broker connected", broker=self.broker.name, reconnect=reconnect)
        return True

    def mark_down(self, reason: str) -> bool:
        """Mark the broker down. Returns True if it was up (so the transition is acted on and published once)."""
        if not self.up:
            return False
        self.up = False
        self.changed.set()
        log.warning("broker disconnected", reason=reason)
        return True

    async def call(self, aw: Awaitable[Any]) -> Any:
        """A broker query/cancel with the executor's own bound on top of the adapter's."""
        limit_s = self.settings.broker_timeout_ms / 1000.0 + 1.0
        if _TIMEOUT is None:  # Python 3.10
            return await asyncio.wait_for(aw, limit_s)
        async with _TIMEOUT(limit_s):  # no extra task per call (wait_for wraps a coroutine in one)
            return await aw

    async def orders(self) -> list[c.OrderReport] | None:
        """Today's orders, or None when the list cannot be obtained (it must never be read as empty)."""
        if not self.up:
            return None
        try:
            return await self.call(self.broker.query_orders(strict=True))
        except (BrokerError, asyncio.TimeoutError) as exc:
            log.warning("broker order list unavailable", error=repr(exc))
            return None

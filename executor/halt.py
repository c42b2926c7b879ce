"""The account's kill switch: a plain Redis string ``xtq:{ACCOUNT}:halt`` whose presence stops new orders.

Turning it on and off::

    xtqueue halt ACCOUNT --reason "runaway strategy" [--cancel-open]    # or: redis-cli SET xtq:{ACCOUNT}:halt "why"
    xtqueue resume ACCOUNT                                               # or: redis-cli DEL xtq:{ACCOUNT}:halt

Any value (even "") means halted; the value is the reason shown in refusals and events. While halted, every new
place_order is refused ``halted`` (journal state REFUSED; nothing reaches the broker). Cancels, queries and
repeats of client order ids already answered still pass.

How the executor observes it:

* **with every batch of commands**: the ``GET`` of the key is pipelined right behind the ``XREADGROUP`` on the same
  connection, so Redis runs it the moment the read returns (also after a blocking read was woken by a new entry),
  before any order of the batch is admitted, and at no extra round trip. So an order written after the ``SET``
  returned is refused: the very next command. If that ``GET`` fails, the batch's orders are refused ``halted`` too
  (fail closed: the switch's state is unknown). Entries taken over from a dead consumer (XCLAIM) get their own
  ``GET``;
* **every ``halt_poll_ms``** (default 250 ms) a background task reads it as well, so the change is announced even
  when no order arrives.

Each change it observes (off -> on, on -> off, or a new reason) is published once on the account's event stream as
``account_halted`` / ``account_resumed``. The last state announced is kept in ``state_dir/halt-ACCOUNT.json``, so
a change made while no executor ran is announced at the next start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from producer_lib import contract as c

log = structlog.get_logger("executor.halt")

UNKNOWN_REASON = "the kill switch could not be read from Redis; refusing new orders until it can"


class HaltSwitch:
    """Reads the halt key and announces changes through ``announce(event)``."""

    def __init__(self, redis: aioredis.Redis, keys: c.Keys, executor_id: str, state_file: Path | None,
                 announce: Callable[[c.Event], None]) -> None:
        self.redis = redis
        self.key = keys.halt
        self.executor_id = executor_id
        self.state_file = state_file
        self.announce = announce
        self.reason: str | None = None  # None = not halted (as last read)
        self.unknown = False  # the last read failed
        self._announced: str | None = None  # reason last announced (None = resumed / never halted)
        self._loaded = False

    @property
    def halted(self) -> bool:
        return self.unknown or self.reason is not None

    def refusal_message(self) -> str:
        if self.unknown and self.reason is None:
            return UNKNOWN_REASON
        return f"the account is halted (kill switch on: {self.reason or 'no reason given'}); nothing was placed"

    def _load(self) -> None:
        self._loaded = True
        if self.state_file is None:
            return
        try:
            data = json.loads(self.state_file.read_text())
            self._announced = data.get("reason") if data.get("halted") else None
        except (OSError, ValueError):
            self._announced = None

    def _save(self) -> None:
        if self.state_file is None:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"halted": self._announced is not None, "reason": self._announced}))
            tmp.replace(self.state_file)
        except OSError:
            log.exception("could not save the kill switch state")

    async def refresh(self) -> bool:
        """Read the key now (one GET). Returns ``halted``. Never raises: a failed read means halted (unknown)."""
        try:
            raw = await self.redis.get(self.key)
        except Exception as exc:
            if not self.unknown:
                log.warning("kill switch unreadable; refusing orders", error=repr(exc))
            self.unknown = True
            return True
        return self.observe_read(raw)

    def observe_read(self, raw: Any) -> bool:
        """The result of a GET of the key done elsewhere (the command read pipelines one right after its
        XREADGROUP): its value, or the exception the GET raised (halted, unknown). Returns ``halted``."""
        if isinstance(raw, BaseException):
            if not self.unknown:
                log.warning("kill switch unreadable; refusing orders", error=repr(raw))
            self.unknown = True
            return True
        self.unknown = False
        self.observe(None if raw is None else raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
        return self.halted

    def observe(self, reason: str | None) -> None:
        """The key's value as just read (None = absent): publish a change."""
        if not self._loaded:
            self._load()
        self.reason = reason
        if reason == self._announced:
            return
        if reason is None:
            log.warning("kill switch off: account resumed")
            self.announce(c.AccountResumed(executor_id=self.executor_id))
        else:
            log.warning("kill switch on: account halted", reason=reason)
            self.announce(c.AccountHalted(executor_id=self.executor_id, reason=reason))
        self._announced = reason
        self._save()

    async def watch(self, interval_s: float) -> None:
        """Background: read the key every ``interval_s`` (announces changes with no order traffic)."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval_s)

"""The account's kill switch: the Redis stream ``xtq:{ACCOUNT}:halt``, whose latest entry stops or admits new orders.

Turning it on and off (every change is one XADD; docs/operations.md "Kill switch")::

    xtqueue halt ACCOUNT --reason "runaway strategy" [--cancel-open]
    redis-cli XADD 'xtq:{ACCOUNT}:halt' '*' halted 1 reason "runaway strategy"     # the same, with redis-cli only
    xtqueue resume ACCOUNT                     # or: redis-cli XADD 'xtq:{ACCOUNT}:halt' '*' halted 0

The latest entry is the state: ``halted 0`` admits orders, anything else halts (fail closed); ``reason`` is shown in
refusals and events. While halted, every new place_order is refused ``halted`` (journal state REFUSED; nothing
reaches the broker). Cancels, queries and repeats of client order ids already answered still pass.

**Versions.** Two readers observe the key concurrently (below), so an answer can arrive after a newer one: a "not
halted" read before the halt was written, delivered after a read that saw the halt, must not lift it. Each entry's
id is assigned by Redis and strictly increases per key, so it is the version of the state it carries: the switch
keeps the highest version it has seen (also across restarts, in the state file) and ignores every older
observation. No entry (the key deleted or never written) is version 0, so deleting the key does not lift a halt
this executor has seen. A failed read (unknown state, refused ``halted``) is cleared only by a successful read sent
after that failure was observed, never by an older one still in flight.

How the executor observes it:

* **with every batch of commands**: the ``XREVRANGE`` of the key is pipelined right behind the ``XREADGROUP`` on the
  same connection, so Redis runs it the moment the read returns (also after a blocking read was woken by a new
  entry), before any order of the batch is admitted, and at no extra round trip. So an order written after the
  halt's XADD returned is refused: the very next command. If that read fails, the batch's orders are refused
  ``halted`` too (fail closed: the switch's state is unknown). Entries taken over from a dead consumer (XCLAIM) get
  their own read;
* **every ``halt_poll_ms``** (default 250 ms) a background task reads it as well, so the change is announced even
  when no order arrives.

Each change it observes (off -> on, on -> off, or a new reason) is published once on the account's event stream as
``account_halted`` / ``account_resumed``. The last state announced and its version are kept in
``state_dir/halt-ACCOUNT.json``, so a change made while no executor ran is announced at the next start.
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
    """Reads the halt key and announces changes through ``announce(event)``. Loop-thread only."""

    def __init__(self, redis: aioredis.Redis, keys: c.Keys, executor_id: str, state_file: Path | None,
                 announce: Callable[[c.Event], None]) -> None:
        self.redis = redis
        self.key = keys.halt
        self.executor_id = executor_id
        self.state_file = state_file
        self.announce = announce
        self.version: tuple[int, int] = (0, 0)  # highest version applied (the id of the entry it came from)
        self.reason: str | None = None  # None = not halted (as of ``version``)
        self.unknown = False  # a read failed and no read sent after that failure has succeeded yet
        self._announced: str | None = None  # reason last announced (None = resumed / never halted)
        self._loaded = False
        self._tick = 0  # orders the reads sent against the failures observed (see begin_read)
        self._unknown_tick = 0

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
            ms, seq = data.get("version") or (0, 0)
            self.version = (int(ms), int(seq))
        except (OSError, ValueError, TypeError):
            self._announced, self.version = None, (0, 0)
        if self.version > (0, 0):  # the state at that version stands until a newer entry is read
            self.reason = self._announced

    def _save(self) -> None:
        if self.state_file is None:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"halted": self._announced is not None, "reason": self._announced,
                                       "version": list(self.version)}))
            tmp.replace(self.state_file)
        except OSError:
            log.exception("could not save the kill switch state")

    def begin_read(self) -> int:
        """Call right before sending a read of the key; pass the result to ``observe_read`` with its answer."""
        self._tick += 1
        return self._tick

    async def refresh(self) -> bool:
        """Read the key now (one XREVRANGE). Returns ``halted``. Never raises: a failed read means halted."""
        sent = self.begin_read()
        try:
            raw: Any = await self.redis.xrevrange(self.key, "+", "-", count=1)
        except Exception as exc:
            raw = exc
        return self.observe_read(raw, sent)

    def observe_read(self, raw: Any, sent: int) -> bool:
        """The answer to ``XREVRANGE key + - COUNT 1`` sent at ``sent`` (``begin_read``), here or elsewhere (the
        command read pipelines one right after its XREADGROUP), or the exception it raised. Returns ``halted``."""
        if not self._loaded:
            self._load()
        if not isinstance(raw, BaseException):
            try:
                version, halted, reason = c.halt_state(raw)
            except (ValueError, TypeError) as exc:
                raw = exc
        if isinstance(raw, BaseException):
            if not self.unknown:
                log.warning("kill switch unreadable; refusing orders", error=repr(raw))
            self.unknown = True
            self._unknown_tick = self.begin_read()  # only a read sent after this may clear it
            return True
        if self.unknown and sent > self._unknown_tick:
            self.unknown = False
        if version > self.version:  # an older (or the same) version is never applied over a newer one
            self.version = version
            self.reason = reason if halted else None
            self._announce()
        return self.halted

    def _announce(self) -> None:
        """Publish the state just applied if it differs from the one last announced; persist it with its version."""
        reason = self.reason
        if reason != self._announced:
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

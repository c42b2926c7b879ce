"""One active executor per account: a lease in Redis with a fencing token.

The lease key (``Keys.lease``) holds ``"<token>:<executor id>"`` and expires after ``lease_ms`` unless its holder
renews it. The token comes from ``INCR Keys.lease + ":token"`` at each acquisition, so every leadership term has a
larger token than the one before. A second executor waits as a hot standby, trying to acquire every
``lease_renew_ms``, and takes over when the holder dies or is paused past its lease.

What the token fences (a paused old leader that wakes up must not act on stale leadership):
- Redis writes that settle commands (reply + XACK, see transport.FINISH_SCRIPT) check the token inside Redis,
  atomically: a stale leader's writes are refused by Redis itself.
- Broker calls cannot be checked by MiniQMT, so the holder also keeps a local deadline on the monotonic clock
  (``valid()``), which a SIGSTOP/SIGCONT pause advances: the broker thread checks it immediately before every
  order call. The renewal deadline is ``lease_ms - safety_ms`` after the *start* of the last successful renewal,
  so the local view always expires before the key in Redis does.

Past that local deadline (a pause, or Redis unreachable) the holder is *undecided*: it places, settles and publishes
nothing, but it does not give up either. The next renewal that reaches Redis decides: the key still holds our value,
or it lapsed and nobody has tried to acquire it since (the token counter still holds our token), and the lease is
ours again; any other holder, or a larger token, means a successor took over: lost, step down. So a lone executor
rides through a Redis outage longer than its lease, and a paused leader whose lease was taken stays fenced.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from producer_lib import contract as c

# Renew only if we still hold it (compare-and-set): 1 renewed, 2 re-established, 0 lost.
# A key holding another value means a successor took over: lost. A key that is gone (it lapsed during an outage or
# a pause, or Redis lost its data) is re-established only if nobody has tried to acquire it since: every attempt
# INCRs the token counter first (try_acquire), so a counter above our token means we were superseded. A counter
# below ours (Redis lost its data) is raised back to our token, so later terms still get larger tokens.
# KEYS: 1 lease, 2 token counter. ARGV: 1 our value, 2 lease ms, 3 our token.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if held then
  return 0
end
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
local ours = tonumber(ARGV[3])
if counter > ours then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if counter < ours then
  redis.call('SET', KEYS[2], ARGV[3])
end
return 2
"""

# Release only our own lease (clean shutdown: the standby takes over at once instead of after lease_ms).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, redis: aioredis.Redis, keys: c.Keys, executor_id: str, *, lease_ms: int,
                 safety_ms: int | None = None) -> None:
        self.redis = redis
        self.key = keys.lease
        self.token_key = keys.lease + ":token"
        self.executor_id = executor_id
        self.lease_ms = lease_ms
        self.safety_ms = safety_ms if safety_ms is not None else max(lease_ms // 5, 50)
        self.value: str | None = None  # "<token>:<executor id>" while held
        self.token: int = 0
        self._valid_until_mono = 0.0
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def valid(self) -> bool:
        """Held, by the local monotonic clock (safe to call from any thread)."""
        return self.value is not None and time.monotonic() < self._valid_until_mono

    @property
    def lost(self) -> bool:
        """Taken over by another executor (known from Redis), or released: never ours again in this process."""
        return self.value is None

    @property
    def undecided(self) -> bool:
        """Past the local deadline but not known to be lost: act on nothing until ``renew()`` decides."""
        return self.value is not None and not self.valid()

    def remaining_ms(self) -> int:
        """How long it stays valid by the local monotonic clock (0 when not held)."""
        if self.value is None:
            return 0
        return max(0, int((self._valid_until_mono - time.monotonic()) * 1000.0))

    async def try_acquire(self) -> bool:
        """One attempt. True if this executor now holds the lease."""
        started = time.monotonic()
        if await self.redis.exists(self.key):
            return False
        token = int(await self.redis.incr(self.token_key))
        value = f"{token}:{self.executor_id}"
        if not await self.redis.set(self.key, value, nx=True, px=self.lease_ms):
            return False  # another standby won the race (our token is simply skipped)
        self.token, self.value = token, value
        self._valid_until_mono = started + (self.lease_ms - self.safety_ms) / 1000.0
        return True

    async def renew(self) -> bool:
        """Extend the lease, or confirm it again after the local deadline passed (see ``_RENEW``). False once it
        is lost (another executor took over): the caller must step down. Redis errors propagate; the lease then
        stays as it was (valid until its local deadline, undecided after it)."""
        if self.value is None:
            return False
        started = time.monotonic()
        if await self._renew(keys=[self.key, self.token_key], args=[self.value, self.lease_ms, self.token]) == 0:
            self.value = None
            return False
        self._valid_until_mono = started + (self.lease_ms - self.safety_ms) / 1000.0
        return True

    async def release(self) -> None:
        if self.value is not None:
            value, self.value = self.value, None
            await self._release(keys=[self.key], args=[value])

    async def holder(self) -> str | None:
        raw = await self.redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw

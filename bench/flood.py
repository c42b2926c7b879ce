"""Feed the executor many cheap commands fast (for the RSS / CPU ramp): pre-encoded ping and query_asset entries
(3:1), XADDed in pipelines, at most ``window`` outstanding. The executor treats them like any client's commands (replies go
to a reply stream nobody reads; it is capped by the executor's MAXLEN)."""

from __future__ import annotations

import time
from typing import Callable

import redis

from producer_lib import contract as c


class Flood:
    def __init__(self, url: str, account: str, *, window: int = 4096, batch: int = 512) -> None:
        self.r = redis.Redis.from_url(url)
        self.keys = c.Keys(account)
        self.reply_to = self.keys.replies("benchflood")
        self.window = window
        self.batch = batch
        self.sent = 0
        self._ping = c.Ping()
        self._asset = c.QueryAsset()
        self.base = self.done()  # acknowledged before this flood's first entry

    def done(self) -> int:
        """Commands the executor group has read and acknowledged (entries-read - pending)."""
        for g in self.r.xinfo_groups(self.keys.commands):
            if g["name"] in (c.COMMAND_GROUP, c.COMMAND_GROUP.encode()):
                return int(g.get("entries-read") or 0) - int(g["pending"])
        return 0

    def run_until(self, total_done: int, on_progress: Callable[[int], None] | None = None,
                  timeout_s: float = 600.0) -> int:
        """Send until the group has acknowledged ``total_done`` entries in all (cumulative). Returns done."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = self.done()
            if done >= total_done:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"flood: {done}/{total_done} after {timeout_s} s")
            outstanding = (self.base + self.sent) - done
            room = min(self.batch, self.window - outstanding, total_done - done - outstanding)
            if room <= 0:
                time.sleep(0.002)
                continue
            pipe = self.r.pipeline(transaction=False)
            for i in range(room):
                cmd = self._asset if (self.sent + i) % 4 == 0 else self._ping  # 3 pings : 1 broker query
                pipe.xadd(self.keys.commands, c.encode_command(cmd, account=self.keys.account,
                                                               command_id=c.new_command_id(),
                                                               reply_to=self.reply_to, ttl_ms=60_000),
                          maxlen=c.COMMAND_STREAM_MAXLEN, approximate=True)
            pipe.execute()
            self.sent += room
            if on_progress:
                on_progress(done)

    def close(self) -> None:
        self.r.close()

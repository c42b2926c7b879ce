"""The executor's heartbeat: one model that its writer (the executor) and readers (CLI, library) share."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from producer_lib.contract._models import _Model


class Heartbeat(_Model):
    """The executor's heartbeat (``Keys.heartbeat``, JSON, expires after HEARTBEAT_TTL_S): written by the leading
    executor every heartbeat interval, read by ``xtqueue executor --check`` and by an executor starting without a
    lease (a fresh beat of another executor id = a live rival). ``connected``: its broker is connected."""

    executor_id: str = ""
    pid: int = 0
    broker: str = ""
    connected: bool = False
    last_seq: int = 0
    ts_ms: int = 0
    version: str = ""
    lease_token: int | None = None

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Heartbeat | None:
        """None for a missing or unreadable beat. ``broker_connected`` (PingResult's name) is read as
        ``connected``."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                return None
            if "connected" not in data and "broker_connected" in data:
                data["connected"] = data["broker_connected"]
            return cls.model_validate(data)
        except (ValueError, ValidationError):
            return None


def decode_heartbeat(raw: Any) -> dict[str, Any] | None:
    """The heartbeat as a plain dict (``Heartbeat.decode``, the one reader), or None when absent or unreadable: the
    CLI's and the library's view of it."""
    beat = Heartbeat.decode(raw)
    return None if beat is None else beat.model_dump()

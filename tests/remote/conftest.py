"""Fixtures of the remote-trader tests: a simulated MiniQMT, a real executor on it, and the program environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from remote_helpers import wait_serving
from support import ExecutorProcess, QmtSim

from executor.sim import SimControl

STRATEGY = "remote1"


@dataclass
class Stack:
    redis_url: str
    account: str
    qmt_path: Path
    control: SimControl
    executor: ExecutorProcess
    workdir: Path

    def env(self, redis_url: str | None = None) -> dict[str, str]:
        """What an unmodified program is given: where its executor is, and as whom it speaks."""
        return {"XTQUEUE_REDIS_URL": redis_url or self.redis_url, "XTQUEUE_ACCOUNT": self.account,
                "XTQUEUE_STRATEGY": STRATEGY, "XTQUEUE_REMOTE_PING_INTERVAL_S": "0.5",
                "XTQUEUE_REMOTE_PING_TIMEOUT_S": "3"}


@pytest.fixture
def stack(redis_url, account, tmp_path, redis_client):
    qmt_path = tmp_path / "userdata_mini"
    sim = QmtSim(qmt_path, "--account", account)
    control = SimControl(qmt_path)
    executor = ExecutorProcess(redis_url, account, tmp_path, "--probe-interval-ms", "300",
                               "--reconnect-max-backoff-ms", "300", "--claim-idle-ms", "1000", sim_path=qmt_path,
                               clean_env=True)
    try:
        assert control.wait_applied(control.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
        executor.start()
        wait_serving(redis_url, account, executor=executor)
        yield Stack(redis_url, account, qmt_path, control, executor, tmp_path)
    finally:
        executor.stop()
        control.close()
        sim.stop()

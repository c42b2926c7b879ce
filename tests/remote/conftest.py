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


def _stack(request, redis_url, account, tmp_path, credit: bool):
    """A simulated MiniQMT serving ``account`` (``credit``: a margin account) and an executor on it, serving. A test
    marked ``@pytest.mark.executor_flags(*flags)`` has its executor started with those flags too (last one wins)."""
    qmt_path = tmp_path / "userdata_mini"
    sim = QmtSim(qmt_path, "--account", account, *(["--credit", "--cash", "100000"] if credit else []))
    control = SimControl(qmt_path)
    marker = request.node.get_closest_marker("executor_flags")
    flags = (*(["--account-type", "CREDIT"] if credit else []), *(marker.args if marker else ()))
    # A restarted executor takes over within about 2 s (a short lease, the killed one's entries claimed after 1 s,
    # recovery's settle time 0.5 s) instead of the defaults' 5 + 2 s.
    executor = ExecutorProcess(redis_url, account, tmp_path, "--probe-interval-ms", "300",
                               "--reconnect-max-backoff-ms", "300", "--claim-idle-ms", "1000", "--lease-ms", "2000",
                               "--lease-renew-ms", "250", "--recovery-settle-ms", "500", *flags, sim_path=qmt_path,
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


@pytest.fixture
def stack(request, redis_url, account, tmp_path, redis_client):
    yield from _stack(request, redis_url, account, tmp_path, credit=False)


@pytest.fixture
def credit_stack(request, redis_url, account, tmp_path, redis_client):
    """A simulated MiniQMT whose account is a margin account (cash 100,000; executor/sim/credit.py's default
    terms) and an executor trading it as a CREDIT account."""
    yield from _stack(request, redis_url, account, tmp_path, credit=True)

"""`--broker sim`: the wheel's own XtQuantTrader over the simulated MiniQMT serving sim_path, started as a child
process when none serves it, and never outliving the process that started it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from filelock import FileLock
from qmt_helpers import WAIT
from support import child_env

from executor.broker import make_broker
from executor.config import ExecutorSettings
from executor.sim import SimControl
from executor.sim.qmt import serving
from executor.sim.qmt.server import LOCK_FILE


def _settings(tmp_path, **kw) -> ExecutorSettings:
    return ExecutorSettings(**{"account": "BSIM1", "broker": "sim", "sim_path": tmp_path / "sim",
                               "state_dir": tmp_path / "state", "sim_cash": 123_456.0, **kw})


def _lock_free(path, timeout: float = WAIT) -> bool:
    """True once no simulated MiniQMT holds the folder's lock (the one that held it has shut down)."""
    lock = FileLock(str(path / LOCK_FILE))
    try:
        lock.acquire(timeout=timeout)
    except Exception:
        return False
    lock.release()
    return True


async def test_broker_sim_is_the_wheels_class_over_a_miniqmt_it_starts_and_ends(tmp_path):
    settings = _settings(tmp_path)
    assert not serving(settings.sim_path)
    broker = make_broker(settings)
    try:
        await broker.connect()
        trader = broker._trader
        assert (type(trader).__module__, type(trader).__name__) == ("xtquant.xttrader", "XtQuantTrader")
        assert serving(settings.sim_path)  # the child it started
        asset = await broker.query_asset()  # seeded from the executor's sim settings
        assert (asset.account, asset.cash) == ("BSIM1", pytest.approx(123_456.0))
    finally:
        await broker.close()
    assert not serving(settings.sim_path)
    assert _lock_free(settings.sim_path)


async def test_broker_sim_uses_the_miniqmt_already_serving_the_folder(tmp_path):
    from support import QmtSim

    settings = _settings(tmp_path, sim_cash=5_000.0)
    server = QmtSim(settings.sim_path, "--account", "BSIM1", "--cash", "777000")
    try:
        broker = make_broker(settings)
        await broker.connect()
        try:
            asset = await broker.query_asset()
            assert asset.cash == pytest.approx(777_000.0)  # that MiniQMT's account, not a fresh seed
        finally:
            await broker.close()
        assert server.proc.poll() is None and serving(settings.sim_path)  # not ours to end
    finally:
        server.stop()


CHILD = textwrap.dedent("""
    import sys
    from executor.sim.qmt import ChildMiniQmt
    child = ChildMiniQmt(sys.argv[1], ["--account", "KILL1"])
    child.ensure()
    print("ready", flush=True)
    sys.stdin.read()  # until the test kills this process
""")


def test_the_child_miniqmt_ends_when_its_parent_is_killed(tmp_path):
    path = tmp_path / "sim"
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        # (importing xtquant may print a line of its own first, in a fresh virtualenv)
        assert next((line for line in iter(parent.stdout.readline, "") if line.strip() == "ready"), "") != ""
        assert serving(path)
        ctl = SimControl(path)
        try:
            assert ctl.wait_applied(ctl.set_price("600000.SH", 10.00), timeout=WAIT)
        finally:
            ctl.close()
    finally:
        parent.kill()  # SIGKILL / TerminateProcess: no cleanup code of the parent runs
        parent.wait(WAIT)
    assert _lock_free(path)  # the child saw its stdin close and shut down
    assert not serving(path)

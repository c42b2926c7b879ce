import itertools

import pytest
from qmt_helpers import Recorder, StockAccount, XtQuantTrader
from support import QmtSim

from executor.sim import SimControl

_sessions = itertools.count(1000)


@pytest.fixture(autouse=True)
def _main_thread_loop(wheel_loop):
    """Every test here builds the wheel's XtQuantTrader on the main thread (see tests/conftest.py::wheel_loop)."""
    yield


@pytest.fixture
def qmt(tmp_path):
    """A simulated MiniQMT in its own process serving tmp_path/userdata_mini, with 600000.SH at 10.00."""
    path = tmp_path / "userdata_mini"
    server = QmtSim(path)
    ctl = SimControl(path)
    assert ctl.wait_applied(ctl.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
    yield server, ctl
    ctl.close()
    server.stop()


@pytest.fixture
def connect(qmt):
    """connect(callback=Recorder(), subscribe=True) -> (trader, recorder): the wheel's class, started and
    connected (and subscribed to SIM001) over the simulated MiniQMT; stopped at the end."""
    server, _ = qmt
    made = []

    def factory(callback="record", subscribe=True):
        rec = Recorder() if callback == "record" else callback
        t = XtQuantTrader(str(server.path), next(_sessions), rec)
        t.start()
        made.append(t)
        assert t.connect() == 0
        if subscribe:
            assert t.subscribe(StockAccount("SIM001")) == 0
        return t, rec

    yield factory
    for t in reversed(made):
        t.stop()

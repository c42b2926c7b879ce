import pytest

from sim_helpers import make_trader


@pytest.fixture(autouse=True)
def _main_thread_loop(wheel_loop):
    """The wheel's XtQuantTrader is built on the main thread here (see tests/conftest.py::wheel_loop)."""
    yield


@pytest.fixture
def sim(tmp_path):
    """A started, connected, subscribed simulator on a fresh path, with a Recorder callback."""
    made = []

    def factory(config=None, **kw):
        t, rec = make_trader(tmp_path / "sim", config, **kw)
        made.append(t)
        return t, rec

    yield factory
    for t in reversed(made):
        t.stop()

import pytest


@pytest.fixture
def margin(tmp_path, wheel_loop):
    """margin(cash=100_000.0, **terms) -> (trader, account, server): the wheel's own XtQuantTrader, connected and
    subscribed, over an in-process simulated MiniQMT whose account CRD001 is a margin account (CreditTerms(**terms))."""
    from executor.sim import AccountSeed, SimConfig
    from executor.sim.credit import CreditTerms
    from executor.sim.qmt import QmtSimServer, install

    install()
    from xtquant.xttrader import XtQuantTrader
    from xtquant.xttype import StockAccount

    made = []

    def factory(cash: float = 100_000.0, positions=None, **terms):
        cfg = SimConfig(accounts={"CRD001": AccountSeed(cash=cash, positions=positions or {},
                                                        credit=CreditTerms(**terms)),
                                  "SIM001": AccountSeed()})
        server = QmtSimServer(tmp_path / "userdata_mini", cfg).start()
        trader = XtQuantTrader(str(server.path), 101)
        trader.start()
        assert trader.connect() == 0
        account = StockAccount("CRD001", "CREDIT")
        assert trader.subscribe(account) == 0
        made.append((trader, server))
        return trader, account, server

    yield factory
    for trader, server in reversed(made):
        trader.stop()
        server.close()



from support import ExecutorProcess, QmtSim  # noqa: E402

# The CREDIT executor of these tests: a broker link noticed lost and regained fast, a short lease (a restarted
# executor takes over within about 2 s).
CREDIT_EXECUTOR = ("--account-type", "CREDIT", "--probe-interval-ms", "300", "--reconnect-max-backoff-ms", "300",
                   "--recovery-settle-ms", "500", "--lease-ms", "2000", "--lease-renew-ms", "250")


@pytest.fixture
def credit_stack(redis_url, account, tmp_path, redis_client):
    """A simulated MiniQMT whose ``account`` is a margin account (cash 100,000, 600000.SH at 10.00) and a CREDIT
    executor on it: yields (start(*flags) -> Popen, SimControl); each start() runs a new executor process on the
    same state dir; every one started is stopped at the end."""
    from executor.sim import SimControl

    qmt_path = tmp_path / "userdata_mini"
    server = QmtSim(qmt_path, "--account", account, "--credit", "--cash", "100000")
    control = SimControl(qmt_path)
    assert control.wait_applied(control.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
    started: list[ExecutorProcess] = []

    def start(*extra: str):
        executor = ExecutorProcess(redis_url, account, tmp_path, *CREDIT_EXECUTOR, *extra, sim_path=qmt_path)
        started.append(executor.start())
        return executor.proc

    try:
        yield start, control
    finally:
        for executor in started:
            executor.stop()
        control.close()
        server.stop()

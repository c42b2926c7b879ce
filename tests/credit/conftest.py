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

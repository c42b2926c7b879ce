"""Broker adapters. ``make_broker(settings)`` is the only place that decides between the simulator and xtquant.

Both choices produce the same ``XtBroker``; only the trader factory differs, so every line above the trader
object (engine, journal, parsing, threading) runs identically in tests and in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Broker, BrokerDeadlinePassedError, BrokerError, BrokerFencedError, BrokerRefusedError, BrokerTimeoutError, BrokerUnavailableError, EventSink

if TYPE_CHECKING:
    from executor.config import ExecutorSettings

__all__ = ["Broker", "BrokerDeadlinePassedError", "BrokerError", "BrokerFencedError", "BrokerRefusedError", "BrokerTimeoutError", "BrokerUnavailableError",
           "EventSink", "make_broker", "sim_config_for"]


def sim_config_for(settings: ExecutorSettings) -> Any:
    """The simulator configuration an executor with these settings runs on."""
    from executor.sim import SimConfig
    from executor.sim.config import AccountSeed, RandomWalkConfig

    return SimConfig(
        accounts={settings.account: AccountSeed(cash=settings.sim_cash)},
        session_clock=settings.sim_session_clock,
        random_walk=RandomWalkConfig(seed=settings.sim_seed) if settings.sim_random_walk else None,
    )


def make_broker(settings: ExecutorSettings) -> Broker:
    from executor.config import default_executor_id

    from .xt.adapter import XtBroker

    if settings.broker == "sim":
        from executor.sim import SimXtQuantTrader

        config = sim_config_for(settings)
        settings.sim_path.mkdir(parents=True, exist_ok=True)

        def factory(path: str, session: int) -> Any:
            return SimXtQuantTrader(path, session, config=config)

        path = str(settings.sim_path)
    else:
        if settings.qmt_path is None:
            raise ValueError(f"broker '{settings.broker}' needs qmt_path: the full path of MiniQMT's userdata_mini "
                             "folder (qmt-sim: the folder xtqueue qmt-sim serves)")
        if settings.broker == "qmt-sim":
            # The wheel's own XtQuantTrader over the stand-in binary (executor/sim/qmt): same adapter, same class
            # as 'xt'; only the binary differs. Where the real binary loads (Windows), it is the one used.
            from executor.sim.qmt import install

            install()
        # Imported only when selected: it exists only on Windows, and importing xtquant may contact PyPI (X4,
        # docs/architecture.md).
        from xtquant.xttrader import XtQuantTrader as factory  # type: ignore[no-redef]

        path = str(settings.qmt_path)
    return XtBroker(name=settings.broker, account_id=settings.account, trader_factory=factory, path=path,
                    session_ids=settings.session_ids, executor_id=settings.executor_id or default_executor_id(),
                    timeout_s=settings.broker_timeout_ms / 1000)

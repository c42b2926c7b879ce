"""Broker adapters. ``make_broker(settings)`` is the only place that decides between the simulator and xtquant.

Both choices produce the same ``XtBroker`` over the same class, xtquant's own ``xtquant.xttrader.XtQuantTrader``;
only the binary module under it differs (the real one talks to MiniQMT, the stand-in of executor/sim/qmt to the
simulated MiniQMT), so every line above the binary runs identically in tests and in production.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .base import Broker, BrokerDeadlinePassedError, BrokerError, BrokerFencedError, BrokerRefusedError, BrokerTimeoutError, BrokerUnavailableError, EventSink

if TYPE_CHECKING:
    from executor.config import ExecutorSettings

log = logging.getLogger("executor.broker")

__all__ = ["Broker", "BrokerDeadlinePassedError", "BrokerError", "BrokerFencedError", "BrokerRefusedError", "BrokerTimeoutError", "BrokerUnavailableError",
           "EventSink", "make_broker", "sim_config_for"]


def sim_config_for(settings: ExecutorSettings) -> Any:
    """The simulator configuration an executor with these settings seeds a simulated MiniQMT with."""
    from executor.sim import SimConfig
    from executor.sim.config import AccountSeed, RandomWalkConfig

    from executor.sim.credit import CreditTerms

    credit = CreditTerms() if settings.account_type == "CREDIT" else None
    return SimConfig(
        accounts={settings.account: AccountSeed(cash=settings.sim_cash, credit=credit)},
        session_clock=settings.sim_session_clock,
        random_walk=RandomWalkConfig(seed=settings.sim_seed) if settings.sim_random_walk else None,
    )


def _qmt_sim_args(settings: ExecutorSettings) -> list[str]:
    """``xtqueue qmt-sim`` options giving the same configuration as ``sim_config_for(settings)``."""
    args = ["--account", settings.account, "--cash", repr(float(settings.sim_cash))]
    if settings.sim_session_clock:
        args.append("--session-clock")
    if settings.account_type == "CREDIT":
        args.append("--credit")
    if settings.sim_random_walk:
        args += ["--random-walk", "--seed", str(settings.sim_seed)]
    return args


def make_broker(settings: ExecutorSettings) -> Broker:
    from executor.config import default_executor_id

    from .xt.adapter import XtBroker

    closers: list[Any] = []
    if settings.broker == "sim":
        # The wheel's own XtQuantTrader over the stand-in binary (executor/sim/qmt), talking to the simulated
        # MiniQMT serving sim_path: the same adapter and the same class as 'xt'; only the binary differs. When no
        # simulated MiniQMT serves the folder, one is started as a child process that ends with this one.
        from executor.sim.qmt import install
        from executor.sim.qmt.child import ChildMiniQmt

        install(first=True)
        from xtquant.xttrader import XtQuantTrader

        settings.sim_path.mkdir(parents=True, exist_ok=True)
        child = ChildMiniQmt(settings.sim_path, _qmt_sim_args(settings))
        closers.append(child.close)
        try:  # now, so that starting it (seconds) is not counted against the first connect's broker timeout
            child.ensure()
        except RuntimeError as exc:  # the connects will try again (and report it)
            log.warning("simulated MiniQMT did not start", extra={"error": str(exc)})

        def factory(path: str, session: int) -> Any:
            try:
                child.ensure()
            except RuntimeError as exc:
                raise BrokerUnavailableError(str(exc)) from None
            return XtQuantTrader(path, session)

        path = str(settings.sim_path)
    else:
        if settings.qmt_path is None:
            raise ValueError(f"broker '{settings.broker}' needs qmt_path: the full path of MiniQMT's userdata_mini "
                             "folder")
        # Imported only when selected: it exists only on Windows, and importing xtquant may contact PyPI (X4,
        # docs/architecture.md).
        from xtquant.xttrader import XtQuantTrader as factory  # type: ignore[no-redef]

        path = str(settings.qmt_path)
    return XtBroker(name=settings.broker, account_id=settings.account, trader_factory=factory, path=path,
                    session_ids=settings.session_ids, executor_id=settings.executor_id or default_executor_id(),
                    timeout_s=settings.broker_timeout_ms / 1000, account_type=settings.account_type,
                    closers=closers)

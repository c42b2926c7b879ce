"""The ``xtqueue`` command: run the executor, send orders and queries, follow events, run the demo.

::

    xtqueue executor --broker sim            # the worker (on Windows: --broker xt --qmt-path ...)
    xtqueue executor --check                 # exit 0 if the heartbeat says the broker is connected (autostart)
    xtqueue buy 600000.SH 100 10.01          # one order; order/sell/cancel likewise
    xtqueue positions | orders | trades | asset | status | outcome COID | ping      (--json for scripts)
    xtqueue tail                             # follow an account's events, one line each
    xtqueue demo                             # everything on this machine: embedded Redis + simulator
    xtqueue run --qmt-sim DIR -- python prog.py   # an unmodified xtquant program on a simulated MiniQMT

Exit codes: 0 ok; 2 refused (nothing was placed/done); 3 outcome unknown (ask with ``xtqueue outcome``, do not
resend blindly; also Ctrl+C while an order waits for its answer); 1 anything else (Redis unreachable, no executor,
executor error); 130 interrupted (Ctrl+C) where nothing was pending. Every error is one or two lines; ``--debug``
(or XTQUEUE_DEBUG=1) shows the traceback instead.

The global options (``--redis-url``, ``--account``, ...) may be given before or after the subcommand.
The producer library and the executor are imported inside the commands, so ``xtqueue --help`` works on any
install; the executor command is the executor's own (executor/command.py), loaded when that command is used.

This module is the public face: the group ``cli`` with every command added, ``main``, and the names other code
imports. From the bottom up (a module imports only those above it):

- ``_options.py``: constants, ``Globals``, the input types, the group's options (also after a command's name)
- ``_group.py``: the click group (errors as one line and an exit code, Ctrl+C) and ``main``
- ``_connect.py``: reaching Redis and the executor (the heartbeat-first check), the CLI's errors
- ``trading.py``: order, buy, sell, cancel, repay
- ``queries.py``: positions, orders, trades, asset, outcome, ping, and the credit (两融) queries
- ``ops.py``: status, tail, halt, resume, acl
- ``processes.py``: executor, http, demo, qmt-sim, run
"""

from __future__ import annotations

from ._connect import CliError, NoExecutor, RedisUnreachable, read_heartbeat
from ._group import cli, main
from ._options import (ACCOUNT, CODE, CONTEXT, DEFAULT_ACCOUNT, DEFAULT_REDIS_URL, EXIT_INTERRUPTED, ORDER_SIDES,
                       PRICE_TYPES, REDIS_URL, Globals, scrub)
from .ops import acl_command, halt, resume, status, tail
from .processes import demo, executor, http_command, qmt_sim, run_command
from .queries import (asset, assure, compacts, credit, credit_subjects, orders, outcome, ping, positions, slo_codes,
                      trades)
from .trading import buy, cancel, order, repay, sell

# Every command (`xtqueue --help` lists them by name).
for _command in (order, buy, sell, cancel, positions, orders, trades, asset, repay, credit, compacts,
                 credit_subjects, slo_codes, assure, status, outcome, ping, tail, halt, resume, executor,
                 http_command, demo, acl_command, qmt_sim, run_command):
    cli.add_command(_command)
del _command

__all__ = ["ACCOUNT", "CODE", "CONTEXT", "DEFAULT_ACCOUNT", "DEFAULT_REDIS_URL", "EXIT_INTERRUPTED", "ORDER_SIDES",
           "PRICE_TYPES", "REDIS_URL", "CliError", "Globals", "NoExecutor", "RedisUnreachable", "cli", "main",
           "read_heartbeat", "scrub"]

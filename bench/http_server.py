"""The usual HTTP wrapper around XtQuantTrader: a Sanic app calling the trader synchronously.

One process, one worker; every request runs the blocking trader call on the event loop (``order_stock`` blocks
until the broker answers), which is how such wrappers are commonly written. The trader is xtquant's own
``XtQuantTrader`` over the stand-in binary, connected to a simulated MiniQMT in its own process (bench/broker.py),
as xtqueue's executor is.

    python -m bench.http_server PORT QMT_PATH ACCOUNT
"""

from __future__ import annotations

import logging
import os
import sys

from sanic import Sanic
from sanic.response import json
from xtquant import xtconstant as xc
from xtquant.xttype import StockAccount

from bench import broker
from bench._common import THREADS_ENV, publish_thread_ids


class _Callback:
    """Callbacks land here and are dropped (an HTTP wrapper typically only logs them)."""

    def __getattr__(self, name):  # on_stock_order, on_stock_trade, ...
        return lambda *a, **k: None


def build(qmt_path: str, account_id: str) -> Sanic:
    trader = broker.trader(qmt_path, 7, _Callback())
    account = StockAccount(account_id)
    trader.subscribe(account)
    app = Sanic("xtq_bench_http")
    app.config.ACCESS_LOG = False
    app.config.KEEP_ALIVE_TIMEOUT = 600

    @app.get("/health")
    async def health(request):
        return json({"ok": True})

    @app.get("/order")
    async def order(request):
        a = request.args
        side = xc.STOCK_BUY if a.get("side", "buy") == "buy" else xc.STOCK_SELL
        order_id = trader.order_stock(account, a.get("code"), side, int(a.get("volume")), xc.FIX_PRICE,
                                      float(a.get("price")), a.get("strategy", ""), a.get("remark", ""))
        if order_id <= 0:
            return json({"ok": False, "order_id": order_id}, status=400)
        return json({"ok": True, "order_id": order_id})

    @app.get("/cancel")
    async def cancel(request):
        result = trader.cancel_order_stock(account, int(request.args.get("order_id")))
        return json({"ok": result == 0, "result": result})

    @app.get("/asset")
    async def asset(request):
        a = trader.query_stock_asset(account)
        return json({"cash": a.cash, "frozen_cash": a.frozen_cash, "market_value": a.market_value,
                     "total_asset": a.total_asset})

    return app


def main() -> None:
    port, qmt_path, account_id = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    logging.getLogger("sanic").setLevel(logging.WARNING)
    if os.environ.get(THREADS_ENV):
        publish_thread_ids(os.environ[THREADS_ENV])
    app = build(qmt_path, account_id)
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False, debug=False)


if __name__ == "__main__":
    main()

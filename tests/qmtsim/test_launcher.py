"""An unmodified xtquant program (it knows nothing of xtqueue) runs on Linux through the launcher."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from qmt_helpers import WAIT, child_env

PROGRAM = textwrap.dedent("""
    import sys
    from xtquant import xtconstant
    from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
    from xtquant.xttype import StockAccount

    trader = XtQuantTrader(sys.argv[1], 555, XtQuantTraderCallback())
    trader.start()
    assert trader.connect() == 0
    account = StockAccount("SIM001")
    assert trader.subscribe(account) == 0
    oid = trader.order_stock(account, "600000.SH", xtconstant.STOCK_BUY, 100, xtconstant.FIX_PRICE, 10.0,
                             "paper", "launcher-1")
    print("order", oid, trader.query_stock_asset(account).cash, type(trader).__module__)
    trader.stop()
""")


def test_an_unmodified_program_trades_through_the_launcher(qmt, tmp_path):
    server, ctl = qmt
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "executor.sim.qmt", str(prog), str(server.path)],
                         capture_output=True, text=True, timeout=WAIT * 4, env=child_env())
    assert out.returncode == 0, out.stderr
    word, oid, _cash, module = out.stdout.split()
    assert (word, module) == ("order", "xtquant.xttrader")
    (row,) = ctl.orders("SIM001")
    assert (row["order_id"], row["order_remark"], row["traded_volume"]) == (int(oid), "launcher-1", 100)


def test_without_the_launcher_the_program_cannot_import_xttrader(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    out = subprocess.run([sys.executable, str(prog), str(tmp_path)], capture_output=True, text=True,
                         timeout=WAIT * 4, env=child_env())
    assert out.returncode != 0 and "xtpythonclient" in out.stderr

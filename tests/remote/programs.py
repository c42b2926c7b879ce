"""The unmodified xtquant programs the remote-trader tests run (source text). They know nothing of xtqueue: only
``xtquant``'s own classes, a path and an account on the command line. Each prints JSON lines."""

COMMON = '''
import json, sys, threading, time
from xtquant import xtconstant as xc, xttype
from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
from xtquant.xttype import StockAccount

path, acct = sys.argv[1], sys.argv[2]
seen, lock = [], threading.Lock()


def rec(kind, **kw):
    with lock:
        seen.append(dict(kind=kind, thread=threading.current_thread().name, **kw))


def wait(pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        with lock:
            if pred(list(seen)):
                return True
        time.sleep(0.05)
    return False


def emit(**kw):
    print(json.dumps(kw, ensure_ascii=False), flush=True)


class CB(XtQuantTraderCallback):
    def on_connected(self):
        rec("connected")

    def on_disconnected(self):
        rec("disconnected")

    def on_account_status(self, s):
        rec("account_status", status=s.status, account=s.account_id, cls=isinstance(s, xttype.XtAccountStatus))

    def on_stock_asset(self, a):
        rec("asset", cash=a.cash, m_cash=a.m_dCash, cls=isinstance(a, xttype.XtAsset))

    def on_stock_order(self, o):
        rec("order", order_id=o.order_id, status=o.order_status, remark=o.order_remark, strategy=o.strategy_name,
            volume=o.order_volume, traded=o.traded_volume, m_id=o.m_nOrderID, cls=isinstance(o, xttype.XtOrder))

    def on_stock_trade(self, t):
        rec("trade", order_id=t.order_id, volume=t.traded_volume, remark=t.order_remark, strategy=t.strategy_name,
            trade_id=t.traded_id, cls=isinstance(t, xttype.XtTrade))

    def on_stock_position(self, p):
        rec("position", code=p.stock_code, volume=p.volume, m_volume=p.m_nVolume, cls=isinstance(p, xttype.XtPosition))

    def on_order_error(self, e):
        rec("order_error", order_id=e.order_id, error_id=e.error_id, msg=e.error_msg, remark=e.order_remark,
            strategy=e.strategy_name)

    def on_cancel_error(self, e):
        rec("cancel_error", order_id=e.order_id, error_id=e.error_id, msg=e.error_msg)

    def on_order_stock_async_response(self, r):
        rec("order_response", order_id=r.order_id, seq=r.seq, remark=r.order_remark, strategy=r.strategy_name,
            msg=r.error_msg)

    def on_cancel_order_stock_async_response(self, r):
        rec("cancel_response", order_id=r.order_id, seq=r.seq, result=r.cancel_result, msg=r.error_msg)


def orders_view(orders):
    return None if orders is None else [dict(order_id=o.order_id, remark=o.order_remark, strategy=o.strategy_name,
                                            status=o.order_status, volume=o.order_volume, traded=o.traded_volume,
                                            cls=isinstance(o, xttype.XtOrder)) for o in orders]
'''

# Everything a program does with the served methods, sync and async, then every query; prints one JSON object.
EVERYTHING = COMMON + '''
LONG = "中文备注" * 3 + "abcdefghij"          # 46 bytes: MiniQMT keeps 24
SPLIT = "a" * 22 + "中"                        # 25 bytes: the cut would split the last character
EXACT = "x" * 24                               # 24 bytes: kept whole
out = {}
trader = XtQuantTrader(path, 123, CB())
trader.start()
out["connect"] = trader.connect()
account = StockAccount(acct)
out["subscribe"] = trader.subscribe(account)
out["filled"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0, "我的策略", "buy-1")
out["resting"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 200, xc.FIX_PRICE, 9.5, "s2", "rest-1")
out["async_seq"] = trader.order_stock_async(account, "600000.SH", xc.STOCK_BUY, 300, xc.FIX_PRICE, 9.6, "s3",
                                            "async-1")
wait(lambda s: any(e["kind"] == "order_response" and e["seq"] == out["async_seq"] for e in s))
out["odd_lot"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 150, xc.FIX_PRICE, 10.0, "s4", "odd-1")
out["long"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.0, "s5", LONG)
out["split"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.0, "s5", SPLIT)
out["exact"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.0, "s5", EXACT)
out["same_remark"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.0, "s5", "buy-1")
out["credit_type"] = trader.order_stock(account, "600000.SH", xc.CREDIT_FIN_BUY, 100, xc.FIX_PRICE, 9.0, "s6", "fin")
out["other_account"] = trader.order_stock(StockAccount("NOPE1"), "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.0,
                                          "s7", "nope")
async_oid = [e["order_id"] for e in seen if e["kind"] == "order_response" and e["seq"] == out["async_seq"]]
out["async_oid"] = async_oid[0] if async_oid else None
out["cancel"] = trader.cancel_order_stock(account, out["resting"])
out["cancel_async_seq"] = trader.cancel_order_stock_async(account, out["async_oid"])
by_sysid = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.1, "s8", "sysid-1")
by_sysid_async = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 9.2, "s8", "sysid-2")
out["by_sysid"], out["by_sysid_async"] = by_sysid, by_sysid_async
sysid = trader.query_stock_order(account, by_sysid).order_sysid
sysid_async = trader.query_stock_order(account, by_sysid_async).order_sysid
out["cancel_sysid"] = trader.cancel_order_stock_sysid(account, "SH", sysid)
out["cancel_sysid_async_seq"] = trader.cancel_order_stock_sysid_async(account, xc.SH_MARKET, sysid_async)
out["cancel_unknown"] = trader.cancel_order_stock(account, 987654321)
out["cancel_filled"] = trader.cancel_order_stock(account, out["filled"])
wait(lambda s: {out["resting"], out["async_oid"], by_sysid, by_sysid_async} <= {
    e["order_id"] for e in s if e["kind"] == "order"
                                                       and e["status"] == xc.ORDER_CANCELED})
wait(lambda s: sum(e["kind"] == "cancel_error" for e in s) >= 2)
a = trader.query_stock_asset(account)
out["asset"] = dict(cash=a.cash, frozen=a.frozen_cash, total=a.total_asset, m_cash=a.m_dCash,
                    cls=isinstance(a, xttype.XtAsset))
out["orders"] = orders_view(trader.query_stock_orders(account))
out["cancelable"] = orders_view(trader.query_stock_orders(account, cancelable_only=True))
one = trader.query_stock_order(account, out["filled"])
out["one"] = orders_view([one])[0] if one is not None else None
out["no_order"] = trader.query_stock_order(account, 987654321)
out["trades"] = [dict(order_id=t.order_id, remark=t.order_remark, strategy=t.strategy_name, volume=t.traded_volume,
                      cls=isinstance(t, xttype.XtTrade)) for t in trader.query_stock_trades(account)]
out["positions"] = [dict(code=p.stock_code, volume=p.volume, can_use=p.can_use_volume, m_volume=p.m_nVolume)
                    for p in trader.query_stock_positions(account)]
p = trader.query_stock_position(account, "600000.SH")
out["position"] = dict(code=p.stock_code, volume=p.volume) if p is not None else None
out["no_position"] = trader.query_stock_position(account, "000001.SZ")
out["status"] = [(s.account_id, s.status) for s in trader.query_account_status()]
out["infos"] = [(i.account_id, i.login_status) for i in trader.query_account_infos()]
out["other_asset"] = trader.query_stock_asset(StockAccount("NOPE1"))
got = {}
trader.query_stock_orders_async(account, lambda r: got.__setitem__("orders", orders_view(r)))
trader.query_stock_asset_async(account, lambda r: got.__setitem__("asset", r.cash))
trader.query_stock_positions_async(account, lambda r: got.__setitem__("positions", len(r)))
trader.query_stock_trades_async(account, lambda r: got.__setitem__("trades", len(r)))
trader.query_account_status_async(lambda r: got.__setitem__("status", [s.status for s in r]))
wait(lambda s: len(got) == 5)
out["async_queries"] = got
out["credit_on_stock"] = trader.query_credit_detail(account)  # served: what MiniQMT answers for a stock account
try:
    trader.query_ipo_data()
    out["unserved"] = "returned"
except AttributeError as e:
    out["unserved"] = [type(e).__name__, isinstance(e, NotImplementedError), str(e)]
try:
    trader.fund_transfer(account, xc.FUNDS_TRANSFER_NORMAL_TO_SPEED, 100.0)
    out["unserved_transfer"] = "returned"
except AttributeError as e:
    out["unserved_transfer"] = [type(e).__name__, str(e)]
time.sleep(0.5)  # pushes already in flight; nothing below waits for them
with lock:
    out["callbacks"] = list(seen)
trader.stop()
emit(**out)
'''

# A second program: started after the first has ended, it asks for today's orders and trades.
QUERIES = COMMON + '''
trader = XtQuantTrader(path, 124, CB())
trader.start()
assert trader.connect() == 0
account = StockAccount(acct)
emit(orders=orders_view(trader.query_stock_orders(account)),
     trades=[dict(order_id=t.order_id, remark=t.order_remark, strategy=t.strategy_name)
             for t in trader.query_stock_trades(account)])
trader.stop()
'''

# Places one order (its answer may be lost on the way), prints what order_stock returned.
ONE_ORDER = COMMON + '''
trader = XtQuantTrader(path, 125, CB())
trader.start()
assert trader.connect() == 0
account = StockAccount(acct)
assert trader.subscribe(account) == 0
emit(ready=True)
sys.stdin.readline()  # the test arranges the fault, then says go
oid = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0, "one", "only-once")
wait(lambda s: any(e["kind"] == "order" and e["order_id"] == oid and e["status"] == xc.ORDER_SUCCEEDED for e in s),
     timeout=20)
with lock:
    emit(order_id=oid, callbacks=list(seen))
trader.stop()
'''

# Connects, then waits for on_disconnected; then builds a new trader (XunTou's reconnect recipe) when told.
DISCONNECT = COMMON + '''
trader = XtQuantTrader(path, 126, CB())
trader.start()
assert trader.connect() == 0
account = StockAccount(acct)
assert trader.subscribe(account) == 0
emit(ready=True)
ok = wait(lambda s: any(e["kind"] == "disconnected" for e in s), timeout=40)
after = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0, "dc", "after-dc")
with lock:
    emit(disconnected=ok, after=after, callbacks=list(seen))
sys.stdin.readline()  # the test brings the link back, then says go
trader.stop()
again = XtQuantTrader(path, 127, CB())
again.start()
rc = -1
end = time.time() + 40
while rc != 0 and time.time() < end:
    rc = again.connect()
    if rc != 0:
        time.sleep(0.5)
sub = again.subscribe(account)
oid = again.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0, "dc", "reconnected")
emit(reconnect=rc, subscribe=sub, order_id=oid)
again.stop()
'''

# Connected and subscribed, it reports the account status pushes it hears.
STATUS = COMMON + '''
trader = XtQuantTrader(path, 128, CB())
trader.start()
assert trader.connect() == 0
account = StockAccount(acct)
assert trader.subscribe(account) == 0
emit(ready=True)
wait(lambda s: any(e["kind"] == "account_status" for e in s), timeout=20)
with lock:
    emit(callbacks=list(seen))
trader.stop()
'''

"""Unmodified xtquant programs trading a margin (两融) account: ``StockAccount(id, 'CREDIT')``, xtconstant's credit
order types and the five credit queries, read by the attribute names of the wheel's manual (doc/xttrader.md).
They know nothing of xtqueue. Each prints JSON lines."""

from programs import COMMON

CREDIT_COMMON = COMMON + '''
# the attribute names of the wheel's manual (doc/xttrader.md), every one read below
DETAIL = ["account_type", "account_id", "m_nStatus", "m_nUpdateTime", "m_nCalcConfig", "m_dFrozenCash", "m_dBalance",
          "m_dAvailable", "m_dPositionProfit", "m_dMarketValue", "m_dFetchBalance", "m_dStockValue", "m_dFundValue",
          "m_dTotalDebt", "m_dEnableBailBalance", "m_dPerAssurescaleValue", "m_dAssureAsset", "m_dFinDebt",
          "m_dFinDealAvl", "m_dFinFee", "m_dSloDebt", "m_dSloMarketValue", "m_dSloFee", "m_dOtherFare",
          "m_dFinMaxQuota", "m_dFinEnableQuota", "m_dFinUsedQuota", "m_dSloMaxQuota", "m_dSloEnableQuota",
          "m_dSloUsedQuota", "m_dSloSellBalance", "m_dUsedSloSellBalance", "m_dSurplusSloSellBalance"]
COMPACT = ["account_type", "account_id", "compact_type", "cashgroup_prop", "exchange_id", "open_date", "business_vol",
           "real_compact_vol", "ret_end_date", "business_balance", "businessFare", "real_compact_balance",
           "real_compact_fare", "repaid_fare", "repaid_balance", "instrument_id", "compact_id", "position_str"]
SUBJECT = ["account_type", "account_id", "slo_status", "fin_status", "exchange_id", "slo_ratio", "fin_ratio",
           "instrument_id"]
SLO_CODE = ["account_type", "account_id", "cashgroup_prop", "exchange_id", "enable_amount", "instrument_id"]
ASSURE = ["account_type", "account_id", "assure_status", "exchange_id", "assure_ratio", "instrument_id"]


def view(rows, names):
    """Each object as {name: value} of the manual's names, and its class name; None stays None."""
    if rows is None:
        return None
    return [dict({n: getattr(r, n) for n in names}, cls=type(r).__name__) for r in rows]


def credit_queries(trader, account):
    return dict(detail=view(trader.query_credit_detail(account), DETAIL),
                compacts=view(trader.query_stk_compacts(account), COMPACT),
                subjects=view(trader.query_credit_subjects(account), SUBJECT),
                slo_codes=view(trader.query_credit_slo_code(account), SLO_CODE),
                assure=view(trader.query_credit_assure(account), ASSURE))


def credit_queries_async(trader, account):
    got = {}
    trader.query_credit_detail_async(account, lambda r: got.__setitem__("detail", view(r, DETAIL)))
    trader.query_stk_compacts_async(account, lambda r: got.__setitem__("compacts", view(r, COMPACT)))
    trader.query_credit_subjects_async(account, lambda r: got.__setitem__("subjects", view(r, SUBJECT)))
    trader.query_credit_slo_code_async(account, lambda r: got.__setitem__("slo_codes", view(r, SLO_CODE)))
    trader.query_credit_assure_async(account, lambda r: got.__setitem__("assure", view(r, ASSURE)))
    wait(lambda s: len(got) == 5, timeout=20)
    return got


def filled(oid):
    return lambda s: any(e["kind"] == "trade" and e["order_id"] == oid for e in s)
'''

# A margin buy, then (the test rolls the day: T+1) a sell-to-repay, a direct cash repayment, the five queries.
MARGIN = CREDIT_COMMON + '''
trader = XtQuantTrader(path, 131, CB())
trader.start()
out = {"connect": trader.connect()}
account = StockAccount(acct, "CREDIT")
out["subscribe"] = trader.subscribe(account)
out["fin_buy"] = trader.order_stock(account, "600000.SH", xc.CREDIT_FIN_BUY, 1000, xc.FIX_PRICE, 10.0, "margin",
                                    "fin-1")
out["fin_buy_filled"] = wait(filled(out["fin_buy"]), timeout=20)
out["day1"] = credit_queries(trader, account)
emit(**out)
sys.stdin.readline()  # the test rolls the day (the bought shares become sellable), then says go
out = {}
seq = trader.order_stock_async(account, "600000.SH", xc.CREDIT_SELL_SECU_REPAY, 500, xc.FIX_PRICE, 10.0, "margin",
                               "repay-sell")
wait(lambda s: any(e["kind"] == "order_response" and e["seq"] == seq for e in s), timeout=20)
with lock:
    out["sell_repay"] = [e["order_id"] for e in seen if e["kind"] == "order_response" and e["seq"] == seq][0]
out["sell_repay_filled"] = wait(filled(out["sell_repay"]), timeout=20)
# 直接还款: the order volume is the amount in yuan (XunTou's own example passes FIX_PRICE, 0)
out["cash_repay"] = trader.order_stock(account, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 1000.51, xc.FIX_PRICE, 0,
                                       "margin", "repay-cash")
out["cash_repay_done"] = wait(lambda s: any(e["kind"] == "order" and e["order_id"] == out["cash_repay"]
                                            and e["status"] == xc.ORDER_SUCCEEDED for e in s), timeout=20)
out["day2"] = credit_queries(trader, account)
out["day2_async"] = credit_queries_async(trader, account)
a = trader.query_stock_asset(account)
out["asset_cash"] = None if a is None else a.cash
out["orders"] = orders_view(trader.query_stock_orders(account))
out["status"] = [(s.account_id, s.account_type) for s in trader.query_account_status()]
with lock:
    out["callbacks"] = list(seen)
trader.stop()
emit(**out)
'''

# One direct cash repayment (its answer may be lost or delayed on the way); prints what order_stock returned.
ONE_REPAY = CREDIT_COMMON + '''
trader = XtQuantTrader(path, 132, CB())
trader.start()
assert trader.connect() == 0
account = StockAccount(acct, "CREDIT")
assert trader.subscribe(account) == 0
emit(ready=True)
sys.stdin.readline()  # the test arranges the fault, then says go
oid = trader.order_stock(account, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 1000.51, xc.FIX_PRICE, 0, "margin",
                         "repay-once")
wait(lambda s: any(e["kind"] == "order" and e["order_id"] == oid and e["status"] == xc.ORDER_SUCCEEDED for e in s),
     timeout=20)
with lock:
    emit(order_id=oid, callbacks=list(seen))
trader.stop()
'''

# An account of the wrong type for the executor (argv[3]: STOCK or CREDIT): orders, queries and subscribe fail.
WRONG_TYPE = CREDIT_COMMON + '''
trader = XtQuantTrader(path, 133, CB())
trader.start()
out = {"connect": trader.connect()}
account = StockAccount(acct, sys.argv[3])
out["subscribe"] = trader.subscribe(account)
out["buy"] = trader.order_stock(account, "600000.SH", xc.STOCK_BUY, 100, xc.FIX_PRICE, 10.0, "wrong", "buy")
out["fin_buy"] = trader.order_stock(account, "600000.SH", xc.CREDIT_FIN_BUY, 100, xc.FIX_PRICE, 10.0, "wrong", "fin")
out["cash_repay"] = trader.order_stock(account, "600000.SH", xc.CREDIT_DIRECT_CASH_REPAY, 100.0, xc.FIX_PRICE, 0,
                                       "wrong", "repay")
a = trader.query_stock_asset(account)
out["asset"] = None if a is None else a.cash
out["orders"] = orders_view(trader.query_stock_orders(account))
out.update(credit_queries(trader, account))
out["async"] = credit_queries_async(trader, account)
with lock:
    out["callbacks"] = list(seen)
trader.stop()
emit(**out)
'''

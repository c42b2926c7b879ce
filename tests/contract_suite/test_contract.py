"""Contract cases (TC-xx) written against the XtQuantTrader INTERFACE only.

Everything here is something a real account allows: queries, limit orders far from the market that rest and are
cancelled, failure values. Run against the simulator by default; see README.md for real MiniQMT.
"""

from __future__ import annotations

from xtquant import xtconstant as xc
from xtquant import xttype

FINAL = (xc.ORDER_CANCELED, xc.ORDER_PART_CANCEL, xc.ORDER_SUCCEEDED, xc.ORDER_JUNK)


def _order_pushes(v, order_id):
    return [o for n, o in v.rec.events if n == "on_stock_order" and o.order_id == order_id]


def test_tc01_query_asset(venue):
    a = venue.trader.query_stock_asset(venue.account)
    assert a is not None and a.account_id == venue.account.account_id
    for f in ("cash", "frozen_cash", "market_value", "total_asset"):
        assert isinstance(getattr(a, f), float)
    assert a.m_dCash == a.cash  # XunTou's own example reads the raw name


def test_tc02_query_lists(venue):
    t, acc = venue.trader, venue.account
    for result in (t.query_stock_orders(acc), t.query_stock_trades(acc), t.query_stock_positions(acc)):
        assert result is None or isinstance(result, list)  # None = failed OR empty: never read as "none"


def test_tc03_account_status(venue):
    st = venue.trader.query_account_status()
    assert any(s.account_id == venue.account.account_id and s.status == xc.ACCOUNT_STATUS_OK for s in st)
    infos = venue.trader.query_account_infos()
    assert any(i.account_id == venue.account.account_id for i in infos)


def test_tc04_rest_then_cancel_async(venue):
    t, acc, rec = venue.trader, venue.account, venue.rec
    seq = t.order_stock_async(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct",
                              "xtq-ct-04")
    assert seq > 0
    assert rec.wait_for(lambda ev: any(n == "on_order_stock_async_response" and o.seq == seq for n, o in ev))
    resp = next(o for n, o in rec.events if n == "on_order_stock_async_response" and o.seq == seq)
    assert resp.order_id > 0 and resp.order_remark == "xtq-ct-04"
    assert rec.wait_for(lambda ev: any(o.order_sysid for o in _order_pushes(venue, resp.order_id)))
    o = t.query_stock_order(acc, resp.order_id)
    assert o.order_status in (xc.ORDER_REPORTED, xc.ORDER_WAIT_REPORTING, xc.ORDER_UNREPORTED)
    assert o.price_type == 50 and o.offset_flag == xc.OFFSET_FLAG_OPEN and o.order_volume == 100
    assert o.order_id in [x.order_id for x in t.query_stock_orders(acc, True)]
    cseq = t.cancel_order_stock_async(acc, resp.order_id)
    assert cseq > 0
    assert rec.wait_for(lambda ev: any(n == "on_cancel_order_stock_async_response" and o.seq == cseq
                                       for n, o in ev))
    cr = next(o for n, o in rec.events if n == "on_cancel_order_stock_async_response" and o.seq == cseq)
    assert cr.cancel_result == 0
    assert rec.wait_for(lambda ev: any(o.order_status == xc.ORDER_CANCELED
                                       for o in _order_pushes(venue, resp.order_id)))
    assert t.query_stock_order(acc, resp.order_id).order_status == xc.ORDER_CANCELED


def test_tc05_rest_then_cancel_sync_by_sysid(venue):
    t, acc, rec = venue.trader, venue.account, venue.rec
    oid = t.order_stock(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct", "xtq-ct-05")
    assert oid > 0
    assert rec.wait_for(lambda ev: any(o.order_sysid for o in _order_pushes(venue, oid)))
    sysid = t.query_stock_order(acc, oid).order_sysid
    market = xc.SH_MARKET if venue.code.endswith(".SH") else xc.SZ_MARKET
    assert t.cancel_order_stock_sysid(acc, market, sysid) == 0
    assert rec.wait_for(lambda ev: any(o.order_status == xc.ORDER_CANCELED for o in _order_pushes(venue, oid)))


def test_tc06_remark_truncated_to_24_bytes(venue):
    t, acc, rec = venue.trader, venue.account, venue.rec
    remark = "xtq-ct-06" + "备注测试"  # 9 + 12 = 21 bytes: kept
    long_remark = "xtq-ct-06-" + "中" * 6  # 10 + 18 = 28 bytes: cut to 24 -> 4 chars of 中
    oid1 = t.order_stock(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct", remark)
    oid2 = t.order_stock(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct", long_remark)
    assert t.query_stock_order(acc, oid1).order_remark == remark
    assert t.query_stock_order(acc, oid2).order_remark == "xtq-ct-06-" + "中" * 4
    for oid in (oid1, oid2):
        assert t.cancel_order_stock(acc, oid) == 0


def test_tc07_unknown_order_id_failure_values(venue):
    t, acc, rec = venue.trader, venue.account, venue.rec
    assert t.query_stock_order(acc, 2_000_000_001) is None
    assert t.cancel_order_stock(acc, 2_000_000_001) == -1
    cseq = t.cancel_order_stock_async(acc, 2_000_000_002)
    assert rec.wait_for(lambda ev: any(n == "on_cancel_order_stock_async_response" and o.seq == cseq
                                       for n, o in ev))
    cr = next(o for n, o in rec.events if n == "on_cancel_order_stock_async_response" and o.seq == cseq)
    assert cr.cancel_result == -1
    assert rec.wait_for(lambda ev: any(n == "on_cancel_error" and o.order_id == 2_000_000_002 for n, o in ev))


def test_tc08_cancel_twice_second_refused(venue):
    t, acc, rec = venue.trader, venue.account, venue.rec
    oid = t.order_stock(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct", "xtq-ct-08")
    assert t.cancel_order_stock(acc, oid) == 0
    assert rec.wait_for(lambda ev: any(o.order_status in FINAL for o in _order_pushes(venue, oid)))
    assert t.cancel_order_stock(acc, oid) == -1
    # the order itself is unchanged
    assert t.query_stock_order(acc, oid).order_status == xc.ORDER_CANCELED


def test_tc09_order_error_after_response(venue):
    """An order refused by the counter (volume not a board lot) answers before its on_order_error."""
    t, acc, rec = venue.trader, venue.account, venue.rec
    seq = t.order_stock_async(acc, venue.code, xc.STOCK_BUY, 150, xc.FIX_PRICE, venue.rest_buy_price, "ct",
                              "xtq-ct-09")
    assert rec.wait_for(lambda ev: any(n == "on_order_error" and o.order_remark == "xtq-ct-09" for n, o in ev))
    names = [n for n, o in rec.events if getattr(o, "seq", None) == seq]
    assert names.index("on_order_stock_async_response") < names.index("on_order_error")


def test_tc10_objects_are_xttype_shaped(venue):
    t, acc = venue.trader, venue.account
    oid = t.order_stock(acc, venue.code, xc.STOCK_BUY, 100, xc.FIX_PRICE, venue.rest_buy_price, "ct", "xtq-ct-10")
    o = t.query_stock_order(acc, oid)
    for f in ("account_id", "stock_code", "order_id", "order_sysid", "order_time", "order_type", "order_volume",
              "price_type", "price", "traded_volume", "traded_price", "order_status", "status_msg",
              "strategy_name", "order_remark", "direction", "offset_flag"):
        assert hasattr(o, f), f
    assert isinstance(o.order_time, int) and isinstance(o.order_sysid, str)
    assert t.cancel_order_stock(acc, oid) == 0
    if not venue.real:
        assert isinstance(o, xttype.XtOrder)

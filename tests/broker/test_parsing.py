"""The boundary maps: every xtconstant value of each family we translate has a mapping (a new wheel value fails
here, not in production), and the reports read xttype objects the way MiniQMT fills them."""

import math

from xtquant import xtconstant as xc
from xtquant import xttype

from executor.broker.xt import parsing
from producer_lib import contract as c


def _constants(prefix: str, exclude: set[str] = frozenset()) -> dict[str, int]:
    return {n: getattr(xc, n) for n in dir(xc) if n.startswith(prefix) and n not in exclude
            and isinstance(getattr(xc, n), int)}


def test_every_order_status_is_mapped():
    for name, value in _constants("ORDER_", exclude={"ORDER_TYPE_SET"}).items():
        if name in {"ORDER_TYPE_SET"}:
            continue
        assert value in parsing.ORDER_STATUS_FROM_XT, f"xtconstant.{name}={value} has no OrderStatus"


def test_every_contract_order_status_comes_from_one_code():
    assert set(parsing.ORDER_STATUS_FROM_XT.values()) == set(c.OrderStatus)


def test_every_contract_price_type_is_mapped_to_xtconstant():
    assert set(parsing.PRICE_TYPE_TO_XT) == set(c.PriceType)
    assert parsing.PRICE_TYPE_TO_XT[c.PriceType.LIMIT] == xc.FIX_PRICE == 11
    assert parsing.PRICE_TYPE_TO_XT[c.PriceType.SZ_FOK] == xc.MARKET_SZ_FULL_OR_CANCEL == 48


def test_every_account_status_has_a_name():
    for name, value in _constants("ACCOUNT_STATUS").items():
        assert value in parsing.ACCOUNT_STATUS_NAMES, f"xtconstant.{name}={value} has no name"


def test_every_market_maps():
    assert set(parsing.MARKET_TO_XT) == set(c.Market)
    assert parsing.MARKET_TO_XT[c.Market.BJ] == 70


def test_unknown_status_code_is_unknown_not_an_error():
    assert parsing.order_status(59) is c.OrderStatus.UNKNOWN


def _order(**kw):
    base = dict(account_id="A1", stock_code="600000.SH", order_id=7, order_sysid="S7", order_time=1_700_000_000,
                order_type=xc.STOCK_SELL, order_volume=300, price_type=50, price=10.5, traded_volume=100,
                traded_price=10.49, order_status=xc.ORDER_PART_SUCC, status_msg="", strategy_name="s",
                order_remark="abc", direction=48, offset_flag=xc.OFFSET_FLAG_CLOSE, secu_account="", instrument_name="浦发银行")
    base.update(kw)
    return xttype.XtOrder(**base)


def test_order_report_reads_an_xtorder():
    r = parsing.order_report(_order())
    assert (r.order_id, r.client_order_id, r.side, r.status, r.status_code) == (7, "abc", c.Side.SELL,
                                                                              c.OrderStatus.PART_SUCC, 55)
    assert (r.volume, r.traded_volume, r.price_type, r.instrument_name) == (300, 100, 50, "浦发银行")


def test_side_falls_back_to_offset_flag_for_other_order_types():
    assert parsing.order_report(_order(order_type=xc.ETF_PURCHASE, offset_flag=xc.OFFSET_FLAG_OPEN)).side is c.Side.BUY


def test_nan_cost_of_a_closed_position_travels_as_zero():
    p = xttype.XtPosition("A1", "600000.SH", 0, 0, math.nan, 0.0, 0, 0, 0, math.nan, 48, 0.0, 0.0, "", "")
    r = parsing.position_report(p)
    assert r.avg_price == 0.0 and r.open_price == 0.0


def test_responses_carry_the_remark_as_client_order_id():
    resp = xttype.XtOrderResponse("A1", 42, "strat", "coid-1", "", 9)
    e = parsing.order_responded(resp)
    assert (e.order_id, e.client_order_id, e.seq, e.strategy) == (42, "coid-1", 9, "strat")

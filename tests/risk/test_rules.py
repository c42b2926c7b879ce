"""Every risk rule with numbers at, just under and just over its limit (RiskGate alone: no Redis, no broker).

Every rule is inclusive: value == limit is allowed, value > limit refused (sell side of the band: price == floor
allowed, price < floor refused)."""

from __future__ import annotations

from datetime import date

import pytest

from executor.safety.risk import RiskGate, RiskLimits, classify_board
from producer_lib import contract as c

B, S = c.Side.BUY, c.Side.SELL
_n = 0


def o(code="600000.SH", side=B, volume=100, price=10.0, strategy="s1", price_type=c.PriceType.LIMIT):
    global _n
    _n += 1
    return c.PlaceOrder(client_order_id=f"r{_n}", code=code, side=side, volume=volume,
                        price=price if price_type is c.PriceType.LIMIT else None, price_type=price_type,
                        strategy=strategy)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def gate(tmp_path=None, clock=None, today=None, **limits) -> RiskGate:
    g = RiskGate(RiskLimits(**limits), None if tmp_path is None else tmp_path / "risk.sqlite3", "A1",
                 clock=clock or Clock(), today=today or (lambda: date(2026, 1, 5)))
    g.open()
    return g


def verdict(g: RiskGate, cmd: c.PlaceOrder):
    ref = g.check(cmd)
    return None if ref is None else ref.details


# --- static rules -------------------------------------------------------------------------------------------------
def test_trading_disabled_refuses_everything():
    g = gate(trading_enabled=False)
    assert verdict(g, o()) == {"rule": "trading_enabled", "limit": False, "value": True}
    assert verdict(gate(trading_enabled=True), o()) is None


def test_allowed_and_blocked_codes():
    g = gate(allowed_codes=["600000.SH", "000001.sz"])
    assert verdict(g, o("600000.SH")) is None and verdict(g, o("000001.SZ")) is None
    assert verdict(g, o("600001.SH"))["rule"] == "allowed_codes"
    g = gate(blocked_codes=["600000.SH"])
    assert verdict(g, o("600000.SH")) == {"rule": "blocked_codes", "limit": ["600000.SH"], "value": "600000.SH"}
    assert verdict(g, o("600001.SH")) is None


@pytest.mark.parametrize("code, board", [
    ("600000.SH", "main"), ("601398.SH", "main"), ("000001.SZ", "main"), ("002594.SZ", "main"),
    ("688981.SH", "star"), ("689009.SH", "star"), ("300750.SZ", "chinext"), ("301236.SZ", "chinext"),
    ("830799.BJ", "bse"), ("430047.BJ", "bse"), ("920002.BJ", "bse"), ("510300.SH", "etf"), ("159915.SZ", "etf"),
    ("588000.SH", "etf"), ("501018.SH", "lof"), ("161725.SZ", "lof"), ("113050.SH", "cb"), ("110059.SH", "cb"),
    ("123107.SZ", "cb"), ("128136.SZ", "cb"), ("204001.SH", "other"), ("399001.SZ", "other"),  # a repo, an index
])
def test_board_classification(code, board):
    assert classify_board(code) == board


def test_board_classification_agrees_with_the_simulator():
    from executor.sim import rules

    names = {rules.SH_MAIN: "main", rules.SZ_MAIN: "main", rules.STAR: "star", rules.CHINEXT: "chinext",
             rules.BSE: "bse", rules.ETF: "etf", rules.LOF: "lof", rules.CB: "cb", None: "other"}
    for suffix in ("SH", "SZ", "BJ"):
        for head in range(0, 1000):
            code = f"{head:03d}{head % 7:03d}.{suffix}"
            inst = rules.classify(code)
            assert classify_board(code) == names[inst.board if inst else None], code


def test_allowed_and_blocked_boards():
    g = gate(allowed_boards=["main", "etf"])
    assert verdict(g, o("600000.SH")) is None and verdict(g, o("510300.SH")) is None
    assert verdict(g, o("688981.SH")) == {"rule": "allowed_boards", "limit": ["main", "etf"], "value": "star"}
    g = gate(blocked_boards=["chinext", "bse", "cb"])
    assert verdict(g, o("300750.SZ"))["rule"] == "blocked_boards"
    assert verdict(g, o("830799.BJ"))["value"] == "bse"
    assert verdict(g, o("113050.SH", volume=10))["value"] == "cb"
    assert verdict(g, o("000001.SZ")) is None


def test_max_order_volume_inclusive():
    g = gate(max_order_volume=1000)
    assert verdict(g, o(volume=999)) is None  # just under
    assert verdict(g, o(volume=1000)) is None  # at
    assert verdict(g, o(volume=1001)) == {"rule": "max_order_volume", "limit": 1000, "value": 1001}  # just over


def test_max_order_notional_inclusive():
    g = gate(max_order_notional_cny=10_000)
    assert verdict(g, o(volume=1000, price=9.99)) is None  # 9 990
    assert verdict(g, o(volume=1000, price=10.0)) is None  # 10 000: at
    assert verdict(g, o(volume=1000, price=10.01)) == {"rule": "max_order_notional_cny", "limit": 10_000,
                                                       "value": 10_010.0}
    assert verdict(g, o(volume=3, price=0.1)) is None  # float noise (0.30000000000000004) is not "over"


def test_market_order_notional_uses_the_reference_price_or_refuses():
    g = gate(max_order_notional_cny=10_000)
    mkt = dict(price_type=c.PriceType.LATEST)
    assert verdict(g, o(volume=100, **mkt)) == {"rule": "max_order_notional_cny", "limit": 10_000, "value": None}
    g.on_event(c.PositionUpdated(position=c.PositionReport(code="600000.SH", volume=0, can_use_volume=0,
                                                           last_price=100.0)))
    assert verdict(g, o(volume=100, **mkt)) is None  # 10 000: at
    assert verdict(g, o(volume=101, **mkt))["value"] == 10_100.0


# --- price band -----------------------------------------------------------------------------------------------------
def test_price_band_buy_and_sell():
    g = gate(price_band_pct=5)
    g.set_positions([c.PositionReport(code="600000.SH", volume=0, can_use_volume=0, last_price=10.0)], 0.0)
    assert verdict(g, o(side=B, price=10.49)) is None  # just under 10.50
    assert verdict(g, o(side=B, price=10.50)) is None  # at
    assert verdict(g, o(side=B, price=10.51)) == {"rule": "price_band_pct", "limit": 10.5, "value": 10.51}
    assert verdict(g, o(side=S, price=9.51)) is None  # above the floor 9.50
    assert verdict(g, o(side=S, price=9.50)) is None  # at
    assert verdict(g, o(side=S, price=9.49)) == {"rule": "price_band_pct", "limit": 9.5, "value": 9.49}
    assert verdict(g, o(side=B, price=1.0)) is None  # a cheap buy / a dear sell are not fat fingers
    assert verdict(g, o(side=S, price=100.0)) is None


def test_price_band_reference_follows_fills_and_position_events():
    g = gate(price_band_pct=10)
    g.on_event(c.PositionUpdated(position=c.PositionReport(code="600000.SH", volume=0, can_use_volume=0,
                                                           last_price=10.0)))
    assert verdict(g, o(price=11.0)) is None and verdict(g, o(price=11.01)) is not None
    g.on_event(c.OrderFilled(trade=c.TradeReport(trade_id="t", order_id=1, code="600000.SH", order_type=23,
                                                 price=20.0, volume=100, amount=2000.0)))
    assert verdict(g, o(price=22.0)) is None and verdict(g, o(price=22.01))["limit"] == 22.0


def test_price_band_without_reference():
    assert verdict(gate(price_band_pct=5), o(price=999.0)) is None  # default: allow
    g = gate(price_band_pct=5, price_band_without_reference="refuse")
    assert verdict(g, o(price=10.0)) == {"rule": "price_band_pct", "limit": 5.0, "value": None}
    mkt = o(price_type=c.PriceType.LATEST)
    # A market order without a reference is refused too: nothing bounds where it fills (it used to skip the band).
    assert verdict(g, mkt) == {"rule": "price_band_pct", "limit": 5.0, "value": None}
    g.on_event(c.PositionUpdated(position=c.PositionReport(code="600000.SH", volume=0, can_use_volume=0, last_price=10.0)))
    assert verdict(g, mkt) is None  # with a reference it passes (it has no price of its own to compare)


# --- sellable volume ---------------------------------------------------------------------------------------------------
def test_sells_within_sellable_volume_minus_own_sells_in_flight():
    clock = Clock()
    g = gate(clock=clock, sell_within_sellable=True)
    assert verdict(g, o(side=S, volume=100)) == {"rule": "sellable_volume", "limit": None, "value": 100}
    g.set_positions([c.PositionReport(code="600000.SH", volume=1000, can_use_volume=500)], clock())
    assert verdict(g, o(side=S, volume=501)) == {"rule": "sellable_volume", "limit": 500, "value": 501}  # over
    first = o(side=S, volume=300)
    assert verdict(g, first) is None  # under: 500 -> 200 left while in flight
    assert verdict(g, o(side=S, volume=201)) == {"rule": "sellable_volume", "limit": 200, "value": 201}
    second = o(side=S, volume=200)
    assert verdict(g, second) is None  # at
    assert verdict(g, o(side=S, volume=1))["limit"] == 0
    assert verdict(g, o(side=B, volume=10_000)) is None  # buys are not limited by holdings
    assert verdict(g, o("000001.SZ", side=S, volume=100))["limit"] == 0  # no position
    # The broker refused the second: its volume is free again.
    g.placement_done(second.client_order_id, order_id=None, status=None, placed=False)
    assert verdict(g, o(side=S, volume=201))["limit"] == 200
    # The first was accepted at t=1001; a snapshot sent at t=1002 already shows it frozen (can_use 200).
    clock.t = 1001.0
    g.placement_done(first.client_order_id, order_id=7, status=c.OrderStatus.REPORTED, placed=True)
    clock.t = 1002.0
    g.set_positions([c.PositionReport(code="600000.SH", volume=1000, can_use_volume=200)], clock())
    assert verdict(g, o(side=S, volume=200)) is None


def test_positions_needed_only_for_sells_and_when_stale():
    clock = Clock()
    g = gate(clock=clock, sell_within_sellable=True, positions_cache_ms=1000)
    assert g.needs_positions([o(side=S)]) and not g.needs_positions([o(side=B)])
    g.set_positions([], clock())
    clock.t += 1.0
    assert not g.needs_positions([o(side=S)])  # at the cache age: reused
    clock.t += 0.001
    assert g.needs_positions([o(side=S)])
    assert not gate(sell_within_sellable=False).needs_positions([o(side=S)])


# --- open orders ----------------------------------------------------------------------------------------------------
def _report(oid, status, coid=""):
    return c.OrderReport(order_id=oid, client_order_id=coid, code="600000.SH", side=B, order_type=23, volume=100,
                         price=10.0, price_type=50, status=status, status_code=50)


def test_max_open_orders_counts_broker_orders_and_in_flight():
    g = gate(max_open_orders=3)
    g.sync_orders([_report(1, c.OrderStatus.REPORTED), _report(2, c.OrderStatus.SUCCEEDED),
                   _report(3, c.OrderStatus.PART_SUCC)])
    assert g.open_count() == 2  # under
    a = o()
    assert verdict(g, a) is None  # 2 + 1 = 3: at
    assert verdict(g, o()) == {"rule": "max_open_orders", "limit": 3, "value": 4}  # over
    g.on_event(c.OrderUpdated(order=_report(1, c.OrderStatus.CANCELED)))  # one finishes
    assert verdict(g, o()) is None
    g.placement_done(a.client_order_id, order_id=10, status=c.OrderStatus.REPORTED, placed=True)
    assert g.open_count() == 3
    g.on_event(c.OrderRejected(order_id=10))
    assert g.open_count() == 2


def test_an_order_of_unknown_outcome_stays_open_until_the_broker_shows_it():
    g = gate(max_open_orders=1)
    a = o()
    assert verdict(g, a) is None
    g.placement_done(a.client_order_id, order_id=None, status=None, placed=None)  # answered outcome_unknown
    assert g.open_count() == 1 and verdict(g, o())["rule"] == "max_open_orders"
    g.sync_orders([])  # a list that does not show it yet (it may be older than the order) changes nothing
    assert g.open_count() == 1
    g.on_event(c.OrderUpdated(order=_report(5, c.OrderStatus.REPORTED, a.client_order_id)))  # the broker has it
    assert g.open_count() == 1
    g.on_event(c.OrderUpdated(order=_report(5, c.OrderStatus.CANCELED, a.client_order_id)))
    assert g.open_count() == 0 and verdict(g, o()) is None


def test_a_stale_list_never_lowers_the_count_below_the_orders_the_executor_placed():
    day = [date(2026, 1, 5)]
    g = gate(today=lambda: day[0], max_open_orders=2)
    a, b = o(), o()
    assert verdict(g, a) is None and verdict(g, b) is None
    g.placement_done(a.client_order_id, order_id=10, status=c.OrderStatus.REPORTED, placed=True)
    g.placement_done(b.client_order_id, order_id=11, status=c.OrderStatus.REPORTED, placed=True)
    g.sync_orders([_report(10, c.OrderStatus.REPORTED, a.client_order_id)])  # 11 not in it yet
    assert g.open_count() == 2 and verdict(g, o())["rule"] == "max_open_orders"
    g.sync_orders([_report(10, c.OrderStatus.CANCELED), _report(11, c.OrderStatus.REPORTED)])  # a list shows final
    assert g.open_count() == 1
    day[0] = date(2026, 1, 6)  # orders do not outlive their day: the next day's list is the truth
    g.sync_orders([])
    assert g.open_count() == 0


# --- per day -----------------------------------------------------------------------------------------------------------
def test_max_daily_orders_and_persistence(tmp_path):
    day = [date(2026, 1, 5)]
    g = gate(tmp_path, today=lambda: day[0], max_daily_orders=3)
    assert [verdict(g, o()) for _ in range(3)] == [None, None, None]  # under, under, at
    assert verdict(g, o()) == {"rule": "max_daily_orders", "limit": 3, "value": 4}  # over
    g.commit()
    g.close()
    g2 = gate(tmp_path, today=lambda: day[0], max_daily_orders=3)  # a restart does not reset the day
    assert g2.orders_today == 3 and verdict(g2, o())["rule"] == "max_daily_orders"
    day[0] = date(2026, 1, 6)  # a new day starts from zero
    assert verdict(g2, o()) is None and g2.orders_today == 1


def test_max_daily_notional_and_persistence(tmp_path):
    g = gate(tmp_path, max_daily_notional_cny=30_000)
    assert verdict(g, o(volume=1000, price=10.0)) is None  # 10 000
    assert verdict(g, o(volume=1000, price=19.99)) is None  # 29 990: just under
    assert verdict(g, o(volume=2, price=5.01)) == {"rule": "max_daily_notional_cny", "limit": 30_000,
                                                   "value": 30_000.02}  # just over
    assert verdict(g, o(volume=2, price=5.0)) is None  # 30 000: at
    g.commit()
    g.close()
    g2 = gate(tmp_path, max_daily_notional_cny=30_000)
    assert g2.notional_today == pytest.approx(30_000)
    assert verdict(g2, o(volume=1, price=0.01))["rule"] == "max_daily_notional_cny"


def test_refused_orders_are_not_counted():
    g = gate(max_daily_orders=1, max_order_volume=100)
    assert verdict(g, o(volume=101))["rule"] == "max_order_volume"
    assert verdict(g, o(volume=100)) is None and g.orders_today == 1


# --- rate -------------------------------------------------------------------------------------------------------------
def test_rate_token_bucket_per_strategy():
    clock = Clock()
    g = gate(clock=clock, max_orders_per_s_per_strategy=2, orders_burst_per_strategy=2)
    assert verdict(g, o(strategy="a")) is None
    assert verdict(g, o(strategy="a")) is None  # burst of 2: at
    ref = verdict(g, o(strategy="a"))  # over
    assert ref["rule"] == "max_orders_per_s_per_strategy" and ref["limit"] == 2 and ref["value"] == 0
    assert verdict(g, o(strategy="b")) is None  # another strategy has its own bucket
    clock.t += 0.499  # just under the 0.5 s one token takes
    assert verdict(g, o(strategy="a"))["rule"] == "max_orders_per_s_per_strategy"
    clock.t += 0.001  # 0.5 s: one token
    assert verdict(g, o(strategy="a")) is None
    assert verdict(g, o(strategy="a")) is not None
    clock.t += 100  # refills up to the burst, not more
    assert [verdict(g, o(strategy="a")) is None for _ in range(3)] == [True, True, False]


def test_rate_buckets_are_bounded():
    from executor.safety import risk

    clock = Clock()
    g = gate(clock=clock, max_orders_per_s_per_strategy=0.001, orders_burst_per_strategy=1)
    for i in range(risk._MAX_BUCKETS * 2):  # more owners than buckets kept: the oldest go
        assert verdict(g, o(strategy=f"s{i}")) is None
    assert len(g._buckets) == risk._MAX_BUCKETS
    assert verdict(g, o(strategy=f"s{risk._MAX_BUCKETS * 2 - 1}")) is not None  # a kept, spent bucket still counts
    clock.t += 10_000  # every bucket has refilled to its capacity: any of them is the same as a new one
    assert verdict(g, o(strategy="new")) is None
    assert len(g._buckets) <= risk._MAX_BUCKETS


def test_rate_default_burst_is_ceil_of_rate():
    assert RiskLimits(max_orders_per_s_per_strategy=0.5).burst == 1
    assert RiskLimits(max_orders_per_s_per_strategy=2.5).burst == 3


def test_recovery_readmission_checks_static_rules_only():
    g = gate(max_daily_orders=0, max_order_volume=100)
    assert g.check(o(volume=100), fresh=False) is None  # counters are not applied (it was counted before)
    assert g.check(o(volume=101), fresh=False).rule == "max_order_volume"
    assert g.orders_today == 0


def test_settings_from_toml(tmp_path):
    from executor.config import ExecutorSettings

    path = tmp_path / "executor.toml"
    path.write_text('account = "ACC1"\n[risk]\nmax_order_volume = 10000\nmax_order_notional_cny = 200000.0\n'
                    'blocked_boards = ["bse", "cb"]\nprice_band_pct = 3.0\nsell_within_sellable = true\n')
    s = ExecutorSettings.load(path)
    assert s.risk.max_order_volume == 10_000 and s.risk.blocked_boards == ["bse", "cb"]
    assert s.risk.price_band_pct == 3.0 and s.risk.sell_within_sellable and s.risk.max_daily_orders is None
    path.write_text("[risk]\nmax_order_volum = 1\n")
    with pytest.raises(Exception, match="max_order_volum"):
        ExecutorSettings.load(path)

"""Pure rule functions with real numbers (reference section 7)."""

from datetime import datetime

import pytest
from xtquant import xtconstant as xc

from executor.sim import rules as R


@pytest.mark.parametrize("code,board,lot,min_qty,tick,t0", [
    ("600000.SH", R.SH_MAIN, 100, 100, 0.01, False),
    ("601318.SH", R.SH_MAIN, 100, 100, 0.01, False),
    ("688981.SH", R.STAR, 1, 200, 0.01, False),
    ("689009.SH", R.STAR, 1, 200, 0.01, False),
    ("000001.SZ", R.SZ_MAIN, 100, 100, 0.01, False),
    ("002594.SZ", R.SZ_MAIN, 100, 100, 0.01, False),
    ("300750.SZ", R.CHINEXT, 100, 100, 0.01, False),
    ("830799.BJ", R.BSE, 1, 100, 0.01, False),
    ("430047.BJ", R.BSE, 1, 100, 0.01, False),
    ("920002.BJ", R.BSE, 1, 100, 0.01, False),
    ("510300.SH", R.ETF, 100, 100, 0.001, False),
    ("588000.SH", R.ETF, 100, 100, 0.001, False),
    ("159915.SZ", R.ETF, 100, 100, 0.001, False),
    ("501018.SH", R.LOF, 100, 100, 0.001, False),
    ("161725.SZ", R.LOF, 100, 100, 0.001, False),
    ("113052.SH", R.CB, 10, 10, 0.001, True),
    ("110059.SH", R.CB, 10, 10, 0.001, True),
    ("118008.SH", R.CB, 10, 10, 0.001, True),
    ("123107.SZ", R.CB, 10, 10, 0.001, True),
    ("127045.SZ", R.CB, 10, 10, 0.001, True),
    ("128136.SZ", R.CB, 10, 10, 0.001, True),
])
def test_classify(code, board, lot, min_qty, tick, t0):
    i = R.classify(code)
    assert (i.board, i.lot, i.min_qty, i.tick, i.t0) == (board, lot, min_qty, tick, t0)


@pytest.mark.parametrize("code", ["600000", "600000.sh", "60000.SH", "999999.SH", "800000.SZ", "600000.BJ",
                                  "", "600000.HK"])
def test_classify_rejects_malformed_or_unknown_class(code):
    assert R.classify(code) is None


def test_markets():
    assert R.classify("600000.SH").market == xc.SH_MARKET
    assert R.classify("000001.SZ").market == xc.SZ_MARKET
    assert R.classify("830799.BJ").market == xc.MARKET_ENUM_BEIJING


@pytest.mark.parametrize("code,prev,st,down,up", [
    ("600000.SH", 10.00, False, 9.00, 11.00),        # main ±10%
    ("600000.SH", 10.05, False, 9.05, 11.06),        # 11.055 rounds half up to 11.06; 9.045 -> 9.05
    ("600321.SH", 2.00, True, 1.90, 2.10),           # ST ±5%
    ("300750.SZ", 250.00, False, 200.00, 300.00),    # ChiNext ±20%
    ("688981.SH", 90.00, False, 72.00, 108.00),      # STAR ±20%
    ("830799.BJ", 25.00, False, 17.50, 32.50),       # BSE ±30%
    ("510300.SH", 4.000, False, 3.600, 4.400),       # ETF ±10%, tick 0.001
    ("113052.SH", 120.000, False, 96.000, 144.000),  # convertible bond ±20%
])
def test_price_limits(code, prev, st, down, up):
    inst = R.classify(code, st=st)
    assert R.price_limits(prev, inst) == (pytest.approx(down), pytest.approx(up))


def test_tick():
    assert R.on_tick(10.01, 0.01) and not R.on_tick(10.015, 0.01)
    assert R.on_tick(4.001, 0.001) and not R.on_tick(4.0005, 0.001)


def test_buy_lots():
    star, main, bse, cb = (R.classify(c) for c in ("688981.SH", "600000.SH", "830799.BJ", "113052.SH"))
    assert R.buy_volume_error(150, star) and not R.buy_volume_error(200, star) and not R.buy_volume_error(201, star)
    assert R.buy_volume_error(150, main) and not R.buy_volume_error(200, main)
    assert R.buy_volume_error(99, bse) and not R.buy_volume_error(101, bse)
    assert R.buy_volume_error(15, cb) and not R.buy_volume_error(20, cb)


def test_odd_lot_sells_main_board():
    main = R.classify("600000.SH")
    # 4,880 held: 4,880, 100-multiples, 80 / 380 / 580 are fine; splitting the 80 is not
    for q in (4880, 100, 4800, 80, 380, 580):
        assert R.sell_volume_error(q, 4880, main) is None, q
    for q in (50, 30, 150, 4850):
        assert R.sell_volume_error(q, 4880, main), q


def test_odd_lot_sells_star_and_bse():
    star = R.classify("688981.SH")
    assert R.sell_volume_error(201, 1000, star) is None
    assert R.sell_volume_error(150, 1000, star)          # below 200 and not the whole remainder
    assert R.sell_volume_error(150, 150, star) is None   # the whole remainder in one order
    bse = R.classify("830799.BJ")
    assert R.sell_volume_error(99, 500, bse) and R.sell_volume_error(99, 99, bse) is None


def test_remark_cut_24_bytes_never_splits_a_char():
    assert R.cut_remark("a" * 30) == "a" * 24
    assert R.cut_remark("中" * 9) == "中" * 8            # 27 bytes -> 24
    assert R.cut_remark("ab" + "中" * 8) == "ab" + "中" * 7  # 26 bytes; 24 would split the 8th char
    assert len(R.cut_remark("ab" + "中" * 8).encode()) == 23


def test_fees_hand_computed():
    f = R.FeeSchedule()
    stock = R.classify("600000.SH")
    # buy 1000 @ 10.00 = 10,000.00: commission max(10000*0.00025=2.50, 5.00)=5.00; transfer 10000*0.00001=0.10
    assert R.fill_fees(stock, False, 10000.0, 0.0, f) == (5.00, 0.0, 0.10)
    # sell 1000 @ 11.00 = 11,000.00: commission 5.00 (min); stamp 11000*0.0005=5.50; transfer 0.11
    assert R.fill_fees(stock, True, 11000.0, 0.0, f) == (5.00, 5.50, 0.11)
    # big sell 100,000.00: commission 25.00; stamp 50.00; transfer 1.00
    assert R.fill_fees(stock, True, 100000.0, 0.0, f) == (25.00, 50.00, 1.00)
    # minimum applies per order cumulatively: second fill of 3,000 after 3,000 pays no extra commission
    assert R.fill_fees(stock, False, 3000.0, 3000.0, f) == (0.0, 0.0, 0.03)
    # ... and once past the minimum only the increment: 30,000 after 10,000: max(10)-max(5)=5.00
    assert R.fill_fees(stock, False, 30000.0, 10000.0, f) == (5.00, 0.0, 0.30)
    # funds and bonds: no stamp duty, no transfer fee
    assert R.fill_fees(R.classify("510300.SH"), True, 10000.0, 0.0, f) == (5.00, 0.0, 0.0)
    assert R.fill_fees(R.classify("113052.SH"), True, 10000.0, 0.0, f) == (5.00, 0.0, 0.0)


@pytest.mark.parametrize("hm,phase", [
    ((9, 0), R.PHASE_CLOSED), ((9, 15), R.PHASE_OPEN_CALL), ((9, 20), R.PHASE_OPEN_CALL_NO_CANCEL),
    ((9, 27), R.PHASE_PAUSE), ((9, 30), R.PHASE_CONTINUOUS), ((11, 30), R.PHASE_CLOSED),
    ((13, 0), R.PHASE_CONTINUOUS), ((14, 57), R.PHASE_CLOSE_CALL), ((15, 0), R.PHASE_CLOSED),
])
def test_session_phase(hm, phase):
    assert R.session_phase(datetime(2025, 6, 3, *hm)) == phase

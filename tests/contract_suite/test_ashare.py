"""producer_lib.ashare: a bare code's exchange never contradicts the board table (one home, two questions)."""

from __future__ import annotations

import pytest

from producer_lib import contract
from producer_lib.ashare import board_of, exchange_of_digits


def test_a_bare_code_of_a_known_board_gets_that_boards_exchange():
    # Every four-digit prefix (the longest the board table reads) with two trailing digits: a code that is on a
    # board of exactly one exchange must be given that exchange when typed bare.
    wrong = []
    for i in range(10_000):
        digits = f"{i:04d}00"
        on = [s for s in ("SH", "SZ", "BJ") if board_of(digits, s) is not None]
        if len(on) == 1 and exchange_of_digits(digits) != on[0]:
            wrong.append((digits, on[0], exchange_of_digits(digits)))
    assert wrong == []


@pytest.mark.parametrize("bare, full", [("600000", "600000.SH"), ("688981", "688981.SH"), ("000001", "000001.SZ"),
                                        ("300750", "300750.SZ"), ("159915", "159915.SZ"), ("830799", "830799.BJ"),
                                        ("920118", "920118.BJ"), ("100800", "100800.SH"), ("900901", "900901.SH"),
                                        ("200002", "200002.SZ")])
def test_normalize_code_completes_a_bare_code(bare, full):
    assert contract.normalize_code(bare) == full
    assert contract.normalize_code(f" {full.lower()} ") == full


def test_a_prefix_of_no_known_exchange_asks_for_the_suffix():
    assert exchange_of_digits("990000") is None
    with pytest.raises(ValueError, match="give it with its suffix"):
        contract.normalize_code("990000")

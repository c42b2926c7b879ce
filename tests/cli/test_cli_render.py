"""Output formatting: one readable line per event type, aligned plain tables."""

from __future__ import annotations

from producer_lib import contract as c
from cli_support import sample_events
from xtqueue import _render as r


def _msg(event, coid="", order_id=None, seq=1):
    fields = c.encode_event(event, account="A", seq=seq, client_order_id=coid, order_id=order_id,
                            ts_ms=1_760_000_000_123)
    return c.decode_event("1-0", fields)


def test_every_event_type_has_a_line():
    events = sample_events()
    assert {type(e).TYPE for e, _, _ in events} == set(c.EVENT_TYPES), "add the new event type to sample_events"
    for event, coid, order_id in events:
        line = r.event_line(_msg(event, coid, order_id))
        assert event.TYPE in line and ".123" in line
        assert "\n" not in line


def test_event_line_key_fields():
    events = {type(e).TYPE: (e, coid, oid) for e, coid, oid in sample_events()}
    assert "status=reported filled=0" in r.event_line(_msg(*events["order_updated"]))
    assert "error='委托数量必须是100的整数倍'" in r.event_line(_msg(*events["order_rejected"]))
    assert "cancel sent" in r.event_line(_msg(*events["cancel_responded"]))


def test_unknown_event_type_shows_raw_fields():
    fields = c.encode_event(c.AccountStatusChanged(status=0, status_name="ok"), account="A", seq=3)
    fields[c.F_TYPE] = "something_new"
    line = r.event_line(c.decode_event("1-0", fields))
    assert "something_new" in line and "status_name=ok" in line


def test_plain_table_aligns_wide_characters():
    text = r.plain_table(["code", "name", "n"], [["600000.SH", "浦发银行", "100"], ["1", "x", "5"]],
                         [False, False, True])
    lines = text.splitlines()
    assert [r.display_width(x) for x in lines[2:]] == [r.display_width(lines[2])] * 2


def test_fmt():
    assert r.fmt(10.0) == "10" and r.fmt(10.01) == "10.01" and r.fmt(1234567.5) == "1234567.5"
    assert r.fmt(c.OrderStatus.JUNK) == "junk" and r.fmt(None) == "" and r.fmt(True) == "yes" and r.fmt(0.0) == "0"

"""`xtqueue tail` against events written straight into the account's stream with contract.encode_event."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from producer_lib import contract as c
from cli_support import sample_events

pytestmark = pytest.mark.skipif(not hasattr(__import__("producer_lib"), "SyncClient"),
                                reason="producer_lib.SyncClient not landed yet")


def _xadd_all(redis_client, account):
    key = c.Keys(account).events
    events = sample_events()
    for seq, (event, coid, order_id) in enumerate(events, start=1):
        redis_client.xadd(key, c.encode_event(event, account=account, seq=seq, client_order_id=coid,
                                              order_id=order_id))
    return events


def test_tail_all_count(run, redis_url, account, redis_client):
    _xadd_all(redis_client, account)
    result = run("--redis-url", redis_url, "--account", account, "tail", "--all", "--count", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()  # stderr carries the "following events of ..." line
    assert len(lines) == 3
    assert "#1" in lines[0] and "order_updated" in lines[0] and "coid=c1" in lines[0] and "order=1001" in lines[0]
    assert "status=reported" in lines[0]
    assert "order_filled" in lines[1] and "filled 100@10" in lines[1]
    assert "order_rejected" in lines[2] and "委托数量" in lines[2]


def test_tail_type_filter_and_json(run, redis_url, account, redis_client):
    _xadd_all(redis_client, account)
    result = run("--redis-url", redis_url, "--account", account, "tail", "--all", "--type", "order_filled",
                 "--count", "1", "--json")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    data = json.loads(line)
    assert data["type"] == "order_filled" and data["seq"] == 2 and data["data"]["trade"]["volume"] == 100


def test_tail_from_id(run, redis_url, account, redis_client):
    _xadd_all(redis_client, account)
    first = redis_client.xrange(c.Keys(account).events, count=1)[0][0].decode()
    result = run("--redis-url", redis_url, "--account", account, "tail", "--from", first, "--count", "1")
    assert result.exit_code == 0, result.output
    assert "#2" in result.output


def test_tail_follows_new_events_in_a_subprocess(redis_url, account, redis_client):
    """Started before the events exist (from "$"); ends on its own after --count. Events keep coming (one every
    50 ms, consecutive seqs) until it has ended: no guess of when it has started reading."""
    proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "--redis-url", redis_url, "--account", account,
                             "tail", "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    key = c.Keys(account).events
    events = sample_events()
    stop = threading.Event()

    def keep_adding():
        seq = 0
        while not stop.is_set():
            event, coid, order_id = events[seq % len(events)]
            seq += 1
            redis_client.xadd(key, c.encode_event(event, account=account, seq=seq, client_order_id=coid,
                                                  order_id=order_id))
            stop.wait(0.05)

    adder = threading.Thread(target=keep_adding, daemon=True)
    adder.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop.set()
        adder.join(5)
    assert proc.returncode == 0, err
    assert len(out.strip().splitlines()) == 2

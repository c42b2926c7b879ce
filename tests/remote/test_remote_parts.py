"""The remote trader's parts without an executor: settings (file beside the program's path, environment, secrets),
the remark cut, the launcher's choices, the journal keeping a program's texts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import child_env

from executor.journal import Journal, Record
from producer_lib import contract as c
from xtqueue.compat.remote.settings import CONFIG_FILE, SettingsError, load_settings
from xtqueue.compat.remote.translate import cut_remark


def test_settings_come_from_the_file_beside_the_path_then_the_environment(tmp_path):
    (tmp_path / CONFIG_FILE).write_text('redis_url = "redis://:s3cret@10.0.0.5:6379/0"\naccount = "888"\n'
                                        'strategy = "alpha"\norder_ttl_ms = 5000\n', encoding="utf-8")
    s = load_settings(tmp_path, {})
    assert (s.account, s.strategy, s.order_ttl_ms) == ("888", "alpha", 5000)
    s = load_settings(tmp_path, {"XTQUEUE_STRATEGY": "beta", "XTQUEUE_ACCOUNT": "999"})
    assert (s.account, s.strategy) == ("999", "beta")  # the environment wins, key by key
    assert "s3cret" not in repr(s) and "s3cret" not in s.safe_url and s.safe_url.endswith("@10.0.0.5:6379/0")


def test_a_password_file_and_tls_files_reach_the_client_but_never_its_repr(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n", encoding="utf-8")
    env = {"XTQUEUE_REDIS_URL": "rediss://h:6380/0", "XTQUEUE_ACCOUNT": "888", "XTQUEUE_REDIS_USERNAME": "u",
           "XTQUEUE_REDIS_PASSWORD_FILE": str(secret), "XTQUEUE_REDIS_CA_CERT": "/ca.pem"}
    s = load_settings(None, env)
    kwargs = s.client_kwargs()
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("u", "hunter2", "/ca.pem")
    assert "hunter2" not in repr(s)
    with pytest.raises(SettingsError, match="rediss://"):
        load_settings(None, {**env, "XTQUEUE_REDIS_URL": "redis://h:6379/0"}).client_kwargs()


@pytest.mark.parametrize("env, match", [
    ({}, "no redis_url"),
    ({"XTQUEUE_REDIS_URL": "redis://h/0"}, "no account"),
    ({"XTQUEUE_REDIS_URL": "http://h/0", "XTQUEUE_ACCOUNT": "888"}, "redis://"),
    ({"XTQUEUE_REDIS_URL": "redis://h/0", "XTQUEUE_ACCOUNT": "8 8"}, "account"),
    ({"XTQUEUE_REDIS_URL": "redis://h/0", "XTQUEUE_ACCOUNT": "888", "XTQUEUE_STRATEGY": "a b"}, "strategy"),
    ({"XTQUEUE_REDIS_URL": "redis://h/0", "XTQUEUE_ACCOUNT": "888", "XTQUEUE_ORDER_TTL_MS": "0"}, "positive"),
    ({"XTQUEUE_REDIS_URL": "redis://h/0", "XTQUEUE_ACCOUNT": "888", "XTQUEUE_ORDER_TTL_MS": "soon"}, "number"),
])
def test_wrong_settings_are_refused_with_what_is_wrong(env, match):
    with pytest.raises(SettingsError, match=match):
        load_settings(None, env)


def test_an_unknown_key_in_the_file_is_refused(tmp_path):
    (tmp_path / CONFIG_FILE).write_text('redis_url = "redis://h/0"\naccount = "1"\npasword = "x"\n')
    with pytest.raises(SettingsError, match="unknown keys"):
        load_settings(tmp_path, {})


@pytest.mark.parametrize("given, kept", [
    ("buy-1", "buy-1"),
    ("x" * 24, "x" * 24),
    ("x" * 25, "x" * 24),
    ("中文备注" * 3, "中文备注中文备注"),  # 3 bytes a character: 8 fit
    ("a" * 22 + "中", "a" * 22),  # the cut would split it: dropped whole
    ("", ""),
])
def test_the_remark_is_cut_where_miniqmt_cuts_it(given, kept):
    assert cut_remark(given) == kept
    assert len(cut_remark(given).encode()) <= c.CLIENT_ORDER_ID_MAX_BYTES


def test_connect_without_settings_returns_minus_one_and_says_why(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("from xtquant.xttrader import XtQuantTrader\n"
                    "t = XtQuantTrader(r'%s', 1)\nt.start()\nprint(t.connect())\nt.stop()\n" % tmp_path)
    out = subprocess.run([sys.executable, "-m", "xtqueue.compat.remote", str(prog)], capture_output=True, text=True,
                         timeout=60, env=child_env(clean=True))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "-1"
    assert "no redis_url (XTQUEUE_REDIS_URL)" in out.stderr


def test_connect_to_an_unreachable_redis_returns_minus_one_without_the_password(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("from xtquant.xttrader import XtQuantTrader\n"
                    "t = XtQuantTrader('/nowhere', 1)\nt.start()\nprint(t.connect())\nt.stop()\n")
    env = child_env(clean=True, XTQUEUE_REDIS_URL="redis://:topsecret@127.0.0.1:1/0", XTQUEUE_ACCOUNT="888",
                    XTQUEUE_REMOTE_CONNECT_TIMEOUT_S="2")
    out = subprocess.run([sys.executable, "-m", "xtqueue.compat.remote", str(prog)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "-1"
    assert "cannot reach the executor" in out.stderr and "topsecret" not in out.stderr + out.stdout


@pytest.mark.parametrize("argv, match", [
    (["run", "--redis", "redis://h/0", "--qmt-sim", "/tmp/x", "--", "true"], "give one target"),
    (["run", "--redis", "redis://h/0", "--", "true"], "--account"),
    (["--account", "888", "run", "--redis", "http://h/0", "--", "true"], "redis://"),
])
def test_the_launcher_refuses_what_would_not_work(argv, match):
    out = subprocess.run([sys.executable, "-m", "xtqueue", *argv], capture_output=True, text=True, timeout=60,
                         env=child_env(clean=True))
    assert out.returncode == 2 and match in out.stderr, out.stderr


def test_the_journal_keeps_a_programs_texts_once_and_files_without_the_columns_get_them(tmp_path):
    import sqlite3

    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE orders (account TEXT NOT NULL, coid TEXT NOT NULL, fingerprint TEXT NOT NULL, "
               "state TEXT NOT NULL, order_id INTEGER, reply BLOB, command_id TEXT NOT NULL DEFAULT '', "
               "stream_id TEXT NOT NULL DEFAULT '', deadline_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER "
               "NOT NULL, updated_ms INTEGER NOT NULL, rejection_seen INTEGER NOT NULL DEFAULT 0, owner TEXT, "
               "PRIMARY KEY (account, coid))")
    db.execute("INSERT INTO orders (account, coid, fingerprint, state, created_ms, updated_ms) "
               "VALUES ('A', 'old1', 'f', 'placed', 1, 1)")
    db.commit()
    db.close()
    j = Journal(old, "A")
    j.open()
    try:
        assert j.get("old1").xt_remark is None
        j.save([Record(coid="k1", fingerprint="f", state=c.OutcomeState.PENDING, xt_remark="中文备注",
                       xt_strategy_name="我的策略")], 10)
        # a later write (the outcome) cannot change them
        j.save([Record(coid="k1", fingerprint="f", state=c.OutcomeState.PLACED, order_id=7, xt_remark="other",
                       xt_strategy_name="other")], 20)
        rec = j.get("k1")
        assert (rec.state, rec.xt_remark, rec.xt_strategy_name) == (c.OutcomeState.PLACED, "中文备注", "我的策略")
    finally:
        j.close()


def test_the_contract_bounds_a_programs_texts():
    base = dict(client_order_id="k1", code="600000.SH", side="buy", volume=100, price=10.0)
    assert c.PlaceOrder(**base, xt_remark="").xt_remark == ""  # "" is a remark, kept apart from None
    with pytest.raises(ValueError):
        c.PlaceOrder(**base, xt_remark="x" * (c.XT_TEXT_MAX_CHARS + 1))
    fields = c.encode_command(c.PlaceOrder(**base), account="A", command_id="x", reply_to="r", ttl_ms=1)
    assert "xt_remark" not in c.read_body(fields)  # absent when not given: older executors still accept it


def test_a_request_names_the_account_and_the_type_the_executor_trades():
    from xtqueue.compat.remote.credit import account_refusal, credit_side_refusal

    credit = {"m_strAccountID": "888", "m_nAccountType": 3}  # StockAccount("888", "CREDIT")
    stock = {**credit, "m_nAccountType": 2}  # StockAccount("888")
    assert account_refusal(credit, "888", "CREDIT") is None and account_refusal(stock, "888", "STOCK") is None
    assert "given as a CREDIT account" in account_refusal(credit, "888", "STOCK")
    assert "trades it as a CREDIT account" in account_refusal(stock, "888", "CREDIT")
    # an executor too old to say its type: stock accounts as before, credit refused
    assert account_refusal(stock, "888", None) is None
    assert "older than this trader" in account_refusal(credit, "888", None)
    assert "not served" in account_refusal({**credit, "m_strAccountID": "999"}, "888", "CREDIT")
    assert credit_side_refusal(c.Side.FIN_BUY, 27, "CREDIT") is None
    assert credit_side_refusal(c.Side.BUY, 23, "STOCK") is None
    assert "needs a CREDIT account" in credit_side_refusal(c.Side.DIRECT_CASH_REPAY, 32, None)


def test_the_sessions_own_order_map_keeps_the_newest_within_its_bound():
    from xtqueue.compat.remote.session import _bounded_put

    own: dict = {}
    for i in range(10):
        _bounded_put(own, f"coid{i}", i, 4)
    assert list(own) == ["coid6", "coid7", "coid8", "coid9"]
    _bounded_put(own, "coid7", 70, 4)  # an update keeps its place and the bound
    assert own == {"coid6": 6, "coid7": 70, "coid8": 8, "coid9": 9}

"""SQLite persistence: one WAL file per simulator path holds orders, trades, positions, cash, counters, prices
and the cross-process control queue.

The engine keeps the live state in memory and writes it through in batches (group commit): every mutation
marks rows dirty, one committer thread writes them in one transaction, and only then releases the pushes
(see engine.py). WAL with synchronous=NORMAL survives a killed process (the OS still has the pages); use
``SimConfig.sqlite_synchronous="FULL"`` to also survive power loss.
"""

from __future__ import annotations

import sqlite3
from itertools import chain
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY, cash REAL NOT NULL, frozen_cash REAL NOT NULL, sell_proceeds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    account_id TEXT NOT NULL, stock_code TEXT NOT NULL, volume INTEGER NOT NULL, can_use_volume INTEGER NOT NULL,
    frozen_volume INTEGER NOT NULL, yesterday_volume INTEGER NOT NULL, cost_total REAL NOT NULL,
    open_amount REAL NOT NULL, open_volume INTEGER NOT NULL, PRIMARY KEY (account_id, stock_code));
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, day INTEGER NOT NULL, account_id TEXT NOT NULL, stock_code TEXT NOT NULL,
    order_type INTEGER NOT NULL, order_volume INTEGER NOT NULL, req_price_type INTEGER NOT NULL,
    price_type INTEGER NOT NULL, price REAL NOT NULL, freeze_price REAL NOT NULL, traded_volume INTEGER NOT NULL,
    traded_amount REAL NOT NULL, order_status INTEGER NOT NULL, status_msg TEXT NOT NULL,
    strategy_name TEXT NOT NULL, order_remark TEXT NOT NULL, order_sysid TEXT NOT NULL, order_time INTEGER NOT NULL,
    frozen REAL NOT NULL, cum_commission REAL NOT NULL, cum_fees REAL NOT NULL, wait_update INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS orders_day ON orders (day);
CREATE TABLE IF NOT EXISTS trades (
    trade_seq INTEGER PRIMARY KEY, day INTEGER NOT NULL, traded_id TEXT NOT NULL, order_id INTEGER NOT NULL,
    account_id TEXT NOT NULL, stock_code TEXT NOT NULL, order_type INTEGER NOT NULL, traded_price REAL NOT NULL,
    traded_volume INTEGER NOT NULL, traded_amount REAL NOT NULL, commission REAL NOT NULL,
    traded_time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS trades_day ON trades (day);
CREATE TABLE IF NOT EXISTS prices (
    code TEXT PRIMARY KEY, last REAL NOT NULL, prev_close REAL NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS control (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL);
"""

ORDER_COLS = ("order_id, day, account_id, stock_code, order_type, order_volume, req_price_type, price_type, price, "
              "freeze_price, traded_volume, traded_amount, order_status, status_msg, strategy_name, order_remark, "
              "order_sysid, order_time, frozen, cum_commission, cum_fees, wait_update")
POSITION_COLS = ("account_id, stock_code, volume, can_use_volume, frozen_volume, yesterday_volume, cost_total, "
                 "open_amount, open_volume")
TRADE_COLS = ("trade_seq, day, traded_id, order_id, account_id, stock_code, order_type, traded_price, "
              "traded_volume, traded_amount, commission, traded_time")


def _ph(cols: str) -> str:
    return ", ".join("?" for _ in cols.split(","))


#: rows per multi-row INSERT statement, largest first (a handful of fixed sizes keeps the statements cached;
#: 256 x 22 columns stays far below SQLite's 32766 bound variables)
_CHUNKS = (256, 32, 4)


class _MultiInsert:
    """``INSERT ... VALUES (...), (...), ...`` in a few fixed chunk sizes: one sqlite3_step (and one GIL
    release/re-acquire) per chunk instead of per row, and no per-row bind/reset round trip in Python.
    Same rows, same order, same conflict clause as executemany of the one-row statement."""

    def __init__(self, head: str, cols: str) -> None:
        self.one = f"{head} ({cols}) VALUES ({_ph(cols)})"
        row = f"({_ph(cols)})"
        self.sql = {n: f"{head} ({cols}) VALUES " + ", ".join([row] * n) for n in _CHUNKS}

    def run(self, c: sqlite3.Connection, rows: list) -> None:
        i, n = 0, len(rows)
        for size in _CHUNKS:
            if n - i < size:
                continue
            sql = self.sql[size]
            while n - i >= size:
                c.execute(sql, tuple(chain.from_iterable(rows[i:i + size])))
                i += size
        if i < n:
            c.executemany(self.one, rows[i:])


def open_db(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(SCHEMA)
    return conn


class Store:
    """Writer side, used by the engine's committer thread (and at start-up for loading)."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.conn = open_db(path, synchronous)
        self._ins_order = _MultiInsert("INSERT OR REPLACE INTO orders", ORDER_COLS)
        self._ins_pos = f"INSERT OR REPLACE INTO positions ({POSITION_COLS}) VALUES ({_ph(POSITION_COLS)})"
        self._ins_trade = _MultiInsert("INSERT INTO trades", TRADE_COLS)

    # --- loading ---
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def load_accounts(self) -> list[tuple]:
        return self.conn.execute("SELECT account_id, cash, frozen_cash, sell_proceeds FROM accounts").fetchall()

    def load_positions(self) -> list[tuple]:
        return self.conn.execute(f"SELECT {POSITION_COLS} FROM positions").fetchall()

    def load_orders(self, day: int) -> list[tuple]:
        return self.conn.execute(f"SELECT {ORDER_COLS} FROM orders WHERE day=? ORDER BY order_id", (day,)).fetchall()

    def load_trades(self, day: int) -> list[tuple]:
        return self.conn.execute(f"SELECT {TRADE_COLS} FROM trades WHERE day=? ORDER BY trade_seq",
                                 (day,)).fetchall()

    def load_prices(self) -> list[tuple]:
        return self.conn.execute("SELECT code, last, prev_close, name FROM prices").fetchall()

    def max_ids(self) -> tuple[int, int]:
        o = self.conn.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders").fetchone()[0]
        t = self.conn.execute("SELECT COALESCE(MAX(trade_seq), 0) FROM trades").fetchone()[0]
        return int(o), int(t)

    def max_control_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM control").fetchone()[0])

    # --- writing ---
    def write(self, orders, positions, deleted_positions, accounts, trades, prices, meta) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if orders:
                self._ins_order.run(c, orders)
            if trades:
                self._ins_trade.run(c, trades)
            if positions:
                c.executemany(self._ins_pos, positions)
            if deleted_positions:
                c.executemany("DELETE FROM positions WHERE account_id=? AND stock_code=?", deleted_positions)
            if accounts:
                c.executemany("INSERT OR REPLACE INTO accounts (account_id, cash, frozen_cash, sell_proceeds) "
                              "VALUES (?, ?, ?, ?)", accounts)
            if prices:
                c.executemany("INSERT OR REPLACE INTO prices (code, last, prev_close, name) VALUES (?, ?, ?, ?)",
                              prices)
            if meta:
                c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass

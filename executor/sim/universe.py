"""The default instrument universe: real codes and names with illustrative previous closes.

Prices are round illustrative numbers, not market data. ST status is read from the name (contains "ST").
Per-code overrides: ``limit_pct`` (e.g. a STAR-index ETF at ±20%) and ``t0`` (e.g. a money-market ETF).
A code outside this table becomes tradable once it is given a price (``set_price``); a code that is neither in
the table nor priced is refused (tier 1, unknown code).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UniverseEntry:
    name: str
    prev_close: float
    limit_pct: float | None = None
    t0: bool | None = None


DEFAULT_UNIVERSE: dict[str, UniverseEntry] = {
    "600000.SH": UniverseEntry("浦发银行", 10.00),
    "601318.SH": UniverseEntry("中国平安", 50.00),
    "600519.SH": UniverseEntry("贵州茅台", 1500.00),
    "000001.SZ": UniverseEntry("平安银行", 11.00),
    "000858.SZ": UniverseEntry("五粮液", 130.00),
    "300750.SZ": UniverseEntry("宁德时代", 250.00),
    "688981.SH": UniverseEntry("中芯国际", 90.00),
    "830799.BJ": UniverseEntry("艾融软件", 25.00),
    "920002.BJ": UniverseEntry("万达轴承", 40.00),
    "510300.SH": UniverseEntry("沪深300ETF", 4.000),
    "159915.SZ": UniverseEntry("创业板ETF", 2.000, limit_pct=0.20),
    "588000.SH": UniverseEntry("科创50ETF", 1.000, limit_pct=0.20),
    "511880.SH": UniverseEntry("银华日利", 100.000, t0=True),
    "113052.SH": UniverseEntry("兴业转债", 120.000),
    "123107.SZ": UniverseEntry("温氏转债", 130.000),
    "600321.SH": UniverseEntry("ST正源", 2.00),
}

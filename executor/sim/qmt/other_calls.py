"""The simulated MiniQMT's answers to the entry points beyond stock trading (credit, IPO, transfers, smt, export,
bank, CTP, smart algo): what MiniQMT answers for the accounts it simulates, in the shape the wheel reads
(``wire.ANSWER``).

The simulated accounts are stock accounts on one counter (margin accounts answer the five credit queries from
executor/sim/credit.py; a cash account has no credit line), no IPO in the market, no
bank link, no second counter, no futures and no smart-algo service. So: list queries answer an empty list (None for
an account this MiniQMT does not serve, as the stock queries do); requests (transfers, securities-lending
appointments, bank transfers, smart algo orders) are refused with a counter-style text; ``export_data`` writes the
day's deals / orders / positions to the CSV file asked for, as MiniQMT does, and refuses other data types. What the
real MiniQMT answers in these cases is unverified (xtquant's manual describes only the happy paths); these are the
plausible shapes, chosen so that a program that copes with them copes with "nothing there" and "refused".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from executor.sim.engine import msg

from .wire import ANSWER, failed

E_NOT_SUPPORTED = 100801  # the simulated account has no such business (credit, bank, CTP, smart algo, ...)
E_EXPORT = 100802  # export_data: a data type the simulator does not export, or the file cannot be written

# export_data columns: the xttype attribute names of each row type (xtquant/xttype.py)
_EXPORT = {
    "deal": ("account_id", "stock_code", "order_type", "traded_id", "traded_time", "traded_price", "traded_volume",
             "traded_amount", "order_id", "order_sysid", "strategy_name", "order_remark", "commission"),
    "order": ("account_id", "stock_code", "order_id", "order_sysid", "order_time", "order_type", "order_volume",
              "price_type", "price", "traded_volume", "traded_price", "order_status", "status_msg", "strategy_name",
              "order_remark"),
    "position": ("account_id", "stock_code", "volume", "can_use_volume", "open_price", "market_value",
                 "frozen_volume", "on_road_volume", "yesterday_volume", "avg_price"),
}


def _refused(what: str) -> str:
    return msg(E_NOT_SUPPORTED, "该账号不支持此业务", f"the simulated stock account has no {what}")


_WHAT = {
    "transferWithSeq": "second counter to transfer to", "queryComFundWithSeq": "second (normal) counter",
    "smtNegotiateOrderWithSeq": "securities lending", "smtAppointmentOrderWithSeq": "securities lending",
    "smtAppointmentCancelWithSeq": "securities lending", "smtCompactRenewalWithSeq": "securities lending",
    "smtCompactReturnWithSeq": "securities lending", "bankTransferWithSeq": "bank link",
    "ctpInternalTransferWithSeq": "CTP accounts", "syncTransactionFromExternalWithSeq": "external deal import",
    "smartOrderStockWithSeq": "smart algo service", "operateSmartAlgoTaskWithSeq": "smart algo service",
}


# the five credit queries: answered from the margin account (executor/sim/credit.py) when the account is one
_CREDIT = {"queryCreditDetailWithSeq": "q_detail", "queryStkCompactsWithSeq": "q_compacts",
           "queryCreditSubjectsWithSeq": "q_subjects", "queryCreditSloCodeWithSeq": "q_slo_codes",
           "queryCreditAssureWithSeq": "q_assure"}


def _account_of(fields: dict) -> str:
    if "m_strAccountID" in fields:
        return fields["m_strAccountID"]
    if "account_id" in fields:
        return fields["account_id"]
    args = fields.get("args") or []
    if args and isinstance(args[0], dict):
        return str(args[0].get("accountID", args[0].get("account_id", "")))
    return ""


def answer(engine: Any, entry: str, fields: dict) -> Any:
    """The answer to ``entry`` (a key of ``wire.ANSWER``) for this simulated MiniQMT."""
    kind = ANSWER[entry]
    aid = _account_of(fields)
    served = aid in engine.accounts
    credit = _CREDIT.get(entry)
    if credit is not None and engine.credit.is_credit(aid):
        with engine.lock:
            return getattr(engine.credit, credit)(aid)
    if kind in ("list", "items"):
        return [] if served or kind == "items" else None
    if entry == "getSmartAlgoParamWithSeq":
        return json.dumps({"datas": {}})  # no algorithm is offered
    if entry == "querySmartAlgoTaskWithSeq":
        return json.dumps({"datas": []})  # no task exists
    if entry == "exportDataWithSeq":
        return _export(engine, fields)
    if entry == "queryComFundWithSeq" or entry in _WHAT:
        return failed(entry, fields, _refused(_WHAT.get(entry, "such business")))
    raise KeyError(entry)  # pragma: no cover - wire.ANSWER and this function are kept together


def _export(engine: Any, fields: dict) -> str:
    fix = (fields.get("args") or [{}])[0]
    aid, kind, path = str(fix.get("accountID", "")), str(fix.get("dataType", "")), fix.get("resultPath")
    if aid not in engine.accounts:
        return json.dumps({"error": {"msg": msg(E_EXPORT, "资金账号不存在", f"unknown account {aid!r}")}},
                          ensure_ascii=False)
    cols = _EXPORT.get(kind)
    if cols is None or not path:
        return json.dumps({"error": {"msg": msg(E_EXPORT, "不支持的数据类型",
                                                f"data_type {kind!r}: the simulator exports {sorted(_EXPORT)}")}},
                          ensure_ascii=False)
    with engine.lock:
        if kind == "deal":
            rows = [engine.xt_trade(r) for r in engine.trades.get(aid, [])]
        elif kind == "order":
            rows = [engine.xt_order(o) for o in engine.orders.values() if o.account_id == aid]
        else:
            rows = [engine.xt_position(p) for p in engine.positions.get(aid, {}).values() if p.volume]
    try:
        with open(Path(path), "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            w.writerows([getattr(x, c, "") for c in cols] for x in rows)
    except OSError as exc:
        return json.dumps({"error": {"msg": msg(E_EXPORT, "导出文件失败", f"cannot write {path!r}: {exc.strerror}")}},
                          ensure_ascii=False)
    return json.dumps({"success": True, "resultPath": str(path), "count": len(rows)}, ensure_ascii=False)

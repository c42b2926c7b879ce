"""The classic HTTP wrapper's JSON shapes, built from producer_lib's reports, and xtqueue's error body.

The classic wrapper is the Sanic service of the blog post "迅投QMT量化平台交易接口封装" (keyunluo, 2022-07-10,
source/_posts/迅投QMT股票交易接口封装.md in the keyunluo/keyunluo.github.io repository), which many scripts copy:
routes under /xtquant/trade on port 7800. Its handlers return exactly these keys (docs/http.md lists them):

    /login          {"status": connect_result}                       0 = connected
    /query/assets   {"总资产", "现金", "持仓市值", "冻结金额"}
    /query/holding  [[{"股票代码", "持仓", "可用持仓", "成本", "持仓市值"}], ...]   (each row in a one-item list)
    /query/trade    [{"股票代码", "委托类型", "成交数量", "成交均价", "成交金额", "成交时间", "成交编号",
                      "柜台合同编号"}]
    /query/order    [{"股票代码", "委托数量", "成交数量", "委托价格", "委托类型", "委托状态", "订单编号",
                      "柜台合同编号", "报单时间"}]                      [] when ?order_id= is not found
    /place_order    {"order_id": N}                                  xtquant's order_stock: -1 on failure
    /cancel_order   {"cancel_order_result": R}                       0 = cancel request sent, -1 failed

"委托类型" is xtquant's order_type number (23 buy, 24 sell) and "委托状态" the wrapper's Chinese name of
order_status, None for a code it does not list.
"""

from __future__ import annotations

from typing import Any

from producer_lib import contract, OutcomeUnknown, XtqueueError
from producer_lib._exceptions import ERROR_CLASSES

# The wrapper's order_status table: xtconstant ORDER_* value -> name (the numbers of contract.OrderStatus).
ORDER_STATUS_NAMES: dict[int, str] = {
    48: "未报", 49: "待报", 50: "已报", 51: "已报待撤", 52: "部成待撤", 53: "部撤", 54: "已撤", 55: "部成",
    56: "已成", 57: "废单", 255: "未知",
}

# What the classic handler returns when the call fails (xtquant's failure values), keyed by endpoint.
FAILED_ORDER_ID = -1
FAILED_CANCEL = -1
FAILED_LOGIN = -1


def assets(a: contract.AssetReport) -> dict[str, Any]:
    return {"总资产": a.total_asset, "现金": a.cash, "持仓市值": a.market_value, "冻结金额": a.frozen_cash}


def holding(positions: list[contract.PositionReport]) -> list[list[dict[str, Any]]]:
    # The classic handler appends a one-item list per position; clients index row[0], so the nesting stays.
    return [[{"股票代码": p.code, "持仓": p.volume, "可用持仓": p.can_use_volume, "成本": p.open_price,
              "持仓市值": p.market_value}] for p in positions]


def trade_row(t: contract.TradeReport) -> dict[str, Any]:
    return {"股票代码": t.code, "委托类型": t.order_type, "成交数量": t.volume, "成交均价": t.price,
            "成交金额": t.amount, "成交时间": t.traded_time, "成交编号": t.trade_id, "柜台合同编号": t.order_sysid}


def order_row(o: contract.OrderReport) -> dict[str, Any]:
    return {"股票代码": o.code, "委托数量": o.volume, "成交数量": o.traded_volume, "委托价格": o.price,
            "委托类型": o.order_type, "委托状态": ORDER_STATUS_NAMES.get(o.status_code), "订单编号": o.order_id,
            "柜台合同编号": o.order_sysid, "报单时间": o.order_time}


# --- credit (两融) accounts: not in the classic wrapper; keys are the Chinese names of the wheel's manual
# (doc/xttrader.md), the code as 股票代码 as in the classic rows -----------------------------------------------
DETAIL_KEYS: dict[str, str] = {
    "balance": "总资产", "available": "可用金额", "frozen_cash": "冻结金额", "market_value": "总市值",
    "stock_value": "股票市值", "fund_value": "基金市值", "fetch_balance": "可取金额", "position_profit": "持仓盈亏",
    "total_debt": "总负债", "enable_bail_balance": "可用保证金", "maintenance_ratio": "维持担保比例",
    "assure_asset": "净资产", "fin_debt": "融资负债", "fin_deal_avl": "融资本金", "fin_fee": "融资息费",
    "slo_debt": "融券负债", "slo_market_value": "融券市值", "slo_fee": "融券息费", "other_fare": "其它费用",
    "fin_max_quota": "融资授信额度", "fin_enable_quota": "融资可用额度", "fin_used_quota": "融资冻结额度",
    "slo_max_quota": "融券授信额度", "slo_enable_quota": "融券可用额度", "slo_used_quota": "融券冻结额度",
    "slo_sell_balance": "融券卖出资金", "used_slo_sell_balance": "已用融券卖出资金",
    "surplus_slo_sell_balance": "剩余融券卖出资金"}
COMPACT_KEYS: dict[str, str] = {
    "code": "股票代码", "compact_id": "合约编号", "compact_type": "合约类型", "cashgroup_prop": "头寸来源",
    "market": "证券市场", "open_date": "开仓日期", "ret_end_date": "到期日", "business_vol": "合约证券数量",
    "real_compact_vol": "未还合约数量", "business_balance": "合约金额", "business_fare": "合约息费",
    "real_compact_balance": "未还合约金额", "real_compact_fare": "未还合约息费", "repaid_fare": "已还息费",
    "repaid_balance": "已还金额", "position_str": "定位串"}
SUBJECT_KEYS: dict[str, str] = {"code": "股票代码", "market": "证券市场", "fin_status": "融资状态",
                                "slo_status": "融券状态", "fin_ratio": "融资保证金比例", "slo_ratio": "融券保证金比例"}
SLO_CODE_KEYS: dict[str, str] = {"code": "股票代码", "market": "证券市场", "cashgroup_prop": "头寸来源",
                                 "enable_amount": "融券可融数量"}
ASSURE_KEYS: dict[str, str] = {"code": "股票代码", "market": "证券市场", "assure_status": "是否可做担保",
                               "assure_ratio": "担保品折算比例"}


def keyed(report: Any, keys: dict[str, str]) -> dict[str, Any]:
    """A credit report with the Chinese keys of ``keys`` (field -> key), in that order."""
    return {key: getattr(report, name) for name, key in keys.items()}


# --- errors -----------------------------------------------------------------------------------------------------
_CODE_OF_CLASS = {cls: code for code, cls in reversed(list(ERROR_CLASSES.items()))}

# HTTP status per xtqueue error code: 4xx when the request can be corrected, 5xx when the service could not answer.
HTTP_STATUS: dict[contract.ErrorCode, int] = {
    contract.ErrorCode.INVALID_REQUEST: 400,
    contract.ErrorCode.UNKNOWN_COMMAND: 400,
    contract.ErrorCode.UNSUPPORTED_VERSION: 400,
    contract.ErrorCode.ID_AHEAD: 400,
    contract.ErrorCode.UNAUTHORIZED: 403,
    contract.ErrorCode.NOT_FOUND: 404,
    contract.ErrorCode.CONFLICT: 409,
    contract.ErrorCode.EXPIRED: 422,
    contract.ErrorCode.BROKER_REJECTED: 422,
    contract.ErrorCode.RISK_REJECTED: 422,
    contract.ErrorCode.HALTED: 423,
    contract.ErrorCode.INTERNAL: 500,
    contract.ErrorCode.BROKER_UNAVAILABLE: 503,
    contract.ErrorCode.OUTCOME_UNKNOWN: 504,
}


def error_code(exc: XtqueueError) -> contract.ErrorCode:
    """The error's code; an error raised locally without one gets the code of its class."""
    if exc.code is not None:
        return exc.code
    for cls in type(exc).__mro__:
        if cls in _CODE_OF_CLASS:
            return _CODE_OF_CLASS[cls]
    return contract.ErrorCode.OUTCOME_UNKNOWN if isinstance(exc, OutcomeUnknown) else contract.ErrorCode.INTERNAL


def error_info(exc: XtqueueError) -> dict[str, Any]:
    """The ``error`` object of a failed request: xtqueue's code and message, and what the executor sent with it."""
    info: dict[str, Any] = {"code": error_code(exc).value, "message": exc.message,
                            "outcome_unknown": isinstance(exc, OutcomeUnknown)}
    for name in ("client_order_id", "order_id", "broker_message", "broker_error_id", "command_id"):
        value = getattr(exc, name)
        if value not in (None, ""):
            info[name] = value
    if exc.details:
        info["details"] = exc.details
    return info


def local_error(code: contract.ErrorCode | str, message: str) -> dict[str, Any]:
    """The ``error`` object of a request refused by this server before anything was sent."""
    return {"code": getattr(code, "value", code), "message": message, "outcome_unknown": False}


# --- the shapes, as examples for the OpenAPI page (the classic post's own outputs where it shows them) ------------
_ERROR = {"code": "broker_rejected", "message": "the broker refused the order", "outcome_unknown": False,
          "client_order_id": "8f1c0a9e3b7d4c21a6e5", "broker_message": "委托数量必须是100的整数倍",
          "broker_error_id": -61}
EXAMPLES: dict[str, Any] = {
    "/login": {"status": 0},
    "/query/assets": {"总资产": 1000000.0, "现金": 989990.0, "持仓市值": 10010.0, "冻结金额": 0.0},
    "/query/holding": [[{"股票代码": "600000.SH", "持仓": 1000, "可用持仓": 1000, "成本": 10.01, "持仓市值": 10010.0}]],
    "/query/trade": [{"股票代码": "600000.SH", "委托类型": 23, "成交数量": 100, "成交均价": 10.5, "成交金额": 1050.0,
                      "成交时间": 1657218000, "成交编号": "1001", "柜台合同编号": "131"}],
    "/query/order": [{"股票代码": "113025.SH", "委托数量": 10, "成交数量": 0, "委托价格": 300.0, "委托类型": 23,
                      "委托状态": "已撤", "订单编号": 403701775, "柜台合同编号": "131", "报单时间": 1657218000}],
    "/place_order": {"order_id": 403701775},
    "/cancel_order": {"cancel_order_result": 0},
    "/repay_cash": {"order_id": 403701776},
    "/query/credit_detail": {"总资产": 110004.9, "可用金额": 89994.9, "冻结金额": 0.0, "总市值": 10010.0,
                             "可用保证金": 89994.9, "维持担保比例": 11.0005, "总负债": 10000.0, "融资负债": 10000.0,
                             "融资息费": 0.0, "融券负债": 0.0, "...": "(every key of DETAIL_KEYS)"},
    "/query/stk_compacts": [{"股票代码": "600000.SH", "合约编号": "F20240102000001", "合约类型": 0, "头寸来源": 0,
                             "证券市场": 0, "开仓日期": 20240102, "到期日": 20240630, "合约证券数量": 1000,
                             "未还合约数量": 1000, "合约金额": 10000.0, "合约息费": 2.0, "未还合约金额": 10000.0,
                             "未还合约息费": 2.0, "已还息费": 0.0, "已还金额": 0.0, "定位串": "F20240102000001"}],
    "/query/credit_subjects": [{"股票代码": "600000.SH", "证券市场": 0, "融资状态": 0, "融券状态": 0,
                                "融资保证金比例": 1.0, "融券保证金比例": 1.2}],
    "/query/credit_slo_code": [{"股票代码": "600000.SH", "证券市场": 0, "头寸来源": 0, "融券可融数量": 100000}],
    "/query/credit_assure": [{"股票代码": "600000.SH", "证券市场": 0, "是否可做担保": 0, "担保品折算比例": 0.7}],
}
ERROR_EXAMPLES: dict[str, Any] = {
    "/place_order": {"order_id": FAILED_ORDER_ID, "error": _ERROR},
    "/repay_cash": {"order_id": FAILED_ORDER_ID, "error": {**_ERROR, "broker_message": "无融资负债可还"}},
    "/cancel_order": {"cancel_order_result": FAILED_CANCEL,
                      "error": {**_ERROR, "broker_message": "订单已成交或已撤销"}},
    "/login": {"status": FAILED_LOGIN, "error": {"code": "broker_unavailable", "message": "MiniQMT is not connected",
                                                 "outcome_unknown": False}},
}

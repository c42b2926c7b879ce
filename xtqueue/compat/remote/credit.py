"""Credit (两融) accounts through the remote trader: which account a request names, the credit order types, and
the five credit queries' objects.

The account: xtquant's requests carry ``m_strAccountID`` and ``m_nAccountType`` (``StockAccount(id)`` is STOCK,
``StockAccount(id, 'CREDIT')`` CREDIT). The executor says in its ping which type it trades (``PingResult.
account_type``); a request whose type is not that one is refused as MiniQMT refuses an account it does not serve
(orders -1 and ``on_order_error``, queries None, subscribe -1), with the reason in the error text and the log:
a CREDIT program is never run against a stock account, and a STOCK program's buy is never a collateral buy on a
margin account. An executor too old to say its type is taken to trade STOCK accounts only (credit refused).

Order types: xtquant's numbers map onto ``contract.Side`` by the executor's own table
(``executor/broker/xt/parsing.py``): 23/24 (collateral buy/sell on a CREDIT account), 27–32 and the 专项 variants
40–45, which need a CREDIT account. A direct cash repayment (32/45) sends its amount in yuan as the order volume:
the wheel puts ``int(volume)`` in ``m_nOrderVolume`` and the float itself in ``m_dOrderAmount``, which is the
amount repaid. Direct repayments (30/32/43/45) have no price: the program's price and price type are ignored.

Objects: xttype has no classes for the credit answers (the binary hands C++ objects); these are built with exactly
the attribute names of the wheel's manual (doc/xttrader.md: 信用账号资产XtCreditDetail, 负债合约StkCompacts,
融资融券标的CreditSubjects, 可融券数据CreditSloCode, 标的担保品CreditAssure).
"""

from __future__ import annotations

from typing import Any

from xtquant import xtconstant as xc

from executor.broker.xt.credit import DETAIL_ATTRS
from executor.broker.xt.parsing import ORDER_TYPE_TO_SIDE
from producer_lib import contract as c

#: the account types the executor can trade -> xtquant's number (StockAccount.account_type)
XT_ACCOUNT_TYPES = {"STOCK": xc.SECURITY_ACCOUNT, "CREDIT": xc.CREDIT_ACCOUNT}
_TYPE_NAMES = xc.ACCOUNT_TYPE_DICT  # number -> "STOCK", "CREDIT", "FUTURE", ...


def type_name(number: Any) -> str:
    return _TYPE_NAMES.get(number, f"type {number!r}")


def account_refusal(f: dict, account: str, account_type: str | None) -> str | None:
    """Why the request's account is not the one the executor trades; None when it is."""
    aid = f.get("m_strAccountID")
    if aid != account:
        return f"account {aid!r} is not served here (this trader's executor serves {account!r})"
    given = f.get("m_nAccountType")
    if given is None:  # a request without the field (none of the wheel's carry none): the id decides
        return None
    served = account_type or "STOCK"
    if given == XT_ACCOUNT_TYPES[served]:
        return None
    if account_type is None:
        return (f"account {aid!r} is given as a {type_name(given)} account, but its executor does not say which "
                "account type it trades (an xtqueue executor older than this trader): only STOCK is served")
    return (f"account {aid!r} is given as a {type_name(given)} account (StockAccount(..., "
            f"{type_name(given)!r})), but its executor trades it as a {served} account")


def side_of(order_type: Any) -> c.Side | None:
    return ORDER_TYPE_TO_SIDE.get(order_type)


def credit_side_refusal(side: c.Side, order_type: int, account_type: str | None) -> str | None:
    """A credit order type (27-32, 40-45) on an executor that does not trade a CREDIT account."""
    if side.is_credit and account_type != "CREDIT":
        return (f"order type {order_type} ({side.value}) is a credit (两融) order: it needs a CREDIT account, and "
                f"this trader's executor trades a {account_type or 'STOCK'} account")
    return None


# --- the five queries: objects with the attribute names of the wheel's manual ---------------------------------------
class _CreditObject:
    """A credit answer as the binary hands it: attributes only (the manual's names)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


class XtCreditDetail(_CreditObject):
    """信用账号资产"""


class XtStkCompacts(_CreditObject):
    """负债合约"""


class XtCreditSubjects(_CreditObject):
    """融资融券标的"""


class XtCreditSloCode(_CreditObject):
    """可融券数据"""


class XtCreditAssure(_CreditObject):
    """标的担保品"""


def _head(account: str) -> dict[str, Any]:
    return {"account_type": xc.CREDIT_ACCOUNT, "account_id": account}


def detail(account: str, r: c.CreditDetailReport) -> XtCreditDetail:
    return XtCreditDetail(**_head(account), m_nStatus=r.status, m_nUpdateTime=0, m_nCalcConfig=0,
                          **{attr: getattr(r, name) for name, attr in DETAIL_ATTRS.items()})


def compact(account: str, r: c.CompactReport) -> XtStkCompacts:
    return XtStkCompacts(**_head(account), compact_type=r.compact_type, cashgroup_prop=r.cashgroup_prop,
                         exchange_id=r.market, open_date=r.open_date, business_vol=r.business_vol,
                         real_compact_vol=r.real_compact_vol, ret_end_date=r.ret_end_date,
                         business_balance=r.business_balance, businessFare=r.business_fare,
                         real_compact_balance=r.real_compact_balance, real_compact_fare=r.real_compact_fare,
                         repaid_fare=r.repaid_fare, repaid_balance=r.repaid_balance, instrument_id=r.code,
                         compact_id=r.compact_id, position_str=r.position_str)


def subject(account: str, r: c.CreditSubjectReport) -> XtCreditSubjects:
    return XtCreditSubjects(**_head(account), slo_status=r.slo_status, fin_status=r.fin_status, exchange_id=r.market,
                            slo_ratio=r.slo_ratio, fin_ratio=r.fin_ratio, instrument_id=r.code)


def slo_code(account: str, r: c.SloCodeReport) -> XtCreditSloCode:
    return XtCreditSloCode(**_head(account), cashgroup_prop=r.cashgroup_prop, exchange_id=r.market,
                           enable_amount=r.enable_amount, instrument_id=r.code)


def assure(account: str, r: c.AssureReport) -> XtCreditAssure:
    return XtCreditAssure(**_head(account), assure_status=r.assure_status, exchange_id=r.market,
                          assure_ratio=r.assure_ratio, instrument_id=r.code)


#: binary entry point -> (the binding that answers it, producer_lib's query, the object of each row)
QUERIES: dict[str, tuple[str, str, Any]] = {
    "queryCreditDetailWithSeq": ("bindOnQueryCreditDetailRespCallback", "query_credit_detail", detail),
    "queryStkCompactsWithSeq": ("bindOnQueryStkCompactsRespCallback", "query_stk_compacts", compact),
    "queryCreditSubjectsWithSeq": ("bindOnQueryCreditSubjectsRespCallback", "query_credit_subjects", subject),
    "queryCreditSloCodeWithSeq": ("bindOnQueryCreditSloCodeRespCallback", "query_credit_slo_code", slo_code),
    "queryCreditAssureWithSeq": ("bindOnQueryCreditAssureRespCallback", "query_credit_assure", assure),
}

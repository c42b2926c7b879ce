"""Credit (两融) account queries, their reports and results."""

from __future__ import annotations

from typing import ClassVar

from producer_lib.contract._models import COMMAND_TYPES, Command, RESULT_TYPES, _Model


# --- Credit (两融) accounts: the five credit queries (xtquant query_credit_detail, query_stk_compacts,
# query_credit_subjects, query_credit_slo_code, query_credit_assure; fields: the wheel's doc/xttrader.md). Each
# answers the broker's list; a STOCK account's executor answers them as MiniQMT does for it (usually empty).
class QueryCreditDetail(Command):
    TYPE: ClassVar[str] = "query_credit_detail"


class QueryStkCompacts(Command):
    TYPE: ClassVar[str] = "query_stk_compacts"


class QueryCreditSubjects(Command):
    TYPE: ClassVar[str] = "query_credit_subjects"


class QueryCreditSloCode(Command):
    TYPE: ClassVar[str] = "query_credit_slo_code"


class QueryCreditAssure(Command):
    TYPE: ClassVar[str] = "query_credit_assure"


class CreditDetailReport(_Model):
    """XtCreditDetail: the margin account's assets, debts and quotas (amounts in CNY)."""

    account: str
    status: int = 0  # m_nStatus
    balance: float = 0.0  # m_dBalance 总资产
    available: float = 0.0  # m_dAvailable 可用金额
    frozen_cash: float = 0.0  # m_dFrozenCash 冻结金额
    market_value: float = 0.0  # m_dMarketValue 总市值
    stock_value: float = 0.0  # m_dStockValue 股票市值
    fund_value: float = 0.0  # m_dFundValue 基金市值
    fetch_balance: float = 0.0  # m_dFetchBalance 可取金额
    position_profit: float = 0.0  # m_dPositionProfit 持仓盈亏
    total_debt: float = 0.0  # m_dTotalDebt 总负债
    enable_bail_balance: float = 0.0  # m_dEnableBailBalance 可用保证金
    maintenance_ratio: float = 0.0  # m_dPerAssurescaleValue 维持担保比例 (as a fraction: 1.30 = 130 %)
    assure_asset: float = 0.0  # m_dAssureAsset 净资产
    fin_debt: float = 0.0  # m_dFinDebt 融资负债
    fin_deal_avl: float = 0.0  # m_dFinDealAvl 融资本金
    fin_fee: float = 0.0  # m_dFinFee 融资息费
    slo_debt: float = 0.0  # m_dSloDebt 融券负债
    slo_market_value: float = 0.0  # m_dSloMarketValue 融券市值
    slo_fee: float = 0.0  # m_dSloFee 融券息费
    other_fare: float = 0.0  # m_dOtherFare 其它费用
    fin_max_quota: float = 0.0  # m_dFinMaxQuota 融资授信额度
    fin_enable_quota: float = 0.0  # m_dFinEnableQuota 融资可用额度
    fin_used_quota: float = 0.0  # m_dFinUsedQuota 融资冻结额度
    slo_max_quota: float = 0.0  # m_dSloMaxQuota 融券授信额度
    slo_enable_quota: float = 0.0  # m_dSloEnableQuota 融券可用额度
    slo_used_quota: float = 0.0  # m_dSloUsedQuota 融券冻结额度
    slo_sell_balance: float = 0.0  # m_dSloSellBalance 融券卖出资金
    used_slo_sell_balance: float = 0.0  # m_dUsedSloSellBalance 已用融券卖出资金
    surplus_slo_sell_balance: float = 0.0  # m_dSurplusSloSellBalance 剩余融券卖出资金


class CompactReport(_Model):
    """StkCompacts: one debt compact (负债合约)."""

    compact_id: str  # 合约编号
    code: str  # instrument_id
    compact_type: int  # 合约类型 (the broker's code: 0 financing, 1 securities on the simulator)
    cashgroup_prop: int = 0  # 头寸来源 (0 ordinary, 1 special position on the simulator)
    market: int = -1  # exchange_id
    open_date: int = 0  # YYYYMMDD
    ret_end_date: int = 0  # 到期日 YYYYMMDD
    business_vol: int = 0  # 合约证券数量
    real_compact_vol: int = 0  # 未还合约数量
    business_balance: float = 0.0  # 合约金额
    business_fare: float = 0.0  # businessFare 合约息费
    real_compact_balance: float = 0.0  # 未还合约金额
    real_compact_fare: float = 0.0  # 未还合约息费
    repaid_fare: float = 0.0  # 已还息费
    repaid_balance: float = 0.0  # 已还金额
    position_str: str = ""  # 定位串


class CreditSubjectReport(_Model):
    """CreditSubjects: a margin-eligible security (融资融券标的) and its margin ratios."""

    code: str
    market: int = -1
    fin_status: int = 0  # 融资状态 (the broker's code)
    slo_status: int = 0  # 融券状态
    fin_ratio: float = 0.0  # 融资保证金比例
    slo_ratio: float = 0.0  # 融券保证金比例


class SloCodeReport(_Model):
    """CreditSloCode: a lendable security (可融券) and how many shares can be borrowed."""

    code: str
    market: int = -1
    cashgroup_prop: int = 0  # 头寸来源
    enable_amount: int = 0  # 融券可融数量


class AssureReport(_Model):
    """CreditAssure: a collateral security (担保品) and its haircut."""

    code: str
    market: int = -1
    assure_status: int = 0  # 是否可做担保 (the broker's code)
    assure_ratio: float = 0.0  # 担保品折算比例


class CreditDetailResult(_Model):
    details: list[CreditDetailReport]  # normally one


class CompactsResult(_Model):
    compacts: list[CompactReport]


class CreditSubjectsResult(_Model):
    subjects: list[CreditSubjectReport]


class SloCodesResult(_Model):
    codes: list[SloCodeReport]


class AssuresResult(_Model):
    assures: list[AssureReport]


CREDIT_QUERY_TYPES: dict[type[Command], type[_Model]] = {
    QueryCreditDetail: CreditDetailResult, QueryStkCompacts: CompactsResult, QueryCreditSubjects: CreditSubjectsResult,
    QueryCreditSloCode: SloCodesResult, QueryCreditAssure: AssuresResult}
COMMAND_TYPES.update({cmd.TYPE: cmd for cmd in CREDIT_QUERY_TYPES})
RESULT_TYPES.update({cmd.TYPE: result for cmd, result in CREDIT_QUERY_TYPES.items()})

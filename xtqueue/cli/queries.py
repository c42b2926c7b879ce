"""Commands that ask the account's executor and print the answer (a table, or JSON with ``--json``): positions,
orders, trades, asset, a client order id's outcome, ping, and the credit (两融) account's queries."""

from __future__ import annotations

import time
from typing import Any

import click

from xtqueue import _render as r

from . import _connect
from ._options import CODE, Globals, json_option


@click.command()
@click.argument("code", type=CODE, required=False)
@json_option
@click.pass_obj
def positions(g: Globals, code: str | None, as_json: bool) -> None:
    """Positions, all or one CODE (持仓)."""
    with _connect.client(g) as c:
        rows = c.query_positions(code)
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"positions of {g.account}", rows, r.POSITION_COLUMNS)


@click.command()
@click.option("--open", "open_only", is_flag=True, help="Only orders that can still be cancelled (可撤).")
@click.option("--order-id", type=click.IntRange(min=1), default=None, help="Only this broker order id.")
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID", help="Only this client order id.")
@json_option
@click.pass_obj
def orders(g: Globals, open_only: bool, order_id: int | None, client_order_id: str | None, as_json: bool) -> None:
    """Today's orders (当日委托)."""
    with _connect.client(g) as c:
        rows = c.query_orders(cancelable_only=open_only, order_id=order_id, client_order_id=client_order_id)
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"orders of {g.account}" + (" (open)" if open_only else ""), rows, r.ORDER_COLUMNS)


@click.command()
@json_option
@click.pass_obj
def trades(g: Globals, as_json: bool) -> None:
    """Today's fills (当日成交)."""
    with _connect.client(g) as c:
        rows = c.query_trades()
    if as_json:
        r.print_json(rows)
    else:
        r.print_table(f"trades of {g.account}", rows, r.TRADE_COLUMNS)


@click.command()
@json_option
@click.pass_obj
def asset(g: Globals, as_json: bool) -> None:
    """Cash and total assets (资金)."""
    with _connect.client(g) as c:
        report = c.query_asset()
    if as_json:
        r.print_json(report)
    else:
        r.print_kv(f"asset of {g.account}", r.model_items(report))


@click.command()
@click.argument("client_order_id", metavar="CLIENT_ORDER_ID")
@json_option
@click.pass_obj
def outcome(g: Globals, client_order_id: str, as_json: bool) -> None:
    """What happened to a client order id (订单结果).

    placed, rejected, expired, refused, unknown or not_found.
    """
    with _connect.client(g) as c:
        result = c.query_outcome(client_order_id)
    if as_json:
        r.print_json(result)
        return
    r.print_kv(f"outcome of {client_order_id}", r.model_items(result, skip=("order",)))
    if result.order is not None:
        r.print_table("order", [result.order], r.ORDER_COLUMNS)


@click.command()
@json_option
@click.pass_obj
def ping(g: Globals, as_json: bool) -> None:
    """Ask the executor for its health; prints the round trip time."""
    with _connect.client(g) as c:
        t0 = time.perf_counter()
        pong = c.ping()
        rtt_ms = (time.perf_counter() - t0) * 1000
    if as_json:
        r.print_json({**pong.model_dump(mode="json"), "round_trip_ms": round(rtt_ms, 3)})
        return
    r.print_kv(f"pong from {pong.executor_id}", [*r.model_items(pong), ("round_trip_ms", round(rtt_ms, 3))])


# --- credit (两融) accounts ----------------------------------------------------------------------------------------
def _credit_query(g: Globals, method: str, title: str, columns: Any, as_json: bool) -> None:
    with _connect.client(g) as c:
        rows = getattr(c, method)()
    if as_json:
        r.print_json(rows)
    elif columns is None:
        for row in rows or []:
            r.print_kv(f"{title} of {g.account}", r.model_items(row))
        if not rows:
            click.echo(f"{title} of {g.account}: (none: not a credit account?)")
    else:
        r.print_table(f"{title} of {g.account}", rows, columns)


@click.command()
@json_option
@click.pass_obj
def credit(g: Globals, as_json: bool) -> None:
    """Credit account assets, debts, quotas, maintenance ratio (信用资产)."""
    _credit_query(g, "query_credit_detail", "credit", None, as_json)


@click.command()
@json_option
@click.pass_obj
def compacts(g: Globals, as_json: bool) -> None:
    """Outstanding debt compacts (负债合约)."""
    _credit_query(g, "query_stk_compacts", "compacts", r.COMPACT_COLUMNS, as_json)


@click.command("credit-subjects")
@json_option
@click.pass_obj
def credit_subjects(g: Globals, as_json: bool) -> None:
    """Margin-eligible securities and their margin ratios (融资融券标的)."""
    _credit_query(g, "query_credit_subjects", "credit subjects", r.SUBJECT_COLUMNS, as_json)


@click.command("slo-codes")
@json_option
@click.pass_obj
def slo_codes(g: Globals, as_json: bool) -> None:
    """Lendable securities and amounts (可融券)."""
    _credit_query(g, "query_credit_slo_code", "lendable", r.SLO_CODE_COLUMNS, as_json)


@click.command()
@json_option
@click.pass_obj
def assure(g: Globals, as_json: bool) -> None:
    """Collateral securities and their haircuts (担保品)."""
    _credit_query(g, "query_credit_assure", "collateral", r.ASSURE_COLUMNS, as_json)

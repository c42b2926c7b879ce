"""Commands that act on the account: ``order``, ``buy``, ``sell``, ``cancel`` and the cash repayment ``repay``
(直接还款). An interrupted wait for an order's answer names its client order id and exits 3 (outcome unknown)."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from xtqueue import _render as r

from . import _connect
from ._group import wants_traceback
from ._options import CODE, ORDER_SIDES, PRICE_TYPES, Globals, json_option


def _order_options(f: Callable) -> Callable:
    decorators = [
        click.option("--price-type", type=click.Choice(PRICE_TYPES), default="limit", show_default=True,
                     help="limit needs PRICE; latest = 最新价; the others are exchange market-order types."),
        click.option("--strategy", default="", help="Strategy to send as: its own command stream "
                     "(策略名; with `xtqueue acl` credentials, the user's strategy)."),
        click.option("--client-order-id", "client_order_id", default=None, metavar="COID",
                     help="Idempotency key, ≤24 chars of A-Z a-z 0-9 _ - . (default: a fresh random id). "
                          "Sending the same id again never places a second order."),
        click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                     help="Refuse the order (nothing placed) if the executor has not reached it within this time "
                          "[default: the library's, 10 s]."),
        json_option,
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _place(g: Globals, code: str, side: str, volume: int, price: float | None, price_type: str, strategy: str,
           client_order_id: str | None, deadline: float | None, as_json: bool) -> None:
    from producer_lib import contract

    if price_type == "limit" and price is None and not contract.Side(side).is_direct:
        raise click.UsageError("a limit order needs a PRICE (or use --price-type latest / a market type)")
    # The id is chosen here, not by the library, so an interrupted wait can still name it (xtqueue outcome COID).
    chosen = client_order_id is None
    coid = contract.new_client_order_id() if chosen else client_order_id
    kwargs: dict[str, Any] = {"price_type": price_type, "client_order_id": coid}
    if strategy:
        kwargs["strategy"] = strategy
    if deadline is not None:
        kwargs["deadline"] = deadline
    client = _connect.client(g, strategy)  # Ctrl+C before this returns: nothing was sent
    try:
        with client as c:
            ack = c.place_order(code, side, volume, price, **kwargs)
    except KeyboardInterrupt:
        if wants_traceback(click.get_current_context()):
            raise
        click.echo(f"interrupted while waiting for the answer to order {coid} ({code} {side} {volume}): it may or "
                   f"may not have been placed.\n  ask: xtqueue --account {g.account} outcome {coid}   (sending it "
                   f"again with --client-order-id {coid} can never place it twice)", err=True)
        sys.exit(r.EXIT_UNKNOWN)
    if as_json:
        r.print_json(ack)
        return
    what = f"{code} {r.side_text(side)} {volume}" + (f" @ {r.fmt(price)}" if price is not None else "") + \
        f" ({price_type})"
    line = (f"{r.t('placed')}: order {ack.order_id}  coid {ack.client_order_id}  {what}  "
            f"{r.t('status')} {r.status_text(ack.status)}")
    if ack.status_msg:
        line += f" ({ack.status_msg})"
    if ack.duplicate and chosen:
        # A fresh id answered from the journal: this very command reached the executor twice (a re-send after a
        # connection failure, or recovery after a restart). It was placed once.
        line += "\n  (placed once: the executor had already placed this order from an earlier copy of this command)"
    elif ack.duplicate:
        line += (f"\n  (client order id {coid} had been placed before: answered from the executor's journal, "
                 "nothing new placed)")
    click.echo(line)


@click.command()
@click.argument("code", type=CODE)
@click.argument("side", type=click.Choice(ORDER_SIDES, case_sensitive=False), metavar="SIDE")
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def order(g: Globals, code: str, side: str, volume: int, price: float | None, **kw: Any) -> None:
    """Place one order: CODE SIDE VOLUME [PRICE] (下单).

    SIDE: buy (买入/担保品买入), sell (卖出/担保品卖出); on a CREDIT account also fin_buy (融资买入), slo_sell
    (融券卖出), buy_secu_repay (买券还券), sell_secu_repay (卖券还款), direct_secu_repay (直接还券, no PRICE) and
    their _special (专项) variants. A direct cash repayment (直接还款) is `xtqueue repay`.

    Example: xtqueue order 600000.SH buy 100 10.01
    """
    _place(g, code, side.lower(), volume, price, **kw)


@click.command()
@click.argument("code", type=CODE)
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def buy(g: Globals, code: str, volume: int, price: float | None, **kw: Any) -> None:
    """Buy: CODE VOLUME [PRICE] (买入).

    Example: xtqueue buy 600000.SH 100 10.01
    """
    _place(g, code, "buy", volume, price, **kw)


@click.command()
@click.argument("code", type=CODE)
@click.argument("volume", type=click.IntRange(min=1))
@click.argument("price", type=click.FloatRange(min=0, min_open=True), required=False)
@_order_options
@click.pass_obj
def sell(g: Globals, code: str, volume: int, price: float | None, **kw: Any) -> None:
    """Sell: CODE VOLUME [PRICE] (卖出).

    A-shares are T+1: shares bought today cannot be sold before tomorrow.
    """
    _place(g, code, "sell", volume, price, **kw)


@click.command()
@click.argument("order_id", type=click.IntRange(min=1), required=False)
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID", help="Cancel by client order id.")
@click.option("--sysid", default=None, help="Cancel by exchange contract number (合同编号); needs --market.")
@click.option("--market", type=click.Choice(["SH", "SZ", "BJ"], case_sensitive=False), default=None)
@json_option
@click.pass_obj
def cancel(g: Globals, order_id: int | None, client_order_id: str | None, sysid: str | None, market: str | None,
           as_json: bool) -> None:
    """Cancel an order (撤单).

    By broker ORDER_ID, by --client-order-id COID, or by --sysid S --market SH.
    """
    given = sum(x is not None for x in (order_id, client_order_id, sysid))
    if given != 1:
        raise click.UsageError("give exactly one of ORDER_ID, --client-order-id, --sysid")
    if sysid is not None and market is None:
        raise click.UsageError("a cancel by --sysid needs --market (SH, SZ or BJ)")
    if market is not None and sysid is None:
        raise click.UsageError("--market goes with --sysid")
    with _connect.client(g) as c:
        ack = c.cancel_order(order_id, client_order_id=client_order_id, sysid=sysid,
                             market=market.upper() if market else None)
    if as_json:
        r.print_json(ack)
        return
    target = (f"order {ack.order_id}" if ack.order_id else "") + (f" coid {ack.client_order_id}"
                                                                   if ack.client_order_id else "")
    if ack.sysid:
        target += f" sysid {ack.sysid}"
    click.echo(f"cancel sent:{' ' + target.strip() if target.strip() else ''}; the final status arrives as an event "
               f"(`xtqueue tail`, `xtqueue orders`)")


@click.command()
@click.argument("code", type=CODE)
@click.argument("amount", type=click.FloatRange(min=0, min_open=True))
@click.option("--special", is_flag=True, help="The 专项 (special position) variant.")
@click.option("--strategy", default="", help="Strategy to send as (策略名).")
@click.option("--client-order-id", "client_order_id", default=None, metavar="COID",
              help="Idempotency key (default: a fresh random id); the same id never repays twice.")
@json_option
@click.pass_obj
def repay(g: Globals, code: str, amount: float, special: bool, strategy: str, client_order_id: str | None,
          as_json: bool) -> None:
    """Repay margin debt with cash: CODE AMOUNT in yuan (直接还款).

    Example: xtqueue repay 600000.SH 1000.51
    """
    kwargs: dict[str, Any] = {"special": special}
    if client_order_id:
        kwargs["client_order_id"] = client_order_id
    if strategy:
        kwargs["strategy"] = strategy
    with _connect.client(g, strategy) as c:
        ack = c.repay_cash(code, amount, **kwargs)
    if as_json:
        r.print_json(ack)
        return
    click.echo(f"repaid: order {ack.order_id}  coid {ack.client_order_id}  {amount:.2f} CNY  status "
               f"{r.fmt(ack.status)}" + (f" ({ack.status_msg})" if ack.status_msg else ""))

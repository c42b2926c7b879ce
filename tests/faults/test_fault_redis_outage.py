"""Issue #10, defect 11b: a Redis outage longer than the lease must not make a lone executor step down.

A lone executor (lease on) loses Redis (SIGKILL of redis-server, AOF with fsync always, so the data survives) for
longer than its lease; a resting order fills meanwhile. When Redis is back, the same process keeps serving (no exit
with code 3), the fill that happened during the outage is published, and an order sent after the outage is placed
exactly once (counted in the simulator's own order table). Its lease key carries the same fencing token as before:
nobody took over, so nothing was superseded.
"""

from __future__ import annotations

import asyncio
import secrets

import producer_lib as pl
from executor.sim.control import SimControl
from harness import CODE, ExecutorProc, await_until, read_events, sim_trades

LEASE_MS = 1_500
LEASE = ("--lease-ms", str(LEASE_MS), "--lease-renew-ms", "250")


async def test_lone_executor_rides_through_a_redis_outage_longer_than_its_lease(tmp_path, redis_server_aof):
    server = redis_server_aof
    account = f"O{secrets.token_hex(4)}"
    keys = pl.contract.Keys(account)
    ex = ExecutorProc(server.url, account, tmp_path / "ex", extra=LEASE)
    ex.start()
    try:
        await ex.wait_serving()
        r = server.client()
        lease_before = r.get(keys.lease)
        assert lease_before is not None
        r.close()
        async with pl.Client(server.url, account) as client:
            resting = await client.buy(CODE, 100, 9.50, client_order_id=f"rest{account}"[:24])
        ctl = SimControl(ex.sim_path)

        # The outage: Redis is down for twice the lease. The executor's own clock then says its lease lapsed; it
        # cannot know whether a standby took over, so it must neither trade nor answer, but must not give up either.
        server.kill()
        cid = ctl.set_price(CODE, 9.40)  # the resting buy fills while Redis is down: its events are spooled
        assert await asyncio.to_thread(ctl.wait_applied, cid, 10)
        await await_until(lambda: any(t["order_id"] == resting.order_id for t in sim_trades(ex.sim_path, account)),
                          10, "the fill at the broker")
        await asyncio.sleep(2 * LEASE_MS / 1000.0)  # the outage itself is the fault injected, not a wait
        server.start()  # same port and directory: the AOF is reloaded, the lease key has expired meanwhile

        assert ex.alive, f"the lone executor exited (rc={ex.proc.returncode}) during the outage:\n{ex.log_tail()}"
        await ex.wait_serving(timeout=30)  # the same process answers
        coid = f"after{account}"[:24]
        async with pl.Client(server.url, account) as client:
            ack = await client.buy(CODE, 100, 9.50, client_order_id=coid)
        assert ack.order_id > 0 and not ack.duplicate
        placed = [row for row in ctl.orders(account) if row["order_remark"] == coid]
        assert len(placed) == 1, placed  # the broker's own record: placed once

        r = server.client()
        try:
            def fill_published() -> bool:
                return any(ev.type == "order_filled" and ev.order_id == resting.order_id
                           for ev in read_events(r, keys))

            await await_until(fill_published, 20, f"the order_filled event of order {resting.order_id}")
            token_after = r.get(keys.lease)
            assert token_after is not None
            assert token_after.split(b":")[0] == lease_before.split(b":")[0]  # same term: nobody superseded it
        finally:
            r.close()
        assert ex.alive, f"the lone executor exited (rc={ex.proc.returncode}):\n{ex.log_tail()}"
        assert "stepping down" not in ex.log_tail(100_000)
    finally:
        rc = ex.terminate()
    assert rc == 0, f"rc={rc}\n{ex.log_tail()}"

"""Two executors (leader and hot standby) on ONE simulated MiniQMT, as two Windows workers would share one real
MiniQMT. The leader is SIGKILLed while a strategy
places orders; the standby takes over. Duplicates are counted from that MiniQMT's own records."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support import ExecutorProcess, QmtSim

import producer_lib as pl
from executor.sim import SimControl

FLAGS = ("--lease-ms", "2000", "--lease-renew-ms", "250", "--claim-idle-ms", "3000", "--claim-interval-ms", "500",
         "--probe-interval-ms", "1000", "--recovery-settle-ms", "500", "--shutdown-timeout-ms", "3000")
ORDERS = 24


def _executor(redis_url, account, qmt_path, tmp_path, name) -> ExecutorProcess:
    return ExecutorProcess(redis_url, account, tmp_path, "--executor-id", name, *FLAGS, sim_path=qmt_path,
                           state_dir=tmp_path / f"state-{name}", name=name).start()


async def _served_by(client: pl.Client, name: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            pong = await asyncio.wait_for(client.ping(), 2.0)
            if pong.executor_id == name and pong.broker_connected:
                return
        except (asyncio.TimeoutError, pl.XtqueueError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never served")


async def test_leader_killed_standby_takes_over_on_the_same_miniqmt_no_duplicates(redis_url, account, tmp_path,
                                                                                  redis_client):
    qmt_path = tmp_path / "userdata_mini"
    server = QmtSim(qmt_path, "--account", account, "--cash", "1000000000")
    ctl = SimControl(qmt_path)
    procs = []
    try:
        assert ctl.wait_applied(ctl.set_price("600000.SH", 10.00, prev_close=10.00), timeout=15)
        async with pl.Client(redis_url, account, strategy="shared") as client:
            procs.append(_executor(redis_url, account, qmt_path, tmp_path, "leader"))
            await _served_by(client, "leader")
            procs.append(_executor(redis_url, account, qmt_path, tmp_path, "standby"))
            coids = [f"sh{account}{i:03d}"[:24] for i in range(ORDERS)]
            acked: dict[str, int] = {}

            async def place(coid: str) -> None:
                while True:  # the same client order id until a definite answer: never a second order
                    try:
                        ack = await client.place_order("600000.SH", "buy", 100, 10.00, client_order_id=coid,
                                                       deadline=30)
                        acked[coid] = ack.order_id
                        return
                    except pl.OutcomeUnknown:
                        continue

            for i, coid in enumerate(coids):
                if i != ORDERS // 2:
                    await place(coid)
                    continue
                # The leader dies with an order AT MiniQMT whose answer it has not received yet (a slow counter):
                # the standby must find it there, not place it again.
                assert ctl.wait_applied(ctl.set_call_latency(800), timeout=15)
                task = asyncio.create_task(place(coid))
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while not any(r["order_remark"] == coid for r in ctl.orders(account)):
                    assert loop.time() < deadline and not task.done(), "the order never reached MiniQMT"
                    await asyncio.sleep(0.01)
                procs[0].kill()  # SIGKILL
                assert coid not in acked  # killed before it could answer
                assert ctl.wait_applied(ctl.reset_faults(), timeout=15)
                await asyncio.wait_for(task, 120)
            await _served_by(client, "standby")
        rows = ctl.orders(account)
        per_coid = Counter(r["order_remark"] for r in rows)
        assert [c for c, n in per_coid.items() if n > 1] == []  # no client order id twice at MiniQMT
        assert set(per_coid) == set(coids) == set(acked)
        assert {r["order_remark"]: r["order_id"] for r in rows} == acked
    finally:
        for p in procs:
            p.stop()
        ctl.close()
        server.stop()

"""``xtqueue run --qmt-sim DIR -- COMMAND``: an unmodified xtquant program (it knows nothing of xtqueue) trades on
the simulated MiniQMT at DIR, whatever MiniQMT path it passes and however its Python is started; exit codes and
signals pass through; a user's own sitecustomize still runs; the stand-in wins even over a loadable binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from qmt_helpers import WAIT
from support import child_env

from executor.sim import SimControl
from executor.sim.qmt.endpoint import serving
from xtqueue import launch

WINDOWS_PATH = r"D:\国金QMT\userdata_mini"  # what an unmodified program passes: not a folder on this machine

PROGRAM = textwrap.dedent("""
    import sys
    from xtquant import xtconstant
    from xtquant.xttrader import XtQuantTrader, XtQuantTraderCallback
    from xtquant.xttype import StockAccount

    def main(path, remark):
        trader = XtQuantTrader(path, 555, XtQuantTraderCallback())
        trader.start()
        assert trader.connect() == 0
        account = StockAccount("SIM001")
        assert trader.subscribe(account) == 0
        oid = trader.order_stock(account, "600000.SH", xtconstant.STOCK_BUY, 100, xtconstant.FIX_PRICE, 10.0,
                                 "paper", remark)
        print("order", oid, type(trader).__module__, flush=True)
        trader.stop()

    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
""")


def xtqueue_run(folder: Path, *command: str, env: dict | None = None, cwd: Path | None = None,
                extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtqueue", "run", "--qmt-sim", str(folder), *extra, "--",
                           *command], capture_output=True, text=True, timeout=WAIT * 4, env=env or child_env(),
                          cwd=cwd)


def placed(ctl: SimControl, stdout: str, remark: str) -> None:
    """The program's printed order id is the simulated MiniQMT's own record of that remark, filled."""
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("order ")]
    _, oid, module = line.split()
    assert module == "xtquant.xttrader"
    (row,) = [r for r in ctl.orders("SIM001") if r["order_remark"] == remark]
    assert (row["order_id"], row["traded_volume"]) == (int(oid), 100)


def test_a_program_passing_its_windows_path_trades_on_the_simulated_miniqmt(qmt, tmp_path):
    server, ctl = qmt
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    out = xtqueue_run(server.path, sys.executable, str(prog), WINDOWS_PATH, "script")
    assert out.returncode == 0, out.stderr
    placed(ctl, out.stdout, "script")
    assert len(ctl.orders("SIM001")) == 1


def test_python_dash_m_and_a_shell_reach_the_stand_in(qmt, tmp_path):
    server, ctl = qmt
    pkg = tmp_path / "strategies"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "paper.py").write_text(PROGRAM, encoding="utf-8")
    out = xtqueue_run(server.path, sys.executable, "-m", "strategies.paper", WINDOWS_PATH, "dash-m", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    placed(ctl, out.stdout, "dash-m")
    if sys.platform != "win32":
        line = f"cd {tmp_path} && '{sys.executable}' -m strategies.paper '{WINDOWS_PATH}' shell"
        out = xtqueue_run(server.path, "sh", "-c", line)
        assert out.returncode == 0, out.stderr
        placed(ctl, out.stdout, "shell")
    assert len(ctl.orders("SIM001")) == (1 if sys.platform == "win32" else 2)


SPAWNS_A_WORKER = textwrap.dedent("""
    import multiprocessing, sys
    from prog import main

    if __name__ == "__main__":
        worker = multiprocessing.get_context("spawn").Process(target=main, args=(sys.argv[1], "worker"))
        worker.start()
        worker.join()
        sys.exit(worker.exitcode)
""")


def test_a_child_python_of_the_program_gets_the_stand_in_too(qmt, tmp_path):
    server, ctl = qmt
    (tmp_path / "prog.py").write_text(PROGRAM, encoding="utf-8")
    (tmp_path / "parent.py").write_text(SPAWNS_A_WORKER, encoding="utf-8")
    out = xtqueue_run(server.path, sys.executable, str(tmp_path / "parent.py"), WINDOWS_PATH)
    assert out.returncode == 0, out.stderr
    placed(ctl, out.stdout, "worker")


def test_the_users_own_sitecustomize_still_runs_and_sys_path_is_untouched(qmt, tmp_path):
    server, _ = qmt
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sitecustomize.py").write_text("import builtins\nbuiltins.USER_SITE_RAN = True\n", encoding="utf-8")
    env = child_env()
    env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + str(mine)
    probe = ("import sys, sitecustomize, builtins, xtquant.xtpythonclient as c\n"
             "from executor.sim.qmt import is_stand_in\n"
             "print(getattr(builtins, 'USER_SITE_RAN', False), sitecustomize.__file__, is_stand_in(c),"
             " any('_boot' in p for p in sys.path))")
    out = xtqueue_run(server.path, sys.executable, "-c", probe, env=env)
    assert out.returncode == 0, out.stderr
    ran, where, stand_in, boot_on_path = out.stdout.split()
    assert (ran, Path(where), stand_in, boot_on_path) == ("True", mine / "sitecustomize.py", "True", "False")


FAKE_BINARY = "LOADED = 'the real binary'\n"
LOADS_THE_BINARY_IF_IT_CAN = textwrap.dedent("""
    import sys, xtquant
    xtquant.__path__.insert(0, sys.argv[1])   # a loadable xtpythonclient in the package, as the .pyd on Windows
    {install}
    import xtquant.xtpythonclient as c
    from executor.sim.qmt import is_stand_in
    print("the stand-in" if is_stand_in(c) else c.LOADED)
""")


@pytest.mark.parametrize("how", ["launcher", "install"])
def test_under_the_launcher_the_stand_in_wins_over_a_loadable_binary(qmt, tmp_path, how):
    """Paper trading must never reach a real MiniQMT: on Windows the .pyd loads, and the launcher's stand-in must
    still be the one. The plain install() (what an ordinary program calls) yields to the binary: the
    control case, showing the test can tell them apart."""
    server, _ = qmt
    fake = tmp_path / "binary"
    fake.mkdir()
    (fake / "xtpythonclient.py").write_text(FAKE_BINARY, encoding="utf-8")
    if how == "launcher":
        prog = LOADS_THE_BINARY_IF_IT_CAN.format(install="")
        out = xtqueue_run(server.path, sys.executable, "-c", prog, str(fake))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "the stand-in"
    else:
        prog = LOADS_THE_BINARY_IF_IT_CAN.format(install="from executor.sim.qmt import install; install()")
        out = subprocess.run([sys.executable, "-c", prog, str(fake)], capture_output=True, text=True,
                             timeout=WAIT * 4, env=child_env())
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "the real binary"


def test_a_failed_install_keeps_the_program_from_the_binary(tmp_path):
    """The stand-in is installed at the program's first import of xtquant.xtpythonclient (a Python of the command
    that never trades does not pay for it); if that install fails, the import fails: never the real binary."""
    env = launch.child_env("no_such_module_xtq:install", base=child_env())
    out = subprocess.run([sys.executable, "-c", "print('ran'); import xtquant.xttrader; print('imported')"],
                         capture_output=True, text=True, timeout=WAIT * 4, env=env)
    assert out.returncode == 1
    assert out.stdout.split() == ["ran"]
    assert "could not install no_such_module_xtq:install before importing xtquant.xtpythonclient" in out.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_xtq'" in out.stderr


def test_exit_codes_pass_through(tmp_path):
    out = xtqueue_run(tmp_path, sys.executable, "-c", "import sys; sys.exit(7)")
    assert out.returncode == 7, out.stderr
    out = xtqueue_run(tmp_path, "no-such-command-xtq")
    assert out.returncode == launch.EXIT_NOT_STARTED
    assert "no-such-command-xtq" in out.stderr


def test_usage_errors(tmp_path):
    base = [sys.executable, "-m", "xtqueue", "run"]
    for args, says in [(["--", "python"], "give one target"),
                       (["--start-sim", "--", "python"], "give one target"),
                       (["--qmt-sim", str(tmp_path)], "Missing argument")]:
        out = subprocess.run(base + args, capture_output=True, text=True, timeout=WAIT * 4, env=child_env())
        assert out.returncode == 2 and says in out.stderr, (args, out.stderr)


INTERRUPTIBLE = textwrap.dedent("""
    import sys, time
    try:
        print("ready", flush=True)   # inside the try: the interrupt may come as soon as this is out
        time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        time.sleep(0.5)          # clean-up: a second interrupt would land here
        print("cleaned up", flush=True)
        sys.exit(3)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_interrupt_sent_to_the_launcher_reaches_the_program_once(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(INTERRUPTIBLE, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "run", "--qmt-sim", str(tmp_path), "--",
                             sys.executable, str(prog)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(), stdin=subprocess.DEVNULL)
    # (importing xtquant may print a line of its own first, in a fresh virtualenv)
    assert next((line for line in iter(proc.stdout.readline, "") if line == "ready\n"), "") == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 3, err
    assert out.splitlines() == ["interrupted", "cleaned up"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_program_killed_by_a_signal_kills_the_launcher_with_it(tmp_path):
    out = xtqueue_run(tmp_path, sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert out.returncode == -signal.SIGTERM, out.stderr


def test_start_sim_serves_the_folder_for_the_run_only(tmp_path):
    folder = tmp_path / "userdata_mini"
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    ctl = SimControl(folder)
    ctl.set_price("600000.SH", 10.00, prev_close=10.00)  # applied when the simulated MiniQMT starts
    out = xtqueue_run(folder, sys.executable, str(prog), WINDOWS_PATH, "started", extra=("--start-sim",))
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + WAIT  # it is stopped when the command ended; its file may take a moment to go
    while serving(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not serving(folder)
    try:
        placed(ctl, out.stdout, "started")
    finally:
        ctl.close()


def test_start_sim_uses_a_simulated_miniqmt_already_serving(qmt, tmp_path):
    server, ctl = qmt
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    out = xtqueue_run(server.path, sys.executable, str(prog), WINDOWS_PATH, "shared", extra=("--start-sim",))
    assert out.returncode == 0, out.stderr
    assert "already serves" in out.stderr
    placed(ctl, out.stdout, "shared")
    assert server.proc.poll() is None and serving(server.path)


def test_without_the_launcher_the_program_cannot_import_xttrader(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    out = subprocess.run([sys.executable, str(prog), str(tmp_path), "x"], capture_output=True, text=True,
                         timeout=WAIT * 4, env=child_env())
    assert out.returncode != 0 and "xtpythonclient" in out.stderr



@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")
def test_ctrl_c_at_a_terminal_reaches_the_program_once(tmp_path):
    """At a terminal Ctrl-C goes to the whole foreground process group, the program included: the launcher must
    not send it a second one (which would land in the program's clean-up)."""
    import fcntl
    import pty
    import select
    import termios

    prog = tmp_path / "prog.py"
    prog.write_text(INTERRUPTIBLE, encoding="utf-8")
    master, slave = pty.openpty()

    def controlling_terminal():  # in the launcher's child, after setsid: the pty becomes its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "xtqueue", "run", "--qmt-sim", str(tmp_path), "--",
                             sys.executable, str(prog)], stdin=slave, stdout=slave, stderr=slave, env=child_env(),
                            start_new_session=True, preexec_fn=controlling_terminal)
    os.close(slave)
    seen = b""

    def read_until(done, timeout=WAIT):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not done(seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every process on the terminal has gone
                    return
                if not chunk:
                    return
                seen += chunk

    try:
        read_until(lambda b: b"ready\r\n" in b)
        assert b"ready\r\n" in seen, seen
        os.write(master, b"\x03")  # the terminal's interrupt character
        read_until(lambda b: False)
        assert proc.wait(timeout=WAIT) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = seen.decode(errors="replace").replace("^C", "\n")  # the terminal's echo of the interrupt
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "xtqueue run:" not in ln]
    assert lines == ["ready", "interrupted", "cleaned up"], seen


def test_the_command_environment_keeps_the_users_pythonpath_as_given():
    sep = os.pathsep
    boot = str(launch.BOOT_DIR)
    assert launch.child_env("m:f", base={})["PYTHONPATH"] == boot  # no empty entry (= the current directory)
    assert launch.child_env("m:f", base={"PYTHONPATH": f"/a{sep}{sep}/b"})["PYTHONPATH"] == f"{boot}{sep}/a{sep}{sep}/b"
    nested = launch.child_env("m:f", base=launch.child_env("m:f", base={"PYTHONPATH": "/a"}))
    assert nested["PYTHONPATH"] == f"{boot}{sep}/a" and nested[launch.INSTALL_ENV] == "m:f"


def test_start_sim_is_not_fooled_by_a_stale_endpoint(tmp_path):
    """--start-sim asks whether a simulated MiniQMT serves DIR: an endpoint file of a killed server, or one whose
    port a stranger now holds (accepts, never answers), is 'no', within the bound."""
    import socket

    from executor.sim.qmt.endpoint import new_authkey, write_endpoint

    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    try:
        write_endpoint(tmp_path, *stranger.getsockname(), new_authkey())
        assert not serving(tmp_path, timeout=0.5)  # (unbounded, this call would never return)
    finally:
        stranger.close()
    assert not serving(tmp_path, timeout=0.5)  # nobody listens there now

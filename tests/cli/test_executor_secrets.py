"""Issue #10, defect 11a: the executor prints no secret and no traceback locals, whatever way it ends.

Run the way a user runs it (`xtqueue executor ...` as a process, output to files like deploy/windows/run-executor.cmd
does) with a Redis password in the URL, a password by environment variable, and a signing key; then end it by each
path that prints something. The secrets appear nowhere: not on stdout, not on stderr, not in any file it wrote; and
what it prints stays short (stopping while Redis is unreachable once printed a 776-line traceback with every frame's
locals, the password twice among them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
URL_PASSWORD = "Url-Pw-7f3a9c"
ENV_PASSWORD = "Env-Pw-51d2e8"
SIGNING_SECRET = "sign-secret-0b7e4d1a9c"
SECRETS = (URL_PASSWORD, ENV_PASSWORD, SIGNING_SECRET)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing listens there


def _xtqueue() -> list[str]:
    script = shutil.which("xtqueue", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "xtqueue"]


class Run:
    def __init__(self, workdir: Path, *args: str, env_password: bool = True) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("XTQUEUE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        env["XTQUEUE_SIGNING_KEYS"] = f"k1:alpha:{SIGNING_SECRET}"
        if env_password:
            env["XTQUEUE_REDIS_PASSWORD"] = ENV_PASSWORD
        self.stdout_path, self.stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([*_xtqueue(), "executor", "--account", "S1", "--broker", "sim",
                                          "--sim-path", str(workdir / "sim"), "--shutdown-timeout-ms", "2000", *args],
                                         stdout=out, stderr=err, env=env, cwd=str(workdir))

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.proc.poll() is None, f"exited early (rc={self.proc.returncode}):\n{self.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{self.stderr[-3000:]}"
            time.sleep(0.05)

    def finish(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"did not exit in {timeout} s:\n{self.stderr[-3000:]}") from None

    def assert_no_secret(self, max_lines: int) -> None:
        written = [p for p in self.workdir.rglob("*") if p.is_file()]
        assert self.stdout_path in written and self.stderr_path in written
        for path in written:
            data = path.read_bytes()
            for secret in SECRETS:
                at = data.find(secret.encode())
                context = data[max(0, at - 300):at + 100].decode(errors="replace")
                assert at < 0, f"{secret!r} in {path.name}: ...{context}"
        text = self.stdout_path.read_text(errors="replace") + self.stderr
        lines = text.splitlines()
        assert len(lines) <= max_lines, f"{len(lines)} lines:\n{text[-4000:]}"
        for marker in ("locals", "╭", "│"):  # rich's tracebacks: framed, with a box of locals per frame
            assert marker not in text, f"{marker!r} in the output:\n{text[-4000:]}"


def _url(port: int, password: str = URL_PASSWORD) -> str:
    return f"redis://xtq-executor-S1:{password}@127.0.0.1:{port}/0"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_while_waiting_for_an_unreachable_redis(tmp_path, sig):
    run = Run(tmp_path, "--redis-url", _url(_closed_port()), "--state-dir", str(tmp_path / "state"))
    run.wait_for("redis unreachable at start")
    run.wait_for("retry_s=0.4")  # a few rounds of waiting, as a user would see before pressing Ctrl+C
    run.proc.send_signal(sig)
    rc = run.finish()
    assert rc == 0, run.stderr  # a requested stop is a clean stop, even before Redis answered
    assert "stopped before Redis became reachable" in run.stderr
    run.assert_no_secret(max_lines=30)


def test_stopped_while_redis_refuses_the_credentials(tmp_path, redis_url):
    """Redis answers but refuses the user/password (AuthenticationError): retried like an outage, then stopped."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    run = Run(tmp_path, "--redis-url", _url(port), "--state-dir", str(tmp_path / "state"))
    run.wait_for("redis unreachable at start")
    run.wait_for("retry_s=0.4")
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.stderr
    run.assert_no_secret(max_lines=30)


def test_executor_failing_at_start_logs_a_plain_traceback_without_secrets(tmp_path):
    """A failure the executor cannot recover from (its state dir is a file) is logged with its traceback: the
    traceback module's text, no locals, secrets masked."""
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("not a folder")
    run = Run(tmp_path, "--redis-url", _url(_closed_port()), "--state-dir", str(blocker))
    rc = run.finish()
    assert rc == 1, run.stderr
    run.assert_no_secret(max_lines=80)
    assert "executor failed" in run.stderr and "Traceback (most recent call last)" in run.stderr


def test_check_against_an_unreachable_redis(tmp_path):
    run = Run(tmp_path, "--redis-url", _url(_closed_port()), "--check")
    assert run.finish() == 1
    assert "unhealthy" in run.stderr
    run.assert_no_secret(max_lines=5)


def test_invalid_settings_name_no_secret(tmp_path):
    run = Run(tmp_path, "--redis-url", _url(_closed_port()), "--batch-size", "0")
    assert run.finish() == 2
    assert "batch_size" in run.stderr
    run.assert_no_secret(max_lines=10)

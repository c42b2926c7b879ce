"""Helpers of the security tests: redis-server processes of our own (loopback, free port, temp dir), optionally
with an ACL file and TLS; executor processes on the simulator running as an ACL user; test certificates. A module of
its own name (not conftest.py, which tests/faults has too: ``from conftest import`` found whichever was loaded
first)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import ExecutorProcess, free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "executor"))  # FakeBroker of the engine tests


class RedisServer:
    """``redis-server`` on a free loopback port in ``workdir``; ``aclfile`` and ``tls`` (dict of file paths) optional."""

    def __init__(self, workdir: Path, *, aclfile: Path | None = None, tls: dict[str, Path] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.aclfile = aclfile
        self.tls = tls
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self, admin: dict[str, Any] | None = None) -> RedisServer:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls["cert"]),
                     "--tls-key-file", str(self.tls["key"]), "--tls-ca-cert-file", str(self.tls["ca"]),
                     "--tls-auth-clients", "yes"]
        else:
            args += ["--port", str(self.port)]
        if self.aclfile:
            args += ["--aclfile", str(self.aclfile)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not listen: " + self.log()) from None
                time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            return (self.workdir / "redis.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class ExecutorProc(ExecutorProcess):
    """``python -m xtqueue executor`` on the simulator (tests/support.py's ExecutorProcess), started at once, with
    credentials/TLS given through the environment."""

    def __init__(self, workdir: Path, redis_url: str, account: str, env: dict[str, str], *,
                 extra: tuple[str, ...] = ()) -> None:
        super().__init__(redis_url, account, workdir, "--lease-renew-ms", "200", *extra, clean_env=True, env=env)
        self.start()

    def log(self) -> str:
        return super().log()[-5000:]

    def stop(self) -> int | None:
        return super().stop(20)


def openssl_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, cwd=d, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=xtqueue test CA")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "xtqueue client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn}")
        extra = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", *extra)
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}

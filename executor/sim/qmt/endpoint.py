"""Where a simulated MiniQMT listens: one small file in the folder it serves.

The server listens on loopback TCP through ``multiprocessing.connection`` (standard library, the same code on
Linux and Windows; AF_UNIX sockets are not available to it on Windows, named pipes not on Linux). Its address and
a fresh random authkey are written to ``ENDPOINT_FILE`` in the served folder, created with mode 0600 (owner only
on POSIX; on Windows the folder's ACL decides, as it does for MiniQMT's own ``userdata_mini``). Every connection
proves it holds the key (HMAC challenge) before a byte of a request is unpickled on either side, so only a process
that can read the folder can trade on the simulated accounts, as with MiniQMT.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

ENDPOINT_FILE = "xtqueue-qmt-sim.json"
# 2: every entry point of the pinned wheel (raw-argument calls travel as {"args": [...]}); a stand-in of 2 and a
# server of 1 do not connect (-1) rather than leave those calls unanswered
PROTOCOL = 2


def endpoint_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / ENDPOINT_FILE


def new_authkey() -> bytes:
    return secrets.token_bytes(32)


def write_endpoint(folder: str | os.PathLike, host: str, port: int, authkey: bytes) -> Path:
    """Write the endpoint file (owner-only), replacing any stale one atomically."""
    path = endpoint_path(folder)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    data = json.dumps({"protocol": PROTOCOL, "host": host, "port": port, "authkey": authkey.hex(),
                       "pid": os.getpid()}).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read_endpoint(folder: str | os.PathLike) -> tuple[tuple[str, int], bytes] | None:
    """(address, authkey) of the simulated MiniQMT serving ``folder``, or None when no endpoint file is there."""
    try:
        info = json.loads(endpoint_path(folder).read_text(encoding="utf-8"))
        if info.get("protocol") != PROTOCOL:
            return None
        return (str(info["host"]), int(info["port"])), bytes.fromhex(info["authkey"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_endpoint(folder: str | os.PathLike, authkey: bytes) -> None:
    """Remove the endpoint file if it is still ours (a newer server on the folder may have replaced it)."""
    found = read_endpoint(folder)
    if found is not None and found[1] == authkey:
        try:
            endpoint_path(folder).unlink()
        except OSError:
            pass


def no_delay(conn) -> None:
    """Send each message at once (TCP_NODELAY). Both ends write several small messages in a row (an answer and
    its pushes); with Nagle's algorithm on, the second waits for the peer's delayed ACK, up to 40 ms on Linux."""
    import socket

    try:
        s = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        finally:
            s.close()
    except (OSError, ValueError):
        pass


def hang_up(conn) -> None:
    """Close a ``multiprocessing.connection`` socket so that BOTH ends see it at once: a plain close() from another
    thread does not wake a recv() blocked on it (the peer would see nothing until that recv returns)."""
    import socket

    try:
        s = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()
    except (OSError, ValueError):
        pass
    try:
        conn.close()
    except OSError:
        pass


def serving(folder: str | os.PathLike, timeout: float = 3.0) -> bool:
    """True when a simulated MiniQMT answers at ``folder``'s endpoint (the key's handshake succeeds within
    ``timeout``); False when there is no endpoint file, a stale one (nobody listens, or a stranger that never
    answers on a reused port) or one of another key."""
    import threading
    from multiprocessing.connection import Client

    found = read_endpoint(folder)
    if found is None:
        return False
    address, authkey = found
    answered: list[bool] = []

    def probe() -> None:  # Client() has no timeout of its own: bounded by the join below
        try:
            Client(address, authkey=authkey).close()
            answered.append(True)
        except Exception:  # refused, reset, AuthenticationError
            pass

    t = threading.Thread(target=probe, name="qmt-sim-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(answered)

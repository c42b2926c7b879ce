"""Where the remote trader's executor is, and as whom it speaks: settings from a file and the environment.

An xtquant program passes ``XtQuantTrader(path, session)`` the folder of MiniQMT's ``userdata_mini``. Here there is
no MiniQMT on this machine, so ``path`` keeps the nearest meaning it can: the folder that says how to reach the
MiniQMT. If ``<path>/xtqueue-remote.toml`` exists it is read; then ``XTQUEUE_REMOTE_CONFIG`` (a TOML file) if
set; then environment variables override single keys. Keys (TOML name / environment variable):

=====================  ==================================  ==========================================================
``redis_url``          ``XTQUEUE_REDIS_URL``               ``redis://`` or ``rediss://`` (TLS) URL of the queue
``account``            ``XTQUEUE_ACCOUNT``                 the fund account the executor serves
``strategy``           ``XTQUEUE_STRATEGY``                the xtqueue strategy (its command stream, ACL user)
``redis_username``     ``XTQUEUE_REDIS_USERNAME``          Redis ACL user (``xtqueue acl``: ``xtq-strategy-<name>``)
``redis_password``     ``XTQUEUE_REDIS_PASSWORD``          its password (or ``redis_password_file``, a file)
``redis_password_file`` ``XTQUEUE_REDIS_PASSWORD_FILE``    a file holding the password (the 0600 files of xtqueue acl)
``redis_ca_cert``      ``XTQUEUE_REDIS_CA_CERT``           rediss://: CA certificate (PEM)
``redis_client_cert``  ``XTQUEUE_REDIS_CLIENT_CERT``       rediss://: client certificate (PEM), mutual TLS
``redis_client_key``   ``XTQUEUE_REDIS_CLIENT_KEY``        rediss://: its private key (PEM)
``signing_key_file``   ``XTQUEUE_SIGNING_KEY_FILE``        a file holding the strategy's signing key (signed commands)
``order_ttl_ms``       ``XTQUEUE_ORDER_TTL_MS``            each order's deadline, from when it is sent (10000)
``connect_timeout_s``  ``XTQUEUE_REMOTE_CONNECT_TIMEOUT_S`` how long connect() waits for the executor's answer (10)
``ping_interval_s``    ``XTQUEUE_REMOTE_PING_INTERVAL_S``  how often the link is checked while connected (2)
``ping_timeout_s``     ``XTQUEUE_REMOTE_PING_TIMEOUT_S``   a check unanswered this long failed; two failures in a
                                                           row are a disconnect (5)
=====================  ==================================  ==========================================================

Secrets (password, signing key) are never logged or shown: ``repr`` hides them and messages show the URL without
its password.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

CONFIG_FILE = "xtqueue-remote.toml"  # in the folder the program passes as XtQuantTrader's path
CONFIG_ENV = "XTQUEUE_REMOTE_CONFIG"

_ENV = {
    "redis_url": "XTQUEUE_REDIS_URL",
    "account": "XTQUEUE_ACCOUNT",
    "strategy": "XTQUEUE_STRATEGY",
    "redis_username": "XTQUEUE_REDIS_USERNAME",
    "redis_password": "XTQUEUE_REDIS_PASSWORD",
    "redis_password_file": "XTQUEUE_REDIS_PASSWORD_FILE",
    "redis_ca_cert": "XTQUEUE_REDIS_CA_CERT",
    "redis_client_cert": "XTQUEUE_REDIS_CLIENT_CERT",
    "redis_client_key": "XTQUEUE_REDIS_CLIENT_KEY",
    "signing_key_file": "XTQUEUE_SIGNING_KEY_FILE",
    "order_ttl_ms": "XTQUEUE_ORDER_TTL_MS",
    "connect_timeout_s": "XTQUEUE_REMOTE_CONNECT_TIMEOUT_S",
    "ping_interval_s": "XTQUEUE_REMOTE_PING_INTERVAL_S",
    "ping_timeout_s": "XTQUEUE_REMOTE_PING_TIMEOUT_S",
}


class SettingsError(ValueError):
    """The remote trader cannot tell where its executor is (nothing configured, or a value that is wrong)."""


@dataclass(frozen=True)
class RemoteSettings:
    redis_url: str
    account: str
    strategy: str = ""
    redis_username: str = ""
    redis_password: str = ""
    redis_password_file: str = ""
    redis_ca_cert: str = ""
    redis_client_cert: str = ""
    redis_client_key: str = ""
    signing_key_file: str = ""
    order_ttl_ms: int = 10_000
    connect_timeout_s: float = 10.0
    ping_interval_s: float = 2.0
    ping_timeout_s: float = 5.0

    def __repr__(self) -> str:  # the URL may hold a password: shown without it
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                          if f.name not in ("redis_url", "redis_password"))
        return f"RemoteSettings(redis_url={self.safe_url!r}, {shown})"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``producer_lib.Client`` (ACL user, TLS files, signing key) beyond url and account."""
        kwargs: dict[str, Any] = {"strategy": self.strategy}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        password = self.redis_password
        if not password and self.redis_password_file:
            password = _read_secret(self.redis_password_file, "redis_password_file")
        if password:
            kwargs["password"] = password
        tls = {"ssl_ca_certs": self.redis_ca_cert, "ssl_certfile": self.redis_client_cert,
               "ssl_keyfile": self.redis_client_key}
        given = {k: v for k, v in tls.items() if v}
        if given and not self.redis_url.startswith("rediss://"):
            raise SettingsError("redis_ca_cert / redis_client_cert / redis_client_key need a rediss:// redis_url")
        kwargs.update(given)
        if self.signing_key_file:
            kwargs["signing_key"] = _read_secret(self.signing_key_file, "signing_key_file")
        return kwargs

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        head, sep, tail = self.redis_url.partition("://")
        if "@" not in tail:
            return self.redis_url
        creds, _, host = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}{sep}{user + ':***' if ':' in creds else user}@{host}"


def _read_secret(path: str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc.strerror}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise SettingsError(f"{path}: reading TOML on Python 3.10 needs the tomli package") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(_ENV))
    if unknown:
        raise SettingsError(f"{path}: unknown keys {unknown}; known: {sorted(_ENV)}")
    return data


def load_settings(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> RemoteSettings:
    """The settings for a trader built with ``XtQuantTrader(path, ...)``: ``<path>/xtqueue-remote.toml``, then the
    file named by XTQUEUE_REMOTE_CONFIG, then the environment (highest). Raises SettingsError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is not None and (Path(path) / CONFIG_FILE).is_file():
        values.update(_read_toml(Path(path) / CONFIG_FILE))
    if env.get(CONFIG_ENV):
        values.update(_read_toml(Path(env[CONFIG_ENV])))
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    missing = [f"{n} ({_ENV[n]})" for n in ("redis_url", "account") if not values.get(n)]
    if missing:
        where = f"{Path(path) / CONFIG_FILE} or " if path is not None else ""
        raise SettingsError(f"no {' and no '.join(missing)}: set them in {where}the environment")
    types = {f.name: f.type for f in fields(RemoteSettings)}
    typed: dict[str, Any] = {}
    for name, value in values.items():
        kind = types[name]
        try:
            typed[name] = int(value) if kind == "int" else float(value) if kind == "float" else str(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name} must be a number, not {value!r}") from None
    settings = RemoteSettings(**typed)
    if settings.order_ttl_ms <= 0 or settings.connect_timeout_s <= 0 or settings.ping_interval_s <= 0 \
            or settings.ping_timeout_s <= 0:
        raise SettingsError("order_ttl_ms, connect_timeout_s, ping_interval_s and ping_timeout_s must be positive")
    from producer_lib import contract

    try:
        contract.validate_account(settings.account)
        contract.Keys(settings.account).command_stream(settings.strategy)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("redis_url must start with redis://, rediss:// or unix://")
    return settings

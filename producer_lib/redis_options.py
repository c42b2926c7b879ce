"""How to reach Redis, shared by the CLI, the producer library and the executor: the one URL masking for messages
and logs, and the one mapping of an ACL user and TLS files to redis-py options. Here, not in ``executor/``, so a
strategy-only install (no executor extra) has them too."""

from __future__ import annotations

import re
from typing import Any

# scheme://user:password@ (the scheme optional: "//user:password@" is masked too)
_URL_PASSWORD = re.compile(r"(?P<head>(?:[a-z][a-z0-9+.\-]*:)?//[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)", re.I)


def mask_url(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host`` (every URL in the text)."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)


class TlsNeedsRediss(ValueError):
    """TLS files given with a ``redis://`` URL: redis-py would ignore them, so they are refused."""


def redis_security_kwargs(url: str, username: str | None = None, password: str | None = None,
                          ca: str | None = None, cert: str | None = None, key: str | None = None) -> dict[str, Any]:
    """redis-py options for an ACL user and TLS files (only those given: a None is left out). A user and a
    password in the URL itself win over these (redis-py's rule). TlsNeedsRediss for TLS files without rediss://."""
    kwargs: dict[str, Any] = {}
    if username:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    files = {"ssl_ca_certs": ca, "ssl_certfile": cert, "ssl_keyfile": key}
    given = {k: str(v) for k, v in files.items() if v is not None}
    if given and not str(url).startswith("rediss://"):
        raise TlsNeedsRediss("TLS files need a rediss:// URL")
    return {**kwargs, **given}

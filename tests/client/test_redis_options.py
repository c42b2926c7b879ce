"""producer_lib/redis_options.py: the one URL masking and the one ACL/TLS option mapping, used by the CLI (without
the executor extra) and by the executor alike."""

from __future__ import annotations

import click
import pytest
from pydantic import SecretStr

from producer_lib.redis_options import TlsNeedsRediss, mask_url, redis_security_kwargs


@pytest.mark.parametrize("text, masked", [
    ("redis://u:s3cret@h:6379/0", "redis://u:***@h:6379/0"),
    ("rediss://:s3cret@h", "rediss://:***@h"),
    ("cannot reach redis://u:s3cret@h:1 and unix://x:pw@/tmp/s",
     "cannot reach redis://u:***@h:1 and unix://x:***@/tmp/s"),
    ("//u:s3cret@h", "//u:***@h"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_mask_url_hides_every_password(text, masked):
    assert mask_url(text) == masked


def test_cli_and_executor_mask_with_the_one_function():
    from executor import logs
    from xtqueue.cli import _options as cli_options

    assert logs.mask_url is mask_url
    assert cli_options.mask_url("redis://u:s3cret@h") == mask_url("redis://u:s3cret@h") == "redis://u:***@h"
    assert "s3cret" not in logs.redact("url redis://u:s3cret@h")


def test_security_kwargs_only_what_is_given():
    assert redis_security_kwargs("redis://h") == {}
    assert redis_security_kwargs("rediss://h", "alice", "pw", ca="ca.pem") == {
        "username": "alice", "password": "pw", "ssl_ca_certs": "ca.pem"}
    with pytest.raises(TlsNeedsRediss):
        redis_security_kwargs("redis://h", cert="c.pem")


def test_cli_and_executor_keep_their_own_errors_and_empty_rules():
    from executor.safety.auth import AuthConfigError
    from executor.safety.auth import redis_security_kwargs as executor_kwargs
    from xtqueue.cli import _options as cli_options

    assert cli_options.redis_kwargs("redis://h", username="", password="", ca=None, cert=None, key=None) == {}
    with pytest.raises(click.UsageError, match="rediss://"):
        cli_options.redis_kwargs("redis://h", username=None, password=None, ca="ca.pem", cert=None, key=None)

    class Settings:
        redis_url = "redis://h"
        redis_username = "bob"
        redis_password = SecretStr("pw")
        redis_ca_cert = redis_client_cert = redis_client_key = None

    assert executor_kwargs(Settings) == {"username": "bob", "password": "pw"}
    Settings.redis_ca_cert = "ca.pem"
    with pytest.raises(AuthConfigError, match="rediss://"):
        executor_kwargs(Settings)

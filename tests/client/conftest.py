"""Fixtures of the client tests; the helpers they use live in client_helpers.py."""

from __future__ import annotations

import pytest
from client_helpers import Responder
from support import CutAfterXadd

from producer_lib import contract


@pytest.fixture
def responder(redis_url, account, redis_client):
    r = Responder(redis_url, account).start()
    yield r
    r.stop()


@pytest.fixture
def proxy(redis_url, account):
    p = CutAfterXadd.to(redis_url, contract.Keys(account).commands.encode())
    yield p
    p.close()

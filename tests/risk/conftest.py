"""Risk tests reuse the engine fixtures (real Redis, fresh account, FakeBroker, executor factory)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_EXECUTOR_TESTS = Path(__file__).resolve().parents[1] / "executor"
if str(_EXECUTOR_TESTS) not in sys.path:
    sys.path.insert(0, str(_EXECUTOR_TESTS))

_spec = importlib.util.spec_from_file_location("_executor_test_fixtures", _EXECUTOR_TESTS / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)  # type: ignore[union-attr]

r = _fixtures.r
account = _fixtures.account
settings_for = _fixtures.settings_for
make_executor = _fixtures.make_executor
client = _fixtures.client

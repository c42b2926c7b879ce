"""The public surface: __all__ is sorted, complete, and every name in it exists."""

from __future__ import annotations

import inspect
import types

import producer_lib
from producer_lib import _exceptions, contract


def test_all_is_sorted_and_names_exist():
    assert producer_lib.__all__ == sorted(producer_lib.__all__)
    assert len(set(producer_lib.__all__)) == len(producer_lib.__all__)
    for name in producer_lib.__all__:
        assert hasattr(producer_lib, name), name


def test_all_is_complete():
    public = {name for name, value in vars(producer_lib).items()
              if not name.startswith("_") and (not isinstance(value, types.ModuleType) or name == "contract")}
    assert public == set(producer_lib.__all__)


def test_every_exception_and_event_is_exported():
    exceptions = {name for name, value in vars(_exceptions).items()
                  if inspect.isclass(value) and issubclass(value, BaseException)
                  and value.__module__ in (_exceptions.__name__, "producer_lib")}
    assert exceptions <= set(producer_lib.__all__)
    assert {cls.__name__ for cls in contract.EVENT_TYPES.values()} <= set(producer_lib.__all__)


def test_public_classes_show_the_public_module():
    for name in ("Client", "SyncClient", "Gap", "XtqueueError", "ClientClosed", "CommandTimeout"):
        assert getattr(producer_lib, name).__module__ == "producer_lib"


def test_client_twins_have_identical_signatures():
    for name, method in inspect.getmembers(producer_lib.Client, inspect.isfunction):
        if name.startswith("_") or name == "aclose":
            continue
        twin = getattr(producer_lib.SyncClient, name)
        # Same parameters; return annotations differ only where sync/async must (Iterator vs AsyncIterator).
        assert list(inspect.signature(twin).parameters.values()) == \
            list(inspect.signature(method).parameters.values()), name
    assert list(inspect.signature(producer_lib.SyncClient.__init__).parameters) == \
        list(inspect.signature(producer_lib.Client.__init__).parameters)
    public = {n for n in dir(producer_lib.Client) if not n.startswith("_")} - {"aclose"}
    assert public == {n for n in dir(producer_lib.SyncClient) if not n.startswith("_")} - {"close"}


def test_contract_module_still_importable():
    import producer_lib.contract as c

    assert c is contract and producer_lib.contract is contract

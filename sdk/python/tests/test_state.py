"""Plugin state: the in-memory store of plain Python, and (with stand-ins for
componentize-py's bindings) the calls the component makes to the host."""

import importlib
import sys
import types
from dataclasses import dataclass

import pytest

import weir_sdk
from weir_sdk import Output, ProcessError, StateError, _host, state


@pytest.fixture(autouse=True)
def empty_state():
    state.clear()
    yield
    state.clear()


def test_set_get_delete_in_memory():
    assert state.get(b"k") is None
    state.set(b"k", b"v1")
    state.set(b"k", b"v2")
    assert state.get(b"k") == b"v2"
    state.delete(b"k")
    assert state.get(b"k") is None
    state.delete(b"never-set")  # removing a missing key is fine


def test_text_is_utf8_and_other_types_are_refused():
    state.set("clé", "valeur")
    assert state.get("clé".encode()) == "valeur".encode()
    state.set(bytearray(b"b"), memoryview(b"x"))
    assert state.get(b"b") == b"x"
    with pytest.raises(TypeError):
        state.set(b"k", 1)
    with pytest.raises(TypeError):
        state.get(None)


def test_clear_empties_it():
    state.set(b"a", b"1")
    state.clear()
    assert state.get(b"a") is None


def test_it_is_a_module_too():
    import weir_sdk.state as imported
    from weir_sdk.state import get

    assert imported is weir_sdk.state is state
    assert get is state.get
    assert state.StateError is StateError
    assert "StateError" in weir_sdk.__all__ and "state" in weir_sdk.__all__
    assert issubclass(StateError, Exception) and not issubclass(StateError, ProcessError)


# ---------------------------------------------------------------------------
# Inside a component: the entry module notes each record's offset, and state
# writes name it. componentize-py's generated modules are stood in for.


@dataclass
class _Ok:
    value: object


class _Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


@dataclass
class _Header:
    key: str
    value: bytes


@dataclass
class _OutputRecord:
    topic: object
    partition: object
    key: object
    value: object
    headers: list


@dataclass
class _ProcessError:
    message: str
    retryable: bool


@dataclass
class _InputRecord:
    offset: int
    key: bytes = None
    value: bytes = None
    topic: str = "t"
    partition: int = 0
    timestamp: int = None
    headers: list = None


class _HostState:
    """The `state` import: a dict, recording every call; refuses the key b"big"."""

    def __init__(self):
        self.data = {}
        self.calls = []

    def get(self, key):
        self.calls.append(("get", key))
        return self.data.get(key)

    def set(self, offset, key, value):
        self.calls.append(("set", offset, key, value))
        if key == b"big":
            raise _Err("the key is over the 1024-byte cap")
        self.data[key] = value

    def delete(self, offset, key):
        self.calls.append(("delete", offset, key))
        self.data.pop(key, None)


def _counting_plugin(record):
    """Counts records per key in state; the key b"fail" raises after writing."""
    count = int(state.get(record.key) or b"0") + 1
    state.set(record.key, str(count).encode())
    if record.key == b"fail":
        raise ProcessError("failed after writing")
    if count > 1:
        state.delete(b"first-" + record.key)
    return Output(value=str(count))


@pytest.fixture
def component(monkeypatch):
    """The entry module over `_counting_plugin`, with the host's state import."""
    host_state = _HostState()
    fakes = {
        "componentize_py_types": types.SimpleNamespace(Ok=_Ok, Err=_Err),
        "wit_world": types.ModuleType("wit_world"),
        "wit_world.exports": types.SimpleNamespace(Processor=object),
        "wit_world.imports": types.ModuleType("wit_world.imports"),
        "wit_world.imports.weir_processor_types": types.SimpleNamespace(
            Header=_Header, OutputRecord=_OutputRecord, ProcessError=_ProcessError
        ),
        "weir_plugin_module": types.SimpleNamespace(NAME="counting_plugin_for_test"),
        "counting_plugin_for_test": types.SimpleNamespace(process=_counting_plugin),
    }
    fakes["wit_world"].exports = fakes["wit_world.exports"]
    fakes["wit_world"].imports = fakes["wit_world.imports"]
    fakes["wit_world.imports"].weir_processor_types = fakes["wit_world.imports.weir_processor_types"]
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(_host, "_state", host_state)
    monkeypatch.setattr(_host, "_Err", _Err, raising=False)
    monkeypatch.setattr(_host, "offset", -1)
    monkeypatch.delitem(sys.modules, "weir_sdk.entry", raising=False)
    entry = importlib.import_module("weir_sdk.entry")
    yield entry.Processor(), host_state
    sys.modules.pop("weir_sdk.entry", None)
    if hasattr(weir_sdk, "entry"):
        delattr(weir_sdk, "entry")


def test_writes_name_the_offset_of_the_record_being_processed(component):
    processor, host_state = component
    batch = [_InputRecord(10, b"a"), _InputRecord(11, b"b"), _InputRecord(12, b"a")]
    outcomes = processor.process(batch)
    assert [o.value[0].value for o in outcomes] == [b"1", b"1", b"2"]
    assert host_state.calls == [
        ("get", b"a"),
        ("set", 10, b"a", b"1"),
        ("get", b"b"),
        ("set", 11, b"b", b"1"),
        ("get", b"a"),
        ("set", 12, b"a", b"2"),
        ("delete", 12, b"first-a"),
    ]
    assert memory_untouched()


def test_writes_reach_the_host_only_once_their_record_is_processed(component):
    processor, host_state = component
    batch = [_InputRecord(5, b"big"), _InputRecord(6, b"fail"), _InputRecord(7, b"fail")]
    refused, failed, failed_again = processor.process(batch)
    # The host refuses the processed record's write (and fails the record itself).
    assert ("set", 5, b"big", b"1") in host_state.calls
    assert refused.value[0].value == b"1"
    # A record that fails sends nothing: the next one does not see its write.
    assert isinstance(failed, _Err) and failed.value.message == "failed after writing"
    assert failed_again.value.message == "failed after writing"
    assert not any(call[0] == "set" and call[2] == b"fail" for call in host_state.calls)
    assert [call for call in host_state.calls if call[0] == "get"][-1] == ("get", b"fail")


@pytest.mark.usefixtures("component")
def test_state_error_carries_the_hosts_reason():
    with pytest.raises(StateError) as refused:
        state.set(b"big", b"")
    assert refused.value.message == "the key is over the 1024-byte cap"
    assert str(refused.value) == "the key is over the 1024-byte cap"


def memory_untouched():
    return _host.memory == {}

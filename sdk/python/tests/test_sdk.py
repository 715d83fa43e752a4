"""The SDK's plain-Python types (no WebAssembly)."""

import pytest

from weir_sdk import Output, ProcessError, Record, normalize_outputs


def test_to_output_keeps_key_and_headers_and_applies_changes():
    r = Record(value=b"v", key=b"k", headers=[("h", b"1")])
    o = r.to_output(value="new", topic="t")
    assert (o.value, o.key, o.headers, o.topic) == ("new", b"k", [("h", b"1")], "t")


def test_json_and_headers():
    r = Record(value=b'{"a": 1}', headers=[("h", b"x"), ("h", b"y")])
    assert r.json() == {"a": 1}
    assert r.header("h") == b"x"
    assert r.header("nope") is None
    with pytest.raises(ProcessError):
        Record(value=b"not json").json()


def test_process_results_are_normalized():
    assert normalize_outputs(None) == []
    assert normalize_outputs(Output(value=b"x")) == [Output(value=b"x")]
    assert len(normalize_outputs([Output(), Output()])) == 2
    with pytest.raises(TypeError):
        normalize_outputs("oops")
    with pytest.raises(TypeError):
        normalize_outputs([b"raw"])


def test_errors_say_whether_to_retry():
    assert ProcessError("later", retryable=True).retryable
    assert not ProcessError("never").retryable

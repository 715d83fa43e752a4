import pytest

from count_by_key import process
from weir_sdk import Record, state


@pytest.fixture(autouse=True)
def fresh():
    state.clear()
    yield
    state.clear()


def test_each_key_counts_on_its_own():
    counts = [process(Record(key=k.encode(), value=b"v")).value for k in ["a", "b", "a", "a"]]
    assert counts == ["1", "1", "2", "3"]
    assert state.get(b"a") == (3).to_bytes(8, "big")


def test_the_output_keeps_key_and_headers():
    out = process(Record(key=b"k", value=b"v", headers=[("h", b"1")]))
    assert (out.key, out.value, out.headers) == (b"k", "1", [("h", b"1")])


def test_a_null_key_counts_under_the_empty_key():
    process(Record(key=None))
    assert process(Record(key=b"")).value == "2"

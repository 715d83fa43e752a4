from uppercase import process
from weir_sdk import Record


def test_uppercases_ascii_and_keeps_key_and_headers():
    out = process(Record(value="hello, wörld".encode(), key=b"k", headers=[("h", b"1")]))
    assert out.value == "HELLO, WöRLD".encode()
    assert (out.key, out.headers) == (b"k", [("h", b"1")])


def test_a_tombstone_stays_a_tombstone():
    assert process(Record(value=None)).value is None

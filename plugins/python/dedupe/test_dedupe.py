import pytest

import dedupe
from weir_sdk import ProcessError, Record, state


@pytest.fixture(autouse=True)
def fresh():
    state.clear()
    dedupe.init({"window": "1m"})
    yield
    state.clear()


def record(value: str, timestamp=0) -> Record:
    return Record(value=value.encode(), topic="orders", timestamp=timestamp)


def test_an_id_passes_once_within_the_window_and_again_after_it():
    assert dedupe.process(record('{"id": 7}', 0)) is not None
    assert dedupe.process(record('{"id": 7}', 59_999)) is None
    assert dedupe.process(record('{"id": "7"}', 1)) is None  # a number is its JSON text
    assert dedupe.process(record('{"id": 8}', 1)) is not None
    assert dedupe.process(record('{"id": 7}', 60_000)) is not None


def test_the_output_is_the_record_and_the_state_its_timestamp():
    out = dedupe.process(Record(value=b'{"id": "a"}', key=b"k", headers=[("h", b"1")], timestamp=5))
    assert (out.value, out.key, out.headers) == (b'{"id": "a"}', b"k", [("h", b"1")])
    assert state.get(b"a") == (5).to_bytes(8, "big", signed=True)


def test_a_record_without_timestamp_counts_as_within_the_window():
    assert dedupe.process(record('{"id": 1}', None)) is not None
    assert dedupe.process(record('{"id": 1}', None)) is None
    assert dedupe.process(record('{"id": 1}', 10**12)) is not None  # long after "no time"


def test_the_field_is_configurable_and_ids_are_json_text():
    dedupe.init({"field": "order"})
    assert dedupe.process(record('{"order": {"b": 1, "a": [true, null]}}')) is not None
    assert state.get(b'{"a":[true,null],"b":1}') is not None
    assert dedupe.process(record('{"order": {"a": [true, null], "b": 1}}', 1)) is None


def test_records_without_the_field_or_not_json_are_errors():
    for value in ('{"no": 1}', "[1, 2]", "not json"):
        with pytest.raises(ProcessError) as failed:
            dedupe.process(record(value))
        assert not failed.value.retryable
    with pytest.raises(ProcessError):
        dedupe.process(Record(value=None))


def test_windows():
    assert dedupe.parse_window("24h") == 86_400_000
    assert dedupe.parse_window("90s") == 90_000
    assert dedupe.parse_window("250ms") == 250
    assert dedupe.parse_window("2d") == 172_800_000
    for bad in ("5", "h", "5w", "", "-1s"):
        with pytest.raises(ValueError):
            dedupe.init({"window": bad})

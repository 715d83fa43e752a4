import pytest

import json_filter
from weir_sdk import ProcessError, Record


@pytest.fixture(autouse=True)
def configured():
    json_filter.init({"field": "country", "equals": "NL"})


def test_keeps_matching_records_unchanged_and_tags_them():
    record = Record(value=b'{"country": "NL", "id": 1}', key=b"k", headers=[("h", b"1")])
    out = json_filter.process(record)
    assert out.value == record.value and out.key == b"k"
    assert out.headers == [("h", b"1"), ("weir-filter", b"country=NL")]


def test_drops_the_others_and_records_without_the_field():
    assert json_filter.process(Record(value=b'{"country": "BE"}')) is None
    assert json_filter.process(Record(value=b'{"id": 1}')) is None
    assert json_filter.process(Record(value=b"[1, 2]")) is None


def test_numbers_and_booleans_match_by_their_json_text():
    json_filter.init({"field": "n", "equals": "42"})
    assert json_filter.process(Record(value=b'{"n": 42}')) is not None
    json_filter.init({"field": "b", "equals": "true"})
    assert json_filter.process(Record(value=b'{"b": true}')) is not None


def test_refuses_what_is_not_json():
    with pytest.raises(ProcessError):
        json_filter.process(Record(value=b"plain text"))

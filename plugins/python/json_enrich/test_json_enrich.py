import pytest

import json_enrich
from weir_sdk import ProcessError, Record


@pytest.fixture(autouse=True)
def configured():
    json_enrich.init({"field": "country", "equals": "NL"})


def test_keeps_matching_records_and_adds_the_email_domain():
    out = json_enrich.process(Record(value=b'{"country": "NL", "email": "a@Example.org"}'))
    assert out.value == '{"country":"NL","email":"a@Example.org","email_domain":"example.org"}'


def test_drops_the_others():
    assert json_enrich.process(Record(value=b'{"country": "BE"}')) is None


def test_refuses_what_is_not_json():
    with pytest.raises(ProcessError):
        json_enrich.process(Record(value=b"plain text"))


def test_init_needs_its_settings():
    with pytest.raises(ValueError, match="field"):
        json_enrich.init({"equals": "NL"})

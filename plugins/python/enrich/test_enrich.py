import pytest

import enrich
from weir_sdk import ProcessError, Record
from weir_sdk.http import HttpError, Response


class Service:
    """A fake transport answering like the test service: `found-K`."""

    def __init__(self, status=200):
        self.status = status
        self.urls = []

    def send_once(self, request):
        self.urls.append(request.url)
        key = request.url.rsplit("/", 1)[1]
        return Response(status=self.status, headers=[], body=f"found-{key}".encode(), url=request.url)


def test_the_lookup_follows_the_value():
    enrich.init({"base_url": "http://lookup.example/v1/"})
    service = Service()
    out = enrich.process(Record(key=b"k1", value=b"v"), transport=service)
    assert out.value == b"v|found-k1"
    assert service.urls == ["http://lookup.example/v1/k1"]


def test_a_5xx_is_a_retryable_error():
    enrich.init({"base_url": "http://lookup.example"})
    with pytest.raises(HttpError) as failed:
        enrich.process(Record(key=b"k", value=b"v"), transport=Service(status=503))
    assert isinstance(failed.value, ProcessError) and failed.value.retryable


def test_base_url_is_required():
    with pytest.raises(ValueError):
        enrich.init({})

import pytest

from weir_sdk import ProcessError
from weir_sdk.http import MAX_REDIRECTS, HttpError, Request, Response, get, send


class Scripted:
    """Answers from a script, recording the requests it was sent."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def send_once(self, request):
        self.sent.append((request.method, request.url, request.body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, location = answer
        headers = [("location", location.encode())] if location else []
        return Response(status=status, headers=headers, body=b"ok", url=request.url)


def test_redirects_are_followed_hop_by_hop_through_the_transport():
    fake = Scripted((302, "/b?x=1"), (303, "https://other.example/c"), (200, None))
    response = send(Request("http://api.example/a/z", method="POST", body=b"data"), transport=fake)
    assert response.status == 200
    assert fake.sent == [
        ("POST", "http://api.example/a/z", b"data"),
        ("GET", "http://api.example/b?x=1", b""),
        ("GET", "https://other.example/c", b""),
    ]


def test_a_denied_hop_ends_the_request_and_is_not_retryable():
    denied = HttpError("denied", "http://elsewhere.example/", "denied")
    fake = Scripted((307, "http://elsewhere.example/"), denied)
    with pytest.raises(HttpError) as failed:
        send(Request("http://api.example/"), transport=fake)
    assert failed.value.kind == "denied" and not failed.value.retryable


def test_endless_redirects_stop():
    fake = Scripted(*[(301, "/again")] * (MAX_REDIRECTS + 1))
    with pytest.raises(HttpError) as failed:
        send(Request("http://api.example/"), transport=fake)
    assert failed.value.kind == "redirects"


def test_get_raises_for_status_retryably_for_5xx_and_429_only():
    for status, retryable in ((503, True), (429, True), (404, False)):
        with pytest.raises(ProcessError) as failed:
            get("http://api.example/x", transport=Scripted((status, None)))
        assert failed.value.retryable is retryable, status


def test_relative_and_scheme_less_urls_are_refused():
    for url in ("/relative", "ftp://h/x", "http://"):
        with pytest.raises(HttpError) as failed:
            get(url, transport=Scripted())
        assert failed.value.kind == "invalid-url"


def test_outside_webassembly_without_a_transport_it_says_what_to_do():
    with pytest.raises(HttpError) as failed:
        get("http://api.example/x")
    assert "transport=" in str(failed.value)


def test_refused_requests_and_timeouts_differ_in_retryability():
    assert not HttpError("refused", "http://h/", "refused: header").retryable
    assert HttpError("timeout", "http://h/", "timed out").retryable
    assert HttpError("failed", "http://h/", "failed: DnsError").retryable

"""Outbound HTTP from a plugin, over ``wasi:http``.

The host sends a request only if the operator allowed its host
(``allowed_outbound_hosts``); anything else fails with an ``HttpError`` whose
``kind`` is ``"denied"``. The plugin call's deadline covers the wait::

    from weir_sdk import http

    def process(record):
        found = http.get(f"http://127.0.0.1:8080/lookup/{record.key.decode()}")
        return record.to_output(value=record.value + b"|" + found.body)

``HttpError`` is a ``ProcessError``: raised out of ``process`` it fails the
record, retryably for timeouts, failed connections and 5xx / 429 answers.
``send`` follows redirects itself, so the host checks every hop. Outside
WebAssembly (pytest) pass ``transport=`` a fake with ``send_once(request)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from weir_sdk import ProcessError

# The wasi:http bindings, imported when the module is (componentize-py keeps
# only modules imported while the component is built); absent in plain Python.
try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import streams as _streams
    from wit_world.imports import wasi_http_types as _t
except ImportError:
    _handler = None

MAX_REDIRECTS = 5
"""Most redirects ``send`` follows before giving up."""

_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Request:
    """An HTTP request to an absolute ``http://`` or ``https://`` URL."""

    url: str
    method: str = "GET"
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""
    timeout: Optional[float] = None
    """Longest wait, in seconds, for the response's first byte."""


@dataclass
class Response:
    """An HTTP response, its body read in full."""

    status: int
    headers: list[tuple[str, bytes]]
    body: bytes
    url: str

    def header(self, name: str) -> Optional[bytes]:
        """The first value of header ``name`` (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8")

    def raise_for_status(self) -> "Response":
        """This response if its status is 2xx, else an ``HttpError``."""
        if 200 <= self.status < 300:
            return self
        raise HttpError("status", self.url, f"answered {self.status}", status=self.status)


class HttpError(ProcessError):
    """A request that got no usable response. ``kind`` is one of ``denied``,
    ``timeout``, ``status``, ``redirects``, ``invalid-url``, ``refused`` (a
    header the host forbids, an untrusted certificate: sending it again cannot
    help) or ``failed``."""

    def __init__(self, kind: str, url: str, reason: str, status: Optional[int] = None) -> None:
        retryable = kind in ("timeout", "failed") or (
            kind == "status" and status is not None and (status >= 500 or status == 429)
        )
        super().__init__(f"HTTP request to {url} {reason}", retryable=retryable)
        self.kind = kind
        self.url = url
        self.status = status


def get(url: str, timeout: Optional[float] = None, transport=None) -> Response:
    """``GET url``; a status that is not 2xx raises ``HttpError``."""
    return send(Request(url, timeout=timeout), transport=transport).raise_for_status()


def send(request: Request, transport=None) -> Response:
    """Send ``request`` (through the host unless ``transport`` is given),
    following up to ``MAX_REDIRECTS`` redirects; any status is a response."""
    send_once: Callable[[Request], Response] = (
        transport.send_once if transport is not None else _send_through_host
    )
    first = request.url
    for _ in range(MAX_REDIRECTS + 1):
        _split(request.url)
        response = send_once(request)
        location = response.header("location") if response.status in _REDIRECTS else None
        if location is None:
            return response
        becomes_get = response.status == 303 or (
            response.status in (301, 302) and request.method.upper() == "POST"
        )
        request = Request(
            url=_join(request.url, location.decode("utf-8", "replace")),
            method="GET" if becomes_get else request.method,
            headers=request.headers,
            body=b"" if becomes_get else request.body,
            timeout=request.timeout,
        )
    raise HttpError("redirects", first, f"redirected more than {MAX_REDIRECTS} times")


def _split(url: str) -> tuple[bool, str, str]:
    """``(https, authority, path_and_query)`` of an absolute URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise HttpError("invalid-url", url, "is not to an absolute http:// or https:// URL")
    rest = rest.split("#", 1)[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority:
        raise HttpError("invalid-url", url, "has no host")
    return scheme.lower() == "https", authority, path if path.startswith("/") else "/" + path


def _join(base: str, location: str) -> str:
    """``location`` resolved against ``base``."""
    https, authority, path = _split(base)
    scheme = "https" if https else "http"
    if "://" in location:
        return location
    if location.startswith("//"):
        return f"{scheme}:{location}"
    if location.startswith("/"):
        return f"{scheme}://{authority}{location}"
    directory = path.split("?", 1)[0].rsplit("/", 1)[0]
    return f"{scheme}://{authority}{directory}/{location}"


def _send_through_host(request: Request) -> Response:
    """One request through ``wasi:http/outgoing-handler``, blocking until its
    body is read."""
    if _handler is None:
        raise HttpError(
            "failed",
            request.url,
            "cannot be sent outside WebAssembly; pass transport= in tests",
        )
    t, Err = _t, _Err
    https, authority, path = _split(request.url)
    methods = {
        "GET": t.Method_Get,
        "HEAD": t.Method_Head,
        "POST": t.Method_Post,
        "PUT": t.Method_Put,
        "DELETE": t.Method_Delete,
        "PATCH": t.Method_Patch,
        "OPTIONS": t.Method_Options,
    }
    method_type = methods.get(request.method.upper())
    try:
        fields = t.Fields.from_list(list(request.headers))
    except Err as e:
        raise HttpError("refused", request.url, _refused_header(request.headers, e.value)) from None
    outgoing = t.OutgoingRequest(fields)
    outgoing.set_method(method_type() if method_type else t.Method_Other(request.method))
    outgoing.set_scheme(t.Scheme_Https() if https else t.Scheme_Http())
    outgoing.set_authority(authority)
    outgoing.set_path_with_query(path)
    options = t.RequestOptions()
    if request.timeout is not None:
        options.set_first_byte_timeout(int(request.timeout * 1e9))
    body = outgoing.body()
    try:
        pending = _handler.handle(outgoing, options)
    except Err as e:
        raise _from_code(request.url, e.value) from None
    if request.body:
        stream = body.write()
        for start in range(0, len(request.body), 4096):
            stream.blocking_write_and_flush(request.body[start : start + 4096])
        stream.__exit__(None, None, None)
    t.OutgoingBody.finish(body, None)
    pending.subscribe().block()
    result = pending.get()
    if result is None or isinstance(result, Err):
        raise HttpError("failed", request.url, "got no response")
    if isinstance(result.value, Err):
        raise _from_code(request.url, result.value.value)
    incoming = result.value.value
    status = incoming.status()
    headers = [(k.lower(), v) for k, v in incoming.headers().entries()]
    incoming_body = incoming.consume()
    stream = incoming_body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, _streams.StreamError_Closed):
                break
            raise HttpError("failed", request.url, "broke off while its body was read") from None
    stream.__exit__(None, None, None)
    t.IncomingBody.finish(incoming_body)
    return Response(status=status, headers=headers, body=b"".join(chunks), url=request.url)


def _refused_header(headers, error) -> str:
    """Which of ``headers`` the host refused, and why."""
    name = "a header"
    for header in headers:
        try:
            _t.Fields.from_list([header])
        except _Err:
            name = header[0]
            break
    if type(error).__name__ == "HeaderError_Forbidden":
        return (
            f"refused: the host forbids the header `{name}` "
            "(a hop-by-hop header, or in the operator's forbidden_headers)"
        )
    return f"refused: the header `{name}` is not valid"


def _from_code(url: str, code) -> HttpError:
    name = type(code).__name__
    if name == "ErrorCode_TlsCertificateError":
        return HttpError(
            "refused",
            url,
            "refused: the service's TLS certificate is not trusted "
            "(an internal CA goes in the operator's [plugin.http] ca_file)",
        )
    if name == "ErrorCode_HttpRequestDenied":
        return HttpError(
            "denied", url, "denied: the host is not in the plugin's allowed_outbound_hosts"
        )
    if name in (
        "ErrorCode_ConnectionTimeout",
        "ErrorCode_ConnectionReadTimeout",
        "ErrorCode_ConnectionWriteTimeout",
        "ErrorCode_HttpResponseTimeout",
        "ErrorCode_DnsTimeout",
    ):
        return HttpError("timeout", url, "timed out")
    return HttpError("failed", url, f"failed: {name.removeprefix('ErrorCode_')}")

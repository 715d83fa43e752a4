"""Example plugin: enriches each record from an HTTP service, like the Rust
``enrich`` example. For a record with key K it sends ``GET {base_url}/K``
through the host (which must allow the service: ``allowed_outbound_hosts``)
and produces the record with its value followed by ``|`` and the answer."""

from weir_sdk import Output, Record, http

_base_url = ""


def init(config: dict[str, str]) -> None:
    global _base_url
    if "base_url" not in config:
        raise ValueError("base_url is required, e.g. base_url=http://127.0.0.1:8080/lookup")
    _base_url = config["base_url"].rstrip("/")


def enriched(record: Record, lookup: bytes) -> Output:
    """``record`` with ``|`` and ``lookup`` appended to its value."""
    return record.to_output(value=(record.value or b"") + b"|" + lookup)


def process(record: Record, transport=None) -> Output:
    key = (record.key or b"").decode("utf-8", "replace")
    found = http.get(f"{_base_url}/{key}", transport=transport)
    return enriched(record, found.body)

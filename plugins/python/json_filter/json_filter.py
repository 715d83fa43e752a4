"""Example plugin: the Rust `json-filter` in Python (standard library only).
Keeps JSON records whose top-level `field` equals `equals` (strings by text;
numbers, booleans and null by their JSON text) and tags them with a header
`header` (default `weir-filter`) whose value is `field=equals`. A value that is
not JSON is the record's error.

Config: `field` (required), `equals` (required), `header` (optional).
"""

import json

from weir_sdk import Output, ProcessError, Record

_settings: dict[str, str] = {}


def init(config: dict[str, str]) -> None:
    for key in ("field", "equals"):
        if key not in config:
            raise ValueError(f"missing plugin config `{key}` (e.g. --plugin-config {key}=...)")
    _settings.clear()
    _settings.update(config)
    _settings["tag"] = f"{config['field']}={config['equals']}"


def matches(value: object, equals: str) -> bool:
    """Whether a field's JSON value equals the configured text."""
    if isinstance(value, str):
        return value == equals
    return json.dumps(value) == equals


def process(record: Record) -> Output | None:
    doc = record.json()
    if not isinstance(doc, dict) or _settings["field"] not in doc:
        return None
    if not matches(doc[_settings["field"]], _settings["equals"]):
        return None
    header = (_settings.get("header", "weir-filter"), _settings["tag"].encode())
    return record.to_output(headers=[*record.headers, header])


__all__ = ["ProcessError", "init", "process"]

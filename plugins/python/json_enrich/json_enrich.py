"""Example plugin, standard library only (json, re): keeps JSON records whose
`field` equals `equals` and adds the domain of their `email` field.

Config: `field` (required), `equals` (required).
"""

import json
import re

from weir_sdk import Output, ProcessError, Record

_settings: dict[str, str] = {}
_DOMAIN = re.compile(r"@([A-Za-z0-9.-]+)$")


def init(config: dict[str, str]) -> None:
    for key in ("field", "equals"):
        if key not in config:
            raise ValueError(f"missing plugin config `{key}` (e.g. --plugin-config {key}=...)")
    _settings.update(config)


def process(record: Record) -> Output | None:
    doc = record.json()
    if not isinstance(doc, dict):
        raise ProcessError("value is not a JSON object")
    if str(doc.get(_settings["field"])) != _settings["equals"]:
        return None
    match = _DOMAIN.search(str(doc.get("email", "")))
    doc["email_domain"] = match.group(1).lower() if match else None
    return record.to_output(value=json.dumps(doc, separators=(",", ":")))

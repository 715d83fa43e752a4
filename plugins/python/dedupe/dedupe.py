"""Example plugin with state, like the Rust `dedupe` example: drops JSON records
whose id was already seen within a window, so that a producer's retries or
replays reach the output once. The state holds, per id, the timestamp of the
record that first passed (8 bytes, big-endian, signed).

Config:
- `field` (default `id`): the top-level field that identifies a record (a
  string, or a number or other JSON value by its JSON text).
- `window` (default `24h`): how long an id stays seen, as `<n>ms`, `<n>s`,
  `<n>m`, `<n>h` or `<n>d`, measured between the records' timestamps. A record
  without a timestamp counts as within the window.

A value that is not a JSON object with the field is a non-retryable error.
"""

import json

from weir_sdk import Output, ProcessError, Record, StateError, state

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

_field = "id"
_window_ms = 86_400_000


def init(config: dict[str, str]) -> None:
    global _field, _window_ms
    window_ms = parse_window(config.get("window", "24h"))
    _field = config.get("field", "id")
    _window_ms = window_ms


def parse_window(text: str) -> int:
    """Milliseconds in ``text``, such as ``90s`` or ``24h``."""
    split = next((i for i, c in enumerate(text) if c not in "0123456789"), None)
    if split is None:
        raise ValueError(f"window `{text}` needs a unit: ms, s, m, h or d")
    number, unit = text[:split], text[split:]
    if not number or int(number) > _I64_MAX:
        raise ValueError(f"window `{text}` must start with a number")
    if unit not in _UNITS_MS:
        raise ValueError(f"window `{text}`: the unit must be ms, s, m, h or d")
    return min(int(number) * _UNITS_MS[unit], _I64_MAX)


def id_of(record: Record) -> str:
    """The id of the record's JSON document."""
    try:
        document = json.loads(record.value or b"")
    except ValueError as e:
        raise ProcessError(f"not JSON: {e}") from None
    if not isinstance(document, dict) or _field not in document:
        raise ProcessError(f"the record has no `{_field}` field")
    found = document[_field]
    if isinstance(found, str):
        return found
    # JSON text as serde_json writes it (compact, object keys sorted), so that
    # the ids match the Rust example's.
    return json.dumps(found, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def process(record: Record) -> Output | None:
    key = id_of(record).encode("utf-8")
    now = _I64_MIN if record.timestamp is None else record.timestamp
    seen = state.get(key)
    if seen is not None:
        seen = int.from_bytes(seen, "big", signed=True) if len(seen) == 8 else 0
        elapsed = max(min(now - seen, _I64_MAX), _I64_MIN)  # i64, saturating
        if record.timestamp is None or elapsed < _window_ms:
            return None
    try:
        state.set(key, now.to_bytes(8, "big", signed=True))
    except StateError as e:
        raise ProcessError(str(e)) from None
    return record.to_output()

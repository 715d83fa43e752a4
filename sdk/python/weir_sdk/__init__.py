"""Weir's Python SDK: write a plugin as a plain Python module.

A plugin module defines ``process(record)`` and, optionally, ``init(config)``::

    from weir_sdk import Output, ProcessError, Record

    def init(config: dict[str, str]) -> None:
        ...  # read settings; raise ValueError("...") to refuse them

    def process(record: Record) -> list[Output] | Output | None:
        return record.to_output(value=record.value.upper())

``process`` returns the outputs for one record: a list, a single ``Output``, or
``None`` to drop the record. Raising ``ProcessError`` (``retryable=True`` for a
transient condition) fails that record; any other exception does too, with its
type and message, and never crashes the plugin.

``state`` is a key-value store of bytes that Weir keeps per partition, across
batches, crashes and rebalances (see ``weir_sdk.state``)::

    from weir_sdk import state

    def process(record: Record) -> Output | None:
        key = record.key or b""
        if state.get(key) is not None:
            return None  # seen before
        state.set(key, b"")
        return record.to_output()

These types are plain Python: plugin logic is unit-tested with pytest, no
WebAssembly involved. ``weir build`` (or componentize-py with ``weir_sdk.entry``)
turns the module into a component.
"""

from __future__ import annotations

import json as _json
import sys as _sys
import types as _types
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from . import _host
from ._host import StateError

__all__ = ["Record", "Output", "ProcessError", "Header", "log", "state", "StateError"]

Header = tuple[str, bytes]
"""A Kafka record header: name and value."""

Bytes = Union[bytes, str]
"""Outputs accept ``str`` (encoded as UTF-8) wherever they take bytes."""


def _as_bytes(value: Optional[Bytes]) -> Optional[bytes]:
    if value is None or value.__class__ is bytes:
        return value
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"expected bytes, str or None, got {type(value).__name__}")


@dataclass
class Record:
    """One record consumed from Kafka."""

    value: Optional[bytes] = None
    key: Optional[bytes] = None
    headers: list[Header] = field(default_factory=list)
    topic: str = ""
    partition: int = 0
    offset: int = 0
    timestamp: Optional[int] = None

    def value_str(self) -> Optional[str]:
        """The value as UTF-8 text (``None`` for a null value)."""
        return None if self.value is None else self.value.decode("utf-8")

    def json(self) -> Any:
        """The value parsed as JSON; raises ``ProcessError`` if it is not JSON."""
        try:
            return _json.loads(self.value or b"")
        except ValueError as e:
            raise ProcessError(f"value is not JSON: {e}") from None

    def header(self, name: str) -> Optional[bytes]:
        """The value of the first header called ``name``, if any."""
        return next((v for k, v in self.headers if k == name), None)

    def to_output(self, **changes: Any) -> "Output":
        """An output with this record's key, value and headers, and ``changes``
        applied (any ``Output`` field: value, key, headers, topic, partition)."""
        # Called once per record by most plugins: build the output directly
        # rather than through a dict of fields (measurably cheaper in the guest).
        output = Output(self.value, self.key, list(self.headers))
        for name, value in changes.items():
            if name not in _OUTPUT_FIELDS:
                raise TypeError(f"to_output() got an unexpected field {name!r}; Output has {', '.join(_OUTPUT_FIELDS)}")
            setattr(output, name, value)
        return output


@dataclass
class Output:
    """One record for Weir to produce."""

    value: Optional[Bytes] = None
    key: Optional[Bytes] = None
    headers: list[tuple[str, Bytes]] = field(default_factory=list)
    topic: Optional[str] = None
    """Target topic; ``None`` for the pipeline's output topic."""
    partition: Optional[int] = None
    """Target partition; ``None`` lets the key decide."""


_OUTPUT_FIELDS = ("value", "key", "headers", "topic", "partition")


class ProcessError(Exception):
    """The plugin cannot process this record. ``retryable=True`` says trying the
    same record again may succeed (Weir retries it with backoff)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def log(level: str, message: str) -> None:
    """Write to Weir's log, tagged with the plugin name. ``level`` is one of
    trace, debug, info, warn, error. Outside Weir (tests) it prints to stderr."""
    _host.log(level, message)


state = _types.ModuleType(
    "weir_sdk.state",
    """Plugin state: a key-value store of byte strings that Weir keeps for the
partition being processed, across batches, crashes and rebalances.

- ``state.get(key) -> bytes | None``: the value of ``key``, if it has one.
- ``state.set(key, value)``: set ``key`` to ``value``.
- ``state.delete(key)``: remove ``key``.

Keys and values are bytes (a ``str`` is encoded as UTF-8). Reads see the
plugin's earlier writes in the same partition, including those of earlier
records of the same batch. A write belongs to the record being processed: it
takes effect only if that record is processed (an exception out of ``process``
drops it, and a retry writes again), and it reaches Weir's changelog before the
record's offset is committed. A write the host refuses (over the operator's
``[plugin.state]`` caps, or made in ``init``, where there is no partition)
raises ``StateError`` and fails the record whatever ``process`` returns.

Outside Weir (pytest), the same functions use an in-memory dict, so plugin
logic that keeps state unit-tests without the host; ``state.clear()`` empties
it between tests.
""",
)
state.get = _host.state_get
state.set = _host.state_set
state.delete = _host.state_delete
state.clear = _host.state_clear
state.StateError = StateError
state.__all__ = ["get", "set", "delete", "clear", "StateError"]
# `import weir_sdk.state` and `from weir_sdk.state import get` work too.
_sys.modules[state.__name__] = state


def normalize_outputs(result: Any) -> list[Output]:
    """What ``process`` returned, as a list of outputs."""
    if result is None:
        return []
    if result.__class__ is Output or isinstance(result, Output):
        return [result]
    if isinstance(result, (list, tuple)):
        for item in result:
            if not isinstance(item, Output):
                raise TypeError(f"process() returned a list holding {type(item).__name__}, expected Output")
        return list(result)
    raise TypeError(f"process() returned {type(result).__name__}; expected Output, a list of Output, or None")

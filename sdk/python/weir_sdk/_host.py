"""The host's imports: logging and plugin state through the host when running
inside Weir; stderr and an in-memory dict otherwise (plain Python, pytest).

``weir_sdk.state`` is the public face of the state functions here (they live in
this module so that the SDK's files, which ``weir build`` carries, stay the same).
"""

from __future__ import annotations

import sys
from typing import Optional, Union

# The bindings of the `state` import, imported when the module is (componentize-py
# keeps only modules imported while the component is built); absent in plain Python.
try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import state as _state
except ImportError:
    _state = None

_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str) -> None:
    """Log ``message`` at ``level``."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    try:
        from wit_world.imports import host
    except ImportError:
        print(f"[{level}] {message}", file=sys.stderr)
        return
    host.log(host.Level[level.upper()], message)


class StateError(Exception):
    """A state write the host refused (a key or value over the operator's caps,
    the partition's state full, a write outside ``process``). The record it was
    made for fails whatever ``process`` returns for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


offset = -1
"""The offset of the record being processed, which state writes belong to. The
entry module sets it before each record; -1 before the first."""

buffer: Optional[dict] = None
"""The writes of the record being processed (key to value, ``None`` deletes),
kept until ``process`` returns and then sent (``flush``) or dropped, so that a
record that fails leaves no trace; ``None`` outside a record (in ``init``),
where writes go to the host at once."""

memory: dict[bytes, bytes] = {}
"""The state outside WebAssembly (tests): a plain dict, emptied by ``clear``."""


def _key(value: Union[bytes, str], what: str = "key") -> bytes:
    if value.__class__ is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"state {what} must be bytes or str, not {type(value).__name__}")


def state_get(key: Union[bytes, str]) -> Optional[bytes]:
    """The value of ``key``, if it has one."""
    key = _key(key)
    if _state is None:
        return memory.get(key)
    kept = buffer
    if kept is not None and key in kept:
        return kept[key]
    return _state.get(key)


def state_set(key: Union[bytes, str], value: Union[bytes, str]) -> None:
    """Set ``key`` to ``value``, for the record being processed (sent to the
    host once it is processed; a refusal then fails the record). Outside a
    record, raises ``StateError`` if the host refuses."""
    key, value = _key(key), _key(value, "value")
    if _state is None:
        memory[key] = value
        return
    kept = buffer
    if kept is not None:
        kept[key] = value
        return
    try:
        _state.set(offset, key, value)
    except _Err as e:
        raise StateError(str(e.value)) from None


def state_delete(key: Union[bytes, str]) -> None:
    """Remove ``key``, for the record being processed (as ``state_set``)."""
    key = _key(key)
    if _state is None:
        memory.pop(key, None)
        return
    kept = buffer
    if kept is not None:
        kept[key] = None
        return
    try:
        _state.delete(offset, key)
    except _Err as e:
        raise StateError(str(e.value)) from None


def flush(writes: dict) -> None:
    """Send a processed record's ``writes`` to the host; a refused one fails
    the record there."""
    for key, value in writes.items():
        try:
            if value is None:
                _state.delete(offset, key)
            else:
                _state.set(offset, key, value)
        except _Err:
            pass


def state_clear() -> None:
    """Empty the in-memory state of tests (does nothing inside Weir, where the
    host owns the state)."""
    memory.clear()

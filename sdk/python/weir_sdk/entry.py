"""The component's entry module: adapts a plugin module (found by the name in
``weir_plugin_module.py``, written by the build) to Weir's WIT contract.

Per record, ``process`` runs inside a try block: a ``ProcessError`` or any other
exception becomes that record's error, so one bad record never traps the
instance (which would discard it and fail the other records of the batch).
Before it, the record's offset is noted: the state writes ``process`` makes
belong to that record.
"""

import importlib

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import weir_processor_types as types

import weir_plugin_module
from weir_sdk import ProcessError, Record, _as_bytes, _host, normalize_outputs

_plugin = importlib.import_module(weir_plugin_module.NAME)


# These run once per record inside the guest, where every Python operation
# costs several times what it does natively: positional arguments, no
# comprehension for the common empty header list.


def _record(r: "types.InputRecord") -> Record:
    headers = [(h.key, h.value) for h in r.headers] if r.headers else []
    return Record(r.value, r.key, headers, r.topic, r.partition, r.offset, r.timestamp)


def _output(o) -> "types.OutputRecord":
    headers = [_Header(k, _as_bytes(v) or b"") for k, v in o.headers] if o.headers else []
    return _OutputRecord(o.topic, o.partition, _as_bytes(o.key), _as_bytes(o.value), headers)


_Header = types.Header
_OutputRecord = types.OutputRecord


def _outcome(record: "types.InputRecord"):
    # State writes name the record, and wait until it is processed (weir_sdk.state).
    _host.offset = record.offset
    _host.buffer = writes = {}
    try:
        outputs = normalize_outputs(_plugin.process(_record(record)))
        processed = Ok([_output(o) for o in outputs])
    except ProcessError as e:
        _host.buffer = None
        return Err(types.ProcessError(message=e.message, retryable=e.retryable))
    except Exception as e:  # noqa: BLE001 - any failure is this record's, not the instance's
        _host.buffer = None
        return Err(types.ProcessError(message=f"{type(e).__name__}: {e}", retryable=False))
    _host.buffer = None
    if writes:
        _host.flush(writes)
    return processed


class Processor(exports.Processor):
    """Weir's `processor` export, backed by the plugin module."""

    def init(self, config):
        setup = getattr(_plugin, "init", None)
        if setup is None:
            return
        try:
            setup(dict(config))
        except Exception as e:  # noqa: BLE001 - reported to the operator
            raise Err(f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e))

    def process(self, batch):
        return [_outcome(r) for r in batch]

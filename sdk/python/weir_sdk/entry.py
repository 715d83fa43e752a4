"""The component's entry module: adapts a plugin module (found by the name in
``weir_plugin_module.py``, written by the build) to Weir's WIT contract.

Per record, ``process`` runs inside a try block: a ``ProcessError`` or any other
exception becomes that record's error, so one bad record never traps the
instance (which would discard it and fail the other records of the batch).
"""

import importlib

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import weir_processor_types as types

import weir_plugin_module
from weir_sdk import ProcessError, Record, _as_bytes, normalize_outputs

_plugin = importlib.import_module(weir_plugin_module.NAME)


def _record(r: "types.InputRecord") -> Record:
    return Record(
        value=r.value,
        key=r.key,
        headers=[(h.key, h.value) for h in r.headers],
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        timestamp=r.timestamp,
    )


def _output(o) -> "types.OutputRecord":
    return types.OutputRecord(
        topic=o.topic,
        partition=o.partition,
        key=_as_bytes(o.key),
        value=_as_bytes(o.value),
        headers=[types.Header(key=k, value=_as_bytes(v) or b"") for k, v in o.headers],
    )


def _outcome(record: "types.InputRecord"):
    try:
        outputs = normalize_outputs(_plugin.process(_record(record)))
        return Ok([_output(o) for o in outputs])
    except ProcessError as e:
        return Err(types.ProcessError(message=e.message, retryable=e.retryable))
    except Exception as e:  # noqa: BLE001 - any failure is this record's, not the instance's
        return Err(types.ProcessError(message=f"{type(e).__name__}: {e}", retryable=False))


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

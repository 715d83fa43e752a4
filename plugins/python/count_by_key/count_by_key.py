"""Example plugin with state, like the Rust `count-by-key` example: a running
count of records per key. Each record produces one output with its key and, as
the value, how many records with that key the partition has seen so far, itself
included (as decimal text). The state holds, per key, the count (8 bytes,
big-endian, unsigned).

Under `--exactly-once` the last count per key equals the number of input records
with that key, across crashes; in at-least-once mode a crash can count a record
twice (counts may be higher, never lower).

Records with a null key are counted under the empty key.
"""

from weir_sdk import Output, ProcessError, Record, StateError, state


def process(record: Record) -> Output:
    key = record.key or b""
    stored = state.get(key)
    count = (int.from_bytes(stored, "big") if stored is not None and len(stored) == 8 else 0) + 1
    try:
        state.set(key, count.to_bytes(8, "big"))
    except StateError as e:
        raise ProcessError(str(e)) from None
    return record.to_output(value=str(count))

"""Example plugin: upper-cases each record's value (ASCII), keeping its key and
headers, like the Rust `uppercase` example."""

from weir_sdk import Output, Record


def process(record: Record) -> Output:
    value = None if record.value is None else record.value.upper()
    return record.to_output(value=value)

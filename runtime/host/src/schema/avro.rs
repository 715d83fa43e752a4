//! Avro binary ⇄ JSON, guided by the writer's schema. Records come from
//! untrusted producers, so decoding is bounded: nesting depth, the JSON it
//! writes, and every length checked against the bytes that remain.
//!
//! The JSON mapping (also in the README):
//! - `null`, `boolean`, `int`, `long`, `string`: as JSON; `float`, `double`:
//!   numbers, or the strings `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - `bytes`, `fixed`: base64 (standard alphabet, padded);
//! - `enum`: its symbol; `array`: array; `map`, `record`: object;
//! - a union: the bare value of its branch (no `{"type": value}` wrapper); when
//!   encoding, the first branch the value fits is taken;
//! - `decimal`: a string of the exact number with `scale` digits after the
//!   point (`"-12.30"`); encoding also takes a JSON number, never rounding;
//! - `uuid`: its canonical string; `date`: `"YYYY-MM-DD"`; `time-millis` /
//!   `time-micros`: `"HH:MM:SS.mmm"` / `"HH:MM:SS.uuuuuu"`;
//!   `timestamp-millis|micros|nanos`: RFC 3339 in UTC with 3, 6 or 9 digits of
//!   fraction and `Z`; `local-timestamp-*`: the same without `Z`; encoding also
//!   takes the underlying integer;
//! - `duration`: `{"months": m, "days": d, "milliseconds": ms}`.

use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, Name, UuidSchema};
use apache_avro::Schema;
use base64::Engine;
use num_bigint::BigInt;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::io::Write;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Deepest nesting of values a record may have (recursive schemas).
const MAX_DEPTH: usize = 64;

/// A parsed Avro schema with the named types it and its references define.
#[derive(Debug)]
pub struct AvroSchema {
    root: Schema,
    names: HashMap<Name, Schema>,
}

impl AvroSchema {
    /// Parse `schema`, whose named types may come from `references` (schema
    /// texts, dependencies first).
    pub fn parse(schema: &str, references: &[String]) -> Result<Self, String> {
        let (root, referenced) = if references.is_empty() {
            (
                Schema::parse_str(schema).map_err(|e| e.to_string())?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(schema, references).map_err(|e| e.to_string())?
        };
        let mut names = HashMap::new();
        for schema in referenced.iter().chain(std::iter::once(&root)) {
            collect_names(schema, &mut names);
        }
        Ok(Self { root, names })
    }

    /// The full name of the top-level type, if it is named (for
    /// RecordNameStrategy).
    pub fn name(&self) -> Option<String> {
        match &self.root {
            Schema::Record(r) => Some(r.name.fullname(None)),
            Schema::Enum(e) => Some(e.name.fullname(None)),
            Schema::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }

    /// The JSON of the Avro binary `bytes`, at most `max_json` bytes long.
    pub fn decode(&self, bytes: &[u8], max_json: usize) -> Result<Vec<u8>, String> {
        let mut decoder = Decoder {
            input: bytes,
            out: Vec::with_capacity(bytes.len() * 2),
            names: &self.names,
            max_json,
        };
        decoder.value(&self.root, 0)?;
        if !decoder.input.is_empty() {
            return Err(format!(
                "{} bytes left over after the value: not written with this schema",
                decoder.input.len()
            ));
        }
        Ok(decoder.out)
    }

    /// The Avro binary of the JSON document `json`.
    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let value: Json =
            serde_json::from_slice(json).map_err(|e| format!("the output is not JSON: {e}"))?;
        let mut out = Vec::with_capacity(json.len());
        Encoder { names: &self.names }
            .value(&self.root, &value, &mut out, 0)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Every named type `schema` defines, by full name.
fn collect_names(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.clone(), schema.clone());
            for field in &r.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        })
        | Schema::Uuid(UuidSchema::Fixed(f)) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for variant in u.variants() {
                collect_names(variant, names);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(names: &'a HashMap<Name, Schema>, name: &Name) -> Result<&'a Schema, String> {
    names
        .get(name)
        .ok_or_else(|| format!("the schema refers to `{}`, which it does not define", name))
}

/// Reads Avro binary, writing JSON.
struct Decoder<'a> {
    input: &'a [u8],
    out: Vec<u8>,
    names: &'a HashMap<Name, Schema>,
    max_json: usize,
}

impl<'a> Decoder<'a> {
    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        if self.out.len() > self.max_json {
            return Err(format!(
                "decodes to more than {} bytes of JSON (schema_registry.max_decoded_bytes)",
                self.max_json
            ));
        }
        match schema {
            Schema::Null => self.raw("null"),
            Schema::Boolean => match self.take(1)?[0] {
                0 => self.raw("false"),
                1 => self.raw("true"),
                other => return Err(format!("{other} is not a boolean")),
            },
            Schema::Int => {
                let v = self.int()?;
                self.display(v)
            }
            Schema::Long => {
                let v = self.long()?;
                self.display(v)
            }
            Schema::Float => {
                let v = f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                self.float(f64::from(v))
            }
            Schema::Double => {
                let v = f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
                self.float(v)
            }
            Schema::Bytes => {
                let bytes = self.sized()?;
                self.base64(bytes)
            }
            Schema::String | Schema::Uuid(UuidSchema::String) => {
                let bytes = self.sized()?;
                let text = std::str::from_utf8(bytes).map_err(|_| "a string is not UTF-8")?;
                self.string(text)
            }
            Schema::Uuid(UuidSchema::Bytes) => {
                let bytes = self.sized()?;
                self.uuid(bytes)?;
            }
            Schema::Uuid(UuidSchema::Fixed(f)) => {
                let bytes = self.take(f.size)?;
                self.uuid(bytes)?;
            }
            Schema::Fixed(f) => {
                let bytes = self.take(f.size)?;
                self.base64(bytes)
            }
            Schema::Enum(e) => {
                let index = self.index(e.symbols.len())?;
                let symbol = &e.symbols[index];
                self.string(symbol)
            }
            Schema::Union(u) => {
                let index = self.index(u.variants().len())?;
                self.value(&u.variants()[index], depth + 1)?;
            }
            Schema::Record(r) => {
                self.raw("{");
                for (i, field) in r.fields.iter().enumerate() {
                    if i > 0 {
                        self.raw(",");
                    }
                    self.string(&field.name);
                    self.raw(":");
                    self.value(&field.schema, depth + 1)?;
                }
                self.raw("}");
            }
            Schema::Array(a) => {
                self.raw("[");
                self.blocks(|d, n| {
                    if n > 0 {
                        d.raw(",");
                    }
                    d.value(&a.items, depth + 1)
                })?;
                self.raw("]");
            }
            Schema::Map(m) => {
                self.raw("{");
                self.blocks(|d, n| {
                    if n > 0 {
                        d.raw(",");
                    }
                    let key = d.sized()?;
                    let key = std::str::from_utf8(key).map_err(|_| "a map key is not UTF-8")?;
                    d.string(key);
                    d.raw(":");
                    d.value(&m.types, depth + 1)
                })?;
                self.raw("}");
            }
            Schema::Decimal(d) => {
                let bytes = match &d.inner {
                    InnerDecimalSchema::Bytes => self.sized()?,
                    InnerDecimalSchema::Fixed(f) => self.take(f.size)?,
                };
                let text = decimal_text(&BigInt::from_signed_bytes_be(bytes), d.scale);
                self.string(&text);
            }
            Schema::BigDecimal => {
                return Err("the big-decimal logical type is not supported".into())
            }
            Schema::Date => {
                let days = self.int()?;
                let date = Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY + days)
                    .map_err(|_| format!("date {days} days from 1970 is out of range"))?;
                let text = date
                    .format(format_description!("[year]-[month]-[day]"))
                    .map_err(|e| e.to_string())?;
                self.string(&text);
            }
            Schema::TimeMillis => {
                let ms = i64::from(self.int()?);
                self.time_of_day(ms * 1_000_000, 3)?;
            }
            Schema::TimeMicros => {
                let us = self.long()?;
                self.time_of_day(us.saturating_mul(1_000), 6)?;
            }
            Schema::TimestampMillis => self.timestamp(1_000_000, 3, true)?,
            Schema::TimestampMicros => self.timestamp(1_000, 6, true)?,
            Schema::TimestampNanos => self.timestamp(1, 9, true)?,
            Schema::LocalTimestampMillis => self.timestamp(1_000_000, 3, false)?,
            Schema::LocalTimestampMicros => self.timestamp(1_000, 6, false)?,
            Schema::LocalTimestampNanos => self.timestamp(1, 9, false)?,
            Schema::Duration(_) => {
                let bytes = self.take(12)?;
                let part = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4"));
                let text = format!(
                    "{{\"months\":{},\"days\":{},\"milliseconds\":{}}}",
                    part(0),
                    part(4),
                    part(8)
                );
                self.raw(&text);
            }
            Schema::Ref { name } => {
                let schema = resolve(self.names, name)?;
                self.value(schema, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Items of an array or map: blocks of `count` items (a negative count is
    /// followed by the block's size in bytes), ending with a zero count.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self, u64) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut n = 0u64;
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self, n)?;
                n += 1;
                if self.out.len() > self.max_json {
                    return Err(format!(
                        "decodes to more than {} bytes of JSON (schema_registry.max_decoded_bytes)",
                        self.max_json
                    ));
                }
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.input.len() < n {
            return Err("the value ends early: not written with this schema".into());
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// A length-prefixed byte string.
    fn sized(&mut self) -> Result<&'a [u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .input
                .first()
                .ok_or("the value ends early: not written with this schema")?;
            self.input = &self.input[1..];
            if shift == 63 && byte > 1 {
                return Err("a varint longer than 64 bits".into());
            }
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("a varint longer than 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("{v} is out of range for an int"))
    }

    fn index(&mut self, len: usize) -> Result<usize, String> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .filter(|i| *i < len)
            .ok_or_else(|| format!("index {i} is not one of the schema's {len}"))
    }

    fn raw(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn display(&mut self, v: impl std::fmt::Display) {
        let _ = write!(self.out, "{v}");
    }

    fn float(&mut self, v: f64) {
        if v.is_nan() {
            self.raw("\"NaN\"");
        } else if v.is_infinite() {
            self.raw(if v > 0.0 {
                "\"Infinity\""
            } else {
                "\"-Infinity\""
            });
        } else {
            serde_json::to_writer(&mut self.out, &v).expect("a finite float");
        }
    }

    fn string(&mut self, text: &str) {
        serde_json::to_writer(&mut self.out, text).expect("a string");
    }

    fn base64(&mut self, bytes: &[u8]) {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.raw("\"");
        self.raw(&text);
        self.raw("\"");
    }

    fn uuid(&mut self, bytes: &[u8]) -> Result<(), String> {
        let uuid = apache_avro::Uuid::from_slice(bytes).map_err(|e| e.to_string())?;
        let text = uuid.hyphenated().to_string();
        self.string(&text);
        Ok(())
    }

    fn time_of_day(&mut self, nanos: i64, digits: u8) -> Result<(), String> {
        if !(0..86_400_000_000_000).contains(&nanos) {
            return Err(format!("time of day {nanos} ns is out of range"));
        }
        let time = Time::MIDNIGHT + time::Duration::nanoseconds(nanos);
        let text = format_time(time, digits);
        self.string(&text);
        Ok(())
    }

    fn timestamp(&mut self, nanos_per_unit: i128, digits: u8, utc: bool) -> Result<(), String> {
        let v = self.long()?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * nanos_per_unit)
            .map_err(|_| format!("timestamp {v} is out of range"))?;
        let date = at
            .date()
            .format(format_description!("[year]-[month]-[day]"))
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{date}T{}{}",
            format_time(at.time(), digits),
            if utc { "Z" } else { "" }
        );
        self.string(&text);
        Ok(())
    }
}

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// `HH:MM:SS` and `digits` digits of fraction.
fn format_time(time: Time, digits: u8) -> String {
    let fraction = time.nanosecond() / 10u32.pow(9 - u32::from(digits));
    format!(
        "{:02}:{:02}:{:02}.{:0width$}",
        time.hour(),
        time.minute(),
        time.second(),
        fraction,
        width = usize::from(digits)
    )
}

/// `unscaled` × 10^-`scale`, exactly.
fn decimal_text(unscaled: &BigInt, scale: usize) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == num_bigint::Sign::Minus {
        "-"
    } else {
        ""
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Writes Avro binary from JSON.
struct Encoder<'a> {
    names: &'a HashMap<Name, Schema>,
}

/// Where in the document a value did not fit, and why.
#[derive(Debug)]
struct Misfit {
    path: Vec<String>,
    reason: String,
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
        write!(
            f,
            "the output does not fit its schema at `/{}`: {}",
            path.join("/"),
            self.reason
        )
    }
}

fn misfit(reason: impl Into<String>) -> Misfit {
    Misfit {
        path: Vec::new(),
        reason: reason.into(),
    }
}

fn at(field: &str) -> impl FnOnce(Misfit) -> Misfit + '_ {
    move |mut m| {
        m.path.push(field.to_string());
        m
    }
}

impl Encoder<'_> {
    fn value(
        &self,
        schema: &Schema,
        v: &Json,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Misfit> {
        if depth > MAX_DEPTH {
            return Err(misfit(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let expected = |what: &str| misfit(format!("expected {what}, found {}", kind(v)));
        match schema {
            Schema::Null => v.as_null().ok_or_else(|| expected("null"))?,
            Schema::Boolean => {
                out.push(u8::from(v.as_bool().ok_or_else(|| expected("a boolean"))?))
            }
            Schema::Int => {
                let n = integer(v).ok_or_else(|| expected("an integer"))?;
                let n = i32::try_from(n)
                    .map_err(|_| misfit(format!("{n} is out of range for an int")))?;
                long(out, i64::from(n));
            }
            Schema::Long => long(out, integer(v).ok_or_else(|| expected("an integer"))?),
            Schema::Float => {
                let f = float(v).ok_or_else(|| expected("a number"))?;
                out.extend_from_slice(&(f as f32).to_le_bytes());
            }
            Schema::Double => {
                let f = float(v).ok_or_else(|| expected("a number"))?;
                out.extend_from_slice(&f.to_le_bytes());
            }
            Schema::Bytes => sized(out, &base64(v)?),
            Schema::String => sized(
                out,
                v.as_str().ok_or_else(|| expected("a string"))?.as_bytes(),
            ),
            Schema::Uuid(UuidSchema::String) => {
                let bytes = uuid(v.as_str().ok_or_else(|| expected("a UUID string"))?)?;
                let canonical = apache_avro::Uuid::from_slice(&bytes)
                    .expect("16 bytes")
                    .hyphenated()
                    .to_string();
                sized(out, canonical.as_bytes());
            }
            Schema::Uuid(UuidSchema::Bytes) => sized(
                out,
                &uuid(v.as_str().ok_or_else(|| expected("a UUID string"))?)?,
            ),
            Schema::Uuid(UuidSchema::Fixed(_)) => {
                out.extend_from_slice(&uuid(v.as_str().ok_or_else(|| expected("a UUID string"))?)?)
            }
            Schema::Fixed(f) => {
                let bytes = base64(v)?;
                if bytes.len() != f.size {
                    return Err(misfit(format!(
                        "fixed `{}` takes {} bytes, not {}",
                        f.name,
                        f.size,
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            Schema::Enum(e) => {
                let symbol = v.as_str().ok_or_else(|| expected("an enum symbol"))?;
                let index = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    misfit(format!(
                        "`{symbol}` is not a symbol of `{}` ({})",
                        e.name,
                        e.symbols.join(", ")
                    ))
                })?;
                long(out, index as i64);
            }
            Schema::Union(u) => {
                let mark = out.len();
                for (index, variant) in u.variants().iter().enumerate() {
                    long(out, index as i64);
                    if self.value(variant, v, out, depth + 1).is_ok() {
                        return Ok(());
                    }
                    out.truncate(mark);
                }
                return Err(misfit(format!("{} fits no branch of the union", kind(v))));
            }
            Schema::Record(r) => {
                let object = v
                    .as_object()
                    .ok_or_else(|| expected(&format!("an object (record `{}`)", r.name)))?;
                for key in object.keys() {
                    if !r.fields.iter().any(|f| &f.name == key) {
                        return Err(misfit(format!("record `{}` has no field `{key}`", r.name)));
                    }
                }
                for field in &r.fields {
                    let value = match (object.get(&field.name), &field.default) {
                        (Some(value), _) => value,
                        (None, Some(default)) => default,
                        (None, None) => {
                            return Err(misfit(format!("field `{}` is missing", field.name)))
                        }
                    };
                    self.value(&field.schema, value, out, depth + 1)
                        .map_err(at(&field.name))?;
                }
            }
            Schema::Array(a) => {
                let items = v.as_array().ok_or_else(|| expected("an array"))?;
                if !items.is_empty() {
                    long(out, items.len() as i64);
                    for (i, item) in items.iter().enumerate() {
                        self.value(&a.items, item, out, depth + 1)
                            .map_err(at(&i.to_string()))?;
                    }
                }
                out.push(0);
            }
            Schema::Map(m) => {
                let object = v.as_object().ok_or_else(|| expected("an object (map)"))?;
                if !object.is_empty() {
                    long(out, object.len() as i64);
                    for (key, item) in object {
                        sized(out, key.as_bytes());
                        self.value(&m.types, item, out, depth + 1)
                            .map_err(at(key))?;
                    }
                }
                out.push(0);
            }
            Schema::Decimal(d) => {
                let unscaled = unscaled_decimal(v, d)?;
                let bytes = unscaled.to_signed_bytes_be();
                match &d.inner {
                    InnerDecimalSchema::Bytes => sized(out, &bytes),
                    InnerDecimalSchema::Fixed(f) => {
                        if bytes.len() > f.size {
                            return Err(misfit(format!("does not fit in {} bytes", f.size)));
                        }
                        let fill = if unscaled.sign() == num_bigint::Sign::Minus {
                            0xff
                        } else {
                            0
                        };
                        out.extend(std::iter::repeat_n(fill, f.size - bytes.len()));
                        out.extend_from_slice(&bytes);
                    }
                }
            }
            Schema::BigDecimal => {
                return Err(misfit("the big-decimal logical type is not supported"))
            }
            Schema::Date => {
                let days = match v {
                    Json::String(text) => {
                        let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
                            .map_err(|e| {
                            misfit(format!("`{text}` is not a date YYYY-MM-DD: {e}"))
                        })?;
                        i64::from(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
                    }
                    _ => integer(v).ok_or_else(|| expected("a date string"))?,
                };
                long(out, days);
            }
            Schema::TimeMillis => long(out, time_of_day(v, 1_000_000)?),
            Schema::TimeMicros => long(out, time_of_day(v, 1_000)?),
            Schema::TimestampMillis => long(out, timestamp(v, 1_000_000, true)?),
            Schema::TimestampMicros => long(out, timestamp(v, 1_000, true)?),
            Schema::TimestampNanos => long(out, timestamp(v, 1, true)?),
            Schema::LocalTimestampMillis => long(out, timestamp(v, 1_000_000, false)?),
            Schema::LocalTimestampMicros => long(out, timestamp(v, 1_000, false)?),
            Schema::LocalTimestampNanos => long(out, timestamp(v, 1, false)?),
            Schema::Duration(_) => {
                let object = v.as_object().ok_or_else(|| expected("a duration object"))?;
                for part in ["months", "days", "milliseconds"] {
                    let n = object
                        .get(part)
                        .and_then(Json::as_u64)
                        .and_then(|n| u32::try_from(n).ok());
                    let n = n.ok_or_else(|| {
                        misfit(format!("duration `{part}` must be an integer 0..2^32"))
                    })?;
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
            Schema::Ref { name } => {
                let schema = resolve(self.names, name).map_err(misfit)?;
                self.value(schema, v, out, depth + 1)?;
            }
        }
        Ok(())
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// An integer, also from a float with no fraction.
fn integer(v: &Json) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

fn float(v: &Json) -> Option<f64> {
    match v {
        Json::String(s) if s == "NaN" => Some(f64::NAN),
        Json::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        _ => v.as_f64(),
    }
}

fn base64(v: &Json) -> Result<Vec<u8>, Misfit> {
    let text = v
        .as_str()
        .ok_or_else(|| misfit(format!("expected a base64 string, found {}", kind(v))))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| misfit(format!("not base64: {e}")))
}

fn uuid(text: &str) -> Result<Vec<u8>, Misfit> {
    apache_avro::Uuid::parse_str(text)
        .map(|u| u.as_bytes().to_vec())
        .map_err(|e| misfit(format!("`{text}` is not a UUID: {e}")))
}

fn long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn sized(out: &mut Vec<u8>, bytes: &[u8]) {
    long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// The unscaled integer of a decimal given as a string or a number, refusing
/// more fraction digits than the scale or more digits than the precision.
fn unscaled_decimal(v: &Json, d: &DecimalSchema) -> Result<BigInt, Misfit> {
    let text = match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => {
            return Err(misfit(format!(
                "expected a decimal string, found {}",
                kind(v)
            )))
        }
    };
    let not_decimal = || misfit(format!("`{text}` is not a decimal number"));
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(not_decimal());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > d.scale {
        return Err(misfit(format!(
            "`{text}` has more than {} digits after the point (the decimal's scale); round it in the plugin",
            d.scale
        )));
    }
    let unscaled = format!("{whole}{fraction:0<width$}", width = d.scale);
    let significant = unscaled.trim_start_matches('0');
    if significant.len() > d.precision {
        return Err(misfit(format!(
            "`{text}` has more than {} digits (the decimal's precision)",
            d.precision
        )));
    }
    let magnitude: BigInt = if significant.is_empty() {
        BigInt::from(0)
    } else {
        significant.parse().map_err(|_| not_decimal())?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Units since midnight from `"HH:MM:SS[.fraction]"` or an integer.
fn time_of_day(v: &Json, nanos_per_unit: i64) -> Result<i64, Misfit> {
    match v {
        Json::String(text) => {
            let time = Time::parse(
                text,
                format_description!("[hour]:[minute]:[second][optional [.[subsecond]]]"),
            )
            .map_err(|e| misfit(format!("`{text}` is not a time HH:MM:SS.fff: {e}")))?;
            let nanos = (time - Time::MIDNIGHT).whole_nanoseconds() as i64;
            exact(nanos, nanos_per_unit, text)
        }
        _ => integer(v).ok_or_else(|| misfit(format!("expected a time string, found {}", kind(v)))),
    }
}

/// Units since the Unix epoch from an RFC 3339 string (UTC timestamps) or a
/// date-time without offset (local timestamps), or an integer.
fn timestamp(v: &Json, nanos_per_unit: i128, utc: bool) -> Result<i64, Misfit> {
    let Json::String(text) = v else {
        return integer(v)
            .ok_or_else(|| misfit(format!("expected a timestamp string, found {}", kind(v))));
    };
    let nanos = if utc {
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| misfit(format!("`{text}` is not an RFC 3339 timestamp: {e}")))?
            .unix_timestamp_nanos()
    } else {
        PrimitiveDateTime::parse(
            text,
            format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            ),
        )
        .map_err(|e| {
            misfit(format!(
                "`{text}` is not a local timestamp YYYY-MM-DDTHH:MM:SS.fff: {e}"
            ))
        })?
        .assume_offset(UtcOffset::UTC)
        .unix_timestamp_nanos()
    };
    if nanos % nanos_per_unit != 0 {
        return Err(misfit(format!(
            "`{text}` is more precise than the schema's timestamp"
        )));
    }
    i64::try_from(nanos / nanos_per_unit).map_err(|_| misfit(format!("`{text}` is out of range")))
}

fn exact(nanos: i64, nanos_per_unit: i64, text: &str) -> Result<i64, Misfit> {
    if nanos % nanos_per_unit != 0 {
        return Err(misfit(format!(
            "`{text}` is more precise than the schema's time"
        )));
    }
    Ok(nanos / nanos_per_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(schema: &str, json: &str) -> String {
        let schema = AvroSchema::parse(schema, &[]).unwrap();
        let bytes = schema.encode(json.as_bytes()).unwrap();
        String::from_utf8(schema.decode(&bytes, 1 << 20).unwrap()).unwrap()
    }

    #[test]
    fn logical_types_map_to_exact_strings() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"f","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":8,"scale":3}},
            {"name":"day","type":{"type":"int","logicalType":"date"}},
            {"name":"t","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#;
        let json = r#"{"d":"-12.30","f":"-0.005","day":"1969-12-31","t":"23:59:59.999","ts":"2024-02-29T12:00:00.123Z","us":"1960-01-01T00:00:00.000001Z","local":"2024-01-01T00:00:00.500000","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#;
        assert_eq!(round_trip(schema, json), json);
        // Numbers and offsets are taken too, and written in the one mapping.
        let other = r#"{"d":12.3,"f":"1","day":0,"t":0,"ts":"2024-02-29T13:00:00.123+01:00","us":0,"local":"2024-01-01T00:00:00","id":"7C9E6679-7425-40DE-944B-E07FC1F90AE7"}"#;
        assert_eq!(
            round_trip(schema, other),
            r#"{"d":"12.30","f":"1.000","day":"1970-01-01","t":"00:00:00.000","ts":"2024-02-29T12:00:00.123Z","us":"1970-01-01T00:00:00.000000Z","local":"2024-01-01T00:00:00.000000","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#
        );
    }

    #[test]
    fn unions_are_bare_values_and_take_the_first_branch_that_fits() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"a","type":["null","long","string"]},
            {"name":"b","type":["null","bytes"],"default":null},
            {"name":"m","type":{"type":"map","values":{"type":"enum","name":"E","symbols":["X","Y"]}}},
            {"name":"xs","type":{"type":"array","items":"double"}}]}"#;
        assert_eq!(
            round_trip(schema, r#"{"a":"text","m":{"k":"Y"},"xs":[1.5,"NaN"]}"#),
            r#"{"a":"text","b":null,"m":{"k":"Y"},"xs":[1.5,"NaN"]}"#
        );
        assert_eq!(
            round_trip(schema, r#"{"a":7,"b":"AAEC","m":{},"xs":[]}"#),
            r#"{"a":7,"b":"AAEC","m":{},"xs":[]}"#
        );
    }

    #[test]
    fn outputs_that_do_not_fit_say_where() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}]}"#,
            &[],
        )
        .unwrap();
        for (json, says) in [
            (r#"{"n":"1.234"}"#, "scale"),
            (r#"{"n":"123.4"}"#, "precision"),
            (r#"{"n":"1.2","extra":1}"#, "no field `extra`"),
            (r#"{}"#, "`n` is missing"),
            (r#"{"n":true}"#, "/n"),
            ("not json", "not JSON"),
        ] {
            let error = schema.encode(json.as_bytes()).unwrap_err();
            assert!(error.contains(says), "{json}: {error}");
        }
    }

    #[test]
    fn hostile_records_are_refused_within_bounds() {
        let list = AvroSchema::parse(
            r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#,
            &[],
        )
        .unwrap();
        // A linked list 10,000 deep: union index 1 (zigzag 2) per level.
        let deep = vec![2u8; 10_000];
        assert!(list
            .decode(&deep, 1 << 20)
            .unwrap_err()
            .contains("nested deeper"));
        let nulls = AvroSchema::parse(r#"{"type":"array","items":"null"}"#, &[]).unwrap();
        // One block claiming 2^62 null items: 9 bytes that would decode for ever.
        let mut endless = Vec::new();
        long(&mut endless, 1 << 62);
        assert!(nulls
            .decode(&endless, 1 << 20)
            .unwrap_err()
            .contains("more than"));
        let text = AvroSchema::parse(r#""string""#, &[]).unwrap();
        let mut huge = Vec::new();
        long(&mut huge, i64::MAX);
        assert!(text
            .decode(&huge, 1 << 20)
            .unwrap_err()
            .contains("ends early"));
        assert!(text
            .decode(&[0, 1], 1 << 20)
            .unwrap_err()
            .contains("left over"));
    }
}

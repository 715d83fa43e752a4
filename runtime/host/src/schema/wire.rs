//! The Confluent wire format: a magic byte 0, the schema id as 4 bytes big
//! endian, then the payload (for Protobuf, the message indexes come first).

/// The first byte of every framed record.
const MAGIC: u8 = 0;

/// The schema id and the payload of a framed record.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [MAGIC, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [MAGIC, ..] => Err(format!(
            "{} bytes: too short for the schema registry's wire format (magic byte 0 and a 4-byte schema id)",
            bytes.len()
        )),
        [first, ..] => Err(format!(
            "starts with byte {first}, not the magic byte 0 of the schema registry's wire format: \
             not written by a schema-registry serializer"
        )),
        [] => Err("empty, not in the schema registry's wire format".into()),
    }
}

/// `payload` framed with schema `id`.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(payload.len() + 5);
    framed.push(MAGIC);
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_back_and_foreign_bytes_are_named() {
        let framed = frame(258, b"xy");
        assert_eq!(framed, [0, 0, 0, 1, 2, b'x', b'y']);
        assert_eq!(split(&framed).unwrap(), (258, &b"xy"[..]));
        assert!(split(b"{\"a\":1}").unwrap_err().contains("magic byte"));
        assert!(split(&[0, 0, 1]).unwrap_err().contains("too short"));
        assert!(split(&[]).unwrap_err().contains("empty"));
    }
}

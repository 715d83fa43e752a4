//! Protobuf records ⇄ JSON through descriptors from the registry. After the
//! schema id, a record names its message by indexes into the file's messages
//! (then their nested messages); a single 0 byte means the first message. The
//! JSON is the Protobuf JSON mapping with the `.proto` field names (as
//! `MessageToDict(preserving_proto_field_name=True)` writes it): 64-bit
//! integers as strings, bytes as base64, enums by name, fields at their default
//! value left out. Outputs are encoded as the file's first message.

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FileDescriptor, MessageDescriptor,
    SerializeOptions,
};

/// Most message indexes a record may give (nesting depth of its message).
const MAX_INDEXES: usize = 32;

/// A registered `.proto` file with the files it imports.
#[derive(Debug)]
pub struct ProtobufSchema {
    file: FileDescriptor,
}

impl ProtobufSchema {
    /// The file whose serialized `FileDescriptorProto` is `main`, importing
    /// those in `references` (dependencies first) and the well-known types.
    pub fn parse(main: &[u8], references: &[Vec<u8>]) -> Result<Self, String> {
        let mut pool = DescriptorPool::global();
        let mut name = String::new();
        for (i, bytes) in references
            .iter()
            .chain(std::iter::once(&main.to_vec()))
            .enumerate()
        {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .map_err(|e| format!("not a serialized FileDescriptorProto: {e}"))?;
            if i == references.len() {
                name = file.name().to_string();
            }
            if pool.get_file_by_name(file.name()).is_some() {
                continue;
            }
            pool.add_file_descriptor_proto(file)
                .map_err(|e| format!("the .proto file does not resolve: {e}"))?;
        }
        let file = pool
            .get_file_by_name(&name)
            .ok_or_else(|| format!("{name} is missing from its own pool"))?;
        if file.messages().len() == 0 {
            return Err(format!("{name} defines no message"));
        }
        Ok(Self { file })
    }

    /// The JSON of a record's payload (message indexes, then the message).
    pub fn decode(&self, payload: &[u8], max_json: usize) -> Result<Vec<u8>, String> {
        let (indexes, message) = message_indexes(payload)?;
        let descriptor = self.message(&indexes)?;
        let decoded = DynamicMessage::decode(descriptor, message)
            .map_err(|e| format!("not a valid message: {e}"))?;
        let mut json = Vec::with_capacity(payload.len() * 2);
        let options = SerializeOptions::new().use_proto_field_name(true);
        decoded
            .serialize_with_options(&mut serde_json::Serializer::new(&mut json), &options)
            .map_err(|e| e.to_string())?;
        if json.len() > max_json {
            return Err(format!(
                "decodes to more than {max_json} bytes of JSON (schema_registry.max_decoded_bytes)"
            ));
        }
        Ok(json)
    }

    /// The payload of the JSON output: indexes `[0]`, then the file's first
    /// message.
    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let descriptor = self.message(&[0])?;
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let message = DynamicMessage::deserialize_with_options(
            descriptor.clone(),
            &mut deserializer,
            &DeserializeOptions::new(),
        )
        .map_err(|e| {
            format!(
                "the output does not fit message `{}`: {e}",
                descriptor.full_name()
            )
        })?;
        deserializer
            .end()
            .map_err(|e| format!("the output is not one JSON document: {e}"))?;
        let mut payload = vec![0];
        message
            .encode(&mut payload)
            .map_err(|e| format!("cannot encode the message: {e}"))?;
        Ok(payload)
    }

    /// The message that `indexes` name.
    fn message(&self, indexes: &[usize]) -> Result<MessageDescriptor, String> {
        let missing = || {
            format!(
                "message indexes {indexes:?} name no message of {}",
                self.file.name()
            )
        };
        let (first, rest) = indexes.split_first().ok_or_else(missing)?;
        let mut message = self.file.messages().nth(*first).ok_or_else(missing)?;
        for index in rest {
            let child = message.child_messages().nth(*index);
            message = child.ok_or_else(missing)?;
        }
        Ok(message)
    }
}

/// The message indexes at the start of `payload` (zig-zag varints: a count,
/// then that many; a count of 0 means `[0]`), and the rest.
fn message_indexes(payload: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let mut rest = payload;
    let mut next = || -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first().ok_or("the message indexes end early")?;
            rest = tail;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("a message index longer than 64 bits".into())
    };
    let count = next()?;
    let count = usize::try_from(count)
        .ok()
        .filter(|n| *n <= MAX_INDEXES)
        .ok_or_else(|| format!("{count} message indexes (at most {MAX_INDEXES})"))?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let indexes = (0..count)
        .map(|_| {
            let index = next()?;
            usize::try_from(index).map_err(|_| format!("negative message index {index}"))
        })
        .collect::<Result<_, _>>()?;
    Ok((indexes, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_name_nested_messages() {
        assert_eq!(message_indexes(&[0, 9]).unwrap(), (vec![0], &[9][..]));
        // Two indexes, 1 then 0, zig-zag encoded.
        assert_eq!(
            message_indexes(&[4, 2, 0, 9]).unwrap(),
            (vec![1, 0], &[9][..])
        );
        assert!(message_indexes(&[1]).unwrap_err().contains("-1"));
        assert!(message_indexes(&[200, 1]).unwrap_err().contains("at most"));
        assert!(message_indexes(&[2]).unwrap_err().contains("end early"));
    }
}

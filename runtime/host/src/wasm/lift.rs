//! Lifting a plugin's results under the output limits, before any byte is
//! copied. The canonical ABI lets a guest point many lists at the same bytes of
//! its memory, so a guest well under its memory cap could otherwise make the
//! host copy gigabytes. Each length is charged against the record's allowance
//! (`max_outputs_per_record`, `max_output_bytes_per_record`) before its bytes
//! are read; a record that would go over is lifted as [`LiftedOutputs::OverLimit`]
//! with none of its outputs copied, and the top-level list must have exactly
//! one outcome per input record before any outcome is lifted. Error messages
//! are cut to [`MAX_REFUSAL_BYTES`] while lifting.
//!
//! The allowance of the call in progress lives in a thread-local set by
//! [`LimitedCall`]: wasmtime lifts results on the thread (and fiber) that made
//! the call, and gives lifting code no other way to reach per-call state.
//!
//! The wrappers implement wasmtime's `ComponentType` and `Lift` by deferring to
//! the types they wrap (as wasmtime's own derive macros do); those traits are
//! `unsafe` to implement, hence the allowance below.
#![allow(unsafe_code)]

use crate::record::{self, Header, Output, Refusal, HEADER_OVERHEAD, MAX_REFUSAL_BYTES};
use std::cell::Cell;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};
use wasmtime::ValRaw;

/// The per-record output limits a call's results are lifted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Most outputs per input record.
    pub max_outputs: usize,
    /// Most output bytes per input record, counted as [`Output::counted_bytes`] does.
    pub max_bytes: usize,
}

/// The allowance of the call being lifted on this thread.
#[derive(Clone, Copy)]
struct Allowance {
    limits: OutputLimits,
    /// Outcomes the call must return: one per input record.
    records: usize,
    /// Bytes the record being lifted may still use.
    bytes_left: usize,
}

thread_local! {
    static ALLOWANCE: Cell<Option<Allowance>> = const { Cell::new(None) };
}

/// While alive, results lifted on this thread are held to `limits` for a batch
/// of `records` input records.
pub(super) struct LimitedCall(());

impl LimitedCall {
    /// Start lifting under `limits` for a batch of `records` input records.
    pub(super) fn new(limits: OutputLimits, records: usize) -> Self {
        ALLOWANCE.with(|a| {
            a.set(Some(Allowance {
                limits,
                records,
                bytes_left: limits.max_bytes,
            }))
        });
        LimitedCall(())
    }
}

impl Drop for LimitedCall {
    fn drop(&mut self) {
        ALLOWANCE.with(|a| a.set(None));
    }
}

/// A record's outputs would go past the limits: stop lifting them.
#[derive(Debug, thiserror::Error)]
#[error("a record's outputs go past the output limits")]
struct OverBudget;

/// The plugin returned a different number of outcomes than records it was given.
#[derive(Debug, thiserror::Error)]
#[error("returned {returned} outcomes for a batch of {expected} records (the contract is one per record)")]
pub(super) struct WrongOutcomeCount {
    returned: usize,
    expected: usize,
}

/// Results lifted outside a [`LimitedCall`]: a bug in the host.
#[derive(Debug, thiserror::Error)]
#[error("plugin results were lifted outside a limited call")]
struct NoAllowance;

fn allowance() -> wasmtime::Result<Allowance> {
    ALLOWANCE
        .with(Cell::get)
        .ok_or_else(|| wasmtime::Error::new(NoAllowance))
}

/// Take `bytes` from the current record's allowance, or fail with [`OverBudget`].
fn charge(bytes: usize) -> wasmtime::Result<()> {
    let mut current = allowance()?;
    current.bytes_left = current
        .bytes_left
        .checked_sub(bytes)
        .ok_or_else(|| wasmtime::Error::new(OverBudget))?;
    ALLOWANCE.with(|a| a.set(Some(current)));
    Ok(())
}

/// Give the next record its full byte allowance; returns the limits.
fn start_record() -> wasmtime::Result<Allowance> {
    let mut current = allowance()?;
    current.bytes_left = current.limits.max_bytes;
    ALLOWANCE.with(|a| a.set(Some(current)));
    Ok(current)
}

/// Latin-1+UTF-16 strings mark UTF-16 with this bit of their length.
const UTF16_TAG: u32 = 1 << 31;

/// The length field of a (pointer, length) pair lowered to flat values.
fn flat_len(src: &[ValRaw; 2]) -> u32 {
    src[1].get_u32()
}

/// The length field of a (pointer, length) pair stored in guest memory.
fn memory_len(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
}

/// Elements (or code units) of a list or string whose length field is `len`.
fn units(len: u32) -> usize {
    (len & !UTF16_TAG) as usize
}

/// Implements `ComponentType` and `Lift` for a wrapper of a list or string
/// type (`$inner`): the component's type checks exactly as `$inner`'s, and
/// lifting goes through the wrapper's `lift(len, inner)`, which sees the
/// length field first and calls `inner(len)` to lift `$inner` with that
/// length field (the one written, or a shorter one).
macro_rules! lifts_as {
    ($wrapper:ty, $inner:ty) => {
        // SAFETY: the ABI, lowered form and type check are those of `$inner`,
        // a (pointer, length) pair, which `Lift` below lifts with `$inner`'s own.
        unsafe impl ComponentType for $wrapper {
            type Lower = [ValRaw; 2];
            const ABI: CanonicalAbiInfo = <$inner as ComponentType>::ABI;
            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$inner as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: defers to `$inner`'s lifting, of the same pair with at most
        // a shorter length.
        unsafe impl Lift for $wrapper {
            fn linear_lift_from_flat(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                src: &Self::Lower,
            ) -> wasmtime::Result<Self> {
                Self::lift(flat_len(src), |len| {
                    <$inner>::linear_lift_from_flat(cx, ty, &[src[0], ValRaw::u32(len)])
                })
            }

            fn linear_lift_from_memory(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                bytes: &[u8],
            ) -> wasmtime::Result<Self> {
                Self::lift(memory_len(bytes), |len| {
                    <$inner>::linear_lift_from_memory(cx, ty, &with_len(bytes, len).0)
                })
            }
        }
    };
}

/// A (pointer, length) pair as stored in guest memory, aligned as lifting expects.
#[repr(C, align(8))]
struct StoredPair([u8; 8]);

/// The pair in `bytes` with its length field set to `len`.
fn with_len(bytes: &[u8], len: u32) -> StoredPair {
    let mut pair = StoredPair([0; 8]);
    pair.0[..4].copy_from_slice(&bytes[..4]);
    pair.0[4..].copy_from_slice(&len.to_le_bytes());
    pair
}

/// Bytes of an output (key, value, header value), charged before they are copied.
pub(super) struct OutputBytes(Vec<u8>);
lifts_as!(OutputBytes, Vec<u8>);

impl OutputBytes {
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<Self> {
        charge(units(len))?;
        inner(len).map(Self)
    }
}

/// Text of an output (topic, header name), charged before it is copied: one
/// byte per code unit first, then whatever transcoding to UTF-8 added.
pub(super) struct OutputText(String);
lifts_as!(OutputText, String);

impl OutputText {
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<String>,
    ) -> wasmtime::Result<Self> {
        let units = units(len);
        charge(units)?;
        let text = inner(len)?;
        charge(text.len().saturating_sub(units))?;
        Ok(Self(text))
    }
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(super) struct LiftedHeader {
    key: OutputText,
    value: OutputBytes,
}

/// An output's headers, each charged [`HEADER_OVERHEAD`] before any is lifted.
pub(super) struct OutputHeaders(Vec<LiftedHeader>);
lifts_as!(OutputHeaders, Vec<LiftedHeader>);

impl OutputHeaders {
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<Vec<LiftedHeader>>,
    ) -> wasmtime::Result<Self> {
        charge(units(len).saturating_mul(HEADER_OVERHEAD))?;
        inner(len).map(Self)
    }
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(super) struct LiftedOutput {
    topic: Option<OutputText>,
    partition: Option<i32>,
    key: Option<OutputBytes>,
    value: Option<OutputBytes>,
    headers: OutputHeaders,
}

impl From<LiftedOutput> for Output {
    fn from(o: LiftedOutput) -> Self {
        Output {
            topic: o.topic.map(|t| t.0),
            partition: o.partition,
            key: o.key.map(|k| k.0),
            value: o.value.map(|v| v.0),
            headers: o
                .headers
                .0
                .into_iter()
                .map(|h| Header {
                    key: h.key.0,
                    value: h.value.0,
                })
                .collect(),
        }
    }
}

/// One record's outputs, or the fact that they go past the limits.
pub(super) enum LiftedOutputs {
    /// Within the limits.
    Within(Vec<Output>),
    /// Past the limits; nothing of them was copied.
    OverLimit {
        /// How many outputs the plugin returned.
        outputs: usize,
    },
}
lifts_as!(LiftedOutputs, Vec<LiftedOutput>);

impl LiftedOutputs {
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<Vec<LiftedOutput>>,
    ) -> wasmtime::Result<Self> {
        let outputs = units(len);
        if outputs > start_record()?.limits.max_outputs {
            return Ok(Self::OverLimit { outputs });
        }
        match inner(len) {
            Ok(lifted) => Ok(Self::Within(lifted.into_iter().map(Output::from).collect())),
            Err(e) if e.is::<OverBudget>() => Ok(Self::OverLimit { outputs }),
            Err(e) => Err(e),
        }
    }
}

/// A plugin's error message, cut to [`MAX_REFUSAL_BYTES`] while lifting: only
/// that much is ever copied.
pub(super) struct RefusalText(String);
lifts_as!(RefusalText, String);

/// Lengths to try when cutting a string of length field `len` to `max` code
/// units: the cut may split a character, so up to three shorter ones follow.
fn cut_lengths(len: u32, max: usize) -> Vec<u32> {
    let (tag, units) = (len & UTF16_TAG, units(len));
    if units <= max {
        return vec![len];
    }
    (0..4u32)
        .map(|back| tag | (max as u32).saturating_sub(back))
        .collect()
}

impl RefusalText {
    /// Lift with each length of [`cut_lengths`] in turn; the first that decodes wins.
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<String>,
    ) -> wasmtime::Result<Self> {
        let mut first_error = None;
        for len in cut_lengths(len, MAX_REFUSAL_BYTES) {
            match inner(len) {
                Ok(text) => {
                    let kept = record::cut_at_char(&text, MAX_REFUSAL_BYTES).len();
                    let mut text = text;
                    text.truncate(kept);
                    return Ok(Self(text));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("cut_lengths gives at least one length"))
    }
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(super) struct LiftedRefusal {
    message: RefusalText,
    retryable: bool,
}

/// What the plugin returned for one record.
pub(super) type LiftedOutcome = Result<LiftedOutputs, LiftedRefusal>;

/// All outcomes of a call: exactly one per input record, checked before any is lifted.
pub(super) struct Outcomes(pub Vec<record::Outcome>);
lifts_as!(Outcomes, Vec<LiftedOutcome>);

impl Outcomes {
    fn lift(
        len: u32,
        mut inner: impl FnMut(u32) -> wasmtime::Result<Vec<LiftedOutcome>>,
    ) -> wasmtime::Result<Self> {
        let expected = allowance()?.records;
        let returned = units(len);
        if returned != expected {
            return Err(wasmtime::Error::new(WrongOutcomeCount {
                returned,
                expected,
            }));
        }
        let outcomes = inner(len)?.into_iter().map(|outcome| match outcome {
            Ok(LiftedOutputs::Within(outputs)) => record::Outcome::Outputs(outputs),
            Ok(LiftedOutputs::OverLimit { outputs }) => record::Outcome::OverLimit { outputs },
            Err(e) => record::Outcome::Refused(Refusal {
                message: e.message.0,
                retryable: e.retryable,
            }),
        });
        Ok(Self(outcomes.collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_length_is_cut_with_room_to_back_off_a_split_character() {
        assert_eq!(cut_lengths(10, 4096), vec![10]);
        assert_eq!(cut_lengths(10_000, 4096), vec![4096, 4095, 4094, 4093]);
        let utf16 = UTF16_TAG | 10_000;
        assert_eq!(cut_lengths(utf16, 4096)[0], UTF16_TAG | 4096);
    }

    #[test]
    fn charges_come_from_the_current_record_and_stop_at_the_limit() {
        let limits = OutputLimits {
            max_outputs: 2,
            max_bytes: 100,
        };
        let _call = LimitedCall::new(limits, 1);
        assert!(charge(60).is_ok());
        assert!(charge(60).unwrap_err().is::<OverBudget>());
        start_record().unwrap();
        assert!(charge(100).is_ok());
    }

    #[test]
    fn lifting_outside_a_limited_call_fails() {
        assert!(charge(1).unwrap_err().is::<NoAllowance>());
    }
}

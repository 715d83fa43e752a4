//! `weir dlq show`: the latest letters of a dead-letter topic, one line each
//! (or one JSON object each), oldest first within each partition.

use super::{DlqError, Filter, Source};
use std::io::Write;
use weir_host::letters;

/// What to show.
pub struct ShowRequest<'a> {
    /// The dead-letter topic.
    pub source: Source<'a>,
    /// Look at the last this many letters of each partition; all if `None`.
    pub last: Option<i64>,
    /// Which of those to print.
    pub filter: &'a Filter,
    /// One JSON object per letter (every header, bytes as text or base64)
    /// instead of one line for a terminal.
    pub json: bool,
}

/// Print the letters `request` selects to `out`; how many.
pub fn show(request: &ShowRequest<'_>, out: &mut impl Write) -> Result<usize, DlqError> {
    let consumer = letters::reader_consumer(&request.source, "weir-dlq-show", "weir-dlq-show")?;
    let shown = letters::latest(&request.source, &consumer, request.last, request.filter)?;
    for letter in &shown {
        if request.json {
            writeln!(out, "{}", letter.to_json())?;
        } else {
            writeln!(out, "{}", letter.summary_line())?;
        }
    }
    Ok(shown.len())
}

//! `GET /dead-letters[?kind=K&limit=N]`, on the control endpoint only: the
//! most recent dead letters of every pipeline (newest first, at most `limit`,
//! default 20, at most 100), read from the dead-letter topics of the input
//! topics each pipeline is subscribed to, with previews of key and value and
//! the `weir.*` headers. Not on the read-only endpoint: letters carry record
//! contents, and that endpoint is open to any scraper.

use super::Shared;
use crate::config::DeadLetterRoute;
use crate::letters::{self, Filter, Letter, LetterError, Source};
use crate::telemetry::exposition::parse_samples;
use crate::telemetry::names;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most letters one request returns.
const MAX_LIMIT: usize = 100;
/// How long reading the letters may take.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Where one pipeline's dead letters are and how to reach them.
#[derive(Debug, Clone)]
pub struct DeadLetterView {
    /// The pipeline (consumer group).
    pub pipeline: String,
    /// Its brokers.
    pub brokers: String,
    /// The librdkafka properties its clients share (TLS, SASL).
    pub librdkafka: Vec<(String, String)>,
    /// Which topic each input topic's letters go to.
    pub route: DeadLetterRoute,
}

/// The query of `GET /dead-letters`.
#[derive(Debug, Deserialize)]
pub struct LettersQuery {
    /// Only letters of this failure kind.
    kind: Option<String>,
    /// At most this many letters.
    limit: Option<usize>,
}

/// `GET /dead-letters`.
pub async fn dead_letters(
    State(state): State<Shared>,
    Query(query): Query<LettersQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_LIMIT);
    let filter = Filter {
        kinds: query.kind.into_iter().filter(|k| !k.is_empty()).collect(),
        ..Filter::default()
    };
    let subscribed = parse_samples(&state.metrics.encode());
    let mut wanted = BTreeSet::new();
    for view in &state.dead_letters {
        for sample in subscribed
            .iter()
            .filter(|s| s.name == names::SUBSCRIBED_TOPIC && s.label("pipeline") == view.pipeline)
        {
            wanted.insert((
                view.pipeline.clone(),
                view.route.topic_for(sample.label("topic")),
            ));
        }
    }
    let views = state.dead_letters.clone();
    let deadline = Instant::now() + READ_DEADLINE;
    let one_at_a_time = Arc::clone(&state.letters_read);
    let read = async move {
        // The permit goes with the read, so a read that outlives its request
        // still keeps the next one waiting.
        let permit = one_at_a_time.acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read_latest(&views, &wanted, &filter, limit, deadline)
        })
        .await
    };
    match tokio::time::timeout(READ_DEADLINE, read).await {
        Ok(Ok((letters, errors))) => Json(serde_json::json!({
            "letters": letters.iter().map(|(pipeline, l)| {
                let mut preview = l.preview_json();
                preview["pipeline"] = pipeline.as_str().into();
                preview
            }).collect::<Vec<_>>(),
            "errors": errors,
        }))
        .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading dead letters failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the dead letters failed; see weir's log",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "reading the dead-letter topics took too long; is the broker reachable?",
        )
            .into_response(),
    }
}

/// The newest `limit` letters `filter` selects across the `wanted`
/// (pipeline, dead-letter topic) pairs, and an error line per topic that
/// could not be read (a topic with no letter yet may not exist: not an error).
/// At most `limit` letters are held between topics; topics not begun by
/// `deadline` are not read.
fn read_latest(
    views: &[DeadLetterView],
    wanted: &BTreeSet<(String, String)>,
    filter: &Filter,
    limit: usize,
    deadline: Instant,
) -> (Vec<(String, Letter)>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (pipeline, topic) in wanted {
        if Instant::now() >= deadline {
            errors.push(format!("{topic}: not read, out of time"));
            continue;
        }
        let Some(view) = views.iter().find(|v| &v.pipeline == pipeline) else {
            continue;
        };
        let source = Source {
            brokers: &view.brokers,
            librdkafka: &view.librdkafka,
            topic,
        };
        let read = letters::reader_consumer(&source, "weir-console", "weir-console")
            .and_then(|consumer| letters::latest(&source, &consumer, Some(limit as i64), filter));
        match read {
            Ok(letters) => {
                found.extend(letters.into_iter().map(|l| (pipeline.clone(), l)));
                found.sort_by_cached_key(|(_, l)| std::cmp::Reverse(l.failed_at_ms()));
                found.truncate(limit);
            }
            Err(LetterError::NoTopic(_)) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    (found, errors)
}

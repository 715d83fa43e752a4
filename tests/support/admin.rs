//! The admin HTTP endpoint of a running `weir`: plain requests, scraping
//! `/metrics`, per-partition consumer lag, and waiting for the lag to drain.

use crate::broker::PARTITIONS;
use crate::process::Weir;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Send `method path` to the admin endpoint at `addr`; returns the status code
/// and the body.
pub fn admin_request(addr: &str, method: &str, path: &str) -> (u16, String) {
    admin_request_with(addr, method, path, "")
}

/// Send `method path` with the extra header lines `headers` (each ending in
/// `\r\n`) to the admin endpoint at `addr`; returns the status code and the body.
pub fn admin_request_with(addr: &str, method: &str, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to the admin endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The samples of the admin endpoint's `/metrics`.
pub fn scrape(admin: &str) -> Vec<weir_dev::status::Sample> {
    let (status, body) = admin_request(admin, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    weir_dev::status::parse_samples(&body)
}

/// Per-partition lag of `topic` as last scraped.
pub fn lags(samples: &[weir_dev::status::Sample], topic: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == "weir_consumer_lag" && s.labels["topic"] == topic)
        .map(|s| (s.labels["partition"].clone(), s.value))
        .collect()
}

/// Scrape until every partition of `topic` reports lag 0 (and all are
/// reported); returns the samples of that scrape. Also returns the largest
/// total lag seen on the way.
pub fn wait_for_zero_lag(
    admin: &str,
    topic: &str,
    weir: &Weir,
) -> (Vec<weir_dev::status::Sample>, f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak: f64 = 0.0;
    loop {
        let samples = scrape(admin);
        let lag = lags(&samples, topic);
        peak = peak.max(lag.values().sum());
        if lag.len() == PARTITIONS as usize && lag.values().all(|l| *l == 0.0) {
            return (samples, peak);
        }
        assert!(
            Instant::now() < deadline,
            "lag of {topic} never reached 0: {lag:?}; log:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

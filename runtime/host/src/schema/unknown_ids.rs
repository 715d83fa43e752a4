//! Schema ids the registry does not know. Any producer can write a record
//! with any 4-byte schema id, and each unknown one would cost a registry
//! request: a hostile producer could drive the registry's load at Weir's
//! processing rate. So an id the registry answered 404 for is remembered for a
//! while (its records fail at once), and lookups that end in 404 are held to
//! a budget per second: past it, looking up an uncached id waits for the next
//! second instead of asking (the partition slows; no record is failed for it,
//! and ids the registry knows never use the budget up).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a 404 for an id is believed.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Most remembered unknown ids (the oldest half is dropped past it).
const MAX_REMEMBERED: usize = 4_096;
/// Lookups per second that may end in a 404.
const MISSES_PER_SECOND: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

/// The remembered 404s and this second's budget.
#[derive(Debug)]
pub struct UnknownIds {
    remembered: HashMap<u32, Instant>,
    window_started: Instant,
    misses: u32,
}

impl Default for UnknownIds {
    fn default() -> Self {
        Self {
            remembered: HashMap::new(),
            window_started: Instant::now(),
            misses: 0,
        }
    }
}

impl UnknownIds {
    /// Whether the registry said `id` is unknown within the last minute.
    pub fn is_known_unknown(&mut self, id: u32, now: Instant) -> bool {
        match self.remembered.get(&id) {
            Some(at) if now.duration_since(*at) < FORGET_AFTER => true,
            Some(_) => {
                self.remembered.remove(&id);
                false
            }
            None => false,
        }
    }

    /// How long to wait before asking the registry about an uncached id:
    /// `None` while this second's budget of 404s lasts.
    pub fn wait_before_asking(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.duration_since(self.window_started);
        if elapsed >= WINDOW {
            self.window_started = now;
            self.misses = 0;
            return None;
        }
        (self.misses >= MISSES_PER_SECOND).then(|| WINDOW - elapsed)
    }

    /// The registry answered 404 for `id`.
    pub fn missed(&mut self, id: u32, now: Instant) {
        self.misses += 1;
        if self.remembered.len() >= MAX_REMEMBERED {
            let mut ages: Vec<Instant> = self.remembered.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.remembered.retain(|_, at| *at > cut);
        }
        self.remembered.insert(id, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_is_remembered_for_a_minute() {
        let mut ids = UnknownIds::default();
        let now = Instant::now();
        ids.missed(7, now);
        assert!(ids.is_known_unknown(7, now + Duration::from_secs(59)));
        assert!(!ids.is_known_unknown(8, now));
        assert!(!ids.is_known_unknown(7, now + Duration::from_secs(61)));
    }

    #[test]
    fn past_the_budget_of_404s_a_lookup_waits_for_the_next_second() {
        let mut ids = UnknownIds::default();
        let start = ids.window_started;
        for id in 0..MISSES_PER_SECOND {
            assert_eq!(ids.wait_before_asking(start), None);
            ids.missed(id, start);
        }
        let later = start + Duration::from_millis(300);
        assert_eq!(
            ids.wait_before_asking(later),
            Some(Duration::from_millis(700))
        );
        assert_eq!(ids.wait_before_asking(start + WINDOW), None, "a new second");
    }

    #[test]
    fn remembered_ids_stay_bounded() {
        let mut ids = UnknownIds::default();
        let now = Instant::now();
        for id in 0..(MAX_REMEMBERED as u32 * 3) {
            ids.missed(id, now + Duration::from_micros(u64::from(id)));
        }
        assert!(ids.remembered.len() <= MAX_REMEMBERED);
        let newest = MAX_REMEMBERED as u32 * 3 - 1;
        assert!(ids.is_known_unknown(newest, now + Duration::from_secs(1)));
    }
}

//! Consuming: a thread polls Kafka and sends records and revocations as
//! messages to the consumer loop, which routes each record to its partition's
//! worker, pauses partitions that cannot take more, and finishes revoked
//! partitions before the rebalance takes them away.

mod consumer_loop;
mod drain;
mod feed;
mod router;

pub use consumer_loop::consume_loop;
pub use drain::Drain;
pub use router::{DrainTimedOut, Router, StopCause, WorkerResult};

//! Consuming: the consumer loop on its own thread, routing each record to its
//! partition's worker, pausing partitions that cannot take more, and finishing
//! revoked partitions before a rebalance takes them away.

mod router;

pub use router::{
    consume_loop, lock, DrainTimedOut, Router, RouterRebalance, StopCause, WorkerResult,
};

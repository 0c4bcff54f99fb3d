//! `fetch-worker`: a BullMQ-compatible worker that turns POS export days into transactions.
//!
//! # Layout
//!
//! - [`app_cache`]: the app's own keys in its cache database: job results and cleared query
//!   results.
//! - [`bullmq`]: BullMQ's Redis protocol, spoken natively: our own Lua scripts (`lua/`), the
//!   claim loop, lock renewal, stalled recovery, retries. It knows nothing about POS files.
//! - [`pipeline`]: fetch, combine and import of one (branch, pos, date). It knows nothing about
//!   Redis keys.
//! - `processors`: the small processors used by tests, benchmarks and the demo (feature
//!   `test-doubles`).
//! - [`reprocess`]: `fetch-worker reprocess`, which enqueues days to import again from storage.
//! - `fake_pos`: a fake of the legacy POS server with injectable faults, for tests and the
//!   `fake-pos` subcommand (feature `test-doubles`).
//! - [`config`]: the command line and environment, validated into typed settings.
//! - [`telemetry`] and [`shutdown`]: logging and the signal future.
//! - [`startup`]: waiting for the servers at start-up, with one line per try.
//! - [`backoff`]: the pauses of a retry loop (doubling up to a cap), for start-up and for
//!   finishing a job through a Redis outage.
//! - [`scratch`]: per-job scratch directories, removed on every path.
//! - [`redis_conn`]: the Redis connection modes (TLS, ACL, Sentinel) and the connection that
//!   follows a failover; the one classification of Redis errors.
//! - [`secret`]: settings that hold credentials, and the redaction of URLs in every output.
#![warn(missing_docs)]

/// Whether this build has the test doubles (cargo feature `test-doubles`): the `fake-pos`
/// subcommand and the `--processor` test processors. Production builds do not, and refuse both
/// with a message naming the feature rather than run something that is not the pipeline.
pub const TEST_DOUBLES: bool = cfg!(feature = "test-doubles");

/// What a build without the test doubles says when asked for one.
pub const NO_TEST_DOUBLES: &str = "this build has no test doubles (the fake POS server and the \
     test processors): build with `cargo build --release --features test-doubles` (compose: \
     CARGO_FEATURES=test-doubles)";

pub mod app_cache;
pub mod backoff;
pub mod bullmq;
pub mod config;
pub mod day_outcomes;
#[cfg(feature = "test-doubles")]
pub mod fake_pos;
pub mod handler;
pub mod metrics;
pub mod ops;
pub mod pipeline;
#[cfg(feature = "test-doubles")]
pub mod processors;
pub mod queue_metrics;
pub mod redis_conn;
pub mod reprocess;
pub mod scratch;
pub mod secret;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

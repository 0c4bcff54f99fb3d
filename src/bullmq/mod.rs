//! BullMQ's Redis protocol, spoken natively: our own Lua scripts (`lua/`), BullMQ's key
//! layout, job fields and events, so Node producers, `QueueEvents` and Bull Board see a worker
//! they cannot tell from Node's. This layer knows nothing about POS files.
//!
//! - [`keys`]: the only place key names are spelled.
//! - [`lua`]: the script loader. It embeds the files of `lua/`, flattens their includes and
//!   runs a script by SHA (`EVALSHA`, `EVAL` on `NOSCRIPT`); it knows no script's arguments.
//! - [`scripts`]: one request struct per Lua script (its KEYS, ARGV and reply); these are
//!   what the worker calls.
//! - [`job`]: decoding a claimed job; backoff.
//! - [`worker`]: the claim loop, slots, retries, shutdown.
//! - [`lock`] and [`stalled`]: lock renewal and stalled recovery.
//! - [`processor`]: the trait the work plugs into.
//! - [`children`]: what a parent job (flows) reads about its children.
//! - [`observer`]: hooks for metrics and for the app's own record of job outcomes.
//! - [`time_limit`]: the per-attempt time limit.
//! - [`clock`]: epoch milliseconds, the scripts' clock.
//! - [`scheduler`]: the next iteration of job schedulers and repeatable jobs.

pub mod children;
pub mod clock;
pub mod error;
mod finish_batch;
pub mod job;
pub mod keys;
pub mod lock;
pub mod lua;
pub mod observer;
mod options;
pub mod processor;
pub mod scheduler;
pub mod scripts;
pub mod stalled;
pub mod time_limit;
pub mod worker;

pub use error::{Error, ScriptCode};
pub use job::{Backoff, Job, JobOptions};
pub use keys::QueueKeys;
pub use observer::{AttemptOutcome, JobEnd, Observer};
pub use options::{
    BadCompat, Compat, DEFAULT_CONCURRENCY, DEFAULT_DRAIN_DELAY, DEFAULT_LOCK_DURATION,
    DEFAULT_MAX_STALLED_COUNT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STALLED_INTERVAL, KeepJobs,
    WorkerOptions,
};
pub use processor::{Defer, Disposition, JobContext, JobHandle, ProcessError, Processor};
pub use time_limit::TimeLimit;
pub use worker::{RunSummary, Worker};

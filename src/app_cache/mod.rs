//! The app's own keys in its cache database (Redis db 0 by default), kept out of [`bullmq`]
//! (which knows only BullMQ's keys) and out of the pipeline (which knows no Redis):
//!
//! - [`results`]: each job's final outcome, for the app to look up; fed by the worker through
//!   the [`Observer`] hook.
//! - [`invalidation`]: the app's cached query results, deleted after an import.
//!
//! [`bullmq`]: crate::bullmq
//! [`Observer`]: crate::bullmq::Observer

pub mod invalidation;
pub mod results;

pub use invalidation::CacheInvalidation;
pub use results::ResultCache;

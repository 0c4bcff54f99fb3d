//! BullMQ's Redis protocol, spoken natively.

mod options;

pub use options::{KeepJobs, WorkerOptions};

//! Integration tests: one binary, theme modules. Every test runs against real servers started
//! by the harness (see `support`) or the built binary.

mod batch;
mod combine;
mod fetch;
mod flows;
mod gridfs;
mod import;
mod ops;
mod pipeline;
mod reprocess;
mod s3;
mod safety;
mod schedulers;
mod scripts;
mod startup;
mod support;
mod topologies;
mod worker;

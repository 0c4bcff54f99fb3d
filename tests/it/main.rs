//! Integration tests: one binary, theme modules. Every test runs against a real
//! `redis-server` started by the harness (see `support`).

mod fetch;
mod scripts;
mod support;

mod worker;

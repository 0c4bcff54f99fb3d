//! Processors for tests, benchmarks and the demo: `noop`, `sleep` and `fail`.

//! The wall clock as the Lua scripts see it: milliseconds since the Unix epoch.
//!
//! BullMQ stores every time (`timestamp`, `processedOn`, delayed scores, event payloads) as
//! epoch milliseconds, and Node workers sharing the queue write the same, so the worker's
//! clock is the system clock, not tokio's. Every module of this layer (the claim loop, the
//! stalled checker, a processor's job handle) reads it here, so none imports another for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 on a clock set before 1970 (never in practice, and a
/// script then sees every delayed job as not yet due rather than a panic reaching the loop).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2025_and_moves_forward() {
        let a = now_ms();
        assert!(a > 1_735_689_600_000, "{a}");
        assert!(now_ms() >= a);
    }
}

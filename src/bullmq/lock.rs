//! Lock renewal: every in-flight job's lock is renewed in one batched script call.
//!
//! A job is tracked from the moment it is claimed (not when processing starts), so a job that
//! waits for anything never loses its lock. The renewer ticks every quarter of the lock
//! duration and renews every lock older than a quarter of it: a lock is renewed at most every
//! half duration, well before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::redis_conn::RedisConn;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::QueueKeys;
use super::scripts::extend_locks::ExtendLocks;

/// The in-flight jobs of this worker: id → (token, last renewal).
///
/// Renewal times are tokio [`Instant`]s (the system's monotonic clock in a running worker), so
/// the renewal schedule is tested under `tokio::time::pause` without sleeping.
#[derive(Debug, Clone, Default)]
pub struct LockTable {
    inner: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl LockTable {
    /// Starts tracking `id`, claimed with `token`.
    pub fn track(&self, id: &str, token: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(id.to_string(), (token.to_string(), Instant::now()));
        }
    }

    /// Stops tracking `id`.
    pub fn untrack(&self, id: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(id);
        }
    }

    /// The tracked (id, token) pairs.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .map(|m| m.iter().map(|(k, (t, _))| (k.clone(), t.clone())).collect())
            .unwrap_or_default()
    }

    /// When `id`'s lock was last renewed (or claimed); `None` when it is not tracked.
    pub fn renewed_at(&self, id: &str) -> Option<Instant> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|(_, at)| *at))
    }

    /// How many jobs are tracked.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn due(&self, older_than: Duration) -> Vec<(String, String)> {
        let now = Instant::now();
        self.inner
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, (_, at))| now.duration_since(*at) >= older_than)
                    .map(|(k, (t, _))| (k.clone(), t.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn renewed(&self, ids: &[(String, String)], lost: &[String]) {
        let now = Instant::now();
        if let Ok(mut map) = self.inner.lock() {
            for (id, token) in ids {
                if lost.contains(id) {
                    continue;
                }
                if let Some(entry) = map.get_mut(id).filter(|(t, _)| t == token) {
                    entry.1 = now;
                }
            }
        }
    }
}

/// Renews the table's locks until `stop` is cancelled.
pub async fn renew_locks(
    table: LockTable,
    mut con: RedisConn,
    keys: Arc<QueueKeys>,
    lock_duration: Duration,
    stop: CancellationToken,
) {
    let quarter = (lock_duration / 4).max(Duration::from_millis(25));
    let mut tick = tokio::time::interval(quarter);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = table.due(quarter);
        if due.is_empty() {
            continue;
        }
        let renewal = ExtendLocks {
            lock: lock_duration,
            jobs: &due,
        }
        .call(&mut con, &keys)
        .await;
        match renewal {
            Ok(lost) => {
                for id in &lost {
                    tracing::error!(job_id = %id, "lock lost: another worker may process this job");
                }
                table.renewed(&due, &lost);
            }
            Err(e) => tracing::warn!(error.message = %e, "lock renewal failed; retrying next tick"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: Duration = Duration::from_secs(30);

    /// The renewer's rule: a lock is due once a quarter of the duration has passed since its
    /// claim or last renewal; a renewal restarts that clock, a lost lock keeps its old time.
    #[tokio::test(start_paused = true)]
    async fn a_lock_is_due_a_quarter_after_its_last_renewal() {
        let quarter = LOCK / 4;
        let table = LockTable::default();
        table.track("1", "t:1");
        table.track("2", "t:2");
        assert!(table.due(quarter).is_empty(), "just claimed");
        tokio::time::advance(quarter - Duration::from_millis(1)).await;
        assert!(table.due(quarter).is_empty(), "not yet a quarter");
        tokio::time::advance(Duration::from_millis(1)).await;
        let mut due = table.due(quarter);
        due.sort();
        assert_eq!(
            due,
            [
                ("1".to_string(), "t:1".to_string()),
                ("2".into(), "t:2".into())
            ]
        );
        // Job 2's lock was gone: only job 1's renewal counts.
        table.renewed(&due, &["2".to_string()]);
        assert_eq!(table.due(quarter), [("2".to_string(), "t:2".to_string())]);
        tokio::time::advance(quarter).await;
        assert_eq!(table.due(quarter).len(), 2);
    }

    /// A renewal under a token the table no longer holds (the job was re-claimed meanwhile)
    /// does not refresh the new claim's clock.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_of_an_old_token_does_not_count() {
        let table = LockTable::default();
        table.track("1", "t:1");
        tokio::time::advance(LOCK).await;
        table.track("1", "t:9");
        let claimed = table.renewed_at("1").unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        table.renewed(&[("1".to_string(), "t:1".to_string())], &[]);
        assert_eq!(table.renewed_at("1"), Some(claimed));
        assert_eq!(table.snapshot(), [("1".to_string(), "t:9".to_string())]);
    }

    /// What the worker's "may I still hold this lock?" check reads: the time since the last
    /// renewal, on the paused clock.
    #[tokio::test(start_paused = true)]
    async fn the_time_since_renewal_follows_the_clock() {
        let table = LockTable::default();
        table.track("1", "t");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(table.renewed_at("1").unwrap().elapsed() < LOCK);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(table.renewed_at("1").unwrap().elapsed() >= LOCK);
        table.untrack("1");
        assert_eq!(table.renewed_at("1"), None);
        assert!(table.is_empty());
    }
}

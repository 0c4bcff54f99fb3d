//! Worker options and the keep-jobs rule of `removeOnComplete` / `removeOnFail`.

use std::time::Duration;

use serde_json::Value;

/// Node BullMQ's worker default `lockDuration`: long enough that a renewal (every quarter of
/// it) survives a slow Redis round trip, short enough that a dead worker's jobs are recovered
/// within a minute. `LOCK_DURATION_MS` defaults to this too.
pub const DEFAULT_LOCK_DURATION: Duration = Duration::from_secs(30);

/// Node BullMQ's worker default `stalledInterval` (`STALLED_INTERVAL_MS`).
pub const DEFAULT_STALLED_INTERVAL: Duration = Duration::from_secs(30);

/// Node BullMQ's worker default `maxStalledCount` (`MAX_STALLED_COUNT`): one stall is
/// forgiven (a deploy, an OOM kill), a second fails the job.
pub const DEFAULT_MAX_STALLED_COUNT: u32 = 1;

/// Node BullMQ's worker default `drainDelay` (`DRAIN_DELAY_MS`): how long an idle worker
/// blocks on the marker before it looks again.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);

/// How long in-flight jobs may run after a shutdown signal (`SHUTDOWN_TIMEOUT_MS`); compose
/// gives the container a 45 s grace period, so this must stay below it.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Node BullMQ's worker default `concurrency` (`JOB_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: usize = 1;

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Key prefix (`bull`): with `queue`, names every key, so it must match the producers'.
    pub prefix: String,
    /// Queue name (`fetch`).
    pub queue: String,
    /// Jobs this process runs at once; each holds a slot from claim to finish.
    pub concurrency: usize,
    /// Lock time-to-live: a worker that stops renewing (crashed) loses its jobs to stalled
    /// recovery this long after its last renewal. Renewed every quarter of it. Sent to Redis
    /// in ms by the script requests only.
    pub lock_duration: Duration,
    /// Period of the stalled check; one worker of the fleet runs it per period.
    pub stalled_interval: Duration,
    /// Stalls a job survives; one more fails it.
    pub max_stalled_count: u32,
    /// Idle block on the marker before polling again, so a missed marker costs at most this.
    pub drain_delay: Duration,
    /// Grace period for in-flight jobs on shutdown; the rest are handed back to the queue.
    pub shutdown_timeout: Duration,
    /// Worker name: the jobs' `pb` field and the Redis client name's suffix, so Bull Board and
    /// `CLIENT LIST` show which worker holds what.
    pub name: Option<String>,
    /// Default retention of completed jobs without their own `removeOnComplete`.
    pub remove_on_complete: Option<KeepJobs>,
    /// Default retention of failed jobs without their own `removeOnFail`.
    pub remove_on_fail: Option<KeepJobs>,
    /// Stop once the queue is drained.
    pub until_drained: bool,
    /// Which BullMQ major's rules apply where the majors differ (paused queues).
    pub compat: Compat,
    /// The worker rate limiter `(max, duration ms)`: at most `max` jobs move to active per
    /// `duration` window, counted in the queue's `limiter` key, so Node workers with a
    /// `limiter` on the same queue share the budget. A global limit (`meta.max`) wins.
    pub limiter: Option<(u64, u64)>,
    /// Collect `Queue.getMetrics` data (Node's worker `metrics.maxDataPoints`): one point per
    /// minute, at most this many kept. `None`, as in Node, collects nothing.
    pub metrics_max_data_points: Option<u64>,
}

impl WorkerOptions {
    /// Defaults matching Node BullMQ's worker, for queue `queue` under prefix `prefix`.
    pub fn new(prefix: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            queue: queue.into(),
            concurrency: DEFAULT_CONCURRENCY,
            lock_duration: DEFAULT_LOCK_DURATION,
            stalled_interval: DEFAULT_STALLED_INTERVAL,
            max_stalled_count: DEFAULT_MAX_STALLED_COUNT,
            drain_delay: DEFAULT_DRAIN_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            name: None,
            remove_on_complete: None,
            remove_on_fail: None,
            until_drained: false,
            compat: Compat::Auto,
            limiter: None,
            metrics_max_data_points: None,
        }
    }
}

/// Which BullMQ major the worker behaves as where 5 and 6 differ (`BULLMQ_COMPAT`).
///
/// The only such difference on the worker's path is where ready jobs go while the queue is
/// paused: BullMQ 5 pushes them to the `paused` list, BullMQ 6 leaves them in `wait`. `Auto`
/// decides per script call from `meta.version` (`bullmq:<version>`, written by every Node
/// `Queue`): major 6 or later follows 6, anything else (5.x, or no version yet) follows 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// Follow the queue's `meta.version`.
    #[default]
    Auto,
    /// Always BullMQ 5's rules.
    V5,
    /// Always BullMQ 6's rules.
    V6,
}

impl Compat {
    /// The value the Lua scripts take (`auto`, `5`, `6`).
    pub fn as_arg(self) -> &'static str {
        match self {
            Compat::Auto => "auto",
            Compat::V5 => "5",
            Compat::V6 => "6",
        }
    }
}

/// `BULLMQ_COMPAT` held something other than `auto`, `5` or `6`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected auto, 5 or 6, got {0:?}")]
pub struct BadCompat(pub String);

impl std::str::FromStr for Compat {
    type Err = BadCompat;

    fn from_str(s: &str) -> Result<Compat, BadCompat> {
        match s.trim() {
            "auto" | "" => Ok(Compat::Auto),
            "5" => Ok(Compat::V5),
            "6" => Ok(Compat::V6),
            other => Err(BadCompat(other.to_string())),
        }
    }
}

/// How many finished jobs of one kind to keep, BullMQ's `KeepJobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepJobs {
    /// Keep the newest `count` (`-1` keeps all, `0` deletes at once).
    pub count: i64,
    /// Remove jobs older than this many seconds (evaluated when another job finishes).
    pub age: Option<u64>,
    /// At most this many removals per finish (BullMQ's `limit`, default 1000).
    pub limit: Option<u64>,
}

impl KeepJobs {
    /// Keep every finished job: `removeOnComplete`/`removeOnFail: false`, and what applies
    /// when neither the job nor the worker sets one (BullMQ's default).
    pub const ALL: KeepJobs = KeepJobs {
        count: -1,
        age: None,
        limit: None,
    };

    /// Reads a `removeOnComplete`/`removeOnFail` option value: `true` (delete at once), `false`
    /// (keep all), a number N (keep N), or `{age, count?, limit?}`.
    ///
    /// # Returns
    ///
    /// `None` when the value has none of those shapes.
    pub fn from_option(value: &Value) -> Option<KeepJobs> {
        match value {
            Value::Bool(true) => Some(KeepJobs {
                count: 0,
                age: None,
                limit: None,
            }),
            Value::Bool(false) => Some(Self::ALL),
            Value::Number(n) => n.as_f64().map(|n| KeepJobs {
                count: n.max(-1.0) as i64,
                age: None,
                limit: None,
            }),
            Value::Object(map) => {
                let num = |k: &str| map.get(k).and_then(Value::as_f64);
                Some(KeepJobs {
                    count: num("count").map(|c| c.max(-1.0) as i64).unwrap_or(-1),
                    age: num("age").map(|a| a.max(0.0) as u64),
                    limit: num("limit").map(|l| l.max(0.0) as u64),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_jobs_reads_every_option_shape() {
        assert_eq!(KeepJobs::from_option(&json!(true)).unwrap().count, 0);
        assert_eq!(KeepJobs::from_option(&json!(false)), Some(KeepJobs::ALL));
        assert_eq!(KeepJobs::from_option(&json!(5)).unwrap().count, 5);
        let k = KeepJobs::from_option(&json!({"age": 60, "count": 3})).unwrap();
        assert_eq!((k.count, k.age, k.limit), (3, Some(60), None));
        let k = KeepJobs::from_option(&json!({"age": 60})).unwrap();
        assert_eq!((k.count, k.age), (-1, Some(60)));
        assert_eq!(KeepJobs::from_option(&json!("x")), None);
    }
}

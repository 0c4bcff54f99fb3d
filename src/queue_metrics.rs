//! The queue's state for `/metrics`: jobs per state and the oldest waiting job's age, read
//! from Redis when Prometheus scrapes.
//!
//! One scrape costs two pipelined round trips, whatever the queue holds: the first reads every
//! state's size (`LLEN`/`ZCARD`) and the ids at the head of `wait`, `paused` and
//! `prioritized`; the second reads those (at most three) jobs' `timestamp` and `delay`. Every
//! key shares the queue's `P:Q:` base, so on a Cluster (where the queue name carries a hash
//! tag) both pipelines go to the one node that owns the queue.
//!
//! A sample is kept for [`CACHE_FOR`], so several scrapers (two Prometheus replicas, a person
//! with curl) do not multiply the reads, and bounded by [`SAMPLE_TIMEOUT`], so a scrape never
//! hangs on an unreachable Redis: it answers with `fetch_worker_queue_up 0` instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::bullmq::QueueKeys;
use crate::redis_conn::RedisConn;

/// How long one sample is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The longest both round trips of one sample may take together: well inside Prometheus'
/// default 10 s scrape timeout.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A state of BullMQ's key layout, as the `state` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `wait` (LIST): jobs ready to be claimed.
    Wait,
    /// `active` (LIST): jobs a worker holds now.
    Active,
    /// `delayed` (ZSET): jobs waiting for a time (delays, retry backoffs).
    Delayed,
    /// `prioritized` (ZSET): ready jobs with a priority.
    Prioritized,
    /// `waiting-children` (ZSET): parents waiting for their children (flows).
    WaitingChildren,
    /// `completed` (ZSET; as trimmed by `removeOnComplete`).
    Completed,
    /// `failed` (ZSET; as trimmed by `removeOnFail`).
    Failed,
    /// `paused` (LIST; BullMQ 5 moves `wait` here while the queue is paused).
    Paused,
}

impl State {
    /// Every state, in the order the first pipeline reads them.
    pub const ALL: [State; 8] = [
        State::Wait,
        State::Active,
        State::Delayed,
        State::Prioritized,
        State::WaitingChildren,
        State::Completed,
        State::Failed,
        State::Paused,
    ];

    /// The label value (BullMQ's own state names).
    pub fn label(self) -> &'static str {
        match self {
            State::Wait => "wait",
            State::Active => "active",
            State::Delayed => "delayed",
            State::Prioritized => "prioritized",
            State::WaitingChildren => "waiting-children",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Paused => "paused",
        }
    }

    fn is_list(self) -> bool {
        matches!(self, State::Wait | State::Active | State::Paused)
    }

    fn key(self, keys: &QueueKeys) -> &str {
        match self {
            State::Wait => &keys.wait,
            State::Active => &keys.active,
            State::Delayed => &keys.delayed,
            State::Prioritized => &keys.prioritized,
            State::WaitingChildren => &keys.waiting_children,
            State::Completed => &keys.completed,
            State::Failed => &keys.failed,
            State::Paused => &keys.paused,
        }
    }
}

/// What one sample read.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSample {
    /// Jobs per state, in [`State::ALL`]'s order.
    pub jobs: Vec<(State, u64)>,
    /// How long the oldest job that could run now has waited: now minus its `timestamp` plus
    /// `delay` (a delayed job waits from when it became due). Zero when nothing waits.
    pub oldest_waiting_age: Duration,
}

/// Why a sample failed.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Redis answered with an error, or the connection failed.
    #[error("reading the queue's state: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within [`SAMPLE_TIMEOUT`].
    #[error("reading the queue's state: no answer within {} ms", SAMPLE_TIMEOUT.as_millis())]
    Timeout,
    /// The reply did not have the expected shape.
    #[error("reading the queue's state: unexpected reply: {0}")]
    Reply(String),
}

/// A sample, or why it failed; a failure is shared by the scrapes that read it while cached.
pub type Sampled = Result<QueueSample, Arc<SampleError>>;

/// Reads the queue's state, at most once per [`CACHE_FOR`].
pub struct QueueSampler {
    con: RedisConn,
    keys: QueueKeys,
    /// The last sample and when it was taken. The lock is held while sampling, so concurrent
    /// scrapes wait for one sample instead of each taking their own.
    last: tokio::sync::Mutex<Option<(Instant, Sampled)>>,
}

impl std::fmt::Debug for QueueSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSampler")
            .field("queue", &self.keys.base)
            .finish_non_exhaustive()
    }
}

impl QueueSampler {
    /// A sampler of the queue whose keys are `keys`, reading through `con` (a connection of
    /// its own is best, so a timed-out sample never disturbs the worker's).
    pub fn new(con: RedisConn, keys: QueueKeys) -> QueueSampler {
        QueueSampler {
            con,
            keys,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The latest sample, taken now unless one is younger than [`CACHE_FOR`]. A failure is
    /// kept as long as a sample would be, shared by the scrapes that read it.
    pub async fn sample(&self) -> Sampled {
        let mut last = self.last.lock().await;
        if let Some((at, sample)) = &*last
            && at.elapsed() < CACHE_FOR
        {
            return sample.clone();
        }
        let taken = match tokio::time::timeout(SAMPLE_TIMEOUT, self.read(now_ms())).await {
            Ok(Ok(sample)) => Ok(sample),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SampleError::Timeout),
        }
        .map_err(Arc::new);
        *last = Some((Instant::now(), taken.clone()));
        taken
    }

    /// Both round trips.
    async fn read(&self, now_ms: u64) -> Result<QueueSample, SampleError> {
        let mut con = self.con.clone();
        let k = &self.keys;
        let mut p = redis::pipe();
        for state in State::ALL {
            if state.is_list() {
                p.cmd("LLEN").arg(state.key(k));
            } else {
                p.cmd("ZCARD").arg(state.key(k));
            }
        }
        // Producers LPUSH and workers take from the right: the right end is the next (and
        // oldest FIFO) job. The lowest score of `prioritized` is the next prioritized job.
        p.cmd("LINDEX").arg(&k.wait).arg(-1);
        p.cmd("LINDEX").arg(&k.paused).arg(-1);
        p.cmd("ZRANGE").arg(&k.prioritized).arg(0).arg(0);
        let replies: Vec<Value> = p.query_async(&mut con).await?;
        let (jobs, heads) = parse_first(&replies)?;
        if heads.is_empty() {
            return Ok(QueueSample {
                jobs,
                oldest_waiting_age: Duration::ZERO,
            });
        }
        let mut p = redis::pipe();
        for id in &heads {
            p.cmd("HMGET").arg(k.job(id)).arg("timestamp").arg("delay");
        }
        let replies: Vec<Value> = p.query_async(&mut con).await?;
        Ok(QueueSample {
            jobs,
            oldest_waiting_age: oldest_age(&replies, now_ms),
        })
    }
}

/// Jobs per state, in [`State::ALL`]'s order.
type Counts = Vec<(State, u64)>;

/// The first pipeline's reply: the counts, and the head job ids (v4-era `0:` markers and
/// absent heads left out).
fn parse_first(replies: &[Value]) -> Result<(Counts, Vec<String>), SampleError> {
    if replies.len() != State::ALL.len() + 3 {
        return Err(SampleError::Reply(format!(
            "{} replies to {} commands",
            replies.len(),
            State::ALL.len() + 3
        )));
    }
    let mut jobs = Vec::with_capacity(State::ALL.len());
    for (state, reply) in State::ALL.iter().zip(replies) {
        let Value::Int(n) = reply else {
            return Err(SampleError::Reply(format!(
                "size of {}: {reply:?}",
                state.label()
            )));
        };
        jobs.push((*state, u64::try_from(*n).unwrap_or(0)));
    }
    let mut heads = Vec::new();
    for reply in &replies[State::ALL.len()..] {
        let id = match reply {
            Value::Array(items) => items.first().and_then(text),
            other => text(other),
        };
        if let Some(id) = id
            && !id.starts_with("0:")
        {
            heads.push(id);
        }
    }
    Ok((jobs, heads))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The largest `now - (timestamp + delay)` of the head jobs' `HMGET timestamp delay` replies;
/// a job gone since the first round trip (or without a timestamp) counts as not waiting.
fn oldest_age(replies: &[Value], now_ms: u64) -> Duration {
    let number = |v: Option<&Value>| {
        v.and_then(text)
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    replies
        .iter()
        .filter_map(|reply| {
            let Value::Array(fields) = reply else {
                return None;
            };
            let timestamp = number(fields.first())?;
            let delay = number(fields.get(1)).unwrap_or(0.0);
            let since = (timestamp + delay) as u64;
            Some(Duration::from_millis(now_ms.saturating_sub(since)))
        })
        .max()
        .unwrap_or(Duration::ZERO)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn first_reply_gives_counts_and_heads_without_markers() {
        let mut replies: Vec<Value> = (1..=8).map(Value::Int).collect();
        replies.push(bulk("7"));
        replies.push(bulk("0:123"));
        replies.push(Value::Array(vec![bulk("9")]));
        let (jobs, heads) = parse_first(&replies).unwrap();
        assert_eq!(jobs[0], (State::Wait, 1));
        assert_eq!(jobs[7], (State::Paused, 8));
        assert_eq!(heads, vec!["7".to_string(), "9".to_string()]);
        replies.pop();
        assert!(matches!(parse_first(&replies), Err(SampleError::Reply(_))));
    }

    #[test]
    fn oldest_age_counts_from_when_a_job_became_due() {
        let job = |ts: &str, delay: &str| Value::Array(vec![bulk(ts), bulk(delay)]);
        let replies = vec![
            job("10000", "0"),
            job("1000", "5000"),
            Value::Array(vec![Value::Nil, Value::Nil]),
        ];
        // Due at 10000 and at 6000: the second has waited longest.
        assert_eq!(oldest_age(&replies, 16_000), Duration::from_secs(10));
        // A job in the future (clock skew) is not negative.
        assert_eq!(oldest_age(&[job("20000", "0")], 16_000), Duration::ZERO);
        assert_eq!(oldest_age(&[], 16_000), Duration::ZERO);
    }
}

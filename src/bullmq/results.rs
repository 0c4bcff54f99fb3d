//! Job results in the app's cache database (Redis db 0 by default).
//!
//! On a job's final outcome the worker writes `fetch-worker:result:<queue>:<jobId>` =
//! `{"status":"completed","result":…}` or `{"status":"failed","error":"…"}` with a TTL, so the
//! app can answer "how did job X end" without touching the queue database.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::{Value, json};

/// Writes final outcomes into the cache database.
#[derive(Clone)]
pub struct ResultCache {
    con: ConnectionManager,
    queue: String,
    ttl: Duration,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("queue", &self.queue)
            .finish()
    }
}

impl ResultCache {
    /// A cache writer for `queue`, keeping results for `ttl`.
    pub fn new(con: ConnectionManager, queue: &str, ttl: Duration) -> ResultCache {
        ResultCache {
            con,
            queue: queue.to_string(),
            ttl,
        }
    }

    /// The key a job's result is stored under.
    pub fn key(queue: &str, job_id: &str) -> String {
        format!("fetch-worker:result:{queue}:{job_id}")
    }

    /// Stores a job's final outcome. Failures are logged, not returned: the queue state is
    /// authoritative and a missing cache entry only costs the app a lookup.
    pub async fn store(&self, job_id: &str, outcome: Result<&Value, &str>) {
        let body = match outcome {
            Ok(result) => json!({"status": "completed", "result": result}),
            Err(error) => json!({"status": "failed", "error": error}),
        };
        let mut con = self.con.clone();
        let secs = self.ttl.as_secs().max(1);
        let res: redis::RedisResult<()> = redis::cmd("SET")
            .arg(Self::key(&self.queue, job_id))
            .arg(body.to_string())
            .arg("EX")
            .arg(secs)
            .query_async(&mut con)
            .await;
        if let Err(e) = res {
            tracing::warn!(job_id, error.message = %e, "could not write the job result to the cache");
        }
    }
}

//! The operations endpoint on `METRICS_ADDR`: `/health/live`, `/health/ready` (also served
//! as `/health`) and `/metrics`.
//!
//! - **`/metrics`** is the Prometheus text format of [`Metrics`], with the queue's state read
//!   from Redis at most once a second (see [`crate::queue_metrics`]); it answers even when
//!   Redis does not (`fetch_worker_queue_up 0`).
//! - **`/health/live`** is 200 while the process serves requests: an orchestrator restarts the
//!   process only when this fails (a restart does not fix a sick Redis).
//! - **`/health/ready`** is 200 only when the worker can claim and finish jobs: a Redis round
//!   trip (`INFO`; in Cluster mode on every master that owns slots) succeeds within
//!   [`CHECK_TIMEOUT`], Redis is a writable primary (not a
//!   replica: every script call would fail with `READONLY`), it has memory to spare (under
//!   [`MEMORY_READY_PERCENT`] of `maxmemory`; past it, with `noeviction`, every claim fails with
//!   `OOM`), MongoDB answers a ping (when the pipeline runs), and the worker is not shutting
//!   down. Otherwise 503, with a JSON body naming each check. An orchestrator stops routing
//!   work or alerts on it; compose's healthcheck uses it.
//!
//! The server reads a request's headers within [`HEADER_READ_TIMEOUT`] or closes the
//! connection, so half-sent requests cannot pile up.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What `/health/ready` checks.
#[derive(Clone)]
pub struct Health {
    /// The queue database.
    pub redis: crate::redis_conn::RedisConn,
    /// The app's MongoDB, when the pipeline runs (set once the pipeline is set up; until then
    /// the check fails).
    pub mongo: Option<Arc<std::sync::OnceLock<mongodb::Database>>>,
    /// Set once the worker stops claiming for shutdown.
    pub shutting_down: Arc<AtomicBool>,
}

/// The longest each readiness check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Above this share of `maxmemory` (percent) the worker is not ready: writes are about to fail.
pub const MEMORY_READY_PERCENT: u64 = 95;

/// The longest the server waits for a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What `INFO` says about whether Redis takes our writes.
#[derive(Debug, PartialEq, Eq)]
pub enum RedisState {
    /// A primary with memory to spare.
    Ok,
    /// A replica: writes fail with `READONLY`.
    Replica,
    /// `used_memory` is at or above [`MEMORY_READY_PERCENT`] of `maxmemory`.
    LowMemory {
        /// `used_memory` from `INFO`, in bytes.
        used: u64,
        /// `maxmemory`, in bytes; never 0 here (no limit is never low memory).
        max: u64,
    },
}

impl RedisState {
    /// Reads `INFO replication` + `INFO memory` text.
    pub fn from_info(info: &str) -> RedisState {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        if field("role").is_some_and(|r| r != "master") {
            return RedisState::Replica;
        }
        match (number("used_memory"), number("maxmemory")) {
            (Some(used), Some(max))
                if max > 0
                    && used.saturating_mul(100) >= max.saturating_mul(MEMORY_READY_PERCENT) =>
            {
                RedisState::LowMemory { used, max }
            }
            _ => RedisState::Ok,
        }
    }

    /// The state from `INFO`'s reply: one server's text, or in Cluster mode one text per
    /// master (the cluster client asks every master), where the first master not `ok` decides.
    /// `None` for a reply that is neither.
    fn from_reply(reply: &redis::Value) -> Option<RedisState> {
        use redis::Value;
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            Value::VerbatimString { text, .. } => Some(text.clone()),
            _ => None,
        };
        if let Some(t) = text(reply) {
            return Some(RedisState::from_info(&t));
        }
        let Value::Map(nodes) = reply else {
            return None;
        };
        let mut worst = RedisState::Ok;
        for (_, info) in nodes {
            let state = RedisState::from_info(&text(info)?);
            if worst == RedisState::Ok {
                worst = state;
            }
        }
        Some(worst)
    }

    fn describe(&self) -> String {
        match self {
            RedisState::Ok => "ok".into(),
            RedisState::Replica => "read-only replica".into(),
            RedisState::LowMemory { used, max } => {
                format!("low memory: {used} of maxmemory {max} bytes used")
            }
        }
    }
}

impl Health {
    /// What `INFO` says of the server, or in Cluster mode of every master that owns slots now
    /// (`CLUSTER SLOTS`, asked of the cluster, not the client's cached map), each asked on its
    /// own: the first master not `ok` decides, and one that does not answer makes the whole
    /// `None`. (The cluster client's own fan-out of `INFO` skips a master it has no
    /// connection to, so a dead master left the answer `ok` while the queue's slot had no
    /// node serving it.)
    async fn redis_state(&self) -> Option<RedisState> {
        let info = redis::cmd("INFO").arg("replication").arg("memory").clone();
        let mut con = self.redis.opened().await.ok()?;
        let masters = con.masters().await.ok()?;
        if masters.is_empty() {
            let mut con = self.redis.clone();
            let reply = info.query_async::<redis::Value>(&mut con).await.ok()?;
            return RedisState::from_reply(&reply);
        }
        let mut worst = RedisState::Ok;
        for (host, port) in masters {
            let reply = con.query_on_node(&info, &host, port).await.ok()?;
            let state = RedisState::from_reply(&reply)?;
            if worst == RedisState::Ok {
                worst = state;
            }
        }
        Some(worst)
    }

    async fn check(&self) -> (bool, serde_json::Value) {
        let state = tokio::time::timeout(CHECK_TIMEOUT, self.redis_state())
            .await
            .ok()
            .flatten();
        if matches!(state, None | Some(RedisState::Replica)) {
            // Not the master (demoted by a failover) or no answer: the next check opens a new
            // connection, which in Sentinel mode goes to the master the sentinels name now.
            self.redis.reconnect().await;
        }
        let redis_word = match state {
            Some(s) => s.describe(),
            None => "unreachable".to_string(),
        };
        let redis_ok = redis_word == "ok";
        let mongo = match &self.mongo {
            None => None,
            Some(slot) => Some(match slot.get() {
                None => false,
                Some(db) => matches!(
                    tokio::time::timeout(
                        CHECK_TIMEOUT,
                        db.run_command(mongodb::bson::doc! {"ping": 1})
                    )
                    .await,
                    Ok(Ok(_))
                ),
            }),
        };
        let word = |ok: bool| if ok { "ok" } else { "unreachable" };
        let stopping = self.shutting_down.load(Ordering::SeqCst);
        let ready = redis_ok && mongo.unwrap_or(true) && !stopping;
        let mut body = json!({
            "status": if ready { "ok" } else { "unavailable" },
            "redis": redis_word,
            "shuttingDown": stopping,
        });
        if let Some(ok) = mongo {
            body["mongo"] = json!(word(ok));
        }
        (ready, body)
    }
}

/// Serves `/health/live`, `/health/ready` (and `/health`) and `/metrics` on `listener` until
/// `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error.message = %e, "ops endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let health = health.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let health = health.clone();
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(req.uri().path(), &health, &metrics).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(path: &str, health: &Health, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = match path {
        "/health/live" => (
            StatusCode::OK,
            "application/json",
            json!({"status": "ok"}).to_string(),
        ),
        "/health/ready" | "/health" => {
            let (ready, body) = health.check().await;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, "application/json", body.to_string())
        }
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.scrape().await,
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// Binds `addr` (port 0 picks one) and logs the bound address.
///
/// # Errors
///
/// The bind error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /health and /metrics");
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_says_whether_redis_takes_writes() {
        let info = |role: &str, used: u64, max: u64| {
            format!(
                "# Replication\r\nrole:{role}\r\nconnected_slaves:0\r\n# Memory\r\nused_memory:{used}\r\nused_memory_human:1M\r\nmaxmemory:{max}\r\n"
            )
        };
        assert_eq!(
            RedisState::from_info(&info("master", 900, 0)),
            RedisState::Ok
        );
        assert_eq!(
            RedisState::from_info(&info("master", 900, 1000)),
            RedisState::Ok
        );
        assert_eq!(
            RedisState::from_info(&info("master", 950, 1000)),
            RedisState::LowMemory {
                used: 950,
                max: 1000
            }
        );
        assert_eq!(
            RedisState::from_info(&info("slave", 1, 0)),
            RedisState::Replica
        );
        // Cluster mode: one reply per master; the first one not ok decides, and a master
        // answering with something else (an error) makes the whole answer unknown.
        use redis::Value;
        let node = |addr: &str, text: String| {
            (
                Value::BulkString(addr.as_bytes().to_vec()),
                Value::BulkString(text.into_bytes()),
            )
        };
        let ok = Value::Map(vec![
            node("a:1", info("master", 1, 0)),
            node("b:2", info("master", 2, 0)),
        ]);
        assert_eq!(RedisState::from_reply(&ok), Some(RedisState::Ok));
        let full = Value::Map(vec![
            node("a:1", info("master", 1, 0)),
            node("b:2", info("master", 990, 1000)),
        ]);
        assert_eq!(
            RedisState::from_reply(&full),
            Some(RedisState::LowMemory {
                used: 990,
                max: 1000
            })
        );
        let down = Value::Map(vec![(Value::BulkString(b"a:1".to_vec()), Value::Nil)]);
        assert_eq!(RedisState::from_reply(&down), None);
    }
}

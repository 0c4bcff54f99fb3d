//! The operations endpoint: `GET /health` and `GET /metrics` on `METRICS_ADDR`.
//!
//! `/health` answers 200 only when Redis (the queue database) and MongoDB (when the pipeline
//! runs) answer a ping within two seconds, 503 otherwise, with a JSON body naming each check,
//! so compose restarts a worker that lost its databases and a load balancer never counts it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What `/health` checks.
#[derive(Clone)]
pub struct Health {
    /// The queue database.
    pub redis: redis::aio::ConnectionManager,
    /// The app's MongoDB, when the pipeline runs.
    pub mongo: Option<mongodb::Database>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Health {
    async fn check(&self) -> (bool, serde_json::Value) {
        let mut con = self.redis.clone();
        let redis_ok = matches!(
            tokio::time::timeout(
                CHECK_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut con)
            )
            .await,
            Ok(Ok(_))
        );
        let mongo = match &self.mongo {
            None => None,
            Some(db) => Some(matches!(
                tokio::time::timeout(
                    CHECK_TIMEOUT,
                    db.run_command(mongodb::bson::doc! {"ping": 1})
                )
                .await,
                Ok(Ok(_))
            )),
        };
        let word = |ok: bool| if ok { "ok" } else { "unreachable" };
        let ready = redis_ok && mongo.unwrap_or(true);
        let mut body =
            json!({"status": if ready { "ok" } else { "unavailable" }, "redis": word(redis_ok)});
        if let Some(ok) = mongo {
            body["mongo"] = json!(word(ok));
        }
        (ready, body)
    }
}

/// Serves `/health` and `/metrics` on `listener` until `stop` is cancelled.
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
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(path: &str, health: &Health, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = match path {
        "/health" => {
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
            metrics.encode(),
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

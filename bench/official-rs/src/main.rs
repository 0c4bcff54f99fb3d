//! `official-rs-drain`: the official Rust BullMQ port (crate `bullmq-official`, lib `bullmq`)
//! as a peer in `bench/queue.sh`.
//!
//! Drains one queue that `bench/peers/node/fill.js` filled: a `Worker` with concurrency
//! `CONCURRENCY` and a processor that does nothing, until `N` jobs have completed. Then it
//! closes the worker and prints one JSON line with its own view of the drain (from
//! `Worker::run` to the N-th completion). The bench's headline figure comes from the
//! Redis-side watcher instead; this line is a cross-check.
//!
//! Environment: `REDIS_URL` (e.g. `redis://127.0.0.1:PORT/1`), `QUEUE_NAME`, `BULL_PREFIX`
//! (default `bull`), `CONCURRENCY`, `N`, `DRAIN_TIMEOUT_S` (default 600).
//!
//! Exit status: 0 when N jobs completed; 1 on a failed job, a worker error, or the timeout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bullmq::options::RedisConnectionOptions;
use bullmq::worker::{CancellationToken, WorkerEvent};
use bullmq::{Job, Worker, WorkerOptions};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("official-rs-drain: starting the tokio runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(drain()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("official-rs-drain: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Reads a required environment variable.
fn env_required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

/// Reads a numeric environment variable, with a default when it is unset.
fn env_number<T: std::str::FromStr>(name: &str, default: Option<T>) -> Result<T, String> {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid number")),
        Err(_) => default.ok_or_else(|| format!("{name} must be set")),
    }
}

async fn drain() -> Result<(), String> {
    let url = env_required("REDIS_URL")?;
    let queue_name = env_required("QUEUE_NAME")?;
    let prefix = std::env::var("BULL_PREFIX").unwrap_or_else(|_| "bull".to_string());
    let concurrency: usize = env_number("CONCURRENCY", None)?;
    let jobs: u64 = env_number("N", None)?;
    let timeout_s: u64 = env_number("DRAIN_TIMEOUT_S", Some(600))?;
    if concurrency == 0 || jobs == 0 {
        return Err("CONCURRENCY and N must be greater than 0".to_string());
    }

    // `manual_start` so that connecting (and the Redis version check) happens before the
    // clock starts; `run` then starts the fetch loop, the stalled check and lock renewal.
    let opts = WorkerOptions::new()
        .connection(RedisConnectionOptions::new().url(url))
        .prefix(prefix)
        .concurrency(concurrency)
        .manual_start();
    let noop = |_job: Job, _token: CancellationToken| async move { Ok(serde_json::Value::Null) };
    let worker = Worker::with_options(&queue_name, noop, opts)
        .await
        .map_err(|err| format!("creating the worker: {err}"))?;

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    worker
        .run()
        .await
        .map_err(|err| format!("starting the worker: {err}"))?;

    // Every completion is reported on the worker's event channel; counting them is exact
    // and costs Redis nothing.
    let mut completed: u64 = 0;
    let mut outcome = Ok(());
    while completed < jobs {
        match tokio::time::timeout_at(deadline, worker.next_event()).await {
            Err(_) => {
                outcome = Err(format!(
                    "timed out after {timeout_s} s with {completed} of {jobs} jobs completed"
                ));
                break;
            }
            Ok(None) => {
                outcome = Err("the worker's event channel closed".to_string());
                break;
            }
            Ok(Some(WorkerEvent::Completed { .. })) => completed += 1,
            Ok(Some(WorkerEvent::Failed { job_id, error })) => {
                outcome = Err(format!("job {job_id} failed: {error}"));
                break;
            }
            Ok(Some(WorkerEvent::Error(error))) => {
                outcome = Err(format!("worker error: {error}"));
                break;
            }
            Ok(Some(_)) => {}
        }
    }
    let elapsed = started.elapsed();

    if let Err(err) = worker.close(5_000).await {
        eprintln!("official-rs-drain: closing the worker: {err}");
    }
    outcome?;

    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    println!(
        "{{\"peer\":\"official\",\"concurrency\":{concurrency},\"jobs\":{jobs},\"elapsed_ms\":{elapsed_ms:.3},\"jobs_per_s\":{:.1}}}",
        jobs as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

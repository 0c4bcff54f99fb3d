//! The `fetch-worker` binary: parse the command line, set up logging, run the subcommand.

use anyhow::Context;
use clap::Parser;
use fetch_worker::config::{
    Cli, CombineArgs, CombineFormat, Command, FakePosArgs, ReprocessArgs, RunArgs, RunConfig,
};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Combine(args) => combine(args),
        Command::FakePos(args) => fake_pos(args),
        Command::Reprocess(args) => reprocess(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fetch-worker: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Box<RunArgs>) -> anyhow::Result<()> {
    let config = RunConfig::from_args(*args).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    // Traces (when OTEL_EXPORTER_OTLP_ENDPOINT is set) export through this runtime, so they
    // are flushed after the worker stops and before the runtime goes.
    let traces = fetch_worker::telemetry::init_with_traces(config.log_format, runtime.handle())
        .context("OpenTelemetry traces")?;
    let served = runtime.block_on(serve(config));
    traces.shutdown();
    served
}

async fn serve(config: RunConfig) -> anyhow::Result<()> {
    use fetch_worker::app_cache::ResultCache;
    use fetch_worker::bullmq::{Processor, Worker};
    use std::sync::Arc;

    use fetch_worker::redis_conn::{Connector, RedisConn};

    let metrics = Arc::new(fetch_worker::metrics::Metrics::new());
    let stop_ops = tokio_util::sync::CancellationToken::new();
    let shutting_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The pipeline's MongoDB, once set up; `/health/ready` is 503 until then.
    let mongo = config
        .processor
        .is_none()
        .then(|| Arc::new(std::sync::OnceLock::new()));
    let listener = match config.metrics_addr {
        None => None,
        // Several workers on one host (local scaling, tests) share the default address: the
        // first serves it, the others run without an ops endpoint and say so.
        Some(addr) => match fetch_worker::ops::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(%addr, "METRICS_ADDR in use: /health and /metrics are off for this worker");
                None
            }
            Err(e) => return Err(e).with_context(|| format!("binding METRICS_ADDR {addr}")),
        },
    };
    // Served before Redis is reached: liveness holds while the worker waits for Redis, and
    // readiness says why it is not ready.
    if let Some(listener) = listener {
        // A connection of its own, so a probe that times out never drops the worker's.
        let probe = RedisConn::lazy(Connector::new(&config.redis_job).context("REDIS_JOB_URL")?);
        // The queue's state on `/metrics`, read through the probe's connection.
        metrics.watch_queue(fetch_worker::queue_metrics::QueueSampler::new(
            probe.clone(),
            fetch_worker::bullmq::QueueKeys::new(&config.worker.prefix, &config.worker.queue),
        ));
        let health = fetch_worker::ops::Health {
            redis: probe,
            mongo: mongo.clone(),
            shutting_down: shutting_down.clone(),
        };
        tokio::spawn(fetch_worker::ops::serve(
            listener,
            health,
            metrics.clone(),
            stop_ops.clone(),
        ));
    }
    tracing::info!(
        redis_job = %config.redis_job.redacted(),
        redis_cache = %config.redis_cache.redacted(),
        "connecting to Redis"
    );
    // Both wait for Redis (each try logged) instead of exiting: a worker started before its
    // Redis, or during a failover, simply starts late.
    let queue_con = RedisConn::connect(&config.redis_job, "REDIS_JOB_URL")
        .await
        .with_context(|| {
            format!(
                "connecting to the queue database {}",
                config.redis_job.redacted()
            )
        })?;
    let cache_con = RedisConn::connect(&config.redis_cache, "REDIS_CACHE_URL")
        .await
        .with_context(|| {
            format!(
                "connecting to the cache database {}",
                config.redis_cache.redacted()
            )
        })?;
    let processor: Arc<dyn Processor> = match config.processor {
        Some(kind) => test_processor(kind)?,
        None => {
            let mut handler =
                fetch_worker::handler::FetchHandler::from_config(&config, cache_con.clone())
                    .await
                    .context("setting up the POS pipeline")?;
            handler.metrics = Some(metrics.clone());
            if let Some(slot) = &mongo {
                let _ = slot.set(handler.importer.database().clone());
            }
            // The processor is the shared handler: each job holds a clone of the Arc. Its
            // days' outcomes are counted per branch from what it returns.
            Arc::new(fetch_worker::day_outcomes::CountDays::new(
                Arc::new(Arc::new(handler)),
                metrics.clone(),
            ))
        }
    };
    // The pipeline enforces JOB_TIMEOUT_MS itself (so a final time-out leaves a monitor
    // entry); the test processors get the generic wrapper.
    let processor: Arc<dyn Processor> = match (config.job_timeout, &config.processor) {
        (Some(limit), Some(_)) => Arc::new(fetch_worker::bullmq::TimeLimit::new(processor, limit)),
        _ => processor,
    };
    tracing::info!(
        queue = %config.worker.queue,
        prefix = %config.worker.prefix,
        concurrency = config.worker.concurrency,
        processor = config
            .processor
            .map_or("fetch", fetch_worker::config::ProcessorKind::name),
        "fetch-worker starting"
    );
    let queue = config.worker.queue.clone();
    let mut worker =
        Worker::with_connection(queue_con, config.worker, processor).with_observer(metrics);
    if let Some(ttl) = config.result_ttl {
        worker = worker.with_observer(Arc::new(ResultCache::new(cache_con, &queue, ttl)));
    }
    let draining = shutting_down.clone();
    worker
        .run(async move {
            fetch_worker::shutdown::signal_then_force_exit().await;
            // `/health/ready` turns 503 while in-flight jobs finish.
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await?;
    stop_ops.cancel();
    Ok(())
}

/// `fetch-worker combine`: every group of a directory into legacy CSV or JSON lines.
fn combine(args: CombineArgs) -> anyhow::Result<()> {
    use fetch_worker::pipeline::combine::{
        CombineOptions, JsonlWriter, LegacyCsvWriter, MonitorLog, NewBranches, combine_dir,
    };
    use std::io::Write;

    let new_branches = match &args.new_branches {
        Some(arg) => NewBranches::from_arg(arg).context("reading --new-branches")?,
        None => NewBranches::default(),
    };
    let options = CombineOptions {
        new_branches,
        ..CombineOptions::default()
    };
    anyhow::ensure!(
        args.dir.is_dir(),
        "listing {}: not a directory (give the folder that holds the day's export files)",
        args.dir.display()
    );
    // `--out` is written under a partial name and renamed when the run succeeds, so a failed
    // run never leaves a file that looks like a (header-only or cut) result.
    let partial = args.out.as_ref().map(|path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        path.with_file_name(format!(".{name}.partial"))
    });
    let out: Box<dyn Write> = match &partial {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let out = std::io::BufWriter::with_capacity(1 << 16, out);
    let combined = (|| -> anyhow::Result<_> {
        Ok(match args.format {
            CombineFormat::LegacyCsv => {
                let mut sink = LegacyCsvWriter::new(out).context("writing the header")?;
                let report = combine_dir(&args.dir, &options, &mut sink)?;
                (report, sink.finish().context("flushing the output")?.1)
            }
            CombineFormat::Jsonl => {
                let mut sink = JsonlWriter::new(out);
                let report = combine_dir(&args.dir, &options, &mut sink)?;
                (report, sink.finish().context("flushing the output")?.1)
            }
        })
    })();
    let (report, monitor): (_, MonitorLog) = match (combined, &partial, &args.out) {
        (Ok(done), Some(partial), Some(out)) => {
            std::fs::rename(partial, out)
                .with_context(|| format!("moving the output into {}", out.display()))?;
            done
        }
        (Ok(done), _, _) => done,
        (Err(e), partial, _) => {
            if let Some(partial) = partial {
                let _ = std::fs::remove_file(partial);
            }
            return Err(e);
        }
    };
    if let Some(path) = &args.monitor {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        monitor
            .write_csv(std::io::BufWriter::new(file))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // The summary is informational: a closed stderr must not fail (or panic) a finished run.
    let _ = writeln!(std::io::stderr().lock(), "{report}");
    Ok(())
}

/// `fetch-worker reprocess`: enqueues one reprocess job per day; prints the ids added.
fn reprocess(args: ReprocessArgs) -> anyhow::Result<()> {
    use fetch_worker::pipeline::day::{Branch, BusinessDate, PosNo};
    use std::io::Write;

    let branch = Branch::parse(&args.branch).context("--branch")?;
    let pos = PosNo::new(args.pos).context("--pos")?;
    anyhow::ensure!((1..=2).contains(&pos.get()), "--pos must be 1 or 2");
    let from = BusinessDate::parse(&args.from).context("--from")?;
    let to = match &args.to {
        Some(to) => BusinessDate::parse(to).context("--to")?,
        None => from,
    };
    let days = fetch_worker::reprocess::days(from, to).map_err(anyhow::Error::msg)?;
    use fetch_worker::bullmq::QueueKeys;
    use fetch_worker::redis_conn::{Connector, RedisConn, RedisTarget, TlsFiles};
    // The worker's URL forms (Sentinel and Cluster too); one try, no waiting for Redis.
    let target =
        RedisTarget::parse(&args.redis_job_url, &TlsFiles::default()).context("REDIS_JOB_URL")?;
    let url = target.redacted();
    anyhow::ensure!(
        !target.is_cluster() || QueueKeys::has_hash_tag(&args.bull_prefix, &args.queue_name),
        "REDIS_JOB_URL is a Redis Cluster: {}",
        QueueKeys::HASH_TAG_NEEDED
    );
    let keys = QueueKeys::new(&args.bull_prefix, &args.queue_name);
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let ids = runtime.block_on(async {
        let mut con = RedisConn::lazy(Connector::new(&target).context("REDIS_JOB_URL")?);
        con.ping()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        fetch_worker::reprocess::enqueue(
            &mut con,
            &keys,
            &branch,
            pos,
            &days,
            args.bullmq_compat,
            now,
        )
        .await
        .context("adding the jobs")
    })?;
    let mut out = std::io::stdout().lock();
    for id in &ids {
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// The test processor `kind` (feature `test-doubles`).
#[cfg(feature = "test-doubles")]
fn test_processor(
    kind: fetch_worker::config::ProcessorKind,
) -> anyhow::Result<std::sync::Arc<dyn fetch_worker::bullmq::Processor>> {
    use fetch_worker::config::ProcessorKind;
    use fetch_worker::processors::{Fail, Noop, Sleep};
    Ok(match kind {
        ProcessorKind::Noop => std::sync::Arc::new(Noop),
        ProcessorKind::Sleep => std::sync::Arc::new(Sleep),
        ProcessorKind::Fail => std::sync::Arc::new(Fail),
    })
}

/// Without the test doubles there is no test processor; the configuration already refused
/// `--processor`, so this only keeps the promise if that check is ever bypassed.
#[cfg(not(feature = "test-doubles"))]
fn test_processor(
    kind: fetch_worker::config::ProcessorKind,
) -> anyhow::Result<std::sync::Arc<dyn fetch_worker::bullmq::Processor>> {
    anyhow::bail!(
        "--processor {}: {}",
        kind.name(),
        fetch_worker::NO_TEST_DOUBLES
    )
}

/// `fetch-worker fake-pos` in a build without the test doubles: a clear refusal.
#[cfg(not(feature = "test-doubles"))]
fn fake_pos(_args: FakePosArgs) -> anyhow::Result<()> {
    anyhow::bail!("fake-pos: {}", fetch_worker::NO_TEST_DOUBLES)
}

/// `fetch-worker fake-pos`: serves a directory like the legacy POS server until SIGINT/SIGTERM.
#[cfg(feature = "test-doubles")]
fn fake_pos(args: FakePosArgs) -> anyhow::Result<()> {
    use fetch_worker::fake_pos::{FakePos, Faults};
    use std::io::Write;

    fetch_worker::telemetry::init(fetch_worker::config::LogFormat::Pretty);
    anyhow::ensure!(
        args.dir.is_dir(),
        "--dir {} is not a directory",
        args.dir.display()
    );
    let rules = match &args.faults {
        Some(spec) => Faults::parse_rules(spec).context("--faults")?,
        None => Vec::new(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let server = FakePos::start(&args.dir, addr, Faults::with_rules(rules))
            .await
            .with_context(|| format!("binding {addr}"))?;
        let mut out = std::io::stdout();
        writeln!(
            out,
            "fake-pos listening on {} (list: {})",
            server.base_url(),
            server.list_url()
        )?;
        out.flush()?;
        fetch_worker::shutdown::signal().await;
        server.stop().await;
        Ok(())
    })
}

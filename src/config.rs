//! The command line and the environment, parsed once into typed settings.
//!
//! Every setting is a flag and, where the Express app already has a name for it, an environment
//! variable of that name. Defaults are stated only here. Nothing outside this module reads the
//! environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bullmq::{self, Compat, KeepJobs, QueueKeys, WorkerOptions};
use crate::redis_conn::{RedisTarget, TlsFiles};
use crate::secret::SecretUrl;

/// Parses `BULLMQ_COMPAT` (`auto`, `5`, `6`).
fn parse_compat(s: &str) -> Result<Compat, crate::bullmq::BadCompat> {
    s.parse()
}

/// The default of `REMOVE_ON_COMPLETE`: the producer's retention of completed jobs.
pub const DEFAULT_REMOVE_ON_COMPLETE: &str = r#"{"age":604800,"count":10000}"#;
/// The default of `REMOVE_ON_FAIL`: the producer's retention of failed jobs.
pub const DEFAULT_REMOVE_ON_FAIL: &str = r#"{"age":2592000}"#;

/// `fetch-worker`: consumes the `fetch` BullMQ queue natively.
#[derive(Debug, Parser)]
#[command(name = "fetch-worker", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each variant's doc is its line in `fetch-worker --help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume jobs from the queue until SIGTERM/SIGINT (or until drained).
    Run(Box<RunArgs>),
    /// Combine a directory of POS export files into legacy CSV rows or typed transactions.
    Combine(CombineArgs),
    /// Serve a directory of POS export files like the legacy POS server, with injectable faults
    /// (a test double: builds with the `test-doubles` feature only).
    FakePos(FakePosArgs),
    /// Enqueue jobs that combine and import days again from their stored raw files (no POS
    /// call): one `{branch, pos, date, reprocess: true}` per day from --from to --to.
    Reprocess(ReprocessArgs),
}

/// Flags of `fetch-worker reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// Branch code as the POS server spells it (`AYALA-FRN`); checked like a job's branch.
    #[arg(long)]
    pub branch: String,
    /// POS number (1 or 2).
    #[arg(long)]
    pub pos: u64,
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub from: String,
    /// Last day (YYYY-MM-DD), included; the first day when absent.
    #[arg(long)]
    pub to: Option<String>,
    /// Redis URL of the queue.
    #[arg(
        long,
        env = "REDIS_JOB_URL",
        default_value = "redis://127.0.0.1:6379/1"
    )]
    pub redis_job_url: String,
    /// BullMQ queue to add the jobs to: the one the workers consume.
    #[arg(long, env = "QUEUE_NAME", default_value = "fetch")]
    pub queue_name: String,
    /// BullMQ key prefix.
    #[arg(long, env = "BULL_PREFIX", default_value = "bull")]
    pub bull_prefix: String,
    /// Which BullMQ major's pause rule to follow (`auto`, `5`, `6`).
    #[arg(long, env = "BULLMQ_COMPAT", default_value = "auto", value_parser = parse_compat)]
    pub bullmq_compat: Compat,
}

/// The processor a worker runs for every job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessorKind {
    /// Completes every job at once, returning `{"processed":true,"echo":<data>}`.
    Noop,
    /// Sleeps `data.ms` milliseconds, reporting progress and log lines as it goes.
    Sleep,
    /// Fails with `data.message`; non-retryable when `data.fatal` is true; succeeds from attempt
    /// `data.succeedOnAttempt` on, when given.
    Fail,
}

impl ProcessorKind {
    /// The name as given on the command line (`noop`, `sleep`, `fail`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::Sleep => "sleep",
            Self::Fail => "fail",
        }
    }
}

/// Refuses a test processor in a build without the test doubles (`built_with_them` false), so
/// a production binary never runs something other than the pipeline because of a stray
/// `PROCESSOR`.
///
/// # Errors
///
/// [`ConfigError::Invalid`] naming `PROCESSOR` and the cargo feature.
pub fn check_processor(
    kind: Option<ProcessorKind>,
    built_with_them: bool,
) -> Result<Option<ProcessorKind>, ConfigError> {
    match kind {
        Some(kind) if !built_with_them => Err(ConfigError::Invalid {
            name: "PROCESSOR",
            reason: format!(
                "`{}` is a test processor; {}",
                kind.name(),
                crate::NO_TEST_DOUBLES
            ),
        }),
        other => Ok(other),
    }
}

/// Where raw downloads are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// Files under RAW_STORAGE_PATH.
    Local,
    /// GridFS in the app's MongoDB.
    Gridfs,
    /// An S3-compatible bucket (the `S3_*` settings).
    S3,
}

/// Settings of `STORAGE=s3`, validated by [`S3Args::settings`]. The credentials are the
/// standard AWS variables; their values are never printed (`--help` hides them too).
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// The S3 service URL for MinIO, Ceph RGW, R2…; unset for AWS. Plain http only when it
    /// says `http://`.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The bucket (must exist: checked at start).
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix: objects are `<prefix>/<branch>/<date>/pos<pos>/<file>`.
    #[arg(long, env = "S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// The bucket's region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`, as MinIO needs); default true when
    /// S3_ENDPOINT is set, false otherwise.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_force_path_style: Option<bool>,
    /// The longest one S3 request may take (ms); a slower one is retried.
    #[arg(long, env = "S3_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub s3_request_timeout_ms: u64,
    /// AWS access key id (without it, the instance or task role is used).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, hide = true)]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub aws_secret_access_key: Option<String>,
    /// AWS session token (temporary credentials).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true, hide = true)]
    pub aws_session_token: Option<String>,
}

impl S3Args {
    /// Validates the settings for `STORAGE=s3`; `retry` is the POS calls' policy, which S3
    /// requests share.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] names the first bad value (never a credential's value).
    pub fn settings(
        &self,
        retry: crate::pipeline::fetch::RetryPolicy,
    ) -> Result<crate::pipeline::storage::S3Settings, ConfigError> {
        use crate::pipeline::storage::s3::Secret;
        let invalid = |name: &'static str, reason: String| ConfigError::Invalid { name, reason };
        let bucket = self.s3_bucket.clone().unwrap_or_default();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(invalid(
                "S3_BUCKET",
                format!(
                    "STORAGE=s3 needs a bucket name (3-63 lower-case letters, digits, '-' or '.'), got {bucket:?}"
                ),
            ));
        }
        let endpoint = match self.s3_endpoint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => {
                let shown = crate::secret::redact_url(raw);
                let url = reqwest::Url::parse(raw)
                    .map_err(|e| invalid("S3_ENDPOINT", format!("{shown:?}: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(invalid(
                        "S3_ENDPOINT",
                        format!("{shown:?} is not an http(s) URL"),
                    ));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(invalid(
                        "S3_ENDPOINT",
                        format!(
                            "{shown:?}: credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not the URL"
                        ),
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(invalid(
                        "S3_ENDPOINT",
                        format!("{shown:?} must not have a query or fragment"),
                    ));
                }
                Some(raw.trim_end_matches('/').to_string())
            }
        };
        let prefix = self.s3_prefix.trim_matches('/').to_string();
        let prefix_ok = prefix.is_empty()
            || prefix.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if !prefix_ok {
            return Err(invalid(
                "S3_PREFIX",
                format!("{prefix:?}: use letters, digits, '-', '_', '.' in '/'-separated parts"),
            ));
        }
        if self.s3_region.trim().is_empty() {
            return Err(invalid("S3_REGION", "must not be empty".into()));
        }
        if self.s3_request_timeout_ms < 100 {
            return Err(invalid(
                "S3_REQUEST_TIMEOUT_MS",
                "must be at least 100 ms".into(),
            ));
        }
        let secret = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(Secret::new);
        let (access_key_id, secret_access_key) = (
            secret(&self.aws_access_key_id),
            secret(&self.aws_secret_access_key),
        );
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(invalid(
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                "set both or neither".into(),
            ));
        }
        let mut settings = crate::pipeline::storage::S3Settings::new(bucket);
        settings.force_path_style = self.s3_force_path_style.unwrap_or(endpoint.is_some());
        settings.endpoint = endpoint;
        settings.prefix = prefix;
        settings.region = self.s3_region.trim().to_string();
        settings.access_key_id = access_key_id;
        settings.secret_access_key = secret_access_key;
        settings.session_token = secret(&self.aws_session_token);
        settings.retry = retry;
        settings.request_timeout = Duration::from_millis(self.s3_request_timeout_ms);
        Ok(settings)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines on stderr, coloured only when stderr is a terminal.
    Pretty,
    /// One JSON object per line (for compose and log shippers).
    Json,
}

/// Flags of `fetch-worker run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Redis URL of the queue (BullMQ keys live in this database): `redis://`, `rediss://`
    /// (TLS), `redis://user:password@…` (ACL), `redis+sentinel://s1:26379,s2:26379/master/db`.
    #[arg(
        long,
        env = "REDIS_JOB_URL",
        default_value = "redis://127.0.0.1:6379/1"
    )]
    pub redis_job_url: String,
    /// Redis URL of the app's cache, where job results are written with a TTL (same forms).
    /// Unset: database 0 of the job server.
    #[arg(long, env = "REDIS_CACHE_URL")]
    pub redis_cache_url: Option<String>,
    /// `1`: the `redis://` / `rediss://` URLs name a seed of a Redis Cluster (as
    /// `redis+cluster://` does).
    #[arg(long, env = "REDIS_CLUSTER", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub redis_cluster: bool,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`); the
    /// system's roots when unset. Verification is always on.
    #[arg(long, env = "REDIS_TLS_CA_FILE")]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for Redis servers that require one (`tls-auth-clients yes`).
    #[arg(long, env = "REDIS_TLS_CERT_FILE", requires = "redis_tls_key_file")]
    pub redis_tls_cert_file: Option<PathBuf>,
    /// PEM key of `--redis-tls-cert-file`.
    #[arg(long, env = "REDIS_TLS_KEY_FILE", requires = "redis_tls_cert_file")]
    pub redis_tls_key_file: Option<PathBuf>,
    /// BullMQ queue to consume, as the producer's `new Queue(name)` names it (keys
    /// `<prefix>:<queue>:…`).
    #[arg(long, env = "QUEUE_NAME", default_value = "fetch")]
    pub queue_name: String,
    /// BullMQ key prefix.
    #[arg(long, env = "BULL_PREFIX", default_value = "bull")]
    pub bull_prefix: String,
    /// Jobs processed at once by this process.
    #[arg(long, env = "JOB_CONCURRENCY", default_value_t = bullmq::DEFAULT_CONCURRENCY)]
    pub job_concurrency: usize,
    /// How long a claimed job's lock lives without renewal (ms). Renewed every quarter of it.
    #[arg(long, env = "LOCK_DURATION_MS", default_value_t = bullmq::DEFAULT_LOCK_DURATION.as_millis() as u64)]
    pub lock_duration_ms: u64,
    /// How often active jobs are checked for lost locks (ms).
    #[arg(long, env = "STALLED_INTERVAL_MS", default_value_t = bullmq::DEFAULT_STALLED_INTERVAL.as_millis() as u64)]
    pub stalled_interval_ms: u64,
    /// How many times a job may stall before it is failed.
    #[arg(long, env = "MAX_STALLED_COUNT", default_value_t = bullmq::DEFAULT_MAX_STALLED_COUNT)]
    pub max_stalled_count: u32,
    /// How long job results stay in the cache database (seconds). 0: results are not
    /// written (for deployments whose app never reads them).
    #[arg(long, env = "RESULT_TTL_SECONDS", default_value_t = 86_400)]
    pub result_ttl_seconds: u64,
    /// Worker name: shown in Bull Board and stored as the job's `pb` field.
    #[arg(long, env = "WORKER_NAME")]
    pub worker_name: Option<String>,
    /// The longest one attempt of a job may run (ms); past it the attempt fails as retryable
    /// (the job's attempts and backoff apply) and its work is dropped. 0 disables the limit.
    #[arg(long, env = "JOB_TIMEOUT_MS", default_value_t = 600_000)]
    pub job_timeout_ms: u64,
    /// How long in-flight jobs may run after SIGTERM before they are handed back to the front of
    /// the queue, with no attempt used (ms). A second signal exits at once.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = bullmq::DEFAULT_SHUTDOWN_TIMEOUT.as_millis() as u64)]
    pub shutdown_timeout_ms: u64,
    /// Idle wait on the marker before polling again (ms).
    #[arg(long, env = "DRAIN_DELAY_MS", default_value_t = bullmq::DEFAULT_DRAIN_DELAY.as_millis() as u64)]
    pub drain_delay_ms: u64,
    /// Worker default for jobs without `removeOnComplete`: `true`, `false` (keep all), a count,
    /// or `{"age":seconds,"count":n}`. The default, 7 days and at most 10,000, is the
    /// producer's (`node-producer-example/src/retention.json`): under `noeviction` a queue that
    /// keeps everything grows until Redis refuses writes.
    #[arg(long, env = "REMOVE_ON_COMPLETE", default_value = DEFAULT_REMOVE_ON_COMPLETE)]
    pub remove_on_complete: String,
    /// Worker default for jobs without `removeOnFail` (same forms as `--remove-on-complete`);
    /// by default 30 days, as the producer's.
    #[arg(long, env = "REMOVE_ON_FAIL", default_value = DEFAULT_REMOVE_ON_FAIL)]
    pub remove_on_fail: String,
    /// Which BullMQ major's rules to follow where 5 and 6 differ (paused queues): `auto` reads
    /// the queue's `meta.version`, `5` or `6` force one.
    #[arg(long, env = "BULLMQ_COMPAT", default_value = "auto", value_parser = parse_compat)]
    pub bullmq_compat: Compat,
    /// Worker rate limiter (Node's `limiter.max`): at most this many jobs start per
    /// `--rate-limit-duration-ms`, shared with every worker limiting the same queue.
    #[arg(long, env = "RATE_LIMIT_MAX", requires = "rate_limit_duration_ms", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_max: Option<u64>,
    /// The rate limiter's window in ms (Node's `limiter.duration`).
    #[arg(long, env = "RATE_LIMIT_DURATION_MS", requires = "rate_limit_max", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_duration_ms: Option<u64>,
    /// Collect BullMQ metrics for `Queue.getMetrics` / Bull Board (Node's worker
    /// `metrics.maxDataPoints`): one-minute points, at most this many kept. Unset = off.
    #[arg(long, env = "METRICS_MAX_DATA_POINTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics_max_data_points: Option<u64>,
    /// A test processor to run instead of the POS pipeline (the default). Builds with the
    /// `test-doubles` feature only; others refuse it.
    #[arg(long, value_enum, env = "PROCESSOR")]
    pub processor: Option<ProcessorKind>,
    /// MongoDB of the app (transactions, filerecords, monitorentries); the database is the
    /// URI's path, `biggs` when it has none.
    #[arg(
        long,
        env = "MONGO_URI",
        default_value = "mongodb://127.0.0.1:27017/biggs"
    )]
    pub mongo_uri: String,
    /// Where raw downloads are kept: `local` (RAW_STORAGE_PATH), `gridfs` (MongoDB) or `s3`
    /// (the S3_* settings).
    #[arg(long, value_enum, env = "STORAGE", default_value = "local")]
    pub storage: StorageKind,
    /// S3 settings (used with `STORAGE=s3`).
    #[command(flatten)]
    pub s3: S3Args,
    /// Branches using the newer file layout: a file of codes, or a comma-separated list
    /// (default: BPAG, BGRAN, BETA, BTAB, the legacy settings).
    #[arg(long, env = "NEW_BRANCHES")]
    pub new_branches: Option<String>,
    /// Keys of the app's cached query results in the cache database, deleted after each import
    /// (a `SCAN MATCH` glob; empty disables it).
    #[arg(long, env = "CACHE_INVALIDATE_PATTERN", default_value = "cache:*")]
    pub cache_invalidate_pattern: String,
    /// How long a day's import lease lasts without renewal (ms). A re-run of the same job takes
    /// the day over at once; another job waits (delayed) until the lease has run out.
    #[arg(long, env = "IMPORT_LEASE_MS", default_value_t = 120_000)]
    pub import_lease_ms: u64,
    /// MongoDB: how long to wait for a suitable server before an operation fails (ms), unless
    /// the URI sets `serverSelectionTimeoutMS`.
    #[arg(
        long,
        env = "MONGO_SERVER_SELECTION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub mongo_server_selection_timeout_ms: u64,
    /// MongoDB: how long to wait for a TCP (and TLS) connection (ms), unless the URI sets
    /// `connectTimeoutMS`.
    #[arg(long, env = "MONGO_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    pub mongo_connect_timeout_ms: u64,
    /// MongoDB: the client-side bound on any one operation (ms). The driver has no socket
    /// timeout; past this the request is abandoned and its connection closed.
    #[arg(long, env = "MONGO_OP_TIMEOUT_MS", default_value_t = 30_000)]
    pub mongo_op_timeout_ms: u64,
    /// MongoDB: `maxTimeMS` of every import write (ms): the server stops a write running longer.
    /// A takeover of an unfinished import waits this (plus 2 s) before deleting stale rows.
    #[arg(long, env = "MONGO_WRITE_MAX_TIME_MS", default_value_t = 10_000)]
    pub mongo_write_max_time_ms: u64,
    /// When a day's export is expected on the POS server: hours after the day's local midnight
    /// (0-48; 24 = midnight after the day, 26 = 02:00 the next day). An empty listing before
    /// then parks the job in `delayed` until then instead of completing with "no files".
    #[arg(long, env = "POS_READY_HOUR", default_value_t = crate::pipeline::ready::DEFAULT_READY_HOUR)]
    pub pos_ready_hour: u32,
    /// The POS's time zone for `POS_READY_HOUR`, as `+HH:MM` or `-HH:MM`.
    #[arg(long, env = "POS_UTC_OFFSET", default_value = "+08:00")]
    pub pos_utc_offset: String,
    /// Transactions written per MongoDB round trip.
    #[arg(long, env = "IMPORT_BATCH_SIZE", default_value_t = 1000)]
    pub import_batch_size: usize,
    /// Settings of the POS server and raw storage.
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Exit once the queue has no waiting, prioritized, delayed or active jobs left.
    #[arg(long)]
    pub until_drained: bool,
    /// How log lines look: `pretty` for people, `json` for compose and log shippers.
    #[arg(long, value_enum, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
    /// Address of `/health` and `/metrics` (`host:port`; port 0 picks one; empty disables).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
}

/// Output format of `fetch-worker combine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CombineFormat {
    /// The legacy combiner's 27-column rows, header first.
    LegacyCsv,
    /// One typed transaction per line, as JSON.
    Jsonl,
}

/// Flags of `fetch-worker combine`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    /// Directory holding POS export files named `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`.
    pub dir: PathBuf,
    /// Output file (standard output when absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What the output holds: the legacy 27-column CSV, or one JSON transaction per line.
    #[arg(long, value_enum, default_value = "legacy-csv")]
    pub format: CombineFormat,
    /// Branches using the newer file layout: a file of codes, or a comma-separated list
    /// (default: BPAG, BGRAN, BETA, BTAB, the legacy settings).
    #[arg(long, env = "NEW_BRANCHES")]
    pub new_branches: Option<String>,
    /// Where to write the `pos,branch,date` monitor rows (date mismatches).
    #[arg(long)]
    pub monitor: Option<PathBuf>,
}

/// Settings of the fetch half of the pipeline: the POS server, timeouts, limits, retries and
/// raw storage. Flattened into `run` (`RunArgs::fetch`); validated by
/// [`FetchConfig::from_args`].
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The list endpoint: a form POST of branch, pos and date answers with file references.
    #[arg(long, env = "POS_LIST_URL", default_value = crate::pipeline::fetch::LEGACY_LIST_URL)]
    pub pos_list_url: String,
    /// The download base: a file's URL is this followed by its reference (a `/` is added when
    /// missing).
    #[arg(
        long,
        env = "POS_FILE_BASE_URL",
        default_value = crate::pipeline::fetch::LEGACY_FILE_BASE_URL
    )]
    pub pos_file_base_url: String,
    /// Root directory of raw files: `<root>/<branch>/<date>/pos<pos>/<file name>`.
    #[arg(long, env = "RAW_STORAGE_PATH", default_value = "./raw")]
    pub raw_storage_path: PathBuf,
    /// The longest wait for a connection to the POS server (ms).
    #[arg(long, env = "POS_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    pub pos_connect_timeout_ms: u64,
    /// The longest one list attempt may take, body included (ms). The Node app's name and
    /// default.
    #[arg(long, env = "POS_LIST_TIMEOUT_MS", default_value_t = 20_000)]
    pub pos_list_timeout_ms: u64,
    /// The longest one file download attempt may take, body included (ms); the legacy
    /// fetcher's 60 s.
    #[arg(long, env = "POS_DOWNLOAD_TIMEOUT_MS", default_value_t = 60_000)]
    pub pos_download_timeout_ms: u64,
    /// The largest file accepted (bytes); a larger one fails the job without retry.
    #[arg(long, env = "POS_MAX_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub pos_max_file_bytes: u64,
    /// The most files one day's listing may name; a longer listing fails the job without
    /// retry and without downloading anything (a real day has three to five).
    #[arg(long, env = "POS_MAX_FILES_PER_DAY", default_value_t = crate::pipeline::fetch::DEFAULT_MAX_FILES_PER_DAY)]
    pub pos_max_files_per_day: usize,
    /// Tries of the list call and of each download on transient errors, the first included.
    #[arg(long, env = "POS_FETCH_ATTEMPTS", default_value_t = 3)]
    pub pos_fetch_attempts: u32,
    /// The wait after the first failed try (ms); doubled after each further one.
    #[arg(long, env = "POS_FETCH_BACKOFF_MS", default_value_t = 200)]
    pub pos_fetch_backoff_ms: u64,
    /// The longest wait between tries (ms).
    #[arg(long, env = "POS_FETCH_MAX_BACKOFF_MS", default_value_t = 5_000)]
    pub pos_fetch_max_backoff_ms: u64,
}

/// Validated fetch settings.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Options of the POS client.
    pub options: crate::pipeline::fetch::FetchOptions,
    /// Root of local raw storage.
    pub raw_storage_path: PathBuf,
}

impl FetchConfig {
    /// Validates and types the raw flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] names the first bad value.
    pub fn from_args(args: FetchArgs) -> Result<Self, ConfigError> {
        use crate::pipeline::fetch::{FetchError, FetchOptions, RetryPolicy};
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_string(),
        };
        for (name, value) in [
            ("POS_CONNECT_TIMEOUT_MS", args.pos_connect_timeout_ms),
            ("POS_LIST_TIMEOUT_MS", args.pos_list_timeout_ms),
            ("POS_DOWNLOAD_TIMEOUT_MS", args.pos_download_timeout_ms),
            ("POS_MAX_FILE_BYTES", args.pos_max_file_bytes),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be greater than 0"));
            }
        }
        if args.pos_max_files_per_day == 0 {
            return Err(invalid("POS_MAX_FILES_PER_DAY", "must be at least 1"));
        }
        if args.pos_fetch_attempts == 0 {
            return Err(invalid("POS_FETCH_ATTEMPTS", "must be at least 1"));
        }
        if args.raw_storage_path.as_os_str().is_empty() {
            return Err(invalid("RAW_STORAGE_PATH", "must not be empty"));
        }
        let mut options = FetchOptions::new(&args.pos_list_url, &args.pos_file_base_url).map_err(
            |e| match e {
                FetchError::Config { name, reason } => ConfigError::Invalid { name, reason },
                other => invalid("POS_LIST_URL/POS_FILE_BASE_URL", &other.to_string()),
            },
        )?;
        options.connect_timeout = Duration::from_millis(args.pos_connect_timeout_ms);
        options.list_timeout = Duration::from_millis(args.pos_list_timeout_ms);
        options.download_timeout = Duration::from_millis(args.pos_download_timeout_ms);
        options.max_file_size = args.pos_max_file_bytes;
        options.max_files = args.pos_max_files_per_day;
        options.retry = RetryPolicy {
            attempts: args.pos_fetch_attempts,
            initial_backoff: Duration::from_millis(args.pos_fetch_backoff_ms),
            max_backoff: Duration::from_millis(
                args.pos_fetch_max_backoff_ms.max(args.pos_fetch_backoff_ms),
            ),
        };
        Ok(FetchConfig {
            options,
            raw_storage_path: args.raw_storage_path,
        })
    }
}

/// Flags of `fetch-worker fake-pos`.
#[derive(Debug, Args)]
pub struct FakePosArgs {
    /// Directory of export files to serve (`a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`).
    #[arg(long, env = "FAKE_POS_DIR")]
    pub dir: PathBuf,
    /// Port to listen on; 0 picks a free one (the address is printed on standard output).
    #[arg(long, env = "FAKE_POS_PORT", default_value_t = 0)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "FAKE_POS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Fault rules at start, as JSON (one rule or an array), e.g.
    /// `[{"fault":"status","status":500,"target":"download","times":2}]`. Change them later
    /// with `POST /__faults`.
    #[arg(long, env = "FAKE_POS_FAULTS")]
    pub faults: Option<String>,
}

/// A validation failure of the command line or environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value was out of range or malformed. The message names the setting as the user gave
    /// it ([`as_given`]).
    #[error("invalid {}: {reason}", as_given(name))]
    Invalid {
        /// The flag or variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A setting's name as the user gave it: the flag (`--remove-on-complete`) when the command
/// line has it, otherwise the environment variable (`REMOVE_ON_COMPLETE`). Every flag of
/// `run` is its variable in lower case with dashes, and a flag wins over its variable, so
/// this names the value that was actually read. `A/B` names two settings.
pub fn as_given(name: &str) -> String {
    as_given_in(name, &std::env::args().collect::<Vec<_>>())
}

fn as_given_in(name: &str, args: &[String]) -> String {
    name.split('/')
        .map(|var| {
            let flag = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
            let with_value = format!("{flag}=");
            let on_command_line = args
                .iter()
                .any(|a| *a == flag || a.starts_with(&with_value));
            if on_command_line {
                flag
            } else {
                var.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Validated settings of `fetch-worker run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The queue database (its URL may carry a password; printed redacted).
    pub redis_job: RedisTarget,
    /// The cache database: `REDIS_CACHE_URL`, else database 0 of the job server.
    pub redis_cache: RedisTarget,
    /// Worker settings for the BullMQ layer.
    pub worker: WorkerOptions,
    /// TTL of results written into the cache; `None` when they are not written.
    pub result_ttl: Option<Duration>,
    /// A test processor, or `None` for the POS pipeline.
    pub processor: Option<ProcessorKind>,
    /// MongoDB URI (may carry credentials).
    pub mongo_uri: SecretUrl,
    /// The longest one attempt may run, if limited.
    pub job_timeout: Option<Duration>,
    /// Where raw downloads are kept (`STORAGE`): local files, GridFS or S3.
    pub storage: StorageKind,
    /// The bucket's settings when `storage` is S3.
    pub s3: Option<crate::pipeline::storage::S3Settings>,
    /// `NEW_BRANCHES` as given.
    pub new_branches: Option<String>,
    /// Cache keys to delete after imports (`None`: do not).
    pub cache_invalidate_pattern: Option<String>,
    /// POS server and raw storage settings.
    pub fetch: FetchConfig,
    /// Import lease and MongoDB operation bounds.
    pub import_timeouts: crate::pipeline::import::ImportTimeouts,
    /// MongoDB server selection timeout (when the URI does not set one).
    pub mongo_server_selection_timeout: Duration,
    /// MongoDB connect timeout (when the URI does not set one).
    pub mongo_connect_timeout: Duration,
    /// Transactions per import batch.
    pub import_batch_size: usize,
    /// When a day's export is expected.
    pub ready: crate::pipeline::ready::ReadyRule,
    /// How log lines are written (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Where `/health` and `/metrics` are served, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl RunConfig {
    /// Validates and types the raw flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] names the first bad value.
    pub fn from_args(args: RunArgs) -> Result<Self, ConfigError> {
        if !args.mongo_uri.starts_with("mongodb://")
            && !args.mongo_uri.starts_with("mongodb+srv://")
        {
            return Err(ConfigError::Invalid {
                name: "MONGO_URI",
                reason: "not a mongodb:// or mongodb+srv:// URI".into(),
            });
        }
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_string(),
        };
        for (name, ms) in [
            (
                "MONGO_SERVER_SELECTION_TIMEOUT_MS",
                args.mongo_server_selection_timeout_ms,
            ),
            ("MONGO_CONNECT_TIMEOUT_MS", args.mongo_connect_timeout_ms),
            ("MONGO_OP_TIMEOUT_MS", args.mongo_op_timeout_ms),
            ("MONGO_WRITE_MAX_TIME_MS", args.mongo_write_max_time_ms),
        ] {
            if ms < 100 {
                return Err(invalid(name, "must be at least 100 ms"));
            }
        }
        if args.import_lease_ms <= args.mongo_write_max_time_ms + 2_000 {
            return Err(invalid(
                "IMPORT_LEASE_MS",
                "must be above MONGO_WRITE_MAX_TIME_MS + 2000, so a lease outlives the wait of a takeover",
            ));
        }
        if args.mongo_write_max_time_ms >= args.mongo_op_timeout_ms {
            return Err(invalid(
                "MONGO_WRITE_MAX_TIME_MS",
                "must be below MONGO_OP_TIMEOUT_MS, so the server gives up on a write before the client does",
            ));
        }
        if args.pos_ready_hour > 48 {
            return Err(invalid(
                "POS_READY_HOUR",
                "must be 0 to 48 (hours after the day's midnight)",
            ));
        }
        let ready = crate::pipeline::ready::ReadyRule {
            hour: args.pos_ready_hour,
            utc_offset: parse_utc_offset(&args.pos_utc_offset).ok_or_else(|| {
                invalid(
                    "POS_UTC_OFFSET",
                    "expected +HH:MM or -HH:MM, for example +08:00",
                )
            })?,
        };
        if args.job_concurrency == 0 {
            return Err(invalid("JOB_CONCURRENCY", "must be at least 1"));
        }
        if args.lock_duration_ms < 100 {
            return Err(invalid("LOCK_DURATION_MS", "must be at least 100 ms"));
        }
        if args.stalled_interval_ms == 0 {
            return Err(invalid("STALLED_INTERVAL_MS", "must be greater than 0"));
        }
        if args.queue_name.is_empty() || args.bull_prefix.is_empty() {
            return Err(invalid("QUEUE_NAME/BULL_PREFIX", "must not be empty"));
        }
        let tls = TlsFiles {
            ca: args.redis_tls_ca_file.clone(),
            cert: args.redis_tls_cert_file.clone(),
            key: args.redis_tls_key_file.clone(),
        };
        let target = |name: &'static str, url: &str| {
            RedisTarget::parse_maybe_cluster(url, &tls, args.redis_cluster)
                .map_err(|e| invalid(name, &e.to_string()))
        };
        let redis_job = target("REDIS_JOB_URL", &args.redis_job_url)?;
        let redis_cache = match &args.redis_cache_url {
            Some(url) => target("REDIS_CACHE_URL", url)?,
            None => redis_job.with_db(0),
        };
        if redis_job.is_cluster() && !QueueKeys::has_hash_tag(&args.bull_prefix, &args.queue_name) {
            return Err(invalid(
                "BULL_PREFIX",
                &format!(
                    "REDIS_JOB_URL is a Redis Cluster: {}",
                    QueueKeys::HASH_TAG_NEEDED
                ),
            ));
        }
        let is_tls = |url: &str| url.to_ascii_lowercase().starts_with("rediss");
        if !tls.is_empty()
            && !is_tls(&args.redis_job_url)
            && !args.redis_cache_url.as_deref().is_some_and(is_tls)
        {
            return Err(invalid(
                "REDIS_TLS_CA_FILE/REDIS_TLS_CERT_FILE",
                "set, but no Redis URL uses TLS: write rediss:// (or rediss+sentinel://)",
            ));
        }
        let keep = |name: &'static str, raw: &str| -> Result<Option<KeepJobs>, _> {
            let forms = "accepted: true (remove at once), false (keep all), a count such as \
                         1000 (keep the newest), or {\"age\": seconds, \"count\": n}";
            let shown = crate::bullmq::processor::cap_text(raw, 40);
            serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .and_then(|value| KeepJobs::from_option(&value))
                .map(Some)
                .ok_or_else(|| invalid(name, &format!("`{shown}` is not a retention; {forms}")))
        };
        let metrics_addr = match args.metrics_addr.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| {
                invalid(
                    "METRICS_ADDR",
                    "expected host:port, for example 0.0.0.0:9464",
                )
            })?),
        };
        let worker = WorkerOptions {
            prefix: args.bull_prefix,
            queue: args.queue_name,
            concurrency: args.job_concurrency,
            lock_duration: Duration::from_millis(args.lock_duration_ms),
            stalled_interval: Duration::from_millis(args.stalled_interval_ms),
            max_stalled_count: args.max_stalled_count,
            drain_delay: Duration::from_millis(args.drain_delay_ms.max(1)),
            shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
            name: args.worker_name,
            remove_on_complete: keep("REMOVE_ON_COMPLETE", &args.remove_on_complete)?,
            remove_on_fail: keep("REMOVE_ON_FAIL", &args.remove_on_fail)?,
            until_drained: args.until_drained,
            compat: args.bullmq_compat,
            limiter: args.rate_limit_max.zip(args.rate_limit_duration_ms),
            metrics_max_data_points: args.metrics_max_data_points,
        };
        let s3_args = args.s3.clone();
        let mut config = Self {
            redis_job,
            redis_cache,
            worker,
            result_ttl: (args.result_ttl_seconds > 0)
                .then(|| Duration::from_secs(args.result_ttl_seconds)),
            processor: check_processor(args.processor, crate::TEST_DOUBLES)?,
            mongo_uri: SecretUrl::new(args.mongo_uri),
            job_timeout: Some(Duration::from_millis(args.job_timeout_ms)).filter(|d| !d.is_zero()),
            storage: args.storage,
            s3: None,
            new_branches: args.new_branches,
            cache_invalidate_pattern: Some(args.cache_invalidate_pattern).filter(|p| !p.is_empty()),
            fetch: FetchConfig::from_args(args.fetch)?,
            import_timeouts: crate::pipeline::import::ImportTimeouts {
                lease: Duration::from_millis(args.import_lease_ms),
                op_timeout: Duration::from_millis(args.mongo_op_timeout_ms),
                write_max_time: Duration::from_millis(args.mongo_write_max_time_ms),
            },
            mongo_server_selection_timeout: Duration::from_millis(
                args.mongo_server_selection_timeout_ms,
            ),
            mongo_connect_timeout: Duration::from_millis(args.mongo_connect_timeout_ms),
            import_batch_size: args.import_batch_size.max(1),
            ready,
            log_format: args.log_format,
            metrics_addr,
        };
        if config.storage == StorageKind::S3 {
            config.s3 = Some(s3_args.settings(config.fetch.options.retry)?);
        }
        Ok(config)
    }
}

/// `+HH:MM` / `-HH:MM` → a fixed offset.
fn parse_utc_offset(text: &str) -> Option<chrono::FixedOffset> {
    let text = text.trim();
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod offset_tests {
    #[test]
    fn utc_offsets_parse_strictly() {
        let p = super::parse_utc_offset;
        assert_eq!(p("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(
            p("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 30 * 60)
        );
        for bad in ["08:00", "+8:00", "+08", "+15:00", "+08:60", "", "UTC"] {
            assert!(p(bad).is_none(), "{bad}");
        }
    }
}

#[cfg(test)]
mod fetch_config_tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<FetchConfig, ConfigError> {
        #[derive(Debug, Parser)]
        struct Probe {
            #[command(flatten)]
            fetch: FetchArgs,
        }
        let mut argv = vec!["probe"];
        argv.extend_from_slice(args);
        let probe = Probe::try_parse_from(argv).map_err(|e| ConfigError::Invalid {
            name: "argv",
            reason: e.to_string(),
        })?;
        FetchConfig::from_args(probe.fetch)
    }

    #[test]
    fn defaults_are_the_legacy_server_and_documented_limits() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(
            c.options.list_url.expose().as_str(),
            crate::pipeline::fetch::LEGACY_LIST_URL
        );
        assert_eq!(
            c.options.file_base_url.expose().as_str(),
            crate::pipeline::fetch::LEGACY_FILE_BASE_URL
        );
        assert_eq!(c.raw_storage_path, PathBuf::from("./raw"));
        assert_eq!(c.options.retry.attempts, 3);
        assert_eq!(c.options.retry.initial_backoff, Duration::from_millis(200));
        assert_eq!(c.options.list_timeout, Duration::from_secs(20));
        assert_eq!(c.options.download_timeout, Duration::from_secs(60));
        assert_eq!(c.options.max_file_size, 64 << 20);
        assert_eq!(c.options.max_files, 64);
    }

    #[test]
    fn bad_values_are_named() {
        for (args, name) in [
            (&["--pos-fetch-attempts", "0"][..], "POS_FETCH_ATTEMPTS"),
            (&["--pos-list-timeout-ms", "0"][..], "POS_LIST_TIMEOUT_MS"),
            (&["--pos-list-url", "ftp://x/"][..], "POS_LIST_URL"),
            (&["--pos-file-base-url", "nope"][..], "POS_FILE_BASE_URL"),
            (
                &["--pos-max-files-per-day", "0"][..],
                "POS_MAX_FILES_PER_DAY",
            ),
        ] {
            match parse(args) {
                Err(ConfigError::Invalid { name: got, .. }) => assert_eq!(got, name, "{args:?}"),
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    /// The worker's retention defaults are the producer's (issue 11): both read the same
    /// numbers, the producer from `node-producer-example/src/retention.json`.
    #[test]
    fn worker_retention_defaults_match_the_producers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node-producer-example/src/retention.json");
        let shared: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            parse(DEFAULT_REMOVE_ON_COMPLETE),
            shared["removeOnComplete"]
        );
        assert_eq!(parse(DEFAULT_REMOVE_ON_FAIL), shared["removeOnFail"]);
        let args = Cli::try_parse_from(["fetch-worker", "run"]).unwrap();
        let Command::Run(args) = args.command else {
            panic!("not run")
        };
        let config = RunConfig::from_args(*args).unwrap();
        let keep = config.worker.remove_on_complete.unwrap();
        assert_eq!((keep.count, keep.age), (10_000, Some(604_800)));
        let keep = config.worker.remove_on_fail.unwrap();
        assert_eq!((keep.count, keep.age), (-1, Some(2_592_000)));
    }
}

#[cfg(test)]
mod test_double_tests {
    use super::*;

    /// A build without the test doubles refuses `--processor` with a message naming the
    /// feature; with them (or with no processor) the choice passes through.
    #[test]
    fn a_production_build_refuses_test_processors() {
        let err = check_processor(Some(ProcessorKind::Noop), false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("PROCESSOR"), "{text}");
        assert!(text.contains("`noop` is a test processor"), "{text}");
        assert!(text.contains("--features test-doubles"), "{text}");
        assert_eq!(check_processor(None, false).unwrap(), None);
        assert_eq!(
            check_processor(Some(ProcessorKind::Sleep), true).unwrap(),
            Some(ProcessorKind::Sleep)
        );
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// Errors name the setting the way the user gave it: the flag when it was on the command
    /// line (both `--flag value` and `--flag=value`), the variable otherwise.
    #[test]
    fn a_setting_is_named_as_given() {
        let name = "REMOVE_ON_COMPLETE";
        assert_eq!(
            as_given_in(name, &argv(&["fw", "run"])),
            "REMOVE_ON_COMPLETE"
        );
        assert_eq!(
            as_given_in(name, &argv(&["fw", "run", "--remove-on-complete", "x"])),
            "--remove-on-complete"
        );
        assert_eq!(
            as_given_in(name, &argv(&["fw", "run", "--remove-on-complete=x"])),
            "--remove-on-complete"
        );
        // A flag that merely starts the same is another setting.
        assert_eq!(
            as_given_in(name, &argv(&["fw", "run", "--remove-on-completely"])),
            "REMOVE_ON_COMPLETE"
        );
        assert_eq!(
            as_given_in(
                "QUEUE_NAME/BULL_PREFIX",
                &argv(&["fw", "--bull-prefix", ""])
            ),
            "QUEUE_NAME/--bull-prefix"
        );
    }
}

#[cfg(test)]
mod redis_url_tests {
    use super::*;

    pub(super) fn run_config(args: &[&str]) -> Result<RunConfig, ConfigError> {
        let mut argv = vec!["fetch-worker", "run"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| ConfigError::Invalid {
            name: "argv",
            reason: e.to_string(),
        })?;
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        RunConfig::from_args(*args)
    }

    /// Issue 10: with only the job URL set, the cache is db 0 of the same server, credentials
    /// included; printed forms stay redacted.
    #[test]
    fn the_cache_defaults_to_db_0_of_the_job_server() {
        let c = run_config(&["--redis-job-url", "redis://:pw@10.1.2.3:6380/1"]).unwrap();
        assert_eq!(c.redis_cache.db(), 0);
        assert_eq!(
            c.redis_cache.redacted().as_str(),
            "redis://***@10.1.2.3:6380/0"
        );
        assert!(!format!("{c:?}").contains("pw@"));
        let c = run_config(&[
            "--redis-job-url",
            "redis+sentinel://s1:26379,s2:26379/mymaster/1",
        ])
        .unwrap();
        assert!(c.redis_cache.is_sentinel() && c.redis_cache.db() == 0);
        let c = run_config(&["--redis-cache-url", "redis://other:6379/4"]).unwrap();
        assert_eq!(c.redis_cache.db(), 4);
    }

    /// Issue 13: `RunConfig`'s `Debug` goes through each field's redacting type, so no
    /// password, token or secret key of any setting reaches a log that prints the config.
    #[test]
    fn no_secret_of_any_setting_appears_in_debug() {
        let c = run_config(&[
            "--redis-job-url",
            "redis+sentinel://sUser:SentPw1@s1:26379,s2:26379/mymaster/1?sentinelPassword=QueryPw2",
            "--redis-cache-url",
            "redis://cacheuser:CachePw3@cache:6379/4",
            "--mongo-uri",
            "mongodb://app:MongoPw4@m1:27017,m2:27017/biggs?authSource=admin&tok=MongoTok5",
            "--pos-list-url",
            "http://pos:ListPw6@pos:8080/fetch_list2.php?token=ListTok7",
            "--pos-file-base-url",
            "http://pos:BasePw8@pos:8080/files/",
            "--storage",
            "s3",
            "--s3-bucket",
            "pos-raw",
            "--aws-access-key-id",
            "AKIDSECRET10",
            "--aws-secret-access-key",
            "AwsSecret11",
            "--aws-session-token",
            "AwsToken12",
        ])
        .unwrap();
        let text = format!("{c:?}");
        for secret in [
            "SentPw1",
            "QueryPw2",
            "CachePw3",
            "MongoPw4",
            "MongoTok5",
            "ListPw6",
            "ListTok7",
            "BasePw8",
            "AwsSecret11",
            "AwsToken12",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The redacted forms still say which servers are meant.
        for host in [
            "s1:26379",
            "cache:6379",
            "m1:27017",
            "pos:8080/fetch_list2.php",
        ] {
            assert!(text.contains(host), "{host} missing from {text}");
        }
    }

    #[test]
    fn tls_files_need_a_tls_url_and_come_in_pairs() {
        let err = run_config(&["--redis-tls-ca-file", "/tmp/ca.pem"]).unwrap_err();
        assert!(err.to_string().contains("rediss://"), "{err}");
        assert!(run_config(&["--redis-tls-cert-file", "/tmp/c.pem"]).is_err());
        let err = run_config(&["--redis-job-url", "memcached://a,b"]).unwrap_err();
        assert!(err.to_string().contains("REDIS_JOB_URL"), "{err}");
    }
}

#[cfg(test)]
mod cluster_config_tests {
    use super::*;

    #[test]
    fn a_cluster_needs_a_hash_tag_and_database_0() {
        let run = |args: &[&str]| {
            let mut argv = vec!["fetch-worker", "run"];
            argv.extend_from_slice(args);
            let cli = Cli::try_parse_from(argv).unwrap();
            match cli.command {
                Command::Run(a) => RunConfig::from_args(*a),
                _ => unreachable!(),
            }
        };
        let err = run(&["--redis-job-url", "redis+cluster://u:SECRET@a:7000,b:7001"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("BULL_PREFIX={bull}"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        let c = run(&[
            "--redis-job-url",
            "redis+cluster://a:7000,b:7001",
            "--bull-prefix",
            "{bull}",
        ])
        .unwrap();
        assert!(c.redis_job.is_cluster() && c.redis_cache.is_cluster());
        let c = run(&[
            "--redis-job-url",
            "redis://a:7000",
            "--redis-cluster",
            "1",
            "--queue-name",
            "{fetch}",
        ])
        .unwrap();
        assert!(c.redis_job.is_cluster());
        let err = run(&[
            "--redis-job-url",
            "redis+cluster://a:7000/1",
            "--bull-prefix",
            "{bull}",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("database 0"), "{err}");
    }
}

#[cfg(test)]
mod s3_config_tests {
    use super::*;

    /// `--flag=value` for each pair, through the same parser as the other tests.
    fn run(env: &[(&str, &str)]) -> Result<RunConfig, ConfigError> {
        let argv: Vec<String> = env.iter().map(|(f, v)| format!("--{f}={v}")).collect();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        super::redis_url_tests::run_config(&argv)
    }

    #[test]
    fn s3_settings_are_read_only_for_storage_s3_with_path_style_by_endpoint() {
        assert!(run(&[]).unwrap().s3.is_none());
        let c = run(&[
            ("storage", "s3"),
            ("s3-bucket", "pos-raw"),
            ("s3-endpoint", "http://minio:9000/"),
            ("s3-prefix", "/raw/"),
            ("aws-access-key-id", "AKID"),
            ("aws-secret-access-key", "s3cr3t-value"),
        ])
        .unwrap();
        let s3 = c.s3.clone().unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(s3.force_path_style, "the default with an endpoint");
        assert_eq!(
            (s3.prefix.as_str(), s3.region.as_str()),
            ("raw", "us-east-1")
        );
        assert_eq!(s3.retry, c.fetch.options.retry, "the POS calls' retries");
        assert!(!format!("{c:?}").contains("s3cr3t-value"));

        let aws = run(&[("storage", "s3"), ("s3-bucket", "pos-raw")]).unwrap();
        assert!(!aws.s3.unwrap().force_path_style, "AWS: virtual-hosted");
        let forced = run(&[
            ("storage", "s3"),
            ("s3-bucket", "pos-raw"),
            ("s3-endpoint", "https://s3.example"),
            ("s3-force-path-style", "false"),
        ])
        .unwrap();
        assert!(!forced.s3.unwrap().force_path_style);
    }

    #[test]
    fn bad_s3_settings_are_named_without_their_secrets() {
        for (args, name) in [
            (&[("storage", "s3")][..], "S3_BUCKET"),
            (
                &[("storage", "s3"), ("s3-bucket", "Bad_Bucket")][..],
                "S3_BUCKET",
            ),
            (
                &[
                    ("storage", "s3"),
                    ("s3-bucket", "ok-bucket"),
                    ("s3-endpoint", "ftp://x"),
                ][..],
                "S3_ENDPOINT",
            ),
            (
                &[
                    ("storage", "s3"),
                    ("s3-bucket", "ok-bucket"),
                    ("s3-endpoint", "http://user:Pa55word@minio:9000"),
                ][..],
                "S3_ENDPOINT",
            ),
            (
                &[
                    ("storage", "s3"),
                    ("s3-bucket", "ok-bucket"),
                    ("s3-prefix", "a/../b"),
                ][..],
                "S3_PREFIX",
            ),
            (
                &[
                    ("storage", "s3"),
                    ("s3-bucket", "ok-bucket"),
                    ("aws-access-key-id", "AKID"),
                ][..],
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ),
        ] {
            match run(args) {
                Err(ConfigError::Invalid { name: got, reason }) => {
                    assert_eq!(got, name, "{args:?}: {reason}");
                    assert!(!reason.contains("Pa55word"), "{reason}");
                }
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }
}

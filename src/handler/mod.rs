//! The `fetch-job` processor: the one place that names both a BullMQ job and a POS day.
//!
//! For a job `{branch, pos, date}` it lists the day's files, downloads them into raw storage,
//! combines them with the legacy rules, imports the typed transactions into MongoDB, clears
//! the app's cached query results, and returns a summary. Errors are sorted once, here:
//! bad job data and hostile listings fail the job at once; network and database trouble is
//! retried with the job's backoff; when the last attempt of a listing or download fails, a
//! monitor entry records it for a person to look at.
//!
//! A job `{branch, pos, date, reprocess: true}` skips the POS server: it combines and imports
//! the day from the raw files its `filerecords` name (any provider, each checked against its
//! recorded SHA-256), through the same fenced import as a fetch. Its return value says
//! `source: "storage"` (a fetch says `source: "pos"`); a day without stored files fails at
//! once.

mod batch_sink;
mod job_data;
mod materialize;
mod setup;
mod summary;

use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::app_cache::CacheInvalidation;
use crate::bullmq::{Disposition, JobContext, ProcessError, Processor};
use crate::metrics::Step;
use crate::pipeline::combine::{
    CombineOptions, DayFile, FileType, GroupReport, LEGACY_NAMES, NewBranches, combine_day,
};
use crate::pipeline::export_name::ExportName;
use crate::pipeline::fetch::{FetchError, PosClient, StoredFile};
use crate::pipeline::import::{Day, FileRecord, FileStatus, ImportError, Importer};
use crate::pipeline::ready::{Readiness, ReadyRule};
use crate::pipeline::record::Transaction;
use crate::pipeline::storage::{RawStorage, StorageLocation};
use batch_sink::BatchSink;
use job_data::span_text;
pub use job_data::{JobDataError, read_day, reprocess_flag};
pub use materialize::Materialize;
pub use setup::SetupError;
pub use summary::{DaySummary, FileSummary, RowCounts, Source};

/// The `fetch-job` processor: the clients and settings one job's story uses, built once at
/// start-up ([`FetchHandler::from_config`]) and shared by every job through an `Arc`.
pub struct FetchHandler {
    /// Lists and downloads a day's files from the POS server, with its own retries and limits.
    pub client: PosClient,
    /// Where downloads are written (the configured `STORAGE`); file records name the location
    /// so a reprocess can read it back.
    pub storage: Arc<dyn RawStorage>,
    /// How stored files become local paths for the combine pass.
    pub materialize: Arc<dyn Materialize>,
    /// Writes the day's rows, file records and monitor entries into MongoDB, fenced so two
    /// imports of one day never mix.
    pub importer: Importer,
    /// Branches whose exports use the newer layout (`NEW_BRANCHES`): the combine pass reads
    /// their product file differently.
    pub new_branches: NewBranches,
    /// Clears the app's cached query results after an import (`CACHE_INVALIDATE_PATTERN`);
    /// `None` leaves the cache alone.
    pub cache: Option<CacheInvalidation>,
    /// Transactions per MongoDB write: bounds memory, and how far combining runs ahead of the
    /// import.
    pub batch_size: usize,
    /// Counts downloads and imported rows for `/metrics`; `None` where nothing is exported.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// When a day's export is expected (an empty listing before then waits).
    pub ready: ReadyRule,
    /// The longest one attempt runs (`JOB_TIMEOUT_MS`), enforced here rather than around the
    /// processor so a last attempt that times out leaves its monitor entry like any failure.
    pub time_limit: Option<std::time::Duration>,
}

impl std::fmt::Debug for FetchHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchHandler").finish_non_exhaustive()
    }
}

impl Processor for Arc<FetchHandler> {
    fn process(&self, job: JobContext) -> BoxFuture<'static, Result<Value, ProcessError>> {
        let this = self.clone();
        // Every log line of the job carries the day, beside the worker's job span.
        let data = &job.data;
        let field = |k: &str| data.get(k).map(span_text).unwrap_or_default();
        let span = tracing::info_span!("day", branch = %field("branch"), pos = %field("pos"),
            date = %field("date"));
        async move { this.run(job).await }.instrument(span).boxed()
    }
}

/// Progress milestones (percent) shown in Bull Board.
mod progress {
    pub const LISTED: u32 = 5;
    pub const DOWNLOADED: u32 = 50;
    pub const COMBINING: u32 = 55;
    pub const IMPORTED: u32 = 95;
}

impl FetchHandler {
    /// One attempt: the story in [`FetchHandler::attempt`]; here, what every final failure
    /// leaves behind. A failure that ends the job (permanent, or the last attempt) writes one
    /// monitor entry, so a person sees every day the queue gave up on.
    async fn run(&self, job: JobContext) -> Result<Value, ProcessError> {
        let invalid = |e: JobDataError| ProcessError::caused_by("invalid job data", e, false);
        let day = read_day(&job.data).map_err(invalid)?;
        let reprocess = reprocess_flag(&job.data).map_err(invalid)?;
        let outcome = match self.time_limit {
            None => self.attempt(&job, &day, reprocess).await,
            Some(limit) => tokio::time::timeout(limit, self.attempt(&job, &day, reprocess))
                .await
                .unwrap_or_else(|_| {
                    Err(ProcessError::retryable(format!(
                        "attempt timed out after {} ms (JOB_TIMEOUT_MS)",
                        limit.as_millis()
                    )))
                }),
        };
        if let Err(err) = &outcome
            && job.disposition(Err(err)) == Disposition::Failed
        {
            self.monitor(&day, &err.reason()).await;
        }
        outcome.map(|summary| summary.to_value())
    }

    async fn attempt(
        &self,
        job: &JobContext,
        day: &Day,
        reprocess: bool,
    ) -> Result<DaySummary, ProcessError> {
        let started = Instant::now();
        let report_to = Reporter { job, day };

        // 0. A day another job is importing right now: wait for it, before downloading anything.
        if let Err(e) = self.importer.check_free(day, &job.id).await {
            return Err(self.import_failure(e, day, &report_to).await);
        }

        // A reprocess reads the day's stored files instead of steps 1 and 2.
        if reprocess {
            let stored = self.stored_files(day, &report_to).await?;
            return self
                .import_files(day, stored, started, &report_to, Source::Storage)
                .await;
        }

        // 1. List.
        report_to
            .log(format!(
                "listing files for {} pos {} on {}",
                day.branch, day.pos, day.date
            ))
            .await;
        let listing_started = Instant::now();
        let listed = self
            .client
            .list(&day.branch, day.pos, day.date)
            .instrument(tracing::info_span!("list"))
            .await;
        self.timed(Step::List, listing_started);
        let listing = match listed {
            Ok(l) => l,
            Err(e) => {
                report_to.log(format!("listing failed: {e}")).await;
                return Err(fetch_error("listing failed", e));
            }
        };
        for s in &listing.skipped {
            report_to
                .log(format!(
                    "skipped listed item {:?}: {:?}",
                    s.reference, s.reason
                ))
                .await;
        }
        report_to.progress(progress::LISTED).await;
        if listing.files.is_empty() {
            let now = mongodb::bson::DateTime::now().timestamp_millis();
            match self.ready.readiness(day.date.naive(), now) {
                Readiness::Due => {}
                Readiness::NotYet { ready_at_ms } => {
                    let until = u64::try_from(ready_at_ms).unwrap_or(0);
                    return Err(wait_until(
                        until,
                        format!(
                            "waiting: no files yet for {} pos {} on {}; the export is expected from {}",
                            day.branch,
                            day.pos,
                            day.date,
                            chrono::DateTime::from_timestamp_millis(ready_at_ms)
                                .map(|t| t.with_timezone(&self.ready.utc_offset).to_rfc3339())
                                .unwrap_or_default()
                        ),
                    ));
                }
                Readiness::Future { .. } => {
                    return Err(ProcessError::permanent(format!(
                        "invalid job data: {} is in the future; its export cannot exist yet",
                        day.date
                    )));
                }
            }
            report_to.log("no files listed for this day".into()).await;
            // The job is finished, whatever it found: its progress says so.
            report_to.progress(100).await;
            return Ok(DaySummary {
                branch: day.branch.as_str().to_string(),
                pos: day.pos.get(),
                date: day.date.to_string(),
                files: Vec::new(),
                rows: RowCounts::default(),
                note: Some("no files"),
                source: Source::Pos,
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        report_to
            .log(format!("{} file(s) listed", listing.files.len()))
            .await;

        // 2. Download.
        let total = listing.files.len() as u32;
        let mut stored = Vec::with_capacity(listing.files.len());
        for (i, file) in listing.files.iter().enumerate() {
            let download_started = Instant::now();
            let downloaded = self
                .client
                .download(file, self.storage.as_ref())
                .instrument(tracing::info_span!("download", file = %file.as_str()))
                .await;
            self.timed(Step::Download, download_started);
            if let Some(m) = &self.metrics {
                m.download(
                    downloaded.is_ok(),
                    downloaded.as_ref().map(|s| s.size).unwrap_or(0),
                );
            }
            match downloaded {
                Ok(s) => {
                    report_to
                        .log(format!(
                            "downloaded {} ({} bytes, sha256 {})",
                            s.file_name, s.size, s.sha256
                        ))
                        .await;
                    let record = FileRecord {
                        filename: s.file_name.clone(),
                        file_type: file.name().file_type().to_string(),
                        provider: s.location.provider.clone(),
                        path: s.location.path.clone(),
                        bucket: s.location.bucket.clone(),
                        size: s.size,
                        checksum: s.sha256.clone(),
                    };
                    self.importer.record_file(day, &record).await.map_err(|e| {
                        ProcessError::caused_by(format!("recording {}", s.file_name), e, true)
                    })?;
                    stored.push((file.name().file_type().to_string(), s));
                }
                Err(e) => {
                    let context = format!("download of {} failed", file.as_str());
                    report_to.log(format!("{context}: {e}")).await;
                    return Err(fetch_error(context, e));
                }
            }
            let pct = progress::LISTED
                + (progress::DOWNLOADED - progress::LISTED) * (i as u32 + 1) / total;
            report_to.progress(pct).await;
        }
        self.import_files(day, stored, started, &report_to, Source::Pos)
            .await
    }

    /// The day's stored files, from its file records: what a reprocess combines.
    ///
    /// # Errors
    ///
    /// Permanent when the day has no stored files; retryable for MongoDB trouble.
    async fn stored_files(
        &self,
        day: &Day,
        report_to: &Reporter<'_>,
    ) -> Result<Vec<(String, StoredFile)>, ProcessError> {
        report_to
            .log(format!(
                "reprocessing {} pos {} on {} from raw storage",
                day.branch, day.pos, day.date
            ))
            .await;
        let (records, unusable) = self
            .importer
            .stored_files(day)
            .await
            .map_err(import_error)?;
        for name in &unusable {
            report_to
                .log(format!(
                    "the file record of {name} names no storage; skipped"
                ))
                .await;
        }
        if records.is_empty() {
            return Err(ProcessError::permanent(format!(
                "no stored files for {} pos {} on {}: fetch the day before reprocessing it",
                day.branch, day.pos, day.date
            )));
        }
        report_to
            .log(format!("{} stored file(s)", records.len()))
            .await;
        report_to.progress(progress::DOWNLOADED).await;
        Ok(records
            .into_iter()
            .map(|r| {
                let stored = StoredFile {
                    reference: r.filename.clone(),
                    file_name: r.filename,
                    size: r.size,
                    sha256: r.checksum,
                    location: StorageLocation {
                        provider: r.provider,
                        path: r.path,
                        bucket: r.bucket,
                    },
                };
                (r.file_type, stored)
            })
            .collect())
    }

    /// Steps 3 to 5 for files already in raw storage (just downloaded, or stored earlier for
    /// a reprocess), and the job's return value.
    async fn import_files(
        &self,
        day: &Day,
        stored: Vec<(String, StoredFile)>,
        started: Instant,
        report_to: &Reporter<'_>,
        source: Source,
    ) -> Result<DaySummary, ProcessError> {
        let names: Vec<String> = stored.iter().map(|(_, s)| s.file_name.clone()).collect();

        // 3. Combine (blocking, on its own thread) and 4. import, as batches arrive.
        report_to.progress(progress::COMBINING).await;
        // Removed when dropped: also when the attempt is timed out or aborted at shutdown.
        let scratch = crate::scratch::ScratchDir::new();
        let outcome = self
            .combine_and_import(day, &stored, scratch.path(), report_to, source)
            .await;
        drop(scratch);
        let (report, written, removed) = match outcome {
            Ok(v) => v,
            Err(err) => {
                // The attempt's own failure is what the job reports; a file record that could
                // not be marked is said beside it, so the stale `status` can be explained.
                let marked = self
                    .importer
                    .mark_files(day, &names, FileStatus::Error, Some(&err.reason()))
                    .await;
                if let Err(e) = marked {
                    let e = ProcessError::caused_by("could not mark the files as failed", e, true);
                    tracing::warn!(error.message = %e.reason(), "could not mark the day's file records");
                    report_to.log(e.reason()).await;
                }
                return Err(err);
            }
        };
        if let Some(m) = &self.metrics {
            m.rows_imported(written);
        }
        self.importer
            .mark_files(day, &names, FileStatus::Parsed, None)
            .await
            .map_err(|e| ProcessError::caused_by("updating file records", e, true))?;
        // The typed records' counts: what was (not) imported, read with real CSV quoting.
        let typed = &report.typed;
        if typed.monitor_rows > 0 {
            let rd5000 = report
                .files
                .iter()
                .find(|f| f.file_type == FileType::Rd5000)
                .map(|f| f.file_name.clone())
                .unwrap_or_default();
            self.monitor(
                day,
                &format!("date mismatch rows={} for {rd5000}", typed.monitor_rows),
            )
            .await;
        }
        // Lines whose fields do not fit the layout: one entry naming the file, line and cause.
        if let Some(note) = report.layout_note() {
            self.monitor(day, &note).await;
        }
        report_to.log(format!(
            "imported {written} row(s), removed {removed} stale row(s); rejected {} line(s), {} date mismatch(es)",
            typed.rejected_total(),
            typed.monitor_rows
        ))
        .await;
        report_to.progress(progress::IMPORTED).await;

        // 5. The app's cache.
        if let Some(cache) = &self.cache {
            match cache.run().await {
                Ok(n) => {
                    report_to
                        .log(format!("cleared {n} cached query result(s)"))
                        .await
                }
                Err(e) => {
                    report_to
                        .log(format!("could not clear cached query results: {e}"))
                        .await
                }
            }
        }
        report_to.progress(100).await;

        let files = stored
            .iter()
            .map(|(file_type, s)| {
                let used = report.files.iter().find(|c| c.file_name == s.file_name);
                let rows = match used {
                    None => 0,
                    Some(c) if c.file_type == FileType::Rd5000 => report.typed.records,
                    Some(c) => report
                        .tables
                        .get(&c.file_type)
                        .map(|t| t.lines)
                        .unwrap_or(0),
                };
                FileSummary {
                    name: s.file_name.clone(),
                    file_type: file_type.clone(),
                    rows,
                    sha256: s.sha256.clone(),
                }
            })
            .collect();
        Ok(DaySummary {
            branch: day.branch.as_str().to_string(),
            pos: day.pos.get(),
            date: day.date.to_string(),
            files,
            rows: RowCounts {
                parsed: report.typed.records + report.typed.monitor_rows,
                imported: written,
                rejected: report.typed.rejected_total(),
                date_mismatch: report.typed.monitor_rows,
            },
            note: None,
            source,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn combine_and_import(
        &self,
        day: &Day,
        stored: &[(String, StoredFile)],
        scratch: &std::path::Path,
        report_to: &Reporter<'_>,
        source: Source,
    ) -> Result<(GroupReport, u64, u64), ProcessError> {
        let mut files = Vec::with_capacity(stored.len());
        // Files read back from storage are checked against their recorded hash; files this
        // attempt just downloaded were hashed as they were stored.
        let verify = source == Source::Storage;
        for (_, s) in stored {
            let p = self
                .materialize
                .local_path(s, scratch, verify)
                .await
                .map_err(|e| {
                    let transient = e.is_transient();
                    ProcessError::caused_by(format!("reading {} back", s.file_name), e, transient)
                })?;
            // A name the legacy combiner could not read (an unknown type) is left out of the
            // day, as combining by paths always left it out.
            if let Ok(name) = ExportName::parse(&s.file_name, LEGACY_NAMES) {
                files.push(DayFile {
                    path: p,
                    file_name: s.file_name.clone(),
                    name,
                });
            }
        }
        let import_started = Instant::now();
        let mut import = match self.importer.begin(day, &report_to.job.id).await {
            Ok(import) => import,
            Err(e) => return Err(self.import_failure(e, day, report_to).await),
        };
        if import.fence() > 1 {
            report_to
                .log(format!(
                    "importing {} as import #{} of the day",
                    day.record_id(),
                    import.fence()
                ))
                .await;
        }
        let (tx, mut rx) = mpsc::channel::<Vec<Transaction>>(2);
        let options = CombineOptions {
            new_branches: self.new_branches.clone(),
            ..CombineOptions::default()
        };
        let batch_size = self.batch_size.max(1);
        let metrics = self.metrics.clone();
        // The combine runs on a blocking thread: its span is made here, under the job's.
        let combine_span = tracing::info_span!("combine", files = files.len() as i64);
        let combine = tokio::task::spawn_blocking(move || {
            let _in_span = combine_span.enter();
            let combine_started = Instant::now();
            let mut sink = BatchSink {
                tx,
                batch: Vec::with_capacity(batch_size),
                size: batch_size,
            };
            let report = combine_day(files, &options, &mut sink);
            let rest = std::mem::take(&mut sink.batch);
            if !rest.is_empty() {
                let _ = sink.tx.blocking_send(rest);
            }
            if let Some(m) = &metrics {
                m.observe_step(Step::Combine, combine_started.elapsed());
            }
            report
        });
        let mut batches = 0u32;
        let mut write_error = None;
        while let Some(batch) = rx.recv().await {
            if write_error.is_some() {
                continue;
            }
            // Signed: the OTel layer exports unsigned integers as text.
            let batch_span = tracing::info_span!(
                "import batch",
                batch = i64::from(batches) + 1,
                rows = batch.len() as i64
            );
            if let Err(e) = import.write(&batch).instrument(batch_span).await {
                write_error = Some(e);
                continue;
            }
            batches += 1;
            let pct = (progress::COMBINING + 5 * batches).min(progress::IMPORTED - 1);
            report_to.progress(pct).await;
        }
        let report = match combine.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let transient = e.is_transient();
                return Err(ProcessError::caused_by("combine failed", e, transient));
            }
            Err(e) => return Err(ProcessError::caused_by("combine task failed", e, true)),
        };
        if let Some(e) = write_error {
            return Err(self.import_failure(e, day, report_to).await);
        }
        let group = report
            .ok_or_else(|| ProcessError::permanent("no export files of this day could be read"))?;
        report_to
            .log(format!(
                "combined {} row(s) in {batches} batch(es)",
                group.rows
            ))
            .await;
        let finished = import.finish().await;
        self.timed(Step::Import, import_started);
        let (written, removed) = match finished {
            Ok(done) => done,
            Err(e) => return Err(self.import_failure(e, day, report_to).await),
        };
        Ok((group, written, removed))
    }

    /// Turns an import error into the attempt's outcome. Another job importing the day (or
    /// having just overtaken this import) makes the job wait in `delayed` until that job's
    /// lease runs out, without using an attempt; anything else fails the attempt.
    async fn import_failure(
        &self,
        e: ImportError,
        day: &Day,
        report_to: &Reporter<'_>,
    ) -> ProcessError {
        let job = report_to.job;
        let busy = match e {
            ImportError::Busy { .. } => e,
            ImportError::Fenced { .. } => {
                report_to
                    .log(format!("{e}; checking who holds the day"))
                    .await;
                match self.importer.check_free(day, &job.id).await {
                    Err(busy @ ImportError::Busy { .. }) => busy,
                    _ => return import_error(e),
                }
            }
            other => return import_error(other),
        };
        let ImportError::Busy { until_ms, .. } = &busy else {
            return import_error(busy);
        };
        // Wake a little after the lease's end (its holder may renew it; then we wait again).
        let until = u64::try_from(*until_ms).unwrap_or(0) + 250;
        // The worker appends the reason to the job's log when it parks the job.
        let reason = format!("waiting: {busy}");
        tracing::info!(job_id = %job.id, "{reason}");
        wait_until(until, reason)
    }

    async fn monitor(&self, day: &Day, note: &str) {
        match self.importer.monitor(day, note).await {
            Ok(()) => {
                if let Some(m) = &self.metrics {
                    m.monitor_entry();
                }
            }
            Err(e) => tracing::warn!(error.message = %e, "could not write a monitor entry"),
        }
    }

    /// Times `step`, begun at `since`, when metrics are exported.
    fn timed(&self, step: Step, since: Instant) {
        if let Some(m) = &self.metrics {
            m.observe_step(step, since.elapsed());
        }
    }
}

/// Log lines and progress of one job, also written to the worker's own log with the job's
/// fields.
struct Reporter<'a> {
    job: &'a JobContext,
    day: &'a Day,
}

impl Reporter<'_> {
    async fn log(&self, line: String) {
        let d = self.day;
        tracing::info!(job_id = %self.job.id, branch = %d.branch, pos = %d.pos, date = %d.date, "{line}");
        if let Err(e) = self.job.handle.log(&line).await {
            tracing::warn!(error.message = %e, "could not add a job log line");
        }
    }

    async fn progress(&self, pct: u32) {
        if let Err(e) = self.job.handle.progress(&json!(pct)).await {
            tracing::warn!(error.message = %e, "could not update progress");
        }
    }
}

/// A failed list or download: retried when the POS server may answer next time.
fn fetch_error(context: impl Into<String>, e: FetchError) -> ProcessError {
    let transient = e.is_transient();
    ProcessError::caused_by(context, e, transient)
}

/// A failed import, keeping the driver's error as its cause, so `failedReason` says what
/// MongoDB said, not only what we tried.
fn import_error(e: ImportError) -> ProcessError {
    let transient = e.is_transient();
    ProcessError::caused_by("import failed", e, transient)
}

/// The job waits in `delayed` until `until_ms`, without using an attempt.
fn wait_until(until_ms: u64, reason: String) -> ProcessError {
    ProcessError::delayed(until_ms, reason)
}

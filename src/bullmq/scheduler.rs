//! Job schedulers (`Queue.upsertJobScheduler`) and BullMQ 5's repeatable jobs
//! (`queue.add(name, data, {repeat})`): when a worker claims an iteration, it adds the next one
//! before the processor runs, as a Node worker does. Otherwise a schedule runs once.
//!
//! Both majors store a schedule the same way: the `repeat` sorted set scores each scheduler
//! with its latest iteration's time, `repeat:<id>` holds its definition, and iterations are
//! jobs `repeat:<id>:<ms>` whose `rjk` names the scheduler. BullMQ 5.x's `add` with `repeat`
//! writes the same layout under an md5 id (or its `repeat.key`), and its own worker continues
//! it through the scheduler path, so we do too. Only keys of the old `name:id:endDate:tz:every`
//! form with no scheduler behind them (older releases, or a custom `repeat.key` of five or
//! more parts) are not continued: a 5.x worker has separate legacy code for them, BullMQ 6
//! refuses them as we do.
//!
//! Who computes what, as in Node: this module decides whether a next iteration is due at all
//! (`limit`, `endDate`) and evaluates `pattern` (cron) schedules with their time zone; the
//! script (`lua/updateJobScheduler-12.lua`) computes `every` schedules and adds the job.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use redis::aio::ConnectionLike;

use super::error::Error;
use super::job::{Job, RepeatOptions};
use super::keys::QueueKeys;
use super::options::Compat;
use super::scripts::update_job_scheduler::UpdateJobScheduler;

/// Why the next iteration of a schedule cannot be planned. Node's worker reports these as
/// `Failed to add repeatable job for next iteration: …`, and so do we (in the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The job's `repeat` has both `pattern` and `every`.
    #[error("Both .pattern and .every options are defined for this repeatable job")]
    BothPatternAndEvery,
    /// The job's `repeat` has neither.
    #[error("Either .pattern or .every options must be defined for this repeatable job")]
    NoPatternNorEvery,
    /// `pattern` is not a cron expression.
    #[error("invalid cron pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as stored.
        pattern: String,
        /// What the parser said.
        reason: String,
    },
    /// `tz` is not an IANA time zone name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// A key of the legacy repeatable shape with no scheduler behind it.
    #[error(
        "legacy repeatable job key {0:?} (name:id:endDate:tz:every) is not supported; \
         re-create it as a job scheduler (upsertJobScheduler)"
    )]
    LegacyKey(String),
}

/// What the script needs to add the next iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The next run of a `pattern` schedule (ms); `None` for `every`.
    pub pattern_next_ms: Option<u64>,
    /// The next iteration's number.
    pub count: u64,
}

/// Decides whether the iteration after one with options `repeat` (scheduled for
/// `prev_millis`) is due, and when, as Node's `JobScheduler.upsertJobScheduler` does for a
/// claimed job.
///
/// # Returns
///
/// `None` when the schedule is over: `limit` iterations made, `endDate` passed, or a pattern
/// with no later match before `endDate`.
///
/// # Errors
///
/// A bad schedule ([`ScheduleError`]).
pub fn plan(
    repeat: &RepeatOptions,
    prev_millis: Option<u64>,
    now_ms: u64,
) -> Result<Option<Plan>, ScheduleError> {
    match (&repeat.pattern, repeat.every) {
        (Some(_), Some(_)) => return Err(ScheduleError::BothPatternAndEvery),
        (None, None) => return Err(ScheduleError::NoPatternNorEvery),
        _ => {}
    }
    let count = repeat.count + 1;
    if repeat.limit.is_some_and(|limit| count > limit) {
        return Ok(None);
    }
    if repeat.end_date.is_some_and(|end| now_ms as i64 > end) {
        return Ok(None);
    }
    let from = now_ms.max(prev_millis.unwrap_or(0));
    let Some(pattern) = &repeat.pattern else {
        return Ok(Some(Plan {
            pattern_next_ms: None,
            count,
        }));
    };
    let next = next_cron_ms(pattern, repeat, from)?;
    Ok(next.map(|at| Plan {
        pattern_next_ms: Some(at.max(from)),
        count,
    }))
}

/// The first time strictly after `from_ms` (not before `startDate`) that `pattern` matches,
/// in the schedule's time zone, as cron-parser computes it for Node: an optional seconds field
/// (five fields mean second 0), day-of-month and day-of-week matched with OR when both are
/// restricted, `L`, `#` and names.
///
/// The zone is `tz` (IANA), or UTC with `utc` or without `tz`. Node evaluates a pattern
/// without `tz` in its process's local zone; servers here run in UTC, so give schedulers a
/// `tz` when local time matters.
///
/// # Returns
///
/// `None` when no match comes before `endDate` (or ever).
///
/// # Errors
///
/// A pattern that does not parse, or an unknown `tz`.
pub fn next_cron_ms(
    pattern: &str,
    repeat: &RepeatOptions,
    from_ms: u64,
) -> Result<Option<u64>, ScheduleError> {
    let cron = parse_pattern(pattern)?;
    let reference = repeat
        .start_date
        .map_or(from_ms as i64, |start| start.max(from_ms as i64));
    let next = match (&repeat.tz, repeat.utc) {
        (Some(tz), false) => {
            let zone = Tz::from_str(tz).map_err(|_| ScheduleError::TimeZone(tz.clone()))?;
            next_in(&cron, &zone, reference)
        }
        _ => next_in(&cron, &Utc, reference),
    };
    Ok(next
        .filter(|at| repeat.end_date.is_none_or(|end| *at <= end) && *at >= 0)
        .map(|at| at as u64))
}

fn parse_pattern(pattern: &str) -> Result<Cron, ScheduleError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .sloppy_ranges(true)
        .build()
        .parse(pattern)
        .map_err(|e| ScheduleError::Pattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

fn next_in<Z: TimeZone>(cron: &Cron, zone: &Z, after_ms: i64) -> Option<i64> {
    let start: DateTime<Z> = zone.timestamp_millis_opt(after_ms).single()?;
    cron.find_next_occurrence(&start, false)
        .ok()
        .map(|at| at.timestamp_millis())
}

/// Whether `key` has the shape of a BullMQ 5 legacy repeatable key (five or more
/// `:`-separated parts: `name:id:endDate:tz:every|pattern`). Such a key is a scheduler only
/// when its hash has an iteration count, which only schedulers write.
fn has_legacy_shape(key: &str) -> bool {
    key.split(':').count() >= 5
}

/// How often a transient Redis failure is retried while scheduling: 100 ms, doubling, 3
/// tries. The claimed job runs either way; a schedule whose next iteration could not be added
/// stops, as in Node after its retries.
const TRIES: u32 = 3;

/// Adds the next iteration of the schedule that produced `job`, if it has one and one is due.
/// Failures are logged (Node's `Failed to add repeatable job for next iteration: …`), never
/// returned: the claimed job runs regardless.
pub async fn schedule_next<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job: &Job,
    compat: Compat,
    now_ms: impl Fn() -> u64,
) {
    let Some(scheduler_id) = job.repeat_job_key.as_deref() else {
        return;
    };
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=TRIES {
        match try_schedule(con, keys, job, scheduler_id, compat, now_ms()).await {
            Ok(Some(next)) => {
                tracing::debug!(job_id = %job.id, next = %next, "next iteration scheduled");
                return;
            }
            Ok(None) => return,
            Err(Failure::Redis(e)) if e.is_transient() && attempt < TRIES => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(job_id = %job.id, scheduler = scheduler_id,
                    error.message = %format!("Failed to add repeatable job for next iteration: {e}"),
                    "schedule not continued");
                return;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Redis(#[from] Error),
}

async fn try_schedule<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job: &Job,
    scheduler_id: &str,
    compat: Compat,
    now_ms: u64,
) -> Result<Option<String>, Failure> {
    if has_legacy_shape(scheduler_id) {
        let has_count: bool = redis::cmd("HEXISTS")
            .arg(format!("{}:{scheduler_id}", keys.repeat))
            .arg("ic")
            .query_async(con)
            .await
            .map_err(Error::from)?;
        if !has_count {
            return Err(ScheduleError::LegacyKey(scheduler_id.to_string()).into());
        }
    }
    let repeat = job.opts.repeat.clone().unwrap_or_default();
    let Some(plan) = plan(&repeat, job.opts.prev_millis, now_ms)? else {
        return Ok(None);
    };
    let next = UpdateJobScheduler {
        now_ms,
        scheduler_id,
        producer_id: &job.id,
        pattern_next_ms: plan.pattern_next_ms,
        count: plan.count,
        compat,
    };
    Ok(next.call(con, keys).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' "now": 2026-11-29T17:00:00.250Z, in ms since the epoch as
    /// [`next_cron_ms`] takes it.
    const T0: u64 = 1_795_971_600_250;

    fn cron(pattern: &str) -> RepeatOptions {
        RepeatOptions {
            pattern: Some(pattern.to_string()),
            ..RepeatOptions::default()
        }
    }

    fn iso(ms: u64) -> String {
        Utc.timestamp_millis_opt(ms as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    // Expected values were computed with Node's cron-parser (4.9, BullMQ 5; 5.10, BullMQ 6
    // agrees) from the same reference time: `parseExpression(p, {currentDate, tz}).next()`.
    #[test]
    fn seconds_field_and_five_field_patterns_match_cron_parser() {
        let next = |p: &str| iso(next_cron_ms(p, &cron(p), T0).unwrap().unwrap());
        assert_eq!(next("*/1 * * * * *"), "2026-11-29T17:00:01.000Z");
        assert_eq!(next("*/5 * * * * *"), "2026-11-29T17:00:05.000Z");
        assert_eq!(next("* * * * *"), "2026-11-29T17:01:00.000Z");
        assert_eq!(next("0 3 * * *"), "2026-11-30T03:00:00.000Z");
        assert_eq!(next("30 2 1 * *"), "2026-12-01T02:30:00.000Z");
        assert_eq!(next("0 0 * * MON"), "2026-11-30T00:00:00.000Z");
        // Day of month OR day of week when both are restricted (vixie cron, cron-parser).
        assert_eq!(next("0 0 15 * FRI"), "2026-12-04T00:00:00.000Z");
        assert_eq!(next("0/20 * * * * *"), "2026-11-29T17:00:20.000Z");
    }

    #[test]
    fn a_time_zone_moves_the_match() {
        let mut r = cron("0 6 * * *");
        r.tz = Some("Asia/Manila".into());
        let at = next_cron_ms("0 6 * * *", &r, T0).unwrap().unwrap();
        // 06:00 in Manila (UTC+8) is 22:00 UTC the day before.
        assert_eq!(iso(at), "2026-11-29T22:00:00.000Z");
        r.tz = Some("Mars/Olympus".into());
        assert_eq!(
            next_cron_ms("0 6 * * *", &r, T0),
            Err(ScheduleError::TimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn start_and_end_dates_bound_the_pattern() {
        let mut r = cron("0 * * * *");
        r.start_date = Some(T0 as i64 + 3 * 3_600_000);
        assert_eq!(
            iso(next_cron_ms("0 * * * *", &r, T0).unwrap().unwrap()),
            "2026-11-29T21:00:00.000Z"
        );
        r.start_date = None;
        r.end_date = Some(T0 as i64 + 1_000);
        assert_eq!(next_cron_ms("0 * * * *", &r, T0), Ok(None));
    }

    #[test]
    fn bad_patterns_are_errors_not_panics() {
        for p in ["", "nope", "61 * * * *", "* * * * * * * *"] {
            assert!(
                matches!(
                    next_cron_ms(p, &cron(p), T0),
                    Err(ScheduleError::Pattern { .. })
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn limit_and_end_date_stop_the_schedule() {
        let every = RepeatOptions {
            every: Some(400),
            count: 3,
            limit: Some(3),
            ..RepeatOptions::default()
        };
        assert_eq!(plan(&every, None, T0), Ok(None));
        let more = RepeatOptions {
            limit: Some(4),
            ..every.clone()
        };
        assert_eq!(
            plan(&more, None, T0),
            Ok(Some(Plan {
                pattern_next_ms: None,
                count: 4
            }))
        );
        let ended = RepeatOptions {
            end_date: Some(T0 as i64 - 1),
            limit: None,
            ..every
        };
        assert_eq!(plan(&ended, None, T0), Ok(None));
    }

    #[test]
    fn a_pattern_plans_from_the_later_of_now_and_the_iteration_time() {
        let r = cron("*/1 * * * * *");
        let late = T0 + 5_000;
        let p = plan(&r, Some(late), T0).unwrap().unwrap();
        assert_eq!(p.pattern_next_ms, Some(1_795_971_606_000));
        assert_eq!(p.count, 1);
    }

    #[test]
    fn schedules_need_exactly_one_of_pattern_and_every() {
        let both = RepeatOptions {
            every: Some(1),
            ..cron("* * * * *")
        };
        assert_eq!(
            plan(&both, None, T0),
            Err(ScheduleError::BothPatternAndEvery)
        );
        assert_eq!(
            plan(&RepeatOptions::default(), None, T0),
            Err(ScheduleError::NoPatternNorEvery)
        );
    }

    #[test]
    fn legacy_key_shape_is_five_parts() {
        assert!(has_legacy_shape("rep::1795971600000:Europe/Paris:5000"));
        assert!(!has_legacy_shape("6fc526f8dde16fc6589ffd3afbcd6a14"));
        assert!(!has_legacy_shape("nightly:fetch"));
    }
}

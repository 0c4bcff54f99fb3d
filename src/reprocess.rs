//! `fetch-worker reprocess`: enqueues `fetch-job {branch, pos, date, reprocess: true}` for a
//! range of days, the jobs the handler answers by combining and importing each day again from
//! its stored raw files. Beside the handler, the one place that names both a BullMQ job and a
//! POS day.
//!
//! Job ids are `reprocess.<branch>.<pos>.<date>.<ms>` (the command's start): not the day's
//! fetch id (`day.<branch>.<pos>.<date>`, which the producer reuses and a finished fetch keeps
//! for its retention, so adding under it would do nothing), and distinct per request, so each
//! request is a job of its own. Two reprocesses of one day are harmless: the fenced import runs
//! them one at a time. The options are the producer's (3 attempts, exponential backoff from
//! 1 s, its retention).

use chrono::NaiveDate;
use serde_json::json;

use crate::bullmq::scripts::add_standard_job::AddStandardJob;
use crate::bullmq::{Compat, Error, QueueKeys};
use crate::pipeline::day::{Branch, BusinessDate, PosNo};

/// The most days one command enqueues (a year, leap day included), as `POST /missing` allows.
pub const MAX_DAYS: usize = 366;

/// The job name the handler serves.
pub const JOB_NAME: &str = "fetch-job";

/// The job id of one reprocess of a day requested at `ms`.
pub fn job_id(branch: &Branch, pos: PosNo, date: BusinessDate, ms: u64) -> String {
    format!("reprocess.{branch}.{pos}.{date}.{ms}")
}

/// Every day from `from` to `to`, both included.
///
/// # Errors
///
/// A message when `to` is before `from` or the range is longer than [`MAX_DAYS`].
pub fn days(from: BusinessDate, to: BusinessDate) -> Result<Vec<BusinessDate>, String> {
    let naive = |d: BusinessDate| {
        NaiveDate::from_ymd_opt(
            i32::from(d.year()),
            u32::from(d.month()),
            u32::from(d.day()),
        )
    };
    let (Some(first), Some(last)) = (naive(from), naive(to)) else {
        return Err(format!("{from} or {to} is not a calendar day"));
    };
    if last < first {
        return Err(format!("--to {to} is before --from {from}"));
    }
    let count = (last - first).num_days() + 1;
    if count > MAX_DAYS as i64 {
        return Err(format!(
            "{count} days from {from} to {to}; at most {MAX_DAYS} per command"
        ));
    }
    first
        .iter_days()
        .take(count as usize)
        .map(|d| BusinessDate::parse(&d.to_string()).map_err(|e| e.to_string()))
        .collect()
}

/// Adds one reprocess job per day to the queue of `keys`, at the back, following `compat`'s
/// pause rule.
///
/// # Returns
///
/// The ids added (an id that already names a job is left out: nothing is added twice).
///
/// # Errors
///
/// Redis errors (jobs added before the error stay).
pub async fn enqueue<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    branch: &Branch,
    pos: PosNo,
    days: &[BusinessDate],
    compat: Compat,
    now_ms: u64,
) -> Result<Vec<String>, Error> {
    let retention = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let mut added = Vec::with_capacity(days.len());
    for &date in days {
        let id = job_id(branch, pos, date, now_ms);
        let data = json!({"branch": branch.as_str(), "pos": pos.get(), "date": date.to_string(), "reprocess": true});
        let opts = json!({
            "jobId": id,
            "attempts": 3,
            "backoff": {"type": "exponential", "delay": 1000},
            "removeOnComplete": retention(crate::config::DEFAULT_REMOVE_ON_COMPLETE),
            "removeOnFail": retention(crate::config::DEFAULT_REMOVE_ON_FAIL),
        });
        let (data, opts) = (data.to_string(), opts.to_string());
        let job = AddStandardJob {
            id: &id,
            name: JOB_NAME,
            data_json: &data,
            opts_json: &opts,
            timestamp_ms: now_ms,
            compat,
        };
        let fresh = job.call(con, keys).await?;
        if fresh {
            added.push(id);
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> BusinessDate {
        BusinessDate::parse(s).unwrap()
    }

    #[test]
    fn ranges_include_both_ends_and_are_bounded() {
        let d = days(date("2024-02-28"), date("2024-03-01")).unwrap();
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["2024-02-28", "2024-02-29", "2024-03-01"]);
        assert_eq!(
            days(date("2026-02-09"), date("2026-02-09")).unwrap().len(),
            1
        );
        assert!(
            days(date("2026-02-10"), date("2026-02-09"))
                .unwrap_err()
                .contains("before")
        );
        assert_eq!(
            days(date("2024-01-01"), date("2024-12-31")).unwrap().len(),
            366
        );
        assert!(
            days(date("2025-01-01"), date("2026-01-02"))
                .unwrap_err()
                .contains("at most 366")
        );
    }

    #[test]
    fn ids_are_not_the_fetch_ids() {
        let id = job_id(
            &Branch::parse("AYALA-FRN").unwrap(),
            PosNo::parse("2").unwrap(),
            date("2026-02-09"),
            1_790_000_000_000,
        );
        assert_eq!(id, "reprocess.AYALA-FRN.2.2026-02-09.1790000000000");
    }
}

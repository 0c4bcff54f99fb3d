//! A claimed job, decoded leniently from its hash, and the options that steer its retries.
//!
//! `opts` is written by Node's `JSON.stringify` or re-encoded by Lua `cjson` (any key order,
//! numbers possibly in exponent form, `{}` for empty arrays), so everything is read from a
//! `serde_json::Value` and unknown keys are ignored, never rejected.

use serde_json::Value;

use super::options::KeepJobs;

/// How many fields a claim returns for each job (`lua/includes/claimJobs.lua`).
pub(crate) const CLAIM_FIELDS: usize = 14;

/// A job this worker holds the lock of.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job id.
    pub id: String,
    /// The job name (`fetch-job`).
    pub name: String,
    /// The payload, parsed; `Value::Null` when it was not JSON (see [`Job::data_error`]).
    pub data: Value,
    /// Set when `data` was present but not valid JSON: such a job fails at once.
    pub data_error: Option<String>,
    /// The options that matter to this worker.
    pub opts: JobOptions,
    /// Creation time (ms).
    pub timestamp: i64,
    /// Attempts ended before this one (`atm`, or the legacy `attemptsMade`).
    pub attempts_made: u32,
    /// Times the job was moved to active, this claim included (`ats`).
    pub attempts_started: u32,
    /// Times the job stalled (`stc`).
    pub stalled_counter: u32,
    /// A deferred failure (`defa`): the job must fail with this reason without running.
    pub deferred_failure: Option<String>,
    /// Stack traces of earlier failed attempts.
    pub stacktrace: Vec<String>,
    /// `rjk`: the job scheduler (or v5 repeatable job) that produced this job, whose next
    /// iteration the worker schedules when it claims the job.
    pub repeat_job_key: Option<String>,
    /// `deid`: the deduplication id the job was added with. Set at add time and never changed,
    /// so the finish passes it on instead of reading the hash again.
    pub dedup_id: Option<String>,
    /// The claim saw `parentKey` or `parent`: the job is a flow's child, whose finish must tell
    /// its parent (the finish reads those fields again, as they may be dropped meanwhile).
    pub has_parent: bool,
}

impl Job {
    /// Decodes the claim reply's field list for job `id`.
    pub(crate) fn from_claim(id: String, fields: Vec<Option<String>>) -> Job {
        let mut it = fields.into_iter().chain(std::iter::repeat(None));
        let mut next = || it.next().flatten();
        let name = next().unwrap_or_default();
        let raw_data = next();
        let raw_opts = next();
        let timestamp = next().and_then(|t| parse_number(&t)).unwrap_or(0.0) as i64;
        let atm = next();
        let legacy_atm = next();
        let ats = next();
        let stc = next();
        let defa = next();
        let stack = next();
        let rjk = next();
        let deid = next();
        let parent_key = next();
        let parent = next();

        let (data, data_error) = match raw_data.as_deref() {
            None | Some("") => (Value::Object(Default::default()), None),
            Some(text) => match serde_json::from_str(text) {
                Ok(v) => (v, None),
                Err(e) => (Value::Null, Some(format!("job data is not JSON: {e}"))),
            },
        };
        let opts = raw_opts
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .map(|v| JobOptions::from_value(&v))
            .unwrap_or_default();
        let count = |v: Option<String>| v.and_then(|t| parse_number(&t)).unwrap_or(0.0) as u32;
        let stacktrace = stack
            .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
            .unwrap_or_default();
        Job {
            id,
            name,
            data,
            data_error,
            opts,
            timestamp,
            attempts_made: count(legacy_atm.or(atm)),
            attempts_started: count(ats),
            stalled_counter: count(stc),
            deferred_failure: defa.filter(|d| !d.is_empty()),
            stacktrace,
            repeat_job_key: rjk.filter(|k| !k.is_empty()),
            dedup_id: deid.filter(|d| !d.is_empty()),
            has_parent: parent_key.is_some() || parent.is_some(),
        }
    }
}

/// Reads a number the way JavaScript would accept it from cjson output (`3`, `3.0`, `1e+15`).
fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// The backoff strategy of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// Always `delay` ms.
    Fixed {
        /// The pause before each retry (ms), as the job's `backoff.delay` says.
        delay: u64,
        /// 0..=1: how much of the delay is randomised.
        jitter: f64,
    },
    /// `2^(n-1) * delay` ms for the n-th retry.
    Exponential {
        /// The first retry's pause (ms); each later one doubles it.
        delay: u64,
        /// 0..=1: how much of the delay is randomised, so a burst of failures does not retry
        /// in lockstep.
        jitter: f64,
    },
    /// A type this worker has no strategy for (Node would need a custom `backoffStrategy`).
    Unknown(String),
}

impl Backoff {
    /// The strategy's name, as the job's `backoff.type` says it.
    pub fn kind(&self) -> &str {
        match self {
            Backoff::Fixed { .. } => "fixed",
            Backoff::Exponential { .. } => "exponential",
            Backoff::Unknown(kind) => kind,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry), in ms.
    ///
    /// # Returns
    ///
    /// `None` for an unknown strategy.
    pub fn delay_ms(&self, retry: u32) -> Option<u64> {
        let (base, jitter) = match self {
            Backoff::Fixed { delay, jitter } => (*delay as f64, *jitter),
            Backoff::Exponential { delay, jitter } => {
                let factor = 2f64.powi(retry.saturating_sub(1).min(1000) as i32);
                ((factor * *delay as f64).round(), *jitter)
            }
            Backoff::Unknown(_) => return None,
        };
        let value = if jitter > 0.0 {
            let j = jitter.min(1.0);
            (fastrand::f64() * base * j + base * (1.0 - j)).floor()
        } else {
            base
        };
        Some(value.clamp(0.0, u64::MAX as f64) as u64)
    }
}

/// The job options this worker acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// `attempts` (0 when absent; 0 and 1 both mean "no retry").
    pub attempts: u32,
    /// `backoff`: how long a failed attempt waits before the next; `None` retries at once.
    pub backoff: Option<Backoff>,
    /// `lifo`: retried jobs go to the front.
    pub lifo: bool,
    /// `removeOnComplete`: the job's own retention once completed; `None` falls back to the
    /// worker's default.
    pub remove_on_complete: Option<KeepJobs>,
    /// `removeOnFail`: the same once failed for good.
    pub remove_on_fail: Option<KeepJobs>,
    /// `stackTraceLimit` (`None`: keep all; 0: keep none).
    pub stack_trace_limit: Option<usize>,
    /// `kl` (keepLogs): log lines beyond the newest this many are trimmed at each append.
    pub keep_logs: Option<u64>,
    /// `repeat`: the schedule this job is an iteration of.
    pub repeat: Option<RepeatOptions>,
    /// `prevMillis`: the scheduled time (ms) of this iteration, when the producer set it.
    pub prev_millis: Option<u64>,
    /// `tm`: the producer's trace context as BullMQ's telemetry stores it (a JSON text such
    /// as `{"traceparent":"00-…"}`), so the job's span continues the producer's trace.
    pub trace_context: Option<String>,
}

/// A job's `repeat` options as the producer stored them (the schedule, plus the iteration
/// count `count`). Dates are ms since the Unix epoch; an unparseable date is absent, as a
/// `NaN` date compares false in Node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepeatOptions {
    /// `every`: a fixed interval, ms.
    pub every: Option<u64>,
    /// `pattern` (or the legacy `cron`): a cron expression, optionally with seconds.
    pub pattern: Option<String>,
    /// `tz`: an IANA time zone for `pattern`.
    pub tz: Option<String>,
    /// `utc`: evaluate `pattern` in UTC (cron-parser's option).
    pub utc: bool,
    /// `startDate`: no iteration before it.
    pub start_date: Option<i64>,
    /// `endDate`: no iteration after it.
    pub end_date: Option<i64>,
    /// `limit`: the most iterations.
    pub limit: Option<u64>,
    /// `count`: this job's iteration number (1 for the first).
    pub count: u64,
    /// `immediately`: the first iteration runs at once.
    pub immediately: bool,
}

impl RepeatOptions {
    fn from_value(v: &Value) -> Option<RepeatOptions> {
        let map = v.as_object()?;
        let num = |key: &str| map.get(key).and_then(number);
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(RepeatOptions {
            every: num("every").filter(|n| *n > 0.0).map(|n| n as u64),
            pattern: text("pattern").or_else(|| text("cron")),
            tz: text("tz"),
            utc: map.get("utc").and_then(Value::as_bool).unwrap_or(false),
            start_date: map.get("startDate").and_then(date_ms),
            end_date: map.get("endDate").and_then(date_ms),
            limit: num("limit").map(|n| n.max(0.0) as u64),
            count: num("count").map(|n| n.max(0.0) as u64).unwrap_or(0),
            immediately: map.get("immediately").and_then(Value::as_bool) == Some(true),
        })
    }
}

/// A JSON number, or a string holding one.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// A date as JavaScript's `new Date(x).getTime()` reads the forms producers store: ms since
/// the epoch (a number or numeric string) or an RFC 3339 text.
fn date_ms(v: &Value) -> Option<i64> {
    if let Some(n) = number(v) {
        return Some(n as i64);
    }
    let text = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp_millis())
}

impl JobOptions {
    /// Reads the options from the stored `opts` JSON.
    pub fn from_value(v: &Value) -> JobOptions {
        let num = |key: &str| {
            v.get(key).and_then(|x| match x {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => parse_number(s),
                _ => None,
            })
        };
        JobOptions {
            attempts: num("attempts").map(|a| a.max(0.0) as u32).unwrap_or(0),
            backoff: v.get("backoff").and_then(parse_backoff),
            lifo: v.get("lifo").and_then(Value::as_bool).unwrap_or(false),
            remove_on_complete: v.get("removeOnComplete").and_then(KeepJobs::from_option),
            remove_on_fail: v.get("removeOnFail").and_then(KeepJobs::from_option),
            stack_trace_limit: num("stackTraceLimit").map(|n| n.max(0.0) as usize),
            keep_logs: num("kl").map(|n| n.max(0.0) as u64),
            repeat: v.get("repeat").and_then(RepeatOptions::from_value),
            prev_millis: num("prevMillis").filter(|n| *n >= 0.0).map(|n| n as u64),
            trace_context: v.get("tm").and_then(Value::as_str).map(str::to_string),
        }
    }
}

fn parse_backoff(v: &Value) -> Option<Backoff> {
    let as_ms = |x: &Value| match x {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    };
    match v {
        // A bare number is a fixed delay, as Node normalises it.
        Value::Number(_) | Value::String(_) => as_ms(v).map(|d| Backoff::Fixed {
            delay: d.max(0.0) as u64,
            jitter: 0.0,
        }),
        Value::Object(map) => {
            let delay = map.get("delay").and_then(as_ms).unwrap_or(0.0).max(0.0) as u64;
            let jitter = map
                .get("jitter")
                .and_then(as_ms)
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            match map.get("type").and_then(Value::as_str) {
                Some("fixed") => Some(Backoff::Fixed { delay, jitter }),
                Some("exponential") => Some(Backoff::Exponential { delay, jitter }),
                Some(other) => Some(Backoff::Unknown(other.to_string())),
                None => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(fields: &[Option<&str>]) -> Job {
        Job::from_claim(
            "7".into(),
            fields.iter().map(|f| f.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn reads_the_dedup_id_and_the_parent_from_the_claim() {
        let mut fields: Vec<Option<&str>> = vec![None; CLAIM_FIELDS];
        fields[11] = Some("d1");
        let j = claim(&fields);
        assert_eq!((j.dedup_id.as_deref(), j.has_parent), (Some("d1"), false));
        fields[11] = Some("");
        fields[13] = Some(r#"{"id":"p","queueKey":"bull:parents"}"#);
        let j = claim(&fields);
        assert_eq!((j.dedup_id, j.has_parent), (None, true));
        fields[12] = Some("bull:parents:p");
        fields[13] = None;
        assert!(claim(&fields).has_parent, "parentKey alone (BullMQ 4)");
        assert!(!claim(&[]).has_parent);
    }

    #[test]
    fn decodes_a_node_job() {
        let j = claim(&[
            Some("fetch-job"),
            Some(r#"{"branch":"BMC","pos":1,"date":"2026-02-09"}"#),
            Some(r#"{"attempts":3,"backoff":{"type":"exponential","delay":1000}}"#),
            Some("1700000000000"),
            Some("1"),
            None,
            Some("2"),
            None,
            None,
            Some(r#"["Error: x"]"#),
        ]);
        assert_eq!(j.name, "fetch-job");
        assert_eq!(j.data["branch"], "BMC");
        assert_eq!(j.opts.attempts, 3);
        assert_eq!(j.attempts_made, 1);
        assert_eq!(j.attempts_started, 2);
        assert_eq!(j.stacktrace, vec!["Error: x"]);
        assert!(j.deferred_failure.is_none() && j.data_error.is_none());
    }

    #[test]
    fn lenient_with_cjson_and_legacy_fields() {
        let j = claim(&[
            Some("n"),
            None,
            Some(r#"{"attempts":3.0,"backoff":2000,"removeOnComplete":{},"x":1}"#),
            Some("1.7e12"),
            Some("5"),
            Some("4"),
        ]);
        assert_eq!(j.opts.attempts, 3);
        assert_eq!(
            j.opts.backoff,
            Some(Backoff::Fixed {
                delay: 2000,
                jitter: 0.0
            })
        );
        assert_eq!(j.timestamp, 1_700_000_000_000);
        // The legacy `attemptsMade` field is read first, as Node does.
        assert_eq!(j.attempts_made, 4);
        assert_eq!(j.data, json!({}));
    }

    #[test]
    fn scheduler_iterations_carry_their_key_and_schedule() {
        let j = claim(&[
            Some("tick"),
            Some("{}"),
            Some(
                r#"{"repeat":{"cron":"*/5 * * * * *","tz":"Asia/Manila","count":3,"limit":10,
                    "startDate":1700000000000,"endDate":"2026-12-31T00:00:00Z"},
                    "prevMillis":1795971605000,"repeatJobKey":"nightly"}"#,
            ),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some("nightly"),
        ]);
        assert_eq!(j.repeat_job_key.as_deref(), Some("nightly"));
        assert_eq!(j.opts.prev_millis, Some(1_795_971_605_000));
        let r = j.opts.repeat.unwrap();
        assert_eq!(
            r.pattern.as_deref(),
            Some("*/5 * * * * *"),
            "legacy `cron` alias"
        );
        assert_eq!(r.tz.as_deref(), Some("Asia/Manila"));
        assert_eq!((r.count, r.limit, r.every), (3, Some(10), None));
        assert_eq!(r.start_date, Some(1_700_000_000_000));
        assert_eq!(
            r.end_date,
            Some(1_798_675_200_000),
            "an ISO date is read as JS would"
        );
        let plain = claim(&[Some("n"), None, Some("{}")]);
        assert!(plain.repeat_job_key.is_none() && plain.opts.repeat.is_none());
    }

    #[test]
    fn bad_data_is_reported_not_panicked() {
        let j = claim(&[Some("n"), Some("{oops")]);
        assert!(j.data_error.is_some());
    }

    #[test]
    fn exponential_backoff_doubles() {
        let b = Backoff::Exponential {
            delay: 1000,
            jitter: 0.0,
        };
        assert_eq!(
            [1, 2, 3].map(|n| b.delay_ms(n).unwrap()),
            [1000, 2000, 4000]
        );
        let f = Backoff::Fixed {
            delay: 300,
            jitter: 0.0,
        };
        assert_eq!(f.delay_ms(5), Some(300));
        assert_eq!(Backoff::Unknown("custom".into()).delay_ms(1), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::Exponential {
            delay: 1000,
            jitter: 0.5,
        };
        for _ in 0..200 {
            let d = b.delay_ms(2).unwrap();
            assert!((1000..=2000).contains(&d), "{d}");
        }
    }
}

//! A job's data read into a POS day: the JSON edge of the handler. Everything past here works
//! on typed values; a bad field fails the job at once with a reason that names it.

use serde_json::Value;

use crate::pipeline::day::{Branch, BusinessDate, Day, DayError, PosNo};

/// Why a job's data does not name a POS day (or carries a bad `reprocess` flag). Always
/// permanent: the same data fails the same way on every attempt. Quoted values are cut to a
/// short preview, so a huge payload is never echoed into `failedReason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobDataError {
    /// The data is not a JSON object.
    #[error("job data must be an object with branch, pos and date, got {got}")]
    NotObject {
        /// A preview of what came instead.
        got: String,
    },
    /// A field is absent.
    #[error("{field} is missing")]
    Missing {
        /// The field's name.
        field: &'static str,
    },
    /// A text field holds another JSON type.
    #[error("{field} must be a string, got {got}")]
    NotString {
        /// The field's name.
        field: &'static str,
        /// A preview of what came instead.
        got: String,
    },
    /// `pos` is neither 1 nor 2 (as a number or a numeric string).
    #[error("pos must be 1 or 2, got {got}")]
    BadPos {
        /// A preview of what came instead.
        got: String,
    },
    /// A value has the right type but breaks the day's rules (a bad branch code, a date that
    /// is not on the calendar).
    #[error(transparent)]
    Day(#[from] DayError),
    /// `reprocess` is not a boolean.
    #[error("reprocess must be true or false, got {got}")]
    Reprocess {
        /// A preview of what came instead.
        got: String,
    },
}

/// Reads `{branch, pos, date}`: branch letters, digits and `-`; pos 1 or 2 (number or
/// numeric string); date a real `YYYY-MM-DD`.
///
/// # Errors
///
/// [`JobDataError`] naming the bad field.
pub fn read_day(data: &Value) -> Result<Day, JobDataError> {
    let obj = data
        .as_object()
        .ok_or_else(|| JobDataError::NotObject { got: preview(data) })?;
    let text = |field: &'static str| match obj.get(field) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(JobDataError::NotString {
            field,
            got: preview(other),
        }),
        None => Err(JobDataError::Missing { field }),
    };
    let branch = Branch::parse(text("branch")?)?;
    let pos = match obj.get("pos") {
        Some(Value::Number(n)) => {
            let n = n
                .as_u64()
                .ok_or_else(|| JobDataError::BadPos { got: n.to_string() })?;
            PosNo::new(n)?
        }
        Some(Value::String(s)) => PosNo::parse(s.trim())?,
        Some(other) => {
            return Err(JobDataError::BadPos {
                got: preview(other),
            });
        }
        None => return Err(JobDataError::Missing { field: "pos" }),
    };
    if !(1..=2).contains(&pos.get()) {
        return Err(JobDataError::BadPos {
            got: pos.get().to_string(),
        });
    }
    let date = BusinessDate::parse(text("date")?)?;
    Ok(Day { branch, pos, date })
}

/// The most bytes of job data quoted in a failure or a log field: enough to recognise a value,
/// never an echo of a huge payload.
const PREVIEW_BYTES: usize = 120;

/// `value` as JSON, cut to [`PREVIEW_BYTES`].
fn preview(value: &Value) -> String {
    let text = value.to_string();
    crate::bullmq::processor::cap_text(&text, PREVIEW_BYTES).into_owned()
}

/// A job-data value as a span field: a string as itself (`BMC`, not `"BMC"`), anything else
/// as its JSON; capped like [`preview`].
pub(super) fn span_text(value: &Value) -> String {
    match value {
        Value::String(text) => crate::bullmq::processor::cap_text(text, PREVIEW_BYTES).into_owned(),
        other => preview(other),
    }
}

/// Reads the optional `reprocess` flag of job data: absent means a fetch.
///
/// # Errors
///
/// [`JobDataError::Reprocess`] when it is not a boolean.
pub fn reprocess_flag(data: &Value) -> Result<bool, JobDataError> {
    match data.get("reprocess") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(JobDataError::Reprocess {
            got: preview(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reprocess_flag_is_a_boolean_or_absent() {
        let day = json!({"branch": "BMC", "pos": 1, "date": "2026-02-09"});
        assert_eq!(reprocess_flag(&day), Ok(false));
        let mut data = day.clone();
        data["reprocess"] = json!(true);
        assert_eq!(reprocess_flag(&data), Ok(true));
        assert!(read_day(&data).is_ok(), "the day is read as before");
        data["reprocess"] = json!(false);
        assert_eq!(reprocess_flag(&data), Ok(false));
        for bad in [json!("yes"), json!(1), json!({"x": 1})] {
            data["reprocess"] = bad.clone();
            let err = reprocess_flag(&data).unwrap_err().to_string();
            assert!(
                err.contains("reprocess must be true or false"),
                "{bad}: {err}"
            );
        }
    }

    /// The `day` span shows `branch=BMC`, not `branch="\"BMC\""` (issue 13): strings are
    /// shown as themselves, anything else as JSON.
    #[test]
    fn span_fields_show_strings_bare() {
        assert_eq!(span_text(&json!("BMC")), "BMC");
        assert_eq!(span_text(&json!(1)), "1");
        assert_eq!(span_text(&json!({"x": 1})), r#"{"x":1}"#);
        assert!(span_text(&json!("x".repeat(1000))).ends_with("more bytes cut]"));
    }

    #[test]
    fn job_data_is_validated_with_readable_reasons() {
        let ok = read_day(&json!({"branch": "AYALA-FRN", "pos": 1, "date": "2026-02-09"})).unwrap();
        assert_eq!(ok.branch.as_str(), "AYALA-FRN");
        assert_eq!(
            read_day(&json!({"branch": "B", "pos": "2", "date": "2026-02-09"}))
                .unwrap()
                .pos
                .get(),
            2
        );
        for (data, needle) in [
            (json!({"pos": 1, "date": "2026-02-09"}), "branch is missing"),
            (
                json!({"branch": "A/B", "pos": 1, "date": "2026-02-09"}),
                "branch",
            ),
            (
                json!({"branch": "A_B", "pos": 1, "date": "2026-02-09"}),
                "branch",
            ),
            (
                json!({"branch": "A", "pos": 3, "date": "2026-02-09"}),
                "pos must be 1 or 2",
            ),
            (
                json!({"branch": "A", "pos": 0, "date": "2026-02-09"}),
                "POS",
            ),
            (
                json!({"branch": "A", "pos": 1.5, "date": "2026-02-09"}),
                "pos must be 1 or 2",
            ),
            (
                json!({"branch": "A", "pos": true, "date": "2026-02-09"}),
                "pos must be 1 or 2",
            ),
            (
                json!({"branch": "A", "pos": 1, "date": "2026-02-30"}),
                "date",
            ),
            (
                json!({"branch": "A", "pos": 1, "date": "09-02-2026"}),
                "date",
            ),
            (json!("BMC"), "must be an object"),
            (json!(["x".repeat(1 << 20)]), "more bytes cut"),
            (
                json!({"branch": "x".repeat(1 << 20), "pos": 1, "date": "2026-02-09"}),
                "longer than 32",
            ),
        ] {
            let err = read_day(&data).unwrap_err().to_string();
            assert!(err.contains(needle), "{data}: {err}");
            assert!(err.len() < 512, "job data echoed: {} bytes", err.len());
        }
    }
}

//! What a parent job (flows) can read about its children: their return values and the
//! failures it was told to tolerate. Read-only; the scripts that finish a child write them
//! (see `lua/includes/updateParentOnFinish.lua`).

use std::collections::BTreeMap;

use redis::aio::ConnectionLike;
use serde_json::Value;

use super::error::Error;
use super::keys::QueueKeys;

/// The return values of the job's completed children (Node's `job.getChildrenValues()`),
/// keyed by child job key (`P:Q:<childId>`, the child's own queue), each decoded from JSON.
/// Empty when the job has no completed child.
///
/// # Errors
///
/// Redis errors; [`Error::Decode`] when a stored value is not JSON (Node's call throws then
/// too).
pub async fn children_values<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
) -> Result<BTreeMap<String, Value>, Error> {
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.processed(job_id))
        .query_async(con)
        .await?;
    decode_values(job_id, raw)
}

/// The failures of children whose failure the job ignores (`ignoreDependencyOnFailure`) or
/// tolerates (`continueParentOnFailure`), keyed by child job key, the raw failure reason as
/// value (Node's `job.getIgnoredChildrenFailures()`).
///
/// # Errors
///
/// Redis errors.
pub async fn ignored_children_failures<C: ConnectionLike + Send>(
    con: &mut C,
    keys: &QueueKeys,
    job_id: &str,
) -> Result<BTreeMap<String, String>, Error> {
    Ok(redis::cmd("HGETALL")
        .arg(keys.failed_children(job_id))
        .query_async(con)
        .await?)
}

fn decode_values(
    job_id: &str,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, Error> {
    raw.into_iter()
        .map(|(child, text)| match serde_json::from_str(&text) {
            Ok(v) => Ok((child, v)),
            Err(e) => Err(Error::Decode {
                field: "processed",
                job_id: job_id.to_string(),
                reason: format!("value of child {child}: {e}"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_decoded_from_json_per_child() {
        let raw = BTreeMap::from([
            ("bull:q:2".to_string(), r#"{"slept":5}"#.to_string()),
            ("bull:other:3".to_string(), "null".to_string()),
        ]);
        let v = decode_values("1", raw).unwrap();
        assert_eq!(v["bull:q:2"], json!({"slept": 5}));
        assert_eq!(v["bull:other:3"], Value::Null);
    }

    #[test]
    fn a_value_that_is_not_json_names_the_child() {
        let raw = BTreeMap::from([("bull:q:2".to_string(), "{oops".to_string())]);
        let err = decode_values("1", raw).unwrap_err();
        assert!(err.to_string().contains("bull:q:2"), "{err}");
        assert!(matches!(
            err,
            Error::Decode {
                field: "processed",
                ..
            }
        ));
    }
}

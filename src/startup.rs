//! Waiting for the servers at start-up, and saying why in one line.
//!
//! A worker started beside its servers (a compose stack, a reboot) often comes up first. It
//! waits for them with backoff instead of exiting, and each try is one log line that names the
//! setting, the address (without credentials) and what went wrong, for example
//!
//! `MongoDB at mongodb://127.0.0.1:27017/biggs (MONGO_URI) is not reachable: connection
//! refused; trying again in 2 s`
//!
//! A problem that waiting cannot mend (bad credentials, a malformed connection string) ends
//! the start at once with a message that says what to check.

use std::future::Future;
use std::time::Duration;

use mongodb::error::ErrorKind;

use crate::secret::RedactedUrl;

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// What a failed try tells about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// It may answer later: try again.
    Transient(String),
    /// Waiting will not help: say what to check and stop.
    Permanent(String),
}

/// A MongoDB driver error in a few words, and whether waiting can mend it. The driver's own
/// text for an unreachable server is a whole topology dump: the cause is picked out of it.
pub fn describe_mongo(err: &mongodb::error::Error) -> Problem {
    let full = err.to_string();
    match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => Problem::Permanent(
            "authentication failed: check the user, the password and authSource in the URI".into(),
        ),
        ErrorKind::InvalidArgument { .. } => {
            Problem::Permanent("the connection string or one of its options is not valid".into())
        }
        ErrorKind::DnsResolve { .. } => {
            Problem::Transient("the host name does not resolve (yet)".into())
        }
        _ => Problem::Transient(network_cause(&full)),
    }
}

/// The cause of a network failure, from the driver's text.
fn network_cause(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let cause = if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "no answer in time"
    } else if lower.contains("connection reset") {
        "the connection was reset"
    } else if lower.contains("failed to lookup") || lower.contains("name or service not known") {
        "the host name does not resolve (yet)"
    } else if lower.contains("no route") || lower.contains("unreachable") {
        "the network cannot reach it"
    } else {
        "no server answered"
    };
    cause.to_string()
}

/// Runs `attempt` until it succeeds, pausing 1, 2, 4 … 30 s between tries and logging each
/// failure with `what` (for example `MongoDB at mongodb://h:27017/db (MONGO_URI)`). Returns
/// the first permanent problem as a message that names `what`.
///
/// # Errors
///
/// The message of a [`Problem::Permanent`].
pub async fn wait_for<T, E, F, Fut>(
    what: &str,
    mut attempt: F,
    describe: impl Fn(&E) -> Problem,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = Duration::from_secs(1);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => match describe(&err) {
                Problem::Permanent(reason) => return Err(format!("{what}: {reason}")),
                Problem::Transient(reason) => {
                    tracing::warn!(
                        "{what} is not reachable: {reason}; trying again in {} s",
                        pause.as_secs()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            },
        }
    }
}

/// How a server is named in start-up messages: `<server> at <redacted url> (<setting>)`.
pub fn server_label(server: &str, url: &RedactedUrl, setting: &str) -> String {
    format!("{server} at {url} ({})", crate::config::as_given(setting))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_causes_are_picked_out_of_the_topology_dump() {
        let dump = "Server selection timeout: No available servers. Topology: { Type: Unknown, \
                    Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: \
                    Connection refused (os error 111), labels: {} } ] }";
        assert_eq!(network_cause(dump), "connection refused");
        assert_eq!(network_cause("operation timed out"), "no answer in time");
        assert_eq!(network_cause("something else"), "no server answered");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_problems_are_retried_and_permanent_ones_end_the_wait() {
        let mut tries = 0;
        let got = wait_for(
            "X at y (Z)",
            || {
                tries += 1;
                let n = tries;
                async move { if n < 3 { Err("later") } else { Ok(n) } }
            },
            |e: &&str| Problem::Transient(e.to_string()),
        )
        .await;
        assert_eq!(got, Ok(3));

        let got: Result<(), String> = wait_for(
            "X at y (Z)",
            || async { Err("bad password") },
            |e: &&str| Problem::Permanent(e.to_string()),
        )
        .await;
        assert_eq!(got, Err("X at y (Z): bad password".to_string()));
    }
}

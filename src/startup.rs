//! Waiting for the servers at start-up, and saying why in one line.
//!
//! A worker started beside its servers (a compose stack, a reboot) often comes up first. It
//! waits for them with backoff instead of exiting, and each try is one log line that names the
//! setting, the address (without credentials) and what went wrong, for example
//!
//! `MongoDB at mongodb://127.0.0.1:27017/biggs (MONGO_URI) is not reachable: connection
//! refused; trying again in 2 s (waiting for MongoDB)`
//!
//! A problem that waiting cannot mend (bad credentials, a malformed connection string) ends
//! the start at once with a message that says what to check.

use std::future::Future;
use std::time::Duration;

use mongodb::error::ErrorKind;

pub use crate::backoff::Backoff;
use crate::secret::RedactedUrl;

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

/// Runs `attempt` until it succeeds, pausing as `backoff` says between tries and logging each
/// failure as one line: `<what> is not reachable: <reason>; trying again in <pause> (waiting
/// for <server>)`, where `what` is a [`server_label`] and `server` its first word.
///
/// # Errors
///
/// The first error that `describe` calls [`Problem::Permanent`], with that description.
pub async fn wait_for<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    mut attempt: F,
    describe: impl Fn(&E) -> Problem,
) -> Result<T, (E, String)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let server = what.split(' ').next().unwrap_or(what);
    let mut pauses = backoff.pauses();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => match describe(&err) {
                Problem::Permanent(reason) => return Err((err, reason)),
                Problem::Transient(reason) => {
                    let pause = pauses.next_pause();
                    tracing::warn!(
                        "{what} is not reachable: {reason}; trying again in {} (waiting for {server})",
                        shown(pause)
                    );
                    tokio::time::sleep(pause).await;
                }
            },
        }
    }
}

/// A pause as people say it: `400 ms`, `2 s`.
fn shown(pause: Duration) -> String {
    if pause.subsec_millis() == 0 {
        format!("{} s", pause.as_secs())
    } else {
        format!("{} ms", pause.as_millis())
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
            Backoff::SLOW,
            || {
                tries += 1;
                let n = tries;
                async move { if n < 3 { Err("later") } else { Ok(n) } }
            },
            |e: &&str| Problem::Transient(e.to_string()),
        )
        .await;
        assert_eq!(got, Ok(3));

        let got: Result<(), _> = wait_for(
            "X at y (Z)",
            Backoff::SLOW,
            || async { Err("bad password") },
            |e: &&str| Problem::Permanent(format!("refused: {e}")),
        )
        .await;
        assert_eq!(
            got,
            Err(("bad password", "refused: bad password".to_string()))
        );
        assert_eq!(shown(Duration::from_millis(400)), "400 ms");
        assert_eq!(shown(Duration::from_secs(2)), "2 s");
    }

    /// The pauses between tries, on the paused clock: 1, 2, 4, 8, 16, then 30 s (the cap) for
    /// as long as the server stays away; the first success ends the wait with no pause after
    /// it and no further try.
    #[tokio::test(start_paused = true)]
    async fn the_pauses_double_up_to_the_cap_and_a_success_ends_the_wait() {
        let start = tokio::time::Instant::now();
        let mut tries = Vec::new();
        let got = wait_for(
            "X at y (Z)",
            Backoff::SLOW,
            || {
                tries.push(start.elapsed());
                let n = tries.len();
                async move { if n < 8 { Err("later") } else { Ok(n) } }
            },
            |e: &&str| Problem::Transient(e.to_string()),
        )
        .await;
        assert_eq!(got, Ok(8));
        let gaps: Vec<_> = tries.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(91),
            "no pause after the success"
        );
    }
}

//! Start-up and configuration messages of the real binary: each names the setting as the user
//! gave it (flag or variable), says what is wrong once, and what is accepted. Configuration is
//! checked before any server is contacted, so these need none.

use std::process::{Command, Output};

fn run_worker(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fetch-worker"));
    cmd.arg("run").args(args).env_remove("REMOVE_ON_COMPLETE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Nothing reachable: a message that needed a server would show up as a hang or a
    // connection error instead of the configuration error.
    cmd.env("REDIS_JOB_URL", "redis://127.0.0.1:1/1")
        .env("REDIS_CACHE_URL", "redis://127.0.0.1:1/0")
        .env("MONGO_URI", "mongodb://127.0.0.1:1/x")
        .env("METRICS_ADDR", "")
        .output()
        .expect("running fetch-worker")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `REMOVE_ON_COMPLETE=maybe` answered `not JSON: expected value at line 1 column 1`; now the
/// message names the variable, quotes the value and lists the accepted forms.
#[test]
fn a_bad_retention_names_the_variable_and_the_accepted_forms() {
    let output = run_worker(&[], &[("REMOVE_ON_COMPLETE", "maybe")]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(err.contains("invalid REMOVE_ON_COMPLETE: `maybe`"), "{err}");
    assert!(err.contains("true") && err.contains("\"age\""), "{err}");
    assert!(!err.contains("line 1 column"), "no parser internals: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// The same mistake made with the flag is reported with the flag's name.
#[test]
fn a_bad_flag_is_named_as_a_flag() {
    let output = run_worker(&["--remove-on-complete", "maybe"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr_of(&output);
    assert!(
        err.contains("invalid --remove-on-complete: `maybe`"),
        "{err}"
    );

    let output = run_worker(&["--job-concurrency=0"], &[]);
    let err = stderr_of(&output);
    assert!(
        err.contains("invalid --job-concurrency: must be at least 1"),
        "{err}"
    );
    let output = run_worker(&[], &[("JOB_CONCURRENCY", "0")]);
    let err = stderr_of(&output);
    assert!(
        err.contains("invalid JOB_CONCURRENCY: must be at least 1"),
        "{err}"
    );
}

/// `MONGO_URI` unreachable: 30 s of silence, then a driver dump with `mongodb: mongodb:`. Now
/// the worker says where it connects, then one line per try with the address, the setting and
/// the cause, and keeps waiting (a stack whose MongoDB comes up later just works).
#[test]
fn an_unreachable_mongodb_is_waited_for_with_one_clear_line_per_try() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let redis = crate::support::RedisServer::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .arg("run")
        .env("REDIS_JOB_URL", redis.url(1))
        .env("REDIS_CACHE_URL", redis.url(0))
        .env("MONGO_URI", "mongodb://fw-user:s3cret-pw@127.0.0.1:1/biggs")
        .env("MONGO_SERVER_SELECTION_TIMEOUT_MS", "300")
        .env("METRICS_ADDR", "")
        .env("RUST_LOG", "fetch_worker=info")
        .env("LOG_FORMAT", "pretty")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fetch-worker");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while lines
        .iter()
        .filter(|l: &&String| l.contains("trying again"))
        .count()
        < 2
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(
        still_running,
        "the worker waits instead of exiting:\n{text}"
    );
    let label = "MongoDB at mongodb://***@127.0.0.1:1/biggs (MONGO_URI)";
    assert!(text.contains(&format!("connecting to {label}")), "{text}");
    let tries: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("trying again"))
        .collect();
    assert_eq!(tries.len(), 2, "{text}");
    for line in tries {
        assert!(
            line.contains(&format!(
                "{label} is not reachable: connection refused; trying again in"
            )),
            "{line}"
        );
    }
    assert!(
        !text.contains("s3cret-pw"),
        "no password in the log: {text}"
    );
    assert!(!text.contains("Topology"), "no driver dump: {text}");
}

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

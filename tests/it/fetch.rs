//! The fetch half of the pipeline against the in-process fake POS server (port 0): listing,
//! streamed downloads into local raw storage, and every injectable fault ending either in a
//! retry that succeeds or in a typed error that says whether the job may retry.
//!
//! The fake serves a temporary copy of `tests/fixtures/fetch/` (real exports of BETA and IRIGA,
//! POS 1, 2026-02-09); `tests/fixtures/fetch.sha256` is `sha256sum` of the originals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fetch_worker::fake_pos::{FakePos, Fault, FaultRule, Faults, Target};
use fetch_worker::pipeline::day::{Branch, BusinessDate, PosNo};
use fetch_worker::pipeline::fetch::{
    FetchError, FetchOptions, FileRef, ListBodyError, Listing, PosClient, RefError, SkipReason,
};
use fetch_worker::pipeline::storage::LocalStorage;

const BETA_RD5000: &str = "a_BETA_1_rd5000_2026-02-09_20-00_.csv";
const IRIGA_RD5000: &str = "a_IRIGA_1_rd5000_2026-02-09_20-00_.csv";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `sha256sum` of the original fixture files, by name.
fn expected_checksums() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join("fetch.sha256")).unwrap();
    text.lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(sum, name)| (name.to_string(), sum.to_string()))
        .collect()
}

fn beta() -> (Branch, PosNo, BusinessDate) {
    (
        Branch::parse("BETA").unwrap(),
        PosNo::new(1).unwrap(),
        BusinessDate::parse("2026-02-09").unwrap(),
    )
}

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A fake POS server over a copy of the fixtures, local storage, and a client with fast
/// retries (3 tries, 10 ms backoff) and short timeouts.
struct Env {
    /// Holds `served/` and `raw/`; removed on drop.
    tmp: tempfile::TempDir,
    served: PathBuf,
    storage: LocalStorage,
    fake: FakePos,
    client: PosClient,
}

impl Env {
    async fn start(rules: Vec<FaultRule>) -> Env {
        Env::with(rules, |_| {}).await
    }

    async fn with(rules: Vec<FaultRule>, tweak: impl FnOnce(&mut FetchOptions)) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let served = tmp.path().join("served");
        std::fs::create_dir(&served).unwrap();
        for entry in std::fs::read_dir(fixtures().join("fetch")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.ends_with(".csv") {
                std::fs::copy(entry.path(), served.join(&name)).unwrap();
            }
        }
        let storage = LocalStorage::new(tmp.path().join("raw")).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let fake = FakePos::start(&served, addr, Faults::with_rules(rules))
            .await
            .unwrap();
        let mut options = FetchOptions::new(&fake.list_url(), &fake.base_url()).unwrap();
        options.connect_timeout = Duration::from_secs(2);
        options.list_timeout = Duration::from_secs(5);
        options.download_timeout = Duration::from_secs(5);
        options.retry.attempts = 3;
        options.retry.initial_backoff = Duration::from_millis(10);
        options.retry.max_backoff = Duration::from_millis(40);
        tweak(&mut options);
        let client = PosClient::new(options).unwrap();
        Env {
            tmp,
            served,
            storage,
            fake,
            client,
        }
    }

    async fn list_beta(&self) -> Result<Listing, FetchError> {
        let (b, p, d) = beta();
        self.client.list(&b, p, d).await
    }

    async fn download(
        &self,
        name: &str,
    ) -> Result<fetch_worker::pipeline::fetch::StoredFile, FetchError> {
        let file = FileRef::parse(name).unwrap();
        self.client.download(&file, &self.storage).await
    }

    /// Requests of this kind whose path contains `part`.
    fn hits(&self, target: Target, part: &str) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.target == target && r.path.contains(part))
            .count()
    }

    /// Files in raw storage (relative paths), temporary ones included.
    fn stored(&self) -> Vec<String> {
        files_under(self.storage.root())
    }
}

/// The fault rules a test cycles through, each once as "fail twice" and once as "always".
fn faults_for(target: Target) -> Vec<(&'static str, Fault)> {
    let mut faults = vec![
        ("status 500", Fault::Status { status: 500 }),
        ("status 503", Fault::Status { status: 503 }),
        ("reset", Fault::Reset),
        ("truncate", Fault::Truncate),
    ];
    match target {
        Target::List => {
            faults.push(("html", Fault::Html));
            faults.push(("error body", Fault::ErrorBody));
        }
        _ => faults.push(("status 404", Fault::Status { status: 404 })),
    }
    faults
}

/// The whole day is listed in name order and every file lands in storage byte for byte,
/// with the SHA-256 that `sha256sum` gives for the original.
#[tokio::test]
async fn lists_and_downloads_a_day_with_the_originals_checksums() {
    let env = Env::start(vec![]).await;
    let listing = env.list_beta().await.unwrap();
    let names: Vec<&str> = listing.files.iter().map(FileRef::as_str).collect();
    assert_eq!(
        names,
        [
            "a_BETA_1_blpr_2026-02-09_20-00_.csv",
            "a_BETA_1_discount_2026-02-09_20-00_.csv",
            "a_BETA_1_rd1800_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5000_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5500_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5800_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5900_2026-02-09_20-00_.csv",
        ]
    );
    assert!(listing.skipped.is_empty());

    let sums = expected_checksums();
    for file in &listing.files {
        let stored = env.client.download(file, &env.storage).await.unwrap();
        let original = std::fs::read(fixtures().join("fetch").join(file.as_str())).unwrap();
        assert_eq!(stored.reference, file.as_str());
        assert_eq!(stored.file_name, file.as_str());
        assert_eq!(stored.sha256, sums[file.as_str()], "{file}");
        assert_eq!(stored.size, original.len() as u64);
        assert_eq!(stored.location.provider, "local");
        let path = env.storage.path_of(file.name());
        assert_eq!(stored.location.path, path.to_str().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), original, "{file}");
    }
    let expected: Vec<String> = names
        .iter()
        .map(|n| format!("BETA/2026-02-09/pos1/{n}"))
        .collect();
    assert_eq!(env.stored(), expected);
    assert_eq!(env.fake.count(Target::List), 1);
    assert_eq!(env.fake.count(Target::Download), 7);
}

/// A POS or date the server has no files for is an empty list, not an error.
#[tokio::test]
async fn a_day_without_files_is_an_empty_list() {
    let env = Env::start(vec![]).await;
    let (b, _, d) = beta();
    let listing = env
        .client
        .list(&b, PosNo::new(2).unwrap(), d)
        .await
        .unwrap();
    assert!(listing.is_empty() && listing.skipped.is_empty());
    let other = BusinessDate::parse("2026-02-10").unwrap();
    let listing = env
        .client
        .list(&b, PosNo::new(1).unwrap(), other)
        .await
        .unwrap();
    assert!(listing.is_empty());
}

/// Each list fault that hits only the first two requests is retried and the third gets the
/// real list.
#[tokio::test]
async fn list_faults_that_pass_are_retried_until_the_list_arrives() {
    let env = Env::start(vec![]).await;
    for (label, fault) in faults_for(Target::List) {
        env.fake
            .faults()
            .set(vec![FaultRule::new(fault).on(Target::List).times(2)]);
        let before = env.fake.count(Target::List);
        let listing = env
            .list_beta()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(listing.files.len(), 7, "{label}");
        assert_eq!(env.fake.count(Target::List) - before, 3, "{label}");
    }
}

/// Each list fault that never passes ends, after all three tries, as a transient error of
/// the right kind.
#[tokio::test]
async fn list_faults_that_persist_end_as_transient_errors() {
    let env = Env::start(vec![]).await;
    for (label, fault) in faults_for(Target::List) {
        env.fake
            .faults()
            .set(vec![FaultRule::new(fault.clone()).on(Target::List)]);
        let before = env.fake.count(Target::List);
        let err = env.list_beta().await.expect_err(label);
        assert!(err.is_transient(), "{label}: {err}");
        assert_eq!(env.fake.count(Target::List) - before, 3, "{label}");
        match fault {
            Fault::Status { status } => {
                assert!(matches!(err, FetchError::Status { status: s, .. } if s == status))
            }
            Fault::Html => assert!(matches!(
                err,
                FetchError::ListBody {
                    source: ListBodyError::Html { .. },
                    ..
                }
            )),
            Fault::ErrorBody => assert!(matches!(
                err,
                FetchError::ListBody {
                    source: ListBodyError::ErrorText { .. },
                    ..
                }
            )),
            _ => assert!(
                matches!(err, FetchError::Request { .. }),
                "{label}: {err:?}"
            ),
        }
    }
    assert_eq!(env.fake.count(Target::Download), 0);
}

/// The error body the real endpoint once sent (the `fetch_list2.php` fixture) is a
/// transient error, never a file name.
#[tokio::test]
async fn the_observed_error_body_is_a_transient_error() {
    let body = std::fs::read_to_string(fixtures().join("fetch/fetch_list2.php")).unwrap();
    let env = Env::start(vec![
        FaultRule::new(Fault::ListBody { body }).on(Target::List),
    ])
    .await;
    let err = env.list_beta().await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(
            err,
            FetchError::ListBody {
                source: ListBodyError::ErrorText { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("check your Internet"));
}

/// Each download fault that hits only the first two requests for a file is retried, and
/// the file still lands complete with the right checksum.
#[tokio::test]
async fn download_faults_that_pass_are_retried_until_the_file_arrives() {
    let env = Env::start(vec![]).await;
    let sum = &expected_checksums()[BETA_RD5000];
    for (label, fault) in faults_for(Target::Download) {
        env.fake.faults().set(vec![
            FaultRule::new(fault)
                .on(Target::Download)
                .path("rd5000")
                .times(2),
        ]);
        let before = env.hits(Target::Download, BETA_RD5000);
        let stored = env
            .download(BETA_RD5000)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(&stored.sha256, sum, "{label}");
        assert_eq!(
            env.hits(Target::Download, BETA_RD5000) - before,
            3,
            "{label}"
        );
        assert_eq!(
            env.stored(),
            [format!("BETA/2026-02-09/pos1/{BETA_RD5000}")],
            "{label}"
        );
    }
}

/// Each download fault that never passes ends as a transient error after three tries, and
/// leaves nothing in storage.
#[tokio::test]
async fn download_faults_that_persist_end_as_transient_errors_leaving_nothing() {
    let env = Env::start(vec![]).await;
    for (label, fault) in faults_for(Target::Download) {
        env.fake
            .faults()
            .set(vec![FaultRule::new(fault.clone()).on(Target::Download)]);
        let before = env.hits(Target::Download, BETA_RD5000);
        let err = env.download(BETA_RD5000).await.expect_err(label);
        assert!(err.is_transient(), "{label}: {err}");
        assert_eq!(
            env.hits(Target::Download, BETA_RD5000) - before,
            3,
            "{label}"
        );
        match fault {
            Fault::Status { status } => {
                assert!(matches!(err, FetchError::Status { status: s, .. } if s == status))
            }
            Fault::Truncate => assert!(
                matches!(
                    err,
                    FetchError::Truncated {
                        expected: 10967,
                        received: 5483,
                        ..
                    }
                ),
                "{err:?}"
            ),
            _ => assert!(
                matches!(err, FetchError::Request { .. }),
                "{label}: {err:?}"
            ),
        }
        assert_eq!(env.stored(), Vec::<String>::new(), "{label}");
    }
}

/// A truncated re-download is discarded: the complete copy from before stays, and no
/// temporary file is left next to it.
#[tokio::test]
async fn a_truncated_body_leaves_no_partial_file_and_keeps_the_previous_copy() {
    let env = Env::start(vec![]).await;
    let first = env.download(IRIGA_RD5000).await.unwrap();
    env.fake
        .faults()
        .set(vec![FaultRule::new(Fault::Truncate).on(Target::Download)]);
    let err = env.download(IRIGA_RD5000).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Truncated {
                expected: 57147,
                received: 28573,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(
        env.stored(),
        [format!("IRIGA/2026-02-09/pos1/{IRIGA_RD5000}")]
    );
    let bytes = std::fs::read(&first.location.path).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(fixtures().join("fetch").join(IRIGA_RD5000)).unwrap()
    );
}

/// A list holding a hostile reference is refused as a whole, permanently (one request, no
/// retry), nothing is downloaded, and nothing is written anywhere.
#[tokio::test]
async fn hostile_references_are_refused_and_nothing_is_written() {
    let hostile = [
        ("../x", RefError::DotDot),
        ("/etc/passwd", RefError::Absolute),
        (
            "a_B_1_rd5000_2025-01-01_..%2F_.csv",
            RefError::PercentEncoded,
        ),
        (
            "..\\..\\a_BETA_1_rd5000_2026-02-09_20-00_.csv",
            RefError::Backslash,
        ),
        (
            "../../outside/a_BETA_1_rd5000_2026-02-09_20-00_.csv",
            RefError::DotDot,
        ),
        (
            "%2e%2e/a_BETA_1_rd5000_2026-02-09_20-00_.csv",
            RefError::PercentEncoded,
        ),
        (
            "a_BETA_1_rd5000_2026-02-09_20-00_.csv\0.sh",
            RefError::ControlChar { ch: '\0' },
        ),
    ];
    let env = Env::start(vec![]).await;
    let before_tree = files_under(env.tmp.path());
    for (reference, reason) in hostile {
        let body = format!("{BETA_RD5000},{reference},a_BETA_1_rd5500_2026-02-09_20-00_.csv");
        env.fake.faults().set(vec![
            FaultRule::new(Fault::ListBody { body }).on(Target::List),
        ]);
        let before = env.fake.count(Target::List);
        let err = env.list_beta().await.expect_err(reference);
        assert!(err.is_permanent(), "{reference:?}: {err}");
        match &err {
            FetchError::ListBody {
                source: ListBodyError::Hostile { reason: got, .. },
                ..
            } => assert_eq!(got, &reason, "{reference:?}"),
            other => panic!("{reference:?}: {other:?}"),
        }
        assert_eq!(env.fake.count(Target::List) - before, 1, "{reference:?}");
    }
    assert_eq!(env.fake.count(Target::Download), 0);
    assert_eq!(files_under(env.tmp.path()), before_tree);
    assert!(env.stored().is_empty());
}

/// Files of another branch, POS or date, and names that are not exports, are skipped and
/// reported; the day's own files are kept.
#[tokio::test]
async fn files_of_other_days_are_skipped_and_reported() {
    let body = format!(
        "{BETA_RD5000}, {IRIGA_RD5000} ,a_BETA_2_rd5000_2026-02-09_20-00_.csv,\
         a_BETA_1_rd5000_2026-02-08_20-00_.csv,fetch_list2.php,{BETA_RD5000},"
    );
    let env = Env::start(vec![
        FaultRule::new(Fault::ListBody { body }).on(Target::List),
    ])
    .await;
    let listing = env.list_beta().await.unwrap();
    let names: Vec<&str> = listing.files.iter().map(FileRef::as_str).collect();
    assert_eq!(names, [BETA_RD5000]);
    let skipped: Vec<(&str, bool)> = listing
        .skipped
        .iter()
        .map(|s| (s.reference.as_str(), s.reason == SkipReason::OtherDay))
        .collect();
    assert_eq!(
        skipped,
        [
            (IRIGA_RD5000, true),
            ("a_BETA_2_rd5000_2026-02-09_20-00_.csv", true),
            ("a_BETA_1_rd5000_2026-02-08_20-00_.csv", true),
            ("fetch_list2.php", false),
            (BETA_RD5000, false),
        ]
    );
    assert!(matches!(
        listing.skipped[3].reason,
        SkipReason::NotExportName(_)
    ));
    assert_eq!(listing.skipped[4].reason, SkipReason::Duplicate);
}

/// A file larger than the limit is refused without retry and nothing is kept, whether the
/// server declares its length or streams it chunked; smaller files still pass.
#[tokio::test]
async fn the_size_limit_refuses_large_files_and_keeps_nothing() {
    let env = Env::with(vec![], |o| o.max_file_size = 20_000).await;
    let err = env.download(IRIGA_RD5000).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                limit: 20_000,
                declared: Some(57147),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(env.hits(Target::Download, IRIGA_RD5000), 1);

    env.fake
        .faults()
        .set(vec![FaultRule::new(Fault::Chunked).on(Target::Download)]);
    let err = env.download(IRIGA_RD5000).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                limit: 20_000,
                declared: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(env.hits(Target::Download, IRIGA_RD5000), 2);
    assert!(env.stored().is_empty());

    let stored = env.download(BETA_RD5000).await.unwrap();
    assert_eq!(stored.sha256, expected_checksums()[BETA_RD5000]);
}

/// A chunked body (no Content-Length) is streamed and checksummed like any other.
#[tokio::test]
async fn a_chunked_body_downloads_with_the_right_checksum() {
    let env = Env::start(vec![FaultRule::new(Fault::Chunked).on(Target::Download)]).await;
    let stored = env.download(IRIGA_RD5000).await.unwrap();
    assert_eq!(stored.sha256, expected_checksums()[IRIGA_RD5000]);
    assert_eq!(stored.size, 57147);
}

/// A server slower than the timeout gives a transient timeout error after every try (list
/// and download); a slow first answer followed by a prompt one recovers.
#[tokio::test]
async fn a_response_slower_than_the_timeout_is_a_transient_error() {
    let env = Env::with(vec![], |o| {
        o.list_timeout = Duration::from_millis(300);
        o.download_timeout = Duration::from_millis(300);
    })
    .await;
    let slow = || FaultRule::new(Fault::Delay { ms: 1_500 });

    env.fake.faults().set(vec![slow().on(Target::List)]);
    let err = env.list_beta().await.unwrap_err();
    assert!(err.is_timeout() && err.is_transient(), "{err:?}");
    assert_eq!(env.fake.count(Target::List), 3);

    env.fake.faults().set(vec![slow().on(Target::Download)]);
    let err = env.download(BETA_RD5000).await.unwrap_err();
    assert!(err.is_timeout() && err.is_transient(), "{err:?}");
    assert_eq!(env.fake.count(Target::Download), 3);
    assert!(env.stored().is_empty());

    env.fake.faults().set(vec![slow().times(1)]);
    let stored = env.download(BETA_RD5000).await.unwrap();
    assert_eq!(stored.sha256, expected_checksums()[BETA_RD5000]);

    env.fake
        .faults()
        .set(vec![FaultRule::new(Fault::Delay { ms: 50 })]);
    assert_eq!(env.list_beta().await.unwrap().files.len(), 7);
}

/// Permanent statuses are not retried.
#[tokio::test]
async fn a_permanent_status_is_not_retried() {
    let env = Env::start(vec![
        FaultRule::new(Fault::Status { status: 403 }).on(Target::Download),
    ])
    .await;
    let err = env.download(BETA_RD5000).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(matches!(err, FetchError::Status { status: 403, .. }));
    assert_eq!(env.fake.count(Target::Download), 1);
}

/// Files added to the served directory while the fake runs are listed by the next request.
#[tokio::test]
async fn the_fake_lists_its_directory_on_every_request() {
    let env = Env::start(vec![]).await;
    std::fs::copy(
        env.served.join(BETA_RD5000),
        env.served.join("a_BETA_1_rd5000_2026-02-09_23-00_.csv"),
    )
    .unwrap();
    let listing = env.list_beta().await.unwrap();
    assert_eq!(listing.files.len(), 8);
}

/// The admin endpoint (what the subcommand offers) reads, replaces and clears fault rules
/// while the server runs.
#[tokio::test]
async fn faults_change_at_runtime_through_the_admin_endpoint() {
    let env = Env::start(vec![]).await;
    let http = reqwest::Client::new();
    let admin = format!("{}__faults", env.fake.base_url());
    let set = http
        .post(&admin)
        .body(r#"[{"fault":"status","status":500,"target":"list"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let rules: serde_json::Value =
        serde_json::from_str(&http.get(&admin).send().await.unwrap().text().await.unwrap())
            .unwrap();
    assert_eq!(
        rules,
        serde_json::json!([{"fault":"status","status":500,"target":"list"}])
    );
    let err = env.list_beta().await.unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 500, .. }));

    let bad = http.post(&admin).body("{").send().await.unwrap();
    assert_eq!(bad.status(), 400);

    http.delete(&admin).send().await.unwrap();
    assert!(env.fake.faults().rules().is_empty());
    assert_eq!(env.list_beta().await.unwrap().files.len(), 7);

    let log = http
        .get(format!("{}__requests", env.fake.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert!(log.as_array().is_some_and(|a| a.len() >= 7));
}

/// `fetch-worker fake-pos` serves a directory on the port it prints, with faults given at
/// start, until it is stopped.
#[tokio::test]
async fn the_fake_pos_subcommand_serves_a_directory() {
    use tokio::io::AsyncBufReadExt;

    let env = Env::start(vec![]).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .args(["fake-pos", "--port", "0", "--dir"])
        .arg(&env.served)
        .args([
            "--faults",
            r#"{"fault":"status","status":503,"target":"list","times":1}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .unwrap()
    .unwrap();
    let list_url = line
        .split("(list: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no list URL in {line:?}"))
        .to_string();
    let base_url = list_url.trim_end_matches("fetch_list2.php").to_string();
    let mut options = FetchOptions::new(&list_url, &base_url).unwrap();
    options.retry.initial_backoff = Duration::from_millis(10);
    let client = PosClient::new(options).unwrap();
    let (b, p, d) = beta();
    let listing = client.list(&b, p, d).await.unwrap();
    assert_eq!(listing.files.len(), 7);
    let stored = client
        .download(&listing.files[3], &env.storage)
        .await
        .unwrap();
    assert_eq!(stored.sha256, expected_checksums()[BETA_RD5000]);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

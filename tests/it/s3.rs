//! S3 raw storage against a real S3 protocol server (moto, on loopback), directly and through
//! an HTTP fault proxy: uploads invisible until committed and carrying their SHA-256 as
//! metadata, multipart uploads for large files, a failed upload aborted without a trace,
//! server errors and slow answers retried, and the start-up check's clear refusals (also from
//! the binary itself).

use std::time::Duration;

use fetch_worker::pipeline::fetch::PosFileName;
use fetch_worker::pipeline::storage::{RawStorage, S3Storage, StorageError};
use sha2::{Digest, Sha256};

use crate::support::s3::{Fault, FaultProxy, Rule, TestS3};

const BMC_RD5000: &str = "a_BMC_1_rd5000_2026-02-09_20-00_.csv";

fn name() -> PosFileName {
    PosFileName::parse(BMC_RD5000).unwrap()
}

fn key() -> String {
    format!("raw/BMC/2026-02-09/pos1/{BMC_RD5000}")
}

/// `n` reproducible pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Asserts two byte strings are equal without printing them.
#[track_caller]
fn same(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: {} bytes (sha256 {}), expected {} bytes (sha256 {})",
        got.len(),
        sha256(got),
        want.len(),
        sha256(want)
    );
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `data` in pieces of `piece` bytes and commits.
async fn put(
    store: &S3Storage,
    data: &[u8],
    piece: usize,
) -> Result<fetch_worker::pipeline::storage::StorageLocation, StorageError> {
    let storage: &dyn RawStorage = store;
    let mut writer = storage.begin(&name()).await?;
    for chunk in data.chunks(piece) {
        writer.write(chunk).await?;
    }
    writer.commit().await
}

/// A small file written in pieces is not visible before the commit; after it, the object is
/// under `<prefix>/<branch>/<date>/pos<pos>/<file>`, byte for byte, with its SHA-256 as
/// `x-amz-meta-sha256`, and the location names the provider, bucket and key.
#[tokio::test]
async fn an_upload_is_invisible_until_committed_and_carries_its_sha256() {
    let s3 = TestS3::start().await;
    s3.create_bucket("raw-files").await;
    let store = S3Storage::new(&s3.settings("raw-files")).unwrap();
    store.check().await.unwrap();
    let data = bytes(300_000, 1);

    let storage: &dyn RawStorage = &store;
    assert_eq!(storage.provider(), "s3");
    let mut writer = storage.begin(&name()).await.unwrap();
    for chunk in data.chunks(65_536) {
        writer.write(chunk).await.unwrap();
    }
    assert!(
        s3.keys("raw-files").await.is_empty(),
        "visible before the commit"
    );
    let location = writer.commit().await.unwrap();

    assert_eq!(location.provider, "s3");
    assert_eq!(location.bucket.as_deref(), Some("raw-files"));
    assert_eq!(location.path, key());
    assert_eq!(s3.keys("raw-files").await, [key()]);
    let (status, sha, body) = s3.get("raw-files", &key()).await;
    assert_eq!(status, 200);
    same(&body, &data, "stored object");
    assert_eq!(sha.as_deref(), Some(sha256(&data).as_str()));
    same(&store.read_all(&key()).await.unwrap(), &data, "read_all");
    let (size, meta) = store.head(&key()).await.unwrap();
    assert_eq!((size, meta), (data.len() as u64, Some(sha256(&data))));

    // Read back into a local file, as the combine pass does.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("copy").join(BMC_RD5000);
    assert_eq!(
        store.copy_to_path(&location, &dest).await.unwrap(),
        data.len() as u64
    );
    same(&std::fs::read(&dest).unwrap(), &data, "copy");

    // A new commit replaces the object; an aborted one changes nothing.
    let newer = bytes(1000, 2);
    put(&store, &newer, 100).await.unwrap();
    let mut writer = storage.begin(&name()).await.unwrap();
    writer.write(b"partial").await.unwrap();
    writer.abort().await.unwrap();
    let (_, sha, body) = s3.get("raw-files", &key()).await;
    same(&body, &newer, "replaced object");
    assert_eq!(sha.as_deref(), Some(sha256(&newer).as_str()));
}

/// A file above the multipart threshold goes up as a multipart upload (one create, one PUT per
/// part, one complete), then reads back identical with its SHA-256, and no upload is left
/// open.
#[tokio::test]
async fn a_large_file_goes_up_in_parts() {
    let s3 = TestS3::start().await;
    s3.create_bucket("raw-files").await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    let store = S3Storage::new(&s3.settings_via(&proxy.endpoint, "raw-files"))
        .unwrap()
        .with_multipart(1 << 20, 5 << 20);
    let data = bytes(11 << 20, 3);
    put(&store, &data, 256 * 1024).await.unwrap();

    assert_eq!(proxy.count("POST", "?uploads"), 1, "one multipart upload");
    assert_eq!(proxy.count("PUT", "partNumber="), 3, "5 + 5 + 1 MiB");
    assert_eq!(proxy.count("POST", "uploadId="), 1, "one completion");
    let (status, sha, body) = s3.get("raw-files", &key()).await;
    assert_eq!(status, 200);
    same(&body, &data, "multipart object");
    assert_eq!(sha.as_deref(), Some(sha256(&data).as_str()));
    assert_eq!(s3.pending_uploads("raw-files").await, 0);
}

/// A multipart upload whose part is refused is aborted: the key keeps its previous object,
/// and no unfinished upload is left in the bucket.
#[tokio::test]
async fn a_failed_multipart_upload_is_aborted_and_leaves_nothing() {
    let s3 = TestS3::start().await;
    s3.create_bucket("raw-files").await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    let store = S3Storage::new(&s3.settings_via(&proxy.endpoint, "raw-files"))
        .unwrap()
        .with_multipart(1 << 20, 5 << 20);
    let old = bytes(1000, 4);
    put(&store, &old, 1000).await.unwrap();

    proxy.add(Rule {
        method: "PUT",
        contains: "partNumber=2",
        fault: Fault::Status(400, "InvalidPart"),
        times: 10,
    });
    let err = put(&store, &bytes(11 << 20, 5), 1 << 20)
        .await
        .expect_err("refused part");
    assert!(err.to_string().contains("upload part"), "{err}");
    assert!(!err.is_transient(), "a 400 is not retried: {err}");
    assert_eq!(proxy.count("DELETE", "uploadId="), 1, "aborted");
    assert_eq!(s3.pending_uploads("raw-files").await, 0);
    let (_, sha, body) = s3.get("raw-files", &key()).await;
    same(&body, &old, "the previous object");
    assert_eq!(sha.as_deref(), Some(sha256(&old).as_str()));

    // With no previous object, nothing at all is left under the key.
    s3.create_bucket("empty-bucket").await;
    let store = S3Storage::new(&s3.settings_via(&proxy.endpoint, "empty-bucket"))
        .unwrap()
        .with_multipart(1 << 20, 5 << 20);
    proxy.add(Rule {
        method: "PUT",
        contains: "partNumber=1",
        fault: Fault::Status(403, "AccessDenied"),
        times: 10,
    });
    put(&store, &bytes(6 << 20, 6), 1 << 20)
        .await
        .expect_err("refused part");
    assert!(s3.keys("empty-bucket").await.is_empty());
    assert_eq!(s3.pending_uploads("empty-bucket").await, 0);
}

/// Server errors (500, 503) and an answer slower than the request timeout are retried with
/// the POS calls' policy, and the upload succeeds; when every try fails the error is
/// transient (the job's own retries apply) and nothing is stored.
#[tokio::test]
async fn server_errors_and_slow_answers_are_retried() {
    let s3 = TestS3::start().await;
    s3.create_bucket("raw-files").await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    let mut settings = s3.settings_via(&proxy.endpoint, "raw-files");
    settings.request_timeout = Duration::from_millis(700);
    let store = S3Storage::new(&settings).unwrap();
    let data = bytes(5000, 7);

    proxy.add(Rule {
        method: "PUT",
        contains: "",
        fault: Fault::Status(500, "InternalError"),
        times: 1,
    });
    proxy.add(Rule {
        method: "PUT",
        contains: "",
        fault: Fault::Status(503, "SlowDown"),
        times: 1,
    });
    put(&store, &data, 1000).await.unwrap();
    assert_eq!(
        proxy.count("PUT", "/raw-files/raw/"),
        3,
        "two faults, then success"
    );
    same(&s3.get("raw-files", &key()).await.2, &data, "after faults");

    proxy.add(Rule {
        method: "PUT",
        contains: "",
        fault: Fault::Delay(Duration::from_secs(3)),
        times: 1,
    });
    let slower = bytes(5000, 8);
    put(&store, &slower, 1000).await.unwrap();
    assert_eq!(
        proxy.count("PUT", "/raw-files/raw/"),
        5,
        "the slow try, then a retry"
    );
    same(
        &s3.get("raw-files", &key()).await.2,
        &slower,
        "after the slow try",
    );

    // Every try fails: transient, and the stored object is still the last good one.
    proxy.add(Rule {
        method: "PUT",
        contains: "",
        fault: Fault::Status(500, "InternalError"),
        times: 3,
    });
    let err = put(&store, &bytes(10, 9), 10)
        .await
        .expect_err("all tries fail");
    assert!(err.is_transient(), "{err}");
    same(
        &s3.get("raw-files", &key()).await.2,
        &slower,
        "after the slow try",
    );
}

/// The start-up check names what is wrong: a missing bucket, refused credentials; both are
/// permanent, and neither message carries the secret key.
#[tokio::test]
async fn the_start_up_check_names_a_missing_bucket_and_refused_credentials() {
    let s3 = TestS3::start().await;
    s3.create_bucket("raw-files").await;
    let err = S3Storage::new(&s3.settings("no-such-bucket"))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"no-such-bucket\" does not exist"), "{text}");
    assert!(text.contains("S3_BUCKET"), "{text}");
    assert!(!err.is_transient());

    let proxy = FaultProxy::start(&s3.endpoint).await;
    proxy.add(Rule {
        method: "GET",
        contains: "list-type=2",
        fault: Fault::Status(403, "InvalidAccessKeyId"),
        times: 1,
    });
    let err = S3Storage::new(&s3.settings_via(&proxy.endpoint, "raw-files"))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    assert!(!text.contains("testing-secret"), "{text}");
    assert!(!err.is_transient());
}

/// `fetch-worker run` with `STORAGE=s3` and a bucket that does not exist stops at start with
/// the reason, before taking any job, and prints no credential.
#[tokio::test]
async fn the_worker_refuses_to_start_without_its_bucket() {
    let s3 = TestS3::start().await;
    let redis = crate::support::RedisServer::start();
    let mongo = crate::support::mongo::TestMongo::start();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fetch-worker"))
        .arg("run")
        .env("REDIS_JOB_URL", redis.url(1))
        .env("REDIS_CACHE_URL", redis.url(0))
        .env(
            "MONGO_URI",
            format!(
                "{}/{}",
                mongo.uri,
                crate::support::mongo::TestMongo::unique_db("s3_start")
            ),
        )
        .env("METRICS_ADDR", "")
        .env("STORAGE", "s3")
        .env("S3_ENDPOINT", &s3.endpoint)
        .env("S3_BUCKET", "missing-bucket")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "Secr3tKeyValue")
        .env("POS_FETCH_ATTEMPTS", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the worker must stop by itself")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("S3 bucket \"missing-bucket\" does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("Secr3tKeyValue"), "{stderr}");
}

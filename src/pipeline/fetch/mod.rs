//! Fetching one POS day: ask the list endpoint which files exist, then stream each file into
//! raw storage with its SHA-256.
//!
//! The protocol is the legacy one: a form POST of `branch`, `pos`
//! and `date` to the list URL answers with comma-separated file references, and each file is
//! `GET <base URL><reference>`. This module knows nothing about jobs, Redis or MongoDB.
//!
//! # Choices where the legacy code and the spec are silent
//!
//! - **References** are validated before any use ([`FileRef`]; rules in [`reference`](mod@reference)). Only
//!   `A-Z a-z 0-9 _ - . /` pass, so a reference needs no URL encoding and is appended to the
//!   base URL exactly as listed, as the Python fetcher did. (The Node port encoded the whole
//!   item with `encodeURIComponent`, which would turn a `/` in a relative path into `%2F`.)
//! - **List bodies** that are HTML, error text or prose are transient errors; a hostile
//!   reference refuses the whole list permanently; files of other days and non-export names
//!   are skipped and reported (rules in [`listing`]).
//! - **Retries.** The list call and every download are tried up to
//!   [`RetryPolicy::attempts`] times (default 3) on transient errors, waiting
//!   [`RetryPolicy::initial_backoff`] (default 200 ms), then twice as long each time, at most
//!   [`RetryPolicy::max_backoff`] (default 5 s), without jitter (one worker makes one request
//!   at a time per job). The queue's own retries come on top of these.
//! - **Statuses.** 404 is transient (a listed file may be replaced while we look), as are 408,
//!   425, 429 and 5xx; other 4xx are permanent.
//! - **Redirects** are followed only within the requested URL's origin (same scheme, host and
//!   port, so never from https to http), at most [`MAX_REDIRECTS`] times; anything else is a
//!   permanent [`FetchError::Redirect`]. A POS server that sends us elsewhere is misconfigured
//!   or compromised, and what we would fetch there would be stored as the day's export.
//! - **Files per day.** A listing naming more than [`FetchOptions::max_files`] files (default
//!   [`DEFAULT_MAX_FILES_PER_DAY`]; a real day has three to five) is refused before anything
//!   is downloaded, permanently.
//! - **Secrets.** The list and base URLs may carry credentials (user-info, a query token).
//!   They are kept as [`SecretUrl`]s and every error and log line shows them redacted.
//! - **Timeouts.** A connect timeout, then a total timeout per attempt covering the whole
//!   response, body included: [`FetchOptions::list_timeout`] for the list (default 20 s, the
//!   Node port's `POS_LIST_TIMEOUT_MS`), [`FetchOptions::download_timeout`] for each file
//!   (default 60 s, the Python fetcher's).
//! - **Size.** A file whose declared length exceeds [`FetchOptions::max_file_size`] is refused
//!   before its body is read; one that grows past it while streaming is stopped there. Either
//!   way nothing is kept, and the error is permanent. A list body is read up to
//!   [`MAX_LIST_BYTES`].
//! - **Integrity.** The SHA-256 is computed over the bytes as they are written. A body shorter
//!   than its `Content-Length` (or cut by the connection) is a transient error and the partial
//!   file is discarded, so storage only ever holds complete files.
//! - **Headers.** The list call sends `Origin` and `Referer` derived from the list URL, as the
//!   legacy fetcher did for its host. The User-Agent is `fetch-worker/<version>`, not the
//!   legacy Firefox string; if the server turns out to filter on it, change
//!   [`USER_AGENT`].
//! - **Body decoding.** The list body is read as UTF-8 (invalid bytes replaced); no
//!   compression is negotiated.

mod error;
pub mod listing;
pub mod reference;

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, ORIGIN, REFERER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::day::{Branch, BusinessDate, PosNo};
use crate::pipeline::storage::{RawStorage, RawWriter, StorageLocation};
use crate::secret::{RedactedUrl, SecretUrl, redact_url};

pub use crate::pipeline::export_name::PosFileName;
pub use crate::pipeline::retry::RetryPolicy;
pub use error::FetchError;
pub use listing::{ListBodyError, Listing, SkipReason, Skipped, parse_list};
pub use reference::{FileRef, RefError};

/// The legacy list endpoint (`POS_LIST_URL` default).
pub const LEGACY_LIST_URL: &str = "https://biggsph.com/biggsinc_loyalty/controller/fetch_list2.php";
/// The legacy download base (`POS_FILE_BASE_URL` default): a file is this + its reference.
pub const LEGACY_FILE_BASE_URL: &str = "https://biggsph.com/biggsinc_loyalty/controller/";
/// The largest list body read; a real list of a day has a few hundred bytes.
pub const MAX_LIST_BYTES: usize = 1 << 20;
/// The most redirects followed for one request (each within the URL's origin).
pub const MAX_REDIRECTS: usize = 5;
/// The default of [`FetchOptions::max_files`] (`POS_MAX_FILES_PER_DAY`): a real day lists
/// three to five exports, so 64 leaves room for re-exports while bounding what one job does.
pub const DEFAULT_MAX_FILES_PER_DAY: usize = 64;
/// The User-Agent of every request.
pub const USER_AGENT: &str = concat!("fetch-worker/", env!("CARGO_PKG_VERSION"));

/// Everything [`PosClient`] needs. Build with [`FetchOptions::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The list endpoint (may carry credentials).
    pub list_url: SecretUrl<Url>,
    /// The download base; always ends with `/` (may carry credentials).
    pub file_base_url: SecretUrl<Url>,
    /// The longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The longest a list attempt may take, body included.
    pub list_timeout: Duration,
    /// The longest one download attempt may take, body included.
    pub download_timeout: Duration,
    /// The largest file accepted, in bytes.
    pub max_file_size: u64,
    /// The most files one day's listing may name.
    pub max_files: usize,
    /// Retries of the list call and of each download.
    pub retry: RetryPolicy,
}

impl FetchOptions {
    /// Options for these URLs with the defaults: connect 10 s, list 20 s, download 60 s,
    /// 64 MiB per file, 64 files per day, [`RetryPolicy::default`]. A base URL without a trailing `/` gets one,
    /// so that `base + reference` stays inside the base path.
    ///
    /// # Errors
    ///
    /// [`FetchError::Config`] when a URL does not parse, is not http(s), or the base has a
    /// query or fragment.
    pub fn new(list_url: &str, file_base_url: &str) -> Result<FetchOptions, FetchError> {
        let parse = |name: &'static str, raw: &str| {
            let shown = redact_url(raw);
            let url = Url::parse(raw).map_err(|e| FetchError::Config {
                name,
                reason: format!("{shown:?}: {e}"),
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(FetchError::Config {
                    name,
                    reason: format!("{shown:?} is not an http(s) URL"),
                });
            }
            Ok(url)
        };
        let list_url = parse("POS_LIST_URL", list_url)?;
        let mut file_base_url = parse("POS_FILE_BASE_URL", file_base_url)?;
        if file_base_url.query().is_some() || file_base_url.fragment().is_some() {
            return Err(FetchError::Config {
                name: "POS_FILE_BASE_URL",
                reason: "must not have a query or fragment".into(),
            });
        }
        if !file_base_url.path().ends_with('/') {
            let path = format!("{}/", file_base_url.path());
            file_base_url.set_path(&path);
        }
        Ok(FetchOptions {
            list_url: SecretUrl::new(list_url),
            file_base_url: SecretUrl::new(file_base_url),
            connect_timeout: Duration::from_secs(10),
            list_timeout: Duration::from_secs(20),
            download_timeout: Duration::from_secs(60),
            max_file_size: 64 << 20,
            max_files: DEFAULT_MAX_FILES_PER_DAY,
            retry: RetryPolicy::default(),
        })
    }
}

/// A file safely in raw storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The reference as listed.
    pub reference: String,
    /// The file name it is stored under (the reference's last segment).
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Where it is.
    pub location: StorageLocation,
}

/// The HTTP client of the POS server. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct PosClient {
    /// The pooled client: connect timeout, redirect policy and User-Agent set once.
    http: reqwest::Client,
    /// URLs, timeouts, size limits and the retry policy every call uses.
    options: FetchOptions,
}

impl PosClient {
    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`FetchError::Config`] when the HTTP client cannot be built (TLS set-up).
    pub fn new(options: FetchOptions) -> Result<PosClient, FetchError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let previous = attempt.previous();
                let verdict = match previous.first() {
                    Some(first) => check_redirect(first, attempt.url(), previous.len()),
                    None => Ok(()),
                };
                match verdict {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| FetchError::Config {
                name: "http client",
                reason: e.to_string(),
            })?;
        Ok(PosClient { http, options })
    }

    /// The settings in use.
    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// Lists the files of one POS day, with retries (see the module docs).
    ///
    /// # Returns
    ///
    /// The day's validated files in listed order (empty when the server has none), and the
    /// items skipped with their reasons.
    ///
    /// # Errors
    ///
    /// A [`FetchError`]: transient for network trouble, 5xx, HTML, error text; permanent for a
    /// hostile reference or an oversized body.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn list(
        &self,
        branch: &Branch,
        pos: PosNo,
        date: BusinessDate,
    ) -> Result<Listing, FetchError> {
        let url = self.options.list_url.redacted();
        self.with_retries("list", &url, || self.list_once(branch, pos, date))
            .await
    }

    /// Downloads one listed file into `storage`, with retries (see the module docs).
    ///
    /// # Errors
    ///
    /// A [`FetchError`] after the last attempt; nothing is left in storage for this try
    /// (an earlier complete copy, if any, is kept).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as far as storage goes: dropping the future drops the raw writer, which
    /// discards the partial file (see [`RawWriter`]). A file committed just before the drop
    /// stays.
    pub async fn download(
        &self,
        file: &FileRef,
        storage: &dyn RawStorage,
    ) -> Result<StoredFile, FetchError> {
        let url = self.file_url(file);
        let shown = RedactedUrl::from(&url);
        self.with_retries("download", &shown, || {
            self.download_once(file, &url, storage)
        })
        .await
    }

    /// The download URL: the base followed by the reference, exactly (both already validated,
    /// so the result can only be a path below the base).
    pub fn file_url(&self, file: &FileRef) -> Url {
        let mut url = self.options.file_base_url.expose().clone();
        let path = format!("{}{}", url.path(), file.as_str());
        url.set_path(&path);
        url
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts run out.
    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        url: &RedactedUrl,
        mut op: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, FetchError>>,
    {
        let policy = self.options.retry;
        let attempts = policy.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && attempt < attempts => {
                    let delay = policy.delay_after(attempt);
                    tracing::warn!(
                        what,
                        url = %url,
                        attempt,
                        attempts,
                        delay_ms = delay.as_millis() as u64,
                        error.message = %err,
                        "transient fetch failure; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn list_once(
        &self,
        branch: &Branch,
        pos: PosNo,
        date: BusinessDate,
    ) -> Result<Listing, FetchError> {
        let url = self.options.list_url.expose();
        let pos_text = pos.to_string();
        let date_text = date.to_string();
        let form = [
            ("branch", branch.as_str()),
            ("pos", pos_text.as_str()),
            ("date", date_text.as_str()),
        ];
        let mut request = self
            .http
            .post(url.clone())
            .form(&form)
            .timeout(self.options.list_timeout);
        let origin = url.origin().ascii_serialization();
        if let Ok(value) = HeaderValue::from_str(&origin) {
            request = request.header(ORIGIN, value);
        }
        if let Ok(value) = HeaderValue::from_str(&format!("{origin}/")) {
            request = request.header(REFERER, value);
        }
        let request_error = |source| FetchError::request(url, source);
        let mut response = request.send().await.map_err(request_error)?;
        check_status(url, response.status())?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_LIST_BYTES {
                return Err(FetchError::ListTooLarge {
                    url: url.into(),
                    limit: MAX_LIST_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body);
        let listing =
            parse_list(&text, branch, pos, date).map_err(|source| FetchError::ListBody {
                url: url.into(),
                source,
            })?;
        if listing.files.len() > self.options.max_files {
            return Err(FetchError::TooManyFiles {
                url: url.into(),
                files: listing.files.len(),
                limit: self.options.max_files,
            });
        }
        tracing::debug!(
            url = %RedactedUrl::from(url),
            files = listing.files.len(),
            skipped = listing.skipped.len(),
            "listed"
        );
        Ok(listing)
    }

    async fn download_once(
        &self,
        file: &FileRef,
        url: &Url,
        storage: &dyn RawStorage,
    ) -> Result<StoredFile, FetchError> {
        let limit = self.options.max_file_size;
        let mut response = self
            .http
            .get(url.clone())
            .timeout(self.options.download_timeout)
            .send()
            .await
            .map_err(|source| FetchError::request(url, source))?;
        check_status(url, response.status())?;
        let declared = response.content_length();
        if declared.is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit,
                declared,
            });
        }
        let storage_error = |source| FetchError::Storage {
            file: file.name().to_string(),
            source,
        };
        let mut writer = storage.begin(file.name()).await.map_err(storage_error)?;
        let streamed =
            stream_body(&mut response, writer.as_mut(), file, url, declared, limit).await;
        let (size, sha256) = match streamed {
            Ok(done) => done,
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(url = %RedactedUrl::from(url), error.message = %abort, "discarding a partial file failed");
                }
                return Err(err);
            }
        };
        let location = writer.commit().await.map_err(storage_error)?;
        tracing::debug!(url = %RedactedUrl::from(url), size, sha256 = %sha256, path = %location.path, "downloaded");
        Ok(StoredFile {
            reference: file.as_str().to_string(),
            file_name: file.name().to_string(),
            size,
            sha256,
            location,
        })
    }
}

/// Copies the body into `writer` chunk by chunk, hashing and counting as it goes.
///
/// # Returns
///
/// The size and the lower-case hex SHA-256.
async fn stream_body(
    response: &mut reqwest::Response,
    writer: &mut dyn RawWriter,
    file: &FileRef,
    url: &Url,
    declared: Option<u64>,
    limit: u64,
) -> Result<(u64, String), FetchError> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(source) => {
                // A connection closed mid-body is reported by the client as a body error; say
                // plainly that the file was cut short when we know its length.
                return Err(match declared {
                    Some(expected) if size < expected && !source.is_timeout() => {
                        FetchError::Truncated {
                            url: url.into(),
                            expected,
                            received: size,
                        }
                    }
                    _ => FetchError::request(url, source),
                });
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            return Err(FetchError::TooLarge {
                url: url.into(),
                limit,
                declared,
            });
        }
        hasher.update(&chunk);
        writer
            .write(&chunk)
            .await
            .map_err(|source| FetchError::Storage {
                file: file.name().to_string(),
                source,
            })?;
    }
    if let Some(expected) = declared
        && size != expected
    {
        return Err(FetchError::Truncated {
            url: url.into(),
            expected,
            received: size,
        });
    }
    Ok((size, to_hex(&hasher.finalize())))
}

/// Maps a non-2xx status to [`FetchError::Status`].
fn check_status(url: &Url, status: StatusCode) -> Result<(), FetchError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(FetchError::Status {
            url: url.into(),
            status: status.as_u16(),
        })
    }
}

/// Why a redirect was not followed. Carries redacted URLs only: its text ends up in the job's
/// failure.
#[derive(Debug, thiserror::Error)]
pub enum RedirectRefused {
    /// The target is another origin (scheme, host or port), https to http included.
    #[error("{to} is not on the origin of {from}")]
    OtherOrigin {
        /// The URL first requested.
        from: RedactedUrl,
        /// Where the server pointed.
        to: RedactedUrl,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
}

/// Whether a redirect from the first URL of a request (`first`) to `next` may be followed,
/// `hops` redirects having been followed so far. Same origin only: the scheme, host and port
/// must all match, so a downgrade from https to http is refused like any other origin.
///
/// # Errors
///
/// The [`RedirectRefused`] reason.
pub fn check_redirect(first: &Url, next: &Url, hops: usize) -> Result<(), RedirectRefused> {
    if hops > MAX_REDIRECTS {
        return Err(RedirectRefused::TooMany);
    }
    if first.origin() != next.origin() {
        return Err(RedirectRefused::OtherOrigin {
            from: first.into(),
            to: next.into(),
        });
    }
    Ok(())
}

/// `bytes` as lower-case hex, two digits a byte: how SHA-256 digests are recorded.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_delay_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
        };
        let ms: Vec<u128> = (1..=6).map(|a| p.delay_after(a).as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(p.delay_after(0).as_millis(), 200);
        assert_eq!(p.delay_after(200), Duration::from_secs(1));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(
            to_hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn options_normalise_the_base_and_refuse_other_schemes() {
        let o = FetchOptions::new(LEGACY_LIST_URL, LEGACY_FILE_BASE_URL).expect("legacy");
        assert_eq!(o.file_base_url.expose().as_str(), LEGACY_FILE_BASE_URL);
        let o = FetchOptions::new("http://127.0.0.1:9/list", "http://127.0.0.1:9/files")
            .expect("local");
        assert_eq!(
            o.file_base_url.expose().as_str(),
            "http://127.0.0.1:9/files/"
        );
        for (list, base) in [
            ("ftp://x/list", "http://x/"),
            ("http://x/list", "file:///tmp/"),
            ("not a url", "http://x/"),
            ("http://x/list", "http://x/?a=1"),
        ] {
            let err = FetchOptions::new(list, base).expect_err(base);
            assert!(err.is_permanent());
        }
    }

    #[test]
    fn redirects_stay_on_the_origin_and_never_downgrade() {
        let u = |s: &str| Url::parse(s).unwrap();
        let first = u("https://pos.example/list?token=T0KEN");
        assert!(check_redirect(&first, &u("https://pos.example/other/list"), 1).is_ok());
        assert!(check_redirect(&first, &u("https://pos.example:443/x"), 5).is_ok());
        for next in [
            "http://pos.example/list",
            "https://evil.example/list",
            "https://pos.example:8443/list",
            "https://sub.pos.example/list",
        ] {
            let err = check_redirect(&first, &u(next), 1).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("not on the origin"), "{text}");
            assert!(!text.contains("T0KEN"), "{text}");
        }
        assert!(matches!(
            check_redirect(&first, &u("https://pos.example/x"), MAX_REDIRECTS + 1),
            Err(RedirectRefused::TooMany)
        ));
    }

    #[test]
    fn a_bad_url_setting_is_reported_without_its_credentials() {
        let err = FetchOptions::new("ftp://u:PosS3cret@h/l?token=T0KEN", "http://h/")
            .unwrap_err()
            .to_string();
        assert!(err.contains("POS_LIST_URL"), "{err}");
        assert!(
            !err.contains("PosS3cret") && !err.contains("T0KEN"),
            "{err}"
        );
    }

    proptest::proptest! {
        /// Whatever directories a reference has, its URL stays below the base and ends with
        /// the reference unchanged (no encoding, no normalisation).
        #[test]
        fn file_urls_stay_below_the_base(
            dirs in proptest::collection::vec("[a-zA-Z0-9_.-]{1,6}", 0..4),
            base in "(/|/x/|/x/y/)",
        ) {
            let mut reference = dirs.join("/");
            if !reference.is_empty() {
                reference.push('/');
            }
            reference.push_str("a_BETA_1_rd5000_2026-02-09_20-00_.csv");
            let base_url = format!("http://127.0.0.1:9{base}");
            let client = FetchOptions::new("http://127.0.0.1:9/list", &base_url)
                .and_then(PosClient::new)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            if let Ok(file) = FileRef::parse(&reference) {
                let url = client.file_url(&file);
                proptest::prop_assert_eq!(url.as_str(), format!("{base_url}{reference}"));
            }
        }
    }

    #[test]
    fn the_file_url_is_the_base_followed_by_the_reference() {
        let client = FetchOptions::new(LEGACY_LIST_URL, LEGACY_FILE_BASE_URL)
            .and_then(PosClient::new)
            .expect("client");
        let file = FileRef::parse("a_BETA_1_rd5000_2026-02-09_20-00_.csv").expect("ref");
        assert_eq!(
            client.file_url(&file).as_str(),
            "https://biggsph.com/biggsinc_loyalty/controller/a_BETA_1_rd5000_2026-02-09_20-00_.csv"
        );
        let file = FileRef::parse("archive/a_BETA_1_rd5000_2026-02-09_20-00_.csv").expect("ref");
        assert_eq!(
            client.file_url(&file).as_str(),
            "https://biggsph.com/biggsinc_loyalty/controller/archive/a_BETA_1_rd5000_2026-02-09_20-00_.csv"
        );
    }
}

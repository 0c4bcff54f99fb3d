//! Errors of listing and downloading, each saying whether another attempt may succeed.

use crate::pipeline::storage::StorageError;
use crate::secret::RedactedUrl;

use super::listing::ListBodyError;

/// A failure of [`PosClient`](super::PosClient).
///
/// Every URL in it is a [`RedactedUrl`] (no user-info, no query) and request errors are kept
/// without their URL ([`reqwest::Error::without_url`]), because this text becomes the job's
/// `failedReason`, its log and a monitor entry.
///
/// [`FetchError::is_transient`] decides what the job does: transient errors are retried (first
/// in-process per the retry policy, then by the queue), permanent ones fail the job at once.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A setting is unusable (a URL that is not http(s)). Permanent.
    #[error("invalid fetch setting {name}: {reason}")]
    Config {
        /// The setting's environment name (`POS_LIST_URL`, `POS_FILE_BASE_URL`), or what
        /// was being built (`http client`).
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be completed: connect failure, timeout, reset, body cut off.
    /// Transient, except for errors building the request or following redirects. Build it
    /// with [`FetchError::request`], which strips the URL from the client's error.
    #[error("{url}: {source}")]
    Request {
        /// The URL asked for, credentials removed.
        url: RedactedUrl,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx status. Transient for 404 (a listed file not there yet), 408, 425, 429 and
    /// 5xx; permanent for other statuses.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL that answered, credentials removed.
        url: RedactedUrl,
        /// The status code.
        status: u16,
    },
    /// The list body was not a usable list; transient unless it held a hostile reference.
    #[error("{url}: {source}")]
    ListBody {
        /// The list URL.
        url: RedactedUrl,
        /// What was wrong with the body.
        #[source]
        source: ListBodyError,
    },
    /// The server redirected somewhere other than the URL's own origin (another host, port or
    /// scheme, https to http included), or redirected too often. Permanent: the answer is the
    /// server's configuration, and following it could store another server's body as an export.
    #[error("{url}: redirect refused: {reason}")]
    Redirect {
        /// The URL requested.
        url: RedactedUrl,
        /// Where it pointed and why that was refused.
        reason: String,
    },
    /// The list named more files than a day can have ([`FetchOptions::max_files`](super::FetchOptions::max_files)).
    /// Permanent: nothing was downloaded.
    #[error("{url}: the listing names {files} files, more than the limit of {limit} per day")]
    TooManyFiles {
        /// The list URL.
        url: RedactedUrl,
        /// Files listed (valid ones for the day).
        files: usize,
        /// The most files a day may have (`POS_MAX_FILES_PER_DAY`).
        limit: usize,
    },
    /// The list body was larger than any real list. Permanent.
    #[error("{url}: list body larger than {limit} bytes")]
    ListTooLarge {
        /// The list URL.
        url: RedactedUrl,
        /// [`super::MAX_LIST_BYTES`]: the largest list body read.
        limit: usize,
    },
    /// A file was larger than the configured limit; the download was stopped and nothing kept.
    /// Permanent: the same file will be as large next time.
    #[error("{url}: file larger than the limit of {limit} bytes (declared: {declared:?})")]
    TooLarge {
        /// The file URL.
        url: RedactedUrl,
        /// The largest file accepted, in bytes (`POS_MAX_FILE_BYTES`).
        limit: u64,
        /// The size the server declared, when it did.
        declared: Option<u64>,
    },
    /// The body ended before the declared Content-Length. Transient.
    #[error("{url}: body truncated after {received} of {expected} bytes")]
    Truncated {
        /// The file URL.
        url: RedactedUrl,
        /// The declared length.
        expected: u64,
        /// How many bytes did arrive before the body ended.
        received: u64,
    },
    /// Raw storage failed; transient or not as the storage error says.
    #[error("storing {file}: {source}")]
    Storage {
        /// The file name.
        file: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
}

impl FetchError {
    /// A request error for `url`, with the client's own copy of the URL removed (it would
    /// carry the credentials); a redirect refused by our policy becomes
    /// [`FetchError::Redirect`].
    pub fn request(url: &reqwest::Url, source: reqwest::Error) -> FetchError {
        let refused = std::error::Error::source(&source)
            .and_then(|inner| inner.downcast_ref::<super::RedirectRefused>())
            .map(|r| r.to_string());
        if let Some(reason) = refused {
            return FetchError::Redirect {
                url: url.into(),
                reason,
            };
        }
        FetchError::Request {
            url: url.into(),
            source: source.without_url(),
        }
    }

    /// True when another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Config { .. }
            | FetchError::ListTooLarge { .. }
            | FetchError::Redirect { .. }
            | FetchError::TooManyFiles { .. }
            | FetchError::TooLarge { .. } => false,
            FetchError::Request { source, .. } => !(source.is_builder() || source.is_redirect()),
            FetchError::Status { status, .. } => is_transient_status(*status),
            FetchError::ListBody { source, .. } => source.is_transient(),
            FetchError::Truncated { .. } => true,
            FetchError::Storage { source, .. } => source.is_transient(),
        }
    }

    /// True when no attempt can succeed: the job should fail without retrying.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// True when the error is a timeout (connect or total).
    pub fn is_timeout(&self) -> bool {
        matches!(self, FetchError::Request { source, .. } if source.is_timeout())
    }
}

/// Statuses worth another attempt.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 404 | 408 | 425 | 429 | 500..=599)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_transient_and_permanent() {
        for s in [404, 408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [300, 301, 400, 401, 403, 410, 413, 418] {
            assert!(!is_transient_status(s), "{s}");
        }
    }

    #[test]
    fn size_and_hostile_errors_are_permanent_truncation_is_not() {
        let url = RedactedUrl::new("http://x/");
        assert!(
            FetchError::TooLarge {
                url: url.clone(),
                limit: 1,
                declared: None
            }
            .is_permanent()
        );
        assert!(
            FetchError::Truncated {
                url: url.clone(),
                expected: 2,
                received: 1
            }
            .is_transient()
        );
        let hostile = FetchError::ListBody {
            url,
            source: ListBodyError::Hostile {
                reference: "../x".into(),
                reason: super::super::RefError::DotDot,
            },
        };
        assert!(hostile.is_permanent());
    }
}

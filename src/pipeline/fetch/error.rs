//! Errors of listing and downloading, each saying whether another attempt may succeed.

use crate::pipeline::storage::StorageError;

use super::listing::ListBodyError;

/// A failure of [`PosClient`](super::PosClient).
///
/// [`FetchError::is_transient`] decides what the job does: transient errors are retried (first
/// in-process per the retry policy, then by the queue), permanent ones fail the job at once.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A setting is unusable (a URL that is not http(s)). Permanent.
    #[error("invalid fetch setting {name}: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be completed: connect failure, timeout, reset, body cut off.
    /// Transient, except for errors building the request or following redirects.
    #[error("{url}: {source}")]
    Request {
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx status. Transient for 404 (a listed file not there yet), 408, 425, 429 and
    /// 5xx; permanent for other statuses.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The list body was not a usable list; transient unless it held a hostile reference.
    #[error("{url}: {source}")]
    ListBody {
        /// The list URL.
        url: String,
        /// What was wrong with the body.
        #[source]
        source: ListBodyError,
    },
    /// The list body was larger than any real list. Permanent.
    #[error("{url}: list body larger than {limit} bytes")]
    ListTooLarge {
        /// The list URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A file was larger than the configured limit; the download was stopped and nothing kept.
    /// Permanent: the same file will be as large next time.
    #[error("{url}: file larger than the limit of {limit} bytes (declared: {declared:?})")]
    TooLarge {
        /// The file URL.
        url: String,
        /// The limit.
        limit: u64,
        /// The size the server declared, when it did.
        declared: Option<u64>,
    },
    /// The body ended before the declared Content-Length. Transient.
    #[error("{url}: body truncated after {received} of {expected} bytes")]
    Truncated {
        /// The file URL.
        url: String,
        /// The declared length.
        expected: u64,
        /// What arrived.
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
    /// True when another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Config { .. }
            | FetchError::ListTooLarge { .. }
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
        let url = "http://x/".to_string();
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

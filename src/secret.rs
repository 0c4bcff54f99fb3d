//! Settings that may hold credentials, and the redaction that keeps them out of every text a
//! person or another program can read (failures, job logs, the result cache, monitor entries,
//! stderr, `/metrics`).
//!
//! A URL carries secrets in two places: its user-info (`user:password@`) and its query
//! (`?token=…`); a fragment is treated like a query. [`redact_url`] replaces both with `***`
//! and keeps the scheme, host, port and path, which is what a person needs to tell which
//! server failed. [`SecretUrl`] wraps a setting so that `Debug` and `Display` print only the
//! redacted form; the real value is reachable through [`SecretUrl::expose`], which the code
//! that connects calls and nothing else should. [`RedactedUrl`] is the form errors carry: it
//! can only be built by redacting.

use std::fmt;

/// What replaces a redacted part.
pub const MASK: &str = "***";

/// `url` with its user-info, query and fragment replaced by [`MASK`].
///
/// Works on text, not on a parsed URL, so it also covers what a URL parser refuses (MongoDB
/// seed lists `mongodb://u:p@h1,h2/db`, Redis URLs with odd passwords). To fail safe, every
/// character up to the **last** `@` before the query is taken as user-info, so a password
/// holding an unencoded `/` or `@` is still hidden (a path with an `@` loses a little more
/// than it had to).
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.find(['?', '#']) {
        Some(at) => (&url[..at], Some(&url[at..at + 1])),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len().min(256));
    let rest = match before_query.find("://") {
        Some(at) => {
            out.push_str(&before_query[..at + 3]);
            &before_query[at + 3..]
        }
        None => before_query,
    };
    match rest.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&rest[at..]);
        }
        None => out.push_str(rest),
    }
    if let Some(mark) = query {
        out.push_str(mark);
        out.push_str(MASK);
    }
    out
}

/// A URL that may carry credentials. `Debug` and `Display` show [`redact_url`]'s form.
///
/// `T` is the URL's representation: `String` for Redis and MongoDB URLs handed to their
/// drivers, [`reqwest::Url`] for the POS server.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl<T = String>(T);

impl<T: AsRef<str>> SecretUrl<T> {
    /// Wraps `url` as given (nothing is parsed or checked here); `Debug` and `Display` show
    /// it redacted from then on.
    pub fn new(url: T) -> SecretUrl<T> {
        SecretUrl(url)
    }

    /// The real value, credentials included: only for handing to a client that connects.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The redacted form, for errors and logs.
    pub fn redacted(&self) -> RedactedUrl {
        RedactedUrl::new(self.0.as_ref())
    }
}

impl<T: AsRef<str>> fmt::Debug for SecretUrl<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", redact_url(self.0.as_ref()))
    }
}

impl<T: AsRef<str>> fmt::Display for SecretUrl<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.0.as_ref()))
    }
}

/// A URL with its credentials already removed: the only URL form errors and log fields carry.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Redacts `url` (see [`redact_url`]).
    pub fn new(url: &str) -> RedactedUrl {
        RedactedUrl(redact_url(url))
    }

    /// The redacted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&reqwest::Url> for RedactedUrl {
    fn from(url: &reqwest::Url) -> RedactedUrl {
        RedactedUrl::new(url.as_str())
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_and_query_are_masked_host_and_path_kept() {
        for (raw, shown) in [
            (
                "http://posuser:PosS3cret@host:8080/a/fetch_list2.php?token=T0KEN",
                "http://***@host:8080/a/fetch_list2.php?***",
            ),
            ("https://host/list", "https://host/list"),
            ("redis://:hunter2@redis:6379/1", "redis://***@redis:6379/1"),
            (
                "mongodb://app:pw@m1:27017,m2:27017/biggs?authSource=admin",
                "mongodb://***@m1:27017,m2:27017/biggs?***",
            ),
            ("http://host/x#frag-token", "http://host/x#***"),
            // An unencoded `/` or `@` in the password still hides all of it.
            ("redis://u:pa/ss@w@host/0", "redis://***@host/0"),
            ("no scheme user:pw@host", "***@host"),
            ("", ""),
        ] {
            assert_eq!(redact_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let url = reqwest::Url::parse("http://u:PosS3cret@h/l?token=T0KEN").unwrap();
        let secret = SecretUrl::new(url);
        for text in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{:?}", secret.redacted()),
            secret.redacted().to_string(),
        ] {
            assert!(
                !text.contains("PosS3cret") && !text.contains("T0KEN"),
                "{text}"
            );
            assert!(text.contains("http://***@h/l?***"), "{text}");
        }
        assert_eq!(
            secret.expose().as_str(),
            "http://u:PosS3cret@h/l?token=T0KEN"
        );
        let s = SecretUrl::new("redis://:pw@r/1".to_string());
        assert_eq!(format!("{s:?}"), "SecretUrl(\"redis://***@r/1\")");
    }
}

//! Reading the list endpoint's body: a comma-separated list of file references, or one of the
//! ways the server says something went wrong while still answering 200.
//!
//! # Decisions (the legacy code leaves these open)
//!
//! A leading UTF-8 byte-order mark is dropped first (PHP scripts saved with one print it).
//! Then the body is classified in this order; the first rule that matches decides:
//!
//! 1. **Empty** (only whitespace and commas): the day has no files, `Ok` with an empty list.
//! 2. **HTML** (`<!doctype html` or `<html`, any case): a transient [`ListBodyError::Html`].
//!    The legacy Python treated this as "no files" and the day was silently lost; here the job is
//!    retried, since a page where a list should be is a server or proxy fault.
//! 3. Otherwise the body is split on `,`, items are trimmed, empty items dropped (as the Node
//!    port does), and each item is validated as a [`FileRef`]. When every item is valid, the
//!    list is accepted (see below for the files of other days).
//! 4. **Error text**: some item is not a valid reference and the body contains an error word
//!    ([`ERROR_MARKERS`], e.g. the observed `An error occurred, check your Internet or contact
//!    a technician.`): a transient [`ListBodyError::ErrorText`]. Nothing from such a body is
//!    used, not even its valid items.
//! 5. **"No files" text** (`no file`, `no list`, as the Node port reads them) with no valid
//!    item at all: `Ok` with an empty list.
//! 6. **Hostile reference**: some item fails a safety rule ([`RefError::is_hostile`]: `..`, an
//!    absolute path, `\`, `%`, a control character, too long…): a *permanent*
//!    [`ListBodyError::Hostile`]. The whole list is refused, valid items included: a server
//!    that lists traversal paths is broken or compromised, its list is not trusted, and asking
//!    again will not fix it; an operator has to look. No path from it is ever touched.
//! 7. **Other text** (prose without a known error word): a transient
//!    [`ListBodyError::Unexpected`].
//! 8. What remains are plain names that are not export names (`fetch_list2.php`,
//!    `readme.txt`): they are skipped and reported in [`Listing::skipped`], like the legacy
//!    combiner ignored names with too few parts; the valid items are accepted.
//!
//! Files of **another branch, POS or date** are skipped and reported ([`SkipReason::OtherDay`]),
//! not treated as an error: the names are safe, and failing the day for a neighbour's file
//! would block it for good. Duplicate references, and two references with the same file name
//! (they would land on the same storage path), keep the first and skip the rest. The listed
//! order is kept otherwise.

use crate::pipeline::day::{Branch, BusinessDate, PosNo};

use super::reference::{FileRef, RefError};

/// Lower-case words that mark a body as an error message (rule 4).
pub const ERROR_MARKERS: &[&str] = &[
    "error",
    "check your internet",
    "technician",
    "exception",
    "fatal",
    "warning",
    "failed",
    "unavailable",
    "timed out",
    "timeout",
    "denied",
];

/// Lower-case phrases of a body that says the day has no files (rule 5).
pub const NO_FILES_MARKERS: &[&str] = &["no file", "no list"];

/// The usable part of a list response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The day's files, in listed order: download these.
    pub files: Vec<FileRef>,
    /// Items not used, each with the reason: worth reporting in the job's result.
    pub skipped: Vec<Skipped>,
}

impl Listing {
    /// True when there is nothing to download.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A listed item that was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The item as listed (trimmed, shortened to 255 characters, control characters escaped).
    pub reference: String,
    /// Why it was not used: another day's file, listed twice, or not an export file name.
    pub reason: SkipReason,
}

/// Why a listed item was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A valid export file of another branch, POS or date.
    OtherDay,
    /// Listed more than once.
    Duplicate,
    /// Another listed reference has the same file name (the first one is kept).
    SameFileName,
    /// A harmless name that is not an export file name.
    NotExportName(RefError),
}

/// A list body that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListBodyError {
    /// An HTML page instead of a list.
    #[error("HTML page instead of a file list: {snippet:?}")]
    Html {
        /// The start of the body.
        snippet: String,
    },
    /// An error message instead of a list.
    #[error("error message instead of a file list: {snippet:?}")]
    ErrorText {
        /// The start of the body.
        snippet: String,
    },
    /// A reference that must never be used: the whole list is refused.
    #[error("hostile file reference {reference:?}: {reason}")]
    Hostile {
        /// The reference (shortened, control characters escaped).
        reference: String,
        /// Which rule it broke.
        reason: RefError,
    },
    /// Text that is neither a list nor a known message.
    #[error("unexpected list body: {snippet:?}")]
    Unexpected {
        /// The start of the body.
        snippet: String,
    },
}

impl ListBodyError {
    /// True when asking again may give a usable list; false only for [`ListBodyError::Hostile`].
    pub fn is_transient(&self) -> bool {
        !matches!(self, ListBodyError::Hostile { .. })
    }
}

/// The start of a text, for messages: at most `max` characters, control characters escaped.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Classifies a list body for the requested day (rules in the module docs).
///
/// # Errors
///
/// [`ListBodyError`] when the body is not a usable list.
pub fn parse_list(
    body: &str,
    branch: &Branch,
    pos: PosNo,
    date: BusinessDate,
) -> Result<Listing, ListBodyError> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let lower = body.to_ascii_lowercase();
    let body_snippet = || snippet(body.trim(), 120);
    if lower.contains("<!doctype html") || lower.contains("<html") {
        return Err(ListBodyError::Html {
            snippet: body_snippet(),
        });
    }
    let items: Vec<&str> = body
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let parsed: Vec<(&str, Result<FileRef, RefError>)> =
        items.iter().map(|&s| (s, FileRef::parse(s))).collect();
    let has_invalid = parsed.iter().any(|(_, r)| r.is_err());
    if has_invalid {
        if ERROR_MARKERS.iter().any(|m| lower.contains(m)) {
            return Err(ListBodyError::ErrorText {
                snippet: body_snippet(),
            });
        }
        let none_valid = parsed.iter().all(|(_, r)| r.is_err());
        if none_valid && NO_FILES_MARKERS.iter().any(|m| lower.contains(m)) {
            return Ok(Listing::default());
        }
        if let Some((item, Err(reason))) = parsed
            .iter()
            .find(|(_, r)| r.as_ref().is_err_and(RefError::is_hostile))
        {
            return Err(ListBodyError::Hostile {
                reference: snippet(item, 255),
                reason: reason.clone(),
            });
        }
        let is_prose = |r: &Result<FileRef, RefError>| matches!(r, Err(e) if !matches!(e, RefError::NotExportName { .. }));
        if parsed.iter().any(|(_, r)| is_prose(r)) {
            return Err(ListBodyError::Unexpected {
                snippet: body_snippet(),
            });
        }
    }
    let mut listing = Listing::default();
    for (item, result) in parsed {
        let skip = |reason| Skipped {
            reference: snippet(item, 255),
            reason,
        };
        let file = match result {
            Ok(file) => file,
            Err(reason) => {
                listing
                    .skipped
                    .push(skip(SkipReason::NotExportName(reason)));
                continue;
            }
        };
        let reason = if !file.name().belongs_to(branch, pos, date) {
            Some(SkipReason::OtherDay)
        } else if listing.files.iter().any(|f| f.as_str() == file.as_str()) {
            Some(SkipReason::Duplicate)
        } else if listing
            .files
            .iter()
            .any(|f| f.name().as_str() == file.name().as_str())
        {
            Some(SkipReason::SameFileName)
        } else {
            None
        };
        match reason {
            Some(reason) => listing.skipped.push(skip(reason)),
            None => listing.files.push(file),
        }
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body the legacy list endpoint was seen to return (`fetch_list2.php` in the samples).
    const OBSERVED_ERROR: &str = "An error occurred, check your Internet or contact a technician.";

    fn day() -> (Branch, PosNo, BusinessDate) {
        (
            Branch::parse("BETA").expect("branch"),
            PosNo::new(1).expect("pos"),
            BusinessDate::parse("2026-02-09").expect("date"),
        )
    }

    fn parse(body: &str) -> Result<Listing, ListBodyError> {
        let (b, p, d) = day();
        parse_list(body, &b, p, d)
    }

    fn names(listing: &Listing) -> Vec<&str> {
        listing.files.iter().map(FileRef::as_str).collect()
    }

    const RD5000: &str = "a_BETA_1_rd5000_2026-02-09_20-00_.csv";
    const RD5500: &str = "a_BETA_1_rd5500_2026-02-09_20-00_.csv";

    #[test]
    fn a_comma_list_is_trimmed_and_empty_items_dropped() {
        let listing = parse(&format!(" {RD5000} ,\n{RD5500},, \r\n")).expect("list");
        assert_eq!(names(&listing), [RD5000, RD5500]);
        assert!(listing.skipped.is_empty());
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let listing = parse(&format!("\u{feff}{RD5000},{RD5500}")).expect("list");
        assert_eq!(names(&listing), [RD5000, RD5500]);
        assert!(parse("\u{feff}").expect("empty").is_empty());
    }

    #[test]
    fn an_empty_body_is_a_day_without_files() {
        for body in ["", "  \n", ",", " , ,"] {
            let listing = parse(body).expect("empty");
            assert!(listing.is_empty() && listing.skipped.is_empty(), "{body:?}");
        }
    }

    #[test]
    fn html_is_transient_in_any_case() {
        for body in [
            "<!doctype html><html><body>Maintenance</body></html>",
            "<!DOCTYPE HTML>\n<html>",
            "  <html><head></head></html>",
            "<!DocType Html>",
        ] {
            let err = parse(body).expect_err(body);
            assert!(matches!(err, ListBodyError::Html { .. }), "{body:?}");
            assert!(err.is_transient());
        }
    }

    #[test]
    fn the_observed_error_body_is_transient() {
        let err = parse(OBSERVED_ERROR).expect_err("error body");
        assert!(matches!(err, ListBodyError::ErrorText { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("An error occurred"));
    }

    #[test]
    fn error_words_win_even_next_to_valid_names_or_paths() {
        for body in [
            format!("{RD5000},Fatal error: database gone"),
            "Warning: fopen(/var/www/data/x.csv): failed to open stream".to_string(),
            "ERROR".to_string(),
        ] {
            let err = parse(&body).expect_err(&body);
            assert!(matches!(err, ListBodyError::ErrorText { .. }), "{body:?}");
        }
    }

    #[test]
    fn no_files_text_is_an_empty_day() {
        for body in ["No files found", "no list", "NO FILES"] {
            assert!(parse(body).expect(body).is_empty());
        }
    }

    #[test]
    fn a_hostile_item_refuses_the_whole_list_permanently() {
        for hostile in [
            "../x",
            "/etc/passwd",
            "a_B_1_rd5000_2025-01-01_..%2F_.csv",
            "..\\a_BETA_1_rd5000_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5000_2026-02-09_20-00_.csv\0",
        ] {
            let body = format!("{RD5000},{hostile},{RD5500}");
            let err = parse(&body).expect_err(&body);
            assert!(matches!(err, ListBodyError::Hostile { .. }), "{body:?}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn other_prose_is_transient() {
        let err = parse("Server busy, come back later").expect_err("prose");
        assert!(matches!(err, ListBodyError::Unexpected { .. }), "{err:?}");
        assert!(err.is_transient());
    }

    #[test]
    fn other_days_duplicates_and_odd_names_are_skipped_and_reported() {
        let body = [
            RD5000,
            "a_BETA_2_rd5000_2026-02-09_20-00_.csv",
            "a_BMC_1_rd5000_2026-02-09_20-00_.csv",
            "a_BETA_1_rd5000_2026-02-10_20-00_.csv",
            RD5000,
            &format!("sub/{RD5000}"),
            "fetch_list2.php",
            RD5500,
        ]
        .join(",");
        let listing = parse(&body).expect("list");
        assert_eq!(names(&listing), [RD5000, RD5500]);
        let reasons: Vec<(&str, &SkipReason)> = listing
            .skipped
            .iter()
            .map(|s| (s.reference.as_str(), &s.reason))
            .collect();
        assert_eq!(reasons.len(), 6);
        assert_eq!(reasons[0].1, &SkipReason::OtherDay);
        assert_eq!(reasons[1].1, &SkipReason::OtherDay);
        assert_eq!(reasons[2].1, &SkipReason::OtherDay);
        assert_eq!(reasons[3], (RD5000, &SkipReason::Duplicate));
        assert_eq!(reasons[4].1, &SkipReason::SameFileName);
        assert_eq!(reasons[5].0, "fetch_list2.php");
        assert!(matches!(reasons[5].1, SkipReason::NotExportName(_)));
    }

    #[test]
    fn snippets_are_short_and_escaped() {
        assert_eq!(snippet("a\0b\nc", 10), "a\\u{0}b\\nc");
        assert_eq!(snippet(&"x".repeat(500), 120).len(), 120);
    }
}

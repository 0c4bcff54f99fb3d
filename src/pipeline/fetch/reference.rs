//! File references as the list endpoint returns them, validated before anything uses them.
//!
//! A reference ends up in two places: appended to the download base URL, and (its last segment)
//! as a file name in raw storage. Both are dangerous with untrusted text: `../`, an absolute
//! path, a backslash, a percent-encoded `/` or a NUL could reach another URL or another file.
//! So a reference is accepted only when it is plainly harmless, and a [`FileRef`] cannot be
//! built any other way.
//!
//! # Rules
//!
//! - 1 to [`FileRef::MAX_LEN`] bytes, only ASCII letters, digits, `_`, `-`, `.` and `/`. This
//!   refuses `%` (no percent-encoding tricks: the reference is used in the URL as is, and
//!   nothing ever decodes it), `\`, `:`, spaces, control characters and all non-ASCII text.
//! - Relative: no leading `/`; no empty segment (`a//b`, trailing `/`); no segment starting with
//!   `.` (hidden files); no `..` anywhere, even inside a segment, since no real name has one;
//!   at most [`FileRef::MAX_SEGMENTS`] segments. The legacy code never showed whether the
//!   endpoint returns bare names or relative paths, so simple relative paths are allowed.
//! - The last segment is an export file name ([`PosFileName`]).

use std::fmt;

use crate::pipeline::export_name::PosFileName;

/// Why a listed reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Nothing left after trimming.
    #[error("empty reference")]
    Empty,
    /// Longer than [`FileRef::MAX_LEN`] bytes.
    #[error("reference of {len} bytes is longer than {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest accepted, [`FileRef::MAX_LEN`].
        max: usize,
    },
    /// A control character (NUL, newline, DEL…).
    #[error("control character {ch:?}")]
    ControlChar {
        /// The first control character found, shown escaped in the message.
        ch: char,
    },
    /// A backslash (a Windows path separator).
    #[error("backslash")]
    Backslash,
    /// A `%` (percent-encoding could smuggle `/` or `..` past the other checks).
    #[error("percent sign (encoded characters are not accepted)")]
    PercentEncoded,
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// Contains `..` anywhere: a path that could climb out of the download base.
    #[error("'..' in the reference")]
    DotDot,
    /// A character outside letters, digits, `_ - . /`.
    #[error("character {ch:?} is not allowed")]
    BadChar {
        /// The first such character (one other than a space when there is one).
        ch: char,
    },
    /// `//` or a trailing `/`.
    #[error("empty path segment")]
    EmptySegment,
    /// A segment starting with `.`.
    #[error("hidden path segment")]
    HiddenSegment,
    /// More than [`FileRef::MAX_SEGMENTS`] segments.
    #[error("more than {max} path segments")]
    TooDeep {
        /// The most accepted, [`FileRef::MAX_SEGMENTS`].
        max: usize,
    },
    /// Harmless text, but the last segment is not `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`.
    #[error("not an export file name: {reason}")]
    NotExportName {
        /// Which part is wrong.
        reason: &'static str,
    },
}

impl RefError {
    /// True when the reference looks like an attempt to reach another path or URL (or is too
    /// broken to be anything else): it must never be used, and a list holding one is not
    /// trusted. False for a plain but unrecognised name (`fetch_list2.php`, `readme.txt`) and
    /// for prose with spaces (an error message without a known error word).
    pub fn is_hostile(&self) -> bool {
        match self {
            RefError::Empty | RefError::NotExportName { .. } => false,
            RefError::BadChar { ch } => !ch.is_whitespace(),
            _ => true,
        }
    }
}

/// A validated reference from the list endpoint: safe to append to the base URL, and its last
/// segment is a [`PosFileName`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRef {
    reference: String,
    name: PosFileName,
}

impl FileRef {
    /// The longest accepted reference, in bytes (a real name has about 45).
    pub const MAX_LEN: usize = 255;
    /// The most `/`-separated segments accepted.
    pub const MAX_SEGMENTS: usize = 8;

    /// Validates one reference exactly as given (the list parser trims before calling this;
    /// surrounding spaces here are refused).
    ///
    /// # Errors
    ///
    /// The first [`RefError`] found, hostile ones (see [`RefError::is_hostile`]) before the
    /// file-name check.
    pub fn parse(reference: &str) -> Result<FileRef, RefError> {
        if reference.is_empty() {
            return Err(RefError::Empty);
        }
        if reference.len() > Self::MAX_LEN {
            return Err(RefError::TooLong {
                len: reference.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(ch) = reference.chars().find(|c| c.is_control()) {
            return Err(RefError::ControlChar { ch });
        }
        if reference.contains('\\') {
            return Err(RefError::Backslash);
        }
        if reference.contains('%') {
            return Err(RefError::PercentEncoded);
        }
        if reference.starts_with('/') {
            return Err(RefError::Absolute);
        }
        if reference.contains("..") {
            return Err(RefError::DotDot);
        }
        let is_safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
        let mut bad = reference.chars().filter(|&c| !is_safe(c));
        if let Some(first) = bad.next() {
            let ch = if first.is_whitespace() {
                bad.find(|c| !c.is_whitespace()).unwrap_or(first)
            } else {
                first
            };
            return Err(RefError::BadChar { ch });
        }
        let segments: Vec<&str> = reference.split('/').collect();
        if segments.len() > Self::MAX_SEGMENTS {
            return Err(RefError::TooDeep {
                max: Self::MAX_SEGMENTS,
            });
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(RefError::EmptySegment);
        }
        if segments.iter().any(|s| s.starts_with('.')) {
            return Err(RefError::HiddenSegment);
        }
        let last = segments.last().copied().unwrap_or(reference);
        let name =
            PosFileName::parse(last).map_err(|e| RefError::NotExportName { reason: e.reason })?;
        Ok(FileRef {
            reference: reference.to_string(),
            name,
        })
    }

    /// The reference as listed (after trimming).
    pub fn as_str(&self) -> &str {
        &self.reference
    }

    /// Its last segment, parsed: the name the file is stored under.
    pub fn name(&self) -> &PosFileName {
        &self.name
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::day::{Branch, BusinessDate, PosNo};

    const GOOD: &str = "a_AYALA-FRN_1_rd5000_2026-02-09_19-59_.csv";

    #[test]
    fn a_legacy_name_is_parsed_into_its_parts() {
        let r = FileRef::parse(GOOD).expect("valid");
        assert_eq!(r.as_str(), GOOD);
        let n = r.name();
        assert_eq!(n.as_str(), GOOD);
        assert_eq!(n.branch().as_str(), "AYALA-FRN");
        assert_eq!(n.pos().get(), 1);
        assert_eq!(n.file_type(), "rd5000");
        assert_eq!(n.date().to_string(), "2026-02-09");
        assert_eq!(n.time(), "19-59");
    }

    #[test]
    fn every_sample_type_parses() {
        for t in [
            "rd5000", "rd5500", "rd1800", "discount", "rd5800", "rd5900", "blpr",
        ] {
            let name = format!("a_BETA_2_{t}_2026-02-09_20-00_.csv");
            let n = PosFileName::parse(&name).expect("valid");
            assert_eq!(n.file_type(), t);
            assert_eq!(n.pos().get(), 2);
        }
    }

    #[test]
    fn a_relative_path_keeps_its_last_segment_as_name() {
        let r = FileRef::parse(&format!("data_archive/2026/{GOOD}")).expect("valid");
        assert_eq!(r.name().as_str(), GOOD);
        assert_eq!(r.as_str(), format!("data_archive/2026/{GOOD}"));
    }

    #[test]
    fn hostile_references_are_refused_as_hostile() {
        let long = format!("{}{GOOD}", "x/".repeat(200));
        let cases: Vec<(String, RefError)> = vec![
            ("../x".into(), RefError::DotDot),
            (format!("../{GOOD}"), RefError::DotDot),
            (format!("sub/../../{GOOD}"), RefError::DotDot),
            ("/etc/passwd".into(), RefError::Absolute),
            (format!("/{GOOD}"), RefError::Absolute),
            (
                "a_B_1_rd5000_2025-01-01_..%2F_.csv".into(),
                RefError::PercentEncoded,
            ),
            ("%2e%2e%2fetc%2fpasswd".into(), RefError::PercentEncoded),
            (format!("sub%2F{GOOD}"), RefError::PercentEncoded),
            (format!("..\\{GOOD}"), RefError::Backslash),
            (format!("sub\\{GOOD}"), RefError::Backslash),
            (format!("{GOOD}\0.txt"), RefError::ControlChar { ch: '\0' }),
            (format!("{GOOD}\n"), RefError::ControlChar { ch: '\n' }),
            (
                long.clone(),
                RefError::TooLong {
                    len: long.len(),
                    max: 255,
                },
            ),
            (format!("C:{GOOD}"), RefError::BadChar { ch: ':' }),
            (
                format!("http://evil.example/{GOOD}"),
                RefError::BadChar { ch: ':' },
            ),
            (format!("~/{GOOD}"), RefError::BadChar { ch: '~' }),
            (format!("sub//{GOOD}"), RefError::EmptySegment),
            (format!("{GOOD}/"), RefError::EmptySegment),
            (format!(".hidden/{GOOD}"), RefError::HiddenSegment),
            (format!("./{GOOD}"), RefError::HiddenSegment),
            (
                format!("{}{GOOD}", "d/".repeat(8)),
                RefError::TooDeep { max: 8 },
            ),
            (format!("a b;{GOOD}"), RefError::BadChar { ch: ';' }),
            (
                "a_B_1_rd5000_2025-01-01_é_.csv".into(),
                RefError::BadChar { ch: 'é' },
            ),
        ];
        for (reference, expected) in cases {
            let err = FileRef::parse(&reference).expect_err(&reference);
            assert_eq!(err, expected, "{reference:?}");
            assert!(err.is_hostile(), "{reference:?} should be hostile");
        }
    }

    #[test]
    fn harmless_but_unrecognised_text_is_not_hostile() {
        for (reference, hostile) in [
            ("fetch_list2.php", false),
            ("readme.txt", false),
            ("An error occurred", false),
            ("", false),
        ] {
            let err = FileRef::parse(reference).expect_err(reference);
            assert_eq!(err.is_hostile(), hostile, "{reference:?}: {err}");
        }
    }

    #[test]
    fn names_not_following_the_convention_are_refused() {
        for name in [
            "a_AYALA-FRN_1_rd5000_2026-02-09_19-59.csv",
            "b_AYALA-FRN_1_rd5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_19-59_.CSV",
            "a_AYALA_FRN_1_rd5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_01_rd5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_0_rd5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_1__2026-02-09_19-59_.csv",
            "a_AYALA-FRN_1_rd-5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-30_19-59_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_24-00_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_19-60_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_1959_.csv",
            "a__1_rd5000_2026-02-09_19-59_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_.csv",
            "a_AYALA-FRN_1_rd5000_2026-02-09_19-59_x_.csv",
        ] {
            let err = FileRef::parse(name).expect_err(name);
            assert!(
                matches!(err, RefError::NotExportName { .. }),
                "{name:?}: {err:?}"
            );
            assert!(!err.is_hostile());
        }
    }

    proptest::proptest! {
        /// Anything accepted is plainly harmless, whatever the input.
        #[test]
        fn accepted_references_are_harmless(
            s in "[a-zA-Z0-9_./%:~ -]{0,12}(a_BETA_1_rd5000_2026-02-09_20-00_.csv)?",
        ) {
            if let Ok(r) = FileRef::parse(&s) {
                let ok = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
                proptest::prop_assert!(r.as_str().chars().all(ok));
                proptest::prop_assert!(!r.as_str().contains(".."));
                proptest::prop_assert!(!r.as_str().starts_with('/'));
                proptest::prop_assert!(r.as_str().split('/').all(|seg| !seg.is_empty() && !seg.starts_with('.')));
                proptest::prop_assert!(r.as_str().ends_with(r.name().as_str()));
            }
        }
    }

    #[test]
    fn membership_compares_branch_pos_and_date() {
        let n = PosFileName::parse(GOOD).expect("valid");
        let branch = Branch::parse("AYALA-FRN").expect("branch");
        let other = Branch::parse("AYALA").expect("branch");
        let one = PosNo::new(1).expect("pos");
        let two = PosNo::new(2).expect("pos");
        let day = BusinessDate::parse("2026-02-09").expect("date");
        let next = BusinessDate::parse("2026-02-10").expect("date");
        assert!(n.belongs_to(&branch, one, day));
        assert!(!n.belongs_to(&other, one, day));
        assert!(!n.belongs_to(&branch, two, day));
        assert!(!n.belongs_to(&branch, one, next));
    }
}

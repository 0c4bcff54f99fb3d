//! The name of one POS export file, `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`.
//!
//! Fetch validates listed names with it, raw storage keys files by it, and the combiner groups
//! files by it. It lives apart from all three so that none depends on another for it: `fetch`
//! writes into `storage`, and `storage` only needs to know what a file is called.
//!
//! There is one parser, [`ExportName::parse`], with two sets of [`Rules`]: the strict ones
//! behind [`PosFileName`] (the name decides where a file is stored, so every part is checked)
//! and the legacy combiner's lenient ones, which the parity tests hold the combiner to.

use std::fmt;

use chrono::NaiveDate;

use crate::pipeline::day::{Branch, BusinessDate, PosNo};

/// How much of a name [`ExportName::parse`] checks.
#[derive(Debug, Clone, Copy)]
pub enum Rules {
    /// Fetch and storage: the prefix `a`, the trailing `_.csv`, exactly seven parts, a valid
    /// branch code and POS number, a short alphanumeric type (unknown types are accepted and
    /// left to the combiner), a calendar date and an `HH-MM` time.
    Strict,
    /// The legacy combiner's reading, kept for parity: the `.csv` extension, at least five
    /// parts, the leading part and the time unchecked, any non-empty branch, a POS of digits
    /// (`01` stays `01` in `pos_text`), a type `known_type` accepts and a calendar date.
    Legacy {
        /// Whether a type part names an export type the caller can combine.
        known_type: fn(&str) -> bool,
    },
}

/// What a file name says about its file, as written in it (the combiner prints the POS and
/// the date as the name spelled them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportName {
    /// Branch code (part 1), for example `AYALA-FRN`.
    pub branch: String,
    /// POS number (part 2), as written in the name: the legacy CSV prints this text.
    pub pos_text: String,
    /// POS number as an integer.
    pub pos: u16,
    /// Export type (part 3), as written.
    pub file_type: String,
    /// Business date (part 4), as written.
    pub date_text: String,
    /// Business date, as a calendar date: grouping compares days, not spellings.
    pub date: NaiveDate,
    /// Upload time (part 5, `HH-MM`), empty when the name has no such part.
    pub time: String,
}

/// Why a file name is not an export name under the [`Rules`] applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name does not end in `.csv`.
    #[error("not a .csv file")]
    NotCsv,
    /// Fewer than five `_`-separated parts (legacy skipped these too; `fetch_list2.php` is one).
    #[error("fewer than five '_'-separated parts")]
    TooFewParts,
    /// The branch part is empty.
    #[error("empty branch code")]
    EmptyBranch,
    /// The POS part is not a number.
    #[error("POS {0:?} is not a number")]
    BadPos(String),
    /// The type part is not an export type.
    #[error("unknown file type {0:?}")]
    UnknownType(String),
    /// The date part is not a `YYYY-MM-DD` calendar date.
    #[error("date {0:?} is not YYYY-MM-DD")]
    BadDate(String),
    /// The file name is not valid UTF-8.
    #[error("file name is not UTF-8")]
    NotUtf8,
    /// Strict only: not `a_…_.csv`.
    #[error("expected the prefix 'a_' and the suffix '_.csv'")]
    Shape,
    /// Strict only: not exactly seven parts.
    #[error("expected 7 '_'-separated parts")]
    PartCount,
    /// Strict only: the branch is not a valid branch code.
    #[error("bad branch code")]
    BadBranch,
    /// Strict only: the time is not `HH-MM`.
    #[error("bad time (expected HH-MM)")]
    BadTime,
}

impl NameError {
    /// The short reason fetch reports for a name the strict rules refuse (the listing's skip
    /// reasons have always used these words).
    fn strict_reason(&self) -> &'static str {
        match self {
            NameError::NotCsv | NameError::Shape | NameError::NotUtf8 => {
                "expected the prefix 'a_' and the suffix '_.csv'"
            }
            NameError::TooFewParts | NameError::PartCount => "expected 7 '_'-separated parts",
            NameError::EmptyBranch | NameError::BadBranch => "bad branch code",
            NameError::BadPos(_) => "bad POS number",
            NameError::UnknownType(_) => "bad file type",
            NameError::BadDate(_) => "bad date",
            NameError::BadTime => "bad time (expected HH-MM)",
        }
    }
}

impl ExportName {
    /// Parses a bare file name (no directory part) under `rules`.
    ///
    /// Both rule sets split the name the same way (drop `.csv`, split on `_`, read branch,
    /// POS, type and date from parts 1–4 and the time from part 5) and check the parts in
    /// that order, so a name wrong in several places is refused for the same part whichever
    /// reader asked.
    ///
    /// # Errors
    ///
    /// A [`NameError`] naming the first wrong part.
    pub fn parse(name: &str, rules: Rules) -> Result<ExportName, NameError> {
        let strict = matches!(rules, Rules::Strict);
        let shaped =
            name.len() >= "a__.csv".len() && name.starts_with("a_") && name.ends_with("_.csv");
        if strict && !shaped {
            return Err(NameError::Shape);
        }
        let stem = name.strip_suffix(".csv").ok_or(NameError::NotCsv)?;
        let parts: Vec<&str> = stem.split('_').collect();
        if strict && parts.len() != 7 {
            return Err(NameError::PartCount);
        }
        if parts.len() < 5 {
            return Err(NameError::TooFewParts);
        }
        let (branch, pos_text, file_type, date_text) = (parts[1], parts[2], parts[3], parts[4]);
        let time = parts.get(5).copied().unwrap_or_default();

        let branch_ok = match rules {
            Rules::Strict => Branch::parse(branch).is_ok(),
            Rules::Legacy { .. } => !branch.is_empty(),
        };
        if !branch_ok {
            return Err(if strict {
                NameError::BadBranch
            } else {
                NameError::EmptyBranch
            });
        }
        let bad_pos = || NameError::BadPos(pos_text.to_string());
        let pos = match rules {
            Rules::Strict => PosNo::parse(pos_text).map(|p| u16::from(p.get())).ok(),
            Rules::Legacy { .. } => parse_pos(pos_text),
        }
        .ok_or_else(bad_pos)?;
        let type_ok = match rules {
            Rules::Strict => {
                !file_type.is_empty()
                    && file_type.len() <= PosFileName::MAX_TYPE_LEN
                    && file_type.bytes().all(|b| b.is_ascii_alphanumeric())
            }
            Rules::Legacy { known_type } => known_type(file_type),
        };
        if !type_ok {
            return Err(NameError::UnknownType(file_type.to_string()));
        }
        let date = match rules {
            Rules::Strict => BusinessDate::parse(date_text).ok().map(BusinessDate::naive),
            Rules::Legacy { .. } => parse_date(date_text),
        }
        .ok_or_else(|| NameError::BadDate(date_text.to_string()))?;
        if strict && !is_hh_mm(time) {
            return Err(NameError::BadTime);
        }
        Ok(ExportName {
            branch: branch.to_string(),
            pos_text: pos_text.to_string(),
            pos,
            file_type: file_type.to_string(),
            date_text: date_text.to_string(),
            date,
            time: time.to_string(),
        })
    }
}

/// A POS part made of digits only (any number of them, leading zeros allowed), as the legacy
/// combiner read it.
fn parse_pos(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses exactly `YYYY-MM-DD` (ten characters, zero-padded), as the POS writes it.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) {
        return None;
    }
    if !digits(8..10) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Why a bare file name is not an export file name (harmless text, wrong shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an export file name: {reason}")]
pub struct NotExportName {
    /// Which part is wrong.
    pub reason: &'static str,
}

/// A parsed export file name: `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`.
///
/// Stricter than the legacy combiner, which only split on `_` and checked nothing: here the
/// prefix `a`, the trailing `_.csv`, the date and the time must all be right, because the name
/// also decides where the file is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosFileName {
    name: String,
    branch: Branch,
    pos: PosNo,
    file_type: String,
    date: BusinessDate,
    time: String,
}

impl PosFileName {
    /// The longest accepted file type (`discount` has 8 characters).
    pub const MAX_TYPE_LEN: usize = 16;

    /// Parses a bare file name (no `/`).
    ///
    /// # Errors
    ///
    /// [`NotExportName`] naming the first wrong part.
    pub fn parse(name: &str) -> Result<PosFileName, NotExportName> {
        let fail = |e: NameError| NotExportName {
            reason: e.strict_reason(),
        };
        let parsed = ExportName::parse(name, Rules::Strict).map_err(fail)?;
        // The strict rules accepted these parts through the same day types, so these do not
        // fail; they are converted, not trusted.
        let branch = Branch::parse(&parsed.branch).map_err(|_| fail(NameError::BadBranch))?;
        let pos =
            PosNo::parse(&parsed.pos_text).map_err(|_| fail(NameError::BadPos(String::new())))?;
        let date = BusinessDate::parse(&parsed.date_text)
            .map_err(|_| fail(NameError::BadDate(String::new())))?;
        Ok(PosFileName {
            name: name.to_string(),
            branch,
            pos,
            file_type: parsed.file_type,
            date,
            time: parsed.time,
        })
    }

    /// The whole name, as listed.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The branch code in the name.
    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    /// The POS number in the name.
    pub fn pos(&self) -> PosNo {
        self.pos
    }

    /// The file type (`rd5000`, `blpr`…), as written; unknown types are accepted and left to
    /// the combiner.
    pub fn file_type(&self) -> &str {
        &self.file_type
    }

    /// The business date in the name.
    pub fn date(&self) -> BusinessDate {
        self.date
    }

    /// The upload time, `HH-MM`.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// True when the name is a file of this (branch, pos, date).
    pub fn belongs_to(&self, branch: &Branch, pos: PosNo, date: BusinessDate) -> bool {
        &self.branch == branch && self.pos == pos && self.date == date
    }
}

impl fmt::Display for PosFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `HH-MM` with HH below 24 and MM below 60.
fn is_hh_mm(time: &str) -> bool {
    let b = time.as_bytes();
    if b.len() != 5 || b[2] != b'-' {
        return false;
    }
    let two = |i: usize| {
        (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
            .then(|| (b[i] - b'0') * 10 + (b[i + 1] - b'0'))
    };
    matches!((two(0), two(3)), (Some(h), Some(m)) if h < 24 && m < 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: Rules = Rules::Legacy {
        known_type: |t| t == "rd5000",
    };

    fn strict_reason(name: &str) -> &'static str {
        PosFileName::parse(name).expect_err(name).reason
    }

    #[test]
    fn strict_rules_name_the_first_wrong_part_in_fetchs_words() {
        for (name, reason) in [
            ("a_.csv", "expected the prefix 'a_' and the suffix '_.csv'"),
            (
                "b_BMC_1_rd5000_2026-02-09_20-00_.csv",
                "expected the prefix 'a_' and the suffix '_.csv'",
            ),
            (
                "a_BMC_1_rd5000_2026-02-09_.csv",
                "expected 7 '_'-separated parts",
            ),
            ("a_bmc!_1_rd5000_2026-02-09_20-00_.csv", "bad branch code"),
            ("a_BMC_01_x_2026-02-30_20-00_.csv", "bad POS number"),
            ("a_BMC_1_rd-5000_2026-02-30_20-00_.csv", "bad file type"),
            ("a_BMC_1_rd5000_2026-02-30_20-00_.csv", "bad date"),
            (
                "a_BMC_1_rd5000_2026-02-09_24-00_.csv",
                "bad time (expected HH-MM)",
            ),
        ] {
            assert_eq!(strict_reason(name), reason, "{name}");
        }
        let n =
            PosFileName::parse("a_BMC_2_zz9_2026-02-09_20-00_.csv").expect("unknown types pass");
        assert_eq!(
            (n.branch().as_str(), n.pos().get(), n.file_type()),
            ("BMC", 2, "zz9")
        );
        assert_eq!(
            (n.date().to_string().as_str(), n.time()),
            ("2026-02-09", "20-00")
        );
    }

    #[test]
    fn legacy_rules_accept_what_the_legacy_combiner_read() {
        // No `a` prefix, no trailing `_`, no time, a zero-padded POS: legacy read all of it.
        let n = ExportName::parse("x_BMC_01_rd5000_2026-02-09.csv", LEGACY).expect("lenient");
        assert_eq!(
            (n.branch.as_str(), n.pos, n.pos_text.as_str()),
            ("BMC", 1, "01")
        );
        assert_eq!((n.date_text.as_str(), n.time.as_str()), ("2026-02-09", ""));
        assert!(PosFileName::parse("x_BMC_01_rd5000_2026-02-09.csv").is_err());
        // The type is the caller's to judge; strict accepts any short alphanumeric one.
        assert_eq!(
            ExportName::parse("a_BMC_1_blpr_2026-02-09_20-00_.csv", LEGACY),
            Err(NameError::UnknownType("blpr".into()))
        );
        assert!(ExportName::parse("a_BMC_1_blpr_2026-02-09_20-00_.csv", Rules::Strict).is_ok());
    }
}

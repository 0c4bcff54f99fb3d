//! The name of one POS export file, `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`.
//!
//! Fetch validates listed names with it and raw storage keys files by it. It lives apart from
//! both so that neither depends on the other for it: `fetch` writes into `storage`, and
//! `storage` only needs to know what a file is called.

use std::fmt;

use crate::pipeline::day::{Branch, BusinessDate, PosNo};

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
        let fail = |reason| Err(NotExportName { reason });
        let Some(inner) = name
            .strip_prefix("a_")
            .and_then(|rest| rest.strip_suffix("_.csv"))
        else {
            return fail("expected the prefix 'a_' and the suffix '_.csv'");
        };
        let parts: Vec<&str> = inner.split('_').collect();
        let [branch, pos, file_type, date, time] = parts[..] else {
            return fail("expected 7 '_'-separated parts");
        };
        let Ok(branch) = Branch::parse(branch) else {
            return fail("bad branch code");
        };
        let Ok(pos) = PosNo::parse(pos) else {
            return fail("bad POS number");
        };
        let type_ok = !file_type.is_empty()
            && file_type.len() <= Self::MAX_TYPE_LEN
            && file_type.bytes().all(|b| b.is_ascii_alphanumeric());
        if !type_ok {
            return fail("bad file type");
        }
        let Ok(date) = BusinessDate::parse(date) else {
            return fail("bad date");
        };
        if !is_hh_mm(time) {
            return fail("bad time (expected HH-MM)");
        }
        Ok(PosFileName {
            name: name.to_string(),
            branch,
            pos,
            file_type: file_type.to_string(),
            date,
            time: time.to_string(),
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

//! The three values that name a POS day, `{branch, pos, date}`, parsed once into newtypes.
//!
//! A job's data, a listed file name and a storage path all carry these values. Parsing them here,
//! with one set of rules, means every later use (a form field, a comparison, a directory name)
//! works on a value already known to be safe: a [`Branch`] can never hold `/` or `..`, so it can
//! be a path component without further checks.
//!
//! Rules (the legacy code states none; these follow the codes and names seen in the samples):
//!
//! - **Branch**: 1 to [`Branch::MAX_LEN`] ASCII letters, digits and `-`, not starting with `-`.
//!   No `_`, because `_` separates the parts of an export file name (`a_<BRANCH>_<POS>_<type>_<date>_<HH-MM>_.csv`). Case is kept and
//!   compared exactly.
//! - **POS**: a number from 1 to 99 written without leading zeros (the samples only have 1 and 2;
//!   the app sends a JSON number).
//! - **Date**: `YYYY-MM-DD`, a real calendar date.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A value of a POS day that does not follow the rules above. Always permanent: the same job
/// data fails the same way on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DayError {
    /// The branch code is empty, too long, or has a character other than letters, digits, `-`.
    #[error("invalid branch code {value:?}: {reason}")]
    Branch {
        /// The value as given (shortened to 64 characters).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The POS number is not 1 to 99 without leading zeros.
    #[error("invalid POS number {value:?}: expected 1 to 99")]
    Pos {
        /// The value as given (shortened to 64 characters).
        value: String,
    },
    /// The date is not a `YYYY-MM-DD` calendar date.
    #[error("invalid business date {value:?}: expected YYYY-MM-DD")]
    Date {
        /// The value as given (shortened to 64 characters).
        value: String,
    },
}

/// Keeps error values short: a hostile or broken input can be long.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

/// A branch code such as `AYALA-FRN` or `BETA`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Branch(String);

impl Branch {
    /// The longest accepted code. The longest legacy code has 9 characters.
    pub const MAX_LEN: usize = 32;

    /// Parses a branch code.
    ///
    /// # Errors
    ///
    /// [`DayError::Branch`] when the code breaks the rules in the module docs.
    pub fn parse(value: &str) -> Result<Branch, DayError> {
        let fail = |reason| {
            Err(DayError::Branch {
                value: shorten(value),
                reason,
            })
        };
        if value.is_empty() {
            return fail("empty");
        }
        if value.len() > Self::MAX_LEN {
            return fail("longer than 32 characters");
        }
        if value.starts_with('-') {
            return fail("starts with '-'");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return fail("only letters, digits and '-' are allowed");
        }
        Ok(Branch(value.to_string()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A POS (terminal) number of a branch, 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PosNo(u8);

impl PosNo {
    /// Checks a number, as it comes from a job's JSON data.
    ///
    /// # Errors
    ///
    /// [`DayError::Pos`] outside 1 to 99.
    pub fn new(value: u64) -> Result<PosNo, DayError> {
        match u8::try_from(value) {
            Ok(n @ 1..=99) => Ok(PosNo(n)),
            _ => Err(DayError::Pos {
                value: value.to_string(),
            }),
        }
    }

    /// Parses the decimal text form used in file names and form fields (`1`, `2`, never `01`).
    ///
    /// # Errors
    ///
    /// [`DayError::Pos`] for anything else.
    pub fn parse(value: &str) -> Result<PosNo, DayError> {
        let err = || DayError::Pos {
            value: shorten(value),
        };
        let canonical = !value.is_empty()
            && value.len() <= 2
            && value.bytes().all(|b| b.is_ascii_digit())
            && !value.starts_with('0');
        if !canonical {
            return Err(err());
        }
        value.parse::<u64>().map_err(|_| err()).and_then(PosNo::new)
    }

    /// The POS number, 1 to 99.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PosNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A business date, `YYYY-MM-DD`, checked against the calendar. Held as a calendar date, so
/// the MongoDB edge converts it without a case that cannot happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessDate(NaiveDate);

impl BusinessDate {
    /// Parses exactly `YYYY-MM-DD` (the legacy fetcher sends the first 10 characters of a date;
    /// cutting a longer value is the caller's choice, not done here).
    ///
    /// # Errors
    ///
    /// [`DayError::Date`] when the text is not that form or not a real date.
    pub fn parse(value: &str) -> Result<BusinessDate, DayError> {
        let err = || DayError::Date {
            value: shorten(value),
        };
        let b = value.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| {
            b[range]
                .iter()
                .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'))
        };
        let (year, month, day) = (num(0..4), num(5..7), num(8..10));
        if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(err());
        }
        let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(err)?;
        Ok(BusinessDate(date))
    }

    /// The year, 1 to 9999 (the date is parsed from four digits, and year 0 is refused).
    pub fn year(self) -> u16 {
        self.0.year() as u16
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.0.month() as u8
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u8 {
        self.0.day() as u8
    }

    /// The calendar date, for the edges that store or compare dates (MongoDB, readiness).
    pub fn naive(self) -> NaiveDate {
        self.0
    }
}

/// One POS day: what a job names, a fetch lists and an import replaces. The one shape of a
/// day past the JSON edge (job data) and up to the BSON edge (MongoDB documents), so every
/// step in between works on values already known to be valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Day {
    /// The branch code.
    pub branch: Branch,
    /// The till (POS number) whose export this is.
    pub pos: PosNo,
    /// The business date.
    pub date: BusinessDate,
}

impl Day {
    /// `branch|pos|date`: the `_id` of the day's `imports` record, and how logs name the day.
    pub fn record_id(&self) -> String {
        format!("{}|{}|{}", self.branch, self.pos, self.date)
    }
}

/// Gregorian month lengths.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

impl fmt::Display for BusinessDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.year(),
            self.month(),
            self.day()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one day type names the day in MongoDB exactly as the importer's own type did
    /// (issue 13), and its date converts to the calendar without a failure case.
    #[test]
    fn a_day_names_its_import_record_and_converts_its_date() {
        let day = Day {
            branch: Branch::parse("AYALA-FRN").unwrap(),
            pos: PosNo::new(2).unwrap(),
            date: BusinessDate::parse("2024-02-29").unwrap(),
        };
        assert_eq!(day.record_id(), "AYALA-FRN|2|2024-02-29");
        assert_eq!(
            day.date.naive(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        let early = BusinessDate::parse("0999-01-05").unwrap();
        assert_eq!(early.to_string(), "0999-01-05");
        assert_eq!((early.year(), early.month(), early.day()), (999, 1, 5));
    }

    #[test]
    fn legacy_branch_codes_parse() {
        for code in ["AYALA-FRN", "BETA", "B-CPOL", "SMLGZ-FRN", "ROB-FRN", "b2"] {
            assert_eq!(Branch::parse(code).map(|b| b.to_string()), Ok(code.into()));
        }
    }

    #[test]
    fn branch_codes_that_could_escape_a_path_or_a_name_are_refused() {
        let long = "A".repeat(33);
        for bad in [
            "", "-X", "A_B", "../x", "A/B", "A B", "A.B", "A\\B", "A\0", "É", &long,
        ] {
            assert!(Branch::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pos_numbers_are_canonical() {
        assert_eq!(PosNo::parse("1").map(PosNo::get), Ok(1));
        assert_eq!(PosNo::parse("99").map(PosNo::get), Ok(99));
        for bad in ["", "0", "01", "100", "-1", "+1", "1 ", "x"] {
            assert!(PosNo::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(PosNo::new(0).is_err());
        assert!(PosNo::new(256).is_err());
        assert_eq!(PosNo::new(2).map(|p| p.to_string()), Ok("2".into()));
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(
            BusinessDate::parse("2026-02-09").map(|d| d.to_string()),
            Ok("2026-02-09".into())
        );
        assert!(BusinessDate::parse("2024-02-29").is_ok());
        for bad in [
            "2025-02-29",
            "1900-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "0000-01-01",
            "2025-1-01",
            "2025/01/01",
            "2025-01-01T00:00:00",
            "",
        ] {
            assert!(BusinessDate::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(BusinessDate::parse("2000-02-29").is_ok());
    }
}

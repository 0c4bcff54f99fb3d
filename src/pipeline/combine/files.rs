//! Export file names, grouping by (branch, pos, date), and the choice of one file per type.
//!
//! Names follow `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv`. Like the legacy
//! `Combiner.generate`, we drop the extension, split on `_` and read the branch, POS, type and
//! date from parts 1–4; the leading `a` is not checked. Unlike it, we also require the `.csv`
//! extension (legacy reopened every grouped name as `<name>.csv`, so other files only ever
//! read as empty), a POS made of digits, a real calendar date and a known type. Anything else
//! is listed as ignored, with the reason, instead of silently producing empty groups.
//!
//! When a group has several files of one type (several uploads of the day), legacy took
//! whichever `os.listdir` listed last. We take the one with the most data rows, and on a tie
//! the latest `HH-MM` (then the greater file name), and say so in a [`FileChoice`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::lines::{Lines, py_strip};

/// The seven export types a group is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    /// Transaction lines: one per item (or discount) sold.
    Rd5000,
    /// Product master: item code → name (and department for new-layout branches).
    Rd5500,
    /// Departments: code → name.
    Rd1800,
    /// Discounts: code → name.
    Discount,
    /// Payments: transaction number → payment code.
    Rd5800,
    /// Payment methods: payment code → name.
    Rd5900,
    /// Loyalty registrations: number → phone.
    Blpr,
}

impl FileType {
    /// All types, rd5000 first.
    pub const ALL: [FileType; 7] = [
        FileType::Rd5000,
        FileType::Rd5500,
        FileType::Rd1800,
        FileType::Discount,
        FileType::Rd5800,
        FileType::Rd5900,
        FileType::Blpr,
    ];

    /// The type as spelled in file names (`rd5000`, `discount`, `blpr`, …).
    pub fn name(self) -> &'static str {
        match self {
            FileType::Rd5000 => "rd5000",
            FileType::Rd5500 => "rd5500",
            FileType::Rd1800 => "rd1800",
            FileType::Discount => "discount",
            FileType::Rd5800 => "rd5800",
            FileType::Rd5900 => "rd5900",
            FileType::Blpr => "blpr",
        }
    }

    /// Parses the type part of a file name (exact, case-sensitive, as legacy matched it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The first header column of this type's exports, used to tell the header line from data
    /// when counting rows.
    fn header_first_field(self) -> &'static str {
        match self {
            FileType::Rd5000 | FileType::Rd5800 => "STORE_NUM",
            FileType::Rd5500 => "INCODE",
            FileType::Rd1800 => "DEP_CODE",
            FileType::Discount => "CODE",
            FileType::Rd5900 => "PAY_CODE",
            FileType::Blpr => "STORE",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a file name says about its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportName {
    /// Branch code (part 1), for example `AYALA-FRN`.
    pub branch: String,
    /// POS number (part 2), as written in the name: the legacy CSV prints this text.
    pub pos_text: String,
    /// POS number as an integer.
    pub pos: u16,
    /// Export type (part 3).
    pub file_type: FileType,
    /// Business date (part 4), as written.
    pub date_text: String,
    /// Business date.
    pub date: NaiveDate,
    /// Upload time (part 5, `HH-MM`), empty when the name has no such part.
    pub time: String,
}

/// Why a file name is not an export name.
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
    /// The type part is none of the seven export types.
    #[error("unknown file type {0:?}")]
    UnknownType(String),
    /// The date part is not a `YYYY-MM-DD` calendar date.
    #[error("date {0:?} is not YYYY-MM-DD")]
    BadDate(String),
    /// The file name is not valid UTF-8.
    #[error("file name is not UTF-8")]
    NotUtf8,
}

impl ExportName {
    /// Parses a file name (no directory part).
    ///
    /// # Errors
    ///
    /// A [`NameError`] saying which part is wrong.
    pub fn parse(file_name: &str) -> Result<Self, NameError> {
        let stem = file_name.strip_suffix(".csv").ok_or(NameError::NotCsv)?;
        let parts: Vec<&str> = stem.split('_').collect();
        if parts.len() < 5 {
            return Err(NameError::TooFewParts);
        }
        let branch = parts[1];
        if branch.is_empty() {
            return Err(NameError::EmptyBranch);
        }
        let pos_text = parts[2];
        let pos = parse_pos(pos_text).ok_or_else(|| NameError::BadPos(pos_text.to_string()))?;
        let file_type = FileType::parse(parts[3])
            .ok_or_else(|| NameError::UnknownType(parts[3].to_string()))?;
        let date_text = parts[4];
        let date =
            parse_date(date_text).ok_or_else(|| NameError::BadDate(date_text.to_string()))?;
        Ok(Self {
            branch: branch.to_string(),
            pos_text: pos_text.to_string(),
            pos,
            file_type,
            date_text: date_text.to_string(),
            date,
            time: parts.get(5).copied().unwrap_or_default().to_string(),
        })
    }
}

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

/// Identifies one group: the files of one branch, POS and business date.
///
/// Ordered by branch, POS number, POS text, date: the order groups are written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Branch code.
    pub branch: String,
    /// POS number.
    pub pos: u16,
    /// POS as written in the file names (`1`, or `01` if a store wrote that).
    pub pos_text: String,
    /// Business date.
    pub date: NaiveDate,
    /// Business date as written in the file names: rows are checked against this text.
    pub date_text: String,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pos {} {}",
            self.branch, self.pos_text, self.date_text
        )
    }
}

/// One export file found for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name.
    pub file_name: String,
    /// Its upload time (`HH-MM`; empty when absent).
    pub time: String,
}

/// The files of one (branch, pos, date), by type; a type can have several candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Which day of which till.
    pub key: GroupKey,
    /// Candidate files per type, in file-name order.
    pub files: BTreeMap<FileType, Vec<ExportFile>>,
}

/// A file that is not part of any group, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredFile {
    /// The path given or found.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: NameError,
}

/// Export files sorted into groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    /// Groups in ascending [`GroupKey`] order.
    pub groups: Vec<Group>,
    /// Files whose names are not export names.
    pub ignored: Vec<IgnoredFile>,
}

impl FileSet {
    /// Sorts files into groups by their names.
    ///
    /// Use this with the paths of one day's downloads; every path whose name parses joins its
    /// group, the rest are listed in [`FileSet::ignored`].
    pub fn from_paths<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut groups: BTreeMap<GroupKey, BTreeMap<FileType, Vec<ExportFile>>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let parsed = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or(NameError::NotUtf8)
                .and_then(|name| ExportName::parse(name).map(|n| (name.to_string(), n)));
            match parsed {
                Ok((file_name, name)) => {
                    let key = GroupKey {
                        branch: name.branch,
                        pos: name.pos,
                        pos_text: name.pos_text,
                        date: name.date,
                        date_text: name.date_text,
                    };
                    groups
                        .entry(key)
                        .or_default()
                        .entry(name.file_type)
                        .or_default()
                        .push(ExportFile {
                            path: path.to_path_buf(),
                            file_name,
                            time: name.time,
                        });
                }
                Err(reason) => ignored.push(IgnoredFile {
                    path: path.to_path_buf(),
                    reason,
                }),
            }
        }
        let groups = groups
            .into_iter()
            .map(|(key, mut files)| {
                for candidates in files.values_mut() {
                    candidates.sort_by(|a, b| a.file_name.cmp(&b.file_name));
                }
                Group { key, files }
            })
            .collect();
        ignored.sort_by(|a: &IgnoredFile, b: &IgnoredFile| a.path.cmp(&b.path));
        Self { groups, ignored }
    }
}

/// Counts a file's data rows: non-blank lines other than a header line at the top.
///
/// This is what "most rows" compares. The header is recognised by its first column's name
/// (`STORE_NUM`, `INCODE`, …), so a file without a header is not one row short.
pub fn count_data_rows(file_type: FileType, data: &[u8]) -> u64 {
    let header = file_type.header_first_field().as_bytes();
    let mut rows = 0;
    for (i, line) in Lines::new(data).enumerate() {
        if i == 0 && line.starts_with(header) && line.get(header.len()).is_none_or(|&b| b == b',') {
            continue;
        }
        let blank = std::str::from_utf8(line).is_ok_and(|s| py_strip(s).is_empty());
        if !blank {
            rows += 1;
        }
    }
    rows
}

/// A candidate file that lost, with its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The file's name.
    pub file_name: String,
    /// Its data rows ([`count_data_rows`]).
    pub data_rows: u64,
}

/// Why a group uses the file it uses for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceReason {
    /// It was the only file of its type.
    Only,
    /// It had more data rows than every other candidate.
    MostRows {
        /// The others.
        others: Vec<Candidate>,
    },
    /// Other candidates had as many rows; it has the latest upload time (then file name).
    TieLatest {
        /// The others.
        others: Vec<Candidate>,
    },
}

/// The file a group uses for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChoice {
    /// The type.
    pub file_type: FileType,
    /// The file used.
    pub file_name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its data rows; counted only when there was a choice to make.
    pub data_rows: Option<u64>,
    /// Why this one.
    pub reason: ChoiceReason,
}

impl fmt::Display for FileChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file_type, self.file_name)?;
        let others = match &self.reason {
            ChoiceReason::Only => return Ok(()),
            ChoiceReason::MostRows { others } => {
                write!(f, " (most data rows: {}", self.data_rows.unwrap_or(0))?;
                others
            }
            ChoiceReason::TieLatest { others } => {
                write!(
                    f,
                    " (tie at {} data rows, latest upload",
                    self.data_rows.unwrap_or(0)
                )?;
                others
            }
        };
        for other in others {
            write!(f, "; not {} with {}", other.file_name, other.data_rows)?;
        }
        f.write_str(")")
    }
}

/// Picks the winner among candidates and their data-row counts: most rows, then latest upload
/// time, then greatest file name. `None` when there are no candidates.
pub fn pick(candidates: &[(&ExportFile, u64)]) -> Option<(usize, ChoiceReason)> {
    let key =
        |(file, rows): &(&ExportFile, u64)| (*rows, file.time.clone(), file.file_name.clone());
    let (best, _) = candidates
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| key(a).cmp(&key(b)))?;
    if candidates.len() < 2 {
        return Some((best, ChoiceReason::Only));
    }
    let best_rows = candidates[best].1;
    let others: Vec<Candidate> = candidates
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != best)
        .map(|(_, (file, rows))| Candidate {
            file_name: file.file_name.clone(),
            data_rows: *rows,
        })
        .collect();
    let reason = if others.iter().any(|c| c.data_rows == best_rows) {
        ChoiceReason::TieLatest { others }
    } else {
        ChoiceReason::MostRows { others }
    };
    Some((best, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_legacy_name_pattern() {
        let n = ExportName::parse("a_AYALA-FRN_1_rd5000_2026-02-09_19-59_.csv").unwrap();
        assert_eq!(n.branch, "AYALA-FRN");
        assert_eq!(n.pos, 1);
        assert_eq!(n.pos_text, "1");
        assert_eq!(n.file_type, FileType::Rd5000);
        assert_eq!(n.date_text, "2026-02-09");
        assert_eq!(n.time, "19-59");
    }

    #[test]
    fn rejects_names_legacy_could_not_use() {
        assert_eq!(ExportName::parse("fetch_list2.php"), Err(NameError::NotCsv));
        assert_eq!(
            ExportName::parse("a_B_1_rd5000.csv"),
            Err(NameError::TooFewParts)
        );
        assert_eq!(
            ExportName::parse("a_B_x_rd5000_2026-02-09_.csv"),
            Err(NameError::BadPos("x".into()))
        );
        assert_eq!(
            ExportName::parse("a_B_1_rd9999_2026-02-09_.csv"),
            Err(NameError::UnknownType("rd9999".into()))
        );
        assert_eq!(
            ExportName::parse("a_B_1_rd5000_2026-02-30_.csv"),
            Err(NameError::BadDate("2026-02-30".into()))
        );
        assert_eq!(
            ExportName::parse("a__1_rd5000_2026-02-09_.csv"),
            Err(NameError::EmptyBranch)
        );
    }

    #[test]
    fn groups_by_branch_pos_date_in_ascending_order() {
        let set = FileSet::from_paths([
            "d/a_BMC_1_rd5000_2026-02-09_20-00_.csv",
            "d/a_BMC_1_rd5500_2026-02-09_20-00_.csv",
            "d/a_B-SMS_1_rd5000_2026-02-09_21-26_.csv",
            "d/a_BMC_1_rd5000_2025-10-08_20-00_.csv",
            "d/fetch_list2.php",
        ]);
        let keys: Vec<String> = set.groups.iter().map(|g| g.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "B-SMS pos 1 2026-02-09",
                "BMC pos 1 2025-10-08",
                "BMC pos 1 2026-02-09"
            ]
        );
        assert_eq!(set.groups[2].files.len(), 2);
        assert_eq!(set.ignored.len(), 1);
    }

    #[test]
    fn data_rows_skip_the_header_and_blank_lines() {
        assert_eq!(
            count_data_rows(FileType::Rd5000, b"STORE_NUM,X\n1,a\n\n 2,b\n"),
            2
        );
        assert_eq!(count_data_rows(FileType::Rd5000, b"1,a\n2,b"), 2);
        assert_eq!(count_data_rows(FileType::Discount, b"CODE,DESC\n1,x\n"), 1);
        assert_eq!(count_data_rows(FileType::Discount, b"CODEX,DESC\n1,x\n"), 2);
    }

    fn file(name: &str, time: &str) -> ExportFile {
        ExportFile {
            path: PathBuf::from(name),
            file_name: name.to_string(),
            time: time.to_string(),
        }
    }

    #[test]
    fn most_rows_wins_over_a_later_upload() {
        let files = [
            file("a_B_1_rd5000_D_19-00_.csv", "19-00"),
            file("a_B_1_rd5000_D_20-00_.csv", "20-00"),
        ];
        let (i, reason) = pick(&[(&files[0], 10), (&files[1], 9)]).unwrap();
        assert_eq!(i, 0);
        assert!(matches!(reason, ChoiceReason::MostRows { .. }));
    }

    #[test]
    fn a_tie_goes_to_the_latest_upload() {
        let files = [
            file("a_B_1_rd5000_D_20-00_.csv", "20-00"),
            file("a_B_1_rd5000_D_19-00_.csv", "19-00"),
        ];
        let (i, reason) = pick(&[(&files[0], 10), (&files[1], 10)]).unwrap();
        assert_eq!(i, 0);
        assert!(matches!(reason, ChoiceReason::TieLatest { .. }));
    }

    #[test]
    fn no_candidates_pick_nothing() {
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn a_single_file_is_chosen_without_counting() {
        let only = file("x.csv", "");
        let (i, reason) = pick(&[(&only, 0)]).unwrap();
        assert_eq!(i, 0);
        assert_eq!(reason, ChoiceReason::Only);
    }
}

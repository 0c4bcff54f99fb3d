//! Export file names, grouping by (branch, pos, date), and the choice of one file per type.
//!
//! Names follow `a_<BRANCH>_<POS>_<type>_<YYYY-MM-DD>_<HH-MM>_.csv` and are read by the one
//! parser in [`crate::pipeline::export_name`], with the legacy combiner's rules
//! ([`LEGACY_NAMES`]). Like the legacy `Combiner.generate`, they drop the extension, split on
//! `_` and read the branch, POS, type and date from parts 1–4; the leading `a` is not checked.
//! Unlike it, they also require the `.csv` extension (legacy reopened every grouped name as
//! `<name>.csv`, so other files only ever read as empty), a POS made of digits, a real
//! calendar date and a known type. Anything else is listed as ignored, with the reason,
//! instead of silently producing empty groups.
//!
//! When a group has several files of one type (several uploads of the day), legacy took
//! whichever `os.listdir` listed last. We take the one with the most data rows, and on a tie
//! the latest `HH-MM` (then the greater file name), and say so in a [`FileChoice`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::lines::{Lines, py_strip};
pub use crate::pipeline::export_name::{ExportName, NameError, Rules};

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

/// The legacy combiner's reading of an export name ([`Rules::Legacy`]): the shared parser,
/// accepting only the seven types a group is made of.
pub const LEGACY_NAMES: Rules = Rules::Legacy {
    known_type: |t| FileType::parse(t).is_some(),
};

/// Parses a file name (no directory part) as the legacy combiner did, with its type.
///
/// # Errors
///
/// A [`NameError`] saying which part is wrong.
pub fn parse_legacy_name(file_name: &str) -> Result<(ExportName, FileType), NameError> {
    let name = ExportName::parse(file_name, LEGACY_NAMES)?;
    let file_type = FileType::parse(&name.file_type)
        .ok_or_else(|| NameError::UnknownType(name.file_type.clone()))?;
    Ok((name, file_type))
}

/// Identifies one group: the files of one branch, POS and business date.
///
/// Ordered by branch, POS number, POS text, date: the order groups are written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Branch code: first in the order, so a branch's tills come out together.
    pub branch: String,
    /// POS number, compared as a number so till 10 comes after till 9.
    pub pos: u16,
    /// POS as written in the file names (`1`, or `01` if a store wrote that).
    pub pos_text: String,
    /// Business date, as a calendar date so days sort in time order.
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
        let mut named = Vec::new();
        let mut ignored = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let parsed = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or(NameError::NotUtf8)
                .and_then(|name| ExportName::parse(name, LEGACY_NAMES).map(|n| (name, n)));
            match parsed {
                Ok((file_name, name)) => named.push(DayFile {
                    path: path.to_path_buf(),
                    file_name: file_name.to_string(),
                    name,
                }),
                Err(reason) => ignored.push(IgnoredFile {
                    path: path.to_path_buf(),
                    reason,
                }),
            }
        }
        let mut set = FileSet::from_named(named);
        set.ignored.append(&mut ignored);
        set.ignored
            .sort_by(|a: &IgnoredFile, b: &IgnoredFile| a.path.cmp(&b.path));
        set
    }

    /// Sorts files whose names are already parsed into groups; a file whose type is none of
    /// the seven a group is made of is listed in [`FileSet::ignored`], as the legacy
    /// combiner would have skipped it.
    pub fn from_named<I>(files: I) -> Self
    where
        I: IntoIterator<Item = DayFile>,
    {
        let mut groups: BTreeMap<GroupKey, BTreeMap<FileType, Vec<ExportFile>>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for DayFile {
            path,
            file_name,
            name,
        } in files
        {
            let Some(file_type) = FileType::parse(&name.file_type) else {
                ignored.push(IgnoredFile {
                    path,
                    reason: NameError::UnknownType(name.file_type),
                });
                continue;
            };
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
                .entry(file_type)
                .or_default()
                .push(ExportFile {
                    path,
                    file_name,
                    time: name.time,
                });
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

/// One stored export file with the name it was parsed from: what the worker hands the
/// combiner for a day, so the name is read once, where the file was listed or recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    /// Where the file is on local disk.
    pub path: PathBuf,
    /// Its file name, as listed (the choice among several uploads compares these).
    pub file_name: String,
    /// What the name says (branch, POS, type, date, time).
    pub name: ExportName,
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
        /// The candidates not used, with their data rows, for the report.
        others: Vec<Candidate>,
    },
    /// Other candidates had as many rows; it has the latest upload time (then file name).
    TieLatest {
        /// The candidates not used (at least one with as many rows), for the report.
        others: Vec<Candidate>,
    },
}

/// The file a group uses for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChoice {
    /// The export type this choice is for (`rd5000`, `rd5500`, …).
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
        let (n, file_type) =
            parse_legacy_name("a_AYALA-FRN_1_rd5000_2026-02-09_19-59_.csv").unwrap();
        assert_eq!(n.branch, "AYALA-FRN");
        assert_eq!(n.pos, 1);
        assert_eq!(n.pos_text, "1");
        assert_eq!(file_type, FileType::Rd5000);
        assert_eq!(n.date_text, "2026-02-09");
        assert_eq!(n.time, "19-59");
    }

    #[test]
    fn rejects_names_legacy_could_not_use() {
        assert_eq!(
            parse_legacy_name("fetch_list2.php").map(|(_, t)| t),
            Err(NameError::NotCsv)
        );
        assert_eq!(
            parse_legacy_name("a_B_1_rd5000.csv").map(|(_, t)| t),
            Err(NameError::TooFewParts)
        );
        assert_eq!(
            parse_legacy_name("a_B_x_rd5000_2026-02-09_.csv").map(|(_, t)| t),
            Err(NameError::BadPos("x".into()))
        );
        assert_eq!(
            parse_legacy_name("a_B_1_rd9999_2026-02-09_.csv").map(|(_, t)| t),
            Err(NameError::UnknownType("rd9999".into()))
        );
        assert_eq!(
            parse_legacy_name("a_B_1_rd5000_2026-02-30_.csv").map(|(_, t)| t),
            Err(NameError::BadDate("2026-02-30".into()))
        );
        assert_eq!(
            parse_legacy_name("a__1_rd5000_2026-02-09_.csv").map(|(_, t)| t),
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

//! The legacy combiner, reimplemented: one (branch, pos, date)'s export files into rows.
//!
//! # Brief overview
//!
//! A *group* is the exports of one branch, POS and business date ([`FileSet`] sorts files into
//! groups by name, [`files`]). [`combine_group`] reads the group's reference files (rd5500
//! items, rd1800 departments, discount, rd5800 payments, rd5900 payment names, blpr phones)
//! into [`Lookups`], then walks rd5000 **bottom-to-top**, as legacy did, and turns every line
//! into the legacy 27-column row (`legacy` module) and, from the same line and tables, a typed
//! [`Transaction`]. Both go to a [`RowSink`]; lines whose DATE is not the file name's date go to
//! [`RowSink::monitor`] instead. A [`GroupReport`] says which files were used and why, and what
//! was rejected. The legacy combiner's rules are restated in the module that applies them
//! (`files`: which file of each type; `lookups`: the reference tables; `legacy`: the row).
//!
//! The legacy row always comes from legacy's naive comma split. The typed record reads every
//! line that contains a `"` (in rd5000 and in the reference files) with real CSV quoting
//! (`quoted` module), so a quoted comma stays in its field and names are unquoted; lines
//! without a quote keep the word-at-a-time split, which gives the same fields.
//! [`GroupReport::typed`] counts what became of each line in the typed records, and
//! [`GroupReport::layout_note`] is the day's monitor note for lines whose fields do not fit
//! the layout. Where the two outputs may differ is listed below.
//!
//! ```no_run
//! use fetch_worker::pipeline::combine::{CollectSink, CombineOptions, FileSet, combine_group};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The files downloaded for one (branch, pos, date), in any order.
//! let paths = ["dl/a_BMC_1_rd5000_2026-02-09_20-00_.csv", "dl/a_BMC_1_rd5500_2026-02-09_20-00_.csv"];
//! let set = FileSet::from_paths(paths);
//! let mut sink = CollectSink::default();
//! for group in &set.groups {
//!     let report = combine_group(group, &CombineOptions::default(), &mut sink)?;
//!     eprintln!("{report}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Memory and streaming
//!
//! A group's files are read whole, each into its own buffer, and the reference files become
//! hash tables whose keys and values borrow those bytes (only text from lines that were not
//! valid UTF-8 is copied). rd5000 is walked backwards in place (`lines::RevLineRanges`): no
//! per-line `String`s, no index of line offsets; each line is decoded, turned into a row in a
//! reused buffer and handed to the sink before the next. Peak memory per group is therefore
//! its files' bytes (a few MB in practice) plus the tables' index, plus, when typed records are
//! wanted, one small counter per distinct line for [`Transaction::row_key`]. The phone table
//! keeps only the group's transaction numbers ([`Lookups::keep_phones_for`]), so blpr, the
//! store's whole loyalty history, is scanned but not indexed. The buffers are reused from one
//! group to the next. [`CombineOptions::max_file_bytes`] turns a runaway file into an error
//! instead of an allocation failure, and [`CombineOptions::max_line_bytes`] rejects absurd
//! lines.
//!
//! A pass over several groups combines up to [`CombineOptions::threads`] of them at once
//! (`parallel` module); each worker holds its own group's buffers, and finished groups wait,
//! at most two per worker, for their turn at the sink.
//!
//! # Speed
//!
//! The samples (17 groups, 13 MB) take 13–17 ms as a whole process on two cores (about 19 ms
//! of CPU, about 3 ms of it the kernel copying the files in), where the legacy Python combiner
//! took 1.1–1.3 s (`bench/combine.sh`). Besides the threads, the fast paths are: SIMD line
//! splitting for files whose only line break is LF, one UTF-8 validation per file instead of
//! per line (`lines` module), comma splitting eight bytes at a time, tables that borrow
//! instead of copying, FxHash, and blpr's key test before anything else.
//! Each is documented where it is defined with why it gives the same result as the
//! straightforward rule, and tested against that rule.
//!
//! # Choices
//!
//! - Dates are [`chrono::NaiveDate`]: a plain calendar date, well maintained, with serde
//!   support, and what the BSON crate converts from for the importer.
//! - Money is [`rust_decimal::Decimal`], parsed exactly from the export text (scale kept,
//!   serialized as a string); a float would already change `9.333`.
//! - Invalid UTF-8 is decoded per line with replacement characters and counted
//!   ([`GroupReport::lossy_lines`], [`TableStats::lossy_lines`]). Legacy read strictly and
//!   crashed on the first bad byte of any file; replacing keeps the day's sales (in the
//!   samples, non-ASCII text only ever appears in names).
//!
//! # Deliberate differences from legacy
//!
//! In the legacy CSV rows (otherwise byte-identical to legacy's, as the sample test checks):
//!
//! - One file per type is chosen by most data rows, ties to the latest `HH-MM`
//!   ([`files::pick`]); legacy used whichever file `os.listdir` listed last.
//! - File names must end in `.csv` and carry a numeric POS, a real `YYYY-MM-DD` date and a
//!   known type; others are reported as ignored (legacy grouped some of them and then read
//!   them as empty).
//! - An rd5800 line with exactly 20 fields is skipped and counted; legacy aborted the whole
//!   run on it.
//! - Invalid UTF-8 is replaced (above); legacy aborted.
//! - Lines longer than [`CombineOptions::max_line_bytes`] (default 1 MiB) are rejected.
//! - The hour of TIME accepts only ASCII digits; Python's `int()` also took other Unicode
//!   decimal digits.
//! - New branches given on the command line or in a file are trimmed; legacy compared the
//!   file's lines verbatim.
//!
//! In the typed [`Transaction`] only (the legacy row keeps legacy's behaviour). Each entry is
//! one rule: its name in bold (the join test over the samples, `typed_records_join_legacy_rows`
//! in the combine tests, names the rule that explains each difference it finds and fails on
//! any difference no rule explains), the fields it touches, the rule, and an example.
//!
//! - **`unquoted-text`**: `productCode`, `productName`, `departmentCode`, `departmentName`,
//!   `discountCode`, `discountName`, `paymentCode`, `paymentName`, `phone` and every other
//!   text field. A line that contains a `"` (rd5000 or a reference file) is read with real CSV
//!   quoting (`quoted` module), so codes and names are the unquoted text. Legacy split on every
//!   comma and kept the quotes, then wrapped names in `"…"`. Example: rd5500
//!   `REPBS11,"EXT""E PLATTER",…` gives the legacy PRODUCT NAME `""EXT""E PLATTER""` and the
//!   typed `productName` `EXT"E PLATTER`; an rd5000 item `"REPP""13"` is `productCode`
//!   `REPP"13`, and it finds rd5500's `"REPP""13"` line as legacy did (both sides unquoted).
//! - **`real-columns`**: every field after a quoted comma. In a line read with real quoting a
//!   quoted comma stays inside its field, so the later fields keep their columns. Legacy's
//!   split moves them one place per comma. Example: rd5000 `…,1234 5678,"DELA CRUZ, JUAN",T,
//!   1,…`: legacy's TYPE CODE is `JUAN"`, its VAT DIV the VAT flag and its TRANSACTION NUMBER
//!   the VAT price; the typed record has `orderType` `T`, `vatFlag` `1` and the real
//!   `transactionNumber`, and its payment and phone found by that number. The same holds for
//!   the reference files: rd5800 `…,"CRUZ, J",…` keeps `PAYCODE` and `TRANSNO` in columns
//!   11 and 20 for the typed lookup, a new-layout rd5500 name with a comma keeps `CATEG_ID` in
//!   column 12, blpr `"TEMP, 2",09…` keeps `PHONE` in column 1.
//! - **`own-verdict`**: which lines have a record at all. A line without a `"` gets the legacy
//!   verdict (row, monitor or rejected). A line with a `"` is judged on its real columns:
//!   field count, then the hour of TIME, then DATE. Example: rd5000 with `"SPECIAL, 2"` as
//!   ITE_CODE: legacy reads DEP_CODE as DATE and sends the line to the monitor; the typed pass
//!   makes a record dated by the real DATE. The reverse (a legacy row, no record) happens when
//!   the real TIME or DATE fails.
//! - **`field-count`**: a line whose fields, read with real quoting, are not the 40 of the
//!   rd5000 layout (or whose quoted field is not closed) gets no record; it is counted in
//!   [`TypedReport::rejected`] as [`RejectReason::FieldCount`] or
//!   [`RejectReason::UnclosedQuote`], and [`GroupReport::layout_note`] gives the day's one
//!   monitor note naming the file, the line and the cause. Legacy padded short lines and
//!   shifted long ones. Example: an unquoted `…,DELA CRUZ, JUAN,…` (41 fields) keeps its
//!   legacy row and has no record: `line 7: field count does not fit the rd5000 layout (41
//!   fields, the layout has 40)`.
//! - **`raw-code-lookup`**: `productName` (and for new-layout branches `departmentCode` and
//!   `departmentName`) and `discountName` are looked up by the raw code. Legacy looked them up
//!   by the Excel-escaped code, so an item code of 2+ characters starting with `0` never
//!   found its name. Example: item `0123`: legacy PRODUCT NAME empty, typed `productName` the
//!   rd5500 name; discount code `01` likewise.
//! - **`bare-item`**: `productName`, `departmentCode`, `departmentName`. An item code whose
//!   rd5500 line has one field, or (new layout) no department, gives no name or department in
//!   the record; legacy dropped such rows, so this only arises for codes the legacy lookup
//!   could not see. Example: rd5500 line `0123` alone: no `productName`.
//! - **`department-key`**: `departmentName`. The rd1800 key is the department code without
//!   surrounding whitespace. Legacy's key also lost every `"` and `="` (its Excel wrapper), so
//!   the two differ only for a code that really contains a quote. Example: rd5000 DEP_CODE
//!   `"7"` (quoted) is `7` in both; an unquoted code `7"` is `7"` typed, `7` in legacy.
//! - **`quoted-phone`**: `phone`. blpr's 11-character rule applies to the unquoted PHONE.
//!   Example: `"09123456789"` is 13 characters to legacy (no phone) and 11 typed (a phone).
//! - **`numbers`**: `quantity`, `unitPrice`, `amount`, `discount`, `vatDiv`, `vatAmount`,
//!   `vatDiscount`, `vatPrice` are exact decimals: an empty field is `null`, a field that is
//!   not a number is `null` and counted ([`GroupReport::bad_numbers`]), and exponent notation
//!   is expanded. Example: `1e-05` is `0.00001`; legacy copied the text.
//!
//! Kept as legacy has it, although it looks wrong: PHONE NUMBER is blpr's `ORNO` matched
//! against rd5000's `TRANSNO`. In the samples nothing matches either way, so we do not guess
//! which pairing was meant.

pub mod files;
mod legacy;
mod lines;
mod lookups;
mod parallel;
mod quoted;
mod sink;
mod typed;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

pub use files::{
    ChoiceReason, DayFile, ExportFile, FileChoice, FileSet, FileType, Group, GroupKey, IgnoredFile,
    LEGACY_NAMES,
};
pub use legacy::{HEADER, RejectReason};
pub use lookups::{ItemEntry, Lookups, SkipReason, TableStats, TypedTables};
pub use quoted::UnclosedQuote;
pub use sink::{CollectSink, JsonlWriter, LegacyCsvWriter, MonitorEntry, MonitorLog, RowSink};

use crate::pipeline::record::{Daypart, Transaction, fnv1a64, row_key};
use legacy::{GroupContext, RowBuilder, Selected};
use lines::{Lines, Text, decode, nth_field};
use rustc_hash::{FxHashMap, FxHashSet};

/// The branches legacy's `settings/newBranches.txt` lists: their exports use the newer layout.
pub const LEGACY_NEW_BRANCHES: [&str; 4] = ["BPAG", "BGRAN", "BETA", "BTAB"];

/// Why a combine pass failed. Per-line problems are never errors: they are counted in the
/// report.
#[derive(Debug, thiserror::Error)]
pub enum CombineError {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The export file that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is larger than [`CombineOptions::max_file_bytes`].
    #[error("{} is larger than the {limit}-byte limit", path.display())]
    FileTooLarge {
        /// The export file, left unread.
        path: PathBuf,
        /// The limit it broke.
        limit: u64,
    },
    /// A directory could not be listed.
    #[error("listing {}", path.display())]
    ListDir {
        /// The directory given to [`combine_dir`].
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The sink failed.
    #[error("writing the combined rows")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// [`combine_day`] was given files of more than one (branch, pos, date): combining one
    /// of them and dropping the rest would import a partial day, so nothing is combined.
    #[error("the files given for one day form {} groups: {}", groups.len(), groups.join(", "))]
    NotOneDay {
        /// The groups the files formed ([`GroupKey`]'s text).
        groups: Vec<String>,
    },
}

impl CombineError {
    /// Whether retrying later could help: I/O and sink failures may be passing; a file over
    /// the size limit will still be over it.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            CombineError::FileTooLarge { .. } | CombineError::NotOneDay { .. }
        )
    }
}

/// Branch codes whose exports use the newer layout (legacy's `newBranches.txt`): their rd5500
/// carries each item's department (`CATEG_ID`), which then replaces the row's DEPARTMENT CODE
/// (the rules are in the `lookups` and `legacy` modules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBranches(BTreeSet<String>);

impl Default for NewBranches {
    /// Legacy's four: BPAG, BGRAN, BETA, BTAB.
    fn default() -> Self {
        Self::from_codes(LEGACY_NEW_BRANCHES)
    }
}

impl NewBranches {
    /// The given codes, trimmed; empty ones are left out.
    pub fn from_codes<I, S>(codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(
            codes
                .into_iter()
                .map(|c| lines::py_strip(c.as_ref()).to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    /// Reads `--new-branches`: the path of a file with one code per line (legacy's
    /// `newBranches.txt`) when such a file exists, otherwise a comma-separated list.
    ///
    /// # Errors
    ///
    /// [`CombineError::Read`] when the file exists but cannot be read.
    pub fn from_arg(arg: &str) -> Result<Self, CombineError> {
        let path = Path::new(arg);
        if !path.is_file() {
            return Ok(Self::from_codes(arg.split(',')));
        }
        let data = std::fs::read(path).map_err(|source| CombineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_codes(Lines::new(&data).map(|l| decode(l).0)))
    }

    /// Whether `branch` uses the newer layout.
    pub fn contains(&self, branch: &str) -> bool {
        self.0.contains(branch)
    }

    /// The codes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Settings of a combine pass.
#[derive(Debug, Clone)]
pub struct CombineOptions {
    /// Branches with the newer file layout.
    pub new_branches: NewBranches,
    /// Largest file read, in bytes (default 1 GiB); a larger one is
    /// [`CombineError::FileTooLarge`].
    pub max_file_bytes: u64,
    /// Longest line processed, in bytes (default 1 MiB); a longer one is rejected and counted.
    /// Real export lines are a few hundred bytes.
    pub max_line_bytes: usize,
    /// Most groups combined at once by [`combine_paths`] and [`combine_dir`]; `None` (the
    /// default) uses the machine's available parallelism. The output is the same either way
    /// (the sink still receives the groups one after the other, in order).
    pub threads: Option<NonZeroUsize>,
}

impl Default for CombineOptions {
    fn default() -> Self {
        Self {
            new_branches: NewBranches::default(),
            max_file_bytes: 1 << 30,
            max_line_bytes: 1 << 20,
            threads: None,
        }
    }
}

/// A rejected rd5000 line, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based line number in the rd5000 file.
    pub line: u64,
    /// Why it was rejected: the counts and the monitor note are kept per reason.
    pub reason: RejectReason,
    /// For [`RejectReason::FieldCount`], how many fields the line has under real quoting.
    pub fields: Option<usize>,
}

impl fmt::Display for RejectedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)?;
        if let Some(n) = self.fields {
            write!(f, " ({n} fields, the layout has {RD5000_FIELDS})")?;
        }
        Ok(())
    }
}

/// Fields of an rd5000 line, in the old and the new layout alike (STORE_NUM … BRANCH).
pub const RD5000_FIELDS: usize = 40;

/// What the typed pass made of a group's rd5000 lines: the counterpart, for the typed
/// [`Transaction`]s, of the legacy counts in [`GroupReport`]. All zero when the sink wants no
/// records ([`RowSink::wants_transactions`]).
///
/// A line without a `"` has the same fields in both readings, so it gets the legacy verdict
/// (kept, monitor, rejected), except that a kept line whose field count is not
/// [`RD5000_FIELDS`] is rejected here with [`RejectReason::FieldCount`]: its typed columns
/// would be shifted. A line with a `"` is read with real CSV quoting and judged on its real
/// columns: field count, then the hour of TIME, then DATE (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedReport {
    /// Records given to the sink.
    pub records: u64,
    /// Lines whose (real) DATE differs from the file name's date: no record.
    pub monitor_rows: u64,
    /// Header lines (TIME where the hour is): no record, and not a rejected line either,
    /// since every export starts with one.
    pub header_lines: u64,
    /// Lines without a record, by reason (the header is not one of them).
    pub rejected: BTreeMap<RejectReason, u64>,
    /// The first rejected lines (in processing order, so bottom-up).
    pub rejected_lines: Vec<RejectedLine>,
    /// The first lines rejected because their fields do not fit the layout
    /// ([`RejectReason::FieldCount`], [`RejectReason::UnclosedQuote`]), kept apart so the
    /// monitor note can name one even when many other rejects came first.
    pub layout_lines: Vec<RejectedLine>,
    /// rd5000 lines read with real quoting (they contained a `"`).
    pub quoted_lines: u64,
    /// The reference files that contained a `"`, as read with real quoting for the typed
    /// lookups (the legacy reading of every file is in [`GroupReport::tables`]).
    pub tables: BTreeMap<FileType, TableStats>,
}

impl TypedReport {
    fn reject(&mut self, rejected: RejectedLine) {
        if rejected.reason == RejectReason::HeaderLine {
            self.header_lines += 1;
            return;
        }
        *self.rejected.entry(rejected.reason).or_default() += 1;
        if self.rejected_lines.len() < REJECTED_SAMPLES {
            self.rejected_lines.push(rejected);
        }
        if rejected.reason.is_layout() && self.layout_lines.len() < REJECTED_SAMPLES {
            self.layout_lines.push(rejected);
        }
    }

    /// Lines without a record, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Lines rejected because their fields do not fit the layout.
    pub fn layout_rejected(&self) -> u64 {
        self.rejected
            .iter()
            .filter(|(r, _)| r.is_layout())
            .map(|(_, n)| n)
            .sum()
    }
}

/// How many rejected lines a [`GroupReport`] lists individually.
const REJECTED_SAMPLES: usize = 20;

/// What combining one group did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// Which day of which till this report is about: a pass over many groups reports each.
    pub key: GroupKey,
    /// The file used for each type present, and why.
    pub files: Vec<FileChoice>,
    /// Types with no file (their lookups stay empty; without rd5000 there are no rows).
    pub missing: Vec<FileType>,
    /// What each reference file contributed.
    pub tables: BTreeMap<FileType, TableStats>,
    /// rd5000 lines read, header included.
    pub lines: u64,
    /// Rows given to the sink.
    pub rows: u64,
    /// Lines whose DATE differs from the file name's date.
    pub monitor_rows: u64,
    /// Header lines (TIME where the hour is): neither a row nor a rejected line.
    pub header_lines: u64,
    /// Rejected rd5000 lines by reason (the header is not one of them).
    pub rejected: BTreeMap<RejectReason, u64>,
    /// The first rejected lines (in processing order, so bottom-up).
    pub rejected_lines: Vec<RejectedLine>,
    /// rd5000 lines that were not valid UTF-8 (decoded with replacement characters).
    pub lossy_lines: u64,
    /// Non-empty money or quantity fields of kept rows that are not numbers (`None` in the
    /// typed record; the legacy row carries the text).
    pub bad_numbers: u64,
    /// What became of the lines in the typed records.
    pub typed: TypedReport,
}

impl GroupReport {
    fn new(key: GroupKey) -> Self {
        Self {
            key,
            files: Vec::new(),
            missing: Vec::new(),
            tables: BTreeMap::new(),
            lines: 0,
            rows: 0,
            monitor_rows: 0,
            header_lines: 0,
            rejected: BTreeMap::new(),
            rejected_lines: Vec::new(),
            lossy_lines: 0,
            bad_numbers: 0,
            typed: TypedReport::default(),
        }
    }

    fn reject(&mut self, line: u64, reason: RejectReason) {
        if reason == RejectReason::HeaderLine {
            self.header_lines += 1;
            return;
        }
        *self.rejected.entry(reason).or_default() += 1;
        if self.rejected_lines.len() < REJECTED_SAMPLES {
            self.rejected_lines.push(RejectedLine {
                line,
                reason,
                fields: None,
            });
        }
    }

    /// Rejected lines, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The note of the day's one monitor entry for lines whose fields do not fit the rd5000
    /// layout, or `None` when there are none: it names the file, the first such line (top
    /// of the file first) and the cause, and how many lines there were.
    ///
    /// For example `rd5000 a_BMC_1_rd5000_2026-02-09_20-00_.csv line 17: field count does
    /// not fit the rd5000 layout (41 fields, the layout has 40); 2 line(s) without a typed
    /// record for their field count`.
    pub fn layout_note(&self) -> Option<String> {
        let first = self.typed.layout_lines.iter().min_by_key(|l| l.line)?;
        let file = self
            .files
            .iter()
            .find(|f| f.file_type == FileType::Rd5000)
            .map_or("", |f| f.file_name.as_str());
        Some(format!(
            "rd5000 {file} {first}; {} line(s) without a typed record for their field count",
            self.typed.layout_rejected()
        ))
    }
}

impl fmt::Display for GroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} lines, {} rows, {} monitor, {} header, {} rejected",
            self.key,
            self.lines,
            self.rows,
            self.monitor_rows,
            self.header_lines,
            self.rejected_total()
        )?;
        write_reasons(f, self.rejected.iter().map(|(r, n)| (r.describe(), *n)))?;
        if self.lossy_lines > 0 {
            write!(f, ", {} lines not UTF-8", self.lossy_lines)?;
        }
        if self.bad_numbers > 0 {
            write!(f, ", {} non-numeric amounts", self.bad_numbers)?;
        }
        let typed = &self.typed;
        if typed.records + typed.monitor_rows + typed.rejected_total() > 0 {
            write!(
                f,
                "\n    typed: {} records, {} monitor, {} rejected",
                typed.records,
                typed.monitor_rows,
                typed.rejected_total()
            )?;
            write_reasons(f, typed.rejected.iter().map(|(r, n)| (r.describe(), *n)))?;
            if typed.quoted_lines > 0 {
                write!(f, ", {} lines read with quoting", typed.quoted_lines)?;
            }
        }
        for choice in &self.files {
            write!(f, "\n    {choice}")?;
        }
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|t| t.name()).collect();
            write!(f, "\n    missing: {}", names.join(", "))?;
        }
        let typed_tables = self.typed.tables.iter().map(|(t, s)| (t, s, " (typed)"));
        for (file_type, stats, which) in self
            .tables
            .iter()
            .map(|(t, s)| (t, s, ""))
            .chain(typed_tables)
        {
            let skipped: u64 = stats.skipped.values().sum();
            if skipped > 0 || stats.lossy_lines > 0 {
                write!(f, "\n    {file_type}{which}: {skipped} lines skipped")?;
                write_reasons(f, stats.skipped.iter().map(|(r, n)| (r.describe(), *n)))?;
                if stats.lossy_lines > 0 {
                    write!(f, ", {} lines not UTF-8", stats.lossy_lines)?;
                }
            }
        }
        Ok(())
    }
}

fn write_reasons<'a>(
    f: &mut fmt::Formatter<'_>,
    reasons: impl Iterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let parts: Vec<String> = reasons.map(|(r, n)| format!("{r}: {n}")).collect();
    if parts.is_empty() {
        Ok(())
    } else {
        write!(f, " ({})", parts.join("; "))
    }
}

/// What combining a set of files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombineReport {
    /// One report per group, in output order.
    pub groups: Vec<GroupReport>,
    /// Files that belonged to no group.
    pub ignored: Vec<IgnoredFile>,
}

impl CombineReport {
    /// Rows given to the sink, all groups.
    pub fn rows(&self) -> u64 {
        self.groups.iter().map(|g| g.rows).sum()
    }

    /// Monitor lines, all groups.
    pub fn monitor_rows(&self) -> u64 {
        self.groups.iter().map(|g| g.monitor_rows).sum()
    }

    /// Header lines, all groups.
    pub fn header_lines(&self) -> u64 {
        self.groups.iter().map(|g| g.header_lines).sum()
    }

    /// Rejected lines by reason, all groups.
    pub fn rejected(&self) -> BTreeMap<RejectReason, u64> {
        let mut total = BTreeMap::new();
        for (reason, n) in self.groups.iter().flat_map(|g| &g.rejected) {
            *total.entry(*reason).or_default() += n;
        }
        total
    }
}

impl fmt::Display for CombineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = self.rejected();
        write!(
            f,
            "combined {} groups: {} rows, {} monitor rows, {} header lines, {} lines rejected",
            self.groups.len(),
            self.rows(),
            self.monitor_rows(),
            self.header_lines(),
            rejected.values().sum::<u64>()
        )?;
        write_reasons(f, rejected.iter().map(|(r, n)| (r.describe(), *n)))?;
        for ignored in &self.ignored {
            write!(
                f,
                "\n  ignored {}: {}",
                ignored.path.display(),
                ignored.reason
            )?;
        }
        for group in &self.groups {
            write!(f, "\n  {group}")?;
        }
        Ok(())
    }
}

/// Combines every group of the export files in `dir`, in ascending (branch, pos, date) order.
///
/// # Errors
///
/// [`CombineError::ListDir`] when the directory cannot be listed, or the first error of
/// [`combine_group`].
pub fn combine_dir<S: RowSink>(
    dir: &Path,
    options: &CombineOptions,
    sink: S,
) -> Result<CombineReport, CombineError> {
    let list_error = |source| CombineError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    combine_paths(paths, options, sink)
}

/// Combines the groups the given files form (see [`FileSet::from_paths`]).
///
/// Several groups are combined at once on worker threads ([`CombineOptions::threads`]); the
/// sink, which stays on the calling thread, still receives each group's output whole and in
/// group order, exactly the calls a one-at-a-time pass makes.
///
/// For the CLI (`fetch-worker combine`), which is handed any set of files; the worker, which
/// knows its day, uses [`combine_day`].
///
/// # Errors
///
/// The first error of [`combine_group`].
pub fn combine_paths<I, P, S>(
    paths: I,
    options: &CombineOptions,
    mut sink: S,
) -> Result<CombineReport, CombineError>
where
    I: IntoIterator<Item = P>,
    P: AsRef<Path>,
    S: RowSink,
{
    let set = FileSet::from_paths(paths);
    let workers = parallel::workers_for(set.groups.len(), options);
    let groups = if workers > 1 {
        parallel::combine_groups(&set.groups, options, workers, &mut sink)?
    } else {
        let mut reports = Vec::with_capacity(set.groups.len());
        let mut buffers = FileBuffers::default();
        for group in &set.groups {
            reports.push(combine_group_with(group, options, &mut sink, &mut buffers)?);
        }
        reports
    };
    Ok(CombineReport {
        groups,
        ignored: set.ignored,
    })
}

/// Combines the stored files of one (branch, pos, date), each with its parsed name, into that
/// day's report: the worker's entry point, so nothing is regrouped from paths or searched
/// for afterwards. Files of a type no group is made of are left out, as [`combine_paths`]
/// leaves them out.
///
/// `Ok(None)` when no file is of a combinable type (there is no day to report).
///
/// # Errors
///
/// [`CombineError::NotOneDay`] when the files belong to several days, and the errors of
/// [`combine_group`].
pub fn combine_day<S: RowSink>(
    files: Vec<DayFile>,
    options: &CombineOptions,
    sink: S,
) -> Result<Option<GroupReport>, CombineError> {
    let set = FileSet::from_named(files);
    match &set.groups[..] {
        [] => Ok(None),
        [group] => combine_group(group, options, sink).map(Some),
        groups => Err(CombineError::NotOneDay {
            groups: groups.iter().map(|g| g.key.to_string()).collect(),
        }),
    }
}

/// Combines one group: builds its lookups, then sends every rd5000 line's row (bottom-to-top)
/// to `sink`.
///
/// # Errors
///
/// [`CombineError::Read`] or [`CombineError::FileTooLarge`] for a file of the group, and
/// [`CombineError::Sink`] when the sink fails. Bad lines are not errors; they are counted in the
/// returned report.
pub fn combine_group<S: RowSink>(
    group: &Group,
    options: &CombineOptions,
    sink: S,
) -> Result<GroupReport, CombineError> {
    combine_group_with(group, options, sink, &mut FileBuffers::default())
}

/// Read buffers for a group's files, one per type (in [`FileType::ALL`] order), kept from one
/// group to the next.
///
/// A new buffer of a megabyte or more is fresh memory from the kernel: its first touch costs
/// a page fault per 4 KiB page, which measured as a sizeable part of a whole pass. A pass over
/// many groups reads each type into memory an earlier group already mapped.
#[derive(Debug, Default)]
struct FileBuffers([Vec<u8>; FileType::ALL.len()]);

/// [`combine_group`], reading the group's files into `buffers`.
fn combine_group_with<S: RowSink>(
    group: &Group,
    options: &CombineOptions,
    mut sink: S,
    buffers: &mut FileBuffers,
) -> Result<GroupReport, CombineError> {
    let key = &group.key;
    let mut report = GroupReport::new(key.clone());
    let new_branch = options.new_branches.contains(&key.branch);
    let typed = sink.wants_transactions();

    // All files are read first: the lookups borrow their text from the reference files' bytes.
    let mut read = [false; FileType::ALL.len()];
    let mut rd5000_name = None;
    let types = FileType::ALL.into_iter().zip(&mut buffers.0).zip(&mut read);
    for ((file_type, buffer), read) in types {
        let Some(choice) = choose(file_type, group, options, buffer)? else {
            report.missing.push(file_type);
            continue;
        };
        if file_type == FileType::Rd5000 {
            rd5000_name = Some(choice.file_name.clone());
        }
        *read = true;
        report.files.push(choice);
    }

    // The legacy tables, and for the typed records the tables of every reference file that
    // holds a quote, read with real quoting (identical for the other files).
    let mut lookups = Lookups::default();
    let mut quoted = Lookups::default();
    let mut own = [false; FileType::ALL.len()];
    let mut rd5000 = None;
    let files = FileType::ALL.into_iter().zip(&buffers.0).zip(read);
    for (i, ((file_type, data), _)) in files.enumerate().filter(|(_, (_, read))| *read) {
        if file_type == FileType::Rd5000 {
            // rd5000 comes first in `FileType::ALL`, so blpr is not loaded yet.
            let numbers = transaction_numbers(data, options.max_line_bytes, typed);
            if typed {
                quoted.keep_phones_for(numbers.iter().cloned());
            }
            lookups.keep_phones_for(numbers);
            rd5000 = Some(data.as_slice());
        } else {
            if typed && file_type == FileType::Blpr {
                lookups.check_blpr_quoting();
            }
            let stats = lookups.load(file_type, data, new_branch, options.max_line_bytes);
            report.tables.insert(file_type, stats);
            let quotes_matter = match file_type {
                FileType::Blpr => lookups.blpr_needs_quoting(),
                _ => memchr::memchr(b'"', data).is_some(),
            };
            if typed && quotes_matter {
                let stats = quoted.load_quoted(file_type, data, new_branch, options.max_line_bytes);
                report.typed.tables.insert(file_type, stats);
                own[i] = true;
            }
        }
    }
    let (Some(data), Some(file_name)) = (rd5000, rd5000_name) else {
        return Ok(report);
    };

    let ctx = GroupContext {
        branch: &key.branch,
        pos_text: &key.pos_text,
        date_text: &key.date_text,
        new_branch,
        lookups: &lookups,
    };
    let tables = TypedTables::new(&lookups, &quoted, own);
    let pass = Rd5000Pass {
        ctx: &ctx,
        tables: &tables,
        key,
        data,
        file_name: &file_name,
        options,
    };
    walk_rd5000(pass, &mut sink, &mut report)?;
    Ok(report)
}

/// What the typed pass decided for one line.
///
/// A `Record` carries the line's selected fields (about 300 bytes). The value lives on the
/// stack for one line and is matched at once, so boxing it would only add an allocation per
/// line.
#[allow(clippy::large_enum_variant)]
enum TypedVerdict<'f> {
    /// A record from these fields, with this daypart.
    Record(Selected<'f>, Daypart),
    /// The line's DATE is not the file's date.
    Monitor,
    /// No record, for this reason; for [`RejectReason::FieldCount`], the line's field count.
    Rejected(RejectReason, Option<usize>),
}

/// The typed verdict for a line read with real quoting, from its `fields`: the field count
/// first (the columns mean nothing otherwise), then the hour of TIME, then DATE, the checks
/// legacy makes on its own columns.
fn judge_quoted<'f>(
    fields: &'f Result<Vec<Cow<'_, str>>, UnclosedQuote>,
    date_text: &str,
) -> TypedVerdict<'f> {
    let fields = match fields {
        Ok(fields) => fields,
        Err(UnclosedQuote) => return TypedVerdict::Rejected(RejectReason::UnclosedQuote, None),
    };
    if fields.len() != RD5000_FIELDS {
        return TypedVerdict::Rejected(RejectReason::FieldCount, Some(fields.len()));
    }
    let selected = Selected::from_fields(fields);
    let time = selected.raw[legacy::slot::TIME];
    let daypart = match legacy::daypart(time) {
        Ok(daypart) => daypart,
        Err(_) if time == "TIME" => return TypedVerdict::Rejected(RejectReason::HeaderLine, None),
        Err(reason) => return TypedVerdict::Rejected(reason, None),
    };
    let date = selected.raw[legacy::slot::DATE];
    if lines::py_strip(date.split(' ').next().unwrap_or_default()) != date_text {
        return TypedVerdict::Monitor;
    }
    TypedVerdict::Record(selected, daypart)
}

/// What the row pass over one group's rd5000 reads: everything but where it writes.
struct Rd5000Pass<'p, 'l, 'a> {
    /// The group's branch, POS and date as the legacy rows print them, and its lookups.
    ctx: &'p GroupContext<'l>,
    /// The lookups the typed records use (quoted where a file holds quotes).
    tables: &'p TypedTables<'l, 'a>,
    /// The group the rows belong to.
    key: &'p GroupKey,
    /// rd5000's bytes.
    data: &'p [u8],
    /// rd5000's file name, written into each row (`source_file`, `file_name`).
    file_name: &'p str,
    /// Line limits and what to produce.
    options: &'p CombineOptions,
}

/// The row pass over rd5000, last line first.
fn walk_rd5000<S: RowSink>(
    pass: Rd5000Pass<'_, '_, '_>,
    sink: &mut S,
    report: &mut GroupReport,
) -> Result<(), CombineError> {
    let Rd5000Pass {
        ctx,
        tables,
        key,
        data,
        file_name,
        options,
    } = pass;
    let typed = sink.wants_transactions();
    let sink_error = |e: S::Error| CombineError::Sink(Box::new(e));

    // Line numbers count from the top, and a row key's occurrence number counts identical
    // lines above it, so one forward pass first counts lines and (for row keys) hashes.
    let file = Text::new(data);
    let mut remaining: FxHashMap<u64, u32> = FxHashMap::default();
    let mut line_no: u64 = 0;
    for line in file.lines() {
        line_no += 1;
        if typed {
            *remaining.entry(fnv1a64(file.bytes(line))).or_default() += 1;
        }
    }

    let mut builder = RowBuilder::default();
    for line in file.rev_lines() {
        let raw = file.bytes(line.clone());
        let this_line = line_no;
        line_no = line_no.saturating_sub(1);
        report.lines += 1;
        let occurrence = if typed {
            let hash = fnv1a64(raw);
            let count = remaining.entry(hash).or_insert(1);
            *count = count.saturating_sub(1);
            Some((hash, *count))
        } else {
            None
        };
        if raw.len() > options.max_line_bytes {
            report.reject(this_line, RejectReason::LineTooLong);
            if typed {
                report.typed.reject(RejectedLine {
                    line: this_line,
                    reason: RejectReason::LineTooLong,
                    fields: None,
                });
            }
            continue;
        }
        let (text, lossy) = file.line(line);
        if lossy {
            report.lossy_lines += 1;
        }

        // The legacy row, exactly as legacy made it.
        let selected = Selected::from_line(&text);
        let legacy = match builder.build(ctx, &selected) {
            Err(reason) => {
                report.reject(this_line, reason);
                Err(Some(reason))
            }
            Ok(_) if builder.row_date() != ctx.date_text => {
                report.monitor_rows += 1;
                let entry = MonitorEntry {
                    pos: &key.pos_text,
                    branch: &key.branch,
                    date: ctx.date_text,
                    source_file: file_name,
                    line: this_line,
                    row_date: builder.row_date(),
                };
                sink.monitor(&entry).map_err(sink_error)?;
                Err(None)
            }
            Ok(daypart) => {
                sink.legacy_row_at(this_line, builder.row().as_bytes())
                    .map_err(sink_error)?;
                report.rows += 1;
                Ok(daypart)
            }
        };
        let Some((hash, occurrence)) = occurrence else {
            continue;
        };

        // The typed record: a line with a quote is read again with real quoting.
        let quoted_fields = if memchr::memchr(b'"', raw).is_some() {
            report.typed.quoted_lines += 1;
            Some(quoted::split(&text))
        } else {
            None
        };
        let verdict = match (&quoted_fields, legacy) {
            (Some(fields), _) => judge_quoted(fields, ctx.date_text),
            (None, Err(Some(reason))) => TypedVerdict::Rejected(reason, None),
            (None, Err(None)) => TypedVerdict::Monitor,
            (None, Ok(daypart)) => match memchr::memchr_iter(b',', raw).count() + 1 {
                RD5000_FIELDS => TypedVerdict::Record(selected, daypart),
                n => TypedVerdict::Rejected(RejectReason::FieldCount, Some(n)),
            },
        };
        match verdict {
            TypedVerdict::Rejected(reason, fields) => report.typed.reject(RejectedLine {
                line: this_line,
                reason,
                fields,
            }),
            TypedVerdict::Monitor => report.typed.monitor_rows += 1,
            TypedVerdict::Record(selected, daypart) => {
                let source = typed::Source {
                    pos: key.pos,
                    date: key.date,
                    file_name,
                    line: this_line,
                    row_key: row_key(&key.branch, key.pos, key.date, hash, occurrence),
                };
                let record: Transaction = typed::transaction(
                    ctx,
                    tables,
                    &selected,
                    daypart,
                    source,
                    &mut report.bad_numbers,
                );
                sink.transaction(record).map_err(sink_error)?;
                report.typed.records += 1;
            }
        }
    }
    Ok(())
}

/// The non-empty TRANSNO values of rd5000: the only keys the phone table is looked up by.
///
/// With `quoting`, a line that holds a `"` also gives its TRANSNO under real quoting (the
/// typed lookup's key); a key only one reading uses costs a kept entry, nothing more.
fn transaction_numbers(
    data: &[u8],
    max_line_bytes: usize,
    quoting: bool,
) -> FxHashSet<Cow<'_, str>> {
    let file = Text::new(data);
    let mut numbers = FxHashSet::default();
    let column = legacy::SELECTED[legacy::slot::TRANSNO];
    for line in file.lines().filter(|line| line.len() <= max_line_bytes) {
        let has_quote = quoting && memchr::memchr(b'"', file.bytes(line.clone())).is_some();
        let (text, _) = file.line(line);
        // Borrowed from the file unless the line had to be decoded into a copy.
        let transno = match &text {
            Cow::Borrowed(text) => nth_field(text, column).map(Cow::Borrowed),
            Cow::Owned(text) => nth_field(text, column).map(|t| Cow::Owned(t.to_owned())),
        };
        if let Some(transno) = transno.filter(|t| !t.is_empty()) {
            numbers.insert(transno);
        }
        if has_quote {
            let real = quoted::split(&text)
                .ok()
                .and_then(|mut fields| (fields.len() > column).then(|| fields.swap_remove(column)))
                .filter(|t| !t.is_empty());
            if let Some(real) = real {
                numbers.insert(Cow::Owned(real.into_owned()));
            }
        }
    }
    numbers
}

/// Reads the file a group uses for `file_type` into `buffer`, choosing among several
/// candidates.
fn choose(
    file_type: FileType,
    group: &Group,
    options: &CombineOptions,
    buffer: &mut Vec<u8>,
) -> Result<Option<FileChoice>, CombineError> {
    let Some(candidates) = group.files.get(&file_type).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if let [only] = candidates.as_slice() {
        read_file(&only.path, options.max_file_bytes, buffer)?;
        return Ok(Some(FileChoice {
            file_type,
            file_name: only.file_name.clone(),
            path: only.path.clone(),
            data_rows: None,
            reason: ChoiceReason::Only,
        }));
    }
    let mut counted = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        read_file(&candidate.path, options.max_file_bytes, buffer)?;
        counted.push((candidate, files::count_data_rows(file_type, buffer)));
    }
    let Some((best, reason)) = files::pick(&counted) else {
        return Ok(None);
    };
    let (winner, rows) = counted[best];
    read_file(&winner.path, options.max_file_bytes, buffer)?;
    Ok(Some(FileChoice {
        file_type,
        file_name: winner.file_name.clone(),
        path: winner.path.clone(),
        data_rows: Some(rows),
        reason,
    }))
}

/// Reads a whole file into `buffer` (replacing its contents), refusing one over `limit` bytes
/// before allocating for it.
fn read_file(path: &Path, limit: u64, buffer: &mut Vec<u8>) -> Result<(), CombineError> {
    let read_error = |source| CombineError::Read {
        path: path.to_path_buf(),
        source,
    };
    buffer.clear();
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > limit {
        return Err(CombineError::FileTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    buffer.reserve(usize::try_from(size).unwrap_or(0));
    // `take` also bounds a file that grows while we read it.
    file.take(limit.saturating_add(1))
        .read_to_end(buffer)
        .map_err(read_error)?;
    if buffer.len() as u64 > limit {
        return Err(CombineError::FileTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

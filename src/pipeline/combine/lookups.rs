//! The reference tables a group's rows are completed from, built the legacy way.
//!
//! Every reference file is split into lines ([`super::lines`]) and every line naively on `,`:
//! quotes are not CSV quotes, so `"REPP""13"` is a key with its quotes. Legacy walked each file
//! bottom-to-top assigning into a dict, so for a repeated key **the first line in file order
//! wins**; we walk top-to-bottom and keep the first. Header lines become ordinary entries
//! (`INCODE`, `DEP_CODE`, …), which is harmless because no data row uses those keys.
//!
//! Per table (legacy rule, with our treatment of lines legacy could not handle):
//!
//! - rd5500 (items): each line is stripped of surrounding whitespace first. For a new-layout
//!   branch, a line with more than 12 fields maps col 0 → (name col 1, department col 12
//!   `CATEG_ID`), one with 4–12 fields maps col 0 → (col 1, col 3). Otherwise a line with 2+
//!   fields maps col 0 → name col 1, and a non-empty 1-field line maps to a "bare" entry that
//!   breaks any row that finds it (legacy raised on it).
//! - rd1800 (departments), discount: col 0 → col 1; a non-empty 1-field line → empty name.
//! - rd5800 (payments): col 20 `TRANSNO` → col 11 `PAYCODE` for lines of 21+ fields. Shorter
//!   lines are skipped. A line of exactly 20 fields made legacy abort the whole run with an
//!   IndexError; we skip it and count it.
//! - rd5900 (payment names): col 0 → col 1; any 1-field line, even an empty one, → empty name.
//! - blpr (phones): lines of 4+ fields whose col 1 is exactly 11 characters map col 3 `ORNO`
//!   → col 1. When col 3 contains `"=""…"""`, the text inside the first such wrapper is the
//!   key (legacy's regex search `"=""(.+?)"""`); otherwise the raw field is. The pass keeps
//!   only keys that some rd5000 line can look up ([`Lookups::keep_phones_for`]).
//!
//! Lines longer than the configured limit are skipped and counted rather than split.
//!
//! # Tables for the typed records
//!
//! [`Lookups::load_quoted`] builds the same tables with the same rules from fields read with
//! real CSV quoting ([`super::quoted`]), so keys and names are the unquoted text (`REPP"13` →
//! `EXT"E PLATTER`) and a quoted comma does not move the later columns. Only lines that
//! contain a `"` are read that way; the others give the same fields either way and go
//! through the legacy splitter. The blpr key is then the text inside an Excel formula
//! `="…"` (what `"=""…"""` unquotes to), the key legacy's search finds in the raw field.
//! [`TypedTables`] picks, per table, these tables when the file held a quote and the legacy
//! ones otherwise (they would be identical).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use rustc_hash::{FxHashMap, FxHashSet};

use super::files::FileType;
use super::lines::{Text, find_byte, leading_fields, py_strip};
use super::quoted;

/// Text taken from a reference file: borrowed from the file's bytes, or owned when its line
/// was not valid UTF-8 and had to be decoded into a new string.
pub type Field<'a> = Cow<'a, str>;

/// A lookup table: export code → value, both borrowed from the file where possible.
///
/// Borrowing saves two allocations (and two frees) per line; rd5500 alone has thousands of
/// lines per group. FxHash rather than the default SipHash: the keys are short codes from our
/// own export files, hashed once or twice per line, so hashing speed matters and flood
/// resistance does not. `Cow<str>` hashes and compares as its text, so tables are looked up
/// with a plain `&str`.
pub type Table<'a, V> = FxHashMap<Field<'a>, V>;

/// What rd5500 says about one item code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemEntry<'a> {
    /// A 1-field line: legacy stored an empty string, and any row that found it failed.
    Bare,
    /// A line with a name.
    Named {
        /// `ITE_DESC`: the product name rows show (PRODUCT NAME, `productName`).
        name: Field<'a>,
        /// The department for new-layout branches (`CATEG_ID`, or `DEP_CODE` on 4–12 field
        /// lines); `None` for old-layout branches and for 2–3 field lines.
        department: Option<Field<'a>>,
    },
}

/// Turns a piece of the line being added into a [`Field`] that outlives the line: borrowed
/// when the line borrows the file, copied when the line is a decoded copy.
type Keep<'l, 'a> = dyn Fn(&'l str) -> Field<'a>;

/// Why a reference line was left out of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// rd5800 line with fewer than 11 fields (legacy printed "lack 11").
    Rd5800Under11Fields,
    /// rd5800 line with 11–19 fields (legacy printed "lack 20").
    Rd5800Under20Fields,
    /// rd5800 line with exactly 20 fields: legacy aborted the whole combine on it.
    Rd5800Exactly20Fields,
    /// Longer than the line limit.
    LineTooLong,
    /// Read with real quoting (typed tables only): a quoted field is not closed by the end
    /// of the line.
    UnclosedQuote,
}

impl SkipReason {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Rd5800Under11Fields => "rd5800 line with fewer than 11 fields",
            SkipReason::Rd5800Under20Fields => "rd5800 line with 11-19 fields",
            SkipReason::Rd5800Exactly20Fields => {
                "rd5800 line with exactly 20 fields (legacy aborted the run)"
            }
            SkipReason::LineTooLong => "line longer than the limit",
            SkipReason::UnclosedQuote => "quoted field not closed at the end of the line",
        }
    }
}

/// What reading one reference file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Lines in the file.
    pub lines: u64,
    /// Distinct keys in the table built from it (for blpr: only the keys kept, see
    /// [`Lookups::keep_phones_for`]).
    pub entries: u64,
    /// Lines that were not valid UTF-8 and were decoded with replacement characters.
    pub lossy_lines: u64,
    /// Lines left out, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
}

/// The six lookup tables of one group, borrowing the reference files' bytes (`'a`). A missing
/// reference file leaves its table empty, as in legacy.
#[derive(Debug, Clone, Default)]
pub struct Lookups<'a> {
    /// rd5500: item code → entry.
    pub items: Table<'a, ItemEntry<'a>>,
    /// rd1800: department code → name.
    pub departments: Table<'a, Field<'a>>,
    /// discount: discount code → name.
    pub discounts: Table<'a, Field<'a>>,
    /// rd5800: transaction number → payment code.
    pub payment_codes: Table<'a, Field<'a>>,
    /// rd5900: payment code → name.
    pub payment_names: Table<'a, Field<'a>>,
    /// blpr: ORNO → phone.
    pub phones: Table<'a, Field<'a>>,
    /// When set, blpr entries with other keys are not kept (see [`Lookups::keep_phones_for`]).
    phone_keys: Option<FxHashSet<Field<'a>>>,
    /// Whether [`Lookups::load`] checks blpr lines for quoting that changes the typed table
    /// (see [`Lookups::check_blpr_quoting`]).
    check_blpr_quoting: bool,
    /// Whether such a line was found.
    blpr_needs_quoting: bool,
}

impl<'a> Lookups<'a> {
    /// Makes the legacy blpr load also note whether some line reads differently with real
    /// quoting in a way the typed table would see ([`Lookups::blpr_needs_quoting`]).
    ///
    /// blpr is the largest input and has a quote on almost every line (its Excel-wrapped
    /// numbers), yet those lines read the same either way. Checking during the legacy load
    /// costs a few comparisons per line; reading the file a second time with quoting, only to
    /// build the same table, cost about as much again as the legacy load.
    pub fn check_blpr_quoting(&mut self) {
        self.check_blpr_quoting = true;
    }

    /// After a blpr load with [`Lookups::check_blpr_quoting`]: whether a typed table read with
    /// real quoting ([`Lookups::load_quoted`]) could differ from this one.
    pub fn blpr_needs_quoting(&self) -> bool {
        self.blpr_needs_quoting
    }

    /// Keeps only blpr entries whose key is one of `keys` (load blpr after calling this).
    ///
    /// The phone table is only ever looked up by rd5000 transaction numbers, and blpr is the
    /// store's whole loyalty history (tens of thousands of lines per day, almost all keys
    /// distinct). Passing the group's transaction numbers gives exactly the lookups the full
    /// table would give, first occurrence still winning, without storing the history.
    pub fn keep_phones_for<K: Into<Field<'a>>>(&mut self, keys: impl IntoIterator<Item = K>) {
        self.phone_keys = Some(keys.into_iter().map(Into::into).collect());
    }

    /// Adds one reference file's lines to its table, split the legacy way (on every comma).
    ///
    /// `new_branch` selects the rd5500 new-layout rules. rd5000 is not a reference type and
    /// is ignored here.
    pub fn load(
        &mut self,
        file_type: FileType,
        data: &'a [u8],
        new_branch: bool,
        max_line_bytes: usize,
    ) -> TableStats {
        self.load_with(file_type, data, new_branch, max_line_bytes, false)
    }

    /// [`Lookups::load`] for the typed records: lines that contain a `"` are read with real
    /// CSV quoting (module doc, "Tables for the typed records"); a line whose quoted field is
    /// not closed is skipped and counted ([`SkipReason::UnclosedQuote`]).
    pub fn load_quoted(
        &mut self,
        file_type: FileType,
        data: &'a [u8],
        new_branch: bool,
        max_line_bytes: usize,
    ) -> TableStats {
        self.load_with(file_type, data, new_branch, max_line_bytes, true)
    }

    fn load_with(
        &mut self,
        file_type: FileType,
        data: &'a [u8],
        new_branch: bool,
        max_line_bytes: usize,
        quoting: bool,
    ) -> TableStats {
        let mut stats = TableStats::default();
        let file = Text::new(data);
        for line in file.lines() {
            stats.lines += 1;
            if line.len() > max_line_bytes {
                *stats.skipped.entry(SkipReason::LineTooLong).or_default() += 1;
                continue;
            }
            // (blpr is read this way only when some line needs it, see
            // `Lookups::check_blpr_quoting`, so every quoted line goes the quoted way.)
            let quoted = quoting && memchr::memchr(b'"', file.bytes(line.clone())).is_some();
            let (text, lossy) = file.line(line);
            if lossy {
                stats.lossy_lines += 1;
            }
            let added = match (text, quoted) {
                (Cow::Borrowed(line), false) => {
                    self.add_line(file_type, line, new_branch, &Cow::Borrowed)
                }
                (Cow::Owned(line), false) => {
                    let copy = |s: &str| Cow::Owned(s.to_owned());
                    self.add_line(file_type, &line, new_branch, &copy)
                }
                (Cow::Borrowed(line), true) => quoted_fields(file_type, line)
                    .and_then(|fields| self.add_fields(file_type, fields, new_branch)),
                (Cow::Owned(line), true) => quoted_fields(file_type, &line).and_then(|fields| {
                    let owned = fields.into_iter().map(|f| Cow::Owned(f.into_owned()));
                    self.add_fields(file_type, owned.collect(), new_branch)
                }),
            };
            if let Err(reason) = added {
                *stats.skipped.entry(reason).or_default() += 1;
            }
        }
        stats.entries = match file_type {
            FileType::Rd5000 => 0,
            FileType::Rd5500 => self.items.len(),
            FileType::Rd1800 => self.departments.len(),
            FileType::Discount => self.discounts.len(),
            FileType::Rd5800 => self.payment_codes.len(),
            FileType::Rd5900 => self.payment_names.len(),
            FileType::Blpr => self.phones.len(),
        } as u64;
        stats
    }

    /// The table rules of `add_line`, on fields already split (and unquoted).
    ///
    /// The two state the same rules; a test checks that they build the same tables from
    /// lines without quotes.
    fn add_fields(
        &mut self,
        file_type: FileType,
        mut fields: Vec<Field<'a>>,
        new_branch: bool,
    ) -> Result<(), SkipReason> {
        let count = fields.len();
        let mut take = |i: usize| fields.get_mut(i).map(std::mem::take).unwrap_or_default();
        match file_type {
            FileType::Rd5000 => {}
            FileType::Rd5500 => {
                let key = take(0);
                if count < 2 && key.is_empty() {
                    return Ok(());
                }
                let department = match count {
                    _ if !new_branch => None,
                    13.. => Some(take(12)),
                    4.. => Some(take(3)),
                    _ => None,
                };
                let entry = match count {
                    2.. => ItemEntry::Named {
                        name: take(1),
                        department,
                    },
                    _ => ItemEntry::Bare,
                };
                insert_first(&mut self.items, key, entry);
            }
            FileType::Rd1800 | FileType::Discount => {
                let table = if file_type == FileType::Rd1800 {
                    &mut self.departments
                } else {
                    &mut self.discounts
                };
                let key = take(0);
                if count >= 2 || !key.is_empty() {
                    insert_first(table, key, take(1));
                }
            }
            FileType::Rd5800 => match count {
                n if n < 11 => return Err(SkipReason::Rd5800Under11Fields),
                n if n < 20 => return Err(SkipReason::Rd5800Under20Fields),
                20 => return Err(SkipReason::Rd5800Exactly20Fields),
                _ => insert_first(&mut self.payment_codes, take(20), take(11)),
            },
            FileType::Rd5900 => insert_first(&mut self.payment_names, take(0), take(1)),
            FileType::Blpr => {
                if count < 4 {
                    return Ok(());
                }
                let key = formula_inner(take(3));
                let wanted = self.phone_keys.as_ref();
                if wanted.is_some_and(|keys| !keys.contains(key.as_ref())) {
                    return Ok(());
                }
                let phone = take(1);
                if phone.chars().count() == 11 {
                    insert_first(&mut self.phones, key, phone);
                }
            }
        }
        Ok(())
    }

    fn add_line<'l>(
        &mut self,
        file_type: FileType,
        line: &'l str,
        new_branch: bool,
        keep: &Keep<'l, 'a>,
    ) -> Result<(), SkipReason> {
        match file_type {
            FileType::Rd5000 => {}
            FileType::Rd5500 => add_item(&mut self.items, line, new_branch, keep),
            FileType::Rd1800 => add_name(&mut self.departments, line, keep),
            FileType::Discount => add_name(&mut self.discounts, line, keep),
            FileType::Rd5800 => return add_payment(&mut self.payment_codes, line, keep),
            FileType::Rd5900 => {
                // A missing name is empty.
                let ([key, name], _) = leading_fields(line);
                first_wins(&mut self.payment_names, key, || keep(name), keep);
            }
            FileType::Blpr => {
                let (fields, count) = leading_fields::<4>(line);
                let wanted = add_phone(
                    &mut self.phones,
                    self.phone_keys.as_ref(),
                    fields,
                    count,
                    keep,
                );
                if self.check_blpr_quoting && !self.blpr_needs_quoting {
                    self.blpr_needs_quoting = reads_differently(line, &fields, count, wanted);
                }
            }
        }
        Ok(())
    }
}

/// The fields of a reference line under real quoting; rd5500 lines are stripped first, as
/// legacy stripped them before splitting.
fn quoted_fields(file_type: FileType, line: &str) -> Result<Vec<Field<'_>>, SkipReason> {
    let line = if file_type == FileType::Rd5500 {
        py_strip(line)
    } else {
        line
    };
    quoted::split(line).map_err(|_| SkipReason::UnclosedQuote)
}

/// Whether reading a blpr line with real quoting could change the typed table, or the legacy
/// split gives the same result for it. blpr's Excel-wrapped numbers put a quote on almost
/// every line, and the file is the store's whole history, so this is decided from the first
/// four fields where possible, during the legacy load ([`Lookups::check_blpr_quoting`]).
///
/// The rules read fields 0–3 only: the field count up to 4, PHONE (1) and ORNO (3). A field
/// that holds no quote, or is quoted with only doubled quotes inside (`"=""00019702"""`),
/// ends at the same comma in both readings. When the first four fields are such fields,
/// PHONE holds no quote and ORNO none or exactly an Excel wrapper `"=""X"""` with a
/// quote-free `X` (legacy's search finds `X`, and the quoted reading gives `="X"`, whose
/// formula text is `X`), both readings give the same key and phone. Then only a line whose
/// key is wanted needs its remaining fields checked too (a later field could hide a comma or
/// an unclosed quote, which changes the count or fails the quoted reading).
///
/// `fields` and `count` are `leading_fields::<4>(line)`; `wanted` says whether the legacy
/// reading's key is looked up (what [`add_phone`] returned).
fn reads_differently(line: &str, fields: &[&str; 4], count: usize, wanted: bool) -> bool {
    // Fields here are a few bytes long: a plain loop beats a `memchr` call.
    let plain = |f: &[u8]| f.iter().all(|&b| b != b'"');
    // Quoted with only doubled quotes inside: `"`, then pairs `""` or other bytes, then `"`.
    let same_end = |f: &str| {
        let f = f.as_bytes();
        if plain(f) {
            return true;
        }
        let Some(inner) = f.strip_prefix(b"\"").and_then(|f| f.strip_suffix(b"\"")) else {
            return false;
        };
        let mut bytes = inner.iter();
        while let Some(&b) = bytes.next() {
            if b == b'"' && bytes.next() != Some(&b'"') {
                return false;
            }
        }
        true
    };
    // ORNO: the key both readings give, or `None` when they may differ.
    let orno = fields[3];
    let key = if plain(orno.as_bytes()) {
        Some(orno)
    } else {
        orno.strip_prefix("\"=\"\"")
            .and_then(|f| f.strip_suffix("\"\"\""))
            .filter(|x| !x.is_empty() && plain(x.as_bytes()))
    };
    if key.is_none() {
        return true;
    }
    if !plain(fields[1].as_bytes()) || !fields[..count].iter().all(|f| same_end(f)) {
        return true;
    }
    if count < 4 {
        // The line ends within those fields: no entry either way.
        return false;
    }
    // Both readings give the legacy key here.
    wanted && !line.split(',').all(same_end)
}

/// Inserts unless the key is already there (the first line in file order wins).
fn insert_first<'a, V>(table: &mut Table<'a, V>, key: Field<'a>, value: V) {
    if let Entry::Vacant(slot) = table.entry(key) {
        slot.insert(value);
    }
}

/// The text inside an Excel text formula `="…"` (what blpr's `"=""00019910"""` unquotes
/// to), or the field itself when it is not one: the typed counterpart of
/// [`excel_wrapped_inner`] on the raw field. An empty formula `=""` is kept as it is, as the
/// legacy search finds nothing in an empty wrapper.
pub fn formula_inner(field: Field<'_>) -> Field<'_> {
    let inner = |s: &str| -> Option<std::ops::Range<usize>> {
        let rest = s.strip_prefix("=\"")?.strip_suffix('"')?;
        (!rest.is_empty()).then_some(2..2 + rest.len())
    };
    match field {
        Cow::Borrowed(s) => match inner(s) {
            Some(range) => Cow::Borrowed(&s[range]),
            None => Cow::Borrowed(s),
        },
        Cow::Owned(s) => match inner(&s) {
            Some(range) => Cow::Owned(s[range].to_owned()),
            None => Cow::Owned(s),
        },
    }
}

/// The tables a typed record is completed from: for each reference file that contained a
/// `"`, the tables read with real quoting ([`Lookups::load_quoted`]); for the others the
/// legacy tables, which are the same.
#[derive(Debug, Clone, Copy)]
pub struct TypedTables<'t, 'a> {
    legacy: &'t Lookups<'a>,
    quoted: &'t Lookups<'a>,
    /// Per [`FileType::ALL`] index: whether `quoted` holds that type's table.
    own: [bool; FileType::ALL.len()],
}

impl<'t, 'a> TypedTables<'t, 'a> {
    /// `own[i]` says whether `quoted` holds the table of `FileType::ALL[i]`.
    pub fn new(
        legacy: &'t Lookups<'a>,
        quoted: &'t Lookups<'a>,
        own: [bool; FileType::ALL.len()],
    ) -> Self {
        Self {
            legacy,
            quoted,
            own,
        }
    }

    fn pick(&self, file_type: FileType) -> &'t Lookups<'a> {
        let own = FileType::ALL
            .iter()
            .zip(self.own)
            .any(|(t, own)| *t == file_type && own);
        if own { self.quoted } else { self.legacy }
    }

    /// rd5500: item code → entry.
    pub fn items(&self) -> &'t Table<'a, ItemEntry<'a>> {
        &self.pick(FileType::Rd5500).items
    }

    /// rd1800: department code → name.
    pub fn departments(&self) -> &'t Table<'a, Field<'a>> {
        &self.pick(FileType::Rd1800).departments
    }

    /// discount: discount code → name.
    pub fn discounts(&self) -> &'t Table<'a, Field<'a>> {
        &self.pick(FileType::Discount).discounts
    }

    /// rd5800: transaction number → payment code.
    pub fn payment_codes(&self) -> &'t Table<'a, Field<'a>> {
        &self.pick(FileType::Rd5800).payment_codes
    }

    /// rd5900: payment code → name.
    pub fn payment_names(&self) -> &'t Table<'a, Field<'a>> {
        &self.pick(FileType::Rd5900).payment_names
    }

    /// blpr: ORNO → phone.
    pub fn phones(&self) -> &'t Table<'a, Field<'a>> {
        &self.pick(FileType::Blpr).phones
    }
}

fn first_wins<'l, 'a, V>(
    table: &mut Table<'a, V>,
    key: &'l str,
    value: impl FnOnce() -> V,
    keep: &Keep<'l, 'a>,
) {
    // `keep` copies only text from lines that were not valid UTF-8; otherwise it is free.
    if let Entry::Vacant(slot) = table.entry(keep(key)) {
        slot.insert(value());
    }
}

fn add_item<'l, 'a>(
    items: &mut Table<'a, ItemEntry<'a>>,
    line: &'l str,
    new_branch: bool,
    keep: &Keep<'l, 'a>,
) {
    let line = py_strip(line);
    // Only fields 0, 1, 3 and 12 are read, and only whether there are 2+, 4+ or 13+ fields;
    // old-layout branches read no department, so their lines are split up to field 1 only.
    let (key, name, department, count) = if new_branch {
        let (fields, count) = leading_fields::<13>(line);
        let department = match count {
            13 => Some(fields[12]),
            4.. => Some(fields[3]),
            _ => None,
        };
        (fields[0], fields[1], department, count)
    } else {
        let ([key, name], count) = leading_fields(line);
        (key, name, None, count)
    };
    if count < 2 && key.is_empty() {
        // A blank line is no entry at all.
        return;
    }
    let entry = || match count {
        2.. => ItemEntry::Named {
            name: keep(name),
            department: department.map(keep),
        },
        _ => ItemEntry::Bare,
    };
    first_wins(items, key, entry, keep);
}

fn add_name<'l, 'a>(table: &mut Table<'a, Field<'a>>, line: &'l str, keep: &Keep<'l, 'a>) {
    match leading_fields(line) {
        ([key, name], 2) => first_wins(table, key, || keep(name), keep),
        ([key, _], _) if !key.is_empty() => first_wins(table, key, || Cow::Borrowed(""), keep),
        _ => {}
    }
}

fn add_payment<'l, 'a>(
    table: &mut Table<'a, Field<'a>>,
    line: &'l str,
    keep: &Keep<'l, 'a>,
) -> Result<(), SkipReason> {
    // Only whether there are fewer than 11, fewer than 20, exactly 20 or more fields matters.
    let (fields, count) = leading_fields::<21>(line);
    let (paycode, transno) = (fields[11], fields[20]);
    match count {
        n if n < 11 => Err(SkipReason::Rd5800Under11Fields),
        n if n < 20 => Err(SkipReason::Rd5800Under20Fields),
        20 => Err(SkipReason::Rd5800Exactly20Fields),
        _ => {
            first_wins(table, transno, || keep(paycode), keep);
            Ok(())
        }
    }
}

/// `fields` and `count` are `leading_fields::<4>` of the line. Returns whether the line has
/// a key that is looked up (all keys are, without [`Lookups::keep_phones_for`]).
fn add_phone<'l, 'a>(
    table: &mut Table<'a, Field<'a>>,
    wanted: Option<&FxHashSet<Field<'a>>>,
    fields: [&'l str; 4],
    count: usize,
    keep: &Keep<'l, 'a>,
) -> bool {
    // blpr is by far the largest input (cumulative history), so the key test, which drops
    // almost every line, comes first. The tests are independent, so their order does not
    // change which lines are kept.
    let ([_, phone, _, orno], 4) = (fields, count) else {
        return false;
    };
    let key = excel_wrapped_inner(orno).unwrap_or(orno);
    if wanted.is_some_and(|keys| !keys.contains(key)) {
        return false;
    }
    if phone.chars().count() == 11 {
        first_wins(table, key, || keep(phone), keep);
    }
    true
}

/// Where the `"` bytes of `bytes` are, first to last.
fn quote_positions(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = find_byte(b'"', bytes, from)?;
        from = at + 1;
        Some(at)
    })
}

/// The text of the first `"=""…"""` wrapper in `field`, as legacy's regex `"=""(.+?)"""`
/// finds it: leftmost opening, then the shortest non-empty text before a closing `"""`.
pub fn excel_wrapped_inner(field: &str) -> Option<&str> {
    const OPEN: &str = "\"=\"\"";
    const CLOSE: &str = "\"\"\"";
    // Both markers start with a quote, so only quote positions need checking. A quote is an
    // ASCII byte, so quote bytes are quote characters and slicing at them is safe.
    let bytes = field.as_bytes();
    for open in quote_positions(bytes) {
        if !bytes[open..].starts_with(OPEN.as_bytes()) {
            continue;
        }
        let start = open + OPEN.len();
        let rest = &field[start..];
        // `.+?` needs at least one character before the closing quotes (none left: no match).
        let skip = rest.chars().next()?.len_utf8();
        let after = &rest.as_bytes()[skip..];
        if let Some(end) =
            quote_positions(after).find(|&i| after[i..].starts_with(CLOSE.as_bytes()))
        {
            return Some(&rest[..skip + end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(file_type: FileType, data: &str, new_branch: bool) -> (Lookups<'_>, TableStats) {
        let mut l = Lookups::default();
        let stats = l.load(file_type, data.as_bytes(), new_branch, 1 << 20);
        (l, stats)
    }

    fn named<'a>(name: &'a str, department: Option<&'a str>) -> ItemEntry<'a> {
        ItemEntry::Named {
            name: name.into(),
            department: department.map(Into::into),
        }
    }

    #[test]
    fn first_occurrence_wins_in_every_table() {
        let (l, _) = load(FileType::Rd1800, "1,FIRST\n1,SECOND\n", false);
        assert_eq!(l.departments["1"], "FIRST");
        let (l, _) = load(FileType::Discount, "SC,FIRST\nSC,SECOND\n", false);
        assert_eq!(l.discounts["SC"], "FIRST");
        let (l, _) = load(FileType::Rd5900, "1,FIRST\n1,SECOND\n", false);
        assert_eq!(l.payment_names["1"], "FIRST");
        let (l, _) = load(FileType::Rd5500, "A,FIRST\nA,SECOND\n", false);
        assert_eq!(l.items["A"], named("FIRST", None));
        let row = |pay: &str| {
            let mut f = vec![""; 23];
            f[11] = pay;
            f[20] = "T1";
            f.join(",")
        };
        let payments = format!("{}\n{}\n", row("CASH"), row("CARD"));
        let (l, _) = load(FileType::Rd5800, &payments, false);
        assert_eq!(l.payment_codes["T1"], "CASH");
        let (l, _) = load(
            FileType::Blpr,
            "S,09111111111,T,K,1,B\nS,09222222222,T,K,1,B\n",
            false,
        );
        assert_eq!(l.phones["K"], "09111111111");
    }

    #[test]
    fn quotes_stay_in_keys_and_names() {
        let (l, _) = load(
            FileType::Rd5500,
            "\"REPP\"\"13\",\"EXT\"\"E BURGER\",X\n",
            false,
        );
        assert_eq!(
            l.items["\"REPP\"\"13\""],
            named("\"EXT\"\"E BURGER\"", None)
        );
    }

    #[test]
    fn rd5500_lines_are_stripped_and_header_is_an_entry() {
        let (l, _) = load(
            FileType::Rd5500,
            "INCODE,ITE_DESC\n  CHM1,CHICKEN \u{a0}\n",
            false,
        );
        assert_eq!(l.items["CHM1"], named("CHICKEN", None));
        assert_eq!(l.items["INCODE"], named("ITE_DESC", None));
    }

    #[test]
    fn new_branch_items_take_categ_id_or_dep_code() {
        let long = "BLS2,Caesar Salad,Caesar Salad,406,185,ORDER,12,165.1,19.8,,,,SALAD1,0, FULL";
        let (l, _) = load(FileType::Rd5500, long, true);
        assert_eq!(l.items["BLS2"], named("Caesar Salad", Some("SALAD1")));
        let (l, _) = load(FileType::Rd5500, "BLS2,Caesar,X,406,185", true);
        assert_eq!(l.items["BLS2"], named("Caesar", Some("406")));
        let (l, _) = load(FileType::Rd5500, "BLS2,Caesar,X", true);
        assert_eq!(l.items["BLS2"], named("Caesar", None));
        // Old-layout branches never take a department from rd5500.
        let (l, _) = load(FileType::Rd5500, long, false);
        assert_eq!(l.items["BLS2"], named("Caesar Salad", None));
    }

    #[test]
    fn one_field_lines_are_bare_items_and_empty_names() {
        let (l, _) = load(FileType::Rd5500, "LONE\n\n", false);
        assert_eq!(l.items["LONE"], ItemEntry::Bare);
        assert!(!l.items.contains_key(""));
        let (l, _) = load(FileType::Rd1800, "7\n\n", false);
        assert_eq!(l.departments["7"], "");
        assert!(!l.departments.contains_key(""));
        // rd5900 keeps even the empty line.
        let (l, _) = load(FileType::Rd5900, "\n", false);
        assert_eq!(l.payment_names[""], "");
    }

    #[test]
    fn rd5800_needs_21_fields_and_counts_the_rest() {
        let line = |n: usize| {
            let mut f = vec!["x"; n];
            if n > 20 {
                f[20] = "T";
                f[11] = "P";
            }
            f.join(",")
        };
        let data = [line(10), line(19), line(20), line(21)].join("\n");
        let (l, stats) = load(FileType::Rd5800, &data, false);
        assert_eq!(l.payment_codes.len(), 1);
        assert_eq!(l.payment_codes["T"], "P");
        assert_eq!(stats.skipped[&SkipReason::Rd5800Under11Fields], 1);
        assert_eq!(stats.skipped[&SkipReason::Rd5800Under20Fields], 1);
        assert_eq!(stats.skipped[&SkipReason::Rd5800Exactly20Fields], 1);
    }

    #[test]
    fn blpr_needs_an_11_character_phone() {
        let data = "STORE,PHONE,TRANSNO,ORNO,POS,BRANCH\n\
                    TEMP,0912345678,T,A,1,B\n\
                    TEMP,091234567890,T,B,1,B\n\
                    TEMP,09123456789,T,C,1,B\n\
                    TEMP,0912345678Ñ,T,D,1,B\n\
                    TEMP,09123456789,T\n";
        let (l, _) = load(FileType::Blpr, data, false);
        let mut keys: Vec<&str> = l.phones.keys().map(AsRef::as_ref).collect();
        keys.sort_unstable();
        // 11 characters, not 11 bytes: the Ñ line counts.
        assert_eq!(keys, ["C", "D"]);
    }

    #[test]
    fn blpr_key_is_unwrapped_from_excel_quotes() {
        let (l, _) = load(
            FileType::Blpr,
            "TEMP,09296019361,\"=\"\"00019702\"\"\",\"=\"\"00019910\"\"\",1,BMC\n",
            false,
        );
        assert_eq!(l.phones["00019910"], "09296019361");
    }

    #[test]
    fn excel_wrapper_search_follows_the_legacy_regex() {
        assert_eq!(excel_wrapped_inner("\"=\"\"0001\"\"\""), Some("0001"));
        assert_eq!(excel_wrapped_inner("x\"=\"\"12\"\"\"y"), Some("12"));
        // `.+?` needs one character: an empty wrapper does not match.
        assert_eq!(excel_wrapped_inner("\"=\"\"\"\"\""), None);
        assert_eq!(excel_wrapped_inner("\"=\"\"\"\"\"\""), Some("\""));
        assert_eq!(excel_wrapped_inner("0001"), None);
        assert_eq!(excel_wrapped_inner("\"=\"\"Ñ\"\"\""), Some("Ñ"));
    }

    /// The straightforward search, as first written: the reference for the faster one.
    fn reference_excel_wrapped_inner(field: &str) -> Option<&str> {
        for (open, _) in field.match_indices('"') {
            if !field[open..].starts_with("\"=\"\"") {
                continue;
            }
            let rest = &field[open + 4..];
            let skip = rest.chars().next()?.len_utf8();
            if let Some((end, _)) = rest[skip..]
                .match_indices('"')
                .find(|&(i, _)| rest[skip + i..].starts_with("\"\"\""))
            {
                return Some(&rest[..skip + end]);
            }
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn excel_wrapper_search_matches_the_reference(field in "[\"=0Ñ]{0,16}") {
            proptest::prop_assert_eq!(
                excel_wrapped_inner(&field),
                reference_excel_wrapped_inner(&field)
            );
        }
    }

    #[test]
    fn phones_can_be_limited_to_wanted_keys_with_first_occurrence_still_winning() {
        let mut l = Lookups::default();
        l.keep_phones_for(["K".to_string()]);
        let data = "S,09111111111,T,J,1,B\nS,09222222222,T,K,1,B\nS,09333333333,T,K,1,B\n";
        l.load(FileType::Blpr, data.as_bytes(), false, 1 << 20);
        assert_eq!(l.phones.len(), 1);
        assert_eq!(l.phones["K"], "09222222222");
    }

    #[test]
    fn long_lines_are_skipped_and_counted() {
        let mut l = Lookups::default();
        let stats = l.load(FileType::Rd1800, b"1,OK\n22222,TOO LONG\n", false, 8);
        assert_eq!(l.departments.len(), 1);
        assert_eq!(stats.skipped[&SkipReason::LineTooLong], 1);
    }

    fn load_quoted(file_type: FileType, data: &str, new_branch: bool) -> Lookups<'_> {
        let mut l = Lookups::default();
        l.load_quoted(file_type, data.as_bytes(), new_branch, 1 << 20);
        l
    }

    #[test]
    fn quoted_reading_unquotes_keys_and_names_in_every_table() {
        // Quoted commas, doubled quotes, quotes at the ends of names; old and new layouts.
        let l = load_quoted(
            FileType::Rd5500,
            "\"REPP\"\"13\",\"P\"\"IUM, MUG\",X\nBIG1,\"\"\"BIG\"\" ONE\"\"\",X\n",
            false,
        );
        assert_eq!(l.items["REPP\"13"], named("P\"IUM, MUG", None));
        assert_eq!(l.items["BIG1"], named("\"BIG\" ONE\"", None));
        let new = "CHM1,\"CHICKEN, 2PC\",X,406,185,ORDER,12,1,1,,,,MEALS1,0, FULL";
        let l = load_quoted(FileType::Rd5500, new, true);
        assert_eq!(l.items["CHM1"], named("CHICKEN, 2PC", Some("MEALS1")));
        // Legacy's split moves CATEG_ID out of column 12.
        let (legacy, _) = load(FileType::Rd5500, new, true);
        assert_eq!(legacy.items["CHM1"], named("\"CHICKEN", Some("")));

        let l = load_quoted(
            FileType::Rd1800,
            "52,\"MEALS, \"\"CHICKEN\"\"\",1,BR\n",
            false,
        );
        assert_eq!(l.departments["52"], "MEALS, \"CHICKEN\"");
        let l = load_quoted(FileType::Discount, "SC,\"SNR, 20%\",,,,BETA,0, F\n", true);
        assert_eq!(l.discounts["SC"], "SNR, 20%");
        let l = load_quoted(FileType::Rd5900, "\"1\",\"CASH, \"\"PHP\"\"\"\n", false);
        assert_eq!(l.payment_names["1"], "CASH, \"PHP\"");

        let mut pay = vec![""; 23];
        pay[6] = "\"CRUZ, J\"";
        pay[11] = "00001";
        pay[20] = "T1";
        let pay = pay.join(",");
        let l = load_quoted(FileType::Rd5800, &pay, false);
        assert_eq!(l.payment_codes["T1"], "00001");
        let (legacy, _) = load(FileType::Rd5800, &pay, false);
        assert!(!legacy.payment_codes.contains_key("T1"));

        let blpr = "\"TEMP, 2\",09123456789,\"=\"\"X\"\"\",\"=\"\"00019910\"\"\",1,B\n\
                    T,\"09111111111\",X,\"=\"\"00019911\"\"\",1,B\n";
        let l = load_quoted(FileType::Blpr, blpr, false);
        assert_eq!(l.phones["00019910"], "09123456789");
        assert_eq!(l.phones["00019911"], "09111111111");
        let (legacy, _) = load(FileType::Blpr, blpr, false);
        assert!(legacy.phones.is_empty());
    }

    #[test]
    fn the_blpr_check_finds_lines_that_read_differently() {
        let check = |data: &str| {
            let mut l = Lookups::default();
            l.keep_phones_for(["K1".to_string()]);
            l.check_blpr_quoting();
            l.load(FileType::Blpr, data.as_bytes(), false, 1 << 20);
            l.blpr_needs_quoting()
        };
        // The samples' shape reads the same.
        assert!(!check(
            "TEMP,09123456789,\"=\"\"1\"\"\",\"=\"\"K1\"\"\",1,BMC\n"
        ));
        assert!(check(
            "\"TEMP, 2\",09123456789,\"=\"\"1\"\"\",\"=\"\"K1\"\"\",1,B\n"
        ));
        assert!(check("T,\"09123456789\",X,K1,1,B\n"));
        assert!(check("T,09123456789,X,K1,\"1, B\"\n"));
        // An unclosed quote after the key: the quoted reading skips the line.
        assert!(check("T,09123456789,X,K1,\"\n"));
        // Not wanted: the line cannot change the table.
        assert!(!check("T,09123456789,X,K2,\"1, B\"\n"));
    }

    #[test]
    fn quoted_reading_skips_and_counts_unclosed_quotes() {
        let mut l = Lookups::default();
        let stats = l.load_quoted(FileType::Rd1800, b"1,OK\n2,\"OPEN, NAME\n", false, 1 << 20);
        assert_eq!(l.departments.len(), 1);
        assert_eq!(stats.skipped[&SkipReason::UnclosedQuote], 1);
    }

    #[test]
    fn formula_inner_unwraps_excel_text_formulas() {
        assert_eq!(formula_inner("=\"00019910\"".into()), "00019910");
        assert_eq!(formula_inner(Cow::Owned("=\"1\"".into())), "1");
        assert_eq!(formula_inner("=\"\"".into()), "=\"\"");
        assert_eq!(formula_inner("00019910".into()), "00019910");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The rules on split fields (`add_fields`, used for quoted lines) build exactly the
        /// tables of the legacy rules (`add_line`) from the same fields.
        #[test]
        fn field_rules_match_line_rules(
            data in reference_file(),
            which in 1..FileType::ALL.len(),
            new_branch in any::<bool>(),
            filter in any::<bool>(),
        ) {
            let file_type = FileType::ALL[which];
            let data: Vec<u8> = data.into_iter().filter(|&b| b != b'"').collect();
            let keys = ["K1".to_string(), String::new()];
            let mut by_line = Lookups::default();
            let mut by_fields = Lookups::default();
            if filter {
                by_line.keep_phones_for(keys.iter().cloned());
                by_fields.keep_phones_for(keys.iter().cloned());
            }
            by_line.load(file_type, &data, new_branch, 1 << 20);
            let file = Text::new(&data);
            for line in file.lines() {
                let (text, _) = file.line(line);
                let text = if file_type == FileType::Rd5500 {
                    py_strip(&text).to_string()
                } else {
                    text.into_owned()
                };
                let fields = text.split(',').map(|f| Cow::Owned(f.to_string())).collect();
                let _ = by_fields.add_fields(file_type, fields, new_branch);
            }
            prop_assert_eq!(
                reference::of(&by_fields, file_type),
                reference::of(&by_line, file_type)
            );
        }
    }

    /// blpr lines in the shape of the samples, with quotes and commas in every field.
    fn blpr_file() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            Just("TEMP".to_string()),
            Just("\"TEMP, 2\"".to_string()),
            Just("09123456789".to_string()),
            Just("\"09123456789\"".to_string()),
            Just("\"=\"\"K1\"\"\"".to_string()),
            Just("\"=\"\"K1\"\"\"\"\"".to_string()),
            Just("\"=\"\"\"\"\"".to_string()),
            Just("=\"K1\"".to_string()),
            Just("\"K1\"".to_string()),
            Just("K1".to_string()),
            Just("\"".to_string()),
            Just("\"\"".to_string()),
            Just(String::new()),
        ];
        let line = proptest::collection::vec(field, 0..7).prop_map(|f| f.join(","));
        proptest::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// `load_quoted` builds the table that reading every line with quoting builds, and
        /// when the check during the legacy load finds no line that reads differently, the
        /// legacy table is that table.
        #[test]
        fn blpr_check_and_quoted_reading_agree(data in blpr_file(), filter in any::<bool>()) {
            let keys = ["K1".to_string(), String::new()];
            let mut fast = Lookups::default();
            let mut full = Lookups::default();
            if filter {
                fast.keep_phones_for(keys.iter().cloned());
                full.keep_phones_for(keys.iter().cloned());
            }
            fast.load_quoted(FileType::Blpr, data.as_bytes(), false, 1 << 20);
            for line in data.lines() {
                if let Ok(fields) = quoted_fields(FileType::Blpr, line) {
                    let owned = fields.into_iter().map(|f| Cow::Owned(f.into_owned()));
                    let _ = full.add_fields(FileType::Blpr, owned.collect(), false);
                }
            }
            prop_assert_eq!(
                reference::of(&fast, FileType::Blpr),
                reference::of(&full, FileType::Blpr)
            );

            // When the legacy load finds no line that needs quoting, its table is the typed
            // one, so the pass may skip the quoted reading.
            let mut legacy = Lookups::default();
            if filter {
                legacy.keep_phones_for(keys.iter().cloned());
            }
            legacy.check_blpr_quoting();
            legacy.load(FileType::Blpr, data.as_bytes(), false, 1 << 20);
            if !legacy.blpr_needs_quoting() {
                prop_assert_eq!(
                    reference::of(&legacy, FileType::Blpr),
                    reference::of(&full, FileType::Blpr)
                );
            }
        }
    }

    /// The tables as first written: every line split with `str::split` into owned strings,
    /// found byte by byte and decoded one by one, all tests in the original order. The fast
    /// paths above must build exactly these tables and statistics.
    mod reference {
        use std::collections::{HashMap, HashSet};

        use super::super::super::lines::{Breaks, LineRanges, decode, py_strip};
        use super::super::{
            Field, FileType, ItemEntry, Lookups, SkipReason, Table, TableStats, excel_wrapped_inner,
        };

        /// An item: `None` for a bare entry, else the name and department.
        pub type Item = Option<(String, Option<String>)>;

        /// The table a file type builds, owned.
        #[derive(Debug, Default, PartialEq)]
        pub struct Tables {
            pub items: HashMap<String, Item>,
            pub names: HashMap<String, String>,
        }

        fn first_wins(table: &mut HashMap<String, String>, key: &str, value: &str) {
            if !table.contains_key(key) {
                table.insert(key.to_string(), value.to_string());
            }
        }

        pub fn load(
            file_type: FileType,
            data: &[u8],
            new_branch: bool,
            max_line_bytes: usize,
            keep: Option<&HashSet<String>>,
        ) -> (Tables, TableStats) {
            let mut tables = Tables::default();
            let mut stats = TableStats::default();
            for range in LineRanges::with_breaks(data, Breaks::Any) {
                let raw = &data[range];
                stats.lines += 1;
                if raw.len() > max_line_bytes {
                    *stats.skipped.entry(SkipReason::LineTooLong).or_default() += 1;
                    continue;
                }
                let (text, lossy) = decode(raw);
                if lossy {
                    stats.lossy_lines += 1;
                }
                if let Err(reason) = add(&mut tables, file_type, &text, new_branch, keep) {
                    *stats.skipped.entry(reason).or_default() += 1;
                }
            }
            stats.entries = match file_type {
                FileType::Rd5500 => tables.items.len(),
                _ => tables.names.len(),
            } as u64;
            (tables, stats)
        }

        fn add(
            tables: &mut Tables,
            file_type: FileType,
            line: &str,
            new_branch: bool,
            keep: Option<&HashSet<String>>,
        ) -> Result<(), SkipReason> {
            let names = &mut tables.names;
            match file_type {
                FileType::Rd5000 => {}
                FileType::Rd5500 => {
                    let fields: Vec<&str> = py_strip(line).split(',').collect();
                    let key = fields[0];
                    let entry = match fields.len() {
                        n if n > 12 && new_branch => Some((fields[1], Some(fields[12]))),
                        n if n > 3 && new_branch => Some((fields[1], Some(fields[3]))),
                        n if n >= 2 => Some((fields[1], None)),
                        _ if !key.is_empty() => None,
                        _ => return Ok(()),
                    };
                    let entry = entry.map(|(n, d)| (n.to_string(), d.map(str::to_string)));
                    tables.items.entry(key.to_string()).or_insert(entry);
                }
                FileType::Rd1800 | FileType::Discount => {
                    let mut fields = line.split(',');
                    let key = fields.next().unwrap_or_default();
                    match fields.next() {
                        Some(name) => first_wins(names, key, name),
                        None if !key.is_empty() => first_wins(names, key, ""),
                        None => {}
                    }
                }
                FileType::Rd5800 => {
                    let fields: Vec<&str> = line.split(',').collect();
                    match fields.len() {
                        n if n < 11 => return Err(SkipReason::Rd5800Under11Fields),
                        n if n < 20 => return Err(SkipReason::Rd5800Under20Fields),
                        20 => return Err(SkipReason::Rd5800Exactly20Fields),
                        _ => first_wins(names, fields[20], fields[11]),
                    }
                }
                FileType::Rd5900 => {
                    let mut fields = line.split(',');
                    let key = fields.next().unwrap_or_default();
                    first_wins(names, key, fields.next().unwrap_or_default());
                }
                FileType::Blpr => {
                    let fields: Vec<&str> = line.split(',').collect();
                    if fields.len() < 4 || fields[1].chars().count() != 11 {
                        return Ok(());
                    }
                    let key = excel_wrapped_inner(fields[3]).unwrap_or(fields[3]);
                    if keep.is_none_or(|keys| keys.contains(key)) {
                        first_wins(names, key, fields[1]);
                    }
                }
            }
            Ok(())
        }

        /// The same shape, from real lookups.
        pub fn of(lookups: &Lookups<'_>, file_type: FileType) -> Tables {
            let owned = |table: &Table<'_, Field<'_>>| {
                table
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            let names = match file_type {
                FileType::Rd1800 => owned(&lookups.departments),
                FileType::Discount => owned(&lookups.discounts),
                FileType::Rd5800 => owned(&lookups.payment_codes),
                FileType::Rd5900 => owned(&lookups.payment_names),
                FileType::Blpr => owned(&lookups.phones),
                FileType::Rd5000 | FileType::Rd5500 => HashMap::new(),
            };
            let items = lookups
                .items
                .iter()
                .map(|(k, v)| {
                    let item = match v {
                        ItemEntry::Bare => None,
                        ItemEntry::Named { name, department } => {
                            Some((name.to_string(), department.as_ref().map(|d| d.to_string())))
                        }
                    };
                    (k.to_string(), item)
                })
                .collect();
            Tables { items, names }
        }
    }

    /// Reference-file text: lines of comma-separated tokens that hit every rule (field counts
    /// around 4, 11, 13, 20, 21; repeated keys; quotes and Excel wrappers; 11-character phones;
    /// non-ASCII and invalid bytes; every kind of line break).
    fn reference_file() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(b"".to_vec()),
            Just(b"K1".to_vec()),
            Just(b"K2".to_vec()),
            Just(b" K1 ".to_vec()),
            Just(b"09123456789".to_vec()),
            Just("0912345678\u{d1}".as_bytes().to_vec()),
            Just(b"\"=\"\"K1\"\"\"".to_vec()),
            Just(b"\"=\"\"\"\"\"".to_vec()),
            Just("N\u{a0}\u{2019}".as_bytes().to_vec()),
            Just(vec![0xff, b'x']),
            Just(vec![0xc2]),
        ];
        let line = (
            proptest::collection::vec(field, 0..6),
            0..24_usize,
            any::<bool>(),
        )
            .prop_map(|(mut fields, count, repeat_key)| {
                // Pad to a chosen field count with short fields.
                while fields.len() < count {
                    fields.push(if repeat_key {
                        b"K2".to_vec()
                    } else {
                        b"x".to_vec()
                    });
                }
                fields.join(&b","[..])
            });
        let line_break = prop_oneof![
            6 => Just(b"\n".to_vec()),
            1 => Just(b"\r\n".to_vec()),
            1 => Just(b"\r".to_vec()),
            1 => Just("\u{2028}".as_bytes().to_vec()),
            1 => Just(b"\x1e".to_vec()),
        ];
        proptest::collection::vec((line, line_break), 0..12).prop_map(|lines| {
            lines
                .into_iter()
                .flat_map(|(line, line_break)| [line, line_break])
                .flatten()
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every table, and its statistics, equal the straightforward reference.
        #[test]
        fn tables_match_the_reference(
            data in reference_file(),
            which in 1..FileType::ALL.len(),
            new_branch in any::<bool>(),
            short_limit in any::<bool>(),
            filter in any::<bool>(),
        ) {
            let file_type = FileType::ALL[which];
            let max_line_bytes = if short_limit { 40 } else { 1 << 20 };
            let keys: std::collections::HashSet<String> =
                ["K1".to_string(), String::new()].into_iter().collect();
            let keep = filter.then_some(&keys);
            let (expected, expected_stats) =
                reference::load(file_type, &data, new_branch, max_line_bytes, keep);

            let mut lookups = Lookups::default();
            if filter {
                lookups.keep_phones_for(keys.iter().cloned());
            }
            let stats = lookups.load(file_type, &data, new_branch, max_line_bytes);
            prop_assert_eq!(reference::of(&lookups, file_type), expected);
            prop_assert_eq!(stats, expected_stats);
        }
    }
}

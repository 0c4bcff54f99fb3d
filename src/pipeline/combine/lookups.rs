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

use std::collections::{BTreeMap, HashMap, HashSet};

use super::files::FileType;
use super::lines::{Lines, decode, py_strip};

/// What rd5500 says about one item code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemEntry {
    /// A 1-field line: legacy stored an empty string, and any row that found it failed.
    Bare,
    /// A line with a name.
    Named {
        /// `ITE_DESC`.
        name: String,
        /// The department for new-layout branches (`CATEG_ID`, or `DEP_CODE` on 4–12 field
        /// lines); `None` for old-layout branches and for 2–3 field lines.
        department: Option<String>,
    },
}

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

/// The six lookup tables of one group. A missing reference file leaves its table empty, as
/// in legacy.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// rd5500: item code → entry.
    pub items: HashMap<String, ItemEntry>,
    /// rd1800: department code → name.
    pub departments: HashMap<String, String>,
    /// discount: discount code → name.
    pub discounts: HashMap<String, String>,
    /// rd5800: transaction number → payment code.
    pub payment_codes: HashMap<String, String>,
    /// rd5900: payment code → name.
    pub payment_names: HashMap<String, String>,
    /// blpr: ORNO → phone.
    pub phones: HashMap<String, String>,
    /// When set, blpr entries with other keys are not kept (see [`Lookups::keep_phones_for`]).
    phone_keys: Option<HashSet<String>>,
}

impl Lookups {
    /// Keeps only blpr entries whose key is one of `keys` (load blpr after calling this).
    ///
    /// The phone table is only ever looked up by rd5000 transaction numbers, and blpr is the
    /// store's whole loyalty history (tens of thousands of lines per day, almost all keys
    /// distinct). Passing the group's transaction numbers gives exactly the lookups the full
    /// table would give, first occurrence still winning, without storing the history.
    pub fn keep_phones_for(&mut self, keys: HashSet<String>) {
        self.phone_keys = Some(keys);
    }

    /// Adds one reference file's lines to its table.
    ///
    /// `new_branch` selects the rd5500 new-layout rules. rd5000 is not a reference type and
    /// is ignored here.
    pub fn load(
        &mut self,
        file_type: FileType,
        data: &[u8],
        new_branch: bool,
        max_line_bytes: usize,
    ) -> TableStats {
        let mut stats = TableStats::default();
        for raw in Lines::new(data) {
            stats.lines += 1;
            if raw.len() > max_line_bytes {
                *stats.skipped.entry(SkipReason::LineTooLong).or_default() += 1;
                continue;
            }
            let (text, lossy) = decode(raw);
            if lossy {
                stats.lossy_lines += 1;
            }
            if let Err(reason) = self.add_line(file_type, &text, new_branch) {
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

    fn add_line(
        &mut self,
        file_type: FileType,
        line: &str,
        new_branch: bool,
    ) -> Result<(), SkipReason> {
        match file_type {
            FileType::Rd5000 => {}
            FileType::Rd5500 => add_item(&mut self.items, line, new_branch),
            FileType::Rd1800 => add_name(&mut self.departments, line),
            FileType::Discount => add_name(&mut self.discounts, line),
            FileType::Rd5800 => return add_payment(&mut self.payment_codes, line),
            FileType::Rd5900 => {
                let mut fields = line.split(',');
                let key = fields.next().unwrap_or_default();
                let name = fields.next().unwrap_or_default();
                first_wins(&mut self.payment_names, key, name);
            }
            FileType::Blpr => add_phone(&mut self.phones, self.phone_keys.as_ref(), line),
        }
        Ok(())
    }
}

fn first_wins(table: &mut HashMap<String, String>, key: &str, value: &str) {
    if !table.contains_key(key) {
        table.insert(key.to_string(), value.to_string());
    }
}

fn add_item(items: &mut HashMap<String, ItemEntry>, line: &str, new_branch: bool) {
    let fields: Vec<&str> = py_strip(line).split(',').collect();
    let key = fields[0];
    let entry = match fields.len() {
        n if n > 12 && new_branch => ItemEntry::Named {
            name: fields[1].to_string(),
            department: Some(fields[12].to_string()),
        },
        n if n > 3 && new_branch => ItemEntry::Named {
            name: fields[1].to_string(),
            department: Some(fields[3].to_string()),
        },
        n if n >= 2 => ItemEntry::Named {
            name: fields[1].to_string(),
            department: None,
        },
        _ if !key.is_empty() => ItemEntry::Bare,
        _ => return,
    };
    if !items.contains_key(key) {
        items.insert(key.to_string(), entry);
    }
}

fn add_name(table: &mut HashMap<String, String>, line: &str) {
    let mut fields = line.split(',');
    let key = fields.next().unwrap_or_default();
    match fields.next() {
        Some(name) => first_wins(table, key, name),
        None if !key.is_empty() => first_wins(table, key, ""),
        None => {}
    }
}

fn add_payment(table: &mut HashMap<String, String>, line: &str) -> Result<(), SkipReason> {
    let mut paycode = "";
    let mut transno = "";
    let mut count = 0;
    for (i, field) in line.split(',').enumerate() {
        match i {
            11 => paycode = field,
            20 => transno = field,
            _ => {}
        }
        count = i + 1;
    }
    match count {
        n if n < 11 => Err(SkipReason::Rd5800Under11Fields),
        n if n < 20 => Err(SkipReason::Rd5800Under20Fields),
        20 => Err(SkipReason::Rd5800Exactly20Fields),
        _ => {
            first_wins(table, transno, paycode);
            Ok(())
        }
    }
}

fn add_phone(table: &mut HashMap<String, String>, keep: Option<&HashSet<String>>, line: &str) {
    // blpr is by far the largest input (cumulative history), so no per-line allocation here.
    let mut fields = line.split(',');
    let (Some(_), Some(phone), Some(_), Some(orno)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    if phone.chars().count() != 11 {
        return;
    }
    let key = excel_wrapped_inner(orno).unwrap_or(orno);
    if keep.is_none_or(|keys| keys.contains(key)) {
        first_wins(table, key, phone);
    }
}

/// The text of the first `"=""…"""` wrapper in `field`, as legacy's regex `"=""(.+?)"""`
/// finds it: leftmost opening, then the shortest non-empty text before a closing `"""`.
pub fn excel_wrapped_inner(field: &str) -> Option<&str> {
    const OPEN: &str = "\"=\"\"";
    const CLOSE: &str = "\"\"\"";
    // Both markers start with a quote, so only quote positions need checking.
    for (open, _) in field.match_indices('"') {
        if !field[open..].starts_with(OPEN) {
            continue;
        }
        let start = open + OPEN.len();
        let rest = &field[start..];
        // `.+?` needs at least one character before the closing quotes (none left: no match).
        let skip = rest.chars().next()?.len_utf8();
        if let Some((end, _)) = rest[skip..]
            .match_indices('"')
            .find(|&(i, _)| rest[skip + i..].starts_with(CLOSE))
        {
            return Some(&rest[..skip + end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file_type: FileType, data: &str, new_branch: bool) -> (Lookups, TableStats) {
        let mut l = Lookups::default();
        let stats = l.load(file_type, data.as_bytes(), new_branch, 1 << 20);
        (l, stats)
    }

    fn named(name: &str, department: Option<&str>) -> ItemEntry {
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
        let (l, _) = load(
            FileType::Rd5800,
            &format!("{}\n{}\n", row("CASH"), row("CARD")),
            false,
        );
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
        let mut keys: Vec<&str> = l.phones.keys().map(String::as_str).collect();
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

    #[test]
    fn phones_can_be_limited_to_wanted_keys_with_first_occurrence_still_winning() {
        let mut l = Lookups::default();
        l.keep_phones_for(["K".to_string()].into_iter().collect());
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
}

//! One rd5000 line into one legacy row: column selection, Excel escaping, lookups, daypart.
//!
//! This is `stringifyAppend` of the legacy combiner, rule for rule (restated here in full):
//!
//! 1. The line is split naively on `,`. Input columns 0, 2, 4, 5, 6, 7, 8, 11, 12, 13, 18, 21,
//!    31, 32, 34, 35, 36, 37 are taken in that order; a line with fewer fields yields fewer
//!    values and the 18 are padded with empty strings (padding is never escaped).
//! 2. Column 12 (DATE) is cut at its first space. Every other taken column goes through the
//!    Excel rule ([`needs_escape`]) and, when it applies, is written `"=""<value>"""`.
//! 3. POS is replaced by the file name's POS text.
//! 4. PRODUCT NAME: rd5500 looked up by the *escaped* item code, written `"<name>"`. For a
//!    new-layout branch a found item also replaces DEPARTMENT CODE with `"<dept>"`.
//! 5. DEPARTMENT NAME: rd1800 looked up by DEPARTMENT CODE with `="` and `"` removed.
//! 6. DISCOUNT NAME by the escaped discount code; TRANSACTION TYPE by the escaped type code.
//! 7. DAYPART from the integer value of the first two characters of TIME.
//! 8. PAYMENT CODE, PAYMENT NAME and PHONE by TRANSACTION NUMBER; then BRANCH.
//!
//! Names are wrapped in `"` with no inner escaping; daypart, payment and phone are not.
//! Failures that made legacy raise (and drop the row) are [`RejectReason`]s.

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;

use super::lines::{for_each_field, is_py_space, nth_field, py_strip};
use super::lookups::{ItemEntry, Lookups};
use crate::pipeline::record::Daypart;

/// The legacy header line, exactly as `aaa_headers.csv` holds it (without a line break).
pub const HEADER: &str = "POS,OR,ITEM CODE,QUANTITY,UNIT PRICE,AMOUNT,DISCOUNT,DEPARTMENT CODE,\
DATE,TIME,DISCOUNT CODE,TYPE CODE,VAT FLAG,VAT DIV,VAT AMOUNT,VAT DISCOUNT,VAT PRICE,\
TRANSACTION NUMBER,PRODUCT NAME,DEPARTMENT NAME,DISCOUNT NAME,TRANSACTION TYPE,DAYPART,\
PAYMENT CODE,PAYMENT NAME,PHONE NUMBER,BRANCH";

/// The rd5000 columns the legacy row takes, in output order.
pub const SELECTED: [usize; 18] = [
    0, 2, 4, 5, 6, 7, 8, 11, 12, 13, 18, 21, 31, 32, 34, 35, 36, 37,
];

/// Output positions of the selected values (indices into [`SELECTED`]).
pub mod slot {
    /// POS (replaced by the file name's POS).
    pub const POS: usize = 0;
    /// OR (rd5000 `INVOICE`).
    pub const OR: usize = 1;
    /// Output column 2, ITEM CODE: rd5000 column 4 `ITE_CODE`.
    pub const ITEM: usize = 2;
    /// Output column 3, QUANTITY: rd5000 column 5 `QUANTITY`.
    pub const QUANTITY: usize = 3;
    /// Output column 4, UNIT PRICE: rd5000 column 6 `UNT_PRIC`.
    pub const UNIT_PRICE: usize = 4;
    /// Output column 5, AMOUNT: rd5000 column 7 `AMOUNT`.
    pub const AMOUNT: usize = 5;
    /// Output column 6, DISCOUNT: rd5000 column 8 `DISCOUNT`.
    pub const DISCOUNT: usize = 6;
    /// Output column 7, DEPARTMENT CODE: rd5000 column 11 `DEP_CODE` (for new-layout branches,
    /// replaced by the item's category when the item is found).
    pub const DEPARTMENT: usize = 7;
    /// Output column 8, DATE: rd5000 column 12 `DATE`; compared with the file name's date to tell
    /// transactions from monitor rows.
    pub const DATE: usize = 8;
    /// Output column 9, TIME: rd5000 column 13 `TIME`; its hour gives the DAYPART.
    pub const TIME: usize = 9;
    /// Output column 10, DISCOUNT CODE: rd5000 column 18 `DISC_CODE`.
    pub const DISCOUNT_CODE: usize = 10;
    /// Output column 11, TYPE CODE: rd5000 column 21 `TYPE` (`D`, `T` or `C`), which gives the
    /// TRANSACTION TYPE.
    pub const TYPE: usize = 11;
    /// Output column 12, VAT FLAG: rd5000 column 31 `VAT_FLAG`.
    pub const VAT_FLAG: usize = 12;
    /// Output column 13, VAT DIV: rd5000 column 32 `VATDIV`.
    pub const VAT_DIV: usize = 13;
    /// Output column 14, VAT AMOUNT: rd5000 column 34 `VAT_AMNT`.
    pub const VAT_AMOUNT: usize = 14;
    /// Output column 15, VAT DISCOUNT: rd5000 column 35 `VAT_DISC`.
    pub const VAT_DISCOUNT: usize = 15;
    /// Output column 16, VAT PRICE: rd5000 column 36 `VAT_PRIC`.
    pub const VAT_PRICE: usize = 16;
    /// Output column 17, TRANSACTION NUMBER: rd5000 column 37 `TRANSNO`, never Excel-escaped; the
    /// payment and phone lookups use it.
    pub const TRANSNO: usize = 17;
}

/// rd5000 column index → slot in [`SELECTED`], for the 38 columns that can be selected.
const SLOT_OF_COLUMN: [Option<u8>; 38] = {
    let mut table = [None; 38];
    let mut k = 0;
    while k < SELECTED.len() {
        table[SELECTED[k]] = Some(k as u8);
        k += 1;
    }
    table
};

/// The legacy hour table: index = hour, 25 entries (0–24).
const HOURS: [Daypart; 25] = {
    use Daypart::*;
    [
        Graveyard, Graveyard, Graveyard, Graveyard, Graveyard, Graveyard, // 0–5
        Breakfast, Breakfast, Breakfast, Breakfast, Breakfast, // 6–10
        Lunch, Lunch, Lunch, Lunch, // 11–14
        PmSnack, PmSnack, PmSnack, PmSnack, // 15–18
        Dinner, Dinner, Dinner, Dinner, // 19–22
        Graveyard, Graveyard, // 23–24
    ]
};

/// Why a line produced no row (each is an exception in legacy, caught and printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The CSV header line: its TIME `TIME` does not parse as an hour (legacy's way of
    /// skipping headers).
    HeaderLine,
    /// The first two characters of TIME are not an integer (for example `9:30`).
    HourNotANumber,
    /// The hour is 25 or more (or below -25).
    HourOutOfRange,
    /// The item code found a 1-field rd5500 line (legacy: `TypeError`).
    ItemEntryWithoutName,
    /// New-layout branch: the item was found but its rd5500 line has no department
    /// (legacy: `KeyError`).
    ItemWithoutDepartment,
    /// Longer than the line limit.
    LineTooLong,
    /// Typed records only: under real CSV quoting the line does not have the rd5000 layout's
    /// 40 fields (or, for a line without quotes that legacy kept, it has more or fewer), so
    /// its columns cannot be trusted.
    FieldCount,
    /// Typed records only: a quoted field is not closed by the end of the line.
    UnclosedQuote,
}

impl RejectReason {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            RejectReason::HeaderLine => "header line",
            RejectReason::HourNotANumber => "TIME does not start with an hour",
            RejectReason::HourOutOfRange => "hour outside 0-24",
            RejectReason::ItemEntryWithoutName => "item code found a 1-field rd5500 line",
            RejectReason::ItemWithoutDepartment => {
                "new-layout branch item without a department in rd5500"
            }
            RejectReason::LineTooLong => "line longer than the limit",
            RejectReason::FieldCount => "field count does not fit the rd5000 layout",
            RejectReason::UnclosedQuote => "quoted field not closed at the end of the line",
        }
    }

    /// Whether the line was rejected because its fields do not fit the layout (the typed
    /// pass's own reasons, which get a monitor entry).
    pub fn is_layout(self) -> bool {
        matches!(self, RejectReason::FieldCount | RejectReason::UnclosedQuote)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Whether the legacy Excel rule wraps `value` of rd5000 column `column` in `="…"`.
///
/// The rule, on characters (not bytes): a value of 2+ characters starting with `0` is
/// wrapped, unless its 2nd character is `.`, its 3rd is `:` or its 5th is `-`. Column 11
/// (DEP_CODE) is always wrapped, column 37 (TRANSNO) never. Column 12 (DATE) never comes here.
pub fn needs_escape(column: usize, value: &str) -> bool {
    if column == 11 {
        return true;
    }
    if column == 37 {
        return false;
    }
    let mut chars = value.chars();
    let c0 = chars.next();
    let c1 = chars.next();
    let c2 = chars.next();
    let _c3 = chars.next();
    let c4 = chars.next();
    let mut escape = false;
    if let Some(c1) = c1 {
        escape = c0 == Some('0');
        if c1 == '.' {
            escape = false;
        }
    }
    if c2 == Some(':') || c4 == Some('-') {
        escape = false;
    }
    escape
}

/// Writes `value` as the legacy Excel text formula `"=""<value>"""`.
pub fn push_escaped(out: &mut String, value: &str) {
    out.push_str("\"=\"\"");
    out.push_str(value);
    out.push_str("\"\"\"");
}

/// The daypart of a TIME value, the legacy way.
///
/// Empty TIME is `No Time Record`. Otherwise the first two characters must be a Python
/// integer literal (surrounding whitespace and a sign allowed), used as an index into the
/// 25-entry hour table; negative values index from the end as in Python (`-1` → `GY`).
///
/// # Errors
///
/// [`RejectReason::HourNotANumber`] or [`RejectReason::HourOutOfRange`].
pub fn daypart(time: &str) -> Result<Daypart, RejectReason> {
    if time.is_empty() {
        return Ok(Daypart::NoTimeRecord);
    }
    let end = time.char_indices().nth(2).map_or(time.len(), |(i, _)| i);
    let hour = py_int(&time[..end]).ok_or(RejectReason::HourNotANumber)?;
    let index = if hour < 0 { hour + 25 } else { hour };
    usize::try_from(index)
        .ok()
        .and_then(|i| HOURS.get(i))
        .copied()
        .ok_or(RejectReason::HourOutOfRange)
}

/// Python's `int(s)` for the short strings [`daypart`] feeds it.
///
/// Accepts surrounding Python whitespace, one sign and ASCII digits. Python would also accept
/// other Unicode decimal digits (`١٢`); we do not (documented in the module notes).
fn py_int(s: &str) -> Option<i64> {
    let s = s.trim_matches(is_py_space);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    Some(if negative { -value } else { value })
}

/// `Dine-In`, `Take-Out` or `Delivery` for `D`, `T`, `C`.
pub fn order_type_name(code: &str) -> Option<&'static str> {
    match code {
        "D" => Some("Dine-In"),
        "T" => Some("Take-Out"),
        "C" => Some("Delivery"),
        _ => None,
    }
}

/// The rd1800 key legacy derives from a DEPARTMENT CODE: strip, remove every `="`, then every
/// `"`, strip again.
///
/// Every row's code is escaped (`"=""52"""`), so this runs once per row and avoids the two
/// intermediate strings of the literal recipe. Matches of `="` cannot overlap (an `=` is not a
/// `"`), so the recipe removes exactly the quotes and the `=` signs directly before a quote,
/// all ASCII. When the characters kept are one run, as in `"=""52"""`, the key is a slice of
/// the code; otherwise it is collected.
pub fn department_key(code: &str) -> Cow<'_, str> {
    let stripped = py_strip(code);
    if !stripped.contains('"') {
        return Cow::Borrowed(stripped);
    }
    let bytes = stripped.as_bytes();
    let removed =
        |i: usize| bytes[i] == b'"' || (bytes[i] == b'=' && bytes.get(i + 1) == Some(&b'"'));
    let Some(first) = (0..bytes.len()).find(|&i| !removed(i)) else {
        return Cow::Borrowed("");
    };
    // The last kept byte ends a character: the removed bytes around it are ASCII.
    let end = (first..bytes.len())
        .rev()
        .find(|&i| !removed(i))
        .map_or(first, |i| i + 1);
    if (first..end).all(|i| !removed(i)) {
        return Cow::Borrowed(py_strip(&stripped[first..end]));
    }
    let cleaned: String = stripped
        .char_indices()
        .filter(|&(i, _)| !removed(i))
        .map(|(_, c)| c)
        .collect();
    Cow::Owned(py_strip(&cleaned).to_string())
}

/// The raw selected fields of one rd5000 line.
#[derive(Debug, Clone, Copy)]
pub struct Selected<'l> {
    /// The value of each selected column; empty when the line is too short.
    pub raw: [&'l str; 18],
    /// How many selected columns the line actually had.
    pub present: usize,
}

impl<'l> Selected<'l> {
    /// Splits `line` on `,` and takes the selected columns.
    pub fn from_line(line: &'l str) -> Self {
        let mut raw = [""; 18];
        let mut present = 0;
        for_each_field(line, |column, field| {
            let Some(&slot) = SLOT_OF_COLUMN.get(column) else {
                return ControlFlow::Break(());
            };
            if let Some(slot) = slot {
                raw[usize::from(slot)] = field;
                present = usize::from(slot) + 1;
            }
            ControlFlow::Continue(())
        });
        Self { raw, present }
    }

    /// Takes the selected columns from fields already split (by real CSV quoting).
    pub fn from_fields<S: AsRef<str>>(fields: &'l [S]) -> Self {
        let mut raw = [""; 18];
        let mut present = 0;
        for (slot, &column) in SELECTED.iter().enumerate() {
            if let Some(field) = fields.get(column) {
                raw[slot] = field.as_ref();
                present = slot + 1;
            }
        }
        Self { raw, present }
    }
}

/// The group-wide facts a row needs besides its line.
#[derive(Debug, Clone, Copy)]
pub struct GroupContext<'a> {
    /// Branch code (last column).
    pub branch: &'a str,
    /// POS text from the file name (first column).
    pub pos_text: &'a str,
    /// Business date text from the file name: rows with another DATE are monitor rows.
    pub date_text: &'a str,
    /// Whether the branch uses the new layout (rd5500 departments).
    pub new_branch: bool,
    /// The group's reference tables.
    pub lookups: &'a Lookups<'a>,
}

/// Builds legacy rows into a reused buffer.
#[derive(Debug, Default)]
pub struct RowBuilder {
    /// The 18 selected output values, escaped, back to back.
    values: String,
    /// `values[bounds[k]..bounds[k + 1]]` is output value `k`.
    bounds: [usize; 19],
    /// The row being built (no line break).
    row: String,
}

impl RowBuilder {
    /// The last row built.
    pub fn row(&self) -> &str {
        &self.row
    }

    /// Output value `k` (0–17) as escaped for the CSV.
    fn value(&self, k: usize) -> &str {
        &self.values[self.bounds[k]..self.bounds[k + 1]]
    }

    /// Builds the legacy row for `selected` into [`RowBuilder::row`] and returns its daypart.
    ///
    /// # Errors
    ///
    /// The [`RejectReason`] for which legacy dropped the line.
    pub fn build(
        &mut self,
        ctx: &GroupContext<'_>,
        selected: &Selected<'_>,
    ) -> Result<Daypart, RejectReason> {
        self.values.clear();
        self.bounds[0] = 0;
        for (k, &column) in SELECTED.iter().enumerate() {
            let raw = selected.raw[k];
            if k == slot::POS {
                self.values.push_str(ctx.pos_text);
            } else if k >= selected.present {
                // Padding: an absent column is an empty, unescaped value.
            } else if column == 12 {
                self.values
                    .push_str(raw.split(' ').next().unwrap_or_default());
            } else if needs_escape(column, raw) {
                push_escaped(&mut self.values, raw);
            } else {
                self.values.push_str(raw);
            }
            self.bounds[k + 1] = self.values.len();
        }

        let lookups = ctx.lookups;
        let item = lookups.items.get(self.value(slot::ITEM));
        let (product_name, new_department) = match item {
            None => (None, None),
            Some(ItemEntry::Bare) => return Err(RejectReason::ItemEntryWithoutName),
            Some(ItemEntry::Named { name, department }) => {
                let department = match (ctx.new_branch, department) {
                    (false, _) => None,
                    (true, Some(d)) => Some(d.as_ref()),
                    (true, None) => return Err(RejectReason::ItemWithoutDepartment),
                };
                (Some(name.as_ref()), department)
            }
        };
        let department_name = {
            let code = match new_department {
                Some(d) => department_key(d),
                None => department_key(self.value(slot::DEPARTMENT)),
            };
            if code.is_empty() {
                None
            } else {
                lookups.departments.get(code.as_ref()).map(AsRef::as_ref)
            }
        };
        let discount_name = lookups.discounts.get(self.value(slot::DISCOUNT_CODE));
        let type_name = order_type_name(self.value(slot::TYPE));
        let time = self.value(slot::TIME);
        let daypart = daypart(time).map_err(|e| {
            if selected.raw[slot::TIME] == "TIME" {
                RejectReason::HeaderLine
            } else {
                e
            }
        })?;
        let transno = self.value(slot::TRANSNO);
        let (payment_code, payment_name, phone) = if transno.is_empty() {
            (None, None, None)
        } else {
            let code = lookups.payment_codes.get(transno).map(AsRef::as_ref);
            let name = code.and_then(|c| lookups.payment_names.get(c).map(AsRef::as_ref));
            let phone = lookups.phones.get(transno).map(AsRef::as_ref);
            (code, name, phone)
        };

        let mut row = std::mem::take(&mut self.row);
        row.clear();
        for k in 0..SELECTED.len() {
            if k > 0 {
                row.push(',');
            }
            match (k, new_department) {
                (slot::DEPARTMENT, Some(d)) => push_quoted(&mut row, Some(d)),
                _ => row.push_str(self.value(k)),
            }
        }
        row.push(',');
        push_quoted(&mut row, product_name);
        row.push(',');
        push_quoted(&mut row, department_name);
        row.push(',');
        push_quoted(&mut row, discount_name.map(AsRef::as_ref));
        row.push(',');
        push_quoted(&mut row, type_name);
        row.push(',');
        row.push_str(daypart.label());
        for plain in [payment_code, payment_name, phone, Some(ctx.branch)] {
            row.push(',');
            row.push_str(plain.unwrap_or_default());
        }
        self.row = row;
        Ok(daypart)
    }

    /// Field 8 of the built row as legacy reads it back (`line.split(",")[8].strip()`): the
    /// DATE the monitor check compares with the file name's date.
    pub fn row_date(&self) -> &str {
        py_strip(nth_field(&self.row, slot::DATE).unwrap_or_default())
    }
}

/// Writes `"<value>"` for a found name, nothing for a missing one.
fn push_quoted(out: &mut String, value: Option<&str>) {
    if let Some(value) = value {
        out.push('"');
        out.push_str(value);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::combine::files::FileType;

    fn escaped(column: usize, value: &str) -> String {
        let mut out = String::new();
        if needs_escape(column, value) {
            push_escaped(&mut out, value);
        } else {
            out.push_str(value);
        }
        out
    }

    #[test]
    fn leading_zero_values_are_escaped() {
        assert_eq!(escaped(2, "00013555"), "\"=\"\"00013555\"\"\"");
        assert_eq!(escaped(4, "0123"), "\"=\"\"0123\"\"\"");
        assert_eq!(escaped(4, "00"), "\"=\"\"00\"\"\"");
    }

    #[test]
    fn decimals_times_dates_and_single_zero_are_not_escaped() {
        for v in [
            "0.5", "0.000", "09:30", "0", "1.000", "0000-12", "", "123", "CHM1",
        ] {
            assert_eq!(escaped(5, v), v, "value {v:?}");
        }
    }

    #[test]
    fn department_code_is_always_escaped_even_empty() {
        assert_eq!(escaped(11, "3"), "\"=\"\"3\"\"\"");
        assert_eq!(escaped(11, ""), "\"=\"\"\"\"\"");
        assert_eq!(escaped(11, "0.5"), "\"=\"\"0.5\"\"\"");
    }

    #[test]
    fn transaction_number_is_never_escaped() {
        assert_eq!(escaped(37, "00013456"), "00013456");
    }

    #[test]
    fn escape_rule_counts_characters_not_bytes() {
        // 5th character is '-', although the 5th byte is not.
        assert_eq!(escaped(4, "0Ñ12-"), "0Ñ12-");
        // 2nd character is '.', 3rd character ':'.
        assert_eq!(escaped(4, "0.Ñ"), "0.Ñ");
        assert_eq!(escaped(4, "0Ñ:"), "0Ñ:");
        assert_eq!(escaped(4, "0Ñ"), "\"=\"\"0Ñ\"\"\"");
    }

    #[test]
    fn daypart_boundaries() {
        let cases = [
            ("00:00", Daypart::Graveyard),
            ("05:59", Daypart::Graveyard),
            ("06:00", Daypart::Breakfast),
            ("10:59", Daypart::Breakfast),
            ("11:00", Daypart::Lunch),
            ("14:59", Daypart::Lunch),
            ("15:00", Daypart::PmSnack),
            ("18:59", Daypart::PmSnack),
            ("19:00", Daypart::Dinner),
            ("22:59", Daypart::Dinner),
            ("23:00", Daypart::Graveyard),
            ("24:00", Daypart::Graveyard),
            ("", Daypart::NoTimeRecord),
        ];
        for (time, expected) in cases {
            assert_eq!(daypart(time), Ok(expected), "time {time:?}");
        }
    }

    #[test]
    fn daypart_rejects_what_python_int_rejects() {
        assert_eq!(daypart("25:00"), Err(RejectReason::HourOutOfRange));
        assert_eq!(daypart("99"), Err(RejectReason::HourOutOfRange));
        assert_eq!(daypart("9:30"), Err(RejectReason::HourNotANumber));
        assert_eq!(daypart("TIME"), Err(RejectReason::HourNotANumber));
        assert_eq!(
            daypart("\"=\"\"0930\"\"\""),
            Err(RejectReason::HourNotANumber)
        );
        assert_eq!(daypart(" "), Err(RejectReason::HourNotANumber));
    }

    #[test]
    fn daypart_accepts_python_int_edge_cases() {
        assert_eq!(daypart(" 9:30"), Ok(Daypart::Breakfast));
        assert_eq!(daypart("9"), Ok(Daypart::Breakfast));
        assert_eq!(daypart("+7"), Ok(Daypart::Breakfast));
        // Negative hours index from the end of the table, as Python lists do.
        assert_eq!(daypart("-1"), Ok(Daypart::Graveyard));
        assert_eq!(daypart("-9"), Ok(Daypart::PmSnack));
    }

    #[test]
    fn order_types() {
        assert_eq!(order_type_name("D"), Some("Dine-In"));
        assert_eq!(order_type_name("T"), Some("Take-Out"));
        assert_eq!(order_type_name("C"), Some("Delivery"));
        assert_eq!(order_type_name("d"), None);
        assert_eq!(order_type_name(""), None);
    }

    #[test]
    fn department_key_unwraps_excel_and_plain_quotes() {
        assert_eq!(department_key("\"=\"\"01\"\"\""), "01");
        assert_eq!(department_key("\"ICED101\""), "ICED101");
        assert_eq!(department_key(" 7 "), "7");
        assert_eq!(department_key("\"=\"\"\"\"\""), "");
    }

    proptest::proptest! {
        /// The slicing version gives what the literal recipe gives.
        #[test]
        fn department_key_matches_the_literal_recipe(code in "[ \"=a5Ñ\u{a0}]{0,12}") {
            let stripped = py_strip(&code);
            let cleaned = stripped.replace("=\"", "").replace('"', "");
            let key = department_key(&code);
            proptest::prop_assert_eq!(key.as_ref(), py_strip(&cleaned));
        }
    }

    #[test]
    fn short_rows_are_padded_and_padding_is_not_escaped() {
        let s = Selected::from_line("1,x,0001,y,I");
        assert_eq!(s.present, 3);
        assert_eq!(s.raw[slot::ITEM], "I");
        assert_eq!(s.raw[slot::DEPARTMENT], "");
        let lookups = Lookups::default();
        let ctx = context(&lookups, false);
        let mut b = RowBuilder::default();
        b.build(&ctx, &s).unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields.len(), 27);
        assert_eq!(&fields[..3], ["1", "\"=\"\"0001\"\"\"", "I"]);
        // Column 11 is absent, so DEPARTMENT CODE is empty rather than "=""""".
        assert!(fields[3..22].iter().all(|f| f.is_empty()), "{fields:?}");
        assert_eq!(fields[22], "No Time Record");
        assert_eq!(fields[26], "BR");
    }

    fn context<'a>(lookups: &'a Lookups<'a>, new_branch: bool) -> GroupContext<'a> {
        GroupContext {
            branch: "BR",
            pos_text: "1",
            date_text: "2026-02-09",
            new_branch,
            lookups,
        }
    }

    fn rd5000(item: &str, dep: &str, time: &str, disc: &str, transno: &str) -> String {
        let mut f = vec![""; 40];
        f[0] = "0001";
        f[2] = "00013555";
        f[4] = item;
        f[5] = "1.000";
        f[6] = "388.000";
        f[7] = "388.000";
        f[8] = "0.000";
        f[11] = dep;
        f[12] = "2026-02-09 00:00:00";
        f[13] = time;
        f[18] = disc;
        f[21] = "T";
        f[31] = "1";
        f[32] = "9.333";
        f[34] = "346.429";
        f[35] = "0.000";
        f[36] = "346.429";
        f[37] = transno;
        f.join(",")
    }

    fn lookups_with<'a>(entries: &[(FileType, &'a str)], new_branch: bool) -> Lookups<'a> {
        let mut l = Lookups::default();
        for (t, data) in entries {
            l.load(*t, data.as_bytes(), new_branch, 1 << 20);
        }
        l
    }

    #[test]
    fn full_old_branch_row() {
        let mut pay = vec![""; 23];
        pay[11] = "00001";
        pay[20] = "00013455";
        let pay = pay.join(",");
        let l = lookups_with(
            &[
                (FileType::Rd5500, "DEL19,SALISBURY STEAK,X,1"),
                (FileType::Rd1800, "52,FOOD PANDA,1,AYALA-FRN"),
                (FileType::Discount, "SC,SENIOR"),
                (FileType::Rd5800, &pay),
                (FileType::Rd5900, "00001,CASH,0,0.000,1,AYALA-FRN"),
            ],
            false,
        );
        let line = rd5000("DEL19", "52", "10:35", "", "00013455");
        let mut b = RowBuilder::default();
        let daypart = b
            .build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        assert_eq!(daypart, Daypart::Breakfast);
        assert_eq!(
            b.row(),
            "1,\"=\"\"00013555\"\"\",DEL19,1.000,388.000,388.000,0.000,\"=\"\"52\"\"\",2026-02-09,\
             10:35,,T,1,9.333,346.429,0.000,346.429,00013455,\"SALISBURY STEAK\",\"FOOD PANDA\",,\
             \"Take-Out\",Breakfast,00001,CASH,,BR"
        );
        assert_eq!(b.row_date(), "2026-02-09");
    }

    #[test]
    fn escaped_item_code_never_finds_its_name() {
        let l = lookups_with(&[(FileType::Rd5500, "0123,ZERO ITEM")], false);
        let line = rd5000("0123", "1", "10:00", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[2], "\"=\"\"0123\"\"\"");
        assert_eq!(fields[18], "");
    }

    #[test]
    fn new_branch_found_item_replaces_department_code() {
        let l = lookups_with(
            &[
                (
                    FileType::Rd5500,
                    "COF23,ICD16 CARAMEL M,X,406,175,ORDER,12,1,1,,,,ICED101,0, FULL",
                ),
                (FileType::Rd1800, "ICED101,ICED,,,,BETA,0, FULL"),
            ],
            true,
        );
        let line = rd5000("COF23", "", "17:50", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, true), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[7], "\"ICED101\"");
        assert_eq!(fields[18], "\"ICD16 CARAMEL M\"");
        assert_eq!(fields[19], "\"ICED\"");
    }

    #[test]
    fn new_branch_missing_item_keeps_the_escaped_empty_department() {
        let l = lookups_with(&[(FileType::Rd1800, "ICED101,ICED")], true);
        let line = rd5000("NOPE", "", "17:50", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, true), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[7], "\"=\"\"\"\"\"");
        assert_eq!(fields[18], "");
        assert_eq!(fields[19], "");
    }

    #[test]
    fn new_branch_item_without_department_drops_the_row() {
        let l = lookups_with(&[(FileType::Rd5500, "COF23,NAME")], true);
        let line = rd5000("COF23", "", "17:50", "", "");
        let mut b = RowBuilder::default();
        let got = b.build(&context(&l, true), &Selected::from_line(&line));
        assert_eq!(got.err(), Some(RejectReason::ItemWithoutDepartment));
    }

    #[test]
    fn old_branch_never_changes_the_department_code() {
        let l = lookups_with(
            &[
                (
                    FileType::Rd5500,
                    "COF23,NAME,X,406,1,2,3,4,5,6,7,8,ICED101,0",
                ),
                (FileType::Rd1800, "7,SEVEN"),
            ],
            false,
        );
        let line = rd5000("COF23", "7", "17:50", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[7], "\"=\"\"7\"\"\"");
        assert_eq!(fields[19], "\"SEVEN\"");
    }

    #[test]
    fn bare_item_entry_drops_the_row() {
        let l = lookups_with(&[(FileType::Rd5500, "LONE")], false);
        let line = rd5000("LONE", "1", "10:00", "", "");
        let got = RowBuilder::default().build(&context(&l, false), &Selected::from_line(&line));
        assert_eq!(got.err(), Some(RejectReason::ItemEntryWithoutName));
    }

    #[test]
    fn discount_and_type_names_are_quoted_and_daypart_is_not() {
        let l = lookups_with(&[(FileType::Discount, "SC,20% SC DISCOUNT")], false);
        let line = rd5000("X", "1", "23:10", "SC", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[20], "\"20% SC DISCOUNT\"");
        assert_eq!(fields[21], "\"Take-Out\"");
        assert_eq!(fields[22], "GY");
    }

    #[test]
    fn phone_is_looked_up_by_transaction_number() {
        let l = lookups_with(
            &[(
                FileType::Blpr,
                "TEMP,09123456789,X,\"=\"\"00092777\"\"\",1,B",
            )],
            false,
        );
        let line = rd5000("X", "1", "10:00", "", "00092777");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        assert!(b.row().ends_with(",,,09123456789,BR"));
    }

    #[test]
    fn quoted_names_are_wrapped_without_inner_escaping() {
        let l = lookups_with(
            &[(FileType::Rd5500, "\"REPP\"\"13\",\"EXT\"\"E PLATTER\",X")],
            false,
        );
        let line = rd5000("\"REPP\"\"13\"", "1", "16:00", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        let fields: Vec<&str> = b.row().split(',').collect();
        assert_eq!(fields[2], "\"REPP\"\"13\"");
        assert_eq!(fields[18], "\"\"EXT\"\"E PLATTER\"\"");
    }

    #[test]
    fn payment_and_phone_need_a_transaction_number() {
        let mut pay = vec![""; 23];
        pay[11] = "9";
        let pay = pay.join(",");
        // An empty TRANSNO key exists in rd5800, rd5900 and blpr, but is never looked up.
        let l = lookups_with(
            &[
                (FileType::Rd5800, &pay),
                (FileType::Rd5900, "\n9,CARD"),
                (FileType::Blpr, "T,09123456789,X,,1,B"),
            ],
            false,
        );
        assert!(l.payment_codes.contains_key("") && l.phones.contains_key(""));
        let line = rd5000("X", "1", "10:00", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        assert!(b.row().ends_with(",Breakfast,,,,BR"));
    }

    #[test]
    fn payment_name_is_empty_when_the_code_is_unknown() {
        let mut pay = vec![""; 23];
        pay[11] = "77";
        pay[20] = "T1";
        let pay = pay.join(",");
        let l = lookups_with(&[(FileType::Rd5800, &pay)], false);
        let line = rd5000("X", "1", "10:00", "", "T1");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        assert!(
            b.row().ends_with(",T1,,,,\"Take-Out\",Breakfast,77,,,BR"),
            "{}",
            b.row()
        );
    }

    #[test]
    fn pos_and_branch_come_from_the_file_name() {
        let l = Lookups::default();
        let line = rd5000("X", "1", "10:00", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        // rd5000 col 0 is "0001" and col 39 is empty; the file name says POS 1, branch BR.
        assert!(b.row().starts_with("1,"));
        assert!(b.row().ends_with(",BR"));
    }

    #[test]
    fn header_line_is_rejected_by_the_hour_parse() {
        let header = "STORE_NUM,TRANSDATE,INVOICE,CAS_CODE,ITE_CODE,QUANTITY,UNT_PRIC,AMOUNT,\
            DISCOUNT,SCHARGE,DT,DEP_CODE,DATE,TIME,CUS_CODE,TRN_CODE,ORNUM,TAG,DISC_CODE,SRNO,\
            SRNAME,TYPE,BACKJOB,DELIVERY,PHONE,RIDER,FREE,INV_FLAG,REC_NO,LPAY_DISC,GC_EXCESS,\
            VAT_FLAG,VATDIV,BDL_CODE,VAT_AMNT,VAT_DISC,VAT_PRIC,TRANSNO,POS,BRANCH";
        let l = Lookups::default();
        let got = RowBuilder::default().build(&context(&l, false), &Selected::from_line(header));
        assert_eq!(got.err(), Some(RejectReason::HeaderLine));
    }

    #[test]
    fn date_is_cut_at_the_first_space() {
        let l = Lookups::default();
        let line = rd5000("X", "1", "10:00", "", "");
        let mut b = RowBuilder::default();
        b.build(&context(&l, false), &Selected::from_line(&line))
            .unwrap();
        assert_eq!(b.row_date(), "2026-02-09");
        let blank = Selected::from_line("");
        b.build(&context(&l, false), &blank).unwrap();
        assert_eq!(b.row_date(), "");
    }
}

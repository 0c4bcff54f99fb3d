//! The typed [`Transaction`] of a row the legacy pass kept.
//!
//! Built from the same raw fields and tables as the legacy row. Where legacy looked something
//! up by its Excel-escaped form (item and discount codes), we look it up by the raw code; see
//! the deliberate differences in the combine module doc.

use rust_decimal::Decimal;

use super::legacy::{GroupContext, Selected, order_type_name, slot};
use super::lines::py_strip;
use super::lookups::{ItemEntry, TypedTables};
use crate::pipeline::record::{Daypart, Transaction};

/// Where a row came from, for the record's provenance fields.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The group's POS as a number.
    pub pos: u16,
    /// The group's business date.
    pub date: chrono::NaiveDate,
    /// rd5000 file name.
    pub file_name: &'a str,
    /// 1-based line number in that file.
    pub line: u64,
    /// The row key.
    pub row_key: String,
}

/// An export number field, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// The field is empty (or only whitespace).
    Empty,
    /// The exact value, with the export's scale.
    Value(Decimal),
    /// The field holds something that is not a number.
    Invalid,
}

/// Parses an export number exactly: `388.000`, `-80.710`, `132.1429`, `1`, `1e-05`.
///
/// Surrounding whitespace is ignored. Only plain decimal notation with an optional exponent is
/// accepted (no `_`, no `NaN`); values that do not fit a 96-bit decimal are refused rather than
/// rounded.
pub fn parse_decimal(text: &str) -> Number {
    let t = py_strip(text);
    if t.is_empty() {
        return Number::Empty;
    }
    if !looks_numeric(t) {
        return Number::Invalid;
    }
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str_exact(t)
    };
    parsed.map_or(Number::Invalid, Number::Value)
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`
fn looks_numeric(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Builds the typed record of a line the typed pass keeps; `bad_numbers` is increased for
/// every non-empty money or quantity field that is not a number.
///
/// `selected` holds the line's fields (unquoted when the line was read with real quoting) and
/// `daypart` the daypart of its TIME. Names come from `tables`, looked up by the raw codes;
/// payment and phone by the transaction number, as legacy did.
pub fn transaction(
    ctx: &GroupContext<'_>,
    tables: &TypedTables<'_, '_>,
    selected: &Selected<'_>,
    daypart: Daypart,
    source: Source<'_>,
    bad_numbers: &mut u64,
) -> Transaction {
    let raw = &selected.raw;
    let mut number = |k: usize| match parse_decimal(raw[k]) {
        Number::Empty => None,
        Number::Value(d) => Some(d),
        Number::Invalid => {
            *bad_numbers += 1;
            None
        }
    };
    let quantity = number(slot::QUANTITY);
    let unit_price = number(slot::UNIT_PRICE);
    let amount = number(slot::AMOUNT);
    let discount = number(slot::DISCOUNT);
    let vat_div = number(slot::VAT_DIV);
    let vat_amount = number(slot::VAT_AMOUNT);
    let vat_discount = number(slot::VAT_DISCOUNT);
    let vat_price = number(slot::VAT_PRICE);

    // Raw-code lookups: an item found by its raw code gives its name even when legacy, looking
    // up the escaped code, found nothing. A bare entry or a new-layout item without a
    // department simply contributes nothing here (legacy had dropped rows that hit them).
    let (product_name, item_department) = match tables.items().get(raw[slot::ITEM]) {
        Some(ItemEntry::Named { name, department }) => {
            (Some(name.to_string()), department.as_deref())
        }
        Some(ItemEntry::Bare) | None => (None, None),
    };
    let department_code = match item_department {
        Some(d) if ctx.new_branch => d,
        _ => raw[slot::DEPARTMENT],
    };
    // Codes here are unquoted text, so only surrounding whitespace is removed; legacy's key
    // also removed the quotes of its Excel wrapper, which a code without quotes never has.
    let department_name = {
        let key = py_strip(department_code);
        if key.is_empty() {
            None
        } else {
            tables.departments().get(key).map(|name| name.to_string())
        }
    };
    let discount_name = tables
        .discounts()
        .get(raw[slot::DISCOUNT_CODE])
        .map(|name| name.to_string());
    let order_type_name = order_type_name(raw[slot::TYPE]).map(str::to_string);
    let transno = raw[slot::TRANSNO];
    let (payment_code, payment_name, phone) = if transno.is_empty() {
        (None, None, None)
    } else {
        let code = tables.payment_codes().get(transno);
        let name = code.and_then(|c| tables.payment_names().get(c.as_ref()));
        let phone = tables.phones().get(transno);
        (code, name, phone)
    };

    Transaction {
        row_key: source.row_key,
        branch: ctx.branch.to_string(),
        pos: source.pos,
        date: source.date,
        time: raw[slot::TIME].to_string(),
        or_number: raw[slot::OR].to_string(),
        transaction_number: raw[slot::TRANSNO].to_string(),
        product_code: raw[slot::ITEM].to_string(),
        product_name,
        quantity,
        unit_price,
        amount,
        discount,
        department_code: department_code.to_string(),
        department_name,
        discount_code: raw[slot::DISCOUNT_CODE].to_string(),
        discount_name,
        order_type: raw[slot::TYPE].to_string(),
        order_type_name,
        daypart,
        vat_flag: raw[slot::VAT_FLAG].to_string(),
        vat_div,
        vat_amount,
        vat_discount,
        vat_price,
        payment_code: payment_code.map(|c| c.to_string()),
        payment_name: payment_name.map(|n| n.to_string()),
        phone: phone.map(|p| p.to_string()),
        source_file: source.file_name.to_string(),
        source_line: source.line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Option<Result<String, ()>> {
        match parse_decimal(text) {
            Number::Empty => None,
            Number::Value(d) => Some(Ok(d.to_string())),
            Number::Invalid => Some(Err(())),
        }
    }

    #[test]
    fn decimals_keep_the_export_scale() {
        assert_eq!(dec("388.000"), Some(Ok("388.000".into())));
        assert_eq!(dec("-80.710"), Some(Ok("-80.710".into())));
        assert_eq!(dec("132.1429"), Some(Ok("132.1429".into())));
        assert_eq!(dec("1"), Some(Ok("1".into())));
        assert_eq!(dec(" 0.0 "), Some(Ok("0.0".into())));
        assert_eq!(
            dec("165.17857142857142"),
            Some(Ok("165.17857142857142".into()))
        );
        assert_eq!(dec("1e-05"), Some(Ok("0.00001".into())));
    }

    #[test]
    fn empty_is_none_and_garbage_is_an_error() {
        assert_eq!(dec(""), None);
        assert_eq!(dec("  "), None);
        for bad in [
            "abc",
            "1_000",
            "1.2.3",
            ".",
            "-",
            "1e",
            "NaN",
            "\"=\"\"0\"\"\"",
        ] {
            assert_eq!(dec(bad), Some(Err(())), "{bad:?}");
        }
        // Too many digits for 96 bits is refused, not rounded.
        assert_eq!(dec("123456789012345678901234567890.5"), Some(Err(())));
    }
}

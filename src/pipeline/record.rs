//! The typed transaction: one rd5000 line of one (branch, pos, date), with its lookups done.
//!
//! The combine pass produces a [`Transaction`] for every row it writes to the legacy CSV, from
//! the same line and the same reference tables, so the two outputs always have the same rows.
//! The importer stores these; nothing here knows about CSV escaping or MongoDB.
//!
//! # Field conventions
//!
//! - Field names serialize in camelCase (`orNumber`, `rowKey`, …).
//! - Codes (`orNumber`, `productCode`, `departmentCode`, …) are the raw export text, without
//!   the legacy CSV's Excel `="…"` wrappers. An empty export field stays an empty string.
//! - Names found in a reference table are `Some`; `None` means "not found" (JSON `null`).
//! - Money and quantities are exact [`Decimal`]s parsed from the export text, keeping its scale:
//!   `388.000` stays `388.000`, `132.1429` stays `132.1429`. They serialize as JSON strings, so
//!   no float ever touches them; the importer can turn such a string into a Decimal128 exactly.
//!   An empty or unparsable field is `None` (the combine report counts unparsable ones).
//! - `date` is the business date of the file name, serialized as `YYYY-MM-DD`. Rows whose
//!   own DATE differs never become transactions (they are monitor rows), so it is also the
//!   row's date.
//!
//! # Row key
//!
//! `rowKey` is `<branch>|<pos>|<date>|<hash>|<n>`, for example
//! `AYALA-FRN|1|2025-10-08|6f1c0e3a9b2d4c51|0`:
//!
//! - `<hash>`: 16 lowercase hex digits of the 64-bit FNV-1a hash of the raw rd5000 line's bytes
//!   (as in the file, without its line break);
//! - `<n>`: how many earlier lines of the same rd5000 file (in file order, top to bottom) have
//!   the same hash, starting at 0.
//!
//! It depends only on the line's content and the content above it, never on which export
//! (upload time) it came from or on the run. Re-importing a day, or importing a later export
//! of it that appended lines at the bottom (the POS writes rd5000 in time order), gives every
//! old line the key it had before, so an upsert by `rowKey` is idempotent. The `<n>` suffix
//! keeps keys unique within a day even for byte-identical lines or a hash collision. A line
//! that is edited gets a new key; removing the old one is the importer's policy.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One transaction line, typed. See the module doc for conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Stable key for idempotent upserts (module doc, "Row key").
    pub row_key: String,
    /// Branch code from the file name (for example `AYALA-FRN`).
    pub branch: String,
    /// POS number from the file name.
    pub pos: u16,
    /// Business date from the file name.
    pub date: NaiveDate,
    /// rd5000 `TIME` (`HH:MM`), as exported.
    pub time: String,
    /// rd5000 `INVOICE`: the receipt (OR) number.
    pub or_number: String,
    /// rd5000 `TRANSNO`: the POS's transaction number, the key the payment (rd5800) and phone
    /// (blpr) lookups use. Old-style exports pad it to 8 digits and it differs from the OR
    /// number; new-layout ones repeat the 14-digit `INVOICE`.
    pub transaction_number: String,
    /// rd5000 `ITE_CODE`; discount lines carry codes such as `SDis- 20.00%`.
    pub product_code: String,
    /// rd5500 `ITE_DESC` of the product code.
    pub product_name: Option<String>,
    /// rd5000 `QUANTITY`, with its exported scale (`1.000` old-style, `1` new-layout).
    pub quantity: Option<Decimal>,
    /// rd5000 `UNT_PRIC`: the price of one unit.
    pub unit_price: Option<Decimal>,
    /// rd5000 `AMOUNT` (negative on discount lines).
    pub amount: Option<Decimal>,
    /// rd5000 `DISCOUNT`: the line's own discount column. Discounts usually come as separate
    /// lines (negative `amount`, `SDis-…` product code) with this at zero.
    pub discount: Option<Decimal>,
    /// Department code: rd5000 `DEP_CODE`, or for new-layout branches the item's category
    /// from rd5500 when the item is found.
    pub department_code: String,
    /// rd1800 `DEP_DESC` of the department code.
    pub department_name: Option<String>,
    /// rd5000 `DISC_CODE`: the discount applied (new-layout branches use codes such as `SC`,
    /// `PWD`); `discount_name` is looked up by it.
    pub discount_code: String,
    /// discount `DESC` of the discount code.
    pub discount_name: Option<String>,
    /// rd5000 `TYPE`: `D`, `T` or `C`.
    pub order_type: String,
    /// `Dine-In`, `Take-Out` or `Delivery` for `D`, `T`, `C`.
    pub order_type_name: Option<String>,
    /// Daypart of the hour of `time`.
    pub daypart: Daypart,
    /// rd5000 `VAT_FLAG`, the raw text: stored as exported, not interpreted here.
    pub vat_flag: String,
    /// rd5000 `VATDIV`: stored as exported, not interpreted here.
    pub vat_div: Option<Decimal>,
    /// rd5000 `VAT_AMNT`: the line's VAT amount as the POS computed it.
    pub vat_amount: Option<Decimal>,
    /// rd5000 `VAT_DISC`: the line's VAT discount as the POS computed it.
    pub vat_discount: Option<Decimal>,
    /// rd5000 `VAT_PRIC`: the line's VAT price as the POS computed it.
    pub vat_price: Option<Decimal>,
    /// rd5800 `PAYCODE` of the first payment listed for the transaction number.
    pub payment_code: Option<String>,
    /// rd5900 `PAY_DESC` of the payment code.
    pub payment_name: Option<String>,
    /// blpr `PHONE` (legacy lookup, see the combine module's notes).
    pub phone: Option<String>,
    /// File name of the rd5000 export the line came from.
    pub source_file: String,
    /// 1-based line number of the line in that file (the header is line 1).
    pub source_line: u64,
}

/// The legacy hour table's labels.
///
/// Hours 0–5 and 23–24 are `GY` (graveyard), 6–10 `Breakfast`, 11–14 `Lunch`, 15–18
/// `PM Snack`, 19–22 `Dinner`; an empty time is `No Time Record`. Serialized as those labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Daypart {
    /// Graveyard: midnight to 5 am, and 11 pm onwards.
    #[serde(rename = "GY")]
    Graveyard,
    /// Hours 6 to 10 (06:00–10:59).
    Breakfast,
    /// Hours 11 to 14 (11:00–14:59).
    Lunch,
    /// Hours 15 to 18 (15:00–18:59).
    #[serde(rename = "PM Snack")]
    PmSnack,
    /// Hours 19 to 22 (19:00–22:59).
    Dinner,
    /// The line had no time.
    #[serde(rename = "No Time Record")]
    NoTimeRecord,
}

impl Daypart {
    /// The label the legacy CSV writes.
    pub fn label(self) -> &'static str {
        match self {
            Daypart::Graveyard => "GY",
            Daypart::Breakfast => "Breakfast",
            Daypart::Lunch => "Lunch",
            Daypart::PmSnack => "PM Snack",
            Daypart::Dinner => "Dinner",
            Daypart::NoTimeRecord => "No Time Record",
        }
    }
}

/// 64-bit FNV-1a of `bytes`: the content hash inside [`Transaction::row_key`].
///
/// Chosen because its definition is fixed and tiny (std's hasher may change between Rust
/// releases, which would change every key); collisions are harmless (module doc).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Formats a row key (module doc, "Row key").
pub fn row_key(branch: &str, pos: u16, date: NaiveDate, hash: u64, occurrence: u32) -> String {
    format!("{branch}|{pos}|{date}|{hash:016x}|{occurrence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn row_key_names_the_day_the_hash_and_the_occurrence() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 8).unwrap();
        assert_eq!(
            row_key("AYALA-FRN", 1, date, 0xab, 2),
            "AYALA-FRN|1|2025-10-08|00000000000000ab|2"
        );
    }

    #[test]
    fn daypart_serializes_as_the_legacy_label() {
        for d in [
            Daypart::Graveyard,
            Daypart::Breakfast,
            Daypart::Lunch,
            Daypart::PmSnack,
            Daypart::Dinner,
            Daypart::NoTimeRecord,
        ] {
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.label())
            );
        }
    }
}

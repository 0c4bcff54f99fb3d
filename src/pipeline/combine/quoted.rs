//! Real CSV quoting for one line, for the typed records (the legacy rows never use it).
//!
//! Legacy split every line on every comma, so a quoted field holding a comma
//! (`"DELA CRUZ, JUAN"`) became two fields and moved every later column, and a quoted name
//! kept its quotes (`"EXT""E PLATTER"`). The typed path reads lines that contain a `"` with
//! these rules instead, the default dialect of Python's `csv` module (which legacy's own
//! Rewrite step used) and of RFC 4180:
//!
//! - Fields are separated by `,`.
//! - A field whose **first** character is `"` is quoted: it runs to the next `"` that is not
//!   doubled; inside it, `,` is text and `""` is one `"`.
//! - Text after the closing quote and before the next `,` is kept as it is
//!   (`"EXT"E` → `EXTE`), as Python's reader does.
//! - A `"` anywhere else in a field is an ordinary character (`12" PIZZA` stays as written).
//! - A quoted field still open at the end of the line is an error: the combiner splits
//!   files into lines before reading fields, like legacy, so a field cannot span lines.
//!
//! A line without any `"` gives exactly the fields of the naive split, so callers only send
//! lines that contain a quote here (one `memchr` per line) and keep the word-at-a-time
//! splitter for all others.
//!
//! Why not the `csv` crate: it reads a stream of records, not one line whose bytes we already
//! hold, and it would be a new dependency; the rules above are a dozen lines, and the
//! fields it returns borrow the line unless a doubled quote had to be collapsed.

use std::borrow::Cow;

/// A quoted field was still open at the end of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a quoted field is not closed before the end of the line")]
pub struct UnclosedQuote;

/// The fields of `line` under real CSV quoting (module doc), unquoted.
///
/// # Errors
///
/// [`UnclosedQuote`] when a quoted field runs to the end of the line.
pub fn split(line: &str) -> Result<Vec<Cow<'_, str>>, UnclosedQuote> {
    let bytes = line.as_bytes();
    let mut fields = Vec::with_capacity(48);
    let mut start = 0;
    loop {
        if bytes.get(start) != Some(&b'"') {
            // Unquoted: up to the next comma. Quotes, commas and every byte we look for are
            // ASCII, so the cuts are character boundaries.
            match memchr::memchr(b',', &bytes[start..]) {
                Some(at) => {
                    fields.push(Cow::Borrowed(&line[start..start + at]));
                    start += at + 1;
                }
                None => {
                    fields.push(Cow::Borrowed(&line[start..]));
                    return Ok(fields);
                }
            }
            continue;
        }
        // Quoted: find the closing quote, collapsing doubled ones.
        let mut text: Cow<'_, str> = Cow::Borrowed("");
        let mut from = start + 1;
        let close = loop {
            let Some(at) = memchr::memchr(b'"', &bytes[from..]).map(|i| from + i) else {
                return Err(UnclosedQuote);
            };
            if bytes.get(at + 1) == Some(&b'"') {
                // `""`: one quote of text.
                text.to_mut().push_str(&line[from..=at]);
                from = at + 2;
            } else {
                append(&mut text, &line[from..at], from == start + 1);
                break at;
            }
        };
        // After the closing quote: text up to the next comma is kept as it is.
        let after = close + 1;
        let end = memchr::memchr(b',', &bytes[after..]).map(|i| after + i);
        let tail = &line[after..end.unwrap_or(line.len())];
        if !tail.is_empty() {
            text.to_mut().push_str(tail);
        }
        fields.push(text);
        match end {
            Some(comma) => start = comma + 1,
            None => return Ok(fields),
        }
    }
}

/// Adds `piece` to `text`, borrowing it when it is the whole field so far.
fn append<'l>(text: &mut Cow<'l, str>, piece: &'l str, first: bool) {
    if first {
        *text = Cow::Borrowed(piece);
    } else {
        text.to_mut().push_str(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(line: &str) -> Vec<String> {
        split(line)
            .unwrap()
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn a_quoted_comma_stays_inside_its_field() {
        assert_eq!(
            fields("1234 5678,\"DELA CRUZ, JUAN\",T,1"),
            ["1234 5678", "DELA CRUZ, JUAN", "T", "1"]
        );
    }

    #[test]
    fn doubled_quotes_are_one_quote() {
        assert_eq!(
            fields("\"REPP\"\"13\",\"EXT\"\"E PLATTER\",X"),
            ["REPP\"13", "EXT\"E PLATTER", "X"]
        );
        assert_eq!(fields("\"=\"\"00019910\"\"\""), ["=\"00019910\""]);
    }

    #[test]
    fn quotes_at_the_ends_of_names() {
        // A name that starts and ends with a quote character, quoted as CSV does.
        assert_eq!(
            fields("A,\"\"\"BIG\"\" ONE\"\"\",B"),
            ["A", "\"BIG\" ONE\"", "B"]
        );
        assert_eq!(fields("\"\",\"\"\"\""), ["", "\""]);
        // Not at the start of a field: an ordinary character.
        assert_eq!(fields("12\" PIZZA,X\""), ["12\" PIZZA", "X\""]);
    }

    #[test]
    fn text_after_a_closing_quote_is_kept() {
        assert_eq!(fields("\"EXT\"E,1"), ["EXTE", "1"]);
        assert_eq!(fields("\"A\" ,B"), ["A ", "B"]);
    }

    #[test]
    fn empty_fields_and_lines() {
        assert_eq!(fields(""), [""]);
        assert_eq!(fields(",,"), ["", "", ""]);
        assert_eq!(fields("\"\",,\"\""), ["", "", ""]);
        assert_eq!(fields("a,"), ["a", ""]);
    }

    #[test]
    fn an_open_quote_at_the_end_is_an_error() {
        assert_eq!(split("A,\"DELA CRUZ, JUAN"), Err(UnclosedQuote));
        assert_eq!(split("\""), Err(UnclosedQuote));
        assert_eq!(split("\"A\"\""), Err(UnclosedQuote));
    }

    #[test]
    fn fields_borrow_the_line_unless_quotes_were_doubled() {
        let got = split("A,\"B,C\",\"D\"\"E\"").unwrap();
        assert!(matches!(got[0], Cow::Borrowed("A")));
        assert!(matches!(got[1], Cow::Borrowed("B,C")));
        assert!(matches!(got[2], Cow::Owned(_)));
    }

    #[test]
    fn non_ascii_text_is_cut_at_characters() {
        assert_eq!(fields("\"PEÑA, Ñ\",’x’"), ["PEÑA, Ñ", "’x’"]);
    }

    /// Python's `csv.reader` (default dialect) on one line, written as the state machine of
    /// its C implementation, character by character: the reference for [`split`].
    fn reference(line: &str) -> Option<Vec<String>> {
        #[derive(PartialEq)]
        enum State {
            StartField,
            InField,
            InQuoted,
            QuoteInQuoted,
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut state = State::StartField;
        for c in line.chars() {
            state = match (state, c) {
                (State::StartField, '"') => State::InQuoted,
                (State::StartField | State::InField | State::QuoteInQuoted, ',') => {
                    fields.push(std::mem::take(&mut field));
                    State::StartField
                }
                (State::StartField | State::InField, c) => {
                    field.push(c);
                    State::InField
                }
                (State::InQuoted, '"') => State::QuoteInQuoted,
                (State::InQuoted, c) => {
                    field.push(c);
                    State::InQuoted
                }
                (State::QuoteInQuoted, '"') => {
                    field.push('"');
                    State::InQuoted
                }
                (State::QuoteInQuoted, c) => {
                    field.push(c);
                    State::InField
                }
            };
        }
        if state == State::InQuoted {
            return None;
        }
        fields.push(field);
        Some(fields)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn split_matches_the_python_reader(line in "[\",aÑ ]{0,24}") {
            let got = split(&line).ok().map(|f| {
                f.into_iter().map(Cow::into_owned).collect::<Vec<_>>()
            });
            prop_assert_eq!(got, reference(&line));
        }

        /// Without quotes, real quoting is the naive split: the fast path is exact.
        #[test]
        fn without_quotes_it_is_the_naive_split(line in "[,aÑ 0-9]{0,40}") {
            let naive: Vec<&str> = line.split(',').collect();
            prop_assert_eq!(fields(&line), naive);
        }
    }
}

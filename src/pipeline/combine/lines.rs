//! Python's text-mode reading plus `str.splitlines()`, done on raw bytes.
//!
//! The legacy combiner read every export with `open(..., "r", encoding="utf-8").read()` and
//! split it with `splitlines()`. Text mode turns CRLF and lone CR into LF, and `splitlines`
//! then breaks on LF, CR, CRLF, VT (0x0B), FF (0x0C), FS/GS/RS (0x1C–0x1E), NEL (U+0085),
//! LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029). A break at the very end does not
//! produce an empty last line. Translating CR first and then splitting gives the same lines as
//! splitting on all the breaks at once with CRLF counted as one, so this module does the latter.
//!
//! We split the bytes before decoding them. Every multi-byte break (`C2 85`, `E2 80 A8`,
//! `E2 80 A9`) starts with a byte that can never be a UTF-8 continuation byte, so splitting
//! the bytes finds exactly the breaks that decoding first would find, even in a file whose
//! other bytes are not valid UTF-8. Lines are then decoded one by one (see [`decode`]): a
//! valid line borrows the file's bytes, so the common case allocates nothing.
//!
//! The legacy combiner walks rd5000 and every reference file bottom-to-top; [`RevLines`]
//! yields the same lines as [`Lines`] in reverse order without first collecting them.

use std::borrow::Cow;

/// Bytes that can end a line break: the last byte of every break sequence.
const fn break_end_table() -> [bool; 256] {
    let mut table = [false; 256];
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table[0x0b] = true;
    table[0x0c] = true;
    table[0x1c] = true;
    table[0x1d] = true;
    table[0x1e] = true;
    table[0x85] = true;
    table[0xa8] = true;
    table[0xa9] = true;
    table
}

/// Bytes that can start a line break: the first byte of every break sequence.
const fn break_start_table() -> [bool; 256] {
    let mut table = [false; 256];
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table[0x0b] = true;
    table[0x0c] = true;
    table[0x1c] = true;
    table[0x1d] = true;
    table[0x1e] = true;
    table[0xc2] = true;
    table[0xe2] = true;
    table
}

static BREAK_START: [bool; 256] = break_start_table();
static BREAK_END: [bool; 256] = break_end_table();

/// Length in bytes of the line break that starts at `i`, or 0 when none starts there.
fn break_starting_at(data: &[u8], i: usize) -> usize {
    match data[i] {
        b'\r' => {
            if data.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            }
        }
        b'\n' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e => 1,
        0xc2 if data.get(i + 1) == Some(&0x85) => 2,
        0xe2 if data.get(i + 1) == Some(&0x80)
            && matches!(data.get(i + 2), Some(&0xa8) | Some(&0xa9)) =>
        {
            3
        }
        _ => 0,
    }
}

/// Length in bytes of the line break that ends just before `end`, or 0 when none ends there.
///
/// A lone CR right before `end` counts as a break of its own: callers never cut between the
/// CR and the LF of a CRLF, because they only ever move `end` to the start of a whole break.
fn break_ending_at(data: &[u8], end: usize) -> usize {
    if end == 0 {
        return 0;
    }
    let last = data[end - 1];
    let before = |n: usize| end.checked_sub(n).map(|i| data[i]);
    match last {
        b'\n' => {
            if before(2) == Some(b'\r') {
                2
            } else {
                1
            }
        }
        b'\r' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e => 1,
        0x85 if before(2) == Some(0xc2) => 2,
        0xa8 | 0xa9 if before(2) == Some(0x80) && before(3) == Some(0xe2) => 3,
        _ => 0,
    }
}

/// The lines of `data` in file order, as Python's `splitlines()` gives them.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// Lines of a whole file's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let data = self.data;
        if self.pos >= data.len() {
            return None;
        }
        let start = self.pos;
        let mut i = start;
        while i < data.len() {
            if BREAK_START[data[i] as usize] {
                let len = break_starting_at(data, i);
                if len > 0 {
                    self.pos = i + len;
                    return Some(&data[start..i]);
                }
            }
            i += 1;
        }
        self.pos = data.len();
        Some(&data[start..])
    }
}

/// The lines of `data` last to first: exactly [`Lines`] reversed.
///
/// It walks the buffer backwards, so reversing a file costs no per-line allocation and no
/// index of line offsets.
#[derive(Debug, Clone)]
pub struct RevLines<'a> {
    data: &'a [u8],
    /// One past the last byte of the next line to yield.
    end: usize,
    /// False once the first line of the file has been yielded (or the file is empty).
    more: bool,
}

impl<'a> RevLines<'a> {
    /// Reversed lines of a whole file's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        // The break that ends the file closes its last line; it does not open an empty one.
        let end = data.len() - break_ending_at(data, data.len());
        Self {
            data,
            end,
            more: !data.is_empty(),
        }
    }
}

impl<'a> Iterator for RevLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if !self.more {
            return None;
        }
        let data = self.data;
        let end = self.end;
        let mut i = end;
        while i > 0 {
            if BREAK_END[data[i - 1] as usize] {
                let len = break_ending_at(data, i);
                if len > 0 {
                    self.end = i - len;
                    return Some(&data[i..end]);
                }
            }
            i -= 1;
        }
        self.more = false;
        Some(&data[..end])
    }
}

/// Decodes one line as UTF-8, replacing invalid sequences with U+FFFD.
///
/// The legacy combiner crashed on the first invalid byte of any file (its read was strict
/// UTF-8). We keep the line instead, so one mis-encoded senior's name does not lose a day of
/// sales, and report how many lines needed replacing. Returns the text and whether it was
/// lossy.
pub fn decode(line: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(line) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => (String::from_utf8_lossy(line), true),
    }
}

/// Python's `str.isspace()` for one character.
///
/// Python counts every Unicode `White_Space` character plus the four information separators
/// U+001C–U+001F; Rust's [`char::is_whitespace`] lacks the latter four.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(data: &[u8]) -> Vec<&[u8]> {
        Lines::new(data).collect()
    }

    #[test]
    fn lf_and_crlf_and_cr_each_end_a_line() {
        assert_eq!(lines(b"a\nb\r\nc\rd"), vec![&b"a"[..], b"b", b"c", b"d"]);
    }

    #[test]
    fn final_break_does_not_add_an_empty_line() {
        assert_eq!(lines(b"a\n"), vec![&b"a"[..]]);
        assert_eq!(lines(b"a\r\n"), vec![&b"a"[..]]);
        assert_eq!(lines(b"a\n\n"), vec![&b"a"[..], b""]);
        assert_eq!(lines(b"\n"), vec![&b""[..]]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn cr_cr_lf_is_two_breaks() {
        assert_eq!(lines(b"a\r\r\nb"), vec![&b"a"[..], b"", b"b"]);
    }

    #[test]
    fn every_splitlines_character_breaks() {
        for sep in [
            &b"\x0b"[..],
            b"\x0c",
            b"\x1c",
            b"\x1d",
            b"\x1e",
            "\u{85}".as_bytes(),
            "\u{2028}".as_bytes(),
            "\u{2029}".as_bytes(),
        ] {
            let mut data = b"x".to_vec();
            data.extend_from_slice(sep);
            data.extend_from_slice(b"y");
            assert_eq!(lines(&data), vec![&b"x"[..], b"y"], "separator {sep:?}");
        }
    }

    #[test]
    fn unit_separator_and_tab_do_not_break() {
        assert_eq!(lines(b"x\x1fy\tz"), vec![&b"x\x1fy\tz"[..]]);
    }

    #[test]
    fn lone_nel_byte_is_not_a_break() {
        // 0x85 alone is invalid UTF-8, not U+0085: it stays inside the line.
        assert_eq!(lines(b"x\x85y"), vec![&b"x\x85y"[..]]);
        assert_eq!(lines(b"x\xe2\x80y"), vec![&b"x\xe2\x80y"[..]]);
    }

    #[test]
    fn reversed_lines_match_forward_lines() {
        let data = b"h\r\na\rb\n\nc\xc2\x85d\xe2\x80\xa9e\r";
        let mut forward = lines(data);
        forward.reverse();
        let backward: Vec<&[u8]> = RevLines::new(data).collect();
        assert_eq!(backward, forward);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let (text, lossy) = decode(b"a\xffb");
        assert_eq!(text, "a\u{fffd}b");
        assert!(lossy);
        let (text, lossy) = decode("Ñ".as_bytes());
        assert_eq!(text, "Ñ");
        assert!(!lossy);
    }

    #[test]
    fn py_strip_strips_python_whitespace() {
        assert_eq!(py_strip("\u{a0} a b\x1f\t"), "a b");
        assert_eq!(py_strip("\u{200b}a"), "\u{200b}a");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn reverse_is_forward_reversed(data in proptest::collection::vec(
            prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(0x0b_u8), Just(0x1c_u8), Just(0xc2_u8),
                Just(0x85_u8), Just(0xe2_u8), Just(0x80_u8), Just(0xa8_u8), Just(b'a'),
                any::<u8>(),
            ],
            0..64,
        )) {
            let mut forward = lines(&data);
            forward.reverse();
            let backward: Vec<&[u8]> = RevLines::new(&data).collect();
            prop_assert_eq!(backward, forward);
        }

        #[test]
        fn splitting_bytes_matches_splitting_decoded_text(data in proptest::collection::vec(
            prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(0x0c_u8), Just(0xc2_u8), Just(0x85_u8),
                Just(0xe2_u8), Just(0x80_u8), Just(0xa9_u8), Just(b'a'), any::<u8>(),
            ],
            0..64,
        )) {
            // The reference: decode the whole file lossily, then split on the Python breaks.
            let text = String::from_utf8_lossy(&data).replace("\r\n", "\n").replace('\r', "\n");
            let mut expected: Vec<String> = text
                .split(['\n', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}'])
                .map(str::to_string)
                .collect();
            if expected.last().is_some_and(|l| l.is_empty()) {
                expected.pop();
            }
            let got: Vec<String> = lines(&data).iter().map(|l| decode(l).0.into_owned()).collect();
            prop_assert_eq!(got, expected);
        }
    }
}

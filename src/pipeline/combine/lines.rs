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
//! other bytes are not valid UTF-8. Lines are then decoded one by one (see [`decode`]; [`Text`]
//! does it for a whole file): a valid line borrows the file's bytes, so the common case
//! allocates nothing.
//!
//! The legacy combiner walks rd5000 and every reference file bottom-to-top; [`RevLineRanges`]
//! yields the same lines as [`LineRanges`] in reverse order without first collecting them.
//!
//! Fast paths, each equal to the general rule (and tested against it below): a file with no
//! break other than LF is split with SIMD `memchr` instead of byte by byte ([`Breaks`]), and a
//! file that is valid UTF-8 as a whole is validated once instead of line by line ([`Text`]).
//!
//! The module also splits lines into fields the legacy way, `line.split(',')`, eight bytes at
//! a time: [`for_each_field`], [`leading_fields`] and [`nth_field`].

use std::borrow::Cow;
use std::ops::{ControlFlow, Range};

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

/// How the line breaks of a file are searched for.
///
/// Python's `splitlines` breaks on ten different sequences, so the general search looks at
/// every byte. Export files only ever use LF (the samples have no other break at all), and
/// when a file has no byte sequence that could start another break, the breaks of the
/// general search are exactly its LF bytes. [`Breaks::of`] checks that once per file with
/// SIMD scans, and the line iterators then jump from LF to LF with one `memchr` iterator per
/// file (measured: a little cheaper than a `memchr` call per line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaks {
    /// No break other than LF occurs anywhere in the file: every LF byte is a break of
    /// length 1 and nothing else is a break.
    LfOnly,
    /// Some other break may occur: look at every byte.
    Any,
}

impl Breaks {
    /// Which search finds the breaks of `data`.
    ///
    /// [`break_starting_at`] is non-zero only at CR, LF, VT, FF, FS, GS, RS, or at `C2`/`E2`
    /// followed by the rest of NEL, LINE SEPARATOR or PARAGRAPH SEPARATOR. So when the file has
    /// no CR, VT, FF, FS, GS or RS byte, and no `C2`/`E2` byte starts one of those three
    /// sequences, a break starts at `i` exactly when `data[i]` is LF, and it is one byte long
    /// (a CRLF needs a CR). The same holds for [`break_ending_at`]: a break ends before `end`
    /// exactly when `data[end - 1]` is LF. Non-ASCII text (names with `Ñ`, `’`) only costs
    /// the check of its few `C2`/`E2` bytes.
    pub fn of(data: &[u8]) -> Self {
        let lf_only = memchr::memchr3(b'\r', 0x0b, 0x0c, data).is_none()
            && memchr::memchr3(0x1c, 0x1d, 0x1e, data).is_none()
            && memchr::memchr2_iter(0xc2, 0xe2, data).all(|i| break_starting_at(data, i) == 0);
        if lf_only { Breaks::LfOnly } else { Breaks::Any }
    }
}

/// The byte ranges of the lines of `data` in file order, as Python's `splitlines()` gives
/// them (without their breaks).
#[derive(Debug, Clone)]
pub struct LineRanges<'a> {
    data: &'a [u8],
    /// Where the next line starts.
    pos: usize,
    /// For [`Breaks::LfOnly`], the file's LF bytes, all of them breaks, in order.
    newlines: Option<memchr::Memchr<'a>>,
}

impl<'a> LineRanges<'a> {
    /// Lines of a whole file's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Self::with_breaks(data, Breaks::of(data))
    }

    /// Lines of a whole file's bytes whose [`Breaks`] are already known. `breaks` must be
    /// [`Breaks::of`]`(data)` or [`Breaks::Any`] (which is always correct, only slower).
    pub fn with_breaks(data: &'a [u8], breaks: Breaks) -> Self {
        Self {
            data,
            pos: 0,
            newlines: (breaks == Breaks::LfOnly).then(|| memchr::memchr_iter(b'\n', data)),
        }
    }
}

impl Iterator for LineRanges<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let data = self.data;
        let start = self.pos;
        if start >= data.len() {
            return None;
        }
        let found = match &mut self.newlines {
            // Each LF is a break and starts after the previous one, which ended the last line.
            Some(newlines) => newlines.next().map(|at| (at, 1)),
            None => (start..data.len()).find_map(|i| {
                if BREAK_START[data[i] as usize] {
                    let len = break_starting_at(data, i);
                    (len > 0).then_some((i, len))
                } else {
                    None
                }
            }),
        };
        Some(match found {
            Some((at, len)) => {
                self.pos = at + len;
                start..at
            }
            None => {
                self.pos = data.len();
                start..data.len()
            }
        })
    }
}

/// The byte ranges of the lines of `data` last to first: exactly [`LineRanges`] reversed.
///
/// It walks the buffer backwards, so reversing a file costs no per-line allocation and no
/// index of line offsets.
#[derive(Debug, Clone)]
pub struct RevLineRanges<'a> {
    data: &'a [u8],
    /// One past the last byte of the next line to yield.
    end: usize,
    /// False once the first line of the file has been yielded (or the file is empty).
    more: bool,
    /// For [`Breaks::LfOnly`], the LF bytes before the file's final break, last first.
    newlines: Option<std::iter::Rev<memchr::Memchr<'a>>>,
}

impl<'a> RevLineRanges<'a> {
    /// Reversed lines of a whole file's bytes whose [`Breaks`] are already known (as
    /// [`LineRanges::with_breaks`]).
    pub fn with_breaks(data: &'a [u8], breaks: Breaks) -> Self {
        // The break that ends the file closes its last line; it does not open an empty one.
        let end = data.len() - break_ending_at(data, data.len());
        Self {
            data,
            end,
            more: !data.is_empty(),
            newlines: (breaks == Breaks::LfOnly).then(|| memchr::memrchr_iter(b'\n', &data[..end])),
        }
    }
}

impl Iterator for RevLineRanges<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if !self.more {
            return None;
        }
        let data = self.data;
        let end = self.end;
        // `(start of the line, length of the break before it)`.
        let found = match &mut self.newlines {
            // Each LF is a break and ends before the next one, which started the last line.
            Some(newlines) => newlines.next().map(|at| (at + 1, 1)),
            None => (1..=end).rev().find_map(|i| {
                if BREAK_END[data[i - 1] as usize] {
                    let len = break_ending_at(data, i);
                    (len > 0).then_some((i, len))
                } else {
                    None
                }
            }),
        };
        Some(match found {
            Some((start, len)) => {
                self.end = start - len;
                start..end
            }
            None => {
                self.more = false;
                0..end
            }
        })
    }
}

/// The lines of `data` in file order, as Python's `splitlines()` gives them.
#[derive(Debug, Clone)]
pub struct Lines<'a>(LineRanges<'a>);

impl<'a> Lines<'a> {
    /// Lines of a whole file's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Self(LineRanges::new(data))
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let range = self.0.next()?;
        Some(&self.0.data[range])
    }
}

/// A whole file: its bytes, how to find its line breaks, and its text when all of it is
/// valid UTF-8.
///
/// [`Text::line`] decodes one line exactly as [`decode`] does, but validates the file once
/// instead of line by line. That is the same answer: when the whole file is valid UTF-8,
/// every line of it is too, because lines are cut only at the start and end of break
/// sequences, which are whole characters (ASCII bytes, or `C2 85` / `E2 80 A8` / `E2 80 A9`
/// starting with a lead byte), hence character boundaries. When the file is not valid, each
/// line is decoded on its own as before.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    data: &'a [u8],
    text: Option<&'a str>,
    breaks: Breaks,
}

impl<'a> Text<'a> {
    /// Validates and scans `data` once.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            text: std::str::from_utf8(data).ok(),
            breaks: Breaks::of(data),
        }
    }

    /// The line ranges, first to last.
    pub fn lines(&self) -> LineRanges<'a> {
        LineRanges::with_breaks(self.data, self.breaks)
    }

    /// The line ranges, last to first.
    pub fn rev_lines(&self) -> RevLineRanges<'a> {
        RevLineRanges::with_breaks(self.data, self.breaks)
    }

    /// The bytes of a line.
    pub fn bytes(&self, line: Range<usize>) -> &'a [u8] {
        &self.data[line]
    }

    /// A line decoded as [`decode`] would decode [`Text::bytes`]: the text and whether it
    /// was lossy.
    pub fn line(&self, line: Range<usize>) -> (Cow<'a, str>, bool) {
        // `get` cannot fail for a line range of a valid file (see the type's notes); falling
        // back to `decode` keeps even a wrong range from panicking.
        match self.text.and_then(|text| text.get(line.clone())) {
            Some(text) => (Cow::Borrowed(text), false),
            None => decode(&self.data[line]),
        }
    }
}

/// Calls `f` with each field of `line` split on `,` and its column (0, 1, …), in order,
/// until `f` breaks: exactly the fields of `line.split(',')`.
///
/// A comma is one ASCII byte, and no byte of a multi-byte UTF-8 character is ASCII, so the
/// comma bytes of the text are exactly its comma characters and every cut is a character
/// boundary (this holds for all the splitting functions here).
///
/// Export fields are short (40 of them in a 190-byte rd5000 line), too short for a `memchr`
/// call per field to pay off. Here each 8-byte word of the line is read once and gives all its
/// commas at once ([`byte_flags`]), and `f` is inlined into the loop: the fastest way measured
/// for lines of many short fields (rd5000). For the first few fields of a line,
/// [`leading_fields`] is faster.
#[inline]
pub fn for_each_field<'a>(line: &'a str, mut f: impl FnMut(usize, &'a str) -> ControlFlow<()>) {
    let bytes = line.as_bytes();
    let mut column = 0;
    let mut start = 0;
    let mut word_at = 0;
    while word_at < bytes.len() {
        let mut commas = byte_flags(b',', load_word(bytes, word_at));
        while commas != 0 {
            let comma = word_at + (commas.trailing_zeros() / 8) as usize;
            // The lowest flag is this comma's: clear it.
            commas &= commas - 1;
            if f(column, &line[start..comma]).is_break() {
                return;
            }
            column += 1;
            start = comma + 1;
        }
        word_at += 8;
    }
    let _ = f(column, &line[start..]);
}

/// The first `N` fields of `line` (`""` past its last field) and how many it has, counting at
/// most `N`: `line.split(',')` for lines that only need their first few fields.
///
/// Searches comma by comma ([`find_byte`]), which skips long fields (blpr's phones and
/// Excel-wrapped numbers) a word at a time and stops at the `N`-th comma. Measured on the
/// reference files, faster there than [`for_each_field`], `str::split` or `memchr`.
pub fn leading_fields<const N: usize>(line: &str) -> ([&str; N], usize) {
    let bytes = line.as_bytes();
    let mut fields = [""; N];
    let mut start = 0;
    for (count, field) in fields.iter_mut().enumerate() {
        match find_byte(b',', bytes, start) {
            Some(comma) => {
                *field = &line[start..comma];
                start = comma + 1;
            }
            None => {
                *field = &line[start..];
                return (fields, count + 1);
            }
        }
    }
    (fields, N)
}

/// The `n`-th comma-separated field of `line`, the same as `line.split(',').nth(n)` but
/// faster on long lines.
///
/// Field `n` runs from just after the `n`-th comma (or the start, for field 0) to the next
/// comma or the end. Words are read as in [`for_each_field`], but a word whose commas all
/// come before the `n`-th is skipped by counting its flags: TRANSNO is field 37 of 40.
pub fn nth_field(line: &str, n: usize) -> Option<&str> {
    let bytes = line.as_bytes();
    // Commas in the words before `word_at`, while the start is not found yet.
    let mut passed = 0;
    let mut start = (n == 0).then_some(0);
    let mut word_at = 0;
    while word_at < bytes.len() {
        let mut commas = byte_flags(b',', load_word(bytes, word_at));
        if start.is_none() {
            let count = commas.count_ones() as usize;
            if passed + count < n {
                passed += count;
                word_at += 8;
                continue;
            }
            // Clear the flags of the commas before the `n`-th; the lowest left is the `n`-th.
            for _ in passed + 1..n {
                commas &= commas - 1;
            }
            start = Some(word_at + (commas.trailing_zeros() / 8) as usize + 1);
            commas &= commas - 1;
        }
        if let (Some(start), true) = (start, commas != 0) {
            let end = word_at + (commas.trailing_zeros() / 8) as usize;
            return Some(&line[start..end]);
        }
        word_at += 8;
    }
    start.map(|start| &line[start..])
}

/// Bytes `at..at + 8` of `bytes` as a little-endian `u64` (byte `at` in the lowest bits); past
/// the end, zero bytes (callers never look for a zero byte).
#[inline]
fn load_word(bytes: &[u8], at: usize) -> u64 {
    let rest = bytes.get(at..).unwrap_or_default();
    if let Some(word) = rest.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    let mut word = [0; 8];
    for (to, from) in word.iter_mut().zip(rest) {
        *to = *from;
    }
    u64::from_le_bytes(word)
}

/// For each byte of `word` equal to `needle`, its high bit (`0x80`), and nothing else.
///
/// In `x = word ^ needle * 0x01…01` exactly the matching bytes are zero. For each byte,
/// `(x & 0x7f) + 0x7f` has its high bit set exactly when the low seven bits of the byte are
/// not all zero, and never carries into the next byte (at most `0xfe`); or-ing `x` adds the
/// bytes whose own high bit is set. So the high bit of the complement is set exactly for the
/// zero bytes of `x`. Exact for every byte, unlike the cheaper test in [`find_byte`], which
/// is only exact for the first match.
#[inline]
fn byte_flags(needle: u8, word: u64) -> u64 {
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);
    let x = word ^ (u64::from_le_bytes([0x01; 8]) * u64::from(needle));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The position of the first `needle` in `haystack[from..]`, as an index into `haystack`.
///
/// Reads eight bytes as one little-endian `u64` (the first byte in the lowest bits) and uses
/// the classic zero-byte test on `word ^ needle * 0x01…01`, in which exactly the bytes equal
/// to `needle` are zero. In `(x - 0x01…01) & !x & 0x80…80` the lowest set bit always belongs
/// to the first zero byte: a byte above a zero one may be flagged falsely by the borrow, a
/// byte below it never is. So its `trailing_zeros() / 8` is the first match. The last
/// 0–7 bytes are compared one by one.
#[inline]
pub fn find_byte(needle: u8, haystack: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let pattern = ONES * u64::from(needle);
    let rest = haystack.get(from..)?;
    let mut words = rest.chunks_exact(8);
    let mut offset = from;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().ok()?) ^ pattern;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == needle).map(|i| offset + i)
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

    fn slices(data: &[u8], ranges: impl Iterator<Item = Range<usize>>) -> Vec<&[u8]> {
        ranges.map(|r| &data[r]).collect()
    }

    /// The reversed lines, with the search [`Breaks::of`] picks.
    fn rev_lines(data: &[u8]) -> Vec<&[u8]> {
        slices(data, RevLineRanges::with_breaks(data, Breaks::of(data)))
    }

    /// Lines with the general, byte-by-byte search, forwards and backwards.
    fn general(data: &[u8]) -> (Vec<&[u8]>, Vec<&[u8]>) {
        (
            slices(data, LineRanges::with_breaks(data, Breaks::Any)),
            slices(data, RevLineRanges::with_breaks(data, Breaks::Any)),
        )
    }

    /// Export-like bytes: mostly text, commas and LF, sometimes another break or a byte that
    /// starts or ends a multi-byte one.
    fn export_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                8 => Just(b'a'),
                4 => Just(b','),
                4 => Just(b'\n'),
                1 => Just(b'\r'),
                1 => Just(0x0b_u8),
                1 => Just(0x1e_u8),
                1 => Just(0x1f_u8),
                2 => Just(0xc2_u8),
                2 => Just(0x85_u8),
                2 => Just(0xe2_u8),
                2 => Just(0x80_u8),
                2 => Just(0xa8_u8),
                1 => Just(0xa9_u8),
                2 => any::<u8>(),
            ],
            0..96,
        )
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
        assert_eq!(rev_lines(data), forward);
    }

    #[test]
    fn lf_only_needs_every_other_break_to_be_absent() {
        assert_eq!(Breaks::of(b""), Breaks::LfOnly);
        assert_eq!(Breaks::of(b"a,b\nc\n"), Breaks::LfOnly);
        // Non-ASCII text, and the lead bytes of NEL / U+2028 without the rest of them.
        assert_eq!(
            Breaks::of("Ñ’\u{2027}\u{202a}\n".as_bytes()),
            Breaks::LfOnly
        );
        assert_eq!(Breaks::of(b"x\xc2\n\xe2\x80\n\x85\xa8"), Breaks::LfOnly);
        for other in [
            &b"\r"[..],
            b"\x0b",
            b"\x0c",
            b"\x1c",
            b"\x1d",
            b"\x1e",
            "\u{85}".as_bytes(),
            "\u{2028}".as_bytes(),
            "\u{2029}".as_bytes(),
        ] {
            let mut data = b"a\nb".to_vec();
            data.extend_from_slice(other);
            assert_eq!(Breaks::of(&data), Breaks::Any, "break {other:?}");
        }
    }

    #[test]
    fn text_decodes_like_decode() {
        let valid = "a\nÑ\u{2028}b\r\n".as_bytes();
        let text = Text::new(valid);
        let got: Vec<_> = text.lines().map(|r| text.line(r)).collect();
        let expected: Vec<_> = Lines::new(valid).map(decode).collect();
        assert_eq!(got, expected);
        let invalid = b"ok\nbad\xff\n\xc3\n";
        let text = Text::new(invalid);
        let got: Vec<_> = text.rev_lines().map(|r| text.line(r)).collect();
        let mut expected: Vec<_> = Lines::new(invalid).map(decode).collect();
        expected.reverse();
        assert_eq!(got, expected);
        assert_eq!(got.iter().filter(|(_, lossy)| *lossy).count(), 2);
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
    fn fields_split_like_str_split() {
        for line in ["", ",", "a", "a,b", ",a,,b,", "Ñ,’,\"=\"\"0\"\"\""] {
            assert_eq!(field_list(line), line.split(',').collect::<Vec<_>>());
        }
    }

    #[test]
    fn byte_flags_flag_exactly_the_matching_bytes() {
        // Every byte value next to matches and to the values one off the needle.
        for needle in [b',', b'"', 0x01, 0x7f, 0x80, 0xff] {
            for other in 0..=255_u8 {
                let bytes = [
                    other,
                    needle,
                    other,
                    needle.wrapping_add(1),
                    needle,
                    other,
                    needle.wrapping_sub(1),
                    other,
                ];
                let expected = bytes.iter().enumerate().fold(0, |flags, (i, &b)| {
                    if b == needle {
                        flags | 0x80 << (8 * i)
                    } else {
                        flags
                    }
                });
                assert_eq!(byte_flags(needle, u64::from_le_bytes(bytes)), expected);
            }
        }
    }

    fn field_list(line: &str) -> Vec<&str> {
        each_field(line)
            .into_iter()
            .map(|(_, field)| field)
            .collect()
    }

    fn each_field(line: &str) -> Vec<(usize, &str)> {
        let mut all = Vec::new();
        for_each_field(line, |column, field| {
            all.push((column, field));
            ControlFlow::Continue(())
        });
        all
    }

    #[test]
    fn fields_of_long_lines_with_commas_at_word_edges() {
        for len in 0..40 {
            for step in 1..10 {
                let line: String = (0..len)
                    .map(|i| if i % step == 0 { ',' } else { 'x' })
                    .collect();
                let expected: Vec<&str> = line.split(',').collect();
                assert_eq!(field_list(&line), expected, "{line:?}");
            }
        }
    }

    #[test]
    fn find_byte_finds_the_first_match_in_every_position() {
        for len in 0..24 {
            for at in 0..len {
                let mut data = vec![b'a'; len];
                data[at] = b',';
                // A second match later, and bytes that differ from ',' by one (borrows).
                if at + 3 < len {
                    data[at + 3] = b',';
                }
                if at > 0 {
                    data[at - 1] = b',' + 1;
                }
                for from in 0..=at {
                    assert_eq!(
                        find_byte(b',', &data, from),
                        Some(at),
                        "{data:?} from {from}"
                    );
                }
                assert_eq!(
                    find_byte(b',', &data, at + 1),
                    (at + 3 < len).then_some(at + 3)
                );
            }
            assert_eq!(find_byte(b',', &vec![b'-'; len], 0), None);
        }
        assert_eq!(find_byte(b',', b"ab", 3), None);
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
            prop_assert_eq!(rev_lines(&data), forward);
        }

        /// The `memchr` search of LF-only files finds exactly the lines the general search
        /// finds, both ways; and whatever [`Breaks::of`] says, the lines are the general ones.
        #[test]
        fn fast_search_matches_general_search(data in export_bytes()) {
            let (forward, mut backward) = general(&data);
            prop_assert_eq!(&lines(&data), &forward);
            backward.reverse();
            prop_assert_eq!(&backward, &forward);
            prop_assert_eq!(rev_lines(&data), general(&data).1);
            if Breaks::of(&data) == Breaks::LfOnly {
                let split: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
                let expected = match split.split_last() {
                    Some(([], rest)) => rest.to_vec(),
                    _ => split,
                };
                prop_assert_eq!(forward, expected);
            }
        }

        /// LF-only, often: the cases where the fast search is actually taken.
        #[test]
        fn fast_search_matches_general_search_on_lf_only_files(data in proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'\n'), Just(0xc2_u8), Just(0xe2_u8), Just(0x80_u8),
                Just(0x85_u8), Just(0xa8_u8), Just(0x1f_u8)],
            0..64,
        )) {
            let (forward, backward) = general(&data);
            prop_assert_eq!(lines(&data), forward);
            prop_assert_eq!(rev_lines(&data), backward);
        }

        #[test]
        fn fields_match_str_split(line in "[a,Ñ’\"=\u{2c}\u{12c}\u{ac}\u{0}\u{7f}\u{80}]{0,80}") {
            prop_assert_eq!(field_list(&line), line.split(',').collect::<Vec<_>>());
            let split: Vec<&str> = line.split(',').collect();
            let (first, count) = leading_fields::<3>(&line);
            prop_assert_eq!(count, split.len().min(3));
            for (i, field) in first.iter().enumerate() {
                prop_assert_eq!(*field, split.get(i).copied().unwrap_or(""));
            }
        }

        #[test]
        fn for_each_field_matches_str_split(line in "[a,Ñ’\u{0}\u{80}]{0,80}", stop in 0..30_usize) {
            let expected: Vec<(usize, &str)> = line.split(',').enumerate().collect();
            prop_assert_eq!(each_field(&line), expected.clone());
            // Breaking stops right after the field that broke.
            let mut seen = Vec::new();
            for_each_field(&line, |column, field| {
                seen.push((column, field));
                if column == stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            });
            prop_assert_eq!(seen, expected.into_iter().take(stop + 1).collect::<Vec<_>>());
        }

        #[test]
        fn nth_field_matches_str_split(line in "[a,,Ñ’]{0,100}", n in 0..48_usize) {
            prop_assert_eq!(nth_field(&line, n), line.split(',').nth(n));
        }

        #[test]
        fn find_byte_matches_position(
            haystack in proptest::collection::vec(any::<u8>(), 0..40),
            needle in any::<u8>(),
            from in 0..48_usize,
        ) {
            let expected = haystack
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == needle))
                .map(|i| from + i);
            prop_assert_eq!(find_byte(needle, &haystack, from), expected);
        }

        /// [`Text::line`] gives what [`decode`] gives for every line, valid file or not.
        #[test]
        fn text_lines_decode_like_each_line(data in prop_oneof![
            export_bytes(),
            "[a,Ñ’\n\r\u{85}\u{2028}]{0,40}".prop_map(String::into_bytes),
        ]) {
            let text = Text::new(&data);
            let got: Vec<_> = text.lines().map(|r| text.line(r)).collect();
            let expected: Vec<_> = Lines::new(&data).map(decode).collect();
            prop_assert_eq!(got, expected);
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

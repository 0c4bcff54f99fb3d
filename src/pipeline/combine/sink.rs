//! Where the combine pass sends what it produces: the [`RowSink`] trait and its writers.
//!
//! The pass reads files and applies the legacy rules; a sink decides what to keep. The CLI
//! writes legacy CSV or JSON lines ([`LegacyCsvWriter`], [`JsonlWriter`]); the importer keeps
//! typed [`Transaction`]s in batches and ignores the CSV bytes; tests collect everything
//! ([`CollectSink`]).

use std::collections::HashSet;
use std::io::{self, Write};

use super::legacy::HEADER;
use crate::pipeline::record::Transaction;

/// A row whose DATE differs from its file name's date: legacy's monitor entry.
///
/// Legacy appended `(pos, branch, date)` of the *group* to `masterData_errorMonitoring.csv`
/// once; the pass reports every such line and the sink decides whether to deduplicate
/// ([`MonitorLog`] does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorEntry<'a> {
    /// The group's POS as written in the file name.
    pub pos: &'a str,
    /// The group's branch.
    pub branch: &'a str,
    /// The group's business date as written in the file name.
    pub date: &'a str,
    /// The rd5000 file.
    pub source_file: &'a str,
    /// 1-based line number of the offending line.
    pub line: u64,
    /// The DATE the line's row carried (empty for a blank line).
    pub row_date: &'a str,
}

/// Receives the combine pass's output, one group at a time, in legacy order (rd5000
/// bottom-to-top).
///
/// For every line legacy kept the pass calls [`RowSink::legacy_row_at`] (which defaults to
/// [`RowSink::legacy_row`]); lines whose legacy DATE mismatches call [`RowSink::monitor`].
/// When [`RowSink::wants_transactions`] is true, every line that gets a typed record then
/// calls [`RowSink::transaction`]. For a line without a `"` that is exactly the lines with a
/// legacy row, unless its field count does not fit the layout (no record); a line with a
/// `"` is judged on its real columns, so it may have a row and no record or the other way
/// round (see [`super::TypedReport`]).
pub trait RowSink {
    /// The sink's own failure (an I/O error, a database error, …). The pass stops at the
    /// first one and returns it as [`super::CombineError::Sink`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether to build typed records at all. A sink that only writes CSV returns `false`
    /// and the pass skips the work.
    fn wants_transactions(&self) -> bool {
        true
    }

    /// One legacy CSV row: 27 fields, UTF-8, without a line break (the sink picks LF or CRLF).
    ///
    /// # Errors
    ///
    /// The sink's failure; it ends the pass.
    fn legacy_row(&mut self, row: &[u8]) -> Result<(), Self::Error>;

    /// [`RowSink::legacy_row`] with the row's 1-based rd5000 line number, for sinks that
    /// join rows to records (the pass calls this one). By default the line is dropped.
    ///
    /// # Errors
    ///
    /// The sink's failure; it ends the pass.
    fn legacy_row_at(&mut self, line: u64, row: &[u8]) -> Result<(), Self::Error> {
        let _ = line;
        self.legacy_row(row)
    }

    /// The typed record of a line (after its legacy row, when it has one). Owned, so a sink
    /// can batch records without cloning them.
    ///
    /// # Errors
    ///
    /// The sink's failure; it ends the pass.
    fn transaction(&mut self, transaction: Transaction) -> Result<(), Self::Error>;

    /// A line whose DATE is not the file name's date (legacy's monitor CSV).
    ///
    /// # Errors
    ///
    /// The sink's failure; it ends the pass.
    fn monitor(&mut self, entry: &MonitorEntry<'_>) -> Result<(), Self::Error>;
}

impl<S: RowSink + ?Sized> RowSink for &mut S {
    type Error = S::Error;

    fn wants_transactions(&self) -> bool {
        (**self).wants_transactions()
    }

    fn legacy_row(&mut self, row: &[u8]) -> Result<(), Self::Error> {
        (**self).legacy_row(row)
    }

    fn legacy_row_at(&mut self, line: u64, row: &[u8]) -> Result<(), Self::Error> {
        (**self).legacy_row_at(line, row)
    }

    fn transaction(&mut self, transaction: Transaction) -> Result<(), Self::Error> {
        (**self).transaction(transaction)
    }

    fn monitor(&mut self, entry: &MonitorEntry<'_>) -> Result<(), Self::Error> {
        (**self).monitor(entry)
    }
}

/// Legacy's monitor file: distinct `(pos, branch, date)` rows in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorLog {
    rows: Vec<[String; 3]>,
    seen: HashSet<[String; 3]>,
}

impl MonitorLog {
    /// Records an entry unless its `(pos, branch, date)` is already there.
    pub fn record(&mut self, entry: &MonitorEntry<'_>) {
        let row = [
            entry.pos.to_string(),
            entry.branch.to_string(),
            entry.date.to_string(),
        ];
        if self.seen.insert(row.clone()) {
            self.rows.push(row);
        }
    }

    /// The distinct rows, as `[pos, branch, date]`.
    pub fn rows(&self) -> &[[String; 3]] {
        &self.rows
    }

    /// Writes the header `pos,branch,date` and the rows as Python's `csv` writer does: CRLF
    /// line ends, fields quoted only when they hold a comma, quote or line break.
    ///
    /// # Errors
    ///
    /// The writer's I/O error.
    pub fn write_csv<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(b"pos,branch,date\r\n")?;
        for row in &self.rows {
            for (i, field) in row.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                if field.contains([',', '"', '\r', '\n']) {
                    write!(out, "\"{}\"", field.replace('"', "\"\""))?;
                } else {
                    out.write_all(field.as_bytes())?;
                }
            }
            out.write_all(b"\r\n")?;
        }
        out.flush()
    }
}

/// Writes the legacy CSV: the header, then every row, each ending in `\n` (legacy on Linux;
/// the Windows original wrote CRLF through text mode).
#[derive(Debug)]
pub struct LegacyCsvWriter<W: Write> {
    out: W,
    monitor: MonitorLog,
}

impl<W: Write> LegacyCsvWriter<W> {
    /// Starts the file with the legacy header line.
    ///
    /// # Errors
    ///
    /// The writer's I/O error.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(HEADER.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            monitor: MonitorLog::default(),
        })
    }

    /// Flushes and returns the writer and the monitor rows seen.
    ///
    /// # Errors
    ///
    /// The writer's I/O error.
    pub fn finish(mut self) -> io::Result<(W, MonitorLog)> {
        self.out.flush()?;
        Ok((self.out, self.monitor))
    }
}

impl<W: Write> RowSink for LegacyCsvWriter<W> {
    type Error = io::Error;

    fn wants_transactions(&self) -> bool {
        false
    }

    fn legacy_row(&mut self, row: &[u8]) -> io::Result<()> {
        self.out.write_all(row)?;
        self.out.write_all(b"\n")
    }

    fn transaction(&mut self, _: Transaction) -> io::Result<()> {
        Ok(())
    }

    fn monitor(&mut self, entry: &MonitorEntry<'_>) -> io::Result<()> {
        self.monitor.record(entry);
        Ok(())
    }
}

/// Writes one JSON object per typed record per line.
#[derive(Debug)]
pub struct JsonlWriter<W: Write> {
    out: W,
    monitor: MonitorLog,
}

impl<W: Write> JsonlWriter<W> {
    /// A writer with nothing written yet.
    pub fn new(out: W) -> Self {
        Self {
            out,
            monitor: MonitorLog::default(),
        }
    }

    /// Flushes and returns the writer and the monitor rows seen.
    ///
    /// # Errors
    ///
    /// The writer's I/O error.
    pub fn finish(mut self) -> io::Result<(W, MonitorLog)> {
        self.out.flush()?;
        Ok((self.out, self.monitor))
    }
}

impl<W: Write> RowSink for JsonlWriter<W> {
    type Error = io::Error;

    fn legacy_row(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn transaction(&mut self, transaction: Transaction) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &transaction)?;
        self.out.write_all(b"\n")
    }

    fn monitor(&mut self, entry: &MonitorEntry<'_>) -> io::Result<()> {
        self.monitor.record(entry);
        Ok(())
    }
}

/// Keeps everything in memory: for tests and small tools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectSink {
    /// Legacy rows, without line breaks.
    pub rows: Vec<String>,
    /// The rd5000 line number of each of `rows`.
    pub row_lines: Vec<u64>,
    /// The typed records, in the order the pass produced them (it always wants them).
    pub transactions: Vec<Transaction>,
    /// Monitor entries as `(pos, branch, date, line)`.
    pub monitor: Vec<(String, String, String, u64)>,
}

impl RowSink for CollectSink {
    type Error = std::convert::Infallible;

    fn legacy_row(&mut self, row: &[u8]) -> Result<(), Self::Error> {
        self.legacy_row_at(0, row)
    }

    fn legacy_row_at(&mut self, line: u64, row: &[u8]) -> Result<(), Self::Error> {
        self.rows.push(String::from_utf8_lossy(row).into_owned());
        self.row_lines.push(line);
        Ok(())
    }

    fn transaction(&mut self, transaction: Transaction) -> Result<(), Self::Error> {
        self.transactions.push(transaction);
        Ok(())
    }

    fn monitor(&mut self, entry: &MonitorEntry<'_>) -> Result<(), Self::Error> {
        self.monitor.push((
            entry.pos.to_string(),
            entry.branch.to_string(),
            entry.date.to_string(),
            entry.line,
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(pos: &'a str, branch: &'a str, line: u64) -> MonitorEntry<'a> {
        MonitorEntry {
            pos,
            branch,
            date: "2026-02-09",
            source_file: "f.csv",
            line,
            row_date: "2026-02-10",
        }
    }

    #[test]
    fn monitor_log_deduplicates_and_writes_crlf() {
        let mut log = MonitorLog::default();
        log.record(&entry("1", "CNTRO", 3));
        log.record(&entry("1", "CNTRO", 9));
        log.record(&entry("1", "A,B", 2));
        let mut out = Vec::new();
        log.write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pos,branch,date\r\n1,CNTRO,2026-02-09\r\n1,\"A,B\",2026-02-09\r\n"
        );
    }

    #[test]
    fn legacy_writer_starts_with_the_header() {
        let mut w = LegacyCsvWriter::new(Vec::new()).unwrap();
        w.legacy_row(b"a,b").unwrap();
        let (out, _) = w.finish().unwrap();
        assert_eq!(out, format!("{HEADER}\na,b\n").into_bytes());
    }
}

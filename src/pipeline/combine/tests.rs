//! Group-level tests of the combine pass: real files in a scratch directory, a collecting sink.

use std::path::Path;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::pipeline::export_name::ExportName;
use crate::pipeline::record::Daypart;

const DATE: &str = "2026-02-09";

/// An old-layout rd5000 line with the given item, time, DATE and transaction number.
fn rd5000_line(item: &str, time: &str, date: &str, transno: &str) -> String {
    let mut f = vec![""; 40];
    f[0] = "1";
    f[2] = "00013555";
    f[4] = item;
    f[5] = "1.000";
    f[6] = "388.000";
    f[7] = "388.000";
    f[8] = "0.000";
    f[11] = "52";
    f[12] = date;
    f[13] = time;
    f[21] = "T";
    f[31] = "1";
    f[37] = transno;
    f.join(",")
}

const RD5000_HEADER: &str = "STORE_NUM,TRANSDATE,INVOICE,CAS_CODE,ITE_CODE,QUANTITY,UNT_PRIC,\
AMOUNT,DISCOUNT,SCHARGE,DT,DEP_CODE,DATE,TIME,CUS_CODE,TRN_CODE,ORNUM,TAG,DISC_CODE,SRNO,SRNAME,\
TYPE,BACKJOB,DELIVERY,PHONE,RIDER,FREE,INV_FLAG,REC_NO,LPAY_DISC,GC_EXCESS,VAT_FLAG,VATDIV,\
BDL_CODE,VAT_AMNT,VAT_DISC,VAT_PRIC,TRANSNO,POS,BRANCH";

fn name(branch: &str, file_type: FileType, time: &str) -> String {
    format!("a_{branch}_1_{file_type}_{DATE}_{time}_.csv")
}

/// Writes the files into `dir` and returns the single group they form.
fn group_of(dir: &Path, branch: &str, files: &[(FileType, &str, &[u8])]) -> Group {
    let mut paths = Vec::new();
    for (file_type, time, data) in files {
        let path = dir.join(name(branch, *file_type, time));
        std::fs::write(&path, data).unwrap();
        paths.push(path);
    }
    let mut set = FileSet::from_paths(paths);
    assert_eq!(set.groups.len(), 1);
    set.groups.remove(0)
}

fn run(group: &Group) -> (GroupReport, CollectSink) {
    let mut sink = CollectSink::default();
    let report = combine_group(group, &CombineOptions::default(), &mut sink).unwrap();
    (report, sink)
}

#[test]
fn rows_come_out_bottom_to_top_and_the_header_is_counted_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!(
        "{RD5000_HEADER}\n{}\n{}\n",
        rd5000_line("FIRST", "10:00", DATE, "1"),
        rd5000_line("SECOND", "11:00", DATE, "2")
    );
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let (report, sink) = run(&group);
    assert_eq!(sink.rows.len(), 2);
    assert!(sink.rows[0].contains(",SECOND,"));
    assert!(sink.rows[1].contains(",FIRST,"));
    // The header is neither a row nor a rejected line (issue 15: `rows.rejected` was 1 on
    // every job).
    assert_eq!(report.header_lines, 1);
    assert_eq!(report.rejected_total(), 0);
    assert!(report.rejected_lines.is_empty());
    assert_eq!(report.typed.header_lines, 1);
    assert_eq!(report.typed.rejected_total(), 0);
    assert_eq!(sink.transactions[0].source_line, 3);
    assert_eq!(sink.transactions[1].source_line, 2);
}

#[test]
fn date_mismatch_and_blank_lines_go_to_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!(
        "{}\n\n{}\n",
        rd5000_line("OK", "10:00", "2026-02-09 00:00:00", "1"),
        rd5000_line("NEXT", "00:10", "2026-02-10 00:00:00", "2")
    );
    let group = group_of(
        dir.path(),
        "CNTRO",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let (report, sink) = run(&group);
    assert_eq!(sink.rows.len(), 1);
    assert_eq!(sink.transactions.len(), 1);
    assert_eq!(report.monitor_rows, 2);
    // The monitor names the group (file-name date), not the row's date.
    assert_eq!(
        sink.monitor,
        vec![
            ("1".into(), "CNTRO".into(), DATE.into(), 3),
            ("1".into(), "CNTRO".into(), DATE.into(), 2),
        ]
    );
}

#[test]
fn monitor_log_keeps_one_row_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!(
        "{}\n{}\n",
        rd5000_line("A", "00:10", "2026-02-10", "1"),
        rd5000_line("B", "00:20", "2026-02-10", "2")
    );
    let group = group_of(
        dir.path(),
        "CNTRO",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let mut sink = LegacyCsvWriter::new(Vec::new()).unwrap();
    combine_group(&group, &CombineOptions::default(), &mut sink).unwrap();
    let (out, monitor) = sink.finish().unwrap();
    assert_eq!(out, format!("{HEADER}\n").into_bytes());
    assert_eq!(monitor.rows().len(), 1);
}

#[test]
fn missing_reference_files_leave_lookups_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = rd5000_line("CHM1", "12:00", DATE, "00000001");
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let (report, sink) = run(&group);
    assert_eq!(report.missing.len(), 6);
    assert_eq!(sink.rows.len(), 1);
    let fields: Vec<&str> = sink.rows[0].split(',').collect();
    assert_eq!(&fields[18..22], ["", "", "", "\"Take-Out\""]);
    assert_eq!(&fields[22..], ["Lunch", "", "", "", "BR"]);
}

#[test]
fn a_group_without_rd5000_has_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let group = group_of(dir.path(), "BR", &[(FileType::Rd5500, "20-00", b"A,B\n")]);
    let (report, sink) = run(&group);
    assert_eq!(report.rows, 0);
    assert!(report.missing.contains(&FileType::Rd5000));
    assert!(sink.rows.is_empty());
}

#[test]
fn the_file_with_most_rows_is_used_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let short = format!(
        "{RD5000_HEADER}\n{}\n",
        rd5000_line("EARLY", "10:00", DATE, "1")
    );
    let long = format!(
        "{RD5000_HEADER}\n{}\n{}\n",
        rd5000_line("EARLY", "10:00", DATE, "1"),
        rd5000_line("LATE", "19:00", DATE, "2")
    );
    let group = group_of(
        dir.path(),
        "BR",
        &[
            (FileType::Rd5000, "19-00", long.as_bytes()),
            (FileType::Rd5000, "21-00", short.as_bytes()),
            (FileType::Rd1800, "19-00", b"52,OLD NAME\n"),
            (FileType::Rd1800, "21-00", b"52,NEW NAME\n"),
        ],
    );
    let (report, sink) = run(&group);
    assert_eq!(report.rows, 2);
    let rd5000 = &report.files[0];
    assert_eq!(rd5000.file_name, name("BR", FileType::Rd5000, "19-00"));
    assert_eq!(rd5000.data_rows, Some(2));
    assert!(
        matches!(&rd5000.reason, ChoiceReason::MostRows { others } if others[0].data_rows == 1)
    );
    // Equal rows: the later upload wins.
    let rd1800 = &report.files[1];
    assert_eq!(rd1800.file_name, name("BR", FileType::Rd1800, "21-00"));
    assert!(matches!(rd1800.reason, ChoiceReason::TieLatest { .. }));
    assert!(sink.rows[0].contains("\"NEW NAME\""));
    assert!(report.to_string().contains("most data rows: 2"));
}

#[test]
fn typed_record_finds_names_the_escaped_legacy_key_misses() {
    let dir = tempfile::tempdir().unwrap();
    let mut line: Vec<String> = rd5000_line("0123", "10:00", DATE, "7")
        .split(',')
        .map(str::to_string)
        .collect();
    line[18] = "01".into();
    let line = line.join(",");
    let group = group_of(
        dir.path(),
        "BR",
        &[
            (FileType::Rd5000, "20-00", line.as_bytes()),
            (FileType::Rd5500, "20-00", b"0123,ZERO ITEM\n"),
            (FileType::Discount, "20-00", b"01,SENIOR\n"),
        ],
    );
    let (_, sink) = run(&group);
    let fields: Vec<&str> = sink.rows[0].split(',').collect();
    assert_eq!(fields[18], "", "legacy looks up the escaped code");
    assert_eq!(fields[20], "", "legacy looks up the escaped discount code");
    let tx = &sink.transactions[0];
    assert_eq!(tx.product_code, "0123");
    assert_eq!(tx.product_name.as_deref(), Some("ZERO ITEM"));
    assert_eq!(tx.discount_code, "01");
    assert_eq!(tx.discount_name.as_deref(), Some("SENIOR"));
    assert_eq!(tx.or_number, "00013555");
    assert_eq!(tx.department_code, "52");
}

#[test]
fn typed_record_of_a_new_layout_branch() {
    let dir = tempfile::tempdir().unwrap();
    let line = "1,2026-02-09T17:50:59,10000000007280,154,COF23,1,175,125.0,31.25,0,,,2026-02-09,\
                17:50,,S,,S,SC,,,D,1,0,,,0,1,1,0,0,1,0.0,COF23,0.0,125.0,0.0,10000000007280,,";
    let group = group_of(
        dir.path(),
        "BETA",
        &[
            (FileType::Rd5000, "20-00", line.as_bytes()),
            (
                FileType::Rd5500,
                "20-00",
                b"COF23,ICD16 CARAMEL M,X,406,175,ORDER,12,1,1,,,,ICED101,0, FULL\n",
            ),
            (
                FileType::Rd1800,
                "20-00",
                b"ICED101,ICED,,,,BETA MEALS,0, FULL\n",
            ),
        ],
    );
    let (_, sink) = run(&group);
    assert_eq!(
        sink.rows[0],
        "1,10000000007280,COF23,1,175,125.0,31.25,\"ICED101\",2026-02-09,17:50,SC,D,1,0.0,0.0,\
         125.0,0.0,10000000007280,\"ICD16 CARAMEL M\",\"ICED\",,\"Dine-In\",PM Snack,,,,BETA"
    );
    let tx = &sink.transactions[0];
    assert_eq!(tx.department_code, "ICED101");
    assert_eq!(tx.department_name.as_deref(), Some("ICED"));
    assert_eq!(tx.amount, Some("125.0".parse().unwrap()));
    assert_eq!(tx.daypart, Daypart::PmSnack);
    assert_eq!(tx.order_type_name.as_deref(), Some("Dine-In"));
    let json = serde_json::to_value(tx).unwrap();
    assert_eq!(json["amount"], "125.0");
    assert_eq!(json["date"], "2026-02-09");
    assert_eq!(json["pos"], 1);
}

#[test]
fn row_keys_survive_a_later_longer_upload_and_separate_identical_lines() {
    let dir = tempfile::tempdir().unwrap();
    let a = rd5000_line("A", "10:00", DATE, "1");
    let b = rd5000_line("B", "11:00", DATE, "2");
    let first = format!("{RD5000_HEADER}\n{a}\n{a}\n");
    let later = format!("{RD5000_HEADER}\n{a}\n{a}\n{b}\n");
    let keys = |data: &str, time: &str| {
        let sub = dir.path().join(time);
        std::fs::create_dir(&sub).unwrap();
        let group = group_of(&sub, "BR", &[(FileType::Rd5000, time, data.as_bytes())]);
        let (_, sink) = run(&group);
        let mut keys: Vec<(u64, String)> = sink
            .transactions
            .into_iter()
            .map(|t| (t.source_line, t.row_key))
            .collect();
        keys.sort();
        keys
    };
    let before = keys(&first, "19-00");
    let after = keys(&later, "22-00");
    assert_eq!(before.len(), 2);
    assert_ne!(
        before[0].1, before[1].1,
        "identical lines get distinct keys"
    );
    assert_eq!(&after[..2], &before[..], "old lines keep their keys");
    assert!(before[0].1.ends_with("|0") && before[1].1.ends_with("|1"));
    assert_eq!(
        before,
        keys(&first, "19-30"),
        "keys do not depend on the run"
    );
}

#[test]
fn invalid_utf8_is_counted_and_the_row_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = rd5000_line("X", "10:00", DATE, "1").into_bytes();
    // A cp1252 Ñ in the senior-name column.
    let name_at = data.len() - 3;
    data.insert(name_at, 0xd1);
    let group = group_of(dir.path(), "BR", &[(FileType::Rd5000, "20-00", &data)]);
    let (report, sink) = run(&group);
    assert_eq!(report.lossy_lines, 1);
    assert_eq!(report.rows, 1);
    assert_eq!(sink.rows.len(), 1);
}

#[test]
fn lines_over_the_limit_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!(
        "{}\n{}\n",
        rd5000_line("X", "10:00", DATE, "1"),
        "x".repeat(5000)
    );
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let options = CombineOptions {
        max_line_bytes: 1000,
        ..CombineOptions::default()
    };
    let report = combine_group(&group, &options, CollectSink::default()).unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!(report.rejected[&RejectReason::LineTooLong], 1);
}

#[test]
fn files_over_the_limit_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", &[b'1'; 100])],
    );
    let options = CombineOptions {
        max_file_bytes: 99,
        ..CombineOptions::default()
    };
    let err = combine_group(&group, &options, CollectSink::default()).unwrap_err();
    assert!(matches!(err, CombineError::FileTooLarge { limit: 99, .. }));
    assert!(!err.is_transient());
}

#[test]
fn a_vanished_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let group = group_of(dir.path(), "BR", &[(FileType::Rd5000, "20-00", b"")]);
    std::fs::remove_file(&group.files[&FileType::Rd5000][0].path).unwrap();
    let err = combine_group(&group, &CombineOptions::default(), CollectSink::default());
    assert!(matches!(err, Err(CombineError::Read { .. })));
}

struct FailingSink;

impl RowSink for FailingSink {
    type Error = std::io::Error;

    fn legacy_row(&mut self, _: &[u8]) -> Result<(), Self::Error> {
        Err(std::io::Error::other("disk full"))
    }

    fn transaction(&mut self, _: Transaction) -> Result<(), Self::Error> {
        Ok(())
    }

    fn monitor(&mut self, _: &MonitorEntry<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_sink_failure_stops_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let data = rd5000_line("X", "10:00", DATE, "1");
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let err = combine_group(&group, &CombineOptions::default(), FailingSink).unwrap_err();
    assert!(matches!(err, CombineError::Sink(_)));
}

#[test]
fn new_branches_come_from_a_file_or_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("newBranches.txt");
    std::fs::write(&file, "BPAG\r\nBETA \n\n").unwrap();
    let from_file = NewBranches::from_arg(file.to_str().unwrap()).unwrap();
    assert_eq!(from_file.iter().collect::<Vec<_>>(), ["BETA", "BPAG"]);
    let from_list = NewBranches::from_arg("BETA, BTAB,").unwrap();
    assert_eq!(from_list.iter().collect::<Vec<_>>(), ["BETA", "BTAB"]);
    let legacy = NewBranches::default();
    assert_eq!(
        legacy.iter().collect::<Vec<_>>(),
        ["BETA", "BGRAN", "BPAG", "BTAB"]
    );
}

/// Interesting pieces of export text: separators, escape triggers, quotes, dates, breaks.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b",".to_vec()),
        Just(b"0".to_vec()),
        Just(b"0.5".to_vec()),
        Just(b"09:30".to_vec()),
        Just(b"9:".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"TIME".to_vec()),
        Just(b"2026-02-09".to_vec()),
        Just(b"2026-02-09 00:00:00".to_vec()),
        Just(b"\"=\"\"".to_vec()),
        Just(b"\"\"\"".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"DELA CRUZ, JUAN\"".to_vec()),
        Just(b"09123456789".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just("\u{2028}".as_bytes().to_vec()),
        Just("Ñ\u{a0}".as_bytes().to_vec()),
        Just(vec![0xff, 0xc2]),
        Just(vec![0xe2, 0x80]),
        Just(vec![0]),
        proptest::collection::vec(any::<u8>(), 0..8),
        "[A-Z0-9]{1,6}".prop_map(String::into_bytes),
    ]
}

/// Either raw bytes or a stream of tokens (which reaches far more of the row logic).
fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(token(), 0..200).prop_map(|t| t.concat()),
    ]
}

/// A well-formed group, into which one type's file is replaced by arbitrary bytes.
fn base_files() -> Vec<(FileType, Vec<u8>)> {
    let mut pay = vec![""; 23];
    pay[11] = "1";
    pay[20] = "00000001";
    vec![
        (
            FileType::Rd5000,
            format!(
                "{RD5000_HEADER}\n{}\n{}\n",
                rd5000_line("CHM1", "12:00", DATE, "00000001"),
                rd5000_line("0123", "", "2026-02-08", "")
            )
            .into_bytes(),
        ),
        (
            FileType::Rd5500,
            b"CHM1,CHICKEN,X,1,5,6,7,8,9,10,11,12,DEPT\nLONE\n".to_vec(),
        ),
        (FileType::Rd1800, b"1,MEALS\nDEPT,NEW\n".to_vec()),
        (FileType::Discount, b"SC,SENIOR\n".to_vec()),
        (FileType::Rd5800, pay.join(",").into_bytes()),
        (FileType::Rd5900, b"1,CASH\n".to_vec()),
        (
            FileType::Blpr,
            b"T,09123456789,X,\"=\"\"00000001\"\"\",1,B\n".to_vec(),
        ),
    ]
}

fn combine_with(replaced: FileType, data: &[u8], new_branch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let branch = if new_branch { "BETA" } else { "BR" };
    let mut files = base_files();
    for (t, d) in &mut files {
        if *t == replaced {
            *d = data.to_vec();
        }
    }
    let borrowed: Vec<(FileType, &str, &[u8])> = files
        .iter()
        .map(|(t, d)| (*t, "20-00", d.as_slice()))
        .collect();
    let group = group_of(dir.path(), branch, &borrowed);
    let mut sink = CollectSink::default();
    let report = combine_group(&group, &CombineOptions::default(), &mut sink).unwrap();
    // Every line is accounted for exactly once.
    assert_eq!(
        report.rows + report.monitor_rows + report.rejected_total() + report.header_lines,
        report.lines
    );
    assert_eq!(sink.rows.len() as u64, report.rows);
    assert_eq!(sink.row_lines.len() as u64, report.rows);
    let typed = &report.typed;
    assert_eq!(sink.transactions.len() as u64, typed.records);
    assert_eq!(
        typed.records + typed.monitor_rows + typed.rejected_total() + typed.header_lines,
        report.lines
    );
    for row in &sink.rows {
        assert!(row.split(',').count() >= 27);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No input bytes, in any of the seven file types, make the pass panic or lose count.
    #[test]
    fn arbitrary_bytes_never_panic(
        data in contents(),
        which in 0..FileType::ALL.len(),
        new_branch in any::<bool>(),
    ) {
        combine_with(FileType::ALL[which], &data, new_branch);
    }
}

#[test]
fn arbitrary_bytes_in_each_file_type() {
    // The property above picks types at random; this makes sure each one gets cases.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    for file_type in FileType::ALL {
        runner
            .run(&(contents(), any::<bool>()), |(data, new_branch)| {
                combine_with(file_type, &data, new_branch);
                Ok(())
            })
            .unwrap();
    }
}

/// Records every sink call, in order, so passes can be compared call for call.
#[derive(Debug, Default)]
struct CallLog {
    wants_transactions: bool,
    calls: Vec<String>,
    /// Fail on this call (0-based) instead of recording it.
    fail_at: Option<usize>,
}

impl CallLog {
    fn record(&mut self, call: String) -> std::io::Result<()> {
        if self.fail_at == Some(self.calls.len()) {
            return Err(std::io::Error::other("disk full"));
        }
        self.calls.push(call);
        Ok(())
    }
}

impl RowSink for CallLog {
    type Error = std::io::Error;

    fn wants_transactions(&self) -> bool {
        self.wants_transactions
    }

    fn legacy_row(&mut self, row: &[u8]) -> std::io::Result<()> {
        self.record(format!("row {}", String::from_utf8_lossy(row)))
    }

    fn transaction(&mut self, transaction: Transaction) -> std::io::Result<()> {
        self.record(format!("record {}", transaction.row_key))
    }

    fn monitor(&mut self, e: &MonitorEntry<'_>) -> std::io::Result<()> {
        self.record(format!(
            "monitor {} {} {} {} {} {}",
            e.pos, e.branch, e.date, e.source_file, e.line, e.row_date
        ))
    }
}

/// Five groups of different sizes (branches B0..B4) with rows, monitor lines and lookups.
fn several_groups(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for (i, branch) in ["B0", "B1", "B2", "B3", "B4"].into_iter().enumerate() {
        for (file_type, mut data) in base_files() {
            if file_type == FileType::Rd5000 {
                for k in 0..i * 7 {
                    let transno = format!("{:08}", k % 3);
                    let date = if k % 5 == 4 { "2026-02-08" } else { DATE };
                    data.extend_from_slice(rd5000_line("CHM1", "12:00", date, &transno).as_bytes());
                    data.push(b'\n');
                }
            }
            let path = dir.join(name(branch, file_type, "20-00"));
            std::fs::write(&path, data).unwrap();
            paths.push(path);
        }
    }
    paths
}

fn with_threads(threads: usize) -> CombineOptions {
    CombineOptions {
        threads: NonZeroUsize::new(threads),
        ..CombineOptions::default()
    }
}

#[test]
fn parallel_passes_make_the_sequential_calls() {
    let dir = tempfile::tempdir().unwrap();
    let paths = several_groups(dir.path());
    for wants_transactions in [true, false] {
        let run = |threads: usize| {
            let mut sink = CallLog {
                wants_transactions,
                ..CallLog::default()
            };
            let report = combine_paths(&paths, &with_threads(threads), &mut sink).unwrap();
            (report, sink.calls)
        };
        let (report, calls) = run(1);
        assert_eq!(report.groups.len(), 5);
        assert!(report.monitor_rows() > 0 && report.rows() > 0);
        for threads in [2, 3, 8] {
            assert_eq!(
                run(threads),
                (report.clone(), calls.clone()),
                "{threads} threads"
            );
        }
    }
}

#[test]
fn parallel_passes_over_the_samples_match_the_sequential_pass() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-samples/input");
    let run = |threads: usize| {
        let mut sink = CollectSink::default();
        let report = combine_dir(&input, &with_threads(threads), &mut sink).unwrap();
        (report, sink)
    };
    let sequential = run(1);
    assert_eq!(sequential.0.groups.len(), 17);
    assert_eq!(run(2), sequential);
    assert_eq!(run(4), sequential);
}

#[test]
fn a_parallel_pass_stops_at_the_first_failing_group_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let paths = several_groups(dir.path());
    // B1's rd5000 disappears between listing and reading.
    let vanished = dir.path().join(name("B1", FileType::Rd5000, "20-00"));
    std::fs::remove_file(&vanished).unwrap();
    let mut expected = CallLog::default();
    let b0: Vec<_> = paths
        .iter()
        .filter(|p| p.to_string_lossy().contains("_B0_"))
        .collect();
    combine_paths(b0, &with_threads(1), &mut expected).unwrap();
    for threads in [1, 2, 5] {
        let mut sink = CallLog::default();
        let err = combine_paths(&paths, &with_threads(threads), &mut sink).unwrap_err();
        assert!(
            matches!(&err, CombineError::Read { path, .. } if *path == vanished),
            "{err:?}"
        );
        assert_eq!(sink.calls, expected.calls, "{threads} threads");
    }
}

#[test]
fn a_parallel_pass_stops_at_the_sink_failure() {
    let dir = tempfile::tempdir().unwrap();
    let paths = several_groups(dir.path());
    let mut all = CallLog::default();
    combine_paths(&paths, &with_threads(1), &mut all).unwrap();
    for fail_at in [0, 1, all.calls.len() / 2, all.calls.len() - 1] {
        for threads in [1, 2, 4] {
            let mut sink = CallLog {
                fail_at: Some(fail_at),
                ..CallLog::default()
            };
            let err = combine_paths(&paths, &with_threads(threads), &mut sink).unwrap_err();
            assert!(matches!(err, CombineError::Sink(_)));
            assert_eq!(sink.calls, all.calls[..fail_at], "{threads} threads");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real quoting for the typed records (issue 17).

/// The two file layouts: old-style branches and new-layout ones (BETA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Old,
    New,
}

impl Layout {
    fn branch(self) -> &'static str {
        match self {
            Layout::Old => "BR",
            Layout::New => "BETA",
        }
    }
}

/// The 40 rd5000 fields of a sale in `layout` (the sample's value formats), as CSV text: a
/// caller may put quoted text into any of them.
fn sale(layout: Layout, item: &str, transno: &str) -> Vec<String> {
    let mut f = vec![String::new(); 40];
    let mut set = |i: usize, v: &str| f[i] = v.to_string();
    match layout {
        Layout::Old => {
            set(0, "1");
            set(1, "2026-02-09 00:00:00");
            set(2, "00013555");
            set(5, "1.000");
            set(6, "388.000");
            set(7, "388.000");
            set(8, "0.000");
            set(11, "52");
            set(12, "2026-02-09 00:00:00");
            set(13, "10:26");
            set(21, "T");
            set(31, "1");
            set(32, "9.333");
            set(34, "346.429");
            set(35, "0.000");
            set(36, "346.429");
            set(38, "1");
            set(39, "BR");
        }
        Layout::New => {
            set(0, "1");
            set(1, "2026-02-09T17:50:59");
            set(2, transno);
            set(5, "1");
            set(6, "175");
            set(7, "125.0");
            set(8, "31.25");
            set(12, "2026-02-09");
            set(13, "17:50");
            set(18, "SC");
            set(21, "D");
            set(31, "1");
            set(32, "0.0");
            set(34, "0.0");
            set(35, "125.0");
            set(36, "0.0");
        }
    }
    set(4, item);
    set(37, transno);
    f
}

/// An rd5800 payment line (23 fields) for `transno`, with a quoted comma in `NAME` (col 6):
/// legacy's split moves PAYCODE and TRANSNO.
fn payment(paycode: &str, transno: &str) -> String {
    let mut f = vec![""; 23];
    f[0] = "1";
    f[6] = "\"CRUZ, J\"";
    f[10] = "S";
    f[11] = paycode;
    f[12] = "S";
    f[19] = "0";
    f[20] = transno;
    f.join(",")
}

/// Reference files in `layout` whose names hold quoted commas, doubled quotes and quotes at
/// their ends, in every quotable reference type; `transnos` get a payment and a phone.
fn quoted_reference_files(layout: Layout, transnos: &[&str]) -> Vec<(FileType, String)> {
    let (rd5500, rd1800, discount, rd5900, paycode) = match layout {
        Layout::Old => (
            "INCODE,ITE_DESC,ECR_DESC,DEP_CODE,UNT_PRIC,UNIT,TAXPRCNT1,TAXAMOUNT1,TAX1DIV,POS,BRANCH\n\
             CHM1,\"CHICKEN, 2PC\",\"CHKN, 2PC\",52,278.000,PC,12.000,19.180,9.330000,1,BR\n\
             \"REPP\"\"13\",\"P\"\"IUM MUG\",\"P\"\"IUM MUG\",16,0.000,PC,12.000,0.000,9.330000,1,BR\n\
             BIG1,\"\"\"BIG\"\" ONE\"\"\",BIG ONE,52,99.000,PC,12.000,10.660,9.330000,1,BR\n",
            "DEP_CODE,DEP_DESC,POS,BRANCH\n52,\"MEALS, \"\"CHICKEN\"\"\",1,BR\n16,PROMO,1,BR\n",
            "CODE,DESC,TYPE,VALUE,POS,BRANCH\nSC,\"SNR CTZN, 20%\",SUBTOTAL PERCENT,20.000,1,BR\n",
            "PAY_CODE,PAY_DESC,METHOD,MAX_AMOUNT,POS,BRANCH\n00001,\"CASH, \"\"PHP\"\"\",0,0.000,1,BR\n",
            "00001",
        ),
        Layout::New => (
            "INCODE,ITE_DESC,ECR_DESC,DEP_CODE,UNT_PRIC,UNIT,TAXPRCNT1,TAXAMOUNT1,TAX1DIV,POS,BRANCH,\
             TERM_ID,CATEG_ID,VERNO,FULL\n\
             CHM1,\"CHICKEN, 2PC\",\"CHKN, 2PC\",406,185,ORDER,12,165.1,19.8,,,,MEALS1,0, CHM1\n\
             \"REPP\"\"13\",\"P\"\"IUM MUG\",\"P\"\"IUM MUG\",406,0,PC,12,0,0,,,,PROMO1,0, REPP\n\
             BIG1,\"\"\"BIG\"\" ONE\"\"\",BIG ONE,406,99,PC,12,10.6,9.3,,,,MEALS1,0, BIG1\n",
            "DEP_CODE,DEP_DESC,POS,BRANCH,TERM_ID,CATEG_ID,VERNO,FULL\n\
             MEALS1,\"MEALS, \"\"CHICKEN\"\"\",,,,BETA MEALS,0, MEALS1\nPROMO1,PROMO,,,,BETA,0, P\n",
            "CODE,DESC,TYPE,VALUE,POS,BRANCH,TERM_ID,CATEG_ID,VERNO,FULL\n\
             SC,\"20% SC, DISCOUNT\",SUBTOTAL PERCENT,20,,,, ,0, SC\n",
            "PAY_CODE,PAY_DESC,METHOD,MAX_AMOUNT,POS,BRANCH,TERM_ID,CATEG_ID,VERNO,FULL\n\
             10001,\"CASH, \"\"PHP\"\"\",0,0,,,, ,0, 10001 CASH\n",
            "10001",
        ),
    };
    let payments: Vec<String> = transnos.iter().map(|t| payment(paycode, t)).collect();
    let phones: Vec<String> = transnos
        .iter()
        .map(|t| format!("\"TEMP, 2\",09123456789,\"=\"\"X\"\"\",\"=\"\"{t}\"\"\",1,BR"))
        .collect();
    vec![
        (FileType::Rd5500, rd5500.to_string()),
        (FileType::Rd1800, rd1800.to_string()),
        (FileType::Discount, discount.to_string()),
        (FileType::Rd5800, format!("{}\n", payments.join("\n"))),
        (FileType::Rd5900, rd5900.to_string()),
        (
            FileType::Blpr,
            format!(
                "STORE,PHONE,TRANSNO,ORNO,POS,BRANCH\n{}\n",
                phones.join("\n")
            ),
        ),
    ]
}

fn transnos(layout: Layout) -> [&'static str; 3] {
    match layout {
        Layout::Old => ["00013456", "00013457", "00013458"],
        Layout::New => ["10000000007280", "10000000007281", "10000000007282"],
    }
}

/// rd5000 of the quoting cases: the header, then a sale whose senior name holds a quoted
/// comma, one whose item code holds a doubled quote, one whose senior name starts and ends
/// with a quote.
fn quoted_rd5000(layout: Layout) -> String {
    let [t1, t2, t3] = transnos(layout);
    let mut comma = sale(layout, "CHM1", t1);
    comma[19] = "1234 5678".into();
    comma[20] = "\"DELA CRUZ, JUAN\"".into();
    let doubled = sale(layout, "\"REPP\"\"13\"", t2);
    let mut ends = sale(layout, "BIG1", t3);
    ends[20] = "\"\"\"JR\"\" SANTOS\"\"\"".into();
    format!(
        "{RD5000_HEADER}\n{}\n{}\n{}\n",
        comma.join(","),
        doubled.join(","),
        ends.join(",")
    )
}

/// The quoting cases as one group in `dir`.
fn quoted_group(dir: &Path, layout: Layout) -> Group {
    let rd5000 = quoted_rd5000(layout);
    let mut files = vec![(FileType::Rd5000, rd5000)];
    files.extend(quoted_reference_files(layout, &transnos(layout)));
    let borrowed: Vec<(FileType, &str, &[u8])> = files
        .iter()
        .map(|(t, d)| (*t, "20-00", d.as_bytes()))
        .collect();
    group_of(dir, layout.branch(), &borrowed)
}

fn record_at(sink: &CollectSink, line: u64) -> &Transaction {
    sink.transactions
        .iter()
        .find(|t| t.source_line == line)
        .unwrap_or_else(|| panic!("no record for line {line}"))
}

fn row_at(sink: &CollectSink, line: u64) -> Vec<&str> {
    let i = sink.row_lines.iter().position(|l| *l == line).unwrap();
    sink.rows[i].split(',').collect()
}

#[test]
fn r17_quoted_comma_in_rd5000_keeps_every_typed_field_in_its_column() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let (report, sink) = run(&quoted_group(dir.path(), layout));
        let [t1, ..] = transnos(layout);
        let tx = record_at(&sink, 2);
        let (order_type, vat_div, paycode) = match layout {
            Layout::Old => ("T", "9.333", "00001"),
            Layout::New => ("D", "0.0", "10001"),
        };
        assert_eq!(tx.order_type, order_type, "{layout:?}");
        assert_eq!(tx.vat_flag, "1");
        assert_eq!(tx.vat_div, Some(vat_div.parse().unwrap()));
        assert_eq!(tx.transaction_number, t1);
        assert_eq!(tx.payment_code.as_deref(), Some(paycode));
        assert_eq!(tx.payment_name.as_deref(), Some("CASH, \"PHP\""));
        assert_eq!(tx.phone.as_deref(), Some("09123456789"));
        assert_eq!(tx.product_name.as_deref(), Some("CHICKEN, 2PC"));
        assert_eq!(tx.department_name.as_deref(), Some("MEALS, \"CHICKEN\""));
        if layout == Layout::New {
            assert_eq!(tx.department_code, "MEALS1");
            assert_eq!(tx.discount_name.as_deref(), Some("20% SC, DISCOUNT"));
        }
        // The legacy row keeps legacy's split: from SRNAME on, every column moves one place.
        let row = row_at(&sink, 2);
        assert_eq!(
            row[11], " JUAN\"",
            "{layout:?}: TYPE CODE gets the rest of the name"
        );
        assert_eq!(
            row[17],
            if layout == Layout::Old {
                "346.429"
            } else {
                "0.0"
            }
        );
        assert_eq!(report.typed.quoted_lines, 3);
        assert_eq!(report.typed.records, 3);
        assert_eq!(report.rows, 3);
    }
}

#[test]
fn r17_typed_names_and_codes_are_unquoted_and_still_found() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let (_, sink) = run(&quoted_group(dir.path(), layout));
        // Doubled quotes in the item code, on both sides: legacy found the name by the raw
        // text, the typed lookup finds it by the unquoted text.
        let tx = record_at(&sink, 3);
        assert_eq!(tx.product_code, "REPP\"13", "{layout:?}");
        assert_eq!(tx.product_name.as_deref(), Some("P\"IUM MUG"));
        let row = row_at(&sink, 3);
        assert_eq!(row[2], "\"REPP\"\"13\"");
        assert_eq!(row[18], "\"\"P\"\"IUM MUG\"\"", "legacy wraps the raw name");
        // Quotes at both ends of a name.
        let tx = record_at(&sink, 4);
        assert_eq!(tx.product_name.as_deref(), Some("\"BIG\" ONE\""));
        assert_eq!(tx.department_name.as_deref(), Some("MEALS, \"CHICKEN\""));
        assert_eq!(tx.payment_name.as_deref(), Some("CASH, \"PHP\""));
        let row = row_at(&sink, 4);
        assert_eq!(row[18], "\"\"\"\"BIG\"\" ONE\"\"\"\"");
    }
}

#[test]
fn r17_the_legacy_rows_do_not_depend_on_the_typed_pass() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let group = quoted_group(dir.path(), layout);
        let (_, typed) = run(&group);
        let mut legacy_only = CallLog::default();
        combine_group(&group, &CombineOptions::default(), &mut legacy_only).unwrap();
        let rows: Vec<String> = typed.rows.iter().map(|r| format!("row {r}")).collect();
        assert_eq!(rows, legacy_only.calls, "{layout:?}");
    }
}

#[test]
fn r17_lines_whose_fields_do_not_fit_are_rejected_with_a_monitor_note() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let [t1, t2, t3] = transnos(layout);
        let good = sale(layout, "CHM1", t1).join(",");
        // An unquoted comma in the senior name: 41 fields, legacy keeps its (shifted) row.
        let mut unquoted = sale(layout, "CHM1", t2);
        unquoted[20] = "DELA CRUZ, JUAN".into();
        // Quoted properly but one field short.
        let mut short = sale(layout, "CHM1", t3);
        short[20] = "\"DELA CRUZ, JUAN\"".into();
        short.pop();
        // A quote that is never closed.
        let mut open = sale(layout, "CHM1", t3);
        open[20] = "\"DELA CRUZ, JUAN".into();
        let data = format!(
            "{RD5000_HEADER}\n{good}\n{}\n{}\n{}\n",
            unquoted.join(","),
            short.join(","),
            open.join(",")
        );
        let group = group_of(
            dir.path(),
            layout.branch(),
            &[(FileType::Rd5000, "20-00", data.as_bytes())],
        );
        let (report, sink) = run(&group);
        assert_eq!(sink.transactions.len(), 1, "{layout:?}");
        assert_eq!(sink.transactions[0].source_line, 2);
        assert_eq!(report.rows, 4, "legacy keeps its rows");
        let typed = &report.typed;
        assert_eq!(typed.rejected[&RejectReason::FieldCount], 2);
        assert_eq!(typed.rejected[&RejectReason::UnclosedQuote], 1);
        assert_eq!(typed.header_lines, 1);
        assert!(!typed.rejected.contains_key(&RejectReason::HeaderLine));
        assert_eq!(typed.layout_rejected(), 3);
        assert_eq!(
            typed.records + typed.monitor_rows + typed.rejected_total() + typed.header_lines,
            report.lines
        );
        let lines: Vec<(u64, RejectReason, Option<usize>)> = typed
            .layout_lines
            .iter()
            .map(|l| (l.line, l.reason, l.fields))
            .collect();
        assert_eq!(
            lines,
            [
                (5, RejectReason::UnclosedQuote, None),
                (4, RejectReason::FieldCount, Some(39)),
                (3, RejectReason::FieldCount, Some(41)),
            ]
        );
        let note = report.layout_note().unwrap();
        let file = name(layout.branch(), FileType::Rd5000, "20-00");
        assert_eq!(
            note,
            format!(
                "rd5000 {file} line 3: field count does not fit the rd5000 layout (41 fields, \
                 the layout has 40); 3 line(s) without a typed record for their field count"
            )
        );
        assert!(
            report
                .to_string()
                .contains("field count does not fit the rd5000 layout: 2")
        );
    }
}

#[test]
fn r17_a_day_without_misfits_has_no_layout_note() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = run(&quoted_group(dir.path(), Layout::Old));
    assert_eq!(report.layout_note(), None);
    assert_eq!(report.typed.layout_rejected(), 0);
}

#[test]
fn r17_a_quoted_line_is_judged_on_its_real_columns() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let [t1, t2, _] = transnos(layout);
        // A comma inside the quoted item code: legacy reads DEP_CODE as DATE and TIME from
        // DATE, so the line has no legacy row; its real DATE and TIME are fine.
        let item = sale(layout, "\"SPECIAL, 2\"", t1).join(",");
        // The reverse: legacy's shifted DATE (DEP_CODE) and TIME (DATE) pass, the real TIME
        // does not.
        let mut bad_time = sale(layout, "\"X, Y\"", t2);
        bad_time[11] = DATE.into();
        bad_time[13] = "9:30".into();
        let data = format!("{item}\n{}\n", bad_time.join(","));
        let group = group_of(
            dir.path(),
            layout.branch(),
            &[(FileType::Rd5000, "20-00", data.as_bytes())],
        );
        let (report, sink) = run(&group);
        assert_eq!(sink.transactions.len(), 1, "{layout:?}");
        let tx = &sink.transactions[0];
        assert_eq!(
            (tx.source_line, tx.product_code.as_str()),
            (1, "SPECIAL, 2")
        );
        assert_eq!(tx.date.to_string(), DATE);
        assert_eq!(report.typed.rejected[&RejectReason::HourNotANumber], 1);
        assert_eq!(sink.row_lines, [2], "legacy keeps only the second line");
        assert_eq!(report.monitor_rows, 1);
    }
}

/// What joining typed records to legacy rows found: how often each documented rule
/// explained a difference, and the differences no rule explains.
#[derive(Debug, Default)]
struct Joined {
    rules: BTreeMap<&'static str, u64>,
    unexplained: Vec<String>,
    pairs: u64,
}

/// A legacy field as the value it stands for: without the Excel wrapper `"=""…"""` or the
/// name quotes `"…"`.
fn legacy_value(field: &str) -> &str {
    if let Some(inner) = field
        .strip_prefix("\"=\"\"")
        .and_then(|f| f.strip_suffix("\"\"\""))
    {
        return inner;
    }
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// The typed value shown in legacy column `k`, as text (`""` for `None`).
fn typed_value(tx: &Transaction, k: usize) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let dec = |v: &Option<rust_decimal::Decimal>| v.map(|d| d.to_string()).unwrap_or_default();
    match k {
        0 => tx.pos.to_string(),
        1 => tx.or_number.clone(),
        2 => tx.product_code.clone(),
        3 => dec(&tx.quantity),
        4 => dec(&tx.unit_price),
        5 => dec(&tx.amount),
        6 => dec(&tx.discount),
        7 => tx.department_code.clone(),
        8 => tx.date.to_string(),
        9 => tx.time.clone(),
        10 => tx.discount_code.clone(),
        11 => tx.order_type.clone(),
        12 => tx.vat_flag.clone(),
        13 => dec(&tx.vat_div),
        14 => dec(&tx.vat_amount),
        15 => dec(&tx.vat_discount),
        16 => dec(&tx.vat_price),
        17 => tx.transaction_number.clone(),
        18 => text(&tx.product_name),
        19 => text(&tx.department_name),
        20 => text(&tx.discount_name),
        21 => text(&tx.order_type_name),
        22 => tx.daypart.label().to_string(),
        23 => text(&tx.payment_code),
        24 => text(&tx.payment_name),
        25 => text(&tx.phone),
        _ => tx.branch.clone(),
    }
}

/// Money and quantity columns of the legacy row.
const NUMBER_COLUMNS: [usize; 8] = [3, 4, 5, 6, 13, 14, 15, 16];

/// The rule that explains a difference in column `k` between a legacy field and a typed
/// value, or `None`. `line` is the rd5000 line; `quoted_files` the reference files that hold
/// a quote.
fn explain(
    k: usize,
    legacy: &str,
    typed: &str,
    line: &str,
    quoted_files: &BTreeSet<FileType>,
) -> Option<&'static str> {
    let value = legacy_value(legacy);
    if line.contains('"') {
        // The line itself was read with real quoting: the typed value must be the real field.
        let real = quoted::split(line).ok()?;
        if (1..=17).contains(&k) && k != 7 {
            let field = real.get(legacy::SELECTED[k])?.as_ref();
            let same = match k {
                8 => field.split(' ').next() == Some(typed),
                _ if NUMBER_COLUMNS.contains(&k) => {
                    typed::parse_decimal(field) == typed::parse_decimal(typed)
                }
                _ => field == typed,
            };
            if !same {
                return None;
            }
        }
        return Some(if real.len() == line.split(',').count() {
            "unquoted-text"
        } else {
            "real-columns"
        });
    }
    if NUMBER_COLUMNS.contains(&k) {
        return match (typed::parse_decimal(value), typed.parse().ok()) {
            (typed::Number::Value(a), Some(b)) if a == b => Some("numbers"),
            (typed::Number::Invalid, None) => Some("numbers"),
            _ => None,
        };
    }
    // Values from a reference file read with real quoting.
    let source = match k {
        7 | 18 => Some(FileType::Rd5500),
        19 => Some(FileType::Rd1800),
        20 => Some(FileType::Discount),
        23 => Some(FileType::Rd5800),
        24 => Some(FileType::Rd5900),
        25 => Some(FileType::Blpr),
        _ => None,
    };
    if let Some(file) = source {
        let file_quoted = quoted_files.contains(&file)
            || (k == 19 && quoted_files.contains(&FileType::Rd5500))
            || (k == 24 && quoted_files.contains(&FileType::Rd5800));
        if file_quoted && value.contains('"') {
            let unquoted = quoted::split(value).ok().filter(|f| f.len() == 1);
            if unquoted.is_some_and(|f| f[0] == typed) {
                return Some("unquoted-text");
            }
        }
        if file_quoted {
            return Some("real-columns");
        }
    }
    // Lookups by the raw code, which legacy escaped.
    let fields: Vec<&str> = line.split(',').collect();
    let raw = |column: usize| fields.get(column).copied().unwrap_or_default();
    let escaped = |column: usize| legacy::needs_escape(column, raw(column));
    match k {
        18 | 19 | 7 if value.is_empty() || k == 7 => escaped(4).then_some("raw-code-lookup"),
        20 if value.is_empty() => escaped(18).then_some("raw-code-lookup"),
        _ => None,
    }
}

/// Joins the records of one combined group to its legacy rows by rd5000 line.
fn join_group(group: &Group, report: &GroupReport, sink: &CollectSink, joined: &mut Joined) {
    let Some(rd5000) = report
        .files
        .iter()
        .find(|f| f.file_type == FileType::Rd5000)
    else {
        return;
    };
    let data = std::fs::read(&rd5000.path).unwrap();
    let lines: Vec<String> = lines::Lines::new(&data)
        .map(|l| lines::decode(l).0.into_owned())
        .collect();
    let quoted_files: BTreeSet<FileType> = report
        .files
        .iter()
        .filter(|f| f.file_type != FileType::Rd5000)
        .filter(|f| std::fs::read(&f.path).unwrap().contains(&b'"'))
        .map(|f| f.file_type)
        .collect();
    let rows: BTreeMap<u64, &String> = sink.row_lines.iter().copied().zip(&sink.rows).collect();
    let records: BTreeMap<u64, &Transaction> = sink
        .transactions
        .iter()
        .map(|t| (t.source_line, t))
        .collect();
    let numbers: BTreeSet<u64> = rows.keys().chain(records.keys()).copied().collect();
    let mut note = |rule: Option<&'static str>, what: String| match rule {
        Some(rule) => *joined.rules.entry(rule).or_default() += 1,
        None => joined.unexplained.push(format!("{} {what}", group.key)),
    };
    for n in numbers {
        let line = lines[(n - 1) as usize].as_str();
        let (row, tx) = match (rows.get(&n), records.get(&n)) {
            (Some(row), Some(tx)) => (row, tx),
            (row, _) => {
                // A row without a record or a record without a row.
                let rule = if line.contains('"') {
                    Some("own-verdict")
                } else if line.split(',').count() != RD5000_FIELDS {
                    Some("field-count")
                } else {
                    None
                };
                let which = if row.is_some() { "record" } else { "row" };
                note(rule, format!("line {n}: no {which}"));
                continue;
            }
        };
        joined.pairs += 1;
        let fields: Vec<&str> = row.split(',').collect();
        if fields.len() != 27 {
            note(
                line.contains('"').then_some("real-columns"),
                format!("line {n}: legacy row has {} fields", fields.len()),
            );
            continue;
        }
        for (k, legacy) in fields.iter().enumerate() {
            let typed = typed_value(tx, k);
            if legacy_value(legacy) == typed {
                continue;
            }
            let rule = explain(k, legacy, &typed, line, &quoted_files);
            note(
                rule,
                format!("line {n} column {k}: legacy {legacy:?}, typed {typed:?}"),
            );
        }
    }
}

/// Combines every group of `paths` and joins records to rows.
fn join_paths<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Joined {
    let set = FileSet::from_paths(paths);
    let mut joined = Joined::default();
    for group in &set.groups {
        let (report, sink) = run(group);
        join_group(group, &report, &sink, &mut joined);
    }
    joined
}

/// Every rule the join names is one of the documented deliberate differences.
fn assert_documented(joined: &Joined) {
    let docs = include_str!("mod.rs");
    for rule in joined.rules.keys() {
        assert!(
            docs.contains(&format!("//! - **`{rule}`**")),
            "rule {rule} is not in the module doc's deliberate differences"
        );
    }
}

/// The typed records of the shared samples differ from the legacy rows only where a
/// documented rule says so.
#[test]
fn typed_records_join_legacy_rows() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-samples/input");
    let paths: Vec<_> = std::fs::read_dir(&input)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let joined = join_paths(paths);
    assert_eq!(joined.pairs, 7452);
    assert!(
        joined.unexplained.is_empty(),
        "undocumented differences:\n{}",
        joined.unexplained.join("\n")
    );
    assert_documented(&joined);
    // The four OLA rows of rd5500's `"EXT""E PLATTER"`.
    assert_eq!(
        joined.rules.get("unquoted-text"),
        Some(&4),
        "{:?}",
        joined.rules
    );
}

/// The quoting cases, in both layouts, are explained by the documented rules too.
#[test]
fn r17_quoting_cases_join_legacy_rows_by_documented_rules() {
    for layout in [Layout::Old, Layout::New] {
        let dir = tempfile::tempdir().unwrap();
        let group = quoted_group(dir.path(), layout);
        let paths: Vec<_> = group
            .files
            .values()
            .flatten()
            .map(|f| f.path.clone())
            .collect();
        let joined = join_paths(paths);
        assert!(
            joined.unexplained.is_empty(),
            "{layout:?}: {:#?}",
            joined.unexplained
        );
        assert_documented(&joined);
        assert!(
            joined.rules.contains_key("real-columns"),
            "{:?}",
            joined.rules
        );
        assert!(
            joined.rules.contains_key("unquoted-text"),
            "{:?}",
            joined.rules
        );
    }
}

/// The join does find a difference no rule explains.
#[test]
fn the_join_fails_on_an_undocumented_difference() {
    let dir = tempfile::tempdir().unwrap();
    let data = rd5000_line("CHM1", "12:00", DATE, "00000001");
    let group = group_of(
        dir.path(),
        "BR",
        &[(FileType::Rd5000, "20-00", data.as_bytes())],
    );
    let (report, mut sink) = run(&group);
    let mut joined = Joined::default();
    join_group(&group, &report, &sink, &mut joined);
    assert!(joined.unexplained.is_empty(), "{:?}", joined.unexplained);
    sink.transactions[0].amount = Some("1.5".parse().unwrap());
    sink.transactions[0].order_type = "D".into();
    let mut joined = Joined::default();
    join_group(&group, &report, &sink, &mut joined);
    assert_eq!(joined.unexplained.len(), 2, "{:?}", joined.unexplained);
    assert!(joined.unexplained[0].contains("column 5"));
}

/// The files at `paths` with their names parsed once, as the worker hands them over.
fn day_files(paths: &[std::path::PathBuf]) -> Vec<DayFile> {
    paths
        .iter()
        .filter_map(|path| {
            let file_name = path.file_name()?.to_str()?.to_string();
            let name = ExportName::parse(&file_name, LEGACY_NAMES).ok()?;
            Some(DayFile {
                path: path.clone(),
                file_name,
                name,
            })
        })
        .collect()
}

#[test]
fn one_days_files_make_the_report_and_rows_combining_by_paths_makes() {
    let dir = tempfile::tempdir().unwrap();
    let paths = several_groups(dir.path());
    let b3: Vec<_> = paths
        .iter()
        .filter(|p| p.to_string_lossy().contains("_B3_"))
        .cloned()
        .collect();
    // A file of no combinable type is left out by both entry points.
    let other = dir.path().join(format!("a_B3_1_zz9_{DATE}_20-00_.csv"));
    std::fs::write(&other, "x\n").unwrap();
    let mut with_other = b3.clone();
    with_other.push(other);

    let mut by_paths = CollectSink::default();
    let mut report = combine_paths(&with_other, &CombineOptions::default(), &mut by_paths).unwrap();
    assert_eq!(report.groups.len(), 1);
    let mut by_day = CollectSink::default();
    let day = combine_day(
        day_files(&with_other),
        &CombineOptions::default(),
        &mut by_day,
    )
    .unwrap()
    .expect("a day");
    assert_eq!(day, report.groups.remove(0));
    assert!(day.rows > 0);
    assert_eq!(by_day, by_paths);
}

#[test]
fn files_of_several_days_or_of_none_are_not_one_days_report() {
    let dir = tempfile::tempdir().unwrap();
    let paths = several_groups(dir.path());
    let err = combine_day(
        day_files(&paths),
        &CombineOptions::default(),
        CollectSink::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CombineError::NotOneDay { groups } if groups.len() == 5),
        "{err}"
    );
    assert!(!err.is_transient());
    let none = combine_day(
        Vec::new(),
        &CombineOptions::default(),
        CollectSink::default(),
    );
    assert!(matches!(none, Ok(None)));
}

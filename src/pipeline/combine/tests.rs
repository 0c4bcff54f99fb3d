//! Group-level tests of the combine pass: real files in a scratch directory, a collecting sink.

use std::path::Path;

use proptest::prelude::*;

use super::*;
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
fn rows_come_out_bottom_to_top_and_the_header_is_rejected() {
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
    assert_eq!(report.rejected[&RejectReason::HeaderLine], 1);
    assert_eq!(report.rejected_lines[0].line, 1);
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
        report.rows + report.monitor_rows + report.rejected_total(),
        report.lines
    );
    assert_eq!(sink.rows.len() as u64, report.rows);
    assert_eq!(sink.transactions.len() as u64, report.rows);
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

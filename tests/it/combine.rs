//! `fetch-worker combine` run as a process on the legacy samples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};

const BIN: &str = env!("CARGO_BIN_EXE_fetch-worker");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-samples")
}

fn combine(args: &[&str]) -> Result<Output> {
    let output = Command::new(BIN)
        .arg("combine")
        .args(args)
        .env_remove("NEW_BRANCHES")
        .output()
        .context("running fetch-worker")?;
    Ok(output)
}

fn combine_ok(args: &[&str]) -> Result<Output> {
    let output = combine(args)?;
    ensure!(
        output.status.success(),
        "fetch-worker combine failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Names the first differing line instead of dumping two 1.4 MB files.
fn assert_same_bytes(got: &[u8], expected: &[u8]) {
    if got == expected {
        return;
    }
    let got_lines: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    let expected_lines: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    for (i, (g, e)) in got_lines.iter().zip(&expected_lines).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(e),
            "line {} differs",
            i + 1
        );
    }
    panic!(
        "outputs differ in length: {} lines vs {} expected",
        got_lines.len(),
        expected_lines.len()
    );
}

/// The native combiner writes exactly the bytes the legacy Python combiner wrote.
#[test]
fn legacy_csv_is_byte_identical_to_the_legacy_combiner() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("record.csv");
    let input = fixtures().join("input");
    let output = combine_ok(&[
        input.to_str().context("path")?,
        "--out",
        out.to_str().context("path")?,
    ])?;
    let expected = std::fs::read(fixtures().join("expected.csv"))?;
    assert_same_bytes(&std::fs::read(&out)?, &expected);

    let summary = String::from_utf8(output.stderr)?;
    assert!(
        summary.contains(
            "combined 17 groups: 7452 rows, 0 monitor rows, 17 header lines, 0 lines rejected"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("fetch_list2.php: not a .csv file"),
        "{summary}"
    );
    Ok(())
}

/// Without `--out` the rows go to standard output, and the legacy newBranches.txt file
/// gives the same result as the built-in default.
#[test]
fn legacy_csv_to_stdout_with_the_new_branches_file() -> Result<()> {
    let input = fixtures().join("input");
    let new_branches = fixtures().join("newBranches.txt");
    let output = combine_ok(&[
        input.to_str().context("path")?,
        "--new-branches",
        new_branches.to_str().context("path")?,
    ])?;
    let expected = std::fs::read(fixtures().join("expected.csv"))?;
    assert_same_bytes(&output.stdout, &expected);
    Ok(())
}

/// Leaving BETA out of the new branches changes its rows (departments are no longer taken
/// from rd5500), which shows the flag is honoured.
#[test]
fn new_branches_list_changes_the_department_rule() -> Result<()> {
    let input = fixtures().join("input");
    let output = combine_ok(&[
        input.to_str().context("path")?,
        "--new-branches",
        "BPAG,BTAB",
    ])?;
    let text = String::from_utf8(output.stdout)?;
    let beta: Vec<&str> = text.lines().filter(|l| l.ends_with(",BETA")).collect();
    assert_eq!(beta.len(), 65);
    assert!(
        beta.iter()
            .all(|l| l.split(',').nth(7) == Some("\"=\"\"\"\"\""))
    );
    Ok(())
}

/// JSON lines: one typed record per legacy row, with unique row keys and exact decimals.
#[test]
fn jsonl_has_one_record_per_legacy_row() -> Result<()> {
    let input = fixtures().join("input");
    let output = combine_ok(&[input.to_str().context("path")?, "--format", "jsonl"])?;
    let text = String::from_utf8(output.stdout)?;
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 7452);
    let keys: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|r| r["rowKey"].as_str())
        .collect();
    assert_eq!(keys.len(), 7452);
    let first = &records[0];
    assert_eq!(first["branch"], "AYALA-FRN");
    assert_eq!(first["pos"], 1);
    assert_eq!(first["date"], "2025-10-08");
    assert_eq!(first["quantity"], "1.000");
    assert_eq!(first["orNumber"], "00013662");
    assert_eq!(first["departmentCode"], "16");
    Ok(())
}

/// A row dated after its file's date is left out and named in the monitor CSV, once per
/// group, with CRLF line ends as Python's csv writer wrote them.
#[test]
fn date_mismatches_go_to_the_monitor_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let row = |date: &str, time: &str| {
        let mut f = vec![""; 40];
        f[0] = "1";
        f[4] = "X";
        f[12] = date;
        f[13] = time;
        f.join(",")
    };
    std::fs::write(
        input.join("a_CNTRO_1_rd5000_2026-02-09_23-59_.csv"),
        format!(
            "{}\n{}\n{}\n",
            row("2026-02-09 00:00:00", "23:50"),
            row("2026-02-10 00:00:00", "00:05"),
            row("2026-02-10 00:00:00", "00:15")
        ),
    )?;
    let monitor = dir.path().join("monitor.csv");
    let output = combine_ok(&[
        input.to_str().context("path")?,
        "--monitor",
        monitor.to_str().context("path")?,
    ])?;
    let text = String::from_utf8(output.stdout)?;
    assert_eq!(text.lines().count(), 2, "header and one row");
    assert_eq!(
        std::fs::read_to_string(&monitor)?,
        "pos,branch,date\r\n1,CNTRO,2026-02-09\r\n"
    );
    Ok(())
}

/// A missing input directory is a clear error with exit code 2, not a panic.
#[test]
fn a_missing_directory_is_reported() -> Result<()> {
    let output = combine(&["/nonexistent/fetch-worker-combine"])?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("listing /nonexistent/fetch-worker-combine"),
        "{stderr}"
    );
    Ok(())
}

/// A failed run leaves nothing behind under `--out` (issue 15: `--out x.csv /nonexistent` left a
/// header-only file), and a file already there is not clobbered by the failed run.
#[test]
fn a_failed_combine_leaves_no_output_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("x.csv");
    let missing = dir.path().join("nonexistent");
    let output = combine(&["--out", out.to_str().unwrap(), missing.to_str().unwrap()])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert!(!out.exists(), "no output file after a failed run");
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "no partial file either"
    );

    // A run that fails part-way (an unreadable file in the folder) keeps the earlier output.
    std::fs::write(&out, "earlier result\n")?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    std::fs::create_dir(input.join("a_BMC_1_rd5000_2026-02-09_20-00_.csv"))?;
    let output = combine(&["--out", out.to_str().unwrap(), input.to_str().unwrap()])?;
    if !output.status.success() {
        assert_eq!(std::fs::read_to_string(&out)?, "earlier result\n");
        assert!(!dir.path().join(".x.csv.partial").exists());
    }
    Ok(())
}

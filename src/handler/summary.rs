//! What a job returns: one [`DaySummary`], serialized into the job's `returnvalue`. Node
//! producers, Bull Board and the tests read these field names, so they are spelled once, here.

use serde::Serialize;

/// Where a job's files came from, as its return value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Listed and downloaded from the POS server (a fetch).
    Pos,
    /// Read back from raw storage (a reprocess).
    Storage,
}

/// The return value of a completed job: the day, the files it used, the row counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaySummary {
    /// The day's branch code, as the job named it.
    pub branch: String,
    /// The day's POS number.
    pub pos: u8,
    /// The business date, `YYYY-MM-DD`.
    pub date: String,
    /// Every stored file of the day, in download (or record) order.
    pub files: Vec<FileSummary>,
    /// What became of the day's transaction rows.
    pub rows: RowCounts,
    /// `"no files"` when the listing was empty once the export was due; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// `pos` for a fetch, `storage` for a reprocess.
    pub source: Source,
    /// How long the attempt took, in ms.
    pub duration_ms: u64,
}

/// One stored file in a [`DaySummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The export file name.
    pub name: String,
    /// Its export type as the name spells it (`rd5000`, `blpr`…).
    #[serde(rename = "type")]
    pub file_type: String,
    /// Rows read from it (typed records for rd5000, lookup lines for the others); 0 when the
    /// combine pass did not use it (another upload of the same type won).
    pub rows: u64,
    /// The SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// Row counts of a [`DaySummary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowCounts {
    /// Transaction rows read, date mismatches included.
    pub parsed: u64,
    /// Rows written to MongoDB.
    pub imported: u64,
    /// Lines rejected (bad fields, bad layout).
    pub rejected: u64,
    /// Rows whose date is not the day's (left out, noted in a monitor entry).
    pub date_mismatch: u64,
}

impl DaySummary {
    /// The summary as the job's return value.
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The return value keeps exactly the JSON the hand-written `json!` produced before
    /// (issue 13): Node and the tests read these names.
    #[test]
    fn the_return_value_has_the_fields_node_reads() {
        let summary = DaySummary {
            branch: "BMC".into(),
            pos: 1,
            date: "2026-02-09".into(),
            files: vec![FileSummary {
                name: "a_BMC_1_rd5000_2026-02-09_20-00_.csv".into(),
                file_type: "rd5000".into(),
                rows: 12,
                sha256: "ab".into(),
            }],
            rows: RowCounts {
                parsed: 13,
                imported: 12,
                rejected: 2,
                date_mismatch: 1,
            },
            note: None,
            source: Source::Storage,
            duration_ms: 7,
        };
        assert_eq!(
            summary.to_value(),
            json!({
                "branch": "BMC", "pos": 1, "date": "2026-02-09",
                "files": [{"name": "a_BMC_1_rd5000_2026-02-09_20-00_.csv", "type": "rd5000",
                    "rows": 12, "sha256": "ab"}],
                "rows": {"parsed": 13, "imported": 12, "rejected": 2, "dateMismatch": 1},
                "source": "storage",
                "durationMs": 7,
            })
        );
        let empty = DaySummary {
            files: Vec::new(),
            rows: RowCounts::default(),
            note: Some("no files"),
            source: Source::Pos,
            ..summary
        };
        assert_eq!(
            empty.to_value(),
            json!({
                "branch": "BMC", "pos": 1, "date": "2026-02-09",
                "files": [], "rows": {"parsed": 0, "imported": 0, "rejected": 0, "dateMismatch": 0},
                "note": "no files", "source": "pos",
                "durationMs": 7,
            })
        );
    }
}

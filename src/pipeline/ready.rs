//! When a POS day's export can be on the server.
//!
//! Terminals upload a business day's files when the branch closes, so an empty listing for a
//! day that has not closed yet means "not yet", not "no sales". The rule: the export of day
//! `D` is expected from `D 00:00 + hour` hours, in the POS's local time (`utc_offset`). With the
//! default (24 hours, UTC+08:00) the files of 9 February are expected from 10 February 00:00
//! in Manila. A close after midnight is `hour` above 24 (26 = 02:00 the next day).

use chrono::{FixedOffset, NaiveDate, TimeZone};

/// The default `hour`: midnight after the business day.
pub const DEFAULT_READY_HOUR: u32 = 24;

/// The default POS time zone: the branches' (UTC+08:00).
pub const DEFAULT_UTC_OFFSET_SECONDS: i32 = 8 * 3600;

/// How far ahead of its ready time a day may be asked for before the job is refused: a date
/// further in the future is a mistake, not an early request.
const MAX_WAIT_MS: i64 = 48 * 3600 * 1000;

/// When exports become available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyRule {
    /// Hours after the business day's local midnight (0-48).
    pub hour: u32,
    /// The POS's time zone.
    pub utc_offset: FixedOffset,
}

impl Default for ReadyRule {
    fn default() -> Self {
        ReadyRule {
            hour: DEFAULT_READY_HOUR,
            utc_offset: FixedOffset::east_opt(DEFAULT_UTC_OFFSET_SECONDS)
                .expect("+08:00 is a valid offset"),
        }
    }
}

/// What an empty listing means for a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The day's export should be there: an empty listing means no files.
    Due,
    /// Not yet: try again at this time (ms since the Unix epoch).
    NotYet {
        /// When the export is expected.
        ready_at_ms: i64,
    },
    /// The date is so far ahead that its export cannot exist for days.
    Future {
        /// When the export is expected.
        ready_at_ms: i64,
    },
}

impl ReadyRule {
    /// When `date`'s export is expected, in ms since the Unix epoch.
    pub fn ready_at_ms(&self, date: NaiveDate) -> i64 {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        let local = self
            .utc_offset
            .from_local_datetime(&midnight)
            .single()
            .expect("a fixed offset has one local time");
        local.timestamp_millis() + i64::from(self.hour) * 3_600_000
    }

    /// What an empty listing of `date` means at `now_ms`.
    pub fn readiness(&self, date: NaiveDate, now_ms: i64) -> Readiness {
        let ready_at_ms = self.ready_at_ms(date);
        if now_ms >= ready_at_ms {
            Readiness::Due
        } else if ready_at_ms - now_ms > MAX_WAIT_MS {
            Readiness::Future { ready_at_ms }
        } else {
            Readiness::NotYet { ready_at_ms }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_day_is_due_at_local_midnight_after_it_by_default() {
        let rule = ReadyRule::default();
        // 2026-02-10 00:00 +08:00 = 2026-02-09 16:00 UTC.
        let ready = rule.ready_at_ms(date("2026-02-09"));
        assert_eq!(ready, 1_770_652_800_000);
        assert_eq!(
            rule.readiness(date("2026-02-09"), ready - 1),
            Readiness::NotYet { ready_at_ms: ready }
        );
        assert_eq!(rule.readiness(date("2026-02-09"), ready), Readiness::Due);
        assert_eq!(rule.readiness(date("2026-02-01"), ready), Readiness::Due);
    }

    #[test]
    fn a_close_after_midnight_and_other_zones() {
        let rule = ReadyRule {
            hour: 26,
            utc_offset: FixedOffset::east_opt(0).unwrap(),
        };
        assert_eq!(
            rule.ready_at_ms(date("2026-02-09")),
            1_770_595_200_000 + 26 * 3_600_000
        );
    }

    #[test]
    fn far_future_dates_are_refused() {
        let rule = ReadyRule::default();
        let now = rule.ready_at_ms(date("2026-02-09"));
        assert_eq!(
            rule.readiness(date("2026-02-10"), now),
            Readiness::NotYet {
                ready_at_ms: now + 86_400_000
            }
        );
        assert!(matches!(
            rule.readiness(date("2026-02-12"), now),
            Readiness::Future { .. }
        ));
    }
}

//! Reading wal2json's `"timestamp"` (the commit time) back into a [`PgTimestamp`].
//!
//! wal2json prints it with PostgreSQL's `timestamptz_to_str`, which always uses the ISO
//! style whatever DateStyle says, in the walsender's TimeZone:
//! `2024-01-02 03:04:05.123456+00`, the fraction without trailing zeros (or absent), the
//! offset as `+hh`, `+hh:mm` or `+hh:mm:ss`, years of more than four digits as they are
//! and years before 1 AD as `0044-03-15 ... BC`. Anything else is rejected rather than
//! guessed.

use ferry_core::PgTimestamp;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// The instant `text` names, or `None` if it is not in the form above.
pub(super) fn parse(text: &str) -> Option<PgTimestamp> {
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.number(1, 9)?;
    cursor.expect(b'-')?;
    let month = cursor.number(2, 2)?;
    cursor.expect(b'-')?;
    let day = cursor.number(2, 2)?;
    cursor.expect(b' ')?;
    let hour = cursor.number(2, 2)?;
    cursor.expect(b':')?;
    let minute = cursor.number(2, 2)?;
    cursor.expect(b':')?;
    let second = cursor.number(2, 2)?;
    let mut micros = 0;
    if cursor.eat(b'.') {
        let start = cursor.0.len();
        let fraction = cursor.number(1, 6)?;
        let digits = start - cursor.0.len();
        micros = fraction * 10_i64.checked_pow(u32::try_from(6 - digits).ok()?)?;
    }
    let sign = if cursor.eat(b'+') {
        1
    } else if cursor.eat(b'-') {
        -1
    } else {
        return None;
    };
    let mut offset = cursor.number(2, 2)? * 3600;
    if cursor.eat(b':') {
        offset += cursor.number(2, 2)? * 60;
        if cursor.eat(b':') {
            offset += cursor.number(2, 2)?;
        }
    }
    let before_christ = cursor.0 == b" BC";
    if !before_christ && !cursor.0.is_empty() {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || year == 0
    {
        return None;
    }
    // 1 BC is astronomical year 0.
    let year = if before_christ { 1 - year } else { year };
    let days = days_from_civil(year, month, day)?.checked_sub(PG_EPOCH_DAYS)?;
    let seconds = days
        .checked_mul(SECONDS_PER_DAY)?
        .checked_add(hour * 3600 + minute * 60 + second)?
        .checked_sub(sign * offset)?;
    let micros = seconds
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(micros)?;
    Some(PgTimestamp(micros))
}

/// Days from 1970-01-01 to `year-month-day` of the proleptic Gregorian calendar
/// (astronomical years: 0 is 1 BC), by the era arithmetic of Howard Hinnant's
/// "chrono-compatible low-level date algorithms".
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.checked_mul(146_097)?
        .checked_add(day_of_era)?
        .checked_sub(719_468)
}

/// The unread rest of the text.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// A run of `min..=max` ASCII digits.
    fn number(&mut self, min: usize, max: usize) -> Option<i64> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if len < min || len > max {
            return None;
        }
        let (digits, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.0.split_first() {
            Some((&first, rest)) if first == byte => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_read_back_exactly() {
        let cases = [
            ("2000-01-01 00:00:00+00", 0),
            ("2000-01-01 01:00:00+01", 0),
            ("1999-12-31 19:30:00-04:30", 0),
            ("2000-01-01 00:00:00+00:00:01", -MICROS_PER_SECOND),
            ("1999-12-31 23:59:59.999999+00", -1),
            ("2000-01-01 00:00:00.5+00", 500_000),
            (
                "2000-03-01 00:00:00+00",
                60 * SECONDS_PER_DAY * MICROS_PER_SECOND,
            ),
            ("2026-11-25 00:52:05.370523+00", 848_883_125_370_523),
            (
                "0001-01-01 00:00:00+00 BC",
                -730_485 * SECONDS_PER_DAY * MICROS_PER_SECOND,
            ),
        ];
        for (text, micros) in cases {
            assert_eq!(parse(text), Some(PgTimestamp(micros)), "{text}");
        }
    }

    #[test]
    fn other_forms_are_rejected() {
        for text in [
            "",
            "infinity",
            "2024-01-02T03:04:05+00",
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.1234567+00",
            "2024-13-02 03:04:05+00",
            "2024-01-02 03:04:05+00 AD",
            "0000-01-01 00:00:00+00",
            "999999999-01-01 00:00:00+00",
            "2024-1-02 03:04:05+00",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}

//! Relative date literals (`TODAY`, `LAST_N_DAYS:7`, `THIS_QUARTER`, ...) as half-open day ranges
//! `[start, end)` on the emulator clock, in UTC (the integration user's time zone is GMT), weeks
//! starting on Sunday (en_US) and calendar quarters (the default fiscal year).

use crate::clock::{date_of, epoch_day};
use time::{Date, Month};

/// Day number of the first of `month` in `year`, saturating at the `time` crate's range (years
/// ±9999) for absurd `N`s.
fn first_of(year: i64, month: Month) -> i64 {
    let date = i32::try_from(year).ok().and_then(|y| Date::from_calendar_date(y, month, 1).ok());
    epoch_day(date.unwrap_or(if year < 0 { Date::MIN } else { Date::MAX }))
}

/// First day of the month `k` months after the one holding `day`.
fn month_start(day: i64, k: i64) -> i64 {
    let date = date_of(day);
    // Months counted from January of year 0, so one division gives the target year and month.
    let index = (i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1).saturating_add(k);
    first_of(index.div_euclid(12), Month::January.nth_next(index.rem_euclid(12) as u8))
}

fn quarter_start(day: i64, k: i64) -> i64 {
    let months_in = i64::from(u8::from(date_of(day).month()) - 1) % 3;
    month_start(day, k.saturating_mul(3).saturating_sub(months_in))
}

fn year_start(day: i64, k: i64) -> i64 {
    first_of(i64::from(date_of(day).year()).saturating_add(k), Month::January)
}

/// Sunday on or before `day`.
fn week_start(day: i64) -> i64 {
    day - i64::from(date_of(day).weekday().number_days_from_sunday())
}

/// The day range a literal covers, relative to `today` (days since the epoch).
pub fn range(name: &str, n: i64, today: i64) -> Option<(i64, i64)> {
    let t = today;
    let ws = week_start(t);
    let m = |k| month_start(t, k);
    let q = |k| quarter_start(t, k);
    let y = |k| year_start(t, k);
    Some(match name {
        "YESTERDAY" => (t - 1, t),
        "TODAY" => (t, t + 1),
        "TOMORROW" => (t + 1, t + 2),
        "LAST_WEEK" => (ws - 7, ws),
        "THIS_WEEK" => (ws, ws + 7),
        "NEXT_WEEK" => (ws + 7, ws + 14),
        "LAST_MONTH" => (m(-1), m(0)),
        "THIS_MONTH" => (m(0), m(1)),
        "NEXT_MONTH" => (m(1), m(2)),
        "LAST_90_DAYS" => (t - 90, t + 1),
        "NEXT_90_DAYS" => (t + 1, t + 91),
        "LAST_N_DAYS" => (t - n, t + 1),
        "NEXT_N_DAYS" => (t + 1, t + 1 + n),
        "N_DAYS_AGO" => (t - n, t - n + 1),
        "LAST_N_WEEKS" => (ws - 7 * n, ws),
        "NEXT_N_WEEKS" => (ws + 7, ws + 7 + 7 * n),
        "N_WEEKS_AGO" => (ws - 7 * n, ws - 7 * n + 7),
        "LAST_N_MONTHS" => (m(-n), m(0)),
        "NEXT_N_MONTHS" => (m(1), m(1 + n)),
        "N_MONTHS_AGO" => (m(-n), m(1 - n)),
        "THIS_QUARTER" => (q(0), q(1)),
        "LAST_QUARTER" => (q(-1), q(0)),
        "NEXT_QUARTER" => (q(1), q(2)),
        "LAST_N_QUARTERS" => (q(-n), q(0)),
        "NEXT_N_QUARTERS" => (q(1), q(1 + n)),
        "N_QUARTERS_AGO" => (q(-n), q(1 - n)),
        "THIS_YEAR" => (y(0), y(1)),
        "LAST_YEAR" => (y(-1), y(0)),
        "NEXT_YEAR" => (y(1), y(2)),
        "LAST_N_YEARS" => (y(-n), y(0)),
        "NEXT_N_YEARS" => (y(1), y(1 + n)),
        "N_YEARS_AGO" => (y(-n), y(1 - n)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{format_date, parse_date};

    fn r(name: &str, n: i64, today: &str) -> (String, String) {
        let (a, b) = range(name, n, parse_date(today).unwrap() as i64).unwrap();
        (format_date(a as i32), format_date(b as i32))
    }

    #[test]
    fn ranges() {
        let d = |a: &str, b: &str| (a.to_string(), b.to_string());
        // 2024-05-15 is a Wednesday.
        assert_eq!(r("TODAY", 0, "2024-05-15"), d("2024-05-15", "2024-05-16"));
        assert_eq!(r("YESTERDAY", 0, "2024-03-01"), d("2024-02-29", "2024-03-01"));
        assert_eq!(r("THIS_WEEK", 0, "2024-05-15"), d("2024-05-12", "2024-05-19"));
        assert_eq!(r("THIS_WEEK", 0, "2024-05-12"), d("2024-05-12", "2024-05-19"));
        assert_eq!(r("LAST_WEEK", 0, "2024-05-15"), d("2024-05-05", "2024-05-12"));
        assert_eq!(r("NEXT_WEEK", 0, "2024-05-18"), d("2024-05-19", "2024-05-26"));
        assert_eq!(r("LAST_MONTH", 0, "2024-01-31"), d("2023-12-01", "2024-01-01"));
        assert_eq!(r("NEXT_MONTH", 0, "2024-12-31"), d("2025-01-01", "2025-02-01"));
        assert_eq!(r("LAST_N_DAYS", 7, "2024-05-15"), d("2024-05-08", "2024-05-16"));
        assert_eq!(r("NEXT_N_DAYS", 2, "2024-05-15"), d("2024-05-16", "2024-05-18"));
        assert_eq!(r("LAST_90_DAYS", 0, "2024-05-15"), r("LAST_N_DAYS", 90, "2024-05-15"));
        assert_eq!(r("LAST_N_WEEKS", 2, "2024-05-15"), d("2024-04-28", "2024-05-12"));
        assert_eq!(r("NEXT_N_WEEKS", 1, "2024-05-15"), d("2024-05-19", "2024-05-26"));
        assert_eq!(r("LAST_N_MONTHS", 3, "2024-02-10"), d("2023-11-01", "2024-02-01"));
        assert_eq!(r("NEXT_N_MONTHS", 2, "2024-11-10"), d("2024-12-01", "2025-02-01"));
        assert_eq!(r("THIS_QUARTER", 0, "2024-05-15"), d("2024-04-01", "2024-07-01"));
        assert_eq!(r("LAST_QUARTER", 0, "2024-02-15"), d("2023-10-01", "2024-01-01"));
        assert_eq!(r("NEXT_QUARTER", 0, "2024-11-15"), d("2025-01-01", "2025-04-01"));
        assert_eq!(r("THIS_YEAR", 0, "2024-05-15"), d("2024-01-01", "2025-01-01"));
        assert_eq!(r("LAST_N_YEARS", 2, "2024-05-15"), d("2022-01-01", "2024-01-01"));
        assert_eq!(r("NEXT_N_YEARS", 1, "2024-05-15"), d("2025-01-01", "2026-01-01"));
        // Across year ends and on quarter and leap-day edges.
        assert_eq!(r("THIS_WEEK", 0, "2025-01-01"), d("2024-12-29", "2025-01-05"));
        assert_eq!(r("THIS_QUARTER", 0, "2024-12-31"), d("2024-10-01", "2025-01-01"));
        assert_eq!(r("N_QUARTERS_AGO", 5, "2024-03-31"), d("2022-10-01", "2023-01-01"));
        assert_eq!(r("N_MONTHS_AGO", 12, "2024-02-29"), d("2023-02-01", "2023-03-01"));
        assert_eq!(r("NEXT_N_MONTHS", 14, "2024-01-15"), d("2024-02-01", "2025-04-01"));
        assert_eq!(r("N_YEARS_AGO", 1, "2024-02-29"), d("2023-01-01", "2024-01-01"));
        // Absurd `N`s saturate at the calendar's range (years ±9999).
        assert_eq!(r("LAST_N_YEARS", 1_000_000, "2024-05-15"), d("-9999-01-01", "2024-01-01"));
        assert_eq!(r("NEXT_N_MONTHS", 1 << 40, "2024-05-15"), d("2024-06-01", "9999-12-31"));
        assert!(range("FOO", 0, 0).is_none());
    }
}

//! RFC 3339 UTC timestamps with microseconds, formatted without allocating.
//!
//! The calendar part changes once a second, so it is computed once per second per thread and
//! only the sub-second digits are written for every event.

use std::time::{SystemTime, UNIX_EPOCH};

/// A formatter of RFC 3339 UTC timestamps that caches the calendar part
/// `YYYY-MM-DDTHH:MM:SS` of the last second formatted (keep one per thread).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    second: u64,
    text: [u8; 19],
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            second: u64::MAX,
            text: [b'0'; 19],
        }
    }
}

impl Clock {
    /// Appends `YYYY-MM-DDTHH:MM:SS.ffffffZ` for `now` (times before 1970 print as the epoch).
    pub fn write_rfc3339(&mut self, buf: &mut Vec<u8>, now: SystemTime) {
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        if secs != self.second {
            self.second = secs;
            self.text = calendar(secs);
        }
        buf.extend_from_slice(&self.text);
        let micros = d.subsec_micros();
        let mut frac = [b'.', 0, 0, 0, 0, 0, 0, b'Z'];
        let mut m = micros;
        for i in (1..7).rev() {
            frac[i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        buf.extend_from_slice(&frac);
    }
}

/// `now` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339(now: SystemTime) -> String {
    let mut buf = Vec::with_capacity(27);
    Clock::default().write_rfc3339(&mut buf, now);
    String::from_utf8(buf).expect("ASCII")
}

/// The calendar date and time of `secs` seconds since the Unix epoch, as
/// `YYYYMMDDTHHMMSS` (for file names).
pub fn compact(secs: u64) -> String {
    let t = calendar(secs);
    let mut out = String::with_capacity(15);
    for &b in &t {
        if b != b'-' && b != b':' {
            out.push(b as char);
        }
    }
    out
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos(now: SystemTime) -> u128 {
    now.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// `YYYY-MM-DDTHH:MM:SS` for a count of seconds since the epoch (proleptic Gregorian, UTC).
fn calendar(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let mut out = *b"0000-00-00T00:00:00";
    let y = y.clamp(0, 9999) as u64;
    two(&mut out[0..2], y / 100);
    two(&mut out[2..4], y % 100);
    two(&mut out[5..7], m as u64);
    two(&mut out[8..10], d as u64);
    two(&mut out[11..13], hh);
    two(&mut out[14..16], mm);
    two(&mut out[17..19], ss);
    out
}

fn two(out: &mut [u8], v: u64) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (what [`rfc3339`] and most logs write)
/// into a time; `None` for anything else or out of range.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let t = strata_core::time::parse_rfc3339("2026-11-25T08:46:39.057719Z").unwrap();
/// assert_eq!(strata_core::time::rfc3339(t), "2026-11-25T08:46:39.057719Z");
/// let east = strata_core::time::parse_rfc3339("1970-01-01T02:00:00+02:00").unwrap();
/// assert_eq!(east, UNIX_EPOCH);
/// assert!(strata_core::time::parse_rfc3339("2026-13-01T00:00:00Z").is_none());
/// assert!(strata_core::time::parse_rfc3339("2026-02-29T00:00:00Z").is_none());
/// assert!(strata_core::time::parse_rfc3339("2028-02-29T00:00:00Z").is_some());
/// assert!(strata_core::time::parse_rfc3339("2026-01-01T00:00:00+99:99").is_none());
/// ```
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = &b[r];
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    if d < 1 || d > month_days[usize::try_from(mo - 1).ok()?] {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) || *h1 > b'2' || *m1 > b'5' {
                return None;
            }
            let v = i64::from(h1 - b'0') * 36_000
                + i64::from(h2 - b'0') * 3600
                + i64::from(m1 - b'0') * 600
                + i64::from(m2 - b'0') * 60;
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// The wall-clock time from the kernel's coarse clock: a few nanoseconds instead of the ~45 ns
/// `SystemTime::now()` costs on virtual machines, at the price of the scheduler tick's
/// resolution (1–4 ms). For timestamps that only order and date things, like breadcrumbs.
/// Falls back to `SystemTime::now()` where there is no coarse clock.
#[inline]
pub fn coarse_now() -> SystemTime {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE exists on Linux.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0
            && let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
        {
            return UNIX_EPOCH + std::time::Duration::new(secs, nanos);
        }
    }
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn fmt(secs: u64, micros: u32) -> String {
        let mut b = Vec::new();
        Clock::default().write_rfc3339(
            &mut b,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros as u64),
        );
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn compact_names_sort_by_time() {
        assert_eq!(compact(951_782_400), "20000229T000000");
        assert!(compact(1_735_732_800) < compact(1_735_732_801));
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(fmt(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(fmt(1_735_732_800, 999_999), "2025-01-01T12:00:00.999999Z");
        assert_eq!(fmt(4_102_444_799, 500_000), "2099-12-31T23:59:59.500000Z");
    }

    /// Days from the civil date, the inverse algorithm, independently written.
    fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m as i64 + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    proptest! {
        #[test]
        fn calendar_round_trips(days in 0i64..2_932_896) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn cache_is_invisible(a in 0u64..4_000_000_000, b in 0u64..4_000_000_000) {
            let mut clock = Clock::default();
            let mut buf = Vec::new();
            clock.write_rfc3339(&mut buf, UNIX_EPOCH + Duration::from_secs(a));
            buf.clear();
            clock.write_rfc3339(&mut buf, UNIX_EPOCH + Duration::from_secs(b));
            prop_assert_eq!(String::from_utf8(buf).unwrap(), fmt(b, 0));
        }
    }
}

//! The "physical limit" of the benchmark's line: the same line strata writes, hand-written and
//! allocation-free, into a reused buffer (escape check + memcpy, itoa/ryu numbers, full RFC 3339
//! formatting of `SystemTime::now()`), then handed to `io::sink()`.

use std::hint::black_box;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

fn str_val(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.extend_from_slice(s.as_bytes());
    } else {
        strata_core::encode::escape_into(buf, s);
    }
    buf.push(b'"');
}

fn key(buf: &mut Vec<u8>, k: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(k.as_bytes());
    buf.extend_from_slice(b"\":");
}

fn timestamp(buf: &mut Vec<u8>) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let secs = d.as_secs();
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    let mut t = *b"0000-00-00T00:00:00.000000Z";
    let put = |t: &mut [u8], mut v: u64, n: usize| {
        for i in (0..n).rev() {
            t[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut t[0..4], year as u64, 4);
    put(&mut t[5..7], month as u64, 2);
    put(&mut t[8..10], day as u64, 2);
    put(&mut t[11..13], rem / 3600, 2);
    put(&mut t[14..16], (rem / 60) % 60, 2);
    put(&mut t[17..19], rem % 60, 2);
    put(&mut t[20..26], u64::from(d.subsec_micros()), 6);
    buf.extend_from_slice(&t);
}

/// Writes the benchmark line into `buf` (cleared first) and hands it to `io::sink()`.
pub(crate) fn line(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf);
    buf.extend_from_slice(b"\",\"level\":\"INFO\"");
    key(buf, "service");
    str_val(buf, black_box("bench"));
    key(buf, "target");
    str_val(buf, black_box("json"));
    key(buf, "message");
    str_val(buf, black_box("request completed"));
    key(buf, "span");
    str_val(buf, black_box("handler"));
    key(buf, "client");
    str_val(buf, black_box("203.0.113.42:51234"));
    key(buf, "status");
    buf.extend_from_slice(itoa::Buffer::new().format(black_box(200_u16)).as_bytes());
    key(buf, "latency_ms");
    buf.extend_from_slice(ryu::Buffer::new().format(black_box(12.625_f64)).as_bytes());
    key(buf, "cache_hit");
    buf.extend_from_slice(if black_box(true) { b"true" } else { b"false" });
    key(buf, "route");
    str_val(buf, black_box("/api/v1/users/{id}/orders"));
    key(buf, "method");
    str_val(buf, black_box("GET"));
    key(buf, "request_id");
    str_val(buf, black_box("67e55044-10b1-426f-9247-bb680e5fe0c8"));
    key(buf, "user_id");
    buf.extend_from_slice(itoa::Buffer::new().format(black_box(424242_u64)).as_bytes());
    buf.extend_from_slice(b"}\n");
    io::sink().write_all(buf).unwrap();
}

//! Stable fingerprints that group occurrences of the same error: the error's type chain, its
//! message with the variable parts normalised, and the call site's module.
//!
//! The alert policy of strata-router throttles per fingerprint and sends it to PagerDuty as the
//! `dedup_key`; strata-capture groups error events by it. The hash (FNV-1a, 64 bits) is fixed, so
//! a fingerprint is the same across processes, machines and releases.
//!
//! ```
//! use strata_core::fingerprint::{Fingerprint, normalize_message};
//!
//! assert_eq!(
//!     normalize_message("order 8812 for 'bob' failed after 832ms (id 0193a5c2-7d3e-7c1a-9b8e-1f2a3b4c5d6e)"),
//!     "order <n> for <q> failed after <n>ms (id <uuid>)",
//! );
//! let a = Fingerprint::new(&["db::Timeout"], "query 17 timed out", "app::orders");
//! let b = Fingerprint::new(&["db::Timeout"], "query 912 timed out", "app::orders");
//! assert_eq!(a, b);
//! assert_eq!(a.to_string().len(), 16);
//! ```

use std::fmt;

/// A 64-bit fingerprint, shown as 16 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl Fingerprint {
    /// The fingerprint of an error whose type chain (outermost first) is `types`, whose message
    /// is `message` (normalised here) and which was logged from module `site`.
    ///
    /// The site is a module path, not a line: moving code does not split a group.
    pub fn new(types: &[&str], message: &str, site: &str) -> Fingerprint {
        let mut h = FNV_OFFSET;
        for t in types {
            h = fnv(h, t.as_bytes());
            h = fnv(h, &[0xfe]);
        }
        h = fnv(h, &[0xff]);
        h = fnv(h, normalize_message(message).as_bytes());
        h = fnv(h, &[0xff]);
        h = fnv(h, site.as_bytes());
        Fingerprint(h)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `s` starts with a UUID (`8-4-4-4-12` hex digits).
fn uuid_at(s: &[u8]) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, len) in GROUPS.iter().enumerate() {
        if g > 0 {
            if s.get(i) != Some(&b'-') {
                return false;
            }
            i += 1;
        }
        if s.len() < i + len || !s[i..i + len].iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        i += len;
    }
    s.get(i).is_none_or(|&b| !is_word(b))
}

/// The message with its variable parts replaced, so that occurrences differing only in IDs,
/// counts or quoted values group together:
///
/// - quoted text (`'…'`, `"…"`, `` `…` ``) → `<q>`
/// - UUIDs → `<uuid>`
/// - `0x…` and runs of 8+ hex digits containing a digit (hashes, addresses) → `<hex>`
/// - numbers, including decimals, dotted (IP addresses, versions) and with a unit suffix
///   (`832ms` → `<n>ms`) → `<n>`
///
/// Words that merely contain digits (`http2`, `v1`, `ipv4`) are kept.
pub fn normalize_message(message: &str) -> String {
    let s = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    let mut copied = 0;
    let flush = |out: &mut String, from: usize, to: usize| out.push_str(&message[from..to]);
    while i < s.len() {
        let b = s[i];
        let word_start = i == 0 || !is_word(s[i - 1]);
        if matches!(b, b'\'' | b'"' | b'`')
            && word_start
            && let Some(end) = s[i + 1..].iter().position(|&c| c == b)
        {
            flush(&mut out, copied, i);
            out.push_str("<q>");
            i += end + 2;
            copied = i;
            continue;
        }
        if !is_word(b) || !word_start {
            i += 1;
            continue;
        }
        if uuid_at(&s[i..]) {
            flush(&mut out, copied, i);
            out.push_str("<uuid>");
            i += 36;
            copied = i;
            continue;
        }
        let end = i + s[i..].iter().take_while(|&&c| is_word(c)).count();
        let word = &s[i..end];
        if word.len() > 2
            && word[0] == b'0'
            && (word[1] | 0x20) == b'x'
            && word[2..].iter().all(u8::is_ascii_hexdigit)
            || word.len() >= 8
                && word.iter().all(u8::is_ascii_hexdigit)
                && word.iter().any(u8::is_ascii_digit)
                && !word.iter().all(u8::is_ascii_digit)
        {
            flush(&mut out, copied, i);
            out.push_str("<hex>");
            i = end;
            copied = i;
            continue;
        }
        if b.is_ascii_digit() {
            // A number: digits, optionally with `.digits` groups, then an optional letter suffix.
            let mut j = i;
            loop {
                j += s[j..].iter().take_while(|c| c.is_ascii_digit()).count();
                if s.get(j) == Some(&b'.') && s.get(j + 1).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                } else {
                    break;
                }
            }
            let suffix = s[j..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            let after = j + suffix;
            if s.get(after).is_none_or(|&c| !is_word(c)) {
                flush(&mut out, copied, i);
                out.push_str("<n>");
                i = j;
                copied = i;
                continue;
            }
        }
        i = end;
    }
    flush(&mut out, copied, s.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_variable_parts() {
        let cases = [
            ("user 42 not found", "user <n> not found"),
            ("took 832ms", "took <n>ms"),
            ("connect 10.0.0.12:5432 refused", "connect <n>:<n> refused"),
            ("price 3.50 EUR", "price <n> EUR"),
            ("key \"abc def\" missing", "key <q> missing"),
            ("it's fine", "it's fine"),
            ("commit 9f86d081884c7d65", "commit <hex>"),
            ("at 0xDEADbeef", "at <hex>"),
            ("http2 and v1 and ipv4", "http2 and v1 and ipv4"),
            ("deadbeefcafe", "deadbeefcafe"),
            ("req 0193A5C2-7D3E-7C1A-9B8E-1F2A3B4C5D6E!", "req <uuid>!"),
            ("élan 7 ünïcode", "élan <n> ünïcode"),
            ("unterminated 'quote 5", "unterminated 'quote <n>"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_message(input), want, "input: {input:?}");
        }
    }

    #[test]
    fn fingerprint_separates_types_sites_and_messages() {
        let base = Fingerprint::new(&["a::E"], "boom 1", "m");
        assert_eq!(base, Fingerprint::new(&["a::E"], "boom 2", "m"));
        assert_ne!(base, Fingerprint::new(&["a::F"], "boom 1", "m"));
        assert_ne!(base, Fingerprint::new(&["a::E", "io"], "boom 1", "m"));
        assert_ne!(base, Fingerprint::new(&["a::E"], "bang 1", "m"));
        assert_ne!(base, Fingerprint::new(&["a::E"], "boom 1", "n"));
        // Parts do not run into each other.
        assert_ne!(
            Fingerprint::new(&["ab"], "c", "m"),
            Fingerprint::new(&["a"], "bc", "m")
        );
        // Fixed across builds: FNV-1a, no random keys.
        assert_eq!(
            Fingerprint::new(&[], "", "").to_string(),
            format!("{:016x}", fnv(fnv(FNV_OFFSET, &[0xff]), &[0xff]))
        );
    }
}

//! The request ID value: validated when accepted from outside, UUIDv7 when generated.

use std::fmt;
use std::str::FromStr;

/// The longest request ID accepted from a caller, in bytes.
pub const MAX_LEN: usize = 128;

/// A request (correlation) ID: 1–128 characters of `[A-Za-z0-9._:-]`.
///
/// IDs generated here are UUIDv7 (time-ordered, so they sort by arrival). IDs offered by callers
/// are accepted only if they satisfy the character rule — the rule makes an ID safe in every
/// output (log lines, headers, file names) without escaping.
///
/// ```
/// use strata_request_id::RequestId;
///
/// let id: RequestId = "0193a5c2-7f3e-7a21".parse().unwrap();
/// assert_eq!(id.as_str(), "0193a5c2-7f3e-7a21");
/// assert!("has space".parse::<RequestId>().is_err());
/// assert_eq!(RequestId::generate().as_str().len(), 36);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// A fresh UUIDv7: 48 bits of Unix time in milliseconds, then 74 random bits from a
    /// per-thread generator seeded by the OS (no system call per ID).
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let random: [u8; 10] = fastrand::u128(..).to_le_bytes()[..10]
            .try_into()
            .expect("10 bytes");
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        RequestId(uuid.hyphenated().encode_lower(&mut buf).into())
    }

    /// Accepts `raw` if it is a valid ID.
    ///
    /// # Errors
    ///
    /// [`InvalidRequestId`] saying why, with a sanitised excerpt of the value.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, InvalidRequestId> {
        let reason = if raw.is_empty() {
            Some("empty")
        } else if raw.len() > MAX_LEN {
            Some("longer than 128 bytes")
        } else if !raw.iter().all(|&b| is_id_byte(b)) {
            Some("characters outside [A-Za-z0-9._:-]")
        } else {
            None
        };
        match reason {
            None => Ok(RequestId(
                std::str::from_utf8(raw)
                    .expect("ASCII checked above")
                    .into(),
            )),
            Some(reason) => Err(InvalidRequestId {
                excerpt: sanitize(raw, 64),
                len: raw.len(),
                reason,
            }),
        }
    }

    /// The ID as a string.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `b` may appear in a request ID.
#[inline]
pub(crate) fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// A printable, bounded rendering of untrusted bytes: printable ASCII kept, everything else as
/// `\xNN` escapes, cut to `max` bytes of output with `…` when longer. Never contains a control
/// character, a quote or a backslash that was in the input unescaped.
pub(crate) fn sanitize(raw: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max) + 4);
    for &b in raw {
        let piece_len = if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            1
        } else {
            4
        };
        if out.len() + piece_len > max {
            out.push('…');
            return out;
        }
        if piece_len == 1 {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

impl FromStr for RequestId {
    type Err = InvalidRequestId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestId::parse_bytes(s.as_bytes())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why an offered request ID was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidRequestId {
    /// The value, sanitised (non-printable bytes as `\xNN`) and cut to 64 bytes.
    pub excerpt: String,
    /// The length of the offered value in bytes.
    pub len: usize,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for InvalidRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid request ID \"{}\" ({} bytes): {}; expected 1 to 128 characters of [A-Za-z0-9._:-]",
            self.excerpt, self.len, self.reason
        )
    }
}

impl std::error::Error for InvalidRequestId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_only() {
        for ok in [
            "a",
            "A-b_c.d:e",
            "0193a5c2-7f3e-7a21-9d4b-1c2d3e4f5a6b",
            &"x".repeat(128),
        ] {
            assert_eq!(ok.parse::<RequestId>().unwrap().as_str(), ok);
        }
        for (bad, reason) in [
            ("", "empty"),
            (&*"x".repeat(129), "longer than 128 bytes"),
            ("a b", "characters outside [A-Za-z0-9._:-]"),
            ("a\r\nx-forged: 1", "characters outside [A-Za-z0-9._:-]"),
            (
                "{\"level\":\"CRITICAL\"}",
                "characters outside [A-Za-z0-9._:-]",
            ),
            ("é", "characters outside [A-Za-z0-9._:-]"),
        ] {
            let err = bad.parse::<RequestId>().unwrap_err();
            assert_eq!(err.reason, reason, "{bad:?}");
            assert!(err.excerpt.len() <= 64 + '…'.len_utf8());
            assert!(
                !err.excerpt.chars().any(|c| c.is_control() || c == '"'),
                "{:?}",
                err.excerpt
            );
        }
    }

    #[test]
    fn generated_ids_are_v7_and_valid() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().as_bytes()[14], b'7', "version nibble: {a}");
        assert!(a.as_str().parse::<RequestId>().is_ok());
    }

    #[test]
    fn sanitize_escapes_and_bounds() {
        assert_eq!(
            sanitize(b"ok\r\n\"\\\xff", 100),
            "ok\\x0d\\x0a\\x22\\x5c\\xff"
        );
        assert_eq!(sanitize(&[b'a'; 10], 4), "aaaa…");
    }
}

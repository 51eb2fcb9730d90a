//! Redaction: secrets never leave the process — not in a JSON line, a console line, an error
//! event, an exported span or log record, nor an alert.
//!
//! Two kinds of rules, both on by default in a [`Redaction`]:
//!
//! - **Field names** ([`Redaction::is_sensitive`]): a field whose name says it holds a secret —
//!   `password`, `passwd`, `pwd`, `passphrase`, `secret`, `token`, `api_key`, `access_key`,
//!   `private_key`, `authorization`, `cookie`, `session`, `credential`, `credit_card`,
//!   `card_number`, `cvv`, `cvc`, `ssn` — has its whole value replaced by [`MASK`], whatever the
//!   value's type. Names are compared by words, case-insensitively, whatever the separators:
//!   `userPassword`, `X-Api-Key`, `db.password`, `SESSION_ID` and `accessToken` are sensitive;
//!   a word that only describes the secret does not count (`token_count`, `password_length`,
//!   `session_expires_at`, `secret_name`).
//! - **Value patterns** ([`Pattern`], [`Redaction::redact`]): secrets recognisable by their
//!   shape are masked wherever they appear in a string value or a message — JSON Web Tokens,
//!   `Bearer`/`Basic` credentials, payment card numbers that pass the Luhn check, AWS access key
//!   IDs, PEM private-key blocks, the password of `scheme://user:password@host`, well-known
//!   token prefixes (GitHub, GitLab, Slack, Stripe, OpenAI, npm, PyPI, Google API keys), and
//!   `key=value` / `"key": "value"` / `key: "value"` pairs whose key is a sensitive name (query
//!   strings, form bodies, `Debug` output of structs).
//!
//! Additions ([`Redaction::with_field`], [`Redaction::with_token_prefix`]) and exceptions
//! ([`Redaction::with_exception`], [`Redaction::without_pattern`]) are configurable.
//!
//! ```
//! use strata_core::redact::Redaction;
//!
//! let r = Redaction::new().with_field("pin").with_exception("session_count");
//! assert!(r.is_sensitive("userPin"));
//! assert!(r.is_sensitive("X-Api-Key"));
//! assert!(!r.is_sensitive("session_count"));
//! assert_eq!(
//!     r.redact("GET /cb?code=abc&access_token=s3cr3t-v4lue"),
//!     "GET /cb?code=abc&access_token=[REDACTED]"
//! );
//! assert_eq!(
//!     r.redact("postgres://app:hunter2@db:5432/shop"),
//!     "postgres://app:[REDACTED]@db:5432/shop"
//! );
//! ```
//!
//! The scanner makes one pass over the bytes and only looks closer at the start of a word and
//! at `:`, `=` and `-`; it also reads JSON-escaped text ([`Redaction::redact_json`]), so a
//! formatter can mask a value it has already written without rendering it twice.

use std::borrow::Cow;
use std::fmt;

use smallvec::SmallVec;

/// What a value redacted for its field's name becomes.
pub const MASK: &str = "[REDACTED]";

/// A shape of secret recognised inside values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// A JSON Web Token: `eyJ….eyJ….sig`.
    Jwt,
    /// The credentials after `Bearer ` or `Basic ` (as in an `Authorization` header).
    Bearer,
    /// A payment card number: 13 to 19 digits (spaces or dashes between groups allowed) that
    /// pass the Luhn check and start like a card (2 to 6).
    Card,
    /// An AWS access key ID (`AKIA…`, `ASIA…`).
    AwsKey,
    /// A PEM private-key block, `-----BEGIN … PRIVATE KEY-----` to its `-----END …-----`.
    PrivateKey,
    /// The password of a URL's `user:password@`.
    UrlPassword,
    /// A token with a well-known prefix (`ghp_`, `xoxb-`, `sk_live_`, `AIza`…, and those added
    /// with [`Redaction::with_token_prefix`]).
    TokenPrefix,
    /// The value of `key=value`, `"key": "value"` or `key: "value"` when `key` is a sensitive
    /// field name, and of `Authorization:`/`Cookie:` header lines.
    KeyValue,
}

impl Pattern {
    /// Every pattern.
    pub const ALL: [Pattern; 8] = [
        Pattern::Jwt,
        Pattern::Bearer,
        Pattern::Card,
        Pattern::AwsKey,
        Pattern::PrivateKey,
        Pattern::UrlPassword,
        Pattern::TokenPrefix,
        Pattern::KeyValue,
    ];

    /// The pattern's name in configuration: `jwt`, `bearer`, `card`, `aws_key`,
    /// `private_key`, `url_password`, `token_prefix`, `key_value`.
    pub const fn name(self) -> &'static str {
        match self {
            Pattern::Jwt => "jwt",
            Pattern::Bearer => "bearer",
            Pattern::Card => "card",
            Pattern::AwsKey => "aws_key",
            Pattern::PrivateKey => "private_key",
            Pattern::UrlPassword => "url_password",
            Pattern::TokenPrefix => "token_prefix",
            Pattern::KeyValue => "key_value",
        }
    }

    /// The pattern named `name` (see [`Pattern::name`]).
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What a match becomes: `[REDACTED:jwt]`…, or [`MASK`] for a password or a key's value.
    pub const fn mask(self) -> &'static str {
        match self {
            Pattern::Jwt => "[REDACTED:jwt]",
            Pattern::Bearer => "[REDACTED:bearer]",
            Pattern::Card => "[REDACTED:card]",
            Pattern::AwsKey => "[REDACTED:aws_key]",
            Pattern::PrivateKey => "[REDACTED:private_key]",
            Pattern::TokenPrefix => "[REDACTED:token]",
            Pattern::UrlPassword | Pattern::KeyValue => MASK,
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sensitive names, normalised (lower case, no separators). Names of five bytes or more also
/// match as the end of a word (`accesstoken`, `dbpassword`).
const DEFAULT_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "cookie",
    "session",
    "sessionid",
    "credential",
    "credentials",
    "creditcard",
    "cardnumber",
    "ccnumber",
    "cvv",
    "cvc",
    "ssn",
];

/// Words that, right after a sensitive word, say the field describes the secret rather than
/// holds it (`token_count`, `password_length`, `session_expires_at`).
const DESCRIPTORS: &[&str] = &[
    "count",
    "counts",
    "len",
    "length",
    "size",
    "type",
    "kind",
    "ttl",
    "expiry",
    "expires",
    "expired",
    "expiration",
    "age",
    "hint",
    "policy",
    "strength",
    "name",
    "present",
    "provided",
    "required",
    "valid",
    "changed",
    "created",
    "started",
    "ended",
    "duration",
    "timeout",
    "usage",
    "used",
    "limit",
    "enabled",
    "version",
];

/// Prefixes of well-known tokens (the rest at least 20 token characters long).
const DEFAULT_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "sk-",
    "npm_",
    "pypi-",
    "AIza",
];

/// Header names whose whole value (to the end of the line) is a secret in `Name: value` form.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "xapikey",
];

/// The longest normalised name compared; longer names are only matched word by word.
const MAX_NAME: usize = 64;

#[derive(Clone)]
struct Prefix {
    text: Box<str>,
    /// The least number of token characters after the prefix.
    min_rest: usize,
}

/// The redaction rules: sensitive field names and value patterns, with additions and
/// exceptions. Cheap to clone behind an `Arc`; see the [module documentation](self).
#[derive(Clone)]
pub struct Redaction {
    names: Vec<Box<str>>,
    exceptions: Vec<Box<str>>,
    /// Sorted by first byte; `prefix_at[b]` is the range of those starting with `b`.
    prefixes: Vec<Prefix>,
    prefix_at: Box<[(u16, u16); 256]>,
    patterns: u16,
    /// Per byte: which checks may start here (bits below), for the enabled patterns only.
    table: [u16; 256],
}

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redaction")
            .field("names", &self.names)
            .field("exceptions", &self.exceptions)
            .field(
                "patterns",
                &Pattern::ALL
                    .iter()
                    .filter(|p| self.has(**p))
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .field(
                "token_prefixes",
                &self.prefixes.iter().map(|p| &*p.text).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Redaction {
    fn default() -> Self {
        Self::new()
    }
}

// Check bits of `Redaction::table`.
const T_DIGIT: u16 = 1;
const T_JWT: u16 = 2;
const T_AUTH: u16 = 4;
const T_AWS: u16 = 8;
const T_PREFIX: u16 = 16;
const T_DASH: u16 = 32;
const T_COLON: u16 = 64;
const T_EQ: u16 = 128;
/// The checks that only start at the beginning of a word.
const T_WORD_START: u16 = T_DIGIT | T_JWT | T_AUTH | T_AWS | T_PREFIX;
/// The checks made inside a word.
const T_ANYWHERE: u16 = !T_WORD_START;

/// `[A-Za-z0-9_]`.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_';
        i += 1;
    }
    t
};

#[inline]
fn is_word(b: u8) -> bool {
    WORD[b as usize]
}

/// Lower case, letters and digits only: how names are compared.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Redaction {
    /// The default rules: every name and pattern of the [module documentation](self).
    pub fn new() -> Self {
        let mut r = Redaction {
            names: DEFAULT_NAMES.iter().map(|&n| n.into()).collect(),
            exceptions: Vec::new(),
            prefixes: DEFAULT_PREFIXES
                .iter()
                .map(|&p| Prefix {
                    text: p.into(),
                    min_rest: 20,
                })
                .collect(),
            prefix_at: Box::new([(0, 0); 256]),
            patterns: Pattern::ALL.iter().fold(0, |b, p| b | p.bit()),
            table: [0; 256],
        };
        r.rebuild();
        r
    }

    /// Also treats fields named `name` (compared like the built-in names: by words, any case
    /// or separators) as secrets.
    #[must_use]
    pub fn with_field(mut self, name: impl AsRef<str>) -> Self {
        let n = normalize(name.as_ref());
        if !n.is_empty() && !self.names.iter().any(|x| **x == *n) {
            self.names.push(n.into());
        }
        self
    }

    /// Never masks a field with exactly this name (compared without case or separators), even
    /// when a rule says it is sensitive. Values are still scanned for patterns.
    #[must_use]
    pub fn with_exception(mut self, name: impl AsRef<str>) -> Self {
        let n = normalize(name.as_ref());
        if !n.is_empty() {
            self.exceptions.push(n.into());
        }
        self
    }

    /// Also masks tokens starting with `prefix` (at the start of a word, followed by at least
    /// 8 token characters `[A-Za-z0-9_-]`), e.g. an internal `acme_live_`. A prefix must be
    /// ASCII and start with a letter, a digit or `_`; others are ignored.
    #[must_use]
    pub fn with_token_prefix(mut self, prefix: impl AsRef<str>) -> Self {
        let p = prefix.as_ref();
        if p.is_ascii() && p.bytes().next().is_some_and(is_word) {
            self.prefixes.push(Prefix {
                text: p.into(),
                min_rest: 8,
            });
            self.patterns |= Pattern::TokenPrefix.bit();
            self.rebuild();
        }
        self
    }

    /// Turns a value pattern off (for data where it misfires: card-like numbers that are not
    /// cards, say).
    #[must_use]
    pub fn without_pattern(mut self, pattern: Pattern) -> Self {
        self.patterns &= !pattern.bit();
        self.rebuild();
        self
    }

    /// Whether `pattern` is on.
    pub fn has(&self, pattern: Pattern) -> bool {
        self.patterns & pattern.bit() != 0
    }

    fn rebuild(&mut self) {
        self.prefixes.sort_by_key(|p| p.text.as_bytes()[0]);
        let mut at = [(0u16, 0u16); 256];
        for (k, p) in self.prefixes.iter().enumerate() {
            let k = u16::try_from(k).unwrap_or(u16::MAX);
            let slot = &mut at[usize::from(p.text.as_bytes()[0])];
            *slot = if slot.1 == 0 {
                (k, k + 1)
            } else {
                (slot.0, k + 1)
            };
        }
        *self.prefix_at = at;
        let mut t = [0u16; 256];
        let mut set = |bytes: &[u8], bit: u16| {
            for &b in bytes {
                t[b as usize] |= bit;
            }
        };
        if self.has(Pattern::Card) {
            set(b"23456", T_DIGIT);
        }
        if self.has(Pattern::Jwt) {
            set(b"e", T_JWT);
        }
        if self.has(Pattern::Bearer) {
            set(b"bB", T_AUTH);
        }
        if self.has(Pattern::AwsKey) {
            set(b"A", T_AWS);
        }
        if self.has(Pattern::TokenPrefix) {
            for p in &self.prefixes {
                set(&p.text.as_bytes()[..1], T_PREFIX);
            }
        }
        if self.has(Pattern::PrivateKey) {
            set(b"-", T_DASH);
        }
        if self.has(Pattern::UrlPassword) || self.has(Pattern::KeyValue) {
            set(b":", T_COLON);
        }
        if self.has(Pattern::KeyValue) {
            set(b"=", T_EQ);
        }
        self.table = t;
    }

    /// Whether a field named `name` holds a secret: one of the sensitive names (built-in or
    /// added) appears in it as a word or a run of words, not followed by a describing word,
    /// and the name is not an exception.
    pub fn is_sensitive(&self, name: &str) -> bool {
        // Words: split at non-alphanumerics and at lower→upper case changes, lower-cased and
        // joined without separators; `starts` marks where each word begins.
        let mut buf: SmallVec<[u8; 64]> = SmallVec::new();
        let mut starts: SmallVec<[usize; 8]> = SmallVec::new();
        let mut prev_lower = false;
        let mut in_word = false;
        for c in name.chars() {
            if c.is_alphanumeric() {
                let upper = c.is_uppercase();
                if !in_word || (upper && prev_lower) {
                    starts.push(buf.len());
                }
                in_word = true;
                prev_lower = c.is_lowercase() || c.is_numeric();
                for l in c.to_lowercase() {
                    let mut b = [0u8; 4];
                    buf.extend_from_slice(l.encode_utf8(&mut b).as_bytes());
                }
            } else {
                in_word = false;
                prev_lower = false;
            }
            if buf.len() > MAX_NAME * 4 {
                break;
            }
        }
        if starts.is_empty() {
            return false;
        }
        if self.exceptions.iter().any(|e| e.as_bytes() == &buf[..]) {
            return false;
        }
        let end_of = |w: usize| starts.get(w + 1).copied().unwrap_or(buf.len());
        let described = |w: usize| {
            w + 1 < starts.len()
                && DESCRIPTORS
                    .iter()
                    .any(|d| d.as_bytes() == &buf[starts[w + 1]..end_of(w + 1)])
        };
        for i in 0..starts.len() {
            for j in i..starts.len() {
                let run = &buf[starts[i]..end_of(j)];
                if run.len() > MAX_NAME {
                    break;
                }
                let hit = self.names.iter().any(|n| {
                    let n = n.as_bytes();
                    // A long name also matches the end of a single word: `accesstoken`.
                    run == n || (i == j && n.len() >= 5 && run.len() > n.len() && run.ends_with(n))
                });
                if hit && !described(j) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether [`Redaction::redact`] would change `text`.
    pub fn contains_secret(&self, text: &str) -> bool {
        let mut found = false;
        self.scan(text.as_bytes(), false, |_, _, mask| {
            found = !mask.is_empty();
            !found
        });
        found
    }

    /// `text` with every value pattern masked (borrowed when nothing matched).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Option<String> = None;
        let mut last = 0;
        self.scan(text.as_bytes(), false, |a, b, mask| {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            // Every match starts and ends at an ASCII byte, the end, or the `…` of a cut:
            // char boundaries.
            o.push_str(&text[last..a]);
            o.push_str(mask);
            last = b;
            true
        });
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[last..]);
                Cow::Owned(o)
            }
        }
    }

    /// Masks value patterns in place in `text`; returns whether anything was masked.
    pub fn redact_in_place(&self, text: &mut String) -> bool {
        match self.redact(text) {
            Cow::Borrowed(_) => false,
            Cow::Owned(o) => {
                *text = o;
                true
            }
        }
    }

    /// Masks value patterns in `buf[from..]`, JSON-escaped text a formatter has just written
    /// (the masks need no escaping); returns whether anything was masked.
    pub fn redact_json(&self, buf: &mut Vec<u8>, from: usize) -> bool {
        let mut hits: SmallVec<[(usize, usize, &'static str); 2]> = SmallVec::new();
        self.scan(&buf[from..], true, |a, b, mask| {
            hits.push((from + a, from + b, mask));
            true
        });
        if hits.is_empty() {
            return false;
        }
        let tail = buf.split_off(from);
        let mut last = from;
        for (a, b, mask) in hits {
            buf.extend_from_slice(&tail[last - from..a - from]);
            buf.extend_from_slice(mask.as_bytes());
            last = b;
        }
        buf.extend_from_slice(&tail[last - from..]);
        true
    }

    /// Calls `hit(start, end, pattern)` for each match in `t`, in order, without overlaps; stops
    /// when `hit` returns `false`. Reads raw and JSON-escaped text alike; `json` says `t` is
    /// JSON (strings escaped), where a raw quote is never part of a text.
    fn scan(&self, t: &[u8], json: bool, mut hit: impl FnMut(usize, usize, &'static str) -> bool) {
        // Word by word: the checks of a word's first byte, then a quick skip to its end (no
        // check starts inside a word), then the checks of the separators after it.
        let n = t.len();
        let mut i = 0;
        // Where the last match ended: a cut token is never masked twice.
        let mut floor = 0;
        while i < n {
            let b = t[i];
            if b == CUT[0] {
                if let Some(start) = cut_token(t, i, floor)
                    && !hit(start, i, "")
                {
                    return;
                }
                i += 1;
                continue;
            }
            let word = is_word(b);
            let checks = self.table[b as usize] & if word { T_WORD_START } else { T_ANYWHERE };
            if checks != 0
                && let Some((s, e, p)) = self.try_at(t, i, checks, json)
            {
                if !hit(s, e, p.mask()) {
                    return;
                }
                floor = e;
                i = e.max(i + 1);
                // A match may end inside a word: go on from the word's end.
                while i < n && i > 0 && is_word(t[i - 1]) && is_word(t[i]) {
                    i += 1;
                }
                continue;
            }
            if word {
                i += 1;
                i += t[i..].iter().position(|&b| !is_word(b)).unwrap_or(n - i);
            } else if b == b'\\' {
                // A JSON escape (`\n`, `\"`, `\u001b`): its letters start no word.
                i += match t.get(i + 1) {
                    Some(b'u') => 6,
                    Some(b'n' | b'r' | b't' | b'b' | b'f' | b'"' | b'\\' | b'/') => 2,
                    _ => 1,
                };
            } else {
                i += 1;
            }
        }
    }

    /// The match starting at `t[i]`, trying the `checks` allowed there (by the byte: at most
    /// two checks start at any one byte).
    #[inline]
    fn try_at(
        &self,
        t: &[u8],
        i: usize,
        checks: u16,
        json: bool,
    ) -> Option<(usize, usize, Pattern)> {
        let b = t[i];
        match b {
            b'0'..=b'9' => {
                if checks & T_DIGIT != 0
                    && let Some(e) = card(t, i)
                {
                    return Some((i, e, Pattern::Card));
                }
                if checks & T_PREFIX != 0 {
                    return self.prefixed(t, i).map(|e| (i, e, Pattern::TokenPrefix));
                }
                None
            }
            b'-' => private_key(t, i).map(|e| (i, e, Pattern::PrivateKey)),
            b':' => {
                // Only `://`, `: `, `:"` and `:\"` can start a match.
                if !matches!(t.get(i + 1), Some(b'/' | b' ' | b'"' | b'\\')) {
                    return None;
                }
                if self.has(Pattern::UrlPassword)
                    && let Some((s, e)) = url_password(t, i)
                {
                    return Some((s, e, Pattern::UrlPassword));
                }
                if self.has(Pattern::KeyValue) {
                    return self
                        .key_value(t, i, json)
                        .map(|(s, e)| (s, e, Pattern::KeyValue));
                }
                None
            }
            b'=' => self
                .key_value(t, i, json)
                .map(|(s, e)| (s, e, Pattern::KeyValue)),
            _ => {
                if checks & T_JWT != 0
                    && let Some(e) = jwt(t, i)
                {
                    return Some((i, e, Pattern::Jwt));
                }
                if checks & T_AUTH != 0
                    && let Some((s, e)) = auth_scheme(t, i)
                {
                    return Some((s, e, Pattern::Bearer));
                }
                if checks & T_AWS != 0
                    && let Some(e) = aws_key(t, i)
                {
                    return Some((i, e, Pattern::AwsKey));
                }
                if checks & T_PREFIX != 0 {
                    return self.prefixed(t, i).map(|e| (i, e, Pattern::TokenPrefix));
                }
                None
            }
        }
    }

    fn prefixed(&self, t: &[u8], i: usize) -> Option<usize> {
        let rest = &t[i..];
        let (a, b) = self.prefix_at[usize::from(t[i])];
        self.prefixes[usize::from(a)..usize::from(b)]
            .iter()
            .find_map(|p| {
                let pb = p.text.as_bytes();
                if !rest.starts_with(pb) {
                    return None;
                }
                let len = rest[pb.len()..]
                    .iter()
                    .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    .count();
                (len >= p.min_rest).then_some(i + pb.len() + len)
            })
    }

    /// At `=` or `:`: if the key before it is sensitive, the value after it.
    fn key_value(&self, t: &[u8], i: usize, json: bool) -> Option<(usize, usize)> {
        let sep = t[i];
        // Whether the key ends in a quote (raw or escaped) just before `i`: `"key":`.
        let quoted = i > 0 && t[i - 1] == b'"';
        // The value's form first (cheap), the key's name last.
        let mut v = i + 1;
        let header = sep == b':' && !quoted && t.get(v) == Some(&b' ');
        while v < t.len() && t[v] == b' ' {
            v += 1;
        }
        if sep == b':' && t[v..].starts_with(b"Some(") {
            v += 5;
        }
        let open = match t.get(v) {
            // In JSON, a raw quote ends the text the key is in: no value follows.
            Some(b'"') if !json => Some(false),
            Some(b'\\') if t.get(v + 1) == Some(&b'"') => Some(true),
            _ => None,
        };
        // `key: value` only as a header line or with a string value: `password: must be 8
        // characters` is prose.
        if sep == b':' && open.is_none() && !header {
            return None;
        }
        let key = key_before(t, i, quoted)?;
        if sep == b':' && open.is_none() {
            // `Authorization: Basic …`: the rest of the line.
            if !SECRET_HEADERS.iter().any(|h| **h == *normalize(key)) {
                return None;
            }
            let end = t[v..]
                .iter()
                .position(|&b| matches!(b, b'\n' | b'\r' | b'\\' | b'"' | b'\''))
                .map_or(t.len(), |p| v + p);
            return (end > v && self.is_sensitive(key)).then_some((v, end));
        }
        let end = match open {
            Some(escaped) => {
                let v = v + if escaped { 2 } else { 1 };
                // The closing quote (escaped quotes inside a raw string are skipped).
                let mut e = v;
                let end = loop {
                    match t.get(e) {
                        None => break t.len(),
                        Some(b'\\') if escaped && t.get(e + 1) == Some(&b'"') => break e,
                        Some(b'\\') => e += 2,
                        // A raw quote ends the value (in JSON, the whole string).
                        Some(b'"') => break e,
                        Some(_) => e += 1,
                    }
                };
                return (end > v && self.is_sensitive(key)).then_some((v, end.min(t.len())));
            }
            // `key=value`: to the next delimiter of a query string, form, or list.
            None => t[v..]
                .iter()
                .position(|&b| {
                    matches!(b, b'&' | b';' | b',' | b' ' | b'"' | b'\'' | b'\\' | b')')
                        || b.is_ascii_control()
                })
                .map_or(t.len(), |p| v + p),
        };
        (end > v && self.is_sensitive(key)).then_some((v, end))
    }
}

/// The key ending at `i` (or at the quote before `i`): letters, digits, `_`, `-`, `.`, with at
/// least one letter.
fn key_before(t: &[u8], i: usize, quoted: bool) -> Option<&str> {
    let mut k_end = i;
    if quoted {
        k_end -= 1;
        if k_end > 0 && t[k_end - 1] == b'\\' {
            k_end -= 1;
        }
    }
    let key_char = |b: u8| is_word(b) || b == b'-' || b == b'.';
    let mut k_start = k_end;
    while k_start > 0 && key_char(t[k_start - 1]) && k_end - k_start < MAX_NAME {
        k_start -= 1;
    }
    let key = &t[k_start..k_end];
    if !key.iter().any(u8::is_ascii_alphabetic) {
        return None;
    }
    std::str::from_utf8(key).ok()
}

/// The marker a cut value ends with (strata_core::encode's): `…[truncated N bytes]`.
const CUT: &[u8] = crate::encode::TRUNCATION_MARKER_PREFIX.as_bytes();

/// At a truncation marker `t[i..]`: the start of the token the cut fell into, if it did (a
/// secret cut short — `postgres://app:hunte…`, half a token — is no longer recognisable, so
/// the partial token is dropped), not before `floor`.
fn cut_token(t: &[u8], i: usize, floor: usize) -> Option<usize> {
    if !t[i..].starts_with(CUT) {
        return None;
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"_-.~+/=%".contains(&b);
    let mut s = i;
    while s > floor && token(t[s - 1]) {
        s -= 1;
    }
    // A JSON escape (`\n`, `\u001b`) is not part of the token: dropping its letters would
    // leave a lone backslash, and the line would no longer be JSON. A backslash starts an
    // escape when an odd number of them stands before the token.
    let backslashes = t[..s].iter().rev().take_while(|&&b| b == b'\\').count();
    if backslashes % 2 == 1 {
        let hex4 = |from: usize| {
            t.get(from..from + 4)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        };
        match t[s] {
            b'n' | b'r' | b't' | b'b' | b'f' | b'/' => s += 1,
            b'u' if hex4(s + 1) => s += 5,
            _ => {}
        }
    }
    (s < i).then_some(s)
}

/// Card numbers: digits with single spaces or dashes between groups, 13–19 digits, Luhn-valid,
/// not part of a longer word.
fn card(t: &[u8], i: usize) -> Option<usize> {
    // Every card number begins with a group of at least four digits.
    if t.len() < i + 13 || !t[i..i + 4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut e = i;
    let mut count = 0;
    let mut sep = None;
    while e < t.len() {
        let b = t[e];
        if b.is_ascii_digit() {
            count += 1;
            if count > 19 {
                return None;
            }
            e += 1;
        } else if (b == b' ' || b == b'-')
            && sep.is_none_or(|s| s == b)
            && t.get(e + 1).is_some_and(u8::is_ascii_digit)
        {
            sep = Some(b);
            e += 1;
        } else {
            break;
        }
    }
    if count < 13 || t.get(e).is_some_and(|&b| is_word(b)) {
        return None;
    }
    let sum: u32 = t[i..e]
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .enumerate()
        .map(|(k, &b)| {
            let d = u32::from(b - b'0');
            match (k % 2 == 1, d * 2) {
                (false, _) => d,
                (true, x) if x > 9 => x - 9,
                (true, x) => x,
            }
        })
        .sum();
    sum.is_multiple_of(10).then_some(e)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `eyJ<header>.<payload>.<signature>`.
fn jwt(t: &[u8], i: usize) -> Option<usize> {
    if !t[i..].starts_with(b"eyJ") {
        return None;
    }
    let run = |from: usize| t[from..].iter().take_while(|&&b| is_b64url(b)).count();
    let h = run(i);
    if h < 10 || t.get(i + h) != Some(&b'.') {
        return None;
    }
    let p_start = i + h + 1;
    let p = run(p_start);
    if p < 2 {
        return None;
    }
    let mut e = p_start + p;
    if t.get(e) == Some(&b'.') {
        e += 1;
        e += run(e);
    }
    Some(e)
}

/// `Bearer <token>` / `Basic <credentials>`: the credentials, when they look like a token (not
/// an ordinary word: `basic authentication failed` is left alone).
fn auth_scheme(t: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = &t[i..];
    let scheme = if rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"bearer") {
        6
    } else if rest.len() > 5 && rest[..5].eq_ignore_ascii_case(b"basic") {
        5
    } else {
        return None;
    };
    let mut s = i + scheme;
    let spaces = t[s..].iter().take_while(|&&b| b == b' ').count();
    if spaces == 0 {
        return None;
    }
    s += spaces;
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    let len = t[s..].iter().take_while(|&&b| token_char(b)).count();
    let tok = &t[s..s + len];
    let digits = tok.iter().any(u8::is_ascii_digit);
    let symbols = tok.iter().any(|b| b"-._~+/=".contains(b));
    let uppers = tok.iter().filter(|b| b.is_ascii_uppercase()).count();
    (len >= 8 && (digits || symbols || uppers >= 2)).then_some((s, s + len))
}

/// `AKIA…`/`ASIA…` followed by exactly 16 upper-case letters or digits.
fn aws_key(t: &[u8], i: usize) -> Option<usize> {
    let rest = &t[i..];
    if !(rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA")) {
        return None;
    }
    let len = rest[4..]
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .count();
    let e = i + 4 + len;
    (len == 16 && !t.get(e).is_some_and(|&b| is_word(b))).then_some(e)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `-----BEGIN <label> PRIVATE KEY…-----` to the end of its `-----END …-----` line (or of the
/// text, when the block was cut).
fn private_key(t: &[u8], i: usize) -> Option<usize> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !t[i..].starts_with(BEGIN) {
        return None;
    }
    let head = i + BEGIN.len();
    let label_end = head + find(&t[head..t.len().min(head + 64)], b"-----")?;
    find(&t[head..label_end], b"PRIVATE KEY")?;
    let after = label_end + 5;
    let Some(end_at) = find(&t[after..], b"-----END ") else {
        return Some(t.len());
    };
    let tail = after + end_at + 9;
    Some(find(&t[tail..t.len().min(tail + 64)], b"-----").map_or(t.len(), |p| tail + p + 5))
}

/// At the `:` of `scheme://user:password@host`: the password.
fn url_password(t: &[u8], i: usize) -> Option<(usize, usize)> {
    if !t[i..].starts_with(b"://") || i == 0 || !t[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let a = i + 3;
    let authority = t[a..]
        .iter()
        .position(|&b| {
            matches!(b, b'/' | b'?' | b'#' | b'"' | b'\\' | b'<' | b'>' | b'\'') || b <= b' '
        })
        .map_or(t.len(), |p| a + p);
    let at = a + t[a..authority].iter().rposition(|&b| b == b'@')?;
    let colon = a + t[a..at].iter().position(|&b| b == b':')?;
    (at > colon + 1).then_some((colon + 1, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redaction {
        Redaction::new()
    }

    #[test]
    fn names_by_words_any_case_or_separator() {
        let r = r();
        for n in [
            "password",
            "Password",
            "PASSWORD",
            "user_password",
            "userPassword",
            "db.password",
            "passwd",
            "pwd",
            "client_secret",
            "clientSecret",
            "secret",
            "token",
            "access_token",
            "accessToken",
            "refresh-token",
            "api_key",
            "apiKey",
            "X-Api-Key",
            "x-api-key",
            "apikey",
            "aws_access_key_id",
            "authorization",
            "Authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "session",
            "session_id",
            "sessionId",
            "SESSIONID",
            "credit_card",
            "creditCardNumber",
            "card_number",
            "cvv",
            "CVC",
            "ssn",
            "user.ssn",
            "private_key",
            "credentials",
            "dbpassword",
        ] {
            assert!(r.is_sensitive(n), "{n} should be sensitive");
        }
        for n in [
            "user_id",
            "duration_ms",
            "status_code",
            "message",
            "class_name",
            "token_count",
            "tokens",
            "password_length",
            "session_expires_at",
            "secret_name",
            "author",
            "passenger",
            "cookbook",
            "card_type",
            "tokenizer",
            "",
            "_",
        ] {
            assert!(!r.is_sensitive(n), "{n} should not be sensitive");
        }
    }

    #[test]
    fn additions_and_exceptions() {
        let r = r().with_field("pin").with_exception("session_count");
        assert!(r.is_sensitive("pin"));
        assert!(r.is_sensitive("user_pin"));
        assert!(r.is_sensitive("userPin"));
        assert!(!r.is_sensitive("pinned"));
        assert!(!r.is_sensitive("session_count"));
        assert!(!r.is_sensitive("SessionCount"));
        let r = Redaction::new().with_exception("token");
        assert!(!r.is_sensitive("token"));
        assert!(r.is_sensitive("access_token"));
    }

    fn masked(text: &str) -> String {
        r().redact(text).into_owned()
    }

    #[test]
    fn jwt() {
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(
            masked(&format!("token was {t}; retrying")),
            "token was [REDACTED:jwt]; retrying"
        );
        assert_eq!(masked(t), "[REDACTED:jwt]");
        // Not at a word start, or not a JWT shape.
        assert_eq!(masked("keyJabc.def"), "keyJabc.def");
        assert_eq!(masked("eyJust kidding"), "eyJust kidding");
    }

    #[test]
    fn bearer_and_basic() {
        assert_eq!(
            masked("Authorization: Bearer abcDEF123456789xyz"),
            "Authorization: [REDACTED]"
        );
        assert_eq!(
            masked("sent bearer AbCdEfGh12345678 to upstream"),
            "sent bearer [REDACTED:bearer] to upstream"
        );
        assert_eq!(
            masked("header Basic dXNlcjpwYXNzd29yZA=="),
            "header Basic [REDACTED:bearer]"
        );
        assert_eq!(
            masked("basic authentication failed"),
            "basic authentication failed"
        );
        assert_eq!(masked("Bearer tokens expire"), "Bearer tokens expire");
    }

    #[test]
    fn cards_pass_luhn() {
        assert_eq!(
            masked("card 4111111111111111 ok"),
            "card [REDACTED:card] ok"
        );
        assert_eq!(masked("4111 1111 1111 1111"), "[REDACTED:card]");
        assert_eq!(masked("5500-0000-0000-0004."), "[REDACTED:card].");
        assert_eq!(masked("amex 378282246310005"), "amex [REDACTED:card]");
        // Luhn fails, epoch milliseconds, too long, inside a word, mixed separators.
        assert_eq!(masked("4111111111111112"), "4111111111111112");
        assert_eq!(masked("at 1733412345678"), "at 1733412345678");
        assert_eq!(masked("41111111111111110000"), "41111111111111110000");
        assert_eq!(masked("id4111111111111111"), "id4111111111111111");
        assert_eq!(masked("4111111111111111x"), "4111111111111111x");
        assert_eq!(masked("4111 1111-1111 1111"), "4111 1111-1111 1111");
    }

    #[test]
    fn aws_keys_and_prefixed_tokens() {
        assert_eq!(
            masked("key AKIAIOSFODNN7EXAMPLE used"),
            "key [REDACTED:aws_key] used"
        );
        assert_eq!(masked("AKIAIOSFODNN7EXAMPLEX"), "AKIAIOSFODNN7EXAMPLEX");
        assert_eq!(
            masked("push with ghp_1234567890abcdefghijABCDEFGHIJ123456"),
            "push with [REDACTED:token]"
        );
        assert_eq!(
            masked("xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"),
            "[REDACTED:token]"
        );
        assert_eq!(masked("sk-learn-contrib"), "sk-learn-contrib");
        let r = Redaction::new()
            .with_token_prefix("acme_")
            .with_token_prefix("42x");
        assert_eq!(r.redact("acme_12345678 x"), "[REDACTED:token] x");
        assert_eq!(r.redact("acme_1234"), "acme_1234");
        assert_eq!(r.redact("key 42xABCDEFGH."), "key [REDACTED:token].");
        assert_eq!(r.redact("4111111111111111"), "[REDACTED:card]");
    }

    #[test]
    fn private_keys() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            masked(&format!("loaded {pem} from disk")),
            "loaded [REDACTED:private_key] from disk"
        );
        assert_eq!(
            masked("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA"),
            "[REDACTED:private_key]"
        );
        let public = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----";
        assert_eq!(masked(public), public);
    }

    #[test]
    fn url_passwords() {
        assert_eq!(
            masked("connect postgres://app:hunter2@db.internal:5432/shop failed"),
            "connect postgres://app:[REDACTED]@db.internal:5432/shop failed"
        );
        assert_eq!(
            masked("https://user:p%40ss@example.com/x?y=1"),
            "https://user:[REDACTED]@example.com/x?y=1"
        );
        // No password, an e-mail address in a path, a port.
        for keep in [
            "ssh://git@github.com/org/repo",
            "https://example.com/users/a@b.com",
            "http://127.0.0.1:8080/health",
            "mailto:ops@example.com",
        ] {
            assert_eq!(masked(keep), keep);
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(
            masked("POST /login?user=bob&password=hunter2&next=/"),
            "POST /login?user=bob&password=[REDACTED]&next=/"
        );
        assert_eq!(
            masked(r#"body {"user":"bob","password":"hunter2","remember":true}"#),
            r#"body {"user":"bob","password":"[REDACTED]","remember":true}"#
        );
        assert_eq!(
            masked(r#"Login { user: "bob", api_key: "k-123", pin_length: 4 }"#),
            r#"Login { user: "bob", api_key: "[REDACTED]", pin_length: 4 }"#
        );
        assert_eq!(
            masked(r#"Creds { token: Some("abc") }"#),
            r#"Creds { token: Some("[REDACTED]") }"#
        );
        assert_eq!(masked("Cookie: sid=abc; theme=dark"), "Cookie: [REDACTED]");
        for keep in [
            "retry=3 backoff_ms=200",
            "token_count=1200",
            "password: must be at least 8 characters",
            "time: 12:30:00",
            "a == b",
        ] {
            assert_eq!(masked(keep), keep);
        }
    }

    #[test]
    fn json_escaped_text_in_place() {
        let r = r();
        let mut buf = br#"{"a":1,"note":"line\neyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln and \"password\":\"x1\""}"#.to_vec();
        let from = 14;
        assert!(r.redact_json(&mut buf, from));
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(
            s,
            r#"{"a":1,"note":"line\n[REDACTED:jwt] and \"password\":\"[REDACTED]\""}"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v["note"].as_str().unwrap().contains("[REDACTED:jwt]"));
        let mut clean = br#""nothing to see""#.to_vec();
        assert!(!r.redact_json(&mut clean, 0));
        // A raw quote ends the JSON string: a secret's value never runs past it (found by
        // the json_event fuzz target: the mask ate the closing quote, or the `,` after it).
        for (text, want) in [
            (
                r#""body {\"passwd\":\"hunter2""#,
                r#""body {\"passwd\":\"[REDACTED]""#,
            ),
            (
                r#"{"message":"missing password=","chain":[]}"#,
                r#"{"message":"missing password=","chain":[]}"#,
            ),
            (
                r#"{"message":"Authorization: ","chain":[{"message":"x"}]}"#,
                r#"{"message":"Authorization: ","chain":[{"message":"x"}]}"#,
            ),
        ] {
            let mut buf = text.as_bytes().to_vec();
            r.redact_json(&mut buf, 0);
            let got = String::from_utf8(buf).unwrap();
            assert_eq!(got, want);
            serde_json::from_str::<serde_json::Value>(&got).unwrap();
        }
    }

    #[test]
    fn a_secret_cut_short_by_truncation_is_dropped() {
        let r = r();
        let cut = |s: &str, max: usize| {
            let mut buf = Vec::new();
            crate::encode::write_str_truncated(&mut buf, s, max);
            r.redact_json(&mut buf, 0);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(
            cut("postgres://app:hunter2@db/shop", 20),
            r#""postgres://app:…[truncated 10 bytes]""#
        );
        assert_eq!(
            cut("push ghp_1234567890abcdefghijABCDEFGHIJ123456 now", 20),
            r#""push …[truncated 29 bytes]""#
        );
        // A cut between words drops nothing.
        assert_eq!(
            cut("hello world and more", 12),
            r#""hello world …[truncated 8 bytes]""#
        );
        assert_eq!(
            r.redact("token eyJhbGciOiJIUzI1NiJ9.eyJz…[truncated 99 bytes]"),
            "token [REDACTED:jwt]…[truncated 99 bytes]"
        );
        // A cut right after an escaped character keeps the escape whole (found by the
        // json_event fuzz target: `\…` made the line invalid JSON).
        for (s, want) in [
            (
                "0123456789\n and more",
                r#""0123456789\n…[truncated 9 bytes]""#,
            ),
            (
                "0123456789\u{1b}[31m",
                r#""0123456789\u001b…[truncated 4 bytes]""#,
            ),
            (
                "012345678\u{0}secret",
                r#""012345678\u0000…[truncated 5 bytes]""#,
            ),
            ("012345678\\tail", r#""012345678\\…[truncated 3 bytes]""#),
            ("0123\u{0}tokentail", r#""0123\u0000…[truncated 3 bytes]""#),
        ] {
            let got = cut(s, 11);
            assert_eq!(got, want, "{s:?}");
            serde_json::from_str::<String>(&got).unwrap();
        }
    }

    #[test]
    fn patterns_can_be_turned_off() {
        let r = Redaction::new().without_pattern(Pattern::Card);
        assert_eq!(r.redact("4111111111111111"), "4111111111111111");
        assert!(!r.has(Pattern::Card));
        assert_eq!(Pattern::from_name("aws_key"), Some(Pattern::AwsKey));
        assert_eq!(Pattern::from_name("nope"), None);
    }

    #[test]
    fn hostile_input_is_safe() {
        let r = r();
        // Long runs, truncated patterns at the end, lone escapes, non-ASCII.
        let long = "4".repeat(100_000);
        assert_eq!(r.redact(&long), long);
        for t in [
            "\\",
            "\\u12",
            "eyJ",
            "eyJaaaaaaaaaaaa.",
            "-----BEGIN ",
            "-----BEGIN PRIVATE KEY",
            "x://",
            "://@",
            "a://b:@c",
            "=",
            "password=",
            "\"password\":",
            "Bearer",
            "AKIA",
            "héllo wörld ünïcode ✓ password=",
        ] {
            let _ = r.redact(t);
            let mut buf = t.as_bytes().to_vec();
            let _ = r.redact_json(&mut buf, 0);
        }
        assert_eq!(
            r.redact("mot de passe: ✓ password=sécurité&x=1"),
            "mot de passe: ✓ password=[REDACTED]&x=1"
        );
    }
}

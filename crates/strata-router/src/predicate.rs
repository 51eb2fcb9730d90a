//! Field predicates for routes: `status >= 500`, `tenant == "acme"`, `retry` (present),
//! `!sampled` (absent).

use std::fmt;
use std::str::FromStr;

use strata_core::FieldValue;
use tracing_core::field::{Field, Visit};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Exists,
    Absent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    None,
    Num(f64),
    Str(String),
    Bool(bool),
}

/// A condition on one field of the event, or of its enclosing spans (nearest first) when the
/// event has no such field.
///
/// Written `name OP value` with `OP` one of `==`, `!=`, `<`, `<=`, `>`, `>=`; `name` alone
/// means the field is present, `!name` that it is absent. Values are numbers, `true`/`false`,
/// or strings (quoted with `"` or bare). Numbers compare numerically with any numeric field and
/// with strings that parse as numbers; `==`/`!=` compare strings exactly.
///
/// ```
/// use strata_router::FieldPredicate;
///
/// let p: FieldPredicate = "http.status_code >= 500".parse().unwrap();
/// assert_eq!(p.to_string(), "http.status_code >= 500");
/// assert!("tenant == \"acme\"".parse::<FieldPredicate>().is_ok());
/// let err = "status >> 5".parse::<FieldPredicate>().unwrap_err();
/// assert!(err.to_string().contains("status >> 5"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPredicate {
    name: String,
    op: Op,
    value: Operand,
}

/// A predicate that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field predicate {input:?}: {reason}")]
pub struct PredicateError {
    input: String,
    reason: &'static str,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl FromStr for FieldPredicate {
    type Err = PredicateError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| PredicateError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let name_end = s
            .find(|c: char| c.is_whitespace() || "=!<>".contains(c))
            .unwrap_or(s.len());
        if name_end == 0 {
            if let Some(rest) = s.strip_prefix('!') {
                let name = rest.trim();
                return if valid_name(name) {
                    Ok(FieldPredicate {
                        name: name.to_owned(),
                        op: Op::Absent,
                        value: Operand::None,
                    })
                } else {
                    Err(err("expected a field name after `!`"))
                };
            }
            return Err(err("expected a field name first"));
        }
        let name = &s[..name_end];
        if !valid_name(name) {
            return Err(err(
                "a field name has letters, digits, `_`, `.` and `-` only",
            ));
        }
        let rest = s[name_end..].trim_start();
        if rest.is_empty() {
            return Ok(FieldPredicate {
                name: name.to_owned(),
                op: Op::Exists,
                value: Operand::None,
            });
        }
        let (op, rest) = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (op, r.trim())))
        .ok_or_else(|| err("expected one of == != < <= > >= after the field name"))?;
        if rest.is_empty() {
            return Err(err("expected a value after the operator"));
        }
        if rest.starts_with(['<', '>', '=', '!']) {
            return Err(err("expected one of == != < <= > >= after the field name"));
        }
        let value = if let Some(q) = rest.strip_prefix('"') {
            let inner = q
                .strip_suffix('"')
                .ok_or_else(|| err("unterminated string"))?;
            Operand::Str(inner.to_owned())
        } else if rest == "true" || rest == "false" {
            Operand::Bool(rest == "true")
        } else if let Some(n) = rest.parse::<f64>().ok().filter(|n| n.is_finite()) {
            Operand::Num(n)
        } else {
            Operand::Str(rest.to_owned())
        };
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !matches!(value, Operand::Num(_)) {
            return Err(err("<, <=, > and >= need a number"));
        }
        Ok(FieldPredicate {
            name: name.to_owned(),
            op,
            value,
        })
    }
}

impl fmt::Display for FieldPredicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Exists => return f.write_str(&self.name),
            Op::Absent => return write!(f, "!{}", self.name),
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        };
        write!(f, "{} {op} ", self.name)?;
        match &self.value {
            Operand::None => Ok(()),
            Operand::Num(n) => write!(f, "{n}"),
            Operand::Bool(b) => write!(f, "{b}"),
            Operand::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl FieldPredicate {
    /// The field this predicate looks at.
    pub fn field(&self) -> &str {
        &self.name
    }

    /// Whether a field with value `value` (`None`: no such field) satisfies the predicate.
    pub(crate) fn test(&self, value: Option<&FieldValue>) -> bool {
        let Some(v) = value else {
            return matches!(self.op, Op::Absent | Op::Ne);
        };
        match (self.op, &self.value) {
            (Op::Exists, _) => true,
            (Op::Absent, _) => false,
            (op, Operand::Num(want)) => {
                let Some(have) = number(v) else {
                    return op == Op::Ne;
                };
                match op {
                    Op::Eq => have == *want,
                    Op::Ne => have != *want,
                    Op::Lt => have < *want,
                    Op::Le => have <= *want,
                    Op::Gt => have > *want,
                    Op::Ge => have >= *want,
                    Op::Exists | Op::Absent => unreachable!("handled above"),
                }
            }
            (op, Operand::Bool(want)) => {
                let have = matches!(v, FieldValue::Bool(b) if b == want)
                    || v.as_str() == Some(if *want { "true" } else { "false" });
                (op == Op::Eq) == have
            }
            (op, Operand::Str(want)) => {
                let have = v.as_str() == Some(want.as_str());
                (op == Op::Eq) == have
            }
            (_, Operand::None) => false,
        }
    }
}

fn number(v: &FieldValue) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    match v {
        FieldValue::I64(n) => Some(*n as f64),
        FieldValue::U64(n) => Some(*n as f64),
        FieldValue::I128(n) => Some(*n as f64),
        FieldValue::U128(n) => Some(*n as f64),
        FieldValue::F64(n) => Some(*n),
        FieldValue::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Collects the values of the event fields that some predicate names (the first occurrence of
/// a name wins).
pub(crate) struct FieldLookup<'p> {
    pub(crate) predicates: &'p [FieldPredicate],
    pub(crate) found: Vec<(&'static str, FieldValue)>,
}

impl FieldLookup<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce() -> FieldValue) {
        let name = field.name();
        if self.predicates.iter().any(|p| p.name == name)
            && !self.found.iter().any(|(n, _)| *n == name)
        {
            self.found.push((name, value()));
        }
    }

    /// The event's value of `name`, if it has that field.
    pub(crate) fn get(&self, name: &str) -> Option<&FieldValue> {
        self.found.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Visit for FieldLookup<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, || FieldValue::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, || FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, || FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, || FieldValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, || FieldValue::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, || FieldValue::F64(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, || FieldValue::Str(value.into()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, || FieldValue::Str(format!("{value:?}").into()));
    }
}

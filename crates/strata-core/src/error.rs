//! Error classes (the tiered strategy) and helpers to log an error with its class and chain.

use std::cell::Cell;
use std::error::Error;
use std::fmt;

use crate::Severity;

/// What kind of failure an error is, which decides its level and whether it alerts.
///
/// | class | level | what happens |
/// |---|---|---|
/// | business (validation, not found, declined) | WARN | logged, shown to the user, never alerts |
/// | external (a dependency failed: timeout, 5xx) | ERROR | retried by the caller, alerts only when repeated |
/// | system (config missing, DB unreachable, invariant violated) | CRITICAL | captured, alerts at once |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorClass {
    /// An expected outcome of a user's request: validation, not found, declined.
    Business,
    /// A dependency failed: timeout, 5xx, connection refused.
    External,
    /// We are broken: configuration missing, database unreachable, invariant violated.
    System,
}

impl ErrorClass {
    /// The severity errors of this class are logged at.
    #[inline]
    pub const fn severity(self) -> Severity {
        match self {
            ErrorClass::Business => Severity::Warn,
            ErrorClass::External => Severity::Error,
            ErrorClass::System => Severity::Critical,
        }
    }

    /// The lower-case name used in the `error.class` field: `business`, `external`, `system`.
    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Business => "business",
            ErrorClass::External => "external",
            ErrorClass::System => "system",
        }
    }

    /// Parses the name written by [`ErrorClass::as_str`].
    pub fn from_name(name: &str) -> Option<ErrorClass> {
        match name {
            "business" => Some(ErrorClass::Business),
            "external" => Some(ErrorClass::External),
            "system" => Some(ErrorClass::System),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Implemented by domain errors to declare their [`ErrorClass`].
///
/// ```
/// use strata_core::{Classify, ErrorClass};
///
/// #[derive(Debug)]
/// enum PaymentError { Declined, GatewayTimeout }
/// # impl std::fmt::Display for PaymentError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
/// # }
/// # impl std::error::Error for PaymentError {}
///
/// impl Classify for PaymentError {
///     fn class(&self) -> ErrorClass {
///         match self {
///             PaymentError::Declined => ErrorClass::Business,
///             PaymentError::GatewayTimeout => ErrorClass::External,
///         }
///     }
/// }
/// ```
pub trait Classify {
    /// The class of this error value.
    fn class(&self) -> ErrorClass;
}

impl<T: Classify + ?Sized> Classify for &T {
    fn class(&self) -> ErrorClass {
        (**self).class()
    }
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn class(&self) -> ErrorClass {
        (**self).class()
    }
}

/// (address of the error, its type name, a check that a `dyn Error` is of that type); the
/// address alone is not enough, as a struct and its first field share one.
type TypeHint = (usize, &'static str, fn(&(dyn Error + 'static)) -> bool);

thread_local! {
    static TYPE_HINT: Cell<TypeHint> = const { Cell::new((0, "", |_| false)) };
}

/// Runs `f` with the concrete type name of `error` available to [`error_type_name`].
///
/// A `&dyn Error` recorded as a field does not carry its type name; code that still knows the
/// concrete type (like [`log_error!`](crate::log_error)) wraps the emission in this so the
/// formatters can print `"type": "my_crate::PaymentError"`.
pub fn with_error_type<E: Error + 'static, R>(error: &E, f: impl FnOnce() -> R) -> R {
    let addr = error as *const E as *const () as usize;
    let prev = TYPE_HINT.with(|h| h.replace((addr, std::any::type_name::<E>(), |e| e.is::<E>())));
    let out = f();
    TYPE_HINT.with(|h| h.set(prev));
    out
}

/// The type name of `error` where one can be had: the one given by an enclosing
/// [`with_error_type`] for this very value, or the name of a well-known standard error type.
pub fn error_type_name(error: &(dyn Error + 'static)) -> Option<&'static str> {
    let addr = error as *const dyn Error as *const () as usize;
    let (hint_addr, hint, is_that_type) = TYPE_HINT.with(Cell::get);
    if hint_addr == addr && is_that_type(error) {
        return Some(hint);
    }
    macro_rules! known {
        ($($t:ty),* $(,)?) => {
            $(if error.is::<$t>() { return Some(stringify!($t)); })*
        };
    }
    known!(
        std::io::Error,
        std::fmt::Error,
        std::num::ParseIntError,
        std::num::ParseFloatError,
        std::num::TryFromIntError,
        std::str::Utf8Error,
        std::string::FromUtf8Error,
        std::str::ParseBoolError,
        std::char::ParseCharError,
        std::net::AddrParseError,
        std::time::SystemTimeError,
        std::array::TryFromSliceError,
    );
    None
}

/// Iterates over an error and its `source()` chain, outermost first.
///
/// Stops after 64 links, so a cyclic `source()` implementation cannot loop forever.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source()).take(64)
}

/// Logs `error` at the level its [`ErrorClass`] calls for, with its class, type and full
/// `source()` chain: business → WARN, external → ERROR, system → CRITICAL.
///
/// The first argument must implement both [`std::error::Error`] and [`Classify`]; an optional
/// message and extra fields follow, as in `tracing` macros.
///
/// ```
/// use strata_core::{log_error, Classify, ErrorClass};
/// # #[derive(Debug)] struct Timeout;
/// # impl std::fmt::Display for Timeout { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("timed out") } }
/// # impl std::error::Error for Timeout {}
/// impl Classify for Timeout { fn class(&self) -> ErrorClass { ErrorClass::External } }
///
/// let err = Timeout;
/// log_error!(err, attempt = 3, "charging the card failed");
/// ```
#[macro_export]
macro_rules! log_error {
    ($err:expr $(, $($rest:tt)+)?) => {{
        let __strata_err = &$err;
        let __strata_class = $crate::Classify::class(__strata_err);
        $crate::error::with_error_type(__strata_err, || {
            let __strata_dyn: &(dyn ::std::error::Error + 'static) = __strata_err;
            match __strata_class.severity() {
                $crate::Severity::Critical => $crate::__private::tracing::error!(
                    strata.critical = true,
                    error = __strata_dyn,
                    error.class = __strata_class.as_str()
                    $(, $($rest)+)?
                ),
                $crate::Severity::Error => $crate::__private::tracing::error!(
                    error = __strata_dyn,
                    error.class = __strata_class.as_str()
                    $(, $($rest)+)?
                ),
                _ => $crate::__private::tracing::warn!(
                    error = __strata_dyn,
                    error.class = __strata_class.as_str()
                    $(, $($rest)+)?
                ),
            }
        })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn type_names_come_from_the_hint_or_known_types() {
        let e = Outer(std::io::Error::other("disk"));
        let dyn_e: &(dyn Error + 'static) = &e;
        assert_eq!(error_type_name(dyn_e), None);
        let inner = with_error_type(&e, || {
            let links: Vec<_> = chain(dyn_e).map(error_type_name).collect();
            links
        });
        assert_eq!(inner[0], Some(std::any::type_name::<Outer>()));
        assert_eq!(inner[1], Some("std::io::Error"));
        // the hint is gone after the closure
        assert_eq!(error_type_name(dyn_e), None);
    }

    #[test]
    fn class_levels_follow_the_tiered_strategy() {
        assert_eq!(ErrorClass::Business.severity(), Severity::Warn);
        assert_eq!(ErrorClass::External.severity(), Severity::Error);
        assert_eq!(ErrorClass::System.severity(), Severity::Critical);
        for c in [
            ErrorClass::Business,
            ErrorClass::External,
            ErrorClass::System,
        ] {
            assert_eq!(ErrorClass::from_name(c.as_str()), Some(c));
        }
    }
}

//! Sentry-style error capture for strata (in progress).

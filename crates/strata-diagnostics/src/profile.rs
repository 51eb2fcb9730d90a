//! `GET /debug/pprof/profile?seconds=N`: an on-demand CPU profile of the whole process
//! (pprof-rs: SIGPROF sampling of every thread), as a flame-graph SVG (the default) or, with
//! `format=pprof`, as pprof protobuf for `go tool pprof` / `pprof -http`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Longest profile a request may ask for.
pub const MAX_PROFILE_SECONDS: u64 = 120;

/// One profile at a time: the profiler is process-wide.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// What a profile request asked for.
#[derive(Debug, PartialEq)]
struct Request {
    seconds: u64,
    frequency: i32,
    pprof: bool,
}

/// Reads `seconds` (default 10, 1 to 120), `frequency` (samples a second, default 99, 1 to
/// 1000) and `format` (`svg`, the default, or `pprof`); names what is wrong otherwise.
fn parse(query: Option<&str>) -> Result<Request, String> {
    let mut r = Request {
        seconds: 10,
        frequency: 99,
        pprof: false,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let shown = || {
            value
                .chars()
                .take(32)
                .collect::<String>()
                .escape_debug()
                .to_string()
        };
        match key {
            "seconds" => {
                r.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_PROFILE_SECONDS).contains(s))
                    .ok_or_else(|| {
                        format!("seconds must be a whole number from 1 to {MAX_PROFILE_SECONDS}, not \"{}\"", shown())
                    })?;
            }
            "frequency" => {
                r.frequency = value
                    .parse()
                    .ok()
                    .filter(|f| (1..=1000).contains(f))
                    .ok_or_else(|| {
                        format!(
                            "frequency must be a whole number from 1 to 1000, not \"{}\"",
                            shown()
                        )
                    })?;
            }
            "format" => {
                r.pprof = match value {
                    "svg" => false,
                    "pprof" | "proto" => true,
                    _ => return Err(format!("format must be svg or pprof, not \"{}\"", shown())),
                };
            }
            _ => {}
        }
    }
    Ok(r)
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, text + "\n").into_response()
}

/// The handler of `/debug/pprof/profile`.
pub(crate) async fn profile(RawQuery(query): RawQuery) -> Response {
    let req = match parse(query.as_deref()) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    if PROFILING.swap(true, Ordering::AcqRel) {
        return plain(
            StatusCode::CONFLICT,
            "a profile is already being taken; try again when it is done".to_owned(),
        );
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            PROFILING.store(false, Ordering::Release);
        }
    }
    let _release = Release;
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(req.frequency)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(g) => g,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start the profiler: {e}"),
            );
        }
    };
    tokio::time::sleep(Duration::from_secs(req.seconds)).await;
    let report = match guard.report().build() {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot build the profile: {e}"),
            );
        }
    };
    drop(guard);
    let (body, content_type) = if req.pprof {
        use pprof::protos::Message as _;
        match report.pprof() {
            Ok(p) => (p.encode_to_vec(), "application/octet-stream"),
            Err(e) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode the profile: {e}"),
                );
            }
        }
    } else {
        let mut svg = Vec::new();
        if let Err(e) = report.flamegraph(&mut svg) {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot draw the flame graph: {e}"),
            );
        }
        (svg, "image/svg+xml")
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked_and_named() {
        assert_eq!(
            parse(None),
            Ok(Request {
                seconds: 10,
                frequency: 99,
                pprof: false
            })
        );
        assert_eq!(
            parse(Some("seconds=3&format=pprof&frequency=250")),
            Ok(Request {
                seconds: 3,
                frequency: 250,
                pprof: true
            })
        );
        for (q, want) in [
            (
                "seconds=0",
                "seconds must be a whole number from 1 to 120, not \"0\"",
            ),
            (
                "seconds=121",
                "seconds must be a whole number from 1 to 120, not \"121\"",
            ),
            (
                "seconds=-1",
                "seconds must be a whole number from 1 to 120, not \"-1\"",
            ),
            (
                "frequency=5000",
                "frequency must be a whole number from 1 to 1000, not \"5000\"",
            ),
            ("format=png", "format must be svg or pprof, not \"png\""),
            (
                "format=%1b%5b2J\u{1b}",
                "format must be svg or pprof, not \"%1b%5b2J\\u{1b}\"",
            ),
        ] {
            assert_eq!(parse(Some(q)).unwrap_err(), want, "{q}");
        }
    }
}

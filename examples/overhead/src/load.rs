//! The load generator: a fixed number of HTTP/1.1 keep-alive connections, each sending
//! `GET /` and waiting for the whole response before the next, on a single-threaded tokio
//! runtime: as fast as the server answers (a closed loop, like `wrk`), or at a fixed total rate
//! (`--rate`, like `wrk2`: each connection sends on a schedule, so every mode does the same
//! work per second and its CPU per request counts all of it).
//!
//! `overhead load --addr A [--pid P] [--connections 32] [--warmup 2] [--duration 10]` runs a
//! warm-up, then the measurement, and prints one JSON [`LoadResult`] line. With `--pid` it reads
//! the server's CPU time (`/proc/P/stat`) exactly when the measurement starts and ends.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procfs::{self, CpuTimes};

/// The request every connection sends.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: strata-overhead\r\n\r\n";

/// How to load the server.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's address.
    pub addr: SocketAddr,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Load before the measurement starts (not counted).
    pub warmup: Duration,
    /// How long the measurement lasts.
    pub duration: Duration,
    /// The server's process ID, to read its CPU time over the measurement.
    pub pid: Option<u32>,
    /// Requests per second over all connections; `None`: as fast as the server answers.
    pub rate: Option<u32>,
}

/// What one measurement saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadResult {
    /// Responses completed during the measurement.
    pub requests: u64,
    /// Of those, responses whose status was not 200.
    pub errors: u64,
    /// The measurement's actual length, in seconds.
    pub seconds: f64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// The server's CPU time over the measurement, when its PID was given.
    pub cpu: Option<CpuTimes>,
    /// The load generator's own CPU time over the measurement, in seconds.
    pub load_cpu: f64,
}

impl LoadResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// As one line of JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "cpu_process_s": self.cpu.map(|c| c.process),
            "cpu_receiver_s": self.cpu.map(|c| c.receiver),
            "load_cpu_s": self.load_cpu,
        })
    }

    /// Reads the line [`LoadResult::to_json`] wrote.
    pub fn from_json(v: &serde_json::Value) -> LoadResult {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        LoadResult {
            requests: v["requests"].as_u64().unwrap_or(0),
            errors: v["errors"].as_u64().unwrap_or(0),
            seconds: f("seconds"),
            p50_us: f("p50_us"),
            p99_us: f("p99_us"),
            cpu: v["cpu_process_s"].as_f64().map(|process| CpuTimes {
                process,
                receiver: f("cpu_receiver_s"),
            }),
            load_cpu: f("load_cpu_s"),
        }
    }
}

/// Where a complete response ends in `buf`, and its status: `None` while incomplete.
///
/// # Errors
///
/// A response that is not HTTP/1.x or has no `Content-Length` (the service always sends one).
fn parse_response(buf: &[u8]) -> io::Result<Option<(usize, u16)>> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no HTTP/1.x status line"))?;
    let length = lines
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .ok_or_else(|| bad("no Content-Length"))?;
    let end = head_end + 4 + length;
    Ok((buf.len() >= end).then_some((end, status)))
}

/// One connection's loop until `end`; latencies (µs) of responses completed within
/// `[start, end)`, and how many of those were not 200.
///
/// With a `pace` (`(first send, interval)`), requests go out on that schedule; one that falls
/// behind it is sent at once (the schedule is absolute, so the rate holds). Latency is counted
/// from the actual send.
async fn connection(
    addr: SocketAddr,
    start: Instant,
    end: Instant,
    pace: Option<(Instant, Duration)>,
) -> io::Result<(Vec<u32>, u64)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0_u8; 4096];
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut next = pace.map(|(first, _)| first);
    loop {
        if let (Some(at), Some((_, interval))) = (next.as_mut(), pace) {
            tokio::time::sleep_until((*at).into()).await;
            *at += interval;
        }
        let sent = Instant::now();
        if sent >= end {
            return Ok((latencies, errors));
        }
        stream.write_all(REQUEST).await?;
        let status = loop {
            if let Some((len, status)) = parse_response(&buf)? {
                buf.drain(..len);
                break status;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let done = Instant::now();
        if done >= start && done < end {
            latencies
                .push(u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX));
            if status != 200 {
                errors += 1;
            }
        }
    }
}

/// The `q` quantile (0..1) of sorted values, by nearest rank.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

/// Runs the warm-up and the measurement.
///
/// # Errors
///
/// When the runtime cannot start, a connection fails, or the server's CPU time cannot be read.
pub fn run(opts: &LoadOptions) -> io::Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let begin = Instant::now();
        let start = begin + opts.warmup;
        let end = start + opts.duration;
        // Paced: each connection sends every `connections / rate`, the connections spread
        // evenly over one interval.
        let interval = opts
            .rate
            .filter(|&r| r > 0)
            .map(|r| Duration::from_secs_f64(opts.connections as f64 / f64::from(r)));
        let tasks: Vec<_> = (0..opts.connections)
            .map(|i| {
                let pace =
                    interval.map(|iv| (begin + iv.mul_f64(i as f64 / opts.connections as f64), iv));
                tokio::spawn(connection(opts.addr, start, end, pace))
            })
            .collect();
        tokio::time::sleep_until(start.into()).await;
        let own_start = procfs::cpu_times(std::process::id())?;
        let cpu_start = opts.pid.map(procfs::cpu_times).transpose()?;
        let measured_from = Instant::now();
        tokio::time::sleep_until(end.into()).await;
        let cpu_end = opts.pid.map(procfs::cpu_times).transpose()?;
        let measured_to = Instant::now();
        let own_end = procfs::cpu_times(std::process::id())?;
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.map_err(io::Error::other)??;
            latencies.extend(l);
            errors += e;
        }
        latencies.sort_unstable();
        Ok(LoadResult {
            requests: latencies.len() as u64,
            errors,
            seconds: measured_to.duration_since(measured_from).as_secs_f64(),
            p50_us: quantile(&latencies, 0.50),
            p99_us: quantile(&latencies, 0.99),
            cpu: cpu_start.zip(cpu_end).map(|(a, b)| b.since(&a)),
            load_cpu: own_end.since(&own_start).process,
        })
    })
}

/// One response, as [`get`] read it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header block, as text (lines separated by CRLF).
    pub head: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One blocking `GET /` on a new connection (for tests and checks).
///
/// # Errors
///
/// When the connection fails or the response is not understood.
pub fn get(addr: SocketAddr) -> io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(REQUEST)?;
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some((len, status)) = parse_response(&buf)? {
            let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
            return Ok(Response {
                status,
                head: String::from_utf8_lossy(&buf[..head_end]).into_owned(),
                body: String::from_utf8_lossy(&buf[head_end + 4..len]).into_owned(),
            });
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_and_partial_responses() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, World!";
        assert_eq!(parse_response(r).unwrap(), Some((r.len(), 200)));
        assert_eq!(parse_response(&r[..r.len() - 1]).unwrap(), None);
        assert_eq!(parse_response(&r[..10]).unwrap(), None);
        let two = [&r[..], &r[..]].concat();
        assert_eq!(parse_response(&two).unwrap(), Some((r.len(), 200)));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}

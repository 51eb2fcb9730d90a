//! The HTTP overhead benchmark (issue 10): an axum hello-world service bare, with strata
//! (everything on, and the production profile) and with the peer stack, each under a bounded
//! load from a second process; see `docs/performance.md` for what each mode includes.
//!
//! ```sh
//! # the whole benchmark: 3 rounds × 4 modes × (2 s warm-up + 10 s), medians as markdown
//! cargo run --release -p example-overhead --bin overhead
//! cargo run --release -p example-overhead --bin overhead -- --rounds 5 --duration 5 --json runs.jsonl
//!
//! # its parts, by hand
//! overhead server strata --port 8080      # prints the address; serves until stdin closes
//! overhead load --addr 127.0.0.1:8080 --connections 32 --warmup 2 --duration 10
//! ```
//!
//! Driver options: `--rounds N`, `--warmup SECONDS`, `--duration SECONDS`, `--connections N`,
//! `--rate R` (requests per second in all, default 10 000; 0: as fast as the server answers),
//! `--modes bare,strata,peers,strata-production`, `--no-pin` (no `taskset`), `--json FILE`
//! (every run as JSON lines).

use std::process::ExitCode;
use std::time::Duration;

use example_overhead::driver::{self, DriverOptions};
use example_overhead::load::{self, LoadOptions};
use example_overhead::service::{self, Options};
use example_overhead::{Mode, load::LoadResult};

const USAGE: &str = "usage:
  overhead [--rounds N] [--warmup S] [--duration S] [--connections N] [--rate R] [--modes a,b] [--no-pin] [--json FILE]
  overhead server MODE [--port N] [--receiver-cpu N]
  overhead load --addr HOST:PORT [--pid N] [--connections N] [--rate R] [--warmup S] [--duration S]
--rate R: requests per second in all (the driver's default: 10000); 0: as fast as the server answers
modes: bare, strata, peers, strata-production";

/// The value after a flag, parsed.
fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid value"))
}

fn seconds(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<Duration, String> {
    let s: f64 = value(args, flag)?;
    if !(0.0..=600.0).contains(&s) {
        return Err(format!("{flag}: between 0 and 600 seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn server(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mode: Mode = args.next().ok_or("server: which mode?")?.parse()?;
    let mut opts = Options {
        mode,
        port: std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        receiver_cpu: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => opts.port = value(&mut args, "--port")?,
            "--receiver-cpu" => opts.receiver_cpu = Some(value(&mut args, "--receiver-cpu")?),
            _ => return Err(format!("server: unknown argument {a:?}")),
        }
    }
    service::run(&opts).map_err(|e| format!("server: {e}"))
}

fn load(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut addr = None;
    let mut opts = LoadOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        connections: 32,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(10),
        pid: None,
        rate: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = Some(value(&mut args, "--addr")?),
            "--pid" => opts.pid = Some(value(&mut args, "--pid")?),
            "--rate" => opts.rate = Some(value(&mut args, "--rate")?),
            "--connections" => opts.connections = value(&mut args, "--connections")?,
            "--warmup" => opts.warmup = seconds(&mut args, "--warmup")?,
            "--duration" => opts.duration = seconds(&mut args, "--duration")?,
            _ => return Err(format!("load: unknown argument {a:?}")),
        }
    }
    opts.addr = addr.ok_or("load: --addr is required")?;
    if !opts.addr.ip().is_loopback() {
        return Err("load: only loopback addresses".to_owned());
    }
    opts.connections = opts.connections.clamp(1, 1024);
    let result: LoadResult = load::run(&opts).map_err(|e| format!("load: {e}"))?;
    println!("{}", result.to_json());
    Ok(())
}

fn drive(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut opts = DriverOptions::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => opts.rounds = value::<usize>(&mut args, "--rounds")?.clamp(1, 20),
            "--warmup" => opts.warmup = seconds(&mut args, "--warmup")?,
            "--duration" => opts.duration = seconds(&mut args, "--duration")?,
            "--connections" => {
                opts.connections = value::<usize>(&mut args, "--connections")?.clamp(1, 1024);
            }
            "--modes" => {
                let list: String = value(&mut args, "--modes")?;
                opts.modes = list
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<Mode>, _>>()?;
            }
            "--rate" => opts.rate = value::<u32>(&mut args, "--rate")?,
            "--no-pin" => opts.pin = false,
            "--json" => opts.json = Some(value::<String>(&mut args, "--json")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let runs = driver::run_all(&exe, &opts).map_err(|e| e.to_string())?;
    println!("{}", driver::render(&runs, &opts));
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let result = match args.peek().map(String::as_str) {
        Some("server") => {
            args.next();
            server(args)
        }
        Some("load") => {
            args.next();
            load(args)
        }
        _ => drive(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overhead: {e}");
            ExitCode::FAILURE
        }
    }
}

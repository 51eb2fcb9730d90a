//! RFC 5424 syslog over UDP, TCP (octet-counted frames, RFC 6587) or a unix datagram socket.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata_core::Severity;

use crate::router::{EventInfo, Sink};

/// Where a [`SyslogSink`] sends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transport {
    /// One datagram per message.
    Udp(SocketAddr),
    /// A stream of octet-counted frames (`LEN SP MSG`), reconnected on failure (at most once a
    /// second).
    Tcp(SocketAddr),
    /// A unix datagram socket, such as `/dev/log`.
    Unix(PathBuf),
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

/// The largest message sent, in bytes (longer ones are cut, on a character boundary).
const MAX_MESSAGE: usize = 8 * 1024;

/// A syslog sink: each line becomes one RFC 5424 message,
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`, with the priority from the event's
/// severity (CRITICAL → crit, ERROR → err, WARN → warning, INFO → info, DEBUG/TRACE → debug)
/// and the rendered line (usually JSON) as MSG.
///
/// Sends happen on the calling thread with a one-second timeout; failures are counted by the
/// router and never panic. Wrap it in [`crate::Background`] (as the TOML configuration always
/// does) so that a slow or unreachable server never holds up the caller.
pub struct SyslogSink {
    transport: Transport,
    facility: u8,
    app: String,
    host: String,
    conn: Mutex<(Option<Conn>, Option<Instant>)>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("transport", &self.transport)
            .field("facility", &self.facility)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// A syslog field: printable ASCII without spaces, at most `max` bytes, `-` when empty.
fn field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".to_owned() } else { v }
}

impl SyslogSink {
    /// A sink for `transport`, facility `user` (1), APP-NAME `app`.
    pub fn new(transport: Transport, app: &str) -> Self {
        SyslogSink {
            transport,
            facility: 1,
            app: field(app, 48),
            host: field(&strata_core::host_name().unwrap_or_default(), 255),
            conn: Mutex::new((None, None)),
        }
    }

    /// The facility code (0–23; `local0` is 16). Default: 1 (`user`).
    #[must_use]
    pub fn with_facility(mut self, facility: u8) -> Self {
        self.facility = facility.min(23);
        self
    }

    fn severity_code(sev: Severity) -> u8 {
        match sev {
            Severity::Critical => 2,
            Severity::Error => 3,
            Severity::Warn => 4,
            Severity::Info => 6,
            Severity::Debug | Severity::Trace => 7,
        }
    }

    /// The RFC 5424 message for one rendered line.
    fn message(&self, sev: Severity, line: &[u8]) -> Vec<u8> {
        let pri = u16::from(self.facility) * 8 + u16::from(Self::severity_code(sev));
        let mut msg = format!(
            "<{pri}>1 {} {} {} {} - - ",
            strata_core::encode::rfc3339_now(),
            self.host,
            self.app,
            std::process::id()
        )
        .into_bytes();
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let text = String::from_utf8_lossy(body);
        msg.extend_from_slice(strata_core::encode::clip(&text, MAX_MESSAGE).as_bytes());
        msg
    }

    fn connect(&self) -> io::Result<Conn> {
        Ok(match &self.transport {
            Transport::Udp(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                }
                .parse()
                .expect("valid");
                let s = UdpSocket::bind(bind)?;
                s.connect(addr)?;
                Conn::Udp(s)
            }
            Transport::Tcp(addr) => {
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(1))?;
                s.set_write_timeout(Some(Duration::from_secs(1)))?;
                Conn::Tcp(s)
            }
            Transport::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Conn::Unix(s)
            }
        })
    }

    fn send(&self, sev: Severity, line: &[u8]) -> io::Result<()> {
        let msg = self.message(sev, line);
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, last_attempt) = &mut *guard;
        if conn.is_none() {
            if last_attempt.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "syslog: reconnecting at most once a second",
                ));
            }
            *last_attempt = Some(Instant::now());
            *conn = Some(self.connect()?);
        }
        let result = match conn.as_mut().expect("connected above") {
            Conn::Udp(s) => s.send(&msg).map(drop),
            Conn::Unix(s) => s.send(&msg).map(drop),
            Conn::Tcp(s) => {
                let mut frame = format!("{} ", msg.len()).into_bytes();
                frame.extend_from_slice(&msg);
                s.write_all(&frame)
            }
        };
        if result.is_err() {
            *conn = None;
        }
        result
    }
}

impl Sink for SyslogSink {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        self.send(Severity::Info, line)
    }

    fn write_event(&self, event: &EventInfo, line: &[u8]) -> io::Result<()> {
        self.send(event.severity, line)
    }

    fn is_network(&self) -> bool {
        !matches!(self.transport, Transport::Unix(_))
    }
}

//! CPU time of a process from `/proc`, split into the service's own threads and the in-process
//! OTLP receiver's.

use std::fs;
use std::io;

/// The prefix of the OTLP receiver's thread names (strata-testkit names its runtime's threads
/// `strata-testkit-otlp`; the kernel keeps the first 15 bytes).
pub const RECEIVER_THREADS: &str = "strata-testkit-";

/// CPU time used by a process so far, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// User + system time of the whole process, every thread (live or exited) included.
    pub process: f64,
    /// User + system time of the live threads named like the OTLP receiver's.
    pub receiver: f64,
}

impl CpuTimes {
    /// The service's own share: the process without the receiver (the stand-in for a collector,
    /// which in production runs elsewhere).
    pub fn service(&self) -> f64 {
        (self.process - self.receiver).max(0.0)
    }

    /// What was used between `earlier` and `self`.
    #[must_use]
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            process: self.process - earlier.process,
            receiver: self.receiver - earlier.receiver,
        }
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, almost always 100).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime (fields 14 and 15) of a `stat` file's text, in ticks.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU times of process `pid` now.
///
/// # Errors
///
/// When `/proc/PID/stat` cannot be read or parsed (the process is gone).
pub fn cpu_times(pid: u32) -> io::Result<CpuTimes> {
    let hz = ticks_per_second();
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format");
    let process = stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat"))?).ok_or_else(bad)?;
    let mut receiver = 0;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let path = task.path();
            let Ok(comm) = fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if comm.starts_with(RECEIVER_THREADS)
                && let Some(t) = fs::read_to_string(path.join("stat"))
                    .ok()
                    .as_deref()
                    .and_then(stat_ticks)
            {
                receiver += t;
            }
        }
    }
    Ok(CpuTimes {
        process: process as f64 / hz,
        receiver: receiver as f64 / hz,
    })
}

/// Moves every live thread of this process whose name starts with `prefix` to CPU `cpu`, at
/// idle priority (`SCHED_IDLE`: they run only when nothing else on that CPU wants to, so they
/// never delay the load generator sharing it); returns how many were moved.
///
/// # Errors
///
/// When `/proc/self/task` cannot be read or the kernel refuses the affinity.
pub fn pin_threads(prefix: &str, cpu: usize) -> io::Result<usize> {
    let mut moved = 0;
    for task in fs::read_dir("/proc/self/task")?.flatten() {
        let Ok(comm) = fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it, and
        // sched_setaffinity and sched_setscheduler only read what they are given.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            let param = libc::sched_param { sched_priority: 0 };
            let rc = libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
            if rc == 0 {
                libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param)
            } else {
                rc
            }
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_a_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(stat_ticks(stat), Some(300));
    }

    #[test]
    fn reads_this_process() {
        let t = cpu_times(std::process::id()).expect("own stat");
        assert!(t.process >= 0.0 && t.receiver == 0.0);
    }
}

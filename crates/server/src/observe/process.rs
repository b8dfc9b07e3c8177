//! The process's own figures for `/metrics` and the status page: resident memory, open
//! file descriptors, CPU time. Read from `/proc` at scrape time (Linux); elsewhere
//! they are absent.

/// What `/proc` says about this process now; `None` where it could not be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    /// Resident set size, bytes.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
}

impl Process {
    /// Reads the figures now.
    pub fn now() -> Self {
        Process {
            rss_bytes: rss(),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            cpu_seconds: cpu(),
        }
    }
}

/// `VmRSS` of `/proc/self/status` (in kB there).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `utime` + `stime` of `/proc/self/stat`, in clock ticks of `USER_HZ`, which Linux
/// fixes at 100 for what it shows user space.
fn cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_figures_of_this_process_are_read() {
        let p = super::Process::now();
        assert!(p.rss_bytes.is_some_and(|b| b > 0));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
        assert!(p.cpu_seconds.is_some());
    }
}

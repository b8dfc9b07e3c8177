//! The server under test as a process: started by the generator (optionally pinned with
//! `taskset`) or named by PID, and read from `/proc`: CPU seconds (`utime + stime` of
//! `/proc/PID/stat`) and resident memory (`VmRSS` of `/proc/PID/status`); and the
//! machine's TCP socket counts (`/proc/net/sockstat`); and the generator's own worker
//! processes, ended with [`reap`].

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// The server being measured.
#[derive(Debug)]
pub struct ServerProcess {
    pid: u32,
    /// Set when the generator started it (and so must stop it).
    child: Option<Child>,
}

impl ServerProcess {
    /// A server started elsewhere.
    pub fn existing(pid: u32) -> Self {
        Self { pid, child: None }
    }

    /// Starts `command` (split on whitespace), pinned to `cpu` when given, and waits up to
    /// 20 s until `addr` accepts TCP connections.
    pub fn spawn(command: &str, cpu: Option<&str>, addr: SocketAddr) -> std::io::Result<Self> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some((program, args)) = words.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty --server-cmd",
            ));
        };
        let mut cmd = match cpu {
            // taskset execs the program, so the PID is the server's own.
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn()?;
        let mut server = Self {
            pid: child.id(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // The probe connection is closed at once; give the server a moment to
                // forget it so it does not blur an idle measurement.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(server);
            }
            if let Some(c) = server.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    return Err(std::io::Error::other(format!(
                        "server exited before listening: {status}"
                    )));
                }
            }
            if Instant::now() > deadline {
                server.stop();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("server did not listen on {addr} within 20 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_seconds(&self) -> std::io::Result<f64> {
        cpu_seconds(self.pid)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> std::io::Result<u64> {
        rss_kib(self.pid)
    }

    /// Kills a server the generator started at once (SIGKILL: a crash, nothing drained)
    /// and waits for it to go; a server named by PID is left alone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops a server the generator started (SIGTERM via `kill`, then SIGKILL after 3 s);
    /// a server named by PID is left alone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to `within` in all for `children` (this generator's worker processes) to exit,
/// then kills the ones still running, by their handles, and reaps every one.
pub fn reap<'a>(children: impl IntoIterator<Item = &'a mut Child>, within: Duration) {
    let deadline = Instant::now() + within;
    for child in children {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&stat)
        .map(|ticks| ticks as f64 / CLK_TCK)
        .ok_or_else(|| std::io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

/// `utime + stime` in ticks from a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid (4) … utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Read and write system calls (`syscr`, `syscw` of `/proc/PID/io`: `read`, `write`,
/// `writev` and the like; `recv`/`send` are not counted) of process `pid` so far: a
/// delivery count divided by writes says how many frames each write carried.
pub fn syscalls(pid: u32) -> std::io::Result<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    match (field("syscr:"), field("syscw:")) {
        (Some(r), Some(w)) => Ok((r, w)),
        _ => Err(std::io::Error::other(format!(
            "cannot parse /proc/{pid}/io"
        ))),
    }
}

/// TCP segments sent so far by the established loopback sockets whose local port is
/// `port` (the sum of `segs_out` in `ss -ti`), or `None` without `ss`. Only sockets open
/// at both readings compare, so take both while the same connections are up.
pub fn tcp_segments_out(port: u16) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_segs_out(&String::from_utf8_lossy(&out.stdout)))
}

/// The sum of every `segs_out:N` in `ss -ti` output.
fn parse_segs_out(text: &str) -> u64 {
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix("segs_out:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// `VmRSS` of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

/// A field of the `TCP:` line of `/proc/net/sockstat` (`inuse`, `tw` (TIME_WAIT),
/// `mem` (pages of socket buffers), …), machine-wide.
pub fn sockstat_tcp(field: &str) -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    parse_sockstat_tcp(&sockstat, field)
}

fn parse_sockstat_tcp(sockstat: &str, field: &str) -> Option<u64> {
    let tcp = sockstat.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let mut words = tcp.split_whitespace();
    std::iter::from_fn(|| Some((words.next()?, words.next()?)))
        .find(|(k, _)| *k == field)?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_name() {
        let line = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_cpu(line), Some(325));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn segments_summed_over_sockets() {
        let text = "ESTAB 0 0 127.0.0.1:9400 127.0.0.1:5000\n\t cubic segs_out:12 segs_in:3 \
                    data_segs_out:10\nESTAB 0 0 127.0.0.1:9400 127.0.0.1:5001\n\t segs_out:30 \
                    segs_in:1 lastsnd:4\n";
        assert_eq!(parse_segs_out(text), 42);
        assert_eq!(parse_segs_out(""), 0);
    }

    #[test]
    fn sockstat_fields() {
        let text = "sockets: used 121\nTCP: inuse 102 orphan 0 tw 18106 alloc 102 mem 78\n";
        assert_eq!(parse_sockstat_tcp(text, "tw"), Some(18106));
        assert_eq!(parse_sockstat_tcp(text, "mem"), Some(78));
        assert_eq!(parse_sockstat_tcp(text, "used"), None);
        assert_eq!(parse_sockstat_tcp("", "tw"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_ok());
        assert!(rss_kib(me).expect("own VmRSS") > 0);
        let (r, _) = syscalls(me).expect("own /proc/PID/io");
        assert!(r > 0);
    }
}

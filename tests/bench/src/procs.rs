//! Child processes (the server, the baselines) and what /proc says of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server in its own process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// From spawn to its `listening on http://...` line.
    pub started_in: Duration,
    /// Whatever else it printed on standard output before the URL line.
    pub preamble: Vec<String>,
}

impl Server {
    /// Starts `program args...`, its standard error into `log`, and waits for the line
    /// holding its URL (`crm-server listening on http://ADDR`).
    pub fn start(program: &Path, args: &[&str], log: &Path) -> Result<Server, String> {
        let started = Instant::now();
        let stderr = std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut preamble = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) => match line.split_whitespace().find(|w| w.starts_with("http://")) {
                    Some(url) => {
                        let url = url.trim_end_matches('/').to_string();
                        // Keep draining its standard output so that it never blocks on it.
                        std::thread::spawn(move || for _ in lines.by_ref() {});
                        return Ok(Server {
                            child,
                            url,
                            started_in: started.elapsed(),
                            preamble,
                        });
                    }
                    None => preamble.push(line),
                },
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(format!(
                        "{} exited before listening: {}\n{log}",
                        program.display(),
                        preamble.join("\n")
                    ));
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (crm-server then flushes and exits), SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        terminate(&mut self.child, grace);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(30));
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time the process has used (user + system), in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state (field 3), ... utime (14), stime (15).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Waits until the process uses less than a tenth of a core for two samples in a row
/// (the work a previous load left queued is done); answers how long that took, or
/// `None` if it stayed busy for `max`.
pub fn wait_quiet(pid: u32, max: Duration) -> Option<Duration> {
    const SAMPLE: Duration = Duration::from_millis(150);
    let started = Instant::now();
    let mut last = cpu_ticks(pid)?;
    let mut quiet = 0;
    while started.elapsed() < max {
        std::thread::sleep(SAMPLE);
        let now = cpu_ticks(pid)?;
        // 150 ms is 15 ticks of one core: a tenth is 1.5.
        if now.saturating_sub(last) <= 1 {
            quiet += 1;
            if quiet == 2 {
                return Some(started.elapsed());
            }
        } else {
            quiet = 0;
        }
        last = now;
    }
    None
}

/// Resets the process's VmHWM to its current RSS, so that the next peak is its own.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Samples a process's VmHWM and VmRSS every 20 ms until stopped: the peak survives the
/// process's exit.
pub struct PeakWatch {
    running: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: std::thread::JoinHandle<()>,
}

impl PeakWatch {
    pub fn start(pid: u32) -> PeakWatch {
        let running = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = std::thread::spawn({
            let (running, peak) = (running.clone(), peak.clone());
            move || {
                while running.load(Ordering::Relaxed) {
                    for field in ["VmHWM", "VmRSS"] {
                        if let Some(kib) = status_kib(pid, field) {
                            peak.fetch_max(kib, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        PeakWatch { running, peak, sampler }
    }

    /// The peak in MB (10^6 bytes).
    pub fn stop(self) -> f64 {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.sampler.join();
        kib_to_mb(self.peak.load(Ordering::Relaxed))
    }
}

pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Bytes allocated on disk under `dir` (what `du` says), in MB.
pub fn dir_mb(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.blocks() * 512,
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / 1e6
}

/// The machine, for the report.
pub struct Machine {
    pub cores: usize,
    pub memory_gb: f64,
    pub cpu: String,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|v| v.split_once(':'))
        .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gb: memory_kib as f64 * 1024.0 / 1e9,
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string()),
    }
}

/// The commit of the working tree, and whether it has changes (read-only git).
pub fn commit(repo: &Path) -> String {
    let head = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(head) = head else {
        return "unknown (not a git checkout)".into();
    };
    let clean = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["diff-index", "--quiet", "HEAD", "--"])
        .status()
        .is_ok_and(|s| s.success());
    if clean {
        head
    } else {
        format!("{head} + uncommitted changes")
    }
}

/// `target/<profile>/<name>`, next to the running harness.
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe().expect("own path").with_file_name(name)
}

//! The load generator: `wrk` (C, epoll, its own threads and process) with
//! [`bench.lua`](../bench.lua) choosing each request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

const SCRIPT: &str = include_str!("bench.lua");

/// wrk, found (or installed) once, and the script written into the work directory.
pub struct Wrk {
    script: PathBuf,
}

/// What one wrk run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub requests: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers other than 2xx and 3xx.
    pub non_2xx: u64,
    /// Connect, read and write errors and timeouts.
    pub socket_errors: u64,
    pub bytes: u64,
    /// Answers by status, when counted.
    pub statuses: BTreeMap<u16, u64>,
    /// What the harness had to wait for before the load (the target still busy).
    pub waited: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    requests: u64,
    duration_us: u64,
    bytes: u64,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
    p50_us: f64,
    p99_us: f64,
    statuses: BTreeMap<u16, u64>,
}

/// One load: `connections` connections on `threads` threads for `seconds`.
pub struct Load<'a> {
    pub url: &'a str,
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
    /// See the script: static, lines, create, credit, tickets, allow, mix.
    pub mode: &'a str,
    pub file: Option<&'a Path>,
    pub per: usize,
    pub tag: &'a str,
    pub count_statuses: bool,
}

impl<'a> Load<'a> {
    pub fn new(url: &'a str, mode: &'a str, connections: usize, seconds: u64) -> Load<'a> {
        Load {
            url,
            connections,
            threads: connections.clamp(1, 2),
            seconds,
            mode,
            file: None,
            per: 1,
            tag: "run",
            count_statuses: false,
        }
    }

    pub fn file(mut self, file: &'a Path) -> Self {
        self.file = Some(file);
        self
    }

    pub fn per(mut self, per: usize) -> Self {
        self.per = per;
        self
    }

    pub fn tag(mut self, tag: &'a str) -> Self {
        self.tag = tag;
        self
    }

    pub fn count_statuses(mut self) -> Self {
        self.count_statuses = true;
        self
    }
}

/// A wrk run in progress (see [`Wrk::start`]).
pub struct Running {
    child: Child,
}

impl Wrk {
    /// Finds wrk on the PATH; installs it with apt-get when missing and running as root;
    /// otherwise says how to install it.
    pub fn find(work: &Path) -> Result<Wrk, String> {
        if !has_wrk() {
            if !is_root() {
                return Err(
                    "wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu), then again".into(),
                );
            }
            eprintln!("crm-bench: wrk is missing, installing it: apt-get update && apt-get install -y wrk");
            let ok = Command::new("sh")
                .arg("-c")
                .arg("apt-get update -qq && apt-get install -y -qq wrk >/dev/null")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
            if !ok || !has_wrk() {
                return Err(
                    "could not install wrk with apt-get: install it (`apt-get install -y wrk`) and run again".into(),
                );
            }
        }
        let script = work.join("bench.lua");
        std::fs::write(&script, SCRIPT).map_err(|e| format!("write {}: {e}", script.display()))?;
        Ok(Wrk { script })
    }

    /// The version line of wrk, for the report.
    pub fn version() -> String {
        let output = Command::new("wrk").arg("--version").output();
        let text = output
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
            .unwrap_or_default();
        text.lines()
            .next()
            .unwrap_or("wrk")
            .split(" Copyright")
            .next()
            .unwrap_or("wrk")
            .trim()
            .to_string()
    }

    fn command(&self, load: &Load, seconds: u64) -> Command {
        let mut command = Command::new("wrk");
        command
            .arg(format!("-t{}", load.threads.min(load.connections)))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{seconds}s"))
            .arg("--timeout")
            .arg("120s")
            .arg("-s")
            .arg(&self.script)
            .arg(load.url)
            .arg("--")
            .arg(load.mode)
            .arg(load.file.map_or_else(|| "-".into(), |f| f.display().to_string()))
            .arg(load.per.to_string())
            .arg(load.tag)
            .arg(if load.count_statuses { "count" } else { "-" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs the load for its time and answers what wrk measured.
    pub fn run(&self, load: &Load) -> Result<Outcome, String> {
        let child = self
            .command(load, load.seconds)
            .spawn()
            .map_err(|e| format!("start wrk: {e}"))?;
        finish(child)
    }

    /// Starts the load for at most `seconds`; [`Running::stop`] ends it earlier.
    pub fn start(&self, load: &Load) -> Result<Running, String> {
        let child = self
            .command(load, load.seconds)
            .spawn()
            .map_err(|e| format!("start wrk: {e}"))?;
        Ok(Running { child })
    }
}

impl Running {
    /// SIGINT: wrk stops, reports and runs the script's `done`.
    pub fn stop(self) -> Result<Outcome, String> {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        finish(self.child)
    }
}

fn finish(child: Child) -> Result<Outcome, String> {
    let output = child.wait_with_output().map_err(|e| format!("wait for wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("WRKJSON ")) else {
        return Err(format!(
            "wrk gave no result ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    };
    let raw: Raw = serde_json::from_str(line).map_err(|e| format!("wrk result {line:?}: {e}"))?;
    let seconds = raw.duration_us as f64 / 1e6;
    Ok(Outcome {
        requests: raw.requests,
        rate: raw.requests as f64 / seconds.max(1e-9),
        p50_ms: raw.p50_us / 1e3,
        p99_ms: raw.p99_us / 1e3,
        non_2xx: raw.status,
        socket_errors: raw.connect + raw.read + raw.write + raw.timeout,
        bytes: raw.bytes,
        statuses: raw.statuses,
        waited: None,
    })
}

fn has_wrk() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

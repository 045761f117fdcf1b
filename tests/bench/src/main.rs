//! `crm-bench`: the whole benchmark of crm-server in one command, on a release build.
//!
//! ```sh
//! cargo run --release -p crm-bench -- --customers 1000000   # the full run, ~15 minutes on 2 cores
//! cargo run --release -p crm-bench -- --quick               # 10,000 customers, 2 s a figure
//! cargo run --release -p crm-bench -- --database postgres://USER:PASSWORD@HOST/postgres  # the PostgreSQL store
//! ```
//!
//! It generates the customers (crm-gen's generator), builds and starts the release
//! `crm-server` as a child process on a temporary directory, and starts each baseline
//! (`crm-bench-baseline`) as its own process: warp answering a constant 300-byte JSON
//! (the HTTP ceiling), warp over raw sled get by key (the store ceiling), raw sled
//! batch inserts with one flush a batch, one insert plus one flush. The load comes from
//! `wrk` (its own process and threads; installed with apt-get when missing and root),
//! scripted by `bench.lua`; the harness first measures the warp baseline with wrk alone
//! and with the script, so that a run bound by the load generator shows. Memory is read
//! from /proc/<pid>/status of the server process. Results go to `tests/bench/results/`
//! as JSON and a markdown table.

// The customers of crm-gen and of the end-to-end tests: the same file, compiled in.
#[allow(dead_code)]
#[path = "../../src/generate.rs"]
mod generate;
mod postgres;
mod procs;
mod report;
mod wrk;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Map, Value};

use crate::procs::{PeakWatch, Server};
use crate::report::{missing, Figure};
use crate::wrk::{Load, Outcome, Wrk};

#[derive(Parser)]
#[command(
    name = "crm-bench",
    about = "Benchmarks the release crm-server against baselines in their own processes"
)]
struct Args {
    /// Customers imported (and the size of each import); default 1,000,000, or 10,000
    /// with --quick.
    #[arg(long)]
    customers: Option<u64>,
    /// A smoke run: 10,000 customers, 2 s a figure.
    #[arg(long)]
    quick: bool,
    /// Seconds of each load (default 4, or 2 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Concurrent connections of the loads.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// A crm-server binary to measure instead of building target/release/crm-server.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where the JSON and markdown results go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results: PathBuf,
    /// Parent of the temporary work directory (data directories, files: about 10 GB
    /// at 1,000,000 customers).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Measure the PostgreSQL store instead, beside `pgbench -S` and a bare `COPY` on
    /// the same cluster: a URL of the cluster whose role may create databases
    /// (`postgres://USER:PASSWORD@HOST:PORT/postgres`); the run makes and drops its
    /// own `crm_bench_*` databases.
    #[arg(long, env = "CRM_BENCH_DATABASE_URL")]
    database: Option<String>,
}

/// Clients creating customers during the HTTP import (see `post_file_probing_creates`).
const PROBES: usize = 4;

/// What the creates made during an import met.
#[derive(Default)]
struct CreateWaits {
    /// Latency of each acknowledged create, ms.
    ok_ms: Vec<f64>,
    /// Answered `503` (waited past the write wait).
    refused: u64,
    /// Any other answer, or none.
    failed: u64,
}

impl CreateWaits {
    fn figure(mut self, rows: u64) -> Figure {
        self.ok_ms.sort_by(f64::total_cmp);
        let at = |q: f64| match self.ok_ms.len() {
            0 => f64::NAN,
            len => self.ok_ms[((len - 1) as f64 * q).round() as usize],
        };
        let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
        Figure::new(
            "server",
            format!(
                "create latency during the HTTP import of {} rows (max)",
                report::number(rows as f64)
            ),
            max,
            "ms",
        )
        .load(PROBES, p50, p99)
        .note(format!(
            "{PROBES} clients creating one customer each 20 ms while the import ran: {} acknowledged, {} answered \
             503, {} failed",
            self.ok_ms.len(),
            self.refused,
            self.failed
        ))
    }
}

/// Sampled keys the loads pick from.
const SAMPLE: u64 = 100_000;

/// Names of the generator (tests/src/generate.rs), for the searches.
const NOMS: [&str; 4] = ["martin", "dubois", "petit", "moreau"];
const PRENOMS: [&str; 4] = ["jean", "marie", "pierre", "helene"];

fn main() {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("crm-bench: build it in release: cargo run --release -p crm-bench -- ...");
        std::process::exit(2);
    }
    if let Err(e) = run(args) {
        eprintln!("crm-bench: {e}");
        std::process::exit(1);
    }
}

struct Bench {
    wrk: Wrk,
    work: PathBuf,
    seconds: u64,
    connections: usize,
    customers: u64,
    figures: Vec<Figure>,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    logs: PathBuf,
    /// When the run's clock started (after the build).
    started: Instant,
}

impl Bench {
    fn push(&mut self, figure: Figure) -> usize {
        println!("t+{:>4.0}s {}", self.started.elapsed().as_secs_f64(), figure.line());
        self.figures.push(figure);
        self.figures.len() - 1
    }

    /// Runs the load on the process `pid` once it is idle, then waits for it to be idle
    /// again: requests that wrk abandoned when its time was up may still be running, and
    /// must not slow the next figure. The second wait, when long, is noted: it is work
    /// the server did for clients that had gone.
    fn load(&self, pid: u32, load: &Load) -> Result<Outcome, String> {
        let before = procs::wait_quiet(pid, Duration::from_secs(120));
        let mut out = self.wrk.run(load)?;
        let after = procs::wait_quiet(pid, Duration::from_secs(300));
        let mut notes = Vec::new();
        match before {
            None => notes.push("the process was still busy 120 s after the previous load".to_string()),
            Some(w) if w > Duration::from_secs(2) => {
                notes.push(format!("waited {:.0} s for it to be idle first", w.as_secs_f64()))
            }
            Some(_) => {}
        }
        match after {
            None => notes.push("still busy 300 s after the load ended".to_string()),
            Some(w) if w > Duration::from_secs(2) => notes.push(format!(
                "busy {:.0} s more after the load ended (the abandoned requests still ran)",
                w.as_secs_f64()
            )),
            Some(_) => {}
        }
        out.waited = (!notes.is_empty()).then(|| notes.join("; "));
        Ok(out)
    }

    /// A file in the work directory holding `lines`.
    fn lines_file(&self, name: &str, lines: impl IntoIterator<Item = String>) -> Result<PathBuf, String> {
        let path = self.work.join(name);
        let mut out = BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("create {name}: {e}"))?);
        for line in lines {
            writeln!(out, "{line}").map_err(|e| format!("write {name}: {e}"))?;
        }
        out.flush().map_err(|e| format!("write {name}: {e}"))?;
        Ok(path)
    }

    fn get_json(&self, url: &str) -> Result<Value, String> {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !status.is_success() {
                return Err(format!("GET {url}: {status} {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}: {text}"))
        })
    }

    fn flushes(&self, base: &str) -> u64 {
        self.get_json(&format!("{base}/healthz"))
            .ok()
            .and_then(|h| h["flushes"].as_u64())
            .unwrap_or(0)
    }

    /// An HTTP figure from a wrk outcome: req/s, p50, p99; non-2xx answers and socket
    /// errors in the notes.
    fn http_figure(&self, kind: &'static str, name: &str, connections: usize, out: &Outcome) -> Figure {
        let mut f = if out.requests == 0 {
            Figure::new(kind, name, 0.0, "req/s")
                .load(connections, f64::NAN, f64::NAN)
                .note(format!("no answer within the {} s", self.seconds))
        } else {
            Figure::new(kind, name, out.rate, "req/s").load(connections, out.p50_ms, out.p99_ms)
        };
        if out.requests > 0 && out.requests < 20 {
            f = f.note(format!("only {} answers: p50 and p99 of few", out.requests));
        }
        if out.non_2xx > 0 {
            f = f.note(format!("{} answers not 2xx", report::count(out.non_2xx)));
        }
        if out.socket_errors > 0 {
            f = f.note(format!("{} socket errors", out.socket_errors));
        }
        if !out.statuses.is_empty() {
            f = f.note(statuses(&out.statuses));
        }
        if let Some(waited) = &out.waited {
            f = f.note(waited);
        }
        f
    }
}

fn statuses(counts: &BTreeMap<u16, u64>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{s}: {}", report::count(*n)))
        .collect();
    format!("status {}", parts.join(", "))
}

fn run(args: Args) -> Result<(), String> {
    let customers = args.customers.unwrap_or(if args.quick { 10_000 } else { 1_000_000 });
    let seconds = args.seconds.unwrap_or(if args.quick { 2 } else { 4 });
    let work_dir = match &args.work {
        Some(parent) => tempfile::Builder::new().prefix("crm-bench-").tempdir_in(parent),
        None => tempfile::Builder::new().prefix("crm-bench-").tempdir(),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let work = work_dir.path().to_path_buf();
    let wrk = Wrk::find(&work)?;
    // `cargo run -p crm-bench` builds only this binary: the baselines and (unless
    // --server names one) crm-server are built here, so that a clean clone runs.
    build_release(args.server.is_none())?;
    let server_bin = match &args.server {
        Some(path) => path.clone(),
        None => procs::sibling("crm-server"),
    };
    let baseline_bin = procs::sibling("crm-bench-baseline");
    for binary in [&server_bin, &baseline_bin] {
        if !binary.exists() {
            return Err(format!("{} is missing after the build", binary.display()));
        }
    }
    // The run's clock starts once the binaries are built.
    let run_started = Instant::now();
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("create logs: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut bench = Bench {
        wrk,
        work: work.clone(),
        seconds,
        connections: args.connections,
        customers,
        figures: Vec::new(),
        runtime,
        client,
        logs,
        started: run_started,
    };
    let machine = procs::machine();
    println!(
        "crm-bench: {} customers, {seconds} s a figure, {} connections; {} cores ({}), {:.1} GB; work in {}",
        report::number(customers as f64),
        args.connections,
        machine.cores,
        machine.cpu,
        machine.memory_gb,
        work.display()
    );

    let outcome = match &args.database {
        Some(url) => bench.on_postgres(&server_bin, &baseline_bin, url),
        None => bench.all(&server_bin, &baseline_bin),
    };
    if let Err(e) = &outcome {
        eprintln!("crm-bench: the run stopped: {e}");
        eprintln!("crm-bench: logs were in {}", bench.logs.display());
    }

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let now = chrono::Local::now();
    let ctx = report::Context {
        customers,
        quick: args.quick,
        seconds,
        date: now.format("%Y-%m-%d %H:%M %Z").to_string(),
        commit: procs::commit(&workspace),
        cores: machine.cores,
        memory_gb: machine.memory_gb,
        cpu: machine.cpu,
        kernel: machine.kernel,
        wrk: Wrk::version(),
        total_seconds: run_started.elapsed().as_secs_f64(),
    };
    let store = if args.database.is_some() { "-postgres" } else { "" };
    let stem = format!("{}-{customers}{store}", now.format("%Y%m%d-%H%M%S"));
    let (json_path, md_path) =
        report::write(&args.results, &stem, &ctx, &bench.figures).map_err(|e| format!("write results: {e}"))?;
    println!("\n{}", report::markdown(&ctx, &bench.figures));
    println!(
        "crm-bench: results in {} and {} ({:.0} s)",
        json_path.display(),
        md_path.display(),
        ctx.total_seconds
    );
    outcome
}

/// `cargo build --release` of the baselines and, when `with_server`, of crm-server, so
/// that the binaries measured are the current code (target/release, beside this one).
fn build_release(with_server: bool) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = vec!["build", "--release", "-p", "crm-bench", "--bin", "crm-bench-baseline"];
    if with_server {
        args.extend(["-p", "crm-server", "--bin", "crm-server"]);
    }
    println!("crm-bench: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(&workspace)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err("the release build failed".into());
    }
    Ok(())
}

/// What the full listing taught the harness about the stored customers.
struct Stored {
    count: u64,
    /// `IdClient`s, e-mails and cards of sampled customers.
    ids: Vec<String>,
    emails: Vec<String>,
    cards: Vec<String>,
    /// Search query -> customers matching it, counted from the listing.
    expected: BTreeMap<String, u64>,
}

impl Bench {
    fn all(&mut self, server_bin: &Path, baseline_bin: &Path) -> Result<(), String> {
        let n = self.customers;
        let secs = self.seconds;
        let conns = self.connections;

        // The import file: the document's {"clients": [...]}.
        let file = self.work.join("customers.json");
        let started = Instant::now();
        write_file(&file, 1, 0, n)?;
        let file_mb = std::fs::metadata(&file).map_or(0.0, |m| m.len() as f64 / 1e6);
        println!(
            "generated {} customers, {file_mb:.1} MB of JSON, in {:.1} s",
            report::number(n as f64),
            started.elapsed().as_secs_f64()
        );

        // 1. Import through the command line, into the directory the server then uses.
        let data = self.work.join("data");
        let started = Instant::now();
        let mut child = Command::new(server_bin)
            .arg("import")
            .arg(&file)
            .arg("--data")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.logs.join("import-cli.log")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("start crm-server import: {e}"))?;
        let peak = PeakWatch::start(child.id());
        let mut said = String::new();
        if let Some(mut out) = child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut said);
        }
        let status = child.wait().map_err(|e| format!("wait for the import: {e}"))?;
        let elapsed = started.elapsed().as_secs_f64();
        let peak_mb = peak.stop();
        if !status.success() || !said.contains(&format!("created {n}")) {
            return Err(format!("crm-server import failed ({status}): {said}"));
        }
        let data_mb = procs::dir_mb(&data);
        let cli_import = self.push(
            Figure::new(
                "server",
                format!("import {} rows, command line", report::number(n as f64)),
                n as f64 / elapsed,
                "rows/s",
            )
            .note(format!(
                "{elapsed:.1} s; peak RSS {peak_mb:.0} MB; data directory after: {data_mb:.0} MB; file {file_mb:.0} MB"
            )),
        );

        // 2. The server's first start on that directory (sled replays what the import
        //    wrote since its last snapshot); a restart and raw sled's open come at the end.
        let (server, start_s, ready_s, idle) = self.start_server(server_bin, &data, "server")?;
        let base = server.url.clone();
        let pid = server.pid();
        self.push(
            Figure::new(
                "server",
                "server first start after that import (to its URL line)",
                start_s,
                "s",
            )
            .note(format!("/healthz answered {ready_s:.2} s after spawn")),
        );
        self.push(
            Figure::new("server", "server idle RSS after that first start", idle, "MB")
                .note("VmRSS of /proc/<pid>/status once the process is idle"),
        );

        // 3. The full listing, streamed; it also tells the harness the keys.
        let dump = self.work.join("dump.json");
        procs::reset_peak(pid);
        let peak = PeakWatch::start(pid);
        let (bytes, elapsed) = self.stream(&format!("{base}/api/data"), &dump)?;
        let peak_mb = peak.stop();
        let stream_fig = self.push(
            Figure::new(
                "server",
                "GET /api/data, the full stream",
                bytes as f64 / 1e6 / elapsed,
                "MB/s",
            )
            .note(format!(
                "{:.0} MB in {elapsed:.2} s; peak RSS {peak_mb:.0} MB (idle {idle:.0} MB)",
                bytes as f64 / 1e6
            )),
        );
        let records = self.work.join("records.tsv");
        let queries = search_queries();
        let stored = read_dump(&dump, &records, n, &queries)?;
        let _ = std::fs::remove_file(&dump);
        if stored.count != n {
            return Err(format!("GET /api/data listed {} customers, not {n}", stored.count));
        }

        // 4. The store ceiling: raw sled batch insert of the same records, then warp +
        //    sled get by key and a full scan.
        let store_dir = self.work.join("raw-store");
        let (store, load) = self.baseline_server(
            baseline_bin,
            &[
                "store",
                "--records",
                &records.display().to_string(),
                "--dir",
                &store_dir.display().to_string(),
                "--batch",
                "10000",
            ],
            "store",
        )?;
        let batch_fig = self.push(Figure::new(
            "baseline",
            "raw sled batch insert of those records, 10,000 a batch + flush",
            load["rows_per_s"].as_f64().unwrap_or(f64::NAN),
            "rows/s",
        ));
        let f = self.figures[cli_import].clone().against(Some(&self.figures[batch_fig]));
        self.figures[cli_import] = f;
        let (bytes, elapsed) = self.stream(&format!("{}/api/data", store.url), &self.work.join("raw-dump.json"))?;
        let _ = std::fs::remove_file(self.work.join("raw-dump.json"));
        let raw_stream = self.push(Figure::new(
            "baseline",
            "warp + raw sled scan streamed as one JSON array",
            bytes as f64 / 1e6 / elapsed,
            "MB/s",
        ));
        let f = self.figures[stream_fig]
            .clone()
            .against(Some(&self.figures[raw_stream]));
        self.figures[stream_fig] = f;

        // 5. The HTTP ceiling, and the check that the load generator is not the limit.
        let (ceiling, _) = self.baseline_server(baseline_bin, &["http"], "http")?;
        let by_id = self.lines_file("by-id.txt", stored.ids.iter().map(|id| format!("GET\t/api/data/{id}")))?;
        // Bare wrk and wrk with the script, alternated twice: the best of each, so that
        // a burst of other work on the machine does not decide the check.
        let mut bare: Vec<Outcome> = Vec::new();
        let mut scripted: Vec<Outcome> = Vec::new();
        for _ in 0..2 {
            bare.push(self.load(ceiling.pid(), &Load::new(&ceiling.url, "static", conns, secs))?);
            scripted.push(self.load(
                ceiling.pid(),
                &Load::new(&ceiling.url, "lines", conns, secs).file(&by_id),
            )?);
        }
        let rates = |runs: &[Outcome]| {
            runs.iter()
                .map(|o| report::number(o.rate))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let (bare_rates, scripted_rates) = (rates(&bare), rates(&scripted));
        let best = |runs: Vec<Outcome>| runs.into_iter().max_by(|a, b| a.rate.total_cmp(&b.rate));
        let (bare, scripted) = (best(bare).expect("two runs"), best(scripted).expect("two runs"));
        let http_fig = self.push(
            self.http_figure(
                "baseline",
                "warp, constant 300-byte JSON (wrk, no script)",
                conns,
                &bare,
            )
            .note(format!("best of {bare_rates} req/s, alternated with the script's runs")),
        );
        let ratio = scripted.rate / self.figures[http_fig].value;
        let verdict = if ratio >= 0.9 {
            "at least 0.90: the script that picks random keys is not the bottleneck"
        } else {
            "BELOW 0.90: the load generator limits this run; figures near the ceiling are client-bound"
        };
        let f = self
            .http_figure(
                "check",
                "wrk + bench.lua random keys on that warp baseline",
                conns,
                &scripted,
            )
            .against(Some(&self.figures[http_fig]))
            .note(format!("best of {scripted_rates} req/s"))
            .note(verdict);
        self.push(f);
        let http = self.figures[http_fig].clone();

        // 6. Reads.
        let out = self.load(store.pid(), &Load::new(&store.url, "lines", conns, secs).file(&by_id))?;
        let store_fig = self.push(
            self.http_figure(
                "baseline",
                "warp + raw sled get by key (GET /api/data/<IdClient>)",
                conns,
                &out,
            )
            .against(Some(&http)),
        );
        let store_ceiling = self.figures[store_fig].clone();
        let out = self.load(pid, &Load::new(&base, "lines", conns, secs).file(&by_id))?;
        let f = self
            .http_figure("server", "GET /api/data/<IdClient>", conns, &out)
            .against(Some(&store_ceiling))
            .note(format!("{:.2}x the HTTP ceiling", out.rate / http.value));
        self.push(f);
        let by_email = self.lines_file(
            "by-email.txt",
            stored
                .emails
                .iter()
                .map(|e| format!("POST\t/api/customer/email\t{}", serde_json::json!({ "email": e }))),
        )?;
        let out = self.load(pid, &Load::new(&base, "lines", conns, secs).file(&by_email))?;
        let f = self
            .http_figure("server", "POST /api/customer/email (by e-mail)", conns, &out)
            .against(Some(&store_ceiling))
            .note(format!("{:.2}x the HTTP ceiling", out.rate / http.value));
        self.push(f);
        for sort in ["id", "Nom", "-Credit", "PanierMoyen"] {
            let path = format!("/api/v1/customers?sort={sort}&limit=50");
            let page = self.get_json(&format!("{base}{path}"))?;
            let file = self.lines_file("page.txt", [format!("GET\t{path}")])?;
            let out = self.load(pid, &Load::new(&base, "lines", conns, secs).file(&file))?;
            let f = self
                .http_figure(
                    "server",
                    &format!("GET /api/v1/customers first page, sort={sort}"),
                    conns,
                    &out,
                )
                .against(Some(&http))
                .note(format!("limit 50, total {}", page["total"]));
            self.push(f);
        }
        match self.deep_cursors(&base) {
            Ok((paths, depth)) => {
                let file = self.lines_file("deep.txt", paths.into_iter().map(|p| format!("GET\t{p}")))?;
                let out = self.load(pid, &Load::new(&base, "lines", conns, secs).file(&file))?;
                let f = self
                    .http_figure(
                        "server",
                        "GET /api/v1/customers deep cursor page, sort=Nom",
                        conns,
                        &out,
                    )
                    .against(Some(&http))
                    .note(format!("limit 50, random cursors {depth}"));
                self.push(f);
            }
            Err(e) => {
                self.push(missing("GET /api/v1/customers deep cursor page", e));
            }
        }
        for words in 1..=3 {
            let set: Vec<&String> = queries.iter().filter(|q| q.split(' ').count() == words).collect();
            let mut totals = Vec::new();
            let mut wrong = Vec::new();
            for q in &set {
                let page = self.get_json(&format!("{base}/api/v1/customers?q={}&limit=50", q.replace(' ', "+")))?;
                let total = page["total"].as_u64().unwrap_or(u64::MAX);
                let expected = stored.expected.get(*q).copied().unwrap_or(0);
                if total != expected {
                    wrong.push(format!("q={q:?} answered {total}, the listing has {expected}"));
                }
                totals.push(total);
            }
            let totals_note = if wrong.is_empty() {
                format!(
                    "{} queries, totals {}-{}, all exact (counted from the full listing)",
                    set.len(),
                    report::count(*totals.iter().min().unwrap_or(&0)),
                    report::count(*totals.iter().max().unwrap_or(&0))
                )
            } else {
                format!("WRONG TOTALS: {}", wrong.join("; "))
            };
            let file = self.lines_file(
                "search.txt",
                set.iter()
                    .map(|q| format!("GET\t/api/v1/customers?q={}&limit=50", q.replace(' ', "+"))),
            )?;
            let example = set.first().map_or(String::new(), |q| format!("e.g. q={q}"));
            for c in [1, conns] {
                let out = self.load(pid, &Load::new(&base, "lines", c, secs).file(&file))?;
                let f = self
                    .http_figure(
                        "server",
                        &format!("search, {words} word{} ({example})", if words > 1 { "s" } else { "" }),
                        c,
                        &out,
                    )
                    .against(Some(&http))
                    .note(&totals_note);
                self.push(f);
            }
        }
        let home = self.lines_file("home.txt", ["GET\t/api".to_string()])?;
        let out = self.load(pid, &Load::new(&base, "lines", conns, secs).file(&home))?;
        let f = self
            .http_figure("server", "GET /api, the home page (HTML, first 50)", conns, &out)
            .against(Some(&http))
            .note(format!(
                "{:.0} KB a page",
                out.bytes as f64 / out.requests.max(1) as f64 / 1e3
            ));
        self.push(f);
        drop(store);
        drop(ceiling);

        // 7. Writes, against raw sled writes in their own process.
        let one = self.baseline_json(
            baseline_bin,
            &[
                "writes",
                "--dir",
                &self.work.join("raw-one").display().to_string(),
                "--batch",
                "1",
                "--seconds",
                &secs.to_string(),
            ],
        )?;
        let one_fig = self.push(
            Figure::new(
                "baseline",
                "raw sled, one insert + one flush, 1 writer",
                one["records_per_s"].as_f64().unwrap_or(f64::NAN),
                "writes/s",
            )
            .load(
                0,
                one["p50_ms"].as_f64().unwrap_or(f64::NAN),
                one["p99_ms"].as_f64().unwrap_or(f64::NAN),
            ),
        );
        let hundred = self.baseline_json(
            baseline_bin,
            &[
                "writes",
                "--dir",
                &self.work.join("raw-hundred").display().to_string(),
                "--batch",
                "100",
                "--seconds",
                &secs.to_string(),
            ],
        )?;
        let hundred_fig = self.push(
            Figure::new(
                "baseline",
                "raw sled, batches of 100 inserts + one flush, 1 writer",
                hundred["records_per_s"].as_f64().unwrap_or(f64::NAN),
                "records/s",
            )
            .load(
                0,
                hundred["p50_ms"].as_f64().unwrap_or(f64::NAN),
                hundred["p99_ms"].as_f64().unwrap_or(f64::NAN),
            ),
        );
        let one = self.figures[one_fig].clone();
        let hundred = self.figures[hundred_fig].clone();
        let cards = self.lines_file("cards.txt", stored.cards.iter().cloned())?;
        let ids = self.lines_file("ids.txt", stored.ids.iter().cloned())?;
        let writes: [(&str, &str, &Path, usize, &Figure, &str); 5] = [
            ("POST /api/create_customer", "create", &ids, 1, &one, "writes/s"),
            (
                "POST /api/credit, single credit",
                "credit",
                &cards,
                1,
                &one,
                "credits/s",
            ),
            (
                "POST /api/credit, batches of 100 credits",
                "credit",
                &cards,
                100,
                &hundred,
                "credits/s",
            ),
            (
                "POST /api/v1/tickets, batches of 100 tickets",
                "tickets",
                &ids,
                100,
                &hundred,
                "tickets/s",
            ),
            ("POST /api/allow_credit", "allow", &ids, 1, &one, "writes/s"),
        ];
        for (i, (name, mode, file, per, baseline, unit)) in writes.into_iter().enumerate() {
            let before = self.flushes(&base);
            let tag = format!("w{i}");
            let out = self.load(
                pid,
                &Load::new(&base, mode, conns, secs)
                    .file(file)
                    .per(per)
                    .tag(&tag)
                    .count_statuses(),
            )?;
            let flushes = self.flushes(&base).saturating_sub(before);
            let items = out.rate * per as f64;
            let mut f = self.http_figure("server", name, conns, &out);
            f.value = items;
            f.unit = unit;
            let f = f.against(Some(baseline)).note(format!(
                "{} requests/s; {:.1} requests a flush",
                report::number(out.rate),
                out.requests as f64 / flushes.max(1) as f64
            ));
            self.push(f);
        }

        // 8. Writes while an import runs: they wait for a turn between its batches (at
        //    most the write wait, then 503 import_running).
        let extra = (n / 100).max(2_000);
        let extra_file = self.work.join("more-customers.json");
        write_file(&extra_file, 2, n, extra)?;
        let mix = self.lines_file(
            "mix.txt",
            stored
                .ids
                .iter()
                .zip(stored.cards.iter().cycle())
                .map(|(id, card)| format!("{id}\t{card}")),
        )?;
        let running = self.wrk.start(
            &Load::new(&base, "mix", conns, 3600)
                .file(&mix)
                .tag("during")
                .count_statuses(),
        )?;
        // wrk's connections are open well before this.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let answer = self.post_file(&format!("{base}/api/update_db"), &extra_file);
        let import_s = started.elapsed().as_secs_f64();
        let out = running.stop()?;
        let answer: Value = serde_json::from_str(&answer?).map_err(|e| format!("the import's answer: {e}"))?;
        let f = self
            .http_figure(
                "server",
                &format!(
                    "writes (create, credit, allow_credit in turn) during an HTTP import of {} rows",
                    report::number(extra as f64)
                ),
                conns,
                &out,
            )
            .note(format!(
                "the import took {import_s:.1} s ({} rows/s) and created {}; the writes started 0.2 s before it \
                 and stopped when it answered",
                report::number(extra as f64 / import_s),
                answer["created"]
            ));
        self.push(f);
        server.stop(Duration::from_secs(60));

        // 9. Raw sled opening that directory, then crm-server restarting on it. sled's
        //    first open after a process wrote replays what it wrote since its last
        //    snapshot: the baseline is a second open, as warm as the restart.
        let dir_arg = data.display().to_string();
        let first_open = self.baseline_json(baseline_bin, &["open", "--dir", &dir_arg])?;
        let open = self.baseline_json(baseline_bin, &["open", "--dir", &dir_arg])?;
        let open_fig = self.push(
            Figure::new(
                "baseline",
                "raw sled opens that directory and its trees",
                open["seconds"].as_f64().unwrap_or(f64::NAN),
                "s",
            )
            .note(format!(
                "a second open; the first, after the server's writes, took {:.2} s",
                first_open["seconds"].as_f64().unwrap_or(f64::NAN)
            )),
        );
        let (server, start_s, ready_s, idle) = self.start_server(server_bin, &data, "server-restart")?;
        let f = Figure::new(
            "server",
            "server restart on that directory (to its URL line)",
            start_s,
            "s",
        )
        .against(Some(&self.figures[open_fig]))
        .note(format!("/healthz answered {ready_s:.2} s after spawn"));
        self.push(f);
        let open_rss_fig = self.push(
            Figure::new(
                "baseline",
                "raw sled RSS with that directory and its trees open",
                open["rss_mb"].as_f64().unwrap_or(f64::NAN),
                "MB",
            )
            .note("VmRSS of the baseline process right after the open above"),
        );
        let f = Figure::new("server", "server idle RSS after that restart", idle, "MB")
            .against(Some(&self.figures[open_rss_fig]))
            .note("VmRSS of /proc/<pid>/status once the process is idle");
        self.push(f);
        server.stop(Duration::from_secs(60));

        // 10. Import over HTTP into a new server on an empty directory.
        let http_data = self.work.join("data-http");
        let server = Server::start(
            server_bin,
            &["--addr", "127.0.0.1:0", "--data", &http_data.display().to_string()],
            &self.logs.join("server-http.log"),
        )?;
        let base = server.url.clone();
        wait_ready(self, &base)?;
        procs::reset_peak(server.pid());
        let peak = PeakWatch::start(server.pid());
        let started = Instant::now();
        let (answer, waits) = self.post_file_probing_creates(&base, &file);
        let answer = answer?;
        let elapsed = started.elapsed().as_secs_f64();
        let peak_mb = peak.stop();
        if !answer.contains(&format!("\"created\":{n}")) {
            return Err(format!("the HTTP import answered {answer}"));
        }
        self.push(waits.figure(n));
        server.stop(Duration::from_secs(60));
        let data_mb = procs::dir_mb(&http_data);
        let f = Figure::new(
            "server",
            format!("import {} rows, POST /api/update_db", report::number(n as f64)),
            n as f64 / elapsed,
            "rows/s",
        )
        .against(Some(&self.figures[batch_fig]))
        .note(format!(
            "{elapsed:.1} s; peak RSS {peak_mb:.0} MB; data directory after: {data_mb:.0} MB"
        ));
        self.push(f);
        Ok(())
    }

    /// Starts crm-server on `data`: answers it, the seconds to its URL line and to its
    /// first `/healthz` answer, and its RSS (MB) once idle.
    fn start_server(&self, bin: &Path, data: &Path, log: &str) -> Result<(Server, f64, f64, f64), String> {
        let server = Server::start(
            bin,
            &["--addr", "127.0.0.1:0", "--data", &data.display().to_string()],
            &self.logs.join(format!("{log}.log")),
        )?;
        let ready = wait_ready(self, &server.url)? + server.started_in;
        procs::wait_quiet(server.pid(), Duration::from_secs(60));
        let idle = procs::status_kib(server.pid(), "VmRSS").map_or(f64::NAN, procs::kib_to_mb);
        let start = server.started_in.as_secs_f64();
        Ok((server, start, ready.as_secs_f64(), idle))
    }

    /// Starts a baseline server; answers it and the JSON line it printed before its URL.
    fn baseline_server(&self, bin: &Path, args: &[&str], name: &str) -> Result<(Server, Value), String> {
        let server = Server::start(bin, args, &self.logs.join(format!("baseline-{name}.log")))?;
        let said = server
            .preamble
            .iter()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        Ok((server, said))
    }

    /// Runs a baseline to its end; answers its JSON line.
    fn baseline_json(&self, bin: &Path, args: &[&str]) -> Result<Value, String> {
        let output = Command::new(bin)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("run {}: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("{} {args:?} failed: {text}", bin.display()));
        }
        text.lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("{} {args:?} printed no result: {text}", bin.display()))
    }

    /// GETs `url` into `to`; answers the body's bytes and the seconds it took.
    fn stream(&self, url: &str, to: &Path) -> Result<(u64, f64), String> {
        use futures::StreamExt;
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(to).map_err(|e| e.to_string())?);
        let started = Instant::now();
        let bytes = self.runtime.block_on(async {
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("GET {url}: {}", response.status()));
            }
            let mut body = response.bytes_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| format!("GET {url}: {e}"))?;
                bytes += chunk.len() as u64;
                out.write_all(&chunk).map_err(|e| e.to_string())?;
            }
            Ok(bytes)
        })?;
        let elapsed = started.elapsed().as_secs_f64();
        out.flush().map_err(|e| e.to_string())?;
        Ok((bytes, elapsed))
    }

    /// [`Self::post_file`] to `{base}/api/update_db`, while [`PROBES`] clients create
    /// customers one after another until it answers: how long writes wait for their
    /// turn between the import's batches.
    fn post_file_probing_creates(&self, base: &str, file: &Path) -> (Result<String, String>, CreateWaits) {
        let body = match std::fs::read(file) {
            Ok(body) => body,
            Err(e) => return (Err(format!("read {}: {e}", file.display())), CreateWaits::default()),
        };
        let running = std::sync::atomic::AtomicBool::new(true);
        let probe = |client: usize| {
            let running = &running;
            async move {
                let mut waits = CreateWaits::default();
                let url = format!("{base}/api/create_customer");
                let mut i = 0u64;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let body = format!(r#"{{"Nom":"Probe","email":"probe-{client}-{i}@bench.example"}}"#);
                    let sent = Instant::now();
                    let answer = self
                        .client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let took = sent.elapsed().as_secs_f64() * 1e3;
                    match answer.map(|a| a.status().as_u16()) {
                        Ok(200..=299) => waits.ok_ms.push(took),
                        Ok(503) => waits.refused += 1,
                        Ok(_) | Err(_) => waits.failed += 1,
                    }
                    // A few creates a second each: they measure the wait, not load it.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                waits
            }
        };
        let (answer, waits) = self.runtime.block_on(async {
            let probes = futures::future::join_all((0..PROBES).map(probe));
            let import = async {
                // The probes' connections are open before the import starts.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let answer = self.post_body(&format!("{base}/api/update_db"), body).await;
                running.store(false, std::sync::atomic::Ordering::Relaxed);
                answer
            };
            futures::future::join(import, probes).await
        });
        let mut all = CreateWaits::default();
        for w in waits {
            all.ok_ms.extend(w.ok_ms);
            all.refused += w.refused;
            all.failed += w.failed;
        }
        (answer, all)
    }

    /// POSTs a JSON file as the raw body; answers the server's answer.
    fn post_file(&self, url: &str, file: &Path) -> Result<String, String> {
        let body = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        self.runtime.block_on(self.post_body(url, body))
    }

    async fn post_body(&self, url: &str, body: Vec<u8>) -> Result<String, String> {
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("POST {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST {url}: {status} {text}"));
        }
        Ok(text)
    }

    /// Walks `sort=Nom` a thousand at a time to 10% of the customers deep (at most
    /// 100,000): answers page paths at cursors from 5% to there, and how deep they are.
    fn deep_cursors(&self, base: &str) -> Result<(Vec<String>, String), String> {
        let deepest = (self.customers / 10).clamp(2_000, 100_000);
        let from = deepest / 2;
        let mut cursor: Option<String> = None;
        let mut paths = Vec::new();
        let mut depth = 0u64;
        while depth < deepest {
            let mut url = format!("{base}/api/v1/customers?sort=Nom&limit=1000");
            if let Some(c) = &cursor {
                let _ = write!(url, "&cursor={c}");
            }
            let page = self.get_json(&url)?;
            depth += page["items"].as_array().map_or(0, Vec::len) as u64;
            let Some(next) = page["next_cursor"].as_str() else {
                break;
            };
            if depth >= from {
                paths.push(format!("/api/v1/customers?sort=Nom&limit=50&cursor={next}"));
            }
            cursor = Some(next.to_string());
        }
        if paths.is_empty() {
            return Err(format!("the list ended after {depth} customers"));
        }
        Ok((
            paths,
            format!(
                "{}-{} customers deep",
                report::number(from as f64),
                report::number(depth as f64)
            ),
        ))
    }
}

/// Waits for `GET /healthz`; answers how long after the call it answered.
fn wait_ready(bench: &Bench, base: &str) -> Result<Duration, String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if bench.get_json(&format!("{base}/healthz")).is_ok() {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("{base}/healthz never answered"))
}

/// Customers `start..start + count` of `seed` as `{"clients": [...]}`.
fn write_file(path: &Path, seed: u64, start: u64, count: u64) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    generate::write_customers(&mut out, generate::Format::Clients, seed, start, count)
        .and_then(|()| out.flush())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Search queries of one, two and three words.
fn search_queries() -> Vec<String> {
    let mut queries = Vec::new();
    queries.extend(NOMS.iter().map(|n| n.to_string()));
    queries.extend(NOMS.iter().zip(PRENOMS).map(|(n, p)| format!("{n} {p}")));
    queries.extend(
        NOMS.iter()
            .zip(PRENOMS)
            .enumerate()
            .map(|(i, (n, p))| format!("{n} {p} 0{}{}", 6 + i % 2, i % 10)),
    );
    queries
}

/// Reads the full listing: writes `IdClient<TAB>record` lines for the store baseline,
/// samples keys, and counts the customers each query matches (by the rule the API
/// documents: every word prefixes a name word, the e-mail, the phone's digits or the
/// card).
fn read_dump(dump: &Path, records: &Path, expected_count: u64, queries: &[String]) -> Result<Stored, String> {
    use serde::de::{Deserializer, SeqAccess, Visitor};

    struct Each<'a>(&'a mut dyn FnMut(Map<String, Value>) -> Result<(), String>);

    impl<'de> Visitor<'de> for Each<'_> {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of customers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            let mut n = 0;
            while let Some(item) = seq.next_element::<Map<String, Value>>()? {
                (self.0)(item).map_err(serde::de::Error::custom)?;
                n += 1;
            }
            Ok(n)
        }
    }

    let text = std::fs::read(dump).map_err(|e| format!("read the listing: {e}"))?;
    let mut out = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(records).map_err(|e| format!("create records: {e}"))?,
    );
    let every = (expected_count / SAMPLE).max(1);
    let terms: Vec<Vec<&str>> = queries.iter().map(|q| q.split(' ').collect()).collect();
    let mut counts = vec![0u64; queries.len()];
    let mut stored = Stored {
        count: 0,
        ids: Vec::new(),
        emails: Vec::new(),
        cards: Vec::new(),
        expected: BTreeMap::new(),
    };
    let mut i = 0u64;
    let mut each = |c: Map<String, Value>| -> Result<(), String> {
        let text_of = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let id = text_of("IdClient");
        write!(out, "{id}\t").map_err(|e| e.to_string())?;
        serde_json::to_writer(&mut out, &c).map_err(|e| e.to_string())?;
        writeln!(out).map_err(|e| e.to_string())?;
        let email = text_of("Email");
        let card = c.get("CarteFid").and_then(Value::as_u64);
        if i.is_multiple_of(every) {
            stored.ids.push(id);
            if !email.is_empty() {
                stored.emails.push(email.clone());
            }
            if let Some(card) = card {
                stored.cards.push(card.to_string());
            }
        }
        i += 1;
        let tokens = search_tokens(&text_of("Nom"), &text_of("Prenom"), &email, &text_of("Phone"), card);
        for (q, words) in terms.iter().enumerate() {
            if words.iter().all(|w| tokens.iter().any(|t| t.starts_with(w))) {
                counts[q] += 1;
            }
        }
        Ok(())
    };
    let mut de = serde_json::Deserializer::from_slice(&text);
    let count = de
        .deserialize_seq(Each(&mut each))
        .map_err(|e| format!("the listing: {e}"))?;
    out.flush().map_err(|e| e.to_string())?;
    stored.count = count;
    stored.expected = queries.iter().cloned().zip(counts).collect();
    if stored.ids.is_empty() || stored.emails.is_empty() || stored.cards.is_empty() {
        return Err("the listing has no customers with e-mails and cards".into());
    }
    Ok(stored)
}

/// Lower case without accents: `Éloïse` -> `eloise`.
fn normalize(text: &str) -> String {
    use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .trim()
        .to_string()
}

/// What a customer is found by, written from the API's description (not the server's
/// code): each word of the names and the whole names, accents and case folded; the
/// e-mail; the phone's digits, and its national form for +33 numbers; the card.
fn search_tokens(nom: &str, prenom: &str, email: &str, phone: &str, card: Option<u64>) -> Vec<String> {
    let mut tokens = Vec::new();
    for name in [nom, prenom] {
        let name = normalize(name);
        tokens.extend(
            name.split(|c: char| c.is_whitespace() || c == '-' || c == '\'')
                .map(str::to_string),
        );
        tokens.push(name);
    }
    tokens.push(normalize(email));
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if let Some(national) = digits.strip_prefix("33").filter(|rest| rest.len() == 9) {
        tokens.push(format!("0{national}"));
    }
    tokens.push(digits);
    if let Some(card) = card {
        tokens.push(card.to_string());
    }
    tokens.retain(|t| !t.is_empty());
    tokens
}

//! `crm-bench-import [--rows N]` (default 1,000,000; build with `--release`): imports N
//! generated customers (the document's `{"clients": [...]}` format) three ways in one
//! run and prints rows/s and peak memory:
//!
//! 1. raw sled: the same records inserted into one tree, one `apply_batch` and one
//!    flush per 10,000 rows (the ceiling the issue compares the import with);
//! 2. `crm-server import FILE` (the command line, offline);
//! 3. raw sled again, writing as many keys per row as the import wrote in 2 (counted
//!    in its data directory): the record and index-sized keys, one `apply_batch` and
//!    one flush per 1,000 rows, for at most the first 200,000 rows. sled's cost is per key, so this is the ceiling for a
//!    store that keeps those indexes; the import's own overhead is the gap to it;
//! 4. `POST /api/update_db` to a `crm-server` started on `127.0.0.1:0`;
//! 5. on the same server, `POST /api/update_db?mode=replace` of as many other
//!    customers: every row is created and every customer of 4 erased, in a new
//!    generation of the register swapped in at the end.
//!
//! Peak memory is the child's `VmHWM` (Linux), sampled while it runs. Everything
//! happens in temporary directories; the server is stopped at the end.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_tests::generate::{customer, write_customers, Format};

const RAW_BATCH: u64 = 10_000;

/// Rows of the raw baseline that writes as many keys per row as the import.
const SAME_KEYS_ROWS: u64 = 200_000;

fn main() {
    let mut rows = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--rows", Some(n)) => rows = n,
            _ => {
                eprintln!("usage: crm-bench-import [--rows N]");
                std::process::exit(2);
            }
        }
    }
    let server = std::env::current_exe()
        .expect("own path")
        .with_file_name("crm-server-under-test");
    assert!(
        server.exists(),
        "build the crm-tests binaries first: {}",
        server.display()
    );
    let work = tempfile::tempdir().expect("temporary directory");

    let file = work.path().join("clients.json");
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).expect("create file"));
    write_customers(&mut out, Format::Clients, 1, 0, rows).expect("write file");
    out.flush().expect("flush file");
    drop(out);
    let size = std::fs::metadata(&file).expect("file size").len();
    println!(
        "{rows} customers, {:.1} MB of JSON, generated in {:.1?}",
        size as f64 / 1e6,
        started.elapsed()
    );

    let raw = raw_sled(&work.path().join("raw"), rows);
    println!("raw sled batches : {:>9.0} rows/s", rows as f64 / raw.as_secs_f64());

    let (cli, cli_rss) = cli_import(&server, &work.path().join("cli"), &file);
    println!(
        "command line     : {:>9.0} rows/s  peak RSS {:>5} MB  ({:.1?})",
        rows as f64 / cli.as_secs_f64(),
        cli_rss / 1024,
        cli
    );

    let keys_per_row = keys_in(&work.path().join("cli")) as f64 / rows as f64;
    // Capped: this baseline slows down as its one tree grows (at 1,000,000 rows it ran
    // for more than 25 minutes), and a smaller tree only makes it a higher ceiling.
    let same_keys_rows = rows.min(SAME_KEYS_ROWS);
    let same_keys = raw_sled_same_keys(&work.path().join("raw-keys"), same_keys_rows, keys_per_row);
    let same_keys_rate = same_keys_rows as f64 / same_keys.as_secs_f64();
    println!("raw sled, {keys_per_row:.1} keys per row, first {same_keys_rows} rows: {same_keys_rate:>6.0} rows/s");

    // Other customers: numbered after the first file's, so that they share no e-mail
    // and no card with them.
    let replacement = work.path().join("replacement.json");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&replacement).expect("create file"));
    write_customers(&mut out, Format::Clients, 2, rows, rows).expect("write file");
    out.flush().expect("flush file");
    drop(out);
    let (merged, replaced) = http_import(&server, &work.path().join("http"), &file, &replacement, rows);
    let http = merged.elapsed;
    println!(
        "HTTP             : {:>9.0} rows/s  peak RSS {:>5} MB  ({:.1?})",
        rows as f64 / http.as_secs_f64(),
        merged.peak_rss_kib / 1024,
        http
    );
    println!(
        "HTTP, replacing them by {rows} others: {:>6.0} rows/s  peak RSS {:>5} MB  ({:.1?})",
        rows as f64 / replaced.elapsed.as_secs_f64(),
        replaced.peak_rss_kib / 1024,
        replaced.elapsed
    );
    println!(
        "ratio to raw sled: command line {:.2}, HTTP {:.2} (goal: at least 0.33)",
        raw.as_secs_f64() / cli.as_secs_f64(),
        raw.as_secs_f64() / http.as_secs_f64()
    );
    println!(
        "ratio to raw sled with the same keys: command line {:.2}, HTTP {:.2}",
        rows as f64 / cli.as_secs_f64() / same_keys_rate,
        rows as f64 / http.as_secs_f64() / same_keys_rate
    );
}

/// The same records into one sled tree, one batch and one flush per `RAW_BATCH`.
fn raw_sled(dir: &Path, rows: u64) -> Duration {
    let (db, tree) = open_raw(dir);
    let started = Instant::now();
    let mut i = 0;
    while i < rows {
        let mut batch = sled::Batch::default();
        for id in i..(i + RAW_BATCH).min(rows) {
            let record = serde_json::to_vec(&customer(1, id)).expect("serialise");
            batch.insert(&id.to_be_bytes(), record);
        }
        tree.apply_batch(batch).expect("apply batch");
        db.flush().expect("flush");
        i += RAW_BATCH;
    }
    started.elapsed()
}

/// A bare sled database for the raw baselines, and its one tree.
fn open_raw(dir: &Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open sled");
    let tree = db.open_tree("raw").expect("open tree");
    (db, tree)
}

/// Every key of every tree of the database in `dir` (a benchmark may count; the
/// server never does).
fn keys_in(dir: &Path) -> u64 {
    let db = sled::open(dir).expect("open the imported database");
    db.tree_names()
        .iter()
        .map(|name| db.open_tree(name).expect("open tree").len() as u64)
        .sum()
}

/// `rows` records plus index-sized keys, `keys_per_row` keys a row in all, spread over
/// the key space as index entries are; one batch and one flush per 1,000 rows, as the
/// import writes.
fn raw_sled_same_keys(dir: &Path, rows: u64, keys_per_row: f64) -> Duration {
    let (db, tree) = open_raw(dir);
    let started = Instant::now();
    let mut written = 0.0;
    let mut i = 0;
    while i < rows {
        let mut batch = sled::Batch::default();
        for id in i..(i + 1_000).min(rows) {
            let record = customer(1, id);
            batch.insert(
                [b"c".as_slice(), &id.to_be_bytes()].concat(),
                serde_json::to_vec(&record).expect("json"),
            );
            written += 1.0;
            let mut extra = 0u64;
            while written < keys_per_row * (id + 1) as f64 {
                // An e-mail-like token, then the id: spread like a secondary index.
                let token = format!("{}{extra}", record["Email"].as_str().unwrap_or_default());
                batch.insert([b"s".as_slice(), token.as_bytes(), &id.to_be_bytes()].concat(), &[][..]);
                written += 1.0;
                extra += 1;
            }
        }
        tree.apply_batch(batch).expect("apply batch");
        db.flush().expect("flush");
        i += 1_000;
    }
    started.elapsed()
}

fn cli_import(server: &Path, data: &Path, file: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let child = Command::new(server)
        .arg("import")
        .arg(file)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start crm-server import");
    let peak = PeakRss::watch(child.id());
    let output = child.wait_with_output().expect("wait for the import");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    print!("  command line says: {}", String::from_utf8_lossy(&output.stdout));
    (elapsed, peak.stop())
}

/// What one import over HTTP took.
struct HttpImport {
    elapsed: Duration,
    peak_rss_kib: u64,
}

/// `POST /api/update_db` of `file` to a server on `data`, then, on the same server,
/// `?mode=replace` with `replacement` (as many other customers): answers both.
fn http_import(server: &Path, data: &Path, file: &Path, replacement: &Path, rows: u64) -> (HttpImport, HttpImport) {
    let mut process = crm_tests::ServerProcess::start(server, data);
    let address = process.address.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let post = |file: &Path, query: &str, expected: &str| {
        let body = std::fs::read(file).expect("read the file");
        // VmHWM again from the current RSS, so that each import has its own peak.
        let _ = std::fs::write(format!("/proc/{}/clear_refs", process.child.id()), "5");
        let peak = PeakRss::watch(process.child.id());
        let started = Instant::now();
        let answer = runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(format!("{address}/api/update_db{query}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("upload");
            response.text().await.expect("answer")
        });
        let elapsed = started.elapsed();
        println!("  server says: {answer}");
        assert!(answer.contains(expected), "unexpected answer, expected {expected}");
        HttpImport {
            elapsed,
            peak_rss_kib: peak.stop(),
        }
    };
    let merged = post(file, "", &format!("\"created\":{rows}"));
    let replaced = post(replacement, "?mode=replace", &format!("\"erased\":{rows}"));
    stop(&mut process.child);
    (merged, replaced)
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    if child.wait().is_err() {
        let _ = child.kill();
    }
}

/// Samples a process's `VmHWM` (peak resident memory, KiB) until stopped.
struct PeakRss {
    running: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: std::thread::JoinHandle<()>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let running = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let status = PathBuf::from(format!("/proc/{pid}/status"));
        let sampler = std::thread::spawn({
            let (running, peak) = (running.clone(), peak.clone());
            move || {
                while running.load(Ordering::Relaxed) {
                    if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| vm_hwm(&s)) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        PeakRss { running, peak, sampler }
    }

    fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.sampler.join();
        self.peak.load(Ordering::Relaxed)
    }
}

fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

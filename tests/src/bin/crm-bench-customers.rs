//! Benchmarks of the customer routes on a release build, all in one run so that the
//! figures compare on this (shared, two-core) machine. Only 127.0.0.1 is loaded.
//!
//! ```sh
//! cargo build --release --bin crm-server --bin crm-bench-customers
//! target/release/crm-bench-customers --customers 1000000
//! ```
//!
//! It starts `crm-server` (next to this binary) on a temporary directory, seeds it
//! through `POST /api/create_customer` with many writers, then measures:
//! - a warp handler answering a constant 300-byte JSON (the baseline), and
//!   `GET /api/data/<IdClient>`, both at 32 concurrent connections for the same time;
//! - `create_customer` from 32 concurrent writers, and how many flushes they shared;
//! - `GET /api/data` streamed in full, with the server's peak RSS;
//! - a few searches.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};
use warp::Filter;

#[derive(Parser)]
struct Args {
    /// Customers to seed before measuring.
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Seconds of each throughput measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections of the load.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let data = tempfile::tempdir().expect("temporary dir");
    let server_bin = sibling("crm-server");
    let server = crm_tests::ServerProcess::start(&server_bin, data.path());
    let base = server.address.clone();
    let pid = server.child.id();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();

    // Seed.
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..args.customers)
        .map(|n| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let body = json!({"Nom": format!("Nom{}", n % 5000), "Prenom": format!("Prénom{}", n % 700),
                    "email": format!("client{n}@bench.fr"), "phone": format!("06{n:08}"), "Credit": n % 10_000});
                let answer: Value = client
                    .post(format!("{base}/api/create_customer"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                answer["idClient"].as_str().expect("created").to_string()
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} customers in {seed_secs:.1} s ({:.0}/s, 256 writers)",
        ids.len(),
        ids.len() as f64 / seed_secs
    );
    println!("server RSS after seeding: {} MB", rss_mb(pid, "VmRSS"));

    // Baseline: constant 300-byte JSON from warp, in this process on its own runtime.
    let constant = Arc::new(format!("{{\"payload\":\"{}\"}}", "x".repeat(286)));
    let baseline_url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let route = warp::path!("constant")
                    .map(move || warp::reply::with_header(constant.to_string(), "content-type", "application/json"));
                warp::serve(route).incoming(listener).run().await;
            });
        });
        format!("http://{addr}/constant")
    };
    let seconds = Duration::from_secs(args.seconds);
    let baseline = load(&client, args.connections, seconds, move |_| baseline_url.clone()).await;
    let ids = Arc::new(ids);
    let by_id = {
        let ids = ids.clone();
        let base = base.clone();
        load(&client, args.connections, seconds, move |n| {
            format!("{base}/api/data/{}", ids[(n * 7919) as usize % ids.len()])
        })
        .await
    };
    println!("GET constant 300-byte JSON (warp): {baseline:.0} req/s");
    println!(
        "GET /api/data/<IdClient>:          {by_id:.0} req/s  (ratio {:.2})",
        by_id / baseline
    );

    // Writers sharing flushes.
    let flushes_before = health(&client, &base).await["flushes"].as_u64().unwrap();
    let created = Arc::new(AtomicU64::new(0));
    let write_started = Instant::now();
    futures::stream::iter(0..args.connections)
        .for_each_concurrent(None, |w| {
            let (client, base, created) = (client.clone(), base.clone(), created.clone());
            async move {
                let mut n = 0;
                while write_started.elapsed() < seconds {
                    let body = json!({"Nom": "Writer", "email": format!("w{w}-{n}@bench.fr")});
                    let r = client
                        .post(format!("{base}/api/create_customer"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    created.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }
        })
        .await;
    let writes = created.load(Ordering::Relaxed);
    let flushes = health(&client, &base).await["flushes"].as_u64().unwrap() - flushes_before;
    let write_rate = writes as f64 / write_started.elapsed().as_secs_f64();
    println!(
        "create_customer, {} writers: {write_rate:.0}/s, {writes} writes in {flushes} flushes ({:.1} writes per flush)",
        args.connections,
        writes as f64 / flushes.max(1) as f64
    );

    // Full streamed listing.
    let started = Instant::now();
    let mut body = client
        .get(format!("{base}/api/data"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut bytes = 0usize;
    let mut peak_rss = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk.unwrap().len();
        peak_rss = peak_rss.max(rss_mb(pid, "VmRSS"));
    }
    println!(
        "GET /api/data: {:.1} MB in {:.1} s, server RSS peak while streaming {peak_rss} MB (VmHWM {} MB)",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        rss_mb(pid, "VmHWM")
    );

    for q in ["nom42", "prénom1", "client12345@", "0600012", "nom4999 prénom69", "n"] {
        let (page, ms) = timed_get(&client, &format!("{base}/api/v1/customers?q={q}&limit=50")).await;
        println!("search q={q:<18} total {:>7} in {ms:.1} ms", page["total"]);
    }
    let (page, ms) = timed_get(&client, &format!("{base}/api/v1/customers?sort=-Credit&limit=50")).await;
    println!(
        "first page sort=-Credit ({} items) in {ms:.1} ms",
        page["items"].as_array().map_or(0, Vec::len)
    );

    drop(server);
}

/// Requests per second of `connections` loops GETting `url(n)` for `duration`.
async fn load(
    client: &reqwest::Client,
    connections: usize,
    duration: Duration,
    url: impl Fn(u64) -> String + Send + Sync + 'static,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let url = Arc::new(url);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (client, done, url) = (client.clone(), done.clone(), url.clone());
            tokio::spawn(async move {
                let mut n = c as u64 * 1_000_003;
                while started.elapsed() < duration {
                    let r = client.get(url(n)).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// One GET's JSON answer and how long it took, in milliseconds.
async fn timed_get(client: &reqwest::Client, url: &str) -> (Value, f64) {
    let started = Instant::now();
    let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    (page, started.elapsed().as_secs_f64() * 1e3)
}

async fn health(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe().expect("current exe").with_file_name(name)
}

fn rss_mb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

//! The baselines of `crm-bench`, each run by the harness as its own process:
//!
//! - `http`: a warp server answering a constant 300-byte JSON on every path (the HTTP
//!   ceiling: what warp and the load generator reach on this machine);
//! - `store --records FILE --dir DIR`: raw sled batch insert of the records (one
//!   `apply_batch` and one flush per batch, the import's ceiling), then a warp server
//!   answering `GET /api/data/<IdClient>` with one `get` by key and `GET /api/data` with
//!   one scan (the store's ceiling);
//! - `open --dir DIR`: how long sled takes to open a data directory and its trees, and
//!   its resident memory once they are open;
//! - `layout --dir DIR --customers N --index-keys K`: the data directory's size for a
//!   key layout (N records and K index keys a customer, in batches);
//! - `writes --dir DIR --batch N --seconds S`: raw sled, N inserts then one flush, in a
//!   loop (`--batch 1`: one insert plus one flush);
//! - `postings --dir DIR --customers N --hits H --block B`: how long counting the
//!   customers of one search token, and adding one, take when its index has one key a
//!   customer (the store's layout) and when it has blocks of B ids a key.
//!
//! Servers print `crm-bench-baseline listening on http://ADDR` once they listen; every
//! measure is one JSON line on standard output.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::json;
use warp::Filter;

// The harness's /proc and directory readers (a module without crate dependencies).
#[allow(dead_code)]
#[path = "../procs.rs"]
mod procs;

// The allocator crm-server ships with, so that sled costs the same here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Baseline,
}

#[derive(Subcommand)]
enum Baseline {
    /// Constant 300-byte JSON on every path and method.
    Http {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    },
    /// Batch insert of the records, then get by key over warp.
    Store {
        /// One record a line: `IdClient<TAB>customer JSON`.
        #[arg(long)]
        records: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        /// Records per `apply_batch` and flush.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// sled's page cache, MiB (crm-server's default).
        #[arg(long, default_value_t = 16)]
        cache_mb: u64,
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    },
    /// Opens a sled directory and every tree in it.
    Open {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 16)]
        cache_mb: u64,
    },
    /// The size of a data directory for a key layout: `customers` records of
    /// `record_bytes` under sequential keys, each with `index_keys` keys of
    /// `index_key_bytes` in random order in a second tree, `batch` customers a batch
    /// (one `apply_batch` per tree, then one flush).
    Layout {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        #[arg(long, default_value_t = 170)]
        record_bytes: usize,
        #[arg(long, default_value_t = 11)]
        index_keys: u64,
        #[arg(long, default_value_t = 24)]
        index_key_bytes: usize,
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
    },
    /// One search token held by `hits` of `customers` customers (spread evenly through
    /// the ids), its index written twice: one key a customer (`token NUL id`, empty
    /// value, the store's layout) and blocks of `block` ids a key (`token NUL first id`,
    /// the ids as 8-byte big-endian values). Then, `rounds` times each with the 16 MiB
    /// cache, the ids are read back from each layout and counted, and a new customer's
    /// id is added to each, followed by a flush.
    Postings {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        #[arg(long, default_value_t = 77_000)]
        hits: u64,
        #[arg(long, default_value_t = 512)]
        block: usize,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
    },
    /// `batch` inserts of `value_bytes`, then one flush, for `seconds`.
    Writes {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 400)]
        value_bytes: usize,
    },
}

fn main() {
    match Args::parse().command {
        Baseline::Http { addr } => serve(addr, None),
        Baseline::Store {
            records,
            dir,
            batch,
            cache_mb,
            addr,
        } => {
            let (db, tree) = open(&dir, cache_mb);
            let (rows, seconds) = load(&db, &tree, &records, batch);
            println!(
                "{}",
                json!({"measure": "batch_insert", "rows": rows, "batch": batch, "seconds": seconds,
                       "rows_per_s": rows as f64 / seconds})
            );
            serve(addr, Some((db, tree)));
        }
        Baseline::Open { dir, cache_mb } => {
            let started = Instant::now();
            let db = sled::Config::new()
                .path(&dir)
                .cache_capacity(cache_mb * 1024 * 1024)
                .mode(sled::Mode::HighThroughput)
                .open()
                .expect("open sled");
            let names = db.tree_names();
            for name in &names {
                db.open_tree(name).expect("open tree");
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({"measure": "open", "trees": names.len(), "seconds": seconds,
                       "rss_mb": resident_mb()})
            );
        }
        Baseline::Writes {
            dir,
            batch,
            seconds,
            value_bytes,
        } => writes(&dir, batch, Duration::from_secs_f64(seconds), value_bytes),
        Baseline::Layout {
            dir,
            customers,
            record_bytes,
            index_keys,
            index_key_bytes,
            batch,
        } => layout(&dir, customers, record_bytes, index_keys, index_key_bytes, batch),
        Baseline::Postings {
            dir,
            customers,
            hits,
            block,
            rounds,
        } => postings(&dir, customers, hits, block, rounds),
    }
}

/// See [`Baseline::Postings`].
fn postings(dir: &Path, customers: u64, hits: u64, block: usize, rounds: usize) {
    let (db, _) = open(dir, 16);
    let per_key = db.open_tree("index_per_key").expect("open tree");
    let blocks = db.open_tree("index_blocks").expect("open tree");
    let token = b"martin\0";
    let step = (customers / hits.max(1)).max(1);
    let ids: Vec<u64> = (1..=customers).step_by(step as usize).take(hits as usize).collect();
    let mut batch = sled::Batch::default();
    for id in &ids {
        batch.insert([&token[..], &id.to_be_bytes()].concat(), &[][..]);
    }
    per_key.apply_batch(batch).expect("apply batch");
    let mut batch = sled::Batch::default();
    for chunk in ids.chunks(block.max(1)) {
        let value: Vec<u8> = chunk.iter().flat_map(|id| id.to_be_bytes()).collect();
        batch.insert([&token[..], &chunk[0].to_be_bytes()].concat(), value);
    }
    blocks.apply_batch(batch).expect("apply batch");
    db.flush().expect("flush");
    // The median of `rounds` timed reads; each read must find every id.
    let time = |read: &dyn Fn() -> Vec<u64>| -> f64 {
        let mut ms: Vec<f64> = (0..rounds.max(1))
            .map(|_| {
                let started = Instant::now();
                let found = read();
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(found.len(), ids.len(), "a layout lost ids");
                elapsed
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    let per_key_ms = time(&|| {
        per_key
            .scan_prefix(token)
            .keys()
            .map(|key| {
                let key = key.expect("scan");
                u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"))
            })
            .collect()
    });
    let blocks_ms = time(&|| {
        let mut found = Vec::new();
        for value in blocks.scan_prefix(token).values() {
            let value = value.expect("scan");
            found.extend(
                value
                    .chunks_exact(8)
                    .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))),
            );
        }
        found
    });
    // What a new customer with the token costs each layout: one key inserted, or its
    // last block read, extended and written back; each followed by a flush, as a write
    // of the store is before it answers.
    let mut next_id = customers;
    let mut timed_write = |write: &mut dyn FnMut(u64)| -> f64 {
        let mut ms: Vec<f64> = (0..rounds.max(1))
            .map(|_| {
                next_id += 1;
                let started = Instant::now();
                write(next_id);
                db.flush().expect("flush");
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    let per_key_write_ms = timed_write(&mut |id| {
        per_key
            .insert([&token[..], &id.to_be_bytes()].concat(), &[][..])
            .expect("insert");
    });
    let block_write_ms = timed_write(&mut |id| {
        let (key, value) = blocks.scan_prefix(token).next_back().expect("a block").expect("scan");
        let mut value = value.to_vec();
        value.extend_from_slice(&id.to_be_bytes());
        blocks.insert(key, value).expect("insert");
    });
    println!(
        "{}",
        json!({"measure": "postings", "customers": customers, "hits": ids.len(), "block": block,
               "per_key_keys": ids.len(), "per_key_ms": per_key_ms,
               "block_keys": ids.len().div_ceil(block.max(1)), "blocks_ms": blocks_ms,
               "per_key_write_ms": per_key_write_ms, "block_write_ms": block_write_ms,
               "rss_mb": resident_mb()})
    );
}

/// This process's resident memory (`VmRSS`) in MB.
fn resident_mb() -> f64 {
    procs::status_kib(std::process::id(), "VmRSS").map_or(f64::NAN, procs::kib_to_mb)
}

/// See [`Baseline::Layout`]. An index key is pseudo-random bytes then the customer's
/// id, with the 8-byte id as its value: about the bytes of one of the store's entries
/// (a prefix byte and a uuid, an e-mail or a token, then the id in the key or in the
/// value). Records are pseudo-random too, so that nothing compresses.
fn layout(dir: &Path, customers: u64, record_bytes: usize, index_keys: u64, index_key_bytes: usize, batch: u64) {
    let (db, records) = open(dir, 16);
    let index = db.open_tree("index").expect("open tree");
    // splitmix64: reproducible bytes without a dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut bytes = |n: usize| -> Vec<u8> { (0..n.div_ceil(8)).flat_map(|_| next().to_be_bytes()).take(n).collect() };
    let started = Instant::now();
    let mut id = 0u64;
    while id < customers {
        let (mut record_batch, mut index_batch) = (sled::Batch::default(), sled::Batch::default());
        for _ in 0..batch.min(customers - id) {
            id += 1;
            record_batch.insert(&id.to_be_bytes(), bytes(record_bytes));
            for _ in 0..index_keys {
                let mut key = bytes(index_key_bytes.saturating_sub(8));
                key.extend_from_slice(&id.to_be_bytes());
                index_batch.insert(key, &id.to_be_bytes());
            }
        }
        records.apply_batch(record_batch).expect("apply batch");
        index.apply_batch(index_batch).expect("apply batch");
        db.flush().expect("flush");
    }
    let seconds = started.elapsed().as_secs_f64();
    drop((records, index, db));
    println!(
        "{}",
        json!({"measure": "layout", "customers": customers, "record_bytes": record_bytes,
               "index_keys": index_keys, "index_key_bytes": index_key_bytes,
               "keys": customers * (1 + index_keys), "seconds": seconds,
               "dir_mb": procs::dir_mb(dir)})
    );
}

/// sled as crm-server opens it.
fn open(dir: &Path, cache_mb: u64) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_mb * 1024 * 1024)
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open sled");
    let tree = db.open_tree("customers").expect("open tree");
    (db, tree)
}

/// Inserts every record of `records`, `batch` a batch, one flush per batch; answers the
/// rows and the seconds the inserts and flushes took (reading the file included: the
/// import reads its file too).
fn load(db: &sled::Db, tree: &sled::Tree, records: &Path, batch: usize) -> (u64, f64) {
    let file = std::fs::File::open(records).expect("open records");
    let started = Instant::now();
    let mut rows = 0u64;
    let mut pending = sled::Batch::default();
    let mut in_batch = 0;
    for line in std::io::BufReader::with_capacity(1 << 20, file).lines() {
        let line = line.expect("read records");
        let Some((key, value)) = line.split_once('\t') else {
            continue;
        };
        pending.insert(key.as_bytes(), value.as_bytes());
        rows += 1;
        in_batch += 1;
        if in_batch == batch {
            tree.apply_batch(std::mem::take(&mut pending)).expect("apply batch");
            db.flush().expect("flush");
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        tree.apply_batch(pending).expect("apply batch");
        db.flush().expect("flush");
    }
    (rows, started.elapsed().as_secs_f64())
}

/// Serves until killed: the constant JSON, or (with a store) get by key and full scan.
fn serve(addr: String, store: Option<(sled::Db, sled::Tree)>) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        let local = listener.local_addr().expect("local address");
        println!("crm-bench-baseline listening on http://{local}");
        match store {
            None => {
                let constant = Bytes::from(format!("{{\"payload\":\"{}\"}}", "x".repeat(286)));
                assert_eq!(constant.len(), 300);
                let route = warp::any().map(move || {
                    warp::reply::with_header(constant.clone().to_vec(), "content-type", "application/json")
                });
                warp::serve(route).incoming(listener).run().await;
            }
            Some((_db, tree)) => {
                let by_key = {
                    let tree = tree.clone();
                    warp::path!("api" / "data" / String)
                        .and(warp::get())
                        .map(move |key: String| get(&tree, &key))
                };
                let all = warp::path!("api" / "data")
                    .and(warp::get())
                    .map(move || scan(tree.clone()));
                warp::serve(by_key.or(all)).incoming(listener).run().await;
            }
        }
    });
}

/// One `get`, answered as `[record]` the way `GET /api/data/<IdClient>` answers.
fn get(tree: &sled::Tree, key: &str) -> warp::reply::Response {
    use warp::Reply;
    match tree.get(key.as_bytes()) {
        Ok(Some(value)) => {
            let mut body = Vec::with_capacity(value.len() + 2);
            body.push(b'[');
            body.extend_from_slice(&value);
            body.push(b']');
            warp::reply::with_header(body, "content-type", "application/json").into_response()
        }
        _ => warp::reply::with_status("[]", warp::http::StatusCode::NOT_FOUND).into_response(),
    }
}

/// Every record as one JSON array, streamed in chunks of 256 records from a blocking
/// thread (as crm-server streams `GET /api/data`).
fn scan(tree: sled::Tree) -> warp::reply::Response {
    use warp::Reply;
    let (chunks, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.push(b'[');
        let mut first = true;
        let mut in_chunk = 0;
        for item in tree.iter() {
            let Ok((_, value)) = item else { break };
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.extend_from_slice(&value);
            in_chunk += 1;
            if in_chunk == 256 {
                in_chunk = 0;
                if chunks.blocking_send(Ok(Bytes::from(std::mem::take(&mut buf)))).is_err() {
                    return;
                }
            }
        }
        buf.push(b']');
        let _ = chunks.blocking_send(Ok(Bytes::from(buf)));
    });
    let body = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    warp::reply::with_header(warp::reply::stream(body), "content-type", "application/json").into_response()
}

/// `batch` inserts of `value_bytes` bytes under increasing keys, then one flush, for
/// `phase`; prints records/s and the latency of one batch plus its flush.
fn writes(dir: &Path, batch: usize, phase: Duration, value_bytes: usize) {
    let (db, tree) = open(dir, 16);
    let value = vec![b'x'; value_bytes];
    let mut latencies = Vec::new();
    let mut key = 0u64;
    let started = Instant::now();
    while started.elapsed() < phase {
        let one = Instant::now();
        let mut pending = sled::Batch::default();
        for _ in 0..batch {
            key += 1;
            pending.insert(&key.to_be_bytes(), value.as_slice());
        }
        tree.apply_batch(pending).expect("apply batch");
        db.flush().expect("flush");
        latencies.push(one.elapsed().as_secs_f64() * 1e3);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}",
        json!({"measure": "writes", "batch": batch, "records": key, "seconds": seconds,
               "records_per_s": key as f64 / seconds, "flushes_per_s": latencies.len() as f64 / seconds,
               "p50_ms": at(0.5), "p99_ms": at(0.99)})
    );
}

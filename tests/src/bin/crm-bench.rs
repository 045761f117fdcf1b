//! Release benchmark of loyalty writes against raw sled, measured in one run:
//!
//! ```text
//! cargo run --release -p crm-tests --bin crm-bench -- [customers] [seconds per phase]
//! ```
//!
//! Builds a store of `customers` customers (default 100000, each with a card), serves
//! it on 127.0.0.1, then measures for `seconds` (default 8) each:
//! - raw sled: batches of 100 ticket-sized inserts, one flush per batch;
//! - raw sled: the same, writing for each ticket as many keys as the store does
//!   ([`KEYS_PER_TICKET`]): sled's cost is per key, so this is the ceiling for a store
//!   that keeps the ticket's indexes, ledger and customer balance;
//! - ticket ingestion over HTTP: batches of 100 tickets of 3 articles, 1 and 4 clients;
//! - raw sled: one insert, one flush;
//! - single credits over HTTP (`POST /api/credit`, one item) from 32 clients.
//!
//! Stops by itself and removes its data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_server::store::{CustomerStore, SledStore, StoreAdmin};
use crm_server::Config;
use serde_json::{json, Value};
use uuid::Uuid;

// The server runs in this process: use the allocator the real binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TICKETS_PER_BATCH: usize = 100;

/// Keys the store writes for a ticket of a known customer: the ticket, its `uid`, the
/// customer's ticket link, the ledger entry, the customer record, and the Credit and
/// PanierMoyen sort entries moved (one removal and one insertion each).
const KEYS_PER_TICKET: usize = 9;

/// A small xorshift generator: the benchmark needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn ticket(id: u64, client: Uuid) -> Value {
    json!({"id": id, "date": "2019-10-09T17:01:29.408701Z", "prix": 1234 + id % 1000, "client": client,
    "pointsFidelite": 3, "modePaiement": "CARD", "origin": "magasin",
    "articles": [
        {"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2},
        {"codeProduit": "X1-9", "prixAvant": 48, "prixApres": 24, "promo": 50, "quantity": 1},
        {"codeProduit": "X2-4", "prixAvant": 36, "prixApres": 36, "promo": 0, "quantity": 3}
    ]})
}

fn main() {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let phase = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(customers, phase));
}

async fn run(customers: usize, phase: Duration) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let config = Config::new(dir.path().join("crm"));
    let store = SledStore::open(&config.data_dir, config.cache_bytes).expect("open store");

    let started = Instant::now();
    let ids = populate(&store, customers).await;
    println!(
        "setup: {customers} customers in {:.1} s ({} flushes)",
        started.elapsed().as_secs_f64(),
        store.flush_count()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crm_server::serve(listener, store.clone(), config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let sample = serde_json::to_vec(&ticket(1, Uuid::new_v4())).expect("json");
    let raw_batch = raw_sled_rate(&dir.path().join("raw-batch"), phase, TICKETS_PER_BATCH, &sample);
    println!("raw sled, batches of {TICKETS_PER_BATCH} + flush: {raw_batch:.0} records/s");
    let raw_same_keys = raw_sled_rate_with_keys(
        &dir.path().join("raw-keys"),
        phase,
        TICKETS_PER_BATCH,
        &sample,
        KEYS_PER_TICKET,
    );
    println!(
        "raw sled, batches of {TICKETS_PER_BATCH} tickets of {KEYS_PER_TICKET} keys + flush: {raw_same_keys:.0} tickets/s"
    );
    let ids = Arc::new(ids);
    let next_ticket = Arc::new(AtomicU64::new(0));
    let one = ingest_rate(&client, &address, &ids, &next_ticket, 1, phase).await;
    println!(
        "ticket ingestion, 1 client: {one:.0} tickets/s ({:.2} of raw, {:.2} of raw with the same keys)",
        one / raw_batch,
        one / raw_same_keys
    );
    let four = ingest_rate(&client, &address, &ids, &next_ticket, 4, phase).await;
    println!(
        "ticket ingestion, 4 clients: {four:.0} tickets/s ({:.2} of raw, {:.2} of raw with the same keys)",
        four / raw_batch,
        four / raw_same_keys
    );

    let raw_single = raw_sled_rate(&dir.path().join("raw-single"), phase, 1, &sample[..64]);
    println!("raw sled, one insert + flush: {raw_single:.0} inserts/s");
    let flushes_before = store.flush_count();
    let (credits, count) = credit_rate(&client, &address, customers, 32, phase).await;
    println!(
        "single credits, 32 clients: {credits:.0} credits/s ({:.1}x raw; {count} credits in {} flushes)",
        credits / raw_single,
        store.flush_count() - flushes_before
    );

    let _ = stop.send(());
    server.await.expect("server task").expect("clean shutdown");
}

/// Creates `n` customers through the store (not HTTP: setup, not the measure), many at
/// a time so that they share flushes. Customer `i` holds card `i + 1`.
async fn populate(store: &SledStore, n: usize) -> Vec<Uuid> {
    const WRITERS: usize = 256;
    let next = Arc::new(AtomicU64::new(0));
    let tasks = (0..WRITERS).map(|_| {
        let store = store.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return made;
                }
                let new = crm_model::NewCustomer {
                    nom: format!("Nom{i}"),
                    prenom: format!("Prenom{i}"),
                    email: format!("client{i}@example.fr"),
                    phone: format!("06{i:08}"),
                    carte_fid: Some(i as u64 + 1),
                    ..Default::default()
                };
                let record = store.create_customer(new).await.expect("create customer");
                made.push((i, record.id_client));
            }
        })
    });
    let mut ids = vec![Uuid::nil(); n];
    for task in futures::future::join_all(tasks).await {
        for (i, id) in task.expect("writer") {
            ids[i] = id;
        }
    }
    ids
}

/// Records per second of raw sled: `per_flush` inserts of `value`, then a flush.
fn raw_sled_rate(dir: &std::path::Path, phase: Duration, per_flush: usize, value: &[u8]) -> f64 {
    raw_sled_rate_with_keys(dir, phase, per_flush, value, 1)
}

/// Records per second of raw sled: `per_flush` records, each `value` under its own key
/// plus `keys_per_record - 1` small keys spread over the key space as index entries
/// are, then a flush.
fn raw_sled_rate_with_keys(
    dir: &std::path::Path,
    phase: Duration,
    per_flush: usize,
    value: &[u8],
    keys_per_record: usize,
) -> f64 {
    let mut spread = Rng(0x9e37_79b9_7f4a_7c15);
    let db = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open raw sled");
    let tree = db.open_tree("raw").expect("tree");
    let started = Instant::now();
    let mut key = 0u64;
    while started.elapsed() < phase {
        let mut batch = sled::Batch::default();
        for _ in 0..per_flush {
            key += 1;
            batch.insert(&key.to_be_bytes(), value);
            for index in 1..keys_per_record {
                let position = [
                    &[index as u8],
                    spread.next().to_be_bytes().as_slice(),
                    &key.to_be_bytes(),
                ]
                .concat();
                batch.insert(position, &[][..]);
            }
        }
        tree.apply_batch(batch).expect("batch");
        db.flush().expect("flush");
    }
    key as f64 / started.elapsed().as_secs_f64()
}

async fn ingest_rate(
    client: &reqwest::Client,
    address: &str,
    ids: &Arc<Vec<Uuid>>,
    next_ticket: &Arc<AtomicU64>,
    clients: usize,
    phase: Duration,
) -> f64 {
    let stored = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, url) = (client.clone(), format!("{address}/api/v1/tickets"));
            let (ids, next_ticket, stored, done) = (ids.clone(), next_ticket.clone(), stored.clone(), done.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
                while !done.load(Ordering::Relaxed) {
                    let tickets: Vec<Value> = (0..TICKETS_PER_BATCH)
                        .map(|_| {
                            let id = next_ticket.fetch_add(1, Ordering::Relaxed);
                            ticket(id, ids[rng.below(ids.len())])
                        })
                        .collect();
                    let answer: Value = client
                        .post(&url)
                        .json(&json!({"tickets": tickets}))
                        .send()
                        .await
                        .expect("post tickets")
                        .json()
                        .await
                        .expect("answer");
                    stored.fetch_add(answer["stored"].as_u64().expect("stored"), Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(phase).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client");
    }
    stored.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn credit_rate(
    client: &reqwest::Client,
    address: &str,
    customers: usize,
    clients: usize,
    phase: Duration,
) -> (f64, u64) {
    let credited = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, url) = (client.clone(), format!("{address}/api/credit"));
            let (credited, done) = (credited.clone(), done.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (c as u64 + 1));
                while !done.load(Ordering::Relaxed) {
                    let card = rng.below(customers) + 1;
                    let answer: Value = client
                        .post(&url)
                        .json(&json!({"Tickets": [{"carteFid": card, "Montant": 26}]}))
                        .send()
                        .await
                        .expect("post credit")
                        .json()
                        .await
                        .expect("answer");
                    assert_eq!(answer["credited"].as_array().map(Vec::len), Some(1), "{answer}");
                    credited.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(phase).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client");
    }
    let n = credited.load(Ordering::Relaxed);
    (n as f64 / started.elapsed().as_secs_f64(), n)
}

//! The crash test: the real server binary, in its own process, under an import and a
//! storm of creates, credits and tickets, SIGKILLed at 20 random moments and restarted
//! each time. Afterwards every acknowledged write is there and reachable through each
//! index, no import is half applied, every ledger sums to its balance, and every restart
//! answered `/healthz` `200` within [`RESTART_BOUND`].
//!
//! Its own test target, so that `cargo test -p crm-tests --test crash` runs it alone.
//! The moments are drawn from a seed printed at the start (`CRASH_SEED=<n>` replays one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_tests::{status_and_json, ServerProcess};
use serde_json::{json, Value};

const KILLS: u64 = 20;
/// Rows of each import (two write batches and a part: a kill often falls inside).
const IMPORT_ROWS: u64 = 2_500;
/// From the start of the process to `/healthz` `200`, rolling forward any interrupted
/// import of [`IMPORT_ROWS`] rows. Takes well under a second unloaded; the bound leaves
/// room for a loaded two-core CI machine.
const RESTART_BOUND: Duration = Duration::from_secs(30);

/// A small xorshift: the test needs reproducible moments, not good randomness.
struct Moments(u64);

impl Moments {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Clone, Debug)]
struct Created {
    id_client: String,
    email: String,
    card: u64,
    nom: String,
}

/// What the server acknowledged (answered `2xx`).
#[derive(Default)]
struct Acknowledged {
    customers: Vec<Created>,
    /// IdClient -> credits acknowledged (`/api/credit`).
    credits: BTreeMap<String, u64>,
    /// IdClient -> ticket uids acknowledged.
    tickets: BTreeMap<String, BTreeSet<String>>,
    /// Imports answered `200`, by number.
    imports: BTreeSet<u64>,
}

fn import_file(import: u64) -> Vec<u8> {
    let rows: Vec<Value> = (0..IMPORT_ROWS)
        .map(|i| {
            json!({"Nom": format!("Importe{import}"), "Prenom": "Ligne", "Email": format!("imp{import}.{i}@crash.test"),
                "CarteFid": 5_000_000 + import * 10_000 + i, "Credit": 100 + i})
        })
        .collect();
    serde_json::to_vec(&rows).unwrap()
}

/// Creates, credits and tickets until `stop`, from `writer` (several run at once).
async fn storm(
    client: reqwest::Client,
    base: String,
    round: u64,
    writer: u64,
    known: Vec<Created>,
    acknowledged: Arc<Mutex<Acknowledged>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let tag = (round * 100 + writer) * 100_000 + n;
        let send = match (n % 3, known.get((tag % known.len().max(1) as u64) as usize)) {
            (1, Some(target)) => {
                let body = json!({"Tickets": [{"carteFid": target.card, "Montant": 2 + n % 50}]});
                let answer = client.post(format!("{base}/api/credit")).json(&body).send().await;
                match answer {
                    Ok(a) if a.status() == 200 => {
                        let (_, body) = status_and_json(a).await;
                        assert_eq!(body["credited"].as_array().map(Vec::len), Some(1), "{body}");
                        *acknowledged
                            .lock()
                            .unwrap()
                            .credits
                            .entry(target.id_client.clone())
                            .or_default() += 1;
                    }
                    _ => {}
                }
                continue;
            }
            (2, Some(target)) => {
                let ticket = json!({"id": tag, "date": "2024-03-09T17:01:29Z", "prix": 1000 + n % 100,
                    "client": target.email, "pointsFidelite": 0, "modePaiement": "CARD",
                    "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]});
                let body = json!({"origin": "magasin", "tickets": [ticket]});
                let answer = client.post(format!("{base}/api/v1/tickets")).json(&body).send().await;
                if let Ok(a) = answer {
                    if a.status() == 200 {
                        acknowledged
                            .lock()
                            .unwrap()
                            .tickets
                            .entry(target.id_client.clone())
                            .or_default()
                            .insert(format!("magasin{tag}"));
                    }
                }
                continue;
            }
            _ => tag,
        };
        let created = Created {
            id_client: String::new(),
            email: format!("storm{send}@crash.test"),
            card: 2_000_000_000 + send,
            nom: format!("Orage{send}"),
        };
        let body = json!({"Nom": created.nom, "Prenom": "Vent", "email": created.email, "CarteFid": created.card});
        if let Ok(a) = client
            .post(format!("{base}/api/create_customer"))
            .json(&body)
            .send()
            .await
        {
            if a.status() == 200 {
                let (_, answer) = status_and_json(a).await;
                let id_client = answer["idClient"].as_str().expect("idClient").to_string();
                acknowledged
                    .lock()
                    .unwrap()
                    .customers
                    .push(Created { id_client, ..created });
            }
        }
    }
}

/// Waits for `/healthz` `200`; every answer before it must be `503` `recovering`
/// (with `Retry-After`) or none at all. Answers how long it took from `started`.
async fn wait_until_open(client: &reqwest::Client, base: &str, started: Instant) -> Duration {
    loop {
        let elapsed = started.elapsed();
        assert!(elapsed < RESTART_BOUND, "no /healthz 200 within {RESTART_BOUND:?}");
        if let Ok(answer) = client.get(format!("{base}/healthz")).send().await {
            let status = answer.status().as_u16();
            let retry_after = answer.headers().contains_key("retry-after");
            let (_, body) = status_and_json(answer).await;
            match status {
                200 => {
                    assert_eq!(body["status"], "ok", "{body}");
                    return elapsed;
                }
                503 => assert!(body["status"] == "recovering" && retry_after, "{body}"),
                other => panic!("/healthz answered {other} while opening: {body}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_twenty_kills_during_imports_and_a_storm() {
    let binary = Path::new(env!("CARGO_BIN_EXE_crm-server-under-test"));
    let data = tempfile::tempdir().unwrap();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2_654_435_761 + 1);
    eprintln!("crash test seed {seed} (CRASH_SEED={seed} replays it)");
    let mut moments = Moments(seed | 1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let mut imports_started = Vec::new();
    let mut slowest = Duration::ZERO;
    for round in 0..KILLS {
        let started = Instant::now();
        let server = ServerProcess::start_opening(binary, data.path());
        let base = server.address.clone();
        slowest = slowest.max(wait_until_open(&client, &base, started).await);

        let known = acknowledged.lock().unwrap().customers.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..6)
            .map(|writer| {
                tokio::spawn(storm(
                    client.clone(),
                    base.clone(),
                    round,
                    writer,
                    known.clone(),
                    acknowledged.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Most rounds import a file, from a random moment; the kill comes at another.
        let import = (moments.below(4) != 0).then(|| {
            imports_started.push(round);
            let (client, url) = (client.clone(), format!("{base}/api/update_db"));
            let (acknowledged, delay) = (acknowledged.clone(), moments.below(400));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let answer = client.post(url).body(import_file(round)).send().await;
                if let Ok(a) = answer {
                    if a.status() == 200 {
                        acknowledged.lock().unwrap().imports.insert(round);
                    }
                }
            })
        });
        tokio::time::sleep(Duration::from_millis(300 + moments.below(2_200))).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        if let Some(import) = import {
            import.await.unwrap();
        }
    }

    let started = Instant::now();
    let server = ServerProcess::start_opening(binary, data.path());
    let base = server.address.clone();
    slowest = slowest.max(wait_until_open(&client, &base, started).await);
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    eprintln!(
        "{} creates, {} credits, {} tickets, {} of {} imports acknowledged; slowest restart to /healthz 200: {slowest:?}",
        acknowledged.customers.len(),
        acknowledged.credits.values().sum::<u64>(),
        acknowledged.tickets.values().map(BTreeSet::len).sum::<usize>(),
        acknowledged.imports.len(),
        imports_started.len()
    );
    assert!(
        !acknowledged.customers.is_empty(),
        "the storm never got a write through"
    );

    // Every import whole or absent; acknowledged ones whole.
    let (status, all) = status_and_json(client.get(format!("{base}/api/data")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let all = all.as_array().unwrap();
    let mut per_import: BTreeMap<u64, u64> = BTreeMap::new();
    for customer in all {
        let email = customer["Email"].as_str().unwrap_or_default();
        if let Some(rest) = email.strip_prefix("imp") {
            let import: u64 = rest.split('.').next().unwrap().parse().unwrap();
            *per_import.entry(import).or_default() += 1;
        }
    }
    for round in &imports_started {
        let present = per_import.get(round).copied().unwrap_or(0);
        assert!(
            present == 0 || present == IMPORT_ROWS,
            "import {round} half applied: {present} of {IMPORT_ROWS} rows"
        );
        if acknowledged.imports.contains(round) {
            assert_eq!(present, IMPORT_ROWS, "acknowledged import {round} lost");
        }
    }
    for (round, present) in &per_import {
        // One customer of each applied import through each index, and its ledger.
        let i = round % IMPORT_ROWS;
        let email = format!("imp{round}.{i}@crash.test");
        let (status, by_email) = status_and_json(
            client
                .post(format!("{base}/api/customer/email"))
                .json(&json!({ "email": email }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "import {round} ({present} rows): {email} by e-mail");
        let id_client = by_email["IdClient"].as_str().unwrap().to_string();
        let card = 5_000_000 + round * 10_000 + i;
        assert_found_by_card_and_search(&client, &base, &id_client, card, &email).await;
        assert_ledger_sums_to_balance(&client, &base, &id_client).await;
    }

    // Every acknowledged create, by IdClient, e-mail, card, search and in the list.
    let listed: BTreeSet<&str> = all.iter().filter_map(|c| c["IdClient"].as_str()).collect();
    let total = all.len();
    let (_, page) = status_and_json(
        client
            .get(format!("{base}/api/v1/customers?limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        page["total"].as_u64(),
        Some(total as u64),
        "the live count matches the list"
    );
    for created in &acknowledged.customers {
        assert!(listed.contains(created.id_client.as_str()), "{created:?} not listed");
        let (status, one) = status_and_json(
            client
                .get(format!("{base}/api/v1/customers/{}", created.id_client))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, one["Nom"].as_str()),
            (200, Some(created.nom.as_str())),
            "{created:?}"
        );
        let (status, by_email) = status_and_json(
            client
                .post(format!("{base}/api/customer/email"))
                .json(&json!({ "email": created.email }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, by_email["IdClient"].as_str()),
            (200, Some(created.id_client.as_str())),
            "{created:?} by e-mail"
        );
        assert_found_by_card_and_search(&client, &base, &created.id_client, created.card, &created.email).await;
    }

    // Every ledger of a customer the storm credited or sent tickets sums to its balance,
    // and holds at least the acknowledged credits; every acknowledged ticket is there.
    let touched: BTreeSet<&String> = acknowledged.credits.keys().chain(acknowledged.tickets.keys()).collect();
    for id_client in touched {
        let entries = assert_ledger_sums_to_balance(&client, &base, id_client).await;
        let credits = entries.iter().filter(|e| e["cause"] == "credit").count() as u64;
        let expected = acknowledged.credits.get(id_client).copied().unwrap_or(0);
        assert!(
            credits >= expected,
            "{id_client}: {credits} credit entries, {expected} acknowledged"
        );
        if let Some(uids) = acknowledged.tickets.get(id_client) {
            let (status, page) = status_and_json(
                client
                    .get(format!("{base}/api/v1/customers/{id_client}/tickets?limit=1000"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let stored: BTreeSet<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["uid"].as_str())
                .collect();
            for uid in uids {
                assert!(
                    stored.contains(uid.as_str()),
                    "{id_client}: acknowledged ticket {uid} missing"
                );
            }
        }
    }
    assert!(
        slowest < RESTART_BOUND,
        "slowest restart {slowest:?} over {RESTART_BOUND:?}"
    );
}

async fn assert_found_by_card_and_search(
    client: &reqwest::Client,
    base: &str,
    id_client: &str,
    card: u64,
    email: &str,
) {
    let (status, by_card) =
        status_and_json(client.get(format!("{base}/api/credit/{card}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "card {card} of {id_client}: {by_card}");
    for (what, query) in [("card", card.to_string()), ("e-mail", email.to_string())] {
        let (status, page) = status_and_json(
            client
                .get(format!("{base}/api/v1/customers?q={query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, page["items"][0]["IdClient"].as_str()),
            (200, Some(id_client)),
            "search by {what} {query}: {page}"
        );
    }
}

/// The ledger of `id_client`, whose entries sum to its balance.
async fn assert_ledger_sums_to_balance(client: &reqwest::Client, base: &str, id_client: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/customers/{id_client}/ledger?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = status_and_json(client.get(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    let (status, customer) = status_and_json(
        client
            .get(format!("{base}/api/v1/customers/{id_client}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        sum,
        customer["Credit"].as_i64().unwrap(),
        "{id_client}: ledger {entries:?}"
    );
    entries
}

//! Two `crm-server`s on one PostgreSQL database, as a chain behind a load balancer runs
//! them: what one writes the other reads at once, concurrent writes through both add up
//! exactly, and the ticket feed read alternately through both neither skips nor repeats.
//!
//! PostgreSQL only (the embedded store belongs to one process): on the sled run these
//! tests say they are skipped.

use std::collections::BTreeSet;

use std::time::Duration;

use crm_tests::upstream::{Answer, FakeGateway};
use crm_tests::{on_postgres, spawn_app, spawn_app_beside, spawn_app_beside_with, spawn_app_with, TestApp};
use serde_json::{json, Value};

/// Two servers on one new database, or `None` (said) on the sled run.
async fn two_servers() -> Option<(TestApp, TestApp)> {
    if !on_postgres() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED on sled: two servers share a PostgreSQL database (CRM_TEST_STORE=postgres)"
        );
        return None;
    }
    let one = spawn_app().await;
    let two = spawn_app_beside(&one).await;
    Some((one, two))
}

fn ticket(id: u64, prix: u64, client: &str) -> Value {
    json!({"id": id, "date": "2019-10-09T17:01:29.408701Z", "prix": prix, "client": client,
        "pointsFidelite": 0, "modePaiement": "CARD",
        "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]})
}

#[tokio::test]
async fn a_write_through_one_server_is_read_through_the_other_at_once() {
    let Some((one, two)) = two_servers().await else { return };
    let id = one
        .create_customer_ok(&json!({"Nom": "Durand", "Email": "d@x.fr", "CarteFid": 12}))
        .await;
    let (status, customer) = two.customer(&id).await;
    assert_eq!((status, &customer["Nom"]), (200, &json!("Durand")), "{customer}");
    let (status, _) = two.patch_customer(&id, &json!({"Phone": "0102030405"})).await;
    assert_eq!(status, 200);
    let (_, customer) = one.customer(&id).await;
    assert_eq!(customer["Phone"], "0102030405");
    // The unique keys hold across servers: the e-mail taken through one is refused
    // through the other.
    let (status, body) = two.create_customer(&json!({"Nom": "Other", "Email": "D@x.fr"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(one.customer_count().await, 1);
    assert_eq!(two.customer_count().await, 1);
}

#[tokio::test]
async fn credits_on_one_card_spread_over_both_servers_give_the_exact_balance() {
    let Some((one, two)) = two_servers().await else { return };
    one.create_v1_ok(&json!({"Nom": "A", "CarteFid": 33})).await;
    let credits = (0..64u64).map(|n| {
        let server = if n.is_multiple_of(2) { &one } else { &two };
        async move {
            let (status, body) = server
                .credit(&json!({"Tickets": [{"carteFid": 33, "Montant": 2 * (n + 1)}]}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    });
    futures::future::join_all(credits).await;
    // Half of 2 + 4 + ... + 128.
    let expected: u64 = (1..=64).sum();
    for server in [&one, &two] {
        let (_, body) = server.credit_of("33").await;
        assert_eq!(body["Credit"].as_u64(), Some(expected), "{body}");
    }
}

#[tokio::test]
async fn a_ticket_replayed_through_both_servers_is_credited_once() {
    let Some((one, two)) = two_servers().await else { return };
    let id = one.create_customer_ok(&json!({"Nom": "A"})).await;
    let batch = json!({"origin": "magasin", "tickets": [ticket(1, 100, &id)]});
    let sends = (0..8u32).map(|n| {
        let server = if n.is_multiple_of(2) { &one } else { &two };
        let batch = &batch;
        async move {
            let (status, body) = server.post_tickets(batch).await;
            assert_eq!(status, 200, "{body}");
            body["stored"].as_u64().unwrap()
        }
    });
    let stored: u64 = futures::future::join_all(sends).await.into_iter().sum();
    assert_eq!(stored, 1, "one of the eight stored it, the others found it stored");
    let (_, customer) = two.customer(&id).await;
    assert_eq!(customer["Credit"], 50);
    let (_, tickets) = one.customer_tickets(&id, "").await;
    assert_eq!(tickets["total"], 1);
}

#[tokio::test]
async fn a_consumer_reading_through_both_servers_never_skips_or_repeats_a_ticket() {
    let Some((one, two)) = two_servers().await else { return };
    const WRITERS: u64 = 4;
    const BATCHES: u64 = 25;
    let write = |writer: u64| {
        let server = if writer.is_multiple_of(2) { &one } else { &two };
        async move {
            for batch in 0..BATCHES {
                let tickets: Vec<Value> = (0..3).map(|n| ticket(writer * 1000 + batch * 3 + n, 2, "")).collect();
                let (status, body) = server
                    .post_tickets(&json!({"origin": format!("shop{writer}-"), "tickets": tickets}))
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
    };
    let writing = futures::future::join_all((0..WRITERS).map(write));
    let reading = async {
        let mut seen = Vec::new();
        let mut reads = 0u32;
        // Read alternately through each server while the writers write, then until the
        // feed is drained.
        while seen.len() < (WRITERS * BATCHES * 3) as usize && reads < 2000 {
            let server = if reads.is_multiple_of(2) { &one } else { &two };
            for t in server.get_tickets(Some("bi")).await {
                seen.push(t["uid"].as_str().unwrap().to_string());
            }
            reads += 1;
        }
        seen
    };
    let ((), seen) = futures::join!(
        async {
            writing.await;
        },
        reading
    );
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no ticket twice");
    assert_eq!(seen.len() as u64, WRITERS * BATCHES * 3, "every ticket once");
    assert!(one.get_tickets(Some("bi")).await.is_empty());
    assert!(two.get_tickets(Some("bi")).await.is_empty());
}

#[tokio::test]
async fn payment_runs_called_on_both_servers_at_once_send_each_payment_once() {
    if !on_postgres() {
        // Said by two_servers() in the other tests.
        let _ = two_servers().await;
        return;
    }
    let gateway = FakeGateway::start().await;
    // A slow payment service, so that the two runs overlap.
    gateway.set_payment_answer(Answer::Slow(
        Duration::from_millis(100),
        Box::new(Answer::Json(json!({"status": "OK"}))),
    ));
    let behind = |config: &mut crm_server::Config| {
        config.gateway = Some(gateway.url());
        config.upstream_timeout = Duration::from_secs(5);
    };
    let one = spawn_app_with(behind).await;
    let two = spawn_app_beside_with(&one, behind).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let id = one
            .create_customer_ok(&json!({"Nom": "Payer", "Compte": format!("FR76{n}")}))
            .await;
        let (status, body) = one
            .allow_credit(&json!({"idClient": id, "Montant": 100 + n, "Date": "2020-01-01"}))
            .await;
        assert_eq!((status, &body["Allowed"]), (200, &json!(true)), "{body}");
        ids.push(id);
    }
    let (first, second) = futures::join!(one.run_payments(), two.run_payments());
    let sent = first["sent"].as_u64().unwrap() + second["sent"].as_u64().unwrap();
    assert_eq!(sent, 6, "{first}\n{second}");
    let waited = [&first, &second]
        .iter()
        .filter(|run| run["message"].as_str().is_some_and(|m| m.contains("another server")))
        .count();
    assert_eq!(waited, 1, "one run waited for the other: {first}\n{second}");
    let mut charged: Vec<String> = gateway.payment_calls().into_iter().map(|c| c.client_id).collect();
    charged.sort();
    ids.sort();
    assert_eq!(charged, ids, "each customer charged once");
    for id in &ids {
        let (_, customer) = two.customer(id).await;
        assert_eq!(customer["Montant"], 0, "{customer}");
    }
    // Given back: a later run on either server takes its turn at once.
    let again = two.run_payments().await;
    assert_eq!(
        (again["due"].as_u64(), again.get("message")),
        (Some(0), None),
        "{again}"
    );
}

#[tokio::test]
async fn an_import_through_one_server_makes_one_through_the_other_wait_its_end() {
    let Some((one, two)) = two_servers().await else { return };
    const ROWS: u64 = 20_000;
    let file = crm_tests::generate::customers_file(crm_tests::generate::Format::JsonLines, 9, ROWS);
    let request = reqwest::Client::new()
        .post(one.url("/api/update_db"))
        .header("content-type", "application/x-ndjson")
        .body(file);
    let first = tokio::spawn(async move { crm_tests::status_and_json(request.send().await.unwrap()).await });
    // Until the first import holds the database's import lock. The server lists an
    // import as current as soon as its request arrives, a moment before its store takes
    // the lock; the store reports progress only once it holds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, current) = crm_tests::status_and_json(one.get("/api/v1/imports/current").await).await;
        if status == 200 && current["done"].as_u64() > Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first import never started: {current}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut refused = 0;
    loop {
        let response = two
            .post_raw("/api/update_db", r#"[{"Nom": "Second", "Email": "second@x.fr"}]"#)
            .await;
        let retry_after = response.headers().get("retry-after").is_some();
        let (status, body) = crm_tests::status_and_json(response).await;
        if status == 200 {
            assert_eq!(body["created"], 1, "{body}");
            break;
        }
        crm_tests::assert_error(status, &body, 503, "import_running");
        assert!(retry_after, "a 503 says when to retry");
        refused += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, report) = first.await.unwrap();
    assert_eq!((status, report["created"].as_u64()), (200, Some(ROWS)), "{report}");
    assert!(refused > 0, "the second import was tried while the first ran");
    assert_eq!(two.customer_count().await, ROWS + 1);
}

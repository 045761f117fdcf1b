//! Tickets end to end: ingestion (credit, average basket, idempotency, validation,
//! anonymous and unmatched tickets matched later), listings, and `/api/get_tickets`
//! with per-consumer cursors.

use crm_tests::{assert_error, spawn_app, spawn_app_with, status_and_json, TestApp};
use serde_json::{json, Value};

fn ticket(id: u64, prix: u64, client: &str) -> Value {
    json!({"id": id, "date": "2019-10-09T17:01:29.408701Z", "prix": prix, "client": client,
        "pointsFidelite": 0, "modePaiement": "CARD",
        "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]})
}

async fn ingest_ok(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = app.post_tickets(body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn ledger_sum(app: &TestApp, id: &str) -> i64 {
    let entries = app.all_pages(&format!("/api/v1/customers/{id}/ledger"), 50).await;
    entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn a_known_customers_tickets_credit_half_and_set_the_true_average_basket() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A", "Credit": 7})).await;
    let answer = ingest_ok(
        &app,
        &json!({"origin": "magasin", "tickets": [ticket(1, 100, &id), ticket(2, 51, &id)]}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"stored": 2, "duplicates": 0, "credited_cents": 75, "unmatched": [], "anonymous": 0})
    );
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (c["Credit"].as_u64(), c["PanierMoyen"].as_u64()),
        (Some(7 + 50 + 25), Some(75))
    );
    assert_eq!(ledger_sum(&app, &id).await, 82);

    let (status, page) = app.customer_tickets(&id, "").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2);
    let t = &page["items"][0];
    assert_eq!(
        (t["uid"].as_str(), t["id"].as_u64(), t["prix"].as_u64()),
        (Some("magasin1"), Some(1), Some(100))
    );
    assert_eq!(t["origin"], "magasin");
    assert_eq!(t["unmatched"], false);
    assert_eq!(t["articles"][0]["prixAvant"], 800);
    let entries = app.all_pages(&format!("/api/v1/customers/{id}/ledger"), 50).await;
    assert_eq!(
        (entries[1]["cause"].as_str(), entries[1]["key"].as_str()),
        (Some("ticket"), Some("magasin1"))
    );
}

#[tokio::test]
async fn a_replayed_ticket_is_counted_as_a_duplicate_and_credited_once() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let batch = json!({"origin": "magasin", "tickets": [ticket(1, 100, &id)]});
    ingest_ok(&app, &batch).await;
    let answer = ingest_ok(&app, &batch).await;
    assert_eq!(
        answer,
        json!({"stored": 0, "duplicates": 1, "credited_cents": 0, "unmatched": [], "anonymous": 0})
    );
    // The same id from another origin is another ticket; twice in one batch is once.
    let answer = ingest_ok(
        &app,
        &json!({"tickets": [ticket(1, 10, &id), ticket(1, 10, &id)], "origin": "e-commerce"}),
    )
    .await;
    assert_eq!(
        (answer["stored"].as_u64(), answer["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, c) = app.customer(&id).await;
    assert_eq!(c["Credit"], 55);
}

#[tokio::test]
async fn concurrent_replays_of_one_ticket_credit_it_once() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let batch = json!({"origin": "magasin", "tickets": [ticket(7, 1000, &id)]});
    let posts = (0..16).map(|_| app.post_tickets(&batch));
    let answers = futures::future::join_all(posts).await;
    let stored: u64 = answers
        .iter()
        .map(|(s, a)| {
            assert_eq!(*s, 200, "{a}");
            a["stored"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(stored, 1);
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (c["Credit"].as_u64(), c["PanierMoyen"].as_u64()),
        (Some(500), Some(1000))
    );
    let (_, all) = app.tickets("").await;
    assert_eq!(all["total"], 1);
    assert_eq!(ledger_sum(&app, &id).await, 500);
}

#[tokio::test]
async fn an_invalid_batch_lists_every_bad_ticket_and_writes_nothing() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let (status, body) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": [
            ticket(1, 100, &id),
            {"date": "2019-10-09", "prix": 5},
            {"id": 3, "date": "the ninth", "prix": -5},
            {"id": 4, "date": "2019-10-09", "prix": 5, "articles": [{"prixAvant": -1}]},
        ]}))
        .await;
    assert_error(status, &body, 422, "invalid_tickets");
    let errors: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(1, "id"), (2, "date"), (2, "prix"), (3, "articles[0].prixAvant")]
    );
    let (_, all) = app.tickets("").await;
    assert_eq!(all["total"], 0);
    let (_, c) = app.customer(&id).await;
    assert_eq!(c["Credit"], 0);

    for unreadable in [
        json!([1]),
        json!({"tickets": {}}),
        json!({"origin": 3, "tickets": []}),
        json!({}),
    ] {
        let (status, body) = app.post_tickets(&unreadable).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = status_and_json(app.post_raw("/api/v1/tickets", vec![b'{', 0xff, b'}']).await).await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn the_ticket_body_takes_the_stream_limit_not_the_body_limit() {
    let app = spawn_app_with(|c| c.stream_limit = 4096).await;
    let big: Vec<Value> = (0..100).map(|n| ticket(n, 1, "")).collect();
    let (status, body) = app.post_tickets(&json!({"tickets": big})).await;
    assert_error(status, &body, 413, "payload_too_large");

    let app = spawn_app_with(|c| c.body_limit = 1024).await;
    let batch: Vec<Value> = (0..20).map(|n| ticket(n, 1, "")).collect();
    let answer = ingest_ok(&app, &json!({"tickets": batch})).await;
    assert_eq!(answer["stored"], 20);
}

#[tokio::test]
async fn anonymous_tickets_are_stored_and_unknown_clients_matched_once_they_exist() {
    let app = spawn_app().await;
    let future_id = "a14e39ce-e29e-11e9-a8cb-08002751d198";
    let answer = ingest_ok(
        &app,
        &json!({"origin": "magasin", "tickets": [
            ticket(1, 100, ""),
            ticket(2, 200, future_id),
            {"id": 3, "date": "2020-01-01", "prix": 40, "client": "Web@Shop.fr", "origin": "e-commerce"},
            {"id": 4, "date": "2020-01-01", "prix": 60, "client": "", "CarteFid": 77},
            {"id": 5, "date": "2020-01-01", "prix": 80, "client": "web@shop.fr", "origin": "e-commerce", "CarteFid": 78},
        ]}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"stored": 5, "duplicates": 0, "credited_cents": 0,
            "unmatched": ["magasin2", "e-commerce3", "magasin4", "e-commerce5"], "anonymous": 1})
    );
    let flags = unmatched_flags(&app).await;
    assert_eq!(flags, [false, true, true, true, true]);

    // Created with that IdClient: credited in the same write.
    let c = app.create_v1_ok(&json!({"Nom": "Later", "IdClient": future_id})).await;
    assert_eq!(
        (c["Credit"].as_u64(), c["PanierMoyen"].as_u64()),
        (Some(100), Some(200))
    );
    // Created with that e-mail (any case): both web tickets, the second also waiting on card 78.
    let web = app.create_v1_ok(&json!({"Nom": "Web", "Email": "WEB@shop.fr"})).await;
    assert_eq!(
        (web["Credit"].as_u64(), web["PanierMoyen"].as_u64()),
        (Some(60), Some(60))
    );
    // Card 78 then matches nothing more: ticket 5 was credited once.
    let other = app.create_v1_ok(&json!({"Nom": "Card78", "CarteFid": 78})).await;
    assert_eq!(other["Credit"], 0);
    // A card given by PATCH matches the card ticket.
    let card_holder = app.create_customer_ok(&json!({"Nom": "Card"})).await;
    let (status, patched) = app.patch_customer(&card_holder, &json!({"CarteFid": 77})).await;
    assert_eq!((status, patched["Credit"].as_u64()), (200, Some(30)), "{patched}");

    let flags = unmatched_flags(&app).await;
    assert_eq!(flags, [false, false, false, false, false]);
    for id in [future_id, web["IdClient"].as_str().unwrap(), card_holder.as_str()] {
        let (_, c) = app.customer(id).await;
        assert_eq!(ledger_sum(&app, id).await, c["Credit"].as_i64().unwrap());
    }
    let (_, t) = app.customer_tickets(web["IdClient"].as_str().unwrap(), "").await;
    assert_eq!(t["total"], 2);
}

#[tokio::test]
async fn a_card_issued_later_matches_waiting_card_tickets() {
    let app = spawn_app().await;
    ingest_ok(
        &app,
        &json!({"tickets": [{"id": 1, "date": "2020-01-01", "prix": 10, "CarteFid": 1}]}),
    )
    .await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let (_, c) = app.issue_card(&id).await;
    assert_eq!((c["CarteFid"].as_u64(), c["Credit"].as_u64()), (Some(1), Some(5)));
}

#[tokio::test]
async fn older_sources_article_prix_is_read_as_the_list_price() {
    let app = spawn_app().await;
    ingest_ok(
        &app,
        &json!({"origin": "magasin", "tickets": [{"id": "T-1", "date": "2019-01-07T09:00:00", "prix": 12.6,
            "articles": [{"codeProduit": "A", "prix": 120, "quantity": 1}]}]}),
    )
    .await;
    let (_, page) = app.tickets("").await;
    let t = &page["items"][0];
    assert_eq!((t["uid"].as_str(), t["prix"].as_u64()), (Some("magasinT-1"), Some(13)));
    assert_eq!(t["date"], "2019-01-07T09:00:00Z");
    assert_eq!(t["articles"][0]["prixAvant"], 120);
    // The older feed: the CRM's own number, the date alone.
    let t = &app.get_tickets(None).await[0];
    assert_eq!(
        (&t["id"], &t["date"], &t["articles"][0]["prixAvant"]),
        (&json!(1), &json!("2019-01-07"), &json!(120))
    );
}

#[tokio::test]
async fn get_tickets_answers_every_ticket_oldest_first_and_each_consumer_only_new_ones() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(app.get("/api/get_tickets").await).await;
    assert_eq!((status, body), (200, json!({"tickets": []})));
    ingest_ok(
        &app,
        &json!({"origin": "magasin", "tickets": [ticket(1, 1, ""), ticket(2, 2, "")]}),
    )
    .await;
    let uids = |tickets: Vec<Value>| -> Vec<String> {
        tickets.iter().map(|t| t["uid"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(uids(app.get_tickets(None).await), ["magasin1", "magasin2"]);

    assert_eq!(uids(app.get_tickets(Some("bi")).await), ["magasin1", "magasin2"]);
    assert!(app.get_tickets(Some("bi")).await.is_empty(), "bi has them all");
    ingest_ok(&app, &json!({"origin": "magasin", "tickets": [ticket(3, 3, "")]})).await;
    assert_eq!(uids(app.get_tickets(Some("bi")).await), ["magasin3"]);
    assert_eq!(
        uids(app.get_tickets(Some("promo")).await),
        ["magasin1", "magasin2", "magasin3"]
    );
    assert_eq!(app.get_tickets(None).await.len(), 3, "the full listing moves no cursor");

    // The cursor is durable.
    let app = app.restart().await;
    assert!(app.get_tickets(Some("bi")).await.is_empty());
    assert!(app.get_tickets(Some("promo")).await.is_empty());
}

#[tokio::test]
async fn a_consumer_that_goes_away_mid_answer_gets_the_tickets_again() {
    let app = spawn_app().await;
    // Enough tickets for several chunks, so that the answer is still being produced.
    let batch: Vec<Value> = (0..3000).map(|n| ticket(n, 1, "")).collect();
    ingest_ok(&app, &json!({"origin": "magasin", "tickets": batch})).await;
    let response = app.get("/api/get_tickets/bi").await;
    assert_eq!(response.status(), 200);
    drop(response);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.get_tickets(Some("bi")).await.len(), 3000);
    assert!(app.get_tickets(Some("bi")).await.is_empty());
}

#[tokio::test]
async fn ticket_lists_are_paged() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let batch: Vec<Value> = (0..7)
        .map(|n| ticket(n, 10, if n % 2 == 0 { &id } else { "" }))
        .collect();
    ingest_ok(&app, &json!({"origin": "magasin", "tickets": batch})).await;
    let all = app.all_pages("/api/v1/tickets", 3).await;
    let ids: Vec<u64> = all.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
    let mine = app.all_pages(&format!("/api/v1/customers/{id}/tickets"), 2).await;
    let ids: Vec<u64> = mine.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 2, 4, 6]);
    let (_, page) = app.tickets("limit=3").await;
    assert_eq!(
        (page["total"].as_u64(), page["next_cursor"].as_str()),
        (Some(7), Some("3"))
    );

    for bad in ["limit=0", "limit=1001", "cursor=x"] {
        let (status, body) = app.tickets(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let (status, _) = app.customer_tickets(&id, bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = app.customer_tickets("a14e39ce-e29e-11e9-a8cb-08002751d198", "").await;
    assert_error(status, &body, 404, "customer_not_found");
}

/// The `unmatched` flag of every stored ticket, in ingestion order.
async fn unmatched_flags(app: &TestApp) -> Vec<bool> {
    let (_, page) = app.tickets("").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["unmatched"].as_bool().unwrap())
        .collect()
}

//! Loyalty end to end: `POST /api/credit` (batches, unknown cards, validation,
//! idempotency, concurrency), `GET /api/credit/<card>`, cards, and the ledger, whose
//! entries always sum to `Credit`.

use crm_tests::{assert_error, spawn_app, status_and_json, TestApp};
use serde_json::{json, Value};

/// Asserts that the customer's ledger sums to its `Credit`; answers the entries.
async fn assert_ledger_sums_to_credit(app: &TestApp, id: &str) -> Vec<Value> {
    let entries = app.all_pages(&format!("/api/v1/customers/{id}/ledger"), 3).await;
    let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    let (_, customer) = app.customer(id).await;
    assert_eq!(sum, customer["Credit"].as_i64().unwrap(), "ledger {entries:?}");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    entries
}

#[tokio::test]
async fn the_documents_credit_batch_credits_half_rounded_down() {
    let app = spawn_app().await;
    let a = app.create_v1_ok(&json!({"Nom": "A", "CarteFid": 33})).await;
    app.create_v1_ok(&json!({"Nom": "B", "CarteFid": 42})).await;

    let (status, body) = app
        .credit(&json!({"Tickets": [{"carteFid": 33, "Montant": 26}, {"carteFid": 42, "Montant": 55}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"credited": [{"carteFid": 33, "Credit": 13}, {"carteFid": 42, "Credit": 27}], "errors": [],
            "anonymous": 0})
    );
    let (status, body) = app.credit_of("33").await;
    assert_eq!((status, body), (200, json!({"carteFid": 33, "Credit": 13})));

    // Older clients use the IdClient as the card.
    let id = a["IdClient"].as_str().unwrap();
    let (status, body) = app
        .credit(&json!({"Tickets": [{"carteFid": id, "Montant": "10"}]}))
        .await;
    assert_eq!((status, &body["credited"][0]["Credit"]), (200, &json!(18)), "{body}");
    let (status, body) = app.credit_of(id).await;
    assert_eq!((status, body["Credit"].as_u64()), (200, Some(18)));
    let entries = assert_ledger_sums_to_credit(&app, id).await;
    assert!(entries.iter().all(|e| e["cause"] == "credit"));
}

#[tokio::test]
async fn unknown_cards_are_listed_and_the_others_credited() {
    let app = spawn_app().await;
    app.create_v1_ok(&json!({"Nom": "A", "CarteFid": 7})).await;
    let (status, body) = app
        .credit(
            &json!({"Tickets": [{"carteFid": 99, "Montant": 10}, {"carteFid": 7, "Montant": 10},
            {"carteFid": "a14e39ce-e29e-11e9-a8cb-08002751d198", "Montant": 4}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["credited"], json!([{"carteFid": 7, "Credit": 5}]));
    assert_eq!(
        body["errors"],
        json!([{"index": 0, "carteFid": 99, "error": "unknown card"},
            {"index": 2, "carteFid": "a14e39ce-e29e-11e9-a8cb-08002751d198", "error": "unknown card"}])
    );
}

#[tokio::test]
async fn an_invalid_item_refuses_the_whole_batch_and_writes_nothing() {
    let app = spawn_app().await;
    let c = app.create_v1_ok(&json!({"Nom": "A", "CarteFid": 7})).await;
    let id = c["IdClient"].as_str().unwrap();
    for bad in [
        json!({"Tickets": [{"carteFid": 7, "Montant": 10}, {"carteFid": 7}]}),
        json!({"Tickets": [{"carteFid": 7, "Montant": 10}, {"carteFid": 7, "Montant": -1}]}),
        json!({"Tickets": [{"carteFid": 7, "Montant": 10}, {"carteFid": "nope", "Montant": 1}]}),
        json!({"Tickets": [{"carteFid": 7, "Montant": 10}, 5]}),
    ] {
        let (status, body) = app.credit(&bad).await;
        assert_error(status, &body, 422, "invalid_fields");
    }
    // (`{}` is the scheduler's pull: see drop_in.rs.)
    for unreadable in [json!([1]), json!({"Tickets": 3})] {
        let (status, body) = app.credit(&unreadable).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = status_and_json(app.post_raw("/api/credit", "{not json").await).await;
    assert_error(status, &body, 400, "bad_request");
    let (_, c) = app.customer(id).await;
    assert_eq!(c["Credit"], 0);
    let (_, ledger) = app.ledger(id, "").await;
    assert_eq!(ledger["total"], 0);
}

#[tokio::test]
async fn replays_credit_nothing_twice_by_item_id_or_batch_key() {
    let app = spawn_app().await;
    let c = app.create_v1_ok(&json!({"Nom": "A", "CarteFid": 5})).await;
    let id = c["IdClient"].as_str().unwrap();
    let batch = json!({"Tickets": [{"carteFid": 5, "Montant": 100, "id": "till-1"}]});
    let first = app.credit(&batch).await;
    let replay = app.credit(&batch).await;
    assert_eq!(
        first,
        (
            200,
            json!({"credited": [{"carteFid": 5, "Credit": 50}], "errors": [], "anonymous": 0})
        )
    );
    assert_eq!(replay, first, "same shape, same balance, nothing credited again");

    // One key twice inside one batch counts once too.
    let (_, body) = app
        .credit(
            &json!({"Tickets": [{"carteFid": 5, "Montant": 10, "id": 77}, {"carteFid": 5, "Montant": 10, "id": 77}]}),
        )
        .await;
    assert_eq!(
        body["credited"],
        json!([{"carteFid": 5, "Credit": 55}, {"carteFid": 5, "Credit": 55}])
    );

    let keyed = json!({"Tickets": [{"carteFid": 5, "Montant": 20}, {"carteFid": 5, "Montant": 40}]});
    let (_, body) = app.credit_with_key(&keyed, "batch-9").await;
    assert_eq!(body["credited"][1]["Credit"], 85);
    let (_, body) = app.credit_with_key(&keyed, "batch-9").await;
    assert_eq!(
        body["credited"],
        json!([{"carteFid": 5, "Credit": 85}, {"carteFid": 5, "Credit": 85}])
    );
    // Without a key, a batch is a new batch.
    let (_, body) = app.credit(&keyed).await;
    assert_eq!(body["credited"][1]["Credit"], 115);

    let entries = assert_ledger_sums_to_credit(&app, id).await;
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0]["key"], "till-1");
}

#[tokio::test]
async fn sixty_four_concurrent_credits_on_one_card_end_with_the_exact_balance() {
    let app = spawn_app().await;
    let c = app
        .create_v1_ok(&json!({"Nom": "Busy", "CarteFid": 1, "Credit": 1000}))
        .await;
    let id = c["IdClient"].as_str().unwrap().to_string();
    let credits = (0..64u64).map(|n| {
        let app = &app;
        async move {
            app.credit(&json!({"Tickets": [{"carteFid": 1, "Montant": 2 * n + 1}]}))
                .await
        }
    });
    for (status, body) in futures::future::join_all(credits).await {
        assert_eq!(status, 200, "{body}");
    }
    // Each n earns floor((2n + 1) / 2) = n.
    let expected = 1000 + (0..64u64).sum::<u64>();
    let (_, body) = app.credit_of("1").await;
    assert_eq!(body["Credit"].as_u64(), Some(expected));
    let entries = assert_ledger_sums_to_credit(&app, &id).await;
    assert_eq!(entries.len(), 65);
    assert_eq!(entries[0]["cause"], "opening");
}

#[tokio::test]
async fn unknown_cards_answer_404() {
    let app = spawn_app().await;
    for card in ["33", "abc", "0", "a14e39ce-e29e-11e9-a8cb-08002751d198"] {
        let (status, body) = app.credit_of(card).await;
        assert_error(status, &body, 404, "card_not_found");
    }
    // An erased customer's card is withdrawn.
    let c = app.create_v1_ok(&json!({"Nom": "Gone", "CarteFid": 3})).await;
    app.erase_customer(c["IdClient"].as_str().unwrap()).await;
    let (status, body) = app.credit_of("3").await;
    assert_error(status, &body, 404, "card_not_found");
}

#[tokio::test]
async fn cards_are_issued_skipping_numbers_given_explicitly_and_kept() {
    let app = spawn_app().await;
    app.create_v1_ok(&json!({"Nom": "Holder", "CarteFid": 1})).await;
    app.create_v1_ok(&json!({"Nom": "Holder2", "CarteFid": 3})).await;
    let b = app.create_customer_ok(&json!({"Nom": "B"})).await;
    let c = app.create_customer_ok(&json!({"Nom": "C"})).await;

    let (status, customer) = app.issue_card(&b).await;
    assert_eq!((status, customer["CarteFid"].as_u64()), (200, Some(2)), "{customer}");
    assert_eq!(customer["IdClient"], b.as_str());
    let (_, again) = app.issue_card(&b).await;
    assert_eq!(again, customer, "a customer who has a card keeps it");
    let (_, customer) = app.issue_card(&c).await;
    assert_eq!(customer["CarteFid"], 4, "3 was taken");

    // The issued card works, and is unique.
    let (_, body) = app.credit(&json!({"Tickets": [{"carteFid": 4, "Montant": 8}]})).await;
    assert_eq!(body["credited"][0]["Credit"], 4);
    let (status, body) = app.patch_customer(&b, &json!({"CarteFid": 4})).await;
    assert_error(status, &body, 409, "card_taken");

    let (status, body) = app.issue_card("a14e39ce-e29e-11e9-a8cb-08002751d198").await;
    assert_error(status, &body, 404, "customer_not_found");
    let (status, body) = app.issue_card("nope").await;
    assert_error(status, &body, 404, "customer_not_found");
}

#[tokio::test]
async fn the_ledger_is_paged_and_refuses_bad_queries() {
    let app = spawn_app().await;
    let c = app
        .create_v1_ok(&json!({"Nom": "A", "CarteFid": 9, "Credit": 10}))
        .await;
    let id = c["IdClient"].as_str().unwrap();
    for n in 0..4 {
        app.credit(&json!({"Tickets": [{"carteFid": 9, "Montant": 2 + n}]}))
            .await;
    }
    let (status, page) = app.ledger(id, "limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].as_u64(), page["items"].as_array().unwrap().len()),
        (Some(5), 2)
    );
    assert_eq!(page["items"][0]["balance"], 10);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, next) = app.ledger(id, &format!("limit=2&cursor={cursor}")).await;
    assert_eq!(next["items"][0]["seq"], 3);
    let (_, last) = app.ledger(id, "limit=5").await;
    assert!(last["next_cursor"].is_null());
    assert_ledger_sums_to_credit(&app, id).await;

    for bad in ["limit=0", "limit=x", "cursor=zz"] {
        let (status, body) = app.ledger(id, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = app.ledger("a14e39ce-e29e-11e9-a8cb-08002751d198", "").await;
    assert_error(status, &body, 404, "customer_not_found");
}

#[tokio::test]
async fn every_loyalty_ticket_and_payment_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let (status, doc) = status_and_json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(status, 200);
    for (path, method) in [
        ("/api/credit", "post"),
        ("/api/credit/{carteFid}", "get"),
        ("/api/v1/customers/{IdClient}/card", "post"),
        ("/api/v1/customers/{IdClient}/ledger", "get"),
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets", "get"),
        ("/api/v1/customers/{IdClient}/tickets", "get"),
        ("/api/get_tickets", "get"),
        ("/api/get_tickets/{consumer}", "get"),
        ("/api/allow_credit", "post"),
        ("/api/v1/customers/{IdClient}/payments", "get"),
        ("/api/v1/payments", "get"),
        ("/api/v1/payments/{id}/result", "post"),
        ("/api/v1/customers/{IdClient}/refusals/reset", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing");
    }
}

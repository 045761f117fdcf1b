//! Deferred payments end to end: `/api/allow_credit` (rule, scheduling, every error
//! carrying `Allowed`), the payment service's routes, and refusals.

use crm_tests::{assert_error, spawn_app, spawn_app_with, status_and_json, TestApp};
use serde_json::{json, Value};

async fn allow_ok(app: &TestApp, id: &str, montant: Value, date: &str) -> bool {
    let (status, body) = app
        .allow_credit(&json!({"idClient": id, "Montant": montant, "Date": date}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["idClient"], id);
    body["Allowed"].as_bool().expect("Allowed")
}

async fn payments_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.all_pages(&format!("/api/v1/customers/{id}/payments"), 2).await
}

#[tokio::test]
async fn allowed_credit_schedules_payments_that_add_up() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    assert!(allow_ok(&app, &id, json!("36000"), "2019-12-06").await);
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (c["Montant"].as_u64(), c["Date_paiement"].as_str()),
        (Some(36000), Some("2019-12-06"))
    );

    // Added, never overwriting; Date_paiement is the earliest pending due date.
    assert!(allow_ok(&app, &id, json!(500), "2019-11-30").await);
    assert!(allow_ok(&app, &id, json!(12.4), "2020-01-15").await);
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (c["Montant"].as_u64(), c["Date_paiement"].as_str()),
        (Some(36512), Some("2019-11-30"))
    );

    let payments = payments_of(&app, &id).await;
    assert_eq!(payments.len(), 3);
    assert_eq!(
        payments[0],
        json!({"id": 1, "IdClient": id, "Montant": 36000, "Date": "2019-12-06", "status": "pending", "attempts": 0})
    );
}

#[tokio::test]
async fn every_allow_credit_error_carries_allowed_false() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    for (body, field) in [
        (json!({"Montant": 10, "Date": "2019-12-06"}), "idClient"),
        (
            json!({"idClient": "nope", "Montant": 10, "Date": "2019-12-06"}),
            "idClient",
        ),
        (json!({"idClient": id, "Date": "2019-12-06"}), "Montant"),
        (json!({"idClient": id, "Montant": 0, "Date": "2019-12-06"}), "Montant"),
        (json!({"idClient": id, "Montant": -5, "Date": "2019-12-06"}), "Montant"),
        (
            json!({"idClient": id, "Montant": "ten", "Date": "2019-12-06"}),
            "Montant",
        ),
        (json!({"idClient": id, "Montant": 10}), "Date"),
        (json!({"idClient": id, "Montant": 10, "Date": "2019-02-30"}), "Date"),
        (json!({"idClient": id, "Montant": 10, "Date": 20191206}), "Date"),
    ] {
        let (status, answer) = app.allow_credit(&body).await;
        assert_error(status, &answer, 422, "invalid_fields");
        assert_eq!(answer["Allowed"], false, "{answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{body}");
        assert_eq!(answer["idClient"], body.get("idClient").cloned().unwrap_or(Value::Null));
    }
    let unknown = "a14e39ce-e29e-11e9-a8cb-08002751d198";
    let (status, answer) = app
        .allow_credit(&json!({"idClient": unknown, "Montant": 10, "Date": "2019-12-06"}))
        .await;
    assert_error(status, &answer, 404, "customer_not_found");
    assert_eq!(
        (answer["Allowed"].as_bool(), answer["idClient"].as_str()),
        (Some(false), Some(unknown))
    );

    let (status, answer) = status_and_json(app.post_raw("/api/allow_credit", "not json").await).await;
    assert_error(status, &answer, 400, "bad_request");
    assert_eq!(answer["Allowed"], false);
    assert!(payments_of(&app, &id).await.is_empty(), "nothing was scheduled");
}

#[tokio::test]
async fn a_refusal_moves_the_due_date_and_over_the_limit_credit_is_refused_until_reset() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    assert!(allow_ok(&app, &id, json!(1000), "2019-12-06").await);
    let (status, p) = app.payment_result("1", &json!({"status": "ERROR"})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["Date"].as_str(), p["attempts"].as_u64(), p["status"].as_str()),
        (Some("2019-12-07"), Some(1), Some("pending"))
    );
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (
            c["NbRefus"].as_u64(),
            c["Date_paiement"].as_str(),
            c["Montant"].as_u64()
        ),
        (Some(1), Some("2019-12-07"), Some(1000))
    );

    // At the default limit (1), no more credit: 200 with Allowed false, nothing scheduled.
    assert!(!allow_ok(&app, &id, json!(50), "2020-01-01").await);
    assert_eq!(payments_of(&app, &id).await.len(), 1);

    let (status, c) = app.reset_refusals(&id).await;
    assert_eq!((status, c["NbRefus"].as_u64()), (200, Some(0)));
    assert!(allow_ok(&app, &id, json!(50), "2020-01-01").await);

    let (status, body) = app.reset_refusals("a14e39ce-e29e-11e9-a8cb-08002751d198").await;
    assert_error(status, &body, 404, "customer_not_found");
}

#[tokio::test]
async fn the_refusal_limit_is_configurable() {
    let app = spawn_app_with(|c| c.refusal_limit = 2).await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    assert!(allow_ok(&app, &id, json!(10), "2019-12-06").await);
    app.payment_result("1", &json!({"status": "ERROR"})).await;
    assert!(
        allow_ok(&app, &id, json!(10), "2019-12-06").await,
        "1 refusal is under 2"
    );
    app.payment_result("1", &json!({"status": "DECLINED"})).await;
    assert!(!allow_ok(&app, &id, json!(10), "2019-12-06").await);
}

#[tokio::test]
async fn an_ok_result_marks_paid_and_the_customer_totals_follow() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A"})).await;
    allow_ok(&app, &id, json!(100), "2019-12-01").await;
    allow_ok(&app, &id, json!(200), "2019-12-10").await;
    let (status, p) = app.payment_result("1", &json!({"status": "OK"})).await;
    assert_eq!((status, p["status"].as_str()), (200, Some("paid")));
    let (_, c) = app.customer(&id).await;
    assert_eq!(
        (c["Montant"].as_u64(), c["Date_paiement"].as_str()),
        (Some(200), Some("2019-12-10"))
    );
    // The service may say OK twice; a refusal of a paid payment is a conflict.
    let (status, again) = app.payment_result("1", &json!({"status": "OK"})).await;
    assert_eq!((status, again), (200, p));
    let (status, body) = app.payment_result("1", &json!({"status": "ERROR"})).await;
    assert_error(status, &body, 409, "payment_not_pending");

    app.payment_result("2", &json!({"status": "OK"})).await;
    let (_, c) = app.customer(&id).await;
    assert_eq!((c["Montant"].as_u64(), c["Date_paiement"].as_str()), (Some(0), None));

    for unknown in ["99", "x"] {
        let (status, body) = app.payment_result(unknown, &json!({"status": "OK"})).await;
        assert_error(status, &body, 404, "payment_not_found");
    }
    let (status, body) = app.payment_result("2", &json!({"state": "OK"})).await;
    assert_error(status, &body, 422, "invalid_fields");
    let (status, body) = status_and_json(app.post_raw("/api/v1/payments/2/result", "[]").await).await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn payments_due_lists_pending_ones_due_on_or_before_the_date_by_due_date() {
    let app = spawn_app().await;
    let a = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let b = app.create_customer_ok(&json!({"Nom": "B"})).await;
    allow_ok(&app, &a, json!(1), "2019-12-03").await; // 1
    allow_ok(&app, &b, json!(2), "2019-12-01").await; // 2
    allow_ok(&app, &a, json!(3), "2019-12-05").await; // 3
    allow_ok(&app, &b, json!(4), "2019-12-02").await; // 4
    app.payment_result("4", &json!({"status": "OK"})).await;

    let due = app.all_pages("/api/v1/payments?due=2019-12-04", 1).await;
    let ids: Vec<u64> = due.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(
        due[0],
        json!({"id": 2, "IdClient": b, "Montant": 2, "Date": "2019-12-01", "status": "pending", "attempts": 0})
    );
    let (_, page) = app.payments_due("due=2019-12-05&limit=2").await;
    assert_eq!(page["total"], 3);
    let (_, page) = app.payments_due("due=2019-11-30").await;
    assert_eq!(
        (page["total"].as_u64(), page["items"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    // A refusal moves it out of an earlier window.
    app.payment_result("2", &json!({"status": "ERROR"})).await;
    let due = app.all_pages("/api/v1/payments?due=2019-12-01", 10).await;
    assert!(due.is_empty());

    for bad in [
        "due=2019-02-30",
        "due=tomorrow",
        "due=2019-12-01&limit=0",
        "due=2019-12-01&cursor=zz",
    ] {
        let (status, body) = app.payments_due(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = app.customer_payments("a14e39ce-e29e-11e9-a8cb-08002751d198", "").await;
    assert_error(status, &body, 404, "customer_not_found");
    let (status, _) = app.customer_payments(&a, "cursor=x").await;
    assert_eq!(status, 400);
}

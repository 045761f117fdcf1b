//! Writes during an import: they wait for a turn between its batches (`mode=merge`) or
//! for its swap (`mode=replace`), at most the write wait (`--write-wait`), then are
//! answered `503 import_running` with `Retry-After`; a write that would take an e-mail
//! a row of the import gives another customer is `409 reserved_by_import`.
//!
//! Those are the embedded store's turns between its batches: on PostgreSQL an import is
//! one transaction that writes never wait a turn for, so those tests are skipped there,
//! and the last test shows a write answered while an import is under way.

use std::time::{Duration, Instant};

use crm_tests::generate::{customer, customers_file, Format};
use crm_tests::{assert_error, spawn_app, spawn_app_with, status_and_json, TestApp};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// Rows of the imports here: enough for a few seconds of writing in a test build.
const ROWS: u64 = 20_000;

/// Starts `POST /api/update_db?<query>` of `rows` generated customers (seed 9).
fn start_import(app: &TestApp, query: &str, rows: u64) -> JoinHandle<(u16, Value)> {
    let file = customers_file(Format::JsonLines, 9, rows);
    let request = reqwest::Client::new()
        .post(app.url(&format!("/api/update_db?{query}")))
        .header("content-type", "application/x-ndjson")
        .body(file);
    tokio::spawn(async move { status_and_json(request.send().await.expect("import request")).await })
}

/// Waits until the running import is in `phase` with at most `done_at_most` rows of it
/// done; panics if it ends or goes past that first.
async fn wait_for_phase(app: &TestApp, phase: &str, done_at_most: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, current) = status_and_json(app.get("/api/v1/imports/current").await).await;
        if status == 200 && current["phase"] == phase {
            let done = current["done"].as_u64().unwrap();
            assert!(
                done <= done_at_most,
                "the import was already past {done_at_most} rows: {current}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the import never reached {phase}: {status} {current}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn import_is_running(app: &TestApp) -> bool {
    app.get("/api/v1/imports/current").await.status() == 200
}

/// `mode=merge`: a create and a credit made while the rows are written are answered
/// within the wait, before the import ends, and are there afterwards beside every row.
#[tokio::test]
async fn a_create_and_a_credit_during_a_merge_import_wait_for_a_turn_and_are_kept() {
    if crm_tests::sled_only("the turns between the batches of a sled import") {
        return;
    }
    let app = spawn_app().await;
    app.create_v1_ok(&json!({"Nom": "Holder", "CarteFid": 33})).await;
    let upload = start_import(&app, "", ROWS);
    wait_for_phase(&app, "writing", ROWS / 3).await;

    let asked = Instant::now();
    let (status, created) = app
        .create_customer(&json!({"Nom": "Between", "email": "between@x.fr"}))
        .await;
    let create_took = asked.elapsed();
    assert_eq!(status, 200, "{created}");
    let asked = Instant::now();
    let (status, credited) = app.credit(&json!({"Tickets": [{"carteFid": 33, "Montant": 26}]})).await;
    let credit_took = asked.elapsed();
    assert_eq!(status, 200, "{credited}");
    assert!(
        import_is_running(&app).await,
        "the import ended before the writes were answered: they did not run between its batches"
    );
    assert!(create_took < Duration::from_secs(5) && credit_took < Duration::from_secs(5));
    eprintln!("during the import, a create took {create_took:?}, a credit {credit_took:?}");

    let (status, report) = upload.await.unwrap();
    assert_eq!((status, report["created"].as_u64()), (200, Some(ROWS)), "{report}");
    assert_eq!(app.customer_count().await, ROWS + 2);
    let id = created["idClient"].as_str().unwrap();
    let (status, found) = app.customer_by_email("between@x.fr").await;
    assert_eq!((status, found["IdClient"].as_str()), (200, Some(id)), "{found}");
    assert_eq!(app.credit_of("33").await.1["Credit"], 13);
    // The rows kept the ids reserved for them: the first and the last are found again.
    for i in [0, ROWS - 1] {
        let row = customer(9, i);
        let (status, found) = app.customer_by_email(row["Email"].as_str().unwrap()).await;
        assert_eq!((status, &found["Nom"]), (200, &row["Nom"]), "row {i}: {found}");
    }
}

/// `--write-wait 0`: a write that finds the import holding the turns is refused at
/// once, `503 import_running` with `Retry-After`, and nothing of it is written.
#[tokio::test]
async fn with_no_write_wait_a_write_during_an_import_is_503_with_retry_after() {
    if crm_tests::sled_only("the turns between the batches of a sled import") {
        return;
    }
    let app = spawn_app_with(|config| config.write_wait = Duration::ZERO).await;
    let upload = start_import(&app, "mode=replace", ROWS);
    wait_for_phase(&app, "writing", ROWS / 3).await;
    let (mut refused, mut accepted) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let email = format!("refused{i}@x.fr");
        let response = app
            .post_json("/api/create_customer", &json!({"Nom": "Refused", "email": email}))
            .await;
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, body) = status_and_json(response).await;
        if status == 503 {
            assert_error(status, &body, 503, "import_running");
            assert!(retry_after.is_some(), "a 503 without Retry-After");
            refused.push(email);
        } else {
            assert_eq!(status, 200, "{body}");
            accepted.push(email);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!refused.is_empty(), "no write was refused during the import");
    let (status, report) = upload.await.unwrap();
    assert_eq!(status, 200, "{report}");
    for email in &refused {
        assert_eq!(
            app.customer_by_email(email).await.0,
            404,
            "{email} was refused yet written"
        );
    }
    // Only the creates after the swap could pass: they are in the new register.
    assert_eq!(app.customer_count().await, ROWS + accepted.len() as u64);
}

/// `mode=replace`: a write waits until the new register is swapped in, then applies
/// to it: readers never saw it in the old one only, and the swap did not lose it.
#[tokio::test]
async fn a_create_during_a_replace_waits_for_the_swap_and_is_in_the_new_register() {
    if crm_tests::sled_only("the turns between the batches of a sled import") {
        return;
    }
    let app = spawn_app_with(|config| config.write_wait = Duration::from_secs(120)).await;
    app.create_customer_ok(&json!({"Nom": "Ancien", "email": "ancien@x.fr"}))
        .await;
    let rows = ROWS / 2;
    let upload = start_import(&app, "mode=replace", rows);
    wait_for_phase(&app, "writing", rows / 3).await;
    let (status, created) = app
        .create_customer(&json!({"Nom": "Pendant", "email": "pendant@x.fr"}))
        .await;
    assert_eq!(status, 200, "{created}");
    // Answered only once the new register is in: the old customer (not in the file)
    // is already gone for readers. (The import's own end, its answer and the tracker,
    // may come a moment later: the old register is cleared after the writers are let
    // through.)
    assert_eq!(
        app.customer_by_email("ancien@x.fr").await.0,
        404,
        "answered before the swap"
    );
    let (status, report) = upload.await.unwrap();
    assert_eq!((status, report["erased"].as_u64()), (200, Some(1)), "{report}");
    let (status, found) = app.customer_by_email("pendant@x.fr").await;
    assert_eq!((status, &found["Nom"]), (200, &json!("Pendant")), "{found}");
    assert_eq!(app.customer_by_email("ancien@x.fr").await.0, 404);
    assert_eq!(app.customer_count().await, rows + 1);
}

/// `mode=merge`: between batches, a create (or a PATCH) cannot take an e-mail that a
/// later row of the import gives its customer: `409 reserved_by_import`, naming the
/// field; the row's customer has it once the import is written.
#[tokio::test]
async fn an_email_a_later_row_of_a_merge_import_gives_is_409_reserved_by_import() {
    if crm_tests::sled_only("the turns between the batches of a sled import") {
        return;
    }
    let app = spawn_app().await;
    let other = app
        .create_customer_ok(&json!({"Nom": "Other", "email": "other@x.fr"}))
        .await;
    let upload = start_import(&app, "", ROWS);
    wait_for_phase(&app, "writing", ROWS / 3).await;
    let last = customer(9, ROWS - 1);
    let email = last["Email"].as_str().unwrap();
    let (status, body) = app.create_customer(&json!({"Nom": "Thief", "email": email})).await;
    assert_error(status, &body, 409, "reserved_by_import");
    assert_eq!(body["field"], "Email", "{body}");
    let (status, body) = app.patch_customer(&other, &json!({"Email": email})).await;
    assert_error(status, &body, 409, "reserved_by_import");
    assert!(
        import_is_running(&app).await,
        "the import ended before the conflict was tried"
    );

    let (status, report) = upload.await.unwrap();
    assert_eq!((status, report["created"].as_u64()), (200, Some(ROWS)), "{report}");
    let (status, found) = app.customer_by_email(email).await;
    assert_eq!((status, &found["Nom"]), (200, &last["Nom"]), "{found}");
    // Once the import is written, the key is an ordinary taken one.
    let (status, body) = app.create_customer(&json!({"Nom": "Thief", "email": email})).await;
    assert_error(status, &body, 409, "email_taken");
}

/// PostgreSQL: a credit to a customer the import does not touch is answered while the
/// import is still writing, and both are there once it commits.
#[tokio::test]
async fn on_postgresql_a_credit_during_an_import_is_answered_before_the_import_ends() {
    if !crm_tests::on_postgres() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED on sled: an import in one PostgreSQL transaction"
        );
        return;
    }
    let app = spawn_app().await;
    app.create_v1_ok(&json!({"Nom": "Holder", "CarteFid": 33})).await;
    let upload = start_import(&app, "", ROWS);
    wait_for_phase(&app, "writing", ROWS / 3).await;
    let asked = Instant::now();
    let (status, credited) = app.credit(&json!({"Tickets": [{"carteFid": 33, "Montant": 26}]})).await;
    let took = asked.elapsed();
    assert_eq!(status, 200, "{credited}");
    assert!(
        import_is_running(&app).await,
        "the import ended before the credit was answered: it waited for the import"
    );
    eprintln!("during the import, a credit took {took:?}");
    let (status, report) = upload.await.unwrap();
    assert_eq!((status, report["created"].as_u64()), (200, Some(ROWS)), "{report}");
    assert_eq!(app.customer_count().await, ROWS + 1);
    assert_eq!(app.credit_of("33").await.1["Credit"], 13);
}

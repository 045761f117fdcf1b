//! `POST /api/update_db` and `crm-server import` end to end: the four formats, every
//! kind of bad row, merge, replace, rows of one file sharing a customer, skipped
//! invalid rows, rows that can never match, `Compte` and money bounds, dry runs,
//! browser uploads, the command line, a 100,000-row file, and an import interrupted
//! by `kill -9`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crm_tests::generate::{customers_file, Format};
use crm_tests::{assert_error, spawn_app, spawn_app_on, spawn_app_with, ServerProcess, TestApp};
use serde_json::{json, Value};

const DOCUMENT: &str = r#"{"clients" : [
{"Nom": "Eddison-18", "Prenom": "Jean", "Credit": 0.0, "Paiement": 25, "Date_paiement": "2019-01-18", "Montant": 125, "Compte": "BKN1CST18"},
{"Nom": "Sarkozy-51", "Prenom": "Marc", "Credit": 0.0, "Paiement": 25, "Date_paiement": "2019-01-08", "Montant": 125, "Compte": "BKN1CST53"},
{"Nom": "Eddison-53", "Prenom": "Anne", "Credit": 154.62542724609375, "Paiement": 25, "Date_paiement": "2020-05-19", "Montant": 125}
]}"#;

/// An import's answer without its `import_id`, which differs from one import to the
/// next: what a dry run said, to compare with what the import did.
fn outcome(body: &Value) -> Value {
    let mut body = body.clone();
    let id = body.as_object_mut().and_then(|o| o.remove("import_id"));
    assert!(
        id.is_some_and(|id| id.is_string()),
        "every import answer names its import"
    );
    body
}

fn summary(created: u64, updated: u64, unchanged: u64) -> (u64, u64, u64) {
    (created, updated, unchanged)
}

fn counts(body: &Value) -> (u64, u64, u64) {
    let n = |k: &str| body[k].as_u64().unwrap_or_else(|| panic!("no {k} in {body}"));
    (n("created"), n("updated"), n("unchanged"))
}

/// The customers without what the store assigns (`id`, `IdClient`), in `id` order.
async fn contents(app: &TestApp) -> Vec<Value> {
    let mut all = app.all_customers().await;
    for c in &mut all {
        let c = c.as_object_mut().unwrap();
        c.remove("id");
        c.remove("IdClient");
    }
    all
}

fn error_rows(body: &Value) -> Vec<(u64, String)> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn the_documents_example_imports_raw_with_no_content_type() {
    let app = spawn_app().await;
    let (status, body) = app.import("", None, DOCUMENT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), summary(3, 0, 0));
    assert_eq!(body["errors"], json!([]));
    let all = app.all_customers().await;
    assert_eq!(all.len(), 3);
    let anne = &all[2];
    assert_eq!(
        (anne["Nom"].as_str(), anne["Credit"].as_u64()),
        (Some("Eddison-53"), Some(155))
    );
    assert_eq!(
        (anne["Date_paiement"].as_str(), anne["Montant"].as_u64()),
        (Some("2020-05-19"), Some(125))
    );
    assert!(anne.get("Paiement").is_none(), "Paiement is ignored");
}

#[tokio::test]
async fn every_format_imports_the_same_customers() {
    let mut imported = Vec::new();
    for format in Format::ALL {
        let app = spawn_app().await;
        let file = customers_file(format, 42, 40);
        let (status, body) = app.import("", Some(format.content_type()), file.clone()).await;
        assert_eq!(status, 200, "{format:?}: {body}");
        assert_eq!(counts(&body), summary(40, 0, 0), "{format:?}");
        imported.push(contents(&app).await);
        // Sniffed as well when sent with no Content-Type.
        let again = spawn_app().await;
        let (status, body) = again.import("", None, file).await;
        assert_eq!(
            (status, counts(&body)),
            (200, summary(40, 0, 0)),
            "{format:?} sniffed: {body}"
        );
    }
    for other in &imported[1..] {
        assert_eq!(other, &imported[0]);
    }
    let expected = crm_tests::generate::customer(42, 0);
    assert_eq!(imported[0][0]["Email"], expected["Email"]);
    assert!(
        imported[0].iter().all(|c| c["Credit"].is_u64()),
        "fractions rounded to cents"
    );
}

#[tokio::test]
async fn every_kind_of_bad_row_is_listed_in_file_order_and_nothing_is_written() {
    let app = spawn_app().await;
    let holder = app
        .create_customer_ok(&json!({"Nom": "Holder", "email": "held@x.fr"}))
        .await;
    let (_, held) = app.customer(&holder).await;
    let card_holder = json!([{"Nom": "Card", "CarteFid": 77, "Email": "card@x.fr"}]);
    assert_eq!(app.import("", None, card_holder.to_string()).await.0, 200);
    let before = app.all_customers().await;

    let id = "6f1c1c64-4f5b-4d9e-9d5e-0d1b2f3a4b5c";
    let rows = json!([
        {"Nom": "Ok", "Email": "ok@x.fr"},
        {"Prenom": "No name"},
        {"Nom": "Mail", "Email": "not-an-email"},
        {"Nom": "Old", "Age": 151, "Sexe": "x"},
        {"Nom": "Date", "Date_paiement": "2019-02-30", "Montant": 10},
        {"Nom": "Money", "Credit": -1},
        "not an object",
        // Its own IdClient makes it another customer: row 1's e-mail is taken.
        {"Nom": "Dup", "IdClient": "0b7e6f7a-3a55-4c11-9a43-5f2b1c0d9e8f", "Email": "OK@x.fr"},
        {"Nom": "Card", "CarteFid": 77},
        {"Nom": "Id", "IdClient": id},
        // Updates row 10's customer: not an error.
        {"Nom": "Id again", "IdClient": id},
        {"Nom": "Card2", "CarteFid": 5},
        {"Nom": "Card3", "CarteFid": 5},
        {"Nom": "Bad id", "IdClient": "nope"},
    ]);
    let (status, body) = app.import("", None, rows.to_string()).await;
    assert_error(status, &body, 422, "invalid_rows");
    let mut got = error_rows(&body);
    got.sort();
    assert_eq!(
        got,
        [
            (2, "Nom".to_string()),
            (3, "Email".into()),
            (4, "Age".into()),
            (4, "Sexe".into()),
            (5, "Date_paiement".into()),
            (6, "Credit".into()),
            (7, "row".into()),
            (8, "Email".into()),
            (9, "CarteFid".into()),
            (13, "CarteFid".into()),
            (14, "IdClient".into()),
        ]
    );
    let error_of = |row: u64| {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["row"] == row)
            .map(|e| e["error"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        error_of(8).contains("row 1 gives this e-mail to another customer"),
        "{body}"
    );
    assert!(
        error_of(13).contains("row 12 gives this card to another customer"),
        "{body}"
    );
    let rows_in_order: Vec<u64> = error_rows(&body).iter().map(|(r, _)| *r).collect();
    assert!(
        rows_in_order.windows(2).all(|w| w[0] <= w[1]),
        "file order: {rows_in_order:?}"
    );
    assert_eq!(app.all_customers().await, before, "nothing written");

    // Rows valid on their own that collide with stored customers.
    let rows = json!([
        {"Nom": "Ok", "Email": "fine@x.fr"},
        {"Nom": "Card", "CarteFid": 77},
        {"Nom": "Takes", "IdClient": holder, "Email": "card@x.fr"},
    ]);
    let (status, body) = app.import("", None, rows.to_string()).await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(2, "CarteFid".to_string()), (3, "Email".into())]);
    assert_eq!(app.all_customers().await, before, "nothing written");
    let (_, still) = app.customer(&holder).await;
    assert_eq!(still, held);
}

#[tokio::test]
async fn a_csv_with_a_short_row_and_an_erased_id_are_row_errors() {
    let app = spawn_app().await;
    let gone = app.create_customer_ok(&json!({"Nom": "Gone"})).await;
    assert_eq!(app.erase_customer(&gone).await.0, 200);
    let csv = format!("Nom;Email;IdClient\nA;a@x.fr;\nB;b@x.fr\nC;;{gone}\n");
    let (status, body) = app.import("", Some("text/csv"), csv).await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(2, "row".to_string()), (3, "IdClient".into())]);
}

#[tokio::test]
async fn unreadable_files_and_bad_queries_are_400() {
    let app = spawn_app().await;
    for (query, content_type, body) in [
        ("", None, "[{\"Nom\": \"A\"}"),
        ("", None, ""),
        ("", Some("application/json"), "Nom\nA\n"),
        ("", None, "Prenom,Email\nA,a@x.fr\n"),
        ("", None, "[{\"Nom\": \"A\"}] [1]"),
        ("mode=overwrite", None, "[]"),
        ("dry_run=maybe", None, "[]"),
    ] {
        let (status, answer) = app.import(query, content_type, body).await;
        assert_error(status, &answer, 400, "bad_request");
    }
    let (status, answer) = app.import("", None, b"[{\"Nom\": \"\xff\"}]".to_vec()).await;
    assert_error(status, &answer, 400, "bad_request");
    assert!(app.all_customers().await.is_empty());
}

#[tokio::test]
async fn merge_updates_by_id_client_or_email_and_counts_unchanged_rows() {
    let app = spawn_app().await;
    let by_id = app
        .create_customer_ok(
            &json!({"Nom": "Dupont", "Prenom": "Jean", "email": "jean@x.fr", "Credit": 500, "phone": "0102030405"}),
        )
        .await;
    let by_mail = app
        .create_customer_ok(&json!({"Nom": "Martin", "email": "Anne@X.fr"}))
        .await;
    let rows = json!({"clients": [
        {"Nom": "Dupont", "IdClient": by_id, "Credit": 120, "Date_paiement": "2024-03-01", "Montant": 900},
        {"Nom": "Martin-Leroy", "Email": "anne@x.FR", "CarteFid": 12},
        {"Nom": "Nouveau", "Email": "new@x.fr", "Credit": 3.5},
    ]});
    let (status, body) = app.import("mode=merge", None, rows.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body), summary(1, 2, 0));

    let (_, jean) = app.customer(&by_id).await;
    assert_eq!(
        (jean["Credit"].as_u64(), jean["Montant"].as_u64()),
        (Some(120), Some(900))
    );
    assert_eq!(jean["Date_paiement"], "2024-03-01");
    assert_eq!(
        (jean["Prenom"].as_str(), jean["Phone"].as_str(), jean["Email"].as_str()),
        (Some("Jean"), Some("0102030405"), Some("jean@x.fr")),
        "keys absent from the row are kept"
    );
    let (_, anne) = app.customer(&by_mail).await;
    assert_eq!(
        (anne["Nom"].as_str(), anne["CarteFid"].as_u64()),
        (Some("Martin-Leroy"), Some(12))
    );
    assert_eq!(anne["Email"], "anne@x.FR", "stored as the row gives it");
    let (_, new) = app.customer_by_email("new@x.fr").await;
    assert_eq!(new["Credit"], 4);

    let (status, body) = app.import("", None, rows.to_string()).await;
    assert_eq!((status, counts(&body)), (200, summary(0, 0, 3)), "{body}");
    assert_eq!(app.all_customers().await.len(), 3);
}

#[tokio::test]
async fn replace_erases_the_absent_customers_and_keeps_them_by_id() {
    let app = spawn_app().await;
    let kept = app
        .create_customer_ok(&json!({"Nom": "Kept", "email": "kept@x.fr"}))
        .await;
    let gone = app
        .create_customer_ok(&json!({"Nom": "Gone", "email": "gone@x.fr", "Credit": 300}))
        .await;
    let rows = json!([
        {"Nom": "Kept", "Email": "kept@x.fr"},
        {"Nom": "Taker", "IdClient": "0b7e6f7a-3a55-4c11-9a43-5f2b1c0d9e8f", "Email": "gone@x.fr"},
        {"Nom": "Fresh"},
    ]);
    let (status, body) = app.import("mode=replace&dry_run=true", None, rows.to_string()).await;
    assert_eq!(
        (status, counts(&body), body["erased"].as_u64()),
        (200, summary(2, 0, 1), Some(1)),
        "{body}"
    );
    assert_eq!(app.all_customers().await.len(), 2, "a dry run writes nothing");

    let (status, body) = app.import("mode=replace", None, rows.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((counts(&body), body["erased"].as_u64()), (summary(2, 0, 1), Some(1)));
    let names: Vec<_> = app
        .all_customers()
        .await
        .iter()
        .map(|c| c["Nom"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Kept", "Taker", "Fresh"]);
    let (status, erased) = app.customer(&gone).await;
    assert_eq!(status, 200, "an erased customer still answers by id");
    assert_eq!((erased["Nom"].as_str(), erased["Email"].as_str()), (Some(""), Some("")));
    assert_eq!(erased["Credit"], 300, "accounting stays");
    let (_, taker) = app.customer_by_email("gone@x.fr").await;
    assert_eq!(taker["Nom"], "Taker");
    assert_eq!(app.customer(&kept).await.1["Nom"], "Kept");

    let (status, body) = app.import("mode=replace", None, "[]").await;
    assert_error(status, &body, 422, "empty_replace");
    assert_eq!(app.customer_count().await, 3);
}

/// `mode=replace` swaps the customer register in whole: while the file is written,
/// every read sees the old customers only, and once it is complete, the new ones only.
#[tokio::test]
async fn readers_see_the_old_customers_until_a_replace_is_complete() {
    let app = spawn_app().await;
    let old_count = 40u64;
    for i in 0..old_count {
        app.create_customer_ok(&json!({"Nom": format!("Ancien {i}"), "email": format!("ancien{i}@x.fr")}))
            .await;
    }
    // Six write batches: a reader has time to look between two.
    let new_count = 6_000u64;
    let file = customers_file(Format::Array, 5, new_count);
    let upload = tokio::spawn({
        let url = app.url("/api/update_db?mode=replace");
        async move { reqwest::Client::new().post(url).body(file).send().await }
    });
    let is_old = |c: &Value| c["Nom"].as_str().is_some_and(|n| n.starts_with("Ancien "));
    let (mut old_reads, mut new_reads) = (0, 0);
    while !upload.is_finished() {
        for query in ["limit=50", "limit=50&sort=Nom", "limit=50&sort=-Credit"] {
            let (status, page) = app.list_customers(query).await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().unwrap();
            let old_items = items.iter().filter(|c| is_old(c)).count();
            match page["total"].as_u64().unwrap() {
                total if total == old_count => {
                    assert_eq!(old_items, items.len(), "{query}: new customers before the swap");
                    old_reads += 1;
                }
                total if total == new_count => {
                    assert_eq!(old_items, 0, "{query}: old customers after the swap");
                    new_reads += 1;
                }
                total => panic!("{query}: a reader saw {total} customers, half of a replace"),
            }
        }
        let count = app.customer_count().await;
        assert!(count == old_count || count == new_count, "the count was {count}");
        let (status, found) = app.customer_by_email("ancien7@x.fr").await;
        assert!(
            status == 404 || (status == 200 && found["Nom"] == "Ancien 7"),
            "{status} {found}"
        );
    }
    let answer = upload.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert!(old_reads > 0, "no read was made before the swap");
    eprintln!("{old_reads} reads saw the old register, {new_reads} the new one, none a mix");
    assert_eq!(app.customer_count().await, new_count);
    assert_eq!(app.customer_by_email("ancien7@x.fr").await.0, 404);
    let (_, page) = app.list_customers("limit=50").await;
    assert_eq!(page["total"], new_count);
    assert!(page["items"].as_array().unwrap().iter().all(|c| !is_old(c)));
}

#[tokio::test]
async fn a_dry_run_answers_the_same_and_writes_nothing() {
    let app = spawn_app().await;
    app.create_customer_ok(&json!({"Nom": "A", "email": "a@x.fr"})).await;
    let rows = json!([{"Nom": "A2", "Email": "a@x.fr"}, {"Nom": "B"}]).to_string();
    let (status, dry) = app.import("dry_run=true", None, rows.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(app.all_customers().await.len(), 1);
    assert_eq!(app.all_customers().await[0]["Nom"], "A");
    let (status, real) = app.import("", None, rows).await;
    assert_eq!(status, 200);
    assert_eq!(outcome(&dry), outcome(&real));
}

#[tokio::test]
async fn a_browser_upload_of_the_import_form_is_read() {
    let app = spawn_app().await;
    let file = customers_file(Format::Csv, 3, 25);
    let form = reqwest::multipart::Form::new()
        .text("mode", "merge")
        .part(
            "file",
            reqwest::multipart::Part::bytes(file)
                .file_name("clients.csv")
                .mime_str("text/csv")
                .unwrap(),
        )
        .text("submit", "Importer");
    let (status, body) = app.import_form("", form).await;
    assert_eq!((status, counts(&body)), (200, summary(25, 0, 0)), "{body}");

    // A .jsonl file whose type the browser does not know, with dry_run in the form.
    let file = customers_file(Format::JsonLines, 3, 30);
    let form = reqwest::multipart::Form::new().text("dry_run", "true").part(
        "file",
        reqwest::multipart::Part::bytes(file)
            .file_name("clients.jsonl")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let (status, body) = app.import_form("", form).await;
    assert_eq!((status, counts(&body)), (200, summary(5, 0, 25)), "{body}");
    assert_eq!(app.customer_count().await, 25);

    let form = reqwest::multipart::Form::new().text("mode", "merge");
    let (status, body) = app.import_form("", form).await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn a_body_past_the_stream_limit_is_413_and_nothing_is_written() {
    let app = spawn_app_with(|c| c.stream_limit = 10_000).await;
    let file = customers_file(Format::JsonLines, 1, 200);
    assert!(file.len() > 10_000);
    let (status, body) = app.import("", None, file.clone()).await;
    assert_error(status, &body, 413, "payload_too_large");
    // Without a Content-Length: chunked, cut while streaming.
    let stream = futures::stream::iter(
        file.chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (status, body) = app.import("", None, reqwest::Body::wrap_stream(stream)).await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(app.customer_count().await, 0);
}

fn run_cli(data: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_crm-server-under-test"))
        .arg("import")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run crm-server import");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (output.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
async fn the_command_line_imports_offline_with_the_same_summary_and_errors() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let good = files.path().join("clients.csv");
    std::fs::write(&good, customers_file(Format::Csv, 9, 60)).unwrap();
    let bad = files.path().join("bad.json");
    std::fs::write(&bad, r#"[{"Nom": "A"}, {"Email": "x"}]"#).unwrap();

    let (code, out) = run_cli(data.path(), &[good.to_str().unwrap(), "--dry-run"]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "dry run, nothing written: would have created 60, updated 0, unchanged 0"
        )
    );
    let (code, out) = run_cli(data.path(), &[good.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "created 60, updated 0, unchanged 0"));
    let (code, out) = run_cli(data.path(), &[bad.to_str().unwrap(), "--mode", "replace"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("row") && out.contains("Email") && out.contains("Nom"),
        "{out}"
    );
    let (code, _) = run_cli(data.path(), &[bad.to_str().unwrap(), "--mode", "bogus"]);
    assert_ne!(code, 0);
    let (code, _) = run_cli(data.path(), &[files.path().join("missing.csv").to_str().unwrap()]);
    assert_eq!(code, 1);

    let app = spawn_app_on(data).await;
    assert_eq!(app.customer_count().await, 60);
}

/// The longest test of the suite (the store and the model are optimised even in test
/// builds for it, see the workspace's `Cargo.toml`); rates are the benchmark's business.
#[tokio::test]
async fn a_hundred_thousand_rows_import_over_http() {
    let app = spawn_app().await;
    let rows = 100_000;
    let file = customers_file(Format::JsonLines, 5, rows);
    let started = Instant::now();
    let (status, body) = app.import("", Some("application/x-ndjson"), file).await;
    assert_eq!((status, counts(&body)), (200, summary(rows, 0, 0)), "{body}");
    assert_eq!(app.customer_count().await, rows);
    // The first, a middle and the last row, found again through their indexes.
    for i in [0, rows / 2, rows - 1] {
        let expected = crm_tests::generate::customer(5, i);
        let (status, found) = app.customer_by_email(expected["Email"].as_str().unwrap()).await;
        assert_eq!(status, 200, "row {i}: {found}");
        assert_eq!(
            (&found["Nom"], &found["Phone"]),
            (&expected["Nom"], &expected["Phone"]),
            "row {i}"
        );
        let phone = expected["Phone"].as_str().unwrap();
        let (status, page) = app
            .list_customers(&format!("q={}", phone.trim_start_matches('+')))
            .await;
        assert_eq!(status, 200);
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["Email"] == expected["Email"]),
            "row {i} found by its phone: {page}"
        );
    }
    eprintln!("100,000 rows imported in {:?}", started.elapsed());
}

/// `kill -9` during the writing pass: the next start finishes the import, so the
/// store holds every row or none.
#[tokio::test]
async fn an_import_killed_while_writing_is_finished_by_the_next_start() {
    let binary = Path::new(env!("CARGO_BIN_EXE_crm-server-under-test"));
    let data = tempfile::tempdir().unwrap();
    // Three write batches: enough to be killed between two.
    let rows = 2_500;
    let file = customers_file(Format::Array, 11, rows);
    let server = ServerProcess::start(binary, data.path());
    let client = reqwest::Client::new();
    let upload = tokio::spawn({
        let url = format!("{}/api/update_db", server.address);
        let client = client.clone();
        async move { client.post(url).body(file).send().await }
    });
    let health = format!("{}/healthz", server.address);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline && !upload.is_finished() {
        if let Ok(answer) = client.get(&health).send().await {
            seen = answer
                .json::<Value>()
                .await
                .map_or(0, |b| b["customers"].as_u64().unwrap_or(0));
            if seen > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let _ = upload.await;
    let app = spawn_app_on(data).await;
    let after = app.customer_count().await;
    assert!(
        after == rows || (after == 0 && seen == 0),
        "partly written: {after} of {rows} customers after restart (seen {seen} before the kill)"
    );
    if seen > 0 && seen < rows {
        eprintln!("killed with {seen} of {rows} rows written; the restart finished the import");
    }
}

/// `kill -9` while a replace is written: the next start finishes it and swaps the new
/// register in, so the store holds the new customers, whole, and the old ones erased.
#[tokio::test]
async fn a_replace_killed_while_writing_is_finished_by_the_next_start() {
    let binary = Path::new(env!("CARGO_BIN_EXE_crm-server-under-test"));
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(binary, data.path());
    let client = reqwest::Client::new();
    let base = server.address.clone();
    let mut old_ids = Vec::new();
    for i in 0..20 {
        let body = json!({"Nom": format!("Ancien {i}"), "email": format!("ancien{i}@x.fr")});
        let response = client
            .post(format!("{base}/api/create_customer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, answer) = crm_tests::status_and_json(response).await;
        assert_eq!(status, 200, "{answer}");
        old_ids.push(answer["idClient"].as_str().unwrap().to_string());
    }
    let rows = 3_000;
    let file = customers_file(Format::Array, 13, rows);
    let upload = tokio::spawn({
        let url = format!("{base}/api/update_db?mode=replace");
        let client = client.clone();
        async move { client.post(url).body(file).send().await }
    });
    // The payments the rows schedule are listed as soon as their batch is staged, well
    // before the swap: the sign that the write pass has begun.
    let due = format!("{base}/api/v1/payments?due=2099-12-31&limit=1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writing = false;
    while Instant::now() < deadline && !upload.is_finished() {
        if let Ok(answer) = client.get(&due).send().await {
            let body = answer.json::<Value>().await.unwrap_or_default();
            if body["items"].as_array().is_some_and(|items| !items.is_empty()) {
                writing = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let _ = upload.await;
    let app = spawn_app_on(data).await;
    if writing {
        eprintln!("killed while the replace was written; the restart finished it");
    }
    assert_eq!(app.customer_count().await, rows);
    let (_, page) = app.list_customers("limit=100&sort=Nom").await;
    assert_eq!(page["total"], rows);
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["Nom"].as_str().unwrap().starts_with("Ancien")));
    assert_eq!(app.customer_by_email("ancien3@x.fr").await.0, 404);
    let (status, erased) = app.customer(&old_ids[3]).await;
    assert_eq!((status, erased["Nom"].as_str()), (200, Some("")), "{erased}");
}

/// The import page posts `redirect=1` with its options before the file: the answer is
/// a redirect to the table with the summary, or the page of bad rows.
#[tokio::test]
async fn the_import_page_form_gets_a_redirect_or_the_bad_rows_page() {
    let app = crm_tests::spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |csv: &'static str, dry_run: bool| {
        let mut form = reqwest::multipart::Form::new()
            .text("redirect", "1")
            .text("mode", "merge");
        if dry_run {
            form = form.text("dry_run", "true");
        }
        form.part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes())
                .file_name("clients.csv")
                .mime_str("text/csv")
                .unwrap(),
        )
    };
    let post = |form| no_redirects.post(app.url("/api/update_db")).multipart(form).send();

    // The redirect names the import; its banner shows the result the server kept.
    let app = &app;
    let banner_of = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("/api?import="), "{location}");
        app.home_page(location.trim_start_matches("/api?")).await.1
    };
    let response = post(form("Nom,Email\nA,a@x.fr\nB,b@x.fr\n", true)).await.unwrap();
    let html = banner_of(response).await;
    assert!(
        html.contains("Simulation, rien n&#39;a été enregistré : 2 clients créés, 0 mis à jour, 0 inchangé."),
        "{html}"
    );
    assert_eq!(app.customer_count().await, 0, "a dry run writes nothing");

    let response = post(form("Nom,Email\nA,a@x.fr\nB,b@x.fr\n", false)).await.unwrap();
    let html = banner_of(response).await;
    assert!(
        html.contains("Import terminé : 2 clients créés, 0 mis à jour, 0 inchangé."),
        "{html}"
    );
    assert_eq!(app.customer_count().await, 2);

    let response = post(form("Nom,Email\n,c@x.fr\n<b>D</b>,not-an-email\n", false))
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Nom") && html.contains("Email"), "{html}");
    assert!(!html.contains("<b>D</b>"), "row content is escaped");
    assert_eq!(app.customer_count().await, 2, "bad rows write nothing");
}

/// A multipart form as the import page posts it: options first, then the file.
fn page_form(
    fields: &[(&'static str, &'static str)],
    file_name: &'static str,
    file: String,
) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().text("redirect", "1");
    for (name, value) in fields {
        form = form.text(*name, *value);
    }
    form.part(
        "file",
        reqwest::multipart::Part::bytes(file.into_bytes())
            .file_name(file_name)
            .mime_str("application/octet-stream")
            .unwrap(),
    )
}

/// Contract 8.5: rows apply in file order, and a row carrying the `IdClient` or the
/// `Email` (in any case) of an earlier row updates that row's customer.
#[tokio::test]
async fn rows_sharing_an_id_client_or_email_update_the_earlier_rows_customer_in_file_order() {
    let app = spawn_app().await;
    let stored = app
        .create_customer_ok(&json!({"Nom": "Stored", "email": "stored@x.fr", "Credit": 40}))
        .await;
    let id = "6f1c1c64-4f5b-4d9e-9d5e-0d1b2f3a4b5c";
    // As the first implementation's users wrote them: the same customer twice.
    let rows = json!({"clients": [
        {"Nom": "Eddison-18", "Prenom": "Jean", "Email": "jean@ursi.fr", "Credit": 0.0, "Paiement": 25,
         "Date_paiement": "2019-01-18", "Montant": 125, "Compte": "BKN1CST18"},
        {"Nom": "Eddison-18", "Prenom": "Jean-Marc", "Email": "JEAN@Ursi.fr", "Credit": 10, "Paiement": 25,
         "Date_paiement": "2019-02-18", "Montant": 150, "Compte": "BKN1CST18"},
        {"Nom": "Martin", "IdClient": id},
        {"Nom": "Martin", "IdClient": id, "Email": "martin@x.fr", "CarteFid": 90},
        {"Nom": "Martin-Leroy", "Email": "MARTIN@x.fr"},
        {"Nom": "Stored", "Email": "STORED@x.fr", "Prenom": "Once"},
        {"Nom": "Stored", "IdClient": stored, "Prenom": "Twice"},
    ]})
    .to_string();
    let (status, dry) = app.import("dry_run=true", None, rows.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(counts(&dry), summary(2, 5, 0), "{dry}");
    assert_eq!(app.customer_count().await, 1, "a dry run writes nothing");

    let (status, body) = app.import("", None, rows.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(outcome(&body), outcome(&dry), "the dry run said what the import did");
    assert_eq!(app.customer_count().await, 3);

    let (_, jean) = app.customer_by_email("jean@ursi.fr").await;
    assert_eq!(
        (&jean["Prenom"], &jean["Email"], &jean["Credit"]),
        (&json!("Jean-Marc"), &json!("JEAN@Ursi.fr"), &json!(10)),
        "{jean}"
    );
    assert_eq!(
        (&jean["Date_paiement"], &jean["Montant"]),
        (&json!("2019-02-18"), &json!(150)),
        "the later row's payment replaces the earlier one's"
    );
    let jean_id = jean["IdClient"].as_str().unwrap();
    let (_, ledger) = app.ledger(jean_id, "").await;
    let sum: i64 = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 10, "the ledger sums to the credit: {ledger}");
    let (_, payments) = app.payments_due("due=2099-12-31&limit=100").await;
    let pending: Vec<&Value> = payments["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["IdClient"] == jean["IdClient"])
        .collect();
    assert_eq!(pending.len(), 1, "one pending payment: {payments}");

    let (status, martin) = app.customer(id).await;
    assert_eq!(status, 200, "{martin}");
    assert_eq!(
        (&martin["Nom"], &martin["Email"], &martin["CarteFid"]),
        (&json!("Martin-Leroy"), &json!("MARTIN@x.fr"), &json!(90))
    );
    let (_, page) = app.list_customers("q=martin").await;
    assert_eq!(page["total"], 1, "one Martin, searchable by its last name: {page}");
    let (_, by_old_name) = app.list_customers("q=leroy").await;
    assert_eq!(by_old_name["items"][0]["IdClient"], id);

    let (_, stored_now) = app.customer(&stored).await;
    assert_eq!(
        (&stored_now["Prenom"], &stored_now["Credit"]),
        (&json!("Twice"), &json!(40))
    );

    // The same file again: every row finds its customer.
    let (status, again) = app.import("", None, rows).await;
    assert_eq!((status, again["created"].as_u64()), (200, Some(0)), "{again}");
    assert_eq!(app.customer_count().await, 3);

    // In a replace, the same rows make the new register.
    let (status, body) = app
        .import(
            "mode=replace",
            None,
            json!([
                {"Nom": "Solo", "Email": "solo@x.fr"},
                {"Nom": "Solo-Duo", "Email": "SOLO@x.fr", "CarteFid": 91},
                {"Nom": "Eddison-18", "Email": "jean@ursi.fr"},
                {"Nom": "Eddison-19", "Email": "jean@ursi.fr"},
            ])
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (counts(&body), body["erased"].as_u64()),
        (summary(1, 3, 0), Some(2)),
        "{body}"
    );
    let names: Vec<Value> = app.all_customers().await.iter().map(|c| c["Nom"].clone()).collect();
    assert_eq!(names, [json!("Eddison-19"), json!("Solo-Duo")]);
    assert_eq!(app.customer_count().await, 2, "customers, not rows");
    let (_, page) = app.list_customers("limit=10").await;
    assert_eq!(page["total"], 2);
    let (_, solo) = app.customer_by_email("solo@x.fr").await;
    assert_eq!(solo["CarteFid"], 91);
}

/// `skip_invalid=true`: the valid rows are written, the invalid ones listed in
/// `errors` and counted in `skipped`, with a `200`; without it, all or nothing.
#[tokio::test]
async fn skip_invalid_writes_the_valid_rows_and_lists_the_skipped_ones() {
    let app = spawn_app().await;
    let rows = json!([
        {"Nom": "Ok", "Email": "ok@x.fr"},
        {"Prenom": "No name"},
        {"Nom": "Long", "Compte": "BKN1CST53000"},
        {"Nom": "Other", "IdClient": "0b7e6f7a-3a55-4c11-9a43-5f2b1c0d9e8f", "Email": "OK@x.fr"},
        {"Nom": "Ok again", "Email": "ok@x.fr", "Phone": "0102030405"},
        {"Nom": "No key"},
    ])
    .to_string();
    let (status, body) = app.import("", None, rows.clone()).await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(
        error_rows(&body),
        [(2, "Nom".to_string()), (3, "Compte".into()), (4, "Email".into())]
    );
    assert_eq!(app.customer_count().await, 0, "all or nothing without skip_invalid");

    let (status, dry) = app.import("skip_invalid=true&dry_run=true", None, rows.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(counts(&dry), summary(2, 1, 0), "{dry}");
    assert_eq!(
        (
            dry["skipped"].as_u64(),
            dry["unmatchable"].as_u64(),
            dry["error_count"].as_u64()
        ),
        (Some(3), Some(1), Some(3))
    );
    assert_eq!(
        error_rows(&dry),
        [(2, "Nom".to_string()), (3, "Compte".into()), (4, "Email".into())]
    );
    assert_eq!(app.customer_count().await, 0, "a dry run writes nothing");

    let (status, body) = app.import("skip_invalid=true", None, rows.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(outcome(&body), outcome(&dry));
    let names: Vec<Value> = app.all_customers().await.iter().map(|c| c["Nom"].clone()).collect();
    assert_eq!(names, [json!("Ok again"), json!("No key")]);
    let (_, ok) = app.customer_by_email("ok@x.fr").await;
    assert_eq!(ok["Phone"], "0102030405");

    // Off, bad values and replace: all or nothing stays the rule.
    let (status, body) = app.import("skip_invalid=false", None, rows.clone()).await;
    assert_error(status, &body, 422, "invalid_rows");
    let (status, body) = app.import("skip_invalid=maybe", None, rows.clone()).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = app.import("mode=replace&skip_invalid=true", None, rows.clone()).await;
    assert_error(status, &body, 400, "bad_request");
    assert!(body["error"].as_str().unwrap().contains("mode=replace"), "{body}");
    assert_eq!(app.customer_count().await, 2);

    // The import page's checkbox: a page with the skipped rows, or JSON without
    // `redirect`.
    let (status, _, html) = app
        .import_form_page(page_form(
            &[("mode", "merge"), ("skip_invalid", "true")],
            "clients.json",
            rows.clone(),
        ))
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("3 lignes invalides ont été ignorées"), "{html}");
    assert!(html.contains("<td class=\"num\">3</td><td>Compte</td>"), "{html}");
    assert!(html.contains("1 ligne n&#39;a ni IdClient ni Email"), "{html}");
    let form = reqwest::multipart::Form::new().text("skip_invalid", "true").part(
        "file",
        reqwest::multipart::Part::bytes(rows.into_bytes()).file_name("clients.json"),
    );
    let (status, body) = app.import_form("", form).await;
    assert_eq!((status, body["skipped"].as_u64()), (200, Some(3)), "{body}");
    let (status, body) = app
        .import_form(
            "",
            reqwest::multipart::Form::new()
                .text("mode", "replace")
                .text("skip_invalid", "on")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(b"[]".to_vec()).file_name("c.json"),
                ),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, form_page) = app.import_page().await;
    assert_eq!(status, 200);
    assert!(form_page.contains("type=\"checkbox\" id=\"skip_invalid\" name=\"skip_invalid\" value=\"true\""));
    assert!(form_page.contains("<label for=\"skip_invalid\">"));
}

/// Rows with neither `IdClient` nor `Email` are counted (`unmatchable`) by the dry run
/// and the import, and said on every face, before a second import creates them again.
#[tokio::test]
async fn rows_that_can_never_match_are_counted_and_said_before_a_second_import_duplicates_them() {
    let app = spawn_app().await;
    let csv = "Nom,Prenom,Email,Phone\nDupont,Jean,,0102030405\nMartin,Anne,,\nLeroy,Paul,paul@x.fr,\n".to_string();
    let (status, dry) = app.import("dry_run=true", Some("text/csv"), csv.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!((counts(&dry), dry["unmatchable"].as_u64()), (summary(3, 0, 0), Some(2)));

    let (status, body) = app.import("", Some("text/csv"), csv.clone()).await;
    assert_eq!((status, body["unmatchable"].as_u64()), (200, Some(2)), "{body}");
    // What the count said: the same file again creates those two again.
    let (status, again) = app.import("dry_run=true", Some("text/csv"), csv.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (counts(&again), again["unmatchable"].as_u64()),
        (summary(2, 0, 1), Some(2))
    );
    let (_, again) = app.import("", Some("text/csv"), csv.clone()).await;
    assert_eq!(counts(&again), summary(2, 0, 1));
    assert_eq!(app.customer_count().await, 5);

    // The import page redirects to the table with the count, whose banner says it.
    let (status, location, _) = app
        .import_form_page(page_form(
            &[("mode", "merge"), ("dry_run", "true")],
            "c.csv",
            csv.clone(),
        ))
        .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.starts_with("/api?import="), "{location}");
    let (status, html) = app.home_page(location.trim_start_matches("/api?")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "<p class=\"banner warn\" role=\"status\">2 lignes n&#39;ont ni IdClient ni Email : importer ce fichier \
             une nouvelle fois les créerait de nouveau.</p>"
        ),
        "{html}"
    );
    // The page of bad rows says it too.
    let bad = format!("{csv}Sans,Nom,pas-une-adresse,\n");
    let (status, _, html) = app
        .import_form_page(page_form(&[("mode", "merge")], "c.csv", bad.clone()))
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("2 lignes n&#39;ont ni IdClient ni Email"), "{html}");
    let (status, body) = app.import("", Some("text/csv"), bad).await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(body["unmatchable"], 2);
    assert_eq!(app.customer_count().await, 5);

    // Rows with an e-mail or an IdClient count nothing.
    let (_, body) = app
        .import("", None, DOCUMENT.replace("\"Nom\"", "\"Email\": \"d@x.fr\", \"Nom\""))
        .await;
    assert_eq!(body["unmatchable"], 0, "{body}");
}

/// `Compte` is at most 10 characters, on import rows and on every route that writes a
/// customer (contract 8.5).
#[tokio::test]
async fn a_compte_longer_than_ten_characters_is_422_naming_it_everywhere() {
    let app = spawn_app().await;
    let long = "BKN1CST5300";
    let field_errors = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors in {body}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = app
        .import(
            "",
            None,
            json!([{"Nom": "A", "Compte": long}, {"Nom": "B", "Compte": "BKN1CST530"}]).to_string(),
        )
        .await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(1, "Compte".to_string())]);
    let (status, body) = app
        .import("", Some("text/csv"), format!("Nom;Compte\nA;{long}\n"))
        .await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(1, "Compte".to_string())]);

    let (status, body) = app.create_customer(&json!({"Nom": "A", "Compte": long})).await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(field_errors(&body), ["Compte"]);
    let response = app
        .post_json("/api/v1/customers", &json!({"Nom": "A", "Compte": long}))
        .await;
    let (status, body) = crm_tests::status_and_json(response).await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(field_errors(&body), ["Compte"]);
    assert_eq!(app.customer_count().await, 0);

    let id = app
        .create_customer_ok(&json!({"Nom": "A", "Compte": "BKN1CST530"}))
        .await;
    let (status, body) = app.patch_customer(&id, &json!({"Compte": long})).await;
    assert_error(status, &body, 422, "invalid_fields");
    assert_eq!(field_errors(&body), ["Compte"]);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(customer["Compte"], "BKN1CST530", "ten characters are kept");
}

/// Contract 9 on the import path: amounts past 2^53 - 1 cents are row errors, and so is
/// a new customer whose credit would pass it once the tickets waiting for it are
/// credited; nothing saturates.
#[tokio::test]
async fn amounts_past_the_bound_of_money_are_row_errors_and_nothing_saturates() {
    let app = spawn_app().await;
    let max: u64 = (1 << 53) - 1;
    let (status, body) = app
        .import(
            "",
            None,
            json!([
                {"Nom": "Credit", "Credit": max + 1},
                {"Nom": "Montant", "Date_paiement": "2024-01-01", "Montant": max + 1},
                {"Nom": "Fits", "Credit": max, "Date_paiement": "2024-01-01", "Montant": max},
            ])
            .to_string(),
        )
        .await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(1, "Credit".to_string()), (2, "Montant".into())]);
    assert_eq!(app.customer_count().await, 0);

    // A ticket of a customer not known yet waits for that e-mail.
    let (status, answer) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": [
            {"id": 1, "date": "2024-01-02T10:00:00Z", "prix": max, "client": "rich@x.fr",
             "pointsFidelite": 0, "modePaiement": "CARD", "articles": []}]}))
        .await;
    assert_eq!((status, &answer["unmatched"]), (200, &json!(["magasin1"])), "{answer}");
    let rows = json!([
        {"Nom": "Other", "Email": "other@x.fr"},
        {"Nom": "Rich", "Email": "RICH@x.fr", "Credit": max},
    ])
    .to_string();
    let (status, body) = app.import("", None, rows.clone()).await;
    assert_error(status, &body, 422, "invalid_rows");
    assert_eq!(error_rows(&body), [(2, "Credit".to_string())]);
    assert!(
        body["errors"][0]["error"].as_str().unwrap().contains("ticket"),
        "{body}"
    );
    assert_eq!(app.customer_count().await, 0, "nothing written");

    let (status, body) = app.import("skip_invalid=true", None, rows).await;
    assert_eq!(
        (status, counts(&body), body["skipped"].as_u64()),
        (200, summary(1, 0, 0), Some(1)),
        "{body}"
    );
    // Without the opening credit the ticket's half fits: it is credited, exactly.
    let (status, body) = app
        .import("", None, json!([{"Nom": "Rich", "Email": "rich@x.fr"}]).to_string())
        .await;
    assert_eq!((status, counts(&body)), (200, summary(1, 0, 0)), "{body}");
    let (_, rich) = app.customer_by_email("rich@x.fr").await;
    assert_eq!(rich["Credit"], max / 2);
    assert_eq!(rich["PanierMoyen"], max);
}

#[tokio::test]
async fn the_command_line_skips_invalid_rows_on_request_and_warns_of_unmatchable_ones() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("clients.json");
    std::fs::write(
        &file,
        r#"[{"Nom": "A"}, {"Nom": "B", "Compte": "BKN1CST5300"}, {"Nom": "C", "Email": "c@x.fr"}, {"Nom": "C2", "Email": "C@x.fr"}]"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let warning = "1 row has neither IdClient nor Email: importing this file again would create it again";

    let (code, out) = run_cli(data.path(), &[path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Compte") && out.contains(warning), "{out}");
    let (code, out) = run_cli(data.path(), &[path, "--skip-invalid", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("dry run, nothing written: would have created 2, updated 1, unchanged 0, skipped 1 invalid"),
        "{out}"
    );
    assert!(
        out.contains("       2  Compte") && out.trim_end().ends_with(warning),
        "{out}"
    );
    let (code, _) = run_cli(data.path(), &[path, "--skip-invalid", "--mode", "replace"]);
    assert_eq!(code, 1);
    let (code, out) = run_cli(data.path(), &[path, "--skip-invalid"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("created 2, updated 1, unchanged 0, skipped 1 invalid"),
        "{out}"
    );

    let app = spawn_app_on(data).await;
    assert_eq!(app.customer_count().await, 2);
    let (_, c) = app.customer_by_email("c@x.fr").await;
    assert_eq!(c["Nom"], "C2");
}

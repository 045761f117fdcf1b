//! The audit trail (issue 13, item 4): every write leaves an entry naming who made it
//! (the token's name, `local` without tokens, `scheduler` for the server's own runs),
//! the route, the customer and a summary without personal values, in the same atomic
//! write; `GET /api/v1/audit` pages it and filters it by customer, for `admin` only;
//! the customer page and the TUI show it; a restored export keeps it.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crm_model::Cents;
use crm_server::access::TokenSet;
use crm_tests::upstream::{Answer, FakeGateway};
use crm_tests::{spawn_app, spawn_app_on, spawn_app_with, status_and_json, TestApp};
use crm_tui::api::{ApiClient, ApiError};
use serde_json::{json, Value};
use uuid::Uuid;

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const TOKENS: &str =
    "bi:read-token-0123456789:read\ntills:write-token-0123456789:write\nops:admin-token-0123456789:admin\n";

async fn spawn_with_tokens() -> TestApp {
    spawn_app_with(|config| config.tokens = Some(Arc::new(TokenSet::parse(TOKENS).unwrap()))).await
}

fn euros(cents: u64) -> String {
    Cents(cents).to_euros()
}

/// `GET /api/v1/audit?<query>` with `token`, if any.
async fn audit(app: &TestApp, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app.client.get(app.url(&format!("/api/v1/audit?{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    status_and_json(request.send().await.unwrap()).await
}

/// Every entry, oldest first (no tokens).
async fn trail(app: &TestApp) -> Vec<Value> {
    app.all_pages("/api/v1/audit", 2).await
}

/// The entry's actor, route, customer and summary.
fn facts(entry: &Value) -> (String, String, Option<String>, String) {
    let text = |key: &str| entry[key].as_str().unwrap_or_default().to_string();
    (
        text("actor"),
        text("route"),
        entry["IdClient"].as_str().map(str::to_string),
        text("summary"),
    )
}

fn fact(actor: &str, route: &str, id: Option<&str>, summary: &str) -> (String, String, Option<String>, String) {
    (actor.into(), route.into(), id.map(str::to_string), summary.into())
}

#[tokio::test]
async fn every_write_without_tokens_leaves_a_local_entry_with_route_customer_and_summary() {
    let app = spawn_app().await;
    let created = app
        .create_v1_ok(&json!({"Nom": "Lefèvre", "Prenom": "Léa", "Email": "lea@x.fr", "Credit": 500}))
        .await;
    let id = created["IdClient"].as_str().unwrap().to_string();
    let (status, _) = app
        .patch_customer(&id, &json!({"Email": "lea.l@x.fr", "Phone": "0102030405"}))
        .await;
    assert_eq!(status, 200);
    let (_, card) = app.issue_card(&id).await;
    let card = card["CarteFid"].as_u64().unwrap();
    let (status, _) = app
        .credit(&json!({"Tickets": [{"carteFid": card, "Montant": 400}]}))
        .await;
    assert_eq!(status, 200);
    let (status, answer) = app
        .allow_credit(&json!({"idClient": id, "Montant": 12000, "Date": "2030-01-02"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = app.payment_result("1", &json!({"status": "ERROR"})).await;
    assert_eq!(status, 200);
    let (status, _) = app.reset_refusals(&id).await;
    assert_eq!(status, 200);
    let rows = json!([{"Nom": "Martin", "Email": "bob@x.fr"}, {"Nom": "Durand", "Email": "paul@x.fr"}]);
    let (status, report) = app.import("mode=merge", None, rows.to_string()).await;
    assert_eq!(status, 200, "{report}");
    let (status, _) = app.erase_customer(&id).await;
    assert_eq!(status, 200);

    let entries = trail(&app).await;
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    assert!(entries
        .iter()
        .all(|e| e["at"].as_str().is_some_and(|at| at.ends_with('Z'))));
    let id = Some(id.as_str());
    let customer = "/api/v1/customers/{}";
    assert_eq!(
        entries.iter().map(facts).collect::<Vec<_>>(),
        [
            fact(
                "local",
                "POST /api/v1/customers",
                id,
                &format!("created with Nom, Prenom, Email; credit {}", euros(500))
            ),
            fact("local", &format!("PATCH {customer}"), id, "changed Email, Phone"),
            fact("local", "POST /api/v1/customers/{}/card", id, "card issued"),
            fact(
                "local",
                "POST /api/credit",
                id,
                &format!("credit +{} (balance {})", euros(200), euros(700))
            ),
            fact(
                "local",
                "POST /api/allow_credit",
                id,
                &format!("payment 1 of {} scheduled for 2030-01-02", euros(12000))
            ),
            fact(
                "local",
                "POST /api/v1/payments/{}/result",
                id,
                &format!(
                    "payment 1 of {} refused (attempt 1), due 2030-01-03; NbRefus 0 -> 1",
                    euros(12000)
                )
            ),
            fact(
                "local",
                "POST /api/v1/customers/{}/refusals/reset",
                id,
                "NbRefus 1 -> 0"
            ),
            fact(
                "local",
                "POST /api/update_db",
                None,
                "import (merge): 2 created, 0 updated, 0 unchanged, 0 erased"
            ),
            fact("local", &format!("DELETE {customer}"), id, "personal data erased"),
        ]
    );
    // Field names and amounts only: no e-mail, phone or name in any summary.
    for personal in ["lea", "0102030405", "Lefèvre", "bob@"] {
        assert!(
            entries
                .iter()
                .all(|e| !e["summary"].as_str().unwrap().contains(personal)),
            "{personal} in {entries:?}"
        );
    }
    // A PATCH that changes nothing writes nothing, so it records nothing.
    let martin = app.customer_by_email("bob@x.fr").await.1["IdClient"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch_customer(&martin, &json!({"Nom": "Martin"})).await;
    assert_eq!(trail(&app).await.len(), entries.len());
}

#[tokio::test]
async fn with_tokens_each_entry_names_the_token_and_the_audit_is_for_admin_only() {
    let app = spawn_with_tokens().await;
    let (status, answer) = status_and_json(
        app.client
            .post(app.url("/api/create_customer"))
            .bearer_auth(WRITE)
            .body(r#"{"Nom": "Caisse", "email": "c@x.fr"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["idClient"].as_str().unwrap().to_string();
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/customers/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (status, body) = audit(&app, "", None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_required")), "{body}");
    let (status, body) = audit(&app, "", Some("not-a-token-0123456789")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_token")), "{body}");
    for token in [READ, WRITE] {
        let (status, body) = audit(&app, "", Some(token)).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("role_too_small")), "{body}");
        assert_eq!(body["needed"], "admin");
    }
    let (status, page) = audit(&app, "", Some(ADMIN)).await;
    assert_eq!(status, 200, "{page}");
    let customer = Uuid::parse_str(&id).unwrap();
    let id = Some(id.as_str());
    assert_eq!(
        page["items"].as_array().unwrap().iter().map(facts).collect::<Vec<_>>(),
        [
            fact("tills", "POST /api/create_customer", id, "created with Nom, Email"),
            fact("ops", "DELETE /api/v1/customers/{}", id, "personal data erased"),
        ]
    );

    // The TUI's client asks the same, with its token.
    let client = |token| ApiClient::with_token(app.address.parse().unwrap(), Some(token));
    let page = client(ADMIN).audit(customer, 10, None).await.unwrap();
    assert_eq!(page.items[0].actor, "ops", "newest first");
    match client(READ).audit(customer, 10, None).await {
        Err(ApiError::Http { status: 403, .. }) => {}
        other => panic!("a read token reads the audit: {other:?}"),
    }
}

#[tokio::test]
async fn the_trail_is_paged_by_cursor_either_way_and_filtered_by_customer() {
    let app = spawn_app().await;
    let a = app.create_customer_ok(&json!({"Nom": "A"})).await;
    let b = app.create_customer_ok(&json!({"Nom": "B"})).await;
    for _ in 0..3 {
        app.patch_customer(&a, &json!({"Phone": format!("06{}", rand_digits())}))
            .await;
        app.issue_card(&b).await;
    }
    // 2 creations, 3 patches of A, 1 card of B (the next two change nothing).
    let (status, first) = audit(&app, "limit=2", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["total"].as_u64(), first["next_cursor"].as_str()),
        (Some(6), Some("2"))
    );
    let (_, second) = audit(&app, "limit=2&after=2", None).await;
    let seqs = |page: &Value| -> Vec<u64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&second), [3, 4]);
    let (_, newest) = audit(&app, "limit=4&order=desc", None).await;
    assert_eq!(seqs(&newest), [6, 5, 4, 3]);
    let (_, older) = audit(&app, "limit=4&order=desc&after=3", None).await;
    assert_eq!((seqs(&older), older["next_cursor"].as_str()), (vec![2, 1], None));

    let of_a = app.all_pages(&format!("/api/v1/audit?customer={a}"), 2).await;
    assert_eq!(of_a.len(), 4);
    assert!(of_a.iter().all(|e| e["IdClient"] == a.as_str()));
    let (_, of_b) = audit(&app, &format!("customer={b}"), None).await;
    assert_eq!(of_b["total"], 2);
    let (_, nobody) = audit(&app, &format!("customer={}", Uuid::new_v4()), None).await;
    assert_eq!(
        (nobody["total"].as_u64(), nobody["items"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );

    for bad in [
        "customer=nope",
        "after=x",
        "limit=0",
        "limit=5000",
        "order=sideways",
        "after=%FF",
    ] {
        let (status, body) = audit(&app, bad, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

/// Digits that differ from one call to the next (each patch must change the phone).
fn rand_digits() -> String {
    format!("{:08}", Uuid::new_v4().as_u128() % 100_000_000)
}

/// A gateway whose payment service pays everything and whose ticket sources are empty.
async fn paying_gateway() -> FakeGateway {
    let gateway = FakeGateway::start().await;
    gateway.set_payment_answer(Answer::Json(json!({"status": "OK"})));
    gateway.set_sales(json!({"tickets": []}));
    gateway.set_web_shop(json!({"tickets": []}));
    gateway
}

/// A customer with a payment of `montant` cents due long ago.
async fn customer_due(app: &TestApp, montant: u64) -> String {
    let id = app.create_customer_ok(&json!({"Nom": "Payer", "Compte": "BKN"})).await;
    let (status, answer) = app
        .allow_credit(&json!({"idClient": id, "Montant": montant, "Date": "2019-01-05"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    id
}

/// What a payment run leaves for `payer`'s payment 1 of `montant` cents.
fn paid_entries(actor: &str, route: &str, payer: &str, montant: u64) -> Vec<(String, String, Option<String>, String)> {
    vec![
        fact(actor, route, Some(payer), "payment 1 sent to the payment service"),
        fact(
            actor,
            route,
            Some(payer),
            &format!(
                "payment 1 of {} paid; pending payments -{} (total {})",
                euros(montant),
                euros(montant),
                euros(0)
            ),
        ),
    ]
}

#[tokio::test]
async fn the_older_schedulers_calls_and_command_line_imports_are_recorded() {
    let gateway = paying_gateway().await;
    let url = gateway.url();
    let mut app = spawn_app_with(move |config| {
        config.gateway = Some(url);
        config.upstream_timeout = Duration::from_millis(500);
    })
    .await;
    let id = customer_due(&app, 900).await;
    // The older scheduler's call is a request like any other: `local`, its route.
    let run = app.run_payments().await;
    assert_eq!(run["sent"], 1, "{run}");
    let of_payer: Vec<_> = app
        .all_pages(&format!("/api/v1/audit?customer={id}"), 10)
        .await
        .iter()
        .map(facts)
        .collect();
    assert_eq!(of_payer[2..], paid_entries("local", "POST /api/paiement", &id, 900));

    // A command-line import is `local`, under its command.
    let dir = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    app.stop().await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("rows.json");
    std::fs::write(&file, json!([{"Nom": "Cli", "Email": "cli@x.fr"}]).to_string()).unwrap();
    let mut imported = false;
    // The stopped server's last connections may hold the directory for a moment.
    for _ in 0..50 {
        let run = Command::new(env!("CARGO_BIN_EXE_crm-server-under-test"))
            .arg("import")
            .arg(&file)
            .arg("--data")
            .arg(dir.path())
            .output()
            .unwrap();
        if run.status.success() {
            imported = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(imported, "the command-line import failed");
    let app = spawn_app_on(dir).await;
    let last = trail(&app).await.last().map(facts).unwrap();
    assert_eq!(
        last,
        fact(
            "local",
            "crm-server import",
            None,
            "import (merge): 1 created, 0 updated, 0 unchanged, 0 erased"
        )
    );
}

#[tokio::test]
async fn the_servers_own_schedule_records_its_runs_as_the_scheduler() {
    let gateway = paying_gateway().await;
    // The schedule's first round runs at start: the payment must be in the store
    // before the server starts.
    let app = spawn_app().await;
    let id = customer_due(&app, 300).await;
    let url = gateway.url();
    let app = app
        .restart_with(move |config| {
            config.gateway = Some(url);
            config.upstream_timeout = Duration::from_millis(500);
            config.pull_every = Some(Duration::from_secs(3600));
        })
        .await;
    let mut entries = Vec::new();
    for _ in 0..200 {
        entries = app.all_pages(&format!("/api/v1/audit?customer={id}"), 10).await;
        if entries.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let runs: Vec<_> = entries.iter().skip(2).map(facts).collect();
    assert_eq!(runs, paid_entries("scheduler", "scheduler payment run", &id, 300));
}

#[tokio::test]
async fn the_customer_page_shows_the_history_to_those_who_may_read_the_audit() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Page", "email": "page@x.fr"}))
        .await;
    app.issue_card(&id).await;
    let (status, page) = app.customer_page(&id).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h2 id=\"history-title\">Historique</h2>"), "{page}");
    let card = page.find("card issued").expect("the card entry");
    let created = page.find("created with Nom, Email").expect("the creation entry");
    assert!(card < created, "newest first");
    assert!(page.contains("POST /api/v1/customers/{}/card") && page.contains("<td>local</td>"));

    // With tokens: an admin session sees it, a read one does not.
    let app = spawn_with_tokens().await;
    let (_, answer) = status_and_json(
        app.client
            .post(app.url("/api/create_customer"))
            .bearer_auth(WRITE)
            .body(r#"{"Nom": "Page"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = answer["idClient"].as_str().unwrap();
    let page_as = |token: &'static str| {
        app.client
            .get(app.url(&format!("/api/customers/{id}")))
            .bearer_auth(token)
            .send()
    };
    let admin = page_as(ADMIN).await.unwrap().text().await.unwrap();
    assert!(
        admin.contains("Historique") && admin.contains("<td>tills</td>"),
        "{admin}"
    );
    let read = page_as(READ).await.unwrap();
    assert_eq!(read.status(), 200);
    let read = read.text().await.unwrap();
    assert!(!read.contains("Historique") && read.contains("Page"), "{read}");
}

#[tokio::test]
async fn a_restored_export_keeps_the_trail_and_numbers_on_after_it() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "Kept", "email": "k@x.fr"})).await;
    app.patch_customer(&id, &json!({"Phone": "0600000000"})).await;
    app.erase_customer(&id).await;
    let before = trail(&app).await;
    assert_eq!(before.len(), 3);
    let dump = app.get("/api/v1/export").await.text().await.unwrap();
    let audit_lines = dump.lines().filter(|l| l.contains(r#""kind":"audit""#)).count();
    assert_eq!(audit_lines, 3, "{dump}");

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("dump.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server-under-test"))
        .arg("restore")
        .arg(&file)
        .arg("--data")
        .arg(target.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 audit entries"));
    let restored = spawn_app_on(target).await;
    assert_eq!(trail(&restored).await, before);
    assert_eq!(
        restored.all_pages(&format!("/api/v1/audit?customer={id}"), 2).await,
        before
    );
    let next = restored.create_customer_ok(&json!({"Nom": "After"})).await;
    let last = trail(&restored).await.pop().unwrap();
    assert_eq!(
        (last["seq"].as_u64(), last["IdClient"].as_str()),
        (Some(4), Some(next.as_str()))
    );
}

#[tokio::test]
async fn a_replace_import_is_one_entry_with_its_counts_not_one_per_row() {
    let app = spawn_app().await;
    app.create_customer_ok(&json!({"Nom": "Kept", "email": "kept@x.fr"}))
        .await;
    app.create_customer_ok(&json!({"Nom": "Absent", "email": "absent@x.fr"}))
        .await;
    let rows = json!([
        {"Nom": "Kept", "Email": "kept@x.fr", "Phone": "0102030405"},
        {"Nom": "New", "Email": "new@x.fr"},
        {"Nom": "Newer", "Email": "newer@x.fr"},
    ]);
    let (status, report) = app.import("mode=replace", None, rows.to_string()).await;
    assert_eq!(status, 200, "{report}");
    let entries = trail(&app).await;
    assert_eq!(entries.len(), 3, "two creations and the import: {entries:?}");
    assert_eq!(
        facts(&entries[2]),
        fact(
            "local",
            "POST /api/update_db",
            None,
            "import (replace): 2 created, 1 updated, 0 unchanged, 1 erased"
        )
    );
    // A dry run writes nothing, so records nothing.
    let (status, _) = app.import("mode=merge&dry_run=true", None, rows.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(trail(&app).await.len(), 3);
}

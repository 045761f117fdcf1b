//! Backups end to end: `GET /api/v1/export` and `crm-server export` write the same dump,
//! `crm-server restore` gives back the same register (read through HTTP) after erasures
//! and a replace import, the sequences go on after it, and bad dumps or targets are
//! refused.

use std::path::Path;
use std::process::{Command, Output};

use crm_tests::{spawn_app, spawn_app_on, status_and_json, TestApp};
use serde_json::{json, Value};

fn ticket(id: u64, prix: u64, client: &str) -> Value {
    json!({"id": id, "date": "2019-10-09T17:01:29.408701Z", "prix": prix, "client": client,
        "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]})
}

fn server_command(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crm-server-under-test"))
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run crm-server")
}

async fn export_online(app: &TestApp) -> String {
    let response = app.get("/api/v1/export").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response.text().await.expect("dump")
}

/// The dump's lines but the header, whose `created_at` differs between two dumps.
fn records(dump: &str) -> Vec<Value> {
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines[0]["kind"], "header");
    assert_eq!(
        (lines[0]["format"].as_str(), lines[0]["version"].as_u64()),
        (Some("crm-backup"), Some(2))
    );
    assert_eq!(lines.last().unwrap()["kind"], "trailer");
    lines[1..].to_vec()
}

/// A register with a bit of everything: customers with cards, credits under a key,
/// matched and waiting tickets, payments pending, paid and refused, a consumer cursor,
/// an erased customer, then a replace import that erases one more.
async fn busy_register(app: &TestApp) -> Vec<String> {
    let a = app
        .create_customer_ok(&json!({"Nom": "Lefèvre", "Prenom": "Léa", "email": "lea@x.fr", "Credit": 500}))
        .await;
    let b = app
        .create_customer_ok(&json!({"Nom": "Martin", "email": "bob@x.fr"}))
        .await;
    let c = app
        .create_customer_ok(&json!({"Nom": "Gone", "email": "gone@x.fr", "Credit": 70}))
        .await;
    let d = app
        .create_customer_ok(&json!({"Nom": "Absent", "email": "absent@x.fr"}))
        .await;
    let (status, card) = app.issue_card(&a).await;
    assert_eq!(status, 200, "{card}");
    let card = card["CarteFid"].as_u64().expect("card");
    let credit = json!({"Tickets": [{"carteFid": card, "Montant": 40}]});
    assert_eq!(app.credit_with_key(&credit, "till-7").await.0, 200);
    let (status, answer) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": [
            ticket(1, 100, &a), ticket(2, 300, &b), ticket(3, 50, "waiting@x.fr"),
        ]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    for (id, date) in [(&a, "2019-12-06"), (&b, "2019-12-07"), (&b, "2019-12-09")] {
        let (status, answer) = app
            .allow_credit(&json!({"idClient": id, "Montant": 1000, "Date": date}))
            .await;
        assert_eq!((status, answer["Allowed"].as_bool()), (200, Some(true)), "{answer}");
    }
    assert_eq!(app.payment_result("1", &json!({"status": "OK"})).await.0, 200);
    assert_eq!(app.payment_result("2", &json!({"status": "ERROR"})).await.0, 200);
    assert_eq!(app.get_tickets(Some("bi")).await.len(), 3);
    assert_eq!(app.erase_customer(&c).await.0, 200);
    let rows = json!([
        {"Nom": "Lefèvre", "Prenom": "Léa", "Email": "lea@x.fr"},
        {"Nom": "Martin", "Email": "bob@x.fr", "Phone": "0102030405"},
        {"Nom": "Fresh", "Email": "fresh@x.fr"},
    ]);
    let (status, report) = app.import("mode=replace", None, rows.to_string()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        app.customer(&d).await.1["Nom"],
        "",
        "the replace erased the absent customer"
    );
    vec![a, b, c, d]
}

/// Everything HTTP tells of the register and of the given customers.
async fn view(app: &TestApp, ids: &[String]) -> Value {
    let mut each = Vec::new();
    for id in ids {
        each.push(json!({
            "customer": app.customer(id).await,
            "ledger": app.all_pages(&format!("/api/v1/customers/{id}/ledger"), 2).await,
            "tickets": app.all_pages(&format!("/api/v1/customers/{id}/tickets"), 2).await,
            "payments": app.all_pages(&format!("/api/v1/customers/{id}/payments"), 2).await,
            "audit": app.all_pages(&format!("/api/v1/audit?customer={id}"), 2).await,
        }));
    }
    json!({
        "all": app.all_customers().await,
        "count": app.customer_count().await,
        "by_email": app.customer_by_email("bob@x.fr").await,
        "search": app.list_customers("q=lefevre").await,
        "by_credit": app.list_customers("sort=Credit").await,
        "tickets": app.all_pages("/api/v1/tickets", 2).await,
        "due": app.all_pages("/api/v1/payments?due=2099-12-31", 2).await,
        "audit": app.all_pages("/api/v1/audit", 3).await,
        "each": each,
    })
}

#[tokio::test]
async fn a_restored_export_reads_the_same_and_its_sequences_go_on() {
    let app = spawn_app().await;
    let ids = busy_register(&app).await;
    let before = view(&app, &ids).await;
    let dump = export_online(&app).await;
    let kinds: Vec<String> = records(&dump)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "customer",
        "ledger",
        "ticket",
        "payment",
        "credit_key",
        "consumer",
        "counter",
        "audit",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} record in {dump}");
    }

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("dump.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let restored_dir = tempfile::tempdir().unwrap();
    let out = server_command(&["restore", file.to_str().unwrap()], restored_dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("restored 5 customers"));

    let restored = spawn_app_on(restored_dir).await;
    assert_eq!(view(&restored, &ids).await, before);
    // And it dumps the same records again.
    assert_eq!(records(&export_online(&restored).await), records(&dump));

    // The sequences continue: the next customer, ticket, payment and card numbers
    // follow the old ones; the consumer's cursor and the credit keys hold. The same
    // writes on the original and on the restored register answer the same.
    let a_card = before["each"][0]["customer"][1]["CarteFid"].as_u64().unwrap();
    let mut answers = Vec::new();
    for server in [&app, &restored] {
        let next = server
            .create_v1_ok(
                &json!({"Nom": "Next", "Email": "waiting@x.fr", "IdClient": "0b7e6f7a-3a55-4c11-9a43-5f2b1c0d9e8f"}),
            )
            .await;
        assert_eq!(
            (next["id"].as_u64(), next["Credit"].as_u64()),
            (Some(6), Some(25)),
            "{next}"
        );
        let id = next["IdClient"].as_str().unwrap();
        let (_, card) = server.issue_card(id).await;
        let (status, answer) = server.post_tickets(&json!({"tickets": [ticket(4, 10, id)]})).await;
        assert_eq!(status, 200, "{answer}");
        let fed = server.get_tickets(Some("bi")).await;
        let (status, payment) = server
            .allow_credit(&json!({"idClient": id, "Montant": 5, "Date": "2020-01-01"}))
            .await;
        assert_eq!(status, 200, "{payment}");
        let (_, payments) = server.customer_payments(id, "").await;
        let credit = json!({"Tickets": [{"carteFid": a_card, "Montant": 40}]});
        let (_, again) = server.credit_with_key(&credit, "till-7").await;
        answers.push(json!({
            "next": next, "card": card, "fed": fed.len(), "payments": payments, "again": again,
        }));
    }
    assert_eq!(answers[0]["fed"], 1, "only the ticket after the cursor: {}", answers[0]);
    assert_eq!(
        answers[0]["again"]["credited"][0]["Credit"], before["each"][0]["customer"][1]["Credit"],
        "a credit key seen before credits nothing"
    );
    assert_eq!(without_times(answers[1].clone()), without_times(answers[0].clone()));
    assert_eq!(
        without_times(view(&restored, &ids).await),
        without_times(view(&app, &ids).await)
    );
}

/// Drops the `at` of ledger entries (written after the restore at other instants).
fn without_times(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("at");
            for v in map.values_mut() {
                *v = without_times(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_times(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test]
async fn the_command_line_export_is_the_online_one() {
    if crm_tests::sled_only("the command line on the server's data directory (its PostgreSQL form has its own test)") {
        return;
    }
    let mut app = spawn_app().await;
    busy_register(&app).await;
    let online = export_online(&app).await;
    let dir = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    app.stop().await;
    let mut offline = server_command(&["export"], dir.path());
    for _ in 0..50 {
        if offline.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        offline = server_command(&["export"], dir.path());
    }
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert_eq!(records(&String::from_utf8(offline.stdout).unwrap()), records(&online));
}

#[tokio::test]
async fn restore_refuses_a_used_directory_and_a_dump_cut_short() {
    if crm_tests::sled_only("the command line on the server's data directory (its PostgreSQL form has its own test)") {
        return;
    }
    let app = spawn_app().await;
    busy_register(&app).await;
    let dump = export_online(&app).await;
    let files = tempfile::tempdir().unwrap();

    let used = server_command(&["restore", "-"], app.data_dir.path());
    assert!(!used.status.success());
    assert!(String::from_utf8_lossy(&used.stderr).contains("is not empty"));

    let cut = files.path().join("cut.jsonl");
    let lines: Vec<&str> = dump.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).unwrap();
    let target = files.path().join("new");
    let out = server_command(&["restore", cut.to_str().unwrap()], &target);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cut short"), "{stderr}");
    assert!(!target.exists(), "a refused restore leaves nothing behind");

    let later = files.path().join("later.jsonl");
    std::fs::write(&later, dump.replacen("\"version\":2", "\"version\":9", 1)).unwrap();
    let out = server_command(&["restore", later.to_str().unwrap()], &target);
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 9"));
}

#[tokio::test]
async fn an_export_under_concurrent_writes_restores_consistently() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..300 {
        let body = json!({"Nom": format!("C{i}"), "email": format!("c{i}@x.fr"), "CarteFid": 1000 + i, "Credit": 10});
        ids.push(app.create_customer_ok(&body).await);
    }
    // Credits and tickets go on while the dump streams.
    let writer = {
        let client = app.client.clone();
        let url = app.url("/api/credit");
        tokio::spawn(async move {
            let mut round = 0u64;
            loop {
                let items: Vec<Value> = (0..20)
                    .map(|k| json!({"carteFid": 1000 + (round * 20 + k) % 300, "Montant": 2}))
                    .collect();
                let sent = client.post(&url).json(&json!({"Tickets": items})).send().await;
                if sent.is_err() {
                    return;
                }
                round += 1;
            }
        })
    };
    let mut dumps = Vec::new();
    for _ in 0..3 {
        dumps.push(export_online(&app).await);
    }
    writer.abort();
    for dump in dumps {
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("dump.jsonl");
        std::fs::write(&file, &dump).unwrap();
        let target = files.path().join("restored");
        // The restore checks that every customer's ledger is complete in the dump.
        let out = server_command(&["restore", file.to_str().unwrap()], &target);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // And each balance is the last entry of its ledger: one instant for both.
        let mut last_balance = None;
        for record in records(&dump) {
            match record["kind"].as_str().unwrap() {
                "customer" => {
                    if let Some((credit, balance)) = last_balance.take() {
                        assert_eq!(credit, balance);
                    }
                    last_balance = Some((record["customer"]["credit"].clone(), Value::Null));
                }
                "ledger" => {
                    if let Some((_, balance)) = last_balance.as_mut() {
                        *balance = record["entry"]["balance"].clone();
                    }
                }
                _ => {}
            }
        }
    }
    let (status, health) = status_and_json(app.get("/healthz").await).await;
    assert_eq!((status, health["customers"].as_u64()), (200, Some(300)));
}

/// Every time in a dump's records cut to the microsecond: what PostgreSQL keeps of the
/// sled store's nanoseconds.
fn to_the_microsecond(mut value: Value) -> Value {
    match &mut value {
        Value::String(text) => {
            if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
                let time = chrono::SubsecRound::trunc_subsecs(time.with_timezone(&chrono::Utc), 6);
                *text = time.to_rfc3339();
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = to_the_microsecond(v.take());
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                *v = to_the_microsecond(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test]
async fn a_register_moves_to_postgres_and_back_through_the_command_line() {
    let test = "a_register_moves_to_postgres_and_back_through_the_command_line";
    // Dropped when it goes out of scope, after a failure too.
    let Some(database) = crm_tests::TestDatabase::create_for(test).await else {
        return;
    };
    moves_to_postgres_and_back(&database.url, database.name()).await;
}

/// sled -> `restore --database` -> `export --database` -> sled: the same dump, the same
/// register through HTTP.
async fn moves_to_postgres_and_back(database: &str, name: &str) {
    let database = database.to_string();
    let app = spawn_app().await;
    let ids = busy_register(&app).await;
    let before = view(&app, &ids).await;
    let from_sled = export_online(&app).await;
    let files = tempfile::tempdir().unwrap();
    let sled_file = files.path().join("sled.jsonl");
    std::fs::write(&sled_file, &from_sled).unwrap();
    // `--data` is given too (by server_command): `--database` wins for both commands.
    let unused = files.path().join("unused");

    let out = server_command(
        &["restore", "--database", &database, sled_file.to_str().unwrap()],
        &unused,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("restored 5 customers"), "{said}");
    // Named without its password.
    let password = reqwest::Url::parse(&database).unwrap().password().map(str::to_string);
    assert!(
        said.contains("into the database postgres://") && said.contains(name),
        "{said}"
    );
    assert!(password.is_none_or(|p| !said.contains(&format!(":{p}@"))), "{said}");

    let out = server_command(&["export", "--database", &database], &unused);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_pg = String::from_utf8(out.stdout).unwrap();
    let cut = |dump: &str| records(dump).into_iter().map(to_the_microsecond).collect::<Vec<_>>();
    assert_eq!(cut(&from_pg), cut(&from_sled));
    assert!(!unused.exists(), "the data directory was not touched");

    // A database that holds a register is refused; import does not take --database.
    let out = server_command(
        &["restore", "--database", &database, sled_file.to_str().unwrap()],
        &unused,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the database {name} is not empty")),
        "{stderr}"
    );
    let out = server_command(
        &["import", "--database", &database, sled_file.to_str().unwrap()],
        &unused,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not take --database"));

    // And back into sled: the register reads the same through HTTP.
    let pg_file = files.path().join("pg.jsonl");
    std::fs::write(&pg_file, &from_pg).unwrap();
    let back = tempfile::tempdir().unwrap();
    let out = server_command(&["restore", pg_file.to_str().unwrap()], back.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = spawn_app_on(back).await;
    assert_eq!(
        to_the_microsecond(without_times(view(&restored, &ids).await)),
        to_the_microsecond(without_times(before))
    );
    assert_eq!(records(&export_online(&restored).await), records(&from_pg));
}

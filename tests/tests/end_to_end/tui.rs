//! The terminal client against the real server: its `ApiClient`, one method at a time,
//! and its state machine driven by keys, with the commands `App::update` returns carried
//! out by the client's own executor (`crm_tui::runtime::execute`) and the screen read
//! from ratatui's test backend.

use std::collections::HashSet;

use crm_model::input::parse_date;
use crm_model::{Cents, ListQuery, Sort, SortDirection, SortKey};
use crm_tests::{spawn_app, TestApp};
use crm_tui::api::{
    ApiClient, ApiError, CustomerChanges, CustomerKey, ImportMode, LedgerEntry, NewCustomerRequest, PaymentOutcome,
};
use crm_tui::app::{App, Command, Connection, CreditAction, DetailPane, ImportStage, Message, Screen};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use uuid::Uuid;

const WIDTH: u16 = 110;
const HEIGHT: u16 = 30;
/// More commands than any of these scenarios needs: a loop that keeps asking fails.
const MAX_COMMANDS: usize = 200;

fn api_of(app: &TestApp) -> ApiClient {
    ApiClient::new(app.address.parse().expect("server URL"))
}

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("IdClient")
}

fn euros(cents: u64) -> String {
    Cents(cents).to_euros()
}

fn ticket(id: u64, prix: u64, client: &str, date: &str) -> Value {
    json!({"id": id, "date": date, "prix": prix, "client": client, "pointsFidelite": 0,
        "modePaiement": "CARD",
        "articles": [{"codeProduit": "X1-0", "prixAvant": prix, "prixApres": prix, "quantity": 1}]})
}

async fn post_tickets(app: &TestApp, tickets: Vec<Value>) {
    let (status, answer) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": tickets}))
        .await;
    assert_eq!(status, 200, "{answer}");
}

async fn allow_credit(app: &TestApp, id: &str, montant: u64, date: &str) {
    let (status, answer) = app
        .allow_credit(&json!({"idClient": id, "Montant": montant, "Date": date}))
        .await;
    assert_eq!((status, &answer["Allowed"]), (200, &json!(true)), "{answer}");
}

/// `seq`, `amount`, `balance`, `cause` and `key` of each ledger entry.
type LedgerRow<'a> = (u64, i64, Option<i64>, &'a str, Option<&'a str>);

fn ledger_rows(entries: &[LedgerEntry]) -> Vec<LedgerRow<'_>> {
    entries
        .iter()
        .map(|e| (e.seq, e.amount, e.balance, e.cause.as_str(), e.key.as_deref()))
        .collect()
}

fn write_file(dir: &tempfile::TempDir, name: &str, content: &Value) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content.to_string()).expect("write the import file");
    path
}

/// The client's state machine wired to a real server, one message at a time.
struct Tui {
    app: App,
    api: ApiClient,
    /// Where the executor sends what comes while a command runs (upload progress).
    sender: UnboundedSender<Message>,
    receiver: UnboundedReceiver<Message>,
    /// The health checks the client keeps scheduled (every few seconds, for ever): kept
    /// here rather than run, so that `run` ends; `check_health` runs them.
    health_checks: Vec<Command>,
}

impl Tui {
    /// The client started on the server, its first page of customers loaded.
    async fn start(server: &TestApp) -> Tui {
        let (sender, receiver) = unbounded_channel();
        let mut tui = Tui {
            app: App::new(server.address.as_str()),
            api: api_of(server),
            sender,
            receiver,
            health_checks: Vec::new(),
        };
        tui.app.update(Message::Resize {
            width: WIDTH,
            height: HEIGHT,
        });
        let start = tui.app.start();
        tui.run(start).await;
        tui
    }

    /// Carries out `commands` and those their answers lead to, until none is left. The
    /// commands of one round run concurrently, as the runtime's tasks do (so that a
    /// search's debounce timers overlap); their answers are applied in the order the
    /// commands were given, which keeps each run the same.
    async fn run(&mut self, mut commands: Vec<Command>) {
        let mut executed = 0;
        while !commands.is_empty() {
            executed += commands.len();
            assert!(executed <= MAX_COMMANDS, "commands keep coming: {commands:?}");
            for command in &commands {
                assert!(!matches!(command, Command::Quit), "unexpected quit");
            }
            let (health_checks, others): (Vec<Command>, Vec<Command>) = commands
                .drain(..)
                .partition(|command| matches!(command, Command::CheckHealth { .. }));
            self.health_checks.extend(health_checks);
            commands = others;
            let answers = futures::future::join_all(
                commands
                    .drain(..)
                    .map(|command| crm_tui::runtime::execute(self.api.clone(), command, self.sender.clone())),
            )
            .await;
            while let Ok(progress) = self.receiver.try_recv() {
                commands.extend(self.app.update(progress));
            }
            for message in answers.into_iter().flatten() {
                commands.extend(self.app.update(message));
            }
            // Every request of these scenarios gets an answer.
            assert!(
                !matches!(self.app.connection, Connection::Unreachable(_)),
                "the server did not answer; status {:?}",
                self.app.status
            );
        }
    }

    /// Carries out the scheduled health check (its wait included), as the runtime would.
    async fn check_health(&mut self) {
        let [check] = std::mem::take(&mut self.health_checks)
            .try_into()
            .expect("exactly one health check scheduled");
        let answer = crm_tui::runtime::execute(self.api.clone(), check, self.sender.clone()).await;
        if let Some(message) = answer {
            let commands = self.app.update(message);
            self.health_checks.extend(commands);
        }
    }

    async fn key(&mut self, code: KeyCode) {
        self.key_with(code, KeyModifiers::NONE).await;
    }

    async fn key_with(&mut self, code: KeyCode, modifiers: KeyModifiers) {
        let commands = self.app.update(Message::Key(KeyEvent::new(code, modifiers)));
        self.run(commands).await;
    }

    /// Types `text` as fast as a person can: every key's commands run together.
    async fn type_text(&mut self, text: &str) {
        let commands = text
            .chars()
            .flat_map(|c| {
                self.app
                    .update(Message::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
            })
            .collect();
        self.run(commands).await;
    }

    /// Types into the focused field then moves to the next one.
    async fn fill(&mut self, text: &str) {
        self.type_text(text).await;
        self.key(KeyCode::Tab).await;
    }

    /// The screen as text, one quoted line per row.
    fn screen(&self) -> String {
        let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("test terminal");
        terminal
            .draw(|frame| crm_tui::ui::render(&self.app, frame))
            .expect("draw");
        terminal.backend().to_string()
    }

    fn assert_on_screen(&self, expected: &[&str]) {
        let screen = self.screen();
        for text in expected {
            assert!(screen.contains(text), "{text:?} is not on the screen:\n{screen}");
        }
    }

    fn status(&self) -> String {
        self.app.status.as_ref().map(|s| s.text.clone()).unwrap_or_default()
    }
}

/// Bloggs (card, two tickets, a deferred payment) and two others.
async fn seed_customers(app: &TestApp) -> String {
    let bloggs = app
        .create_customer_ok(
            &json!({"Nom": "Bloggs", "Prenom": "Jacquie", "email": "jacquie@mimi.com",
            "Credit": 500, "Compte": "BKN1CST53"}),
        )
        .await;
    app.create_customer_ok(&json!({"Nom": "Dupont", "Prenom": "Marie", "email": "marie@mimi.com"}))
        .await;
    app.create_customer_ok(&json!({"Nom": "Durand", "Prenom": "Paul"}))
        .await;
    let (status, customer) = app.issue_card(&bloggs).await;
    assert_eq!(status, 200, "{customer}");
    post_tickets(
        app,
        vec![
            ticket(41, 1000, &bloggs, "2019-10-09T17:01:29.408701Z"),
            ticket(42, 2450, &bloggs, "2019-10-10T09:30:00Z"),
        ],
    )
    .await;
    allow_credit(app, &bloggs, 36000, "2030-01-15").await;
    bloggs
}

#[tokio::test]
async fn search_then_open_a_customer_shows_their_details_tickets_ledger_and_payments() {
    let server = spawn_app().await;
    let bloggs = seed_customers(&server).await;
    let mut tui = Tui::start(&server).await;
    assert_eq!(tui.app.customers.list.total, 3);
    assert_eq!(tui.app.customers.list.items.len(), 3);
    tui.assert_on_screen(&["Bloggs", "Dupont", "Durand", "row 1 of 3", "● Connected"]);

    tui.key(KeyCode::Char('/')).await;
    tui.type_text("blogg").await;
    let names: Vec<&str> = tui.app.customers.list.items.iter().map(|c| c.nom.as_str()).collect();
    assert_eq!(names, ["Bloggs"], "the search answered");
    assert_eq!(tui.app.customers.shown_query.as_deref(), Some("blogg"));
    tui.assert_on_screen(&["/ blogg", "jacquie@mimi.com", "row 1 of 1"]);
    let screen = tui.screen();
    assert!(!screen.contains("Dupont"), "{screen}");

    tui.key(KeyCode::Enter).await; // leaves the search field
    tui.key(KeyCode::Enter).await; // opens the customer
    let (_, expected) = server.customer(&bloggs).await;
    let detail = tui.app.customers.detail.as_ref().expect("the customer is open");
    let customer = &detail.customer;
    assert_eq!(customer.id_client, uuid(&bloggs));
    let card = customer.carte_fid.expect("Bloggs has a card");
    assert_eq!(Some(card), expected["CarteFid"].as_u64());
    // 500 opening + half of 10,00 € + half of 24,50 €.
    assert_eq!(customer.credit, Cents(500 + 500 + 1225));
    assert_eq!(customer.panier_moyen, Cents((1000 + 2450) / 2));
    assert_eq!(customer.montant, Cents(36000));
    assert_eq!(customer.date_paiement, parse_date("2030-01-15").ok());

    let uids: Vec<&str> = detail.tickets.items.iter().map(|t| t.uid.as_str()).collect();
    assert_eq!(uids, ["magasin41", "magasin42"]);
    assert_eq!(detail.tickets.total, 2);
    let first = &detail.tickets.items[0];
    assert_eq!(
        (
            first.id.as_str(),
            first.prix,
            first.origin.as_str(),
            first.mode_paiement.as_str()
        ),
        ("41", Cents(1000), "magasin", "CARD")
    );
    assert_eq!((first.articles.len(), first.unmatched), (1, false));

    assert_eq!(
        ledger_rows(&detail.ledger.items),
        [
            (1, 500, Some(500), "opening", None),
            (2, 500, Some(1000), "ticket", Some("magasin41")),
            (3, 1225, Some(2225), "ticket", Some("magasin42")),
        ]
    );
    assert!(detail.ledger.items.iter().all(|e| e.at.ends_with('Z')), "RFC 3339 UTC");

    let payments = &detail.payments.items;
    assert_eq!(payments.len(), 1);
    let payment = &payments[0];
    assert_eq!(
        (
            payment.id.as_str(),
            payment.montant,
            payment.status.as_str(),
            payment.attempts
        ),
        ("1", Cents(36000), "pending", 0)
    );
    assert_eq!(payment.date, parse_date("2030-01-15").ok());
    assert_eq!(payment.id_client, bloggs);
    for list in [&detail.tickets.error, &detail.ledger.error, &detail.payments.error] {
        assert_eq!(list, &None);
    }

    tui.assert_on_screen(&[
        "Jacquie Bloggs",
        &bloggs,
        &card.to_string(),
        &euros(2225),
        &euros(1725),
        "2030-01-15",
        &euros(36000),
        "BKN1CST53",
        "2019-10-09 17:01",
        "magasin42",
        &euros(2450),
        "2 of 2",
    ]);

    tui.key(KeyCode::Char('l')).await;
    assert_eq!(
        tui.app.customers.detail.as_ref().map(|d| d.pane),
        Some(DetailPane::Ledger)
    );
    tui.assert_on_screen(&[
        "opening",
        "ticket",
        &format!("+{}", euros(1225)),
        &format!("+{}", euros(2225)),
        "3 of 3",
    ]);

    tui.key(KeyCode::Char('l')).await;
    tui.assert_on_screen(&["2030-01-15", "pending", &euros(36000), "1 of 1"]);

    // The history: the audit trail of Bloggs, newest first (no tokens: `local`).
    let history = &tui.app.customers.detail.as_ref().unwrap().history;
    assert_eq!(history.error, None);
    let routes: Vec<&str> = history.items.iter().map(|e| e.route.as_str()).collect();
    assert_eq!(
        routes,
        [
            "POST /api/allow_credit",
            // One entry per ticket credited.
            "POST /api/v1/tickets",
            "POST /api/v1/tickets",
            "POST /api/v1/customers/{}/card",
            "POST /api/create_customer",
        ]
    );
    assert!(history.items.iter().all(|e| e.actor == "local"));
    tui.key(KeyCode::Char('l')).await;
    tui.assert_on_screen(&[
        "History",
        "POST /api/allow_credit",
        &format!("payment 1 of {} scheduled", euros(36000)),
        "card issued",
        "5 of 5",
    ]);

    tui.key(KeyCode::Esc).await;
    assert!(tui.app.customers.detail.is_none());
    tui.assert_on_screen(&["Bloggs", "row 1 of 1"]);
}

#[tokio::test]
async fn a_customer_created_through_the_form_is_stored_and_listed_and_a_taken_email_is_refused() {
    let server = spawn_app().await;
    let mut tui = Tui::start(&server).await;
    assert_eq!(tui.app.customers.list.total, 0);
    tui.assert_on_screen(&["No customer matches."]);

    tui.key(KeyCode::Tab).await;
    assert_eq!(tui.app.screen, Screen::NewCustomer);
    tui.key(KeyCode::Enter).await; // starts typing in the first field
    for text in ["Martin", "Léa", "lea.martin@example.com", "0611223344", "34", "f"] {
        tui.fill(text).await;
    }
    tui.type_text("FR7630001").await;
    tui.key(KeyCode::Enter).await; // Enter on the last field sends the form

    let id_client = tui.app.create.created.expect("created");
    assert_eq!(tui.status(), format!("Created Léa Martin ({id_client})"));
    let (status, stored) = server.customer(&id_client.to_string()).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        (&stored["Nom"], &stored["Prenom"], &stored["Email"], &stored["Phone"]),
        (
            &json!("Martin"),
            &json!("Léa"),
            &json!("lea.martin@example.com"),
            &json!("0611223344")
        )
    );
    assert_eq!(
        (&stored["Age"], &stored["Sexe"], &stored["Compte"], &stored["Credit"]),
        (&json!(34), &json!("f"), &json!("FR7630001"), &json!(0))
    );
    tui.assert_on_screen(&["Created Léa Martin"]);
    // The table was reloaded with the new customer.
    let listed: Vec<Uuid> = tui.app.customers.list.items.iter().map(|c| c.id_client).collect();
    assert_eq!(listed, [id_client]);

    // The same e-mail again (another case): the server's 409 names the owner.
    tui.key(KeyCode::Enter).await;
    tui.fill("Martin").await;
    tui.fill("Paul").await;
    tui.type_text("LEA.MARTIN@example.com").await;
    tui.key_with(KeyCode::Char('s'), KeyModifiers::CONTROL).await;
    let email = &tui.app.create.form.fields[2];
    assert_eq!(email.name, "Email");
    assert_eq!(
        email.error.as_deref(),
        Some(format!("already used by customer {id_client}").as_str())
    );
    assert_eq!(tui.app.create.form.focused().name, "Email");
    assert_eq!(server.customer_count().await, 1);
    tui.assert_on_screen(&[&format!("already used by customer {id_client}")]);

    tui.key(KeyCode::Esc).await;
    tui.key(KeyCode::BackTab).await;
    assert_eq!(tui.app.screen, Screen::Customers);
    // The e-mail column is narrower than the address.
    tui.assert_on_screen(&["Martin", "Léa", "lea.martin@", "0611223344", "row 1 of 1"]);
}

#[tokio::test]
async fn an_import_is_dry_run_then_confirmed() {
    let server = spawn_app().await;
    let existing = server
        .create_customer_ok(&json!({"Nom": "Existing", "email": "exists@example.com", "Credit": 100}))
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(
        &dir,
        "clients.json",
        &json!({"clients": [
            {"Nom": "Importée", "Prenom": "Anne", "Email": "anne@example.com", "Credit": 300},
            {"Nom": "Existing", "Email": "exists@example.com", "Phone": "0700000000"}
        ]}),
    );
    let mut tui = Tui::start(&server).await;
    tui.key(KeyCode::Tab).await;
    tui.key(KeyCode::Tab).await;
    assert_eq!(tui.app.screen, Screen::Import);
    tui.key(KeyCode::Enter).await; // starts typing the path
    tui.type_text(&path.to_string_lossy()).await;
    tui.key(KeyCode::Enter).await; // dry run

    let ImportStage::Reviewed { run, summary } = &tui.app.import.stage else {
        panic!("{:?}; status {}", tui.app.import.stage, tui.status())
    };
    assert_eq!((run.path.as_path(), run.mode), (path.as_path(), ImportMode::Merge));
    assert_eq!(
        (summary.created, summary.updated, summary.unchanged, summary.erased),
        (1, 1, 0, 0)
    );
    assert_eq!(server.customer_count().await, 1, "a dry run writes nothing");
    let (_, unchanged) = server.customer(&existing).await;
    assert_eq!(unchanged["Phone"], "");
    tui.assert_on_screen(&[
        &format!("Dry run of {} passed", path.display()),
        "1 created, 1 updated, 0 unchanged",
        "y / Enter: import for real",
    ]);

    tui.key(KeyCode::Char('y')).await;
    let ImportStage::Done { summary, .. } = &tui.app.import.stage else {
        panic!("{:?}; status {}", tui.app.import.stage, tui.status())
    };
    assert_eq!((summary.created, summary.updated, summary.unchanged), (1, 1, 0));
    assert_eq!(tui.status(), "Imported: 1 created, 1 updated, 0 unchanged");
    tui.assert_on_screen(&[&format!("Imported {}:", path.display()), "1 created, 1 updated"]);
    assert_eq!(server.customer_count().await, 2);
    let (_, updated) = server.customer(&existing).await;
    assert_eq!(updated["Phone"], "0700000000");
    // The import reloaded the table.
    let mut names: Vec<&str> = tui.app.customers.list.items.iter().map(|c| c.nom.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Existing", "Importée"]);
    tui.key(KeyCode::BackTab).await;
    tui.key(KeyCode::BackTab).await;
    tui.assert_on_screen(&["Importée", "anne@example.com", &euros(300), "0700000000"]);
}

#[tokio::test]
async fn an_import_with_bad_rows_lists_them_and_writes_nothing() {
    let server = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(
        &dir,
        "bad.json",
        &json!([{"Nom": "Good"}, {"Prenom": "No name"}, {"Nom": "Bad mail", "Email": "nope"}]),
    );
    let mut tui = Tui::start(&server).await;
    tui.key(KeyCode::BackTab).await;
    tui.key(KeyCode::BackTab).await;
    assert_eq!(tui.app.screen, Screen::Import);
    tui.key(KeyCode::Char('i')).await;
    tui.type_text(&path.to_string_lossy()).await;
    tui.key(KeyCode::Enter).await;
    let ImportStage::Rejected { rows, .. } = &tui.app.import.stage else {
        panic!("{:?}; status {}", tui.app.import.stage, tui.status())
    };
    let bad: Vec<(u64, &str)> = rows.iter().map(|r| (r.row, r.field.as_str())).collect();
    assert_eq!(bad, [(2, "Nom"), (3, "Email")]);
    assert_eq!(server.customer_count().await, 0);
    tui.assert_on_screen(&["2 bad rows", "Bad rows", "Nom", "Email"]);
}

#[tokio::test]
async fn allow_credit_from_the_credit_screen_schedules_refuses_then_allows_after_a_reset() {
    let server = spawn_app().await;
    let id = server
        .create_customer_ok(&json!({"Nom": "Bloggs", "Credit": 420}))
        .await;
    let mut tui = Tui::start(&server).await;
    tui.key(KeyCode::BackTab).await;
    assert_eq!(tui.app.screen, Screen::Credit);
    tui.key(KeyCode::Enter).await;
    tui.fill(&id).await;
    tui.fill("360").await;
    tui.type_text("2030-01-15").await;
    tui.key(KeyCode::Enter).await; // the last field of the action sends it

    let allowed = &tui.app.credit.outcomes[&CreditAction::Allow];
    assert!(allowed.success, "{allowed:?}");
    let scheduled = format!(
        "Bloggs (credit {}): allowed, {} due 2030-01-15 scheduled",
        euros(420),
        euros(36000)
    );
    assert_eq!(allowed.text, scheduled);
    tui.assert_on_screen(&[&format!("→ {scheduled}")]);
    let (_, customer) = server.customer(&id).await;
    assert_eq!(
        (&customer["Montant"], &customer["Date_paiement"]),
        (&json!(36000), &json!("2030-01-15"))
    );

    // A refused payment puts the customer at the refusal limit: the next one is refused.
    let (status, _) = server.payment_result("1", &json!({"status": "ERROR"})).await;
    assert_eq!(status, 200);
    tui.key(KeyCode::Enter).await;
    let refused = &tui.app.credit.outcomes[&CreditAction::Allow];
    assert!(!refused.success);
    assert_eq!(
        refused.text,
        format!("Bloggs (credit {}): refused, too many refused payments (1)", euros(420))
    );
    tui.assert_on_screen(&["too many refused payments"]);

    // The balance, by IdClient.
    tui.fill("").await; // from the date to the balance field
    tui.type_text(&id).await;
    tui.key(KeyCode::Enter).await;
    let balance = &tui.app.credit.outcomes[&CreditAction::Balance];
    assert_eq!(balance.text, format!("Bloggs: credit {}", euros(420)));

    // Reset the refusals (the last field of the screen), then credit is allowed again.
    for _ in 0..3 {
        tui.key(KeyCode::Tab).await;
    }
    assert_eq!(tui.app.credit.form.focused().name, "reset_id");
    tui.type_text(&id).await;
    tui.key(KeyCode::Enter).await;
    assert!(tui.app.credit.outcomes[&CreditAction::ResetRefusals].success);
    let (_, customer) = server.customer(&id).await;
    assert_eq!(customer["NbRefus"], 0);
    for _ in 0..3 {
        tui.key(KeyCode::Tab).await; // round to the top
    }
    assert_eq!(tui.app.credit.form.focused().name, "allow_date");
    tui.key(KeyCode::Enter).await;
    assert!(tui.app.credit.outcomes[&CreditAction::Allow].success);
    let (_, payments) = server.customer_payments(&id, "").await;
    assert_eq!(payments["total"], 2, "{payments}");
    tui.assert_on_screen(&[
        &format!("→ {scheduled}"),
        &format!("→ Bloggs: credit {}", euros(420)),
        &format!("→ Bloggs (credit {}): refusals set to 0", euros(420)),
    ]);
}

#[tokio::test]
async fn client_customer_methods_work_against_the_server() {
    let server = spawn_app().await;
    let api = api_of(&server);
    api.health().await.expect("healthy");

    let request = |nom: &str, email: &str| NewCustomerRequest {
        nom: nom.into(),
        prenom: "Jacquie".into(),
        email: email.into(),
        phone: "0102030405".into(),
        age: Some(42),
        sexe: crm_model::Sexe::F,
        compte: "BKN1".into(),
    };
    let bloggs = api
        .create_customer(&request("Bloggs", "Jacquie@mimi.com"))
        .await
        .expect("created");
    let zola = api.create_customer(&request("Zola", "")).await.expect("created");
    let taken = api
        .create_customer(&request("Other", "jacquie@MIMI.com"))
        .await
        .expect_err("a taken e-mail");
    assert!(
        matches!(&taken, ApiError::Http { status: 409, id_client: Some(owner), .. } if *owner == bloggs),
        "{taken:?}"
    );
    let invalid = api
        .create_customer(&request("", "not an address"))
        .await
        .expect_err("invalid");
    let ApiError::Http {
        status: 422,
        field_errors,
        ..
    } = &invalid
    else {
        panic!("{invalid:?}")
    };
    let fields: HashSet<&str> = field_errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, HashSet::from(["Nom", "Email"]));

    let customer = api.customer(bloggs).await.expect("customer");
    assert_eq!(
        (
            customer.nom.as_str(),
            customer.email.as_str(),
            customer.age,
            customer.sexe
        ),
        ("Bloggs", "Jacquie@mimi.com", Some(42), crm_model::Sexe::F)
    );
    assert_eq!(
        api.customer_by_email("JACQUIE@mimi.com").await.expect("by e-mail"),
        customer
    );
    let unknown = api.customer(Uuid::new_v4()).await.expect_err("unknown");
    assert_eq!(unknown.status(), Some(404));

    let by_name = ListQuery {
        limit: 1,
        sort: Sort {
            key: SortKey::Nom,
            direction: SortDirection::Descending,
        },
        ..ListQuery::default()
    };
    let first = api.list_customers(&by_name).await.expect("page");
    assert_eq!((first.total, first.items[0].id_client), (2, zola));
    let second = api
        .list_customers(&ListQuery {
            cursor: first.next_cursor.clone(),
            ..by_name.clone()
        })
        .await
        .expect("next page");
    assert_eq!(second.items[0].id_client, bloggs);
    assert_eq!(second.next_cursor, None);
    let found = api
        .list_customers(&ListQuery {
            q: Some("blog".into()),
            ..ListQuery::default()
        })
        .await
        .expect("search");
    assert_eq!((found.total, found.items.len()), (1, 1));

    let changes = CustomerChanges {
        phone: Some("0611223344".into()),
        age: Some(None),
        ..CustomerChanges::default()
    };
    let patched = api.patch_customer(bloggs, &changes).await.expect("patched");
    assert_eq!((patched.phone.as_str(), patched.age), ("0611223344", None));
    assert_eq!(patched.nom, "Bloggs");

    let with_card = api.issue_card(bloggs).await.expect("card");
    let card = with_card.carte_fid.expect("a card number");
    assert_eq!(api.issue_card(bloggs).await.expect("kept").carte_fid, Some(card));
    let balance = api.credit_balance(&CustomerKey::Card(card)).await.expect("balance");
    assert_eq!((balance.carte_fid, balance.credit), (card.to_string(), Cents(0)));

    api.erase_customer(zola).await.expect("erased");
    let erased = api.customer(zola).await.expect("still answers by id");
    assert_eq!((erased.nom.as_str(), erased.phone.as_str()), ("", ""));
    let left = api.list_customers(&ListQuery::default()).await.expect("page");
    assert_eq!(left.items.iter().map(|c| c.id_client).collect::<Vec<_>>(), [bloggs]);
}

#[tokio::test]
async fn client_loyalty_methods_work_against_the_server() {
    let server = spawn_app().await;
    let api = api_of(&server);
    let id = server
        .create_customer_ok(&json!({"Nom": "Bloggs", "Credit": 100}))
        .await;
    let id_client = uuid(&id);
    post_tickets(
        &server,
        vec![
            ticket(1, 1000, &id, "2019-10-09T17:01:29Z"),
            ticket(2, 301, &id, "2019-10-10T09:00:00Z"),
            ticket(3, 50, "stranger@example.com", "2019-10-10T10:00:00Z"),
        ],
    )
    .await;

    let page = api.tickets(id_client, 1, None).await.expect("tickets");
    assert_eq!((page.total, page.items.len()), (2, 1));
    let first = &page.items[0];
    assert_eq!(
        (first.id.as_str(), first.uid.as_str(), first.prix, first.client.as_str()),
        ("1", "magasin1", Cents(1000), id.as_str())
    );
    assert_eq!(first.date, "2019-10-09T17:01:29Z");
    assert_eq!(first.articles[0].code_produit, "X1-0");
    assert_eq!(
        (first.articles[0].prix_apres, first.articles[0].quantity),
        (Cents(1000), 1)
    );
    let rest = api
        .tickets(id_client, 50, page.next_cursor.as_deref())
        .await
        .expect("next page");
    assert_eq!(
        rest.items.iter().map(|t| t.uid.as_str()).collect::<Vec<_>>(),
        ["magasin2"]
    );
    assert_eq!(rest.next_cursor, None);

    let ledger = api.ledger(id_client, 50, None).await.expect("ledger");
    assert_eq!(
        ledger_rows(&ledger.items),
        [
            (1, 100, Some(100), "opening", None),
            (2, 500, Some(600), "ticket", Some("magasin1")),
            (3, 150, Some(750), "ticket", Some("magasin2")),
        ]
    );
    assert_eq!(ledger.total, 3);

    let balance = api.credit_balance(&CustomerKey::Id(id_client)).await.expect("balance");
    assert_eq!((balance.carte_fid, balance.credit), (id.clone(), Cents(750)));
    let unknown = api
        .credit_balance(&CustomerKey::Card(999_999))
        .await
        .expect_err("no such card");
    assert!(matches!(&unknown, ApiError::Http { status: 404, code, .. } if code == "card_not_found"));
}

#[tokio::test]
async fn client_payment_methods_work_against_the_server() {
    let server = spawn_app().await;
    let api = api_of(&server);
    let id_client = uuid(&server.create_customer_ok(&json!({"Nom": "Bloggs"})).await);
    let date = |text: &str| parse_date(text).expect("date");

    let decision = api
        .allow_credit(id_client, Cents(36000), date("2030-01-15"))
        .await
        .expect("decision");
    assert_eq!((decision.id_client, decision.allowed), (id_client.to_string(), true));
    let payments = api.payments(id_client, 50, None).await.expect("payments");
    assert_eq!(payments.total, 1);
    let payment = &payments.items[0];
    assert_eq!(
        (
            payment.id_client.as_str(),
            payment.montant,
            payment.date,
            payment.status.as_str()
        ),
        (
            id_client.to_string().as_str(),
            Cents(36000),
            Some(date("2030-01-15")),
            "pending"
        )
    );
    let due = api.due_payments(date("2030-01-15")).await.expect("due");
    assert_eq!(due.items, payments.items);
    assert!(api
        .due_payments(date("2030-01-14"))
        .await
        .expect("due")
        .items
        .is_empty());

    api.payment_result(&payment.id, PaymentOutcome::Error)
        .await
        .expect("refusal recorded");
    let refused = &api.payments(id_client, 50, None).await.expect("payments").items[0];
    assert_eq!((refused.attempts, refused.date), (1, Some(date("2030-01-16"))));
    assert_eq!(api.customer(id_client).await.expect("customer").nb_refus, 1);
    let decision = api
        .allow_credit(id_client, Cents(100), date("2030-02-01"))
        .await
        .expect("decision");
    assert!(!decision.allowed);

    api.reset_refusals(id_client).await.expect("reset");
    assert_eq!(api.customer(id_client).await.expect("customer").nb_refus, 0);
    api.payment_result(&payment.id, PaymentOutcome::Ok).await.expect("paid");
    let paid = &api.payments(id_client, 50, None).await.expect("payments").items[0];
    assert_eq!(paid.status, "paid");
    api.payment_result(&payment.id, PaymentOutcome::Ok)
        .await
        .expect("a replayed OK is answered again");
    let late = api
        .payment_result(&payment.id, PaymentOutcome::Error)
        .await
        .expect_err("a paid payment cannot be refused");
    assert_eq!(late.status(), Some(409));
    let unknown = api
        .allow_credit(Uuid::new_v4(), Cents(100), date("2030-02-01"))
        .await
        .expect_err("unknown customer");
    assert_eq!(unknown.status(), Some(404));
}

#[tokio::test]
async fn client_import_works_against_the_server() {
    let server = spawn_app().await;
    let api = api_of(&server);
    let kept = server
        .create_customer_ok(&json!({"Nom": "Kept", "email": "kept@example.com"}))
        .await;
    server.create_customer_ok(&json!({"Nom": "Gone"})).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clients.csv");
    std::fs::write(
        &path,
        "Nom,Email,Credit\nKept,kept@example.com,250\nNew,new@example.com,0\n",
    )
    .expect("write");
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = progress.clone();

    let dry_run = api
        .import_file(&path, ImportMode::Replace, true, move |p| {
            seen.lock().expect("lock").push(p)
        })
        .await
        .expect("dry run");
    assert_eq!(
        (dry_run.created, dry_run.updated, dry_run.unchanged, dry_run.erased),
        (1, 1, 0, 1)
    );
    assert_eq!(server.customer_count().await, 2, "a dry run writes nothing");
    let size = std::fs::metadata(&path).expect("size").len();
    assert_eq!(
        progress.lock().expect("lock").last().map(|p| (p.sent, p.total)),
        Some((size, size))
    );

    let done = api
        .import_file(&path, ImportMode::Merge, false, |_| {})
        .await
        .expect("import");
    assert_eq!((done.created, done.updated, done.erased), (1, 1, 0));
    assert_eq!(server.customer_count().await, 3);
    assert_eq!(api.customer(uuid(&kept)).await.expect("kept").credit, Cents(250));

    std::fs::write(&path, "Nom,Email\n,a@example.com\n").expect("write");
    let rejected = api
        .import_file(&path, ImportMode::Merge, true, |_| {})
        .await
        .expect_err("bad rows");
    let ApiError::Http {
        status: 422,
        row_errors,
        ..
    } = &rejected
    else {
        panic!("{rejected:?}")
    };
    assert_eq!(
        row_errors.iter().map(|r| (r.row, r.field.as_str())).collect::<Vec<_>>(),
        [(1, "Nom")]
    );
    let missing = api
        .import_file(&dir.path().join("missing.csv"), ImportMode::Merge, true, |_| {})
        .await
        .expect_err("no such file");
    assert!(matches!(missing, ApiError::File { .. }), "{missing:?}");
}

#[tokio::test]
async fn the_edit_popup_opens_browsing_so_j_selects_a_field_instead_of_typing_into_the_name() {
    let server = spawn_app().await;
    let id = server
        .create_customer_ok(&json!({"Nom": "Martin", "Prenom": "Léa"}))
        .await;
    let mut tui = Tui::start(&server).await;
    // The keys of the bug report: e, j j j, Enter, a phone number, Ctrl-S.
    tui.key(KeyCode::Char('e')).await;
    tui.assert_on_screen(&["Edit Léa Martin", "Enter/i type in the field"]);
    tui.type_text("jjj").await;
    tui.key(KeyCode::Enter).await;
    tui.type_text("0611223344").await;
    tui.key_with(KeyCode::Char('s'), KeyModifiers::CONTROL).await;
    assert!(tui.app.customers.edit.is_none(), "saved; status {}", tui.status());
    let (status, stored) = server.customer(&id).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        (&stored["Nom"], &stored["Phone"]),
        (&json!("Martin"), &json!("0611223344"))
    );
    assert_eq!(tui.status(), "Saved Léa Martin");
    tui.assert_on_screen(&["▸Martin ", "0611223344"]);
}

#[tokio::test]
async fn an_idle_client_shows_within_5_s_that_the_server_has_stopped() {
    let server = spawn_app().await;
    server.create_customer_ok(&json!({"Nom": "Bloggs"})).await;
    let mut tui = Tui::start(&server).await;
    tui.assert_on_screen(&["● Connected"]);
    // Checks go on while the server answers, whatever the user does (here: typing).
    tui.check_health().await;
    tui.key(KeyCode::Char('e')).await;
    tui.key(KeyCode::Enter).await;
    assert!(tui.app.is_typing());
    tui.assert_on_screen(&["● Connected"]);

    server.stop().await;
    let stopped = std::time::Instant::now();
    while !matches!(tui.app.connection, Connection::Unreachable(_)) {
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(5),
            "not noticed in 5 s"
        );
        tui.check_health().await;
    }
    assert!(
        stopped.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    tui.assert_on_screen(&["✗ Unreachable, retrying every 3 s", "The server does not answer"]);
    assert!(tui.app.is_typing(), "the edit popup is still open");
}

#[tokio::test]
async fn shift_g_shows_the_real_last_customers_and_g_the_first() {
    let server = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let clients: Vec<Value> = (1..=250)
        .map(|n| json!({"Nom": format!("Client{n:03}"), "Prenom": "Anne"}))
        .collect();
    let path = write_file(&dir, "clients.json", &json!({ "clients": clients }));
    let api = api_of(&server);
    let summary = api
        .import_file(&path, ImportMode::Merge, false, |_| {})
        .await
        .expect("import");
    assert_eq!(summary.created, 250);
    let mut tui = Tui::start(&server).await;
    tui.key(KeyCode::Char('s')).await; // by name
    assert_eq!(tui.app.customers.list.items.len(), 100);
    tui.assert_on_screen(&["row 1 of 250"]);

    tui.key(KeyCode::Char('G')).await;
    let list = &tui.app.customers.list;
    assert_eq!(list.selected_item().map(|c| c.nom.as_str()), Some("Client250"));
    assert_eq!(list.row_number(), 250);
    let screen = tui.screen();
    let lines: Vec<&str> = screen.lines().collect();
    let selected = lines.iter().position(|l| l.contains('▸')).expect("selection");
    assert!(lines[selected].contains("▸Client250 "), "{screen}");
    assert!(lines[selected - 1].contains(" Client249 "), "{screen}");
    assert!(lines[selected + 1].contains('└'), "the last row of the table: {screen}");
    tui.assert_on_screen(&["row 250 of 250"]);

    // Up past the loaded rows' top: the rows above come in, the counter follows.
    for _ in 0..120 {
        tui.key(KeyCode::Char('k')).await;
    }
    let list = &tui.app.customers.list;
    assert_eq!(list.selected_item().map(|c| c.nom.as_str()), Some("Client130"));
    assert_eq!(list.row_number(), 130);
    tui.assert_on_screen(&["row 130 of 250", "▸Client130 "]);

    tui.key(KeyCode::Char('g')).await;
    tui.assert_on_screen(&["row 1 of 250", "▸Client001 "]);
    tui.key(KeyCode::End).await;
    tui.assert_on_screen(&["row 250 of 250", "▸Client250 "]);
}

#[tokio::test]
async fn credit_a_card_and_a_refusal_reset_start_from_the_selected_customer_and_name_them() {
    let server = spawn_app().await;
    let id = server
        .create_customer_ok(&json!({"Nom": "Bloggs", "Prenom": "Jacquie", "Credit": 420}))
        .await;
    let mut tui = Tui::start(&server).await;
    let who = format!("Jacquie Bloggs (credit {})", euros(420));

    // a: the credit screen, the customer filled in; only the amount and date to type.
    tui.key(KeyCode::Char('a')).await;
    assert_eq!(tui.app.screen, Screen::Credit);
    tui.assert_on_screen(&[&format!("{id}  {who}")]);
    tui.key(KeyCode::Enter).await;
    tui.fill("360").await;
    tui.type_text("2030-01-15").await;
    tui.key(KeyCode::Enter).await;
    let allowed = format!("{who}: allowed, {} due 2030-01-15 scheduled", euros(36000));
    assert_eq!(tui.app.credit.outcomes[&CreditAction::Allow].text, allowed);
    tui.assert_on_screen(&[&format!("→ {allowed}")]);
    let (_, customer) = server.customer(&id).await;
    assert_eq!(customer["Montant"], 36000);

    // A refused payment, then z on the customer resets the refusals.
    let (status, _) = server.payment_result("1", &json!({"status": "ERROR"})).await;
    assert_eq!(status, 200);
    tui.key(KeyCode::Esc).await; // stops typing
    tui.key(KeyCode::Esc).await; // back to the customers
    assert_eq!(tui.app.screen, Screen::Customers);
    tui.key(KeyCode::Char('r')).await;
    tui.key(KeyCode::Char('z')).await;
    tui.assert_on_screen(&["Reset refusals?", &format!("{who} has 1 refused payments")]);
    tui.key(KeyCode::Char('y')).await;
    let (_, customer) = server.customer(&id).await;
    assert_eq!(customer["NbRefus"], 0);
    assert_eq!(tui.status(), format!("Reset refusals: {who}: refusals set to 0"));
    tui.assert_on_screen(&[&format!("Reset refusals: {who}: refusals set to 0")]);

    // c from the detail view: the card, with the name and balance.
    tui.key(KeyCode::Enter).await;
    tui.key(KeyCode::Char('c')).await;
    let (_, customer) = server.customer(&id).await;
    let card = customer["CarteFid"].as_u64().expect("a card");
    assert_eq!(tui.status(), format!("{who} has card {card}"));
    tui.assert_on_screen(&[&format!("{who} has card {card}")]);
}

#[tokio::test]
async fn a_running_import_shows_its_progress_to_the_client_and_the_import_page() {
    let app = spawn_app().await;
    let api = api_of(&app);
    assert_eq!(api.current_import().await.unwrap(), None, "no import runs yet");

    // An upload that sends 10,500 rows, then waits until the server has said how far
    // it read, then sends the rest: the import is seen running, deterministically.
    let (more, rest) = tokio::sync::oneshot::channel::<()>();
    let head: String = std::iter::once("Nom,Email\n".to_string())
        .chain((0..10_500).map(|n| format!("N{n},n{n}@x.fr\n")))
        .collect();
    let tail: String = (10_500..12_000).map(|n| format!("N{n},n{n}@x.fr\n")).collect();
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(head) }),
        futures::stream::once(async move {
            let _ = rest.await;
            Ok(tail)
        }),
    );
    let upload = app
        .client
        .post(app.url("/api/update_db"))
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(upload);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let seen = loop {
        if let Some(progress) = api.current_import().await.unwrap() {
            if progress.done >= 10_000 {
                break progress;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import never showed its progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((seen.phase.as_str(), seen.total), ("reading", None), "{seen:?}");
    let (status, _, page) = app.page("/api/update_db").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Un import est en cours (merge) : lecture du fichier, 10"),
        "{page}"
    );
    let refresh = app.get("/api/update_db").await.headers().get("refresh").cloned();
    assert_eq!(refresh.as_ref().and_then(|v| v.to_str().ok()), Some("2"));

    more.send(()).unwrap();
    let answer: Value = upload.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(answer["created"], 12_000, "{answer}");
    assert_eq!(api.current_import().await.unwrap(), None, "finished");
    let id = answer["import_id"].as_str().unwrap();
    let (status, finished) = crm_tests::status_and_json(app.get(&format!("/api/v1/imports/{id}")).await).await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(
        (&finished["state"], &finished["report"]["created"]),
        (&json!("finished"), &json!(12_000))
    );
    let (_, _, page) = app.page("/api/update_db").await;
    assert!(!page.contains("en cours"), "{page}");
}

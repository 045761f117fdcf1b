//! Every screen drawn on ratatui's `TestBackend` with fixed data, compared with the
//! snapshots in `src/snapshots/` (at 110x30, and at 80x24, the smallest terminal the
//! client is made for), and behaviours checked through the state and the drawn screen.

use std::time::Duration;

use chrono::NaiveDate;
use crm_model::money::MAX_CENTS;
use crm_model::{Cents, Customer, Page};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;
use uuid::Uuid;

use crate::api::{
    ApiError, CreditBalance, CreditDecision, CustomerChanges, CustomerKey, ImportSummary, LedgerEntry, RowError,
    ScheduledPayment, Ticket, UploadProgress,
};
use crate::app::tests::{ctrl, key, load_query, loaded_app, page_of, sample_customer, type_text};
use crate::app::{App, Command, Connection, CreditAction, Message, Popup, Screen, HEALTH_INTERVAL, HEALTH_RETRY};
use crossterm::event::KeyCode;

const WIDTH: u16 = 110;
const HEIGHT: u16 = 30;
/// The smallest terminal every screen is made for.
const NARROW_WIDTH: u16 = 80;
const NARROW_HEIGHT: u16 = 24;

fn render(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).expect("test terminal");
    terminal.draw(|frame| crate::ui::render(app, frame)).expect("draw");
    terminal.backend().buffer().clone()
}

/// The screen at the app's size (110x30 unless `narrow`), as `TestBackend` shows it.
fn draw(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).expect("test terminal");
    terminal.draw(|frame| crate::ui::render(app, frame)).expect("draw");
    terminal.backend().to_string()
}

/// The screen's lines, without `TestBackend`'s quotes.
fn lines(app: &App) -> Vec<String> {
    draw(app)
        .lines()
        .map(|line| line.trim_matches('"').to_string())
        .collect()
}

/// The line of the screen marked as selected (`▸`), from the marker on.
fn selected_line(app: &App) -> String {
    let screen = draw(app);
    let line = screen
        .lines()
        .find(|l| l.contains('▸'))
        .unwrap_or_else(|| panic!("{screen}"));
    line[line.find('▸').expect("marker")..].to_string()
}

fn sized(mut app: App) -> App {
    app.update(Message::Resize {
        width: WIDTH,
        height: HEIGHT,
    });
    app
}

fn narrow(mut app: App) -> App {
    app.update(Message::Resize {
        width: NARROW_WIDTH,
        height: NARROW_HEIGHT,
    });
    app
}

/// What `TestBackend` shows of `text`: the amounts' narrow no-break spaces included.
fn euros(cents: u64) -> String {
    Cents(cents).to_euros()
}

fn customers_app() -> App {
    let mut app = sized(loaded_app());
    // Vary the sample so that every column shows something.
    let list = &mut app.customers.list;
    list.items[1].carte_fid = Some(33);
    list.items[1].date_paiement = NaiveDate::from_ymd_opt(2019, 1, 11);
    list.items[2].credit = Cents(123_456_789);
    app
}

#[test]
fn startup_screen() {
    let mut app = sized(App::new("http://127.0.0.1:8000"));
    app.start();
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn server_unreachable() {
    let mut app = sized(App::new("http://127.0.0.1:8000"));
    let generation = match app.start().first() {
        Some(crate::app::Command::LoadCustomers { generation, .. }) => *generation,
        other => panic!("{other:?}"),
    };
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Err(ApiError::Unreachable("Connection refused (os error 111)".into())),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn customers_table() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('j')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn customers_search_in_progress() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "nom1");
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn customer_detail_with_tickets() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Enter));
    let id_client = Uuid::from_u128(2);
    let tickets = (1..4)
        .map(|n| Ticket {
            id: (40 + n).to_string(),
            uid: format!("magasin{}", 40 + n),
            date: format!("2019-10-0{n}T17:01:29.408701Z"),
            prix: Cents(424 * n),
            client: id_client.to_string(),
            mode_paiement: "CARD".into(),
            origin: "magasin".into(),
            ..Ticket::default()
        })
        .collect();
    app.update(Message::TicketsLoaded {
        id_client,
        append: false,
        result: Ok(Page {
            items: tickets,
            next_cursor: None,
            total: 3,
        }),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn customer_detail_ledger_not_available_and_payments() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Enter));
    let id_client = Uuid::from_u128(2);
    app.update(Message::LedgerLoaded {
        id_client,
        append: false,
        result: Err(ApiError::Http {
            status: 404,
            code: "not_found".into(),
            message: "no such route".into(),
            field_errors: Vec::new(),
            row_errors: Vec::new(),
            id_client: None,
        }),
    });
    app.update(key(KeyCode::Char('l')));
    let ledger = draw(&app);
    app.update(Message::PaymentsLoaded {
        id_client,
        append: false,
        result: Ok(Page {
            items: vec![ScheduledPayment {
                id: "12".into(),
                id_client: id_client.to_string(),
                montant: Cents(36000),
                date: NaiveDate::from_ymd_opt(2019, 12, 6),
                status: "pending".into(),
                attempts: 1,
            }],
            next_cursor: None,
            total: 1,
        }),
    });
    app.update(key(KeyCode::Char('l')));
    insta::assert_snapshot!("customer_detail_ledger_not_available", ledger);
    insta::assert_snapshot!("customer_detail_payments", draw(&app));
}

#[test]
fn customer_detail_ledger() {
    let mut app = customers_app();
    app.update(key(KeyCode::Enter));
    app.update(Message::LedgerLoaded {
        id_client: Uuid::from_u128(1),
        append: false,
        result: Ok(Page {
            items: vec![
                LedgerEntry {
                    seq: 1,
                    at: "2019-01-01T09:00:00Z".into(),
                    amount: 100,
                    cause: "opening".into(),
                    balance: Some(100),
                    key: None,
                },
                LedgerEntry {
                    seq: 2,
                    at: "2019-01-02T10:30:00Z".into(),
                    amount: -50,
                    cause: "import_adjustment".into(),
                    balance: Some(50),
                    key: None,
                },
            ],
            next_cursor: Some("more".into()),
            total: 9,
        }),
    });
    app.update(key(KeyCode::Char('l')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn customer_detail_history() {
    let mut app = customers_app();
    app.update(key(KeyCode::Enter));
    let entry = |seq: u64, at: &str, actor: &str, route: &str, summary: &str| crate::api::AuditEntry {
        seq,
        at: at.into(),
        actor: actor.into(),
        route: route.into(),
        summary: summary.into(),
    };
    app.update(Message::HistoryLoaded {
        id_client: Uuid::from_u128(1),
        append: false,
        result: Ok(Page {
            items: vec![
                entry(
                    3,
                    "2019-01-03T08:15:00Z",
                    "caisse-1",
                    "POST /api/credit",
                    "credit +2,50 € (balance 3,50 €)",
                ),
                entry(
                    2,
                    "2019-01-02T10:30:00Z",
                    "local",
                    "PATCH /api/v1/customers/{}",
                    "changed Email, Phone",
                ),
                entry(
                    1,
                    "2019-01-01T09:00:00Z",
                    "local",
                    "POST /api/v1/customers",
                    "created with Nom, Prenom, Email",
                ),
            ],
            next_cursor: None,
            total: 3,
        }),
    });
    for _ in 0..3 {
        app.update(key(KeyCode::Char('l')));
    }
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn edit_form_with_a_server_error() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('e')));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Enter));
    app.update(ctrl('u'));
    type_text(&mut app, "taken@mimi.com");
    app.update(ctrl('s'));
    app.update(Message::CustomerSaved(Err(ApiError::Http {
        status: 409,
        code: "duplicate_email".into(),
        message: "e-mail already used".into(),
        field_errors: Vec::new(),
        row_errors: Vec::new(),
        id_client: Some(Uuid::from_u128(9)),
    })));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn new_customer_form_validating() {
    let mut app = customers_app();
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "Doe");
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    type_text(&mut app, "jon@mail");
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    type_text(&mut app, "200");
    insta::assert_snapshot!(draw(&app));
}

fn import_app() -> App {
    let mut app = customers_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "/data/clients.csv");
    app.update(key(KeyCode::Enter));
    app
}

#[test]
fn import_idle() {
    let mut app = customers_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "/data/cl");
    app.update(Message::PathCompleted {
        typed: "/data/cl".into(),
        candidates: vec!["/data/clients-2019.csv".into(), "/data/clients-2020.csv".into()],
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn import_dry_run_reviewed() {
    let mut app = import_app();
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary {
            created: 1200,
            updated: 30,
            unchanged: 4,
            erased: 0,
            errors: Vec::new(),
            ..ImportSummary::default()
        }),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn a_replace_dry_run_shows_how_many_customers_it_would_erase() {
    let mut app = import_app();
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary {
            created: 2,
            updated: 1,
            unchanged: 0,
            erased: 57,
            errors: Vec::new(),
            ..ImportSummary::default()
        }),
    });
    let screen = draw(&app);
    assert!(
        screen.contains("2 created, 1 updated, 0 unchanged, 57 erased"),
        "{screen}"
    );
    let mut merge = import_app();
    merge.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary::default()),
    });
    assert!(!draw(&merge).contains("erased"));
}

#[test]
fn import_dry_run_skipping_invalid_rows_with_unmatchable_ones() {
    let mut app = customers_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Char('v')));
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "/data/clients.csv");
    app.update(key(KeyCode::Enter));
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary {
            created: 1200,
            updated: 30,
            unchanged: 4,
            errors: vec![
                RowError {
                    row: 2,
                    field: "Nom".into(),
                    error: "is required".into(),
                },
                RowError {
                    row: 9,
                    field: "Compte".into(),
                    error: "must be at most 10 characters".into(),
                },
            ],
            skipped: 2,
            unmatchable: 12,
            ..ImportSummary::default()
        }),
    });
    let screen = draw(&app);
    assert!(
        screen.contains("1200 created, 30 updated, 4 unchanged, 2 skipped"),
        "{screen}"
    );
    assert!(
        screen.contains("12 rows have neither IdClient nor Email: importing this file again would create them"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn import_uploading() {
    let mut app = import_app();
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary::default()),
    });
    app.update(key(KeyCode::Char('y')));
    app.update(Message::ImportProgress(UploadProgress {
        sent: 3 * 1024 * 1024,
        total: 8 * 1024 * 1024,
    }));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn import_uploaded_shows_how_far_the_server_is() {
    let mut app = import_app();
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary::default()),
    });
    app.update(key(KeyCode::Char('y')));
    app.update(Message::ImportProgress(UploadProgress {
        sent: 8 * 1024 * 1024,
        total: 8 * 1024 * 1024,
    }));
    app.update(Message::ServerImportProgress(crate::api::ServerImportProgress {
        phase: "writing".into(),
        done: 12_000,
        total: Some(100_000),
    }));
    let screen = lines(&app).join("\n");
    assert!(screen.contains("8.0 MiB of 8.0 MiB sent"), "{screen}");
    assert!(screen.contains("writing rows: 12,000 of 100,000"), "{screen}");
    // Once the import answered, a late progress report changes nothing.
    app.update(Message::ImportAnswered {
        dry_run: false,
        result: Ok(ImportSummary::default()),
    });
    app.update(Message::ServerImportProgress(
        crate::api::ServerImportProgress::default(),
    ));
    assert!(
        !lines(&app).join("\n").contains("Server"),
        "no server gauge after the import"
    );
}

#[test]
fn import_rejected() {
    let mut app = import_app();
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Err(ApiError::Http {
            status: 422,
            code: "invalid_rows".into(),
            message: "invalid rows".into(),
            field_errors: Vec::new(),
            row_errors: vec![
                RowError {
                    row: 2,
                    field: "Nom".into(),
                    error: "is required".into(),
                },
                RowError {
                    row: 7,
                    field: "Email".into(),
                    error: "\"x@\" is not an e-mail address".into(),
                },
            ],
            id_client: None,
        }),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn import_done() {
    let mut app = import_app();
    let summary = ImportSummary {
        created: 1200,
        updated: 30,
        unchanged: 4,
        erased: 0,
        errors: Vec::new(),
        ..ImportSummary::default()
    };
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(summary.clone()),
    });
    app.update(key(KeyCode::Char('y')));
    app.update(Message::ImportAnswered {
        dry_run: false,
        result: Ok(summary),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn credit_screen_with_outcomes() {
    let mut app = customers_app();
    app.screen = Screen::Credit;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, &Uuid::from_u128(5).to_string());
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "360,00");
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "2019-13-06");
    app.update(Message::CreditDecided {
        id_client: Uuid::from_u128(5),
        montant: Cents(36000),
        date: NaiveDate::from_ymd_opt(2019, 12, 6).expect("date"),
        result: Ok(CreditDecision {
            id_client: Uuid::from_u128(5).to_string(),
            allowed: true,
        }),
        customer: Some(sample_customer(5)),
    });
    let mut carded = sample_customer(7);
    carded.carte_fid = Some(33);
    carded.credit = Cents(1300);
    app.update(Message::BalanceLoaded {
        key: crate::api::CustomerKey::Card(33),
        result: Ok(CreditBalance {
            carte_fid: "33".into(),
            credit: Cents(1300),
        }),
        customer: Some(carded),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn help_popup() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('?')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn quit_confirmation() {
    let mut app = customers_app();
    app.screen = Screen::NewCustomer;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "Doe");
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Char('q')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn a_customer_with_a_card_shows_it_in_the_detail() {
    let mut app = customers_app();
    let mut customer = sample_customer(1);
    customer.carte_fid = Some(1234);
    app.update(key(KeyCode::Enter));
    app.update(Message::CustomerLoaded(Ok(customer)));
    let screen = draw(&app);
    assert!(screen.contains("1234"), "{screen}");
}

// 1. The edit popup opens browsing, like the new customer form.

#[test]
fn the_edit_popup_opens_browsing_so_j_selects_a_field_and_enter_types_in_it() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('e')));
    let edit = app.customers.edit.as_ref().expect("edit popup");
    assert!(!edit.form.editing && !app.is_typing());
    let screen = draw(&app);
    assert!(
        screen.contains("Enter/i type in the field · Ctrl-S save · Esc cancel"),
        "{screen}"
    );
    // The selected field is highlighted, not underlined as a field being typed in.
    let buffer = render(&app);
    let nom = lines(&app)
        .iter()
        .position(|l| l.contains("▸ Nom "))
        .expect("Nom selected");
    let marker = lines(&app)[nom].find("▸ Nom ").expect("label");
    // The value starts after the marker and the label's 20 columns.
    let column = lines(&app)[nom][..marker].chars().count() as u16 + 2 + 20;
    let cell = &buffer[(column, nom as u16)];
    assert_eq!((cell.symbol(), cell.bg), ("N", Color::DarkGray));
    assert!(!cell.modifier.contains(Modifier::UNDERLINED));

    // The keys of the bug report: e, j j j, Enter, a phone number, Ctrl-S.
    type_text(&mut app, "jjj");
    assert_eq!(
        app.customers.edit.as_ref().map(|e| e.form.focused().name),
        Some("Phone")
    );
    app.update(key(KeyCode::Enter));
    assert!(app.is_typing());
    app.update(ctrl('u'));
    type_text(&mut app, "0611223344");
    let screen = draw(&app);
    assert!(screen.contains("▸ Phone               0611223344"), "{screen}");
    assert!(screen.contains("  Nom                 Nom1 "), "{screen}");
    assert!(screen.contains("Esc stop typing"), "{screen}");
    assert_eq!(
        app.update(ctrl('s')),
        [Command::PatchCustomer {
            id_client: Uuid::from_u128(1),
            changes: CustomerChanges {
                phone: Some("0611223344".into()),
                ..CustomerChanges::default()
            },
        }]
    );
    let mut saved = sample_customer(1);
    saved.phone = "0611223344".into();
    app.update(Message::CustomerSaved(Ok(saved)));
    assert!(app.customers.edit.is_none());
    let row = selected_line(&app);
    assert!(row.starts_with("▸Nom1 ") && row.contains("0611223344"), "{row}");
}

#[test]
fn in_the_edit_popup_tab_moves_between_fields_and_esc_stops_typing_before_it_closes() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('e')));
    app.update(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Customers, "Tab stays in the popup");
    assert_eq!(
        app.customers.edit.as_ref().map(|e| e.form.focused().name),
        Some("Prenom")
    );
    app.update(key(KeyCode::Char('?')));
    assert_eq!(app.popup, Some(Popup::Help));
    assert!(draw(&app).contains("type in the selected field"));
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Char('i')));
    type_text(&mut app, "x");
    app.update(key(KeyCode::Esc));
    assert!(app.customers.edit.as_ref().is_some_and(|e| !e.form.editing));
    app.update(key(KeyCode::Esc));
    assert_eq!(app.popup, Some(Popup::ConfirmDiscardEdit));
    assert!(draw(&app).contains("Discard changes?"));
}

// 2. An idle client notices within 5 s that the server is gone.

#[test]
fn the_server_is_checked_every_few_seconds_whatever_the_user_does_and_its_loss_shows() {
    assert!(
        HEALTH_INTERVAL + crate::api::HEALTH_TIMEOUT <= Duration::from_secs(5),
        "a server gone quiet must show within 5 s"
    );
    let mut app = sized(App::new("http://127.0.0.1:8000"));
    let start = app.start();
    assert!(
        start.contains(&Command::CheckHealth { after: HEALTH_INTERVAL }),
        "{start:?}"
    );
    let (generation, _) = load_query(&start[..1]);
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Ok(page_of(1..101, Some("cursor-2"), 1_000_000)),
    });
    assert!(draw(&app).contains("● Connected"));
    // The client answers, idle: the checks go on, one at a time.
    for _ in 0..3 {
        assert_eq!(
            app.update(Message::HealthChecked(Ok(()))),
            [Command::CheckHealth { after: HEALTH_INTERVAL }]
        );
    }
    // Typing in the search does not stop them nor stack more.
    app.update(key(KeyCode::Char('/')));
    let typed = type_text(&mut app, "blo");
    assert!(
        typed.iter().all(|c| matches!(c, Command::ScheduleSearch { .. })),
        "{typed:?}"
    );
    // The server has gone: the next check fails and the bar says so, still typing.
    let commands = app.update(Message::HealthChecked(Err(ApiError::Unreachable(
        "Connection refused (os error 111)".into(),
    ))));
    assert_eq!(commands, [Command::CheckHealth { after: HEALTH_RETRY }]);
    assert!(app.is_typing());
    let screen = draw(&app);
    assert!(screen.contains("✗ Unreachable, retrying every 3 s"), "{screen}");
    assert!(screen.contains("The server does not answer"), "{screen}");
    // Back: connected again, and the checks go back to their pace.
    assert_eq!(
        app.update(Message::HealthChecked(Ok(()))),
        [Command::CheckHealth { after: HEALTH_INTERVAL }]
    );
    assert_eq!(app.connection, Connection::Connected);
    let screen = draw(&app);
    assert!(
        screen.contains("● Connected") && screen.contains("The server answers again"),
        "{screen}"
    );
}

// 3. `G` shows the real last rows, `g` the first, and the row counter follows.

fn customers_from_end(range: std::ops::RangeInclusive<u64>, next_cursor: Option<&str>) -> Page<Customer> {
    Page {
        items: range.rev().map(sample_customer).collect(),
        next_cursor: next_cursor.map(str::to_string),
        total: 1_000_000,
    }
}

#[test]
fn shift_g_loads_and_shows_the_last_rows_and_g_the_first_with_the_right_row_numbers() {
    let mut app = customers_app();
    let (generation, query) = load_query(&app.update(key(KeyCode::Char('G'))));
    assert_eq!((query.sort.to_string(), query.cursor), ("-id".to_string(), None));
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Ok(customers_from_end(999_901..=1_000_000, Some("back-2"))),
    });
    let screen = lines(&app);
    assert!(screen[1].ends_with("row 1000000 of 1000000 "), "{screen:#?}");
    // The last customer is the table's last row, selected, the one before above it.
    let last_row = screen.iter().rposition(|l| l.starts_with("│▸")).expect("selection");
    assert!(screen[last_row].starts_with("│▸Nom1000000 "), "{screen:#?}");
    assert!(screen[last_row - 1].starts_with("│ Nom999999 "), "{screen:#?}");
    assert!(screen[last_row + 1].starts_with('└'), "{screen:#?}");

    // Up towards the loaded rows' top: the page before is asked for, once.
    let mut requests = Vec::new();
    for _ in 0..70 {
        requests.extend(app.update(key(KeyCode::Char('k'))));
    }
    let (generation, query) = load_query(&requests);
    assert_eq!(
        (query.sort.to_string(), query.cursor.as_deref()),
        ("-id".into(), Some("back-2"))
    );
    app.update(Message::CustomersLoaded {
        generation,
        append: true,
        result: Ok(customers_from_end(999_801..=999_900, Some("back-3"))),
    });
    assert_eq!(app.customers.list.items.len(), 200);
    assert!(
        selected_line(&app).starts_with("▸Nom999930 "),
        "the selection stays on its row"
    );
    assert!(lines(&app)[1].ends_with("row 999930 of 1000000 "));

    // g: the first rows, loaded again.
    let (generation, query) = load_query(&app.update(key(KeyCode::Char('g'))));
    assert_eq!((query.sort.to_string(), query.cursor), ("id".to_string(), None));
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Ok(page_of(1..101, Some("cursor-2"), 1_000_000)),
    });
    assert!(lines(&app)[1].ends_with("row 1 of 1000000 "));
    assert!(selected_line(&app).starts_with("▸Nom1 "));

    // Any sort is read backwards for G: by name, G asks for -Nom, and for Nom from -Nom.
    let (generation, _) = load_query(&app.update(key(KeyCode::Char('s'))));
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Ok(page_of(1..101, Some("cursor-2"), 1_000_000)),
    });
    let (_, query) = load_query(&app.update(key(KeyCode::End)));
    assert_eq!(query.sort.to_string(), "-Nom");
    app.update(key(KeyCode::Char('s')));
    let (_, query) = load_query(&app.update(key(KeyCode::Char('G'))));
    assert_eq!(query.sort.to_string(), "Nom");
}

// 4. Credit actions from the selected customer; every answer names them and their balance.

#[test]
fn a_opens_the_credit_screen_filled_in_for_the_customer_and_the_answers_name_them() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('j')));
    assert!(app.update(key(KeyCode::Char('a'))).is_empty());
    assert_eq!(app.screen, Screen::Credit);
    let id = Uuid::from_u128(2);
    let form = &app.credit.form;
    for field in ["allow_id", "balance_key", "reset_id"] {
        assert_eq!(form.value(field), id.to_string(), "{field}");
    }
    assert_eq!(
        (form.focused().name, form.editing, form.is_dirty()),
        ("allow_amount", false, false)
    );
    let screen = draw(&app);
    assert!(
        screen.contains(&format!(
            "IdClient            {id}  Prenom2 Nom2 (credit {})",
            euros(200)
        )),
        "{screen}"
    );
    assert!(screen.contains("Credit for Prenom2 Nom2"), "{screen}");

    app.update(key(KeyCode::Enter));
    type_text(&mut app, "360");
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "2030-01-15");
    let date = NaiveDate::from_ymd_opt(2030, 1, 15).expect("date");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::AllowCredit {
            id_client: id,
            montant: Cents(36000),
            date
        }]
    );
    let mut after = sample_customer(2);
    after.montant = Cents(36000);
    after.date_paiement = Some(date);
    app.update(Message::CreditDecided {
        id_client: id,
        montant: Cents(36000),
        date,
        result: Ok(CreditDecision {
            id_client: id.to_string(),
            allowed: true,
        }),
        customer: Some(after),
    });
    let allowed = format!(
        "→ Prenom2 Nom2 (credit {}): allowed, {} due 2030-01-15 scheduled",
        euros(200),
        euros(36000)
    );
    assert!(draw(&app).contains(&allowed), "{}", draw(&app));
    assert_eq!(
        app.customers.list.items[1].montant,
        Cents(36000),
        "the row is refreshed"
    );

    // The balance field holds the customer too: Enter on it asks.
    app.credit.form.focus_on("balance_key");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::CreditBalance(CustomerKey::Id(id))]
    );
    app.update(Message::BalanceLoaded {
        key: CustomerKey::Id(id),
        result: Ok(CreditBalance {
            carte_fid: id.to_string(),
            credit: Cents(200),
        }),
        customer: Some(sample_customer(2)),
    });
    assert!(draw(&app).contains(&format!("→ Prenom2 Nom2: credit {}", euros(200))));
    // A refusal names the customer too.
    app.credit.form.focus_on("allow_date");
    app.update(key(KeyCode::Enter));
    let mut refused = sample_customer(2);
    refused.nb_refus = 1;
    app.update(Message::CreditDecided {
        id_client: id,
        montant: Cents(36000),
        date,
        result: Ok(CreditDecision {
            id_client: id.to_string(),
            allowed: false,
        }),
        customer: Some(refused),
    });
    let outcome = &app.credit.outcomes[&CreditAction::Allow];
    assert_eq!(
        outcome.text,
        format!(
            "Prenom2 Nom2 (credit {}): refused, too many refused payments (1)",
            euros(200)
        )
    );
}

#[test]
fn z_resets_the_customers_refusals_after_asking_and_c_names_the_customer_and_balance() {
    let mut app = customers_app();
    app.customers.list.items[1].nb_refus = 2;
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Char('z')));
    assert_eq!(app.popup, Some(Popup::ConfirmResetRefusals));
    let screen = draw(&app);
    assert!(screen.contains("Reset refusals?"), "{screen}");
    assert!(
        screen.contains(&format!("Prenom2 Nom2 (credit {}) has 2 refused", euros(200))),
        "{screen}"
    );
    assert!(screen.contains("Reset them to 0?"), "{screen}");
    assert!(app.update(key(KeyCode::Char('n'))).is_empty());
    assert_eq!(app.popup, None);

    // From the detail view, asked again and confirmed.
    app.update(key(KeyCode::Enter));
    app.update(Message::CustomerLoaded(Ok(app.customers.list.items[1].clone())));
    app.update(key(KeyCode::Char('z')));
    let id = Uuid::from_u128(2);
    assert_eq!(app.update(key(KeyCode::Char('y'))), [Command::ResetRefusals(id)]);
    app.update(Message::RefusalsReset {
        id_client: id,
        result: Ok(sample_customer(2)),
    });
    let done = format!(
        "Reset refusals: Prenom2 Nom2 (credit {}): refusals set to 0",
        euros(200)
    );
    let screen = draw(&app);
    assert!(screen.contains(&done), "{screen}");
    assert!(
        screen.contains("Refusals       0 "),
        "the detail shows the fresh count: {screen}"
    );
    assert_eq!(app.customers.list.items[1].nb_refus, 0);

    // The card, from the detail view too.
    assert_eq!(app.update(key(KeyCode::Char('c'))), [Command::IssueCard(id)]);
    let mut carded = sample_customer(2);
    carded.carte_fid = Some(1234);
    app.update(Message::CardIssued(Ok(carded)));
    let screen = draw(&app);
    assert!(
        screen.contains(&format!("Prenom2 Nom2 (credit {}) has card 1234", euros(200))),
        "{screen}"
    );
    // `a` from the detail view opens the credit screen for them.
    app.update(key(KeyCode::Char('a')));
    assert_eq!(
        (app.screen, app.credit.form.value("allow_id")),
        (Screen::Credit, id.to_string().as_str())
    );
}

// 5 and 6. Every screen at 80x24; columns give way by priority; amounts keep every digit.

/// The customers table at 80x24 with long names and the largest amounts.
fn narrow_customers_app() -> App {
    let mut app = narrow(loaded_app());
    let list = &mut app.customers.list;
    list.items[0].nom = "Martin-Delacroix".into();
    list.items[0].prenom = "Paul".into();
    list.items[1].carte_fid = Some(1234);
    list.items[1].date_paiement = NaiveDate::from_ymd_opt(2019, 1, 11);
    list.items[2].credit = Cents(12_345_678_901);
    list.items[3].credit = Cents(MAX_CENTS);
    list.items[3].panier_moyen = Cents(MAX_CENTS);
    app
}

#[test]
fn customers_table_80x24() {
    let app = narrow_customers_app();
    let screen = draw(&app);
    // Names whole, amounts whole up to 2^53-1 cents, the less important columns gone.
    for whole in [
        "Martin-Delacroix",
        "Paul",
        "Prenom2",
        &euros(12_345_678_901),
        &euros(MAX_CENTS),
        "1234",
    ] {
        assert!(screen.contains(whole), "{whole:?} is cut:\n{screen}");
    }
    assert_eq!(
        euros(MAX_CENTS),
        "90\u{202f}071\u{202f}992\u{202f}547\u{202f}409,91\u{a0}€"
    );
    assert!(
        !screen.contains("Avg basket") && !screen.contains("Next payment"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn customers_table_with_the_largest_amounts_keeps_every_digit_at_110x30() {
    let mut app = customers_app();
    app.customers.list.items[2].credit = Cents(12_345_678_901);
    app.customers.list.items[3].credit = Cents(MAX_CENTS);
    app.customers.list.items[3].panier_moyen = Cents(12_345_678_901);
    let screen = draw(&app);
    assert!(screen.contains(&euros(12_345_678_901)), "{screen}");
    assert!(screen.contains(&euros(MAX_CENTS)), "{screen}");
    // Something must give at 110 columns: the least important column, whole.
    assert!(
        screen.contains("Next payment") && !screen.contains("Avg basket"),
        "{screen}"
    );
}

#[test]
fn customers_search_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "martin");
    insta::assert_snapshot!(draw(&app));
}

fn narrow_detail_app() -> App {
    let mut app = narrow_customers_app();
    for _ in 0..3 {
        app.update(key(KeyCode::Char('j')));
    }
    app.update(key(KeyCode::Enter));
    let id_client = Uuid::from_u128(4);
    app.update(Message::TicketsLoaded {
        id_client,
        append: false,
        result: Ok(Page {
            items: vec![
                Ticket {
                    id: "41".into(),
                    uid: "magasin41".into(),
                    date: "2019-10-01T17:01:29.408701Z".into(),
                    prix: Cents(424),
                    mode_paiement: "CARD".into(),
                    origin: "magasin".into(),
                    ..Ticket::default()
                },
                Ticket {
                    id: "42".into(),
                    uid: "web-2019-000042".into(),
                    date: "2019-10-02T09:30:00Z".into(),
                    prix: Cents(MAX_CENTS),
                    mode_paiement: "CREDIT".into(),
                    origin: "web".into(),
                    ..Ticket::default()
                },
            ],
            next_cursor: None,
            total: 2,
        }),
    });
    app.update(Message::LedgerLoaded {
        id_client,
        append: false,
        result: Ok(Page {
            items: vec![
                LedgerEntry {
                    seq: 1,
                    at: "2019-01-01T09:00:00Z".into(),
                    amount: MAX_CENTS as i64 - 100,
                    cause: "opening".into(),
                    balance: Some(MAX_CENTS as i64 - 100),
                    key: None,
                },
                LedgerEntry {
                    seq: 2,
                    at: "2019-10-02T09:30:00Z".into(),
                    amount: 100,
                    cause: "ticket".into(),
                    balance: Some(MAX_CENTS as i64),
                    key: Some("web-2019-000042".into()),
                },
            ],
            next_cursor: None,
            total: 2,
        }),
    });
    app.update(Message::PaymentsLoaded {
        id_client,
        append: false,
        result: Ok(Page {
            items: vec![ScheduledPayment {
                id: "12".into(),
                id_client: id_client.to_string(),
                montant: Cents(12_345_678_901),
                date: NaiveDate::from_ymd_opt(2030, 1, 15),
                status: "pending".into(),
                attempts: 1,
            }],
            next_cursor: None,
            total: 1,
        }),
    });
    app
}

#[test]
fn customer_detail_80x24() {
    let mut app = narrow_detail_app();
    let tickets = draw(&app);
    app.update(key(KeyCode::Char('l')));
    let ledger = draw(&app);
    app.update(key(KeyCode::Char('l')));
    let payments = draw(&app);
    for (screen, whole) in [
        (&tickets, euros(MAX_CENTS)),
        (&tickets, "web-2019-000042".to_string()),
        (&tickets, format!("{:<15}{}", "Credit", euros(MAX_CENTS))),
        (&tickets, "00000000-0000-0000-0000-000000000004".to_string()),
        (&ledger, format!("+{}", euros(MAX_CENTS - 100))),
        (&ledger, format!("+{}", euros(MAX_CENTS))),
        (&payments, euros(12_345_678_901)),
    ] {
        assert!(screen.contains(&whole), "{whole:?} is cut:\n{screen}");
    }
    insta::assert_snapshot!("customer_detail_tickets_80x24", tickets);
    insta::assert_snapshot!("customer_detail_ledger_80x24", ledger);
    insta::assert_snapshot!("customer_detail_payments_80x24", payments);
}

#[test]
fn edit_popup_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Char('e')));
    type_text(&mut app, "jj");
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn new_customer_form_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "Doe");
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    type_text(&mut app, "jon@mail");
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn import_reviewed_80x24() {
    let mut app = narrow_customers_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "/data/clients.csv");
    app.update(key(KeyCode::Enter));
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(ImportSummary {
            created: 1200,
            updated: 30,
            unchanged: 4,
            erased: 0,
            errors: Vec::new(),
            ..ImportSummary::default()
        }),
    });
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn credit_screen_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Char('a')));
    let id = Uuid::from_u128(1);
    let mut customer = app.customers.list.items[0].clone();
    customer.credit = Cents(MAX_CENTS);
    app.update(Message::CreditDecided {
        id_client: id,
        montant: Cents(36000),
        date: NaiveDate::from_ymd_opt(2030, 1, 15).expect("date"),
        result: Ok(CreditDecision {
            id_client: id.to_string(),
            allowed: true,
        }),
        customer: Some(customer.clone()),
    });
    app.update(Message::PaymentResultRecorded {
        payment_id: "12".into(),
        outcome: crate::api::PaymentOutcome::Error,
        result: Ok(ScheduledPayment {
            id: "12".into(),
            id_client: id.to_string(),
            montant: Cents(36000),
            date: NaiveDate::from_ymd_opt(2030, 1, 16),
            status: "pending".into(),
            attempts: 1,
        }),
        customer: Some(customer),
    });
    app.update(Message::RefusalsReset {
        id_client: id,
        result: Err(ApiError::Unreachable("Connection refused".into())),
    });
    let screen = draw(&app);
    // The long answer wraps rather than losing its end.
    assert!(screen.contains("allowed, 360,00"), "{screen}");
    assert!(screen.contains("scheduled"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_popup_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Char('?')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn reset_refusals_question_80x24() {
    let mut app = narrow_customers_app();
    app.update(key(KeyCode::Char('z')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn quit_confirmation_80x24() {
    let mut app = narrow_customers_app();
    app.screen = Screen::Credit;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "x");
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Char('q')));
    insta::assert_snapshot!(draw(&app));
}

#[test]
fn server_unreachable_80x24() {
    let mut app = narrow(App::new("http://127.0.0.1:8000"));
    let (generation, _) = load_query(&app.start()[..1]);
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Err(ApiError::Unreachable("Connection refused (os error 111)".into())),
    });
    insta::assert_snapshot!(draw(&app));
}

//! Every screen drawn on ratatui's `TestBackend` with fixed data, compared with the
//! snapshots in `src/snapshots/`.

use chrono::NaiveDate;
use crm_model::{Cents, Page};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use uuid::Uuid;

use crate::api::{
    ApiError, CreditBalance, CreditDecision, ImportSummary, LedgerEntry, RowError, ScheduledPayment, Ticket,
    UploadProgress,
};
use crate::app::tests::{ctrl, key, loaded_app, sample_customer, type_text};
use crate::app::{App, Message, Screen};
use crossterm::event::KeyCode;

const WIDTH: u16 = 110;
const HEIGHT: u16 = 30;

fn draw(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("test terminal");
    terminal.draw(|frame| crate::ui::render(app, frame)).expect("draw");
    terminal.backend().to_string()
}

fn sized(mut app: App) -> App {
    app.update(Message::Resize {
        width: WIDTH,
        height: HEIGHT,
    });
    app
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
fn edit_form_with_a_server_error() {
    let mut app = customers_app();
    app.update(key(KeyCode::Char('e')));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
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
    app.update(Message::CreditDecided(Ok(CreditDecision {
        id_client: Uuid::from_u128(5).to_string(),
        allowed: true,
    })));
    app.update(Message::BalanceLoaded(Ok(CreditBalance {
        carte_fid: "33".into(),
        credit: Cents(1300),
    })));
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

//! State transitions through `App::update`, without terminal or server.

use super::*;
use crate::api::RowError;
use chrono::NaiveDate;
use crm_model::{Cents, FieldError, Sexe, Sort, SortDirection, SortKey};

pub(crate) fn sample_customer(n: u64) -> Customer {
    Customer {
        id: n,
        id_client: Uuid::from_u128(n as u128),
        nom: format!("Nom{n}"),
        prenom: format!("Prenom{n}"),
        credit: Cents(n * 100),
        date_paiement: None,
        montant: Cents::ZERO,
        nb_refus: 0,
        compte: String::new(),
        age: Some(40),
        sexe: Sexe::F,
        email: format!("client{n}@mimi.com"),
        phone: "0102030405".into(),
        panier_moyen: Cents(900),
        carte_fid: None,
    }
}

pub(crate) fn page_of(range: std::ops::Range<u64>, next_cursor: Option<&str>, total: u64) -> Page<Customer> {
    Page {
        items: range.map(sample_customer).collect(),
        next_cursor: next_cursor.map(str::to_string),
        total,
    }
}

pub(crate) fn key(code: KeyCode) -> Message {
    Message::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub(crate) fn ctrl(c: char) -> Message {
    Message::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub(crate) fn type_text(app: &mut App, text: &str) -> Vec<Command> {
    text.chars().flat_map(|c| app.update(key(KeyCode::Char(c)))).collect()
}

fn http_error(status: u16, message: &str) -> ApiError {
    http_error_with(status, message, Vec::new(), Vec::new(), None)
}

fn http_error_with(
    status: u16,
    message: &str,
    field_errors: Vec<FieldError>,
    row_errors: Vec<RowError>,
    id_client: Option<Uuid>,
) -> ApiError {
    ApiError::Http {
        status,
        code: "some_code".into(),
        message: message.into(),
        field_errors,
        row_errors,
        id_client,
    }
}

/// An app whose first page of customers (rows 1..=100 of 1,000,000) has arrived.
pub(crate) fn loaded_app() -> App {
    let mut app = App::new("http://127.0.0.1:8000");
    app.update(Message::Resize { width: 100, height: 30 });
    let start = app.start();
    let Some(Command::LoadCustomers { generation, .. }) = start.first() else {
        panic!("{start:?}")
    };
    app.update(Message::CustomersLoaded {
        generation: *generation,
        append: false,
        result: Ok(page_of(1..101, Some("cursor-2"), 1_000_000)),
    });
    app
}

pub(crate) fn load_query(commands: &[Command]) -> (u64, ListQuery) {
    match commands {
        [Command::LoadCustomers { generation, query }] => (*generation, query.clone()),
        other => panic!("expected one LoadCustomers, got {other:?}"),
    }
}

#[test]
fn start_asks_for_the_first_page_sorted_by_id_and_schedules_the_first_health_check() {
    let mut app = App::new("http://x");
    let start = app.start();
    assert_eq!(start[1..], [Command::CheckHealth { after: HEALTH_INTERVAL }]);
    let (_, query) = load_query(&start[..1]);
    assert_eq!(
        query,
        ListQuery {
            limit: CUSTOMER_PAGE_SIZE,
            cursor: None,
            q: None,
            sort: Sort::default()
        }
    );
    assert!(app.customers.list.loading);
}

#[test]
fn search_is_debounced_and_only_the_last_keystroke_searches() {
    let mut app = loaded_app();
    assert!(app.update(key(KeyCode::Char('/'))).is_empty());
    let scheduled = type_text(&mut app, "bl");
    let generations: Vec<u64> = scheduled
        .iter()
        .map(|c| match c {
            Command::ScheduleSearch { generation, after } => {
                assert_eq!(*after, SEARCH_DEBOUNCE);
                *generation
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(generations.len(), 2);
    assert!(
        app.update(Message::SearchDue {
            generation: generations[0]
        })
        .is_empty(),
        "superseded keystroke"
    );
    let (_, query) = load_query(&app.update(Message::SearchDue {
        generation: generations[1],
    }));
    assert_eq!((query.q.as_deref(), query.cursor), (Some("bl"), None));
    // The debounce fired: Enter keeps the search without sending it again.
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(!app.customers.searching);
}

#[test]
fn enter_sends_a_pending_search_at_once_and_esc_clears_it() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Char('/')));
    let scheduled = type_text(&mut app, "x");
    let (_, query) = load_query(&app.update(key(KeyCode::Enter)));
    assert_eq!(query.q.as_deref(), Some("x"));
    let Command::ScheduleSearch { generation, .. } = scheduled[0] else {
        panic!()
    };
    assert!(app.update(Message::SearchDue { generation }).is_empty(), "already sent");
    // Esc on the table clears the applied search.
    let (_, query) = load_query(&app.update(key(KeyCode::Esc)));
    assert_eq!(query.q, None);
    assert_eq!(app.customers.search.value(), "");
}

#[test]
fn stale_answers_are_ignored() {
    let mut app = loaded_app();
    let (first, _) = load_query(&app.update(key(KeyCode::Char('r'))));
    let (second, _) = load_query(&app.update(key(KeyCode::Char('r'))));
    app.update(Message::CustomersLoaded {
        generation: first,
        append: false,
        result: Ok(page_of(500..501, None, 1)),
    });
    assert_eq!(
        app.customers.list.items.len(),
        100,
        "the older request's answer is dropped"
    );
    assert!(app.customers.list.loading);
    app.update(Message::CustomersLoaded {
        generation: second,
        append: false,
        result: Ok(page_of(7..9, None, 2)),
    });
    assert_eq!(
        app.customers.list.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        [7, 8]
    );
    assert!(!app.customers.list.loading);
}

#[test]
fn the_next_page_is_fetched_once_as_the_selection_nears_the_end() {
    let mut app = loaded_app();
    let mut requests = Vec::new();
    for _ in 0..80 {
        for command in app.update(key(KeyCode::Char('j'))) {
            requests.push((app.customers.list.selected, command));
        }
    }
    let [(selected_then, Command::LoadCustomers { generation, query })] = requests.as_slice() else {
        panic!("expected one page request, got {requests:?}")
    };
    assert_eq!(*selected_then, 100 - paged::PREFETCH_ROWS);
    assert_eq!(query.cursor.as_deref(), Some("cursor-2"));
    app.update(Message::CustomersLoaded {
        generation: *generation,
        append: true,
        result: Ok(page_of(101..201, Some("cursor-3"), 1_000_000)),
    });
    assert_eq!(app.customers.list.items.len(), 200);
    assert_eq!(app.customers.list.selected, 80, "appending keeps the selection");
    // The table scrolled: the selection is on screen.
    let list = &app.customers.list;
    assert!(list.offset <= list.selected && list.selected < list.offset + app.customer_rows());
}

#[test]
fn paging_moves_within_loaded_rows_and_a_complete_list_jumps_to_its_ends_without_loading() {
    let mut app = loaded_app();
    let rows = app.customer_rows();
    app.update(key(KeyCode::PageDown));
    assert_eq!(app.customers.list.selected, rows);
    app.update(key(KeyCode::Char('r')));
    let (generation, _) = load_query(&app.update(key(KeyCode::Char('r'))));
    app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Ok(page_of(1..31, None, 30)),
    });
    assert!(app.update(key(KeyCode::Char('G'))).is_empty());
    assert_eq!(app.customers.list.selected, 29);
    assert_eq!(app.customers.list.row_number(), 30);
    assert!(app.update(key(KeyCode::Home)).is_empty());
    assert_eq!((app.customers.list.selected, app.customers.list.offset), (0, 0));
}

#[test]
fn s_cycles_through_the_sort_orders_and_reloads() {
    let mut app = loaded_app();
    let mut seen = Vec::new();
    for _ in 0..SORT_CYCLE.len() {
        let (_, query) = load_query(&app.update(key(KeyCode::Char('s'))));
        seen.push(query.sort.to_string());
    }
    assert_eq!(seen, ["Nom", "-Nom", "-Credit", "-PanierMoyen", "-id", "id"]);
    assert_eq!(
        app.customers.sort(),
        Sort {
            key: SortKey::Id,
            direction: SortDirection::Ascending
        }
    );
}

#[test]
fn q_quits_at_once_without_unsaved_input() {
    let mut app = loaded_app();
    assert_eq!(app.update(key(KeyCode::Char('q'))), [Command::Quit]);
}

#[test]
fn q_asks_first_when_a_form_holds_input_and_is_a_letter_in_text_fields() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::NewCustomer);
    app.update(key(KeyCode::Enter));
    assert!(type_text(&mut app, "q").is_empty(), "q is typed, not quitting");
    assert_eq!(app.create.form.value("Nom"), "q");
    app.update(key(KeyCode::Esc));
    assert!(app.update(key(KeyCode::Char('q'))).is_empty());
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    assert!(app.update(key(KeyCode::Char('n'))).is_empty());
    assert_eq!(app.popup, None);
    assert!(app.update(ctrl('c')).is_empty(), "Ctrl-C asks too");
    assert_eq!(app.update(key(KeyCode::Char('y'))), [Command::Quit]);
}

#[test]
fn tab_and_brackets_go_round_the_screens() {
    let mut app = loaded_app();
    let mut visited = Vec::new();
    for _ in 0..4 {
        app.update(key(KeyCode::Tab));
        visited.push(app.screen);
    }
    assert_eq!(
        visited,
        [Screen::NewCustomer, Screen::Import, Screen::Credit, Screen::Customers]
    );
    app.update(key(KeyCode::Char('[')));
    assert_eq!(app.screen, Screen::Credit);
    app.update(key(KeyCode::Char(']')));
    assert_eq!(app.screen, Screen::Customers);
}

#[test]
fn the_new_customer_form_validates_as_you_type_and_sends_its_fields() {
    let mut app = loaded_app();
    app.screen = Screen::NewCustomer;
    app.update(key(KeyCode::Enter));
    assert!(app.update(ctrl('s')).is_empty(), "Nom is required");
    assert_eq!(app.create.form.fields[0].error.as_deref(), Some("is required"));
    type_text(&mut app, "Doe");
    assert_eq!(app.create.form.fields[0].error, None);
    app.update(key(KeyCode::Down));
    type_text(&mut app, "Jon");
    app.update(key(KeyCode::Down));
    type_text(&mut app, "jon@mail");
    assert_eq!(
        app.create.form.focused().error.as_deref(),
        Some("is not an e-mail address")
    );
    type_text(&mut app, ".com");
    assert_eq!(app.create.form.focused().error, None);
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    type_text(&mut app, "151");
    assert!(app.create.form.focused().error.is_some());
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Down));
    type_text(&mut app, "h");
    let commands = app.update(ctrl('s'));
    assert_eq!(
        commands,
        [Command::CreateCustomer(NewCustomerRequest {
            nom: "Doe".into(),
            prenom: "Jon".into(),
            email: "jon@mail.com".into(),
            age: Some(1),
            sexe: Sexe::H,
            ..Default::default()
        })]
    );
    assert!(app.update(ctrl('s')).is_empty(), "no second request while saving");

    let existing = Uuid::from_u128(42);
    app.update(Message::CustomerCreated(Err(http_error_with(
        409,
        "e-mail already used",
        Vec::new(),
        Vec::new(),
        Some(existing),
    ))));
    let email = &app.create.form.fields[2];
    assert!(
        email
            .error
            .as_deref()
            .is_some_and(|e| e.contains(&existing.to_string())),
        "{email:?}"
    );
    assert_eq!(app.create.form.focused().name, "Email");
    assert!(app.status.as_ref().is_some_and(|s| s.kind == StatusKind::Error));

    let created = Uuid::from_u128(7);
    let (_, query) = load_query(&app.update(Message::CustomerCreated(Ok(created))));
    assert_eq!(query.cursor, None, "the table reloads with the new customer");
    assert!(!app.create.form.is_dirty());
    assert_eq!(app.create.created, Some(created));
}

#[test]
fn editing_sends_only_changed_fields_and_shows_server_errors_on_them() {
    let mut app = loaded_app();
    let commands = app.update(key(KeyCode::Enter));
    assert_eq!(
        commands.len(),
        5,
        "customer, tickets, ledger, payments, history: {commands:?}"
    );
    app.update(key(KeyCode::Char('e')));
    let edit = app.customers.edit.as_ref().expect("edit form");
    assert_eq!(edit.form.value("Email"), "client1@mimi.com");
    assert!(!edit.form.is_dirty());
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Enter));
    app.update(ctrl('u'));
    type_text(&mut app, "new@mimi.com");
    let id_client = Uuid::from_u128(1);
    assert_eq!(
        app.update(ctrl('s')),
        [Command::PatchCustomer {
            id_client,
            changes: CustomerChanges {
                email: Some("new@mimi.com".into()),
                ..Default::default()
            }
        }]
    );
    let field_errors = vec![FieldError::new("Email", "already used")];
    app.update(Message::CustomerSaved(Err(http_error_with(
        422,
        "invalid fields",
        field_errors,
        Vec::new(),
        None,
    ))));
    let edit = app.customers.edit.as_ref().expect("still editing");
    assert_eq!(edit.form.focused().error.as_deref(), Some("already used"));
    assert!(!edit.saving);

    let mut saved = sample_customer(1);
    saved.email = "new@mimi.com".into();
    app.update(Message::CustomerSaved(Ok(saved)));
    assert!(app.customers.edit.is_none());
    assert_eq!(
        app.customers.detail.as_ref().map(|d| d.customer.email.as_str()),
        Some("new@mimi.com")
    );
    assert_eq!(app.customers.list.items[0].email, "new@mimi.com");
}

#[test]
fn esc_on_a_changed_edit_asks_before_discarding() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Char('e')));
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "x");
    app.update(key(KeyCode::Esc));
    assert_eq!(app.popup, None, "the first Esc stops typing");
    app.update(key(KeyCode::Esc));
    assert_eq!(app.popup, Some(Popup::ConfirmDiscardEdit));
    app.update(key(KeyCode::Char('y')));
    assert!(app.customers.edit.is_none());
}

#[test]
fn c_issues_a_card_and_shows_the_new_number() {
    let mut app = loaded_app();
    assert_eq!(
        app.update(key(KeyCode::Char('c'))),
        [Command::IssueCard(Uuid::from_u128(1))]
    );
    let mut with_card = sample_customer(1);
    with_card.carte_fid = Some(1234);
    app.update(Message::CardIssued(Ok(with_card)));
    assert_eq!(app.customers.list.items[0].carte_fid, Some(1234));
    assert!(app.status.as_ref().is_some_and(|s| s.text.contains("1234")));
}

#[test]
fn detail_lists_show_a_404_as_not_available_and_drop_answers_for_closed_customers() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Enter));
    let id_client = Uuid::from_u128(1);
    app.update(Message::LedgerLoaded {
        id_client,
        append: false,
        result: Err(http_error(404, "not found")),
    });
    let detail = app.customers.detail.as_ref().expect("detail");
    assert!(detail
        .ledger
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("Not available")));
    assert_eq!(app.status, None, "a missing route is not an error for the status line");
    app.update(Message::TicketsLoaded {
        id_client: Uuid::from_u128(99),
        append: false,
        result: Ok(Page {
            items: vec![Ticket::default()],
            next_cursor: None,
            total: 1,
        }),
    });
    assert!(app
        .customers
        .detail
        .as_ref()
        .is_some_and(|d| d.tickets.items.is_empty()));
    app.update(key(KeyCode::Char('l')));
    assert_eq!(app.customers.detail.as_ref().map(|d| d.pane), Some(DetailPane::Ledger));
    app.update(key(KeyCode::Esc));
    assert!(app.customers.detail.is_none());
}

#[test]
fn import_runs_a_dry_run_then_uploads_after_confirmation() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Import);
    app.update(key(KeyCode::Char('m')));
    assert_eq!(app.import.mode, ImportMode::Replace);
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "/data/c");
    assert_eq!(app.update(key(KeyCode::Tab)), [Command::CompletePath("/data/c".into())]);
    app.update(Message::PathCompleted {
        typed: "/data/c".into(),
        candidates: vec!["/data/clients.csv".into()],
    });
    assert_eq!(app.import.path.value(), "/data/clients.csv");
    let path = PathBuf::from("/data/clients.csv");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::Import {
            path: path.clone(),
            mode: ImportMode::Replace,
            dry_run: true,
            skip_invalid: false,
        }]
    );
    assert!(!app.unsaved_work().is_empty(), "quitting asks during an import");
    app.update(Message::ImportProgress(UploadProgress { sent: 50, total: 100 }));
    assert!(matches!(
        app.import.stage,
        ImportStage::Checking {
            progress: Some(UploadProgress { sent: 50, .. }),
            ..
        }
    ));
    assert!(
        app.update(key(KeyCode::Char('y'))).is_empty(),
        "nothing to confirm before the dry run answers"
    );

    let summary = ImportSummary {
        created: 3,
        updated: 2,
        unchanged: 1,
        erased: 0,
        errors: Vec::new(),
        ..ImportSummary::default()
    };
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(summary.clone()),
    });
    assert!(matches!(&app.import.stage, ImportStage::Reviewed { summary: s, .. } if *s == summary));
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Command::Import {
            path,
            mode: ImportMode::Replace,
            dry_run: false,
            skip_invalid: false,
        }]
    );
    assert!(matches!(app.import.stage, ImportStage::Uploading { .. }));
    let (_, query) = load_query(&app.update(Message::ImportAnswered {
        dry_run: false,
        result: Ok(summary),
    }));
    assert_eq!(query.cursor, None, "the table reloads after an import");
    assert!(matches!(app.import.stage, ImportStage::Done { .. }));
}

#[test]
fn a_dry_run_with_bad_rows_cannot_be_confirmed() {
    let mut app = loaded_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "bad.csv");
    app.update(key(KeyCode::Enter));
    let rows = vec![RowError {
        row: 3,
        field: "Email".into(),
        error: "is not an e-mail address".into(),
    }];
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Err(http_error_with(422, "invalid rows", Vec::new(), rows.clone(), None)),
    });
    assert!(matches!(&app.import.stage, ImportStage::Rejected { rows: r, .. } if *r == rows));
    assert!(app.update(key(KeyCode::Char('y'))).is_empty());
    assert!(app
        .status
        .as_ref()
        .is_some_and(|s| s.kind == StatusKind::Error && s.text.contains("1 bad rows")));
}

#[test]
fn v_skips_invalid_rows_in_merge_only_and_a_dry_run_that_skips_some_can_be_confirmed() {
    let mut app = loaded_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Char('v')));
    assert!(app.import.skip_invalid);
    app.update(key(KeyCode::Char('m')));
    assert_eq!(
        (app.import.mode, app.import.skip_invalid),
        (ImportMode::Replace, false),
        "replace imports every row or none"
    );
    app.update(key(KeyCode::Char('v')));
    assert!(!app.import.skip_invalid);
    assert!(app
        .status
        .as_ref()
        .is_some_and(|s| s.kind == StatusKind::Error && s.text.contains("merge mode only")));
    app.update(key(KeyCode::Char('m')));
    app.update(key(KeyCode::Char('v')));
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "some-bad.csv");
    let path = PathBuf::from("some-bad.csv");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::Import {
            path: path.clone(),
            mode: ImportMode::Merge,
            dry_run: true,
            skip_invalid: true,
        }]
    );
    let summary = ImportSummary {
        created: 2,
        errors: vec![RowError {
            row: 3,
            field: "Compte".into(),
            error: "must be at most 10 characters".into(),
        }],
        skipped: 1,
        unmatchable: 1,
        ..ImportSummary::default()
    };
    app.update(Message::ImportAnswered {
        dry_run: true,
        result: Ok(summary.clone()),
    });
    assert!(
        matches!(&app.import.stage, ImportStage::Reviewed { summary: s, .. } if *s == summary),
        "skipped rows do not refuse the file: {:?}",
        app.import.stage
    );
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Command::Import {
            path,
            mode: ImportMode::Merge,
            dry_run: false,
            skip_invalid: true,
        }]
    );
    app.update(Message::ImportAnswered {
        dry_run: false,
        result: Ok(summary),
    });
    assert!(matches!(app.import.stage, ImportStage::Done { .. }));
    assert!(app
        .status
        .as_ref()
        .is_some_and(|s| s.text.contains("1 invalid rows skipped")));
}

#[test]
fn a_stale_path_completion_is_ignored_and_several_candidates_extend_the_common_prefix() {
    let mut app = loaded_app();
    app.screen = Screen::Import;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "cl");
    app.update(Message::PathCompleted {
        typed: "c".into(),
        candidates: vec!["clients.csv".into()],
    });
    assert_eq!(app.import.path.value(), "cl");
    let candidates = vec!["clients-1.csv".to_string(), "clients-2.csv".to_string()];
    app.update(Message::PathCompleted {
        typed: "cl".into(),
        candidates: candidates.clone(),
    });
    assert_eq!(
        (app.import.path.value(), &app.import.candidates),
        ("clients-", &candidates)
    );
}

#[test]
fn an_unreachable_server_goes_to_the_status_line_and_is_polled_until_back() {
    let mut app = App::new("http://127.0.0.1:8000");
    let (generation, _) = load_query(&app.start()[..1]);
    let commands = app.update(Message::CustomersLoaded {
        generation,
        append: false,
        result: Err(ApiError::Unreachable("Connection refused".into())),
    });
    assert!(
        commands.is_empty(),
        "the health check of start is still to come: {commands:?}"
    );
    assert_eq!(app.connection, Connection::Unreachable("Connection refused".into()));
    let status = app.status.clone().expect("status");
    assert_eq!(status.kind, StatusKind::Error);
    assert!(status.text.contains("Connection refused"), "{status:?}");
    // Another failure while the check is scheduled does not stack a second one.
    assert!(app
        .update(Message::CardIssued(Err(ApiError::Unreachable("down".into()))))
        .is_empty());
    let commands = app.update(Message::HealthChecked(Err(ApiError::Unreachable("down".into()))));
    assert_eq!(commands, [Command::CheckHealth { after: HEALTH_RETRY }]);
    let commands = app.update(Message::HealthChecked(Ok(())));
    assert_eq!(commands[0], Command::CheckHealth { after: HEALTH_INTERVAL });
    let (_, query) = load_query(&commands[1..]);
    assert_eq!(query.cursor, None, "the table loads once the server is back");
    assert_eq!(app.connection, Connection::Connected);
}

#[test]
fn credit_amounts_are_typed_in_euros_and_sent_in_cents() {
    let mut app = loaded_app();
    app.screen = Screen::Credit;
    app.update(key(KeyCode::Enter));
    type_text(&mut app, &Uuid::from_u128(5).to_string());
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "360,5");
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "2019-12-06");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::AllowCredit {
            id_client: Uuid::from_u128(5),
            montant: Cents(36050),
            date: NaiveDate::from_ymd_opt(2019, 12, 6).expect("date"),
        }]
    );
    app.update(Message::CreditDecided {
        id_client: Uuid::from_u128(5),
        montant: Cents(36050),
        date: NaiveDate::from_ymd_opt(2019, 12, 6).expect("date"),
        result: Ok(CreditDecision {
            id_client: Uuid::from_u128(5).to_string(),
            allowed: false,
        }),
        customer: None,
    });
    let outcome = app.credit.outcomes.get(&CreditAction::Allow).expect("outcome");
    assert!(!outcome.success);
    assert!(app.status.as_ref().is_some_and(|s| s.kind == StatusKind::Error));
}

#[test]
fn a_credit_action_with_an_invalid_field_sends_nothing() {
    let mut app = loaded_app();
    app.screen = Screen::Credit;
    app.credit.form.focus_on("payment_status");
    app.update(key(KeyCode::Enter));
    type_text(&mut app, "maybe");
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert_eq!(
        app.credit.form.focused().name,
        "payment_id",
        "the first invalid field of the action"
    );
    type_text(&mut app, "12");
    app.credit.form.focus_on("payment_status");
    app.update(ctrl('u'));
    type_text(&mut app, "ok");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Command::PaymentResult {
            payment_id: "12".into(),
            outcome: PaymentOutcome::Ok
        }]
    );
}

#[test]
fn help_lists_the_keys_of_the_current_screen() {
    let mut app = loaded_app();
    app.update(key(KeyCode::Char('?')));
    assert_eq!(app.popup, Some(Popup::Help));
    assert!(app.help_entries().iter().any(|(k, _)| *k == "/"));
    app.update(key(KeyCode::Esc));
    assert_eq!(app.popup, None);
    app.screen = Screen::Import;
    assert!(app
        .help_entries()
        .iter()
        .any(|(k, _)| k.contains("Tab") && !k.contains("Shift")));
    assert!(!app.help_entries().iter().any(|(k, _)| *k == "/"));
}

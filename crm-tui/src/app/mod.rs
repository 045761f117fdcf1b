//! The client's state and every change to it.
//!
//! [`App`] is changed only by [`App::update`]: keys become [`Message::Key`], answers of
//! the server come back as messages too, and whatever must happen outside (a request, a
//! timer, quitting) is returned as [`Command`]s for the runtime to carry out. This keeps
//! the whole behaviour testable without a terminal or a server.

mod create;
mod credit;
mod customers;
pub mod form;
mod help;
mod import;
pub mod paged;
pub mod validate;

use std::path::PathBuf;
use std::time::Duration;

use crm_model::{Customer, ListQuery, Page};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use uuid::Uuid;

use crate::api::{
    ApiError, CreditBalance, CreditDecision, CustomerChanges, CustomerKey, ImportMode, ImportSummary, LedgerEntry,
    NewCustomerRequest, PaymentOutcome, ScheduledPayment, Ticket, UploadProgress,
};

pub use create::CreateState;
pub use credit::{display_name, name_and_balance, CreditAction, CreditState, Outcome, CUSTOMER_KEY_FIELDS};
pub use customers::{
    CustomerDetail, CustomersState, DetailPane, EditState, CUSTOMER_PAGE_SIZE, SEARCH_DEBOUNCE, SORT_CYCLE,
    SUB_LIST_PAGE_SIZE,
};
pub use import::{ImportRun, ImportStage, ImportState};

/// How often the server is asked whether it is back while it is unreachable.
pub const HEALTH_RETRY: Duration = Duration::from_secs(3);
/// How long after each answer of `GET /healthz` the next one is asked while the server
/// answers, whatever the user does: with the check's own timeout
/// ([`crate::api::HEALTH_TIMEOUT`]), a server gone quiet shows within 5 s.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The top-level screens, in the order Tab goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Customers,
    NewCustomer,
    Import,
    Credit,
}

impl Screen {
    pub const ALL: [Screen; 4] = [Screen::Customers, Screen::NewCustomer, Screen::Import, Screen::Credit];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Customers => "Customers",
            Screen::NewCustomer => "New customer",
            Screen::Import => "Import",
            Screen::Credit => "Credit",
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    fn shifted(self, step: isize) -> Screen {
        let count = Screen::ALL.len() as isize;
        Screen::ALL[(self.index() as isize + step).rem_euclid(count) as usize]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// No answer yet.
    Connecting,
    Connected,
    /// The last request got no answer; `/healthz` is polled until it answers.
    Unreachable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Error,
}

/// The status line: the outcome of the last action, errors included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: StatusKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popup {
    Help,
    ConfirmQuit,
    ConfirmDiscardEdit,
    /// `z`: reset the refusals of `CustomersState::reset_refusals_of`?
    ConfirmResetRefusals,
}

/// The lists of a customer's detail view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubList {
    Tickets,
    Ledger,
    Payments,
    History,
}

/// Everything that changes the state: keys, terminal size, answers, timers.
#[derive(Debug)]
pub enum Message {
    Key(KeyEvent),
    Resize {
        width: u16,
        height: u16,
    },
    /// The search debounce of this generation has elapsed.
    SearchDue {
        generation: u64,
    },
    CustomersLoaded {
        generation: u64,
        append: bool,
        result: Result<Page<Customer>, ApiError>,
    },
    CustomerLoaded(Result<Customer, ApiError>),
    TicketsLoaded {
        id_client: Uuid,
        append: bool,
        result: Result<Page<Ticket>, ApiError>,
    },
    LedgerLoaded {
        id_client: Uuid,
        append: bool,
        result: Result<Page<LedgerEntry>, ApiError>,
    },
    PaymentsLoaded {
        id_client: Uuid,
        append: bool,
        result: Result<Page<ScheduledPayment>, ApiError>,
    },
    HistoryLoaded {
        id_client: Uuid,
        append: bool,
        result: Result<Page<crate::api::AuditEntry>, ApiError>,
    },
    CustomerSaved(Result<Customer, ApiError>),
    CardIssued(Result<Customer, ApiError>),
    CustomerCreated(Result<Uuid, ApiError>),
    PathCompleted {
        typed: String,
        candidates: Vec<String>,
    },
    ImportProgress(UploadProgress),
    /// How far the server is with the import (rows read, checked, written).
    ServerImportProgress(crate::api::ServerImportProgress),
    ImportAnswered {
        dry_run: bool,
        result: Result<ImportSummary, ApiError>,
    },
    /// The answer to [`Command::AllowCredit`] and, when it succeeded, the customer as
    /// they are after it (for their name and balance).
    CreditDecided {
        id_client: Uuid,
        montant: crm_model::Cents,
        date: chrono::NaiveDate,
        result: Result<CreditDecision, ApiError>,
        customer: Option<Customer>,
    },
    /// The answer to [`Command::CreditBalance`] and the customer the key names, if found.
    BalanceLoaded {
        key: CustomerKey,
        result: Result<CreditBalance, ApiError>,
        customer: Option<Customer>,
    },
    /// The payment after its result, and its customer.
    PaymentResultRecorded {
        payment_id: String,
        outcome: PaymentOutcome,
        result: Result<ScheduledPayment, ApiError>,
        customer: Option<Customer>,
    },
    /// The customer after the reset.
    RefusalsReset {
        id_client: Uuid,
        result: Result<Customer, ApiError>,
    },
    HealthChecked(Result<(), ApiError>),
}

/// What the runtime does for the state: requests, timers, quitting. Each request's
/// answer comes back as a [`Message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Quit,
    /// Send [`Message::SearchDue`] after `after`.
    ScheduleSearch {
        generation: u64,
        after: Duration,
    },
    /// `GET /healthz` after `after`.
    CheckHealth {
        after: Duration,
    },
    LoadCustomers {
        generation: u64,
        query: ListQuery,
    },
    LoadCustomer(Uuid),
    LoadSubList {
        id_client: Uuid,
        list: SubList,
        cursor: Option<String>,
    },
    PatchCustomer {
        id_client: Uuid,
        changes: CustomerChanges,
    },
    IssueCard(Uuid),
    CreateCustomer(NewCustomerRequest),
    CompletePath(String),
    Import {
        path: PathBuf,
        mode: ImportMode,
        dry_run: bool,
        /// Leave the invalid rows out instead of refusing the file (merge only).
        skip_invalid: bool,
    },
    AllowCredit {
        id_client: Uuid,
        montant: crm_model::Cents,
        date: chrono::NaiveDate,
    },
    CreditBalance(CustomerKey),
    PaymentResult {
        payment_id: String,
        outcome: PaymentOutcome,
    },
    ResetRefusals(Uuid),
}

#[derive(Debug, Clone)]
pub struct App {
    pub server_url: String,
    pub screen: Screen,
    pub connection: Connection,
    /// A `/healthz` check is already scheduled: do not stack another.
    health_check_scheduled: bool,
    pub status: Option<Status>,
    pub popup: Option<Popup>,
    pub width: u16,
    pub height: u16,
    pub customers: CustomersState,
    pub create: CreateState,
    pub import: ImportState,
    pub credit: CreditState,
}

impl App {
    pub fn new(server_url: impl Into<String>) -> App {
        App {
            server_url: server_url.into(),
            screen: Screen::Customers,
            connection: Connection::Connecting,
            health_check_scheduled: false,
            status: None,
            popup: None,
            width: 80,
            height: 24,
            customers: CustomersState::default(),
            create: CreateState::default(),
            import: ImportState::default(),
            credit: CreditState::default(),
        }
    }

    /// The commands to run once at start: the first page of customers, and the first
    /// of the health checks that run as long as the client does.
    pub fn start(&mut self) -> Vec<Command> {
        let mut commands = self.reload_customers();
        commands.extend(self.schedule_health_check(HEALTH_INTERVAL));
        commands
    }

    /// The only way the state changes.
    pub fn update(&mut self, message: Message) -> Vec<Command> {
        match message {
            Message::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            Message::Key(_) => Vec::new(),
            Message::Resize { width, height } => {
                self.width = width;
                self.height = height;
                self.keep_lists_in_view();
                Vec::new()
            }
            Message::HealthChecked(result) => self.on_health(result),
            Message::SearchDue { generation } => self.on_search_due(generation),
            Message::CustomersLoaded {
                generation,
                append,
                result,
            } => self.on_customers_loaded(generation, append, result),
            Message::CustomerLoaded(result) => self.on_customer_loaded(result),
            Message::TicketsLoaded {
                id_client,
                append,
                result,
            } => self.on_sub_list(id_client, append, result, |d| &mut d.tickets, "tickets"),
            Message::LedgerLoaded {
                id_client,
                append,
                result,
            } => self.on_sub_list(id_client, append, result, |d| &mut d.ledger, "ledger"),
            Message::PaymentsLoaded {
                id_client,
                append,
                result,
            } => self.on_sub_list(id_client, append, result, |d| &mut d.payments, "payments"),
            Message::HistoryLoaded {
                id_client,
                append,
                result,
            } => self.on_sub_list(id_client, append, result, |d| &mut d.history, "history"),
            Message::CustomerSaved(result) => self.on_customer_saved(result),
            Message::CardIssued(result) => self.on_card_issued(result),
            Message::CustomerCreated(result) => self.on_customer_created(result),
            Message::PathCompleted { typed, candidates } => self.on_path_completed(typed, candidates),
            Message::ImportProgress(progress) => {
                self.import.on_progress(progress);
                Vec::new()
            }
            Message::ServerImportProgress(progress) => {
                self.import.on_server_progress(progress);
                Vec::new()
            }
            Message::ImportAnswered { dry_run, result } => self.on_import_answered(dry_run, result),
            Message::CreditDecided {
                id_client,
                montant,
                date,
                result,
                customer,
            } => self.on_credit_decided((id_client, montant, date), result, customer),
            Message::BalanceLoaded { key, result, customer } => self.on_balance_loaded(key, result, customer),
            Message::PaymentResultRecorded {
                payment_id,
                outcome,
                result,
                customer,
            } => self.on_payment_result(payment_id, outcome, result, customer),
            Message::RefusalsReset { id_client, result } => self.on_refusals_reset(id_client, result),
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        if control && key.code == KeyCode::Char('c') {
            return self.request_quit();
        }
        if let Some(popup) = self.popup {
            return self.on_popup_key(popup, key);
        }
        if key.code == KeyCode::F(1) {
            self.popup = Some(Popup::Help);
            return Vec::new();
        }
        if self.is_typing() {
            return self.on_screen_key(key);
        }
        // The edit popup keeps Tab for its fields; `[` `]` do not leave it either.
        let in_edit_popup = self.screen == Screen::Customers && self.customers.edit.is_some();
        match key.code {
            KeyCode::Tab | KeyCode::BackTab if in_edit_popup => self.on_screen_key(key),
            KeyCode::Char('[') | KeyCode::Char(']') if in_edit_popup => Vec::new(),
            KeyCode::Tab | KeyCode::Char(']') => self.switch_screen(1),
            KeyCode::BackTab | KeyCode::Char('[') => self.switch_screen(-1),
            KeyCode::Char('?') => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            KeyCode::Char('q') => self.request_quit(),
            _ => self.on_screen_key(key),
        }
    }

    fn on_screen_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match self.screen {
            Screen::Customers => self.on_customers_key(key),
            Screen::NewCustomer => self.on_create_key(key),
            Screen::Import => self.on_import_key(key),
            Screen::Credit => self.on_credit_key(key),
        }
    }

    fn on_popup_key(&mut self, popup: Popup, key: KeyEvent) -> Vec<Command> {
        let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'));
        let no = matches!(key.code, KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc);
        match popup {
            Popup::Help => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::F(1)
                ) {
                    self.popup = None;
                }
                Vec::new()
            }
            Popup::ConfirmQuit if yes => vec![Command::Quit],
            Popup::ConfirmDiscardEdit if yes => {
                self.popup = None;
                self.customers.edit = None;
                self.set_info("Changes discarded");
                Vec::new()
            }
            Popup::ConfirmResetRefusals if yes => {
                self.popup = None;
                match self.customers.reset_refusals_of.take() {
                    Some(customer) => self.reset_refusals_of(customer),
                    None => Vec::new(),
                }
            }
            Popup::ConfirmResetRefusals => {
                if no {
                    self.popup = None;
                    self.customers.reset_refusals_of = None;
                }
                Vec::new()
            }
            Popup::ConfirmQuit | Popup::ConfirmDiscardEdit => {
                if no {
                    self.popup = None;
                }
                Vec::new()
            }
        }
    }

    /// Whether keys go to a text field, where letters such as `q` are text.
    pub fn is_typing(&self) -> bool {
        match self.screen {
            Screen::Customers => {
                self.customers.searching || self.customers.edit.as_ref().is_some_and(|e| e.form.editing)
            }
            Screen::NewCustomer => self.create.form.editing,
            Screen::Import => self.import.editing,
            Screen::Credit => self.credit.form.editing,
        }
    }

    fn switch_screen(&mut self, step: isize) -> Vec<Command> {
        self.screen = self.screen.shifted(step);
        Vec::new()
    }

    /// Quits, after asking when some input would be lost.
    fn request_quit(&mut self) -> Vec<Command> {
        if self.unsaved_work().is_empty() {
            vec![Command::Quit]
        } else {
            self.popup = Some(Popup::ConfirmQuit);
            Vec::new()
        }
    }

    /// What quitting now would lose, for the confirmation.
    pub fn unsaved_work(&self) -> Vec<&'static str> {
        let mut unsaved = Vec::new();
        if self.customers.edit.as_ref().is_some_and(|e| e.form.is_dirty()) {
            unsaved.push("the customer being edited");
        }
        if self.create.form.is_dirty() {
            unsaved.push("the new customer form");
        }
        if self.credit.form.is_dirty() {
            unsaved.push("the credit form");
        }
        if self.import.is_running() {
            unsaved.push("the import in progress");
        }
        unsaved
    }

    pub fn set_info(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            kind: StatusKind::Info,
            text: text.into(),
        });
    }

    pub fn set_error(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            kind: StatusKind::Error,
            text: text.into(),
        });
    }

    /// Every failed request goes through here: the error reaches the status line and an
    /// unreachable server starts the health polling.
    fn note_failure(&mut self, action: &str, error: &ApiError) -> Vec<Command> {
        self.set_error(format!("{action}: {error}"));
        if let ApiError::Unreachable(reason) = error {
            self.connection = Connection::Unreachable(reason.clone());
            return self.schedule_health_check(Duration::ZERO);
        }
        self.connection = Connection::Connected;
        Vec::new()
    }

    fn note_answer(&mut self) {
        self.connection = Connection::Connected;
    }

    fn schedule_health_check(&mut self, after: Duration) -> Vec<Command> {
        if self.health_check_scheduled {
            return Vec::new();
        }
        self.health_check_scheduled = true;
        vec![Command::CheckHealth { after }]
    }

    /// The answer of `GET /healthz`. The checks never stop: every
    /// [`HEALTH_INTERVAL`] while the server answers, so that an idle client notices it
    /// is gone, and every [`HEALTH_RETRY`] while it does not.
    fn on_health(&mut self, result: Result<(), ApiError>) -> Vec<Command> {
        self.health_check_scheduled = false;
        let was_down = matches!(self.connection, Connection::Unreachable(_));
        match result {
            Ok(()) => {
                self.connection = Connection::Connected;
                let mut commands = self.schedule_health_check(HEALTH_INTERVAL);
                if was_down {
                    self.set_info("The server answers again");
                    let list = &self.customers.list;
                    if (!list.loaded || list.error.is_some()) && !list.loading {
                        commands.extend(self.reload_customers());
                    }
                }
                commands
            }
            Err(error) => {
                if !was_down {
                    self.set_error(format!("The server does not answer: {error}"));
                }
                self.connection = Connection::Unreachable(error.to_string());
                self.schedule_health_check(HEALTH_RETRY)
            }
        }
    }

    /// Rows of the customer table on screen at the current terminal height.
    pub fn customer_rows(&self) -> usize {
        (self.height as usize)
            .saturating_sub(crate::ui::CUSTOMERS_CHROME_ROWS)
            .max(1)
    }

    /// Rows of the detail view's list on screen at the current terminal height.
    pub fn detail_rows(&self) -> usize {
        (self.height as usize)
            .saturating_sub(crate::ui::DETAIL_CHROME_ROWS)
            .max(1)
    }

    fn keep_lists_in_view(&mut self) {
        let (customer_rows, detail_rows) = (self.customer_rows(), self.detail_rows());
        self.customers.list.keep_in_view(customer_rows);
        if let Some(detail) = &mut self.customers.detail {
            detail.tickets.keep_in_view(detail_rows);
            detail.ledger.keep_in_view(detail_rows);
            detail.payments.keep_in_view(detail_rows);
        }
    }

    /// The keys of what is on screen, for the help popup.
    pub fn help_entries(&self) -> Vec<(&'static str, &'static str)> {
        help::entries(self)
    }
}

/// What the e-mail field says on a `409`: whose address it is, when the server says.
fn taken_email_message(message: &str, owner: Option<Uuid>) -> String {
    match owner {
        Some(id_client) => format!("already used by customer {id_client}"),
        None => message.to_string(),
    }
}

/// Moves a list's selection for a navigation key; whether the key was one.
fn navigate<T>(list: &mut paged::PagedList<T>, key: KeyEvent, visible_rows: usize) -> bool {
    let page = visible_rows.max(1) as isize;
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => list.move_by(1, visible_rows),
        KeyCode::Up | KeyCode::Char('k') => list.move_by(-1, visible_rows),
        KeyCode::PageDown => list.move_by(page, visible_rows),
        KeyCode::PageUp => list.move_by(-page, visible_rows),
        KeyCode::Home | KeyCode::Char('g') => list.select_first(visible_rows),
        KeyCode::End | KeyCode::Char('G') => list.select_last(visible_rows),
        _ => return false,
    }
    true
}

#[cfg(test)]
pub(crate) mod tests;

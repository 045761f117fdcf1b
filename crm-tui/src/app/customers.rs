//! The customers screen: the paged table, live search, sort, the detail view of one
//! customer, editing and card issuing.

use std::time::Duration;

use crm_model::{Customer, ListQuery, Page, Sort, SortDirection, SortKey};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::to_input_request;
use tui_input::Input;
use uuid::Uuid;

use super::form::Form;
use super::paged::PagedList;
use super::validate::{customer_field, parse_age, parse_sexe};
use super::{navigate, App, Command, Popup, SubList};
use crate::api::{ApiError, AuditEntry, CustomerChanges, LedgerEntry, ScheduledPayment, Ticket};

/// Customers asked for per page: a few screens' worth, so scrolling rarely waits.
pub const CUSTOMER_PAGE_SIZE: usize = 100;
/// Rows asked for per page of a customer's tickets, ledger or payments.
pub const SUB_LIST_PAGE_SIZE: usize = 50;
/// Typing pauses this long before the search is sent, so a word is one request.
pub const SEARCH_DEBOUNCE: Duration = Duration::from_millis(250);

/// The orders `s` goes through.
pub const SORT_CYCLE: [Sort; 6] = [
    sort(SortKey::Id, SortDirection::Ascending),
    sort(SortKey::Nom, SortDirection::Ascending),
    sort(SortKey::Nom, SortDirection::Descending),
    sort(SortKey::Credit, SortDirection::Descending),
    sort(SortKey::PanierMoyen, SortDirection::Descending),
    sort(SortKey::Id, SortDirection::Descending),
];

const fn sort(key: SortKey, direction: SortDirection) -> Sort {
    Sort { key, direction }
}

/// The fields of the customer forms, named as the API names them.
pub(super) const CUSTOMER_FIELDS: [(&str, &str); 7] = [
    ("Nom", "Nom"),
    ("Prenom", "Prénom"),
    ("Email", "E-mail"),
    ("Phone", "Phone"),
    ("Age", "Age"),
    ("Sexe", "Sexe (h/f)"),
    ("Compte", "Account"),
];

#[derive(Debug, Clone, Default)]
pub struct CustomersState {
    pub list: PagedList<Customer>,
    pub sort_index: usize,
    pub search: Input,
    /// Keys go to the search field.
    pub searching: bool,
    /// Bumped by every keystroke in the search field; only the latest debounce fires.
    pub(super) search_generation: u64,
    /// A search is typed but not sent yet.
    pub(super) search_pending: bool,
    /// Bumped by every fresh load (search, sort, reload, jump to an end); older answers
    /// are dropped.
    pub(super) list_generation: u64,
    /// The loads of this generation read the list from its end (`G`), in the reversed sort.
    pub(super) list_from_end: bool,
    /// The search the shown rows answer.
    pub shown_query: Option<String>,
    pub detail: Option<CustomerDetail>,
    pub edit: Option<EditState>,
    /// The customer whose refusals `z` offers to reset, while the question is asked.
    pub reset_refusals_of: Option<Customer>,
}

impl CustomersState {
    pub fn sort(&self) -> Sort {
        SORT_CYCLE[self.sort_index % SORT_CYCLE.len()]
    }

    /// The order pages are asked in: the sort, reversed when reading from the end.
    fn request_sort(&self) -> Sort {
        let sort = self.sort();
        if !self.list_from_end {
            return sort;
        }
        let direction = match sort.direction {
            SortDirection::Ascending => SortDirection::Descending,
            SortDirection::Descending => SortDirection::Ascending,
        };
        Sort { direction, ..sort }
    }

    /// The customer the keys of the table or the detail view act on.
    pub fn current_customer(&self) -> Option<&Customer> {
        match &self.detail {
            Some(detail) => Some(&detail.customer),
            None => self.list.selected_item(),
        }
    }

    fn typed_query(&self) -> Option<String> {
        let q = self.search.value().trim();
        (!q.is_empty()).then(|| q.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetailPane {
    #[default]
    Tickets,
    Ledger,
    Payments,
    /// The customer's audit trail, newest first.
    History,
}

impl DetailPane {
    pub const ALL: [DetailPane; 4] = [
        DetailPane::Tickets,
        DetailPane::Ledger,
        DetailPane::Payments,
        DetailPane::History,
    ];

    pub fn title(self) -> &'static str {
        match self {
            DetailPane::Tickets => "Tickets",
            DetailPane::Ledger => "Ledger",
            DetailPane::Payments => "Scheduled payments",
            DetailPane::History => "History",
        }
    }
}

/// One customer opened: their details and four paged lists.
#[derive(Debug, Clone)]
pub struct CustomerDetail {
    pub customer: Customer,
    pub pane: DetailPane,
    pub tickets: PagedList<Ticket>,
    pub ledger: PagedList<LedgerEntry>,
    pub payments: PagedList<ScheduledPayment>,
    pub history: PagedList<AuditEntry>,
}

impl CustomerDetail {
    fn new(customer: Customer) -> CustomerDetail {
        CustomerDetail {
            customer,
            pane: DetailPane::Tickets,
            tickets: PagedList::awaiting_first_page(),
            ledger: PagedList::awaiting_first_page(),
            payments: PagedList::awaiting_first_page(),
            history: PagedList::awaiting_first_page(),
        }
    }
}

/// The edit form of one customer, over the customers screen.
#[derive(Debug, Clone)]
pub struct EditState {
    pub customer: Customer,
    pub form: Form,
    pub saving: bool,
}

impl EditState {
    fn new(customer: Customer) -> EditState {
        let age = customer.age.map(|a| a.to_string()).unwrap_or_default();
        let form = Form::new(&CUSTOMER_FIELDS, customer_field).with_initial_values(&[
            ("Nom", customer.nom.clone()),
            ("Prenom", customer.prenom.clone()),
            ("Email", customer.email.clone()),
            ("Phone", customer.phone.clone()),
            ("Age", age),
            ("Sexe", customer.sexe.as_str().to_string()),
            ("Compte", customer.compte.clone()),
        ]);
        // Like the new customer form, it opens browsing: letters move or start typing.
        EditState {
            customer,
            form,
            saving: false,
        }
    }

    /// The fields that differ from the customer, typed; `Err` names an invalid field.
    fn changes(&self) -> Result<CustomerChanges, (&'static str, String)> {
        let text = |name: &str| self.form.changed_value(name).map(str::to_string);
        let age = match self.form.changed_value("Age") {
            Some(typed) => Some(parse_age(typed).map_err(|e| ("Age", e))?),
            None => None,
        };
        let sexe = match self.form.changed_value("Sexe") {
            Some(typed) => Some(parse_sexe(typed).map_err(|e| ("Sexe", e))?),
            None => None,
        };
        Ok(CustomerChanges {
            nom: text("Nom"),
            prenom: text("Prenom"),
            email: text("Email"),
            phone: text("Phone"),
            compte: text("Compte"),
            age,
            sexe,
        })
    }
}

impl App {
    /// Loads the table afresh from its first row.
    pub(super) fn reload_customers(&mut self) -> Vec<Command> {
        self.load_first_customers_page(false)
    }

    /// Asks for the first page of the table, or for its last rows (`from_end`: the
    /// reversed sort's first page). The rows on screen stay until the answer comes.
    fn load_first_customers_page(&mut self, from_end: bool) -> Vec<Command> {
        let customers = &mut self.customers;
        customers.list_generation += 1;
        customers.list_from_end = from_end;
        customers.list.loading = true;
        customers.shown_query = customers.typed_query();
        vec![Command::LoadCustomers {
            generation: customers.list_generation,
            query: ListQuery {
                limit: CUSTOMER_PAGE_SIZE,
                cursor: None,
                q: customers.shown_query.clone(),
                sort: customers.request_sort(),
            },
        }]
    }

    /// `G`: the last row. When the list's end is not loaded, its last page is asked for
    /// (the reversed sort) and shown at the end of the table.
    fn select_last_customer(&mut self) -> Vec<Command> {
        let rows = self.customer_rows();
        let list = &mut self.customers.list;
        if list.from_end || list.is_complete() {
            list.select_last(rows);
            return self.load_next_customers_page();
        }
        self.load_first_customers_page(true)
    }

    /// `g`: the first row, loading the first page again when the table holds its end.
    fn select_first_customer(&mut self) -> Vec<Command> {
        let rows = self.customer_rows();
        let list = &mut self.customers.list;
        if !list.from_end || list.is_complete() {
            list.select_first(rows);
            return self.load_next_customers_page();
        }
        self.load_first_customers_page(false)
    }

    fn load_next_customers_page(&mut self) -> Vec<Command> {
        let customers = &mut self.customers;
        if !customers.list.wants_next_page() {
            return Vec::new();
        }
        customers.list.loading = true;
        vec![Command::LoadCustomers {
            generation: customers.list_generation,
            query: ListQuery {
                limit: CUSTOMER_PAGE_SIZE,
                cursor: customers.list.next_cursor.clone(),
                q: customers.shown_query.clone(),
                sort: customers.request_sort(),
            },
        }]
    }

    pub(super) fn on_customers_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if self.customers.edit.is_some() {
            return self.on_edit_key(key);
        }
        if self.customers.searching {
            return self.on_search_key(key);
        }
        if self.customers.detail.is_some() {
            return self.on_detail_key(key);
        }
        match key.code {
            KeyCode::End | KeyCode::Char('G') => return self.select_last_customer(),
            KeyCode::Home | KeyCode::Char('g') => return self.select_first_customer(),
            _ => {}
        }
        let rows = self.customer_rows();
        if navigate(&mut self.customers.list, key, rows) {
            return self.load_next_customers_page();
        }
        match key.code {
            KeyCode::Char('/') => {
                self.customers.searching = true;
                Vec::new()
            }
            KeyCode::Char('s') => {
                self.customers.sort_index = (self.customers.sort_index + 1) % SORT_CYCLE.len();
                self.set_info(format!("Sorted by {}", self.customers.sort()));
                self.reload_customers()
            }
            KeyCode::Char('r') => self.reload_customers(),
            KeyCode::Esc if self.customers.shown_query.is_some() => {
                self.customers.search.reset();
                self.reload_customers()
            }
            KeyCode::Enter => self.open_selected_customer(),
            KeyCode::Char('e') => self.edit_customer(self.customers.list.selected_item().cloned()),
            KeyCode::Char('c') => self.issue_card(self.customers.list.selected_item().map(|c| c.id_client)),
            KeyCode::Char('a') => self.credit_for_current_customer(),
            KeyCode::Char('z') => self.ask_to_reset_refusals(),
            _ => Vec::new(),
        }
    }

    fn on_search_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let customers = &mut self.customers;
        match key.code {
            KeyCode::Enter => {
                customers.searching = false;
                if customers.search_pending {
                    // Send now rather than when the pending debounce fires.
                    customers.search_pending = false;
                    customers.search_generation += 1;
                    return self.reload_customers();
                }
                Vec::new()
            }
            KeyCode::Esc => {
                customers.searching = false;
                customers.search_pending = false;
                customers.search_generation += 1;
                customers.search.reset();
                if customers.shown_query.is_some() {
                    return self.reload_customers();
                }
                Vec::new()
            }
            KeyCode::Down | KeyCode::Up => {
                let rows = self.customer_rows();
                navigate(&mut self.customers.list, key, rows);
                self.load_next_customers_page()
            }
            _ => {
                let Some(request) = to_input_request(&Event::Key(key)) else {
                    return Vec::new();
                };
                if !customers.search.handle(request).is_some_and(|changed| changed.value) {
                    return Vec::new();
                }
                customers.search_generation += 1;
                customers.search_pending = true;
                vec![Command::ScheduleSearch {
                    generation: customers.search_generation,
                    after: SEARCH_DEBOUNCE,
                }]
            }
        }
    }

    pub(super) fn on_search_due(&mut self, generation: u64) -> Vec<Command> {
        if generation != self.customers.search_generation || !self.customers.search_pending {
            return Vec::new();
        }
        self.customers.search_pending = false;
        self.reload_customers()
    }

    pub(super) fn on_customers_loaded(
        &mut self,
        generation: u64,
        append: bool,
        result: Result<Page<Customer>, ApiError>,
    ) -> Vec<Command> {
        if generation != self.customers.list_generation {
            return Vec::new();
        }
        match result {
            Ok(page) => {
                self.note_answer();
                if self.customers.list_from_end {
                    self.customers.list.apply_page_from_end(page, append);
                } else {
                    self.customers.list.apply_page(page, append);
                }
                let rows = self.customer_rows();
                self.customers.list.keep_in_view(rows);
                self.load_next_customers_page()
            }
            Err(error) => {
                self.customers.list.apply_error(error.to_string());
                self.note_failure("Loading customers", &error)
            }
        }
    }

    fn open_selected_customer(&mut self) -> Vec<Command> {
        match self.customers.list.selected_item().cloned() {
            Some(customer) => self.open_customer(customer),
            None => Vec::new(),
        }
    }

    /// Shows one customer and asks for a fresh copy and the first page of each list.
    fn open_customer(&mut self, customer: Customer) -> Vec<Command> {
        let id_client = customer.id_client;
        self.customers.detail = Some(CustomerDetail::new(customer));
        let mut commands = vec![Command::LoadCustomer(id_client)];
        for list in [SubList::Tickets, SubList::Ledger, SubList::Payments, SubList::History] {
            commands.push(Command::LoadSubList {
                id_client,
                list,
                cursor: None,
            });
        }
        commands
    }

    fn on_detail_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let rows = self.detail_rows();
        let Some(detail) = &mut self.customers.detail else {
            return Vec::new();
        };
        let id_client = detail.customer.id_client;
        let pane_index = DetailPane::ALL.iter().position(|p| *p == detail.pane).unwrap_or(0);
        match key.code {
            KeyCode::Esc | KeyCode::Backspace => {
                self.customers.detail = None;
                Vec::new()
            }
            KeyCode::Right | KeyCode::Char('l') => {
                detail.pane = DetailPane::ALL[(pane_index + 1) % DetailPane::ALL.len()];
                Vec::new()
            }
            KeyCode::Left | KeyCode::Char('h') => {
                detail.pane = DetailPane::ALL[(pane_index + DetailPane::ALL.len() - 1) % DetailPane::ALL.len()];
                Vec::new()
            }
            KeyCode::Char('e') => {
                let customer = detail.customer.clone();
                self.edit_customer(Some(customer))
            }
            KeyCode::Char('c') => self.issue_card(Some(id_client)),
            KeyCode::Char('a') => self.credit_for_current_customer(),
            KeyCode::Char('z') => self.ask_to_reset_refusals(),
            KeyCode::Char('r') => {
                let customer = detail.customer.clone();
                self.open_customer(customer)
            }
            _ => {
                let (moved, wants_more, cursor, list) = match detail.pane {
                    DetailPane::Tickets => sub_list_navigation(&mut detail.tickets, key, rows, SubList::Tickets),
                    DetailPane::Ledger => sub_list_navigation(&mut detail.ledger, key, rows, SubList::Ledger),
                    DetailPane::Payments => sub_list_navigation(&mut detail.payments, key, rows, SubList::Payments),
                    DetailPane::History => sub_list_navigation(&mut detail.history, key, rows, SubList::History),
                };
                if moved && wants_more {
                    vec![Command::LoadSubList {
                        id_client,
                        list,
                        cursor,
                    }]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// `z`: asks before resetting the current customer's refusals.
    fn ask_to_reset_refusals(&mut self) -> Vec<Command> {
        if let Some(customer) = self.customers.current_customer().cloned() {
            self.customers.reset_refusals_of = Some(customer);
            self.popup = Some(Popup::ConfirmResetRefusals);
        }
        Vec::new()
    }

    pub(super) fn on_customer_loaded(&mut self, result: Result<Customer, ApiError>) -> Vec<Command> {
        match result {
            Ok(customer) => {
                self.note_answer();
                self.replace_customer(customer);
                Vec::new()
            }
            Err(error) => self.note_failure("Loading the customer", &error),
        }
    }

    /// Shows a fresher copy of a customer wherever it is on screen.
    pub(super) fn replace_customer(&mut self, customer: Customer) {
        if let Some(detail) = &mut self.customers.detail {
            if detail.customer.id_client == customer.id_client {
                detail.customer = customer.clone();
            }
        }
        if let Some(row) = self
            .customers
            .list
            .items
            .iter_mut()
            .find(|c| c.id_client == customer.id_client)
        {
            *row = customer;
        }
    }

    pub(super) fn on_sub_list<T>(
        &mut self,
        id_client: Uuid,
        append: bool,
        result: Result<Page<T>, ApiError>,
        list_of: impl FnOnce(&mut CustomerDetail) -> &mut PagedList<T>,
        name: &str,
    ) -> Vec<Command> {
        let Some(detail) = self
            .customers
            .detail
            .as_mut()
            .filter(|d| d.customer.id_client == id_client)
        else {
            // The customer was closed meanwhile.
            return Vec::new();
        };
        let list = list_of(detail);
        match result {
            Ok(page) => {
                list.apply_page(page, append);
                self.note_answer();
                Vec::new()
            }
            // Until the server has these routes, a 404 is a gap to show, not a failure.
            Err(ApiError::Http {
                status: 404, message, ..
            }) => {
                list.apply_error(format!("Not available from this server ({message})"));
                self.note_answer();
                Vec::new()
            }
            // The audit trail needs an admin token: a read token shows why it is empty.
            Err(ApiError::Http {
                status: 403, message, ..
            }) => {
                list.apply_error(format!("Not allowed with this token ({message})"));
                self.note_answer();
                Vec::new()
            }
            Err(error) => {
                list.apply_error(error.to_string());
                self.note_failure(&format!("Loading the {name}"), &error)
            }
        }
    }

    fn edit_customer(&mut self, customer: Option<Customer>) -> Vec<Command> {
        if let Some(customer) = customer {
            self.customers.edit = Some(EditState::new(customer));
        }
        Vec::new()
    }

    fn on_edit_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(edit) = &mut self.customers.edit else {
            return Vec::new();
        };
        let save = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('s');
        let last_field = edit.form.focus + 1 == edit.form.fields.len();
        if save {
            return self.save_edit();
        }
        if edit.form.editing {
            match key.code {
                KeyCode::Esc => edit.form.editing = false,
                KeyCode::Enter if last_field => return self.save_edit(),
                KeyCode::Enter | KeyCode::Down | KeyCode::Tab => edit.form.focus_next(),
                KeyCode::Up | KeyCode::BackTab => edit.form.focus_previous(),
                _ if !edit.saving => edit.form.edit(key),
                _ => {}
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::Esc if edit.form.is_dirty() => self.popup = Some(Popup::ConfirmDiscardEdit),
            KeyCode::Esc => self.customers.edit = None,
            KeyCode::Tab => edit.form.focus_next(),
            KeyCode::BackTab => edit.form.focus_previous(),
            code => {
                edit.form.browse(code);
            }
        }
        Vec::new()
    }

    fn save_edit(&mut self) -> Vec<Command> {
        let Some(edit) = &mut self.customers.edit else {
            return Vec::new();
        };
        if edit.saving {
            return Vec::new();
        }
        if !edit.form.validate_all() {
            self.set_error("Fix the highlighted fields first");
            return Vec::new();
        }
        let changes = match edit.changes() {
            Ok(changes) => changes,
            Err((field, message)) => {
                edit.form.set_error(field, message);
                return Vec::new();
            }
        };
        if changes.is_empty() {
            self.customers.edit = None;
            self.set_info("Nothing changed");
            return Vec::new();
        }
        edit.saving = true;
        let id_client = edit.customer.id_client;
        self.set_info("Saving…");
        vec![Command::PatchCustomer { id_client, changes }]
    }

    pub(super) fn on_customer_saved(&mut self, result: Result<Customer, ApiError>) -> Vec<Command> {
        match result {
            Ok(customer) => {
                self.note_answer();
                self.set_info(format!("Saved {} {}", customer.prenom, customer.nom));
                self.customers.edit = None;
                self.replace_customer(customer);
                Vec::new()
            }
            Err(error) => {
                if let Some(edit) = &mut self.customers.edit {
                    edit.saving = false;
                    if let ApiError::Http {
                        status: 409,
                        id_client,
                        message,
                        ..
                    } = &error
                    {
                        edit.form
                            .set_error("Email", super::taken_email_message(message, *id_client));
                    } else if let ApiError::Http { field_errors, .. } = &error {
                        edit.form.apply_field_errors(field_errors);
                    }
                }
                self.note_failure("Saving the customer", &error)
            }
        }
    }

    fn issue_card(&mut self, id_client: Option<Uuid>) -> Vec<Command> {
        match id_client {
            Some(id_client) => {
                self.set_info("Issuing a card…");
                vec![Command::IssueCard(id_client)]
            }
            None => Vec::new(),
        }
    }

    pub(super) fn on_card_issued(&mut self, result: Result<Customer, ApiError>) -> Vec<Command> {
        match result {
            Ok(customer) => {
                self.note_answer();
                let who = super::credit::name_and_balance(&customer);
                match customer.carte_fid {
                    Some(card) => self.set_info(format!("{who} has card {card}")),
                    None => self.set_error(format!("{who}: the server answered without a card number")),
                }
                self.replace_customer(customer);
                Vec::new()
            }
            Err(error) => self.note_failure("Issuing a card", &error),
        }
    }
}

/// Moves within one of the detail lists; whether it moved, whether its next page is
/// wanted, and that page's cursor.
fn sub_list_navigation<T>(
    list: &mut PagedList<T>,
    key: KeyEvent,
    rows: usize,
    kind: SubList,
) -> (bool, bool, Option<String>, SubList) {
    let moved = navigate(list, key, rows);
    let wants_more = moved && list.wants_next_page();
    if wants_more {
        list.loading = true;
    }
    (moved, wants_more, list.next_cursor.clone(), kind)
}

//! The credit screen: four small actions on one form (allow a deferred payment, read a
//! balance, record a payment's result, reset refusals), each with its last outcome.
//! Every outcome names the customer and their balance. `a` on the customers screen
//! opens it filled in for the selected customer; `z` there resets their refusals.

use std::collections::HashMap;

use chrono::NaiveDate;
use crm_model::input::parse_date;
use crm_model::{Cents, Customer};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

use super::form::Form;
use super::validate::{credit_field, parse_euros, parse_id_client};
use super::{App, Command, Screen};
use crate::api::{ApiError, CreditBalance, CreditDecision, CustomerKey, PaymentOutcome, ScheduledPayment};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreditAction {
    Allow,
    Balance,
    PaymentResult,
    ResetRefusals,
}

impl CreditAction {
    pub const ALL: [CreditAction; 4] = [
        CreditAction::Allow,
        CreditAction::Balance,
        CreditAction::PaymentResult,
        CreditAction::ResetRefusals,
    ];

    pub fn title(self) -> &'static str {
        match self {
            CreditAction::Allow => "Allow a deferred payment",
            CreditAction::Balance => "Credit balance",
            CreditAction::PaymentResult => "Record a payment result",
            CreditAction::ResetRefusals => "Reset refusals",
        }
    }

    /// The form fields this action reads, in order.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            CreditAction::Allow => &["allow_id", "allow_amount", "allow_date"],
            CreditAction::Balance => &["balance_key"],
            CreditAction::PaymentResult => &["payment_id", "payment_status"],
            CreditAction::ResetRefusals => &["reset_id"],
        }
    }

    pub fn of_field(field: &str) -> CreditAction {
        CreditAction::ALL
            .into_iter()
            .find(|action| action.fields().contains(&field))
            .unwrap_or(CreditAction::Allow)
    }
}

/// The fields that name a customer, filled in by `a`.
pub const CUSTOMER_KEY_FIELDS: [&str; 3] = ["allow_id", "balance_key", "reset_id"];

const CREDIT_FIELDS: [(&str, &str); 7] = [
    ("allow_id", "IdClient"),
    ("allow_amount", "Amount (€)"),
    ("allow_date", "Due date"),
    ("balance_key", "Card or IdClient"),
    ("payment_id", "Payment id"),
    ("payment_status", "Status (OK/ERROR)"),
    ("reset_id", "IdClient"),
];

/// The answer to the last request of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct CreditState {
    pub form: Form,
    pub outcomes: HashMap<CreditAction, Outcome>,
    /// Actions whose request is in flight.
    pub pending: Vec<CreditAction>,
    /// The customer `a` filled the form in for (refreshed by the answers about them).
    pub subject: Option<Customer>,
}

impl Default for CreditState {
    fn default() -> Self {
        CreditState {
            form: Form::new(&CREDIT_FIELDS, credit_field),
            outcomes: HashMap::new(),
            pending: Vec::new(),
            subject: None,
        }
    }
}

/// How an answer names a customer: first name and name, or the `IdClient` when both
/// are empty (an erased customer).
pub fn display_name(customer: &Customer) -> String {
    let name = format!("{} {}", customer.prenom.trim(), customer.nom.trim());
    match name.trim() {
        "" => customer.id_client.to_string(),
        name => name.to_string(),
    }
}

/// `Jacquie Bloggs (credit 22,25 €)`: who an answer is about, and their balance.
pub fn name_and_balance(customer: &Customer) -> String {
    format!("{} (credit {})", display_name(customer), customer.credit.to_euros())
}

impl App {
    /// A customer on screen (the credit form's, the open one, a loaded row) that `key`
    /// names, to show who a typed `IdClient` or card number is.
    pub fn known_customer(&self, key: CustomerKey) -> Option<&Customer> {
        let matches = |customer: &&Customer| match key {
            CustomerKey::Id(id) => customer.id_client == id,
            CustomerKey::Card(card) => customer.carte_fid == Some(card),
        };
        let detail = self.customers.detail.as_ref().map(|d| &d.customer);
        self.credit
            .subject
            .iter()
            .chain(detail)
            .chain(self.customers.list.items.iter())
            .find(matches)
    }

    /// `a` on the customers screen: the credit screen, filled in for the selected (or
    /// open) customer, the amount field selected (`Enter` types in it).
    pub(super) fn credit_for_current_customer(&mut self) -> Vec<Command> {
        let Some(customer) = self.customers.current_customer().cloned() else {
            return Vec::new();
        };
        let id = customer.id_client.to_string();
        let form = &mut self.credit.form;
        for name in CUSTOMER_KEY_FIELDS {
            form.prefill(name, &id);
        }
        // An amount and date typed for someone else must not be sent for this customer.
        form.prefill("allow_amount", "");
        form.prefill("allow_date", "");
        form.focus_on("allow_amount");
        form.editing = false;
        self.set_info(format!(
            "Credit for {}: Enter to type the amount, then the due date",
            name_and_balance(&customer)
        ));
        self.credit.subject = Some(customer);
        self.screen = Screen::Credit;
        Vec::new()
    }

    /// `y` to the question of `z`: resets the refusals of the customer it named.
    pub(super) fn reset_refusals_of(&mut self, customer: Customer) -> Vec<Command> {
        let action = CreditAction::ResetRefusals;
        if self.credit.pending.contains(&action) {
            return Vec::new();
        }
        self.credit.pending.push(action);
        self.set_info(format!("{} of {}…", action.title(), display_name(&customer)));
        vec![Command::ResetRefusals(customer.id_client)]
    }

    pub(super) fn on_credit_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let form = &mut self.credit.form;
        let action = CreditAction::of_field(form.focused().name);
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('s') {
            return self.submit_credit_action(action);
        }
        let last_of_action = action.fields().last() == Some(&form.focused().name);
        if form.editing {
            match key.code {
                KeyCode::Esc => form.editing = false,
                KeyCode::Enter if last_of_action => return self.submit_credit_action(action),
                KeyCode::Enter | KeyCode::Down | KeyCode::Tab => form.focus_next(),
                KeyCode::Up | KeyCode::BackTab => form.focus_previous(),
                _ => form.edit(key),
            }
        } else {
            if form.browse(key.code) {
                self.screen = super::Screen::Customers;
            }
        }
        Vec::new()
    }

    fn submit_credit_action(&mut self, action: CreditAction) -> Vec<Command> {
        let form = &mut self.credit.form;
        if !form.validate_fields(action.fields()) {
            self.set_error(format!("{}: fix the highlighted fields first", action.title()));
            return Vec::new();
        }
        if self.credit.pending.contains(&action) {
            return Vec::new();
        }
        let command = match action {
            CreditAction::Allow => {
                let (Ok(id_client), Ok(montant), Ok(date)) = (
                    parse_id_client(form.value("allow_id")),
                    parse_euros(form.value("allow_amount")),
                    parse_date(form.value("allow_date")),
                ) else {
                    return Vec::new();
                };
                Command::AllowCredit {
                    id_client,
                    montant,
                    date,
                }
            }
            CreditAction::Balance => match CustomerKey::parse(form.value("balance_key")) {
                Some(key) => Command::CreditBalance(key),
                None => return Vec::new(),
            },
            CreditAction::PaymentResult => match PaymentOutcome::parse(form.value("payment_status")) {
                Some(outcome) => Command::PaymentResult {
                    payment_id: form.value("payment_id").to_string(),
                    outcome,
                },
                None => return Vec::new(),
            },
            CreditAction::ResetRefusals => match parse_id_client(form.value("reset_id")) {
                Ok(id_client) => Command::ResetRefusals(id_client),
                Err(_) => return Vec::new(),
            },
        };
        self.credit.pending.push(action);
        self.set_info(format!("{}…", action.title()));
        vec![command]
    }

    /// Records an action's answer on the screen and in the status line; a fresh copy
    /// of the customer it was about replaces the one on screen. An error names the
    /// customer `about` when one on screen matches.
    fn finish_credit_action(
        &mut self,
        action: CreditAction,
        result: Result<Outcome, ApiError>,
        customer: Option<Customer>,
        about: Option<CustomerKey>,
    ) -> Vec<Command> {
        self.credit.pending.retain(|a| *a != action);
        if let Some(customer) = customer {
            if let Some(subject) = &mut self.credit.subject {
                if subject.id_client == customer.id_client {
                    *subject = customer.clone();
                }
            }
            self.replace_customer(customer);
        }
        match result {
            Ok(outcome) => {
                self.note_answer();
                if outcome.success {
                    self.set_info(format!("{}: {}", action.title(), outcome.text));
                } else {
                    self.set_error(format!("{}: {}", action.title(), outcome.text));
                }
                self.credit.outcomes.insert(action, outcome);
                Vec::new()
            }
            Err(error) => {
                let text = match about {
                    Some(key) => {
                        let who = self
                            .known_customer(key)
                            .map(name_and_balance)
                            .unwrap_or_else(|| key.to_string());
                        format!("{who}: {error}")
                    }
                    None => error.to_string(),
                };
                let commands = self.note_failure(action.title(), &error);
                self.set_error(format!("{}: {text}", action.title()));
                self.credit.outcomes.insert(action, Outcome { success: false, text });
                commands
            }
        }
    }

    pub(super) fn on_credit_decided(
        &mut self,
        request: (Uuid, Cents, NaiveDate),
        result: Result<CreditDecision, ApiError>,
        customer: Option<Customer>,
    ) -> Vec<Command> {
        let (id_client, montant, date) = request;
        let who = customer
            .as_ref()
            .map(name_and_balance)
            .unwrap_or_else(|| id_client.to_string());
        let result = result.map(|decision| Outcome {
            success: decision.allowed,
            text: match (decision.allowed, &customer) {
                (true, _) => format!("{who}: allowed, {} due {date} scheduled", montant.to_euros()),
                (false, Some(customer)) => format!("{who}: refused, too many refused payments ({})", customer.nb_refus),
                (false, None) => format!("{who}: refused, too many refused payments"),
            },
        });
        self.finish_credit_action(CreditAction::Allow, result, customer, Some(CustomerKey::Id(id_client)))
    }

    pub(super) fn on_balance_loaded(
        &mut self,
        key: CustomerKey,
        result: Result<CreditBalance, ApiError>,
        customer: Option<Customer>,
    ) -> Vec<Command> {
        let result = result.map(|balance| {
            let card = match key {
                CustomerKey::Card(card) => Some(format!("card {card}")),
                CustomerKey::Id(_) => None,
            };
            let who = match (&customer, card) {
                (Some(customer), Some(card)) => format!("{} ({card})", display_name(customer)),
                (Some(customer), None) => display_name(customer),
                (None, Some(card)) => card,
                (None, None) => balance.carte_fid.clone(),
            };
            Outcome {
                success: true,
                text: format!("{who}: credit {}", balance.credit.to_euros()),
            }
        });
        self.finish_credit_action(CreditAction::Balance, result, customer, Some(key))
    }

    pub(super) fn on_payment_result(
        &mut self,
        payment_id: String,
        outcome: PaymentOutcome,
        result: Result<ScheduledPayment, ApiError>,
        customer: Option<Customer>,
    ) -> Vec<Command> {
        let result = result.map(|payment| {
            let what = match outcome {
                PaymentOutcome::Ok => format!("payment {payment_id} marked paid"),
                PaymentOutcome::Error => match payment.date {
                    Some(date) => format!("payment {payment_id} refused: one more refusal, now due {date}"),
                    None => format!("payment {payment_id} refused: one more refusal, due a day later"),
                },
            };
            let text = match &customer {
                Some(customer) => format!("{}: {what}", name_and_balance(customer)),
                None if !payment.id_client.is_empty() => format!("{}: {what}", payment.id_client),
                None => what,
            };
            Outcome { success: true, text }
        });
        self.finish_credit_action(CreditAction::PaymentResult, result, customer, None)
    }

    pub(super) fn on_refusals_reset(&mut self, id_client: Uuid, result: Result<Customer, ApiError>) -> Vec<Command> {
        let customer = result.as_ref().ok().cloned();
        let result = result.map(|customer| Outcome {
            success: true,
            text: format!("{}: refusals set to 0", name_and_balance(&customer)),
        });
        self.finish_credit_action(
            CreditAction::ResetRefusals,
            result,
            customer,
            Some(CustomerKey::Id(id_client)),
        )
    }
}

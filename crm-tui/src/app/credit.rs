//! The credit screen: four small actions on one form (allow a deferred payment, read a
//! balance, record a payment's result, reset refusals), each with its last outcome.

use std::collections::HashMap;

use crm_model::input::parse_date;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

use super::form::Form;
use super::validate::{credit_field, parse_euros, parse_id_client};
use super::{App, Command};
use crate::api::{ApiError, CreditBalance, CreditDecision, CustomerKey, PaymentOutcome};

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
}

impl Default for CreditState {
    fn default() -> Self {
        CreditState {
            form: Form::new(&CREDIT_FIELDS, credit_field),
            outcomes: HashMap::new(),
            pending: Vec::new(),
        }
    }
}

impl App {
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

    /// Records an action's answer on the screen and in the status line.
    fn finish_credit_action(&mut self, action: CreditAction, result: Result<Outcome, ApiError>) -> Vec<Command> {
        self.credit.pending.retain(|a| *a != action);
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
                self.credit.outcomes.insert(
                    action,
                    Outcome {
                        success: false,
                        text: error.to_string(),
                    },
                );
                self.note_failure(action.title(), &error)
            }
        }
    }

    pub(super) fn on_credit_decided(&mut self, result: Result<CreditDecision, ApiError>) -> Vec<Command> {
        let result = result.map(|decision| Outcome {
            success: decision.allowed,
            text: if decision.allowed {
                format!("allowed and scheduled for {}", decision.id_client)
            } else {
                format!("refused for {} (too many refused payments)", decision.id_client)
            },
        });
        self.finish_credit_action(CreditAction::Allow, result)
    }

    pub(super) fn on_balance_loaded(&mut self, result: Result<CreditBalance, ApiError>) -> Vec<Command> {
        let result = result.map(|balance| Outcome {
            success: true,
            text: format!("card {} has {}", balance.carte_fid, balance.credit.to_euros()),
        });
        self.finish_credit_action(CreditAction::Balance, result)
    }

    pub(super) fn on_payment_result(
        &mut self,
        payment_id: String,
        outcome: PaymentOutcome,
        result: Result<(), ApiError>,
    ) -> Vec<Command> {
        let result = result.map(|()| Outcome {
            success: true,
            text: match outcome {
                PaymentOutcome::Ok => format!("payment {payment_id} marked paid"),
                PaymentOutcome::Error => format!("payment {payment_id} refused: one more refusal, due a day later"),
            },
        });
        self.finish_credit_action(CreditAction::PaymentResult, result)
    }

    pub(super) fn on_refusals_reset(&mut self, id_client: Uuid, result: Result<(), ApiError>) -> Vec<Command> {
        let result = result.map(|()| Outcome {
            success: true,
            text: format!("refusals of {id_client} set to 0"),
        });
        self.finish_credit_action(CreditAction::ResetRefusals, result)
    }
}

//! The new customer screen: a form validated as it is typed, sent to
//! `POST /api/create_customer`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

use super::customers::CUSTOMER_FIELDS;
use super::form::Form;
use super::validate::{customer_field, parse_age, parse_sexe};
use super::{App, Command};
use crate::api::{ApiError, NewCustomerRequest};

#[derive(Debug, Clone)]
pub struct CreateState {
    pub form: Form,
    pub saving: bool,
    /// The customer created last, shown until the next one is typed.
    pub created: Option<Uuid>,
}

impl Default for CreateState {
    fn default() -> Self {
        CreateState {
            form: Form::new(&CUSTOMER_FIELDS, customer_field),
            saving: false,
            created: None,
        }
    }
}

impl CreateState {
    fn request(&self) -> Result<NewCustomerRequest, (&'static str, String)> {
        let text = |name: &str| self.form.value(name).to_string();
        Ok(NewCustomerRequest {
            nom: text("Nom"),
            prenom: text("Prenom"),
            email: text("Email"),
            phone: text("Phone"),
            age: parse_age(self.form.value("Age")).map_err(|e| ("Age", e))?,
            sexe: parse_sexe(self.form.value("Sexe")).map_err(|e| ("Sexe", e))?,
            compte: text("Compte"),
        })
    }
}

impl App {
    pub(super) fn on_create_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let form = &mut self.create.form;
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('s') {
            return self.submit_new_customer();
        }
        let last_field = form.focus + 1 == form.fields.len();
        if form.editing {
            match key.code {
                KeyCode::Esc => form.editing = false,
                KeyCode::Enter if last_field => return self.submit_new_customer(),
                KeyCode::Enter | KeyCode::Down | KeyCode::Tab => form.focus_next(),
                KeyCode::Up | KeyCode::BackTab => form.focus_previous(),
                _ if !self.create.saving => {
                    self.create.created = None;
                    form.edit(key);
                }
                _ => {}
            }
        } else {
            if form.browse(key.code) {
                self.screen = super::Screen::Customers;
            }
        }
        Vec::new()
    }

    fn submit_new_customer(&mut self) -> Vec<Command> {
        if self.create.saving {
            return Vec::new();
        }
        if !self.create.form.validate_all() {
            self.create.form.editing = true;
            self.set_error("Fix the highlighted fields first");
            return Vec::new();
        }
        match self.create.request() {
            Ok(request) => {
                self.create.saving = true;
                self.set_info("Creating the customer…");
                vec![Command::CreateCustomer(request)]
            }
            Err((field, message)) => {
                self.create.form.set_error(field, message);
                Vec::new()
            }
        }
    }

    pub(super) fn on_customer_created(&mut self, result: Result<Uuid, ApiError>) -> Vec<Command> {
        self.create.saving = false;
        match result {
            Ok(id_client) => {
                self.note_answer();
                let name = format!("{} {}", self.create.form.value("Prenom"), self.create.form.value("Nom"));
                self.set_info(format!("Created {} ({id_client})", name.trim()));
                self.create.form.clear();
                self.create.form.editing = false;
                self.create.created = Some(id_client);
                // The new customer belongs in the table.
                self.reload_customers()
            }
            Err(error) => {
                match &error {
                    ApiError::Http {
                        status: 409,
                        id_client,
                        message,
                        ..
                    } => {
                        self.create
                            .form
                            .set_error("Email", super::taken_email_message(message, *id_client));
                    }
                    ApiError::Http { field_errors, .. } => {
                        let others = self.create.form.apply_field_errors(field_errors);
                        let commands = self.note_failure("Creating the customer", &error);
                        if !others.is_empty() {
                            self.set_error(format!("Creating the customer: {}", others.join("; ")));
                        }
                        return commands;
                    }
                    _ => {}
                }
                self.note_failure("Creating the customer", &error)
            }
        }
    }
}

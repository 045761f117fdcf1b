//! Forms: labelled text fields validated as they are typed in, with server errors shown
//! on the field they name.

use crm_model::FieldError;
use crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::backend::crossterm::to_input_request;
use tui_input::Input;

/// Checks one field's text; the error is shown under the field.
pub type Validator = fn(field: &str, value: &str) -> Result<(), String>;

#[derive(Debug, Clone)]
pub struct FormField {
    /// The key as the API names it (`Nom`, `Email`...), so server errors find their field.
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    /// The text the field started with: the form is dirty when a field differs from it.
    initial: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Form {
    pub fields: Vec<FormField>,
    pub focus: usize,
    /// Keys go to the focused field (letters are text, not commands).
    pub editing: bool,
    validator: Validator,
}

impl Form {
    /// An empty form of `(name, label)` fields.
    pub fn new(fields: &[(&'static str, &'static str)], validator: Validator) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|&(name, label)| FormField {
                    name,
                    label,
                    input: Input::default(),
                    initial: String::new(),
                    error: None,
                })
                .collect(),
            focus: 0,
            editing: false,
            validator,
        }
    }

    /// Fills fields with starting values that do not count as changes.
    pub fn with_initial_values(mut self, values: &[(&str, String)]) -> Form {
        for (name, value) in values {
            if let Some(field) = self.field_mut(name) {
                field.input = Input::new(value.clone());
                field.initial.clone_from(value);
            }
        }
        self
    }

    /// Puts a starting value in one field (it does not count as a change) and clears
    /// its error.
    pub fn prefill(&mut self, name: &str, value: &str) {
        if let Some(field) = self.field_mut(name) {
            field.input = Input::new(value.to_string());
            field.initial = value.to_string();
            field.error = None;
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.input.value().trim())
            .unwrap_or_default()
    }

    /// The field's text when it differs from its starting value.
    pub fn changed_value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name && f.input.value().trim() != f.initial.trim())
            .map(|f| f.input.value().trim())
    }

    pub fn is_dirty(&self) -> bool {
        self.fields.iter().any(|f| f.input.value().trim() != f.initial.trim())
    }

    pub fn focused(&self) -> &FormField {
        &self.fields[self.focus]
    }

    /// A key on a form whose fields are not being typed in: start typing, move between
    /// fields, or (`Esc`) ask to leave the form, answered `true`.
    pub fn browse(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Enter | KeyCode::Char('i') => self.editing = true,
            KeyCode::Down | KeyCode::Char('j') => self.focus_next(),
            KeyCode::Up | KeyCode::Char('k') => self.focus_previous(),
            KeyCode::Esc => return true,
            _ => {}
        }
        false
    }

    pub fn focus_next(&mut self) {
        self.focus = (self.focus + 1) % self.fields.len();
    }

    pub fn focus_previous(&mut self) {
        self.focus = (self.focus + self.fields.len() - 1) % self.fields.len();
    }

    pub fn focus_on(&mut self, name: &str) {
        if let Some(index) = self.fields.iter().position(|f| f.name == name) {
            self.focus = index;
        }
    }

    /// Gives a key to the focused field; re-validates it when its text changed.
    pub fn edit(&mut self, key: KeyEvent) {
        let validator = self.validator;
        let field = &mut self.fields[self.focus];
        let Some(request) = to_input_request(&Event::Key(key)) else {
            return;
        };
        if field.input.handle(request).is_some_and(|changed| changed.value) {
            field.error = validator(field.name, field.input.value()).err();
        }
    }

    /// Validates every field; focuses the first invalid one. Whether all are valid.
    pub fn validate_all(&mut self) -> bool {
        let validator = self.validator;
        for field in &mut self.fields {
            field.error = validator(field.name, field.input.value()).err();
        }
        self.focus_first_error()
    }

    /// Validates the named fields only (one action of a multi-action form).
    pub fn validate_fields(&mut self, names: &[&str]) -> bool {
        let validator = self.validator;
        for field in self.fields.iter_mut().filter(|f| names.contains(&f.name)) {
            field.error = validator(field.name, field.input.value()).err();
        }
        self.focus_first_error()
    }

    fn focus_first_error(&mut self) -> bool {
        match self.fields.iter().position(|f| f.error.is_some()) {
            Some(index) => {
                self.focus = index;
                false
            }
            None => true,
        }
    }

    pub fn set_error(&mut self, name: &str, message: impl Into<String>) {
        if let Some(field) = self.field_mut(name) {
            field.error = Some(message.into());
        }
        self.focus_on(name);
    }

    /// Shows server errors on their fields (names compared without case); returns the
    /// errors no field is named for, to show elsewhere.
    pub fn apply_field_errors(&mut self, errors: &[FieldError]) -> Vec<String> {
        let mut unmatched = Vec::new();
        for error in errors {
            match self
                .fields
                .iter_mut()
                .find(|f| f.name.eq_ignore_ascii_case(&error.field))
            {
                Some(field) => field.error = Some(error.error.clone()),
                None => unmatched.push(format!("{}: {}", error.field, error.error)),
            }
        }
        self.focus_first_error();
        unmatched
    }

    /// Empties every field and error.
    pub fn clear(&mut self) {
        for field in &mut self.fields {
            field.input.reset();
            field.initial.clear();
            field.error = None;
        }
        self.focus = 0;
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut FormField> {
        self.fields.iter_mut().find(|f| f.name == name)
    }
}

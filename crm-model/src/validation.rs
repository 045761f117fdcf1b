//! Errors of client input: unreadable bodies (HTTP 400) and invalid fields (HTTP 422).

use serde::{Deserialize, Serialize};

/// One invalid field of a readable body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The key as the customer object names it (`Nom`, `Email`, ...).
    pub field: String,
    /// A human message.
    pub error: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error: error.into(),
        }
    }
}

/// Why a client's input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The body or query cannot be read at all (not JSON, wrong top-level type...).
    #[error("{0}")]
    Unreadable(String),
    /// The body is readable but some fields are invalid; every one is listed.
    #[error("invalid fields: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.error)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// More invalid fields than an answer lists: the first [`MAX_LISTED_ERRORS`] and
    /// the count of all of them.
    #[error("{total} invalid fields, among them: {}", .listed.iter().take(10).map(|e| format!("{}: {}", e.field, e.error)).collect::<Vec<_>>().join("; "))]
    TooManyInvalid { listed: Vec<FieldError>, total: u64 },
}

impl InputError {
    pub fn field(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, error)])
    }
}

/// Most errors an answer lists; past it, errors are only counted.
pub const MAX_LISTED_ERRORS: usize = 1_000;

/// Errors listed up to [`MAX_LISTED_ERRORS`] and counted past it, so that a body of
/// a million bad items costs a thousand errors of memory, not a million.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorList<T> {
    /// The first errors, in the order they were found.
    pub listed: Vec<T>,
    /// Every error, listed or not.
    pub total: u64,
}

impl<T> Default for ErrorList<T> {
    fn default() -> Self {
        ErrorList {
            listed: Vec::new(),
            total: 0,
        }
    }
}

impl<T> ErrorList<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `error`, and keeps it while fewer than [`MAX_LISTED_ERRORS`] are listed.
    pub fn push(&mut self, error: T) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push(error);
        }
    }

    /// A list of one error.
    pub fn one(error: T) -> Self {
        let mut list = Self::new();
        list.push(error);
        list
    }

    /// Counts `n` more errors that are not listed (errors of a part that listed only
    /// its first ones).
    pub fn count_unlisted(&mut self, n: u64) {
        self.total += n;
    }

    /// Whether some errors were counted but not listed.
    pub fn is_truncated(&self) -> bool {
        self.total > self.listed.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl ErrorList<FieldError> {
    /// The refusal of a body with these errors ([`InputError::Invalid`] while they are
    /// all listed).
    pub fn into_input_error(self) -> InputError {
        if self.is_truncated() {
            InputError::TooManyInvalid {
                listed: self.listed,
                total: self.total,
            }
        } else {
            InputError::Invalid(self.listed)
        }
    }
}

/// Longest piece of client input quoted in an error message, characters.
pub const MAX_QUOTED_CHARS: usize = 40;

/// `text` quoted for an error message (`"abc"`), cut after [`MAX_QUOTED_CHARS`]
/// characters (`"abc…"`): a message never repeats an unbounded value.
pub fn quoted(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(MAX_QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// A client-chosen name (an unknown key) cut after [`MAX_QUOTED_CHARS`] characters.
pub fn name_excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Reads a request body as a JSON object. Invalid UTF-8, invalid JSON and any other
/// top-level type are unreadable (400), whatever the `Content-Type` said.
pub fn parse_json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, InputError> {
    let text =
        std::str::from_utf8(body).map_err(|e| InputError::Unreadable(format!("body is not valid UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(InputError::Unreadable(
            "body is empty; a JSON object is expected".into(),
        ));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(InputError::Unreadable(format!(
            "a JSON object is expected, not {}",
            json_type_name(&other)
        ))),
        Err(e) => Err(InputError::Unreadable(format!("body is not valid JSON: {e}"))),
    }
}

pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Whether `email` looks like an address: one `@`, something before it, a dot inside
/// the domain, no white space.
pub fn is_valid_email(email: &str) -> bool {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        for good in ["a@b.fr", "Jacquie@mimi.com", "jon.doe+x@mail.example.org"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.fr", "a@@b.fr", "a@b@c.fr", "a b@c.fr", "a@.fr", "a@b.", "a@b..fr",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn error_lists_count_past_the_cap_and_keep_the_first() {
        let mut list = ErrorList::new();
        for i in 0..MAX_LISTED_ERRORS + 5 {
            list.push(FieldError::new(format!("f{i}"), "bad"));
        }
        assert_eq!(
            (list.listed.len(), list.total),
            (MAX_LISTED_ERRORS, MAX_LISTED_ERRORS as u64 + 5)
        );
        assert!(list.is_truncated());
        assert_eq!(list.listed[0].field, "f0");
        assert!(matches!(list.into_input_error(), InputError::TooManyInvalid { total, .. } if total == 1005));
        let mut short = ErrorList::new();
        short.push(FieldError::new("a", "bad"));
        assert!(!short.is_truncated());
        assert!(matches!(short.into_input_error(), InputError::Invalid(e) if e.len() == 1));
    }

    #[test]
    fn quoted_input_is_cut() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "é".repeat(10_000);
        let q = quoted(&long);
        assert!(q.chars().count() < MAX_QUOTED_CHARS + 4, "{q}");
        assert!(q.ends_with('…'));
        assert_eq!(name_excerpt(&"k".repeat(100)).chars().count(), MAX_QUOTED_CHARS + 1);
        assert_eq!(name_excerpt("Nom"), "Nom");
    }

    #[test]
    fn json_object_reading() {
        assert!(parse_json_object(br#"{"a":1}"#).is_ok());
        assert!(matches!(parse_json_object(b"[1]"), Err(InputError::Unreadable(m)) if m.contains("array")));
        assert!(matches!(parse_json_object(b"{"), Err(InputError::Unreadable(_))));
        assert!(matches!(parse_json_object(b""), Err(InputError::Unreadable(_))));
        assert!(
            matches!(parse_json_object(&[0x7b, 0xff, 0x7d]), Err(InputError::Unreadable(m)) if m.contains("UTF-8"))
        );
    }
}

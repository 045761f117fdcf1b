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
}

impl InputError {
    pub fn field(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, error)])
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

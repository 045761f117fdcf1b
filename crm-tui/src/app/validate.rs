//! Field checks run as staff type, with the rules of `crm-model` so that the form refuses
//! what the server would refuse, and reading of amounts typed in euros.

use crm_model::input::{parse_date, MAX_TEXT_CHARS};
use crm_model::money::{parse_typed_euros, TypedEurosError};
use crm_model::validation::is_valid_email;
use crm_model::{Cents, Sexe};
use uuid::Uuid;

use crate::api::{CustomerKey, PaymentOutcome};

/// Fields of the customer forms (create and edit), named as the API names them.
pub fn customer_field(field: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("at most {MAX_TEXT_CHARS} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("no control characters".into());
    }
    match field {
        "Nom" if value.is_empty() => Err("is required".into()),
        "Email" if !value.is_empty() && !is_valid_email(value) => Err("is not an e-mail address".into()),
        "Age" => parse_age(value).map(drop),
        "Sexe" => parse_sexe(value).map(drop),
        _ => Ok(()),
    }
}

/// An age as typed: empty for none, else a whole number from 0 to 150.
pub fn parse_age(text: &str) -> Result<Option<u8>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u8>() {
        Ok(age) if age <= 150 => Ok(Some(age)),
        _ => Err("a whole number from 0 to 150, or empty".into()),
    }
}

pub fn parse_sexe(text: &str) -> Result<Sexe, String> {
    Sexe::parse(text).ok_or_else(|| "h, f or empty".into())
}

/// Fields of the credit screen.
pub fn credit_field(field: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    match field {
        "allow_id" | "reset_id" => parse_id_client(value).map(drop),
        "allow_amount" => match parse_euros(value)? {
            Cents(0) => Err("must be more than 0".into()),
            _ => Ok(()),
        },
        "allow_date" => parse_date(value)
            .map(drop)
            .map_err(|_| "a date YYYY-MM-DD that exists".into()),
        "balance_key" => CustomerKey::parse(value)
            .map(drop)
            .ok_or_else(|| "a card number or an IdClient".into()),
        "payment_id" if value.is_empty() => Err("is required".into()),
        "payment_status" => PaymentOutcome::parse(value)
            .map(drop)
            .ok_or_else(|| "OK or ERROR".into()),
        _ => Ok(()),
    }
}

pub fn parse_id_client(text: &str) -> Result<Uuid, String> {
    if text.trim().is_empty() {
        return Err("is required".into());
    }
    Uuid::parse_str(text.trim()).map_err(|_| "is not an IdClient (a UUID)".into())
}

/// Reads an amount typed in euros ([`crm_model::money::parse_typed_euros`]): `360`,
/// `360,00`, `360.5`, `1 234,56 €`, at most two decimals.
pub fn parse_euros(text: &str) -> Result<Cents, String> {
    parse_typed_euros(text).map_err(|error| match error {
        TypedEurosError::Empty => "is required".into(),
        TypedEurosError::NotAnAmount => format!("{text:?} is not an amount in euros (like 360,00)"),
        TypedEurosError::TooManyDecimals => "at most two decimals".into(),
        TypedEurosError::TooLarge => "is too large".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_typed_with_comma_or_point_become_cents() {
        assert_eq!(parse_euros("360,00"), Ok(Cents(36000)));
        assert_eq!(parse_euros("360.5"), Ok(Cents(36050)));
        assert_eq!(parse_euros("360"), Ok(Cents(36000)));
        assert_eq!(parse_euros("1 234,56 €"), Ok(Cents(123456)));
        assert_eq!(parse_euros(",5"), Ok(Cents(50)));
        assert_eq!(parse_euros("0,07"), Ok(Cents(7)));
        for bad in ["", "abc", "-5", "1,234", "1,2,3", "12e3", ",", "99999999999999999999"] {
            assert!(parse_euros(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn customer_fields_follow_the_server_rules() {
        assert!(customer_field("Nom", "  ").is_err());
        assert!(customer_field("Nom", "Bloggs").is_ok());
        assert!(customer_field("Email", "").is_ok());
        assert!(customer_field("Email", "a@b").is_err());
        assert!(customer_field("Email", "a@b.fr").is_ok());
        assert!(customer_field("Age", "151").is_err());
        assert!(customer_field("Age", "150").is_ok());
        assert!(customer_field("Sexe", "x").is_err());
        assert!(customer_field("Sexe", "F").is_ok());
        assert!(customer_field("Phone", &"1".repeat(MAX_TEXT_CHARS + 1)).is_err());
    }

    #[test]
    fn credit_fields() {
        assert!(credit_field("allow_amount", "0,00").is_err());
        assert!(credit_field("allow_date", "2019-02-30").is_err());
        assert!(credit_field("allow_date", "2019-12-06").is_ok());
        assert!(credit_field("balance_key", "33").is_ok());
        assert!(credit_field("balance_key", "Bloggs").is_err());
        assert!(credit_field("payment_status", "error").is_ok());
        assert!(credit_field("payment_status", "maybe").is_err());
    }
}

//! Money: integer euro cents everywhere.

use serde::{Deserialize, Serialize};

/// The largest amount accepted: 2^53 - 1 cents, the largest integer every JSON client
/// (JavaScript included) reads exactly.
pub const MAX_CENTS: u64 = (1 << 53) - 1;

/// An amount of money in euro cents, never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cents(pub u64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// Reads an amount as clients send it: an integer, a number with a fraction (rounded
    /// to the nearest cent), or a string holding either. Negative amounts and amounts
    /// above [`MAX_CENTS`] are refused with a message for the client.
    pub fn from_json(value: &serde_json::Value) -> Result<Cents, String> {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Self::checked(u)
                } else if n.as_i64().is_some() {
                    Err("must not be negative".into())
                } else {
                    Self::from_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Self::parse_str(s),
            other => Err(format!(
                "must be an amount in cents, not {}",
                crate::validation::json_type_name(other)
            )),
        }
    }

    /// Parses a decimal amount in cents from text (`"36000"`, `"154.6"`).
    pub fn parse_str(text: &str) -> Result<Cents, String> {
        let t = text.trim();
        if let Ok(u) = t.parse::<u64>() {
            return Self::checked(u);
        }
        let is_decimal = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
        match t.parse::<f64>() {
            Ok(f) if is_decimal(t.strip_prefix('-').unwrap_or(t)) => Self::from_f64(f),
            _ => Err(format!("must be an amount in cents, not {text:?}")),
        }
    }

    fn from_f64(f: f64) -> Result<Cents, String> {
        if !f.is_finite() {
            return Err("must be a finite amount".into());
        }
        if f < 0.0 {
            return Err("must not be negative".into());
        }
        let rounded = f.round();
        if rounded > MAX_CENTS as f64 {
            return Err(format!("must not exceed {MAX_CENTS} cents"));
        }
        Ok(Cents(rounded as u64))
    }

    fn checked(u: u64) -> Result<Cents, String> {
        if u > MAX_CENTS {
            Err(format!("must not exceed {MAX_CENTS} cents"))
        } else {
            Ok(Cents(u))
        }
    }

    /// Half of the amount, rounded down: the loyalty credit a purchase earns.
    pub fn loyalty_share(self) -> Cents {
        Cents(self.0 / 2)
    }

    /// Shows the amount as French staff read it: `4,20 €`, `1 234,50 €`.
    pub fn to_euros(self) -> String {
        let euros = self.0 / 100;
        let cents = self.0 % 100;
        let digits = euros.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push('\u{202f}');
            }
            grouped.push(c);
        }
        format!("{grouped},{cents:02}\u{a0}€")
    }
}

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_euros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_integers_fractions_and_strings() {
        assert_eq!(Cents::from_json(&json!(420)), Ok(Cents(420)));
        assert_eq!(Cents::from_json(&json!(154.62542724609375)), Ok(Cents(155)));
        assert_eq!(Cents::from_json(&json!(0.4)), Ok(Cents(0)));
        assert_eq!(Cents::from_json(&json!("36000")), Ok(Cents(36000)));
        assert_eq!(Cents::from_json(&json!(" 12.5 ")), Ok(Cents(13)));
        assert_eq!(Cents::from_json(&json!(MAX_CENTS)), Ok(Cents(MAX_CENTS)));
    }

    #[test]
    fn refuses_negative_huge_and_non_numbers() {
        for bad in [
            json!(-1),
            json!(-0.6),
            json!(-0.2),
            json!("-5"),
            json!(MAX_CENTS + 1),
            json!(1e300),
            json!("abc"),
            json!(null),
            json!(true),
            json!([1]),
        ] {
            assert!(Cents::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_euros() {
        assert_eq!(Cents(420).to_euros(), "4,20\u{a0}€");
        assert_eq!(Cents(5).to_euros(), "0,05\u{a0}€");
        assert_eq!(Cents(123456789).to_euros(), "1\u{202f}234\u{202f}567,89\u{a0}€");
    }

    #[test]
    fn loyalty_share_rounds_down() {
        assert_eq!(Cents(26).loyalty_share(), Cents(13));
        assert_eq!(Cents(55).loyalty_share(), Cents(27));
        assert_eq!(Cents(1).loyalty_share(), Cents(0));
    }

    proptest::proptest! {
        #[test]
        fn any_non_negative_integer_in_range_round_trips(n in 0u64..=MAX_CENTS) {
            proptest::prop_assert_eq!(Cents::from_json(&json!(n)), Ok(Cents(n)));
            proptest::prop_assert_eq!(Cents::parse_str(&n.to_string()), Ok(Cents(n)));
        }
    }
}

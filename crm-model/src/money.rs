//! Money: integer euro cents everywhere.

use serde::{Deserialize, Serialize};

use crate::validation::quoted;

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
            _ => Err(format!("must be an amount in cents, not {}", quoted(text))),
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

    /// The sum, or `None` past [`MAX_CENTS`]: every stored amount stays in range, so a
    /// write that would pass it is refused rather than saturated or wrapped.
    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).filter(|sum| *sum <= MAX_CENTS).map(Cents)
    }

    /// [`Cents::checked_add`] for a stored amount: past [`MAX_CENTS`], the refusal
    /// names `field` and says that nothing was written.
    pub fn bounded_add(self, other: Cents, field: impl FnOnce() -> String) -> Result<Cents, AmountOutOfRange> {
        self.checked_add(other).ok_or_else(|| AmountOutOfRange {
            field: field(),
            error: format!(
                "adding {} cents to {} would pass the largest amount, {MAX_CENTS} cents; nothing was written",
                other.0, self.0
            ),
        })
    }

    /// Rounds an amount in euros (older sources send some prices so) to the nearest
    /// cent, half up. The decimal point is moved on the number as written, so that
    /// `1.005` is 101 cents (as a binary float times 100 it would be 100.49...).
    pub fn from_euros_json(value: &serde_json::Value) -> Result<Cents, String> {
        let text = match value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "must be an amount in euros, not {}",
                    crate::validation::json_type_name(other)
                ))
            }
        };
        if let Some(cents) = Self::decimal_euros(&text) {
            return cents;
        }
        // Exponents (`1e3`) and the like: read as a float.
        match text.parse::<f64>() {
            Ok(f) => Self::from_f64(f * 100.0),
            Err(_) => Err(format!("must be an amount in euros, not {}", quoted(&text))),
        }
    }

    /// `digits[.digits]` in euros as cents, rounded half up; `None` for other shapes.
    fn decimal_euros(text: &str) -> Option<Result<Cents, String>> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return None;
        }
        let mut fraction = fraction.bytes().map(|b| u64::from(b - b'0'));
        let tenths = fraction.next().unwrap_or(0);
        let hundredths = fraction.next().unwrap_or(0);
        let round_up = fraction.next().is_some_and(|d| d >= 5);
        let cents = whole
            .parse::<u64>()
            .ok()
            .and_then(|w| w.checked_mul(100))
            .and_then(|c| c.checked_add(tenths * 10 + hundredths + u64::from(round_up)));
        let is_zero = cents == Some(0);
        Some(match cents {
            _ if negative && !is_zero => Err("must not be negative".into()),
            Some(c) => Self::checked(c),
            None => Err(format!("must not exceed {MAX_CENTS} cents")),
        })
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

/// Why an amount typed by staff in euros was refused (each face words it in its
/// staff's language).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedEurosError {
    Empty,
    NotAnAmount,
    /// A third decimal: a typing mistake, not a fraction of a cent.
    TooManyDecimals,
    TooLarge,
}

/// Reads an amount typed in euros: `360`, `360,00`, `360.5`, `1 234,56 €`: spaces
/// between thousands, a comma or a point, at most two decimals, no sign, at most
/// 2^53 - 1 cents.
pub fn parse_typed_euros(text: &str) -> Result<Cents, TypedEurosError> {
    let cleaned: String = text
        .trim()
        .trim_end_matches('€')
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    if cleaned.is_empty() {
        return Err(TypedEurosError::Empty);
    }
    let (whole, fraction) = cleaned.split_once([',', '.']).unwrap_or((cleaned.as_str(), ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(TypedEurosError::NotAnAmount);
    }
    if fraction.len() > 2 {
        return Err(TypedEurosError::TooManyDecimals);
    }
    let euros: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| TypedEurosError::TooLarge)?
    };
    let cents: u64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| TypedEurosError::NotAnAmount)?;
    euros
        .checked_mul(100)
        .and_then(|c| c.checked_add(cents))
        .filter(|&c| c <= MAX_CENTS)
        .map(Cents)
        .ok_or(TypedEurosError::TooLarge)
}

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_euros())
    }
}

/// A write that would take a stored amount past [`MAX_CENTS`]: refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct AmountOutOfRange {
    /// The field of the request the amount came from.
    pub field: String,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bounded_sum_past_the_largest_amount_names_its_field() {
        assert_eq!(Cents(1).bounded_add(Cents(2), || "x".into()), Ok(Cents(3)));
        assert_eq!(
            Cents(MAX_CENTS).bounded_add(Cents(0), || "x".into()),
            Ok(Cents(MAX_CENTS))
        );
        let refused = Cents(MAX_CENTS)
            .bounded_add(Cents(1), || "Tickets[2].Montant".into())
            .unwrap_err();
        assert_eq!(refused.field, "Tickets[2].Montant");
        assert!(refused.error.contains("nothing was written"), "{refused}");
    }

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

    #[test]
    fn typed_euros_are_read_as_staff_type_them() {
        assert_eq!(parse_typed_euros("360,00"), Ok(Cents(36000)));
        assert_eq!(parse_typed_euros("360.5"), Ok(Cents(36050)));
        assert_eq!(parse_typed_euros("1 234,56 €"), Ok(Cents(123456)));
        assert_eq!(parse_typed_euros(",5"), Ok(Cents(50)));
        assert_eq!(parse_typed_euros(" "), Err(TypedEurosError::Empty));
        assert_eq!(parse_typed_euros("1,234"), Err(TypedEurosError::TooManyDecimals));
        assert_eq!(parse_typed_euros("-3"), Err(TypedEurosError::NotAnAmount));
        assert_eq!(
            parse_typed_euros("99999999999999999999"),
            Err(TypedEurosError::TooLarge)
        );
        assert_eq!(parse_typed_euros("90071992547409,92"), Err(TypedEurosError::TooLarge));
    }

    #[test]
    fn sums_stop_at_the_bound() {
        assert_eq!(Cents(MAX_CENTS - 1).checked_add(Cents(1)), Some(Cents(MAX_CENTS)));
        assert_eq!(Cents(MAX_CENTS).checked_add(Cents(1)), None);
        assert_eq!(Cents(u64::MAX).checked_add(Cents(u64::MAX)), None);
    }

    #[test]
    fn euros_are_read_as_cents() {
        assert_eq!(Cents::from_euros_json(&json!(4.25)), Ok(Cents(425)));
        assert_eq!(Cents::from_euros_json(&json!(0.125)), Ok(Cents(13)));
        assert_eq!(Cents::from_euros_json(&json!(1.005)), Ok(Cents(101)));
        assert_eq!(Cents::from_euros_json(&json!(0.285)), Ok(Cents(29)));
        assert_eq!(Cents::from_euros_json(&json!("12.3")), Ok(Cents(1230)));
        assert_eq!(Cents::from_euros_json(&json!(1e2)), Ok(Cents(10000)));
        assert_eq!(Cents::from_euros_json(&json!(-0.0)), Ok(Cents(0)));
        assert!(Cents::from_euros_json(&json!("-0.01")).is_err());
        assert!(Cents::from_euros_json(&json!(u64::MAX)).is_err());
        assert_eq!(Cents::from_euros_json(&json!(3)), Ok(Cents(300)));
        assert!(Cents::from_euros_json(&json!(-1.0)).is_err());
        assert!(Cents::from_euros_json(&json!(1e300)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_checked_sum_is_exact_or_refused(a in 0u64..=MAX_CENTS, b in 0u64..=MAX_CENTS) {
            match Cents(a).checked_add(Cents(b)) {
                Some(sum) => proptest::prop_assert_eq!(sum.0 as u128, a as u128 + b as u128),
                None => proptest::prop_assert!(a as u128 + b as u128 > MAX_CENTS as u128),
            }
        }

        #[test]
        fn any_non_negative_integer_in_range_round_trips(n in 0u64..=MAX_CENTS) {
            proptest::prop_assert_eq!(Cents::from_json(&json!(n)), Ok(Cents(n)));
            proptest::prop_assert_eq!(Cents::parse_str(&n.to_string()), Ok(Cents(n)));
        }
    }
}

//! How the pages write numbers and dates for French readers.

use chrono::{DateTime, NaiveDate, Utc};
use crm_model::money::{parse_typed_euros, TypedEurosError};
use crm_model::Cents;

/// `1234567` as `1 234 567`, grouped with narrow no-break spaces like
/// [`Cents::to_euros`].
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 * 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    grouped
}

/// `n` followed by the singular or plural noun, French style: 0 and 1 are singular.
pub fn counted(n: u64, singular: &str, plural: &str) -> String {
    format!("{} {}", count(n), if n > 1 { plural } else { singular })
}

pub fn date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

pub fn date_time(t: DateTime<Utc>) -> String {
    t.format("%d/%m/%Y %H:%M UTC").to_string()
}

/// A credit movement: `+4,20 €`, `−1,00 €` (with a real minus sign).
pub fn signed_euros(cents: i64) -> String {
    let sign = if cents < 0 { '\u{2212}' } else { '+' };
    format!("{sign}{}", Cents(cents.unsigned_abs()).to_euros())
}

/// How many characters of an `IdClient` the table shows before an ellipsis.
pub const SHORT_ID_CHARS: usize = 8;

/// The start of an id, then `…`: `a14e39ce…`. The full id goes in the `title`.
pub fn short_id(id: &str) -> String {
    match id.char_indices().nth(SHORT_ID_CHARS) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_string(),
    }
}

/// Reads an amount typed in euros ([`crm_model::money::parse_typed_euros`]), with the
/// messages in French.
pub fn parse_euros(text: &str) -> Result<Cents, String> {
    parse_typed_euros(text).map_err(|error| match error {
        TypedEurosError::Empty => "Indiquez un montant en euros (par exemple 360,00).".into(),
        TypedEurosError::NotAnAmount => format!(
            "« {} » n'est pas un montant en euros (par exemple 360,00).",
            text.trim()
        ),
        TypedEurosError::TooManyDecimals => "Deux décimales au plus (des centimes).".into(),
        TypedEurosError::TooLarge => "Ce montant est trop grand.".into(),
    })
}

/// Reads a date as a date field sends it (`2026-12-06`) or as staff type it where the
/// browser has no date picker (`06/12/2026`); it must exist in the calendar.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("Indiquez une date (JJ/MM/AAAA).".into());
    }
    let french = t.len() == 10 && t.as_bytes()[2] == b'/' && t.as_bytes()[5] == b'/';
    let parsed = if french {
        NaiveDate::parse_from_str(t, "%d/%m/%Y").map_err(drop)
    } else {
        crm_model::input::parse_date(t).map_err(drop)
    };
    parsed.map_err(|()| format!("« {t} » n'est pas une date qui existe (JJ/MM/AAAA)."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_and_nouns_agree() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(counted(0, "client", "clients"), "0 client");
        assert_eq!(counted(1, "client", "clients"), "1 client");
        assert_eq!(counted(1200, "client", "clients"), "1\u{202f}200 clients");
    }

    #[test]
    fn dates_and_signed_amounts() {
        assert_eq!(date(NaiveDate::from_ymd_opt(2019, 1, 7).unwrap()), "07/01/2019");
        let t = DateTime::parse_from_rfc3339("2019-10-09T17:01:29Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(date_time(t), "09/10/2019 17:01 UTC");
        assert_eq!(signed_euros(420), "+4,20\u{a0}€");
        assert_eq!(signed_euros(-100), "\u{2212}1,00\u{a0}€");
        assert_eq!(signed_euros(0), "+0,00\u{a0}€");
    }

    #[test]
    fn ids_are_shortened_to_their_first_characters() {
        assert_eq!(short_id("a14e39ce-e29e-11e9-a8cb-08002751d198"), "a14e39ce…");
        assert_eq!(short_id("a14e39ce"), "a14e39ce");
        assert_eq!(short_id(""), "");
        assert_eq!(short_id("éééééééééé"), "éééééééé…", "characters, not bytes");
    }

    #[test]
    fn euros_typed_with_comma_or_point_become_cents() {
        assert_eq!(parse_euros("360,00"), Ok(Cents(36000)));
        assert_eq!(parse_euros("360.5"), Ok(Cents(36050)));
        assert_eq!(parse_euros("360"), Ok(Cents(36000)));
        assert_eq!(parse_euros(" 1 234,56 € "), Ok(Cents(123456)));
        assert_eq!(
            parse_euros("1\u{202f}234,56\u{a0}€"),
            Ok(Cents(123456)),
            "as the pages write it"
        );
        assert_eq!(parse_euros(",5"), Ok(Cents(50)));
        assert_eq!(parse_euros("0,07"), Ok(Cents(7)));
        assert_eq!(parse_euros("0"), Ok(Cents(0)));
        assert_eq!(parse_euros("90071992547409,91"), Ok(Cents(crm_model::money::MAX_CENTS)));
        for bad in ["abc", "-5", "+5", "1,234", "1,2,3", "12e3", ",", "€", "1 234,5x"] {
            assert!(parse_euros(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_euros("1,234").unwrap_err(),
            "Deux décimales au plus (des centimes)."
        );
        assert_eq!(
            parse_euros("abc").unwrap_err(),
            "« abc » n'est pas un montant en euros (par exemple 360,00)."
        );
        assert!(parse_euros("").unwrap_err().starts_with("Indiquez un montant"));
        for huge in ["90071992547409,92", "99999999999999999999"] {
            assert_eq!(parse_euros(huge).unwrap_err(), "Ce montant est trop grand.", "{huge}");
        }
    }

    #[test]
    fn dates_come_from_a_date_field_or_typed_the_french_way() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        assert_eq!(parse_date("2026-12-06"), Ok(day));
        assert_eq!(parse_date(" 06/12/2026 "), Ok(day));
        assert_eq!(
            parse_date("29/02/2024"),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        for bad in [
            "2023-02-29",
            "30/02/2026",
            "6/12/2026",
            "2026-12-6",
            "demain",
            "2026-12-06T00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert!(parse_date("").unwrap_err().starts_with("Indiquez une date"));
    }
}

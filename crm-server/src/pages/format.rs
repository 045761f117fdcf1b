//! How the pages write numbers and dates for French readers.

use chrono::{DateTime, NaiveDate, Utc};
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
}

//! Search normalisation: the tokens a customer is found by and the terms of a query.
//! The store indexes tokens and matches each query term as a token prefix.

use std::collections::BTreeSet;

use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};

use crate::customer::CustomerRecord;

/// Most terms a query is split into; the rest are ignored.
pub const MAX_QUERY_TERMS: usize = 6;

/// Lower case without accents or control characters: `Éloïse` -> `eloise`.
pub fn normalize(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c) && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Digits only, the way phone numbers are compared.
fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn looks_like_phone(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit()) && text.chars().all(|c| c.is_ascii_digit() || " +.-()".contains(c))
}

/// Everything a customer can be found by: names (whole and word by word), e-mail,
/// phone digits (also in national form for `+33` numbers) and card number. The
/// `IdClient` is found through its own index.
pub fn search_tokens(record: &CustomerRecord) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    for name in [&record.nom, &record.prenom] {
        let name = normalize(name);
        for word in name.split(|c: char| c.is_whitespace() || c == '-' || c == '\'') {
            tokens.insert(word.to_string());
        }
        tokens.insert(name);
    }
    tokens.insert(normalize(&record.email));
    let phone = digits(&record.phone);
    if let Some(national) = phone.strip_prefix("33").filter(|rest| rest.len() == 9) {
        tokens.insert(format!("0{national}"));
    }
    tokens.insert(phone);
    if let Some(card) = record.carte_fid {
        tokens.insert(card.to_string());
    }
    tokens.remove("");
    tokens
}

/// The terms of a query; a customer matches when every term is a prefix of one of its
/// tokens. A query that looks like a phone number (`06 38 61`) is one term of digits.
pub fn query_terms(query: &str) -> Vec<String> {
    if looks_like_phone(query) {
        let d = digits(query);
        return if d.is_empty() { vec![] } else { vec![d] };
    }
    let mut terms: Vec<String> = normalize(query).split_whitespace().map(str::to_string).collect();
    terms.sort();
    terms.dedup();
    // A term that prefixes another adds nothing: keep the longer, more selective one.
    let all = terms.clone();
    terms.retain(|t| !all.iter().any(|o| o != t && o.starts_with(t.as_str())));
    terms.truncate(MAX_QUERY_TERMS);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input::NewCustomer, Sexe};
    use chrono::Utc;
    use uuid::Uuid;

    fn record(nom: &str, prenom: &str, email: &str, phone: &str, card: Option<u64>) -> CustomerRecord {
        NewCustomer {
            nom: nom.into(),
            prenom: prenom.into(),
            email: email.into(),
            phone: phone.into(),
            carte_fid: card,
            sexe: Sexe::Unspecified,
            ..Default::default()
        }
        .into_record(1, Uuid::nil(), Utc::now())
    }

    #[test]
    fn tokens_cover_names_email_phone_and_card() {
        let t = search_tokens(&record(
            "Le Floc'h",
            "Jean-Éric",
            "JE@Mail.fr",
            "+33 6 38 61 49 07",
            Some(42),
        ));
        for expected in [
            "le floc'h",
            "le",
            "floc",
            "h",
            "jean-eric",
            "jean",
            "eric",
            "je@mail.fr",
            "33638614907",
            "0638614907",
            "42",
        ] {
            assert!(t.contains(expected), "{expected} missing from {t:?}");
        }
        assert!(!t.contains(""));
    }

    #[test]
    fn query_terms_fold_case_and_accents_and_read_phones_whole() {
        assert_eq!(query_terms("  Éloïse  DUPONT "), ["dupont", "eloise"]);
        assert_eq!(query_terms("06 38 61"), ["063861"]);
        assert_eq!(query_terms("jean jea"), ["jean"]);
        assert!(query_terms("   ").is_empty());
    }
}

//! Key layout of the `index` tree: one prefix byte per index.
//!
//! Unique indexes map a key to the customer id; list indexes have the position and the
//! id in the key and an empty value, so a range scan yields a sorted page. The search
//! index packs its ids in blocks under the prefix `t` (see [`super::postings`]).

use std::collections::BTreeMap;

use crm_model::customer::CustomerRecord;
use crm_model::search::normalize;
use crm_model::SortKey;
use uuid::Uuid;

pub const BY_ID_CLIENT: u8 = b'u';
pub const BY_EMAIL: u8 = b'e';
pub const BY_CARD: u8 = b'c';
pub const SORT_NOM: u8 = b'n';
pub const SORT_CREDIT: u8 = b'k';
pub const SORT_PANIER: u8 = b'p';

/// Counters in the `meta` tree.
pub const NEXT_CUSTOMER_ID: &[u8] = b"next_customer_id";
pub const LIVE_CUSTOMERS: &[u8] = b"live_customers";
/// The live generation of the customer register (see `Register`); absent means 0.
pub const REGISTER_GENERATION: &[u8] = b"register_generation";

pub fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

pub fn id_client_key(id_client: Uuid) -> Vec<u8> {
    key(BY_ID_CLIENT, &[id_client.as_bytes()])
}

pub fn email_key(email_lowercase: &str) -> Vec<u8> {
    key(BY_EMAIL, &[email_lowercase.as_bytes()])
}

pub fn card_key(card: u64) -> Vec<u8> {
    key(BY_CARD, &[&card.to_be_bytes()])
}

/// The index that keeps the customers in `sort` order, or `None` for `id`, whose order
/// is the `customers` tree itself.
pub fn sort_index(sort: SortKey) -> Option<u8> {
    match sort {
        SortKey::Id => None,
        SortKey::Nom => Some(SORT_NOM),
        SortKey::Credit => Some(SORT_CREDIT),
        SortKey::PanierMoyen => Some(SORT_PANIER),
    }
}

/// Where a customer stands in `sort` order: the sort value then the id, so that every
/// position is unique and pages neither repeat nor skip a customer.
pub fn sort_position(record: &CustomerRecord, sort: SortKey) -> Vec<u8> {
    let id = record.id.to_be_bytes();
    match sort {
        SortKey::Id => id.to_vec(),
        // A NUL ends the name so that "dup" sorts before "dupont".
        SortKey::Nom => [normalize(&record.nom).as_bytes(), &[0], &id].concat(),
        SortKey::Credit => [record.credit.0.to_be_bytes(), id].concat(),
        SortKey::PanierMoyen => [record.panier_moyen().0.to_be_bytes(), id].concat(),
    }
}

/// The customer id at the end of a list-index key.
pub fn id_of_position(key: &[u8]) -> u64 {
    decode_u64(&key[key.len().saturating_sub(8)..])
}

/// Every index entry of a record. An erased customer keeps only its `IdClient`.
pub fn index_entries(record: &CustomerRecord) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut entries = identity_entries(record);
    entries.extend(balance_entries(record));
    entries
}

/// The entries that depend on who the customer is: ids, e-mail, card, name. (The
/// search tokens are posting blocks: see [`super::postings`].)
fn identity_entries(record: &CustomerRecord) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let id = record.id.to_be_bytes().to_vec();
    let mut entries = BTreeMap::new();
    entries.insert(id_client_key(record.id_client), id.clone());
    if record.erased {
        return entries;
    }
    if let Some(email) = record.email_key() {
        entries.insert(email_key(&email), id.clone());
    }
    if let Some(card) = record.carte_fid {
        entries.insert(card_key(card), id.clone());
    }
    entries.insert(key(SORT_NOM, &[&sort_position(record, SortKey::Nom)]), Vec::new());
    entries
}

/// The entries that move with money: the Credit and PanierMoyen sort orders.
pub fn balance_entries(record: &CustomerRecord) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut entries = BTreeMap::new();
    if !record.erased {
        for sort in [SortKey::Credit, SortKey::PanierMoyen] {
            if let Some(prefix) = sort_index(sort) {
                entries.insert(key(prefix, &[&sort_position(record, sort)]), Vec::new());
            }
        }
    }
    entries
}

/// Whether an index key is unique to one customer (and so must be checked on write).
pub fn is_unique(key: &[u8]) -> bool {
    matches!(key.first(), Some(&BY_ID_CLIENT) | Some(&BY_EMAIL) | Some(&BY_CARD))
}

/// The smallest key above every key starting with `prefix`, `None` if there is none.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(before: &BTreeMap<Vec<u8>, Vec<u8>>, after: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<Vec<u8>> {
        let mut changed: Vec<Vec<u8>> = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
        changed.extend(
            after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, _)| k.clone()),
        );
        changed
    }

    #[test]
    fn a_money_only_change_moves_the_same_entries_either_way() {
        let old = crm_model::NewCustomer {
            nom: "Lefèvre".into(),
            prenom: "Léa".into(),
            email: "lea@x.fr".into(),
            carte_fid: Some(33),
            ..Default::default()
        }
        .into_record(7, Uuid::nil(), chrono::Utc::now());
        let mut new = old.clone();
        new.credit = crm_model::Cents(1234);
        new.ticket_count = 2;
        new.ticket_total = crm_model::Cents(999);
        assert!(old.same_identity(&new));
        let full = diff(&index_entries(&old), &index_entries(&new));
        assert_eq!(full.len(), 4, "two sort entries out, two in");
        assert_eq!(diff(&balance_entries(&old), &balance_entries(&new)), full);
        new.email = "other@x.fr".into();
        assert!(!old.same_identity(&new));
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn u64_round_trip() {
        assert_eq!(decode_u64(&42u64.to_be_bytes()), 42);
        assert_eq!(
            id_of_position(&[b'k', 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7]),
            7
        );
    }
}

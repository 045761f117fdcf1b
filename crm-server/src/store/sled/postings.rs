//! The search index as posting lists: for each search token, the ids of the customers
//! that hold it, packed by blocks of [`BLOCK_IDS`] consecutive ids under one key.
//!
//! Key: `t`, the token, a NUL, then the block number (`id >> 12`, big-endian); value:
//! the ids of the block that hold the token, as sorted 2-byte offsets into the block.
//! A token held by 77,000 of 1,000,000 customers is then 245 keys instead of 77,000,
//! and a search reads it in about 0.1 ms instead of 25 (the README's `postings`
//! baseline). A prefix scan of `t` + a term still yields every token the term
//! prefixes. A block is found by its key alone, so a write adds or removes an id with
//! one `get` and one `insert` inside its transaction, with no range scan.
//!
//! Earlier versions kept one key per customer and token under `s`
//! ([`LEGACY_SEARCH`]); [`rebuild_if_legacy`] rewrites such a directory once, when
//! it is opened.

use std::collections::{BTreeMap, BTreeSet};

use sled::transaction::TransactionalTree;

use crm_model::customer::CustomerRecord;
use crm_model::search::search_tokens;

use super::{decode, storage, StoreError, TxResult};

/// The prefix of the posting blocks in the `index` tree.
pub const POSTINGS: u8 = b't';
/// The prefix of the search index of earlier versions: one key per customer and token.
pub const LEGACY_SEARCH: u8 = b's';

const BLOCK_BITS: u32 = 12;
/// Ids per block: offsets into a block fit in two bytes.
pub const BLOCK_IDS: u64 = 1 << BLOCK_BITS;
const OFFSET_MASK: u64 = BLOCK_IDS - 1;

/// Keys removed or written in one batch while a directory is rebuilt.
const REBUILD_BATCH: usize = 10_000;

/// The tokens a customer is found by; an erased customer is found by none.
pub fn tokens(record: &CustomerRecord) -> BTreeSet<String> {
    if record.erased {
        BTreeSet::new()
    } else {
        search_tokens(record)
    }
}

/// The prefix of every block of the tokens that `term` prefixes.
pub fn term_prefix(term: &str) -> Vec<u8> {
    [&[POSTINGS], term.as_bytes()].concat()
}

/// The key of the block that holds (or would hold) `id` for `token`.
pub fn block_key(token: &str, id: u64) -> Vec<u8> {
    [&[POSTINGS], token.as_bytes(), &[0], &(id >> BLOCK_BITS).to_be_bytes()].concat()
}

fn offsets(value: &[u8]) -> impl Iterator<Item = u16> + '_ {
    value.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
}

fn offset_of(id: u64) -> u16 {
    (id & OFFSET_MASK) as u16
}

/// The ids of a block, ascending.
pub fn ids_of_block<'a>(key: &[u8], value: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
    let block = key
        .len()
        .checked_sub(8)
        .map_or(0, |start| super::keys::decode_u64(&key[start..]));
    offsets(value).map(move |offset| (block << BLOCK_BITS) | u64::from(offset))
}

/// A block's value with `id` in it (once).
pub fn with_id(value: Option<&[u8]>, id: u64) -> Vec<u8> {
    let mut list: Vec<u16> = value.map(|v| offsets(v).collect()).unwrap_or_default();
    if let Err(at) = list.binary_search(&offset_of(id)) {
        list.insert(at, offset_of(id));
    }
    list.iter().flat_map(|o| o.to_be_bytes()).collect()
}

/// A block's value without `id`; `None` when nothing is left, and the key goes.
pub fn without_id(value: &[u8], id: u64) -> Option<Vec<u8>> {
    let list: Vec<u8> = offsets(value)
        .filter(|&o| o != offset_of(id))
        .flat_map(|o| o.to_be_bytes())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Moves customer `id` from the blocks of the tokens `before` to those of `after`,
/// inside a write's transaction.
pub fn move_id(
    index: &TransactionalTree,
    id: u64,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) -> TxResult<()> {
    for token in before.difference(after) {
        let key = block_key(token, id);
        if let Some(value) = index.get(&key)? {
            match without_id(&value, id) {
                Some(rest) => index.insert(key, rest)?,
                None => index.remove(key)?,
            };
        }
    }
    for token in after.difference(before) {
        let key = block_key(token, id);
        let value = index.get(&key)?;
        index.insert(key, with_id(value.as_deref(), id))?;
    }
    Ok(())
}

/// Adds customer `id` to the blocks of its tokens, outside a transaction (a restore
/// writes a new store alone).
pub fn add_to_tree(index: &sled::Tree, id: u64, tokens: &BTreeSet<String>) -> Result<(), StoreError> {
    for token in tokens {
        let key = block_key(token, id);
        let value = index.get(&key).map_err(storage)?;
        index.insert(key, with_id(value.as_deref(), id)).map_err(storage)?;
    }
    Ok(())
}

/// The ids, ascending and once each, of the customers holding a token that `term`
/// prefixes.
pub fn ids_for_term(index: &sled::Tree, term: &str) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    for entry in index.scan_prefix(term_prefix(term)) {
        let (key, value) = entry.map_err(storage)?;
        ids.extend(ids_of_block(&key, &value));
    }
    // One token's blocks come in id order (the sort then only checks it); several
    // tokens (`gar` prefixes `garcia` and `garnier`) interleave, and a customer
    // holding two of them is listed twice.
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Rewrites the search index of a register written by an earlier version (one `s`
/// key per customer and token) as posting blocks. Says whether there was one.
///
/// Crash-safe by order: the blocks are built from the records first, then the old keys
/// removed. A stop before the last old key is gone finds old keys again on the next
/// open, and starts over from the records (the blocks written so far are cleared
/// first); once the last old key is gone, the blocks are complete.
pub fn rebuild_if_legacy(index: &sled::Tree, customers: &sled::Tree) -> Result<bool, StoreError> {
    if index.scan_prefix([LEGACY_SEARCH]).next().is_none() {
        return Ok(false);
    }
    tracing::info!("rewriting the search index as posting blocks, once: the store opens when it is done");
    remove_prefix(index, &[POSTINGS])?;
    // The customers come in id order: a block is complete once the scan passes its
    // ids, and is written whole, without reading it back.
    let mut block = BTreeMap::<Vec<u8>, Vec<u8>>::new();
    let mut block_number = None;
    for entry in customers.iter() {
        let (key, value) = entry.map_err(storage)?;
        let record: CustomerRecord = decode(&value)?;
        let number = record.id >> BLOCK_BITS;
        if block_number != Some(number) {
            write_block(index, std::mem::take(&mut block))?;
            block_number = Some(number);
        }
        debug_assert_eq!(super::keys::decode_u64(&key), record.id);
        for token in tokens(&record) {
            block
                .entry(block_key(&token, record.id))
                .or_default()
                .extend(offset_of(record.id).to_be_bytes());
        }
    }
    write_block(index, block)?;
    remove_prefix(index, &[LEGACY_SEARCH])?;
    Ok(true)
}

fn write_block(index: &sled::Tree, block: BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for (key, value) in block {
        batch.insert(key, value);
    }
    index.apply_batch(batch).map_err(storage)
}

fn remove_prefix(index: &sled::Tree, prefix: &[u8]) -> Result<(), StoreError> {
    loop {
        let keys = index
            .scan_prefix(prefix)
            .keys()
            .take(REBUILD_BATCH)
            .collect::<Result<Vec<_>, _>>()
            .map_err(storage)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        keys.into_iter().for_each(|key| batch.remove(key));
        index.apply_batch(batch).map_err(storage)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(key: &[u8], value: &[u8]) -> Vec<u64> {
        ids_of_block(key, value).collect()
    }

    #[test]
    fn a_block_keeps_its_ids_sorted_and_once() {
        let id = |offset: u64| 3 * BLOCK_IDS + offset;
        let key = block_key("martin", id(0));
        let mut value = with_id(None, id(40));
        for offset in [7, 4095, 40, 0] {
            value = with_id(Some(&value), id(offset));
        }
        assert_eq!(ids(&key, &value), vec![id(0), id(7), id(40), id(4095)]);
        let value = without_id(&value, id(40)).expect("ids left");
        assert_eq!(ids(&key, &value), vec![id(0), id(7), id(4095)]);
        assert_eq!(without_id(&with_id(None, id(9)), id(9)), None);
    }

    #[test]
    fn neighbouring_ids_share_a_block_and_the_next_block_sorts_after() {
        assert_eq!(block_key("jean", 1), block_key("jean", BLOCK_IDS - 1));
        assert!(block_key("jean", BLOCK_IDS) > block_key("jean", BLOCK_IDS - 1));
        // The NUL ends the token: `jean`'s blocks all sort before `jeanne`'s.
        assert!(block_key("jean", u64::MAX >> 1) < block_key("jeanne", 0));
        assert!(block_key("jeanne", 0).starts_with(&term_prefix("jean")));
    }

    fn customer(id: u64, nom: &str, prenom: &str, erased: bool) -> CustomerRecord {
        let mut record = crm_model::NewCustomer {
            nom: nom.into(),
            prenom: prenom.into(),
            email: format!("{prenom}.{nom}.{id}@free.fr"),
            ..Default::default()
        }
        .into_record(id, uuid::Uuid::new_v4(), chrono::Utc::now());
        record.erased = erased;
        record
    }

    /// The search index as the versions before posting blocks wrote it.
    fn legacy_keys(record: &CustomerRecord) -> Vec<Vec<u8>> {
        tokens(record)
            .iter()
            .map(|token| [&[LEGACY_SEARCH], token.as_bytes(), &[0], &record.id.to_be_bytes()].concat())
            .collect()
    }

    #[test]
    fn a_legacy_search_index_is_rebuilt_as_blocks_from_the_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let (customers, index) = (db.open_tree("customers").unwrap(), db.open_tree("index").unwrap());
        let people = [
            customer(1, "Martin", "Jean", false),
            customer(2, "Garcia", "Jeanne", false),
            customer(BLOCK_IDS + 5, "Martin", "Paul", false),
            customer(BLOCK_IDS + 6, "Martin", "Luc", true),
            customer(3 * BLOCK_IDS, "Garnier", "Jean", false),
        ];
        for person in &people {
            customers
                .insert(person.id.to_be_bytes(), super::super::encode_compact(person))
                .unwrap();
            for key in legacy_keys(person) {
                index.insert(key, &[]).unwrap();
            }
        }
        // Left by a rebuild that a stop interrupted: a block that is wrong.
        index.insert(block_key("martin", 2), with_id(None, 2)).unwrap();
        index.insert([b'u', 1], &[1]).unwrap();

        assert!(rebuild_if_legacy(&index, &customers).unwrap());
        assert_eq!(index.scan_prefix([LEGACY_SEARCH]).count(), 0);
        assert_eq!(ids_for_term(&index, "martin").unwrap(), vec![1, BLOCK_IDS + 5]);
        assert_eq!(ids_for_term(&index, "jean").unwrap(), vec![1, 2, 3 * BLOCK_IDS]);
        assert_eq!(ids_for_term(&index, "gar").unwrap(), vec![2, 3 * BLOCK_IDS]);
        assert_eq!(ids_for_term(&index, "luc").unwrap(), Vec::<u64>::new());
        // Other indexes stay as they were.
        assert_eq!(index.get([b'u', 1]).unwrap().as_deref(), Some(&[1u8][..]));
        // Once rebuilt, a directory is not rebuilt again.
        assert!(!rebuild_if_legacy(&index, &customers).unwrap());
    }
}

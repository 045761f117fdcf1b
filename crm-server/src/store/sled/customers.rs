//! Customers in sled: the record and all its indexes change in one transaction.

use std::ops::Bound;

use chrono::Utc;
use crm_model::search::{query_terms, search_tokens};
use crm_model::{CustomerPatch, CustomerRecord, LedgerCause, ListQuery, NewCustomer, Page, Sort, SortKey};
use uuid::Uuid;

use super::keys::{self, decode_u64, id_of_position, index_entries, is_unique, prefix_end, sort_index, sort_position};
use super::postings;
use super::{
    abort, audit, bump_counter, decode, encode_compact, ledger, payments, storage, tickets, Register, SledStore, Tx,
    TxResult,
};
use crate::store::{CustomerStore, StoreError};

impl CustomerStore for SledStore {
    async fn create_customer(&self, new: NewCustomer) -> Result<CustomerRecord, StoreError> {
        let id_client = new.id_client.unwrap_or_else(Uuid::new_v4);
        let now = Utc::now();
        let record = self
            .transact(|tx| {
                if tx.index.get(keys::id_client_key(id_client))?.is_some() {
                    return abort(StoreError::IdClientTaken(id_client));
                }
                let id = bump_counter(tx.meta, keys::NEXT_CUSTOMER_ID, 1)?;
                let creation = new.creation(id, id_client, now);
                let mut record = creation.record;
                if let Some(opening) = creation.opening_credit {
                    ledger::append(tx, &mut record, opening, LedgerCause::Opening, None, now)?;
                }
                if let Some((date, amount)) = creation.payment {
                    payments::schedule_payment(tx, &mut record, date, amount, now)?;
                }
                tickets::match_pending(tx, None, &mut record, now)?;
                write_customer(tx, None, &record)?;
                bump_counter(tx.meta, keys::LIVE_CUSTOMERS, 1)?;
                audit::customer_changed(tx, None, &record, None, now)?;
                Ok(record)
            })
            .await?;
        self.durable().await?;
        Ok(record)
    }

    async fn update_customer(&self, id_client: Uuid, patch: CustomerPatch) -> Result<CustomerRecord, StoreError> {
        let now = Utc::now();
        let record = self
            .transact(|tx| {
                let old = live_customer_in(tx, id_client)?;
                let mut record = old.clone();
                patch.apply(&mut record, now);
                tickets::match_pending(tx, Some(&old), &mut record, now)?;
                if record != old {
                    write_customer(tx, Some(&old), &record)?;
                    audit::customer_changed(tx, Some(&old), &record, None, now)?;
                }
                Ok(record)
            })
            .await?;
        self.durable().await?;
        Ok(record)
    }

    async fn erase_customer(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = Utc::now();
        let record = self
            .transact(|tx| {
                let old = customer_in(tx, id_client)?;
                if old.erased {
                    return Ok(old);
                }
                let mut record = old.clone();
                record.erase_personal_data(now);
                write_customer(tx, Some(&old), &record)?;
                bump_counter(tx.meta, keys::LIVE_CUSTOMERS, -1)?;
                audit::customer_changed(tx, Some(&old), &record, None, now)?;
                Ok(record)
            })
            .await?;
        self.durable().await?;
        Ok(record)
    }

    async fn customer(&self, id_client: Uuid) -> Result<Option<CustomerRecord>, StoreError> {
        self.register().customer_by_index(&keys::id_client_key(id_client))
    }

    async fn customer_by_email(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError> {
        match crm_model::customer::email_key(email) {
            Some(key) => self.register().customer_by_index(&keys::email_key(&key)),
            None => Ok(None),
        }
    }

    async fn customer_by_card(&self, card: u64) -> Result<Option<CustomerRecord>, StoreError> {
        self.register().customer_by_index(&keys::card_key(card))
    }

    async fn customers_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<CustomerRecord>, StoreError> {
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.to_be_bytes().to_vec()));
        let mut out = Vec::with_capacity(limit);
        for item in self.register().customers.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (_, value) = item.map_err(storage)?;
            let record: CustomerRecord = decode(&value)?;
            if !record.erased {
                out.push(record);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// On a blocking thread: a search reads its terms' ranges of the search index (see
    /// `search`).
    async fn list_customers(&self, query: &ListQuery) -> Result<Page<CustomerRecord>, StoreError> {
        let (store, query) = (self.clone(), query.clone());
        super::blocking(move || store.list_customers_now(&query)).await
    }

    async fn customer_count(&self) -> Result<u64, StoreError> {
        Ok(self.register_with_count()?.1)
    }
}

impl SledStore {
    fn list_customers_now(&self, query: &ListQuery) -> Result<Page<CustomerRecord>, StoreError> {
        let after = query
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, query.sort))
            .transpose()?;
        // One generation of the register for the whole page, with its count (see
        // `Register`).
        let (register, count) = self.register_with_count()?;
        let (positioned, total) = match query.q.as_deref() {
            Some(q) => search(&register, q, query.sort, after.as_deref(), query.limit)?,
            None => (scan(&register, query.sort, after.as_deref(), query.limit, None)?, count),
        };
        Ok(page(positioned, query.sort, query.limit, total))
    }
}

/// A customer with where it stands in the list's order.
type Positioned = (Vec<u8>, CustomerRecord);

/// Up to `limit + 1` live customers after `after` in `sort` order, read from the
/// `customers` tree (id order) or the sort's index: a key range, never an offset. With
/// `only`, the customers whose id it refuses are skipped before they are read.
fn scan(
    register: &Register,
    sort: Sort,
    after: Option<&[u8]>,
    limit: usize,
    only: Option<&dyn Fn(u64) -> bool>,
) -> Result<Vec<Positioned>, StoreError> {
    let prefix: Vec<u8> = sort_index(sort.key).into_iter().collect();
    let tree = if prefix.is_empty() {
        &register.customers
    } else {
        &register.index
    };
    let start = [prefix.as_slice(), after.unwrap_or_default()].concat();
    let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let range = if sort.descending() {
        let upper = if after.is_some() { Bound::Excluded(start) } else { end };
        tree.range::<Vec<u8>, _>((Bound::Included(prefix.clone()), upper))
    } else {
        let lower = if after.is_some() {
            Bound::Excluded(start)
        } else {
            Bound::Included(start)
        };
        tree.range::<Vec<u8>, _>((lower, end))
    };
    let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if sort.descending() {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut out = Vec::with_capacity(limit + 1);
    for item in iter {
        let (key, value) = item.map_err(storage)?;
        if only.is_some_and(|only| !only(id_of_position(&key))) {
            continue;
        }
        let record = if prefix.is_empty() {
            decode::<CustomerRecord>(&value)?
        } else {
            match register.customer_by_id(id_of_position(&key))? {
                Some(record) => record,
                None => continue,
            }
        };
        if record.erased {
            continue;
        }
        out.push((key[prefix.len()..].to_vec(), record));
        if out.len() > limit {
            break;
        }
    }
    Ok(out)
}

/// The customers matching `q`, through the search index: every term must prefix a
/// token of the customer. The matching ids come from the terms' key ranges of the
/// index (see [`matching_ids`]), so the total is exact without listing the customers;
/// then only the customers of the page are read (or, in another order than the id's,
/// the matches when they are few: see [`SORT_IN_MEMORY_MAX`]). Answers up to
/// `limit + 1` after `after`, and the total.
fn search(
    register: &Register,
    q: &str,
    sort: Sort,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(Vec<Positioned>, u64), StoreError> {
    if let Ok(id_client) = Uuid::parse_str(q.trim()) {
        let found: Vec<_> = register
            .customer_by_index(&keys::id_client_key(id_client))?
            .filter(|r| !r.erased)
            .into_iter()
            .collect();
        let total = found.len() as u64;
        return Ok((position_and_cut(found, sort, after, limit), total));
    }
    let ids = matching_ids(register, &query_terms(q))?;
    let total = ids.len() as u64;
    let positioned = if sort.key == SortKey::Id {
        page_of_ids(register, &ids, sort, after, limit)?
    } else if ids.len() <= SORT_IN_MEMORY_MAX {
        let mut found = Vec::with_capacity(ids.len());
        for &id in &ids {
            found.extend(register.customer_by_id(id)?.filter(|r| !r.erased));
        }
        position_and_cut(found, sort, after, limit)
    } else {
        // Many matches: the sort's index in order, skipping the ids that do not match
        // before reading anything, until the page is full.
        scan(register, sort, after, limit, Some(&|id| ids.binary_search(&id).is_ok()))?
    };
    Ok((positioned, total))
}

/// Up to this many matches in an order other than the id's are read and sorted in
/// memory; more, and the sort's index is walked instead (at 1,000,000 customers, a
/// match of 2,000 is one customer in 500: a page of 50 walks about 25,000 index keys,
/// about the cost of reading and sorting the 2,000). That holds when the matches are
/// spread through the order; matches bunched late in it walk further (`q=martin`
/// sorted by name passes every name before "martin").
const SORT_IN_MEMORY_MAX: usize = 2_000;

/// The ids, in order, of the customers every term prefixes a token of. The terms go
/// longest (most selective) first: each one's ids come from its key range of the
/// search index, intersected with the ids so far; once those are few (at most
/// [`CHECK_ON_RECORDS_MAX`]), the remaining terms are checked on their records
/// instead, so that a short term matching half the register (`06`, a phone's start)
/// does not cost a read of half the index.
fn matching_ids(register: &Register, terms: &[String]) -> Result<Vec<u64>, StoreError> {
    let mut terms: Vec<&String> = terms.iter().collect();
    terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let mut ids: Option<Vec<u64>> = None;
    for (i, term) in terms.iter().enumerate() {
        if let Some(few) = ids.as_mut().filter(|ids| ids.len() <= CHECK_ON_RECORDS_MAX) {
            let rest = &terms[i..];
            let mut kept = Vec::with_capacity(few.len());
            for &id in few.iter() {
                if let Some(record) = register.customer_by_id(id)? {
                    let tokens = search_tokens(&record);
                    if rest
                        .iter()
                        .all(|t| tokens.iter().any(|tok| tok.starts_with(t.as_str())))
                    {
                        kept.push(id);
                    }
                }
            }
            return Ok(kept);
        }
        let range = postings::ids_for_term(&register.index, term)?;
        ids = Some(match ids {
            None => range,
            Some(mut so_far) => {
                so_far.retain(|id| range.binary_search(id).is_ok());
                so_far
            }
        });
    }
    Ok(ids.unwrap_or_default())
}

/// Up to this many candidates of a search are checked on their records for the
/// remaining terms (a record read each) rather than through the index.
const CHECK_ON_RECORDS_MAX: usize = 1_000;

/// Up to `limit + 1` of the customers `ids` (in order) after `after`, in id order.
fn page_of_ids(
    register: &Register,
    ids: &[u64],
    sort: Sort,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Positioned>, StoreError> {
    let after = after.map(decode_u64);
    let beyond: Box<dyn Iterator<Item = &u64>> = if sort.descending() {
        let end = after.map_or(ids.len(), |a| ids.partition_point(|&id| id < a));
        Box::new(ids[..end].iter().rev())
    } else {
        let start = after.map_or(0, |a| ids.partition_point(|&id| id <= a));
        Box::new(ids[start..].iter())
    };
    let mut out = Vec::with_capacity(limit + 1);
    for &id in beyond {
        if let Some(record) = register.customer_by_id(id)?.filter(|r| !r.erased) {
            out.push((id.to_be_bytes().to_vec(), record));
            if out.len() > limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Orders matching customers by `sort` and keeps up to `limit + 1` after `after`.
fn position_and_cut(found: Vec<CustomerRecord>, sort: Sort, after: Option<&[u8]>, limit: usize) -> Vec<Positioned> {
    let mut positioned: Vec<Positioned> = found.into_iter().map(|r| (sort_position(&r, sort.key), r)).collect();
    positioned.sort_by(|a, b| a.0.cmp(&b.0));
    if sort.descending() {
        positioned.reverse();
    }
    positioned
        .into_iter()
        .filter(|(pos, _)| match after {
            None => true,
            Some(a) if sort.descending() => pos.as_slice() < a,
            Some(a) => pos.as_slice() > a,
        })
        .take(limit + 1)
        .collect()
}

/// Cuts `limit + 1` positioned customers into a page whose cursor is the last position.
fn page(mut positioned: Vec<Positioned>, sort: Sort, limit: usize, total: u64) -> Page<CustomerRecord> {
    let more = positioned.len() > limit;
    positioned.truncate(limit);
    let next_cursor = if more {
        positioned.last().map(|(pos, _)| encode_cursor(sort, pos))
    } else {
        None
    };
    Page {
        items: positioned.into_iter().map(|(_, r)| r).collect(),
        next_cursor,
        total,
    }
}

/// A cursor names its sort, so that a cursor of another sort is refused, not misread.
fn encode_cursor(sort: Sort, position: &[u8]) -> String {
    format!("{sort}.{}", hex::encode(position))
}

fn decode_cursor(cursor: &str, sort: Sort) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::BadCursor(format!("cursor {cursor:?} is not a cursor of this list in sort {sort}"));
    let (name, position) = cursor.rsplit_once('.').ok_or_else(bad)?;
    if name != sort.to_string() {
        return Err(bad());
    }
    let position = hex::decode(position).map_err(|_| bad())?;
    let well_formed = match sort.key {
        SortKey::Id => position.len() == 8,
        SortKey::Credit | SortKey::PanierMoyen => position.len() == 16,
        SortKey::Nom => position.len() >= 9,
    };
    if well_formed {
        Ok(position)
    } else {
        Err(bad())
    }
}

/// A customer by sequence number, erased ones included.
pub(crate) fn customer_with_id(tx: &Tx<'_>, id: u64) -> TxResult<Option<CustomerRecord>> {
    match tx.customers.get(id.to_be_bytes())? {
        Some(bytes) => decode(&bytes).map(Some).or_else(abort),
        None => Ok(None),
    }
}

/// A live customer through a unique index key (`keys::card_key`...).
pub(crate) fn live_customer_by_index(tx: &Tx<'_>, index_key: &[u8]) -> TxResult<Option<CustomerRecord>> {
    match tx.index.get(index_key)? {
        Some(id) => Ok(customer_with_id(tx, decode_u64(&id))?.filter(|r| !r.erased)),
        None => Ok(None),
    }
}

fn customer_in(tx: &Tx<'_>, id_client: Uuid) -> TxResult<CustomerRecord> {
    let Some(id) = tx.index.get(keys::id_client_key(id_client))? else {
        return abort(StoreError::CustomerNotFound);
    };
    match tx.customers.get(id)? {
        Some(bytes) => decode(&bytes).or_else(abort),
        None => abort(StoreError::CustomerNotFound),
    }
}

/// A customer that has not been erased; an erased one can no longer be changed.
pub(crate) fn live_customer_in(tx: &Tx<'_>, id_client: Uuid) -> TxResult<CustomerRecord> {
    let record = customer_in(tx, id_client)?;
    if record.erased {
        return abort(StoreError::CustomerNotFound);
    }
    Ok(record)
}

/// Writes a customer and moves its index entries from `old`'s to its own, refusing a
/// unique key (IdClient, e-mail, card) that another customer holds.
pub(crate) fn write_customer(tx: &Tx<'_>, old: Option<&CustomerRecord>, record: &CustomerRecord) -> TxResult<()> {
    // Most writes move only money: then only the money sort entries can change, and
    // the search tokens need not be computed again.
    let same_identity = old.is_some_and(|old| old.same_identity(record));
    let entries = if same_identity {
        keys::balance_entries
    } else {
        index_entries
    };
    let before = old.map(entries).unwrap_or_default();
    let after = entries(record);
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        tx.index.remove(key.as_slice())?;
    }
    for (key, value) in after.iter().filter(|(k, v)| before.get(*k) != Some(*v)) {
        if is_unique(key) {
            if tx.reserved_for_other(key, record.id) {
                return abort(reserved_by_import(key));
            }
            if let Some(holder) = tx.index.get(key.as_slice())? {
                let holder_id = decode_u64(&holder);
                if holder_id != record.id {
                    return abort(conflict(tx, key, holder_id, record)?);
                }
            }
        }
        tx.index.insert(key.as_slice(), value.as_slice())?;
    }
    if !same_identity {
        let before = old.map(postings::tokens).unwrap_or_default();
        postings::move_id(tx.index, record.id, &before, &postings::tokens(record))?;
    }
    tx.customers.insert(&record.id.to_be_bytes(), encode_compact(record))?;
    Ok(())
}

/// The refusal of a unique key that the import being written gives another customer.
fn reserved_by_import(key: &[u8]) -> StoreError {
    let field = match key[0] {
        keys::BY_EMAIL => "Email",
        keys::BY_CARD => "CarteFid",
        _ => "IdClient",
    };
    StoreError::ReservedByImport { field }
}

fn conflict(tx: &Tx<'_>, key: &[u8], holder_id: u64, record: &CustomerRecord) -> TxResult<StoreError> {
    let holder: CustomerRecord = match tx.customers.get(holder_id.to_be_bytes())? {
        Some(bytes) => decode(&bytes).or_else(abort)?,
        None => {
            return Ok(StoreError::Storage(format!(
                "index points to missing customer {holder_id}"
            )))
        }
    };
    Ok(match key[0] {
        keys::BY_EMAIL => StoreError::EmailTaken {
            email: record.email.clone(),
            existing: holder.id_client,
        },
        keys::BY_CARD => StoreError::CardTaken {
            card: record.carte_fid.unwrap_or_default(),
            existing: holder.id_client,
        },
        _ => StoreError::IdClientTaken(record.id_client),
    })
}

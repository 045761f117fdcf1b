//! The audit trail in sled: each write transaction inserts its entries in the `audit`
//! tree, in the same transaction as the change, so a change is never without its entry.
//!
//! Keys of the `audit` tree:
//! - `e` + sequence number: the JSON [`AuditEntry`];
//! - `c` + IdClient + sequence number: empty, a customer's entries in order;
//! - `n` + IdClient: how many entries the customer has (a counter, never a scan).
//!
//! The last sequence number is the `last_audit_seq` counter of `meta`. Entries are only
//! ever inserted, never removed, as the backup's snapshot needs (see [`super::backup`]).

use std::ops::Bound;

use chrono::{DateTime, Utc};
use crm_model::audit::{self, AuditEntry, WriteOrigin};
use crm_model::{CustomerRecord, Page};
use uuid::Uuid;

use super::keys::{decode_u64, prefix_end};
use super::{bump_counter, decode, encode, read_counter, storage, SledStore, Tx, TxResult};
use crate::store::{AuditQuery, AuditStore, StoreError};

/// The tree of the trail.
pub(crate) const TREE: &str = "audit";

/// The `meta` counter of the last entry's sequence number.
pub(crate) const LAST_AUDIT_SEQ: &[u8] = b"last_audit_seq";

const ENTRY: u8 = b'e';
const BY_CUSTOMER: u8 = b'c';
const CUSTOMER_COUNT: u8 = b'n';

/// The prefix of every entry (the others are indexes, rebuilt by a restore).
pub(crate) const ENTRIES: &[u8] = &[ENTRY];

pub(crate) fn entry_key(seq: u64) -> Vec<u8> {
    [&[ENTRY], seq.to_be_bytes().as_slice()].concat()
}

fn customer_prefix(id_client: Uuid) -> Vec<u8> {
    [&[BY_CUSTOMER], id_client.as_bytes().as_slice()].concat()
}

fn customer_count_key(id_client: Uuid) -> Vec<u8> {
    [&[CUSTOMER_COUNT], id_client.as_bytes().as_slice()].concat()
}

/// Records one entry for the transaction's origin.
pub(crate) fn record(tx: &Tx<'_>, id_client: Option<Uuid>, summary: String, at: DateTime<Utc>) -> TxResult<()> {
    record_as(tx, tx.origin, id_client, summary, at)
}

/// Records one entry for `origin` (an import resumed at start records its own).
pub(crate) fn record_as(
    tx: &Tx<'_>,
    origin: &WriteOrigin,
    id_client: Option<Uuid>,
    summary: String,
    at: DateTime<Utc>,
) -> TxResult<()> {
    let seq = bump_counter(tx.meta, LAST_AUDIT_SEQ, 1)?;
    insert(tx, &AuditEntry::new(seq, at, origin, id_client, summary))
}

/// Inserts an entry and its customer index (the record above, and a restore).
fn insert(tx: &Tx<'_>, entry: &AuditEntry) -> TxResult<()> {
    tx.audit.insert(entry_key(entry.seq), encode(entry))?;
    if let Some(id_client) = entry.id_client {
        let key = [customer_prefix(id_client), entry.seq.to_be_bytes().to_vec()].concat();
        tx.audit.insert(key, &[])?;
        let count_key = customer_count_key(id_client);
        let count = tx.audit.get(&count_key)?.map_or(0, |v| decode_u64(&v));
        tx.audit.insert(count_key, &(count + 1).to_be_bytes())?;
    }
    Ok(())
}

/// Records what a write did to a customer (nothing when nothing an auditor cares about
/// changed), with `extra` first when the write was about more than the record (a
/// payment).
pub(crate) fn customer_changed(
    tx: &Tx<'_>,
    before: Option<&CustomerRecord>,
    after: &CustomerRecord,
    extra: Option<String>,
    at: DateTime<Utc>,
) -> TxResult<()> {
    let change = audit::customer_change(before, after);
    let summary = match (extra, change) {
        (Some(extra), Some(change)) => format!("{extra}; {change}"),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => return Ok(()),
    };
    record(tx, Some(after.id_client), summary, at)
}

impl SledStore {
    /// Restores one entry of a dump, outside transactions (a restore is alone).
    pub(crate) fn restore_audit_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let tree = &self.inner.audit;
        tree.insert(entry_key(entry.seq), encode(entry)).map_err(storage)?;
        if let Some(id_client) = entry.id_client {
            let key = [customer_prefix(id_client), entry.seq.to_be_bytes().to_vec()].concat();
            tree.insert(key, &[]).map_err(storage)?;
            let count_key = customer_count_key(id_client);
            let count = tree.get(&count_key).map_err(storage)?.map_or(0, |v| decode_u64(&v));
            tree.insert(count_key, &(count + 1).to_be_bytes()).map_err(storage)?;
        }
        let last = read_counter(&self.inner.meta, LAST_AUDIT_SEQ)?;
        if entry.seq > last {
            self.inner
                .meta
                .insert(LAST_AUDIT_SEQ, &entry.seq.to_be_bytes())
                .map_err(storage)?;
        }
        Ok(())
    }

    fn audit_entry(&self, seq: u64) -> Result<AuditEntry, StoreError> {
        match self.inner.audit.get(entry_key(seq)).map_err(storage)? {
            Some(bytes) => decode(&bytes),
            None => Err(StoreError::Storage(format!(
                "the audit index points to missing entry {seq}"
            ))),
        }
    }
}

impl AuditStore for SledStore {
    fn acting_for(&self, origin: WriteOrigin) -> Self {
        SledStore {
            inner: self.inner.clone(),
            origin: std::sync::Arc::new(origin),
        }
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        let tree = &self.inner.audit;
        let (prefix, total) = match query.customer {
            None => (vec![ENTRY], read_counter(&self.inner.meta, LAST_AUDIT_SEQ)?),
            Some(id_client) => {
                let count = tree
                    .get(customer_count_key(id_client))
                    .map_err(storage)?
                    .map_or(0, |v| decode_u64(&v));
                (customer_prefix(id_client), count)
            }
        };
        let lowest = Bound::Included(prefix.clone());
        let highest = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let at = |seq: u64| [prefix.as_slice(), &seq.to_be_bytes()].concat();
        let range = match (query.after, query.newest_first) {
            (None, _) => tree.range::<Vec<u8>, _>((lowest, highest)),
            (Some(after), false) => tree.range::<Vec<u8>, _>((Bound::Excluded(at(after)), highest)),
            (Some(after), true) => tree.range::<Vec<u8>, _>((lowest, Bound::Excluded(at(after)))),
        };
        let keys: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = if query.newest_first {
            Box::new(range.keys().rev())
        } else {
            Box::new(range.keys())
        };
        let mut items = Vec::with_capacity(query.limit.min(1000));
        let mut more = false;
        for key in keys {
            let key = key.map_err(storage)?;
            if items.len() == query.limit {
                more = true;
                break;
            }
            let seq = decode_u64(&key[key.len() - 8..]);
            items.push(self.audit_entry(seq)?);
        }
        let next_cursor = items
            .last()
            .filter(|_| more)
            .map(|entry: &AuditEntry| entry.seq.to_string());
        Ok(Page {
            items,
            next_cursor,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CustomerStore;
    use crm_model::{CustomerPatch, NewCustomer};
    use futures::executor::block_on;

    fn all(store: &SledStore, customer: Option<Uuid>) -> Vec<AuditEntry> {
        let query = AuditQuery {
            customer,
            after: None,
            limit: 100,
            newest_first: false,
        };
        block_on(store.audit(&query)).unwrap().items
    }

    #[test]
    fn a_refused_write_records_nothing_and_each_handle_records_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 4 * 1024 * 1024).unwrap();
        let new = |email: &str| NewCustomer {
            nom: "A".into(),
            email: email.into(),
            ..Default::default()
        };
        let till = store.acting_for(WriteOrigin::new("till", "POST /api/v1/customers"));
        let a = block_on(till.create_customer(new("a@x.fr"))).unwrap();
        let b = block_on(store.create_customer(new("b@x.fr"))).unwrap();
        // Refused whole (the e-mail is A's): neither the change nor its entry.
        assert!(block_on(till.create_customer(new("a@x.fr"))).is_err());
        let patch = CustomerPatch {
            email: Some("a@x.fr".into()),
            ..Default::default()
        };
        assert!(block_on(store.update_customer(b.id_client, patch)).is_err());
        let entries = all(&store, None);
        let origins: Vec<(&str, &str, Option<Uuid>)> = entries
            .iter()
            .map(|e| (e.actor.as_str(), e.route.as_str(), e.id_client))
            .collect();
        assert_eq!(
            origins,
            [
                ("till", "POST /api/v1/customers", Some(a.id_client)),
                ("local", "-", Some(b.id_client))
            ]
        );
        assert_eq!(read_counter(&store.inner.meta, LAST_AUDIT_SEQ).unwrap(), 2);
        assert_eq!(all(&store, Some(b.id_client)), entries[1..]);
    }
}

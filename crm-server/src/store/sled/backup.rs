//! Backups in sled: the export of a consistent snapshot while writes go on, and the
//! restore of a dump into a new data directory (the format: [`crm_model::backup`]).
//!
//! # A snapshot without stopping writes
//!
//! sled 0.34 has no snapshots: an iterator sees writes made while it runs, and a
//! transaction cannot span a scan of a million customers (it holds every key it reads
//! in memory, and sled runs one at a time). Holding the store's write gate as a
//! reader, as writers do, only keeps imports out; holding it exclusively, or the
//! writers' turn, for the whole export would stop every write for as long as the dump
//! takes. So the export takes a *copy-on-write* snapshot instead:
//!
//! 1. It holds the write gate shared for its whole run, so no import (which takes the
//!    gate exclusively, waiting for it) replaces the register or writes batches under
//!    it; an export that finds an import running is refused with `503`.
//! 2. Between two transactions (holding the writers' turn for an instant) it turns on
//!    the *before-images*: from then on, every transaction that changes a key of a
//!    tree the dump holds also writes, in the same atomic write, the value that key
//!    had before (or that it had none) into the `backup_before_images` tree, the first
//!    time it changes it. That instant is the snapshot.
//! 3. It scans the trees: a key with a before-image had that value at the snapshot (or
//!    did not exist yet); any other key has not changed since. The trees a dump holds
//!    are only ever inserted into, never removed from (customers are erased by a
//!    rewrite, ledgers and tickets only grow), so the scan meets every key of the
//!    snapshot.
//! 4. It turns the before-images off (again between two transactions) and clears them.
//!
//! Writes meanwhile cost one more read and write per key they change, on disk, not in
//! memory; the export's memory is one record at a time whatever the register's size.
//! The indexes are not dumped: a restore rebuilds them from the records.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::TryLockError;

use crm_model::backup::{BackupCheck, BackupCounts, BackupError, BackupRecord};
use crm_model::{CustomerRecord, LedgerEntry, PaymentRecord, PaymentStatus, TicketRecord};
use futures::StreamExt;
use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::IVec;
use tokio::sync::mpsc;

use super::keys::{self, decode_u64, index_entries, is_unique};
use super::postings;
use super::{
    audit, decode, encode, encode_compact, ledger, loyalty, payments, read_counter, storage, tickets, SledStore,
};
use crate::store::{BackupRecordStream, BackupStore, ExportError, RestoreError, StoreAdmin, StoreError};

type UnabortableTransactionResult<T> = Result<T, UnabortableTransactionError>;

/// The tree of before-images.
pub(crate) const BEFORE_IMAGES: &str = "backup_before_images";

/// The counters of the `meta` tree a dump carries (the live-customer count is rebuilt
/// by a restore, the register generation starts again at 0).
const COUNTERS: [&[u8]; 6] = [
    keys::NEXT_CUSTOMER_ID,
    tickets::LAST_TICKET_SEQ,
    tickets::LAST_ARTICLE_ID,
    payments::LAST_PAYMENT_ID,
    loyalty::LAST_ISSUED_CARD,
    audit::LAST_AUDIT_SEQ,
];

const CONSUMER_PREFIX: &[u8] = b"consumer:";
const CREDIT_KEY_PREFIX: &[u8] = b"credit:";

/// The trees whose changes keep before-images, by the byte that starts their keys in
/// the before-image tree.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(crate) enum Tag {
    Customers = b'c',
    Ledger = b'l',
    Meta = b'm',
    Tickets = b't',
    Payments = b'p',
    Idempotency = b'i',
    Audit = b'a',
}

fn image_key(tag: Tag, key: &[u8]) -> Vec<u8> {
    [&[tag as u8], key].concat()
}

/// A before-image: `0` when the key did not exist, else `1` and the value.
fn image(old: Option<&IVec>) -> Vec<u8> {
    match old {
        None => vec![0],
        Some(value) => [&[1u8], value.as_ref()].concat(),
    }
}

/// A tree of a transaction that, while an export runs, keeps the value each key had
/// before the transaction changed it (see the module). Same methods as sled's
/// [`TransactionalTree`], so the store's code reads the same; deliberately no `Deref`
/// to it, which would let a write bypass the before-image.
#[derive(Clone, Copy)]
pub(crate) struct SnapshotTree<'a> {
    tree: &'a TransactionalTree,
    before: Option<(&'a TransactionalTree, Tag)>,
}

impl<'a> SnapshotTree<'a> {
    pub(crate) fn new(tree: &'a TransactionalTree, before: Option<&'a TransactionalTree>, tag: Tag) -> Self {
        SnapshotTree {
            tree,
            before: before.map(|b| (b, tag)),
        }
    }

    pub(crate) fn get<K: AsRef<[u8]>>(&self, key: K) -> UnabortableTransactionResult<Option<IVec>> {
        self.tree.get(key)
    }

    pub(crate) fn insert<K, V>(&self, key: K, value: V) -> UnabortableTransactionResult<Option<IVec>>
    where
        K: AsRef<[u8]> + Into<IVec>,
        V: Into<IVec>,
    {
        let image_key = self.before.map(|(_, tag)| image_key(tag, key.as_ref()));
        let old = self.tree.insert(key, value)?;
        self.keep(image_key, old.as_ref())?;
        Ok(old)
    }

    pub(crate) fn remove<K>(&self, key: K) -> UnabortableTransactionResult<Option<IVec>>
    where
        K: AsRef<[u8]> + Into<IVec>,
    {
        let image_key = self.before.map(|(_, tag)| image_key(tag, key.as_ref()));
        let old = self.tree.remove(key)?;
        self.keep(image_key, old.as_ref())?;
        Ok(old)
    }

    /// The first change of a key since the snapshot keeps its value at the snapshot.
    fn keep(&self, image_key: Option<Vec<u8>>, old: Option<&IVec>) -> UnabortableTransactionResult<()> {
        if let (Some((before, _)), Some(image_key)) = (self.before, image_key) {
            if before.get(&image_key)?.is_none() {
                before.insert(image_key, image(old))?;
            }
        }
        Ok(())
    }
}

impl SledStore {
    /// Turns the before-images on or off between two transactions.
    fn set_export_running(&self, running: bool) {
        let _turn = self.inner.writer_turn.blocking_lock();
        self.inner.export_running.store(running, Ordering::Release);
    }

    /// The value `key` of a tree had at the snapshot, given its value now.
    fn at_snapshot(&self, tag: Tag, key: &[u8], now: IVec) -> Result<Option<IVec>, StoreError> {
        match self.inner.before_images.get(image_key(tag, key)).map_err(storage)? {
            None => Ok(Some(now)),
            Some(image) if image.first() == Some(&1) => Ok(Some(IVec::from(&image[1..]))),
            Some(_) => Ok(None),
        }
    }

    /// Every entry of `tree` under `prefix`, as it was at the snapshot.
    fn snapshot_scan<'s>(
        &'s self,
        tree: &sled::Tree,
        tag: Tag,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + 's {
        tree.scan_prefix(prefix).filter_map(move |entry| {
            let (key, now) = match entry {
                Ok(entry) => entry,
                Err(e) => return Some(Err(storage(e))),
            };
            self.at_snapshot(tag, &key, now)
                .map(|value| value.map(|value| (key, value)))
                .transpose()
        })
    }

    fn export_records<E: From<StoreError>>(
        &self,
        emit: &mut dyn FnMut(BackupRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let register = self.register();
        let inner = &self.inner;
        for entry in self.snapshot_scan(&register.customers, Tag::Customers, &[]) {
            let (key, value) = entry?;
            let customer: CustomerRecord = decode(&value)?;
            emit(BackupRecord::Customer { customer })?;
            for entry in self.snapshot_scan(&inner.ledger, Tag::Ledger, &key) {
                let entry: LedgerEntry = decode(&entry?.1)?;
                emit(BackupRecord::Ledger {
                    customer: decode_u64(&key),
                    entry,
                })?;
            }
        }
        for entry in self.snapshot_scan(&inner.tickets, Tag::Tickets, &[]) {
            let ticket: TicketRecord = decode(&entry?.1)?;
            emit(BackupRecord::Ticket { ticket })?;
        }
        for entry in self.snapshot_scan(&inner.payments, Tag::Payments, &[]) {
            let payment: PaymentRecord = decode(&entry?.1)?;
            emit(BackupRecord::Payment { payment })?;
        }
        for entry in self.snapshot_scan(&inner.idempotency, Tag::Idempotency, CREDIT_KEY_PREFIX) {
            let (key, customer) = entry?;
            emit(BackupRecord::CreditKey {
                key: String::from_utf8_lossy(&key[CREDIT_KEY_PREFIX.len()..]).into_owned(),
                customer: decode_u64(&customer),
            })?;
        }
        for entry in self.snapshot_scan(&inner.meta, Tag::Meta, CONSUMER_PREFIX) {
            let (key, cursor) = entry?;
            emit(BackupRecord::Consumer {
                name: String::from_utf8_lossy(&key[CONSUMER_PREFIX.len()..]).into_owned(),
                cursor: decode_u64(&cursor),
            })?;
        }
        for entry in self.snapshot_scan(&inner.audit, Tag::Audit, audit::ENTRIES) {
            let entry = decode(&entry?.1)?;
            emit(BackupRecord::Audit { entry })?;
        }
        for name in COUNTERS {
            let now = inner.meta.get(name).map_err(storage)?;
            let value = match now {
                Some(now) => self.at_snapshot(Tag::Meta, name, now)?,
                None => None,
            };
            if let Some(value) = value {
                emit(BackupRecord::Counter {
                    name: String::from_utf8_lossy(name).into_owned(),
                    value: decode_u64(&value),
                })?;
            }
        }
        Ok(())
    }

    /// Restores a dump into `dir`, a new data directory (missing or empty, else
    /// refused), streaming: records are written as they are read, and the indexes are
    /// rebuilt from them. A dump that is refused part way (unreadable, cut short,
    /// inconsistent) leaves `dir` as it was: empty.
    pub async fn restore_into(
        dir: &Path,
        cache_bytes: u64,
        records: BackupRecordStream,
    ) -> Result<BackupCounts, RestoreError> {
        let existed = match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(RestoreError::NotEmpty(dir.display().to_string()));
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(RestoreError::Store(storage(format!("{}: {e}", dir.display())))),
        };
        let outcome = match SledStore::open(dir, cache_bytes) {
            // The store is dropped (closed) at the end of this arm.
            Ok(store) => match store.restore(records).await {
                Ok(counts) => store.flush().await.map(|()| counts).map_err(RestoreError::from),
                Err(e) => Err(e),
            },
            Err(e) => Err(RestoreError::Store(e)),
        };
        if outcome.is_err() {
            // The store is closed by now: leave the directory as it was.
            let _ = fs::remove_dir_all(dir);
            if existed {
                let _ = fs::create_dir_all(dir);
            }
        }
        outcome
    }

    /// Whether nothing was ever written to the store (a restore needs one so).
    fn is_new(&self) -> Result<bool, StoreError> {
        let register = self.register();
        let i = &self.inner;
        for tree in [&register.customers, &i.ledger, &i.tickets, &i.payments, &i.idempotency] {
            if !tree.is_empty() {
                return Ok(false);
            }
        }
        Ok(read_counter(&i.meta, keys::NEXT_CUSTOMER_ID)? == 0)
    }

    /// Writes the records, each checked by a [`BackupCheck`] (whoever read them), and
    /// says whether the dump was complete.
    fn restore_records(
        &self,
        records: &mut dyn Iterator<Item = Result<BackupRecord, BackupError>>,
    ) -> Result<BackupCounts, RestoreError> {
        let register = self.register();
        let inner = &self.inner;
        let mut live_customers = 0u64;
        let mut line = 0u64;
        let mut check = BackupCheck::new();
        let refuse = |line: u64, message: String| RestoreError::Dump(BackupError { line, message });
        for record in records {
            line += 1;
            let record = record?;
            check.accept(&record)?;
            match record {
                BackupRecord::Customer { customer } => {
                    let id = customer.id.to_be_bytes();
                    if register.customers.contains_key(id).map_err(storage)? {
                        return Err(refuse(line, format!("customer {} appears twice", customer.id)));
                    }
                    for (key, value) in index_entries(&customer) {
                        if is_unique(&key) && register.index.contains_key(&key).map_err(storage)? {
                            return Err(refuse(
                                line,
                                format!(
                                    "customer {} shares an IdClient, e-mail or card with another",
                                    customer.id
                                ),
                            ));
                        }
                        register.index.insert(key, value).map_err(storage)?;
                    }
                    postings::add_to_tree(&register.index, customer.id, &postings::tokens(&customer))?;
                    register
                        .customers
                        .insert(id, encode_compact(&customer))
                        .map_err(storage)?;
                    live_customers += u64::from(!customer.erased);
                }
                BackupRecord::Ledger { customer, entry } => {
                    inner
                        .ledger
                        .insert(ledger::entry_key(customer, entry.seq), encode_compact(&entry))
                        .map_err(storage)?;
                }
                BackupRecord::Ticket { ticket } => {
                    let seq = ticket.seq.to_be_bytes();
                    let uid = tickets::uid_key(&ticket.ticket.uid);
                    if inner.ticket_index.insert(uid, &seq).map_err(storage)?.is_some() {
                        return Err(refuse(line, format!("ticket {} appears twice", ticket.ticket.uid)));
                    }
                    match ticket.customer {
                        Some(customer) if !ticket.ticket.unmatched => {
                            let key = tickets::customer_ticket_key(customer, ticket.seq);
                            inner.ticket_index.insert(key, &[]).map_err(storage)?;
                        }
                        _ if ticket.ticket.unmatched => {
                            for client in ticket.ticket.client_refs() {
                                append_id(&inner.ticket_index, tickets::pending_key(&client), ticket.seq)?;
                            }
                        }
                        _ => {}
                    }
                    inner.tickets.insert(seq, encode(&ticket)).map_err(storage)?;
                }
                BackupRecord::Payment { payment } => {
                    let (id, customer) = (payment.payment.id, payment.customer);
                    let index = &inner.payment_index;
                    index
                        .insert(payments::history_key(customer, id), &[])
                        .map_err(storage)?;
                    if payment.payment.status == PaymentStatus::Pending {
                        index
                            .insert(payments::due_key(payment.payment.date, id), &[])
                            .map_err(storage)?;
                        append_id(index, payments::pending_key(customer), id)?;
                    }
                    inner
                        .payments
                        .insert(id.to_be_bytes(), encode(&payment))
                        .map_err(storage)?;
                }
                BackupRecord::CreditKey { key, customer } => {
                    inner
                        .idempotency
                        .insert(loyalty::credit_key(&key), &customer.to_be_bytes())
                        .map_err(storage)?;
                }
                BackupRecord::Consumer { name, cursor } => {
                    inner
                        .meta
                        .insert(tickets::consumer_key(&name), &cursor.to_be_bytes())
                        .map_err(storage)?;
                }
                BackupRecord::Counter { name, value } => {
                    let Some(counter) = COUNTERS.into_iter().find(|c| *c == name.as_bytes()) else {
                        return Err(refuse(line, format!("unknown counter {name:?}")));
                    };
                    inner.meta.insert(counter, &value.to_be_bytes()).map_err(storage)?;
                }
                BackupRecord::Audit { entry } => self.restore_audit_entry(&entry)?,
                BackupRecord::Header { .. } | BackupRecord::Trailer { .. } => {}
            }
        }
        let counts = check.finish()?;
        inner
            .meta
            .insert(keys::LIVE_CUSTOMERS, &live_customers.to_be_bytes())
            .map_err(storage)?;
        Ok(counts)
    }
}

/// Appends `id` to the list of ids stored under `key` (pending tickets of a client key,
/// pending payments of a customer), as the store's transactions keep them.
fn append_id(tree: &sled::Tree, key: Vec<u8>, id: u64) -> Result<(), StoreError> {
    let mut list = tree.get(&key).map_err(storage)?.map_or_else(Vec::new, |v| v.to_vec());
    list.extend_from_slice(&id.to_be_bytes());
    tree.insert(key, list).map_err(storage)?;
    Ok(())
}

impl SledStore {
    /// The export of [`BackupStore::export`] on the calling thread, which it blocks,
    /// handing each record to `emit`; an error of `emit` stops it.
    pub(crate) fn export_blocking<E: From<StoreError>>(
        &self,
        emit: &mut dyn FnMut(BackupRecord) -> Result<(), E>,
    ) -> Result<BackupCounts, E> {
        let _one_export = self.inner.export_lock.lock().unwrap_or_else(|p| p.into_inner());
        let _no_import = match self.inner.write_gate.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(StoreError::ImportRunning.into()),
            Err(TryLockError::Poisoned(guard)) => guard.into_inner(),
        };
        self.inner.before_images.clear().map_err(storage)?;
        self.set_export_running(true);
        let mut counts = BackupCounts::default();
        let outcome = emit(BackupRecord::header(chrono::Utc::now())).and_then(|()| {
            self.export_records(&mut |record| {
                counts.count(&record);
                emit(record)
            })
        });
        self.set_export_running(false);
        self.inner.before_images.clear().map_err(storage)?;
        outcome?;
        emit(BackupRecord::Trailer { counts })?;
        Ok(counts)
    }
}

/// Both run on a blocking thread: sled's scans and writes block, and they are long.
impl BackupStore for SledStore {
    async fn export(&self, sink: mpsc::Sender<BackupRecord>) -> Result<BackupCounts, ExportError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.export_blocking(&mut |record| sink.blocking_send(record).map_err(|_| ExportError::ReaderGone))
        })
        .await
        .map_err(|e| ExportError::Store(storage(format!("the export stopped: {e}"))))?
    }

    async fn restore(&self, records: BackupRecordStream) -> Result<BackupCounts, RestoreError> {
        if !self.is_new()? {
            return Err(RestoreError::NotEmpty(self.inner.dir.display().to_string()));
        }
        let (store, runtime) = (self.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let mut records = records;
            store.restore_records(&mut std::iter::from_fn(|| runtime.block_on(records.next())))
        })
        .await
        .map_err(|e| RestoreError::Store(storage(format!("the restore stopped: {e}"))))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CustomerStore, TicketStore};
    use crm_model::{Cents, NewCustomer};
    use futures::executor::block_on;

    fn new(nom: &str, credit: u64) -> NewCustomer {
        NewCustomer {
            nom: nom.into(),
            opening_credit: Cents(credit),
            ..Default::default()
        }
    }

    fn dump(store: &SledStore, during: &mut dyn FnMut()) -> Vec<BackupRecord> {
        let mut records = Vec::new();
        let mut first = true;
        store
            .export_blocking(&mut |record: BackupRecord| -> Result<(), StoreError> {
                if first && matches!(record, BackupRecord::Customer { .. }) {
                    first = false;
                    during();
                }
                records.push(record);
                Ok(())
            })
            .unwrap();
        records
    }

    #[test]
    fn an_export_dumps_the_store_as_it_was_when_it_began_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), super::super::DEFAULT_CACHE_BYTES).unwrap();
        block_on(store.create_customer(new("A", 100))).unwrap();
        let b = block_on(store.create_customer(new("B", 50))).unwrap();
        // Written while the export runs, after it has read the first customer.
        let writer = store.clone();
        let records = dump(&store, &mut || {
            block_on(writer.erase_customer(b.id_client)).unwrap();
            block_on(writer.create_customer(new("C", 5))).unwrap();
            block_on(writer.advance_consumer("bi", 9)).unwrap();
        });
        let customers: Vec<&CustomerRecord> = records
            .iter()
            .filter_map(|r| match r {
                BackupRecord::Customer { customer } => Some(customer),
                _ => None,
            })
            .collect();
        assert_eq!(customers.len(), 2, "C came after the snapshot");
        assert!(
            !customers[1].erased && customers[1].nom == "B",
            "B as it was: {:?}",
            customers[1]
        );
        let ledgers = records
            .iter()
            .filter(|r| matches!(r, BackupRecord::Ledger { .. }))
            .count();
        assert_eq!(ledgers, 2);
        assert!(!records.iter().any(|r| matches!(r, BackupRecord::Consumer { .. })));
        assert!(records.contains(&BackupRecord::Counter {
            name: "next_customer_id".into(),
            value: 2
        }));
        let audited = records
            .iter()
            .filter(|r| matches!(r, BackupRecord::Audit { .. }))
            .count();
        assert_eq!(audited, 2, "the entries of the two creations, not those written after");
        assert!(matches!(records.last(), Some(BackupRecord::Trailer { counts }) if counts.customers == 2));
        assert!(
            store.inner.before_images.is_empty(),
            "the before-images are dropped at the end"
        );

        // The writes are all there for the next export, which keeps no before-images.
        block_on(store.create_customer(new("D", 0))).unwrap();
        assert!(store.inner.before_images.is_empty());
        let records = dump(&store, &mut || {});
        let erased_b = records
            .iter()
            .any(|r| matches!(r, BackupRecord::Customer { customer } if customer.id == b.id && customer.erased));
        assert!(erased_b);
        assert!(records.contains(&BackupRecord::Consumer {
            name: "bi".into(),
            cursor: 9
        }));
        assert!(matches!(records.last(), Some(BackupRecord::Trailer { counts }) if counts.customers == 4));
    }
}

//! The sled store: the only module that knows sled.
//!
//! Layout (all integers big-endian so that byte order is numeric order):
//! - `customers`: customer id -> JSON [`CustomerRecord`]
//! - `index`: every secondary index, one prefix byte each (see [`keys`]; the search
//!   index as posting blocks, see [`postings`]), written in the same transaction as
//!   the record it points to
//!
//!   These two trees are the customer *register*. An import in `mode=replace` writes a
//!   new generation of them (`customers.<n>`, `index.<n>`) beside the live one and
//!   swaps it in when complete ([`Register`], [`import`]); `meta` names the live
//!   generation.
//! - `ledger`: customer id + entry number -> JSON [`crm_model::LedgerEntry`]
//! - `tickets`: ticket sequence number -> JSON [`crm_model::TicketRecord`]
//! - `ticket_index`: `uid` -> sequence number, a customer's tickets, and the unmatched
//!   tickets waiting for each client key (see [`tickets`])
//! - `payments`: payment id -> JSON [`crm_model::PaymentRecord`]
//! - `payment_index`: a customer's payments, the pending ones by due date (see
//!   [`payments`])
//! - `idempotency`: keys of `POST /api/credit` items already applied
//! - `audit`: the audit trail, by sequence number, and each customer's entries (see
//!   [`audit`])
//! - `meta`: counters (next customer id, live customers, next ticket, card, payment)
//!   the cursors of ticket consumers, so nothing scans to count, and the journal of
//!   an import being written (see [`import`]).
//!
//! Durability: a write is acknowledged only after a flush that started after the
//! write. Concurrent writers share one flush ([`GroupCommit`]).

pub(crate) mod audit;
pub mod backup;
mod customers;
pub mod import;
pub(crate) mod keys;
pub(crate) mod ledger;
pub(crate) mod loyalty;
pub(crate) mod payments;
pub(crate) mod postings;
pub(crate) mod tickets;

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use crm_model::CustomerRecord;

use self::backup::SnapshotTree;
use super::{StoreAdmin, StoreError, StoreStats};

/// Default bound of sled's page cache, MiB. sled's resident memory is several times its
/// cache bound; at 100,000 customers, 16 MiB instead of 64 took 130 MB off the server's
/// memory and nothing measurable off reads by id or creates (see the README's
/// benchmarks). Imports run about 5% slower with it.
pub const DEFAULT_CACHE_MB: u64 = 16;

/// [`DEFAULT_CACHE_MB`] in bytes.
pub const DEFAULT_CACHE_BYTES: u64 = DEFAULT_CACHE_MB * 1024 * 1024;

/// How long a write waits for its turn while an import is written, by default (see
/// [`SledStore::set_write_wait`]).
pub const DEFAULT_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Keys removed in one batch when a replaced register generation is cleared.
const CLEAR_BATCH: usize = 10_000;

/// One generation of the customer register: the records and every index over them.
/// Readers take the live generation once per operation ([`SledStore::register`]), so
/// that a replace import swapping it in never shows them half of each.
pub(crate) struct Register {
    pub generation: u64,
    pub customers: sled::Tree,
    pub index: sled::Tree,
}

impl Register {
    /// The tree names of a generation; generation 0 keeps the names of the first
    /// versions of the store.
    fn tree_names(generation: u64) -> [String; 2] {
        match generation {
            0 => ["customers".into(), "index".into()],
            g => [format!("customers.{g}"), format!("index.{g}")],
        }
    }

    /// The generation a tree of the register belongs to, if it is one.
    fn generation_of(tree_name: &[u8]) -> Option<u64> {
        let name = std::str::from_utf8(tree_name).ok()?;
        match name {
            "customers" | "index" => Some(0),
            _ => name
                .strip_prefix("customers.")
                .or_else(|| name.strip_prefix("index."))?
                .parse()
                .ok(),
        }
    }

    fn open(db: &sled::Db, generation: u64) -> Result<Register, StoreError> {
        let [customers, index] = Register::tree_names(generation);
        Ok(Register {
            generation,
            customers: db.open_tree(customers).map_err(storage)?,
            index: db.open_tree(index).map_err(storage)?,
        })
    }

    /// Removes a generation's trees at once (see [`SledStore::clear_replaced_generations`]
    /// for why a large one is emptied first).
    fn drop_generation(db: &sled::Db, generation: u64) -> Result<(), StoreError> {
        for name in Register::tree_names(generation) {
            db.drop_tree(name).map_err(storage)?;
        }
        Ok(())
    }

    /// Removes up to [`CLEAR_BATCH`] keys of a generation, or drops its trees once
    /// they are empty.
    fn clear_some(db: &sled::Db, generation: u64) -> Result<(), StoreError> {
        for name in Register::tree_names(generation) {
            let tree = db.open_tree(name).map_err(storage)?;
            let keys = tree
                .iter()
                .keys()
                .take(CLEAR_BATCH)
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage)?;
            if !keys.is_empty() {
                let mut batch = sled::Batch::default();
                keys.into_iter().for_each(|key| batch.remove(key));
                return tree.apply_batch(batch).map_err(storage);
            }
        }
        Register::drop_generation(db, generation)
    }

    pub(crate) fn customer_by_id(&self, id: u64) -> Result<Option<CustomerRecord>, StoreError> {
        self.customers
            .get(id.to_be_bytes())
            .map_err(storage)?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The customer id an index entry points to.
    pub(crate) fn holder(&self, index_key: &[u8]) -> Result<Option<u64>, StoreError> {
        Ok(self
            .index
            .get(index_key)
            .map_err(storage)?
            .map(|v| keys::decode_u64(&v)))
    }

    pub(crate) fn customer_by_index(&self, index_key: &[u8]) -> Result<Option<CustomerRecord>, StoreError> {
        match self.holder(index_key)? {
            Some(id) => self.customer_by_id(id),
            None => Ok(None),
        }
    }
}

/// The sled-backed store. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
    /// Who the writes through this handle are made for (see [`audit`]).
    origin: Arc<crm_model::audit::WriteOrigin>,
}

struct Inner {
    db: sled::Db,
    /// The live generation of the customer register; replaced whole by a replace
    /// import (see [`Register`]).
    register: RwLock<Arc<Register>>,
    ledger: sled::Tree,
    meta: sled::Tree,
    tickets: sled::Tree,
    ticket_index: sled::Tree,
    payments: sled::Tree,
    payment_index: sled::Tree,
    idempotency: sled::Tree,
    audit: sled::Tree,
    group_commit: GroupCommit,
    /// The database directory (imports spool their rows beside the trees).
    dir: PathBuf,
    /// An export holds it shared for its whole length, an import being written
    /// exclusively: one waits for the other (see [`import`], [`backup`]).
    write_gate: RwLock<()>,
    /// The writers' turns: every write transaction holds it shared
    /// ([`SledStore::transact`]); an import holds it exclusively while it checks its
    /// plan and while it writes each batch, and (`mode=merge`) lets go of it between
    /// batches (see [`import`]). tokio's lock is fair: the writers waiting when a batch
    /// ends all pass before the next batch, and those that come later wait for the
    /// next gap, so neither side starves.
    turns: tokio::sync::RwLock<()>,
    /// How long a write waits for its turn before it is refused, milliseconds.
    write_wait_ms: AtomicU64,
    /// The unique keys that the rows of the merge import being written will give to
    /// customers: no other customer may take one meanwhile (see [`KeyReservation`]).
    reserved: RwLock<Option<Arc<KeyReservation>>>,
    /// One import at a time.
    import_lock: Mutex<()>,
    /// Held by the async writer whose transaction runs (see [`SledStore::transact`]).
    writer_turn: tokio::sync::Mutex<()>,
    /// Whether a thread clears replaced register generations (see
    /// [`SledStore::clear_replaced_generations`]).
    clearer_running: Mutex<bool>,
    /// The values that writes replaced since the snapshot of the export running, if
    /// any, and whether one runs (see [`backup`]).
    before_images: sled::Tree,
    export_running: AtomicBool,
    /// One export at a time.
    export_lock: Mutex<()>,
}

/// The trees of one transaction. Those a backup holds are [`SnapshotTree`]s, which keep
/// what they replace while an export runs.
pub(crate) struct Tx<'a> {
    pub customers: SnapshotTree<'a>,
    pub index: &'a TransactionalTree,
    pub ledger: SnapshotTree<'a>,
    pub meta: SnapshotTree<'a>,
    pub tickets: SnapshotTree<'a>,
    pub ticket_index: &'a TransactionalTree,
    pub payments: SnapshotTree<'a>,
    pub payment_index: &'a TransactionalTree,
    pub idempotency: SnapshotTree<'a>,
    pub audit: SnapshotTree<'a>,
    /// Who the transaction's write is made for: its audit entries name them.
    pub origin: &'a crm_model::audit::WriteOrigin,
    /// The keys an import being written has planned for its rows, in a write that
    /// runs between its batches; `None` in the import's own transactions.
    pub reserved: Option<&'a KeyReservation>,
}

impl Tx<'_> {
    /// Whether the unique index key `key` is one that the import being written will
    /// give to a customer other than `id` (then another write must not take it).
    pub(crate) fn reserved_for_other(&self, key: &[u8], id: u64) -> bool {
        self.reserved.is_some_and(|r| r.claimed_from(key, id))
    }
}

/// The unique index keys (e-mail, card, IdClient) that the rows of a merge import
/// will write, each with the customer it goes to. Between its batches, other writes
/// run, and one that took such a key for another customer would break a row planned
/// earlier; [`super::customers`] refuses it with [`StoreError::ReservedByImport`].
///
/// Kept as 64-bit hashes of the keys, sorted, 16 bytes per key: a million rows each
/// with an e-mail and a card hold 32 MB while the import is written. A collision can
/// only refuse a write that did not conflict (about one chance in 10^12 at that size),
/// never let one through.
pub(crate) struct KeyReservation(Vec<(u64, u64)>);

impl KeyReservation {
    /// From `(hash of the key, customer id)` pairs ([`KeyReservation::hash`]).
    pub(crate) fn new(mut entries: Vec<(u64, u64)>) -> KeyReservation {
        entries.sort_unstable();
        entries.dedup();
        entries.shrink_to_fit();
        KeyReservation(entries)
    }

    /// SipHash with fixed keys: the same in every reservation of the process.
    pub(crate) fn hash(key: &[u8]) -> u64 {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        hasher.finish()
    }

    fn claimed_from(&self, key: &[u8], id: u64) -> bool {
        let hash = KeyReservation::hash(key);
        let from = self.0.partition_point(|(k, _)| *k < hash);
        self.0[from..]
            .iter()
            .take_while(|(k, _)| *k == hash)
            .any(|(_, target)| *target != id)
    }
}

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Adds `amount` to a stored amount, or aborts the transaction with a `422` naming
/// `field` when the sum would pass 2^53 - 1 cents.
pub(crate) fn add_cents(
    total: crm_model::Cents,
    amount: crm_model::Cents,
    field: impl FnOnce() -> String,
) -> TxResult<crm_model::Cents> {
    total.bounded_add(amount, field).or_else(|e| abort(e.into()))
}

/// A sled (or spool file) failure as a [`StoreError`]: a full disk is told apart, so that
/// it is answered `507` and the store is reopened (see [`super::guarded`]). sled keeps
/// the kind of an I/O error when it hands a stored failure out again.
fn storage(error: impl std::fmt::Display + 'static) -> StoreError {
    let error_ref: &dyn std::any::Any = &error;
    let io = match error_ref.downcast_ref::<sled::Error>() {
        Some(sled::Error::Io(io)) => Some(io),
        _ => error_ref.downcast_ref::<std::io::Error>(),
    };
    if io.is_some_and(is_disk_full) {
        return StoreError::StorageFull { nothing_written: false };
    }
    StoreError::Storage(error.to_string())
}

/// Whether an I/O failure says the disk (or the user's quota on it) is full.
pub(crate) fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of at most `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        SledStore::open_reporting(dir, cache_bytes, &|_| {})
    }

    /// [`Self::open`], telling `progress` how the roll-forward of an interrupted import
    /// goes (see [`import`]), so that a server can say it is recovering.
    pub fn open_reporting(
        dir: &Path,
        cache_bytes: u64,
        progress: &dyn Fn(crm_model::import::ImportProgress),
    ) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(storage)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let meta = tree("meta")?;
        let register = Register::open(&db, read_counter(&meta, keys::REGISTER_GENERATION)?)?;
        let before_images = tree(backup::BEFORE_IMAGES)?;
        let inner = Inner {
            db: db.clone(),
            register: RwLock::new(Arc::new(register)),
            ledger: tree("ledger")?,
            meta,
            tickets: tree("tickets")?,
            ticket_index: tree("ticket_index")?,
            payments: tree("payments")?,
            payment_index: tree("payment_index")?,
            idempotency: tree("idempotency")?,
            audit: tree(audit::TREE)?,
            group_commit: GroupCommit::start(db),
            dir: dir.to_path_buf(),
            write_gate: RwLock::new(()),
            turns: tokio::sync::RwLock::new(()),
            write_wait_ms: AtomicU64::new(DEFAULT_WRITE_WAIT.as_millis() as u64),
            reserved: RwLock::new(None),
            import_lock: Mutex::new(()),
            writer_turn: tokio::sync::Mutex::new(()),
            clearer_running: Mutex::new(false),
            before_images,
            export_running: AtomicBool::new(false),
            export_lock: Mutex::new(()),
        };
        // Left by an export that a stop interrupted.
        inner.before_images.clear().map_err(storage)?;
        let store = SledStore {
            inner: Arc::new(inner),
            origin: Arc::default(),
        };
        store.resume_interrupted_import(progress)?;
        store.drop_stale_generations()?;
        store.rebuild_legacy_search_index()?;
        Ok(store)
    }

    /// Rewrites as posting blocks the search index that an earlier version wrote one key
    /// per customer and token (see [`postings::rebuild_if_legacy`]), once, before the
    /// store serves.
    fn rebuild_legacy_search_index(&self) -> Result<(), StoreError> {
        let register = self.register();
        let started = std::time::Instant::now();
        if postings::rebuild_if_legacy(&register.index, &register.customers)? {
            self.durable_blocking()?;
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "search index rewritten as posting blocks"
            );
        }
        Ok(())
    }

    /// How long a write waits for its turn while an import is written before it is
    /// refused with [`StoreError::ImportRunning`] (zero: refused at once).
    pub fn set_write_wait(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.inner.write_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// The live generation of the customer register. Hold it for one operation, not
    /// longer: a replaced generation is cleared once nobody holds it.
    pub(crate) fn register(&self) -> Arc<Register> {
        self.inner.register.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The live register with the count of its live customers, read together: a
    /// replace import swaps both at once, under the same lock.
    pub(crate) fn register_with_count(&self) -> Result<(Arc<Register>, u64), StoreError> {
        let live = self.inner.register.read().unwrap_or_else(|p| p.into_inner());
        let count = read_counter(&self.inner.meta, keys::LIVE_CUSTOMERS)?;
        Ok((live.clone(), count))
    }

    /// The generations whose trees exist, live or not.
    fn generations(&self) -> BTreeSet<u64> {
        self.inner
            .db
            .tree_names()
            .iter()
            .filter_map(|name| Register::generation_of(name))
            .collect()
    }

    /// A generation number for a new register: above every generation whose trees
    /// exist, so that it never meets trees still being cleared.
    pub(crate) fn fresh_generation(&self) -> u64 {
        let live = self.register().generation;
        self.generations().into_iter().fold(live, u64::max) + 1
    }

    /// At start, after any interrupted import was finished: clears the generations
    /// that are not live. Those below it were replaced (a stop came before they were
    /// cleared); one above it was being written by an import that never got as far as
    /// its journal, and is dropped at once.
    fn drop_stale_generations(&self) -> Result<(), StoreError> {
        let live = self.register().generation;
        for generation in self.generations().into_iter().filter(|g| *g > live) {
            tracing::info!(generation, "dropping an unfinished generation of the customer register");
            Register::drop_generation(&self.inner.db, generation)?;
        }
        self.clear_replaced_generations();
        Ok(())
    }

    /// Clears, on a thread of its own, every generation below the live one: its keys
    /// in batches of [`CLEAR_BATCH`], then its trees. sled's `drop_tree` alone reads
    /// every page of a tree under one epoch guard, which held 400 MB more in memory
    /// for a register of 200,000 customers. One clearer runs at a time; it looks again
    /// before it ends, so a generation replaced meanwhile is cleared too.
    pub(crate) fn clear_replaced_generations(&self) {
        let mut running = self.inner.clearer_running.lock().unwrap_or_else(|p| p.into_inner());
        if *running {
            return;
        }
        *running = true;
        let store = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("crm-register-clearer".into())
            .spawn(move || loop {
                // Upgraded for one batch at a time: a closed store is not kept open,
                // and the next start clears what is left.
                let Some(inner) = store.upgrade() else { return };
                let store = SledStore {
                    inner,
                    origin: Arc::default(),
                };
                let replaced = {
                    let mut running = store.inner.clearer_running.lock().unwrap_or_else(|p| p.into_inner());
                    let live = store.register().generation;
                    let replaced = store.generations().into_iter().find(|g| *g < live);
                    if replaced.is_none() {
                        *running = false;
                    }
                    replaced
                };
                let Some(generation) = replaced else { return };
                if let Err(e) = Register::clear_some(&store.inner.db, generation) {
                    tracing::warn!(generation, error = %e, "cannot clear a replaced customer register");
                    *store.inner.clearer_running.lock().unwrap_or_else(|p| p.into_inner()) = false;
                    return;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the register clearer; the next start clears");
            *running = false;
        }
    }

    /// Runs `body` as one atomic transaction over every tree. sled may run the body
    /// more than once, so it must have no effect outside the transaction. While an
    /// import is written, waits for a turn between its batches, at most the write wait
    /// ([`Self::set_write_wait`]), then is refused with [`StoreError::ImportRunning`].
    ///
    /// sled runs one transaction at a time and blocks the thread of any other until
    /// then. Writers therefore wait for their turn here, asynchronously: a runtime
    /// thread is never parked on sled's lock while requests could be read and answered
    /// on it (with two cores, that parking cost about 15% of the rate of concurrent
    /// credits).
    pub(crate) async fn transact<T>(&self, body: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        // The import's turn first, then sled's: every writer let through between two
        // batches is past the import's lock before it queues for sled's.
        let _import_turn = self.write_turn().await?;
        let _turn = self.inner.writer_turn.lock().await;
        let reserved = self.inner.reserved.read().unwrap_or_else(|p| p.into_inner()).clone();
        self.transact_in(&self.register(), reserved.as_deref(), body)
    }

    /// A shared hold on the writers' turns: at once unless an import holds or awaits
    /// them, else within the write wait.
    async fn write_turn(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>, StoreError> {
        if let Ok(turn) = self.inner.turns.try_read() {
            return Ok(turn);
        }
        let wait = Duration::from_millis(self.inner.write_wait_ms.load(Ordering::Relaxed));
        tokio::time::timeout(wait, self.inner.turns.read())
            .await
            .map_err(|_| StoreError::ImportRunning)
    }

    /// [`Self::transact`] for the import, which holds the writers' turns itself.
    fn transact_ungated<T>(&self, body: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        self.transact_in(&self.register(), None, body)
    }

    /// A transaction whose `customers` and `index` are those of `register`: the live
    /// generation, or one a replace import is writing.
    fn transact_in<T>(
        &self,
        register: &Register,
        reserved: Option<&KeyReservation>,
        body: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        let i = &self.inner;
        // Read once per transaction: an export turns it on and off while it holds the
        // writers' turn, so no transaction runs across the change (see [`backup`]).
        let keep_before_images = i.export_running.load(Ordering::Acquire);
        let trees = (
            &register.customers,
            &register.index,
            &i.ledger,
            &i.meta,
            &i.tickets,
            &i.ticket_index,
            &i.payments,
            &i.payment_index,
            &i.idempotency,
            &i.before_images,
            &i.audit,
        );
        trees
            .transaction(
                |(
                    customers,
                    index,
                    ledger,
                    meta,
                    tickets,
                    ticket_index,
                    payments,
                    payment_index,
                    idempotency,
                    before,
                    audit,
                )| {
                    let before = keep_before_images.then_some(before);
                    body(&Tx {
                        customers: SnapshotTree::new(customers, before, backup::Tag::Customers),
                        index,
                        ledger: SnapshotTree::new(ledger, before, backup::Tag::Ledger),
                        meta: SnapshotTree::new(meta, before, backup::Tag::Meta),
                        tickets: SnapshotTree::new(tickets, before, backup::Tag::Tickets),
                        ticket_index,
                        payments: SnapshotTree::new(payments, before, backup::Tag::Payments),
                        payment_index,
                        idempotency: SnapshotTree::new(idempotency, before, backup::Tag::Idempotency),
                        audit: SnapshotTree::new(audit, before, backup::Tag::Audit),
                        origin: &self.origin,
                        reserved,
                    })
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => storage(e),
            })
    }

    /// Waits until everything written so far is on disk.
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        self.inner.group_commit.wait().await
    }

    /// [`Self::durable`] for blocking threads (imports), outside async code.
    fn durable_blocking(&self) -> Result<(), StoreError> {
        self.inner.group_commit.wait_blocking()
    }
}

impl StoreAdmin for SledStore {
    async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            flushes: self.flush_count(),
            customers: self.register_with_count()?.1,
            tickets: read_counter(&self.inner.meta, tickets::LAST_TICKET_SEQ)?,
            // sled sums the sizes of its files: a few `stat`s.
            size_on_disk: self.inner.db.size_on_disk().ok(),
        })
    }
}

impl SledStore {
    /// How many disk flushes this store has made (see [`StoreStats::flushes`]).
    pub(crate) fn flush_count(&self) -> u64 {
        self.inner.group_commit.flushes.load(Ordering::Relaxed)
    }
}

/// Group commit: writers queue a waiter after their transaction; one flusher thread
/// takes every waiter queued so far, flushes once, and answers them all. A waiter is
/// only answered by a flush that started after it queued, so its write is covered.
struct GroupCommit {
    /// `None` only while dropping.
    waiters: Option<mpsc::Sender<oneshot::Sender<Result<(), StoreError>>>>,
    flushes: Arc<AtomicU64>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GroupCommit {
    /// Stops the flusher and waits for it, so that its handle on the database is gone
    /// (and the directory can be opened again) once the store is dropped.
    fn drop(&mut self) {
        self.waiters.take();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl GroupCommit {
    fn start(db: sled::Db) -> GroupCommit {
        let (waiters, queue) = mpsc::channel::<oneshot::Sender<Result<(), StoreError>>>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = flushes.clone();
        let flusher = std::thread::Builder::new()
            .name("crm-group-commit".into())
            .spawn(move || {
                // Ends when the store is dropped (every sender gone).
                while let Ok(first) = queue.recv() {
                    let batch: Vec<_> = std::iter::once(first).chain(queue.try_iter()).collect();
                    let outcome = db.flush().map(drop).map_err(storage);
                    counter.fetch_add(1, Ordering::Relaxed);
                    for waiter in batch {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })
            .expect("spawning the group-commit thread");
        GroupCommit {
            waiters: Some(waiters),
            flushes,
            flusher: Some(flusher),
        }
    }

    fn enqueue(&self) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (done, flushed) = oneshot::channel();
        self.waiters
            .as_ref()
            .ok_or_else(|| storage("the store is closing"))?
            .send(done)
            .map_err(|_| storage("the flusher thread has stopped"))?;
        Ok(flushed)
    }

    async fn wait(&self) -> Result<(), StoreError> {
        let flushed = self.enqueue()?;
        flushed.await.map_err(|_| storage("the flusher thread has stopped"))?
    }

    /// Waits without a runtime (and without tokio's guard against blocking inside
    /// one: `open` may run on a runtime thread while it finishes an interrupted import).
    ///
    /// `unconstrained`: a tokio oneshot spends the cooperative budget of the tokio task
    /// whose thread polls it. Polled by a foreign executor inside `block_on` (the
    /// roll-forward in `open`, run from the server's `block_on`), that budget is never
    /// refilled: after 128 waits every poll answered "not yet" and woke itself at once,
    /// and the 129th batch's flush wait spun at 100% CPU forever.
    fn wait_blocking(&self) -> Result<(), StoreError> {
        let flushed = tokio::task::unconstrained(self.enqueue()?);
        futures::executor::block_on(flushed).map_err(|_| storage("the flusher thread has stopped"))?
    }
}

/// Runs a read that may take long (a scan) on a blocking thread, so that it never holds
/// a runtime thread that other requests need.
pub(crate) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| StoreError::Storage(format!("a read stopped: {e}")))?
}

/// Reads a counter of the `meta` tree (0 when absent), outside transactions.
pub(crate) fn read_counter(meta: &sled::Tree, name: &[u8]) -> Result<u64, StoreError> {
    Ok(meta.get(name).map_err(storage)?.map_or(0, |v| keys::decode_u64(&v)))
}

/// Reads and writes a counter of the `meta` tree inside a transaction.
pub(crate) fn bump_counter(meta: SnapshotTree<'_>, name: &[u8], delta: i64) -> TxResult<u64> {
    let current = meta.get(name)?.map(|v| keys::decode_u64(&v)).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    meta.insert(name, &next.to_be_bytes())?;
    Ok(next)
}

/// A stored value as JSON: the form of the small and rare values (journals, payments,
/// tickets, audit entries), whose types use serde attributes a compact form cannot carry.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialise to JSON")
}

/// The first byte of a value in the compact form, and its layout version: JSON values
/// start with `{`, `[`, `"` or a digit, never with this byte, so that both forms are
/// read from one tree. postcard writes the fields in order without their names, so a
/// change of the fields of `CustomerRecord` or `LedgerEntry` needs a new tag, and a
/// reader of this one for the values already written (the unit test
/// `the_compact_layout_is_the_one_on_disk` fails until then).
const COMPACT_TAG: u8 = 0x01;

/// A stored value in the compact form: [`COMPACT_TAG`], then postcard. Used for the
/// values there is one or more of per customer (records, ledger entries), which took
/// two thirds of the register's bytes as JSON: a customer record is about 450 bytes
/// as JSON and about 170 in this form.
///
/// Only for types whose serde form writes every field in order: postcard is not
/// self-describing, so `skip_serializing_if`, `flatten` and `untagged` would make the
/// value unreadable. The unit tests round-trip every type stored this way.
pub(crate) fn encode_compact<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![COMPACT_TAG];
    postcard::to_io(value, &mut bytes).expect("store records serialise to postcard");
    bytes
}

/// Reads a value in either form, so that records written as JSON by earlier versions
/// are read as they are and rewritten compact the next time they change.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let unreadable = |e: &dyn std::fmt::Display| storage(format!("unreadable stored record: {e}"));
    match bytes.split_first() {
        Some((&COMPACT_TAG, rest)) => postcard::from_bytes(rest).map_err(|e| unreadable(&e)),
        _ => serde_json::from_slice(bytes).map_err(|e| unreadable(&e)),
    }
}

/// One page of the entries of `tree` under `prefix` whose keys end with a big-endian
/// sequence number, after sequence `after`: a key range, never an offset. `load` turns
/// an entry into an item. The cursor is the last sequence number, in decimal.
pub(crate) fn seq_page<T>(
    tree: &sled::Tree,
    prefix: &[u8],
    after: Option<u64>,
    limit: usize,
    total: u64,
    mut load: impl FnMut(&[u8], &[u8]) -> Result<T, StoreError>,
) -> Result<crm_model::Page<T>, StoreError> {
    use std::ops::Bound;
    let start = match after {
        Some(after) => Bound::Excluded([prefix, &after.to_be_bytes()].concat()),
        None => Bound::Included(prefix.to_vec()),
    };
    let end = keys::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    for entry in tree.range::<Vec<u8>, _>((start, end)) {
        let (key, value) = entry.map_err(storage)?;
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(load(&key, &value)?);
        last = Some(keys::decode_u64(&key[key.len().saturating_sub(8)..]));
    }
    Ok(crm_model::Page {
        items,
        next_cursor: last.filter(|_| more).map(|seq| seq.to_string()),
        total,
    })
}

/// A list of big-endian u64s stored in one value (the pending tickets of a client key,
/// the pending payments of a customer): read and written whole inside transactions,
/// which cannot scan.
pub(crate) fn decode_u64_list(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(keys::decode_u64).collect()
}

pub(crate) fn encode_u64_list(list: &[u64]) -> Vec<u8> {
    list.iter().flat_map(|n| n.to_be_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_model::{Cents, LedgerCause, LedgerEntry, NewCustomer, Sexe};

    fn record(filled: bool) -> CustomerRecord {
        let mut record = NewCustomer {
            nom: "Saint-Martin".into(),
            prenom: "Éloïse".into(),
            email: "eloise.saint-martin.2@free.fr".into(),
            phone: "+33700598205".into(),
            compte: "BK70000002".into(),
            sexe: if filled { Sexe::F } else { Sexe::Unspecified },
            carte_fid: filled.then_some(1_000_002),
            age: filled.then_some(54),
            ..Default::default()
        }
        .into_record(3, uuid::Uuid::new_v4(), chrono::Utc::now());
        if filled {
            record.credit = Cents(6911);
            record.next_payment = chrono::NaiveDate::from_ymd_opt(2026, 12, 24);
            record.pending_payments = Cents(12_000);
            record.ledger_entries = 2;
            record.ticket_count = 5;
            record.ticket_total = Cents(13_822);
        }
        record
    }

    #[test]
    fn compact_records_read_back_equal_and_smaller_than_json() {
        for filled in [false, true] {
            let record = record(filled);
            let compact = encode_compact(&record);
            assert_eq!(decode::<CustomerRecord>(&compact).unwrap(), record);
            let json = encode(&record);
            assert!(
                compact.len() * 2 < json.len(),
                "{} vs {} bytes",
                compact.len(),
                json.len()
            );
        }
    }

    #[test]
    fn compact_ledger_entries_read_back_equal() {
        for key in [None, Some("T-2026-000123".to_string())] {
            let entry = LedgerEntry {
                seq: 7,
                at: chrono::Utc::now(),
                amount: -1250,
                balance: Cents(4800),
                cause: LedgerCause::ImportAdjustment,
                key,
            };
            assert_eq!(decode::<LedgerEntry>(&encode_compact(&entry)).unwrap(), entry);
        }
    }

    /// The bytes of layout 1, as data directories hold them: a change of a compact
    /// type's fields changes them, and must come with a new [`COMPACT_TAG`].
    #[test]
    fn the_compact_layout_is_the_one_on_disk() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
            .unwrap()
            .to_utc();
        let mut record = NewCustomer {
            nom: "Roy".into(),
            prenom: "Léa".into(),
            email: "lea@x.fr".into(),
            phone: "0600000001".into(),
            compte: "BK1".into(),
            sexe: Sexe::F,
            carte_fid: Some(7),
            age: Some(30),
            ..Default::default()
        }
        .into_record(3, uuid::Uuid::from_u128(0x0102), at);
        record.next_payment = chrono::NaiveDate::from_ymd_opt(2026, 12, 24);
        record.ledger_entries = 2;
        let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(encode_compact(&record)), RECORD_LAYOUT_1);
        let entry = LedgerEntry {
            seq: 2,
            at,
            amount: -5,
            balance: Cents(10),
            cause: LedgerCause::ImportAdjustment,
            key: Some("T1".into()),
        };
        assert_eq!(hex(encode_compact(&entry)), LEDGER_LAYOUT_1);
    }

    const RECORD_LAYOUT_1: &str = "0103100000000000000000000000000000010203526f79044cc3a961086c656140782e66720a3036303030303030303103424b31011e0101070000010a323032362d31322d3234000200000014323032362d31322d30335430383a30303a30305a14323032362d31322d30335430383a30303a30305a";
    const LEDGER_LAYOUT_1: &str = "010214323032362d31322d30335430383a30303a30305a090a0301025431";

    #[test]
    fn records_written_as_json_by_earlier_versions_still_read() {
        let record = record(true);
        assert_eq!(decode::<CustomerRecord>(&encode(&record)).unwrap(), record);
    }

    #[test]
    fn a_damaged_compact_value_is_a_storage_error_not_a_panic() {
        let compact = encode_compact(&record(true));
        let err = decode::<CustomerRecord>(&compact[..compact.len() / 2]).unwrap_err();
        assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
    }
}

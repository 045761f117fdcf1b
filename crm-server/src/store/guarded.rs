//! The sled store guarded against a full disk: what the server serves.
//!
//! Why a guard is needed: sled 0.34 stops for good after one failed write to its log.
//! It keeps the error and answers every later operation with it (reads too, since a
//! read may reorganise a page and log it) until the database is opened again; the
//! write whose flush failed stays visible in its page cache meanwhile, although a
//! restart may find it missing. And opening sled writes (it zeroes the rest of its last
//! log segment and writes a snapshot), so on a disk with no byte free it cannot even be
//! opened. So the guard:
//!
//! - keeps a reserve file of [`Config::disk_reserve`] bytes in the data directory
//!   ([`RESERVE_FILE`]), and deletes it the moment the disk is found full: that space
//!   is what lets sled open, serve reads and flush at shutdown on a full disk (a server
//!   started on a full disk deletes it before opening the store: read-only mode);
//! - refuses every write before it begins while less than the reserve is free:
//!   `507 storage_full`, nothing written ([`StoreError::StorageFull`] with
//!   `nothing_written`), and `/healthz` says `degraded` with the reason;
//! - when sled itself fails on a full disk (the disk filled between the check and the
//!   flush), reopens the store from its files at once. The write in flight is answered
//!   `507` "may have been written": its transaction was applied in memory, and part of
//!   its log may have reached the disk, so only the files can tell. sled logs a
//!   transaction as one batch and recovery keeps whole batches only, so after the
//!   reopen the write is there entirely or not at all, and reads show exactly what a
//!   restart would: nothing is readable that a restart would lose. The writers that
//!   shared the failed flush get the same answer; none of them was acknowledged;
//! - lets writes through again, without a restart, once twice the reserve is free:
//!   it makes the reserve again and, if the store could not be reopened, reopens it.
//!
//! Everything else is the [`SledStore`] underneath, delegated method by method.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use crm_model::audit::{AuditEntry, WriteOrigin};
use crm_model::backup::{BackupCounts, BackupRecord};
use crm_model::{
    AllowCredit, CardRef, CreditItem, CustomerPatch, CustomerRecord, ImportOptions, ImportReport, LedgerEntry,
    ListQuery, NewCustomer, Page, Payment, Ticket, TicketRecord,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    AuditQuery, AuditStore, BackupRecordStream, BackupStore, CreditResult, CustomerStore, ExportError, ImportFailure,
    ImportProgressFn, ImportRowStream, ImportStore, IngestOutcome, LoyaltyStore, PaymentStore, RestoreError, SledStore,
    StoreAdmin, StoreError, StoreStats, TicketStore,
};
use crate::config::Config;

/// The reserve file, in the data directory.
pub const RESERVE_FILE: &str = "space-reserve";

/// Writes stop below this much free space even without a reserve (`disk_reserve` 0).
const MIN_FREE: u64 = 1024 * 1024;

/// How long a reopen waits for requests still holding the old store (sled locks its
/// directory until the last handle is gone).
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// A store that could not be reopened is tried again at most this often.
const REOPEN_RETRY: Duration = Duration::from_secs(1);

/// The guarded store. Cheap to clone: clones share one guard.
#[derive(Clone)]
pub struct GuardedStore {
    guard: std::sync::Arc<Guard>,
    /// Who the writes through this handle are made for (see [`AuditStore::acting_for`]).
    origin: WriteOrigin,
}

struct Guard {
    dir: PathBuf,
    cache_bytes: u64,
    /// Given to every store opened (see [`SledStore::set_write_wait`]).
    write_wait: Duration,
    reserve: Reserve,
    /// The open store and its epoch (one more at each reopen); `None` while it is
    /// being reopened or could not be.
    current: RwLock<Option<(SledStore, u64)>>,
    epochs: AtomicU64,
    /// Flushes of the stores closed before the current one (`/healthz` counts them all).
    earlier_flushes: AtomicU64,
    /// Why writes are refused, while they are.
    degraded: Mutex<Option<String>>,
    /// One reopen (or recovery) at a time; when the last failed attempt to open was.
    reopening: Mutex<Option<Instant>>,
}

/// The file of [`Config::disk_reserve`] bytes whose deletion makes room on a full disk.
struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    fn held(&self) -> bool {
        self.bytes == 0 || std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    fn release(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => tracing::warn!(bytes = self.bytes, "the disk is full: released the space reserve"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "cannot delete the space reserve"),
        }
    }

    /// Writes the reserve in full (zeros really written, so the blocks are taken, not
    /// a sparse file), under a temporary name until complete.
    fn make(&self) -> std::io::Result<()> {
        if self.held() {
            return Ok(());
        }
        let partial = self.path.with_extension("partial");
        let written = (|| {
            let mut file = std::fs::File::create(&partial)?;
            let chunk = vec![0u8; 1024 * 1024];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
            std::fs::rename(&partial, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }
}

impl GuardedStore {
    /// Opens the store of `config`. On a disk with less than the reserve free, the
    /// reserve is released first and the store opens read-only (writes `507`) until
    /// space is back.
    pub fn open(config: &Config) -> Result<GuardedStore, StoreError> {
        Self::open_reporting(config, &|_| {})
    }

    /// [`Self::open`], telling `progress` how the roll-forward of an interrupted import
    /// goes (see [`SledStore::open_reporting`]).
    pub fn open_reporting(
        config: &Config,
        progress: &dyn Fn(crm_model::import::ImportProgress),
    ) -> Result<GuardedStore, StoreError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let guard = Guard {
            reserve: Reserve {
                path: dir.join(RESERVE_FILE),
                bytes: config.disk_reserve,
            },
            dir,
            cache_bytes: config.cache_bytes,
            write_wait: config.write_wait,
            current: RwLock::new(None),
            epochs: AtomicU64::new(0),
            earlier_flushes: AtomicU64::new(0),
            degraded: Mutex::new(None),
            reopening: Mutex::new(None),
        };
        if guard.free_space() < guard.write_margin() {
            guard.enter_degraded("the disk of the data directory was full at start: read-only until space is freed");
        }
        let store = SledStore::open_reporting(&guard.dir, guard.cache_bytes, progress)?;
        guard.install(store);
        if guard.degraded.lock().unwrap_or_else(|p| p.into_inner()).is_none() && !guard.reserve.held() {
            // First start, or a reserve released before a restart: made again when it
            // fits with room to spare, otherwise the store starts read-only.
            if !guard.make_reserve() {
                guard.enter_degraded("the disk of the data directory is nearly full: read-only until space is freed");
            }
        }
        Ok(GuardedStore {
            guard: std::sync::Arc::new(guard),
            origin: WriteOrigin::default(),
        })
    }

    /// Runs a read; when sled has stopped on a full disk, reopens it and reads again.
    /// `op` owns the store handle and drops it when done: a reopen waits for it.
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(SledStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (store, epoch) = self.guard.store()?;
        match op(store).await {
            Err(StoreError::StorageFull { .. }) => {
                self.guard.failed_on_full_disk(epoch);
                let (store, _) = self.guard.store()?;
                op(store).await.map_err(|e| match e {
                    StoreError::StorageFull { .. } => StoreError::Unavailable("the disk is full".into()),
                    other => other,
                })
            }
            other => other,
        }
    }

    /// Runs a write if the disk has room, and reopens the store when sled failed on a
    /// full disk during it (see the module's documentation).
    async fn write<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(SledStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (store, epoch) = self.guard.admit_write()?;
        let store = store.acting_for(self.origin.clone());
        // `op` owns the store handle and drops it when done: a reopen waits for it.
        let outcome = op(store).await;
        if let Err(StoreError::StorageFull { .. }) = outcome {
            self.guard.failed_on_full_disk(epoch);
        }
        outcome
    }
}

impl Guard {
    fn free_space(&self) -> u64 {
        // Unknown free space is no reason to refuse writes: sled's own failure still is.
        fs2::available_space(&self.dir).unwrap_or(u64::MAX)
    }

    /// Writes are refused while less than this is free.
    fn write_margin(&self) -> u64 {
        self.reserve.bytes.max(MIN_FREE)
    }

    fn install(&self, store: SledStore) {
        store.set_write_wait(self.write_wait);
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((store, epoch));
    }

    /// The reserve made again if it fits with the write margin still free after it.
    fn make_reserve(&self) -> bool {
        if self.reserve.held() {
            return true;
        }
        if self.free_space() < self.reserve.bytes + self.write_margin() {
            return false;
        }
        match self.reserve.make() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot make the space reserve");
                false
            }
        }
    }

    fn enter_degraded(&self, reason: &str) {
        let mut degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        if degraded.is_none() {
            tracing::error!(reason, "writes refused until space is freed; reads go on");
            *degraded = Some(reason.to_string());
        }
        drop(degraded);
        self.reserve.release();
    }

    /// The open store, reopening it (at most every [`REOPEN_RETRY`]) when it is not.
    fn store(&self) -> Result<(SledStore, u64), StoreError> {
        if let Some(open) = self.current.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(open);
        }
        {
            let mut last_attempt = self.reopening.lock().unwrap_or_else(|p| p.into_inner());
            let is_open = self.current.read().unwrap_or_else(|p| p.into_inner()).is_some();
            if !is_open && last_attempt.is_none_or(|at| at.elapsed() >= REOPEN_RETRY) {
                if !self.open_again() {
                    *last_attempt = Some(Instant::now());
                } else {
                    *last_attempt = None;
                }
            }
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the store could not be reopened on a full disk".into()))
    }

    /// The store for a write, or why the write is refused before it begins.
    fn admit_write(&self) -> Result<(SledStore, u64), StoreError> {
        let refused = StoreError::StorageFull { nothing_written: true };
        if self.degraded.lock().unwrap_or_else(|p| p.into_inner()).is_some() && !self.recover() {
            return Err(refused);
        }
        if self.free_space() < self.write_margin() {
            self.enter_degraded("the disk of the data directory is full");
            return Err(refused);
        }
        self.store()
    }

    /// Leaves the degraded state when there is room again: reserve made, store open.
    fn recover(&self) -> bool {
        let _one = self.reopening.lock().unwrap_or_else(|p| p.into_inner());
        if self.degraded.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return true;
        }
        if !self.make_reserve() {
            return false;
        }
        let is_open = self.current.read().unwrap_or_else(|p| p.into_inner()).is_some();
        if !is_open && !self.open_again() {
            return false;
        }
        *self.degraded.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("space is back: writes resume");
        true
    }

    /// sled failed on a full disk while the store of `epoch` was open: it holds the
    /// error for good and may show writes its files lack, so it is closed and opened
    /// again from its files (unless another request did so already).
    fn failed_on_full_disk(&self, epoch: u64) {
        self.enter_degraded("the disk of the data directory is full");
        let _one = self.reopening.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            match current.as_ref() {
                Some((_, open)) if *open != epoch => return,
                Some((old, _)) => {
                    self.earlier_flushes.fetch_add(old.flush_count(), Ordering::Relaxed);
                }
                None => {}
            }
            *current = None;
        }
        tracing::warn!("reopening the store from its files after a failure on a full disk");
        self.open_again();
    }

    /// Opens the store from its files (the caller holds `reopening`). Waits, boundedly,
    /// for requests that still hold the old one; gives up at once on a full disk.
    fn open_again(&self) -> bool {
        let deadline = Instant::now() + REOPEN_WAIT;
        loop {
            match SledStore::open(&self.dir, self.cache_bytes) {
                Ok(store) => {
                    self.install(store);
                    tracing::info!("store reopened");
                    return true;
                }
                Err(StoreError::StorageFull { .. }) => {
                    tracing::error!("cannot reopen the store: the disk is full");
                    return false;
                }
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(error = %e, "cannot reopen the store");
                    return false;
                }
                // Most likely sled's lock on the directory, held by the old store
                // until the last request using it is done.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl CustomerStore for GuardedStore {
    async fn create_customer(&self, new: NewCustomer) -> Result<CustomerRecord, StoreError> {
        self.write(|s| async move { s.create_customer(new).await }).await
    }

    async fn update_customer(&self, id_client: Uuid, patch: CustomerPatch) -> Result<CustomerRecord, StoreError> {
        self.write(|s| async move { s.update_customer(id_client, patch).await })
            .await
    }

    async fn erase_customer(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        self.write(|s| async move { s.erase_customer(id_client).await }).await
    }

    async fn customer(&self, id_client: Uuid) -> Result<Option<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.customer(id_client).await }).await
    }

    async fn customer_by_email(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.customer_by_email(email).await }).await
    }

    async fn customer_by_card(&self, card: u64) -> Result<Option<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.customer_by_card(card).await }).await
    }

    async fn customers_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.customers_after(after, limit).await })
            .await
    }

    async fn list_customers(&self, query: &ListQuery) -> Result<Page<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.list_customers(query).await }).await
    }

    async fn customer_count(&self) -> Result<u64, StoreError> {
        self.read(|s| async move { s.customer_count().await }).await
    }
}

impl LoyaltyStore for GuardedStore {
    async fn issue_card(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        self.write(|s| async move { s.issue_card(id_client).await }).await
    }

    async fn credit(&self, items: Vec<CreditItem>) -> Result<Vec<CreditResult>, StoreError> {
        self.write(|s| async move { s.credit(items).await }).await
    }

    async fn customer_by_card_ref(&self, card: &CardRef) -> Result<Option<CustomerRecord>, StoreError> {
        self.read(|s| async move { s.customer_by_card_ref(card).await }).await
    }

    async fn ledger(&self, id_client: Uuid, after: Option<u64>, limit: usize) -> Result<Page<LedgerEntry>, StoreError> {
        self.read(|s| async move { s.ledger(id_client, after, limit).await })
            .await
    }
}

impl TicketStore for GuardedStore {
    async fn ingest_tickets(&self, tickets: Vec<Ticket>) -> Result<IngestOutcome, StoreError> {
        self.write(|s| async move { s.ingest_tickets(tickets).await }).await
    }

    async fn tickets_after(&self, after: u64, until: u64, limit: usize) -> Result<Vec<TicketRecord>, StoreError> {
        self.read(|s| async move { s.tickets_after(after, until, limit).await })
            .await
    }

    async fn ticket_page(&self, after: Option<u64>, limit: usize) -> Result<Page<TicketRecord>, StoreError> {
        self.read(|s| async move { s.ticket_page(after, limit).await }).await
    }

    async fn last_ticket_seq(&self) -> Result<u64, StoreError> {
        self.read(|s| async move { s.last_ticket_seq().await }).await
    }

    async fn customer_tickets(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<TicketRecord>, StoreError> {
        self.read(|s| async move { s.customer_tickets(id_client, after, limit).await })
            .await
    }

    async fn consumer_cursor(&self, name: &str) -> Result<u64, StoreError> {
        self.read(|s| async move { s.consumer_cursor(name).await }).await
    }

    async fn advance_consumer(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(|s| async move { s.advance_consumer(&name, seq).await })
            .await
    }
}

impl PaymentStore for GuardedStore {
    async fn allow_credit(&self, request: AllowCredit, refusal_limit: u32) -> Result<Option<Payment>, StoreError> {
        self.write(|s| async move { s.allow_credit(request, refusal_limit).await })
            .await
    }

    async fn customer_payments(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        self.read(|s| async move { s.customer_payments(id_client, after, limit).await })
            .await
    }

    async fn payments_due(
        &self,
        due: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        self.read(|s| async move { s.payments_due(due, after, limit).await })
            .await
    }

    async fn payment_result(&self, id: u64, paid: bool) -> Result<Payment, StoreError> {
        self.write(|s| async move { s.payment_result(id, paid).await }).await
    }

    async fn mark_payment_sent(
        &self,
        id: u64,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<Payment>, StoreError> {
        self.write(|s| async move { s.mark_payment_sent(id, at).await }).await
    }

    async fn reset_refusals(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        self.write(|s| async move { s.reset_refusals(id_client).await }).await
    }
}

impl ImportStore for GuardedStore {
    async fn import_customers(
        &self,
        rows: ImportRowStream,
        options: ImportOptions,
        progress: ImportProgressFn,
    ) -> Result<ImportReport, ImportFailure> {
        let (store, epoch) = self.guard.admit_write()?;
        let store = store.acting_for(self.origin.clone());
        let outcome = store.import_customers(rows, options, progress).await;
        drop(store);
        if let Err(ImportFailure::Store(StoreError::StorageFull { .. })) = outcome {
            self.guard.failed_on_full_disk(epoch);
        }
        outcome
    }
}

/// An export keeps the before-images of the writes made while it runs in the store,
/// so it is admitted as a write: refused on a full disk, like an import.
impl AuditStore for GuardedStore {
    fn acting_for(&self, origin: WriteOrigin) -> Self {
        GuardedStore {
            guard: self.guard.clone(),
            origin,
        }
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        self.read(|s| async move { s.audit(query).await }).await
    }
}

impl BackupStore for GuardedStore {
    async fn export(&self, sink: mpsc::Sender<BackupRecord>) -> Result<BackupCounts, ExportError> {
        let (store, _) = self.guard.admit_write()?;
        store.export(sink).await
    }

    async fn restore(&self, records: BackupRecordStream) -> Result<BackupCounts, RestoreError> {
        let (store, _) = self.guard.admit_write()?;
        store.restore(records).await
    }
}

impl StoreAdmin for GuardedStore {
    /// The final flush at shutdown. On a full disk it has room (the reserve was
    /// released), and nothing acknowledged depends on it: every acknowledged write was
    /// flushed before its answer.
    async fn flush(&self) -> Result<(), StoreError> {
        let (store, _) = self.guard.store()?;
        store.flush().await
    }

    /// The flushes count those of the stores closed before the current one too.
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = self.read(|s| async move { s.stats().await }).await?;
        stats.flushes += self.guard.earlier_flushes.load(Ordering::Relaxed);
        Ok(stats)
    }

    async fn degraded(&self) -> Option<String> {
        if self.guard.recover() {
            return None;
        }
        self.guard.degraded.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

//! Storage: the `Store` traits the server is generic over, one per domain, and the sled
//! implementation behind them (the one module that knows sled).
//!
//! Every write method is one domain operation and one atomic write, acknowledged only
//! once it is on disk, so that a PostgreSQL store can implement the same traits.

use std::future::Future;
use std::sync::Arc;

use chrono::NaiveDate;
use crm_model::audit::{AuditEntry, WriteOrigin};
use crm_model::backup::{BackupCounts, BackupError, BackupRecord};
use crm_model::import::{ImportError, ImportProgress};
use crm_model::{
    AllowCredit, Cents, CreditItem, CustomerPatch, CustomerRecord, ImportOptions, ImportReport, LedgerEntry, ListQuery,
    NewCustomer, Page, Payment, RowOutcome, Ticket, TicketRecord,
};
use futures::stream::BoxStream;
use uuid::Uuid;

pub mod guarded;
pub mod postgres;
pub mod sled;

pub use self::guarded::GuardedStore;
pub use self::sled::SledStore;

/// Why a store operation failed. Conflicts on unique keys are told apart here and
/// mapped to HTTP statuses in one place (`ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("customer not found")]
    CustomerNotFound,
    #[error("the e-mail {email} is already used by customer {existing}")]
    EmailTaken { email: String, existing: Uuid },
    #[error("the card {card} is already held by customer {existing}")]
    CardTaken { card: u64, existing: Uuid },
    #[error("the IdClient {0} is already used")]
    IdClientTaken(Uuid),
    /// The write would give a customer an e-mail, card or IdClient (`field`) that a row
    /// of the import being written will give to another customer.
    #[error("this {field} goes to another customer in the customer import being written; nothing was written")]
    ReservedByImport { field: &'static str },
    #[error("payment not found")]
    PaymentNotFound,
    /// A result for a payment that is no longer pending.
    #[error("payment {id} is {status}, not pending")]
    PaymentNotPending { id: u64, status: String },
    /// A list cursor that this store did not hand out for this sort.
    #[error("{0}")]
    BadCursor(String),
    /// The write would take a stored amount past 2^53 - 1 cents: refused whole.
    #[error("{field}: {error}")]
    AmountOutOfRange { field: String, error: String },
    /// An import is being written: other writes wait for it to finish (retry later).
    #[error("a customer import is being written; retry in a moment")]
    ImportRunning,
    /// The storage itself failed (disk, corruption): a server fault, not the client's.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The disk of the data directory is full. `nothing_written`: refused before the
    /// write began; otherwise the disk filled up during it and it may have been stored
    /// (see [`guarded`] for why the answer cannot be surer).
    #[error("the disk of the data directory is full")]
    StorageFull { nothing_written: bool },
    /// The store cannot be reached for a moment: being reopened after a failure of its
    /// disk, a database down or restarting, a pool with no free connection. Answered
    /// `503` with `Retry-After`: nothing was written, the client tries again.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<crm_model::money::AmountOutOfRange> for StoreError {
    fn from(e: crm_model::money::AmountOutOfRange) -> Self {
        StoreError::AmountOutOfRange {
            field: e.field,
            error: e.error,
        }
    }
}

/// Customers: the register and its indexes (IdClient, e-mail, card, search, sorts).
pub trait CustomerStore {
    /// Creates a customer with the next sequence number; its opening credit is its
    /// first ledger entry.
    fn create_customer(&self, new: NewCustomer) -> impl Future<Output = Result<CustomerRecord, StoreError>> + Send;

    /// Applies a validated PATCH, keeping e-mail and card unique.
    fn update_customer(
        &self,
        id_client: Uuid,
        patch: CustomerPatch,
    ) -> impl Future<Output = Result<CustomerRecord, StoreError>> + Send;

    /// Erases personal data on request: out of every list and index but `IdClient`.
    fn erase_customer(&self, id_client: Uuid) -> impl Future<Output = Result<CustomerRecord, StoreError>> + Send;

    /// A customer by public id, erased ones included.
    fn customer(&self, id_client: Uuid) -> impl Future<Output = Result<Option<CustomerRecord>, StoreError>> + Send;

    /// A live customer by e-mail, case-insensitively.
    fn customer_by_email(&self, email: &str)
        -> impl Future<Output = Result<Option<CustomerRecord>, StoreError>> + Send;

    /// A live customer by loyalty card number.
    fn customer_by_card(&self, card: u64) -> impl Future<Output = Result<Option<CustomerRecord>, StoreError>> + Send;

    /// Up to `limit` live customers with an `id` above `after`, in `id` order: the
    /// building block of streamed full listings, which must not hold every customer.
    fn customers_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CustomerRecord>, StoreError>> + Send;

    /// One page of the live customers, searched and sorted through indexes.
    fn list_customers(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Page<CustomerRecord>, StoreError>> + Send;

    /// How many live customers there are (a counter, not a scan).
    fn customer_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What became of one item of a credit batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditResult {
    /// Credited (or already credited under the same idempotency key): the new balance.
    Credited { balance: Cents },
    /// No live customer holds this card (or has this IdClient).
    UnknownCard,
}

/// What a ticket batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: u64,
    /// Tickets whose `uid` was already stored: skipped.
    pub duplicates: u64,
    pub credited_cents: Cents,
    /// `uid`s of the stored tickets whose customer is not known yet.
    pub unmatched: Vec<String>,
    /// Stored tickets with no client and no card.
    pub anonymous: u64,
}

/// Loyalty: cards, the credit ledger, `POST /api/credit`.
pub trait LoyaltyStore {
    /// Gives a live customer the next free card number; one who has a card keeps it.
    fn issue_card(&self, id_client: Uuid) -> impl Future<Output = Result<CustomerRecord, StoreError>> + Send;

    /// Credits each holder half its item's amount, in one atomic write; items whose key
    /// was seen before credit nothing again. One result per item, in order.
    fn credit(&self, items: Vec<CreditItem>) -> impl Future<Output = Result<Vec<CreditResult>, StoreError>> + Send;

    /// A live customer by card number, or by IdClient.
    fn customer_by_card_ref(
        &self,
        card: &crm_model::CardRef,
    ) -> impl Future<Output = Result<Option<CustomerRecord>, StoreError>> + Send;

    /// A page of a customer's ledger, oldest first, after entry `after`.
    fn ledger(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<LedgerEntry>, StoreError>> + Send;
}

/// Tickets: ingestion (idempotent on `uid`), listings, and the cursors of consumers.
pub trait TicketStore {
    /// Stores a validated batch in one atomic write, crediting known customers.
    fn ingest_tickets(&self, tickets: Vec<Ticket>) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send;

    /// Up to `limit` tickets with a sequence number above `after` and at most `until`.
    fn tickets_after(
        &self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TicketRecord>, StoreError>> + Send;

    /// A page of every ticket, oldest first, after ticket `after`.
    fn ticket_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<TicketRecord>, StoreError>> + Send;

    /// The sequence number of the newest ticket (0 when none): how many there are.
    fn last_ticket_seq(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A page of a customer's credited tickets, oldest first, after ticket `after`.
    fn customer_tickets(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<TicketRecord>, StoreError>> + Send;

    /// The last ticket sequence number consumer `name` has received (0 at first).
    fn consumer_cursor(&self, name: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves consumer `name`'s cursor to `seq` (never backwards), durably.
    fn advance_consumer(&self, name: &str, seq: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Deferred payments and refusals.
pub trait PaymentStore {
    /// Schedules the payment when the customer has fewer than `refusal_limit`
    /// refusals; `None` (nothing written) when over the limit.
    fn allow_credit(
        &self,
        request: AllowCredit,
        refusal_limit: u32,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// A page of a customer's payments (every status), by id, after payment `after`.
    fn customer_payments(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Payment>, StoreError>> + Send;

    /// A page of pending payments due on or before `due`, by due date then id, after
    /// the opaque position `after`.
    fn payments_due(
        &self,
        due: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Payment>, StoreError>> + Send;

    /// Records the payment service's answer: paid, or a refusal (the customer's
    /// `NbRefus` + 1, due date one day later).
    fn payment_result(&self, id: u64, paid: bool) -> impl Future<Output = Result<Payment, StoreError>> + Send;

    /// Marks a pending payment sent to the payment service at `at`, durably, before the
    /// call: until a result is recorded it stays pending (an import does not replace
    /// it), and the next run sends it again. `None` unmarks a payment that was not sent
    /// after all. Answers `None` (nothing written) when it is no longer pending.
    fn mark_payment_sent(
        &self,
        id: u64,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// Sets a customer's `NbRefus` to 0.
    fn reset_refusals(&self, id_client: Uuid) -> impl Future<Output = Result<CustomerRecord, StoreError>> + Send;

    /// Takes, or renews, the payment run's lease for run `holder`, until `lease` from
    /// now: `true` when the run may go on, `false` while another run's lease holds
    /// (another server's, on a store several servers share). A run that stops without
    /// giving it back (a crash) holds it until it expires.
    ///
    /// By default `true`: a store that one process owns (sled locks its directory) has
    /// one server, whose runs already take turns in that process.
    fn claim_payment_run(
        &self,
        holder: Uuid,
        lease: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (holder, lease);
        std::future::ready(Ok(true))
    }

    /// Gives the payment run's lease back, if `holder` has it.
    fn release_payment_run(&self, holder: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = holder;
        std::future::ready(Ok(()))
    }
}

/// Why an import failed as a whole (bad rows are not failures: they are listed in the
/// [`ImportReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The file cannot be read (or its upload broke off).
    #[error(transparent)]
    Input(#[from] ImportError),
    /// `mode=replace` with a file of no customers would erase every customer.
    #[error("a mode=replace import needs at least one customer; this file has none")]
    EmptyReplace,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import hears of its progress, from whichever thread or task runs it.
pub type ImportProgressFn = Arc<dyn Fn(ImportProgress) + Send + Sync>;

/// The rows of an import as they are read: an upload or a file parsed while it arrives.
/// An `Err` item (unreadable input, an upload cut short) fails the import whole.
pub type ImportRowStream = BoxStream<'static, Result<RowOutcome, ImportError>>;

/// Customer imports (`POST /api/update_db`, `crm-server import`).
pub trait ImportStore {
    /// Imports every row of `rows` (see the implementation for the guarantees): the
    /// whole file is validated, against itself and the stored customers, before
    /// anything is written; with any bad row nothing is written and the report lists
    /// the bad rows. `progress` hears of each stage. With `mode=replace`, readers see
    /// the old customers until the new set is complete, then only the new set.
    ///
    /// Long: the stream is read to its end before anything is written.
    fn import_customers(
        &self,
        rows: ImportRowStream,
        options: ImportOptions,
        progress: ImportProgressFn,
    ) -> impl Future<Output = Result<ImportReport, ImportFailure>> + Send;
}

/// What a store can tell of itself cheaply, for `/healthz` and `/metrics`: counters
/// it keeps, never a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Writes made durable so far, as disk flushes (sled's group commit) or commits:
    /// with group commit, far fewer than concurrent writes.
    pub flushes: u64,
    /// Live customers.
    pub customers: u64,
    /// Tickets stored (the newest ticket's sequence number).
    pub tickets: u64,
    /// Bytes the store takes on disk, when it can tell.
    pub size_on_disk: Option<u64>,
}

/// Health and durability of the store as a whole.
///
/// Every store retries, inside each operation, the failures that only say "try again"
/// (a database's serialization failures and deadlocks): callers never see them. What
/// reaches them is [`StoreError::Unavailable`] when the storage cannot be reached for
/// now (database down, pool exhausted), answered `503` with `Retry-After`.
pub trait StoreAdmin {
    /// Makes every acknowledged write durable (used at shutdown).
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counters of the store (see [`StoreStats`]).
    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;

    /// Why the store cannot take writes for now (a full disk), if it cannot; reads
    /// still work. Checked by `/healthz`.
    fn degraded(&self) -> impl Future<Output = Option<String>> + Send {
        std::future::ready(None)
    }
}

/// Why an export stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink of the records was closed (the reader went away).
    #[error("the reader of the export went away")]
    ReaderGone,
}

/// Why a restore failed. The store is left empty (a database rolls its transaction
/// back; sled removes the new directory, see [`sled::SledStore::restore_into`]).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} is not empty: restore into a new store")]
    NotEmpty(String),
    #[error("the dump is refused at {0}")]
    Dump(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The records of a dump as they are read, each checked (see
/// [`crm_model::backup::BackupReader`]), for [`BackupStore::restore`].
pub type BackupRecordStream = BoxStream<'static, Result<BackupRecord, BackupError>>;

/// Backups (`crm-server export`, `GET /api/v1/export`, `crm-server restore`).
pub trait BackupStore {
    /// Sends `sink` every record of a dump of one consistent snapshot of the store,
    /// header to trailer, one at a time, while other writes go on; a closed sink (the
    /// reader went away) stops it. Refused with [`StoreError::ImportRunning`] (before
    /// the header) while an import writes; an import started meanwhile waits for the
    /// end. The sink is bounded: a slow reader slows the export, it never piles up.
    fn export(
        &self,
        sink: tokio::sync::mpsc::Sender<BackupRecord>,
    ) -> impl Future<Output = Result<BackupCounts, ExportError>> + Send;

    /// Writes the records of a dump into this store, which must hold nothing yet
    /// ([`RestoreError::NotEmpty`] otherwise), rebuilding every index from them. The
    /// dump is checked to its trailer: a dump refused part way (unreadable, cut
    /// short, inconsistent) is an error, and the caller discards the store.
    fn restore(&self, records: BackupRecordStream) -> impl Future<Output = Result<BackupCounts, RestoreError>> + Send;
}

/// Which audit entries to read (`GET /api/v1/audit`, the customer page, the TUI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only the entries of this customer.
    pub customer: Option<Uuid>,
    /// Entries after this sequence number (before it when `newest_first`).
    pub after: Option<u64>,
    pub limit: usize,
    pub newest_first: bool,
}

/// The audit trail: every write above records who made it, through which route, and a
/// summary of the change, in its own atomic write (see [`crm_model::audit`]).
pub trait AuditStore: Sized {
    /// This store acting for `origin`: the writes made through the handle it answers
    /// are recorded under that actor and route. Cheap (a clone of the handle).
    fn acting_for(&self, origin: WriteOrigin) -> Self;

    /// A page of the trail, by sequence number: a key range, never an offset.
    fn audit(&self, query: &AuditQuery) -> impl Future<Output = Result<Page<AuditEntry>, StoreError>> + Send;
}

/// Everything the server needs of its storage.
pub trait Store:
    CustomerStore
    + ImportStore
    + LoyaltyStore
    + TicketStore
    + PaymentStore
    + StoreAdmin
    + BackupStore
    + AuditStore
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: CustomerStore
        + ImportStore
        + LoyaltyStore
        + TicketStore
        + PaymentStore
        + StoreAdmin
        + BackupStore
        + AuditStore
        + Clone
        + Send
        + Sync
        + 'static
{
}

//! Storage: the `Store` traits the server is generic over, one per domain, and the sled
//! implementation behind them (the one module that knows sled).
//!
//! Every write method is one domain operation and one atomic write, acknowledged only
//! once it is on disk, so that a PostgreSQL store can implement the same traits.

use std::future::Future;

use chrono::NaiveDate;
use crm_model::import::{ImportError, ImportProgress};
use crm_model::{
    AllowCredit, Cents, CreditItem, CustomerPatch, CustomerRecord, ImportOptions, ImportReport, LedgerEntry, ListQuery,
    NewCustomer, Page, Payment, RowOutcome, Ticket, TicketRecord,
};
use uuid::Uuid;

pub mod guarded;
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
    /// The store is closed for a moment (being reopened after a failure of its disk).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
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
    fn customer(&self, id_client: Uuid) -> Result<Option<CustomerRecord>, StoreError>;

    /// A live customer by e-mail, case-insensitively.
    fn customer_by_email(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError>;

    /// A live customer by loyalty card number.
    fn customer_by_card(&self, card: u64) -> Result<Option<CustomerRecord>, StoreError>;

    /// Up to `limit` live customers with an `id` above `after`, in `id` order: the
    /// building block of streamed full listings, which must not hold every customer.
    fn customers_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<CustomerRecord>, StoreError>;

    /// One page of the live customers, searched and sorted through indexes.
    fn list_customers(&self, query: &ListQuery) -> Result<Page<CustomerRecord>, StoreError>;

    /// How many live customers there are (a counter, not a scan).
    fn customer_count(&self) -> Result<u64, StoreError>;
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
    fn customer_by_card_ref(&self, card: &crm_model::CardRef) -> Result<Option<CustomerRecord>, StoreError>;

    /// A page of a customer's ledger, oldest first, after entry `after`.
    fn ledger(&self, id_client: Uuid, after: Option<u64>, limit: usize) -> Result<Page<LedgerEntry>, StoreError>;
}

/// Tickets: ingestion (idempotent on `uid`), listings, and the cursors of consumers.
pub trait TicketStore {
    /// Stores a validated batch in one atomic write, crediting known customers.
    fn ingest_tickets(&self, tickets: Vec<Ticket>) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send;

    /// Up to `limit` tickets with a sequence number above `after` and at most `until`.
    fn tickets_after(&self, after: u64, until: u64, limit: usize) -> Result<Vec<TicketRecord>, StoreError>;

    /// A page of every ticket, oldest first, after ticket `after`.
    fn ticket_page(&self, after: Option<u64>, limit: usize) -> Result<Page<TicketRecord>, StoreError>;

    /// The sequence number of the newest ticket (0 when none): how many there are.
    fn last_ticket_seq(&self) -> Result<u64, StoreError>;

    /// A page of a customer's credited tickets, oldest first, after ticket `after`.
    fn customer_tickets(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<TicketRecord>, StoreError>;

    /// The last ticket sequence number consumer `name` has received (0 at first).
    fn consumer_cursor(&self, name: &str) -> Result<u64, StoreError>;

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
    fn customer_payments(&self, id_client: Uuid, after: Option<u64>, limit: usize)
        -> Result<Page<Payment>, StoreError>;

    /// A page of pending payments due on or before `due`, by due date then id, after
    /// the opaque position `after`.
    fn payments_due(&self, due: NaiveDate, after: Option<&str>, limit: usize) -> Result<Page<Payment>, StoreError>;

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

/// Customer imports (`POST /api/update_db`, `crm-server import`).
pub trait ImportStore {
    /// Imports every row of `rows` (see the implementation for the guarantees): the
    /// whole file is validated, against itself and the stored customers, before
    /// anything is written; with any bad row nothing is written and the report lists
    /// the bad rows. `progress` hears of each stage. With `mode=replace`, readers see
    /// the old customers until the new set is complete, then only the new set.
    ///
    /// Blocking and long: call it from a blocking thread, never from async code.
    fn import_customers(
        &self,
        rows: &mut dyn Iterator<Item = Result<RowOutcome, ImportError>>,
        options: ImportOptions,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<ImportReport, ImportFailure>;
}

/// Health and durability of the store as a whole.
pub trait StoreAdmin {
    /// Makes every acknowledged write durable (used at shutdown).
    fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many disk flushes the store has made: with group commit, far fewer than
    /// concurrent writes.
    fn flush_count(&self) -> u64;

    /// Why the store cannot take writes for now (a full disk), if it cannot; reads
    /// still work. Checked by `/healthz`.
    fn degraded(&self) -> Option<String> {
        None
    }
    /// Bytes the store takes on disk, when it can tell (for `/metrics`).
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}

/// Backups (`crm-server export`, `GET /api/v1/export`).
pub trait BackupStore {
    /// Hands `emit` every record of a dump of one consistent snapshot of the store,
    /// header to trailer, one at a time, while other writes go on; an error of `emit`
    /// (the reader went away) stops it. Refused with [`StoreError::ImportRunning`]
    /// while an import writes; an import started meanwhile waits for the end.
    ///
    /// Blocking and long: call it from a blocking thread, never from async code.
    fn export<E: From<StoreError>>(
        &self,
        emit: &mut dyn FnMut(&crm_model::backup::BackupRecord) -> Result<(), E>,
    ) -> Result<crm_model::backup::BackupCounts, E>;
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
        + Clone
        + Send
        + Sync
        + 'static
{
}

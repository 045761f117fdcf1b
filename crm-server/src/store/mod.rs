//! Storage: the `Store` traits the server is generic over, one per domain, and the sled
//! implementation behind them (the one module that knows sled).
//!
//! Every write method is one domain operation and one atomic write, acknowledged only
//! once it is on disk, so that a PostgreSQL store can implement the same traits.

use std::future::Future;

use crm_model::import::{ImportError, ImportProgress};
use crm_model::{CustomerPatch, CustomerRecord, ImportOptions, ImportReport, ListQuery, NewCustomer, Page, RowOutcome};
use uuid::Uuid;

pub mod sled;

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
    /// A list cursor that this store did not hand out for this sort.
    #[error("{0}")]
    BadCursor(String),
    /// An import is being written: other writes wait for it to finish (retry later).
    #[error("a customer import is being written; retry in a moment")]
    ImportRunning,
    /// The storage itself failed (disk, corruption): a server fault, not the client's.
    #[error("storage failure: {0}")]
    Storage(String),
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
    /// the bad rows. `progress` hears of each stage.
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
}

/// Everything the server needs of its storage.
pub trait Store: CustomerStore + ImportStore + StoreAdmin + Clone + Send + Sync + 'static {}

impl<T> Store for T where T: CustomerStore + ImportStore + StoreAdmin + Clone + Send + Sync + 'static {}

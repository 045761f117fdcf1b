//! The PostgreSQL store: the same domain operations as the sled store, over one database
//! that several `crm-server` processes may share.
//!
//! Every write method is one transaction, committed before it answers: with
//! `synchronous_commit` on (the default) a commit is durable, so there is no flusher.
//! Transactions run at READ COMMITTED and lock what they change (`SELECT ... FOR UPDATE`
//! on the customer, an `UPDATE` of a `counters` row), so concurrent writers to one
//! customer or one counter take turns and each sees the last committed state.
//!
//! Sequence numbers (customers, tickets, articles, payments, cards) are `counters` rows
//! bumped inside the writing transaction, not database sequences: a sequence hands out
//! numbers in the order transactions *start*, so a ticket numbered 7 could commit after
//! ticket 8, and a consumer that had read up to 8 would never see 7. The `last_ticket_seq`
//! row stays locked until the ticket transaction commits, so the next ticket writer gets
//! its number only after that commit: ticket numbers follow commit order, and a reader
//! that sees ticket N sees every ticket below N (see [`tickets`]).
//!
//! Serialization failures, deadlocks, and unique violations met by a check-then-write race
//! are retried here ([`PgStore::transact`]); a database that cannot be reached (or a pool
//! with no free connection in time) is [`StoreError::Unavailable`].

mod audit;
mod backup;
mod customers;
mod import;
mod loyalty;
mod payments;
mod tickets;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_model::{Cents, CustomerRecord, LedgerCause, LedgerEntry, Sexe};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

use super::{StoreAdmin, StoreError, StoreStats};

/// The time of a write, to the microsecond PostgreSQL keeps: a write answers exactly
/// what a read of it answers.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Default bound of the connection pool (`--database-pool`).
pub const DEFAULT_POOL: u32 = 16;

/// How long a request waits for a free connection before it is answered `503`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a transaction is run again after a serialization failure, deadlock or
/// lost check-then-write race before the store gives up with `Unavailable`.
const MAX_ATTEMPTS: u32 = 20;

/// The migrations, embedded in the binary at build time and applied at start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/postgres/migrations");

/// The PostgreSQL store. Cheap to clone: every clone shares the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Who the writes through this handle are made for (see [`audit`]).
    origin: std::sync::Arc<crm_model::audit::WriteOrigin>,
    /// Write transactions this process has committed (`stats().flushes`).
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Why a step of a transaction failed: for good ([`StoreError`]), or for a reason that
/// running the transaction again may clear.
#[derive(Debug)]
pub(crate) enum Fail {
    Store(StoreError),
    Retry(String),
}

impl From<StoreError> for Fail {
    fn from(error: StoreError) -> Fail {
        Fail::Store(error)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(error: sqlx::Error) -> Fail {
        if let sqlx::Error::Database(db) = &error {
            // 40001 serialization_failure, 40P01 deadlock_detected: the database asks for
            // the transaction again. 23505 unique_violation: another transaction took a
            // key between this one's check and its write; run again, the check now
            // names the holder.
            if matches!(db.code().as_deref(), Some("40001" | "40P01" | "23505")) {
                return Fail::Retry(db.to_string());
            }
        }
        Fail::Store(db_error(error))
    }
}

pub(crate) type TxResult<T> = Result<T, Fail>;

/// A transaction of the pool.
pub(crate) type PgTx = Transaction<'static, Postgres>;

/// A database failure as the API sees it: the database out of reach (down, restarting,
/// no free connection in time) is `Unavailable` (`503`, retry later); anything else is
/// a storage fault.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("the database cannot be reached: {error}")),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Class 08: connection exception; 57P01-57P03: shut down or starting up;
            // 53300: too many connections.
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") => {
                StoreError::Unavailable(format!("the database cannot be reached: {error}"))
            }
            _ => StoreError::Storage(error.to_string()),
        },
        _ => StoreError::Storage(error.to_string()),
    }
}

impl PgStore {
    /// Connects a pool of at most `max_connections` to `url` and applies the embedded
    /// migrations (under the migrator's advisory lock, so that servers started together
    /// apply them once).
    pub async fn open(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Storage(format!("the database URL is not valid: {e}")))?;
        PgStore::open_with(options, max_connections).await
    }

    pub async fn open_with(options: PgConnectOptions, max_connections: u32) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => db_error(e),
            e => StoreError::Storage(format!("cannot apply the database migrations: {e}")),
        })?;
        Ok(PgStore {
            pool,
            origin: std::sync::Arc::default(),
            commits: std::sync::Arc::default(),
        })
    }

    /// The pool (for tests and the server's health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `body` in one transaction and commits it; runs it again, from the start and
    /// in a new transaction, when the database answers a serialization failure or a
    /// deadlock (or a unique key was taken meanwhile). `body` owns the transaction and
    /// hands it back with its result, so that it can borrow from its caller.
    pub(crate) async fn transact<T, F, Fut>(&self, body: F) -> Result<T, StoreError>
    where
        F: Fn(PgTx) -> Fut,
        Fut: Future<Output = (PgTx, TxResult<T>)>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.pool.begin().await.map_err(db_error)?;
            let (tx, result) = body(tx).await;
            let outcome = match result {
                Ok(value) => tx.commit().await.map(|()| value).map_err(Fail::from),
                Err(fail) => {
                    // Dropping it rolls back; an explicit rollback frees the connection
                    // at once.
                    let _ = tx.rollback().await;
                    Err(fail)
                }
            };
            match outcome {
                Ok(value) => {
                    self.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(value);
                }
                Err(Fail::Store(error)) => return Err(error),
                Err(Fail::Retry(why)) if attempt >= MAX_ATTEMPTS => {
                    return Err(StoreError::Unavailable(format!(
                        "the database kept refusing the write ({why}); retry in a moment"
                    )))
                }
                Err(Fail::Retry(why)) => {
                    tracing::debug!(attempt, why, "transaction retried");
                    // A short pause that grows, so that writers that collided spread out.
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 2)).await;
                }
            }
        }
    }
}

impl StoreAdmin for PgStore {
    /// Commits are durable when they answer (`synchronous_commit`): nothing to flush.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The counters from one snapshot; `flushes` counts the write transactions this
    /// process committed (each one durable), and the size is the database's.
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut tx = snapshot(&self.pool).await?;
        let counters: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM counters WHERE name = ANY($1)")
            .bind(vec![customers::LIVE_CUSTOMERS, tickets::LAST_TICKET_SEQ])
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let _ = tx.commit().await;
        let counter = |name: &str| {
            counters
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| (*v).max(0) as u64)
        };
        Ok(StoreStats {
            flushes: self.commits.load(std::sync::atomic::Ordering::Relaxed),
            customers: counter(customers::LIVE_CUSTOMERS),
            tickets: counter(tickets::LAST_TICKET_SEQ),
            size_on_disk: Some(size.max(0) as u64),
        })
    }

    /// A full disk of the database answers its own errors: nothing is known ahead.
    async fn degraded(&self) -> Option<String> {
        None
    }
}

/// Runs a read that may need several statements on one snapshot (a page and its
/// total): a read-only REPEATABLE READ transaction.
pub(crate) async fn snapshot(pool: &PgPool) -> Result<PgTx, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(tx)
}

/// The columns of a customer row, in the order [`customer_from_row`] reads them.
pub(crate) const CUSTOMER_COLUMNS: &str = "id, id_client, nom, prenom, email, phone, compte, age, sexe, carte_fid, \
     credit, nb_refus, next_payment, pending_payments, ledger_entries, ticket_count, ticket_total, erased, \
     created_at, updated_at";

pub(crate) fn customer_from_row(row: &PgRow) -> Result<CustomerRecord, sqlx::Error> {
    let sexe: String = row.try_get("sexe")?;
    Ok(CustomerRecord {
        id: row.try_get::<i64, _>("id")? as u64,
        id_client: row.try_get("id_client")?,
        nom: row.try_get("nom")?,
        prenom: row.try_get("prenom")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        compte: row.try_get("compte")?,
        age: row.try_get::<Option<i16>, _>("age")?.map(|a| a as u8),
        sexe: Sexe::parse(&sexe).unwrap_or_default(),
        carte_fid: row.try_get::<Option<i64>, _>("carte_fid")?.map(|c| c as u64),
        credit: cents(row.try_get("credit")?),
        nb_refus: row.try_get::<i32, _>("nb_refus")? as u32,
        next_payment: row.try_get("next_payment")?,
        pending_payments: cents(row.try_get("pending_payments")?),
        ledger_entries: row.try_get::<i64, _>("ledger_entries")? as u64,
        ticket_count: row.try_get::<i64, _>("ticket_count")? as u64,
        ticket_total: cents(row.try_get("ticket_total")?),
        erased: row.try_get("erased")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A stored amount: never negative, never above 2^53 - 1 (checked before every write).
pub(crate) fn cents(value: i64) -> Cents {
    Cents(value.max(0) as u64)
}

/// A `u64` the store hands out (ids, counters, cards: all far below 2^63) as a column.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Adds `delta` to counter `name` in the caller's transaction and answers the new value.
/// The row stays locked until the transaction ends: writers of one counter take turns.
pub(crate) async fn bump_counter(tx: &mut PgConnection, name: &str, delta: i64) -> TxResult<u64> {
    let value: i64 =
        sqlx::query_scalar("UPDATE counters SET value = GREATEST(value + $2, 0) WHERE name = $1 RETURNING value")
            .bind(name)
            .bind(delta)
            .fetch_one(&mut *tx)
            .await?;
    Ok(value as u64)
}

/// A counter's committed value, outside transactions.
pub(crate) async fn read_counter<'e>(executor: impl sqlx::PgExecutor<'e>, name: &str) -> Result<u64, StoreError> {
    let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await
        .map_err(db_error)?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

/// Moves `record`'s credit to `new_balance` and stores the ledger entry saying why; the
/// caller writes the record in the same transaction.
pub(crate) async fn append_ledger(
    tx: &mut PgConnection,
    record: &mut CustomerRecord,
    new_balance: Cents,
    cause: LedgerCause,
    key: Option<String>,
    at: DateTime<Utc>,
) -> TxResult<LedgerEntry> {
    let entry = crm_model::loyalty::move_credit(record, new_balance, cause, key, at);
    store_ledger_entry(tx, record.id, &entry).await?;
    Ok(entry)
}

/// Stores customer `customer_id`'s ledger entry `entry` (made by a crm-model rule).
pub(crate) async fn store_ledger_entry(tx: &mut PgConnection, customer_id: u64, entry: &LedgerEntry) -> TxResult<()> {
    sqlx::query(
        "INSERT INTO ledger (customer_id, seq, at, amount, balance, cause, key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(int(customer_id))
    .bind(int(entry.seq))
    .bind(entry.at)
    .bind(entry.amount)
    .bind(int(entry.balance.0))
    .bind(cause_name(entry.cause))
    .bind(&entry.key)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(crate) fn cause_name(cause: LedgerCause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn ledger_from_row(row: &PgRow) -> Result<LedgerEntry, sqlx::Error> {
    let cause: String = row.try_get("cause")?;
    Ok(LedgerEntry {
        seq: row.try_get::<i64, _>("seq")? as u64,
        at: row.try_get("at")?,
        amount: row.try_get("amount")?,
        balance: cents(row.try_get("balance")?),
        cause: serde_json::from_value(serde_json::Value::String(cause.clone()))
            .map_err(|e| sqlx::Error::Decode(format!("ledger cause {cause:?}: {e}").into()))?,
        key: row.try_get("key")?,
    })
}

/// Cuts `limit + 1` rows read after a cursor into a page: its cursor is the last item's
/// sequence number, when there are more.
pub(crate) fn seq_page<T>(
    mut items: Vec<T>,
    limit: usize,
    total: u64,
    seq_of: impl Fn(&T) -> u64,
) -> crm_model::Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|i| seq_of(i).to_string())
    } else {
        None
    };
    crm_model::Page {
        items,
        next_cursor,
        total,
    }
}

/// `limit + 1` as a SQL `LIMIT`: one row more than the page tells whether there are more.
pub(crate) fn limit_plus_one(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1).saturating_add(1)
}

//! Customer imports in PostgreSQL: the rows are copied into the staging table, checked
//! against themselves and the stored customers, and applied, all in ONE transaction.
//!
//! 1. **Stage**: the rows are parsed and validated as they arrive and sent to the
//!    staging table `import_rows` with `COPY ... FROM STDIN`, tagged with a fresh
//!    `import_id`; only a 128-bit hash of each unique key stays in memory, to find the
//!    keys two rows or more carry (as in the sled store). The `COPY` runs inside the
//!    import's transaction: no other session sees the staged rows, and a rollback (a
//!    refused file, a dry run, a failure, a connection lost) takes them away with
//!    everything else; a committed import deletes them before its commit.
//! 2. **Check**: the stored customers each row may touch (by `IdClient`, e-mail, card)
//!    are found by one join of the staging table with `customers`, read in chunks in
//!    file order. The rules that depend on the rows before (a row going to the customer
//!    of an earlier row, two rows giving one key to two customers) run per row in Rust
//!    through crm-model's [`FileCustomers`], with the sled store's rules, messages and
//!    row numbers (see [`super::super::sled`]'s import for them). Its plan (the target
//!    of each row, 8 bytes a row) is kept in memory. With any bad row nothing is
//!    written (unless `skip_invalid`); a dry run stops here too.
//! 3. **Apply**: the absent customers of a `mode=replace` are erased by one `UPDATE`;
//!    the rows are then applied in file order, chunk by chunk: crm-model's rules
//!    (`creation`, `update_of`, `move_credit`, `search_tokens`) run per row in Rust and
//!    each chunk's customers, tokens, ledger entries and payments are written by a few
//!    `INSERT ... SELECT FROM UNNEST` / `UPDATE ... FROM UNNEST` statements. The one
//!    audit entry and the counters are written last, and the transaction commits.
//!
//! Guarantees:
//! - *All or nothing*: one transaction. A failure, or a connection lost at any point,
//!   leaves nothing written; the staged rows go with the rollback.
//! - *One import at a time*: an import takes a transaction-level advisory lock; another
//!   import meanwhile (from any server of the database) is refused with
//!   [`StoreError::ImportRunning`].
//! - *Other writes are never refused*: from the check on, the import holds the
//!   `next_customer_id` counter row, so customer creations wait for its commit (and the
//!   plan's ids stay free); writes to the customers it updates or erases wait on their
//!   row locks; every other write proceeds. A write that takes a key the import gives
//!   meanwhile makes one of the two meet the unique index: the import runs its check
//!   and apply again from a savepoint taken after staging (deadlocks and serialization
//!   failures likewise), and the check then reports the conflict as a row error.
//! - *What readers see*: the old customers until the commit, then the new ones, whole,
//!   in both modes (the database's snapshots: nothing is visible before the commit).
//!
//! As in the sled store: a row matches by `IdClient`, else e-mail; a row matching an
//! earlier row of the file updates that row's customer, after it; the erasure of the
//! absent customers of a replace keeps their accounting and their payments as they are
//! (the payment run skips the payments of erased customers); an e-mail or card moves
//! between two customers of one file only from a customer erased by a replace.
//! Unmatched waiting tickets are credited to the customers the import creates (their
//! credit checked against the bound of money before anything is written) and to the
//! customers an update gives a key that tickets wait for (a credit past the bound there
//! fails the import whole).

use std::collections::{HashMap, HashSet};
use std::io::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use crm_model::customer::email_key;
use crm_model::import::{FileCustomers, ImportError, ImportPhase, ImportProgress, KeyCensus, RowKeys, SharedKeys};
use crm_model::search::{normalize, search_tokens};
use crm_model::{
    Cents, CustomerRecord, ImportMode, ImportOptions, ImportReport, ImportRow, LedgerCause, LedgerEntry, NewCustomer,
    RowError, RowOutcome, Ticket,
};
use futures::StreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::customers::{LIVE_CUSTOMERS, NEXT_CUSTOMER_ID};
use super::payments::{schedule_payment, LAST_PAYMENT_ID};
use super::{bump_counter, cause_name, customer_from_row, db_error, int, tickets, Fail, PgStore, TxResult};
use crate::store::{ImportFailure, ImportProgressFn, ImportRowStream, ImportStore, StoreError};

/// Where an import reports its progress (the caller's [`ImportProgressFn`]).
type Progress<'a> = &'a (dyn Fn(ImportProgress) + Send + Sync);

/// Rows read and applied per statement of the check and apply passes.
const CHUNK_ROWS: usize = 5_000;

/// Rows between progress reports while reading and checking.
const PROGRESS_EVERY: u64 = 10_000;

/// Bytes of `COPY` data gathered before they are sent.
const COPY_BUFFER: usize = 1 << 20;

/// The key of the advisory lock an import holds for its transaction (`crmimprt` in
/// ASCII, below 2^63; its high half is 0x63726d69, its low half 0x6d707274).
pub(crate) const IMPORT_LOCK: i64 = 0x6372_6d69_6d70_7274;

/// How many times the check and apply run again after a deadlock, a serialization
/// failure or a key taken meanwhile, before the import gives up with `Unavailable`.
const MAX_ATTEMPTS: u32 = 10;

/// A plan entry of a row that creates the customer with the id in the low bits.
const PLAN_CREATES: u64 = 1 << 63;
/// A plan entry of a row that updates a customer an earlier row of the file created
/// or updated. Other entries are the id of the stored customer a row updates first.
const PLAN_AGAIN: u64 = 1 << 62;
/// A plan entry of a row that is not written (`skip_invalid`).
const PLAN_SKIP: u64 = u64::MAX;

/// What the apply does with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    Skip,
    Create(u64),
    Update { id: u64, again: bool },
}

impl Planned {
    fn from_entry(entry: u64) -> Planned {
        match entry {
            PLAN_SKIP => Planned::Skip,
            e if e & PLAN_CREATES != 0 => Planned::Create(e & !(PLAN_CREATES | PLAN_AGAIN)),
            e => Planned::Update {
                id: e & !PLAN_AGAIN,
                again: e & PLAN_AGAIN != 0,
            },
        }
    }

    fn entry(self) -> u64 {
        match self {
            Planned::Skip => PLAN_SKIP,
            Planned::Create(id) => id | PLAN_CREATES,
            Planned::Update { id, again: false } => id,
            Planned::Update { id, again: true } => id | PLAN_AGAIN,
        }
    }
}

impl ImportStore for PgStore {
    async fn import_customers(
        &self,
        rows: ImportRowStream,
        options: ImportOptions,
        progress: ImportProgressFn,
    ) -> Result<ImportReport, ImportFailure> {
        if let Some(conflict) = options.conflict() {
            return Err(ImportError::Unreadable(conflict.into()).into());
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let outcome = self.import_in(&mut tx, rows, options, &*progress).await;
        match outcome {
            Ok((report, true)) => {
                tx.commit().await.map_err(db_error)?;
                Ok(report)
            }
            Ok((report, false)) => {
                // Nothing to keep: the staged rows go with the rollback.
                let _ = tx.rollback().await;
                Ok(report)
            }
            Err(failure) => {
                let _ = tx.rollback().await;
                Err(failure)
            }
        }
    }
}

/// What the check hands to the apply.
struct Plan {
    /// One entry per staged row, in file order (see [`Planned`]).
    entries: Vec<u64>,
    /// The stored customers some row updates.
    matched: Bitset,
    first_new_id: u64,
    creates: u64,
    /// Customers that several rows go to: the apply keeps their latest state.
    repeated: HashSet<u64>,
    /// Whether unmatched tickets wait for some client key.
    tickets_wait: bool,
}

/// What the apply did.
#[derive(Debug, Default)]
struct Done {
    created: u64,
    updated: u64,
    unchanged: u64,
    erased: u64,
}

impl PgStore {
    /// The import in the caller's transaction: answers the report and whether there is
    /// anything to commit.
    async fn import_in(
        &self,
        tx: &mut PgConnection,
        rows: ImportRowStream,
        options: ImportOptions,
        progress: Progress<'_>,
    ) -> Result<(ImportReport, bool), ImportFailure> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(IMPORT_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if !locked {
            return Err(StoreError::ImportRunning.into());
        }
        let import_id = Uuid::new_v4();
        let mut read = ImportReport::default();
        let (staged, shared) = stage(tx, import_id, rows, &mut read, progress).await?;
        if staged.rows == 0 && read.error_count == 0 && options.mode == ImportMode::Replace {
            return Err(ImportFailure::EmptyReplace);
        }
        let will_write = !options.dry_run && (read.error_count == 0 || options.skip_invalid);
        sqlx::query("SAVEPOINT staged")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut report = read.clone();
            let result = self
                .check_and_apply(
                    tx,
                    import_id,
                    staged,
                    shared.clone(),
                    options,
                    will_write,
                    &mut report,
                    progress,
                )
                .await;
            match result {
                Ok(wrote) => {
                    if wrote {
                        sqlx::query("DELETE FROM import_rows WHERE import_id = $1")
                            .bind(import_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    }
                    return Ok((report, wrote));
                }
                Err(Fail::Store(error)) => return Err(error.into()),
                Err(Fail::Retry(why)) if attempt >= MAX_ATTEMPTS => {
                    return Err(StoreError::Unavailable(format!(
                        "the database kept refusing the import ({why}); retry in a moment"
                    ))
                    .into())
                }
                Err(Fail::Retry(why)) => {
                    tracing::debug!(attempt, why, "import checked and applied again");
                    sqlx::query("ROLLBACK TO SAVEPOINT staged")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 20)).await;
                }
            }
        }
    }

    /// Checks every staged row and, when the file may be written, applies it; answers
    /// whether it wrote. `report` holds the read pass's errors and gets the rest.
    #[allow(clippy::too_many_arguments)]
    async fn check_and_apply(
        &self,
        tx: &mut PgConnection,
        import_id: Uuid,
        staged: Staged,
        shared: SharedKeys,
        options: ImportOptions,
        will_write: bool,
        report: &mut ImportReport,
        progress: Progress<'_>,
    ) -> TxResult<bool> {
        let plan = check(tx, import_id, staged, shared, options, will_write, report, progress).await?;
        if !options.skip_invalid {
            report.skipped = 0;
        }
        report.sort_and_cap_errors();
        let refused = report.error_count > 0 && !options.skip_invalid;
        let nothing_to_write = report.created + report.updated + report.unchanged == 0;
        if refused || options.dry_run || nothing_to_write {
            return Ok(false);
        }
        let now = super::now();
        let done = apply(tx, import_id, staged, &plan, options.mode, progress, now).await?;
        bump_counter(tx, LIVE_CUSTOMERS, done.created as i64 - done.erased as i64).await?;
        let last_id = bump_counter(tx, NEXT_CUSTOMER_ID, plan.creates as i64).await?;
        if last_id != plan.first_new_id - 1 + plan.creates {
            return Err(StoreError::Storage("a customer was created while an import was planned".into()).into());
        }
        report.created = done.created;
        report.updated = done.updated;
        report.unchanged = done.unchanged;
        report.erased = done.erased;
        // The entry says what was written, as the sled store's does (its skipped rows
        // are in the answer, not in the trail).
        let counts = ImportReport {
            created: done.created,
            updated: done.updated,
            unchanged: done.unchanged,
            erased: done.erased,
            ..ImportReport::default()
        };
        let summary = crm_model::audit::import_summary(options.mode, &counts);
        super::audit::record(tx, &self.origin, None, summary, now).await?;
        Ok(true)
    }
}

/// Appends `text` to `COPY` text-format data, escaped.
fn copy_text(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

/// One staged row as a line of `COPY` text format.
fn copy_line(out: &mut Vec<u8>, import_id: Uuid, row: &ImportRow) -> Result<(), StoreError> {
    let c = &row.customer;
    let json = serde_json::to_string(row).map_err(|e| StoreError::Storage(format!("an import row: {e}")))?;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{import_id}\t{}\t", row.row);
    match c.id_client {
        Some(id) => {
            let _ = write!(out, "{id}");
        }
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    match email_key(&c.email) {
        Some(key) => copy_text(out, &key),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    match c.carte_fid {
        Some(card) => {
            let _ = write!(out, "{}", int(card));
        }
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    copy_text(out, &json);
    out.push(b'\n');
    Ok(())
}

/// Pass 1: reads every row, copies the valid ones into the staging table, lists the bad
/// ones (each counted skipped), and finds the keys two rows or more carry. Answers how
/// many rows were staged.
async fn stage(
    tx: &mut PgConnection,
    import_id: Uuid,
    mut rows: ImportRowStream,
    report: &mut ImportReport,
    progress: Progress<'_>,
) -> Result<(Staged, SharedKeys), ImportFailure> {
    let mut copy = tx
        .copy_in_raw("COPY import_rows (import_id, row_no, id_client, email_key, carte_fid, row_data) FROM STDIN")
        .await
        .map_err(db_error)?;
    let mut census = KeyCensus::default();
    let mut buffer = Vec::with_capacity(COPY_BUFFER + 64 * 1024);
    let (mut staged, mut seen) = (Staged { rows: 0, last_row: 0 }, 0u64);
    let failure = loop {
        let Some(outcome) = rows.next().await else {
            break None;
        };
        seen += 1;
        if seen.is_multiple_of(PROGRESS_EVERY) {
            progress(ImportProgress {
                phase: ImportPhase::Reading,
                done: seen,
                total: None,
            });
        }
        match outcome {
            Err(error) => break Some(ImportFailure::Input(error)),
            Ok(RowOutcome::Invalid(errors)) => {
                report.skipped += 1;
                errors.into_iter().for_each(|e| report.push_error(e));
            }
            Ok(RowOutcome::Valid(row)) => {
                census.add(&RowKeys::of(&row));
                if let Err(error) = copy_line(&mut buffer, import_id, &row) {
                    break Some(error.into());
                }
                staged.rows += 1;
                staged.last_row = staged.last_row.max(row.row);
                if buffer.len() >= COPY_BUFFER {
                    if let Err(error) = copy.send(std::mem::take(&mut buffer)).await {
                        break Some(db_error(error).into());
                    }
                    buffer.reserve(COPY_BUFFER + 64 * 1024);
                }
            }
        }
    };
    if let Some(failure) = failure {
        // The transaction is rolled back by the caller; the COPY is ended first so
        // that the connection can say so.
        let _ = copy.abort("the import stopped").await;
        return Err(failure);
    }
    if !buffer.is_empty() {
        copy.send(buffer).await.map_err(db_error)?;
    }
    copy.finish().await.map_err(db_error)?;
    Ok((staged, census.shared()))
}

/// The stored customers a chunk of staged rows may touch, as the check reads them:
/// the holder of the row's `IdClient` (erased or not), the live holders of its e-mail
/// and card, and the customer the row resolves to (`IdClient`, else e-mail) in full.
const CHECK_CHUNK: &str = "SELECT r.row_no, r.row_data::text AS row_data, \
       ci.id AS by_id, ci.erased AS by_id_erased, \
       ce.id AS email_holder, ce.id_client AS email_holder_uuid, \
       cc.id AS card_holder, cc.id_client AS card_holder_uuid, \
       ($4 AND EXISTS (SELECT 1 FROM ticket_pending p WHERE p.client_key = ANY (ARRAY[\
           'u:' || r.id_client::text, 'e:' || r.email_key, 'c:' || r.carte_fid::text]))) AS waiting, \
       m.id, m.id_client, m.nom, m.prenom, m.email, m.phone, m.compte, m.age, m.sexe, m.carte_fid, m.credit, \
       m.nb_refus, m.next_payment, m.pending_payments, m.ledger_entries, m.ticket_count, m.ticket_total, \
       m.erased, m.created_at, m.updated_at \
     FROM import_rows r \
     LEFT JOIN customers ci ON ci.id_client = r.id_client \
     LEFT JOIN customers ce ON ce.email_key = r.email_key AND NOT ce.erased \
     LEFT JOIN customers cc ON cc.carte_fid = r.carte_fid AND NOT cc.erased \
     LEFT JOIN customers m ON m.id = CASE WHEN r.id_client IS NOT NULL THEN ci.id ELSE ce.id END \
     WHERE r.import_id = $1 AND r.row_no > $2 AND r.row_no <= $3 ORDER BY r.row_no";

/// The staged rows of a chunk as the apply reads them.
const APPLY_CHUNK: &str = "SELECT r.row_no, r.row_data::text AS row_data, \
       ($4 AND EXISTS (SELECT 1 FROM ticket_pending p WHERE p.client_key = ANY (ARRAY[\
           'u:' || r.id_client::text, 'e:' || r.email_key, 'c:' || r.carte_fid::text]))) AS waiting \
     FROM import_rows r WHERE r.import_id = $1 AND r.row_no > $2 AND r.row_no <= $3 ORDER BY r.row_no";

/// A counter's value as the caller's transaction sees it.
async fn counter_in(tx: &mut PgConnection, name: &str) -> TxResult<u64> {
    let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

/// The staged rows of an import: how many, and the file position of the last one.
/// Chunks are ranges of positions (`row_no`), not `LIMIT`s after a position: each
/// statement then reads its own rows only, whatever the planner thinks of a staging
/// table filled in this very transaction.
#[derive(Debug, Clone, Copy)]
struct Staged {
    rows: u64,
    last_row: u64,
}

impl Staged {
    /// The `(after, up to)` ranges of positions to read, in order.
    fn chunks(self) -> impl Iterator<Item = (i64, i64)> {
        let step = CHUNK_ROWS as u64;
        (0..self.last_row.div_ceil(step)).map(move |i| (int(i * step), int((i + 1) * step)))
    }
}

fn parse_row(row: &PgRow) -> TxResult<ImportRow> {
    let text: String = row.try_get("row_data")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Storage(format!("an unreadable staged import row: {e}")).into())
}

/// The stored customer a row resolves to.
enum Resolved {
    Create,
    /// The row names an erased customer's `IdClient`.
    Erased,
    Existing(Box<CustomerRecord>),
}

/// The customer a row goes to.
enum Target {
    /// A stored customer no earlier row of the file went to.
    Stored(Box<CustomerRecord>),
    /// The customer an earlier row of the file created or updated.
    Again(u64),
    /// A customer the row creates, with this id.
    New(u64),
}

impl Target {
    fn id(&self) -> u64 {
        match self {
            Target::Stored(record) => record.id,
            Target::Again(id) | Target::New(id) => *id,
        }
    }
}

fn resolve(row: &ImportRow, stored: &PgRow) -> TxResult<Resolved> {
    if row.customer.id_client.is_some() {
        let by_id: Option<i64> = stored.try_get("by_id")?;
        if by_id.is_none() {
            return Ok(Resolved::Create);
        }
        if stored.try_get::<Option<bool>, _>("by_id_erased")?.unwrap_or(false) {
            return Ok(Resolved::Erased);
        }
    } else {
        let holder: Option<i64> = stored.try_get("email_holder")?;
        if holder.is_none() || email_key(&row.customer.email).is_none() {
            return Ok(Resolved::Create);
        }
    }
    Ok(Resolved::Existing(Box::new(customer_from_row(stored)?)))
}

/// Pass 2: resolves every staged row, in file order, against the earlier rows and the
/// stored customers, checks its unique keys and the money it brings, and plans it (the
/// sled store's check, row for row).
#[allow(clippy::too_many_arguments)]
async fn check(
    tx: &mut PgConnection,
    import_id: Uuid,
    staged: Staged,
    shared: SharedKeys,
    options: ImportOptions,
    will_write: bool,
    report: &mut ImportReport,
    progress: Progress<'_>,
) -> TxResult<Plan> {
    // An import that will write holds the counter of customer ids from here to its
    // commit: creations wait, and the ids planned here stay free.
    let lock = if will_write { " FOR UPDATE" } else { "" };
    let next_id: i64 = sqlx::query_scalar(&format!("SELECT value FROM counters WHERE name = $1{lock}"))
        .bind(NEXT_CUSTOMER_ID)
        .fetch_one(&mut *tx)
        .await?;
    let next_id = next_id.max(0) as u64;
    let first_new_id = next_id + 1;
    let live_before = counter_in(tx, LIVE_CUSTOMERS).await?;
    let tickets_wait: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ticket_pending)")
        .fetch_one(&mut *tx)
        .await?;
    let mut matched = Bitset::new(next_id + 1);
    let mut matched_count = 0u64;
    let mut creates = 0u64;
    let mut file = FileCustomers::new(shared);
    // (row, field, holder, its IdClient): keys a row takes from a stored customer, fine
    // only if that customer is erased by this (replace) import, known at the end.
    let mut taken_if_kept: Vec<(u64, &'static str, u64, Uuid)> = Vec::new();
    let mut entries = Vec::with_capacity(usize::try_from(staged.rows).unwrap_or(0));
    let mut repeated = HashSet::new();
    let now = super::now();
    let mut done = 0u64;
    for (after, upto) in staged.chunks() {
        let chunk = sqlx::query(CHECK_CHUNK)
            .bind(import_id)
            .bind(after)
            .bind(upto)
            .bind(tickets_wait)
            .fetch_all(&mut *tx)
            .await?;
        for stored in &chunk {
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(ImportProgress {
                    phase: ImportPhase::Checking,
                    done,
                    total: Some(staged.rows),
                });
            }
            let row = parse_row(stored)?;
            let keys = RowKeys::of(&row);
            let target = match file.earlier_target(&keys) {
                Some(id) => Target::Again(id),
                None => match resolve(&row, stored)? {
                    Resolved::Erased => {
                        report.skipped += 1;
                        report.push_error(row.error("IdClient", "belongs to an erased customer"));
                        entries.push(Planned::Skip.entry());
                        continue;
                    }
                    Resolved::Create => Target::New(first_new_id + creates),
                    Resolved::Existing(record) if matched.get(record.id) => Target::Again(record.id),
                    Resolved::Existing(record) => Target::Stored(record),
                },
            };
            let target_id = target.id();
            let mut errors = file.conflicts(row.row, &keys, target_id);
            let mut held = Vec::new();
            let c = &row.customer;
            let (check_email, check_card) = match target {
                Target::New(_) => (true, true),
                _ => (row.given.email, row.given.carte_fid),
            };
            let email_holder = email_key(&c.email)
                .filter(|_| check_email)
                .map(|_| ("Email", "email_holder", "email_holder_uuid"));
            let card_holder = c
                .carte_fid
                .filter(|_| check_card)
                .map(|_| ("CarteFid", "card_holder", "card_holder_uuid"));
            for (field, id_column, uuid_column) in email_holder.into_iter().chain(card_holder) {
                let holder: Option<i64> = stored.try_get(id_column)?;
                let Some(holder) = holder.map(|h| h as u64).filter(|h| *h != target_id) else {
                    continue;
                };
                let holder_uuid: Uuid = stored.try_get::<Option<Uuid>, _>(uuid_column)?.unwrap_or_default();
                if options.mode == ImportMode::Replace && !matched.get(holder) {
                    // Erased by this import unless a later row keeps it.
                    held.push((field, holder, holder_uuid));
                } else {
                    errors.push(RowError::taken(row.row, field, holder_uuid));
                }
            }
            if matches!(target, Target::New(_)) && stored.try_get::<Option<bool>, _>("waiting")?.unwrap_or(false) {
                errors.extend(waiting_tickets_overflow(tx, &row).await?);
            }
            if !errors.is_empty() {
                report.skipped += 1;
                errors.into_iter().for_each(|e| report.push_error(e));
                entries.push(Planned::Skip.entry());
                continue;
            }
            file.record(row.row, &keys, target_id);
            taken_if_kept.extend(
                held.into_iter()
                    .map(|(field, holder, uuid)| (row.row, field, holder, uuid)),
            );
            if row.is_unmatchable() {
                report.unmatchable += 1;
            }
            let planned = match target {
                Target::New(id) => {
                    creates += 1;
                    report.created += 1;
                    Planned::Create(id)
                }
                Target::Again(id) => {
                    report.updated += 1;
                    repeated.insert(id);
                    Planned::Update { id, again: true }
                }
                Target::Stored(record) => {
                    matched.set(record.id);
                    matched_count += 1;
                    if row.preview_update(&record, now).1 {
                        report.updated += 1;
                    } else {
                        report.unchanged += 1;
                    }
                    Planned::Update {
                        id: record.id,
                        again: false,
                    }
                }
            };
            entries.push(planned.entry());
        }
    }
    // Only a replace defers: its rows are all written or none.
    for (row, field, holder, uuid) in taken_if_kept {
        if matched.get(holder) {
            report.push_error(RowError::taken(row, field, uuid));
        }
    }
    if options.mode == ImportMode::Replace {
        report.erased = live_before.saturating_sub(matched_count);
    }
    Ok(Plan {
        entries,
        matched,
        first_new_id,
        creates,
        repeated,
        tickets_wait,
    })
}

/// The error of a row whose new customer would pass the bound of money once credited
/// with the unmatched tickets waiting for its `IdClient`, e-mail or card (they are
/// matched when it is created, in the same transaction).
async fn waiting_tickets_overflow(tx: &mut PgConnection, row: &ImportRow) -> TxResult<Option<RowError>> {
    let c = &row.customer;
    let keys: Vec<String> = [
        c.id_client.map(|id| format!("u:{id}")),
        email_key(&c.email).map(|e| format!("e:{e}")),
        c.carte_fid.map(|card| format!("c:{card}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let waiting: Vec<sqlx::types::Json<Ticket>> = sqlx::query_scalar(
        "SELECT t.ticket FROM tickets t WHERE t.seq IN (SELECT seq FROM ticket_pending WHERE client_key = ANY($1)) \
         ORDER BY t.seq",
    )
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?;
    Ok(row.waiting_tickets_overflow(waiting.iter().map(|t| &t.0)))
}

/// What one chunk writes, gathered as its rows are applied in file order.
#[derive(Default)]
struct ChunkWrites {
    /// Customers created in this chunk, in their final state for the chunk.
    inserts: Vec<CustomerRecord>,
    /// Index in `inserts` by id.
    inserted: HashMap<u64, usize>,
    /// Stored customers changed in this chunk: as stored before it, and now.
    updates: Vec<(CustomerRecord, CustomerRecord)>,
    updated: HashMap<u64, usize>,
    ledger: Vec<(u64, LedgerEntry)>,
    /// Payments of created customers: (customer id, IdClient, due date, amount).
    payments: Vec<(u64, Uuid, NaiveDate, Cents)>,
}

impl ChunkWrites {
    fn insert(&mut self, record: CustomerRecord) {
        self.inserted.insert(record.id, self.inserts.len());
        self.inserts.push(record);
    }

    /// Records `record`'s new state; `stored` is its state as the database holds it.
    fn update(&mut self, stored: &CustomerRecord, record: CustomerRecord) {
        if let Some(&at) = self.inserted.get(&record.id) {
            self.inserts[at] = record;
        } else if let Some(&at) = self.updated.get(&record.id) {
            self.updates[at].1 = record;
        } else {
            self.updated.insert(record.id, self.updates.len());
            self.updates.push((stored.clone(), record));
        }
    }
}

/// Pass 3: erases the absent customers of a replace, then applies the plan's rows in
/// file order, chunk by chunk.
async fn apply(
    tx: &mut PgConnection,
    import_id: Uuid,
    staged: Staged,
    plan: &Plan,
    mode: ImportMode,
    progress: Progress<'_>,
    now: DateTime<Utc>,
) -> TxResult<Done> {
    let mut done = Done::default();
    let matched: Vec<i64> = plan.matched.ids().map(int).collect();
    // Every customer the rows update is locked before any counter the apply moves, so
    // that a writer holding one of them and waiting for a counter cannot close a cycle.
    sqlx::query("SELECT 1 FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&matched)
        .execute(&mut *tx)
        .await?;
    if mode == ImportMode::Replace {
        done.erased = erase_absent(tx, plan.first_new_id, &matched, now).await?;
        progress(ImportProgress {
            phase: ImportPhase::Erasing,
            done: done.erased,
            total: None,
        });
    }
    // The latest state of the customers several rows go to.
    let mut latest: HashMap<u64, CustomerRecord> = HashMap::new();
    let mut index = 0usize;
    for (after, upto) in staged.chunks() {
        let chunk = sqlx::query(APPLY_CHUNK)
            .bind(import_id)
            .bind(after)
            .bind(upto)
            .bind(plan.tickets_wait)
            .fetch_all(&mut *tx)
            .await?;
        let planned: Vec<Planned> = (index..index + chunk.len())
            .map(|i| plan.entries.get(i).copied().map(Planned::from_entry))
            .collect::<Option<_>>()
            .ok_or_else(|| StoreError::Storage("the import plan is shorter than its staged rows".into()))?;
        index += chunk.len();
        let stored_ids: Vec<i64> = planned
            .iter()
            .filter_map(|p| match p {
                Planned::Update { id, again: false } => Some(int(*id)),
                _ => None,
            })
            .collect();
        let sql = format!("SELECT {} FROM customers WHERE id = ANY($1)", super::CUSTOMER_COLUMNS);
        let mut olds: HashMap<u64, CustomerRecord> = HashMap::new();
        for row in sqlx::query(&sql).bind(&stored_ids).fetch_all(&mut *tx).await? {
            let record = customer_from_row(&row)?;
            olds.insert(record.id, record);
        }
        let mut writes = ChunkWrites::default();
        for (staged_row, planned) in chunk.iter().zip(planned) {
            let waiting = staged_row.try_get::<Option<bool>, _>("waiting")?.unwrap_or(false);
            let row = parse_row(staged_row)?;
            match planned {
                Planned::Skip => {}
                Planned::Create(id) => {
                    let record = create_row(tx, &row.customer, id, waiting, &mut writes, now).await?;
                    if plan.repeated.contains(&id) {
                        latest.insert(id, record.clone());
                    }
                    writes.insert(record);
                    done.created += 1;
                }
                Planned::Update { id, again } => {
                    let old = if again {
                        latest.get(&id).cloned()
                    } else {
                        olds.remove(&id)
                    };
                    let Some(old) = old else {
                        return Err(StoreError::Storage(format!("planned customer {id} is missing")).into());
                    };
                    if old.erased {
                        // Erased between the check and its lock: the erasure stands.
                        done.unchanged += 1;
                        continue;
                    }
                    let record = update_row(tx, &row, &old, waiting, &mut writes, now).await?;
                    if plan.repeated.contains(&id) {
                        latest.insert(id, record.clone().unwrap_or_else(|| old.clone()));
                    }
                    match record {
                        Some(record) => {
                            writes.update(&old, record);
                            done.updated += 1;
                        }
                        None if again => done.updated += 1,
                        None => done.unchanged += 1,
                    }
                }
            }
        }
        write_chunk(tx, writes, now).await?;
        progress(ImportProgress {
            phase: ImportPhase::Writing,
            done: index as u64,
            total: Some(staged.rows),
        });
    }
    Ok(done)
}

/// Erases every live customer that existed before the import (an id below
/// `first_new_id`) and that no row matched, with crm-model's erasure; answers how many.
async fn erase_absent(tx: &mut PgConnection, first_new_id: u64, matched: &[i64], now: DateTime<Utc>) -> TxResult<u64> {
    // The erasure's values, from crm-model's rule (it clears the same fields to the
    // same values on every customer).
    let mut blank = NewCustomer::default().into_record(0, Uuid::nil(), now);
    blank.erase_personal_data(now);
    let erased: i64 = sqlx::query_scalar(
        "WITH gone AS ( \
             UPDATE customers c SET nom = $3, prenom = $4, email = $5, email_key = NULL, phone = $6, compte = $7, \
                 age = $8, sexe = $9, carte_fid = $10, erased = TRUE, updated_at = $11, nom_key = $12 \
             WHERE NOT c.erased AND c.id < $1 \
                 AND NOT EXISTS (SELECT 1 FROM unnest($2::bigint[]) AS m(id) WHERE m.id = c.id) \
             RETURNING c.id), \
         dropped AS (DELETE FROM customer_tokens t USING gone WHERE t.customer_id = gone.id) \
         SELECT count(*) FROM gone",
    )
    .bind(int(first_new_id))
    .bind(matched)
    .bind(&blank.nom)
    .bind(&blank.prenom)
    .bind(&blank.email)
    .bind(&blank.phone)
    .bind(&blank.compte)
    .bind(blank.age.map(i16::from))
    .bind(blank.sexe.as_str())
    .bind(blank.carte_fid.map(int))
    .bind(blank.updated_at)
    .bind(normalize(&blank.nom))
    .fetch_one(&mut *tx)
    .await?;
    Ok(erased.max(0) as u64)
}

/// A new customer with id `id` from a row, with its opening credit, payment and the
/// tickets waiting for it (see [`crm_model::input::Creation`]); its ledger entry and
/// payment go to `writes`.
async fn create_row(
    tx: &mut PgConnection,
    c: &NewCustomer,
    id: u64,
    waiting: bool,
    writes: &mut ChunkWrites,
    now: DateTime<Utc>,
) -> TxResult<CustomerRecord> {
    let creation = c.creation(id, c.id_client.unwrap_or_else(Uuid::new_v4), now);
    let mut record = creation.record;
    if let Some(opening) = creation.opening_credit {
        let entry = crm_model::loyalty::move_credit(&mut record, opening, LedgerCause::Opening, None, now);
        writes.ledger.push((id, entry));
    }
    if let Some((date, montant)) = creation.payment {
        // Its only pending payment: the customer's `Date_paiement` and `Montant`.
        record.next_payment = Some(date);
        record.pending_payments = montant;
        record.updated_at = now;
        writes.payments.push((id, record.id_client, date, montant));
    }
    if waiting {
        tickets::match_pending(tx, None, &mut record, now).await?;
    }
    Ok(record)
}

/// Applies a row to the customer `old` it updates (see [`crm_model::import::RowUpdate`]):
/// the new state, or `None` when the row changes nothing.
async fn update_row(
    tx: &mut PgConnection,
    row: &ImportRow,
    old: &CustomerRecord,
    waiting: bool,
    writes: &mut ChunkWrites,
    now: DateTime<Utc>,
) -> TxResult<Option<CustomerRecord>> {
    let update = row.update_of(old);
    let mut record = update.record;
    if let Some(credit) = update.new_balance {
        let entry = crm_model::loyalty::move_credit(&mut record, credit, LedgerCause::ImportAdjustment, None, now);
        writes.ledger.push((record.id, entry));
    }
    if let Some((date, montant)) = update.payment {
        // The payments the chunk created so far are in the table before the customer's
        // pending ones are replaced (a row may update a customer an earlier row created).
        write_payments(tx, std::mem::take(&mut writes.payments), now).await?;
        replace_pending_payments(tx, record.id, now).await?;
        schedule_payment(tx, &mut record, date, montant, now).await?;
    }
    if waiting {
        tickets::match_pending(tx, Some(old), &mut record, now).await?;
    }
    if record == *old {
        return Ok(None);
    }
    record.updated_at = now;
    Ok(Some(record))
}

/// Marks customer `customer_id`'s pending payments replaced, but those sent to the
/// payment service and awaiting its answer (they stay pending, as in the sled store).
async fn replace_pending_payments(tx: &mut PgConnection, customer_id: u64, now: DateTime<Utc>) -> TxResult<()> {
    sqlx::query(
        "UPDATE payments SET status = 'replaced', updated_at = $2 \
         WHERE customer_id = $1 AND status = 'pending' AND sent_at IS NULL",
    )
    .bind(int(customer_id))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores payments of created customers, numbered from the payments' counter.
async fn write_payments(
    tx: &mut PgConnection,
    payments: Vec<(u64, Uuid, NaiveDate, Cents)>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let count = payments.len() as u64;
    let last = bump_counter(tx, LAST_PAYMENT_ID, count as i64).await?;
    let ids: Vec<i64> = (last + 1 - count..=last).map(int).collect();
    let customers: Vec<i64> = payments.iter().map(|p| int(p.0)).collect();
    let id_clients: Vec<Uuid> = payments.iter().map(|p| p.1).collect();
    let dates: Vec<NaiveDate> = payments.iter().map(|p| p.2).collect();
    let amounts: Vec<i64> = payments.iter().map(|p| int(p.3 .0)).collect();
    sqlx::query(
        "INSERT INTO payments (id, customer_id, id_client, montant, date, status, attempts, sent_at, created_at, \
         updated_at) \
         SELECT id, customer_id, id_client, montant, date, 'pending', 0, NULL, $6, $6 \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], $5::date[]) \
             AS v(id, customer_id, id_client, montant, date)",
    )
    .bind(ids)
    .bind(customers)
    .bind(id_clients)
    .bind(amounts)
    .bind(dates)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes what a chunk gathered: payments, ledger entries, changed and new customers
/// and their search tokens, a few statements in all.
async fn write_chunk(tx: &mut PgConnection, writes: ChunkWrites, now: DateTime<Utc>) -> TxResult<()> {
    write_payments(tx, writes.payments, now).await?;
    if !writes.ledger.is_empty() {
        let ledger = &writes.ledger;
        sqlx::query(
            "INSERT INTO ledger (customer_id, seq, at, amount, balance, cause, key) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[], $5::bigint[], \
                 $6::text[], $7::text[])",
        )
        .bind(ledger.iter().map(|(id, _)| int(*id)).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| int(e.seq)).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| e.at).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| e.amount).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| int(e.balance.0)).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| cause_name(e.cause)).collect::<Vec<_>>())
        .bind(ledger.iter().map(|(_, e)| e.key.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    // Updates first: a key a row gives to a new customer may be one a customer of the
    // file released earlier in the same chunk.
    let mut retokened: Vec<&CustomerRecord> = Vec::new();
    let mut untokened: Vec<i64> = Vec::new();
    for (stored, record) in &writes.updates {
        if !stored.same_identity(record) {
            untokened.push(int(record.id));
            retokened.push(record);
        }
    }
    if !writes.updates.is_empty() {
        let records: Vec<&CustomerRecord> = writes.updates.iter().map(|(_, r)| r).collect();
        write_records(tx, &records, false).await?;
    }
    if !untokened.is_empty() {
        sqlx::query("DELETE FROM customer_tokens WHERE customer_id = ANY($1)")
            .bind(&untokened)
            .execute(&mut *tx)
            .await?;
    }
    if !writes.inserts.is_empty() {
        let records: Vec<&CustomerRecord> = writes.inserts.iter().collect();
        write_records(tx, &records, true).await?;
        retokened.extend(writes.inserts.iter());
    }
    write_tokens(tx, &retokened).await
}

/// Inserts (`insert`) or updates customer rows, one statement for all of them.
async fn write_records(tx: &mut PgConnection, records: &[&CustomerRecord], insert: bool) -> TxResult<()> {
    const COLUMNS: &str = "$1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
        $8::text[], $9::smallint[], $10::text[], $11::bigint[], $12::bigint[], $13::integer[], $14::date[], \
        $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::boolean[], $20::timestamptz[], \
        $21::timestamptz[], $22::text[]";
    const NAMES: &str = "id, id_client, nom, prenom, email, email_key, phone, compte, age, sexe, carte_fid, credit, \
        nb_refus, next_payment, pending_payments, ledger_entries, ticket_count, ticket_total, erased, created_at, \
        updated_at, nom_key";
    let sql = if insert {
        format!("INSERT INTO customers ({NAMES}) SELECT * FROM UNNEST({COLUMNS})")
    } else {
        let sets = NAMES
            .split(", ")
            .skip(1)
            .map(|name| format!("{name} = v.{name}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("UPDATE customers c SET {sets} FROM UNNEST({COLUMNS}) AS v({NAMES}) WHERE c.id = v.id")
    };
    let column = |f: &dyn Fn(&CustomerRecord) -> String| records.iter().map(|r| f(r)).collect::<Vec<_>>();
    sqlx::query(&sql)
        .bind(records.iter().map(|r| int(r.id)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.id_client).collect::<Vec<_>>())
        .bind(column(&|r| r.nom.clone()))
        .bind(column(&|r| r.prenom.clone()))
        .bind(column(&|r| r.email.clone()))
        .bind(
            records
                .iter()
                .map(|r| if r.erased { None } else { r.email_key() })
                .collect::<Vec<_>>(),
        )
        .bind(column(&|r| r.phone.clone()))
        .bind(column(&|r| r.compte.clone()))
        .bind(records.iter().map(|r| r.age.map(i16::from)).collect::<Vec<_>>())
        .bind(column(&|r| r.sexe.as_str().to_string()))
        .bind(records.iter().map(|r| r.carte_fid.map(int)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| int(r.credit.0)).collect::<Vec<_>>())
        .bind(
            records
                .iter()
                .map(|r| i32::try_from(r.nb_refus).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(records.iter().map(|r| r.next_payment).collect::<Vec<_>>())
        .bind(records.iter().map(|r| int(r.pending_payments.0)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| int(r.ledger_entries)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| int(r.ticket_count)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| int(r.ticket_total.0)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.erased).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(column(&|r| normalize(&r.nom)))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts the search tokens of `records` (whose old tokens are gone).
async fn write_tokens(tx: &mut PgConnection, records: &[&CustomerRecord]) -> TxResult<()> {
    let (mut tokens, mut ids) = (Vec::new(), Vec::new());
    for record in records.iter().filter(|r| !r.erased) {
        for token in search_tokens(record) {
            tokens.push(token);
            ids.push(int(record.id));
        }
    }
    if tokens.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO customer_tokens (token, customer_id) SELECT * FROM UNNEST($1::text[], $2::bigint[])")
        .bind(tokens)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One bit per customer id.
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: u64) -> Bitset {
        Bitset(vec![0; (bits / 64 + 1) as usize])
    }

    fn get(&self, i: u64) -> bool {
        self.0.get((i / 64) as usize).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: u64) {
        let word = (i / 64) as usize;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (i % 64);
    }

    /// The ids set, ascending.
    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().enumerate().flat_map(|(word, bits)| {
            (0..64u64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| word as u64 * 64 + bit)
        })
    }
}

#[cfg(test)]
mod tests;

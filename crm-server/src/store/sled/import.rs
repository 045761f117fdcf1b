//! Customer imports in sled, in three passes over a spool file, in bounded memory.
//!
//! 1. **Read**: rows are parsed and validated as they arrive; valid rows go to a spool
//!    file in `<data>/import/`, and only a 128-bit hash of each unique key (e-mail,
//!    `IdClient`, card) with its row number stays in memory, to find two rows claiming
//!    the same key. Nothing is written to the store.
//! 2. **Check**: each row is resolved against the stored customers (`IdClient`, else
//!    e-mail) and its e-mail and card are checked against their current holders; the
//!    target of every row goes to a plan file. With any bad row (read or check), the
//!    import stops here and lists them: nothing was written. A dry run stops here too.
//! 3. **Write**: the rows are applied in transactions of [`BATCH_ROWS`] rows, one
//!    flush each.
//!    - `mode=merge` writes them into the live customer register.
//!    - `mode=replace` writes the whole new register into a new generation of the
//!      customer trees (see [`super::Register`]): every row's customer, then a copy of
//!      every customer absent from the file, erased. When it is complete, one
//!      transaction makes it the live generation, and the replaced one is cleared in
//!      the background.
//!
//! Guarantees:
//! - *All or nothing*: nothing is written unless every row is valid and consistent with
//!   the store. Before pass 3 the spool and plan are synced to disk and a journal entry
//!   is written to `meta`; each batch moves the journal's progress in its own
//!   transaction. If the process dies during pass 3, the next [`SledStore::open`]
//!   finishes the import from the journal (roll forward) before serving: once pass 3
//!   has started, the whole file is applied, exactly once per row.
//! - *No interleaved writes*: from pass 2 to the end, the import holds the store's
//!   write gate, so other writes are refused with [`StoreError::ImportRunning`]
//!   (HTTP 503, retry) rather than invalidating the checked plan. Reads go on.
//! - *What readers see*: readers are never blocked.
//!   - With `mode=merge`, they see the batches already written, each atomically.
//!   - With `mode=replace`, they see the old register, whole, until the new one is
//!     complete, then the new one, whole: customers, lookups by id, e-mail and card,
//!     search, the sort orders, the count, and the ledgers, whose reads stop at the
//!     entry count of the record they read. Two things show a replace in progress
//!     before its swap: the pending payments it schedules or replaces (in the list of
//!     payments due), and the waiting tickets it matches to new customers (in the
//!     ticket feed); the payment results and other writes they would lead to are
//!     refused with `503` until the import ends.
//!
//! Limitation: two rows that swap e-mails (or cards) between existing customers are
//! refused as conflicts; import them in two files.

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard, RwLockWriteGuard, TryLockError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_model::customer::email_key;
use crm_model::import::{ImportError, ImportPhase, ImportProgress};
use crm_model::{
    Cents, CustomerRecord, ImportMode, ImportOptions, ImportReport, ImportRow, LedgerCause, RowError, RowOutcome,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::customers::write_customer;
use super::keys::{self, decode_u64};
use super::{abort, bump_counter, decode, encode, ledger, read_counter, storage, Register, SledStore, Tx, TxResult};
use super::{payments, tickets};
use crate::store::{ImportFailure, ImportStore, StoreError};

/// Rows per write transaction (and per flush).
const BATCH_ROWS: usize = 1_000;

/// Rows between progress reports while reading and checking.
const PROGRESS_EVERY: u64 = 10_000;

/// The `meta` key of the journal of an import being written.
const JOURNAL: &[u8] = b"import_journal";

/// What an import being written has done so far; in `meta` from the start of pass 3 to
/// its end, moved by each batch in the batch's own transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    spool: PathBuf,
    plan: PathBuf,
    mode: ImportMode,
    /// Rows in the spool.
    rows: u64,
    /// Rows written so far.
    written: u64,
    /// Customers with an id below this existed before the import.
    first_new_id: u64,
    /// Absent customers are erased from this id on (after every row is written).
    erase_from: u64,
    /// With `mode=replace`, the generation of the customer register being written.
    #[serde(default)]
    staged: Option<u64>,
    created: u64,
    updated: u64,
    unchanged: u64,
    erased: u64,
}

impl ImportStore for SledStore {
    fn import_customers(
        &self,
        rows: &mut dyn Iterator<Item = Result<RowOutcome, ImportError>>,
        options: ImportOptions,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<ImportReport, ImportFailure> {
        let _one_import = self.import_lock()?;
        let files = SpoolFiles::new(&self.inner.dir)?;
        let mut report = ImportReport::default();
        let rows = read_pass(rows, &files.spool, &mut report, progress)?;
        if rows == 0 && report.error_count == 0 && options.mode == ImportMode::Replace {
            return Err(ImportFailure::EmptyReplace);
        }
        // The plan must stay true until written: no other write from here. A file
        // with bad rows is still checked, to list every bad row, but not written.
        let will_write = !options.dry_run && report.error_count == 0;
        let _exclusive = will_write.then(|| self.write_gate());
        let plan = self.check_pass(&files, rows, options, &mut report, progress)?;
        if report.error_count > 0 || options.dry_run {
            report.sort_and_cap_errors();
            return Ok(report);
        }
        let staged = match options.mode {
            ImportMode::Merge => None,
            ImportMode::Replace => Some(self.fresh_generation()),
        };
        let journal = Journal {
            spool: files.spool.clone(),
            plan: files.plan.clone(),
            mode: options.mode,
            rows,
            written: 0,
            first_new_id: plan.first_new_id,
            erase_from: 1,
            staged,
            created: 0,
            updated: 0,
            unchanged: 0,
            erased: 0,
        };
        self.transact_ungated(|tx| {
            tx.meta.insert(JOURNAL, encode(&journal))?;
            Ok(())
        })?;
        self.durable_blocking()?;
        // From here the journal owns the files: a failure leaves them for the resume.
        let files = files.keep();
        let matched = (options.mode == ImportMode::Replace).then_some(plan.matched);
        let done = self.write_pass(journal, matched, progress)?;
        remove_files(&files.spool, &files.plan);
        Ok(ImportReport {
            created: done.created,
            updated: done.updated,
            unchanged: done.unchanged,
            erased: done.erased,
            ..ImportReport::default()
        })
    }
}

impl SledStore {
    fn import_lock(&self) -> Result<MutexGuard<'_, ()>, StoreError> {
        match self.inner.import_lock.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::WouldBlock) => Err(StoreError::ImportRunning),
            Err(TryLockError::Poisoned(guard)) => Ok(guard.into_inner()),
        }
    }

    /// Takes the write gate exclusively, waiting for the transactions in flight (they
    /// are short; new ones are refused meanwhile only once the gate is taken).
    fn write_gate(&self) -> RwLockWriteGuard<'_, ()> {
        loop {
            match self.inner.write_gate.try_write() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(guard)) => return guard.into_inner(),
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Finishes an import that a stopped process left half written (see the module's
    /// guarantees). Called by [`SledStore::open`], before anything else uses the store.
    pub(super) fn resume_interrupted_import(&self) -> Result<(), StoreError> {
        let Some(bytes) = self.inner.meta.get(JOURNAL).map_err(storage)? else {
            return Ok(());
        };
        let journal: Journal = decode(&bytes)?;
        tracing::warn!(
            written = journal.written,
            rows = journal.rows,
            "finishing an import that was interrupted"
        );
        let matched = match journal.mode {
            ImportMode::Replace => Some(Bitset::from_plan(&journal.plan)?),
            ImportMode::Merge => None,
        };
        let (spool, plan) = (journal.spool.clone(), journal.plan.clone());
        self.write_pass(journal, matched, &|_| {})?;
        remove_files(&spool, &plan);
        Ok(())
    }

    /// Pass 2: resolves every row against the store and checks its unique keys.
    fn check_pass(
        &self,
        files: &SpoolFiles,
        rows: u64,
        options: ImportOptions,
        report: &mut ImportReport,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<Plan, StoreError> {
        // Writes are gated from here (or nothing is written): one register for the pass.
        let live = self.register();
        let next_id = read_counter(&self.inner.meta, keys::NEXT_CUSTOMER_ID)?;
        let live_before = read_counter(&self.inner.meta, keys::LIVE_CUSTOMERS)?;
        let mut matched = Bitset::new(next_id + 1);
        let mut matched_count = 0u64;
        // (row, field, holder): keys held by another customer, fine only if that
        // customer is erased by this (replace) import.
        let mut taken: Vec<(u64, &'static str, u64)> = Vec::new();
        let mut plan = BufWriter::new(File::create(&files.plan).map_err(storage)?);
        let now = Utc::now();
        let mut done = 0u64;
        for row in spooled_rows(&files.spool)? {
            let row = row?;
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(ImportProgress {
                    phase: ImportPhase::Checking,
                    done,
                    total: Some(rows),
                });
            }
            let (target, matched_by) = match resolve(&live, &row)? {
                Resolved::Erased => {
                    report.push_error(row_error(&row, "IdClient", "belongs to an erased customer"));
                    plan.write_all(&0u64.to_le_bytes()).map_err(storage)?;
                    continue;
                }
                Resolved::Create => (None, ""),
                Resolved::Existing(record, by) => (Some(record), by),
            };
            let target_id = target.as_ref().map_or(0, |r| r.id);
            plan.write_all(&target_id.to_le_bytes()).map_err(storage)?;
            let c = &row.customer;
            let (check_email, check_card) = match &target {
                None => (true, true),
                Some(_) => (row.given.email, row.given.carte_fid),
            };
            if let Some(record) = &target {
                if matched.get(record.id) {
                    report.push_error(row_error(
                        &row,
                        matched_by,
                        "matches the same customer as another row of the file",
                    ));
                    continue;
                }
                matched.set(record.id);
                matched_count += 1;
                if row.preview_update(record, now).1 {
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            } else {
                report.created += 1;
            }
            if let Some(email) = email_key(&c.email).filter(|_| check_email) {
                if let Some(holder) = live.holder(&keys::email_key(&email))? {
                    if holder != target_id {
                        taken.push((row.row, "Email", holder));
                    }
                }
            }
            if let Some(card) = c.carte_fid.filter(|_| check_card) {
                if let Some(holder) = live.holder(&keys::card_key(card))? {
                    if holder != target_id {
                        taken.push((row.row, "CarteFid", holder));
                    }
                }
            }
        }
        plan.into_inner()
            .map_err(|e| storage(e.error()))?
            .sync_all()
            .map_err(storage)?;
        for (row, field, holder) in taken {
            let erased_by_this_import = options.mode == ImportMode::Replace && !matched.get(holder);
            if !erased_by_this_import {
                let holder_id = live
                    .customer_by_id(holder)?
                    .map(|r| r.id_client.to_string())
                    .unwrap_or_default();
                let what = if field == "Email" { "e-mail" } else { "card" };
                report.push_error(RowError {
                    row,
                    field: field.into(),
                    error: format!("this {what} is already used by customer {holder_id}"),
                });
            }
        }
        if options.mode == ImportMode::Replace {
            report.erased = live_before.saturating_sub(matched_count);
        }
        Ok(Plan {
            matched,
            first_new_id: next_id + 1,
        })
    }

    /// Pass 3: writes the rows from `journal.written` on; with `mode=replace`, then
    /// copies the absent customers, erased, from `journal.erase_from` on, and swaps the
    /// new register in. Clears the journal at the end.
    fn write_pass(
        &self,
        mut journal: Journal,
        matched: Option<Bitset>,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<Journal, StoreError> {
        let live = self.register();
        let staged = journal
            .staged
            .map(|generation| Register::open(&self.inner.db, generation))
            .transpose()?;
        let mut rows = spooled_rows(&journal.spool)?;
        let mut plan = BufReader::new(File::open(&journal.plan).map_err(storage)?);
        for _ in 0..journal.written {
            rows.next().transpose()?;
            read_target(&mut plan)?;
        }
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        loop {
            batch.clear();
            while batch.len() < BATCH_ROWS {
                match rows.next().transpose()? {
                    Some(row) => batch.push((row, read_target(&mut plan)?)),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let now = Utc::now();
            journal = match &staged {
                None => self.transact_ungated(|tx| write_batch(tx, &batch, &journal, now))?,
                Some(staged) => {
                    // Read before the transaction: sled deadlocks on a plain read
                    // inside one. Nothing else writes the live register meanwhile.
                    let olds = batch
                        .iter()
                        .map(|(_, target)| match *target {
                            0 => Ok(None),
                            id => live.customer_by_id(id)?.map(Some).ok_or_else(|| planned_missing(id)),
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    self.transact_in(staged, |tx| stage_batch(tx, &batch, &olds, &journal, now))?
                }
            };
            self.durable_blocking()?;
            progress(ImportProgress {
                phase: ImportPhase::Writing,
                done: journal.written,
                total: Some(journal.rows),
            });
        }
        let (Some(staged), Some(matched)) = (staged, matched) else {
            self.transact_ungated(|tx| {
                tx.meta.remove(JOURNAL)?;
                Ok(())
            })?;
            self.durable_blocking()?;
            return Ok(journal);
        };
        self.stage_absent(&live, &staged, &mut journal, &matched, progress)?;
        drop(live);
        self.swap_in(staged, &journal)?;
        Ok(journal)
    }

    /// Copies into `staged`, erased and in batches, every customer of `live` that
    /// existed before the import and that no row matched (erased ones as they are).
    fn stage_absent(
        &self,
        live: &Register,
        staged: &Register,
        journal: &mut Journal,
        matched: &Bitset,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<(), StoreError> {
        let end = journal.first_new_id.to_be_bytes();
        while journal.erase_from < journal.first_new_id {
            let mut absent = Vec::with_capacity(BATCH_ROWS);
            let mut scanned_to = journal.first_new_id;
            for item in live.customers.range(journal.erase_from.to_be_bytes()..end) {
                let (key, value) = item.map_err(storage)?;
                let id = decode_u64(&key);
                if matched.get(id) {
                    continue;
                }
                absent.push(decode::<CustomerRecord>(&value)?);
                if absent.len() == BATCH_ROWS {
                    scanned_to = id + 1;
                    break;
                }
            }
            let now = Utc::now();
            *journal = self.transact_in(staged, |tx| {
                let mut next = journal.clone();
                for old in &absent {
                    let mut record = old.clone();
                    if !record.erased {
                        record.erase_personal_data(now);
                        next.erased += 1;
                    }
                    write_customer(tx, None, &record)?;
                }
                next.erase_from = scanned_to;
                tx.meta.insert(JOURNAL, encode(&next))?;
                Ok(next)
            })?;
            self.durable_blocking()?;
            progress(ImportProgress {
                phase: ImportPhase::Erasing,
                done: journal.erased,
                total: None,
            });
        }
        Ok(())
    }

    /// Makes the complete `staged` register the live one, in one transaction with the
    /// count of live customers and the end of the journal, then has the replaced
    /// generation cleared once no reader holds it.
    fn swap_in(&self, staged: Register, journal: &Journal) -> Result<(), StoreError> {
        let live_customers = journal.created + journal.updated + journal.unchanged;
        let replaced = {
            // Readers wait for the swap (one small transaction) rather than see the
            // new count with the old register.
            let mut live = self.inner.register.write().unwrap_or_else(|p| p.into_inner());
            self.transact_in(&staged, |tx| {
                tx.meta
                    .insert(keys::REGISTER_GENERATION, &staged.generation.to_be_bytes())?;
                tx.meta.insert(keys::LIVE_CUSTOMERS, &live_customers.to_be_bytes())?;
                tx.meta.remove(JOURNAL)?;
                Ok(())
            })?;
            std::mem::replace(&mut *live, Arc::new(staged))
        };
        self.durable_blocking()?;
        self.clear_when_unread(replaced);
        Ok(())
    }

    /// Clears a replaced register generation once the readers still holding it are
    /// done (they hold it for one request's page; after 10 s it is cleared under them,
    /// and they read fewer customers).
    fn clear_when_unread(&self, replaced: Arc<Register>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&replaced) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(replaced);
        self.clear_replaced_generations();
    }
}

/// The stored customer a row updates, if any.
fn resolve(live: &Register, row: &ImportRow) -> Result<Resolved, StoreError> {
    if let Some(id_client) = row.customer.id_client {
        return match live.holder(&keys::id_client_key(id_client))? {
            None => Ok(Resolved::Create),
            Some(id) => match live.customer_by_id(id)? {
                Some(record) if record.erased => Ok(Resolved::Erased),
                Some(record) => Ok(Resolved::Existing(Box::new(record), "IdClient")),
                None => Err(storage(format!("index points to missing customer {id}"))),
            },
        };
    }
    let Some(email) = email_key(&row.customer.email) else {
        return Ok(Resolved::Create);
    };
    match live.holder(&keys::email_key(&email))? {
        None => Ok(Resolved::Create),
        Some(id) => match live.customer_by_id(id)? {
            Some(record) => Ok(Resolved::Existing(Box::new(record), "Email")),
            None => Err(storage(format!("index points to missing customer {id}"))),
        },
    }
}

enum Resolved {
    Create,
    /// The row names an erased customer's `IdClient`.
    Erased,
    /// The row updates this customer, matched by this key.
    Existing(Box<CustomerRecord>, &'static str),
}

/// What pass 2 hands to pass 3.
struct Plan {
    /// Ids of the stored customers some row updates.
    matched: Bitset,
    first_new_id: u64,
}

/// What a row does to its customer. The ledger entries, payments and ticket matches it
/// leads to are already written in the transaction; the record is not.
enum RowWrite {
    Created(CustomerRecord),
    Updated {
        old: Box<CustomerRecord>,
        record: CustomerRecord,
    },
    Unchanged(CustomerRecord),
}

/// Applies a row to its customer: `old` (the one pass 2 planned) or, when `None`, a
/// new customer with id `new_id`.
fn apply_row(
    tx: &Tx<'_>,
    row: &ImportRow,
    old: Option<CustomerRecord>,
    new_id: u64,
    now: DateTime<Utc>,
) -> TxResult<RowWrite> {
    let c = &row.customer;
    let Some(old) = old else {
        let id_client = c.id_client.unwrap_or_else(Uuid::new_v4);
        let mut record = c.clone().into_record(new_id, id_client, now);
        record.credit = Cents::ZERO;
        if c.opening_credit > Cents::ZERO {
            ledger::append(tx, &mut record, c.opening_credit, LedgerCause::Opening, None, now)?;
        }
        if let Some((date, montant)) = c.scheduled_payment {
            payments::schedule_payment(tx, &mut record, date, montant, now)?;
        }
        tickets::match_pending(tx, None, &mut record, now)?;
        return Ok(RowWrite::Created(record));
    };
    let mut record = old.clone();
    row.apply_to(&mut record);
    if let Some(credit) = row.credit().filter(|credit| *credit != record.credit) {
        ledger::append(tx, &mut record, credit, LedgerCause::ImportAdjustment, None, now)?;
    }
    if let Some((date, montant)) = c.scheduled_payment {
        // A row carries one payment, which replaces the pending ones, unless it is the
        // one already scheduled (re-importing a file changes nothing).
        if (record.next_payment, record.pending_payments) != (Some(date), montant) {
            payments::replace_pending_payments(tx, &mut record, Some((date, montant)), now)?;
        }
    }
    if record == old {
        return Ok(RowWrite::Unchanged(old));
    }
    record.updated_at = now;
    Ok(RowWrite::Updated {
        old: Box::new(old),
        record,
    })
}

/// Reserves ids for the rows of `batch` that create customers; answers the first.
fn reserve_ids(tx: &Tx<'_>, batch: &[(ImportRow, u64)]) -> TxResult<u64> {
    let creates = batch.iter().filter(|(_, target)| *target == 0).count() as u64;
    let last_id = bump_counter(tx.meta, keys::NEXT_CUSTOMER_ID, creates as i64)?;
    Ok(last_id + 1 - creates)
}

/// `mode=merge`: writes one batch of rows into the live register, and the journal's
/// progress, atomically.
fn write_batch(tx: &Tx<'_>, batch: &[(ImportRow, u64)], journal: &Journal, now: DateTime<Utc>) -> TxResult<Journal> {
    let mut next = journal.clone();
    let mut next_id = reserve_ids(tx, batch)?;
    for (row, target) in batch {
        let old = match *target {
            0 => None,
            id => match super::customers::customer_with_id(tx, id)? {
                Some(old) => Some(old),
                None => return abort(planned_missing(id)),
            },
        };
        match apply_row(tx, row, old, next_id, now)? {
            RowWrite::Created(record) => {
                next_id += 1;
                write_customer(tx, None, &record)?;
                next.created += 1;
            }
            RowWrite::Updated { old, record } => {
                write_customer(tx, Some(&old), &record)?;
                next.updated += 1;
            }
            RowWrite::Unchanged(_) => next.unchanged += 1,
        }
    }
    bump_counter(
        tx.meta,
        keys::LIVE_CUSTOMERS,
        next.created as i64 - journal.created as i64,
    )?;
    next.written += batch.len() as u64;
    tx.meta.insert(JOURNAL, encode(&next))?;
    Ok(next)
}

/// `mode=replace`: writes one batch of rows into the staged register (the
/// transaction's `customers` and `index`), and the journal's progress, atomically.
/// `olds` are the live customers the rows update, read before the transaction.
fn stage_batch(
    tx: &Tx<'_>,
    batch: &[(ImportRow, u64)],
    olds: &[Option<CustomerRecord>],
    journal: &Journal,
    now: DateTime<Utc>,
) -> TxResult<Journal> {
    let mut next = journal.clone();
    let mut next_id = reserve_ids(tx, batch)?;
    for ((row, _), old) in batch.iter().zip(olds) {
        let record = match apply_row(tx, row, old.clone(), next_id, now)? {
            RowWrite::Created(record) => {
                next_id += 1;
                next.created += 1;
                record
            }
            RowWrite::Updated { record, .. } => {
                next.updated += 1;
                record
            }
            RowWrite::Unchanged(record) => {
                next.unchanged += 1;
                record
            }
        };
        write_customer(tx, None, &record)?;
    }
    next.written += batch.len() as u64;
    tx.meta.insert(JOURNAL, encode(&next))?;
    Ok(next)
}

fn planned_missing(id: u64) -> StoreError {
    storage(format!("planned customer {id} is missing"))
}

/// Pass 1: reads every row, spools the valid ones, lists the bad ones, and finds the
/// rows that claim a key an earlier row claimed. Answers how many rows were spooled.
fn read_pass(
    rows: &mut dyn Iterator<Item = Result<RowOutcome, ImportError>>,
    spool: &Path,
    report: &mut ImportReport,
    progress: &dyn Fn(ImportProgress),
) -> Result<u64, ImportFailure> {
    let mut out = BufWriter::with_capacity(256 * 1024, File::create(spool).map_err(storage)?);
    let mut claims = Vec::new();
    let mut count = 0u64;
    let mut seen = 0u64;
    for outcome in rows {
        seen += 1;
        if seen.is_multiple_of(PROGRESS_EVERY) {
            progress(ImportProgress {
                phase: ImportPhase::Reading,
                done: seen,
                total: None,
            });
        }
        match outcome? {
            RowOutcome::Invalid(errors) => errors.into_iter().for_each(|e| report.push_error(e)),
            RowOutcome::Valid(row) => {
                let c = &row.customer;
                if let Some(email) = email_key(&c.email) {
                    claims.push(Claim::new(KeyKind::Email, email.as_bytes(), row.row));
                }
                if let Some(id_client) = c.id_client {
                    claims.push(Claim::new(KeyKind::IdClient, id_client.as_bytes(), row.row));
                }
                if let Some(card) = c.carte_fid {
                    claims.push(Claim::new(KeyKind::Card, &card.to_be_bytes(), row.row));
                }
                serde_json::to_writer(&mut out, &row).map_err(storage)?;
                out.write_all(b"\n").map_err(storage)?;
                count += 1;
            }
        }
    }
    claims.sort_unstable();
    for pair in claims.windows(2) {
        let (first, again) = (&pair[0], &pair[1]);
        if first.same_key(again) {
            report.push_error(RowError {
                row: u64::from(again.row),
                field: again.kind.field().into(),
                error: format!("the same {} as row {}", again.kind.what(), first_row(&claims, again)),
            });
        }
    }
    out.into_inner()
        .map_err(|e| storage(e.error()))?
        .sync_all()
        .map_err(storage)?;
    Ok(count)
}

/// The first row claiming the same key as `claim` (claims are sorted).
fn first_row(claims: &[Claim], claim: &Claim) -> u32 {
    let start = claims.partition_point(|c| (c.kind, c.hash) < (claim.kind, claim.hash));
    claims[start].row
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyKind {
    Email,
    IdClient,
    Card,
}

impl KeyKind {
    fn field(self) -> &'static str {
        match self {
            KeyKind::Email => "Email",
            KeyKind::IdClient => "IdClient",
            KeyKind::Card => "CarteFid",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KeyKind::Email => "e-mail",
            KeyKind::IdClient => "IdClient",
            KeyKind::Card => "card",
        }
    }
}

/// A row's claim on a unique key: a 128-bit hash of the key (two rows with different
/// keys collide with odds around 1e-27 for a million rows), 24 bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    kind: KeyKind,
    hash: [u64; 2],
    row: u32,
}

impl Claim {
    fn new(kind: KeyKind, key: &[u8], row: u64) -> Claim {
        let half = |salt: u8| {
            let mut h = DefaultHasher::new();
            (salt, kind as u8, key).hash(&mut h);
            h.finish()
        };
        Claim {
            kind,
            hash: [half(0), half(1)],
            row: u32::try_from(row).unwrap_or(u32::MAX),
        }
    }

    fn same_key(&self, other: &Claim) -> bool {
        self.kind == other.kind && self.hash == other.hash
    }
}

fn row_error(row: &ImportRow, field: &str, error: &str) -> RowError {
    RowError {
        row: row.row,
        field: field.into(),
        error: error.into(),
    }
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

    /// The customers a plan file's rows update.
    fn from_plan(plan: &Path) -> Result<Bitset, StoreError> {
        let mut reader = BufReader::new(File::open(plan).map_err(storage)?);
        let mut set = Bitset::new(0);
        while let Some(target) = read_target_or_end(&mut reader)? {
            if target != 0 {
                set.set(target);
            }
        }
        Ok(set)
    }
}

fn read_target(plan: &mut impl Read) -> Result<u64, StoreError> {
    read_target_or_end(plan)?.ok_or_else(|| storage("the import plan is shorter than its spool"))
}

fn read_target_or_end(plan: &mut impl Read) -> Result<Option<u64>, StoreError> {
    let mut bytes = [0u8; 8];
    match plan.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(storage(e)),
    }
}

/// The rows of a spool file, in file order.
fn spooled_rows(spool: &Path) -> Result<impl Iterator<Item = Result<ImportRow, StoreError>>, StoreError> {
    let reader = BufReader::with_capacity(256 * 1024, File::open(spool).map_err(storage)?);
    Ok(reader.lines().map(|line| {
        let line = line.map_err(storage)?;
        serde_json::from_str(&line).map_err(|e| storage(format!("unreadable import spool: {e}")))
    }))
}

/// The spool and plan files of one import, removed when dropped unless kept (once pass
/// 3 starts, the journal owns them until the import is written).
struct SpoolFiles {
    spool: PathBuf,
    plan: PathBuf,
    keep: bool,
}

impl SpoolFiles {
    fn new(data_dir: &Path) -> Result<SpoolFiles, StoreError> {
        let dir = data_dir.join("import");
        fs::create_dir_all(&dir).map_err(storage)?;
        let name = Uuid::new_v4();
        Ok(SpoolFiles {
            spool: dir.join(format!("{name}.rows")),
            plan: dir.join(format!("{name}.plan")),
            keep: false,
        })
    }

    /// Keeps the files when dropped: the journal of the import being written names
    /// them.
    fn keep(mut self) -> SpoolFiles {
        self.keep = true;
        self
    }
}

impl Drop for SpoolFiles {
    fn drop(&mut self) {
        if !self.keep {
            remove_files(&self.spool, &self.plan);
        }
    }
}

fn remove_files(spool: &Path, plan: &Path) {
    for path in [spool, plan] {
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an import file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crm_model::import::ImportRows;

    use super::*;
    use crate::store::CustomerStore;

    fn import(store: &SledStore, json: &str, mode: ImportMode) -> ImportReport {
        let mut rows = ImportRows::open(json.as_bytes(), Some("application/json"), None).unwrap();
        let options = ImportOptions { mode, dry_run: false };
        store.import_customers(&mut rows, options, &|_| {}).unwrap()
    }

    /// The generations whose trees exist, once the clearer has finished.
    fn register_generations(store: &SledStore) -> Vec<u64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while *store.inner.clearer_running.lock().unwrap() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        store.generations().into_iter().collect()
    }

    #[test]
    fn tree_names_tell_their_generation() {
        for generation in [0, 1, 42] {
            for name in Register::tree_names(generation) {
                assert_eq!(Register::generation_of(name.as_bytes()), Some(generation), "{name}");
            }
        }
        for other in [
            "meta",
            "ledger",
            "ticket_index",
            "payment_index",
            "customers.x",
            "__sled__default",
        ] {
            assert_eq!(Register::generation_of(other.as_bytes()), None, "{other}");
        }
    }

    /// Each replace leaves one generation of the register behind it once the replaced
    /// one is cleared, and a replaced generation that is still there is cleared after
    /// the next start.
    #[tokio::test]
    async fn a_replace_leaves_only_the_live_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        import(
            &store,
            r#"[{"Nom": "A", "Email": "a@x.fr"}, {"Nom": "B"}]"#,
            ImportMode::Merge,
        );
        assert_eq!(register_generations(&store), [0]);
        for (expected, names) in [(1, r#"[{"Nom": "C"}]"#), (2, r#"[{"Nom": "D"}, {"Nom": "E"}]"#)] {
            let report = import(&store, names, ImportMode::Replace);
            assert_eq!(report.created, names.matches("Nom").count() as u64);
            assert_eq!(register_generations(&store), [expected]);
        }
        assert_eq!(store.customer_count().unwrap(), 2);
        assert!(store.customer_by_email("a@x.fr").unwrap().is_none());

        // What a stop between a swap and the drop of the replaced generation leaves.
        Register::open(&store.inner.db, 1)
            .unwrap()
            .customers
            .insert(b"x", b"y".as_slice())
            .unwrap();
        drop(store);
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        assert_eq!(register_generations(&store), [2]);
        let names: Vec<String> = store
            .customers_after(None, 10)
            .unwrap()
            .into_iter()
            .map(|c| c.nom)
            .collect();
        assert_eq!(names, ["D", "E"]);
    }
}

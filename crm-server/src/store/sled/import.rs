//! Customer imports in sled, in three passes over a spool file, in bounded memory.
//!
//! 1. **Read**: rows are parsed and validated as they arrive; valid rows go to a spool
//!    file in `<data>/import/`, and only a 128-bit hash of each unique key (e-mail,
//!    `IdClient`, card) stays in memory, to find the keys that two rows or more of the
//!    file carry ([`SharedKeys`]). Nothing is written to the store.
//! 2. **Check**: rows are resolved in file order. A row whose `IdClient`, else e-mail,
//!    an earlier row of the file carried goes to that row's customer (it updates it,
//!    after the earlier row); otherwise it is resolved against the stored customers
//!    (`IdClient`, else e-mail), or creates a customer, whose id is planned here. Its
//!    e-mail and card are checked against the other rows' customers and the stored
//!    holders, and the customer it creates against the bound of money (the unmatched
//!    tickets waiting for it). The target of every row goes to a plan file. With any
//!    bad row, the import stops here and lists them: nothing was written; with
//!    `skip_invalid` (merge only), bad rows are planned as skipped instead, and no
//!    later row goes to their customer. A dry run stops here too.
//! 3. **Write**: the rows are applied in file order, in transactions of [`BATCH_ROWS`]
//!    rows, one flush each.
//!    - `mode=merge` writes them into the live customer register.
//!    - `mode=replace` writes the whole new register into a new generation of the
//!      customer trees (see [`super::Register`]): every row's customer, then a copy of
//!      every customer absent from the file, erased. When it is complete, one
//!      transaction makes it the live generation, and the replaced one is cleared in
//!      the background.
//!
//! Guarantees:
//! - *All or nothing*: nothing is written unless every row is valid and consistent with
//!   the store (or, with `skip_invalid`, every row planned to be written is). Before
//!   pass 3 the spool and plan are synced to disk and a journal entry is written to
//!   `meta`; each batch moves the journal's progress in its own transaction. If the
//!   process dies during pass 3, the next [`SledStore::open`] finishes the import from
//!   the journal (roll forward) before serving: once pass 3 has started, the whole file
//!   is applied, exactly once per row.
//! - *Writes between batches*: from pass 2 on, the import holds the writers' turns
//!   (see [`SledStore::transact`]): other writes wait for a turn, at most the write wait
//!   (`--write-wait`, 5 s), then are refused with [`StoreError::ImportRunning`] (HTTP
//!   503 with `Retry-After`). Pass 2 and the journal hold them throughout, so that the
//!   plan is checked against a store that does not move.
//!   - With `mode=merge`, pass 3 lets the writers waiting through after each batch,
//!     while the batch is flushed. What they may do cannot break the plan: the ids of
//!     the customers the import creates are reserved with the journal (a create in
//!     between takes the next id after them); the e-mails, cards and IdClients the rows
//!     write are reserved for their customers ([`super::KeyReservation`]), so a write
//!     that would give one to another customer is refused `409 reserved_by_import`
//!     (a new card skips them). A write to a customer that a later row updates is
//!     overwritten by that row, in file order (its credit set to the row's, with the
//!     ledger entry of the difference); a customer erased in between stays erased,
//!     and its later rows count as unchanged.
//!   - With `mode=replace`, the writes wait until the swap (and so are refused when
//!     the import takes longer than the write wait): a write to the live register in
//!     between would not be in the new one, and would be lost at the swap.
//! - *What readers see*: readers are never blocked.
//!   - With `mode=merge`, they see the batches already written, each atomically.
//!   - With `mode=replace`, they see the old register, whole, until the new one is
//!     complete, then the new one, whole: customers, lookups by id, e-mail and card,
//!     search, the sort orders, the count, and the ledgers, whose reads stop at the
//!     entry count of the record they read. Two things show a replace in progress
//!     before its swap: the pending payments it schedules or replaces (in the list of
//!     payments due), and the waiting tickets it matches to new customers (in the
//!     ticket feed); the payment results and other writes they would lead to wait
//!     for the swap (or are refused with `503`).
//!
//! Limitations: an e-mail (or card) moves between two customers in one file only from
//! a customer erased by a replace: two rows that swap e-mails between stored customers,
//! or a row that takes the e-mail another row of the file released, are refused as
//! conflicts; import them in two files. A row matches an earlier row of the file by the
//! key the earlier row carried, not by one the earlier row's customer had before.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard, RwLockWriteGuard, TryLockError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_model::customer::email_key;
use crm_model::import::{FileCustomers, ImportError, ImportPhase, ImportProgress, KeyCensus, RowKeys, SharedKeys};
use crm_model::{
    CustomerRecord, ImportMode, ImportOptions, ImportReport, ImportRow, LedgerCause, RowError, RowOutcome, TicketRecord,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::customers::{customer_with_id, write_customer};
use super::keys::{self, decode_u64};
use super::{
    abort, bump_counter, decode, decode_u64_list, encode, ledger, read_counter, storage, KeyReservation, Register,
    SledStore, Tx, TxResult,
};
use super::{payments, tickets};
use crate::store::{ImportFailure, ImportProgressFn, ImportRowStream, ImportStore, StoreError};

/// Rows per write transaction (and per flush).
const BATCH_ROWS: usize = 1_000;

/// Rows between progress reports while reading and checking.
const PROGRESS_EVERY: u64 = 10_000;

/// The `meta` key of the journal of an import being written.
const JOURNAL: &[u8] = b"import_journal";

/// A plan entry (one `u64` per spooled row) of a row that creates the customer with
/// the id in the low bits. (Plans written before ids were planned say `0`: create with
/// the next id.)
const PLAN_CREATES: u64 = 1 << 63;
/// A plan entry of a row that updates a customer an earlier row of the file created or
/// updated (counted `updated` whatever it changes). Other entries are the id of the
/// stored customer a row updates first.
const PLAN_AGAIN: u64 = 1 << 62;
/// A plan entry of a row that is not written (`skip_invalid`).
const PLAN_SKIP: u64 = u64::MAX;

/// What pass 3 does with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    Skip,
    /// Creates a customer with this id (`None` in older plans: the next id).
    Create(Option<u64>),
    /// Updates the customer with this id; `again` when an earlier row of the file
    /// wrote it (with `mode=replace`, it is then read from the new register).
    Update {
        id: u64,
        again: bool,
    },
}

impl Planned {
    fn from_entry(entry: u64) -> Planned {
        match entry {
            PLAN_SKIP => Planned::Skip,
            0 => Planned::Create(None),
            e if e & PLAN_CREATES != 0 => Planned::Create(Some(e & !(PLAN_CREATES | PLAN_AGAIN))),
            e => Planned::Update {
                id: e & !PLAN_AGAIN,
                again: e & PLAN_AGAIN != 0,
            },
        }
    }

    fn entry(self) -> u64 {
        match self {
            Planned::Skip => PLAN_SKIP,
            Planned::Create(None) => 0,
            Planned::Create(Some(id)) => id | PLAN_CREATES,
            Planned::Update { id, again: false } => id,
            Planned::Update { id, again: true } => id | PLAN_AGAIN,
        }
    }
}

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
    /// Rows among `updated` that updated a customer an earlier row wrote: the file's
    /// customers are `created + updated + unchanged - again`.
    #[serde(default)]
    again: u64,
    /// Who asked for the import: its audit entry, written when it ends (after a
    /// resume at start too), names them.
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    route: Option<String>,
    /// The ids of the customers the import creates were reserved with the journal
    /// (`first_new_id` on): each created row takes its planned id. Journals of the
    /// first versions reserved them batch by batch.
    #[serde(default)]
    ids_reserved: bool,
}

impl Journal {
    /// The origin of the import's audit entry (an import journaled before the audit
    /// trail existed is recorded as `local`).
    fn origin(&self) -> crm_model::audit::WriteOrigin {
        let default = crm_model::audit::WriteOrigin::default();
        crm_model::audit::WriteOrigin::new(
            self.actor.clone().unwrap_or(default.actor),
            self.route.clone().unwrap_or(default.route),
        )
    }

    /// The import's one audit entry, with its counts, in the transaction that ends it.
    fn record_audit(&self, tx: &Tx<'_>) -> TxResult<()> {
        let report = ImportReport {
            created: self.created,
            updated: self.updated,
            unchanged: self.unchanged,
            erased: self.erased,
            ..ImportReport::default()
        };
        let summary = crm_model::audit::import_summary(self.mode, &report);
        super::audit::record_as(tx, &self.origin(), None, summary, Utc::now())
    }
}

/// The import's hold on the writers' turns (see [`SledStore::transact`]), from its
/// check pass to its end.
struct ImportTurn<'a> {
    turns: &'a tokio::sync::RwLock<()>,
    held: Option<tokio::sync::RwLockWriteGuard<'a, ()>>,
    /// `mode=merge`: let go between batches, so that writes wait for a gap, not for
    /// the end. `mode=replace` holds it to the swap: a write to the live register
    /// meanwhile would be missing from the new one.
    between_batches: bool,
}

impl<'a> ImportTurn<'a> {
    fn take(turns: &'a tokio::sync::RwLock<()>, between_batches: bool) -> ImportTurn<'a> {
        let mut turn = ImportTurn {
            turns,
            held: None,
            between_batches,
        };
        turn.resume();
        turn
    }

    /// Waits for the writers let through to finish (they queued before this call:
    /// tokio's lock is fair), then holds the turns. A blocking wait, outside any
    /// runtime's budget (see `GroupCommit::wait_blocking`).
    fn resume(&mut self) {
        if self.held.is_none() {
            let write = tokio::task::unconstrained(self.turns.write());
            self.held = Some(futures::executor::block_on(write));
        }
    }

    /// Lets the writers waiting through, in `mode=merge`.
    fn between_batches(&mut self) {
        if self.between_batches {
            self.let_go();
        }
    }

    /// Lets the writers through, for good unless resumed.
    fn let_go(&mut self) {
        self.held = None;
    }
}

impl ImportStore for SledStore {
    /// Runs the import below on a blocking thread (it is long, and sled's API blocks),
    /// which takes the rows from the stream one at a time as it reads them.
    async fn import_customers(
        &self,
        rows: ImportRowStream,
        options: ImportOptions,
        progress: ImportProgressFn,
    ) -> Result<ImportReport, ImportFailure> {
        let (store, runtime) = (self.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let mut rows = rows;
            let mut rows = std::iter::from_fn(|| runtime.block_on(rows.next()));
            store.import_blocking(&mut rows, options, &*progress)
        })
        .await
        .map_err(|e| ImportFailure::Store(storage(format!("the import stopped: {e}"))))?
    }
}

impl SledStore {
    /// [`ImportStore::import_customers`] on the calling thread, which it blocks.
    pub(crate) fn import_blocking(
        &self,
        rows: &mut dyn Iterator<Item = Result<RowOutcome, ImportError>>,
        options: ImportOptions,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<ImportReport, ImportFailure> {
        if let Some(conflict) = options.conflict() {
            return Err(ImportError::Unreadable(conflict.into()).into());
        }
        let _one_import = self.import_lock()?;
        let files = SpoolFiles::new(&self.inner.dir)?;
        let mut report = ImportReport::default();
        let (rows, shared) = read_pass(rows, &files.spool, &mut report, progress)?;
        if rows == 0 && report.error_count == 0 && options.mode == ImportMode::Replace {
            return Err(ImportFailure::EmptyReplace);
        }
        // The plan must stay true until written: no other write from here. A file
        // with bad rows is still checked, to list every bad row, but not written
        // (unless they are skipped).
        let will_write = !options.dry_run && (report.error_count == 0 || options.skip_invalid);
        let _exclusive = will_write.then(|| self.write_gate());
        // Other writes wait for their turn from here, the import's plan being checked
        // against the store as it is.
        let merge = options.mode == ImportMode::Merge;
        let mut turn = will_write.then(|| ImportTurn::take(&self.inner.turns, merge));
        let plan = self.check_pass(&files, rows, shared, options, &mut report, progress)?;
        if !options.skip_invalid {
            report.skipped = 0;
        }
        report.sort_and_cap_errors();
        let refused = report.error_count > 0 && !options.skip_invalid;
        let nothing_to_write = report.created + report.updated + report.unchanged == 0;
        if refused || options.dry_run || nothing_to_write {
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
            again: 0,
            actor: Some(self.origin.actor.clone()),
            route: Some(self.origin.route.clone()),
            ids_reserved: true,
        };
        // The ids of the customers it creates are reserved with the journal: a create
        // between two batches takes the next id after them.
        self.transact_ungated(|tx| {
            let last_id = bump_counter(tx.meta, keys::NEXT_CUSTOMER_ID, plan.creates as i64)?;
            if last_id != plan.first_new_id - 1 + plan.creates {
                return abort(storage("a customer was created while an import was planned"));
            }
            tx.meta.insert(JOURNAL, encode(&journal))?;
            Ok(())
        })?;
        self.durable_blocking()?;
        // From here the journal owns the files: a failure leaves them for the resume.
        let files = files.keep();
        let (matched, reservation) = match options.mode {
            ImportMode::Replace => (Some(plan.matched), None),
            ImportMode::Merge => (None, Some(Arc::new(KeyReservation::new(plan.reserved)))),
        };
        // Set while the turns are held, so that every write between batches sees it.
        *self.inner.reserved.write().unwrap_or_else(|p| p.into_inner()) = reservation;
        // On a failure, the reservation stays until a restart finishes the import:
        // a key taken meanwhile would make the roll-forward fail.
        let done = self.write_pass(journal, matched, turn.as_mut(), progress)?;
        *self.inner.reserved.write().unwrap_or_else(|p| p.into_inner()) = None;
        drop(turn);
        remove_files(&files.spool, &files.plan);
        Ok(ImportReport {
            created: done.created,
            updated: done.updated,
            unchanged: done.unchanged,
            erased: done.erased,
            ..report
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
    pub(super) fn resume_interrupted_import(&self, progress: &dyn Fn(ImportProgress)) -> Result<(), StoreError> {
        let Some(bytes) = self.inner.meta.get(JOURNAL).map_err(storage)? else {
            self.remove_abandoned_spools();
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
        // Nothing else writes yet: no turns to take.
        self.write_pass(journal, matched, None, progress)?;
        remove_files(&spool, &plan);
        self.remove_abandoned_spools();
        Ok(())
    }

    /// Removes the spool and plan files of imports a stopped process left before their
    /// writing pass (no journal names them, nothing will read them). Only at start,
    /// when no import runs.
    fn remove_abandoned_spools(&self) {
        let Ok(entries) = fs::read_dir(self.inner.dir.join("import")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if matches!(path.extension().and_then(|e| e.to_str()), Some("rows" | "plan")) {
                tracing::info!(path = %path.display(), "removing the files of an import that never started writing");
                remove_files(&path, &path);
            }
        }
    }

    /// Pass 2: resolves every row, in file order, against the earlier rows and the
    /// store, checks its unique keys and the money it brings, and writes the plan; a
    /// bad row is planned as skipped (written only with `skip_invalid`, which comes
    /// with `mode=merge` only, where every bad row is known when it is read).
    fn check_pass(
        &self,
        files: &SpoolFiles,
        rows: u64,
        shared: SharedKeys,
        options: ImportOptions,
        report: &mut ImportReport,
        progress: &dyn Fn(ImportProgress),
    ) -> Result<Plan, StoreError> {
        // Writes are gated from here (or nothing is written): one register for the pass.
        let live = self.register();
        let next_id = read_counter(&self.inner.meta, keys::NEXT_CUSTOMER_ID)?;
        let first_new_id = next_id + 1;
        let live_before = read_counter(&self.inner.meta, keys::LIVE_CUSTOMERS)?;
        // The stored customers some row updates.
        let mut matched = Bitset::new(next_id + 1);
        let mut matched_count = 0u64;
        let mut creates = 0u64;
        let mut file = FileCustomers::new(shared);
        // (row, field, holder): keys a row takes from a stored customer, fine only if
        // that customer is erased by this (replace) import, which is known at the end.
        let mut taken_if_kept: Vec<(u64, &'static str, u64)> = Vec::new();
        // A merge that will be written reserves the unique keys its rows write (see
        // [`KeyReservation`]).
        let will_write = !options.dry_run && (report.error_count == 0 || options.skip_invalid);
        let reserve = will_write && options.mode == ImportMode::Merge;
        let mut reserved = Vec::new();
        // Most stores have no unmatched ticket waiting: then no row needs to look.
        let tickets_wait = self.inner.ticket_index.scan_prefix(b"p").next().is_some();
        let mut plan = BufWriter::new(File::create(&files.plan).map_err(storage)?);
        let mut write_plan = |planned: Planned| plan.write_all(&planned.entry().to_le_bytes()).map_err(storage);
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
            let keys = RowKeys::of(&row);
            let target = match file.earlier_target(&keys) {
                Some(id) => Target::Again(id),
                None => match resolve(&live, &row)? {
                    Resolved::Erased => {
                        report.skipped += 1;
                        report.push_error(row.error("IdClient", "belongs to an erased customer"));
                        write_plan(Planned::Skip)?;
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
            let email = email_key(&c.email)
                .filter(|_| check_email)
                .map(|e| ("Email", keys::email_key(&e)));
            let card = c
                .carte_fid
                .filter(|_| check_card)
                .map(|card| ("CarteFid", keys::card_key(card)));
            for (field, key) in email.into_iter().chain(card) {
                let Some(holder) = live.holder(&key)?.filter(|holder| *holder != target_id) else {
                    continue;
                };
                if options.mode == ImportMode::Replace && !matched.get(holder) {
                    // Erased by this import unless a later row keeps it.
                    held.push((field, holder));
                } else {
                    errors.push(taken(&live, row.row, field, holder)?);
                }
            }
            if matches!(target, Target::New(_)) && tickets_wait {
                errors.extend(self.waiting_tickets_overflow(&row)?);
            }
            if !errors.is_empty() {
                report.skipped += 1;
                errors.into_iter().for_each(|e| report.push_error(e));
                write_plan(Planned::Skip)?;
                continue;
            }
            file.record(row.row, &keys, target_id);
            if reserve {
                let new = matches!(target, Target::New(_));
                let email = email_key(&c.email)
                    .filter(|_| new || row.given.email)
                    .map(|e| keys::email_key(&e));
                let card = c.carte_fid.filter(|_| new || row.given.carte_fid).map(keys::card_key);
                let id_client = c.id_client.filter(|_| new).map(keys::id_client_key);
                let claimed = email.into_iter().chain(card).chain(id_client);
                reserved.extend(claimed.map(|key| (KeyReservation::hash(&key), target_id)));
            }
            taken_if_kept.extend(held.into_iter().map(|(field, holder)| (row.row, field, holder)));
            if row.is_unmatchable() {
                report.unmatchable += 1;
            }
            match target {
                Target::New(id) => {
                    creates += 1;
                    report.created += 1;
                    write_plan(Planned::Create(Some(id)))?;
                }
                Target::Again(id) => {
                    report.updated += 1;
                    write_plan(Planned::Update { id, again: true })?;
                }
                Target::Stored(record) => {
                    matched.set(record.id);
                    matched_count += 1;
                    if row.preview_update(&record, now).1 {
                        report.updated += 1;
                    } else {
                        report.unchanged += 1;
                    }
                    write_plan(Planned::Update {
                        id: record.id,
                        again: false,
                    })?;
                }
            }
        }
        plan.into_inner()
            .map_err(|e| storage(e.into_error()))?
            .sync_all()
            .map_err(storage)?;
        // Only a replace defers: its rows are all written or none.
        for (row, field, holder) in taken_if_kept {
            if matched.get(holder) {
                report.push_error(taken(&live, row, field, holder)?);
            }
        }
        if options.mode == ImportMode::Replace {
            report.erased = live_before.saturating_sub(matched_count);
        }
        Ok(Plan {
            matched,
            first_new_id,
            creates,
            reserved,
        })
    }

    /// The error of a row whose new customer would pass the bound of money once
    /// credited with the unmatched tickets waiting for its `IdClient`, e-mail or card
    /// (they are matched when it is created, in the same transaction).
    fn waiting_tickets_overflow(&self, row: &ImportRow) -> Result<Option<RowError>, StoreError> {
        let c = &row.customer;
        let mut seqs = Vec::new();
        let refs = [
            c.id_client.map(|id| waiting_key(b'u', id.as_bytes())),
            email_key(&c.email).map(|e| waiting_key(b'e', e.as_bytes())),
            c.carte_fid.map(|card| waiting_key(b'c', &card.to_be_bytes())),
        ];
        for key in refs.into_iter().flatten() {
            if let Some(list) = self.inner.ticket_index.get(key).map_err(storage)? {
                seqs.extend(decode_u64_list(&list));
            }
        }
        if seqs.is_empty() {
            return Ok(None);
        }
        seqs.sort_unstable();
        seqs.dedup();
        let mut waiting = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(bytes) = self.inner.tickets.get(seq.to_be_bytes()).map_err(storage)? {
                waiting.push(decode::<TicketRecord>(&bytes)?.ticket);
            }
        }
        Ok(row.waiting_tickets_overflow(&waiting))
    }

    /// Pass 3: writes the rows from `journal.written` on; with `mode=replace`, then
    /// copies the absent customers, erased, from `journal.erase_from` on, and swaps the
    /// new register in. Clears the journal at the end. Holds `turn` for each of its
    /// transactions, and lets writers through between batches when it allows it.
    fn write_pass(
        &self,
        mut journal: Journal,
        matched: Option<Bitset>,
        mut turn: Option<&mut ImportTurn<'_>>,
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
                    Some(row) => batch.push((row, Planned::from_entry(read_target(&mut plan)?))),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            if let Some(turn) = turn.as_deref_mut() {
                turn.resume();
            }
            let now = Utc::now();
            journal = match &staged {
                None => self.transact_ungated(|tx| write_batch(tx, &batch, &journal, now))?,
                Some(staged) => {
                    // Read before the transaction: sled deadlocks on a plain read
                    // inside one. Nothing else writes the live register meanwhile.
                    // A customer an earlier row wrote is read from the new register,
                    // inside the transaction.
                    let olds = batch
                        .iter()
                        .map(|(_, planned)| match *planned {
                            Planned::Update { id, again: false } => {
                                live.customer_by_id(id)?.map(Some).ok_or_else(|| planned_missing(id))
                            }
                            _ => Ok(None),
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    self.transact_in(staged, None, |tx| stage_batch(tx, &batch, &olds, &journal, now))?
                }
            };
            // The writers waiting go while this batch is flushed and the next one read.
            if let Some(turn) = turn.as_deref_mut() {
                turn.between_batches();
            }
            self.durable_blocking()?;
            progress(ImportProgress {
                phase: ImportPhase::Writing,
                done: journal.written,
                total: Some(journal.rows),
            });
        }
        if let Some(turn) = turn.as_deref_mut() {
            turn.resume();
        }
        let (Some(staged), Some(matched)) = (staged, matched) else {
            self.transact_ungated(|tx| {
                tx.meta.remove(JOURNAL)?;
                journal.record_audit(tx)?;
                Ok(())
            })?;
            self.durable_blocking()?;
            return Ok(journal);
        };
        self.stage_absent(&live, &staged, &mut journal, &matched, progress)?;
        drop(live);
        let replaced = self.swap_in(staged, &journal)?;
        // Writes waited for the swap, not for the clearing of the replaced register.
        if let Some(turn) = turn {
            turn.let_go();
        }
        self.clear_when_unread(replaced);
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
            *journal = self.transact_in(staged, None, |tx| {
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
    /// count of live customers and the end of the journal; answers the replaced
    /// generation, to clear once no reader holds it.
    fn swap_in(&self, staged: Register, journal: &Journal) -> Result<Arc<Register>, StoreError> {
        let live_customers = journal.created + journal.updated + journal.unchanged - journal.again;
        let replaced = {
            // Readers wait for the swap (one small transaction) rather than see the
            // new count with the old register.
            let mut live = self.inner.register.write().unwrap_or_else(|p| p.into_inner());
            self.transact_in(&staged, None, |tx| {
                tx.meta
                    .insert(keys::REGISTER_GENERATION, &staged.generation.to_be_bytes())?;
                tx.meta.insert(keys::LIVE_CUSTOMERS, &live_customers.to_be_bytes())?;
                tx.meta.remove(JOURNAL)?;
                journal.record_audit(tx)?;
                Ok(())
            })?;
            std::mem::replace(&mut *live, Arc::new(staged))
        };
        self.durable_blocking()?;
        Ok(replaced)
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
                Some(record) => Ok(Resolved::Existing(Box::new(record))),
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
            Some(record) => Ok(Resolved::Existing(Box::new(record))),
            None => Err(storage(format!("index points to missing customer {id}"))),
        },
    }
}

enum Resolved {
    Create,
    /// The row names an erased customer's `IdClient`.
    Erased,
    /// The row updates this customer.
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

/// What pass 2 hands to pass 3.
struct Plan {
    /// Ids of the stored customers some row updates.
    matched: Bitset,
    first_new_id: u64,
    /// Customers created, with the ids from `first_new_id` on.
    creates: u64,
    /// `(hash of the key, customer id)` of the keys to reserve (see [`KeyReservation`]).
    reserved: Vec<(u64, u64)>,
}

/// The error of a row whose e-mail or card (`field`) is held by the stored customer
/// `holder`.
fn taken(live: &Register, row: u64, field: &str, holder: u64) -> Result<RowError, StoreError> {
    let holder_id = live
        .customer_by_id(holder)?
        .map(|r| r.id_client.to_string())
        .unwrap_or_default();
    Ok(RowError::taken(row, field, holder_id))
}

/// The `ticket_index` key under which unmatched tickets wait for a client key, as
/// [`tickets`] writes it: `p`, then `u` and the `IdClient`'s bytes, `e` and the
/// lower-cased e-mail, or `c` and the card number (big-endian).
fn waiting_key(kind: u8, key: &[u8]) -> Vec<u8> {
    [&[b'p', kind], key].concat()
}

/// What a row does to a customer it updates. The ledger entries and payments it leads
/// to are already written in the transaction; the record is not.
enum RowWrite {
    Updated {
        old: Box<CustomerRecord>,
        record: CustomerRecord,
    },
    Unchanged(CustomerRecord),
}

/// A new customer with id `id` from a row, with its opening credit, payment and the
/// tickets waiting for it (see [`crm_model::input::Creation`]).
fn create_row(tx: &Tx<'_>, row: &ImportRow, id: u64, now: DateTime<Utc>) -> TxResult<CustomerRecord> {
    let c = &row.customer;
    let creation = c.creation(id, c.id_client.unwrap_or_else(Uuid::new_v4), now);
    let mut record = creation.record;
    if let Some(opening) = creation.opening_credit {
        ledger::append(tx, &mut record, opening, LedgerCause::Opening, None, now)?;
    }
    if let Some((date, montant)) = creation.payment {
        payments::schedule_payment(tx, &mut record, date, montant, now)?;
    }
    tickets::match_pending(tx, None, &mut record, now)?;
    Ok(record)
}

/// Applies a row to the customer `old` it updates (see [`crm_model::import::RowUpdate`]).
fn update_row(tx: &Tx<'_>, row: &ImportRow, old: CustomerRecord, now: DateTime<Utc>) -> TxResult<RowWrite> {
    let update = row.update_of(&old);
    let mut record = update.record;
    if let Some(credit) = update.new_balance {
        ledger::append(tx, &mut record, credit, LedgerCause::ImportAdjustment, None, now)?;
    }
    if let Some(payment) = update.payment {
        payments::replace_pending_payments(tx, &mut record, Some(payment), now)?;
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

/// The ids of the customers one batch creates.
struct NewIds {
    /// `None`: reserved with the journal, each row's planned id. Else the next id
    /// reserved for the batch (journals of the first versions).
    next: Option<u64>,
}

impl NewIds {
    /// Reserves ids for the rows of `batch` that create customers, unless the
    /// journal's were reserved up front.
    fn for_batch(tx: &Tx<'_>, batch: &[(ImportRow, Planned)], journal: &Journal) -> TxResult<NewIds> {
        if journal.ids_reserved {
            return Ok(NewIds { next: None });
        }
        let creates = batch
            .iter()
            .filter(|(_, planned)| matches!(planned, Planned::Create(_)))
            .count() as u64;
        let last_id = bump_counter(tx.meta, keys::NEXT_CUSTOMER_ID, creates as i64)?;
        Ok(NewIds {
            next: Some(last_id + 1 - creates),
        })
    }

    /// The id of the next customer created: the one pass 2 planned.
    fn take(&mut self, planned: Option<u64>) -> TxResult<u64> {
        let Some(next_id) = self.next.as_mut() else {
            return planned.map_or_else(|| abort(storage("an import plan without ids")), Ok);
        };
        let id = *next_id;
        *next_id += 1;
        match planned {
            Some(planned) if planned != id => abort(storage(format!(
                "planned customer {planned} would be created as customer {id}"
            ))),
            _ => Ok(id),
        }
    }
}

/// `mode=merge`: writes one batch of rows into the live register, and the journal's
/// progress, atomically. A customer an earlier row of the batch wrote is read back
/// from the transaction.
fn write_batch(
    tx: &Tx<'_>,
    batch: &[(ImportRow, Planned)],
    journal: &Journal,
    now: DateTime<Utc>,
) -> TxResult<Journal> {
    let mut next = journal.clone();
    let mut new_ids = NewIds::for_batch(tx, batch, journal)?;
    for (row, planned) in batch {
        match *planned {
            Planned::Skip => {}
            Planned::Create(planned_id) => {
                let record = create_row(tx, row, new_ids.take(planned_id)?, now)?;
                write_customer(tx, None, &record)?;
                next.created += 1;
            }
            Planned::Update { id, again } => {
                let Some(old) = customer_with_id(tx, id)? else {
                    return abort(planned_missing(id));
                };
                if old.erased {
                    // Erased by a write between two batches (the check refused rows
                    // of customers erased before): the erasure stands.
                    next.unchanged += 1;
                    continue;
                }
                match update_row(tx, row, old, now)? {
                    RowWrite::Updated { old, record } => {
                        write_customer(tx, Some(&old), &record)?;
                        next.updated += 1;
                    }
                    RowWrite::Unchanged(_) if again => next.updated += 1,
                    RowWrite::Unchanged(_) => next.unchanged += 1,
                }
                next.again += u64::from(again);
            }
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
/// `olds` are the live customers the rows update first, read before the transaction;
/// a customer an earlier row wrote is read from the staged register.
fn stage_batch(
    tx: &Tx<'_>,
    batch: &[(ImportRow, Planned)],
    olds: &[Option<CustomerRecord>],
    journal: &Journal,
    now: DateTime<Utc>,
) -> TxResult<Journal> {
    let mut next = journal.clone();
    let mut new_ids = NewIds::for_batch(tx, batch, journal)?;
    for ((row, planned), old) in batch.iter().zip(olds) {
        match *planned {
            Planned::Skip => {}
            Planned::Create(planned_id) => {
                let record = create_row(tx, row, new_ids.take(planned_id)?, now)?;
                next.created += 1;
                write_customer(tx, None, &record)?;
            }
            Planned::Update { id, again: false } => {
                let Some(old) = old.clone() else {
                    return abort(planned_missing(id));
                };
                let record = match update_row(tx, row, old, now)? {
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
            Planned::Update { id, again: true } => {
                let Some(old) = customer_with_id(tx, id)? else {
                    return abort(planned_missing(id));
                };
                next.updated += 1;
                next.again += 1;
                if let RowWrite::Updated { old, record } = update_row(tx, row, old, now)? {
                    write_customer(tx, Some(&old), &record)?;
                }
            }
        }
    }
    next.written += batch.len() as u64;
    tx.meta.insert(JOURNAL, encode(&next))?;
    Ok(next)
}

fn planned_missing(id: u64) -> StoreError {
    storage(format!("planned customer {id} is missing"))
}

/// Pass 1: reads every row, spools the valid ones, lists the bad ones (each counted
/// skipped), and finds the keys that two rows or more carry. Answers how many rows
/// were spooled.
fn read_pass(
    rows: &mut dyn Iterator<Item = Result<RowOutcome, ImportError>>,
    spool: &Path,
    report: &mut ImportReport,
    progress: &dyn Fn(ImportProgress),
) -> Result<(u64, SharedKeys), ImportFailure> {
    let mut out = BufWriter::with_capacity(256 * 1024, File::create(spool).map_err(storage)?);
    let mut census = KeyCensus::default();
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
            RowOutcome::Invalid(errors) => {
                report.skipped += 1;
                errors.into_iter().for_each(|e| report.push_error(e));
            }
            RowOutcome::Valid(row) => {
                census.add(&RowKeys::of(&row));
                serde_json::to_writer(&mut out, &row).map_err(storage)?;
                out.write_all(b"\n").map_err(storage)?;
                count += 1;
            }
        }
    }
    out.into_inner()
        .map_err(|e| storage(e.into_error()))?
        .sync_all()
        .map_err(storage)?;
    Ok((count, census.shared()))
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
        while let Some(entry) = read_target_or_end(&mut reader)? {
            if let Planned::Update { id, .. } = Planned::from_entry(entry) {
                set.set(id);
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
    use crm_model::money::MAX_CENTS;
    use crm_model::Cents;

    use super::*;
    use crate::store::CustomerStore;

    fn import(store: &SledStore, json: &str, mode: ImportMode) -> ImportReport {
        let mut rows = ImportRows::open(json.as_bytes(), Some("application/json"), None).unwrap();
        let options = ImportOptions {
            mode,
            ..ImportOptions::default()
        };
        store.import_blocking(&mut rows, options, &|_| {}).unwrap()
    }

    /// The generations whose trees exist, once the clearer has finished.
    fn register_generations(store: &SledStore) -> Vec<u64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while *store.inner.clearer_running.lock().unwrap() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        store.generations().into_iter().collect()
    }

    async fn search(store: &SledStore, q: &str) -> Vec<String> {
        let query = crm_model::ListQuery {
            q: Some(q.into()),
            ..crm_model::ListQuery::default()
        };
        store
            .list_customers(&query)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| c.nom)
            .collect()
    }

    /// Rows sharing an e-mail (or an IdClient) apply in order to one customer, whose
    /// indexes follow every change, in the live register and in a replace's new one.
    #[tokio::test]
    async fn rows_sharing_a_key_update_one_customer_in_order_in_both_modes() {
        for mode in [ImportMode::Merge, ImportMode::Replace] {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
            import(&store, r#"[{"Nom": "Stored", "Email": "s@x.fr"}]"#, ImportMode::Merge);
            let file = r#"[
                {"Nom": "Alpha", "Email": "a@x.fr", "CarteFid": 5, "Credit": 100},
                {"Nom": "Bravo", "Email": "A@X.FR", "Phone": "0102030405", "Credit": 250},
                {"Nom": "Kept", "Email": "s@x.fr"},
                {"Nom": "Charlie", "Email": "S@x.fr", "CarteFid": 6},
                {"Nom": "Bravo", "Email": "a@x.fr"}
            ]"#;
            let report = import(&store, file, mode);
            assert_eq!(
                (report.created, report.updated, report.unchanged, report.erased),
                (1, 4, 0, 0),
                "{mode:?}: {report:?}"
            );
            assert_eq!(store.customer_count().await.unwrap(), 2, "{mode:?}");
            let a = store.customer_by_email("a@x.fr").await.unwrap().unwrap();
            assert_eq!(
                (a.nom.as_str(), a.phone.as_str(), a.carte_fid, a.credit),
                ("Bravo", "0102030405", Some(5), Cents(250)),
                "{mode:?}"
            );
            assert_eq!(a.email, "a@x.fr", "{mode:?}: the last row's spelling");
            assert_eq!(store.customer_by_card(5).await.unwrap().unwrap().id, a.id, "{mode:?}");
            let s = store.customer_by_card(6).await.unwrap().unwrap();
            assert_eq!((s.nom.as_str(), s.id), ("Charlie", 1), "{mode:?}");
            assert!(
                search(&store, "alpha").await.is_empty(),
                "{mode:?}: old names leave the index"
            );
            assert!(search(&store, "kept").await.is_empty(), "{mode:?}");
            assert_eq!(search(&store, "bravo").await, ["Bravo"], "{mode:?}");
            assert_eq!(search(&store, "charlie").await, ["Charlie"], "{mode:?}");
            // The same file again: every row finds its customer, and each writes it
            // as the first time (the first rows set back what the later ones changed).
            let again = import(&store, file, mode);
            assert_eq!((again.created, again.updated), (0, 5), "{mode:?}: {again:?}");
            let a_again = store.customer_by_email("a@x.fr").await.unwrap().unwrap();
            assert_eq!(
                (a_again.id, a_again.nom.as_str(), a_again.credit),
                (a.id, "Bravo", Cents(250))
            );
            assert_eq!(store.customer_count().await.unwrap(), 2, "{mode:?}");
        }
    }

    /// A row's new customer is credited with the unmatched tickets waiting for its
    /// e-mail: past the bound of money, the row is refused before anything is written
    /// (and `waiting_key` reads the tickets' layout).
    #[tokio::test]
    async fn tickets_waiting_for_a_new_customer_count_against_the_bound_of_money() {
        use crate::store::TicketStore;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        let ticket: crm_model::Ticket = serde_json::from_value(serde_json::json!({
            "id": 1, "uid": "magasin1", "date": "2024-01-02T10:00:00Z", "prix": MAX_CENTS,
            "client": "Rich@x.fr", "CarteFid": null, "pointsFidelite": 0, "modePaiement": "CARD",
            "origin": "magasin", "Promo_client": 0, "articles": []
        }))
        .unwrap();
        let outcome = store.ingest_tickets(vec![ticket]).await.unwrap();
        assert_eq!(outcome.unmatched, ["magasin1"]);
        let rows = format!(r#"[{{"Nom": "Ok"}}, {{"Nom": "Rich", "Email": "rich@x.fr", "Credit": {MAX_CENTS}}}]"#);
        let mut input = ImportRows::open(rows.as_bytes(), None, None).unwrap();
        let report = store
            .import_blocking(&mut input, ImportOptions::default(), &|_| {})
            .unwrap();
        assert_eq!(
            report
                .errors
                .iter()
                .map(|e| (e.row, e.field.as_str()))
                .collect::<Vec<_>>(),
            [(2, "Credit")],
            "{report:?}"
        );
        assert!(report.errors[0].error.contains("the unmatched ticket"), "{report:?}");
        assert_eq!(store.customer_count().await.unwrap(), 0, "nothing written");
        // Without the opening credit, half the ticket fits.
        let rows = r#"[{"Nom": "Rich", "Email": "rich@x.fr"}]"#;
        let report = import(&store, rows, ImportMode::Merge);
        assert_eq!(report.created, 1, "{report:?}");
        let rich = store.customer_by_email("rich@x.fr").await.unwrap().unwrap();
        assert_eq!(rich.credit, Cents(MAX_CENTS / 2));
    }

    /// Writes between two batches of a merge (made here from its progress report, which
    /// runs in the gap, with the turns let go): a create takes an id after those
    /// reserved for the file, an e-mail a later row gives is refused, a customer
    /// erased stays erased, and a change to a customer a later row updates is
    /// overwritten by it.
    #[test]
    fn writes_between_merge_batches_keep_the_plan() {
        use crm_model::{CustomerPatch, NewCustomer};
        use futures::executor::block_on;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        let new = |nom: &str, email: &str| NewCustomer {
            nom: nom.into(),
            email: email.into(),
            ..Default::default()
        };
        let erased = block_on(store.create_customer(new("Erased", "erased@x.fr"))).unwrap();
        let kept = block_on(store.create_customer(new("Kept", "kept@x.fr"))).unwrap();
        // Three batches: the stored customers are updated by the last one.
        let mut rows: Vec<String> = (0..2_500)
            .map(|i| format!(r#"{{"Nom": "Row {i}", "Email": "r{i}@x.fr"}}"#))
            .collect();
        rows.push(r#"{"Nom": "FromFile", "Email": "erased@x.fr"}"#.into());
        rows.push(r#"{"Nom": "FromFile", "Email": "kept@x.fr"}"#.into());
        let file = format!("[{}]", rows.join(","));
        let between = std::sync::Mutex::new(None);
        let progress = |p: ImportProgress| {
            let mut between = between.lock().unwrap();
            if p.phase != ImportPhase::Writing || between.is_some() {
                return;
            }
            let taken = block_on(store.create_customer(new("Thief", "r2400@x.fr")));
            let created = block_on(store.create_customer(new("Between", "between@x.fr"))).unwrap();
            block_on(store.erase_customer(erased.id_client)).unwrap();
            let patch = CustomerPatch {
                nom: Some("Changed".into()),
                ..Default::default()
            };
            block_on(store.update_customer(kept.id_client, patch)).unwrap();
            *between = Some((taken, created));
        };
        let mut input = ImportRows::open(file.as_bytes(), None, None).unwrap();
        let report = store
            .import_blocking(&mut input, ImportOptions::default(), &progress)
            .unwrap();
        assert_eq!(
            (report.created, report.updated, report.unchanged),
            (2_500, 1, 1),
            "{report:?}"
        );
        let (taken, created) = between.into_inner().unwrap().expect("no write between batches");
        assert_eq!(taken, Err(StoreError::ReservedByImport { field: "Email" }));
        assert_eq!(created.id, 2 + 2_500 + 1, "after the ids reserved for the file");
        assert_eq!(
            block_on(store.customer_by_email("r2400@x.fr")).unwrap().unwrap().nom,
            "Row 2400"
        );
        assert_eq!(block_on(store.customer_by_email("r0@x.fr")).unwrap().unwrap().id, 3);
        assert!(block_on(store.customer(erased.id_client)).unwrap().unwrap().erased);
        assert!(block_on(store.customer_by_email("erased@x.fr")).unwrap().is_none());
        assert_eq!(
            block_on(store.customer(kept.id_client)).unwrap().unwrap().nom,
            "FromFile"
        );
        assert_eq!(block_on(store.customer_count()).unwrap(), 2 + 2_500);
        // Once written, nothing is reserved any more.
        let after = block_on(store.update_customer(
            created.id_client,
            CustomerPatch {
                email: Some("r2400@x.fr".into()),
                ..Default::default()
            },
        ));
        assert!(matches!(after, Err(StoreError::EmailTaken { .. })), "{after:?}");
    }

    /// The roll-forward runs inside `open`, which the server called from its runtime's
    /// `block_on`: each batch's wait for its flush must end there too. Through a tokio
    /// oneshot polled by another executor, it spent the runtime's cooperative budget,
    /// never refilled: the wait of the 129th batch spun forever.
    #[test]
    fn flush_waits_end_inside_a_runtime_past_its_cooperative_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                for _ in 0..300 {
                    store.durable_blocking().unwrap();
                }
            });
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(20)).is_ok(),
            "300 flush waits inside a runtime did not end"
        );
    }

    /// Files of an import killed before its writing pass are removed by the next start.
    #[test]
    fn a_start_removes_the_files_of_imports_that_never_wrote() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap());
        let spool = SpoolFiles::new(dir.path()).unwrap().keep();
        fs::write(&spool.spool, "{}\n").unwrap();
        fs::write(&spool.plan, "").unwrap();
        // The first store's background threads (flusher, register clearer) may hold
        // sled's lock on the directory a moment after the drop: the reopen waits for it
        // (this test is about the spool files, not about how fast a store closes).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let _store = loop {
            match SledStore::open(dir.path(), 8 * 1024 * 1024) {
                Ok(store) => break store,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("reopen: {e}; again");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(!spool.spool.exists() && !spool.plan.exists());
    }

    #[test]
    fn plan_entries_round_trip_and_read_older_plans() {
        for planned in [
            Planned::Skip,
            Planned::Create(None),
            Planned::Create(Some(7)),
            Planned::Update { id: 7, again: false },
            Planned::Update { id: 7, again: true },
        ] {
            assert_eq!(Planned::from_entry(planned.entry()), planned);
        }
        // Plans of the first versions: 0 creates, an id updates.
        assert_eq!(Planned::from_entry(0), Planned::Create(None));
        assert_eq!(Planned::from_entry(42), Planned::Update { id: 42, again: false });
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
        assert_eq!(store.customer_count().await.unwrap(), 2);
        assert!(store.customer_by_email("a@x.fr").await.unwrap().is_none());

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
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.nom)
            .collect();
        assert_eq!(names, ["D", "E"]);
    }
}

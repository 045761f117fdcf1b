//! Backups of the PostgreSQL store: the export of one consistent snapshot and the
//! restore of a dump into an empty database, in the format of [`crm_model::backup`] and
//! record for record as the sled store writes it, so that a register moves between the
//! two stores either way (`crm-server export` from one, `crm-server restore` into the
//! other).
//!
//! # Export
//!
//! One REPEATABLE READ, READ ONLY transaction is the snapshot: every table is read as it
//! was at the transaction's first statement while writes go on, and nothing is locked.
//! Nothing needs refusing while an import runs either: an import of this store is one
//! transaction, so the snapshot holds all of it or none of it. Each table is read
//! through a server-side cursor, [`PAGE_ROWS`] rows a fetch, so the export holds a page
//! or two whatever the register's size, and the bounded sink paces it. Like any long
//! snapshot, a long export holds back the vacuuming of rows changed meanwhile until it
//! ends.
//!
//! The records come in the sled store's order: the customers by id, each followed by
//! its ledger (a second cursor walks the ledger in `(customer_id, seq)` order alongside
//! the customers), the tickets by sequence number, the payments by id, the credit keys
//! and the consumers by the bytes of their names (the order of sled's trees, hence
//! `COLLATE "C"`, whatever the database's collation), the audit trail by sequence
//! number, and last the counters, in the sled store's list.
//!
//! # Counters
//!
//! The counters a dump carries ([`DUMPED_COUNTERS`]) have the same names in both stores
//! and count the same things (the last number handed out). The live-customer count is
//! not dumped: a restore counts the live customers it writes, as sled's does. sled keeps
//! a counter once it is first written and reads a missing one as 0, while the
//! `counters` table has every row from its migration: a counter at 0 is left out of the
//! dump, as sled leaves out one never written, so that an empty database dumps as an
//! empty sled store does and a dump goes pg -> sled -> pg unchanged.
//!
//! # Restore
//!
//! Into an empty database only, in one transaction that first locks every table the
//! register is in (`EXCLUSIVE`: reads go on, writes wait for the restore's end), so that
//! nothing is written beside it and a dump refused part way (unreadable, cut short,
//! inconsistent, a key repeated) rolls back whole: nothing stays. Records are checked
//! as they arrive ([`BackupCheck`], whoever read them) and written in multi-row
//! `INSERT ... SELECT FROM UNNEST(...)` batches of [`BATCH_ROWS`], with the rows the
//! store derives from them: the customers' search tokens (`search_tokens`), their
//! `email_key` and `nom_key` (as `customers::write_customer` writes them), the
//! `ticket_pending` rows of unmatched tickets, the `live_customers` counter. The
//! database's keys refuse what sled's restore refuses (a customer, IdClient, live
//! e-mail or card twice, a ticket twice) and a payment of a customer the dump does
//! not hold; numbers past what a column keeps are refused with their line.
//!
//! Times are kept to the microsecond, as PostgreSQL keeps them: a sled dump's times
//! (nanoseconds) come back truncated to the microsecond.

use std::collections::{BTreeMap, VecDeque};

use crm_model::audit::AuditEntry;
use crm_model::backup::{BackupCheck, BackupCounts, BackupError, BackupRecord};
use crm_model::money::MAX_CENTS;
use crm_model::search::{normalize, search_tokens};
use crm_model::{CustomerRecord, LedgerEntry, PaymentRecord, TicketRecord};
use futures::StreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use tokio::sync::mpsc;

use super::customers::{LIVE_CUSTOMERS, NEXT_CUSTOMER_ID};
use super::loyalty::LAST_ISSUED_CARD;
use super::payments::{payment_from_row, status_name, LAST_PAYMENT_ID};
use super::tickets::{pending_key, ticket_from_row, LAST_ARTICLE_ID, LAST_TICKET_SEQ};
use super::{
    audit, cause_name, customer_from_row, db_error, int, ledger_from_row, snapshot, PgStore, CUSTOMER_COLUMNS,
};
use crate::store::{BackupRecordStream, BackupStore, ExportError, RestoreError, StoreError};

/// Rows an export fetches from a cursor at a time.
const PAGE_ROWS: usize = 1000;

/// Rows a restore writes with one statement.
const BATCH_ROWS: usize = 1000;

/// The counters a dump carries, in the order of the sled store's dumps, under the names
/// both stores give them.
const DUMPED_COUNTERS: [&str; 6] = [
    NEXT_CUSTOMER_ID,
    LAST_TICKET_SEQ,
    LAST_ARTICLE_ID,
    LAST_PAYMENT_ID,
    LAST_ISSUED_CARD,
    audit::LAST_AUDIT_SEQ,
];

/// Every table of the register, locked by a restore.
const REGISTER_TABLES: &str =
    "customers, customer_tokens, ledger, credit_keys, tickets, ticket_pending, consumers, payments, audit, counters";

/// The largest numbers a `BIGINT` and an `INTEGER` column keep (amounts are bounded
/// lower, by `MAX_CENTS`).
const BIGINT: u64 = i64::MAX as u64;
const INTEGER: u64 = i32::MAX as u64;

impl BackupStore for PgStore {
    async fn export(&self, sink: mpsc::Sender<BackupRecord>) -> Result<BackupCounts, ExportError> {
        let mut tx = snapshot(&self.pool).await?;
        let mut out = Sink {
            sink,
            counts: BackupCounts::default(),
        };
        let outcome = match out.send(BackupRecord::header(chrono::Utc::now())).await {
            Ok(()) => export_records(&mut tx, &mut out).await,
            Err(gone) => Err(gone),
        };
        // Read only: nothing to commit; ending it now gives the connection back before
        // the trailer waits for the reader.
        let _ = tx.rollback().await;
        outcome?;
        let counts = out.counts;
        out.send(BackupRecord::Trailer { counts }).await?;
        Ok(counts)
    }

    async fn restore(&self, records: BackupRecordStream) -> Result<BackupCounts, RestoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        match restore_records(&mut tx, records).await {
            Ok(counts) => {
                tx.commit().await.map_err(db_error)?;
                Ok(counts)
            }
            Err(e) => {
                // Dropping it would roll back too; rolling back now frees the connection.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// The export's end of the sink: sends the records and counts them.
struct Sink {
    sink: mpsc::Sender<BackupRecord>,
    counts: BackupCounts,
}

impl Sink {
    async fn send(&mut self, record: BackupRecord) -> Result<(), ExportError> {
        self.counts.count(&record);
        self.sink.send(record).await.map_err(|_| ExportError::ReaderGone)
    }
}

/// A server-side cursor of the export's transaction, read [`PAGE_ROWS`] at a time.
struct Cursor {
    name: &'static str,
    rows: VecDeque<PgRow>,
    exhausted: bool,
}

impl Cursor {
    /// Declares cursor `name` over `query` in the transaction `tx`.
    async fn open(tx: &mut PgConnection, name: &'static str, query: &str) -> Result<Cursor, StoreError> {
        // Not prepared: each is run once an export.
        sqlx::query(&format!("DECLARE {name} NO SCROLL CURSOR FOR {query}"))
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Cursor {
            name,
            rows: VecDeque::new(),
            exhausted: false,
        })
    }

    /// The next row, fetching the next page when the last is used up.
    async fn peek(&mut self, tx: &mut PgConnection) -> Result<Option<&PgRow>, StoreError> {
        if self.rows.is_empty() && !self.exhausted {
            let rows = sqlx::query(&format!("FETCH FORWARD {PAGE_ROWS} FROM {}", self.name))
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
            self.exhausted = rows.len() < PAGE_ROWS;
            self.rows.extend(rows);
        }
        Ok(self.rows.front())
    }

    async fn next(&mut self, tx: &mut PgConnection) -> Result<Option<PgRow>, StoreError> {
        self.peek(tx).await?;
        Ok(self.rows.pop_front())
    }
}

/// Every record between the header and the trailer, from the snapshot `tx`.
async fn export_records(tx: &mut PgConnection, out: &mut Sink) -> Result<(), ExportError> {
    let customers_sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id");
    let mut customers = Cursor::open(tx, "export_customers", &customers_sql).await?;
    let mut ledger = Cursor::open(
        tx,
        "export_ledger",
        "SELECT customer_id, seq, at, amount, balance, cause, key FROM ledger ORDER BY customer_id, seq",
    )
    .await?;
    while let Some(row) = customers.next(tx).await? {
        let customer = customer_from_row(&row).map_err(db_error)?;
        let id = customer.id;
        out.send(BackupRecord::Customer { customer }).await?;
        while let Some(owner) = ledger_owner(ledger.peek(tx).await?)? {
            if owner > id {
                break;
            }
            if owner < id {
                return Err(orphan_ledger(owner).into());
            }
            let Some(row) = ledger.next(tx).await? else { break };
            let entry = ledger_from_row(&row).map_err(db_error)?;
            out.send(BackupRecord::Ledger { customer: id, entry }).await?;
        }
    }
    if let Some(owner) = ledger_owner(ledger.peek(tx).await?)? {
        return Err(orphan_ledger(owner).into());
    }

    let mut tickets = Cursor::open(
        tx,
        "export_tickets",
        "SELECT seq, customer_id, first_article_id, ticket FROM tickets ORDER BY seq",
    )
    .await?;
    while let Some(row) = tickets.next(tx).await? {
        let ticket = ticket_from_row(&row).map_err(db_error)?;
        out.send(BackupRecord::Ticket { ticket }).await?;
    }

    let mut payments = Cursor::open(
        tx,
        "export_payments",
        "SELECT id, customer_id, id_client, montant, date, status, attempts, sent_at, created_at, updated_at \
         FROM payments ORDER BY id",
    )
    .await?;
    while let Some(row) = payments.next(tx).await? {
        let payment = payment_record_from_row(&row).map_err(db_error)?;
        out.send(BackupRecord::Payment { payment }).await?;
    }

    let mut credit_keys = Cursor::open(
        tx,
        "export_credit_keys",
        r#"SELECT key, customer_id FROM credit_keys ORDER BY key COLLATE "C""#,
    )
    .await?;
    while let Some(row) = credit_keys.next(tx).await? {
        let key: String = row.try_get("key").map_err(db_error)?;
        let customer: i64 = row.try_get("customer_id").map_err(db_error)?;
        out.send(BackupRecord::CreditKey {
            key,
            customer: customer.max(0) as u64,
        })
        .await?;
    }

    let mut consumers = Cursor::open(
        tx,
        "export_consumers",
        r#"SELECT name, seq FROM consumers ORDER BY name COLLATE "C""#,
    )
    .await?;
    while let Some(row) = consumers.next(tx).await? {
        let name: String = row.try_get("name").map_err(db_error)?;
        let cursor: i64 = row.try_get("seq").map_err(db_error)?;
        out.send(BackupRecord::Consumer {
            name,
            cursor: cursor.max(0) as u64,
        })
        .await?;
    }

    let mut trail = Cursor::open(
        tx,
        "export_audit",
        "SELECT seq, at, actor, route, id_client, summary FROM audit ORDER BY seq",
    )
    .await?;
    while let Some(row) = trail.next(tx).await? {
        let entry = audit::entry_from_row(&row).map_err(db_error)?;
        out.send(BackupRecord::Audit { entry }).await?;
    }

    let stored: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>("SELECT name, value FROM counters")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
    for name in DUMPED_COUNTERS {
        let value = stored.get(name).copied().unwrap_or(0).max(0) as u64;
        if value > 0 {
            out.send(BackupRecord::Counter {
                name: name.to_string(),
                value,
            })
            .await?;
        }
    }
    Ok(())
}

/// The customer of a ledger row, if there is a row.
fn ledger_owner(row: Option<&PgRow>) -> Result<Option<u64>, StoreError> {
    row.map(|row| row.try_get::<i64, _>("customer_id").map(|c| c.max(0) as u64))
        .transpose()
        .map_err(db_error)
}

/// Ledger rows without their customer: the foreign key forbids them, so the database
/// is damaged; a dump without them would be refused by every restore.
fn orphan_ledger(owner: u64) -> StoreError {
    StoreError::Storage(format!(
        "the ledger holds entries of customer {owner}, which the customers table does not hold"
    ))
}

fn payment_record_from_row(row: &PgRow) -> Result<PaymentRecord, sqlx::Error> {
    let (payment, customer) = payment_from_row(row)?;
    Ok(PaymentRecord {
        payment,
        customer,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Restores the dump `records` in the caller's transaction, which it rolls back on any
/// error.
async fn restore_records(tx: &mut PgConnection, mut records: BackupRecordStream) -> Result<BackupCounts, RestoreError> {
    sqlx::query(&format!("LOCK TABLE {REGISTER_TABLES} IN EXCLUSIVE MODE"))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let holds_anything: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customers) OR EXISTS (SELECT 1 FROM ledger) \
         OR EXISTS (SELECT 1 FROM tickets) OR EXISTS (SELECT 1 FROM payments) \
         OR EXISTS (SELECT 1 FROM credit_keys) OR EXISTS (SELECT 1 FROM consumers) \
         OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM counters WHERE value <> 0)",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if holds_anything {
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        return Err(RestoreError::NotEmpty(format!("the database {name}")));
    }
    let mut check = BackupCheck::new();
    let mut restore = Restore::default();
    let mut line = 0u64;
    while let Some(record) = records.next().await {
        line += 1;
        let record = record?;
        check.accept(&record)?;
        restore.add(tx, line, record).await?;
    }
    let counts = check.finish()?;
    restore.finish(tx, line).await?;
    Ok(counts)
}

/// A batch of rows to write, and the lines of the dump they come from.
struct Batch<T> {
    items: Vec<T>,
    lines: Lines,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: Vec::new(),
            lines: Lines::default(),
        }
    }
}

impl<T> Batch<T> {
    /// Adds `item` of line `line`; says whether the batch is full.
    fn push(&mut self, line: u64, item: T) -> bool {
        if self.items.is_empty() {
            self.lines.first = line;
        }
        self.lines.last = line;
        self.items.push(item);
        self.items.len() >= BATCH_ROWS
    }

    fn take(&mut self) -> (Vec<T>, Lines) {
        (std::mem::take(&mut self.items), self.lines)
    }
}

/// The first and last line of a batch.
#[derive(Debug, Default, Clone, Copy)]
struct Lines {
    first: u64,
    last: u64,
}

/// What a restore has read and not yet written, and what it counts as it goes.
#[derive(Default)]
struct Restore {
    customers: Batch<CustomerRecord>,
    ledger: Batch<(u64, LedgerEntry)>,
    tickets: Batch<TicketRecord>,
    payments: Batch<PaymentRecord>,
    credit_keys: Batch<(String, u64)>,
    consumers: Batch<(String, u64)>,
    audit: Batch<AuditEntry>,
    /// The counters as the dump sets them, in its order: as sled's restore does, an
    /// audit entry raises the trail's counter to its number, a counter record sets it.
    counters: BTreeMap<&'static str, u64>,
    live_customers: u64,
}

/// Refuses the dump at `line`.
fn refuse(line: u64, message: String) -> RestoreError {
    RestoreError::Dump(BackupError { line, message })
}

/// Refuses a number past `max` (what its column keeps), naming its field.
fn at_most(max: u64, fields: &[(&str, u64)]) -> Result<(), String> {
    match fields.iter().find(|(_, value)| *value > max) {
        Some((field, value)) => Err(format!("{field} is {value}, past the largest this store keeps ({max})")),
        None => Ok(()),
    }
}

fn customer_in_range(c: &CustomerRecord) -> Result<(), String> {
    at_most(
        BIGINT,
        &[
            ("the customer's id", c.id),
            ("CarteFid", c.carte_fid.unwrap_or(0)),
            ("the ledger entry count", c.ledger_entries),
            ("the ticket count", c.ticket_count),
        ],
    )?;
    at_most(
        MAX_CENTS,
        &[
            ("Credit", c.credit.0),
            ("Montant", c.pending_payments.0),
            ("the ticket total", c.ticket_total.0),
        ],
    )?;
    at_most(INTEGER, &[("NbRefus", u64::from(c.nb_refus))])
}

impl Restore {
    /// Takes the next record (checked), writing the batch it fills.
    async fn add(&mut self, tx: &mut PgConnection, line: u64, record: BackupRecord) -> Result<(), RestoreError> {
        let in_range = |result: Result<(), String>| result.map_err(|message| refuse(line, message));
        match record {
            BackupRecord::Customer { customer } => {
                in_range(customer_in_range(&customer))?;
                self.live_customers += u64::from(!customer.erased);
                if self.customers.push(line, customer) {
                    self.write_customers(tx).await?;
                }
            }
            BackupRecord::Ledger { customer, entry } => {
                in_range(at_most(BIGINT, &[("the entry's seq", entry.seq)]))?;
                in_range(at_most(MAX_CENTS, &[("the entry's balance", entry.balance.0)]))?;
                if self.ledger.push(line, (customer, entry)) {
                    self.write_ledger(tx).await?;
                }
            }
            BackupRecord::Ticket { ticket } => {
                in_range(at_most(
                    BIGINT,
                    &[
                        ("the ticket's seq", ticket.seq),
                        ("its customer", ticket.customer.unwrap_or(0)),
                        ("its first article id", ticket.first_article_id),
                    ],
                ))?;
                if self.tickets.push(line, ticket) {
                    self.write_tickets(tx).await?;
                }
            }
            BackupRecord::Payment { payment } => {
                in_range(at_most(
                    BIGINT,
                    &[
                        ("the payment's id", payment.payment.id),
                        ("its customer", payment.customer),
                    ],
                ))?;
                in_range(at_most(MAX_CENTS, &[("Montant", payment.payment.montant.0)]))?;
                in_range(at_most(INTEGER, &[("attempts", u64::from(payment.payment.attempts))]))?;
                if self.payments.push(line, payment) {
                    self.write_payments(tx).await?;
                }
            }
            BackupRecord::CreditKey { key, customer } => {
                in_range(at_most(BIGINT, &[("the credit key's customer", customer)]))?;
                if self.credit_keys.push(line, (key, customer)) {
                    self.write_credit_keys(tx).await?;
                }
            }
            BackupRecord::Consumer { name, cursor } => {
                in_range(at_most(BIGINT, &[("the consumer's cursor", cursor)]))?;
                if self.consumers.push(line, (name, cursor)) {
                    self.write_consumers(tx).await?;
                }
            }
            BackupRecord::Counter { name, value } => {
                let Some(counter) = DUMPED_COUNTERS.into_iter().find(|c| *c == name) else {
                    return Err(refuse(line, format!("unknown counter {name:?}")));
                };
                in_range(at_most(BIGINT, &[(counter, value)]))?;
                self.counters.insert(counter, value);
            }
            BackupRecord::Audit { entry } => {
                in_range(at_most(BIGINT, &[("the audit entry's seq", entry.seq)]))?;
                let last = self.counters.entry(audit::LAST_AUDIT_SEQ).or_insert(0);
                *last = (*last).max(entry.seq);
                if self.audit.push(line, entry) {
                    self.write_audit(tx).await?;
                }
            }
            BackupRecord::Header { .. } | BackupRecord::Trailer { .. } => {}
        }
        Ok(())
    }

    /// Writes what is left, the counters, and checks the keys that wait for the end
    /// (a payment's customer): refused at `last_line` if one is missing.
    async fn finish(mut self, tx: &mut PgConnection, last_line: u64) -> Result<(), RestoreError> {
        self.write_customers(tx).await?;
        self.write_ledger(tx).await?;
        self.write_tickets(tx).await?;
        self.write_payments(tx).await?;
        self.write_credit_keys(tx).await?;
        self.write_consumers(tx).await?;
        self.write_audit(tx).await?;
        let mut counters = self.counters;
        let names: Vec<String> = DUMPED_COUNTERS
            .iter()
            .chain([&LIVE_CUSTOMERS])
            .map(|name| name.to_string())
            .collect();
        let values: Vec<i64> = DUMPED_COUNTERS
            .iter()
            .map(|name| int(counters.remove(name).unwrap_or(0)))
            .chain([int(self.live_customers)])
            .collect();
        sqlx::query(
            "UPDATE counters SET value = v.value FROM UNNEST($1::text[], $2::bigint[]) AS v (name, value) \
             WHERE counters.name = v.name",
        )
        .bind(names)
        .bind(values)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let whole_dump = Lines {
            first: 1,
            last: last_line,
        };
        sqlx::query("SET CONSTRAINTS ALL IMMEDIATE")
            .execute(&mut *tx)
            .await
            .map_err(|e| refused(e, "the dump", whole_dump))?;
        Ok(())
    }

    /// Writes the customers of the batch and their search tokens.
    async fn write_customers(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (customers, lines) = self.customers.take();
        if customers.is_empty() {
            return Ok(());
        }
        let n = customers.len();
        let mut ids = Vec::with_capacity(n);
        let mut id_clients = Vec::with_capacity(n);
        let mut noms = Vec::with_capacity(n);
        let mut prenoms = Vec::with_capacity(n);
        let mut emails = Vec::with_capacity(n);
        let mut email_keys = Vec::with_capacity(n);
        let mut phones = Vec::with_capacity(n);
        let mut comptes = Vec::with_capacity(n);
        let mut ages = Vec::with_capacity(n);
        let mut sexes = Vec::with_capacity(n);
        let mut cards = Vec::with_capacity(n);
        let mut credits = Vec::with_capacity(n);
        let mut refusals = Vec::with_capacity(n);
        let mut next_payments = Vec::with_capacity(n);
        let mut pending = Vec::with_capacity(n);
        let mut ledger_entries = Vec::with_capacity(n);
        let mut ticket_counts = Vec::with_capacity(n);
        let mut ticket_totals = Vec::with_capacity(n);
        let mut erased = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut updated = Vec::with_capacity(n);
        let mut nom_keys = Vec::with_capacity(n);
        let mut tokens = Vec::new();
        let mut token_owners = Vec::new();
        for c in &customers {
            ids.push(int(c.id));
            id_clients.push(c.id_client);
            noms.push(c.nom.as_str());
            prenoms.push(c.prenom.as_str());
            emails.push(c.email.as_str());
            // As `customers::write_customer` keys them: an erased customer's e-mail is
            // no longer unique, nor searched.
            email_keys.push(if c.erased { None } else { c.email_key() });
            phones.push(c.phone.as_str());
            comptes.push(c.compte.as_str());
            ages.push(c.age.map(i16::from));
            sexes.push(c.sexe.as_str());
            cards.push(c.carte_fid.map(int));
            credits.push(int(c.credit.0));
            refusals.push(i32::try_from(c.nb_refus).unwrap_or(i32::MAX));
            next_payments.push(c.next_payment);
            pending.push(int(c.pending_payments.0));
            ledger_entries.push(int(c.ledger_entries));
            ticket_counts.push(int(c.ticket_count));
            ticket_totals.push(int(c.ticket_total.0));
            erased.push(c.erased);
            created.push(c.created_at);
            updated.push(c.updated_at);
            nom_keys.push(normalize(&c.nom));
            if !c.erased {
                for token in search_tokens(c) {
                    tokens.push(token);
                    token_owners.push(int(c.id));
                }
            }
        }
        sqlx::query(
            "INSERT INTO customers (id, id_client, nom, prenom, email, email_key, phone, compte, age, sexe, \
             carte_fid, credit, nb_refus, next_payment, pending_payments, ledger_entries, ticket_count, \
             ticket_total, erased, created_at, updated_at, nom_key) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::smallint[], $10::text[], $11::bigint[], $12::bigint[], $13::integer[], \
             $14::date[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::boolean[], \
             $20::timestamptz[], $21::timestamptz[], $22::text[])",
        )
        .bind(ids)
        .bind(id_clients)
        .bind(noms)
        .bind(prenoms)
        .bind(emails)
        .bind(email_keys)
        .bind(phones)
        .bind(comptes)
        .bind(ages)
        .bind(sexes)
        .bind(cards)
        .bind(credits)
        .bind(refusals)
        .bind(next_payments)
        .bind(pending)
        .bind(ledger_entries)
        .bind(ticket_counts)
        .bind(ticket_totals)
        .bind(erased)
        .bind(created)
        .bind(updated)
        .bind(nom_keys)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused(e, "the customers", lines))?;
        if !tokens.is_empty() {
            sqlx::query(
                "INSERT INTO customer_tokens (token, customer_id) SELECT * FROM UNNEST($1::text[], $2::bigint[])",
            )
            .bind(tokens)
            .bind(token_owners)
            .execute(&mut *tx)
            .await
            .map_err(|e| refused(e, "the customers", lines))?;
        }
        Ok(())
    }

    async fn write_ledger(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (entries, lines) = self.ledger.take();
        if entries.is_empty() {
            return Ok(());
        }
        let mut customers = Vec::with_capacity(entries.len());
        let mut seqs = Vec::with_capacity(entries.len());
        let mut ats = Vec::with_capacity(entries.len());
        let mut amounts = Vec::with_capacity(entries.len());
        let mut balances = Vec::with_capacity(entries.len());
        let mut causes = Vec::with_capacity(entries.len());
        let mut keys = Vec::with_capacity(entries.len());
        for (customer, entry) in entries {
            customers.push(int(customer));
            seqs.push(int(entry.seq));
            ats.push(entry.at);
            amounts.push(entry.amount);
            balances.push(int(entry.balance.0));
            causes.push(cause_name(entry.cause));
            keys.push(entry.key);
        }
        sqlx::query(
            "INSERT INTO ledger (customer_id, seq, at, amount, balance, cause, key) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[], $5::bigint[], \
             $6::text[], $7::text[])",
        )
        .bind(customers)
        .bind(seqs)
        .bind(ats)
        .bind(amounts)
        .bind(balances)
        .bind(causes)
        .bind(keys)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused(e, "the ledger entries", lines))?;
        Ok(())
    }

    /// Writes the tickets of the batch, the unmatched ones filed under every client key
    /// they name, as ingestion files them.
    async fn write_tickets(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (tickets, lines) = self.tickets.take();
        if tickets.is_empty() {
            return Ok(());
        }
        let mut seqs = Vec::with_capacity(tickets.len());
        let mut uids = Vec::with_capacity(tickets.len());
        let mut customers = Vec::with_capacity(tickets.len());
        let mut first_articles = Vec::with_capacity(tickets.len());
        let mut bodies = Vec::with_capacity(tickets.len());
        let mut pending_keys = Vec::new();
        let mut pending_seqs = Vec::new();
        for record in &tickets {
            if record.ticket.unmatched {
                for client in record.ticket.client_refs() {
                    pending_keys.push(pending_key(&client));
                    pending_seqs.push(int(record.seq));
                }
            }
            seqs.push(int(record.seq));
            uids.push(record.ticket.uid.as_str());
            customers.push(record.customer.map(int));
            first_articles.push(int(record.first_article_id));
            bodies.push(
                serde_json::to_string(&record.ticket)
                    .map_err(|e| StoreError::Storage(format!("ticket {} cannot be stored: {e}", record.ticket.uid)))?,
            );
        }
        sqlx::query(
            "INSERT INTO tickets (seq, uid, customer_id, first_article_id, ticket) \
             SELECT seq, uid, customer_id, first_article_id, ticket::jsonb \
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) \
             AS t (seq, uid, customer_id, first_article_id, ticket)",
        )
        .bind(seqs)
        .bind(uids)
        .bind(customers)
        .bind(first_articles)
        .bind(bodies)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused(e, "the tickets", lines))?;
        if !pending_keys.is_empty() {
            sqlx::query(
                "INSERT INTO ticket_pending (client_key, seq) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(pending_keys)
            .bind(pending_seqs)
            .execute(&mut *tx)
            .await
            .map_err(|e| refused(e, "the tickets", lines))?;
        }
        Ok(())
    }

    async fn write_payments(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (payments, lines) = self.payments.take();
        if payments.is_empty() {
            return Ok(());
        }
        let n = payments.len();
        let (mut ids, mut customers, mut id_clients, mut montants) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut dates, mut statuses, mut attempts, mut sent) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut created, mut updated) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for record in payments {
            let p = record.payment;
            ids.push(int(p.id));
            customers.push(int(record.customer));
            id_clients.push(p.id_client);
            montants.push(int(p.montant.0));
            dates.push(p.date);
            statuses.push(status_name(p.status));
            attempts.push(i32::try_from(p.attempts).unwrap_or(i32::MAX));
            sent.push(p.sent_at);
            created.push(record.created_at);
            updated.push(record.updated_at);
        }
        sqlx::query(
            "INSERT INTO payments (id, customer_id, id_client, montant, date, status, attempts, sent_at, \
             created_at, updated_at) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], $5::date[], $6::text[], \
             $7::integer[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])",
        )
        .bind(ids)
        .bind(customers)
        .bind(id_clients)
        .bind(montants)
        .bind(dates)
        .bind(statuses)
        .bind(attempts)
        .bind(sent)
        .bind(created)
        .bind(updated)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused(e, "the payments", lines))?;
        Ok(())
    }

    async fn write_credit_keys(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (keys, lines) = self.credit_keys.take();
        let (names, customers): (Vec<String>, Vec<i64>) = keys.into_iter().map(|(k, c)| (k, int(c))).unzip();
        write_pairs(
            tx,
            "INSERT INTO credit_keys (key, customer_id) SELECT * FROM UNNEST($1::text[], $2::bigint[])",
            names,
            customers,
        )
        .await
        .map_err(|e| refused(e, "the credit keys", lines))
    }

    async fn write_consumers(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (consumers, lines) = self.consumers.take();
        let (names, cursors): (Vec<String>, Vec<i64>) = consumers.into_iter().map(|(n, c)| (n, int(c))).unzip();
        write_pairs(
            tx,
            "INSERT INTO consumers (name, seq) SELECT * FROM UNNEST($1::text[], $2::bigint[])",
            names,
            cursors,
        )
        .await
        .map_err(|e| refused(e, "the consumers", lines))
    }

    async fn write_audit(&mut self, tx: &mut PgConnection) -> Result<(), RestoreError> {
        let (entries, lines) = self.audit.take();
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len();
        let (mut seqs, mut ats, mut actors) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut routes, mut id_clients, mut summaries) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for entry in entries {
            seqs.push(int(entry.seq));
            ats.push(entry.at);
            actors.push(entry.actor);
            routes.push(entry.route);
            id_clients.push(entry.id_client);
            summaries.push(entry.summary);
        }
        sqlx::query(
            "INSERT INTO audit (seq, at, actor, route, id_client, summary) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[])",
        )
        .bind(seqs)
        .bind(ats)
        .bind(actors)
        .bind(routes)
        .bind(id_clients)
        .bind(summaries)
        .execute(&mut *tx)
        .await
        .map_err(|e| refused(e, "the audit entries", lines))?;
        Ok(())
    }
}

/// Writes rows of a text and a number (credit keys, consumers), when there are any.
async fn write_pairs(
    tx: &mut PgConnection,
    sql: &str,
    texts: Vec<String>,
    numbers: Vec<i64>,
) -> Result<(), sqlx::Error> {
    if texts.is_empty() {
        return Ok(());
    }
    sqlx::query(sql).bind(texts).bind(numbers).execute(&mut *tx).await?;
    Ok(())
}

/// A write of the restore refused by the database: a key of the dump repeated, or
/// naming what the dump does not hold, is the dump's fault (refused at the last line
/// of the batch, which names its lines); anything else is the store's.
fn refused(error: sqlx::Error, what: &str, lines: Lines) -> RestoreError {
    let sqlx::Error::Database(db) = &error else {
        return RestoreError::Store(db_error(error));
    };
    let reason = match (db.code().as_deref(), db.constraint()) {
        (Some("23505"), Some(constraint)) => match constraint {
            "customers_pkey" => "two customers have the same id".to_string(),
            "customers_id_client_key" => "two customers have the same IdClient".to_string(),
            "customers_email_key" => "two live customers have the same e-mail".to_string(),
            "customers_card" => "two live customers have the same card".to_string(),
            "tickets_pkey" => "two tickets have the same seq".to_string(),
            "tickets_uid_key" => "two tickets have the same uid".to_string(),
            "payments_pkey" => "two payments have the same id".to_string(),
            "credit_keys_pkey" => "a credit key appears twice".to_string(),
            "consumers_pkey" => "a consumer appears twice".to_string(),
            "audit_pkey" => "two audit entries have the same seq".to_string(),
            other => format!("a key appears twice ({other})"),
        },
        (Some("23503"), Some("payments_customer_id_fkey")) => {
            "a payment belongs to a customer the dump does not hold".to_string()
        }
        (Some("23503"), Some(constraint)) => format!("a record names a record the dump does not hold ({constraint})"),
        _ => return RestoreError::Store(db_error(error)),
    };
    let place = if lines.first == lines.last {
        format!("line {}", lines.first)
    } else {
        format!("lines {} to {}", lines.first, lines.last)
    };
    refuse(lines.last, format!("{reason}: in {what} of {place}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
    use crm_model::audit::WriteOrigin;
    use crm_model::{
        AllowCredit, CardRef, Cents, CreditItem, CustomerPatch, ImportMode, ImportOptions, LedgerCause, ListQuery,
        NewCustomer, PaymentStatus, Ticket,
    };
    use futures::StreamExt;
    use serde_json::Value;
    use tokio::sync::mpsc;
    use uuid::Uuid;

    use super::super::tests::{new_customer, with_store};
    use super::super::{audit, PgStore};
    use crate::store::{
        BackupRecordStream, BackupStore, CustomerStore, ExportError, ImportStore, LoyaltyStore, PaymentStore,
        RestoreError, SledStore, StoreError, TicketStore,
    };
    use crm_model::backup::{BackupCounts, BackupRecord};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2031, 3, d).unwrap()
    }

    fn item(card: CardRef, montant: u64, key: &str) -> CreditItem {
        CreditItem {
            index: 0,
            card_as_sent: Value::Null,
            card,
            montant: Cents(montant),
            key: Some(key.into()),
        }
    }

    fn tickets(body: Value) -> Vec<Ticket> {
        crm_model::tickets::parse_batch(body.to_string().as_bytes()).expect("a valid batch")
    }

    /// A ticket for card 33 (with articles, so that articles are numbered), one for an
    /// e-mail no customer has (unmatched) and one anonymous.
    fn ticket_batch() -> Vec<Ticket> {
        tickets(serde_json::json!({"origin": "magasin", "tickets": [
            {"id": 1, "date": "2031-01-01T10:00:00Z", "prix": 1000, "client": "", "CarteFid": 33,
             "articles": [{"codeProduit": "A1", "prixAvant": 600, "prixApres": 500, "promo": 10, "quantity": 2}]},
            {"id": 2, "date": "2031-01-01T11:00:00Z", "prix": 400, "client": "zoe@x.fr", "articles": []},
            {"id": 3, "date": "2031-01-01T12:00:00Z", "prix": 50, "client": "", "articles": []},
        ]}))
    }

    /// The same writes on either store: the PostgreSQL store's methods are inherent for
    /// now and the sled store's are the traits', with the same names. Customers with
    /// ledgers (opening credit, credits, a ticket), a card issued, credit keys, tickets
    /// matched, unmatched and anonymous, payments pending (one sent to the payment
    /// service), paid and refused, consumers, an erased customer.
    macro_rules! fill {
        ($store:expr) => {{
            let store = $store;
            let lea = store
                .create_customer(NewCustomer {
                    opening_credit: Cents(500),
                    scheduled_payment: Some((day(5), Cents(300))),
                    ..new_customer("Lefèvre", "Lea@X.fr", Some(33))
                })
                .await
                .unwrap();
            let bob = store
                .create_customer(new_customer("Martin", "bob@x.fr", None))
                .await
                .unwrap();
            let bob = store.issue_card(bob.id_client).await.unwrap();
            let gone = store
                .create_customer(new_customer("Durand", "gone@x.fr", None))
                .await
                .unwrap();
            store.erase_customer(gone.id_client).await.unwrap();
            let credits = vec![
                item(CardRef::Card(33), 1000, "till-2"),
                item(CardRef::Card(bob.carte_fid.unwrap()), 200, "till-1"),
                item(CardRef::IdClient(lea.id_client), 60, "Été-9"),
            ];
            store.credit(credits).await.unwrap();
            store.ingest_tickets(ticket_batch()).await.unwrap();
            let ask = |id_client, montant, date| AllowCredit {
                id_client,
                montant: Cents(montant),
                date,
            };
            let paid = store
                .allow_credit(ask(bob.id_client, 100, day(2)), 3)
                .await
                .unwrap()
                .unwrap();
            let refused = store
                .allow_credit(ask(bob.id_client, 150, day(3)), 3)
                .await
                .unwrap()
                .unwrap();
            let sent = store
                .allow_credit(ask(lea.id_client, 70, day(4)), 3)
                .await
                .unwrap()
                .unwrap();
            store.payment_result(paid.id, true).await.unwrap();
            store.payment_result(refused.id, false).await.unwrap();
            let patch = CustomerPatch {
                nom: Some("Lefèvre-Dupont".into()),
                ..Default::default()
            };
            store.update_customer(lea.id_client, patch).await.unwrap();
            store.advance_consumer("promo", 1).await.unwrap();
            store.advance_consumer("bi", 3).await.unwrap();
            (lea, bob, sent)
        }};
    }

    /// Every record of an export of `store`, through a small sink.
    async fn dump<S: BackupStore>(store: &S) -> Vec<BackupRecord> {
        let (sink, mut records) = mpsc::channel(4);
        let receive = async move {
            let mut all = Vec::new();
            while let Some(record) = records.recv().await {
                all.push(record);
            }
            all
        };
        let (counts, all) = futures::join!(store.export(sink), receive);
        let counts = counts.expect("the export");
        assert_eq!(all.last(), Some(&BackupRecord::Trailer { counts }));
        all
    }

    fn stream(records: Vec<BackupRecord>) -> BackupRecordStream {
        futures::stream::iter(records.into_iter().map(Ok)).boxed()
    }

    /// A record as JSON with every time in it cut to the microsecond (what PostgreSQL
    /// keeps of sled's nanoseconds).
    fn to_the_microsecond(record: &BackupRecord) -> Value {
        fn cut(value: &mut Value) {
            match value {
                Value::String(text) => {
                    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
                        *text = time.with_timezone(&Utc).trunc_subsecs(6).to_rfc3339();
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(cut),
                Value::Object(fields) => fields.values_mut().for_each(cut),
                _ => {}
            }
        }
        let mut value = serde_json::to_value(record).unwrap();
        cut(&mut value);
        value
    }

    /// The two dumps hold the same records in the same order, their headers' times aside.
    fn assert_same_dump(expected: &[BackupRecord], got: &[BackupRecord], cut_times: bool) {
        assert!(matches!(expected.first(), Some(BackupRecord::Header { .. })));
        assert!(matches!(got.first(), Some(BackupRecord::Header { .. })));
        for (index, (expected, got)) in expected.iter().zip(got).enumerate().skip(1) {
            if cut_times {
                assert_eq!(to_the_microsecond(got), to_the_microsecond(expected), "record {index}");
            } else {
                assert_eq!(got, expected, "record {index}");
            }
        }
        assert_eq!(got.len(), expected.len());
    }

    fn count_of(records: &[BackupRecord], kind: fn(&BackupRecord) -> bool) -> usize {
        records.iter().filter(|r| kind(r)).count()
    }

    /// The audit entries the PostgreSQL store's writes do not record yet (the trail
    /// is being wired to them): two entries, one of a customer.
    async fn record_audit(store: &PgStore, id_client: Uuid) {
        let origin = WriteOrigin::local("backup test");
        let origin = &origin;
        store
            .transact(move |mut tx| async move {
                let mut outcome = audit::record(
                    &mut tx,
                    origin,
                    Some(id_client),
                    "Nom changed".into(),
                    super::super::now(),
                )
                .await;
                if outcome.is_ok() {
                    outcome = audit::record(&mut tx, origin, None, "a test wrote".into(), super::super::now()).await;
                }
                (tx, outcome)
            })
            .await
            .unwrap();
    }

    fn sled_store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), crate::store::sled::DEFAULT_CACHE_BYTES).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_sled_register_restored_into_postgres_exports_the_same_dump_and_serves_it() {
        let (_dir, sled) = sled_store();
        let (lea, _bob, sent) = fill!(&sled);
        // A merge import row scheduling Lea's payments anew replaces the pending one
        // not sent yet; the one marked sent stays pending.
        sled.mark_payment_sent(sent.id, Some(Utc::now())).await.unwrap();
        let file = serde_json::json!({"clients": [{"IdClient": lea.id_client, "Nom": "Lefèvre-Dupont",
            "Prenom": "Léa", "Email": "Lea@X.fr", "CarteFid": 33, "Date_paiement": "2031-03-09", "Montant": 125}]});
        let rows = crate::import::blocking_stream(
            crate::import::rows_of(
                std::io::Cursor::new(file.to_string().into_bytes()),
                None,
                Some("a.json".into()),
            ),
            16,
        );
        let options = ImportOptions {
            mode: ImportMode::Merge,
            dry_run: false,
            skip_invalid: false,
        };
        let report = sled.import_customers(rows, options, Arc::new(|_| {})).await.unwrap();
        assert_eq!((report.updated, report.error_count), (1, 0), "{report:?}");
        let from_sled = dump(&sled).await;
        let statuses: Vec<PaymentStatus> = from_sled
            .iter()
            .filter_map(|r| match r {
                BackupRecord::Payment { payment } => Some(payment.payment.status),
                _ => None,
            })
            .collect();
        for status in [PaymentStatus::Pending, PaymentStatus::Paid, PaymentStatus::Replaced] {
            assert!(statuses.contains(&status), "{status:?} in {statuses:?}");
        }
        assert!(count_of(&from_sled, |r| matches!(r, BackupRecord::Audit { .. })) > 5);
        assert_eq!(count_of(&from_sled, |r| matches!(r, BackupRecord::Counter { .. })), 6);
        assert_eq!(count_of(&from_sled, |r| matches!(r, BackupRecord::CreditKey { .. })), 3);

        with_store(
            "a_sled_register_restored_into_postgres_exports_the_same_dump_and_serves_it",
            |pg| async move {
                let counts = pg.restore(stream(from_sled.clone())).await.unwrap();
                let Some(BackupRecord::Trailer { counts: dumped }) = from_sled.last() else {
                    panic!("no trailer")
                };
                assert_eq!(&counts, dumped);
                let from_pg = dump(&pg).await;
                assert_same_dump(&from_sled, &from_pg, true);

                // The rows the store derives are there: the live count, the e-mail, card
                // and search keys (not for the erased customer), the next numbers.
                assert_eq!(pg.customer_count().await.unwrap(), 2);
                let found = pg.customer_by_email("lea@x.FR").await.unwrap().unwrap();
                assert_eq!(found.id_client, lea.id_client);
                assert_eq!(pg.customer_by_card(33).await.unwrap().map(|c| c.id), Some(found.id));
                assert_eq!(pg.customer_by_email("gone@x.fr").await.unwrap(), None);
                let search = |q: &str| ListQuery {
                    q: Some(q.into()),
                    ..ListQuery::default()
                };
                let page = pg.list_customers(&search("dupont")).await.unwrap();
                assert_eq!((page.total, page.items[0].id), (1, found.id));
                assert_eq!(pg.list_customers(&search("durand")).await.unwrap().total, 0);
                let everyone = pg.list_customers(&ListQuery::default()).await.unwrap();
                assert_eq!(everyone.total, 2);
                assert_eq!(pg.consumer_cursor("bi").await.unwrap(), 3);
                let due = pg.payments_due(day(31), None, 10).await.unwrap();
                // Bob's refused payment (due a day later), Lea's sent one, the import's.
                assert_eq!(due.items.iter().map(|p| p.id).collect::<Vec<_>>(), [3, sent.id, 5]);
                // The unmatched ticket still waits for its e-mail's customer.
                let zoe = pg.create_customer(new_customer("Zoé", "ZOE@x.fr", None)).await.unwrap();
                assert_eq!((zoe.id, zoe.ticket_count, zoe.credit), (4, 1, Cents(200)));
                // Card numbers and credit keys go on from the dump's.
                let carl = pg.create_customer(new_customer("Carl", "", None)).await.unwrap();
                assert_eq!(pg.issue_card(carl.id_client).await.unwrap().carte_fid, Some(2));
                let again = pg.credit(vec![item(CardRef::Card(33), 1000, "till-2")]).await.unwrap();
                assert_eq!(
                    again,
                    [crate::store::CreditResult::Credited { balance: found.credit }],
                    "a credit key restored credits nothing twice"
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_postgres_register_restored_into_sled_exports_the_same_dump() {
        with_store(
            "a_postgres_register_restored_into_sled_exports_the_same_dump",
            |pg| async move {
                let (lea, _bob, sent) = fill!(&pg);
                pg.mark_payment_sent(sent.id, Some(super::super::now())).await.unwrap();
                record_audit(&pg, lea.id_client).await;
                let from_pg = dump(&pg).await;
                assert!(count_of(&from_pg, |r| matches!(r, BackupRecord::Audit { .. })) >= 2);
                assert_eq!(count_of(&from_pg, |r| matches!(r, BackupRecord::Counter { .. })), 6);
                assert_eq!(count_of(&from_pg, |r| matches!(r, BackupRecord::Ticket { .. })), 3);
                assert_eq!(count_of(&from_pg, |r| matches!(r, BackupRecord::Ledger { .. })), 5);
                // The credit keys in the bytes' order, as sled's tree keeps them.
                let keys: Vec<&str> = from_pg
                    .iter()
                    .filter_map(|r| match r {
                        BackupRecord::CreditKey { key, .. } => Some(key.as_str()),
                        _ => None,
                    })
                    .collect();
                assert_eq!(keys, ["till-1", "till-2", "Été-9"]);
                assert!(!from_pg
                    .iter()
                    .any(|r| matches!(r, BackupRecord::Counter { name, .. } if name == "live_customers")));

                let (_dir, sled) = sled_store();
                let counts = sled.restore(stream(from_pg.clone())).await.unwrap();
                assert_eq!(counts.customers, 3);
                let from_sled = dump(&sled).await;
                assert_same_dump(&from_pg, &from_sled, false);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn an_empty_database_dumps_as_an_empty_sled_store_does() {
        let (_dir, sled) = sled_store();
        let empty_sled = dump(&sled).await;
        with_store("an_empty_database_dumps_as_an_empty_sled_store_does", |pg| async move {
            let empty_pg = dump(&pg).await;
            assert_eq!(empty_pg.len(), 2, "a header and a trailer: {empty_pg:?}");
            assert_same_dump(&empty_sled, &empty_pg, false);
            // And it restores into an empty database: still empty, so once more.
            pg.restore(stream(empty_pg.clone())).await.unwrap();
            pg.restore(stream(empty_pg)).await.unwrap();
        })
        .await;
    }

    /// A dump of `n` customers made up whole (times already to the microsecond), each
    /// with two ledger entries, and as many credit keys: more than a batch and a page.
    fn made_up_dump(n: u64) -> Vec<BackupRecord> {
        let at = Utc::now().trunc_subsecs(6);
        let mut records = vec![BackupRecord::header(at)];
        for id in 1..=n {
            let mut customer =
                new_customer(&format!("Nom{id}"), &format!("c{id}@x.fr"), Some(id)).into_record(id, Uuid::new_v4(), at);
            customer.credit = Cents(3);
            customer.ledger_entries = 2;
            records.push(BackupRecord::Customer { customer });
            for seq in 1..=2 {
                let entry = crm_model::LedgerEntry {
                    seq,
                    at,
                    amount: 1,
                    balance: Cents(seq),
                    cause: LedgerCause::Credit,
                    key: None,
                };
                records.push(BackupRecord::Ledger { customer: id, entry });
            }
        }
        for id in 1..=n {
            records.push(BackupRecord::CreditKey {
                key: format!("k{id:05}"),
                customer: id,
            });
        }
        for (name, value) in [("next_customer_id", n), ("last_issued_card", n)] {
            records.push(BackupRecord::Counter {
                name: name.into(),
                value,
            });
        }
        let mut counts = BackupCounts::default();
        records.iter().for_each(|r| counts.count(r));
        records.push(BackupRecord::Trailer { counts });
        records
    }

    #[tokio::test]
    async fn a_dump_of_many_batches_and_pages_comes_back_whole() {
        with_store("a_dump_of_many_batches_and_pages_comes_back_whole", |pg| async move {
            let made_up = made_up_dump(2500);
            let counts = pg.restore(stream(made_up.clone())).await.unwrap();
            assert_eq!(
                (counts.customers, counts.ledger_entries, counts.credit_keys),
                (2500, 5000, 2500)
            );
            assert_same_dump(&made_up, &dump(&pg).await, false);
            assert_eq!(pg.customer_count().await.unwrap(), 2500);
            assert_eq!(pg.customer_by_email("c2222@x.fr").await.unwrap().unwrap().id, 2222);
            assert_eq!(pg.create_customer(new_customer("N", "", None)).await.unwrap().id, 2501);
        })
        .await;
    }

    #[tokio::test]
    async fn a_dump_without_the_trails_counter_numbers_the_next_entry_after_its_last() {
        with_store(
            "a_dump_without_the_trails_counter_numbers_the_next_entry_after_its_last",
            |pg| async move {
                let mut records = made_up_dump(2);
                let trailer = records.pop();
                assert!(matches!(trailer, Some(BackupRecord::Trailer { .. })));
                let origin = WriteOrigin::local("an older server");
                let at = Utc::now().trunc_subsecs(6);
                for seq in [3, 7] {
                    let entry = crm_model::audit::AuditEntry::new(seq, at, &origin, None, "imported");
                    records.push(BackupRecord::Audit { entry });
                }
                let mut counts = BackupCounts::default();
                records.iter().for_each(|r| counts.count(r));
                records.push(BackupRecord::Trailer { counts });
                pg.restore(stream(records)).await.unwrap();
                assert!(dump(&pg).await.contains(&BackupRecord::Counter {
                    name: "last_audit_seq".into(),
                    value: 7
                }));
            },
        )
        .await;
    }

    #[tokio::test]
    async fn an_export_of_ledger_entries_without_their_customer_fails() {
        with_store("an_export_of_ledger_entries_without_their_customer_fails", |pg| async move {
            pg.restore(stream(made_up_dump(2))).await.unwrap();
            // Only a damaged database holds such rows: the foreign key forbids them.
            sqlx::query("ALTER TABLE ledger DROP CONSTRAINT ledger_customer_id_fkey")
                .execute(pg.pool())
                .await
                .unwrap();
            sqlx::query("INSERT INTO ledger (customer_id, seq, at, amount, balance, cause) VALUES (9, 1, now(), 1, 1, 'credit')")
                .execute(pg.pool())
                .await
                .unwrap();
            let (sink, mut records) = mpsc::channel(64);
            let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
            let failed = pg.export(sink).await;
            drain.await.unwrap();
            assert!(
                matches!(&failed, Err(ExportError::Store(StoreError::Storage(why))) if why.contains("customer 9")),
                "{failed:?}"
            );
        })
        .await;
    }

    /// Whether the database holds nothing, every counter at 0.
    async fn is_empty(pg: &PgStore) -> bool {
        let rows: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM customer_tokens) \
             + (SELECT count(*) FROM ledger) + (SELECT count(*) FROM tickets) + (SELECT count(*) FROM ticket_pending) \
             + (SELECT count(*) FROM payments) + (SELECT count(*) FROM credit_keys) \
             + (SELECT count(*) FROM consumers) + (SELECT count(*) FROM audit) \
             + (SELECT count(*) FROM counters WHERE value <> 0)",
        )
        .fetch_one(pg.pool())
        .await
        .unwrap();
        rows == 0
    }

    #[tokio::test]
    async fn a_restore_into_a_database_that_holds_anything_is_refused() {
        with_store(
            "a_restore_into_a_database_that_holds_anything_is_refused",
            |pg| async move {
                let made_up = made_up_dump(3);
                pg.advance_consumer("bi", 1).await.unwrap();
                let refused = pg.restore(stream(made_up.clone())).await;
                assert!(
                    matches!(&refused, Err(RestoreError::NotEmpty(what)) if what.starts_with("the database crm_test_")),
                    "{refused:?}"
                );
                assert_eq!(pg.customer_count().await.unwrap(), 0);
                sqlx::query("DELETE FROM consumers").execute(pg.pool()).await.unwrap();
                let kept = pg
                    .create_customer(new_customer("Kept", "kept@x.fr", None))
                    .await
                    .unwrap();
                let refused = pg.restore(stream(made_up)).await;
                assert!(matches!(refused, Err(RestoreError::NotEmpty(_))), "{refused:?}");
                let everyone = pg.customers_after(None, 10).await.unwrap();
                assert_eq!(everyone, [kept], "nothing of the dump was written");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_dump_refused_part_way_leaves_the_database_empty() {
        with_store("a_dump_refused_part_way_leaves_the_database_empty", |pg| async move {
            let whole = made_up_dump(1500);
            let refusal = |refused: Result<BackupCounts, RestoreError>| match refused {
                Err(RestoreError::Dump(error)) => error,
                other => panic!("refused as a bad dump, not {other:?}"),
            };

            // Cut short: no trailer; then cut in the middle of the ledgers.
            let cut = whole[..whole.len() - 1].to_vec();
            let error = refusal(pg.restore(stream(cut)).await);
            assert!(error.message.contains("cut short"), "{error}");
            assert!(is_empty(&pg).await);
            let mut cut = whole[..3000].to_vec();
            let mut counts = BackupCounts::default();
            cut.iter().for_each(|r| counts.count(r));
            cut.push(BackupRecord::Trailer { counts });
            let error = refusal(pg.restore(stream(cut)).await);
            assert!(error.message.contains("ledger entries"), "{error}");
            assert!(is_empty(&pg).await);

            // A stream that fails (an unreadable line) after more than a batch.
            let first_lines: Vec<BackupRecord> = whole[..2500].to_vec();
            let failing = futures::stream::iter(first_lines.into_iter().map(Ok))
                .chain(futures::stream::iter([Err(crm_model::backup::BackupError {
                    line: 2501,
                    message: "unreadable record".into(),
                })]))
                .boxed();
            let error = refusal(pg.restore(failing).await);
            assert_eq!(error.line, 2501);
            assert!(is_empty(&pg).await);

            // An e-mail twice, the second in a later batch than the first.
            let mut twice = whole.clone();
            let BackupRecord::Customer { customer } = &mut twice[1 + 3 * 1400] else {
                panic!("a customer")
            };
            assert_eq!(customer.id, 1401);
            customer.email = "C1@x.fr".into();
            let error = refusal(pg.restore(stream(twice)).await);
            assert!(error.message.contains("same e-mail"), "{error}");
            assert!(is_empty(&pg).await);

            // An unknown counter, a number no column keeps, a payment of nobody.
            let with = |extra: BackupRecord| {
                let mut records = whole[..whole.len() - 1].to_vec();
                records.push(extra);
                let mut counts = BackupCounts::default();
                records.iter().for_each(|r| counts.count(r));
                records.push(BackupRecord::Trailer { counts });
                records
            };
            let error = refusal(
                pg.restore(stream(with(BackupRecord::Counter {
                    name: "live_customers".into(),
                    value: 3,
                })))
                .await,
            );
            assert!(error.message.contains("unknown counter"), "{error}");
            let error = refusal(
                pg.restore(stream(with(BackupRecord::Counter {
                    name: "last_payment_id".into(),
                    value: u64::MAX,
                })))
                .await,
            );
            assert!(error.message.contains("past the largest"), "{error}");
            assert_eq!(error.line, whole.len() as u64);
            let payment = crm_model::PaymentRecord {
                payment: crm_model::Payment::scheduled(1, Uuid::new_v4(), day(1), Cents(10)),
                customer: 999_999,
                created_at: Utc::now().trunc_subsecs(6),
                updated_at: Utc::now().trunc_subsecs(6),
            };
            let error = refusal(pg.restore(stream(with(BackupRecord::Payment { payment }))).await);
            assert!(error.message.contains("customer the dump does not hold"), "{error}");
            assert!(is_empty(&pg).await);

            // Nothing stayed of them: the whole dump restores.
            assert_eq!(pg.restore(stream(whole)).await.unwrap().customers, 1500);
        })
        .await;
    }

    #[tokio::test]
    async fn the_export_stops_when_its_reader_goes_away() {
        with_store("the_export_stops_when_its_reader_goes_away", |pg| async move {
            pg.restore(stream(made_up_dump(1200))).await.unwrap();
            let (sink, mut records) = mpsc::channel(1);
            let export = tokio::spawn({
                let pg = pg.clone();
                async move { pg.export(sink).await }
            });
            for _ in 0..5 {
                records.recv().await.unwrap();
            }
            drop(records);
            let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), export)
                .await
                .expect("the export stops")
                .unwrap();
            assert!(matches!(stopped, Err(ExportError::ReaderGone)), "{stopped:?}");
            // Its transaction ended: the next export runs whole.
            assert_eq!(dump(&pg).await.len(), 2 + 1200 * 3 + 1200 + 2);
        })
        .await;
    }
}

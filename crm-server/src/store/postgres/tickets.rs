//! Tickets in PostgreSQL: ingestion (idempotent on `uid`), matching, listings, and the
//! cursors of consumers.
//!
//! The feed order: every ticket transaction first locks the `last_ticket_seq` counter
//! row (`SELECT ... FOR UPDATE`), numbers its tickets from it, and keeps the lock until
//! it commits. The next ticket writer waits for that commit before it reads the
//! counter, so numbers are handed out in commit order and a ticket is visible before
//! any ticket numbered above it: a consumer that has read up to N never misses a ticket
//! below N committed later (which a database sequence would allow). The price is that
//! ticket writers take turns, as they did in the sled store.

use chrono::{DateTime, Utc};
use crm_model::tickets::ClientRef;
use crm_model::{Cents, CustomerRecord, Page, Ticket, TicketRecord};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::Entries;
use super::customers::{live_customer_by, write_customer, Key};
use super::{db_error, int, limit_plus_one, read_counter, seq_page, store_ledger_entry, PgStore, TxResult};
use crate::store::{CustomerStore, IngestOutcome, StoreError, TicketStore};

/// The sequence number of the newest ticket.
pub(crate) const LAST_TICKET_SEQ: &str = "last_ticket_seq";

/// The number of the last article numbered for the older feed shape.
pub(crate) const LAST_ARTICLE_ID: &str = "last_article_id";

/// The key a waiting ticket is filed under in `ticket_pending`.
pub(crate) fn pending_key(client: &ClientRef) -> String {
    match client {
        ClientRef::IdClient(id) => format!("u:{id}"),
        ClientRef::Email(email) => format!("e:{email}"),
        ClientRef::Card(card) => format!("c:{card}"),
    }
}

fn customer_key(client: &ClientRef) -> Key {
    match client {
        ClientRef::IdClient(id) => Key::IdClient(*id),
        ClientRef::Email(email) => Key::Email(email.clone()),
        ClientRef::Card(card) => Key::Card(*card),
    }
}

pub(crate) fn ticket_from_row(row: &PgRow) -> Result<TicketRecord, sqlx::Error> {
    let ticket: sqlx::types::Json<Ticket> = row.try_get("ticket")?;
    Ok(TicketRecord {
        seq: row.try_get::<i64, _>("seq")? as u64,
        ticket: ticket.0,
        customer: row.try_get::<Option<i64>, _>("customer_id")?.map(|c| c as u64),
        first_article_id: row.try_get::<i64, _>("first_article_id")? as u64,
    })
}

const TICKET_COLUMNS: &str = "seq, customer_id, first_article_id, ticket";

impl TicketStore for PgStore {
    /// Stores a validated batch in one transaction, crediting known customers.
    async fn ingest_tickets(&self, tickets: Vec<Ticket>) -> Result<IngestOutcome, StoreError> {
        let now = super::now();
        let tickets = &tickets;
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let mut audit = Entries::default();
                let outcome = ingest(&mut tx, tickets, now, &mut audit).await?;
                if outcome.stored > 0 {
                    audit.push(
                        None,
                        crm_model::audit::tickets_stored(outcome.stored, outcome.duplicates),
                    );
                }
                audit.write(&mut tx, origin, now).await?;
                Ok(outcome)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Up to `limit` tickets with a sequence number above `after` and at most `until`.
    async fn tickets_after(&self, after: u64, until: u64, limit: usize) -> Result<Vec<TicketRecord>, StoreError> {
        if after >= until {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(int(after))
            .bind(int(until))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(ticket_from_row)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    /// A page of every ticket, oldest first, after ticket `after`.
    async fn ticket_page(&self, after: Option<u64>, limit: usize) -> Result<Page<TicketRecord>, StoreError> {
        let total = self.last_ticket_seq().await?;
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after.map_or(0, int))
            .bind(limit_plus_one(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let items = rows
            .iter()
            .map(ticket_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        Ok(seq_page(items, limit, total, |t| t.seq))
    }

    /// The sequence number of the newest ticket (0 when none): how many there are.
    async fn last_ticket_seq(&self) -> Result<u64, StoreError> {
        read_counter(&self.pool, LAST_TICKET_SEQ).await
    }

    /// A page of a customer's credited tickets, oldest first, after ticket `after`.
    async fn customer_tickets(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<TicketRecord>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        let sql =
            format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(int(record.id))
            .bind(after.map_or(0, int))
            .bind(limit_plus_one(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let items = rows
            .iter()
            .map(ticket_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        Ok(seq_page(items, limit, record.ticket_count, |t| t.seq))
    }

    /// The last ticket sequence number consumer `name` has received (0 at first).
    async fn consumer_cursor(&self, name: &str) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM consumers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(seq.unwrap_or(0).max(0) as u64)
    }

    /// Moves consumer `name`'s cursor to `seq` (never backwards).
    async fn advance_consumer(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                // The row first, so that two first advances of one consumer take turns on it.
                sqlx::query("INSERT INTO consumers (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let current: i64 = sqlx::query_scalar("SELECT seq FROM consumers WHERE name = $1 FOR UPDATE")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                let current = current.max(0) as u64;
                if seq > current {
                    sqlx::query("UPDATE consumers SET seq = $2 WHERE name = $1")
                        .bind(name)
                        .bind(int(seq))
                        .execute(&mut *tx)
                        .await?;
                    let mut audit = Entries::default();
                    audit.push(None, crm_model::audit::consumer_advanced(name, current, seq));
                    audit.write(&mut tx, origin, super::now()).await?;
                }
                Ok(())
            }
            .await;
            (tx, result)
        })
        .await
    }
}

async fn ingest(
    tx: &mut PgConnection,
    tickets: &[Ticket],
    now: DateTime<Utc>,
    audit: &mut Entries,
) -> TxResult<IngestOutcome> {
    let mut outcome = IngestOutcome::default();
    // The turn of ticket writers (see the module's comment): held until commit.
    let counters: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, value FROM counters WHERE name = ANY($1) ORDER BY name FOR UPDATE")
            .bind(vec![LAST_ARTICLE_ID, LAST_TICKET_SEQ])
            .fetch_all(&mut *tx)
            .await?;
    let counter = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| (*v).max(0) as u64)
    };
    let mut seq = counter(LAST_TICKET_SEQ);
    let mut article = counter(LAST_ARTICLE_ID);
    for (index, ticket) in tickets.iter().enumerate() {
        let known: Option<i64> = sqlx::query_scalar("SELECT seq FROM tickets WHERE uid = $1")
            .bind(&ticket.uid)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            outcome.duplicates += 1;
            continue;
        }
        seq += 1;
        let mut record = TicketRecord {
            seq,
            ticket: ticket.clone(),
            customer: None,
            first_article_id: article + 1,
        };
        article += ticket.articles.len() as u64;
        let refs = ticket.client_refs();
        let mut customer = None;
        for client in &refs {
            customer = live_customer_by(tx, &customer_key(client)).await?;
            if customer.is_some() {
                break;
            }
        }
        let mut waiting_under = Vec::new();
        match customer {
            Some(old) => {
                let mut updated = old.clone();
                let credit = credit_ticket(tx, &mut updated, &mut record, now, &|| format!("tickets[{index}]")).await?;
                // A report, not a stored amount: it may sum past the bound.
                outcome.credited_cents.0 = outcome.credited_cents.0.saturating_add(credit.0);
                write_customer(tx, Some(&old), &updated).await?;
                audit.customer_changed(Some(&old), &updated, None);
            }
            None if !ticket.is_anonymous() => {
                record.ticket.unmatched = true;
                waiting_under = refs.iter().map(pending_key).collect();
                outcome.unmatched.push(ticket.uid.clone());
            }
            None => outcome.anonymous += 1,
        }
        sqlx::query(
            "INSERT INTO tickets (seq, uid, customer_id, first_article_id, ticket) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(int(record.seq))
        .bind(&record.ticket.uid)
        .bind(record.customer.map(int))
        .bind(int(record.first_article_id))
        .bind(sqlx::types::Json(&record.ticket))
        .execute(&mut *tx)
        .await?;
        if !waiting_under.is_empty() {
            sqlx::query(
                "INSERT INTO ticket_pending (client_key, seq) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING",
            )
            .bind(waiting_under)
            .bind(int(seq))
            .execute(&mut *tx)
            .await?;
        }
        outcome.stored += 1;
    }
    sqlx::query("UPDATE counters SET value = $2 WHERE name = $1")
        .bind(LAST_TICKET_SEQ)
        .bind(int(seq))
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE counters SET value = $2 WHERE name = $1")
        .bind(LAST_ARTICLE_ID)
        .bind(int(article))
        .execute(&mut *tx)
        .await?;
    Ok(outcome)
}

/// Credits `customer` for a ticket: a ledger entry keyed by its uid, and the basket.
/// The caller writes the customer and the ticket.
async fn credit_ticket(
    tx: &mut PgConnection,
    customer: &mut CustomerRecord,
    record: &mut TicketRecord,
    now: DateTime<Utc>,
    field: &(dyn Fn() -> String + Sync),
) -> TxResult<Cents> {
    let credit = record.ticket.credit();
    let entry = crm_model::tickets::credit_ticket(customer, record, now, field).map_err(StoreError::from)?;
    store_ledger_entry(tx, customer.id, &entry).await?;
    Ok(credit)
}

/// Credits `record` (being created or changed from `old`) with the unmatched tickets
/// waiting for a client key it has gained, in the caller's transaction; the caller
/// writes the customer. Used by customer creation, PATCH and card issue.
pub(crate) async fn match_pending(
    tx: &mut PgConnection,
    old: Option<&CustomerRecord>,
    record: &mut CustomerRecord,
    now: DateTime<Utc>,
) -> TxResult<()> {
    for client in crm_model::tickets::gained_client_refs(old, record) {
        let mut waiting: Vec<i64> =
            sqlx::query_scalar("DELETE FROM ticket_pending WHERE client_key = $1 RETURNING seq")
                .bind(pending_key(&client))
                .fetch_all(&mut *tx)
                .await?;
        // In the order they were stored, as the ledger of the sled store has them.
        waiting.sort_unstable();
        for seq in waiting {
            let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE seq = $1 FOR UPDATE");
            let Some(row) = sqlx::query(&sql).bind(seq).fetch_optional(&mut *tx).await? else {
                continue;
            };
            let mut ticket = ticket_from_row(&row)?;
            if !ticket.ticket.unmatched {
                continue;
            }
            let uid = ticket.ticket.uid.clone();
            credit_ticket(tx, record, &mut ticket, now, &|| format!("ticket {uid}")).await?;
            sqlx::query("UPDATE tickets SET customer_id = $2, ticket = $3 WHERE seq = $1")
                .bind(seq)
                .bind(ticket.customer.map(int))
                .bind(sqlx::types::Json(&ticket.ticket))
                .execute(&mut *tx)
                .await?;
            // The ticket no longer waits under its other keys.
            sqlx::query("DELETE FROM ticket_pending WHERE seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

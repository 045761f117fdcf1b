//! Tickets in sled. Layout of the `ticket_index` tree:
//! - `u` + uid -> ticket sequence number (ingestion is idempotent on it)
//! - `c` + customer id + ticket seq -> empty (a customer's credited tickets)
//! - `p` + client key -> list of ticket seqs: the unmatched tickets waiting for a
//!   customer with this IdClient, e-mail or card. One value per key, because a
//!   transaction cannot scan: creating the customer reads it whole and credits them.

use chrono::{DateTime, Utc};
use crm_model::tickets::{gained_client_refs, matching_customer, ClientRef};
use crm_model::{Cents, CustomerRecord, Page, Ticket, TicketRecord};
use uuid::Uuid;

use super::customers::{live_customer_by_index, write_customer};
use super::{
    abort, decode, decode_u64_list, encode, encode_u64_list, keys, ledger, seq_page, storage, SledStore, Tx, TxResult,
};
use crate::store::{CustomerStore, IngestOutcome, StoreError, TicketStore};

/// The sequence number of the newest ticket.
pub(crate) const LAST_TICKET_SEQ: &[u8] = b"last_ticket_seq";

/// The number of the last article numbered for the older feed shape.
pub(crate) const LAST_ARTICLE_ID: &[u8] = b"last_article_id";

pub(crate) fn uid_key(uid: &str) -> Vec<u8> {
    [b"u", uid.as_bytes()].concat()
}

pub(crate) fn customer_ticket_key(customer: u64, seq: u64) -> Vec<u8> {
    [b"c".as_slice(), &customer.to_be_bytes(), &seq.to_be_bytes()].concat()
}

pub(crate) fn pending_key(client: &ClientRef) -> Vec<u8> {
    match client {
        ClientRef::IdClient(id) => [b"pu".as_slice(), id.as_bytes()].concat(),
        ClientRef::Email(email) => [b"pe".as_slice(), email.as_bytes()].concat(),
        ClientRef::Card(card) => [b"pc".as_slice(), &card.to_be_bytes()].concat(),
    }
}

/// The customer index key a client reference is looked up by.
fn customer_index_key(client: &ClientRef) -> Vec<u8> {
    match client {
        ClientRef::IdClient(id) => keys::id_client_key(*id),
        ClientRef::Email(email) => keys::email_key(email),
        ClientRef::Card(card) => keys::card_key(*card),
    }
}

impl TicketStore for SledStore {
    async fn ingest_tickets(&self, tickets: Vec<Ticket>) -> Result<IngestOutcome, StoreError> {
        let now = Utc::now();
        let outcome = self
            .transact(|tx| {
                let mut outcome = IngestOutcome::default();
                let mut seq = tx.meta.get(LAST_TICKET_SEQ)?.map_or(0, |v| keys::decode_u64(&v));
                let mut article = tx.meta.get(LAST_ARTICLE_ID)?.map_or(0, |v| keys::decode_u64(&v));
                for (index, ticket) in tickets.iter().enumerate() {
                    let uid = uid_key(&ticket.uid);
                    if tx.ticket_index.get(&uid)?.is_some() {
                        outcome.duplicates += 1;
                        continue;
                    }
                    seq += 1;
                    tx.ticket_index.insert(uid, &seq.to_be_bytes())?;
                    let mut record = TicketRecord {
                        seq,
                        ticket: ticket.clone(),
                        customer: None,
                        first_article_id: article + 1,
                    };
                    article += ticket.articles.len() as u64;
                    let customer =
                        matching_customer(ticket, |client| live_customer_by_index(tx, &customer_index_key(client)))?;
                    match customer {
                        Some(old) => {
                            let mut updated = old.clone();
                            let credit =
                                credit_ticket(tx, &mut updated, &mut record, now, &|| format!("tickets[{index}]"))?;
                            // A report, not a stored amount: it may sum past the bound.
                            outcome.credited_cents.0 = outcome.credited_cents.0.saturating_add(credit.0);
                            write_customer(tx, Some(&old), &updated)?;
                            super::audit::customer_changed(tx, Some(&old), &updated, None, now)?;
                        }
                        None if !ticket.is_anonymous() => {
                            record.ticket.unmatched = true;
                            for client in &ticket.client_refs() {
                                let key = pending_key(client);
                                let mut waiting = tx.ticket_index.get(&key)?.map_or_else(Vec::new, |v| v.to_vec());
                                waiting.extend_from_slice(&seq.to_be_bytes());
                                tx.ticket_index.insert(key, waiting)?;
                            }
                            outcome.unmatched.push(ticket.uid.clone());
                        }
                        None => outcome.anonymous += 1,
                    }
                    tx.tickets.insert(&seq.to_be_bytes(), encode(&record))?;
                    outcome.stored += 1;
                }
                tx.meta.insert(LAST_TICKET_SEQ, &seq.to_be_bytes())?;
                tx.meta.insert(LAST_ARTICLE_ID, &article.to_be_bytes())?;
                if outcome.stored > 0 {
                    let summary = crm_model::audit::tickets_stored(outcome.stored, outcome.duplicates);
                    super::audit::record(tx, None, summary, now)?;
                }
                Ok(outcome)
            })
            .await?;
        self.durable().await?;
        Ok(outcome)
    }

    async fn tickets_after(&self, after: u64, until: u64, limit: usize) -> Result<Vec<TicketRecord>, StoreError> {
        let mut out = Vec::with_capacity(limit);
        let range = after.saturating_add(1).to_be_bytes()..=until.to_be_bytes();
        if after >= until {
            return Ok(out);
        }
        for entry in self.inner.tickets.range(range).take(limit) {
            let (_, value) = entry.map_err(storage)?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    async fn ticket_page(&self, after: Option<u64>, limit: usize) -> Result<Page<TicketRecord>, StoreError> {
        let total = self.last_ticket_seq().await?;
        seq_page(&self.inner.tickets, &[], after, limit, total, |_, value| decode(value))
    }

    async fn last_ticket_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .meta
            .get(LAST_TICKET_SEQ)
            .map_err(storage)?
            .map_or(0, |v| keys::decode_u64(&v)))
    }

    async fn customer_tickets(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<TicketRecord>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        let prefix = [b"c".as_slice(), &record.id.to_be_bytes()].concat();
        seq_page(
            &self.inner.ticket_index,
            &prefix,
            after,
            limit,
            record.ticket_count,
            |key, _| self.ticket(keys::decode_u64(&key[key.len() - 8..])),
        )
    }

    async fn consumer_cursor(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .meta
            .get(consumer_key(name))
            .map_err(storage)?
            .map_or(0, |v| keys::decode_u64(&v)))
    }

    async fn advance_consumer(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        let key = consumer_key(name);
        self.transact(|tx| {
            let current = tx.meta.get(&key)?.map_or(0, |v| keys::decode_u64(&v));
            if seq > current {
                tx.meta.insert(key.as_slice(), &seq.to_be_bytes())?;
                let summary = crm_model::audit::consumer_advanced(name, current, seq);
                super::audit::record(tx, None, summary, chrono::Utc::now())?;
            }
            Ok(())
        })
        .await?;
        self.durable().await
    }
}

pub(crate) fn consumer_key(name: &str) -> Vec<u8> {
    [b"consumer:".as_slice(), name.as_bytes()].concat()
}

impl SledStore {
    fn ticket(&self, seq: u64) -> Result<TicketRecord, StoreError> {
        match self.inner.tickets.get(seq.to_be_bytes()).map_err(storage)? {
            Some(bytes) => decode(&bytes),
            None => Err(StoreError::Storage(format!("index points to missing ticket {seq}"))),
        }
    }
}

/// Credits `customer` for a ticket as [`crm_model::tickets::credit_ticket`] says, and
/// stores its ledger entry and the customer's ticket index entry. The caller writes the
/// customer and the ticket. Past the bound of money, aborts with a `422` on `field`.
fn credit_ticket(
    tx: &Tx<'_>,
    customer: &mut CustomerRecord,
    record: &mut TicketRecord,
    now: DateTime<Utc>,
    field: &dyn Fn() -> String,
) -> TxResult<Cents> {
    let entry = match crm_model::tickets::credit_ticket(customer, record, now, field) {
        Ok(entry) => entry,
        Err(e) => return abort(e.into()),
    };
    ledger::store_entry(tx, customer, &entry)?;
    tx.ticket_index
        .insert(customer_ticket_key(customer.id, record.seq), &[])?;
    Ok(record.ticket.credit())
}

/// Credits `record` (being created or changed from `old`) with the unmatched tickets
/// waiting for a client key it has gained, in the caller's transaction; the caller
/// writes the customer. Used by customer creation, PATCH, card issue (and import).
pub(crate) fn match_pending(
    tx: &Tx<'_>,
    old: Option<&CustomerRecord>,
    record: &mut CustomerRecord,
    now: DateTime<Utc>,
) -> TxResult<()> {
    for client in gained_client_refs(old, record) {
        let Some(waiting) = tx.ticket_index.remove(pending_key(&client))? else {
            continue;
        };
        for seq in decode_u64_list(&waiting) {
            let Some(bytes) = tx.tickets.get(seq.to_be_bytes())? else {
                continue;
            };
            let mut ticket: TicketRecord = decode(&bytes).or_else(super::abort)?;
            if !ticket.ticket.unmatched {
                continue;
            }
            let uid = ticket.ticket.uid.clone();
            credit_ticket(tx, record, &mut ticket, now, &|| format!("ticket {uid}"))?;
            tx.tickets.insert(&seq.to_be_bytes(), encode(&ticket))?;
            // The ticket no longer waits under its other keys.
            for other in ticket.ticket.client_refs().iter().filter(|r| **r != client) {
                let key = pending_key(other);
                if let Some(list) = tx.ticket_index.get(&key)? {
                    let rest: Vec<u64> = decode_u64_list(&list).into_iter().filter(|s| *s != seq).collect();
                    if rest.is_empty() {
                        tx.ticket_index.remove(key)?;
                    } else {
                        tx.ticket_index.insert(key, encode_u64_list(&rest))?;
                    }
                }
            }
        }
    }
    Ok(())
}

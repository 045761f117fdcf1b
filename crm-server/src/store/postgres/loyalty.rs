//! Loyalty in PostgreSQL: cards, `POST /api/credit` and reading the ledger.

use chrono::{DateTime, Utc};
use crm_model::{CardRef, Cents, CreditItem, CustomerRecord, LedgerCause, LedgerEntry, Page};
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit::Entries;
use super::customers::{customer_with_id, live_customer_by, live_customer_for_update, write_customer, Key};
use super::{
    append_ledger, bump_counter, db_error, int, ledger_from_row, limit_plus_one, seq_page, tickets, PgStore, TxResult,
};
use crate::store::{CreditResult, CustomerStore, LoyaltyStore, StoreError};

/// The last card number handed out by [`LoyaltyStore::issue_card`].
pub(crate) const LAST_ISSUED_CARD: &str = "last_issued_card";

impl LoyaltyStore for PgStore {
    /// Gives a live customer the next free card number; one who has a card keeps it.
    async fn issue_card(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = super::now();
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let old = live_customer_for_update(&mut tx, id_client).await?;
                if old.carte_fid.is_some() {
                    return Ok(old);
                }
                // Skip the numbers already given explicitly (create, PATCH, import).
                let mut card = bump_counter(&mut tx, LAST_ISSUED_CARD, 1).await?;
                while card_taken(&mut tx, card).await? {
                    card = bump_counter(&mut tx, LAST_ISSUED_CARD, 1).await?;
                }
                let mut record = old.clone();
                record.carte_fid = Some(card);
                record.updated_at = now;
                tickets::match_pending(&mut tx, Some(&old), &mut record, now).await?;
                write_customer(&mut tx, Some(&old), &record).await?;
                let mut audit = Entries::default();
                audit.customer_changed(Some(&old), &record, None);
                audit.write(&mut tx, origin, now).await?;
                Ok(record)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Credits each holder half its item's amount, in one transaction; items whose key
    /// was seen before credit nothing again. One result per item, in order.
    async fn credit(&self, items: Vec<CreditItem>) -> Result<Vec<CreditResult>, StoreError> {
        let now = super::now();
        let items = &items;
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                lock_holders(&mut tx, items).await?;
                let mut audit = Entries::default();
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    results.push(credit_item(&mut tx, item, now, &mut audit).await?);
                }
                audit.write(&mut tx, origin, now).await?;
                Ok(results)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// A live customer by card number, or by IdClient.
    async fn customer_by_card_ref(&self, card: &CardRef) -> Result<Option<CustomerRecord>, StoreError> {
        let found = match card {
            CardRef::Card(n) => self.customer_by_card(*n).await?,
            CardRef::IdClient(id) => self.customer(*id).await?,
        };
        Ok(found.filter(|r| !r.erased))
    }

    /// A page of a customer's ledger, oldest first, after entry `after`.
    async fn ledger(&self, id_client: Uuid, after: Option<u64>, limit: usize) -> Result<Page<LedgerEntry>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        let rows = sqlx::query(
            "SELECT seq, at, amount, balance, cause, key FROM ledger WHERE customer_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(int(record.id))
        .bind(after.map_or(0, int))
        .bind(limit_plus_one(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let entries = rows
            .iter()
            .map(ledger_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        Ok(seq_page(entries, limit, record.ledger_entries, |e| e.seq))
    }
}

/// Locks every live customer the batch names, in id order, before crediting any: two
/// batches naming the same customers in different orders then wait for one another
/// instead of deadlocking (which PostgreSQL takes a second to detect).
async fn lock_holders(tx: &mut PgConnection, items: &[CreditItem]) -> TxResult<()> {
    let mut cards = Vec::new();
    let mut ids = Vec::new();
    for item in items {
        match item.card {
            CardRef::Card(n) => cards.push(int(n)),
            CardRef::IdClient(id) => ids.push(id),
        }
    }
    sqlx::query(
        "SELECT id FROM customers WHERE NOT erased AND (carte_fid = ANY($1) OR id_client = ANY($2)) \
         ORDER BY id FOR UPDATE",
    )
    .bind(cards)
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn card_taken(tx: &mut PgConnection, card: u64) -> TxResult<bool> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE carte_fid = $1 AND NOT erased")
        .bind(int(card))
        .fetch_optional(&mut *tx)
        .await?;
    Ok(taken.is_some())
}

/// Credits one item inside the batch's transaction. A key seen before (in an earlier
/// batch or earlier in this one) credits nothing and answers the current balance. Two
/// batches with one new key at once: the second one's insert of the key meets the
/// first one's, and is run again, when it sees the key.
async fn credit_item(
    tx: &mut PgConnection,
    item: &CreditItem,
    now: DateTime<Utc>,
    audit: &mut Entries,
) -> TxResult<CreditResult> {
    if let Some(key) = &item.key {
        let holder: Option<i64> = sqlx::query_scalar("SELECT customer_id FROM credit_keys WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(holder) = holder {
            let balance = customer_with_id(tx, holder as u64)
                .await?
                .map_or(Cents::ZERO, |r| r.credit);
            return Ok(CreditResult::Credited { balance });
        }
    }
    let key = match item.card {
        CardRef::Card(n) => Key::Card(n),
        CardRef::IdClient(id) => Key::IdClient(id),
    };
    let Some(old) = live_customer_by(tx, &key).await? else {
        return Ok(CreditResult::UnknownCard);
    };
    let mut record = old.clone();
    let balance = old
        .credit
        .bounded_add(item.credit(), || format!("Tickets[{}].Montant", item.index))
        .map_err(StoreError::from)?;
    append_ledger(tx, &mut record, balance, LedgerCause::Credit, item.key.clone(), now).await?;
    record.updated_at = now;
    write_customer(tx, Some(&old), &record).await?;
    audit.customer_changed(Some(&old), &record, None);
    if let Some(key) = &item.key {
        sqlx::query("INSERT INTO credit_keys (key, customer_id) VALUES ($1, $2)")
            .bind(key)
            .bind(int(record.id))
            .execute(&mut *tx)
            .await?;
    }
    Ok(CreditResult::Credited { balance })
}

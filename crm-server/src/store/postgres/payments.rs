//! Deferred payments in PostgreSQL. The pending ones are those with `status = 'pending'`
//! (a partial index by due date serves the payment runs); a customer's `Date_paiement`
//! and `Montant` are derived from them in the transaction that changes them.

use chrono::{DateTime, NaiveDate, Utc};
use crm_model::payments::{count_refusal, credit_allowed, pending_totals, record_result, ResultEffect};
use crm_model::{AllowCredit, Cents, CustomerRecord, Page, Payment, PaymentStatus};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::Entries;
use super::customers::{customer_with_id, live_customer_for_update, write_customer};
use super::{bump_counter, cents, db_error, int, limit_plus_one, seq_page, PgStore, TxResult};
use crate::store::{CustomerStore, PaymentStore, StoreError};

pub(crate) const LAST_PAYMENT_ID: &str = "last_payment_id";

const PAYMENT_COLUMNS: &str = "id, customer_id, id_client, montant, date, status, attempts, sent_at";

pub(crate) fn status_name(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Paid => "paid",
        PaymentStatus::Replaced => "replaced",
    }
}

fn status_of(name: &str) -> Result<PaymentStatus, sqlx::Error> {
    match name {
        "pending" => Ok(PaymentStatus::Pending),
        "paid" => Ok(PaymentStatus::Paid),
        "replaced" => Ok(PaymentStatus::Replaced),
        other => Err(sqlx::Error::Decode(format!("unknown payment status {other:?}").into())),
    }
}

/// A payment row: the payment and its customer's sequence number.
pub(crate) fn payment_from_row(row: &PgRow) -> Result<(Payment, u64), sqlx::Error> {
    let status: String = row.try_get("status")?;
    let payment = Payment {
        id: row.try_get::<i64, _>("id")? as u64,
        id_client: row.try_get("id_client")?,
        montant: cents(row.try_get("montant")?),
        date: row.try_get("date")?,
        status: status_of(&status)?,
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        sent_at: row.try_get("sent_at")?,
    };
    Ok((payment, row.try_get::<i64, _>("customer_id")? as u64))
}

async fn payment_for_update(tx: &mut PgConnection, id: u64) -> TxResult<(Payment, u64)> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE");
    match sqlx::query(&sql).bind(int(id)).fetch_optional(&mut *tx).await? {
        Some(row) => Ok(payment_from_row(&row)?),
        None => Err(StoreError::PaymentNotFound.into()),
    }
}

/// Writes a payment's changing fields.
async fn update_payment(tx: &mut PgConnection, payment: &Payment, now: DateTime<Utc>) -> TxResult<()> {
    sqlx::query(
        "UPDATE payments SET date = $2, status = $3, attempts = $4, sent_at = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(int(payment.id))
    .bind(payment.date)
    .bind(status_name(payment.status))
    .bind(i32::try_from(payment.attempts).unwrap_or(i32::MAX))
    .bind(payment.sent_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sets `record`'s `Date_paiement` and `Montant` from its pending payments as written
/// in this transaction (crm-model's `pending_totals`).
async fn derive_from_pending(tx: &mut PgConnection, record: &mut CustomerRecord) -> TxResult<()> {
    let sql =
        format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE customer_id = $1 AND status = 'pending' ORDER BY id");
    let rows = sqlx::query(&sql).bind(int(record.id)).fetch_all(&mut *tx).await?;
    let pending = rows
        .iter()
        .map(|r| payment_from_row(r).map(|(p, _)| p))
        .collect::<Result<Vec<_>, _>>()?;
    let (next, total) = pending_totals(&pending).map_err(StoreError::from)?;
    record.next_payment = next;
    record.pending_payments = total;
    Ok(())
}

/// Schedules a pending payment of `amount` due on `date` for `record`, added to any
/// already scheduled, and updates its `Date_paiement` and `Montant`. The caller writes
/// the customer in the same transaction (`allow_credit`, creation, import rows).
pub(crate) async fn schedule_payment(
    tx: &mut PgConnection,
    record: &mut CustomerRecord,
    date: NaiveDate,
    amount: Cents,
    now: DateTime<Utc>,
) -> TxResult<Payment> {
    let id = bump_counter(tx, LAST_PAYMENT_ID, 1).await?;
    let payment = Payment::scheduled(id, record.id_client, date, amount);
    sqlx::query(
        "INSERT INTO payments (id, customer_id, id_client, montant, date, status, attempts, sent_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, NULL, $6, $6)",
    )
    .bind(int(id))
    .bind(int(record.id))
    .bind(record.id_client)
    .bind(int(amount.0))
    .bind(date)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    derive_from_pending(tx, record).await?;
    record.updated_at = now;
    Ok(payment)
}

impl PaymentStore for PgStore {
    /// Schedules the payment when the customer has fewer than `refusal_limit`
    /// refusals; `None` (nothing written) when over the limit.
    async fn allow_credit(&self, request: AllowCredit, refusal_limit: u32) -> Result<Option<Payment>, StoreError> {
        let now = super::now();
        let request = &request;
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let old = live_customer_for_update(&mut tx, request.id_client).await?;
                if !credit_allowed(old.nb_refus, refusal_limit) {
                    return Ok(None);
                }
                let mut record = old.clone();
                let payment = schedule_payment(&mut tx, &mut record, request.date, request.montant, now).await?;
                write_customer(&mut tx, Some(&old), &record).await?;
                let mut audit = Entries::default();
                audit.push(Some(record.id_client), crm_model::audit::payment_scheduled(&payment));
                audit.write(&mut tx, origin, now).await?;
                Ok(Some(payment))
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// A page of a customer's payments (every status), by id, after payment `after`.
    async fn customer_payments(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        let mut tx = super::snapshot(&self.pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE customer_id = $1")
            .bind(int(record.id))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let sql =
            format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE customer_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(int(record.id))
            .bind(after.map_or(0, int))
            .bind(limit_plus_one(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let _ = tx.commit().await;
        let items = rows
            .iter()
            .map(|r| payment_from_row(r).map(|(p, _)| p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        Ok(seq_page(items, limit, total.max(0) as u64, |p| p.id))
    }

    /// A page of pending payments due on or before `due`, by due date then id, after
    /// the opaque position `after` (the sled store's: the date as `YYYY-MM-DD` and the
    /// big-endian id, in hex).
    async fn payments_due(
        &self,
        due: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        let bad = || StoreError::BadCursor(format!("cursor {after:?} is not a cursor of this list"));
        let position = match after {
            Some(cursor) => {
                let bytes = hex::decode(cursor).map_err(|_| bad())?;
                if bytes.len() != 18 {
                    return Err(bad());
                }
                let date = std::str::from_utf8(&bytes[..10])
                    .ok()
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .ok_or_else(bad)?;
                let mut id = [0u8; 8];
                id.copy_from_slice(&bytes[10..]);
                Some((date, u64::from_be_bytes(id)))
            }
            None => None,
        };
        let mut tx = super::snapshot(&self.pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'pending' AND date <= $1")
            .bind(due)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE status = 'pending' AND date <= $1 \
             AND ($2::date IS NULL OR (date, id) > ($2, $3)) ORDER BY date, id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(due)
            .bind(position.map(|(date, _)| date))
            .bind(position.map_or(0, |(_, id)| int(id)))
            .bind(limit_plus_one(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let _ = tx.commit().await;
        let mut items = rows
            .iter()
            .map(|r| payment_from_row(r).map(|(p, _)| p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = items
            .last()
            .filter(|_| more)
            .map(|p| hex::encode([p.date.format("%Y-%m-%d").to_string().as_bytes(), &p.id.to_be_bytes()].concat()));
        Ok(Page {
            items,
            next_cursor,
            total: total.max(0) as u64,
        })
    }

    /// Records the payment service's answer: paid, or a refusal (the customer's
    /// `NbRefus` + 1, due date one day later).
    async fn payment_result(&self, id: u64, paid: bool) -> Result<Payment, StoreError> {
        let now = super::now();
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let mut audit = Entries::default();
                let payment = payment_result_in(&mut tx, id, paid, now, &mut audit).await?;
                audit.write(&mut tx, origin, now).await?;
                Ok(payment)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Marks a pending payment sent to the payment service at `at` (or unmarks it with
    /// `None`); `None` (nothing written) when it is no longer pending.
    async fn mark_payment_sent(&self, id: u64, at: Option<DateTime<Utc>>) -> Result<Option<Payment>, StoreError> {
        let now = super::now();
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let (mut payment, _) = payment_for_update(&mut tx, id).await?;
                if payment.status != PaymentStatus::Pending {
                    return Ok(None);
                }
                payment.sent_at = at;
                update_payment(&mut tx, &payment, now).await?;
                let mut audit = Entries::default();
                audit.push(
                    Some(payment.id_client),
                    crm_model::audit::payment_sent(&payment, at.is_some()),
                );
                audit.write(&mut tx, origin, now).await?;
                Ok(Some(payment))
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Sets a customer's `NbRefus` to 0.
    async fn reset_refusals(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = super::now();
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let old = live_customer_for_update(&mut tx, id_client).await?;
                if old.nb_refus == 0 {
                    return Ok(old);
                }
                let mut record = old.clone();
                record.nb_refus = 0;
                record.updated_at = now;
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

    /// A row of `leases`: taken when there is none, when it expired, or when it is the
    /// holder's own (a renewal), in one statement; the database's clock decides, so
    /// the servers' clocks need not agree.
    async fn claim_payment_run(&self, holder: Uuid, lease: std::time::Duration) -> Result<bool, StoreError> {
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until \
             WHERE leases.holder = EXCLUDED.holder OR leases.until < clock_timestamp() \
             RETURNING holder",
        )
        .bind(PAYMENT_RUN_LEASE)
        .bind(holder)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(claimed == Some(holder))
    }

    async fn release_payment_run(&self, holder: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(PAYMENT_RUN_LEASE)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

/// The `leases` row of the payment run.
const PAYMENT_RUN_LEASE: &str = "payment_run";

async fn payment_result_in(
    tx: &mut PgConnection,
    id: u64,
    paid: bool,
    now: DateTime<Utc>,
    audit: &mut Entries,
) -> TxResult<Payment> {
    let (mut payment, customer) = payment_for_update(tx, id).await?;
    let effect = record_result(&mut payment, paid).map_err(|status| StoreError::PaymentNotPending {
        id,
        status: format!("{status:?}").to_lowercase(),
    })?;
    match effect {
        ResultEffect::Repeated => return Ok(payment),
        ResultEffect::PaidAfterReplace => {
            update_payment(tx, &payment, now).await?;
            audit.push(
                Some(payment.id_client),
                crm_model::audit::payment_result(&payment, paid),
            );
            return Ok(payment);
        }
        ResultEffect::Paid | ResultEffect::Refused => {}
    }
    let Some(old) = customer_with_id(tx, customer).await? else {
        return Err(StoreError::Storage(format!("payment {id} of a missing customer")).into());
    };
    let mut record = old.clone();
    if effect == ResultEffect::Refused {
        count_refusal(&mut record);
    }
    update_payment(tx, &payment, now).await?;
    derive_from_pending(tx, &mut record).await?;
    record.updated_at = now;
    write_customer(tx, Some(&old), &record).await?;
    audit.customer_changed(
        Some(&old),
        &record,
        Some(crm_model::audit::payment_result(&payment, paid)),
    );
    Ok(payment)
}

//! Deferred payments in sled. Layout of the `payment_index` tree:
//! - `h` + customer id + payment id -> empty (every payment of a customer)
//! - `d` + due date `YYYY-MM-DD` + payment id -> empty (pending payments by due date)
//! - `p` + customer id -> list of the customer's pending payment ids, read whole in
//!   transactions (which cannot scan) to derive `Date_paiement` and `Montant`.

use std::ops::Bound;

use chrono::{DateTime, NaiveDate, Utc};
use crm_model::payments::{count_refusal, credit_allowed, pending_totals, record_result, ResultEffect};
use crm_model::{AllowCredit, Cents, CustomerRecord, Page, Payment, PaymentRecord, PaymentStatus};
use uuid::Uuid;

use super::customers::{customer_with_id, live_customer_in, write_customer};
use super::{
    abort, bump_counter, decode, decode_u64_list, encode, encode_u64_list, keys, seq_page, storage, SledStore, Tx,
    TxResult,
};
use crate::store::{CustomerStore, PaymentStore, StoreError};

pub(crate) const LAST_PAYMENT_ID: &[u8] = b"last_payment_id";

pub(crate) fn history_key(customer: u64, payment: u64) -> Vec<u8> {
    [b"h".as_slice(), &customer.to_be_bytes(), &payment.to_be_bytes()].concat()
}

pub(crate) fn due_key(date: NaiveDate, payment: u64) -> Vec<u8> {
    [
        b"d".as_slice(),
        date.format("%Y-%m-%d").to_string().as_bytes(),
        &payment.to_be_bytes(),
    ]
    .concat()
}

pub(crate) fn pending_key(customer: u64) -> Vec<u8> {
    [b"p".as_slice(), &customer.to_be_bytes()].concat()
}

fn pending_ids(tx: &Tx<'_>, customer: u64) -> TxResult<Vec<u64>> {
    Ok(tx
        .payment_index
        .get(pending_key(customer))?
        .map_or_else(Vec::new, |v| decode_u64_list(&v)))
}

fn set_pending_ids(tx: &Tx<'_>, customer: u64, ids: &[u64]) -> TxResult<()> {
    if ids.is_empty() {
        tx.payment_index.remove(pending_key(customer))?;
    } else {
        tx.payment_index.insert(pending_key(customer), encode_u64_list(ids))?;
    }
    Ok(())
}

fn payment_in(tx: &Tx<'_>, id: u64) -> TxResult<PaymentRecord> {
    match tx.payments.get(id.to_be_bytes())? {
        Some(bytes) => decode(&bytes).or_else(abort),
        None => abort(StoreError::PaymentNotFound),
    }
}

/// Sets the customer's `Date_paiement` and `Montant` ([`pending_totals`]) from its
/// pending payments as written in this transaction.
fn derive_from_pending(tx: &Tx<'_>, record: &mut CustomerRecord) -> TxResult<()> {
    let pending = pending_ids(tx, record.id)?
        .into_iter()
        .map(|id| Ok(payment_in(tx, id)?.payment))
        .collect::<TxResult<Vec<Payment>>>()?;
    let (next, total) = pending_totals(&pending).or_else(|e| abort(e.into()))?;
    record.next_payment = next;
    record.pending_payments = total;
    Ok(())
}

/// Schedules a pending payment of `amount` due on `date` for `record`, added to any
/// already scheduled, and updates its `Date_paiement` and `Montant`. The caller writes
/// the customer in the same transaction (`allow_credit`, import rows).
pub(crate) fn schedule_payment(
    tx: &Tx<'_>,
    record: &mut CustomerRecord,
    date: NaiveDate,
    amount: Cents,
    now: DateTime<Utc>,
) -> TxResult<Payment> {
    let id = bump_counter(tx.meta, LAST_PAYMENT_ID, 1)?;
    let payment = Payment::scheduled(id, record.id_client, date, amount);
    let stored = PaymentRecord {
        payment: payment.clone(),
        customer: record.id,
        created_at: now,
        updated_at: now,
    };
    tx.payments.insert(&id.to_be_bytes(), encode(&stored))?;
    tx.payment_index.insert(history_key(record.id, id), &[])?;
    tx.payment_index.insert(due_key(date, id), &[])?;
    let mut pending = pending_ids(tx, record.id)?;
    pending.push(id);
    set_pending_ids(tx, record.id, &pending)?;
    derive_from_pending(tx, record)?;
    record.updated_at = now;
    Ok(payment)
}

/// Marks every pending payment of `record` replaced, then schedules `replacement` if
/// any (an import row's `Date_paiement` and `Montant` on update). The caller writes the
/// customer in the same transaction. A payment that is not
/// [`replaceable`](Payment::replaceable) (sent, its answer awaited) stays pending.
pub(crate) fn replace_pending_payments(
    tx: &Tx<'_>,
    record: &mut CustomerRecord,
    replacement: Option<(NaiveDate, Cents)>,
    now: DateTime<Utc>,
) -> TxResult<Option<Payment>> {
    let mut in_flight = Vec::new();
    for id in pending_ids(tx, record.id)? {
        let mut stored = payment_in(tx, id)?;
        if !stored.payment.replaceable() {
            in_flight.push(id);
            continue;
        }
        tx.payment_index.remove(due_key(stored.payment.date, id))?;
        stored.payment.status = PaymentStatus::Replaced;
        stored.updated_at = now;
        tx.payments.insert(&id.to_be_bytes(), encode(&stored))?;
    }
    set_pending_ids(tx, record.id, &in_flight)?;
    derive_from_pending(tx, record)?;
    record.updated_at = now;
    replacement
        .map(|(date, amount)| schedule_payment(tx, record, date, amount, now))
        .transpose()
}

impl PaymentStore for SledStore {
    async fn allow_credit(&self, request: AllowCredit, refusal_limit: u32) -> Result<Option<Payment>, StoreError> {
        let now = Utc::now();
        let payment = self
            .transact(|tx| {
                let old = live_customer_in(tx, request.id_client)?;
                if !credit_allowed(old.nb_refus, refusal_limit) {
                    return Ok(None);
                }
                let mut record = old.clone();
                let payment = schedule_payment(tx, &mut record, request.date, request.montant, now)?;
                write_customer(tx, Some(&old), &record)?;
                let scheduled = crm_model::audit::payment_scheduled(&payment);
                super::audit::record(tx, Some(record.id_client), scheduled, now)?;
                Ok(Some(payment))
            })
            .await?;
        if payment.is_some() {
            self.durable().await?;
        }
        Ok(payment)
    }

    async fn customer_payments(
        &self,
        id_client: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        let prefix = [b"h".as_slice(), &record.id.to_be_bytes()].concat();
        // A customer has few payments: counting them is a short key scan.
        let total = self.inner.payment_index.scan_prefix(&prefix).keys().count() as u64;
        seq_page(&self.inner.payment_index, &prefix, after, limit, total, |key, _| {
            self.payment(keys::decode_u64(&key[key.len() - 8..]))
        })
    }

    /// On a blocking thread: the total counts every pending payment due by `due`.
    async fn payments_due(
        &self,
        due: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Payment>, StoreError> {
        let (store, after) = (self.clone(), after.map(str::to_string));
        super::blocking(move || store.payments_due_now(due, after.as_deref(), limit)).await
    }

    async fn payment_result(&self, id: u64, paid: bool) -> Result<Payment, StoreError> {
        let now = Utc::now();
        let payment = self
            .transact(|tx| {
                let mut stored = payment_in(tx, id)?;
                let was_due = stored.payment.date;
                let effect = match record_result(&mut stored.payment, paid) {
                    Ok(effect) => effect,
                    Err(status) => {
                        return abort(StoreError::PaymentNotPending {
                            id,
                            status: format!("{status:?}").to_lowercase(),
                        })
                    }
                };
                match effect {
                    ResultEffect::Repeated => return Ok(stored.payment),
                    ResultEffect::PaidAfterReplace => {
                        stored.updated_at = now;
                        tx.payments.insert(&id.to_be_bytes(), encode(&stored))?;
                        let summary = crm_model::audit::payment_result(&stored.payment, paid);
                        super::audit::record(tx, Some(stored.payment.id_client), summary, now)?;
                        return Ok(stored.payment);
                    }
                    ResultEffect::Paid | ResultEffect::Refused => {}
                }
                let Some(old) = customer_with_id(tx, stored.customer)? else {
                    return abort(StoreError::Storage(format!("payment {id} of a missing customer")));
                };
                let mut customer = old.clone();
                tx.payment_index.remove(due_key(was_due, id))?;
                if effect == ResultEffect::Paid {
                    let pending: Vec<u64> = pending_ids(tx, customer.id)?.into_iter().filter(|p| *p != id).collect();
                    set_pending_ids(tx, customer.id, &pending)?;
                } else {
                    tx.payment_index.insert(due_key(stored.payment.date, id), &[])?;
                    count_refusal(&mut customer);
                }
                stored.updated_at = now;
                tx.payments.insert(&id.to_be_bytes(), encode(&stored))?;
                derive_from_pending(tx, &mut customer)?;
                customer.updated_at = now;
                write_customer(tx, Some(&old), &customer)?;
                let result = crm_model::audit::payment_result(&stored.payment, paid);
                super::audit::customer_changed(tx, Some(&old), &customer, Some(result), now)?;
                Ok(stored.payment)
            })
            .await?;
        self.durable().await?;
        Ok(payment)
    }

    async fn mark_payment_sent(&self, id: u64, at: Option<DateTime<Utc>>) -> Result<Option<Payment>, StoreError> {
        let now = Utc::now();
        let payment = self
            .transact(|tx| {
                let mut stored = payment_in(tx, id)?;
                if stored.payment.status != PaymentStatus::Pending {
                    return Ok(None);
                }
                stored.payment.sent_at = at;
                stored.updated_at = now;
                tx.payments.insert(&id.to_be_bytes(), encode(&stored))?;
                let summary = crm_model::audit::payment_sent(&stored.payment, at.is_some());
                super::audit::record(tx, Some(stored.payment.id_client), summary, now)?;
                Ok(Some(stored.payment))
            })
            .await?;
        self.durable().await?;
        Ok(payment)
    }

    async fn reset_refusals(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = Utc::now();
        let record = self
            .transact(|tx| {
                let old = live_customer_in(tx, id_client)?;
                if old.nb_refus == 0 {
                    return Ok(old);
                }
                let mut record = old.clone();
                record.nb_refus = 0;
                record.updated_at = now;
                write_customer(tx, Some(&old), &record)?;
                super::audit::customer_changed(tx, Some(&old), &record, None, now)?;
                Ok(record)
            })
            .await?;
        self.durable().await?;
        Ok(record)
    }
}

impl SledStore {
    fn payments_due_now(&self, due: NaiveDate, after: Option<&str>, limit: usize) -> Result<Page<Payment>, StoreError> {
        let bad = || StoreError::BadCursor(format!("cursor {after:?} is not a cursor of this list"));
        let upper = Bound::Included([due_key(due, u64::MAX)].concat());
        let lower = match after {
            Some(cursor) => {
                let position = hex::decode(cursor).map_err(|_| bad())?;
                if position.len() != 18 {
                    return Err(bad());
                }
                Bound::Excluded([b"d".as_slice(), &position].concat())
            }
            None => Bound::Included(b"d".to_vec()),
        };
        let total = self
            .inner
            .payment_index
            .range::<Vec<u8>, _>((Bound::Included(b"d".to_vec()), upper.clone()))
            .keys()
            .count() as u64;
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        let mut more = false;
        for key in self.inner.payment_index.range::<Vec<u8>, _>((lower, upper)).keys() {
            let key = key.map_err(storage)?;
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(self.payment(keys::decode_u64(&key[key.len() - 8..]))?);
            last = Some(hex::encode(&key[1..]));
        }
        Ok(Page {
            items,
            next_cursor: last.filter(|_| more),
            total,
        })
    }

    fn payment(&self, id: u64) -> Result<Payment, StoreError> {
        match self.inner.payments.get(id.to_be_bytes()).map_err(storage)? {
            Some(bytes) => decode::<PaymentRecord>(&bytes).map(|r| r.payment),
            None => Err(StoreError::Storage(format!("index points to missing payment {id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CustomerStore;

    #[tokio::test]
    async fn replacing_pending_payments_keeps_the_customer_totals_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 * 1024 * 1024).unwrap();
        let created = store
            .create_customer(crm_model::NewCustomer {
                nom: "A".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2020, 1, d).unwrap();
        let now = Utc::now();
        let after_schedule = store
            .transact(|tx| {
                let old = customer_with_id(tx, created.id)?.unwrap();
                let mut record = old.clone();
                schedule_payment(tx, &mut record, day(5), Cents(100), now)?;
                schedule_payment(tx, &mut record, day(3), Cents(50), now)?;
                write_customer(tx, Some(&old), &record)?;
                Ok(record)
            })
            .await
            .unwrap();
        assert_eq!(
            (after_schedule.next_payment, after_schedule.pending_payments),
            (Some(day(3)), Cents(150))
        );

        let replaced = store
            .transact(|tx| {
                let old = customer_with_id(tx, created.id)?.unwrap();
                let mut record = old.clone();
                let new = replace_pending_payments(tx, &mut record, Some((day(9), Cents(7))), now)?;
                write_customer(tx, Some(&old), &record)?;
                Ok((record, new))
            })
            .await
            .unwrap();
        assert_eq!(
            (replaced.0.next_payment, replaced.0.pending_payments),
            (Some(day(9)), Cents(7))
        );
        assert_eq!(replaced.1.map(|p| p.id), Some(3));
        let statuses: Vec<_> = store
            .customer_payments(created.id_client, None, 10)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| p.status)
            .collect();
        assert_eq!(
            statuses,
            [PaymentStatus::Replaced, PaymentStatus::Replaced, PaymentStatus::Pending]
        );
        let due = store.payments_due(day(31), None, 10).await.unwrap();
        assert_eq!(due.items.iter().map(|p| p.id).collect::<Vec<_>>(), [3]);

        let cleared = store
            .transact(|tx| {
                let old = customer_with_id(tx, created.id)?.unwrap();
                let mut record = old.clone();
                replace_pending_payments(tx, &mut record, None, now)?;
                write_customer(tx, Some(&old), &record)?;
                Ok(record)
            })
            .await
            .unwrap();
        assert_eq!((cleared.next_payment, cleared.pending_payments), (None, Cents::ZERO));
    }
}

//! Loyalty in sled: cards, `POST /api/credit` and reading the ledger.

use chrono::Utc;
use crm_model::{CardRef, Cents, CreditItem, CustomerRecord, LedgerCause, LedgerEntry, Page};
use uuid::Uuid;

use super::customers::{live_customer_by_index, live_customer_in, write_customer};
use super::{add_cents, bump_counter, decode, keys, ledger, seq_page, SledStore, Tx, TxResult};
use crate::store::{CreditResult, CustomerStore, LoyaltyStore, StoreError};

/// The last card number handed out by [`LoyaltyStore::issue_card`].
pub(crate) const LAST_ISSUED_CARD: &[u8] = b"last_issued_card";

/// The `idempotency` key of a credit item.
pub(crate) fn credit_key(key: &str) -> Vec<u8> {
    [b"credit:".as_slice(), key.as_bytes()].concat()
}

fn card_ref_index(card: &CardRef) -> Vec<u8> {
    match card {
        CardRef::Card(n) => keys::card_key(*n),
        CardRef::IdClient(id) => keys::id_client_key(*id),
    }
}

impl LoyaltyStore for SledStore {
    async fn issue_card(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = Utc::now();
        let record = self
            .transact(|tx| {
                let old = live_customer_in(tx, id_client)?;
                if old.carte_fid.is_some() {
                    return Ok(old);
                }
                // Skip the numbers already given explicitly (create, PATCH, import), and
                // those the import being written will give.
                let mut card = bump_counter(tx.meta, LAST_ISSUED_CARD, 1)?;
                while tx.index.get(keys::card_key(card))?.is_some()
                    || tx.reserved_for_other(&keys::card_key(card), old.id)
                {
                    card = bump_counter(tx.meta, LAST_ISSUED_CARD, 1)?;
                }
                let mut record = old.clone();
                record.carte_fid = Some(card);
                record.updated_at = now;
                super::tickets::match_pending(tx, Some(&old), &mut record, now)?;
                write_customer(tx, Some(&old), &record)?;
                super::audit::customer_changed(tx, Some(&old), &record, None, now)?;
                Ok(record)
            })
            .await?;
        self.durable().await?;
        Ok(record)
    }

    async fn credit(&self, items: Vec<CreditItem>) -> Result<Vec<CreditResult>, StoreError> {
        let now = Utc::now();
        let results = self
            .transact(|tx| items.iter().map(|item| credit_item(tx, item, now)).collect())
            .await?;
        self.durable().await?;
        Ok(results)
    }

    async fn customer_by_card_ref(&self, card: &CardRef) -> Result<Option<CustomerRecord>, StoreError> {
        let found = match card {
            CardRef::Card(n) => self.customer_by_card(*n).await?,
            CardRef::IdClient(id) => self.customer(*id).await?,
        };
        Ok(found.filter(|r| !r.erased))
    }

    async fn ledger(&self, id_client: Uuid, after: Option<u64>, limit: usize) -> Result<Page<LedgerEntry>, StoreError> {
        let record = self.customer(id_client).await?.ok_or(StoreError::CustomerNotFound)?;
        seq_page(
            &self.inner.ledger,
            &record.id.to_be_bytes(),
            after,
            limit,
            record.ledger_entries,
            |_, value| decode(value),
        )
    }
}

/// Credits one item inside the batch's transaction. A key seen before (in an earlier
/// batch or earlier in this one) credits nothing and answers the current balance.
fn credit_item(tx: &Tx<'_>, item: &CreditItem, now: chrono::DateTime<Utc>) -> TxResult<CreditResult> {
    if let Some(key) = &item.key {
        if let Some(holder) = tx.idempotency.get(credit_key(key))? {
            let balance =
                super::customers::customer_with_id(tx, keys::decode_u64(&holder))?.map_or(Cents::ZERO, |r| r.credit);
            return Ok(CreditResult::Credited { balance });
        }
    }
    let Some(old) = live_customer_by_index(tx, &card_ref_index(&item.card))? else {
        return Ok(CreditResult::UnknownCard);
    };
    let mut record = old.clone();
    let balance = add_cents(old.credit, item.credit(), || format!("Tickets[{}].Montant", item.index))?;
    ledger::append(tx, &mut record, balance, LedgerCause::Credit, item.key.clone(), now)?;
    record.updated_at = now;
    write_customer(tx, Some(&old), &record)?;
    super::audit::customer_changed(tx, Some(&old), &record, None, now)?;
    if let Some(key) = &item.key {
        tx.idempotency.insert(credit_key(key), &record.id.to_be_bytes())?;
    }
    Ok(CreditResult::Credited { balance })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_model::money::MAX_CENTS;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the amounts, a credit lands exactly or is refused whole: a balance
        /// never passes 2^53 - 1 cents, never wraps, and the ledger sums to it.
        #[test]
        fn credits_are_exact_or_refused_whole(
            opening in prop_oneof![0..=1_000u64, (MAX_CENTS - 1_000)..=MAX_CENTS],
            montants in proptest::collection::vec(prop_oneof![0..=4_000u64, (MAX_CENTS - 10)..=MAX_CENTS], 1..6),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store = SledStore::open(dir.path(), 4 * 1024 * 1024).unwrap();
                let customer = store
                    .create_customer(crm_model::NewCustomer {
                        nom: "A".into(),
                        carte_fid: Some(7),
                        opening_credit: Cents(opening),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let mut expected = opening;
                for montant in montants {
                    let item = CreditItem {
                        index: 0,
                        card_as_sent: json!(7),
                        card: CardRef::Card(7),
                        montant: Cents(montant),
                        key: None,
                    };
                    let result = store.credit(vec![item]).await;
                    match expected.checked_add(montant / 2).filter(|sum| *sum <= MAX_CENTS) {
                        Some(sum) => {
                            prop_assert_eq!(result, Ok(vec![CreditResult::Credited { balance: Cents(sum) }]));
                            expected = sum;
                        }
                        None => {
                            let refused = matches!(result, Err(StoreError::AmountOutOfRange { .. }));
                            prop_assert!(refused, "{:?}", result);
                        }
                    }
                }
                let stored = store.customer(customer.id_client).await.unwrap().unwrap();
                prop_assert_eq!(stored.credit, Cents(expected));
                let ledger = store.ledger(customer.id_client, None, 1000).await.unwrap();
                let sum: i128 = ledger.items.iter().map(|e| e.amount as i128).sum();
                prop_assert_eq!(sum, expected as i128);
                Ok(())
            })?;
        }
    }
}

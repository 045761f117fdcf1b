//! The credit ledger inside customer transactions: every change of `Credit` goes
//! through [`append`], which stores the entry [`crm_model::loyalty::move_credit`] makes.

use chrono::{DateTime, Utc};
use crm_model::loyalty::move_credit;
use crm_model::{Cents, CustomerRecord, LedgerCause, LedgerEntry};

use super::{encode_compact, Tx, TxResult};

/// The ledger key of a customer's `seq`-th entry: customer id then entry number, so a
/// customer's ledger is one range.
pub fn entry_key(customer_id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&customer_id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Moves `record`'s credit to `new_balance` and stores the ledger entry that says why.
/// The caller writes the record (and its indexes) in the same transaction.
pub fn append(
    tx: &Tx<'_>,
    record: &mut CustomerRecord,
    new_balance: Cents,
    cause: LedgerCause,
    key: Option<String>,
    at: DateTime<Utc>,
) -> TxResult<LedgerEntry> {
    let entry = move_credit(record, new_balance, cause, key, at);
    store_entry(tx, record, &entry)?;
    Ok(entry)
}

/// Stores an entry of `record`'s ledger made by the model (see [`append`]).
pub fn store_entry(tx: &Tx<'_>, record: &CustomerRecord, entry: &LedgerEntry) -> TxResult<()> {
    tx.ledger
        .insert(&entry_key(record.id, entry.seq), encode_compact(entry))?;
    Ok(())
}

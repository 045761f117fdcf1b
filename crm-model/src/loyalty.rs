//! Loyalty credit: the ledger of every movement of a customer's credit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// Why a customer's credit moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LedgerCause {
    /// The credit a customer was created or imported with.
    Opening,
    /// A ticket of `POST /api/credit`.
    Credit,
    /// A purchase ticket ingested through `/api/v1/tickets`.
    Ticket,
    /// An import row that set the balance of an existing customer.
    ImportAdjustment,
}

/// One movement of a customer's credit. The entries of a customer always sum to its
/// `Credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    /// Position in the customer's ledger, from 1.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Signed amount in cents (an import adjustment may lower the balance).
    pub amount: i64,
    /// The balance after this entry.
    pub balance: Cents,
    pub cause: LedgerCause,
    /// Idempotency key (ticket id, item id, batch key), when the source gave one.
    #[serde(default)]
    pub key: Option<String>,
}

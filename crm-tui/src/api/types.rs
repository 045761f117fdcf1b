//! JSON shapes of the routes the client calls that `crm-model` does not already define.
//!
//! Tickets, ledger entries and scheduled payments have the server's shapes (checked
//! against the real server by `tests/tests/end_to_end/tui.rs`) but are read leniently
//! (`#[serde(default)]`), so that a key missing from an older server degrades one cell
//! of the screen rather than the whole list.

use std::fmt;

use chrono::NaiveDate;
use crm_model::{Cents, Sexe};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// One bad row of an import file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub row: u64,
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub error: String,
}

/// Body of `POST /api/create_customer`, in the spelling of the contract's customer object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewCustomerRequest {
    #[serde(rename = "Nom")]
    pub nom: String,
    #[serde(rename = "Prenom")]
    pub prenom: String,
    #[serde(rename = "Email")]
    pub email: String,
    #[serde(rename = "Phone")]
    pub phone: String,
    #[serde(rename = "Age")]
    pub age: Option<u8>,
    #[serde(rename = "Sexe")]
    pub sexe: Sexe,
    #[serde(rename = "Compte")]
    pub compte: String,
}

/// Body of `PATCH /api/v1/customers/<IdClient>`: only the fields that changed are sent.
/// `age: Some(None)` clears the age (sent as `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerChanges {
    #[serde(rename = "Nom", skip_serializing_if = "Option::is_none")]
    pub nom: Option<String>,
    #[serde(rename = "Prenom", skip_serializing_if = "Option::is_none")]
    pub prenom: Option<String>,
    #[serde(rename = "Email", skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "Phone", skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(rename = "Compte", skip_serializing_if = "Option::is_none")]
    pub compte: Option<String>,
    #[serde(rename = "Age", skip_serializing_if = "Option::is_none")]
    pub age: Option<Option<u8>>,
    #[serde(rename = "Sexe", skip_serializing_if = "Option::is_none")]
    pub sexe: Option<Sexe>,
}

impl CustomerChanges {
    pub fn is_empty(&self) -> bool {
        *self == CustomerChanges::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ImportMode {
    /// Rows update matching customers and create the others.
    #[default]
    Merge,
    /// As merge, then every customer absent from the file is erased.
    Replace,
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::Merge => "merge",
            ImportMode::Replace => "replace",
        }
    }
}

/// How to run one import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ImportRequest {
    pub mode: ImportMode,
    /// Check the file and say what would happen; write nothing.
    pub dry_run: bool,
    /// Import the valid rows and list the invalid ones (merge only); otherwise any
    /// invalid row refuses the whole file.
    pub skip_invalid: bool,
}

/// Answer of `POST /api/update_db` (also of its dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub unchanged: u64,
    /// Customers erased (`mode=replace`) because absent from the file.
    #[serde(default)]
    pub erased: u64,
    /// The bad rows; with `skip_invalid`, those left out of the import.
    #[serde(default)]
    pub errors: Vec<RowError>,
    /// With `skip_invalid`: how many invalid rows were left out.
    #[serde(default)]
    pub skipped: u64,
    /// Rows with neither IdClient nor Email, which importing the file again would
    /// create again.
    #[serde(default)]
    pub unmatchable: u64,
}

impl ImportSummary {
    /// The warning for its rows that no import can match to a stored customer.
    pub fn unmatchable_warning(&self) -> Option<String> {
        crm_model::import::unmatchable_warning(self.unmatchable)
    }
}

/// How far an upload has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    pub sent: u64,
    pub total: u64,
}

/// How far the server is with the import it runs (`GET /api/v1/imports/current`):
/// the stage (`reading`, `checking`, `writing`, `erasing`) and its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ServerImportProgress {
    pub phase: String,
    pub done: u64,
    pub total: Option<u64>,
}

/// Answer of `POST /api/allow_credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditDecision {
    #[serde(rename = "idClient")]
    pub id_client: String,
    #[serde(rename = "Allowed")]
    pub allowed: bool,
}

/// How a customer is named in `GET /api/credit/<carteFid>`: card number or `IdClient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerKey {
    Card(u64),
    Id(Uuid),
}

impl CustomerKey {
    /// Reads what staff type: digits are a card number, a UUID an `IdClient`.
    pub fn parse(text: &str) -> Option<CustomerKey> {
        let text = text.trim();
        if let Ok(card) = text.parse::<u64>() {
            return Some(CustomerKey::Card(card));
        }
        Uuid::parse_str(text).ok().map(CustomerKey::Id)
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerKey::Card(card) => write!(f, "{card}"),
            CustomerKey::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Answer of `GET /api/credit/<carteFid>`; `carteFid` echoes the key asked for, a
/// number or an `IdClient`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreditBalance {
    #[serde(rename = "carteFid", deserialize_with = "number_or_string")]
    pub carte_fid: String,
    #[serde(rename = "Credit")]
    pub credit: Cents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentOutcome {
    Ok,
    Error,
}

impl PaymentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentOutcome::Ok => "OK",
            PaymentOutcome::Error => "ERROR",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentOutcome> {
        match text.trim().to_ascii_uppercase().as_str() {
            "OK" => Some(PaymentOutcome::Ok),
            "ERROR" => Some(PaymentOutcome::Error),
            _ => None,
        }
    }
}

/// A ticket (contract section 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Ticket {
    #[serde(deserialize_with = "number_or_string")]
    pub id: String,
    pub uid: String,
    /// RFC 3339; empty when the source's date was unreadable (`null`).
    #[serde(deserialize_with = "number_or_string")]
    pub date: String,
    pub prix: Cents,
    pub client: String,
    #[serde(rename = "CarteFid")]
    pub carte_fid: Option<u64>,
    #[serde(rename = "pointsFidelite")]
    pub points_fidelite: u64,
    #[serde(rename = "modePaiement")]
    pub mode_paiement: String,
    pub origin: String,
    pub articles: Vec<Article>,
    /// Its client (or card) is not a customer yet: stored, credited nothing so far.
    pub unmatched: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Article {
    #[serde(rename = "codeProduit")]
    pub code_produit: String,
    #[serde(rename = "prixAvant")]
    pub prix_avant: Cents,
    #[serde(rename = "prixApres")]
    pub prix_apres: Cents,
    pub quantity: u64,
}

/// One entry of the audit trail (`GET /api/v1/audit`): who changed what, when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339 date-time.
    pub at: String,
    /// The token's name, `local` or `scheduler`.
    pub actor: String,
    pub route: String,
    /// What changed: field names and amounts.
    pub summary: String,
}

/// One credit movement of a customer's ledger: `{seq, at, amount, balance, cause, key}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LedgerEntry {
    /// Position in the customer's ledger, from 1.
    pub seq: u64,
    /// RFC 3339 date-time.
    pub at: String,
    /// Signed movement in cents.
    pub amount: i64,
    /// `opening`, `credit`, `ticket` or `import_adjustment`.
    pub cause: String,
    /// The balance after the movement.
    pub balance: Option<i64>,
    /// The idempotency key of the movement (ticket uid, credit item id), if any.
    pub key: Option<String>,
}

/// A scheduled deferred payment (contract section 6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ScheduledPayment {
    #[serde(deserialize_with = "number_or_string")]
    pub id: String,
    #[serde(rename = "IdClient")]
    pub id_client: String,
    #[serde(rename = "Montant")]
    pub montant: Cents,
    #[serde(rename = "Date")]
    pub date: Option<NaiveDate>,
    pub status: String,
    pub attempts: u32,
}

/// Ids that the contract leaves untyped (ticket numbers, payment ids, echoed card keys)
/// are kept as text whether the server writes them as numbers or strings.
fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Ok(text),
        serde_json::Value::Number(number) => Ok(number.to_string()),
        serde_json::Value::Null => Ok(String::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a number or a string, not {other}"
        ))),
    }
}

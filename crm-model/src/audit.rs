//! The audit trail: who changed what, when, through which route.
//!
//! The store writes an [`AuditEntry`] in the same atomic write as the change it records.
//! Summaries name the fields that changed and the amounts that moved, never the values
//! of personal fields: the trail is kept after a customer's personal data is erased, so
//! it must not keep a copy of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Cents, CustomerRecord, ImportMode, ImportReport, Payment};

/// Who asks for a write, and through which route: carried by the store handle that
/// makes the write (see the server's `acting_for`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteOrigin {
    /// The token's name, `local` without tokens (or from the command line),
    /// `scheduler` for the server's own runs.
    pub actor: String,
    /// The route pattern (`PATCH /api/v1/customers/{}`), or what ran the write
    /// (`crm-server import`, `scheduler payment run`).
    pub route: String,
}

impl WriteOrigin {
    pub fn new(actor: impl Into<String>, route: impl Into<String>) -> WriteOrigin {
        WriteOrigin {
            actor: actor.into(),
            route: route.into(),
        }
    }

    /// A write made on this machine without a request (the command line).
    pub fn local(route: impl Into<String>) -> WriteOrigin {
        WriteOrigin::new(LOCAL_ACTOR, route)
    }

    /// A write made by the server's own scheduler.
    pub fn scheduler(route: impl Into<String>) -> WriteOrigin {
        WriteOrigin::new(SCHEDULER_ACTOR, route)
    }
}

impl Default for WriteOrigin {
    /// A write whose caller said nothing: made on this machine, by no route.
    fn default() -> WriteOrigin {
        WriteOrigin::local("-")
    }
}

/// The actor of writes made without tokens, or from the command line.
pub const LOCAL_ACTOR: &str = "local";
/// The actor of the scheduler's payment runs and ticket pulls.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Position in the trail, from 1, never reused: the paging cursor.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The token's name, `local` or `scheduler`.
    pub actor: String,
    /// The route pattern of the request, or what ran the write.
    pub route: String,
    /// The customer the write changed, when it changed one.
    #[serde(rename = "IdClient")]
    pub id_client: Option<Uuid>,
    /// What changed: field names and amounts, no personal values.
    pub summary: String,
}

impl AuditEntry {
    pub fn new(
        seq: u64,
        at: DateTime<Utc>,
        origin: &WriteOrigin,
        id_client: Option<Uuid>,
        summary: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            seq,
            at,
            actor: origin.actor.clone(),
            route: origin.route.clone(),
            id_client,
            summary: summary.into(),
        }
    }
}

/// How a summary reads one field of a customer.
type FieldReader = fn(&CustomerRecord) -> String;

/// The API fields of a customer that a write can change, with how to read each: named
/// in summaries by their API names.
const FIELDS: &[(&str, FieldReader)] = &[
    ("Nom", |r| r.nom.clone()),
    ("Prenom", |r| r.prenom.clone()),
    ("Email", |r| r.email.clone()),
    ("Phone", |r| r.phone.clone()),
    ("Compte", |r| r.compte.clone()),
    ("Age", |r| format!("{:?}", r.age)),
    ("Sexe", |r| r.sexe.as_str().to_string()),
];

/// A signed amount of cents as `+4,20 €` / `-4,20 €`.
fn signed(amount: i128) -> String {
    let sign = if amount < 0 { '-' } else { '+' };
    format!("{sign}{}", Cents(amount.unsigned_abs() as u64).to_euros())
}

/// What a write did to a customer, from the record before (`None`: created) and after;
/// `None` when nothing an auditor cares about changed.
pub fn customer_change(before: Option<&CustomerRecord>, after: &CustomerRecord) -> Option<String> {
    let mut parts = Vec::new();
    let Some(before) = before else {
        let set: Vec<&str> = FIELDS
            .iter()
            .filter(|(_, read)| !read(after).is_empty() && read(after) != "None")
            .map(|(name, _)| *name)
            .collect();
        parts.push(if set.is_empty() {
            "created".to_string()
        } else {
            format!("created with {}", set.join(", "))
        });
        if after.carte_fid.is_some() {
            parts.push("card given".into());
        }
        if after.credit > Cents::ZERO {
            parts.push(format!("credit {}", after.credit.to_euros()));
        }
        if after.pending_payments > Cents::ZERO {
            parts.push(format!("payment scheduled {}", after.pending_payments.to_euros()));
        }
        return Some(parts.join("; "));
    };
    if after.erased && !before.erased {
        return Some("personal data erased".into());
    }
    let changed: Vec<&str> = FIELDS
        .iter()
        .filter(|(_, read)| read(before) != read(after))
        .map(|(name, _)| *name)
        .collect();
    if !changed.is_empty() {
        parts.push(format!("changed {}", changed.join(", ")));
    }
    match (before.carte_fid, after.carte_fid) {
        (None, Some(_)) => parts.push("card issued".into()),
        (Some(_), None) => parts.push("card withdrawn".into()),
        (Some(a), Some(b)) if a != b => parts.push("card changed".into()),
        _ => {}
    }
    if after.ticket_count != before.ticket_count {
        let tickets = after.ticket_count.abs_diff(before.ticket_count);
        parts.push(format!("{tickets} ticket{}", if tickets == 1 { "" } else { "s" }));
    }
    if after.credit != before.credit {
        parts.push(format!(
            "credit {} (balance {})",
            signed(after.credit.0 as i128 - before.credit.0 as i128),
            after.credit.to_euros()
        ));
    }
    if after.pending_payments != before.pending_payments {
        parts.push(format!(
            "pending payments {} (total {})",
            signed(after.pending_payments.0 as i128 - before.pending_payments.0 as i128),
            after.pending_payments.to_euros()
        ));
    }
    if after.nb_refus != before.nb_refus {
        parts.push(format!("NbRefus {} -> {}", before.nb_refus, after.nb_refus));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// An import as one entry: its mode and counts, not one entry per row.
pub fn import_summary(mode: ImportMode, report: &ImportReport) -> String {
    let mode = match mode {
        ImportMode::Merge => "merge",
        ImportMode::Replace => "replace",
    };
    let mut summary = format!(
        "import ({mode}): {} created, {} updated, {} unchanged, {} erased",
        report.created, report.updated, report.unchanged, report.erased
    );
    if report.skipped > 0 {
        summary.push_str(&format!(", {} invalid rows skipped", report.skipped));
    }
    summary
}

/// A payment scheduled by a credit authorisation.
pub fn payment_scheduled(payment: &Payment) -> String {
    format!(
        "payment {} of {} scheduled for {}",
        payment.id,
        payment.montant.to_euros(),
        payment.date
    )
}

/// The payment service's answer for a payment, recorded.
pub fn payment_result(payment: &Payment, paid: bool) -> String {
    if paid {
        format!("payment {} of {} paid", payment.id, payment.montant.to_euros())
    } else {
        format!(
            "payment {} of {} refused (attempt {}), due {}",
            payment.id,
            payment.montant.to_euros(),
            payment.attempts,
            payment.date
        )
    }
}

/// A payment marked sent to the payment service (`sent`), or unmarked.
pub fn payment_sent(payment: &Payment, sent: bool) -> String {
    if sent {
        format!("payment {} sent to the payment service", payment.id)
    } else {
        format!("payment {} not sent after all", payment.id)
    }
}

/// A ticket consumer's cursor moved.
pub fn consumer_advanced(name: &str, from: u64, to: u64) -> String {
    format!("consumer {name} cursor {from} -> {to}")
}

/// A batch of tickets stored (the credited customers have entries of their own).
pub fn tickets_stored(stored: u64, duplicates: u64) -> String {
    format!("{stored} tickets stored, {duplicates} duplicates skipped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewCustomer, PaymentStatus};

    fn record() -> CustomerRecord {
        NewCustomer {
            nom: "Lefèvre".into(),
            prenom: "Léa".into(),
            email: "lea@example.fr".into(),
            ..Default::default()
        }
        .into_record(1, Uuid::nil(), Utc::now())
    }

    #[test]
    fn a_creation_names_the_fields_set_and_the_money_not_the_values() {
        let mut created = record();
        created.credit = Cents(1_000);
        let summary = customer_change(None, &created).unwrap();
        assert_eq!(summary, "created with Nom, Prenom, Email; credit 10,00\u{a0}€");
        assert!(!summary.contains("lea@"), "{summary}");
    }

    #[test]
    fn a_change_names_the_fields_and_how_much_credit_moved() {
        let before = record();
        let mut after = before.clone();
        after.email = "other@example.fr".into();
        after.phone = "0600000000".into();
        after.credit = Cents(250);
        let summary = customer_change(Some(&before), &after).unwrap();
        assert_eq!(
            summary,
            "changed Email, Phone; credit +2,50\u{a0}€ (balance 2,50\u{a0}€)"
        );
        assert!(!summary.contains("other@") && !summary.contains("0600"), "{summary}");
    }

    #[test]
    fn cards_refusals_erasure_and_no_change() {
        let before = record();
        assert_eq!(customer_change(Some(&before), &before), None);
        let mut carded = before.clone();
        carded.carte_fid = Some(42);
        assert_eq!(customer_change(Some(&before), &carded).as_deref(), Some("card issued"));
        let mut refused = before.clone();
        refused.nb_refus = 2;
        assert_eq!(
            customer_change(Some(&refused), &before).as_deref(),
            Some("NbRefus 2 -> 0")
        );
        let mut erased = carded.clone();
        erased.erase_personal_data(Utc::now());
        assert_eq!(
            customer_change(Some(&carded), &erased).as_deref(),
            Some("personal data erased")
        );
        let mut lowered = before.clone();
        lowered.credit = Cents(500);
        assert_eq!(
            customer_change(Some(&lowered), &before).as_deref(),
            Some("credit -5,00\u{a0}€ (balance 0,00\u{a0}€)")
        );
    }

    #[test]
    fn imports_and_payments_are_summarised_with_counts_and_amounts() {
        let report = ImportReport {
            created: 3,
            updated: 1,
            unchanged: 2,
            ..Default::default()
        };
        assert_eq!(
            import_summary(ImportMode::Merge, &report),
            "import (merge): 3 created, 1 updated, 2 unchanged, 0 erased"
        );
        let payment = Payment {
            id: 7,
            id_client: Uuid::nil(),
            montant: Cents(12_000),
            date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            status: PaymentStatus::Paid,
            attempts: 0,
            sent_at: None,
        };
        assert_eq!(payment_result(&payment, true), "payment 7 of 120,00\u{a0}€ paid");
        assert_eq!(
            payment_scheduled(&payment),
            "payment 7 of 120,00\u{a0}€ scheduled for 2026-01-02"
        );
        assert_eq!(consumer_advanced("bi", 0, 5), "consumer bi cursor 0 -> 5");
    }

    #[test]
    fn an_origin_names_the_actor() {
        assert_eq!(WriteOrigin::default().actor, "local");
        assert_eq!(WriteOrigin::scheduler("scheduler payment run").actor, "scheduler");
    }
}

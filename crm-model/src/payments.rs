//! Deferred payments: scheduled by `allow_credit` (and imports), settled by the payment
//! service one result at a time.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::customer::CustomerRecord;
use crate::input::parse_date;
use crate::money::{AmountOutOfRange, Cents};
use crate::validation::{json_type_name, parse_json_object, FieldError, InputError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PaymentStatus {
    /// Scheduled, not yet paid: counts in the customer's `Montant`.
    Pending,
    Paid,
    /// Replaced by an import row that scheduled the customer's payments anew.
    Replaced,
}

/// A deferred payment, as `/api/v1` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    pub id: u64,
    #[serde(rename = "IdClient")]
    pub id_client: Uuid,
    /// Amount, cents.
    #[serde(rename = "Montant")]
    pub montant: Cents,
    /// Due date; moved one day later by each refusal.
    #[serde(rename = "Date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: NaiveDate,
    pub status: PaymentStatus,
    /// Refused attempts so far.
    pub attempts: u32,
    /// When a payment run sent it to the payment service without a definite answer
    /// yet: the next run sends the same payment again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

/// What the store keeps of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment: Payment,
    /// The customer's sequence number.
    pub customer: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// A payment of `montant` due on `date`, scheduled now: pending, never tried.
    pub fn scheduled(id: u64, id_client: Uuid, date: NaiveDate, montant: Cents) -> Payment {
        Payment {
            id,
            id_client,
            montant,
            date,
            status: PaymentStatus::Pending,
            attempts: 0,
            sent_at: None,
        }
    }

    /// Whether an import row's payment may replace this one: a payment sent to the
    /// payment service without a definite answer yet stays pending, because it may have
    /// been charged and its answer must still find it.
    pub fn replaceable(&self) -> bool {
        self.status == PaymentStatus::Pending && self.sent_at.is_none()
    }
}

/// A customer's `Date_paiement` (the earliest due date) and `Montant` (the sum of the
/// amounts) from its pending payments.
pub fn pending_totals<'a>(
    pending: impl IntoIterator<Item = &'a Payment>,
) -> Result<(Option<NaiveDate>, Cents), AmountOutOfRange> {
    let mut next = None::<NaiveDate>;
    let mut total = Cents::ZERO;
    for payment in pending {
        next = Some(next.map_or(payment.date, |d| d.min(payment.date)));
        total = total.bounded_add(payment.montant, || "Montant".into())?;
    }
    Ok((next, total))
}

/// What the payment service's answer does to a payment (see [`record_result`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultEffect {
    /// An OK for a payment already paid (the service may send its OK twice): nothing
    /// changes.
    Repeated,
    /// An OK for a payment an import replaced while its answer was awaited: the money
    /// was taken all the same, so it is paid; it was no longer among the customer's
    /// pending payments, so the customer does not change.
    PaidAfterReplace,
    /// Paid: it leaves the customer's pending payments.
    Paid,
    /// Refused: due one day later, one attempt more, and one refusal more for the
    /// customer ([`count_refusal`]).
    Refused,
}

/// Applies the payment service's answer (`paid` or refused) to `payment`; a payment
/// the answer cannot apply to answers its status instead (nothing changed).
pub fn record_result(payment: &mut Payment, paid: bool) -> Result<ResultEffect, PaymentStatus> {
    let effect = match (payment.status, paid) {
        (PaymentStatus::Paid, true) => return Ok(ResultEffect::Repeated),
        (PaymentStatus::Replaced, true) => ResultEffect::PaidAfterReplace,
        (PaymentStatus::Pending, true) => ResultEffect::Paid,
        (PaymentStatus::Pending, false) => ResultEffect::Refused,
        (status, _) => return Err(status),
    };
    if effect == ResultEffect::Refused {
        payment.attempts += 1;
        payment.date = payment.date.succ_opt().unwrap_or(payment.date);
    } else {
        payment.status = PaymentStatus::Paid;
    }
    payment.sent_at = None;
    Ok(effect)
}

/// One refusal more for a customer whose payment was refused: at `refusal_limit`
/// refusals, it is refused credit ([`credit_allowed`]) until they are reset.
pub fn count_refusal(customer: &mut CustomerRecord) {
    customer.nb_refus = customer.nb_refus.saturating_add(1);
}

/// Whether a customer with `nb_refus` refusals may take credit under `refusal_limit`.
pub fn credit_allowed(nb_refus: u32, refusal_limit: u32) -> bool {
    nb_refus < refusal_limit
}

/// The body of `POST /api/allow_credit`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowCredit {
    pub id_client: Uuid,
    pub montant: Cents,
    pub date: NaiveDate,
}

impl AllowCredit {
    /// Reads `{"idClient", "Montant", "Date"}`. The `idClient` as sent (when it was a
    /// string) is answered even when the body is refused, so it is returned beside.
    pub fn parse(body: &[u8]) -> (Option<String>, Result<AllowCredit, InputError>) {
        let object = match parse_json_object(body) {
            Ok(o) => o,
            Err(e) => return (None, Err(e)),
        };
        let raw_id = ["idClient", "IdClient"].iter().find_map(|k| object.get(*k));
        let sent = raw_id.and_then(Value::as_str).map(str::to_string);
        let mut errors = Vec::new();
        let id_client = match raw_id {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(Value::String(s)) => Uuid::parse_str(s.trim()).map_err(|_| format!("{s:?} is not a UUID")),
            Some(other) => Err(format!("must be a UUID string, not {}", json_type_name(other))),
        }
        .map_err(|e| errors.push(FieldError::new("idClient", e)));
        let montant = match object.get("Montant").or_else(|| object.get("montant")) {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(v) => Cents::from_json(v).and_then(|c| {
                if c > Cents::ZERO {
                    Ok(c)
                } else {
                    Err("must be more than 0".into())
                }
            }),
        }
        .map_err(|e| errors.push(FieldError::new("Montant", e)));
        let date = match object.get("Date").or_else(|| object.get("date")) {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(Value::String(s)) => parse_date(s),
            Some(other) => Err(format!("must be a YYYY-MM-DD date, not {}", json_type_name(other))),
        }
        .map_err(|e| errors.push(FieldError::new("Date", e)));
        let parsed = match (id_client, montant, date) {
            (Ok(id_client), Ok(montant), Ok(date)) => Ok(AllowCredit {
                id_client,
                montant,
                date,
            }),
            _ => Err(InputError::Invalid(errors)),
        };
        (sent, parsed)
    }
}

/// What the payment service answered to one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Paid,
    /// A definite `ERROR`: a refusal.
    Refused(String),
    /// Anything else: the payment may or may not have been charged.
    Uncertain(String),
}

/// Reads the payment service's answer `{"status": "OK"|"ERROR", "message": "..."}`.
/// Only a definite `ERROR` is a refusal; an answer that cannot be read is uncertain.
pub fn parse_payment_service_answer(body: &[u8]) -> PaymentOutcome {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        return PaymentOutcome::Uncertain(format!("unreadable answer {start:?}"));
    };
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match answer.get("status").and_then(Value::as_str).map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("OK") => PaymentOutcome::Paid,
        Some(s) if s.eq_ignore_ascii_case("ERROR") => PaymentOutcome::Refused(message),
        other => PaymentOutcome::Uncertain(format!("status {other:?}: {message}")),
    }
}

/// Reads the scheduler's simulated time, a JSON string `"07/01/2019-01:00:00"` (day,
/// month, year), as its date. ISO dates are read too.
pub fn parse_scheduler_clock(body: &[u8]) -> Result<NaiveDate, String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(s)) => s,
        _ => String::from_utf8_lossy(body).trim().trim_matches('"').to_string(),
    };
    let day = text.trim().split(['-', ' ', 'T']).next().unwrap_or_default();
    NaiveDate::parse_from_str(day, "%d/%m/%Y")
        .or_else(|_| parse_date(text.trim().get(..10).unwrap_or_default()))
        .map_err(|_| format!("the scheduler's time {text:?} is not a DD/MM/YYYY-HH:MM:SS time"))
}

/// Reads `{"status": "OK"|"ERROR"}`: `true` when paid. Anything but `OK` is a refusal.
pub fn parse_payment_result(body: &[u8]) -> Result<bool, InputError> {
    let object = parse_json_object(body)?;
    match object.get("status") {
        Some(Value::String(s)) => Ok(s.trim().eq_ignore_ascii_case("OK")),
        Some(other) => Err(InputError::field(
            "status",
            format!("must be \"OK\" or \"ERROR\", not {}", json_type_name(other)),
        )),
        None => Err(InputError::field("status", "is required (\"OK\" or \"ERROR\")")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, d).unwrap()
    }

    #[test]
    fn a_refusal_moves_the_due_date_a_day_and_a_payment_is_paid_once() {
        let mut payment = Payment::scheduled(1, Uuid::nil(), day(31), Cents(500));
        payment.sent_at = Some(Utc::now());
        assert!(!payment.replaceable(), "sent, awaiting its answer");
        assert_eq!(record_result(&mut payment, false), Ok(ResultEffect::Refused));
        assert_eq!(
            (payment.date, payment.attempts, payment.sent_at),
            (day(31).succ_opt().unwrap(), 1, None)
        );
        assert_eq!(payment.status, PaymentStatus::Pending);
        assert!(payment.replaceable());
        assert_eq!(record_result(&mut payment, true), Ok(ResultEffect::Paid));
        assert_eq!(payment.status, PaymentStatus::Paid);
        assert_eq!(record_result(&mut payment, true), Ok(ResultEffect::Repeated));
        assert_eq!(record_result(&mut payment, false), Err(PaymentStatus::Paid));
        assert_eq!(payment.attempts, 1, "a refusal after the payment changes nothing");
    }

    #[test]
    fn a_replaced_payment_can_still_be_paid_but_not_refused() {
        let mut payment = Payment::scheduled(1, Uuid::nil(), day(2), Cents(5));
        payment.status = PaymentStatus::Replaced;
        let before = payment.clone();
        assert_eq!(record_result(&mut payment, false), Err(PaymentStatus::Replaced));
        assert_eq!(payment, before);
        assert_eq!(record_result(&mut payment, true), Ok(ResultEffect::PaidAfterReplace));
        assert_eq!(payment.status, PaymentStatus::Paid);
    }

    #[test]
    fn pending_totals_are_the_earliest_date_and_the_sum() {
        let payments = [
            Payment::scheduled(1, Uuid::nil(), day(5), Cents(100)),
            Payment::scheduled(2, Uuid::nil(), day(3), Cents(50)),
        ];
        assert_eq!(pending_totals(&payments), Ok((Some(day(3)), Cents(150))));
        assert_eq!(pending_totals(&[]), Ok((None, Cents::ZERO)));
        let huge = [
            Payment::scheduled(1, Uuid::nil(), day(5), Cents(crate::money::MAX_CENTS)),
            Payment::scheduled(2, Uuid::nil(), day(3), Cents(1)),
        ];
        assert_eq!(pending_totals(&huge).unwrap_err().field, "Montant");
    }

    #[test]
    fn refusals_count_up_to_the_limit() {
        let mut customer = crate::NewCustomer::default().into_record(1, Uuid::nil(), Utc::now());
        for _ in 0..3 {
            assert!(credit_allowed(customer.nb_refus, 3));
            count_refusal(&mut customer);
        }
        assert!(!credit_allowed(customer.nb_refus, 3));
    }

    #[test]
    fn the_documents_body_is_read_with_a_string_amount_too() {
        let (sent, parsed) = AllowCredit::parse(
            br#"{"idClient": "a14e39ce-e29e-11e9-a8cb-08002751d198", "Montant": "36000", "Date": "2019-12-06"}"#,
        );
        let parsed = parsed.unwrap();
        assert_eq!(sent.as_deref(), Some("a14e39ce-e29e-11e9-a8cb-08002751d198"));
        assert_eq!(parsed.montant, Cents(36000));
        assert_eq!(parsed.date, NaiveDate::from_ymd_opt(2019, 12, 6).unwrap());
    }

    #[test]
    fn every_bad_field_is_listed_and_the_sent_id_kept() {
        let (sent, parsed) = AllowCredit::parse(br#"{"idClient": "nope", "Montant": 0, "Date": "2019-02-30"}"#);
        assert_eq!(sent.as_deref(), Some("nope"));
        let InputError::Invalid(errors) = parsed.unwrap_err() else {
            panic!()
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["idClient", "Montant", "Date"]);
        assert!(matches!(AllowCredit::parse(b"nope").1, Err(InputError::Unreadable(_))));
        let (_, parsed) = AllowCredit::parse(br#"{"Montant": -5}"#);
        assert!(matches!(parsed, Err(InputError::Invalid(e)) if e.len() == 3));
    }

    #[test]
    fn refusal_limit_rule() {
        assert!(credit_allowed(0, 1));
        assert!(!credit_allowed(1, 1));
        assert!(credit_allowed(2, 3));
        assert!(!credit_allowed(0, 0));
    }

    #[test]
    fn the_payment_services_answer_is_paid_refused_or_uncertain() {
        assert_eq!(
            parse_payment_service_answer(br#"{"status": "OK", "message": "done"}"#),
            PaymentOutcome::Paid
        );
        assert_eq!(
            parse_payment_service_answer(br#"{"status": "ERROR", "message": "no funds"}"#),
            PaymentOutcome::Refused("no funds".into())
        );
        for uncertain in [&b"<html>502</html>"[..], b"{}", br#"{"status": "PENDING"}"#, b"[]"] {
            assert!(matches!(
                parse_payment_service_answer(uncertain),
                PaymentOutcome::Uncertain(_)
            ));
        }
    }

    #[test]
    fn the_schedulers_clock_is_day_month_year() {
        let day = NaiveDate::from_ymd_opt(2019, 1, 7).unwrap();
        assert_eq!(parse_scheduler_clock(br#""07/01/2019-01:00:00""#), Ok(day));
        assert_eq!(parse_scheduler_clock(br#""07/01/2019""#), Ok(day));
        assert_eq!(parse_scheduler_clock(br#""2019-01-07""#), Ok(day));
        for bad in [&b"\"31/02/2019-01:00:00\""[..], b"", b"42", br#""tomorrow""#] {
            assert!(parse_scheduler_clock(bad).is_err());
        }
    }

    #[test]
    fn result_ok_is_paid_anything_else_a_refusal() {
        assert_eq!(parse_payment_result(br#"{"status": "OK"}"#), Ok(true));
        assert_eq!(parse_payment_result(br#"{"status": "ERROR"}"#), Ok(false));
        assert_eq!(parse_payment_result(br#"{"status": "DECLINED"}"#), Ok(false));
        assert!(matches!(parse_payment_result(br#"{}"#), Err(InputError::Invalid(_))));
        assert!(matches!(
            parse_payment_result(br#"{"status": 1}"#),
            Err(InputError::Invalid(_))
        ));
    }
}

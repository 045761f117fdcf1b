//! Loyalty credit: the ledger of every movement of a customer's credit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::customer::CustomerRecord;
use crate::money::{Cents, MAX_CENTS};
use crate::validation::{json_type_name, parse_json_object, quoted, ErrorList, FieldError, InputError};

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
/// `Credit`. Stored compact by the embedded store, like `CustomerRecord`: a change of
/// fields needs a new layout version there.
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

/// Moves `record`'s credit to `new_balance` and answers the ledger entry that records
/// it: the next entry number, the signed amount from the old balance to the new, why.
/// Every change of a balance goes through here, so that a customer's entries always
/// sum to its balance; the store stores the entry with the record, atomically.
pub fn move_credit(
    record: &mut CustomerRecord,
    new_balance: Cents,
    cause: LedgerCause,
    key: Option<String>,
    at: DateTime<Utc>,
) -> LedgerEntry {
    // Both balances are at most 2^53 - 1: the difference fits an i64.
    let amount = new_balance.0 as i64 - record.credit.0 as i64;
    record.ledger_entries += 1;
    record.credit = new_balance;
    LedgerEntry {
        seq: record.ledger_entries,
        at,
        amount,
        balance: new_balance,
        cause,
        key,
    }
}

/// How `POST /api/credit` names a card holder: the card number, or (older clients) the
/// customer's `IdClient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardRef {
    Card(u64),
    IdClient(Uuid),
}

impl CardRef {
    /// Reads a card reference: a positive integer (or its digits as text) or a UUID.
    pub fn parse(value: &Value) -> Result<CardRef, String> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .filter(|n| (1..=MAX_CENTS).contains(n))
                .map(CardRef::Card)
                .ok_or_else(|| "must be a positive card number or an IdClient".to_string()),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<u64>() {
                    return CardRef::parse(&Value::from(n));
                }
                Uuid::parse_str(s)
                    .map(CardRef::IdClient)
                    .map_err(|_| format!("{} is neither a card number nor an IdClient", quoted(s)))
            }
            other => Err(format!(
                "must be a card number or an IdClient, not {}",
                json_type_name(other)
            )),
        }
    }
}

/// One item of a `POST /api/credit` batch, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditItem {
    /// Position in the batch as sent, from 0 (anonymous items included).
    pub index: usize,
    /// The `carteFid` as sent, echoed in the answer.
    pub card_as_sent: Value,
    pub card: CardRef,
    /// The purchase amount; the holder earns half of it.
    pub montant: Cents,
    /// Idempotency key: the item's `id`, else the batch's `Idempotency-Key` and the
    /// item's position.
    pub key: Option<String>,
}

impl CreditItem {
    pub fn credit(&self) -> Cents {
        self.montant.loyalty_share()
    }
}

/// Longest idempotency key accepted.
pub const MAX_KEY_CHARS: usize = 200;

/// What a `POST /api/credit` body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditRequest {
    /// No `Tickets` at all (the scheduler's `{}`, or an empty body): pull the tickets
    /// from the shops' service.
    Pull,
    /// A batch of card credits.
    Batch(CreditBatch),
}

/// A validated `POST /api/credit` batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditBatch {
    /// The items with a card, in batch order.
    pub items: Vec<CreditItem>,
    /// Items without a card (anonymous sales): skipped, counted.
    pub anonymous: u64,
}

/// Reads a `POST /api/credit` body: a pull when it holds no `Tickets` (empty, or an
/// object without the key), else `{"Tickets": [{"carteFid", "Montant", "id"}...]}`. An
/// item whose `carteFid` is null, empty or absent is an anonymous sale, skipped and
/// counted; a malformed or invalid item refuses the whole batch, every bad field
/// listed as `Tickets[i].field`.
pub fn parse_credit_request(body: &[u8], batch_key: Option<&str>) -> Result<CreditRequest, InputError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreditRequest::Pull);
    }
    let mut object = parse_json_object(body)?;
    let items = match object.remove("Tickets").or_else(|| object.remove("tickets")) {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(InputError::Unreadable(format!(
                "Tickets must be an array, not {}",
                json_type_name(&other)
            )))
        }
        None => return Ok(CreditRequest::Pull),
    };
    // Counted past the cap, not listed: a megabyte of bad items lists a thousand.
    let mut errors = ErrorList::new();
    let mut batch = CreditBatch {
        items: Vec::with_capacity(items.len()),
        anonymous: 0,
    };
    for (index, item) in items.into_iter().enumerate() {
        let field = |name: &str| format!("Tickets[{index}].{name}");
        let Value::Object(item) = item else {
            errors.push(FieldError::new(format!("Tickets[{index}]"), "must be an object"));
            continue;
        };
        let card_as_sent = item.get("carteFid").or_else(|| item.get("CarteFid")).cloned();
        let anonymous = match &card_as_sent {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        let card = match &card_as_sent {
            _ if anonymous => Err(String::new()),
            None => Err("is required".to_string()),
            Some(v) => CardRef::parse(v),
        }
        .map_err(|e| {
            if !anonymous {
                errors.push(FieldError::new(field("carteFid"), e))
            }
        });
        let montant = match item.get("Montant").or_else(|| item.get("montant")) {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(v) => Cents::from_json(v),
        }
        .map_err(|e| errors.push(FieldError::new(field("Montant"), e)));
        let key = match item.get("id") {
            None | Some(Value::Null) => Ok(batch_key.map(|k| format!("{k}#{index}"))),
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_KEY_CHARS => {
                Ok(Some(s.trim().to_string()))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(()),
        }
        .map_err(|()| {
            errors.push(FieldError::new(
                field("id"),
                format!("must be a number or non-empty text of at most {MAX_KEY_CHARS} characters"),
            ))
        });
        match (card, montant, key) {
            // An anonymous sale is still checked: a bad amount refuses the batch.
            (_, Ok(_), Ok(_)) if anonymous => batch.anonymous += 1,
            (Ok(card), Ok(montant), Ok(key)) => batch.items.push(CreditItem {
                index,
                card_as_sent: card_as_sent.unwrap_or_default(),
                card,
                montant,
                key,
            }),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(CreditRequest::Batch(batch))
    } else {
        Err(errors.into_input_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credit_moves_through_numbered_entries_that_sum_to_the_balance() {
        let at = Utc::now();
        let mut record = crate::NewCustomer::default().into_record(1, Uuid::nil(), at);
        let first = move_credit(&mut record, Cents(500), LedgerCause::Opening, None, at);
        let second = move_credit(&mut record, Cents(120), LedgerCause::ImportAdjustment, None, at);
        let third = move_credit(&mut record, Cents(170), LedgerCause::Credit, Some("k".into()), at);
        assert_eq!((first.seq, first.amount, first.balance), (1, 500, Cents(500)));
        assert_eq!((second.seq, second.amount, second.balance), (2, -380, Cents(120)));
        assert_eq!((third.seq, third.amount, third.key.as_deref()), (3, 50, Some("k")));
        assert_eq!((record.credit, record.ledger_entries), (Cents(170), 3));
        assert_eq!(first.amount + second.amount + third.amount, 170);
    }

    #[test]
    fn card_refs_are_numbers_digits_or_uuids() {
        assert_eq!(CardRef::parse(&json!(33)), Ok(CardRef::Card(33)));
        assert_eq!(CardRef::parse(&json!(" 33 ")), Ok(CardRef::Card(33)));
        let id = Uuid::new_v4();
        assert_eq!(CardRef::parse(&json!(id.to_string())), Ok(CardRef::IdClient(id)));
        for bad in [json!(0), json!(-1), json!("abc"), json!(1.5), json!(true)] {
            assert!(CardRef::parse(&bad).is_err(), "{bad}");
        }
    }

    fn parse_credit_batch(body: &[u8], batch_key: Option<&str>) -> Result<Vec<CreditItem>, InputError> {
        match parse_credit_request(body, batch_key)? {
            CreditRequest::Batch(batch) => Ok(batch.items),
            CreditRequest::Pull => panic!("a pull"),
        }
    }

    #[test]
    fn no_tickets_at_all_is_a_pull() {
        for pull in [&b""[..], b"  \n", b"{}", br#"{"source": "scheduler"}"#] {
            assert_eq!(parse_credit_request(pull, None), Ok(CreditRequest::Pull));
        }
        assert!(matches!(
            parse_credit_request(b"[1]", None),
            Err(InputError::Unreadable(_))
        ));
        assert!(matches!(
            parse_credit_request(br#"{"Tickets": 3}"#, None),
            Err(InputError::Unreadable(_))
        ));
    }

    #[test]
    fn anonymous_sales_are_skipped_and_counted_but_still_checked() {
        let CreditRequest::Batch(batch) = parse_credit_request(
            br#"{"Tickets": [{"carteFid": null, "Montant": 10}, {"carteFid": 33, "Montant": 26},
                {"carteFid": " ", "Montant": 4}, {"Montant": 1}]}"#,
            Some("B"),
        )
        .unwrap() else {
            panic!("a pull")
        };
        assert_eq!(batch.anonymous, 3);
        assert_eq!(batch.items.len(), 1);
        assert_eq!((batch.items[0].index, batch.items[0].key.as_deref()), (1, Some("B#1")));
        let err = parse_credit_request(br#"{"Tickets": [{"carteFid": null, "Montant": -1}]}"#, None).unwrap_err();
        assert!(matches!(err, InputError::Invalid(e) if e[0].field == "Tickets[0].Montant"));
    }

    #[test]
    fn the_documents_batch_reads_and_credits_half_rounded_down() {
        let items = parse_credit_batch(
            br#"{"Tickets": [{"carteFid": 33, "Montant": 26}, {"carteFid": 42, "Montant": 55, "id": "k1"}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(items[0].credit(), Cents(13));
        assert_eq!(items[1].credit(), Cents(27));
        assert_eq!((items[0].key.as_deref(), items[1].key.as_deref()), (None, Some("k1")));
        assert_eq!(items[0].card_as_sent, json!(33));
    }

    #[test]
    fn the_batch_key_names_items_without_their_own() {
        let items = parse_credit_batch(
            br#"{"Tickets": [{"carteFid": 1, "Montant": 2}, {"carteFid": 1, "Montant": 2, "id": 9}]}"#,
            Some("B"),
        )
        .unwrap();
        assert_eq!(
            (items[0].key.as_deref(), items[1].key.as_deref()),
            (Some("B#0"), Some("9"))
        );
    }

    #[test]
    fn any_bad_item_refuses_the_batch_listing_every_field() {
        let err = parse_credit_request(
            br#"{"Tickets": [{"carteFid": 1, "Montant": 2}, {"carteFid": 1}, {"Montant": -4, "carteFid": "x"}, 3]}"#,
            None,
        )
        .unwrap_err();
        let InputError::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "Tickets[1].Montant",
                "Tickets[2].carteFid",
                "Tickets[2].Montant",
                "Tickets[3]"
            ]
        );
    }
}

//! Customer input: the bodies of create, PATCH and import rows, read leniently the way
//! older clients write them, then validated field by field.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::customer::{CustomerRecord, Sexe};
use crate::money::{Cents, MAX_CENTS};
use crate::validation::{
    is_valid_email, json_type_name, name_excerpt, parse_json_object, quoted, ErrorList, FieldError, InputError,
};

/// Longest text accepted in a name, e-mail, phone or account field.
pub const MAX_TEXT_CHARS: usize = 200;

/// Longest `Compte`: the payment service and the other consumers of the first
/// implementation keep it in 10-character columns.
pub const MAX_COMPTE_CHARS: usize = 10;

/// The keys a customer body may carry, under the API's spelling and the aliases
/// of the document's `create_customer` shape and of older clients. Values are kept raw
/// so that every invalid field can be reported, not just the first; a key present with
/// `null` is `Some(Value::Null)`, so PATCH can tell "clear" from "leave alone".
/// Unknown keys (`Paiement`...) are ignored.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CustomerInput {
    #[serde(
        rename = "Nom",
        alias = "last_name",
        alias = "nom",
        default,
        deserialize_with = "present"
    )]
    pub nom: Option<Value>,
    #[serde(
        rename = "Prenom",
        alias = "name",
        alias = "prenom",
        alias = "first_name",
        default,
        deserialize_with = "present"
    )]
    pub prenom: Option<Value>,
    #[serde(
        rename = "Email",
        alias = "mail",
        alias = "email",
        default,
        deserialize_with = "present"
    )]
    pub email: Option<Value>,
    #[serde(rename = "Phone", alias = "phone", default, deserialize_with = "present")]
    pub phone: Option<Value>,
    #[serde(rename = "Compte", alias = "compte", default, deserialize_with = "present")]
    pub compte: Option<Value>,
    #[serde(rename = "Age", alias = "age", default, deserialize_with = "present")]
    pub age: Option<Value>,
    #[serde(rename = "Sexe", alias = "sexe", default, deserialize_with = "present")]
    pub sexe: Option<Value>,
    #[serde(rename = "Credit", alias = "credit", default, deserialize_with = "present")]
    pub credit: Option<Value>,
    #[serde(rename = "CarteFid", alias = "carteFid", default, deserialize_with = "present")]
    pub carte_fid: Option<Value>,
    #[serde(rename = "IdClient", alias = "idClient", default, deserialize_with = "present")]
    pub id_client: Option<Value>,
    #[serde(rename = "Date_paiement", default, deserialize_with = "present")]
    pub date_paiement: Option<Value>,
    #[serde(rename = "Montant", default, deserialize_with = "present")]
    pub montant: Option<Value>,
    #[serde(rename = "id", default, deserialize_with = "present")]
    pub id: Option<Value>,
    #[serde(rename = "NbRefus", default, deserialize_with = "present")]
    pub nb_refus: Option<Value>,
    #[serde(rename = "PanierMoyen", default, deserialize_with = "present")]
    pub panier_moyen: Option<Value>,
}

/// Every key of [`CustomerInput`] under each of its spellings, and `Paiement`, which
/// older clients send in create bodies and which is ignored.
pub const CUSTOMER_KEYS: &[&str] = &[
    "Nom",
    "last_name",
    "nom",
    "Prenom",
    "name",
    "prenom",
    "first_name",
    "Email",
    "mail",
    "email",
    "Phone",
    "phone",
    "Compte",
    "compte",
    "Age",
    "age",
    "Sexe",
    "sexe",
    "Credit",
    "credit",
    "CarteFid",
    "carteFid",
    "IdClient",
    "idClient",
    "Date_paiement",
    "Montant",
    "id",
    "NbRefus",
    "PanierMoyen",
    "Paiement",
];

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl CustomerInput {
    /// Reads a request body: 400 when it is not a JSON object, 422 when two aliases of
    /// one key are both given.
    pub fn from_body(body: &[u8]) -> Result<CustomerInput, InputError> {
        Self::from_object(parse_json_object(body)?)
    }

    /// [`Self::from_body`] for the `/api/v1` routes, which refuse the keys they do not
    /// know (`422` naming each one): a misspelt key is a mistake to report, not a
    /// field to drop. The older routes keep ignoring them, as older clients send
    /// extra keys.
    pub fn from_body_strict(body: &[u8]) -> Result<CustomerInput, InputError> {
        let map = parse_json_object(body)?;
        // A body of a million unknown keys lists a thousand, each name cut short.
        let mut unknown = ErrorList::new();
        for key in map.keys().filter(|key| !CUSTOMER_KEYS.contains(&key.as_str())) {
            unknown.push(FieldError::new(name_excerpt(key), "is not a customer field"));
        }
        if !unknown.is_empty() {
            return Err(unknown.into_input_error());
        }
        Self::from_object(map)
    }

    pub fn from_object(map: serde_json::Map<String, Value>) -> Result<CustomerInput, InputError> {
        CustomerInput::deserialize(Value::Object(map)).map_err(|e| InputError::field("body", e.to_string()))
    }
}

/// A validated new customer (create route, import row). Serialisable so that an
/// import can spool validated rows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewCustomer {
    pub nom: String,
    pub prenom: String,
    pub email: String,
    pub phone: String,
    pub compte: String,
    pub age: Option<u8>,
    pub sexe: Sexe,
    /// The opening credit: the customer's first ledger entry.
    pub opening_credit: Cents,
    pub carte_fid: Option<u64>,
    /// Given by an import row that carries its own id.
    pub id_client: Option<Uuid>,
    /// A deferred payment to schedule (import rows with `Date_paiement` and `Montant`).
    pub scheduled_payment: Option<(NaiveDate, Cents)>,
}

impl NewCustomer {
    pub fn from_input(input: &CustomerInput) -> Result<NewCustomer, InputError> {
        let mut errors = Vec::new();
        let mut new = NewCustomer::default();
        match input.nom.as_ref().map(|v| text("Nom", v)) {
            None | Some(Ok(None)) => errors.push(FieldError::new("Nom", "is required (Nom, or last_name)")),
            Some(Ok(Some(nom))) => new.nom = nom,
            Some(Err(e)) => errors.push(e),
        }
        collect(&mut errors, input.prenom.as_ref().map(|v| text("Prenom", v)), |v| {
            new.prenom = v.unwrap_or_default()
        });
        collect(&mut errors, input.email.as_ref().map(email), |v| new.email = v);
        collect(&mut errors, input.phone.as_ref().map(|v| text("Phone", v)), |v| {
            new.phone = v.unwrap_or_default()
        });
        collect(&mut errors, input.compte.as_ref().map(compte), |v| new.compte = v);
        collect(&mut errors, input.age.as_ref().map(age), |v| new.age = v);
        collect(&mut errors, input.sexe.as_ref().map(sexe), |v| new.sexe = v);
        collect(&mut errors, input.credit.as_ref().map(|v| money("Credit", v)), |v| {
            new.opening_credit = v
        });
        collect(&mut errors, input.carte_fid.as_ref().map(card), |v| new.carte_fid = v);
        collect(&mut errors, input.id_client.as_ref().map(id_client), |v| {
            new.id_client = v
        });
        let date = input.date_paiement.as_ref().map(date).transpose();
        let montant = input.montant.as_ref().map(|v| money("Montant", v)).transpose();
        match (date, montant) {
            (Ok(Some(Some(date))), Ok(montant)) => {
                let montant = montant.unwrap_or_default();
                if montant > Cents::ZERO {
                    new.scheduled_payment = Some((date, montant));
                }
            }
            (date, montant) => {
                errors.extend(date.err());
                errors.extend(montant.err());
            }
        }
        if errors.is_empty() {
            Ok(new)
        } else {
            Err(InputError::Invalid(errors))
        }
    }

    /// The record for a customer created now with sequence number `id`.
    pub fn into_record(self, id: u64, id_client: Uuid, now: DateTime<Utc>) -> CustomerRecord {
        CustomerRecord {
            id,
            id_client,
            nom: self.nom,
            prenom: self.prenom,
            email: self.email,
            phone: self.phone,
            compte: self.compte,
            age: self.age,
            sexe: self.sexe,
            carte_fid: self.carte_fid,
            credit: self.opening_credit,
            nb_refus: 0,
            next_payment: None,
            pending_payments: Cents::ZERO,
            ledger_entries: 0,
            ticket_count: 0,
            ticket_total: Cents::ZERO,
            erased: false,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What creating a customer writes besides its record: the record starts with no
/// credit, and its opening credit and first payment are written through the ledger and
/// the payment schedule, like every later change of either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The new record, with a credit of 0.
    pub record: CustomerRecord,
    /// The balance its opening ledger entry moves it to, if any.
    pub opening_credit: Option<Cents>,
    /// The payment to schedule for it (due date, amount), if any.
    pub payment: Option<(NaiveDate, Cents)>,
}

impl NewCustomer {
    /// A customer created now with sequence number `id` and `IdClient` `id_client`
    /// (see [`Creation`]).
    pub fn creation(&self, id: u64, id_client: Uuid, now: DateTime<Utc>) -> Creation {
        let mut record = self.clone().into_record(id, id_client, now);
        record.credit = Cents::ZERO;
        Creation {
            record,
            opening_credit: Some(self.opening_credit).filter(|c| *c > Cents::ZERO),
            payment: self.scheduled_payment,
        }
    }
}

/// A validated PATCH: `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPatch {
    pub nom: Option<String>,
    pub prenom: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub compte: Option<String>,
    pub age: Option<Option<u8>>,
    pub sexe: Option<Sexe>,
    /// `Some(None)` withdraws the card.
    pub carte_fid: Option<Option<u64>>,
}

impl CustomerPatch {
    pub fn from_input(input: &CustomerInput) -> Result<CustomerPatch, InputError> {
        let mut errors = Vec::new();
        let mut patch = CustomerPatch::default();
        let read_only = [
            ("id", &input.id),
            ("IdClient", &input.id_client),
            ("Credit", &input.credit),
            ("Montant", &input.montant),
            ("Date_paiement", &input.date_paiement),
            ("NbRefus", &input.nb_refus),
            ("PanierMoyen", &input.panier_moyen),
        ];
        for (field, value) in read_only {
            if value.is_some() {
                errors.push(FieldError::new(
                    field,
                    "is read-only here (credit moves through /api/credit and tickets, payments through their routes)",
                ));
            }
        }
        if let Some(v) = &input.nom {
            match text("Nom", v) {
                Ok(Some(nom)) => patch.nom = Some(nom),
                Ok(None) => errors.push(FieldError::new("Nom", "must not be empty")),
                Err(e) => errors.push(e),
            }
        }
        collect(&mut errors, input.prenom.as_ref().map(|v| text("Prenom", v)), |v| {
            patch.prenom = Some(v.unwrap_or_default())
        });
        collect(&mut errors, input.email.as_ref().map(email), |v| patch.email = Some(v));
        collect(&mut errors, input.phone.as_ref().map(|v| text("Phone", v)), |v| {
            patch.phone = Some(v.unwrap_or_default())
        });
        collect(&mut errors, input.compte.as_ref().map(compte), |v| {
            patch.compte = Some(v)
        });
        collect(&mut errors, input.age.as_ref().map(age), |v| patch.age = Some(v));
        collect(&mut errors, input.sexe.as_ref().map(sexe), |v| patch.sexe = Some(v));
        collect(&mut errors, input.carte_fid.as_ref().map(card), |v| {
            patch.carte_fid = Some(v)
        });
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(InputError::Invalid(errors))
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == CustomerPatch::default()
    }

    /// Applies the patch; the caller keeps the indexes in step.
    pub fn apply(&self, record: &mut CustomerRecord, now: DateTime<Utc>) {
        let set = |target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                target.clone_from(v);
            }
        };
        set(&mut record.nom, &self.nom);
        set(&mut record.prenom, &self.prenom);
        set(&mut record.email, &self.email);
        set(&mut record.phone, &self.phone);
        set(&mut record.compte, &self.compte);
        if let Some(age) = self.age {
            record.age = age;
        }
        if let Some(sexe) = self.sexe {
            record.sexe = sexe;
        }
        if let Some(card) = self.carte_fid {
            record.carte_fid = card;
        }
        record.updated_at = now;
    }
}

fn collect<T>(errors: &mut Vec<FieldError>, checked: Option<Result<T, FieldError>>, mut accept: impl FnMut(T)) {
    match checked {
        Some(Ok(v)) => accept(v),
        Some(Err(e)) => errors.push(e),
        None => {}
    }
}

/// Text field: a string (trimmed), or a number older clients sent unquoted; `None` when
/// null or empty.
fn text(field: &str, value: &Value) -> Result<Option<String>, FieldError> {
    let s = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(FieldError::new(
                field,
                format!("must be text, not {}", json_type_name(other)),
            ))
        }
    };
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok((!s.is_empty()).then_some(s))
}

fn email(value: &Value) -> Result<String, FieldError> {
    let email = text("Email", value)?.unwrap_or_default();
    if !email.is_empty() && !is_valid_email(&email) {
        return Err(FieldError::new(
            "Email",
            format!("{} is not an e-mail address", quoted(&email)),
        ));
    }
    Ok(email)
}

/// The bank account reference: text of at most [`MAX_COMPTE_CHARS`] characters, empty
/// for none. The one check of `Compte`, for create, PATCH and import rows.
fn compte(value: &Value) -> Result<String, FieldError> {
    let compte = text("Compte", value)?.unwrap_or_default();
    let chars = compte.chars().count();
    if chars > MAX_COMPTE_CHARS {
        return Err(FieldError::new(
            "Compte",
            format!(
                "must be at most {MAX_COMPTE_CHARS} characters (the payment service keeps it in \
                 {MAX_COMPTE_CHARS}-character columns), not {chars}"
            ),
        ));
    }
    Ok(compte)
}

fn age(value: &Value) -> Result<Option<u8>, FieldError> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= 150 => Ok(Some(n as u8)),
        _ => Err(FieldError::new("Age", "must be a whole number from 0 to 150, or null")),
    }
}

fn sexe(value: &Value) -> Result<Sexe, FieldError> {
    let parsed = match value {
        Value::Null => Some(Sexe::Unspecified),
        Value::String(s) => Sexe::parse(s),
        _ => None,
    };
    parsed.ok_or_else(|| FieldError::new("Sexe", "must be \"h\", \"f\" or empty"))
}

fn money(field: &str, value: &Value) -> Result<Cents, FieldError> {
    if value.is_null() {
        return Ok(Cents::ZERO);
    }
    Cents::from_json(value).map_err(|e| FieldError::new(field, e))
}

/// A loyalty card number: a positive integer (or its digits as text); null for none.
pub fn card(value: &Value) -> Result<Option<u64>, FieldError> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=MAX_CENTS).contains(&n) => Ok(Some(n)),
        _ => Err(FieldError::new("CarteFid", "must be a positive card number, or null")),
    }
}

fn id_client(value: &Value) -> Result<Option<Uuid>, FieldError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Uuid::parse_str(s.trim())
            .map(Some)
            .map_err(|_| FieldError::new("IdClient", format!("{} is not a UUID", quoted(s)))),
        other => Err(FieldError::new(
            "IdClient",
            format!("must be a UUID string, not {}", json_type_name(other)),
        )),
    }
}

/// A calendar date `YYYY-MM-DD` that exists; null or empty for none.
pub fn date(value: &Value) -> Result<Option<NaiveDate>, FieldError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => parse_date(s).map(Some).map_err(|e| FieldError::new("Date_paiement", e)),
        other => Err(FieldError::new(
            "Date_paiement",
            format!("must be a YYYY-MM-DD date, not {}", json_type_name(other)),
        )),
    }
}

/// Parses a `YYYY-MM-DD` date that exists in the calendar.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    let shaped = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
    match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) if shaped => Ok(d),
        _ => Err(format!("{} is not a real YYYY-MM-DD date", quoted(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_creation_starts_at_no_credit_and_carries_its_opening_credit_and_payment() {
        let now = Utc::now();
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let new = NewCustomer {
            nom: "A".into(),
            opening_credit: Cents(300),
            scheduled_payment: Some((day, Cents(90))),
            ..Default::default()
        };
        let id_client = Uuid::new_v4();
        let created = new.creation(7, id_client, now);
        assert_eq!((created.record.id, created.record.id_client), (7, id_client));
        assert_eq!(created.record.credit, Cents::ZERO);
        assert_eq!(created.opening_credit, Some(Cents(300)));
        assert_eq!(created.payment, Some((day, Cents(90))));
        let plain = NewCustomer::default().creation(8, id_client, now);
        assert_eq!((plain.opening_credit, plain.payment), (None, None));
    }

    fn input(v: Value) -> CustomerInput {
        CustomerInput::from_body(v.to_string().as_bytes()).unwrap()
    }

    fn fields(err: InputError) -> Vec<String> {
        match err {
            InputError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn document_shape_maps_name_to_prenom_and_last_name_to_nom() {
        let c = NewCustomer::from_input(&input(json!({
            "name": "Jon", "last_name": "Doe", "sexe": "f", "age": 23,
            "mail": "jon.doe@mail.com", "phone": "+33638614907"
        })))
        .unwrap();
        assert_eq!((c.prenom.as_str(), c.nom.as_str()), ("Jon", "Doe"));
        assert_eq!((c.sexe, c.age), (Sexe::F, Some(23)));
        assert_eq!(
            (c.email.as_str(), c.phone.as_str()),
            ("jon.doe@mail.com", "+33638614907")
        );
    }

    #[test]
    fn older_client_shape_carries_opening_credit_and_ignores_paiement() {
        let c = NewCustomer::from_input(&input(json!({
            "Nom": "Eddison", "Prenom": "Anne", "email": "a@b.fr",
            "Credit": 154.62542724609375, "Paiement": 25, "Compte": "BKN1CST18"
        })))
        .unwrap();
        assert_eq!(c.opening_credit, Cents(155));
        assert_eq!(c.compte, "BKN1CST18");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let err = NewCustomer::from_input(&input(json!({
            "Email": "not an email", "Age": 151, "Sexe": "x", "Credit": -1, "CarteFid": 0,
            "Date_paiement": "2019-02-30", "IdClient": "nope", "Prenom": ["a"]
        })))
        .unwrap_err();
        let mut got = fields(err);
        got.sort();
        assert_eq!(
            got,
            [
                "Age",
                "CarteFid",
                "Credit",
                "Date_paiement",
                "Email",
                "IdClient",
                "Nom",
                "Prenom",
                "Sexe"
            ]
        );
    }

    #[test]
    fn import_row_schedules_payment_when_dated() {
        let c = NewCustomer::from_input(&input(
            json!({"Nom": "A", "Date_paiement": "2019-01-18", "Montant": 125}),
        ))
        .unwrap();
        assert_eq!(
            c.scheduled_payment,
            Some((NaiveDate::from_ymd_opt(2019, 1, 18).unwrap(), Cents(125)))
        );
    }

    #[test]
    fn patch_tells_null_from_absent_and_refuses_read_only_keys() {
        let p = CustomerPatch::from_input(&input(json!({"Age": null, "CarteFid": null, "Prenom": "Z"}))).unwrap();
        assert_eq!(p.age, Some(None));
        assert_eq!(p.carte_fid, Some(None));
        assert_eq!(p.prenom.as_deref(), Some("Z"));
        assert_eq!(p.nom, None);
        assert_eq!(
            fields(CustomerPatch::from_input(&input(json!({"Credit": 5, "Nom": ""}))).unwrap_err()),
            ["Credit", "Nom"]
        );
        assert!(CustomerPatch::from_input(&input(json!({}))).unwrap().is_empty());
    }

    #[test]
    fn dates_must_exist_and_be_shaped() {
        assert!(parse_date("2019-12-06").is_ok());
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2019-13-01",
            "2019-1-1",
            "06/12/2019",
            "",
            "2019-12-06T00:00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compte_is_at_most_ten_characters_on_create_and_patch() {
        let c = NewCustomer::from_input(&input(json!({"Nom": "A", "Compte": " BKN1CST538 "}))).unwrap();
        assert_eq!(c.compte, "BKN1CST538", "ten characters, trimmed, are accepted");
        let accents = NewCustomer::from_input(&input(json!({"Nom": "A", "Compte": "ÉÉÉÉÉÉÉÉÉÉ"}))).unwrap();
        assert_eq!(accents.compte.chars().count(), 10, "characters are counted, not bytes");
        let err = NewCustomer::from_input(&input(json!({"Nom": "A", "Compte": "BKN1CST5300"}))).unwrap_err();
        assert_eq!(fields(err.clone()), ["Compte"]);
        assert!(err.to_string().contains("at most 10 characters"), "{err}");
        assert_eq!(
            fields(NewCustomer::from_input(&input(json!({"Nom": "A", "compte": 12345678901u64}))).unwrap_err()),
            ["Compte"],
            "a number sent unquoted is text too"
        );
        assert_eq!(
            fields(CustomerPatch::from_input(&input(json!({"Compte": "BKN1CST5300"}))).unwrap_err()),
            ["Compte"]
        );
        let patch = CustomerPatch::from_input(&input(json!({"Compte": null}))).unwrap();
        assert_eq!(patch.compte.as_deref(), Some(""), "null clears the account");
    }

    #[test]
    fn aliases_given_twice_are_a_field_error() {
        let err = CustomerInput::from_body(br#"{"Nom":"A","last_name":"B"}"#).unwrap_err();
        assert!(matches!(err, InputError::Invalid(_)));
    }

    #[test]
    fn the_v1_bodies_refuse_unknown_keys_and_every_known_key_is_read() {
        let err = CustomerInput::from_body_strict(br#"{"Nom": "A", "Emial": "a@x.fr", "colour": 1}"#).unwrap_err();
        let InputError::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        let mut fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["Emial", "colour"]);
        assert!(CustomerInput::from_body_strict(br#"{"Nom": "A", "Paiement": 25}"#).is_ok());
        assert!(
            CustomerInput::from_body(br#"{"Nom": "A", "Emial": "a@x.fr"}"#).is_ok(),
            "older routes ignore them"
        );
        // The list and the struct agree: every listed key but Paiement lands in a field.
        for key in CUSTOMER_KEYS.iter().filter(|k| **k != "Paiement") {
            let input = CustomerInput::from_body_strict(format!("{{\"{key}\": 1}}").as_bytes()).unwrap();
            assert_ne!(format!("{input:?}"), format!("{:?}", CustomerInput::default()), "{key}");
        }
    }
}

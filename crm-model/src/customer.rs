//! The customer: the record the store keeps and the JSON object every route returns.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Cents;

/// `h`, `f` or unspecified (empty string in JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sexe {
    #[serde(rename = "h")]
    H,
    #[serde(rename = "f")]
    F,
    #[default]
    #[serde(rename = "")]
    Unspecified,
}

impl Sexe {
    /// Reads `h`/`f` in either case; the empty string is unspecified.
    pub fn parse(text: &str) -> Option<Sexe> {
        match text.trim() {
            "h" | "H" => Some(Sexe::H),
            "f" | "F" => Some(Sexe::F),
            "" => Some(Sexe::Unspecified),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sexe::H => "h",
            Sexe::F => "f",
            Sexe::Unspecified => "",
        }
    }
}

/// Written by hand: the derive would list the variant's name `Unspecified` where the
/// JSON has `""`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Sexe {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("`h`, `f`, or the empty string when unspecified."))
            .enum_values(Some([Sexe::H, Sexe::F, Sexe::Unspecified].map(Sexe::as_str)))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Sexe {}

/// The customer object of the API, with exactly the keys and JSON types older clients
/// read (see docs/api.md). Every route that returns a customer returns this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// Sequence number, never reused.
    pub id: u64,
    /// The customer's public id.
    #[serde(rename = "IdClient")]
    pub id_client: Uuid,
    /// Last name.
    #[serde(rename = "Nom")]
    pub nom: String,
    /// First name.
    #[serde(rename = "Prenom")]
    pub prenom: String,
    /// Loyalty credit, cents.
    #[serde(rename = "Credit")]
    pub credit: Cents,
    /// Due date of the next scheduled deferred payment.
    #[serde(rename = "Date_paiement")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub date_paiement: Option<NaiveDate>,
    /// Total of scheduled deferred payments not yet paid, cents.
    #[serde(rename = "Montant")]
    pub montant: Cents,
    /// Refused deferred payments.
    #[serde(rename = "NbRefus")]
    pub nb_refus: u32,
    /// Bank account reference, may be empty.
    #[serde(rename = "Compte")]
    pub compte: String,
    #[serde(rename = "Age")]
    pub age: Option<u8>,
    #[serde(rename = "Sexe")]
    pub sexe: Sexe,
    /// Unique among customers when not empty.
    #[serde(rename = "Email")]
    pub email: String,
    #[serde(rename = "Phone")]
    pub phone: String,
    /// Average basket: total of the customer's tickets / their number, cents, rounded down.
    #[serde(rename = "PanierMoyen")]
    pub panier_moyen: Cents,
    /// Loyalty card number, unique; null when the customer has no card.
    #[serde(rename = "CarteFid")]
    pub carte_fid: Option<u64>,
}

/// What the store keeps of a customer: the API object's fields plus the running totals
/// it is derived from. The embedded store keeps it in a compact form that is not
/// self-describing (postcard, fields in this order): a field added or moved needs a new
/// layout version there (see `encode_compact` in the sled store), with the old layout
/// kept to read what was written before. `#[serde(default)]` marks the fields that the
/// JSON records of earlier versions may lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: u64,
    pub id_client: Uuid,
    pub nom: String,
    pub prenom: String,
    pub email: String,
    pub phone: String,
    pub compte: String,
    pub age: Option<u8>,
    pub sexe: Sexe,
    pub carte_fid: Option<u64>,
    pub credit: Cents,
    pub nb_refus: u32,
    /// Due date of the earliest pending deferred payment.
    #[serde(default)]
    pub next_payment: Option<NaiveDate>,
    /// Sum of the pending deferred payments.
    #[serde(default)]
    pub pending_payments: Cents,
    /// How many ledger entries the customer has: the next entry's key.
    #[serde(default)]
    pub ledger_entries: u64,
    #[serde(default)]
    pub ticket_count: u64,
    #[serde(default)]
    pub ticket_total: Cents,
    /// Erased on request (personal data blanked): out of every list and search, still
    /// answers by id.
    #[serde(default)]
    pub erased: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CustomerRecord {
    /// Whether `other` is this customer with the same identity (ids, names, e-mail,
    /// phone, card, erasure): then their unique keys and search tokens are the same,
    /// and only money or counts moved (credits and tickets, the frequent writes), so a
    /// store rewrites no index of identity.
    pub fn same_identity(&self, other: &CustomerRecord) -> bool {
        self.id == other.id
            && self.id_client == other.id_client
            && self.erased == other.erased
            && self.nom == other.nom
            && self.prenom == other.prenom
            && self.email == other.email
            && self.phone == other.phone
            && self.carte_fid == other.carte_fid
    }

    /// Average basket, rounded down; zero without tickets.
    pub fn panier_moyen(&self) -> Cents {
        Cents(self.ticket_total.0.checked_div(self.ticket_count).unwrap_or(0))
    }

    /// The API object.
    pub fn to_customer(&self) -> Customer {
        Customer {
            id: self.id,
            id_client: self.id_client,
            nom: self.nom.clone(),
            prenom: self.prenom.clone(),
            credit: self.credit,
            date_paiement: self.next_payment,
            montant: self.pending_payments,
            nb_refus: self.nb_refus,
            compte: self.compte.clone(),
            age: self.age,
            sexe: self.sexe,
            email: self.email.clone(),
            phone: self.phone.clone(),
            panier_moyen: self.panier_moyen(),
            carte_fid: self.carte_fid,
        }
    }

    /// Blanks the personal fields and withdraws the card; accounting fields stay.
    pub fn erase_personal_data(&mut self, now: DateTime<Utc>) {
        self.nom.clear();
        self.prenom.clear();
        self.email.clear();
        self.phone.clear();
        self.compte.clear();
        self.age = None;
        self.sexe = Sexe::Unspecified;
        self.carte_fid = None;
        self.erased = true;
        self.updated_at = now;
    }

    /// The e-mail as the uniqueness index keys it: case-insensitive.
    pub fn email_key(&self) -> Option<String> {
        email_key(&self.email)
    }
}

/// The lower-cased e-mail, or `None` when empty (empty e-mails are not unique).
pub fn email_key(email: &str) -> Option<String> {
    let trimmed = email.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_keep_the_identity_and_the_keys_do_not() {
        let old = record();
        let mut new = old.clone();
        new.credit = Cents(1234);
        new.ticket_count = 2;
        new.ticket_total = Cents(999);
        new.nb_refus = 1;
        assert!(old.same_identity(&new));
        for change in [
            (|r: &mut CustomerRecord| r.email = "other@x.fr".into()) as fn(&mut CustomerRecord),
            |r| r.carte_fid = None,
            |r| r.nom = "Other".into(),
            |r| r.phone = "09".into(),
            |r| r.erased = true,
        ] {
            let mut changed = old.clone();
            change(&mut changed);
            assert!(!old.same_identity(&changed));
        }
    }

    fn record() -> CustomerRecord {
        let now = Utc::now();
        CustomerRecord {
            id: 1,
            id_client: Uuid::nil(),
            nom: "Bloggs".into(),
            prenom: "Jacquie".into(),
            email: "Jacquie@Mimi.com".into(),
            phone: "0102030405".into(),
            compte: "BKN1CST53".into(),
            age: Some(42),
            sexe: Sexe::H,
            carte_fid: Some(33),
            credit: Cents(420),
            nb_refus: 0,
            next_payment: NaiveDate::from_ymd_opt(2019, 1, 11),
            pending_payments: Cents(1330),
            ledger_entries: 0,
            ticket_count: 3,
            ticket_total: Cents(1000),
            erased: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn api_object_has_exactly_the_contract_keys_and_types() {
        let json = serde_json::to_value(record().to_customer()).unwrap();
        let obj = json.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "Age",
                "CarteFid",
                "Compte",
                "Credit",
                "Date_paiement",
                "Email",
                "IdClient",
                "Montant",
                "NbRefus",
                "Nom",
                "PanierMoyen",
                "Phone",
                "Prenom",
                "Sexe",
                "id"
            ]
        );
        assert_eq!(obj["Credit"], 420);
        assert_eq!(obj["Montant"], 1330);
        assert_eq!(obj["PanierMoyen"], 333);
        assert_eq!(obj["Date_paiement"], "2019-01-11");
        assert_eq!(obj["Sexe"], "h");
        assert_eq!(obj["CarteFid"], 33);
        assert_eq!(obj["IdClient"], "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn erasing_blanks_personal_fields_and_keeps_accounting() {
        let mut r = record();
        r.erase_personal_data(Utc::now());
        let c = r.to_customer();
        assert_eq!(
            (
                c.nom.as_str(),
                c.prenom.as_str(),
                c.email.as_str(),
                c.phone.as_str(),
                c.compte.as_str()
            ),
            ("", "", "", "", "")
        );
        assert_eq!((c.age, c.sexe, c.carte_fid), (None, Sexe::Unspecified, None));
        assert_eq!((c.id, c.credit, c.montant), (1, Cents(420), Cents(1330)));
        assert!(r.erased);
    }

    #[test]
    fn empty_email_has_no_key_and_keys_ignore_case() {
        assert_eq!(email_key("  "), None);
        assert_eq!(email_key("A@B.fr"), Some("a@b.fr".into()));
        assert_eq!(Sexe::parse("F"), Some(Sexe::F));
        assert_eq!(Sexe::parse("x"), None);
    }
}

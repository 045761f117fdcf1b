//! Tickets: receipts from the shops (`magasin`) and the web shop (`e-commerce`), read
//! leniently from every source's shape, validated as a whole batch, and the customer
//! each one points to.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::customer::{email_key, CustomerRecord};
use crate::loyalty::{move_credit, LedgerCause, LedgerEntry};
use crate::money::{AmountOutOfRange, Cents};
use crate::validation::{is_valid_email, json_type_name, parse_json_object, quoted, ErrorList, InputError};

/// The origin of web-shop tickets, whose `client` is an e-mail.
pub const ORIGIN_ECOMMERCE: &str = "e-commerce";

/// The source's ticket number: sources send integers, some send text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TicketId {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TicketId::Number(n) => write!(f, "{n}"),
            TicketId::Text(s) => f.write_str(s),
        }
    }
}

/// One line of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Article {
    #[serde(rename = "codeProduit")]
    pub code_produit: String,
    /// List price, cents (older sources call it `prix`).
    #[serde(rename = "prixAvant")]
    pub prix_avant: Cents,
    /// Price paid, cents.
    #[serde(rename = "prixApres")]
    pub prix_apres: Cents,
    /// Discount as the source gives it (a percentage), or null.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub promo: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub promo_client_produit: Value,
    pub quantity: u64,
}

/// The ticket object of the API (`/api/v1`), as docs/api.md describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// The source's ticket number.
    pub id: TicketId,
    /// `"<origin><id>"`: ingestion is idempotent on it.
    pub uid: String,
    /// When the sale happened; `null` when a pulled source sent an unreadable date (the
    /// ticket still counts).
    pub date: Option<DateTime<Utc>>,
    /// Total paid, cents.
    pub prix: Cents,
    /// `IdClient`, the e-mail (web shop), or empty when anonymous.
    pub client: String,
    #[serde(rename = "CarteFid")]
    pub carte_fid: Option<u64>,
    #[serde(rename = "pointsFidelite")]
    pub points_fidelite: u64,
    #[serde(rename = "modePaiement")]
    pub mode_paiement: String,
    pub origin: String,
    #[serde(rename = "Promo_client")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub promo_client: Value,
    pub articles: Vec<Article>,
    /// Its client (or card) is not a customer yet: stored, credited nothing so far.
    #[serde(default)]
    pub unmatched: bool,
}

/// What the store keeps of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// Ingestion order, from 1: `get_tickets` answers in this order.
    pub seq: u64,
    pub ticket: Ticket,
    /// The credited customer's sequence number, once matched.
    #[serde(default)]
    pub customer: Option<u64>,
    /// The number of the ticket's first article in the older feed shape (its articles
    /// are numbered on from it, unique across tickets); 0 for tickets stored before
    /// articles were numbered.
    #[serde(default)]
    pub first_article_id: u64,
}

/// How a ticket names its customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientRef {
    IdClient(Uuid),
    /// Lower-cased, as the e-mail index keys it.
    Email(String),
    Card(u64),
}

impl Ticket {
    /// The credit the ticket earns its customer: half its price, rounded down.
    pub fn credit(&self) -> Cents {
        self.prix.loyalty_share()
    }

    /// Every way the ticket names its customer, most specific first; empty when
    /// anonymous. A client that is neither a UUID nor an e-mail can never match.
    pub fn client_refs(&self) -> Vec<ClientRef> {
        let client = self.client.trim();
        let mut refs = Vec::new();
        if let Ok(id) = Uuid::parse_str(client) {
            refs.push(ClientRef::IdClient(id));
        } else if is_valid_email(client) {
            refs.extend(email_key(client).map(ClientRef::Email));
        } else if let Some(card) = raw_card(client).filter(|c| Some(*c) != self.carte_fid) {
            // A till whose card look-up failed sends the card as read.
            refs.push(ClientRef::Card(card));
        }
        refs.extend(self.carte_fid.map(ClientRef::Card));
        refs
    }

    /// Anonymous: no client and no card.
    pub fn is_anonymous(&self) -> bool {
        self.client.trim().is_empty() && self.carte_fid.is_none()
    }
}

/// The client keys a stored customer answers to, for matching tickets: its
/// `IdClient`, and while it is not erased its e-mail and card.
pub fn client_refs_of(record: &CustomerRecord) -> Vec<ClientRef> {
    let mut refs = vec![ClientRef::IdClient(record.id_client)];
    if !record.erased {
        refs.extend(record.email_key().map(ClientRef::Email));
        refs.extend(record.carte_fid.map(ClientRef::Card));
    }
    refs
}

/// The keys `record` answers to that `old` (the same customer before a change; `None`
/// for a new one) did not: the unmatched tickets waiting under them are now its own.
pub fn gained_client_refs(old: Option<&CustomerRecord>, record: &CustomerRecord) -> Vec<ClientRef> {
    let had = old.map(client_refs_of).unwrap_or_default();
    client_refs_of(record)
        .into_iter()
        .filter(|r| !had.contains(r))
        .collect()
}

/// The customer a ticket credits: the first of its keys, in the order of
/// [`Ticket::client_refs`], that a live customer answers to. `find` is the store's
/// look-up of a live customer by one key.
pub fn matching_customer<E>(
    ticket: &Ticket,
    mut find: impl FnMut(&ClientRef) -> Result<Option<CustomerRecord>, E>,
) -> Result<Option<CustomerRecord>, E> {
    for client in ticket.client_refs() {
        if let Some(customer) = find(&client)? {
            return Ok(Some(customer));
        }
    }
    Ok(None)
}

/// Credits `customer` for a purchase: half the ticket's price to its balance (the
/// ledger entry answered, keyed by the ticket's `uid`), its price to the average
/// basket (`ticket_count`, `ticket_total`), and the ticket marked as this customer's.
/// A balance or basket total that would pass the largest amount refuses it whole,
/// naming `field`. The store stores the entry, the ticket and the customer together.
pub fn credit_ticket(
    customer: &mut CustomerRecord,
    ticket: &mut TicketRecord,
    now: DateTime<Utc>,
    field: &dyn Fn() -> String,
) -> Result<LedgerEntry, AmountOutOfRange> {
    let balance = customer.credit.bounded_add(ticket.ticket.credit(), field)?;
    let ticket_total = customer.ticket_total.bounded_add(ticket.ticket.prix, field)?;
    let entry = move_credit(
        customer,
        balance,
        LedgerCause::Ticket,
        Some(ticket.ticket.uid.clone()),
        now,
    );
    customer.ticket_count += 1;
    customer.ticket_total = ticket_total;
    customer.updated_at = now;
    ticket.customer = Some(customer.id);
    ticket.ticket.unmatched = false;
    Ok(entry)
}

/// A card number typed or scanned as a ticket's `client`: digits only.
fn raw_card(client: &str) -> Option<u64> {
    if client.is_empty() || !client.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    client
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=crate::money::MAX_CENTS).contains(n))
}

/// Where a ticket comes from, which decides how its fields are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketSource {
    /// `POST /api/v1/tickets`: every field is checked and the date is required.
    Api,
    /// A pull from the shops' service: naive dates, an article's `prixApres` in euros.
    Shops,
    /// A pull from the web shop: `client` is an e-mail, the ticket's `Promo_client` is
    /// its first article's `promo_client`.
    WebShop,
}

impl TicketSource {
    fn is_pulled(self) -> bool {
        self != TicketSource::Api
    }
}

/// One invalid field of one ticket of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketError {
    /// Position of the ticket in the batch, from 0.
    pub index: usize,
    pub field: String,
    pub error: String,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not a JSON object with a `tickets` array (400).
    Unreadable(String),
    /// Some tickets are invalid: the first errors listed, all counted (422).
    Invalid {
        errors: ErrorList<TicketError>,
        /// How many tickets have at least one error.
        invalid_tickets: u64,
    },
}

/// Reads `{"tickets": [...], "origin": "magasin"}` (a per-ticket `origin` wins).
pub fn parse_batch(body: &[u8]) -> Result<Vec<Ticket>, BatchError> {
    let mut object = parse_json_object(body).map_err(|e| match e {
        InputError::Unreadable(m) => BatchError::Unreadable(m),
        InputError::Invalid(errors) | InputError::TooManyInvalid { listed: errors, .. } => {
            BatchError::Unreadable(format!("{errors:?}"))
        }
    })?;
    let origin = match object.get("origin") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => {
            return Err(BatchError::Unreadable(format!(
                "origin must be a string, not {}",
                json_type_name(other)
            )))
        }
    };
    let tickets = match object.remove("tickets").or_else(|| object.remove("Tickets")) {
        Some(Value::Array(tickets)) => tickets,
        Some(other) => {
            return Err(BatchError::Unreadable(format!(
                "tickets must be an array, not {}",
                json_type_name(&other)
            )))
        }
        None => return Err(BatchError::Unreadable("the body has no tickets array".into())),
    };
    let mut out = Vec::with_capacity(tickets.len());
    // Counted past the cap, not listed: a megabyte of bad tickets lists a thousand.
    let mut errors = ErrorList::new();
    let mut invalid_tickets = 0;
    for (index, value) in tickets.into_iter().enumerate() {
        match parse_ticket(value, origin.as_deref(), TicketSource::Api) {
            Ok(ticket) if errors.is_empty() => out.push(ticket),
            // The batch is refused already: the valid tickets after are not kept.
            Ok(_) => {}
            Err(fields) => {
                out = Vec::new();
                invalid_tickets += 1;
                let unlisted = fields.total - fields.listed.len() as u64;
                for (field, error) in fields.listed {
                    errors.push(TicketError { index, field, error });
                }
                errors.count_unlisted(unlisted);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(BatchError::Invalid {
            errors,
            invalid_tickets,
        })
    }
}

/// What a pulled source answered: the tickets that could be read, and why the others
/// could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceBatch {
    pub tickets: Vec<Ticket>,
    /// One entry per invalid field of the tickets left out.
    pub rejected: Vec<RejectedTicket>,
    /// How many tickets the answer held, read or not.
    pub received: usize,
}

/// One invalid field of a pulled ticket left out, with the ticket's `uid` when its `id`
/// could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedTicket {
    pub uid: Option<String>,
    pub error: TicketError,
}

/// Reads a source's answer, `{"tickets": [...]}` or (older versions) a bare list, as
/// tickets of `origin`. A ticket that cannot be read is left out and reported; the
/// others are kept. `Err` when the answer is not a list of tickets at all.
pub fn parse_source_answer(body: &[u8], source: TicketSource, origin: &str) -> Result<SourceBatch, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        format!("the answer is not JSON ({e}); it starts with {start:?}")
    })?;
    let tickets = match value {
        Value::Array(tickets) => tickets,
        Value::Object(mut object) => match object.remove("tickets") {
            Some(Value::Array(tickets)) => tickets,
            Some(other) => return Err(format!("tickets is {}, not a list", json_type_name(&other))),
            None => return Err("the answer has no tickets list".into()),
        },
        other => {
            return Err(format!(
                "the answer is {}, not a list of tickets",
                json_type_name(&other)
            ))
        }
    };
    let mut batch = SourceBatch {
        received: tickets.len(),
        ..SourceBatch::default()
    };
    for (index, value) in tickets.into_iter().enumerate() {
        let uid = match value.get("id") {
            Some(Value::Number(n)) => Some(format!("{origin}{n}")),
            Some(Value::String(s)) if !s.trim().is_empty() => Some(format!("{origin}{}", s.trim())),
            _ => None,
        };
        match parse_ticket(value, Some(origin), source) {
            Ok(mut ticket) => {
                // The source decides the origin of what it answers.
                ticket.origin = origin.to_string();
                ticket.uid = format!("{origin}{}", ticket.id);
                batch.tickets.push(ticket);
            }
            Err(fields) => batch
                .rejected
                .extend(fields.listed.into_iter().map(|(field, error)| RejectedTicket {
                    uid: uid.clone(),
                    error: TicketError { index, field, error },
                })),
        }
    }
    Ok(batch)
}

/// The invalid fields of one ticket: a ticket of a million bad articles lists the first.
type FieldErrors = ErrorList<(String, String)>;

/// The invalid fields of one article (a few at most).
type ArticleErrors = Vec<(String, String)>;

/// Reads one ticket, listing every invalid field.
pub fn parse_ticket(value: Value, default_origin: Option<&str>, source: TicketSource) -> Result<Ticket, FieldErrors> {
    let Value::Object(mut map) = value else {
        return Err(ErrorList::one((
            "ticket".into(),
            format!("must be an object, not {}", json_type_name(&value)),
        )));
    };
    let mut errors = FieldErrors::new();
    let mut err = |field: &str, error: String| errors.push((field.to_string(), error));

    let id = match map.remove("id") {
        None | Some(Value::Null) => {
            err("id", "is required".into());
            None
        }
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(TicketId::Number),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(TicketId::Text(s.trim().to_string())),
        Some(_) => {
            err("id", "must be a ticket number or non-empty text".into());
            None
        }
    };
    let date = match map.remove("date") {
        // A pulled ticket still counts without a readable date.
        None | Some(Value::Null) if source.is_pulled() => Some(None),
        Some(Value::String(s)) if source.is_pulled() => Some(parse_date_time(&s).ok()),
        Some(_) if source.is_pulled() => Some(None),
        None | Some(Value::Null) => {
            err("date", "is required".into());
            None
        }
        Some(Value::String(s)) => parse_date_time(&s).map(Some).map_err(|e| err("date", e)).ok(),
        Some(other) => {
            err(
                "date",
                format!("must be a date-time string, not {}", json_type_name(&other)),
            );
            None
        }
    };
    let prix = match map.remove("prix") {
        None | Some(Value::Null) => {
            err("prix", "is required".into());
            None
        }
        Some(v) => Cents::from_json(&v).map_err(|e| err("prix", e)).ok(),
    };
    let origin = match map.remove("origin") {
        None | Some(Value::Null) => default_origin.unwrap_or_default().to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            err("origin", format!("must be text, not {}", json_type_name(&other)));
            String::new()
        }
    };
    let client = text(&mut map, "client", &mut err);
    let mode_paiement = text(&mut map, "modePaiement", &mut err);
    let carte_fid = match map.remove("CarteFid").or_else(|| map.remove("carteFid")) {
        None => None,
        Some(v) => crate::input::card(&v)
            .map_err(|e| err("CarteFid", e.error))
            .ok()
            .flatten(),
    };
    let points_fidelite = match map.remove("pointsFidelite") {
        None | Some(Value::Null) => 0,
        Some(v) => count(&v).unwrap_or_else(|| {
            err("pointsFidelite", "must be a whole number of points".into());
            0
        }),
    };
    // The sources spell it `promo_client`; the web shop gives it on each article.
    let mut promo_client = map
        .remove("Promo_client")
        .or_else(|| map.remove("promo_client"))
        .unwrap_or(Value::Null);
    if promo_client.is_null() && source == TicketSource::WebShop {
        if let Some(Value::Array(items)) = map.get("articles") {
            promo_client = items
                .first()
                .and_then(|a| a.get("promo_client"))
                .cloned()
                .unwrap_or(Value::Null);
        }
    }
    let articles = match map.remove("articles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                parse_article(item, i, source)
                    .map_err(|e| errors_extend(&mut err, e))
                    .ok()
            })
            .collect(),
        Some(other) => {
            err("articles", format!("must be an array, not {}", json_type_name(&other)));
            Vec::new()
        }
    };
    match (id, date, prix) {
        (Some(id), Some(date), Some(prix)) if errors.is_empty() => Ok(Ticket {
            uid: format!("{origin}{id}"),
            id,
            date,
            prix,
            client,
            carte_fid,
            points_fidelite,
            mode_paiement,
            origin,
            promo_client,
            articles,
            unmatched: false,
        }),
        _ => Err(errors),
    }
}

fn errors_extend(err: &mut impl FnMut(&str, String), errors: ArticleErrors) {
    for (field, error) in errors {
        err(&field, error);
    }
}

fn text(map: &mut Map<String, Value>, field: &str, err: &mut impl FnMut(&str, String)) -> String {
    match map.remove(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            err(field, format!("must be text, not {}", json_type_name(&other)));
            String::new()
        }
    }
}

fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_article(value: Value, index: usize, source: TicketSource) -> Result<Article, ArticleErrors> {
    let field = |name: &str| format!("articles[{index}].{name}");
    let Value::Object(mut map) = value else {
        return Err(vec![(
            format!("articles[{index}]"),
            format!("must be an object, not {}", json_type_name(&value)),
        )]);
    };
    let mut errors = ArticleErrors::new();
    let mut money = |map: &mut Map<String, Value>, keys: &[&str], in_euros: bool| -> Cents {
        let Some(value) = keys.iter().find_map(|k| map.remove(*k)) else {
            return Cents::ZERO;
        };
        if value.is_null() {
            return Cents::ZERO;
        }
        let read = if in_euros {
            Cents::from_euros_json(&value)
        } else {
            Cents::from_json(&value)
        };
        read.unwrap_or_else(|e| {
            errors.push((field(keys[0]), e));
            Cents::ZERO
        })
    };
    // Older sources send the list price as `prix`; the shops' service sends the price
    // paid in euros.
    let prix_avant = money(&mut map, &["prixAvant", "prix"], false);
    let prix_apres = money(&mut map, &["prixApres"], source == TicketSource::Shops);
    let code_produit = match map.remove("codeProduit") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            errors.push((
                field("codeProduit"),
                format!("must be text, not {}", json_type_name(&other)),
            ));
            String::new()
        }
    };
    let quantity = match map.remove("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => count(&v).unwrap_or_else(|| {
            errors.push((field("quantity"), "must be a whole number".into()));
            0
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Article {
        code_produit,
        prix_avant,
        prix_apres,
        promo: map.remove("promo").unwrap_or(Value::Null),
        promo_client_produit: map.remove("promo_client_produit").unwrap_or(Value::Null),
        quantity,
    })
}

/// Reads a date-time: RFC 3339, or naive (read as UTC), or a bare date (midnight UTC).
pub fn parse_date_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(naive.and_utc());
        }
    }
    match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) if t.len() == 10 => Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
        _ => Err(format!("{} is not an RFC 3339 date-time", quoted(text))),
    }
}

/// A ticket in the shape of the first implementation's feeds (`/api/get_tickets`),
/// which the BI and promotion services parse strictly: the CRM's own ticket number
/// (unique across origins), a date without time, integers everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegacyTicket {
    /// The CRM's ticket number.
    pub id: u64,
    pub uid: String,
    /// `YYYY-MM-DD`, or null when the source's date was unreadable.
    pub date: Option<String>,
    pub prix: u64,
    pub client: String,
    #[serde(rename = "pointsFidelite")]
    pub points_fidelite: u64,
    #[serde(rename = "modePaiement")]
    pub mode_paiement: String,
    pub origin: String,
    /// 0 when the source gave none.
    #[serde(rename = "Promo_client")]
    pub promo_client: i64,
    pub articles: Vec<LegacyArticle>,
}

/// An article of a [`LegacyTicket`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegacyArticle {
    /// Unique across tickets.
    pub id: u64,
    #[serde(rename = "codeProduit")]
    pub code_produit: String,
    #[serde(rename = "prixAvant")]
    pub prix_avant: u64,
    #[serde(rename = "prixApres")]
    pub prix_apres: u64,
    /// Percent; 0 when the source gave none.
    pub promo: i64,
    pub promo_client_produit: i64,
    pub quantity: u64,
    /// The [`LegacyTicket::id`] of its ticket.
    pub ticket_id: u64,
}

/// Numbers given to the articles of tickets stored before articles were numbered:
/// past any count a ticket of the feed reaches.
const UNNUMBERED_ARTICLE_BASE: u64 = 1 << 40;

impl LegacyTicket {
    pub fn from_record(record: &TicketRecord) -> LegacyTicket {
        let t = &record.ticket;
        let first_article = match record.first_article_id {
            0 => UNNUMBERED_ARTICLE_BASE + record.seq * 1000,
            n => n,
        };
        LegacyTicket {
            id: record.seq,
            uid: t.uid.clone(),
            date: t.date.map(|d| d.format("%Y-%m-%d").to_string()),
            prix: t.prix.0,
            client: t.client.clone(),
            points_fidelite: t.points_fidelite,
            mode_paiement: t.mode_paiement.clone(),
            origin: t.origin.clone(),
            promo_client: integer(&t.promo_client),
            articles: t
                .articles
                .iter()
                .zip(first_article..)
                .map(|(a, id)| LegacyArticle {
                    id,
                    code_produit: a.code_produit.clone(),
                    prix_avant: a.prix_avant.0,
                    prix_apres: a.prix_apres.0,
                    promo: integer(&a.promo),
                    promo_client_produit: integer(&a.promo_client_produit),
                    quantity: a.quantity,
                    ticket_id: record.seq,
                })
                .collect(),
        }
    }
}

/// A number as the source sent it, as a whole number (rounded); 0 when absent or not
/// a number.
fn integer(value: &Value) -> i64 {
    let number = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.round() as i64),
        _ => None,
    };
    number.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer(id: u64, email: &str, card: Option<u64>) -> CustomerRecord {
        let new = crate::NewCustomer {
            nom: "A".into(),
            email: email.into(),
            carte_fid: card,
            ..Default::default()
        };
        new.into_record(id, Uuid::new_v4(), Utc::now())
    }

    fn priced(prix: u64, client: &str, card: Option<u64>) -> TicketRecord {
        let ticket = one(json!({
            "id": 1, "uid": "m1", "date": "2024-01-02T10:00:00Z", "prix": prix, "client": client,
            "CarteFid": card, "pointsFidelite": 0, "modePaiement": "CARD", "origin": "magasin",
            "Promo_client": 0, "articles": []
        }))
        .unwrap();
        TicketRecord {
            seq: 1,
            ticket,
            customer: None,
            first_article_id: 1,
        }
    }

    #[test]
    fn a_ticket_credits_half_its_price_and_counts_in_the_average_basket() {
        let mut c = customer(4, "a@x.fr", None);
        let mut t = priced(1001, "a@x.fr", None);
        t.ticket.unmatched = true;
        let entry = credit_ticket(&mut c, &mut t, Utc::now(), &|| "tickets[0]".into()).unwrap();
        assert_eq!(
            (entry.amount, entry.balance, entry.cause),
            (500, Cents(500), LedgerCause::Ticket)
        );
        assert_eq!(entry.key, Some(t.ticket.uid.clone()));
        assert_eq!((c.credit, c.ticket_count, c.ticket_total), (Cents(500), 1, Cents(1001)));
        assert_eq!(c.panier_moyen(), Cents(1001));
        assert_eq!((t.customer, t.ticket.unmatched), (Some(4), false));
    }

    #[test]
    fn a_ticket_past_the_largest_amount_changes_nothing() {
        let mut c = customer(4, "", None);
        c.ticket_total = Cents(crate::money::MAX_CENTS);
        let before = c.clone();
        let mut t = priced(2, "", Some(7));
        let refused = credit_ticket(&mut c, &mut t, Utc::now(), &|| "tickets[3]".into()).unwrap_err();
        assert_eq!(refused.field, "tickets[3]");
        assert_eq!((c, t.customer), (before, None));
    }

    #[test]
    fn a_ticket_goes_to_the_first_of_its_keys_a_customer_answers_to() {
        let by_card = customer(1, "", Some(7));
        let by_email = customer(2, "jo@x.fr", None);
        let ticket = priced(10, "Jo@x.fr", Some(7)).ticket;
        let find = |client: &ClientRef| -> Result<Option<CustomerRecord>, ()> {
            Ok(match client {
                ClientRef::Email(e) if e == "jo@x.fr" => Some(by_email.clone()),
                ClientRef::Card(7) => Some(by_card.clone()),
                _ => None,
            })
        };
        assert_eq!(matching_customer(&ticket, find).unwrap().map(|c| c.id), Some(2));
        let anonymous = priced(10, "", None).ticket;
        assert_eq!(matching_customer(&anonymous, find).unwrap(), None);
    }

    #[test]
    fn a_customer_gains_the_keys_it_did_not_answer_to_and_an_erased_one_keeps_its_id_only() {
        let old = customer(1, "a@x.fr", None);
        let mut carded = old.clone();
        carded.carte_fid = Some(9);
        assert_eq!(gained_client_refs(Some(&old), &carded), [ClientRef::Card(9)]);
        assert_eq!(
            gained_client_refs(None, &old),
            [ClientRef::IdClient(old.id_client), ClientRef::Email("a@x.fr".into())]
        );
        let mut erased = carded.clone();
        erased.erased = true;
        assert_eq!(client_refs_of(&erased), [ClientRef::IdClient(old.id_client)]);
        assert!(gained_client_refs(Some(&carded), &erased).is_empty());
    }

    fn one(v: Value) -> Result<Ticket, FieldErrors> {
        parse_ticket(v, Some("magasin"), TicketSource::Api)
    }

    fn fields(errors: FieldErrors) -> Vec<String> {
        let mut f: Vec<String> = errors.listed.into_iter().map(|(f, _)| f).collect();
        f.sort();
        f
    }

    #[test]
    fn the_documents_ticket_is_read() {
        let t = one(json!({
            "id": 42, "date": "2019-10-09T17:01:29.408701Z", "prix": 424,
            "client": "a14e39ce-e29e-11e9-a8cb-08002751d198", "pointsFidelite": 0,
            "modePaiement": "CASH", "origin": "e-commerce",
            "articles": [{"codeProduit": "X1-0", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]
        }))
        .unwrap();
        assert_eq!(t.uid, "e-commerce42");
        assert_eq!(t.prix, Cents(424));
        assert_eq!(t.credit(), Cents(212));
        assert_eq!(t.articles[0].prix_avant, Cents(800));
        assert_eq!(t.articles[0].quantity, 2);
        let out = serde_json::to_value(&t).unwrap();
        assert_eq!(out["date"], "2019-10-09T17:01:29.408701Z");
        assert_eq!(out["id"], 42);
        assert_eq!(out["articles"][0]["prixAvant"], 800);
        assert_eq!(
            t.client_refs(),
            [ClientRef::IdClient(
                Uuid::parse_str("a14e39ce-e29e-11e9-a8cb-08002751d198").unwrap()
            )]
        );
    }

    #[test]
    fn older_article_prix_is_the_list_price_and_batch_origin_applies() {
        let t = one(json!({"id": "T9", "date": "2019-01-07T09:00:00", "prix": 10.4,
            "articles": [{"codeProduit": "A", "prix": 120}]}))
        .unwrap();
        assert_eq!(t.articles[0].prix_avant, Cents(120));
        assert_eq!(t.uid, "magasinT9");
        assert_eq!(t.prix, Cents(10));
        assert_eq!(t.date.unwrap().to_rfc3339(), "2019-01-07T09:00:00+00:00");
        assert!(t.is_anonymous() && t.client_refs().is_empty());
    }

    #[test]
    fn every_bad_field_is_listed() {
        assert_eq!(fields(one(json!({})).unwrap_err()), ["date", "id", "prix"]);
        assert_eq!(
            fields(
                one(json!({"id": 1, "date": "yesterday", "prix": -3, "CarteFid": 0,
                "articles": [{"prixApres": -1}, "x"]}))
                .unwrap_err()
            ),
            ["CarteFid", "articles[0].prixApres", "articles[1]", "date", "prix"]
        );
        assert_eq!(
            fields(parse_ticket(json!(3), None, TicketSource::Api).unwrap_err()),
            ["ticket"]
        );
    }

    #[test]
    fn client_may_be_an_email_or_a_card() {
        let t = one(json!({"id": 1, "date": "2020-01-01", "prix": 1, "client": "Jo@X.fr", "CarteFid": 7})).unwrap();
        assert_eq!(
            t.client_refs(),
            [ClientRef::Email("jo@x.fr".into()), ClientRef::Card(7)]
        );
        assert!(!t.is_anonymous());
    }

    #[test]
    fn batches_index_their_errors_and_are_all_or_nothing() {
        let body = json!({"origin": "magasin", "tickets": [
            {"id": 1, "date": "2020-01-01", "prix": 5},
            {"id": 2, "prix": 5},
            {"id": 3, "date": "2020-01-01", "prix": "x"}
        ]});
        match parse_batch(body.to_string().as_bytes()) {
            Err(BatchError::Invalid {
                errors,
                invalid_tickets,
            }) => {
                let got: Vec<_> = errors.listed.iter().map(|e| (e.index, e.field.as_str())).collect();
                assert_eq!(got, [(1, "date"), (2, "prix")]);
                assert_eq!((errors.total, invalid_tickets), (2, 2));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_batch(b"[]"), Err(BatchError::Unreadable(_))));
        assert!(matches!(
            parse_batch(br#"{"tickets": 3}"#),
            Err(BatchError::Unreadable(_))
        ));
        let ok = parse_batch(br#"{"tickets": [{"id": 1, "date": "2020-01-01", "prix": 5, "origin": "e-commerce"}]}"#);
        assert_eq!(ok.unwrap()[0].uid, "e-commerce1");
    }

    #[test]
    fn a_batch_of_many_errors_lists_the_first_and_counts_them_all() {
        use crate::validation::MAX_LISTED_ERRORS;
        // 1,500 bad tickets, then one ticket of 2,000 bad articles.
        let mut tickets: Vec<Value> = (0..1_500).map(|_| json!(1)).collect();
        let articles: Vec<Value> = (0..2_000).map(|_| json!(1)).collect();
        tickets.push(json!({"id": 1, "date": "2020-01-01", "prix": 5, "articles": articles}));
        let body = json!({ "tickets": tickets }).to_string();
        let Err(BatchError::Invalid {
            errors,
            invalid_tickets,
        }) = parse_batch(body.as_bytes())
        else {
            panic!("not refused");
        };
        assert_eq!(errors.listed.len(), MAX_LISTED_ERRORS);
        assert_eq!((errors.total, invalid_tickets), (3_500, 1_501));
        assert_eq!(errors.listed[0].index, 0);
    }

    #[test]
    fn date_times_in_every_accepted_shape() {
        for good in [
            "2019-10-09T17:01:29.408701Z",
            "2019-10-09T19:01:29+02:00",
            "2019-10-09 17:01:29",
            "2019-10-09",
        ] {
            assert!(parse_date_time(good).is_ok(), "{good}");
        }
        for bad in ["2019-02-30", "09/10/2019", "", "2019-10-09T25:00:00"] {
            assert!(parse_date_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shops_sale_is_read_with_a_naive_date_euros_and_promo_client() {
        let body = json!({"tickets": [
            {"id": 1, "date": "2019-01-07T09:00:00", "prix": 425, "client": "a14e39ce-e29e-11e9-a8cb-08002751d198",
             "pointsFidelite": 0, "modePaiement": "CASH", "promo_client": 7,
             "articles": [{"codeProduit": "X1", "familleProduit": "F", "descriptionProduit": "D", "quantiteMin": 1,
                           "packaging": 1, "prix": 500, "exclusivite": "", "promo": 15, "prixApres": 4.25,
                           "stock": 3, "quantity": 1, "promo_client_produit": 0}]},
            {"id": 2, "date": "2019-01-07T09:30:00.123", "prix": 100, "client": "", "pointsFidelite": 0,
             "modePaiement": "CARD", "articles": []},
            {"id": 3, "date": "demain", "prix": 100, "client": "33", "modePaiement": "CASH", "articles": []},
            {"id": 4, "prix": -5},
            "nope"
        ]});
        let batch = parse_source_answer(body.to_string().as_bytes(), TicketSource::Shops, "magasin").unwrap();
        assert_eq!(batch.received, 5);
        assert_eq!(batch.tickets.len(), 3);
        let t = &batch.tickets[0];
        assert_eq!(
            (t.uid.as_str(), t.prix, t.promo_client.clone()),
            ("magasin1", Cents(425), json!(7))
        );
        assert_eq!(
            (t.articles[0].prix_avant, t.articles[0].prix_apres),
            (Cents(500), Cents(425))
        );
        assert!(batch.tickets[1].date.is_some() && batch.tickets[1].is_anonymous());
        // An unreadable date is kept as null; a raw card value names the card.
        assert_eq!(batch.tickets[2].date, None);
        assert_eq!(batch.tickets[2].client_refs(), [ClientRef::Card(33)]);
        let rejected: Vec<_> = batch
            .rejected
            .iter()
            .map(|r| (r.error.index, r.error.field.as_str(), r.uid.as_deref()))
            .collect();
        assert_eq!(rejected, [(3, "prix", Some("magasin4")), (4, "ticket", None)]);
    }

    #[test]
    fn the_web_shops_ticket_takes_its_promo_client_from_the_first_article() {
        let body = json!({"tickets": [{"id": 1, "date": "2019-01-07T09:00:00Z", "prix": 800,
            "client": "Jo@Mail.com", "pointsFidelite": 0, "modePaiement": "CARD",
            "articles": [{"codeProduit": "A", "prix": 1000, "prixApres": 799.6, "promo": 20, "promo_client": 5,
                          "promo_client_produit": 10, "quantity": 1}]}]});
        let batch = parse_source_answer(body.to_string().as_bytes(), TicketSource::WebShop, "e-commerce").unwrap();
        let t = &batch.tickets[0];
        assert_eq!((t.uid.as_str(), t.promo_client.clone()), ("e-commerce1", json!(5)));
        assert_eq!(t.articles[0].prix_apres, Cents(800));
        assert_eq!(t.client_refs(), [ClientRef::Email("jo@mail.com".into())]);
    }

    #[test]
    fn older_bare_lists_are_read_and_other_answers_refused() {
        let bare = br#"[{"id": 9, "date": "2019-01-07T09:00:00", "prix": 1, "client": ""}]"#;
        let batch = parse_source_answer(bare, TicketSource::Shops, "magasin").unwrap();
        assert_eq!(batch.tickets[0].uid, "magasin9");
        for bad in [&b"<html>down</html>"[..], b"{\"tick", b"{}", b"3", br#"{"tickets": 1}"#] {
            assert!(parse_source_answer(bad, TicketSource::Shops, "magasin").is_err());
        }
    }

    #[test]
    fn the_older_feed_shape_has_the_crms_numbers_a_date_and_integers() {
        let mut ticket = one(
            json!({"id": 1, "date": "2019-01-07T09:00:00", "prix": 425, "client": "x@y.fr",
            "promo_client": 7.0, "articles": [
                {"codeProduit": "A", "prixAvant": 500, "prixApres": 425, "promo": 15.0, "quantity": 1},
                {"codeProduit": "B", "prix": 20, "quantity": 2}]}),
        )
        .unwrap();
        let record = TicketRecord {
            seq: 12,
            ticket: ticket.clone(),
            customer: None,
            first_article_id: 31,
        };
        let out = serde_json::to_value(LegacyTicket::from_record(&record)).unwrap();
        assert_eq!(out["id"], 12);
        assert_eq!(out["date"], "2019-01-07");
        assert_eq!(out["Promo_client"], 7);
        assert_eq!(
            out["articles"][0],
            json!({"id": 31, "codeProduit": "A", "prixAvant": 500, "prixApres": 425,
            "promo": 15, "promo_client_produit": 0, "quantity": 1, "ticket_id": 12})
        );
        assert_eq!(out["articles"][1]["id"], 32);
        ticket.date = None;
        ticket.promo_client = Value::Null;
        let out = serde_json::to_value(LegacyTicket::from_record(&TicketRecord { ticket, ..record })).unwrap();
        assert_eq!(
            (out["date"].clone(), out["Promo_client"].clone()),
            (Value::Null, json!(0))
        );
    }
}

//! Customer import files (`POST /api/update_db`, `crm-server import`): format
//! detection and streaming row parsing, pure over any [`std::io::Read`].
//!
//! Four formats: the document's `{"clients": [...]}`, a JSON array, JSON lines, and CSV
//! with a header row. Rows are read one at a time (a row is never larger than
//! [`MAX_ROW_BYTES`]), so a file of any size is parsed in bounded memory; each row is
//! validated as the create route validates a body ([`NewCustomer::from_input`]).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Chain, Cursor, Read};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::customer::{email_key, CustomerRecord};
use crate::input::{CustomerInput, NewCustomer};
use crate::money::Cents;
use crate::validation::InputError;

/// Largest single row: past it the file is unreadable (a missing bracket would
/// otherwise swallow the rest of the file into one row).
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// How many bytes of the file are looked at to tell its format.
const SNIFF_BYTES: usize = 8 * 1024;

/// The layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// The document's `{"clients": [...]}`.
    Clients,
    /// `[{...}, {...}]`.
    Array,
    /// One JSON object per line.
    JsonLines,
    /// A header row of customer keys, then one customer per row (`,`, `;` or tab).
    Csv,
}

/// What the sender declared about the file, from its `Content-Type` or file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Json,
    JsonLines,
    Csv,
}

fn declared(content_type: Option<&str>, file_name: Option<&str>) -> Option<Declared> {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    let by_type = match essence.as_deref() {
        Some("text/csv" | "application/csv" | "text/comma-separated-values" | "application/vnd.ms-excel") => {
            Some(Declared::Csv)
        }
        Some(
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines",
        ) => Some(Declared::JsonLines),
        Some(t) if t == "application/json" || t.ends_with("+json") => Some(Declared::Json),
        _ => None,
    };
    let extension = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    by_type.or(match extension.as_deref() {
        Some("csv") => Some(Declared::Csv),
        Some("jsonl" | "ndjson") => Some(Declared::JsonLines),
        Some("json") => Some(Declared::Json),
        _ => None,
    })
}

impl ImportFormat {
    /// Chooses the format from what the sender declared (`Content-Type`, else the file
    /// name's extension) when the content agrees with it, else from the content: `[` is
    /// an array; `{` is the document's object when its first key is `clients`, else
    /// JSON lines; anything else is CSV. `head` is the start of the file.
    pub fn detect(
        content_type: Option<&str>,
        file_name: Option<&str>,
        head: &[u8],
    ) -> Result<ImportFormat, InputError> {
        let declared = declared(content_type, file_name);
        let content = skip_bom_and_space(head);
        let format = match content.first() {
            None => return Err(InputError::Unreadable("the file is empty".into())),
            Some(b'[') => ImportFormat::Array,
            Some(b'{') if declared == Some(Declared::JsonLines) => ImportFormat::JsonLines,
            Some(b'{') if first_key_is_clients(content) => ImportFormat::Clients,
            Some(b'{') => ImportFormat::JsonLines,
            Some(_) if declared == Some(Declared::Json) || declared == Some(Declared::JsonLines) => {
                return Err(InputError::Unreadable(
                    "the file was sent as JSON but does not start with [ or {".into(),
                ))
            }
            Some(_) => ImportFormat::Csv,
        };
        Ok(format)
    }

    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::Clients => "json",
            ImportFormat::Array => "array",
            ImportFormat::JsonLines => "jsonl",
            ImportFormat::Csv => "csv",
        }
    }
}

fn skip_bom_and_space(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Whether an object starting at `content[0] == b'{'` has `clients` as first key.
fn first_key_is_clients(content: &[u8]) -> bool {
    let rest = skip_bom_and_space(&content[1..]);
    rest.starts_with(b"\"clients\"")
}

/// Which keys an import row carried: an update changes only those (an empty CSV cell is
/// a key not given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    pub prenom: bool,
    pub email: bool,
    pub phone: bool,
    pub compte: bool,
    pub age: bool,
    pub sexe: bool,
    pub credit: bool,
    pub carte_fid: bool,
}

/// One valid row of an import file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    /// Position in the file, from 1 (the CSV header is not a row).
    pub row: u64,
    pub customer: NewCustomer,
    pub given: Given,
}

impl ImportRow {
    /// The error of a row whose new customer would pass the bound of money once
    /// credited with the unmatched tickets of `waiting` (those waiting for its
    /// `IdClient`, e-mail or card, matched when it is created in the same write): its
    /// credit, or the total of its tickets behind the average basket.
    pub fn waiting_tickets_overflow<'a>(
        &self,
        waiting: impl IntoIterator<Item = &'a crate::tickets::Ticket>,
    ) -> Option<RowError> {
        use crate::money::MAX_CENTS;
        let add = |total: Option<u64>, amount: Cents| total?.checked_add(amount.0).filter(|sum| *sum <= MAX_CENTS);
        let (mut credit, mut basket, mut count) = (Some(self.customer.opening_credit.0), Some(0), 0u64);
        for ticket in waiting.into_iter().filter(|t| t.unmatched) {
            count += 1;
            credit = add(credit, ticket.credit());
            basket = add(basket, ticket.prix);
        }
        if count == 0 {
            return None;
        }
        let tickets = if count == 1 {
            "the unmatched ticket".to_string()
        } else {
            format!("the {count} unmatched tickets")
        };
        if credit.is_none() {
            Some(self.error(
                "Credit",
                &format!(
                    "with {tickets} waiting for this customer, its credit would pass the largest amount, {MAX_CENTS} cents"
                ),
            ))
        } else if basket.is_none() {
            Some(self.error(
                "PanierMoyen",
                &format!("{tickets} waiting for this customer total more than the largest amount, {MAX_CENTS} cents"),
            ))
        } else {
            None
        }
    }

    /// An error of this row about `field`.
    pub fn error(&self, field: &str, error: &str) -> RowError {
        RowError {
            row: self.row,
            field: field.into(),
            error: error.into(),
        }
    }

    /// Sets the fields the row carried on an existing customer (the name always: it is
    /// required). Credit and payments move through the ledger and the payments store,
    /// so the caller handles [`NewCustomer::opening_credit`] and
    /// [`NewCustomer::scheduled_payment`]. `updated_at` is left alone, so comparing the
    /// result with the original tells whether the row changes anything.
    pub fn apply_to(&self, record: &mut CustomerRecord) {
        let (c, g) = (&self.customer, &self.given);
        record.nom.clone_from(&c.nom);
        if g.prenom {
            record.prenom.clone_from(&c.prenom);
        }
        if g.email {
            record.email.clone_from(&c.email);
        }
        if g.phone {
            record.phone.clone_from(&c.phone);
        }
        if g.compte {
            record.compte.clone_from(&c.compte);
        }
        if g.age {
            record.age = c.age;
        }
        if g.sexe {
            record.sexe = c.sexe;
        }
        if g.carte_fid {
            record.carte_fid = c.carte_fid;
        }
    }

    /// The credit balance the row sets, when it gives one.
    pub fn credit(&self) -> Option<Cents> {
        self.given.credit.then_some(self.customer.opening_credit)
    }

    /// Whether nothing can ever match this row to a stored customer: it has neither
    /// `IdClient` nor `Email`, so it creates a customer each time the file is imported.
    pub fn is_unmatchable(&self) -> bool {
        self.customer.id_client.is_none() && email_key(&self.customer.email).is_none()
    }

    /// What this row writes to the stored customer `old` it updates (see
    /// [`RowUpdate`]).
    pub fn update_of(&self, old: &CustomerRecord) -> RowUpdate {
        let mut record = old.clone();
        self.apply_to(&mut record);
        RowUpdate {
            record,
            new_balance: self.credit().filter(|credit| *credit != old.credit),
            // A row carries one payment, which replaces the pending ones, unless it is
            // the one already scheduled (importing a file again changes nothing).
            payment: self
                .customer
                .scheduled_payment
                .filter(|(date, montant)| (old.next_payment, old.pending_payments) != (Some(*date), *montant)),
        }
    }

    /// What an update by this row makes of `record`, and whether it changes anything.
    /// Credit and the scheduled payment are set directly here, for previews (dry runs);
    /// the store moves them through its ledger and payment schedule.
    pub fn preview_update(&self, record: &CustomerRecord, now: DateTime<Utc>) -> (CustomerRecord, bool) {
        let plan = self.update_of(record);
        let mut updated = plan.record;
        if let Some(credit) = plan.new_balance {
            updated.credit = credit;
        }
        if let Some((date, montant)) = plan.payment {
            updated.next_payment = Some(date);
            updated.pending_payments = montant;
        }
        let changed = updated != *record;
        if changed {
            updated.updated_at = now;
        }
        (updated, changed)
    }
}

/// What an import row writes to the stored customer it updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowUpdate {
    /// The customer with the row's fields (those it gives; `Nom` always); its credit
    /// and payments as they were.
    pub record: CustomerRecord,
    /// The balance the row sets, when it gives one that differs: moved through the
    /// ledger (an import adjustment).
    pub new_balance: Option<Cents>,
    /// The payment (due date, amount) that replaces the customer's pending ones, when
    /// the row gives one other than the one pending.
    pub payment: Option<(chrono::NaiveDate, Cents)>,
}

/// One problem of one row, as the import answer lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowError {
    /// Position in the file, from 1.
    pub row: u64,
    /// The key (`Nom`, `Email`...), or `row` when the row as a whole is unreadable.
    pub field: String,
    pub error: String,
}

impl RowError {
    /// The error of row `row` whose e-mail or card (`field`) the stored customer with
    /// IdClient `holder` already holds.
    pub fn taken(row: u64, field: &str, holder: impl std::fmt::Display) -> RowError {
        let what = if field == "Email" { "e-mail" } else { "card" };
        RowError {
            row,
            field: field.into(),
            error: format!("this {what} is already used by customer {holder}"),
        }
    }
}

/// What reading one row gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    Valid(ImportRow),
    Invalid(Vec<RowError>),
}

/// Why a file cannot be read at all (the whole import fails, HTTP `400`).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Unreadable(String),
    /// The source failed (the upload was cut, the disk failed, a size limit was hit).
    #[error("the file could not be read: {0}")]
    Io(#[from] std::io::Error),
}

/// `mode=` of an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Rows update the customers they match and create the others.
    #[default]
    Merge,
    /// As merge, then every customer absent from the file is erased.
    Replace,
}

impl ImportMode {
    pub fn parse(text: &str) -> Option<ImportMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "merge" => Some(ImportMode::Merge),
            "replace" => Some(ImportMode::Replace),
            _ => None,
        }
    }
}

/// How to run an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    pub mode: ImportMode,
    /// Validate and count, write nothing.
    pub dry_run: bool,
    /// Write the valid rows and report the invalid ones (skipped) instead of refusing
    /// the whole file. Only with `mode=merge`: with `replace`, the customer of a skipped
    /// row would be erased.
    pub skip_invalid: bool,
}

impl ImportOptions {
    /// Why these options cannot run together, if they cannot.
    pub fn conflict(&self) -> Option<&'static str> {
        (self.skip_invalid && self.mode == ImportMode::Replace).then_some(
            "skip_invalid cannot be used with mode=replace: the customer of a skipped row would be erased; \
             fix the file, or import it with mode=merge",
        )
    }
}

/// The outcome of an import. With any error nothing was written, unless the import
/// skipped the invalid rows (`skip_invalid`): then the others were written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Customers created by rows that match no stored customer and no earlier row.
    pub created: u64,
    /// Rows that change the customer they match, and rows that match the customer of an
    /// earlier row of the same file (by `IdClient` or `Email`): rows apply in file order.
    pub updated: u64,
    /// Rows that match a stored customer and change nothing.
    pub unchanged: u64,
    /// Customers erased because absent from a `mode=replace` file.
    pub erased: u64,
    /// The bad rows in file order (at most [`MAX_LISTED_ERRORS`]).
    pub errors: Vec<RowError>,
    /// How many errors there were in all, listed or not.
    #[serde(default)]
    pub error_count: u64,
    /// With `skip_invalid`: the rows not imported because invalid (listed in `errors`).
    #[serde(default)]
    pub skipped: u64,
    /// Rows with neither `IdClient` nor `Email`: nothing can match them to a stored
    /// customer, so importing the same file again creates them again.
    #[serde(default)]
    pub unmatchable: u64,
}

/// The warning for `count` rows that no import can match to a stored customer, or
/// `None` when there are none.
pub fn unmatchable_warning(count: u64) -> Option<String> {
    match count {
        0 => None,
        1 => Some("1 row has neither IdClient nor Email: importing this file again would create it again".into()),
        n => Some(format!(
            "{n} rows have neither IdClient nor Email: importing this file again would create them again"
        )),
    }
}

/// Most row errors an answer lists; `error_count` still counts them all (the cap of
/// every error list, see [`crate::validation::MAX_LISTED_ERRORS`]).
pub const MAX_LISTED_ERRORS: usize = crate::validation::MAX_LISTED_ERRORS;

impl ImportReport {
    /// Records a row error, keeping at most [`MAX_LISTED_ERRORS`] of the earliest rows.
    pub fn push_error(&mut self, error: RowError) {
        self.error_count += 1;
        self.errors.push(error);
        if self.errors.len() >= 2 * MAX_LISTED_ERRORS {
            self.sort_and_cap_errors();
        }
    }

    /// Puts the listed errors in file order and drops those past the cap.
    pub fn sort_and_cap_errors(&mut self) {
        self.errors.sort_by_key(|e| e.row);
        self.errors.truncate(MAX_LISTED_ERRORS);
    }

    /// See [`unmatchable_warning`].
    pub fn unmatchable_warning(&self) -> Option<String> {
        unmatchable_warning(self.unmatchable)
    }
}

// ---------------------------------------------------------------------------------
// The rows of one file against each other. A row is matched by its `IdClient`, else
// its `Email` (case-insensitive): to a stored customer, or, when an earlier row of the
// same file carries that key, to the customer of that earlier row, which the row then
// updates (rows apply in file order). Two rows giving one e-mail or card to two
// different customers conflict. Only hashes of the keys that two rows or more carry are
// kept, so a file of unique keys costs no memory past its first pass.

/// What kind of unique key a row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    IdClient,
    Email,
    Card,
}

impl KeyKind {
    fn field(self) -> &'static str {
        match self {
            KeyKind::IdClient => "IdClient",
            KeyKind::Email => "Email",
            KeyKind::Card => "CarteFid",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KeyKind::IdClient => "IdClient",
            KeyKind::Email => "e-mail",
            KeyKind::Card => "card",
        }
    }
}

/// A 128-bit hash of a key and its kind: two different keys collide with odds around
/// 1e-27 for a million rows.
fn key_hash(kind: KeyKind, key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        (salt, kind as u8, key).hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The unique keys one row carries, hashed: its `IdClient`, its e-mail (lower-cased)
/// and its card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowKeys {
    id_client: Option<u128>,
    email: Option<u128>,
    card: Option<u128>,
}

impl RowKeys {
    pub fn of(row: &ImportRow) -> RowKeys {
        let c = &row.customer;
        RowKeys {
            id_client: c.id_client.map(|id| key_hash(KeyKind::IdClient, id.as_bytes())),
            email: email_key(&c.email).map(|e| key_hash(KeyKind::Email, e.as_bytes())),
            card: c.carte_fid.map(|card| key_hash(KeyKind::Card, &card.to_be_bytes())),
        }
    }

    fn all(&self) -> impl Iterator<Item = (KeyKind, u128)> {
        [
            (KeyKind::IdClient, self.id_client),
            (KeyKind::Email, self.email),
            (KeyKind::Card, self.card),
        ]
        .into_iter()
        .filter_map(|(kind, hash)| hash.map(|h| (kind, h)))
    }
}

/// Pass 1: the keys of every valid row, to find those two rows or more carry.
#[derive(Debug, Default)]
pub struct KeyCensus(Vec<u128>);

impl KeyCensus {
    pub fn add(&mut self, keys: &RowKeys) {
        self.0.extend(keys.all().map(|(_, hash)| hash));
    }

    /// The keys carried by two rows or more.
    pub fn shared(mut self) -> SharedKeys {
        self.0.sort_unstable();
        let mut shared: Vec<u128> = self.0.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        shared.dedup();
        shared.shrink_to_fit();
        SharedKeys(shared)
    }
}

/// The keys that two rows or more of a file carry, sorted: only through them can a row
/// meet another row of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedKeys(Vec<u128>);

impl SharedKeys {
    fn contains(&self, hash: u128) -> bool {
        self.0.binary_search(&hash).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first row of the file that carried a key, and the customer it went to.
#[derive(Debug, Clone, Copy)]
struct Owner {
    row: u64,
    target: u64,
}

/// Pass 2: the customers the rows read so far went to, by the keys they share with
/// other rows of the file. A customer is an opaque number of the caller's (the store's
/// id of the customer, existing or to be created).
#[derive(Debug, Default)]
pub struct FileCustomers {
    shared: SharedKeys,
    owners: HashMap<u128, Owner>,
}

impl FileCustomers {
    pub fn new(shared: SharedKeys) -> FileCustomers {
        FileCustomers {
            shared,
            owners: HashMap::new(),
        }
    }

    /// The customer an earlier row went to that carried this row's match key
    /// (`IdClient`, else `Email`): this row updates that customer too.
    pub fn earlier_target(&self, keys: &RowKeys) -> Option<u64> {
        let key = keys.id_client.or(keys.email)?;
        self.owners.get(&key).map(|owner| owner.target)
    }

    /// The errors of a row going to `target` whose keys an earlier row carried for
    /// another customer (an e-mail or card given to two customers).
    pub fn conflicts(&self, row: u64, keys: &RowKeys, target: u64) -> Vec<RowError> {
        keys.all()
            .filter_map(|(kind, hash)| {
                let owner = self.owners.get(&hash)?;
                (owner.target != target).then(|| RowError {
                    row,
                    field: kind.field().into(),
                    error: format!(
                        "row {} gives this {} to another customer (a row updates the customer of an earlier \
                         row only through its IdClient, else its Email)",
                        owner.row,
                        kind.what()
                    ),
                })
            })
            .collect()
    }

    /// Records that the row's keys went to `target` (a key stays with the first row
    /// that carried it). Rows with errors are not recorded: no later row goes to their customer.
    pub fn record(&mut self, row: u64, keys: &RowKeys, target: u64) {
        for (_, hash) in keys.all() {
            if self.shared.contains(hash) {
                self.owners.entry(hash).or_insert(Owner { row, target });
            }
        }
    }

    /// How many keys are held in memory.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

/// Which stage an import is in, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Reading and validating the file.
    Reading,
    /// Checking the rows against the stored customers.
    Checking,
    /// Writing the rows.
    Writing,
    /// Erasing the customers absent from a `mode=replace` file.
    Erasing,
}

/// A progress report: `done` of `total` (unknown while reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub phase: ImportPhase,
    pub done: u64,
    pub total: Option<u64>,
}

type Source<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

/// The rows of an import file, read one at a time.
pub struct ImportRows<R: Read> {
    format: ImportFormat,
    parser: Parser<R>,
}

enum Parser<R: Read> {
    Json(JsonRows<Source<R>>),
    Csv(CsvRows<Source<R>>),
}

impl<R: Read> ImportRows<R> {
    /// Reads the start of `reader` to tell its format (see [`ImportFormat::detect`]).
    pub fn open(mut reader: R, content_type: Option<&str>, file_name: Option<&str>) -> Result<Self, ImportError> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut reader).take(SNIFF_BYTES as u64).read_to_end(&mut head)?;
        let format = ImportFormat::detect(content_type, file_name, &head).map_err(unreadable)?;
        let bom = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        head.drain(..bom);
        let source = BufReader::with_capacity(64 * 1024, Cursor::new(head).chain(reader));
        let parser = match format {
            ImportFormat::Csv => Parser::Csv(CsvRows::new(source)?),
            json => Parser::Json(JsonRows::new(source, json)),
        };
        Ok(ImportRows { format, parser })
    }

    pub fn format(&self) -> ImportFormat {
        self.format
    }
}

impl<R: Read> Iterator for ImportRows<R> {
    type Item = Result<RowOutcome, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.parser {
            Parser::Json(rows) => rows.next(),
            Parser::Csv(rows) => rows.next(),
        }
    }
}

fn unreadable(e: InputError) -> ImportError {
    match e {
        InputError::Unreadable(m) => ImportError::Unreadable(m),
        InputError::Invalid(errors) | InputError::TooManyInvalid { listed: errors, .. } => {
            ImportError::Unreadable(errors.into_iter().map(|e| e.error).collect::<Vec<_>>().join("; "))
        }
    }
}

/// Validates one row's keys into an [`ImportRow`], listing every invalid field.
pub fn validate_row(row: u64, input: &CustomerInput) -> RowOutcome {
    match NewCustomer::from_input(input) {
        Ok(customer) => {
            let given = Given {
                prenom: input.prenom.is_some(),
                email: input.email.is_some(),
                phone: input.phone.is_some(),
                compte: input.compte.is_some(),
                age: input.age.is_some(),
                sexe: input.sexe.is_some(),
                credit: input.credit.is_some(),
                carte_fid: input.carte_fid.is_some(),
            };
            RowOutcome::Valid(ImportRow { row, customer, given })
        }
        Err(InputError::Invalid(errors) | InputError::TooManyInvalid { listed: errors, .. }) => RowOutcome::Invalid(
            errors
                .into_iter()
                .map(|e| RowError {
                    row,
                    field: e.field,
                    error: e.error,
                })
                .collect(),
        ),
        Err(InputError::Unreadable(error)) => row_error(row, error),
    }
}

fn row_error(row: u64, error: impl Into<String>) -> RowOutcome {
    RowOutcome::Invalid(vec![RowError {
        row,
        field: "row".into(),
        error: error.into(),
    }])
}

// ---------------------------------------------------------------------------------
// JSON: a byte scanner finds where each row's value starts and ends (strings and
// nesting tracked), then serde reads that one value.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the opening `[` or `{`.
    Start,
    /// Inside the rows' array (`first`: no row read yet).
    Items {
        first: bool,
    },
    /// Inside the document's object, between keys.
    Keys {
        first: bool,
    },
    /// JSON lines: values one after the other.
    Lines,
    /// Rows done; only the end of the file may follow.
    Trailer,
    Done,
}

struct JsonRows<B: BufRead> {
    source: B,
    format: ImportFormat,
    stage: Stage,
    row: u64,
    buf: Vec<u8>,
    /// Whether the `clients` key has been seen.
    found_clients: bool,
    /// JSON lines: the lines read so far, so that an unreadable one can be named.
    line: u64,
}

impl<B: BufRead> JsonRows<B> {
    fn new(source: B, format: ImportFormat) -> Self {
        JsonRows {
            source,
            format,
            stage: Stage::Start,
            row: 0,
            buf: Vec::new(),
            found_clients: false,
            line: 0,
        }
    }

    /// The next byte that is not white space, not consumed; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, ImportError> {
        loop {
            let chunk = self.source.fill_buf()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            match chunk.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let b = chunk[i];
                    self.source.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = chunk.len();
                    self.source.consume(n);
                }
            }
        }
    }

    fn expect(&mut self, wanted: u8, context: &str) -> Result<(), ImportError> {
        match self.peek()? {
            Some(b) if b == wanted => {
                self.source.consume(1);
                Ok(())
            }
            Some(b) => Err(ImportError::Unreadable(format!(
                "{context}: expected '{}', found '{}'",
                wanted as char,
                b.escape_ascii()
            ))),
            None => Err(ImportError::Unreadable(format!(
                "{context}: the file ends where '{}' was expected",
                wanted as char
            ))),
        }
    }

    /// Copies the next JSON value (after white space) into `self.buf`.
    fn capture(&mut self) -> Result<(), ImportError> {
        self.buf.clear();
        let Some(first) = self.peek()? else {
            return Err(ImportError::Unreadable(
                "the file ends where a value was expected".into(),
            ));
        };
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let chunk = self.source.fill_buf()?;
            if chunk.is_empty() {
                if scalar && !self.buf.is_empty() {
                    return Ok(());
                }
                return Err(ImportError::Unreadable("the file ends inside a value".into()));
            }
            let mut end = None;
            for (i, &b) in chunk.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                } else if scalar {
                    if b.is_ascii_whitespace() || matches!(b, b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':') {
                        end = Some(i);
                        break;
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            let n = end.unwrap_or(chunk.len());
            self.buf.extend_from_slice(&chunk[..n]);
            self.source.consume(n);
            if self.buf.len() > MAX_ROW_BYTES {
                return Err(ImportError::Unreadable(format!(
                    "a value is larger than {MAX_ROW_BYTES} bytes (is a bracket missing?)"
                )));
            }
            if end.is_some() {
                if self.buf.is_empty() {
                    return Err(ImportError::Unreadable(format!(
                        "unexpected '{}' where a value was expected",
                        first.escape_ascii()
                    )));
                }
                return Ok(());
            }
        }
    }

    /// JSON lines: copies the next line that is not blank into `self.buf`; `false` at
    /// the end of the file. Each line is one value, so a line cut off stays on its line
    /// instead of swallowing the next ones.
    fn capture_line(&mut self) -> Result<bool, ImportError> {
        loop {
            self.buf.clear();
            let mut ended = false;
            loop {
                let chunk = self.source.fill_buf()?;
                if chunk.is_empty() {
                    ended = true;
                    break;
                }
                let end = chunk.iter().position(|&b| b == b'\n');
                let n = end.map_or(chunk.len(), |i| i + 1);
                self.buf.extend_from_slice(&chunk[..end.unwrap_or(n)]);
                self.source.consume(n);
                if self.buf.len() > MAX_ROW_BYTES {
                    return Err(ImportError::Unreadable(format!(
                        "line {} is longer than {MAX_ROW_BYTES} bytes",
                        self.line + 1
                    )));
                }
                if end.is_some() {
                    break;
                }
            }
            if ended && self.buf.is_empty() {
                return Ok(false);
            }
            self.line += 1;
            if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(true);
            }
            if ended {
                return Ok(false);
            }
        }
    }

    /// The captured value as a row.
    fn row(&mut self) -> Result<RowOutcome, ImportError> {
        self.row += 1;
        if let Err(e) = std::str::from_utf8(&self.buf) {
            return Err(ImportError::Unreadable(format!(
                "row {} is not valid UTF-8: {e}",
                self.row
            )));
        }
        Ok(match serde_json::from_slice::<Value>(&self.buf) {
            Ok(Value::Object(map)) => match CustomerInput::from_object(map) {
                Ok(input) => validate_row(self.row, &input),
                Err(e) => row_error(self.row, e.to_string()),
            },
            Ok(other) => row_error(
                self.row,
                format!(
                    "must be a JSON object, not {}",
                    crate::validation::json_type_name(&other)
                ),
            ),
            // A JSON line cut off leaves the rest of the file in doubt: the file is
            // unreadable (a 400) at the line it names. A line that is whole but not JSON
            // stays a row error, as `skip_invalid` may skip it.
            Err(e) if self.format == ImportFormat::JsonLines && e.is_eof() => {
                return Err(ImportError::Unreadable(format!(
                    "line {} is cut off, not a whole JSON value: {e}",
                    self.line
                )))
            }
            Err(e) => row_error(self.row, format!("is not valid JSON: {e}")),
        })
    }

    fn step(&mut self) -> Result<Option<RowOutcome>, ImportError> {
        loop {
            match self.stage {
                Stage::Start => {
                    self.stage = match self.format {
                        ImportFormat::Array => {
                            self.expect(b'[', "a JSON array of customers")?;
                            Stage::Items { first: true }
                        }
                        ImportFormat::Clients => {
                            self.expect(b'{', "the document's {\"clients\": [...]}")?;
                            Stage::Keys { first: true }
                        }
                        _ => Stage::Lines,
                    };
                }
                Stage::Items { first } => {
                    match self.peek()? {
                        Some(b']') => {
                            self.source.consume(1);
                            self.stage = if self.format == ImportFormat::Clients {
                                Stage::Keys { first: false }
                            } else {
                                Stage::Trailer
                            };
                            continue;
                        }
                        Some(b',') if !first => self.source.consume(1),
                        Some(b) if !first => {
                            return Err(ImportError::Unreadable(format!(
                                "after row {}: expected ',' or ']', found '{}'",
                                self.row,
                                b.escape_ascii()
                            )))
                        }
                        _ => {}
                    }
                    self.capture()?;
                    self.stage = Stage::Items { first: false };
                    return self.row().map(Some);
                }
                Stage::Keys { first } => {
                    match self.peek()? {
                        Some(b'}') => {
                            self.source.consume(1);
                            if !self.found_clients {
                                return Err(ImportError::Unreadable("the object has no \"clients\" array".into()));
                            }
                            self.stage = Stage::Trailer;
                            continue;
                        }
                        Some(b',') if !first => self.source.consume(1),
                        _ if !first => {
                            return Err(ImportError::Unreadable(
                                "expected ',' or '}' between the object's keys".into(),
                            ))
                        }
                        _ => {}
                    }
                    self.capture()?;
                    let key: String = serde_json::from_slice(&self.buf)
                        .map_err(|_| ImportError::Unreadable("expected a key of the top-level object".into()))?;
                    self.expect(b':', "the top-level object")?;
                    if key == "clients" && !self.found_clients {
                        self.found_clients = true;
                        self.expect(b'[', "\"clients\" must be an array")?;
                        self.stage = Stage::Items { first: true };
                    } else {
                        // Other keys of the document's object carry no rows.
                        self.capture()?;
                        self.stage = Stage::Keys { first: false };
                    }
                }
                Stage::Lines => {
                    if !self.capture_line()? {
                        self.stage = Stage::Done;
                        return Ok(None);
                    }
                    return self.row().map(Some);
                }
                Stage::Trailer => {
                    self.stage = Stage::Done;
                    if let Some(b) = self.peek()? {
                        return Err(ImportError::Unreadable(format!(
                            "unexpected '{}' after the end of the JSON document",
                            b.escape_ascii()
                        )));
                    }
                    return Ok(None);
                }
                Stage::Done => return Ok(None),
            }
        }
    }
}

impl<B: BufRead> Iterator for JsonRows<B> {
    type Item = Result<RowOutcome, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.stage = Stage::Done;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// CSV

struct CsvRows<B: BufRead> {
    reader: csv::Reader<B>,
    headers: Vec<String>,
    record: csv::StringRecord,
    row: u64,
    done: bool,
}

/// The Nom key under its accepted spellings: a CSV header without it is not a customer
/// file.
const NOM_KEYS: [&str; 3] = ["Nom", "last_name", "nom"];

impl<B: BufRead> CsvRows<B> {
    fn new(mut source: B) -> Result<Self, ImportError> {
        let head = source.fill_buf()?;
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let count = |d: u8| first_line.iter().filter(|&&b| b == d).count();
        // French spreadsheets write `;`; keep `,` unless the header says otherwise.
        let delimiter = [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|&d| count(d))
            .unwrap_or(b',');
        let delimiter = if count(delimiter) == 0 { b',' } else { delimiter };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(source);
        let headers: Vec<String> = reader
            .headers()
            .map_err(csv_unreadable)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if !headers.iter().any(|h| NOM_KEYS.contains(&h.as_str())) {
            return Err(ImportError::Unreadable(format!(
                "the CSV header row has no Nom column (found: {})",
                headers.join(", ")
            )));
        }
        Ok(CsvRows {
            reader,
            headers,
            record: csv::StringRecord::new(),
            row: 0,
            done: false,
        })
    }

    fn step(&mut self) -> Result<Option<RowOutcome>, ImportError> {
        if !self.reader.read_record(&mut self.record).map_err(csv_unreadable)? {
            return Ok(None);
        }
        self.row += 1;
        if self.record.len() != self.headers.len() {
            if self.record.iter().all(|cell| cell.trim().is_empty()) {
                // A blank line (spreadsheets leave them at the end): not a row.
                self.row -= 1;
                return self.step();
            }
            return Ok(Some(row_error(
                self.row,
                format!(
                    "has {} cells where the header row has {}",
                    self.record.len(),
                    self.headers.len()
                ),
            )));
        }
        let mut map = Map::new();
        for (key, cell) in self.headers.iter().zip(self.record.iter()) {
            if !cell.trim().is_empty() {
                map.insert(key.clone(), Value::String(cell.to_string()));
            }
        }
        Ok(Some(match CustomerInput::from_object(map) {
            Ok(input) => validate_row(self.row, &input),
            Err(e) => row_error(self.row, e.to_string()),
        }))
    }
}

fn csv_unreadable(e: csv::Error) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ImportError::Io(e),
        csv::ErrorKind::Utf8 { pos, err } => ImportError::Unreadable(format!(
            "line {} of the CSV is not valid UTF-8: {err}",
            pos.map_or(0, |p| p.line())
        )),
        other => ImportError::Unreadable(format!("the CSV cannot be read: {other:?}")),
    }
}

impl<B: BufRead> Iterator for CsvRows<B> {
    type Item = Result<RowOutcome, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Sexe;

    #[test]
    fn waiting_tickets_past_the_bound_of_money_are_the_rows_error() {
        use crate::money::MAX_CENTS;
        let row = |credit: u64| ImportRow {
            row: 4,
            customer: NewCustomer {
                nom: "A".into(),
                opening_credit: Cents(credit),
                ..Default::default()
            },
            given: Given::default(),
        };
        let ticket = |prix: u64, unmatched: bool| {
            let mut t: crate::tickets::Ticket = serde_json::from_value(serde_json::json!({
                "id": 1, "uid": "m1", "date": null, "prix": prix, "client": "", "CarteFid": null,
                "pointsFidelite": 0, "modePaiement": "CARD", "origin": "m", "Promo_client": null,
                "articles": []}))
            .unwrap();
            t.unmatched = unmatched;
            t
        };
        assert_eq!(row(0).waiting_tickets_overflow([]), None);
        assert_eq!(row(0).waiting_tickets_overflow(&[ticket(100, true)]), None);
        // Matched tickets wait for nobody.
        assert_eq!(row(MAX_CENTS).waiting_tickets_overflow(&[ticket(100, false)]), None);
        let credit = row(MAX_CENTS).waiting_tickets_overflow(&[ticket(100, true)]).unwrap();
        assert_eq!((credit.row, credit.field.as_str()), (4, "Credit"));
        assert!(
            credit.error.starts_with("with the unmatched ticket waiting"),
            "{credit:?}"
        );
        let two = [ticket(MAX_CENTS, true), ticket(MAX_CENTS, true)];
        let basket = row(0).waiting_tickets_overflow(&two).unwrap();
        assert_eq!(basket.field, "PanierMoyen");
        assert!(basket.error.starts_with("the 2 unmatched tickets"), "{basket:?}");
        let taken = RowError::taken(3, "Email", "abc");
        assert_eq!(taken.error, "this e-mail is already used by customer abc");
    }

    fn read(body: &str, content_type: Option<&str>) -> Result<(ImportFormat, Vec<RowOutcome>), ImportError> {
        let rows = ImportRows::open(body.as_bytes(), content_type, None)?;
        let format = rows.format();
        Ok((format, rows.collect::<Result<Vec<_>, _>>()?))
    }

    fn valid(outcome: &RowOutcome) -> &ImportRow {
        match outcome {
            RowOutcome::Valid(row) => row,
            RowOutcome::Invalid(e) => panic!("row refused: {e:?}"),
        }
    }

    fn invalid(outcome: &RowOutcome) -> Vec<(u64, &str)> {
        match outcome {
            RowOutcome::Invalid(errors) => errors.iter().map(|e| (e.row, e.field.as_str())).collect(),
            RowOutcome::Valid(row) => panic!("row accepted: {row:?}"),
        }
    }

    const DOCUMENT: &str = r#"{"clients" : [
        {"Nom": "Eddison-18", "Prenom": "Jean", "Credit": 0.0, "Paiement": 25,
         "Date_paiement": "2019-01-18", "Montant": 125, "Compte": "BKN1CST18"},
        {"Nom": "Eddison-53", "Prenom": "Anne", "Credit": 154.62542724609375, "Paiement": 25,
         "Date_paiement": "2020-05-19", "Montant": 125, "Email": "anne@ursi.fr", "Sexe": "f"}
    ]}"#;

    #[test]
    fn the_documents_object_is_read_with_money_rounded_and_payment_scheduled() {
        let (format, rows) = read(DOCUMENT, None).unwrap();
        assert_eq!(format, ImportFormat::Clients);
        assert_eq!(rows.len(), 2);
        let anne = valid(&rows[1]);
        assert_eq!(anne.row, 2);
        assert_eq!(anne.customer.opening_credit, Cents(155));
        assert_eq!(anne.customer.sexe, Sexe::F);
        assert_eq!(
            anne.customer.scheduled_payment,
            Some((chrono::NaiveDate::from_ymd_opt(2020, 5, 19).unwrap(), Cents(125)))
        );
        assert!(anne.given.email && anne.given.credit && !anne.given.phone);
    }

    #[test]
    fn every_format_gives_the_same_rows() {
        let array = r#"[{"Nom":"A","Email":"a@x.fr","Credit":"12"},{"Nom":"B","Age":40}]"#;
        let lines = "{\"Nom\":\"A\",\"Email\":\"a@x.fr\",\"Credit\":\"12\"}\n\n{\"Nom\":\"B\",\"Age\":40}\n";
        let csv = "Nom,Email,Credit,Age\nA,a@x.fr,12,\nB,,,40\n";
        let clients = format!("{{\"clients\": {array}}}");
        let mut all = Vec::new();
        for (body, expected) in [
            (array, ImportFormat::Array),
            (lines, ImportFormat::JsonLines),
            (csv, ImportFormat::Csv),
            (clients.as_str(), ImportFormat::Clients),
        ] {
            let (format, rows) = read(body, None).unwrap();
            assert_eq!(format, expected, "{body}");
            all.push(rows);
        }
        for other in &all[1..] {
            assert_eq!(other, &all[0]);
        }
        assert_eq!(valid(&all[0][0]).customer.opening_credit, Cents(12));
        assert_eq!(valid(&all[0][1]).customer.age, Some(40));
    }

    #[test]
    fn a_json_line_cut_off_is_unreadable_at_its_line() {
        for (body, line) in [
            ("{\"Nom\":\"A\"}\n\n{\"Nom\":\"B\n{\"Nom\":\"C\"}\n", 3),
            ("{\"Nom\":\"A\"}\n{\"Nom\": [1,", 2),
            ("{\"Nom\":\"A\"", 1),
        ] {
            match read(body, None) {
                Err(ImportError::Unreadable(message)) => {
                    assert!(message.starts_with(&format!("line {line} ")), "{message}")
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn content_type_wins_when_the_content_agrees() {
        assert_eq!(
            ImportFormat::detect(Some("application/x-ndjson"), None, b"{\"clients\": []}").unwrap(),
            ImportFormat::JsonLines
        );
        assert_eq!(
            ImportFormat::detect(Some("text/csv; charset=utf-8"), None, b"Nom\nA").unwrap(),
            ImportFormat::Csv
        );
        assert_eq!(
            ImportFormat::detect(None, None, b"\xEF\xBB\xBF  [{}]").unwrap(),
            ImportFormat::Array
        );
        assert!(ImportFormat::detect(Some("application/json"), None, b"Nom\nA").is_err());
        assert!(ImportFormat::detect(None, Some("x.json"), b"Nom\nA").is_err());
        assert!(ImportFormat::detect(None, None, b"  \n").is_err());
    }

    #[test]
    fn bad_rows_are_listed_with_their_position_and_reading_goes_on() {
        let body = r#"[{"Nom":"A"}, {"Email":"nope"}, 5, {"Nom":"B","Nom2":1}, {"Nom":"C","Age":200,"Sexe":"x"}]"#;
        let (_, rows) = read(body, None).unwrap();
        assert_eq!(rows.len(), 5);
        valid(&rows[0]);
        let mut second = invalid(&rows[1]);
        second.sort();
        assert_eq!(second, [(2, "Email"), (2, "Nom")]);
        assert_eq!(invalid(&rows[2]), [(3, "row")]);
        valid(&rows[3]);
        assert_eq!(invalid(&rows[4]), [(5, "Age"), (5, "Sexe")]);
    }

    #[test]
    fn a_broken_json_line_is_a_row_error_not_the_end() {
        let (_, rows) = read("{\"Nom\":\"A\"}\n{\"Nom\": tru}\n{\"Nom\":\"C\"}\n", None).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(invalid(&rows[1]), [(2, "row")]);
        assert_eq!(valid(&rows[2]).row, 3);
    }

    #[test]
    fn structural_breakage_is_unreadable() {
        for body in [
            r#"[{"Nom":"A"} {"Nom":"B"}]"#,
            r#"[{"Nom":"A"}"#,
            r#"[{"Nom":"A"}] trailing"#,
            r#"{"clients": 2}"#,
            r#"{"clients": [{"Nom":"A"}]"#,
            "[,]",
            "Prenom,Email\nA,a@b.fr\n",
        ] {
            let outcome =
                ImportRows::open(body.as_bytes(), None, None).and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
            assert!(
                matches!(outcome, Err(ImportError::Unreadable(_))),
                "{body}: {outcome:?}"
            );
        }
        let not_utf8: &[u8] = b"[{\"Nom\":\"\xff\"}]";
        let outcome = ImportRows::open(not_utf8, None, None)
            .unwrap()
            .collect::<Result<Vec<_>, _>>();
        assert!(matches!(outcome, Err(ImportError::Unreadable(m)) if m.contains("UTF-8")));
    }

    #[test]
    fn other_keys_of_the_documents_object_are_skipped() {
        let body = r#"{"source": {"a": [1, "]"]}, "clients": [{"Nom": "A"}], "count": 1}"#;
        let (format, rows) = read(body, None).unwrap();
        assert_eq!(
            format,
            ImportFormat::JsonLines,
            "first key is not clients: one object per line"
        );
        assert_eq!(invalid(&rows[0]), [(1, "Nom")]);
        let body = r#"{"clients": [{"Nom": "A, \"quoted\" ]"}], "count": {"n": 1}}"#;
        let (format, rows) = read(body, None).unwrap();
        assert_eq!(format, ImportFormat::Clients);
        assert_eq!(valid(&rows[0]).customer.nom, "A, \"quoted\" ]");
    }

    #[test]
    fn csv_takes_semicolons_quotes_bom_and_aliases() {
        let body =
            "\u{feff}last_name;name;mail;Credit;CarteFid;Paiement\n\"Dupont; fils\";Jean;j@d.fr;\"1,5\";33;25\n\n";
        let (format, rows) = read(body, Some("text/csv")).unwrap();
        assert_eq!(format, ImportFormat::Csv);
        assert_eq!(rows.len(), 1);
        assert_eq!(invalid(&rows[0]), [(1, "Credit")], "a decimal comma is not an amount");
        let body = "Nom,Prenom,Credit,CarteFid\n\"Dupont, fils\",Jean,1.5,33\nMartin,\"Ann\nMarie\",,\nX,only-two\n";
        let (_, rows) = read(body, None).unwrap();
        let first = valid(&rows[0]);
        assert_eq!(
            (
                first.customer.nom.as_str(),
                first.customer.opening_credit,
                first.customer.carte_fid
            ),
            ("Dupont, fils", Cents(2), Some(33))
        );
        assert!(!first.given.phone);
        assert_eq!(
            invalid(&rows[1]),
            [(2, "Prenom")],
            "a quoted line break stays in its cell (and names refuse it)"
        );
        assert_eq!(invalid(&rows[2]), [(3, "row")]);
    }

    fn rows_of(body: &str) -> Vec<ImportRow> {
        read(body, None).unwrap().1.iter().map(|o| valid(o).clone()).collect()
    }

    /// A row's customer, or its errors as (row, field).
    type Outcome = Result<u64, Vec<(u64, String)>>;

    /// Runs the rows through [`FileCustomers`] as the store's check pass does, a row
    /// matching nothing earlier going to customer `100 + its index`: each row's
    /// outcome, and how many keys were kept.
    fn plan(rows: &[ImportRow]) -> (Vec<Outcome>, usize) {
        let mut census = KeyCensus::default();
        rows.iter().for_each(|r| census.add(&RowKeys::of(r)));
        let mut file = FileCustomers::new(census.shared());
        let mut outcomes = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let keys = RowKeys::of(row);
            let target = file.earlier_target(&keys).unwrap_or(100 + i as u64);
            let conflicts = file.conflicts(row.row, &keys, target);
            if conflicts.is_empty() {
                file.record(row.row, &keys, target);
                outcomes.push(Ok(target));
            } else {
                outcomes.push(Err(conflicts.into_iter().map(|e| (e.row, e.field)).collect()));
            }
        }
        (outcomes, file.len())
    }

    const U: &str = "6f1c1c64-4f5b-4d9e-9d5e-0d1b2f3a4b5c";

    #[test]
    fn a_later_row_goes_to_the_customer_of_the_earlier_row_with_its_id_client_else_email() {
        let rows = rows_of(&format!(
            r#"[
            {{"Nom": "A", "Email": "a@x.fr"}},
            {{"Nom": "B", "Email": "b@x.fr", "IdClient": "{U}"}},
            {{"Nom": "A again", "Email": " A@X.FR "}},
            {{"Nom": "B by id", "IdClient": "{U}"}},
            {{"Nom": "B by e-mail", "Email": "b@x.fr"}},
            {{"Nom": "C", "Email": "c@x.fr"}},
            {{"Nom": "D"}},
            {{"Nom": "D"}}
        ]"#
        ));
        let (outcomes, kept) = plan(&rows);
        assert_eq!(
            outcomes,
            [Ok(100), Ok(101), Ok(100), Ok(101), Ok(101), Ok(105), Ok(106), Ok(107)],
            "rows without IdClient or Email never meet"
        );
        assert_eq!(
            kept, 3,
            "only the keys two rows share are kept: a@, b@ and the IdClient"
        );
        let unmatchable: Vec<bool> = rows.iter().map(ImportRow::is_unmatchable).collect();
        assert_eq!(unmatchable, [false, false, false, false, false, false, true, true]);
    }

    #[test]
    fn an_e_mail_or_card_given_to_two_customers_is_a_conflict_of_the_later_row() {
        let rows = rows_of(&format!(
            r#"[
            {{"Nom": "A", "Email": "a@x.fr", "CarteFid": 7}},
            {{"Nom": "B", "IdClient": "{U}", "Email": "a@x.fr"}},
            {{"Nom": "C", "CarteFid": 7}},
            {{"Nom": "D", "IdClient": "{U}"}},
            {{"Nom": "A2", "Email": "a@x.fr", "CarteFid": 7}}
        ]"#
        ));
        let (outcomes, _) = plan(&rows);
        assert_eq!(
            outcomes,
            [
                Ok(100),
                Err(vec![(2, "Email".to_string())]),
                Err(vec![(3, "CarteFid".to_string())]),
                Ok(103),
                Ok(100),
            ],
            "a refused row is not recorded: the next row with its IdClient creates"
        );
    }

    #[test]
    fn the_warning_for_rows_that_never_match_says_what_a_second_import_does() {
        assert_eq!(unmatchable_warning(0), None);
        assert_eq!(
            unmatchable_warning(1).unwrap(),
            "1 row has neither IdClient nor Email: importing this file again would create it again"
        );
        let report = ImportReport {
            unmatchable: 3,
            ..ImportReport::default()
        };
        assert_eq!(
            report.unmatchable_warning().unwrap(),
            "3 rows have neither IdClient nor Email: importing this file again would create them again"
        );
    }

    #[test]
    fn skipping_invalid_rows_is_refused_with_replace() {
        let mut options = ImportOptions {
            skip_invalid: true,
            ..ImportOptions::default()
        };
        assert_eq!(options.conflict(), None);
        options.mode = ImportMode::Replace;
        assert!(options.conflict().unwrap().contains("mode=replace"));
    }

    #[test]
    fn a_long_compte_is_a_row_error() {
        let (_, rows) = read(
            r#"[{"Nom": "A", "Compte": "BKN1CST53"}, {"Nom": "B", "Compte": "BKN1CST5300"}]"#,
            None,
        )
        .unwrap();
        assert_eq!(valid(&rows[0]).customer.compte, "BKN1CST53");
        assert_eq!(invalid(&rows[1]), [(2, "Compte")]);
    }

    #[test]
    fn a_row_applies_only_the_keys_it_gives() {
        let (_, rows) = read(r#"[{"Nom":"New","Email":"n@x.fr","Credit":7}]"#, None).unwrap();
        let row = valid(&rows[0]);
        let now = Utc::now();
        let mut record = NewCustomer {
            nom: "Old".into(),
            prenom: "Kept".into(),
            phone: "0102".into(),
            ..NewCustomer::default()
        }
        .into_record(1, uuid::Uuid::nil(), now);
        let (updated, changed) = row.preview_update(&record, now);
        assert!(changed);
        assert_eq!(
            (
                updated.nom.as_str(),
                updated.prenom.as_str(),
                updated.phone.as_str(),
                updated.email.as_str()
            ),
            ("New", "Kept", "0102", "n@x.fr")
        );
        assert_eq!(updated.credit, Cents(7));
        record = updated;
        assert!(
            !row.preview_update(&record, now).1,
            "the same row again changes nothing"
        );
    }

    #[test]
    fn an_update_moves_the_balance_and_replaces_the_payment_only_when_they_differ() {
        let (_, rows) = read(
            r#"[{"Nom":"A","Credit":7,"Date_paiement":"2024-03-01","Montant":40}, {"Nom":"B"}]"#,
            None,
        )
        .unwrap();
        let (row, bare) = (valid(&rows[0]), valid(&rows[1]));
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut old = NewCustomer {
            nom: "Old".into(),
            opening_credit: Cents(3),
            ..NewCustomer::default()
        }
        .into_record(1, uuid::Uuid::nil(), Utc::now());
        let update = row.update_of(&old);
        assert_eq!(update.record.nom, "A");
        assert_eq!(update.record.credit, Cents(3), "the balance moves through the ledger");
        assert_eq!(
            (update.new_balance, update.payment),
            (Some(Cents(7)), Some((day, Cents(40))))
        );
        old.credit = Cents(7);
        old.next_payment = Some(day);
        old.pending_payments = Cents(40);
        let again = row.update_of(&old);
        assert_eq!((again.new_balance, again.payment), (None, None), "already so");
        let update = bare.update_of(&old);
        assert_eq!(
            (update.new_balance, update.payment),
            (None, None),
            "a row without them keeps both"
        );
    }
}

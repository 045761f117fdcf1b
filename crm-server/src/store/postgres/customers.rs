//! Customers in PostgreSQL: the row, its search tokens and its unique keys change in one
//! transaction.

use crm_model::search::{normalize, query_terms, search_tokens};
use crm_model::{Cents, CustomerPatch, CustomerRecord, LedgerCause, ListQuery, NewCustomer, Page, Sort, SortKey};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::audit::Entries;
use super::{
    append_ledger, bump_counter, customer_from_row, db_error, int, limit_plus_one, payments, read_counter, snapshot,
    tickets, PgStore, TxResult, CUSTOMER_COLUMNS,
};
use crate::store::{CustomerStore, StoreError};

pub(crate) const NEXT_CUSTOMER_ID: &str = "next_customer_id";
pub(crate) const LIVE_CUSTOMERS: &str = "live_customers";

impl CustomerStore for PgStore {
    /// Creates a customer with the next sequence number; its opening credit is its
    /// first ledger entry.
    async fn create_customer(&self, new: NewCustomer) -> Result<CustomerRecord, StoreError> {
        let id_client = new.id_client.unwrap_or_else(Uuid::new_v4);
        let now = super::now();
        let new = &new;
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let mut audit = Entries::default();
                let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id_client = $1")
                    .bind(id_client)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(StoreError::IdClientTaken(id_client).into());
                }
                let id = bump_counter(&mut tx, NEXT_CUSTOMER_ID, 1).await?;
                let opening = new.opening_credit;
                let mut record = new.clone().into_record(id, id_client, now);
                record.credit = Cents::ZERO;
                if opening > Cents::ZERO {
                    append_ledger(&mut tx, &mut record, opening, LedgerCause::Opening, None, now).await?;
                }
                if let Some((date, amount)) = new.scheduled_payment {
                    payments::schedule_payment(&mut tx, &mut record, date, amount, now).await?;
                }
                tickets::match_pending(&mut tx, None, &mut record, now).await?;
                write_customer(&mut tx, None, &record).await?;
                bump_counter(&mut tx, LIVE_CUSTOMERS, 1).await?;
                audit.customer_changed(None, &record, None);
                audit.write(&mut tx, origin, now).await?;
                Ok(record)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Applies a validated PATCH, keeping e-mail and card unique.
    async fn update_customer(&self, id_client: Uuid, patch: CustomerPatch) -> Result<CustomerRecord, StoreError> {
        let now = super::now();
        let patch = &patch;
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let mut audit = Entries::default();
                let old = live_customer_for_update(&mut tx, id_client).await?;
                let mut record = old.clone();
                patch.apply(&mut record, now);
                tickets::match_pending(&mut tx, Some(&old), &mut record, now).await?;
                if record != old {
                    write_customer(&mut tx, Some(&old), &record).await?;
                    audit.customer_changed(Some(&old), &record, None);
                }
                audit.write(&mut tx, origin, now).await?;
                Ok(record)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// Erases personal data on request: out of every list and index but `IdClient`.
    async fn erase_customer(&self, id_client: Uuid) -> Result<CustomerRecord, StoreError> {
        let now = super::now();
        let origin = &*self.origin;
        self.transact(move |mut tx| async move {
            let result = async {
                let old = customer_for_update(&mut tx, id_client).await?;
                if old.erased {
                    return Ok(old);
                }
                let mut record = old.clone();
                record.erase_personal_data(now);
                write_customer(&mut tx, Some(&old), &record).await?;
                bump_counter(&mut tx, LIVE_CUSTOMERS, -1).await?;
                let mut audit = Entries::default();
                audit.customer_changed(Some(&old), &record, None);
                audit.write(&mut tx, origin, now).await?;
                Ok(record)
            }
            .await;
            (tx, result)
        })
        .await
    }

    /// A customer by public id, erased ones included.
    async fn customer(&self, id_client: Uuid) -> Result<Option<CustomerRecord>, StoreError> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id_client = $1");
        let row = sqlx::query(&sql)
            .bind(id_client)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| customer_from_row(&r)).transpose().map_err(db_error)
    }

    /// A live customer by e-mail, case-insensitively.
    async fn customer_by_email(&self, email: &str) -> Result<Option<CustomerRecord>, StoreError> {
        let Some(key) = crm_model::customer::email_key(email) else {
            return Ok(None);
        };
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE email_key = $1 AND NOT erased");
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| customer_from_row(&r)).transpose().map_err(db_error)
    }

    /// A live customer by loyalty card number.
    async fn customer_by_card(&self, card: u64) -> Result<Option<CustomerRecord>, StoreError> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE carte_fid = $1 AND NOT erased");
        let row = sqlx::query(&sql)
            .bind(int(card))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|r| customer_from_row(&r)).transpose().map_err(db_error)
    }

    /// Up to `limit` live customers with an `id` above `after`, in `id` order.
    async fn customers_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<CustomerRecord>, StoreError> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE NOT erased AND id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after.map_or(-1, int))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(customer_from_row)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    /// One page of the live customers, searched and sorted through indexes (key ranges,
    /// never offsets), its total from the same snapshot.
    async fn list_customers(&self, query: &ListQuery) -> Result<Page<CustomerRecord>, StoreError> {
        let after = query
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, query.sort))
            .transpose()?;
        let mut tx = snapshot(&self.pool).await?;
        let (positioned, total) = match query.q.as_deref() {
            Some(q) => search(&mut tx, q, query.sort, after.as_ref(), query.limit).await?,
            None => {
                let total = sqlx::query_scalar::<_, i64>("SELECT value FROM counters WHERE name = $1")
                    .bind(LIVE_CUSTOMERS)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let found = scan(&mut tx, None, query.sort, after.as_ref(), query.limit).await?;
                (found, total.max(0) as u64)
            }
        };
        let _ = tx.commit().await;
        Ok(page(positioned, query.sort, query.limit, total))
    }

    /// How many live customers there are (a counter, not a scan).
    async fn customer_count(&self) -> Result<u64, StoreError> {
        read_counter(&self.pool, LIVE_CUSTOMERS).await
    }
}

/// Where a customer stands in a sort: the sort value, then the id (unique positions, so
/// that pages neither repeat nor skip a customer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    Id(u64),
    Nom(String, u64),
    Amount(u64, u64),
}

impl Position {
    fn of(record: &CustomerRecord, key: SortKey) -> Position {
        match key {
            SortKey::Id => Position::Id(record.id),
            SortKey::Nom => Position::Nom(normalize(&record.nom), record.id),
            SortKey::Credit => Position::Amount(record.credit.0, record.id),
            SortKey::PanierMoyen => Position::Amount(record.panier_moyen().0, record.id),
        }
    }

    /// The bytes of the sled store's positions (big-endian numbers, a NUL after the
    /// name): cursors are the same on both stores, and compare the same.
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Position::Id(id) => id.to_be_bytes().to_vec(),
            Position::Nom(nom, id) => [nom.as_bytes(), &[0], &id.to_be_bytes()].concat(),
            Position::Amount(amount, id) => [amount.to_be_bytes(), id.to_be_bytes()].concat(),
        }
    }
}

/// The column a sort orders by (after which `id`), `None` for `id` itself.
fn sort_column(key: SortKey) -> Option<&'static str> {
    match key {
        SortKey::Id => None,
        SortKey::Nom => Some("nom_key"),
        SortKey::Credit => Some("credit"),
        SortKey::PanierMoyen => Some("panier_moyen"),
    }
}

type Positioned = (Position, CustomerRecord);

/// Pushes `AND (column, id) > (cursor)` (or `<` descending) and the `ORDER BY`.
fn push_keyset_and_order(qb: &mut QueryBuilder<'_, Postgres>, sort: Sort, after: Option<&Position>, limit: usize) {
    let column = sort_column(sort.key);
    let op = if sort.descending() { "<" } else { ">" };
    match after {
        None => {}
        Some(Position::Id(id)) => {
            qb.push(format!(" AND c.id {op} ")).push_bind(int(*id));
        }
        Some(Position::Nom(nom, id)) => {
            qb.push(format!(" AND (c.nom_key, c.id) {op} ("))
                .push_bind(nom.clone())
                .push(", ")
                .push_bind(int(*id))
                .push(")");
        }
        Some(Position::Amount(amount, id)) => {
            qb.push(format!(" AND (c.{}, c.id) {op} (", column.unwrap_or("credit")))
                .push_bind(int(*amount))
                .push(", ")
                .push_bind(int(*id))
                .push(")");
        }
    }
    let dir = if sort.descending() { "DESC" } else { "ASC" };
    match column {
        Some(column) => qb.push(format!(" ORDER BY c.{column} {dir}, c.id {dir}")),
        None => qb.push(format!(" ORDER BY c.id {dir}")),
    };
    qb.push(" LIMIT ").push_bind(limit_plus_one(limit));
}

/// Up to `limit + 1` live customers matching `terms` (all of them, none for a plain
/// list) after `after` in `sort` order.
async fn scan(
    tx: &mut PgConnection,
    terms: Option<&[String]>,
    sort: Sort,
    after: Option<&Position>,
    limit: usize,
) -> Result<Vec<Positioned>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {} FROM customers c WHERE NOT c.erased",
        prefixed_columns()
    ));
    if let Some(terms) = terms {
        push_term_matches(&mut qb, terms);
    }
    push_keyset_and_order(&mut qb, sort, after, limit);
    let rows = qb.build().fetch_all(&mut *tx).await.map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let record = customer_from_row(row).map_err(db_error)?;
            Ok((Position::of(&record, sort.key), record))
        })
        .collect()
}

fn prefixed_columns() -> String {
    CUSTOMER_COLUMNS
        .split(", ")
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `AND` one condition per term: the customer has a token the term prefixes. A prefix
/// is a range of the token index: from the term up to the term with its last character
/// moved on by one.
fn push_term_matches(qb: &mut QueryBuilder<'_, Postgres>, terms: &[String]) {
    for term in terms {
        qb.push(" AND EXISTS (SELECT 1 FROM customer_tokens t WHERE t.customer_id = c.id AND t.token >= ")
            .push_bind(term.clone());
        match prefix_end(term) {
            Some(end) => qb.push(" AND t.token < ").push_bind(end),
            None => qb.push(" AND starts_with(t.token, ").push_bind(term.clone()).push(")"),
        };
        qb.push(")");
    }
}

/// The smallest string above every string that starts with `prefix` (in code point
/// order, which is the "C" collation's order of UTF-8), when there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The customers matching `q`: an IdClient, or words that must each prefix a token of
/// the customer. Answers up to `limit + 1` after `after`, and how many match in all.
async fn search(
    tx: &mut PgConnection,
    q: &str,
    sort: Sort,
    after: Option<&Position>,
    limit: usize,
) -> Result<(Vec<Positioned>, u64), StoreError> {
    if let Ok(id_client) = Uuid::parse_str(q.trim()) {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id_client = $1 AND NOT erased");
        let row = sqlx::query(&sql)
            .bind(id_client)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let found = row.map(|r| customer_from_row(&r)).transpose().map_err(db_error)?;
        let total = u64::from(found.is_some());
        let positioned = found
            .map(|r| (Position::of(&r, sort.key), r))
            .filter(|(pos, _)| match after {
                None => true,
                Some(a) if sort.descending() => pos < a,
                Some(a) => pos > a,
            });
        return Ok((positioned.into_iter().collect(), total));
    }
    let terms = query_terms(q);
    if terms.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let mut count = QueryBuilder::new("SELECT count(*) FROM customers c WHERE NOT c.erased");
    push_term_matches(&mut count, &terms);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await.map_err(db_error)?;
    let found = scan(tx, Some(&terms), sort, after, limit).await?;
    Ok((found, total.max(0) as u64))
}

/// Cuts `limit + 1` positioned customers into a page whose cursor is the last position.
fn page(mut positioned: Vec<Positioned>, sort: Sort, limit: usize, total: u64) -> Page<CustomerRecord> {
    let more = positioned.len() > limit;
    positioned.truncate(limit);
    let next_cursor = if more {
        positioned
            .last()
            .map(|(pos, _)| format!("{sort}.{}", hex::encode(pos.to_bytes())))
    } else {
        None
    };
    Page {
        items: positioned.into_iter().map(|(_, r)| r).collect(),
        next_cursor,
        total,
    }
}

/// A cursor names its sort, so that a cursor of another sort is refused, not misread.
fn decode_cursor(cursor: &str, sort: Sort) -> Result<Position, StoreError> {
    let bad = || StoreError::BadCursor(format!("cursor {cursor:?} is not a cursor of this list in sort {sort}"));
    let (name, position) = cursor.rsplit_once('.').ok_or_else(bad)?;
    if name != sort.to_string() {
        return Err(bad());
    }
    let bytes = hex::decode(position).map_err(|_| bad())?;
    let u64_at = |at: usize| -> u64 {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(buf)
    };
    match sort.key {
        SortKey::Id if bytes.len() == 8 => Ok(Position::Id(u64_at(0))),
        SortKey::Credit | SortKey::PanierMoyen if bytes.len() == 16 => Ok(Position::Amount(u64_at(0), u64_at(8))),
        SortKey::Nom if bytes.len() >= 9 => {
            let name_end = bytes.len() - 9;
            let nom = std::str::from_utf8(&bytes[..name_end]).map_err(|_| bad())?;
            Ok(Position::Nom(nom.to_string(), u64_at(name_end + 1)))
        }
        _ => Err(bad()),
    }
}

/// A customer by sequence number, erased ones included, locked for this transaction.
pub(crate) async fn customer_with_id(tx: &mut PgConnection, id: u64) -> TxResult<Option<CustomerRecord>> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 FOR UPDATE");
    let row = sqlx::query(&sql).bind(int(id)).fetch_optional(&mut *tx).await?;
    Ok(row.map(|r| customer_from_row(&r)).transpose()?)
}

/// A customer by IdClient, erased ones included, locked for this transaction.
pub(crate) async fn customer_for_update(tx: &mut PgConnection, id_client: Uuid) -> TxResult<CustomerRecord> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id_client = $1 FOR UPDATE");
    let row = sqlx::query(&sql).bind(id_client).fetch_optional(&mut *tx).await?;
    match row {
        Some(row) => Ok(customer_from_row(&row)?),
        None => Err(StoreError::CustomerNotFound.into()),
    }
}

/// A customer that has not been erased, locked; an erased one can no longer be changed.
pub(crate) async fn live_customer_for_update(tx: &mut PgConnection, id_client: Uuid) -> TxResult<CustomerRecord> {
    let record = customer_for_update(tx, id_client).await?;
    if record.erased {
        return Err(StoreError::CustomerNotFound.into());
    }
    Ok(record)
}

/// How a live customer is looked up by a unique key.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    IdClient(Uuid),
    Email(String),
    Card(u64),
}

/// A live customer by a unique key, locked for this transaction.
pub(crate) async fn live_customer_by(tx: &mut PgConnection, key: &Key) -> TxResult<Option<CustomerRecord>> {
    let column = match key {
        Key::IdClient(_) => "id_client",
        Key::Email(_) => "email_key",
        Key::Card(_) => "carte_fid",
    };
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE {column} = $1 AND NOT erased FOR UPDATE");
    let query = sqlx::query(&sql);
    let query = match key {
        Key::IdClient(id) => query.bind(*id),
        Key::Email(email) => query.bind(email.clone()),
        Key::Card(card) => query.bind(int(*card)),
    };
    let row = query.fetch_optional(&mut *tx).await?;
    Ok(row.map(|r| customer_from_row(&r)).transpose()?)
}

/// Writes a customer (new when `old` is `None`) and its search tokens, refusing a card
/// or e-mail that another live customer holds (the card first, as the sled store
/// checks them). A race with another writer of the same key ends in a unique violation,
/// which [`PgStore::transact`] runs again: the check then names the holder.
pub(crate) async fn write_customer(
    tx: &mut PgConnection,
    old: Option<&CustomerRecord>,
    record: &CustomerRecord,
) -> TxResult<()> {
    let identity_changed = !old.is_some_and(|old| old.same_identity(record));
    if identity_changed && !record.erased {
        if let Some(card) = record.carte_fid.filter(|c| old.and_then(|o| o.carte_fid) != Some(*c)) {
            let holder: Option<Uuid> =
                sqlx::query_scalar("SELECT id_client FROM customers WHERE carte_fid = $1 AND NOT erased AND id <> $2")
                    .bind(int(card))
                    .bind(int(record.id))
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(existing) = holder {
                return Err(StoreError::CardTaken { card, existing }.into());
            }
        }
        if let Some(key) = record
            .email_key()
            .filter(|k| old.and_then(|o| o.email_key()).as_ref() != Some(k))
        {
            let holder: Option<Uuid> =
                sqlx::query_scalar("SELECT id_client FROM customers WHERE email_key = $1 AND NOT erased AND id <> $2")
                    .bind(key)
                    .bind(int(record.id))
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(existing) = holder {
                return Err(StoreError::EmailTaken {
                    email: record.email.clone(),
                    existing,
                }
                .into());
            }
        }
    }
    let sql = if old.is_some() {
        "UPDATE customers SET id_client = $2, nom = $3, prenom = $4, email = $5, email_key = $6, phone = $7, \
         compte = $8, age = $9, sexe = $10, carte_fid = $11, credit = $12, nb_refus = $13, next_payment = $14, \
         pending_payments = $15, ledger_entries = $16, ticket_count = $17, ticket_total = $18, erased = $19, \
         created_at = $20, updated_at = $21, nom_key = $22 WHERE id = $1"
    } else {
        "INSERT INTO customers (id, id_client, nom, prenom, email, email_key, phone, compte, age, sexe, carte_fid, \
         credit, nb_refus, next_payment, pending_payments, ledger_entries, ticket_count, ticket_total, erased, \
         created_at, updated_at, nom_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
    };
    sqlx::query(sql)
        .bind(int(record.id))
        .bind(record.id_client)
        .bind(&record.nom)
        .bind(&record.prenom)
        .bind(&record.email)
        .bind(if record.erased { None } else { record.email_key() })
        .bind(&record.phone)
        .bind(&record.compte)
        .bind(record.age.map(i16::from))
        .bind(record.sexe.as_str())
        .bind(record.carte_fid.map(int))
        .bind(int(record.credit.0))
        .bind(i32::try_from(record.nb_refus).unwrap_or(i32::MAX))
        .bind(record.next_payment)
        .bind(int(record.pending_payments.0))
        .bind(int(record.ledger_entries))
        .bind(int(record.ticket_count))
        .bind(int(record.ticket_total.0))
        .bind(record.erased)
        .bind(record.created_at)
        .bind(record.updated_at)
        .bind(normalize(&record.nom))
        .execute(&mut *tx)
        .await?;
    if identity_changed {
        if old.is_some() {
            sqlx::query("DELETE FROM customer_tokens WHERE customer_id = $1")
                .bind(int(record.id))
                .execute(&mut *tx)
                .await?;
        }
        if !record.erased {
            let tokens: Vec<String> = search_tokens(record).into_iter().collect();
            sqlx::query("INSERT INTO customer_tokens (token, customer_id) SELECT unnest($1::text[]), $2")
                .bind(tokens)
                .bind(int(record.id))
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

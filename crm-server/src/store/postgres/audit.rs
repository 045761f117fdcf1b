//! The audit trail in PostgreSQL: each write transaction inserts its entries in the
//! `audit` table before it commits, so a change is never without its entry (see
//! [`crm_model::audit`] for what an entry says).

use chrono::{DateTime, Utc};
use crm_model::audit::{self, AuditEntry, WriteOrigin};
use crm_model::{CustomerRecord, Page};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{bump_counter, db_error, int, limit_plus_one, read_counter, seq_page, snapshot, PgStore, TxResult};
use crate::store::{AuditQuery, AuditStore, StoreError};

/// The counter of the last entry's sequence number.
pub(crate) const LAST_AUDIT_SEQ: &str = "last_audit_seq";

/// Records one entry for `origin` in the caller's transaction.
pub(crate) async fn record(
    tx: &mut PgConnection,
    origin: &WriteOrigin,
    id_client: Option<Uuid>,
    summary: String,
    at: DateTime<Utc>,
) -> TxResult<()> {
    let seq = bump_counter(tx, LAST_AUDIT_SEQ, 1).await?;
    insert(tx, &AuditEntry::new(seq, at, origin, id_client, summary)).await
}

/// Inserts an entry as it is (a record above, or a restored one).
pub(crate) async fn insert(tx: &mut PgConnection, entry: &AuditEntry) -> TxResult<()> {
    sqlx::query("INSERT INTO audit (seq, at, actor, route, id_client, summary) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(int(entry.seq))
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.route)
        .bind(entry.id_client)
        .bind(&entry.summary)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The entries of one transaction, collected as it goes and written by [`Entries::write`]
/// as its last statement: the trail's counter row is then locked only at the end of the
/// transaction, after every customer it locks, so that no two writers can wait on each
/// other through it.
#[derive(Debug, Default)]
pub(crate) struct Entries(Vec<(Option<Uuid>, String)>);

impl Entries {
    /// An entry about customer `id_client` (or none).
    pub(crate) fn push(&mut self, id_client: Option<Uuid>, summary: String) {
        self.0.push((id_client, summary));
    }

    /// What a write did to a customer (nothing when nothing an auditor cares about
    /// changed), with `extra` first when the write was about more than the record (a
    /// payment).
    pub(crate) fn customer_changed(
        &mut self,
        before: Option<&CustomerRecord>,
        after: &CustomerRecord,
        extra: Option<String>,
    ) {
        let change = audit::customer_change(before, after);
        let summary = match (extra, change) {
            (Some(extra), Some(change)) => format!("{extra}; {change}"),
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return,
        };
        self.push(Some(after.id_client), summary);
    }

    /// Writes the entries for `origin`, numbered in order, in the caller's transaction.
    pub(crate) async fn write(self, tx: &mut PgConnection, origin: &WriteOrigin, at: DateTime<Utc>) -> TxResult<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let last = bump_counter(tx, LAST_AUDIT_SEQ, self.0.len() as i64).await?;
        let first = last + 1 - self.0.len() as u64;
        for (seq, (id_client, summary)) in (first..).zip(self.0) {
            insert(tx, &AuditEntry::new(seq, at, origin, id_client, summary)).await?;
        }
        Ok(())
    }
}

pub(crate) fn entry_from_row(row: &PgRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get::<i64, _>("seq")? as u64,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        route: row.try_get("route")?,
        id_client: row.try_get("id_client")?,
        summary: row.try_get("summary")?,
    })
}

impl AuditStore for PgStore {
    fn acting_for(&self, origin: WriteOrigin) -> Self {
        PgStore {
            origin: std::sync::Arc::new(origin),
            ..self.clone()
        }
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        // The page and its total from one snapshot.
        let mut tx = snapshot(&self.pool).await?;
        let total = match query.customer {
            None => read_counter(&mut *tx, LAST_AUDIT_SEQ).await?,
            Some(id_client) => {
                let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit WHERE id_client = $1")
                    .bind(id_client)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                count.max(0) as u64
            }
        };
        let (comparison, order) = if query.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let after = query.after.map(int);
        let sql = format!(
            "SELECT seq, at, actor, route, id_client, summary FROM audit \
             WHERE ($1::uuid IS NULL OR id_client = $1) AND ($2::bigint IS NULL OR seq {comparison} $2) \
             ORDER BY seq {order} LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(query.customer)
            .bind(after)
            .bind(limit_plus_one(query.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let entries = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(seq_page(entries, query.limit, total, |e| e.seq))
    }
}

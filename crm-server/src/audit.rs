//! `GET /api/v1/audit`: the audit trail, paged, all of it or one customer's.

use crm_model::audit::AuditEntry;
use crm_model::Page;
use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::customers::parse_id_client;
use crate::error::{ApiError, ErrorBody};
use crate::http::{into_response, json, parse_query, raw_query};
use crate::state::AppState;
use crate::store::{AuditQuery, Store};

/// Entries per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "audit")
        .and(warp::get())
        .and(warp::any().map(move || state.clone()))
        .and(raw_query())
        .then(|state: AppState<S>, query: String| async move { into_response(audit(&state, &query).await) })
        .boxed()
}

/// The query of `GET /api/v1/audit`, as sent (each value checked below, so that a bad
/// one is a `400` naming it).
#[derive(Debug, Default, Deserialize)]
struct AuditParams {
    customer: Option<String>,
    /// `cursor`, as the other paged lists call it, is the same.
    #[serde(alias = "cursor")]
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Reads the query of `GET /api/v1/audit`; `400` on anything unreadable.
pub fn audit_query(raw: &str) -> Result<AuditQuery, ApiError> {
    let params: AuditParams = parse_query(raw)?;
    let customer = match params.customer.as_deref().map(str::trim) {
        None | Some("") => None,
        // An IdClient that no customer has is a customer with no entries, not a 404:
        // an erased or restored customer's trail is still asked for by its id.
        Some(text) => Some(
            parse_id_client(text)
                .map_err(|_| bad("bad_request", format!("customer {text:?} is not an IdClient (a UUID)")))?,
        ),
    };
    let after = match params.after.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            bad(
                "bad_cursor",
                format!("after {text:?} is not a cursor of this list (a next_cursor)"),
            )
        })?),
    };
    let limit = match params.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    "bad_request",
                    format!("limit {text:?} is not a number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let newest_first = match params.order.as_deref().map(str::trim) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad("bad_request", format!("order {other:?} is neither asc nor desc"))),
    };
    Ok(AuditQuery {
        customer,
        after,
        limit,
        newest_first,
    })
}

/// The audit trail: every write, who made it (the token's name, `local` without tokens,
/// `scheduler` for the server's own runs), when, through which route, the customer it
/// changed and what changed (field names and amounts, no personal values). Oldest
/// first unless `order=desc`.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("customer" = Option<String>, Query, description = "Only this customer's entries (its IdClient)"),
        ("after" = Option<u64>, Query, description = "`next_cursor` of the previous page: entries after it (before it with `order=desc`)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("order" = Option<String>, Query, description = "`asc` (default, oldest first) or `desc` (newest first)")),
    responses((status = 200, description = "A page of the audit trail", body = Page<AuditEntry>),
        (status = 400, description = "Unreadable customer, cursor, limit or order", body = ErrorBody),
        (status = 401, description = "Tokens are configured and none was sent, or an unknown one", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody)))]
async fn audit<S: Store>(state: &AppState<S>, raw: &str) -> Result<Response, ApiError> {
    let query = audit_query(raw)?;
    Ok(json(&state.store.audit(&query).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_or_refused_with_a_400() {
        let query = audit_query("customer=6f1c1e0a-3a57-4a57-9a57-1e0a3a574a57&after=5&limit=2&order=desc").unwrap();
        assert!(query.customer.is_some() && query.newest_first);
        assert_eq!((query.after, query.limit), (Some(5), 2));
        assert_eq!(audit_query("").unwrap().limit, DEFAULT_LIMIT);
        for bad in ["customer=nope", "after=x", "limit=0", "limit=1001", "order=up"] {
            let error = audit_query(bad).unwrap_err();
            assert_eq!(error.status_code(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}

//! Loyalty routes: the document's `/api/credit`, cards and the credit ledger.

use bytes::Bytes;
use crm_model::loyalty::{parse_credit_request, CreditRequest};
use crm_model::{CardRef, Customer, LedgerEntry, Page};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::Filter;

use crate::customers::parse_id_client;
use crate::error::{ApiError, ErrorBody};
use crate::http::{body_limited, into_response, json, raw_query, seq_page_query};
use crate::state::AppState;
use crate::store::{CreditResult, Store};

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let limit = state.config.body_limit;
    let with_state = crate::access::acting_state(state);

    let credit = warp::path!("api" / "credit")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(body_limited(limit))
        .then(credit);
    let credit_of = warp::path!("api" / "credit" / String)
        .and(warp::get())
        .and(with_state.clone())
        .then(|card: String, state: AppState<S>| async move { credit_of(&state, &card).await });
    let card = warp::path!("api" / "v1" / "customers" / String / "card")
        .and(warp::post())
        .and(with_state.clone())
        .then(issue_card);
    let ledger = warp::path!("api" / "v1" / "customers" / String / "ledger")
        .and(warp::get())
        .and(with_state)
        .and(raw_query())
        .then(|id: String, state: AppState<S>, query: String| async move { ledger(&state, &id, &query).await });

    credit
        .or(credit_of)
        .unify()
        .or(card)
        .unify()
        .or(ledger)
        .unify()
        .map(into_response)
        .boxed()
}

/// One credited item of `POST /api/credit`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Credited {
    /// The card as sent (number, or IdClient).
    #[serde(rename = "carteFid")]
    #[schema(value_type = crate::openapi::CardAsSent)]
    pub carte_fid: Value,
    /// The holder's new balance, cents.
    #[serde(rename = "Credit")]
    pub credit: u64,
}

/// One refused item of `POST /api/credit`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditItemError {
    pub index: usize,
    /// The card as sent, whatever it was.
    #[serde(rename = "carteFid")]
    #[schema(value_type = Value)]
    pub carte_fid: Value,
    pub error: String,
}

/// Answer of `POST /api/credit`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditAnswer {
    pub credited: Vec<Credited>,
    pub errors: Vec<CreditItemError>,
    /// Items without a card (anonymous sales): skipped.
    pub anonymous: u64,
}

/// Credits each card holder half of each ticket's `Montant`, in one atomic write.
/// Items with an `id` (or every item, under an `Idempotency-Key` header) are credited
/// once however often the batch is replayed. Items without a card are anonymous sales,
/// skipped and counted. A body without `Tickets` (the scheduler's `{}`, or none) pulls
/// the shops' tickets instead, as `GET /api/credit` does, and answers that pull's
/// summary.
#[utoipa::path(post, path = "/api/credit", tag = "loyalty", request_body = crate::openapi::CreditBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Key of the batch; item `id`s win")),
    responses((status = 200, description = "Credited holders and unknown cards; for a pull, its summary (PullSummary)", body = crate::openapi::CreditOrPull),
        (status = 400, description = "Not a JSON object with a Tickets array", body = ErrorBody),
        (status = 422, description = "An invalid item, or a balance that would pass 2^53 - 1 cents: nothing written", body = ErrorBody)))]
async fn credit<S: Store>(
    state: AppState<S>,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let batch_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("the Idempotency-Key header is not visible ASCII"))?
                .trim()
                .to_string(),
        ),
    };
    let batch = match parse_credit_request(&body?, batch_key.as_deref().filter(|k| !k.is_empty()))? {
        CreditRequest::Batch(batch) => batch,
        CreditRequest::Pull => return Ok(crate::scheduler::pull_answer(&state, &crate::scheduler::pulls::SHOPS).await),
    };
    let results = state.store.credit(batch.items.clone()).await?;
    let mut answer = CreditAnswer {
        credited: Vec::new(),
        errors: Vec::new(),
        anonymous: batch.anonymous,
    };
    for (item, result) in batch.items.into_iter().zip(results) {
        let index = item.index;
        match result {
            CreditResult::Credited { balance } => answer.credited.push(Credited {
                carte_fid: item.card_as_sent,
                credit: balance.0,
            }),
            CreditResult::UnknownCard => answer.errors.push(CreditItemError {
                index,
                carte_fid: item.card_as_sent,
                error: "unknown card".into(),
            }),
        }
    }
    Ok(json(&answer))
}

/// Answer of `GET /api/credit/<carteFid>`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditBalance {
    /// The card number, or the IdClient when the holder was asked by it.
    #[serde(rename = "carteFid")]
    #[schema(value_type = crate::openapi::CardRefSchema)]
    pub carte_fid: Value,
    #[serde(rename = "Credit")]
    pub credit: u64,
}

/// The credit of a card holder, by card number or `IdClient`.
#[utoipa::path(get, path = "/api/credit/{carteFid}", tag = "loyalty",
    params(("carteFid" = String, Path, description = "Card number, or IdClient")),
    responses((status = 200, description = "The holder's credit", body = CreditBalance),
        (status = 404, description = "Unknown card", body = ErrorBody)))]
async fn credit_of<S: Store>(state: &AppState<S>, card: &str) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("card_not_found", format!("no customer holds card {card:?}"));
    let card_ref = CardRef::parse(&Value::String(card.to_string())).map_err(|_| unknown())?;
    let holder = state.store.customer_by_card_ref(&card_ref).await?.ok_or_else(unknown)?;
    let carte_fid = match card_ref {
        CardRef::Card(n) => json!(n),
        CardRef::IdClient(id) => json!(id),
    };
    Ok(json(&CreditBalance {
        carte_fid,
        credit: holder.credit.0,
    }))
}

/// Issues the next free card number; a customer who has a card keeps it.
#[utoipa::path(post, path = "/api/v1/customers/{IdClient}/card", tag = "loyalty",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The customer, with its card", body = Customer),
        (status = 404, description = "Unknown or erased customer", body = ErrorBody)))]
async fn issue_card<S: Store>(id: String, state: AppState<S>) -> Result<Response, ApiError> {
    let record = state.store.issue_card(parse_id_client(&id)?).await?;
    Ok(json(&record.to_customer()))
}

/// Every movement of a customer's credit with its cause, oldest first; the entries
/// sum to `Credit`.
#[utoipa::path(get, path = "/api/v1/customers/{IdClient}/ledger", tag = "loyalty",
    params(("IdClient" = String, Path, description = "The customer's UUID"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of ledger entries", body = Page<LedgerEntry>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "Unknown customer", body = ErrorBody)))]
async fn ledger<S: Store>(state: &AppState<S>, id: &str, query: &str) -> Result<Response, ApiError> {
    let id_client = parse_id_client(id)?;
    let (limit, after) = seq_page_query(query)?;
    Ok(json(&state.store.ledger(id_client, after, limit).await?))
}

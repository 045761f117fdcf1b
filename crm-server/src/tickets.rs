//! Ticket routes: ingestion (`/api/v1/tickets`), listings, and the document's
//! `/api/get_tickets` with its per-consumer cursor.
//!
//! Guarantee of `GET /api/get_tickets/<consumer>`: the answer holds the tickets after
//! the consumer's cursor up to the newest one stored when the request arrived, oldest
//! first. The cursor moves to the last ticket of the answer only once the connection
//! has taken the whole body (the closing `]}` included) and the move is on disk before
//! the body ends. A client that disconnects, or an answer that fails mid-way, leaves the
//! cursor where it was, so those tickets come again next time (at least once). A body
//! taken whole by the connection but lost in the network after that is not sent again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crm_model::tickets::{parse_batch, BatchError, TicketError};
use crm_model::validation::ErrorList;
use crm_model::{LegacyTicket, Page, Ticket};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::customers::parse_id_client;
use crate::error::{ApiError, ErrorBody};
use crate::http::{body_limited, into_response, json, raw_query, seq_page_query, stream_json_array_then};
use crate::state::AppState;
use crate::store::Store;

/// Tickets per batch of a streamed listing.
const STREAM_BATCH: usize = 256;

/// Longest consumer name of `/api/get_tickets/<consumer>`.
const MAX_CONSUMER_CHARS: usize = 100;

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let stream_limit = state.config.stream_limit;
    let with_state = crate::access::acting_state(state);

    let ingest = warp::path!("api" / "v1" / "tickets")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(stream_limit))
        .then(ingest);
    let list = warp::path!("api" / "v1" / "tickets")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(|state: AppState<S>, query: String| async move { list_tickets(&state, &query).await });
    let of_customer = warp::path!("api" / "v1" / "customers" / String / "tickets")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(
            |id: String, state: AppState<S>, query: String| async move { customer_tickets(&state, &id, &query).await },
        );
    let all = warp::path!("api" / "get_tickets")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: AppState<S>| async move { get_tickets(state, None).await });
    let for_consumer = warp::path!("api" / "get_tickets" / String)
        .and(warp::get())
        .and(with_state)
        .then(|consumer: String, state: AppState<S>| async move { get_tickets(state, Some(consumer)).await });

    ingest
        .or(list)
        .unify()
        .or(of_customer)
        .unify()
        .or(all)
        .unify()
        .or(for_consumer)
        .unify()
        .map(into_response)
        .boxed()
}

/// Answer of `POST /api/v1/tickets`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// Tickets stored by this batch.
    pub stored: u64,
    /// Tickets whose `uid` was already stored: skipped.
    pub duplicates: u64,
    /// Credit given to customers by this batch, cents.
    pub credited_cents: u64,
    /// `uid`s of the stored tickets whose customer is not known (yet).
    pub unmatched: Vec<String>,
    /// Stored tickets with no client and no card.
    pub anonymous: u64,
}

/// Stores a batch of tickets `{"tickets": [...], "origin": "magasin"}` in one atomic
/// write, idempotent on `uid`, crediting each known customer half of each price.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", request_body = crate::openapi::TicketBatchBody,
    responses((status = 200, description = "What the batch did", body = IngestAnswer),
        (status = 400, description = "Not a JSON object with a tickets array", body = ErrorBody),
        (status = 413, description = "Larger than the stream limit", body = ErrorBody),
        (status = 422, description = "Invalid tickets, each listed as {index, field, error}; nothing written",
            body = ErrorBody)))]
async fn ingest<S: Store>(state: AppState<S>, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let body = body?;
    let tickets = parse_batch(&body).map_err(|e| match e {
        BatchError::Unreadable(message) => ApiError::bad_request(message),
        BatchError::Invalid {
            errors,
            invalid_tickets: bad,
        } => invalid_tickets(errors, bad),
    })?;
    drop(body);
    let outcome = state.store.ingest_tickets(tickets).await?;
    Ok(json(&IngestAnswer {
        stored: outcome.stored,
        duplicates: outcome.duplicates,
        credited_cents: outcome.credited_cents.0,
        unmatched: outcome.unmatched,
        anonymous: outcome.anonymous,
    }))
}

fn invalid_tickets(errors: ErrorList<TicketError>, bad: u64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_tickets",
        format!("{bad} invalid ticket(s); nothing was stored"),
    )
    .with_error_list(json!(errors.listed), errors.total)
}

/// Every ticket, oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets",
    params(("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of tickets", body = Page<Ticket>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody)))]
async fn list_tickets<S: Store>(state: &AppState<S>, query: &str) -> Result<Response, ApiError> {
    let (limit, after) = seq_page_query(query)?;
    let page = state.store.ticket_page(after, limit).await?;
    Ok(json(&tickets_of(page)))
}

/// The tickets credited to a customer, oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/customers/{IdClient}/tickets", tag = "tickets",
    params(("IdClient" = String, Path, description = "The customer's UUID"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of tickets", body = Page<Ticket>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "Unknown customer", body = ErrorBody)))]
async fn customer_tickets<S: Store>(state: &AppState<S>, id: &str, query: &str) -> Result<Response, ApiError> {
    let id_client = parse_id_client(id)?;
    let (limit, after) = seq_page_query(query)?;
    Ok(json(&tickets_of(
        state.store.customer_tickets(id_client, after, limit).await?,
    )))
}

fn tickets_of(page: Page<crm_model::TicketRecord>) -> Page<Ticket> {
    Page {
        items: page.items.into_iter().map(|r| r.ticket).collect(),
        next_cursor: page.next_cursor,
        total: page.total,
    }
}

/// Answer of `/api/get_tickets` (streamed), in the first implementation's shape that
/// the BI and promotion services parse: the CRM's own ticket numbers, date-only dates,
/// integers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketList {
    pub tickets: Vec<LegacyTicket>,
}

/// Every ticket, oldest first, streamed, in the older feed shape (`/api/v1/tickets`
/// keeps the full form).
#[utoipa::path(get, path = "/api/get_tickets", tag = "tickets",
    responses((status = 200, description = "Every ticket, oldest first (streamed)", body = TicketList)))]
#[allow(dead_code)]
fn get_tickets_doc() {}

/// The tickets consumer `consumer` has not received yet, oldest first, streamed in the
/// older feed shape; its cursor moves once the whole answer has been taken (see the
/// module's guarantee).
#[utoipa::path(get, path = "/api/get_tickets/{consumer}", tag = "tickets",
    params(("consumer" = String, Path, description = "The consumer's name (`bi`, `promo`...)")),
    responses((status = 200, description = "The tickets this consumer has not received (streamed)", body = TicketList),
        (status = 404, description = "A consumer name longer than 100 characters", body = ErrorBody)))]
async fn get_tickets<S: Store>(state: AppState<S>, consumer: Option<String>) -> Result<Response, ApiError> {
    if consumer
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CONSUMER_CHARS)
    {
        return Err(ApiError::not_found(
            "consumer_not_found",
            format!("a consumer name has at most {MAX_CONSUMER_CHARS} characters"),
        ));
    }
    let from = match &consumer {
        Some(name) => state.store.consumer_cursor(name).await?,
        None => 0,
    };
    // The answer ends at the newest ticket stored now, so that it ends even while
    // tickets keep coming.
    let until = state.store.last_ticket_seq().await?;
    let last_sent = Arc::new(AtomicU64::new(from));
    let producer_position = last_sent.clone();
    let batches = futures::stream::try_unfold(
        (state.store.clone(), producer_position),
        move |(store, position)| async move {
            let after = position.load(Ordering::Acquire);
            let batch = store.tickets_after(after, until, STREAM_BATCH).await?;
            if let Some(last) = batch.last() {
                position.store(last.seq, Ordering::Release);
            }
            let tickets = batch.iter().map(LegacyTicket::from_record).collect::<Vec<_>>();
            Ok(Some((tickets, (store, position))))
        },
    );
    let store = state.store.clone();
    let on_complete = move || async move {
        let (Some(name), sent) = (consumer, last_sent.load(Ordering::Acquire)) else {
            return;
        };
        if sent > from {
            if let Err(e) = store.advance_consumer(&name, sent).await {
                tracing::error!(error = %e, consumer = %name, "the consumer's cursor could not be saved");
            }
        }
    };
    Ok(stream_json_array_then("{\"tickets\":[", "]}", batches, on_complete))
}

//! Deferred payments: the document's `/api/allow_credit`, and `/api/v1` routes for the
//! payment service (payments due, results) and for staff (a customer's payments,
//! resetting refusals).

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use crm_model::input::parse_date;
use crm_model::payments::parse_payment_result;
use crm_model::{AllowCredit, Customer, Page, Payment};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::customers::parse_id_client;
use crate::error::{ApiError, ErrorBody};
use crate::http::{body_limited, into_response, json, parse_query, raw_query, seq_page_query};
use crate::state::AppState;
use crate::store::Store;

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let limit = state.config.body_limit;
    let with_state = crate::access::acting_state(state);

    let allow = warp::path!("api" / "allow_credit")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(allow_credit);
    let of_customer = warp::path!("api" / "v1" / "customers" / String / "payments")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(
            |id: String, state: AppState<S>, query: String| async move { customer_payments(&state, &id, &query).await },
        );
    let due = warp::path!("api" / "v1" / "payments")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(|state: AppState<S>, query: String| async move { payments_due(&state, &query).await });
    let result = warp::path!("api" / "v1" / "payments" / String / "result")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(payment_result);
    let reset = warp::path!("api" / "v1" / "customers" / String / "refusals" / "reset")
        .and(warp::post())
        .and(with_state)
        .then(reset_refusals);

    allow
        .or(of_customer)
        .unify()
        .or(due)
        .unify()
        .or(result)
        .unify()
        .or(reset)
        .unify()
        .map(into_response)
        .boxed()
}

/// Answer of `POST /api/allow_credit`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllowCreditAnswer {
    #[serde(rename = "idClient")]
    pub id_client: String,
    #[serde(rename = "Allowed")]
    pub allowed: bool,
}

/// Whether the customer may take credit; when allowed, a deferred payment of `Montant`
/// due on `Date` is scheduled (added to those already scheduled). Every answer, errors
/// included, carries `Allowed` (false on errors) and the `idClient` sent.
#[utoipa::path(post, path = "/api/allow_credit", tag = "payments", request_body = crate::openapi::AllowCreditBody,
    responses((status = 200, description = "Allowed, or refused for too many refusals", body = AllowCreditAnswer),
        (status = 400, description = "Not a JSON object; `Allowed` false", body = ErrorBody),
        (status = 404, description = "Unknown customer; `Allowed` false", body = ErrorBody),
        (status = 422, description = "Missing or invalid idClient, Montant (> 0) or Date; `Allowed` false",
            body = ErrorBody)))]
async fn allow_credit<S: Store>(state: AppState<S>, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let mut sent = None;
    let outcome = async {
        let (id_sent, parsed) = AllowCredit::parse(&body?);
        sent = id_sent;
        let request = parsed?;
        let payment = state.store.allow_credit(request, state.config.refusal_limit).await?;
        Ok::<bool, ApiError>(payment.is_some())
    }
    .await;
    match outcome {
        Ok(allowed) => Ok(json(&AllowCreditAnswer {
            id_client: sent.unwrap_or_default(),
            allowed,
        })),
        Err(error) => Err(error.with("Allowed", json!(false)).with("idClient", json!(sent))),
    }
}

/// A customer's deferred payments, every status, oldest first.
#[utoipa::path(get, path = "/api/v1/customers/{IdClient}/payments", tag = "payments",
    params(("IdClient" = String, Path, description = "The customer's UUID"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of payments", body = Page<Payment>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "Unknown customer", body = ErrorBody)))]
async fn customer_payments<S: Store>(state: &AppState<S>, id: &str, query: &str) -> Result<Response, ApiError> {
    let id_client = parse_id_client(id)?;
    let (limit, after) = seq_page_query(query)?;
    Ok(json(&state.store.customer_payments(id_client, after, limit).await?))
}

#[derive(Debug, Deserialize)]
struct DueParams {
    due: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The pending payments due on or before `due` (default today, UTC), by due date.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments",
    params(("due" = Option<String>, Query, description = "YYYY-MM-DD; default today"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of pending payments", body = Page<Payment>),
        (status = 400, description = "Invalid due date, limit or cursor", body = ErrorBody)))]
async fn payments_due<S: Store>(state: &AppState<S>, query: &str) -> Result<Response, ApiError> {
    let params: DueParams = parse_query(query)?;
    let due: NaiveDate = match params.due.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(text) => parse_date(text).map_err(|e| ApiError::bad_request(format!("due: {e}")))?,
        None => Utc::now().date_naive(),
    };
    let list = crm_model::ListQuery::from_params(&crm_model::ListParams {
        limit: params.limit,
        cursor: params.cursor,
        ..Default::default()
    })?;
    Ok(json(
        &state
            .store
            .payments_due(due, list.cursor.as_deref(), list.limit)
            .await?,
    ))
}

/// Body of `POST /api/v1/payments/<id>/result`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PaymentResultBody {
    /// `OK` when paid; anything else is a refusal.
    pub status: String,
}

/// The payment service's answer: `OK` marks the payment paid; anything else counts a
/// refusal (`NbRefus` + 1) and moves the due date one day later.
#[utoipa::path(post, path = "/api/v1/payments/{id}/result", tag = "payments", request_body = PaymentResultBody,
    params(("id" = u64, Path, description = "The payment's id")),
    responses((status = 200, description = "The payment after the result", body = Payment),
        (status = 404, description = "Unknown payment", body = ErrorBody),
        (status = 409, description = "The payment is not pending", body = ErrorBody),
        (status = 422, description = "No status", body = ErrorBody)))]
async fn payment_result<S: Store>(
    id: String,
    state: AppState<S>,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::not_found("payment_not_found", "payment not found"))?;
    let paid = parse_payment_result(&body?)?;
    Ok(json(&state.store.payment_result(id, paid).await?))
}

/// Sets the customer's `NbRefus` to 0.
#[utoipa::path(post, path = "/api/v1/customers/{IdClient}/refusals/reset", tag = "payments",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The customer", body = Customer),
        (status = 404, description = "Unknown or erased customer", body = ErrorBody)))]
async fn reset_refusals<S: Store>(id: String, state: AppState<S>) -> Result<Response, ApiError> {
    let record = state.store.reset_refusals(parse_id_client(&id)?).await?;
    Ok(json(&record.to_customer()))
}

//! Customer routes: the document's (`/api/data`, `/api/create_customer`, by e-mail),
//! kept working for older clients, and `/api/v1/customers`.

use bytes::Bytes;
use crm_model::validation::parse_json_object;
use crm_model::{Customer, CustomerInput, CustomerPatch, FieldError, ListParams, ListQuery, NewCustomer, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::error::{ApiError, ErrorBody};
use crate::http::{body_limited, into_response, json, json_with_status, parse_query, raw_query, stream_json_array};
use crate::state::AppState;
use crate::store::Store;

/// Customers per batch of a streamed full listing.
const STREAM_BATCH: usize = 256;

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let limit = state.config.body_limit;
    let with_state = crate::access::acting_state(state);

    let all = warp::path!("api" / "data")
        .and(warp::get())
        .and(with_state.clone())
        .then(all_customers);
    let by_id = warp::path!("api" / "data" / String)
        .and(warp::get())
        .and(with_state.clone())
        .then(|id: String, state: AppState<S>| async move { customer_as_list(&state, &id).await });
    let by_email_legacy = warp::path!("api" / "data" / String)
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(|_slug: String, state: AppState<S>, body| async move {
            customer_by_email(&state, body).await.map(|c| json(&[c]))
        });
    let by_email = warp::path!("api" / "customer" / "email")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(|state: AppState<S>, body| async move { customer_by_email(&state, body).await.map(|c| json(&c)) });
    let create_legacy = warp::path!("api" / "create_customer")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(create_customer_legacy);

    let list = warp::path!("api" / "v1" / "customers")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(list_customers);
    let create = warp::path!("api" / "v1" / "customers")
        .and(warp::post())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(create_customer);
    let get = warp::path!("api" / "v1" / "customers" / String)
        .and(warp::get())
        .and(with_state.clone())
        .then(|id: String, state: AppState<S>| async move { get_customer(&state, &id).await });
    let patch = warp::path!("api" / "v1" / "customers" / String)
        .and(warp::patch())
        .and(with_state.clone())
        .and(body_limited(limit))
        .then(patch_customer);
    let delete = warp::path!("api" / "v1" / "customers" / String)
        .and(warp::delete())
        .and(with_state)
        .then(erase_customer);

    all.or(by_id)
        .unify()
        .or(by_email_legacy)
        .unify()
        .or(by_email)
        .unify()
        .or(create_legacy)
        .unify()
        .or(list)
        .unify()
        .or(create)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .map(into_response)
        .boxed()
}

/// A path segment that should be an `IdClient`; anything else is an unknown customer.
pub fn parse_id_client(segment: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(segment).map_err(|_| ApiError::customer_not_found())
}

/// Every live customer, in `id` order, streamed.
#[utoipa::path(get, path = "/api/data", tag = "customers",
    responses((status = 200, description = "Every customer, ordered by id (streamed)", body = [Customer])))]
async fn all_customers<S: Store>(state: AppState<S>) -> Result<Response, ApiError> {
    let batches = futures::stream::try_unfold((state.store, None), |(store, after)| async move {
        let batch = store.customers_after(after, STREAM_BATCH).await?;
        let after = batch.last().map(|r| r.id).or(after);
        let customers = batch.iter().map(|r| r.to_customer()).collect::<Vec<_>>();
        Ok(Some((customers, (store, after))))
    });
    Ok(stream_json_array("[", "]", batches))
}

/// One customer as a one-element array, as the first implementation answered it.
#[utoipa::path(get, path = "/api/data/{IdClient}", tag = "customers",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The customer, in a one-element array", body = [Customer]),
        (status = 404, description = "Unknown customer (`user not found`)", body = ErrorBody)))]
async fn customer_as_list<S: Store>(state: &AppState<S>, id: &str) -> Result<Response, ApiError> {
    let customer = state
        .store
        .customer(parse_id_client(id)?)
        .await?
        .ok_or_else(ApiError::customer_not_found)?;
    Ok(json(&[customer.to_customer()]))
}

/// Body of the by-e-mail lookups.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmailLookup {
    pub email: String,
}

/// A customer by e-mail (case-insensitive). At `POST /api/data/<anything>` the answer is
/// a one-element array; at `POST /api/customer/email` it is the object itself.
#[utoipa::path(post, path = "/api/customer/email", tag = "customers", request_body = EmailLookup,
    responses((status = 200, description = "The customer", body = Customer),
        (status = 404, description = "No customer has this e-mail", body = ErrorBody),
        (status = 422, description = "No e-mail in the body", body = ErrorBody)))]
async fn customer_by_email<S: Store>(state: &AppState<S>, body: Result<Bytes, ApiError>) -> Result<Customer, ApiError> {
    let object = parse_json_object(&body?)?;
    let email = ["email", "Email", "mail"]
        .iter()
        .find_map(|k| object.get(*k))
        .ok_or_else(|| ApiError::invalid_fields(vec![FieldError::new("email", "is required")]))?;
    let Value::String(email) = email else {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "email",
            "must be a string",
        )]));
    };
    let customer = state
        .store
        .customer_by_email(email)
        .await?
        .ok_or_else(ApiError::customer_not_found)?;
    Ok(customer.to_customer())
}

/// Documents the legacy by-e-mail route, which shares [`customer_by_email`].
#[utoipa::path(post, path = "/api/data/{IdClient}", tag = "customers", request_body = EmailLookup,
    params(("IdClient" = String, Path, description = "Anything (not read); older clients put the IdClient here")),
    responses((status = 200, description = "The customer, in a one-element array", body = [Customer]),
        (status = 404, description = "No customer has this e-mail", body = ErrorBody),
        (status = 422, description = "No e-mail in the body", body = ErrorBody)))]
#[allow(dead_code)]
fn customer_by_email_legacy_doc() {}

/// Answer of `POST /api/create_customer`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedId {
    #[serde(rename = "idClient")]
    pub id_client: Uuid,
}

/// A new customer from a body; the `/api/v1` route (`strict`) refuses unknown keys.
fn new_customer(body: Result<Bytes, ApiError>, strict: bool) -> Result<NewCustomer, ApiError> {
    let body = body?;
    let input = if strict {
        CustomerInput::from_body_strict(&body)?
    } else {
        CustomerInput::from_body(&body)?
    };
    Ok(NewCustomer::from_input(&input)?)
}

/// Creates a customer from `{name, last_name, sexe, age, mail, phone}` (`name` is the
/// first name, `last_name` the last name) or the older clients' `{Nom, Prenom, email,
/// Credit, Paiement, Compte}`.
#[utoipa::path(post, path = "/api/create_customer", tag = "customers", request_body = crate::openapi::CustomerBody,
    responses((status = 200, description = "The new customer's id", body = CreatedId),
        (status = 409, description = "The e-mail (or card) is taken; `idClient` names the holder", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody)))]
async fn create_customer_legacy<S: Store>(
    state: AppState<S>,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let record = state.store.create_customer(new_customer(body, false)?).await?;
    Ok(json(&CreatedId {
        id_client: record.id_client,
    }))
}

/// Creates a customer (same bodies as `/api/create_customer`) and answers it whole. A
/// key that is not a customer field is a `422` naming it.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = crate::openapi::CustomerBody,
    responses((status = 201, description = "The new customer", body = Customer),
        (status = 409, description = "The e-mail (or card) is taken", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody)))]
async fn create_customer<S: Store>(state: AppState<S>, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let record = state.store.create_customer(new_customer(body, true)?).await?;
    Ok(json_with_status(&record.to_customer(), StatusCode::CREATED))
}

/// A page of customers, searched with `q` and sorted with `sort`.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers",
    params(("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("q" = Option<String>, Query, description = "Name, first name, e-mail, phone, IdClient or card number (word prefixes)"),
        ("sort" = Option<String>, Query, description = "id, Nom, Credit or PanierMoyen; prefix - for descending")),
    responses((status = 200, description = "A page of customers", body = Page<Customer>),
        (status = 400, description = "Invalid limit, cursor or sort", body = ErrorBody)))]
async fn list_customers<S: Store>(state: AppState<S>, query: String) -> Result<Response, ApiError> {
    let params: ListParams = parse_query(&query)?;
    let query = ListQuery::from_params(&params)?;
    let page = state.store.list_customers(&query).await?;
    Ok(json(&Page {
        items: page.items.iter().map(|r| r.to_customer()).collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
        total: page.total,
    }))
}

/// One customer; an erased one answers with its personal fields blanked.
#[utoipa::path(get, path = "/api/v1/customers/{IdClient}", tag = "customers",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The customer", body = Customer),
        (status = 404, description = "Unknown customer", body = ErrorBody)))]
async fn get_customer<S: Store>(state: &AppState<S>, id: &str) -> Result<Response, ApiError> {
    let customer = state
        .store
        .customer(parse_id_client(id)?)
        .await?
        .ok_or_else(ApiError::customer_not_found)?;
    Ok(json(&customer.to_customer()))
}

/// Changes the given fields (validated like create; e-mail and card stay unique). A key
/// that is not a customer field is a `422` naming it.
#[utoipa::path(patch, path = "/api/v1/customers/{IdClient}", tag = "customers", request_body = crate::openapi::CustomerBody,
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The updated customer", body = Customer),
        (status = 404, description = "Unknown or erased customer", body = ErrorBody),
        (status = 409, description = "The e-mail or card is taken", body = ErrorBody),
        (status = 422, description = "Invalid, read-only or unknown fields", body = ErrorBody)))]
async fn patch_customer<S: Store>(
    id: String,
    state: AppState<S>,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let id_client = parse_id_client(&id)?;
    let patch = CustomerPatch::from_input(&CustomerInput::from_body_strict(&body?)?)?;
    let record = state.store.update_customer(id_client, patch).await?;
    Ok(json(&record.to_customer()))
}

/// Erases the customer's personal data on request; accounting stays.
#[utoipa::path(delete, path = "/api/v1/customers/{IdClient}", tag = "customers",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 200, description = "The erased customer, personal fields blanked", body = Customer),
        (status = 404, description = "Unknown customer", body = ErrorBody)))]
async fn erase_customer<S: Store>(id: String, state: AppState<S>) -> Result<Response, ApiError> {
    let record = state.store.erase_customer(parse_id_client(&id)?).await?;
    Ok(json(&record.to_customer()))
}

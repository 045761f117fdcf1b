//! The OpenAPI 3 document, generated from the handlers' annotations.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::http::json;

pub use bodies::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crm",
        description = "The retail chain's customer register: customers, loyalty credit, tickets, deferred payments. \
            This document lists every route with its parameters and answers; the reference in prose (transport \
            rules, the customer object, older clients' habits, the ticket body, the import formats and modes, and \
            the scheduler's daily calls) is the file docs/api.md of the crm repository."
    ),
    paths(
        crate::health::health,
        crate::customers::all_customers,
        crate::customers::customer_as_list,
        crate::customers::customer_by_email,
        crate::customers::customer_by_email_legacy_doc,
        crate::customers::create_customer_legacy,
        crate::customers::create_customer,
        crate::customers::list_customers,
        crate::customers::get_customer,
        crate::customers::patch_customer,
        crate::customers::erase_customer,
        crate::pages::home::page,
        crate::pages::import::form_page,
        crate::pages::customer::page,
        crate::pages::customer_form::new_page,
        crate::pages::customer_form::create,
        crate::pages::customer_form::edit_page,
        crate::pages::customer_form::edit,
        crate::pages::actions::issue_card,
        crate::pages::actions::request_credit,
        crate::pages::actions::reset_refusals,
        crate::pages::stylesheet,
        crate::pages::login::login_form,
        crate::pages::login::log_in,
        crate::pages::login::log_out,
        crate::loyalty::credit,
        crate::loyalty::credit_of,
        crate::loyalty::issue_card,
        crate::loyalty::ledger,
        crate::tickets::ingest,
        crate::tickets::list_tickets,
        crate::tickets::customer_tickets,
        crate::tickets::get_tickets_doc,
        crate::tickets::get_tickets,
        crate::payments::allow_credit,
        crate::payments::customer_payments,
        crate::payments::payments_due,
        crate::payments::payment_result,
        crate::payments::reset_refusals,
        crate::import::update_db,
        crate::imports::current_import,
        crate::imports::import_by_id,
        crate::scheduler::pull_shops_doc,
        crate::scheduler::pull_web_shop,
        crate::scheduler::send_payments,
        crate::backup::export,
        crate::audit::audit,
        openapi_json,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crm_model::FieldError,
        crm_model::tickets::TicketError,
        crm_model::RowError
    )),
    modifiers(&SharedAnswers)
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 description of every route", body = Object)))]
fn openapi_json() -> Response {
    json(&ApiDoc::openapi())
}

pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(openapi_json)
        .boxed()
}

/// The answers every route of a kind can give, added to each operation that does not
/// list them itself: a JSON body can be unreadable (`400`) or too large (`413`), and a
/// write can meet an import being written (`503`, with `Retry-After`).
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let writes = [
                item.post.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
                item.put.as_mut(),
            ];
            for operation in writes.into_iter().flatten() {
                let json_body = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| body.content.contains_key("application/json"));
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                };
                if json_body {
                    add("400", "The body is not JSON, or not a JSON object");
                    add("413", "The body is larger than the route takes");
                }
                if path.starts_with("/api") {
                    add("503", "An import is being written: retry after `Retry-After` seconds");
                }
            }
        }
    }
}

/// Every path of the document as (its segments, `{name}` for a parameter; its methods,
/// upper-case), for the `Allow` header of `405` answers.
fn path_methods() -> &'static [(Vec<String>, Vec<String>)] {
    static TABLE: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        let paths: BTreeMap<String, Value> = doc
            .get("paths")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        paths
            .into_iter()
            .map(|(path, operations)| {
                let segments = path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
                let methods = ["get", "post", "put", "patch", "delete"]
                    .iter()
                    .filter(|m| operations.get(**m).is_some())
                    .map(|m| m.to_uppercase())
                    .collect();
                (segments, methods)
            })
            .collect()
    })
}

/// The methods the document lists for a request path (every template it matches), in
/// the order GET, POST, PUT, PATCH, DELETE; empty when no documented path matches.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let wanted: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut allowed: Vec<&'static str> = Vec::new();
    for (segments, methods) in path_methods() {
        let matches = segments.len() == wanted.len()
            && segments
                .iter()
                .zip(&wanted)
                .all(|(template, segment)| template.starts_with('{') || template == segment);
        if matches {
            for method in methods {
                if !allowed.contains(&method.as_str()) {
                    allowed.push(method.as_str());
                }
            }
        }
    }
    let order = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    allowed.sort_by_key(|m| order.iter().position(|o| o == m));
    allowed
}

/// Request bodies and answers that exist for the document only: the handlers read
/// these bodies leniently (aliases, numbers as text) and build these answers as JSON.
mod bodies {
    use super::*;

    /// A customer body of create and PATCH, under the API's spelling. The document's
    /// `create_customer` shape (`name`, `last_name`, `sexe`, `age`, `mail`, `phone`) and
    /// older clients' lower-case keys are read too (see docs/api.md). On PATCH a key
    /// sent as null clears the field; the computed keys (`id`, `Montant`, `NbRefus`,
    /// `PanierMoyen`) are refused.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct CustomerBody {
        /// Last name; required on create.
        #[serde(rename = "Nom")]
        pub nom: Option<String>,
        /// First name.
        #[serde(rename = "Prenom")]
        pub prenom: Option<String>,
        /// Unique among customers when not empty.
        #[serde(rename = "Email")]
        pub email: Option<String>,
        #[serde(rename = "Phone")]
        pub phone: Option<String>,
        /// At most 10 characters.
        #[serde(rename = "Compte")]
        pub compte: Option<String>,
        /// 0 to 150.
        #[serde(rename = "Age")]
        pub age: Option<u8>,
        #[serde(rename = "Sexe")]
        pub sexe: Option<crm_model::Sexe>,
        /// Opening loyalty credit, cents (create only).
        #[serde(rename = "Credit")]
        pub credit: Option<u64>,
        /// Loyalty card number, unique.
        #[serde(rename = "CarteFid")]
        pub carte_fid: Option<u64>,
        /// The public id to give the new customer (create only).
        #[serde(rename = "IdClient")]
        pub id_client: Option<Uuid>,
    }

    /// How a card holder is named: its card number or its `IdClient`.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum CardRefSchema {
        Card(u64),
        IdClient(Uuid),
    }

    /// The card of an item as it was sent: a number, or text (its digits, or an
    /// `IdClient`).
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum CardAsSent {
        Number(u64),
        Text(String),
    }

    /// One sale of a `POST /api/credit` batch.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct CreditItemBody {
        /// The card number (or, from older clients, the `IdClient`); null, empty or
        /// absent for an anonymous sale, which is skipped and counted.
        #[serde(rename = "carteFid")]
        pub carte_fid: Option<CardAsSent>,
        /// The ticket's amount, cents; the holder is credited half of it.
        #[serde(rename = "Montant")]
        pub montant: u64,
        /// The item's idempotency key: a replay of the same id credits nothing.
        #[schema(value_type = Option<String>)]
        pub id: Option<Value>,
    }

    /// Body of `POST /api/credit`: a batch of sales, or no `Tickets` at all (the
    /// scheduler's `{}`, or an empty body) to pull the shops' tickets.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct CreditBody {
        #[serde(rename = "Tickets")]
        pub tickets: Option<Vec<CreditItemBody>>,
    }

    /// Answer of `POST /api/credit`: the batch's outcome, or the pull's summary.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum CreditOrPull {
        Batch(crate::loyalty::CreditAnswer),
        Pull(crate::scheduler::pulls::PullSummary),
    }

    /// Body of `POST /api/allow_credit`.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct AllowCreditBody {
        #[serde(rename = "idClient")]
        pub id_client: Uuid,
        /// The amount of the deferred payment, cents, more than 0.
        #[serde(rename = "Montant")]
        pub montant: u64,
        /// Its due date, `YYYY-MM-DD` (or `DD/MM/YYYY`).
        #[serde(rename = "Date")]
        pub date: String,
    }

    /// Answer of `GET /healthz`.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct HealthAnswer {
        /// `ok` once the store is open; `degraded` while it takes no writes (a full
        /// disk) but serves reads.
        pub status: String,
        /// Why the store is degraded.
        pub reason: Option<String>,
        /// Live customers.
        pub customers: Option<u64>,
        /// Group-commit flushes since the start.
        pub flushes: Option<u64>,
    }

    /// Body of `POST /api/v1/tickets`.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct TicketBatchBody {
        /// The tickets, each in one of the sources' shapes (docs/api.md, "The ticket
        /// body"): `id`, `date`, `prix`, `client` or `CarteFid`, `modePaiement`,
        /// `articles`...
        #[schema(value_type = Vec<Object>)]
        pub tickets: Vec<Value>,
        /// The origin of tickets that name none (`magasin`, `e-commerce`).
        pub origin: Option<String>,
    }
}

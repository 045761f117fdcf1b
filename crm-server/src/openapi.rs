//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::OpenApi;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::http::json;

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
        crate::routes::health,
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
        openapi_json,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crm_model::FieldError,
        crm_model::tickets::TicketError,
        crm_model::RowError
    ))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 description of every route")))]
fn openapi_json() -> Response {
    json(&ApiDoc::openapi())
}

pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(openapi_json)
        .boxed()
}

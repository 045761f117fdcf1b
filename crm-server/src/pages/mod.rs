//! The staff pages: HTML rendered on the server with askama (escaped by default), no
//! JavaScript and no front-end build. Templates and the stylesheet are compiled into
//! the binary.
//!
//! Only these routes answer HTML, their errors included; every other `/api` route, and
//! any path that matches no route, keeps answering JSON.
//!
//! - `GET /` redirects to `GET /api`, the customer table ([`home`]);
//! - `GET /api/update_db`, the import form ([`import`]), which posts to the import
//!   route; that route answers browsers with [`import_redirect`],
//!   [`import_result_page`] or [`import_errors_page`];
//! - `GET /api/customers/<IdClient>`, one customer ([`customer`]);
//! - the customer forms ([`customer_form`]): `GET /api/customers/new` posted to
//!   `POST /api/customers`, and `GET /api/customers/<IdClient>/edit` posted to
//!   `POST /api/customers/<IdClient>/edit`;
//! - the customer page's actions ([`actions`]): `POST /api/customers/<IdClient>/card`,
//!   `.../credit` and `.../refusals/reset`;
//! - `GET /api/assets/crm.css`, the stylesheet.
//!
//! The form routes read `application/x-www-form-urlencoded`, answer `303` or an HTML
//! page (never JSON), and first refuse with `403` what a browser marks as sent from
//! another site ([`guard`]).

pub(crate) mod actions;
mod chart;
pub(crate) mod customer;
pub(crate) mod customer_form;
mod format;
mod forms;
mod guard;
pub(crate) mod home;
pub(crate) mod import;
pub(crate) mod login;

use askama::Template;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::http::{body_limited, raw_query};
use crate::state::AppState;
use crate::store::{Store, StoreError};

pub use chart::credit_chart;
pub use customer::{customer_page, ArticleView, CustomerPageView, PaymentView, TicketView};
pub use import::{import_errors_page, import_redirect, import_result_page, ImportSummaryView, RowErrorView};

const STYLESHEET: &str = include_str!("../../assets/crm.css");

/// What a browser may load on these pages: their own stylesheet, nothing else, and no
/// script at all, so that even a template mistake cannot run injected code.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let limit = state.config.body_limit;
    let login_state = state.clone();
    let with_state = crate::access::acting_state(state);
    // `/` is not under `/api`, so it is left out of the OpenAPI document.
    let root = warp::path::end().and(warp::get()).map(|| see_other("/api"));
    let home = warp::path!("api")
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .then(|state: AppState<S>, query: String| async move { home::page(&state, &query).await });
    // The CSRF token that the page's forms carry.
    let csrf = {
        let state = login_state.clone();
        warp::header::headers_cloned().map(move |headers: warp::http::HeaderMap| state.access.csrf_for(&headers))
    };
    let import_form = warp::path!("api" / "update_db")
        .and(warp::get())
        .and(with_state.clone())
        .and(csrf.clone())
        .map(|state: AppState<S>, csrf| import::form_page(state.imports.current(), csrf));
    // Before the customer page, whose id would take "new".
    let new_customer = warp::path!("api" / "customers" / "new")
        .and(warp::get())
        .and(csrf.clone())
        .map(customer_form::new_page);
    let customer = warp::path!("api" / "customers" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(raw_query())
        .and(csrf.clone())
        .and(warp::header::headers_cloned())
        .then(
            |id: String, state: AppState<S>, query: String, csrf, headers| async move {
                let history = customer::may_read_audit(&state, &headers);
                customer::page(&state, &id, &query, csrf, history).await
            },
        );
    let edit_form = warp::path!("api" / "customers" / String / "edit")
        .and(warp::get())
        .and(with_state.clone())
        .and(csrf.clone())
        .then(|id: String, state: AppState<S>, csrf| async move { customer_form::edit_page(&state, &id, csrf).await });
    let login = login::routes(login_state, limit);
    let stylesheet = warp::path!("api" / "assets" / "crm.css")
        .and(warp::get())
        .map(stylesheet);

    let headers = warp::header::headers_cloned();
    let create = warp::path!("api" / "customers")
        .and(warp::post())
        .and(with_state.clone())
        .and(headers)
        .and(body_limited(limit))
        .then(customer_form::create);
    let edit = warp::path!("api" / "customers" / String / "edit")
        .and(warp::post())
        .and(with_state.clone())
        .and(headers)
        .and(body_limited(limit))
        .then(customer_form::edit);
    let card = warp::path!("api" / "customers" / String / "card")
        .and(warp::post())
        .and(with_state.clone())
        .and(headers)
        .and(body_limited(limit))
        .then(actions::issue_card);
    let credit = warp::path!("api" / "customers" / String / "credit")
        .and(warp::post())
        .and(with_state.clone())
        .and(headers)
        .and(body_limited(limit))
        .then(actions::request_credit);
    let reset = warp::path!("api" / "customers" / String / "refusals" / "reset")
        .and(warp::post())
        .and(with_state)
        .and(headers)
        .and(body_limited(limit))
        .then(actions::reset_refusals);

    root.or(home)
        .unify()
        .or(import_form)
        .unify()
        .or(new_customer)
        .unify()
        .or(customer)
        .unify()
        .or(edit_form)
        .unify()
        .or(stylesheet)
        .unify()
        .or(create)
        .unify()
        .or(edit)
        .unify()
        .or(card)
        .unify()
        .or(credit)
        .unify()
        .or(reset)
        .unify()
        .or(login)
        .unify()
        .boxed()
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/api/assets/crm.css", tag = "pages",
    responses((status = 200, description = "The stylesheet of the pages", content_type = "text/css", body = String)))]
pub(crate) fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// The page refusing a form that a browser marks as sent from another site; `None`
/// when it does not.
pub(crate) fn cross_site_page(headers: &warp::http::HeaderMap) -> Option<Response> {
    guard::same_origin(headers).err().map(PageError::into_response)
}

/// A page refusing the request with `status` (`401`, `403`, `421`).
pub(crate) fn refusal_page(status: StatusCode, message: String) -> Response {
    PageError::new(status, "Accès refusé", message).into_response()
}

/// `303` to the login form, which comes back to `back` once logged in.
pub(crate) fn login_redirect(back: &str) -> Response {
    let query = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
    see_other(&format!("/api/login?{query}"))
}

/// `303 See Other` to `location` (a path of this service).
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Renders a page template with `status`. Pages show customers' personal data, so no
/// cache keeps them.
fn render<T: Template>(template: &T, status: StatusCode) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = warp::reply::with_status(body, status).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            warp::reply::with_status("la page n'a pas pu être affichée", StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
    }
}

/// An HTML error page: what went wrong, for people, and a way back.
#[derive(Debug, Clone, PartialEq, Eq, Template)]
#[template(path = "error.html")]
struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> PageError {
        PageError {
            status,
            title,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, "Adresse incorrecte", message)
    }

    fn customer_not_found() -> PageError {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Client introuvable",
            "Aucun client ne porte cet identifiant. Il a peut-être été saisi de travers.",
        )
    }

    fn into_response(self) -> Response {
        render(&self, self.status)
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> PageError {
        match error {
            StoreError::CustomerNotFound => PageError::customer_not_found(),
            StoreError::BadCursor(_) => PageError::bad_request(
                "Cette page de la liste n'existe pas (lien modifié ou tri changé). Reprenez depuis la première page.",
            ),
            other => {
                tracing::error!(error = %other, "a page could not read the store");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Erreur du serveur",
                    "Les données n'ont pas pu être lues. Réessayez dans un instant.",
                )
            }
        }
    }
}

//! The buttons and the credit form of the customer page, posted without JavaScript.
//! Each answers `303` back to the customer's page, whose notice says what was done
//! (read again from the store, never taken from the link), or an HTML error page:
//!
//! - `POST /api/customers/<IdClient>/card`: "Attribuer une carte" (the next free number;
//!   a customer who has a card keeps it);
//! - `POST /api/customers/<IdClient>/credit`: "Demande de crédit", `Montant` in euros
//!   (`360,00`, `360.5`) and `Date`, decided and scheduled as `POST /api/allow_credit`
//!   does; invalid fields bring the page back with the form's errors (`422`);
//! - `POST /api/customers/<IdClient>/refusals/reset`: "Remettre les refus à zéro".

use bytes::Bytes;
use crm_model::{AllowCredit, Cents};
use warp::http::HeaderMap;
use warp::reply::Response;

use super::customer::{self, CreditForm, Notice};
use super::forms::{erased, write_failed, FormData};
use super::{format, guard, see_other, PageError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// The live customer of the path, after the cross-site and CSRF checks.
async fn target<S: Store>(
    state: &AppState<S>,
    headers: &HeaderMap,
    form: &FormData,
    id: &str,
) -> Result<crm_model::CustomerRecord, PageError> {
    guard::check_form(state, headers, form)?;
    let id_client = uuid::Uuid::parse_str(id).map_err(|_| PageError::customer_not_found())?;
    match state.store.customer(id_client).await? {
        None => Err(PageError::customer_not_found()),
        Some(record) if record.erased => Err(erased()),
        Some(record) => Ok(record),
    }
}

fn back_to(id_client: uuid::Uuid, query: &str) -> Response {
    see_other(&format!("/api/customers/{id_client}?{query}"))
}

/// A write on a customer that may have been erased meanwhile.
fn failed(error: StoreError) -> PageError {
    match error {
        StoreError::CustomerNotFound => erased(),
        other => write_failed(other),
    }
}

/// Gives the customer a loyalty card, then back to its page.
#[utoipa::path(post, path = "/api/customers/{IdClient}/card", tag = "pages", operation_id = "issue_card_form",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 303, description = "Card issued (or kept): to the customer's page (`?notice=card`)"),
        (status = 403, description = "Sent from another site (`Sec-Fetch-Site`, `Origin`): refused (HTML page)", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or erased customer (HTML page)", content_type = "text/html", body = String),
        (status = 503, description = "An import is being written (HTML page)", content_type = "text/html", body = String)))]
pub async fn issue_card<S: Store>(
    id: String,
    state: AppState<S>,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Response {
    button(&state, &headers, body, &id, Notice::Card, |id_client| {
        state.store.issue_card(id_client)
    })
    .await
}

/// Sets the customer's refusals to 0, then back to its page.
#[utoipa::path(post, path = "/api/customers/{IdClient}/refusals/reset", tag = "pages", operation_id = "reset_refusals_form",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    responses((status = 303, description = "Reset: to the customer's page (`?notice=reset`)"),
        (status = 403, description = "Sent from another site (`Sec-Fetch-Site`, `Origin`): refused (HTML page)", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or erased customer (HTML page)", content_type = "text/html", body = String),
        (status = 503, description = "An import is being written (HTML page)", content_type = "text/html", body = String)))]
pub async fn reset_refusals<S: Store>(
    id: String,
    state: AppState<S>,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Response {
    button(&state, &headers, body, &id, Notice::Reset, |id_client| {
        state.store.reset_refusals(id_client)
    })
    .await
}

/// What a button of the customer page does: `action` on the customer, then back to its
/// page saying `notice`.
async fn button<S, Done, T>(
    state: &AppState<S>,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
    id: &str,
    notice: Notice,
    action: impl FnOnce(uuid::Uuid) -> Done,
) -> Response
where
    S: Store,
    Done: std::future::Future<Output = Result<T, StoreError>>,
{
    let outcome = async {
        let form = FormData::read(body)?;
        let record = target(state, headers, &form, id).await?;
        action(record.id_client).await.map_err(failed)?;
        Ok::<_, PageError>(back_to(record.id_client, &notice.query()))
    };
    outcome.await.unwrap_or_else(PageError::into_response)
}

/// The fields of the credit form, as they are posted.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct CreditRequestForm {
    /// In euros: `360,00`, `360.5`, `1 234,56 €`; more than 0, at most two decimals.
    Montant: String,
    /// Due date of the deferred payment: `2026-12-06` (a date field) or `06/12/2026`.
    Date: String,
}

/// Reads the credit form: the request, or the form with its errors.
pub(super) fn read_credit(form: &FormData, id_client: uuid::Uuid) -> Result<AllowCredit, CreditForm> {
    let montant_text = form.get("Montant").unwrap_or_default();
    let date_text = form.get("Date").unwrap_or_default();
    let montant = match format::parse_euros(montant_text) {
        Ok(Cents(0)) => Err("Le montant doit être supérieur à zéro.".to_string()),
        other => other,
    };
    let date = format::parse_date(date_text);
    match (montant, date) {
        (Ok(montant), Ok(date)) => Ok(AllowCredit {
            id_client,
            montant,
            date,
        }),
        (montant, date) => Err(CreditForm {
            montant: montant_text.to_string(),
            date: date_text.to_string(),
            montant_error: montant.err(),
            date_error: date.err(),
        }),
    }
}

/// Decides a credit request as `POST /api/allow_credit` does and, when allowed,
/// schedules the deferred payment; then back to the customer's page, which says the
/// outcome.
#[utoipa::path(post, path = "/api/customers/{IdClient}/credit", tag = "pages", operation_id = "credit_request_form",
    params(("IdClient" = String, Path, description = "The customer's UUID")),
    request_body(content = CreditRequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Decided: to the customer's page, `?credit=<payment id>` when allowed, `?credit=refused` when not"),
        (status = 400, description = "Unreadable form (HTML page)", content_type = "text/html", body = String),
        (status = 403, description = "Sent from another site (`Sec-Fetch-Site`, `Origin`): refused (HTML page)", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or erased customer (HTML page)", content_type = "text/html", body = String),
        (status = 422, description = "Invalid amount or date: the customer's page again, the errors next to the fields, values kept", content_type = "text/html", body = String),
        (status = 503, description = "An import is being written (HTML page)", content_type = "text/html", body = String)))]
pub async fn request_credit<S: Store>(
    id: String,
    state: AppState<S>,
    headers: HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Response {
    let outcome = async {
        let form = FormData::read(body)?;
        let record = target(&state, &headers, &form, &id).await?;
        let csrf = state.access.csrf_for(&headers);
        let request = match read_credit(&form, record.id_client) {
            Ok(request) => request,
            Err(credit_form) => {
                return customer::page_with_credit_form(&state, record.id_client, credit_form, csrf).await;
            }
        };
        match state.store.allow_credit(request, state.config.refusal_limit).await {
            Ok(Some(payment)) => Ok(back_to(record.id_client, &Notice::CreditAllowed(payment.id).query())),
            Ok(None) => Ok(back_to(record.id_client, &Notice::CreditRefused.query())),
            Err(StoreError::AmountOutOfRange { .. }) => {
                let credit_form = CreditForm {
                    montant: form.get("Montant").unwrap_or_default().to_string(),
                    date: form.get("Date").unwrap_or_default().to_string(),
                    montant_error: Some(
                        "Ce montant porterait le total des paiements différés du client au-delà du maximum."
                            .to_string(),
                    ),
                    date_error: None,
                };
                customer::page_with_credit_form(&state, record.id_client, credit_form, csrf).await
            }
            Err(error) => Err(failed(error)),
        }
    };
    outcome.await.unwrap_or_else(PageError::into_response)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_credit_form_reads_euros_and_dates_and_keeps_what_was_typed() {
        let id = Uuid::nil();
        let ok = read_credit(&FormData::of(&[("Montant", "360,00"), ("Date", "2026-12-06")]), id).unwrap();
        assert_eq!(
            (ok.montant, ok.date),
            (Cents(36000), NaiveDate::from_ymd_opt(2026, 12, 6).unwrap())
        );
        let ok = read_credit(&FormData::of(&[("Montant", "360.5"), ("Date", "06/12/2026")]), id).unwrap();
        assert_eq!(ok.montant, Cents(36050));

        let bad = read_credit(&FormData::of(&[("Montant", "0,00"), ("Date", "2026-02-30")]), id).unwrap_err();
        assert_eq!(bad.montant, "0,00");
        assert_eq!(bad.date, "2026-02-30");
        assert!(bad.montant_error.unwrap().contains("supérieur à zéro"));
        assert!(bad.date_error.unwrap().contains("n'est pas une date"));
        let bad = read_credit(&FormData::of(&[("Montant", "12,345"), ("Date", "2026-12-06")]), id).unwrap_err();
        assert!(bad.montant_error.is_some() && bad.date_error.is_none());
        let missing = read_credit(&FormData::default(), id).unwrap_err();
        assert!(missing.montant_error.is_some() && missing.date_error.is_some());
    }
}

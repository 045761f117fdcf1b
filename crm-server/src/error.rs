//! `ApiError`: what every failure of an `/api` route becomes, with its status, a stable
//! code and a human message, answered as `{"error", "code", ...}`.

use std::convert::Infallible;

use crm_model::{FieldError, InputError};
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::store::{ImportFailure, StoreError};

/// The JSON body of every error answer (for the OpenAPI document).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A message for people.
    pub error: String,
    /// A stable snake_case code for programs.
    pub code: String,
    /// The invalid fields (the first 1,000), on `422` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// How many errors there were in all, listed or not, on `422` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_count: Option<u64>,
    /// Whether `errors` lists fewer than `error_count`, on `422` answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_truncated: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Route-specific keys added to the body (`idClient` of a conflict, `errors`...).
    extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn customer_not_found() -> Self {
        Self::not_found("customer_not_found", "user not found")
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the {limit} bytes this route takes"),
        )
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let total = errors.len() as u64;
        Self::invalid_fields_counted(errors, total)
    }

    /// `422 invalid_fields` listing `listed`, the first of `total` errors. The message
    /// names the first few only: the list is in `errors`.
    pub fn invalid_fields_counted(listed: Vec<FieldError>, total: u64) -> Self {
        let mut message = listed
            .iter()
            .take(MESSAGE_ERRORS)
            .map(|e| format!("{}: {}", e.field, e.error))
            .collect::<Vec<_>>()
            .join("; ");
        if total > MESSAGE_ERRORS as u64 {
            message.push_str(&format!("; and {} more", total - MESSAGE_ERRORS as u64));
        }
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_fields", message).with_error_list(json!(listed), total)
    }

    /// Adds an error list, the first [`crm_model::validation::MAX_LISTED_ERRORS`] of
    /// `total`: `errors`, `error_count` and `errors_truncated`.
    pub fn with_error_list(self, listed: Value, total: u64) -> Self {
        let truncated = listed.as_array().map_or(0, Vec::len) as u64 != total;
        self.with("errors", listed)
            .with("error_count", json!(total))
            .with("errors_truncated", json!(truncated))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The same error under a more precise code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// Adds a route-specific key to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.message.clone()));
        body.insert("code".into(), Value::String(self.code.into()));
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        match error {
            InputError::Unreadable(message) => ApiError::bad_request(message),
            InputError::Invalid(errors) => ApiError::invalid_fields(errors),
            InputError::TooManyInvalid { listed, total } => ApiError::invalid_fields_counted(listed, total),
        }
    }
}

/// The one place where store failures, unique-key conflicts among them, get statuses.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::CustomerNotFound => ApiError::customer_not_found(),
            StoreError::EmailTaken { existing, .. } => ApiError::new(StatusCode::CONFLICT, "email_taken", message)
                .with("idClient", json!(existing))
                .with("field", json!("Email")),
            StoreError::CardTaken { existing, .. } => ApiError::new(StatusCode::CONFLICT, "card_taken", message)
                .with("idClient", json!(existing))
                .with("field", json!("CarteFid")),
            StoreError::IdClientTaken(existing) => ApiError::new(StatusCode::CONFLICT, "id_client_taken", message)
                .with("idClient", json!(existing))
                .with("field", json!("IdClient")),
            StoreError::ReservedByImport { field } => {
                ApiError::new(StatusCode::CONFLICT, "reserved_by_import", message).with("field", json!(field))
            }
            StoreError::PaymentNotFound => ApiError::not_found("payment_not_found", message),
            StoreError::PaymentNotPending { .. } => ApiError::new(StatusCode::CONFLICT, "payment_not_pending", message),
            StoreError::AmountOutOfRange { field, error } => {
                ApiError::invalid_fields(vec![FieldError::new(field, error)]).with_code("amount_out_of_range")
            }
            StoreError::ImportRunning => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "import_running", message),
            StoreError::BadCursor(message) => ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", message),
            // Refused before the write began: nothing was written. Failed during it: the
            // store was reopened from its disk (see store::guarded), so that reads now
            // show exactly what a restart would; whether the write is there is unknown
            // to the server at this point, and the answer says so.
            StoreError::StorageFull { nothing_written: true } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the disk of the data directory is full: nothing was written; retry once space is freed",
            )
            .with("maybeWritten", json!(false)),
            StoreError::StorageFull { nothing_written: false } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the disk of the data directory filled up during this write: it may have been written; read it \
                 back before retrying",
            )
            .with("maybeWritten", json!(true)),
            StoreError::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message)
            }
            StoreError::Storage(message) => {
                tracing::error!(%message, "storage failure");
                ApiError::internal("the store failed; nothing was written")
            }
        }
    }
}

impl From<ImportFailure> for ApiError {
    fn from(failure: ImportFailure) -> Self {
        match failure {
            ImportFailure::Input(crm_model::import::ImportError::Unreadable(message)) => ApiError::bad_request(message),
            ImportFailure::Input(e @ crm_model::import::ImportError::Io(_)) => ApiError::bad_request(e.to_string()),
            ImportFailure::EmptyReplace => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_replace", failure.to_string())
            }
            ImportFailure::Store(e) => e.into(),
        }
    }
}

/// Errors named in the message of a `422`; all the listed ones are in `errors`.
const MESSAGE_ERRORS: usize = 10;

/// Seconds a client is asked to wait before retrying a `503`.
const RETRY_AFTER_SECONDS: &str = "1";

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response = warp::reply::with_status(warp::reply::json(&self.body()), self.status).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every refusal for now (an import being written, a store unavailable)
            // says when to come back.
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// Turns what warp rejected before any handler ran (no such route, wrong method) into
/// the JSON error of every `/api` answer.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::not_found("route_not_found", "no such route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("the query string cannot be read")
    } else {
        tracing::warn!(?rejection, "unexpected rejection");
        ApiError::bad_request(format!("the request cannot be read: {rejection:?}"))
    };
    Ok(error.into_response())
}

/// Adds to a `405` answer the `Allow` header its path calls for: the methods the OpenAPI
/// document lists for every route template the path matches.
pub fn allow_on_405(path: warp::path::FullPath, mut response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = crate::openapi::allowed_methods(path.as_str()).join(", ");
        if let Ok(value) = warp::http::HeaderValue::from_str(&allowed) {
            response.headers_mut().insert(warp::http::header::ALLOW, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_to_retry_says_when() {
        for refusal in [
            StoreError::ImportRunning,
            StoreError::Unavailable("the database cannot be reached".into()),
        ] {
            let response = ApiError::from(refusal).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        let response = ApiError::customer_not_found().into_response();
        assert!(response.headers().get("retry-after").is_none());
    }

    #[test]
    fn a_full_disk_is_a_507_that_says_whether_the_write_may_have_happened() {
        let refused = ApiError::from(StoreError::StorageFull { nothing_written: true });
        assert_eq!(
            (refused.status_code(), refused.code()),
            (StatusCode::INSUFFICIENT_STORAGE, "storage_full")
        );
        assert_eq!(refused.body()["maybeWritten"], false);
        assert!(refused.body()["error"]
            .as_str()
            .unwrap()
            .contains("nothing was written"));
        let uncertain = ApiError::from(StoreError::StorageFull { nothing_written: false });
        assert_eq!(uncertain.status_code(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(uncertain.body()["maybeWritten"], true);
        assert!(!uncertain.body()["error"]
            .as_str()
            .unwrap()
            .contains("nothing was written"));
    }

    #[test]
    fn an_amount_past_the_bound_is_a_422_naming_the_item() {
        let error = ApiError::from(StoreError::AmountOutOfRange {
            field: "Tickets[1].Montant".into(),
            error: "too much".into(),
        });
        assert_eq!(
            (error.status_code(), error.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "amount_out_of_range")
        );
        assert_eq!(error.body()["errors"][0]["field"], "Tickets[1].Montant");
    }
}

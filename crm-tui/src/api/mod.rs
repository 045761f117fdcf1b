//! Typed client of the crm JSON API: one method per route, typed answers and a typed
//! [`ApiError`]. The terminal client and the workspace's end-to-end tests both use it.

mod types;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDate;
use crm_model::{Cents, Customer, FieldError, ListQuery, Page};
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Body, Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

pub use types::{
    Article, AuditEntry, CreditBalance, CreditDecision, CustomerChanges, CustomerKey, ImportMode, ImportRequest,
    ImportSummary, LedgerEntry, NewCustomerRequest, PaymentOutcome, RowError, ScheduledPayment, ServerImportProgress,
    Ticket, UploadProgress,
};

/// How long to wait for a TCP connection before calling the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Ceiling of an ordinary request; imports have none since a big file takes minutes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Ceiling of `GET /healthz`, which the client asks every few seconds: a server that
/// does not answer it this fast is shown as unreachable.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Size of the pieces an import file is read and sent in.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No answer: connection refused, timed out or cut.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error status and (normally) its JSON error body.
    #[error("{message} ({status}{})", if code.is_empty() { String::new() } else { format!(" {code}") })]
    Http {
        status: u16,
        /// The stable snake_case code of the error body; empty when it had none.
        code: String,
        message: String,
        /// Invalid fields of a `422` (`{"errors": [{"field", "error"}]}`).
        field_errors: Vec<FieldError>,
        /// Bad rows of an import (`{"errors": [{"row", "field", "error"}]}`).
        row_errors: Vec<RowError>,
        /// The existing customer of a `409` on a taken e-mail.
        id_client: Option<Uuid>,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The local file to upload could not be read.
    #[error("cannot read {}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

impl ApiError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ApiError::Unreachable(_))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Reads an error answer. Its body should be the contract's
    /// `{"error", "code", ...}`, but a proxy's HTML page must not hide the status.
    pub fn from_response(status: StatusCode, body: &[u8]) -> ApiError {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct ErrorBody {
            error: Option<String>,
            code: Option<String>,
            errors: Vec<serde_json::Value>,
            #[serde(rename = "idClient", alias = "IdClient")]
            id_client: Option<Uuid>,
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let mut field_errors = Vec::new();
        let mut row_errors = Vec::new();
        let Some(parsed) = parsed else {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(120).collect();
            let reason = status.canonical_reason().unwrap_or("error");
            return ApiError::Http {
                status: status.as_u16(),
                code: String::new(),
                message: if snippet.is_empty() {
                    reason.to_string()
                } else {
                    format!("{reason}: {snippet}")
                },
                field_errors,
                row_errors,
                id_client: None,
            };
        };
        for item in parsed.errors {
            if item.get("row").is_some() {
                if let Ok(row) = serde_json::from_value::<RowError>(item) {
                    row_errors.push(row);
                }
            } else if let Ok(field) = serde_json::from_value::<FieldError>(item) {
                field_errors.push(field);
            }
        }
        let message = parsed
            .error
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        ApiError::Http {
            status: status.as_u16(),
            code: parsed.code.unwrap_or_default(),
            message,
            field_errors,
            row_errors,
            id_client: parsed.id_client,
        }
    }
}

fn transport_error(error: reqwest::Error) -> ApiError {
    // The innermost cause ("Connection refused") is what staff can act on.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    ApiError::Unreachable(message)
}

/// Client of one crm server. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
}

impl ApiClient {
    /// A client of the server at `base` (`http://127.0.0.1:8000`).
    pub fn new(base: Url) -> ApiClient {
        ApiClient::with_token(base, None)
    }

    /// A client of the server at `base` that sends `token` as `Authorization: Bearer`
    /// on every request (a server started with `--tokens`).
    pub fn with_token(base: Url, token: Option<&str>) -> ApiClient {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
            if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
                // Kept out of reqwest's debug output.
                value.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .default_headers(headers)
            .build()
            .unwrap_or_default();
        ApiClient { http, base }
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /healthz`: `Ok` once the server's store is open.
    pub async fn health(&self) -> Result<(), ApiError> {
        let request = self.request(Method::GET, &["healthz"]).timeout(HEALTH_TIMEOUT);
        self.send_ignoring_body(request).await
    }

    /// `GET /api/v1/imports/current`: the import the server runs now, `None` when it
    /// runs none.
    pub async fn current_import(&self) -> Result<Option<ServerImportProgress>, ApiError> {
        let request = self
            .request(Method::GET, &["api", "v1", "imports", "current"])
            .timeout(HEALTH_TIMEOUT);
        match self.send_json(request).await {
            Ok(progress) => Ok(Some(progress)),
            Err(ApiError::Http { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /api/v1/customers?limit=&cursor=&q=&sort=`
    pub async fn list_customers(&self, query: &ListQuery) -> Result<Page<Customer>, ApiError> {
        let mut url = self.url(&["api", "v1", "customers"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("limit", &query.limit.to_string());
            if let Some(cursor) = &query.cursor {
                pairs.append_pair("cursor", cursor);
            }
            if let Some(q) = query.q.as_deref().filter(|q| !q.trim().is_empty()) {
                pairs.append_pair("q", q);
            }
            pairs.append_pair("sort", &query.sort.to_string());
        }
        self.send_json(self.http.get(url).timeout(REQUEST_TIMEOUT)).await
    }

    /// `GET /api/v1/customers/<IdClient>`
    pub async fn customer(&self, id_client: Uuid) -> Result<Customer, ApiError> {
        self.send_json(self.customer_request(Method::GET, id_client, None))
            .await
    }

    /// The customer a card number or `IdClient` names; `None` when no customer has it.
    /// A card is looked up through the search, which covers card numbers.
    pub async fn customer_by_key(&self, key: CustomerKey) -> Result<Option<Customer>, ApiError> {
        match key {
            CustomerKey::Id(id_client) => match self.customer(id_client).await {
                Ok(customer) => Ok(Some(customer)),
                Err(ApiError::Http { status: 404, .. }) => Ok(None),
                Err(error) => Err(error),
            },
            CustomerKey::Card(card) => {
                let query = ListQuery {
                    limit: 20,
                    q: Some(card.to_string()),
                    ..ListQuery::default()
                };
                let page = self.list_customers(&query).await?;
                Ok(page.items.into_iter().find(|c| c.carte_fid == Some(card)))
            }
        }
    }

    /// `POST /api/customer/email` `{"email"}`: the customer with this e-mail (any case).
    pub async fn customer_by_email(&self, email: &str) -> Result<Customer, ApiError> {
        let request = self
            .request(Method::POST, &["api", "customer", "email"])
            .json(&json!({ "email": email }));
        self.send_json(request).await
    }

    /// `POST /api/create_customer`: the new customer's `IdClient`. A taken e-mail is a
    /// `409` whose [`ApiError::Http::id_client`] is the existing customer.
    pub async fn create_customer(&self, customer: &NewCustomerRequest) -> Result<Uuid, ApiError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "idClient")]
            id_client: Uuid,
        }
        let request = self.request(Method::POST, &["api", "create_customer"]).json(customer);
        let created: Created = self.send_json(request).await?;
        Ok(created.id_client)
    }

    /// `PATCH /api/v1/customers/<IdClient>` with the changed fields only.
    pub async fn patch_customer(&self, id_client: Uuid, changes: &CustomerChanges) -> Result<Customer, ApiError> {
        self.send_json(self.customer_request(Method::PATCH, id_client, None).json(changes))
            .await
    }

    /// `DELETE /api/v1/customers/<IdClient>`: erases the customer's personal data.
    pub async fn erase_customer(&self, id_client: Uuid) -> Result<(), ApiError> {
        self.send_ignoring_body(self.customer_request(Method::DELETE, id_client, None))
            .await
    }

    /// `POST /api/v1/customers/<IdClient>/card`: the customer with their (new or kept) card.
    pub async fn issue_card(&self, id_client: Uuid) -> Result<Customer, ApiError> {
        self.send_json(self.customer_request(Method::POST, id_client, Some("card")))
            .await
    }

    /// `GET /api/v1/customers/<IdClient>/tickets`, one page.
    pub async fn tickets(&self, id_client: Uuid, limit: usize, cursor: Option<&str>) -> Result<Page<Ticket>, ApiError> {
        self.customer_page(id_client, "tickets", limit, cursor).await
    }

    /// `GET /api/v1/customers/<IdClient>/ledger`, one page.
    pub async fn ledger(
        &self,
        id_client: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<LedgerEntry>, ApiError> {
        self.customer_page(id_client, "ledger", limit, cursor).await
    }

    /// `GET /api/v1/audit?customer=<IdClient>`, newest first: one page of the
    /// customer's audit trail (`cursor`: the `next_cursor` of the page before).
    pub async fn audit(
        &self,
        id_client: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, ApiError> {
        let mut url = self.url(&["api", "v1", "audit"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("customer", &id_client.to_string());
            pairs.append_pair("order", "desc");
            pairs.append_pair("limit", &limit.to_string());
            if let Some(cursor) = cursor {
                pairs.append_pair("after", cursor);
            }
        }
        self.send_json(self.http.get(url).timeout(REQUEST_TIMEOUT)).await
    }

    /// `GET /api/v1/customers/<IdClient>/payments`, one page.
    pub async fn payments(
        &self,
        id_client: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<ScheduledPayment>, ApiError> {
        self.customer_page(id_client, "payments", limit, cursor).await
    }

    /// `GET /api/v1/payments?due=YYYY-MM-DD`: pending payments due on or before `due`.
    pub async fn due_payments(&self, due: NaiveDate) -> Result<Page<ScheduledPayment>, ApiError> {
        let mut url = self.url(&["api", "v1", "payments"]);
        url.query_pairs_mut().append_pair("due", &due.to_string());
        self.send_json(self.http.get(url).timeout(REQUEST_TIMEOUT)).await
    }

    /// `POST /api/update_db?dry_run=&mode=` with the file as the raw body: see
    /// [`Self::import_file_with`]; a file with an invalid row imports nothing.
    pub async fn import_file(
        &self,
        path: &Path,
        mode: ImportMode,
        dry_run: bool,
        progress: impl Fn(UploadProgress) + Send + Sync + 'static,
    ) -> Result<ImportSummary, ApiError> {
        let request = ImportRequest {
            mode,
            dry_run,
            skip_invalid: false,
        };
        self.import_file_with(path, request, progress).await
    }

    /// `POST /api/update_db?dry_run=&mode=` (and `skip_invalid=true`: the valid rows are
    /// imported, the invalid ones listed in the summary's `errors`) with the file as the
    /// raw body. The file is streamed in chunks, never held whole in memory; `progress`
    /// is called after each chunk is handed to the connection.
    pub async fn import_file_with(
        &self,
        path: &Path,
        request: ImportRequest,
        progress: impl Fn(UploadProgress) + Send + Sync + 'static,
    ) -> Result<ImportSummary, ApiError> {
        let ImportRequest {
            mode,
            dry_run,
            skip_invalid,
        } = request;
        let file_error = |error: std::io::Error| ApiError::File {
            path: path.to_path_buf(),
            message: error.to_string(),
        };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let total = file.metadata().await.map_err(file_error)?.len();
        progress(UploadProgress { sent: 0, total });
        let chunks =
            futures::stream::try_unfold((file, 0u64, progress), move |(mut file, sent, progress)| async move {
                let mut chunk = vec![0u8; UPLOAD_CHUNK_BYTES];
                let read = file.read(&mut chunk).await?;
                if read == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                chunk.truncate(read);
                let sent = sent + read as u64;
                progress(UploadProgress { sent, total });
                Ok(Some((Bytes::from(chunk), (file, sent, progress))))
            });
        let mut url = self.url(&["api", "update_db"]);
        url.query_pairs_mut()
            .append_pair("dry_run", if dry_run { "true" } else { "false" })
            .append_pair("mode", mode.as_str());
        if skip_invalid {
            url.query_pairs_mut().append_pair("skip_invalid", "true");
        }
        let request = self
            .http
            .post(url)
            .header(CONTENT_LENGTH, total)
            .body(Body::wrap_stream(chunks));
        self.send_json(request).await
    }

    /// `POST /api/allow_credit`: whether a deferred payment of `montant` due on `date`
    /// is allowed (and then scheduled).
    pub async fn allow_credit(
        &self,
        id_client: Uuid,
        montant: Cents,
        date: NaiveDate,
    ) -> Result<CreditDecision, ApiError> {
        let body = json!({ "idClient": id_client, "Montant": montant, "Date": date.to_string() });
        self.send_json(self.request(Method::POST, &["api", "allow_credit"]).json(&body))
            .await
    }

    /// `GET /api/credit/<carteFid>` by card number or `IdClient`.
    pub async fn credit_balance(&self, key: &CustomerKey) -> Result<CreditBalance, ApiError> {
        let key = key.to_string();
        self.send_json(self.request(Method::GET, &["api", "credit", &key]))
            .await
    }

    /// `POST /api/v1/payments/<id>/result` `{"status": "OK"|"ERROR"}`: the payment after it.
    pub async fn payment_result(
        &self,
        payment_id: &str,
        outcome: PaymentOutcome,
    ) -> Result<ScheduledPayment, ApiError> {
        let request = self
            .request(Method::POST, &["api", "v1", "payments", payment_id, "result"])
            .json(&json!({ "status": outcome.as_str() }));
        self.send_json(request).await
    }

    /// `POST /api/v1/customers/<IdClient>/refusals/reset`: sets `NbRefus` to 0; the
    /// customer after it.
    pub async fn reset_refusals(&self, id_client: Uuid) -> Result<Customer, ApiError> {
        let id = id_client.to_string();
        let request = self.request(Method::POST, &["api", "v1", "customers", &id, "refusals", "reset"]);
        self.send_json(request).await
    }

    async fn customer_page<T: DeserializeOwned>(
        &self,
        id_client: Uuid,
        list: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<T>, ApiError> {
        let id = id_client.to_string();
        let mut url = self.url(&["api", "v1", "customers", &id, list]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("limit", &limit.to_string());
            if let Some(cursor) = cursor {
                pairs.append_pair("cursor", cursor);
            }
        }
        self.send_json(self.http.get(url).timeout(REQUEST_TIMEOUT)).await
    }

    fn customer_request(&self, method: Method, id_client: Uuid, sub: Option<&str>) -> RequestBuilder {
        let id = id_client.to_string();
        let mut segments = vec!["api", "v1", "customers", id.as_str()];
        segments.extend(sub);
        self.request(method, &segments)
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url(segments)).timeout(REQUEST_TIMEOUT)
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send_json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ApiError> {
        let body = self.send(request).await?;
        serde_json::from_slice(&body).map_err(|error| ApiError::Decode(error.to_string()))
    }

    async fn send_ignoring_body(&self, request: RequestBuilder) -> Result<(), ApiError> {
        self.send(request).await.map(drop)
    }

    /// Sends and reads the whole answer; error statuses become [`ApiError::Http`].
    async fn send(&self, request: RequestBuilder) -> Result<Bytes, ApiError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ApiError::from_response(status, &body))
        }
    }
}

#[cfg(test)]
mod tests;

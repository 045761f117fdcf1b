//! `POST /api/update_db`: customer import, as a raw body or as the file of a multipart
//! form, parsed while it arrives. The body is handed in chunks to a blocking thread
//! that reads rows from it ([`ImportRows`]), and the rows to the store's import as a
//! stream.

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crm_model::import::ImportError;
use crm_model::{ImportMode, ImportOptions, ImportReport, ImportRows, RowOutcome};
use futures::stream::BoxStream;
use futures::{Future, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Buf, Filter};

use crate::access::Role;
use crate::error::{ApiError, ErrorBody};
use crate::http::{into_response, json, parse_query, raw_query};
use crate::pages;
use crate::state::AppState;
use crate::store::{ImportFailure, ImportProgressFn, Store};

/// Body chunks queued between the connection and the thread that parses rows.
const QUEUED_CHUNKS: usize = 16;

/// Parsed rows queued between that thread and the store's import.
pub const QUEUED_ROWS: usize = 1024;

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let with_state = crate::access::acting_state(state);
    warp::path!("api" / "update_db")
        .and(warp::post())
        .and(with_state)
        .and(raw_query())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("content-length"))
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |state: AppState<S>,
             query: String,
             content_type: Option<String>,
             length: Option<String>,
             headers: warp::http::HeaderMap,
             body| async move {
                into_response(update_db(state, query, content_type, length, headers, body).await)
            },
        )
        .boxed()
}

/// The query of an import.
#[derive(Debug, Default, Deserialize)]
struct ImportParams {
    mode: Option<String>,
    dry_run: Option<String>,
    skip_invalid: Option<String>,
}

fn parse_mode(text: &str) -> Result<ImportMode, ApiError> {
    ImportMode::parse(text)
        .ok_or_else(|| ApiError::bad_request(format!("unknown mode {text:?}: use merge (the default) or replace")))
}

/// A yes/no option (`dry_run`, `skip_invalid`); given with no value, yes (a ticked
/// checkbox with no value says `on`).
fn parse_flag(name: &str, text: &str) -> Result<bool, ApiError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {text:?}"
        ))),
    }
}

fn options(query: &str) -> Result<ImportOptions, ApiError> {
    let params: ImportParams = parse_query(query)?;
    let flag = |name: &str, value: Option<&str>| {
        value
            .map(|v| parse_flag(name, v))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(ImportOptions {
        mode: params.mode.as_deref().map(parse_mode).transpose()?.unwrap_or_default(),
        dry_run: flag("dry_run", params.dry_run.as_deref())?,
        skip_invalid: flag("skip_invalid", params.skip_invalid.as_deref())?,
    })
}

/// `400` for options that cannot run together.
fn check(options: ImportOptions) -> Result<ImportOptions, ApiError> {
    match options.conflict() {
        Some(conflict) => Err(ApiError::bad_request(conflict)),
        None => Ok(options),
    }
}

type Feeder = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Imports customers from the body (see docs/api.md, "Importing customers"). The answer
/// carries the import's `import_id`; `GET /api/v1/imports/current` shows its progress
/// while it runs.
#[utoipa::path(post, path = "/api/update_db", tag = "import",
    params(("mode" = Option<String>, Query, description = "merge (default): rows update the customers they match (IdClient, else Email) and create the others; rows apply in file order, so a row carrying the IdClient or Email of an earlier row of the file updates that row's customer; replace: then every customer absent from the file is erased; readers see the old customers until the new set is complete"),
        ("dry_run" = Option<bool>, Query, description = "validate and count, write nothing"),
        ("skip_invalid" = Option<bool>, Query, description = "write the valid rows and list the invalid ones in `errors` (counted in `skipped`), answering 200; without it, any invalid row is a 422 and nothing is written. Not with mode=replace (400)")),
    request_body(content = String, description = "{\"clients\": [...]}, a JSON array, JSON lines or CSV with a header row; raw, or as the `file` field of a multipart form (fields `mode`, `dry_run`, `skip_invalid`, `redirect` before it)",
        content_type = "application/json"),
    responses((status = 200, description = "What the import did (or would do, dry run); `unmatchable` counts the rows with neither IdClient nor Email, which importing the file again would create again; with skip_invalid, the skipped rows are in `errors`", body = ImportReport),
        (status = 400, description = "Unreadable file, unknown mode, skip_invalid with mode=replace", body = ErrorBody),
        (status = 413, description = "Larger than the stream limit", body = ErrorBody),
        (status = 422, description = "Bad rows, all listed as {row, field, error}; nothing was written", body = ErrorBody),
        (status = 503, description = "Another import is being written", body = ErrorBody)))]
async fn update_db<S: Store>(
    state: AppState<S>,
    query: String,
    content_type: Option<String>,
    declared_length: Option<String>,
    headers: warp::http::HeaderMap,
    body: impl Stream<Item = Result<impl Buf + Send, warp::Error>> + Send + 'static,
) -> Result<Response, ApiError> {
    let mut options = options(&query)?;
    // The import page's form says `redirect=1`: its answer is a page, not JSON.
    let mut from_browser = false;
    // The import page's CSRF token (see crate::access::csrf).
    let mut csrf = None;
    let limit = state.config.stream_limit;
    if declared_length
        .and_then(|d| d.trim().parse::<u64>().ok())
        .is_some_and(|d| d > limit)
    {
        return Err(ApiError::payload_too_large(limit));
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let body = limited(body, limit, too_large.clone());
    let (chunks, received) = mpsc::channel(QUEUED_CHUNKS);
    // Set by the feeder once the body ended as it should: a channel closed without it
    // (the client hung up, the request was dropped) is a cut upload, never a whole file.
    let whole = Arc::new(AtomicBool::new(false));
    let is_form = content_type
        .as_deref()
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let (file_type, file_name, feeder): (Option<String>, Option<String>, Feeder) = if is_form {
        let boundary = multer::parse_boundary(content_type.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("the multipart form cannot be read: {e}")))?;
        let mut form = multer::Multipart::new(body, boundary);
        let field = loop {
            let field = form.next_field().await.map_err(|e| form_error(&e, &too_large, limit))?;
            let Some(field) = field else {
                return Err(ApiError::bad_request("the form has no file field"));
            };
            match field.name() {
                Some("mode") => options.mode = parse_mode(&form_text(field, &too_large, limit).await?)?,
                Some("dry_run") => {
                    options.dry_run = parse_flag("dry_run", &form_text(field, &too_large, limit).await?)?
                }
                Some("skip_invalid") => {
                    options.skip_invalid = parse_flag("skip_invalid", &form_text(field, &too_large, limit).await?)?
                }
                Some("csrf") => csrf = Some(form_text(field, &too_large, limit).await?),
                Some("redirect") => from_browser = form_text(field, &too_large, limit).await?.trim() == "1",
                Some("file") => break field,
                _ if field.file_name().is_some() => break field,
                _ => {}
            }
        };
        let file_type = field.content_type().map(ToString::to_string);
        let file_name = field.file_name().map(str::to_string);
        let complete = whole.clone();
        let feeder = Box::pin(async move {
            let _form = form;
            let mut field = field;
            loop {
                let next = match field.chunk().await {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => {
                        complete.store(true, Ordering::Release);
                        break;
                    }
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                let failed = next.is_err();
                if chunks.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        (file_type, file_name, feeder)
    } else {
        let complete = whole.clone();
        let feeder = Box::pin(async move {
            let mut body = std::pin::pin!(body);
            while let Some(next) = body.next().await {
                let failed = next.is_err();
                if chunks.send(next).await.is_err() || failed {
                    return;
                }
            }
            complete.store(true, Ordering::Release);
        });
        (content_type, None, feeder)
    };
    let options = check(options)?;
    if !state.access.csrf_ok(&headers, csrf.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_token_invalid",
            "the form does not carry the CSRF token of this session: reopen the import page and send it again",
        ));
    }
    // The route asked `write` of a merge; a `mode=replace` given in the form is known
    // only now.
    if options.mode == ImportMode::Replace {
        match state.access.principal(&headers) {
            Some(principal) if principal.role >= Role::Admin => {}
            Some(principal) => {
                return Err(crate::access::Refusal::RoleTooSmall {
                    principal,
                    needed: Role::Admin,
                }
                .api_error())
            }
            None => return Err(crate::access::Refusal::Unauthenticated { invalid: false }.api_error()),
        }
    }
    let store = state.store.clone();
    let tracker = state.imports.clone();
    let id = tracker.start(options);
    let rows = blocking_stream(
        rows_of(ChunkReader::new(received, whole), file_type, file_name),
        QUEUED_ROWS,
    );
    let progress: ImportProgressFn = {
        let tracker = tracker.clone();
        Arc::new(move |progress| tracker.progress(id, progress))
    };
    // A task of its own: the import runs to its end even if this request is dropped,
    // and records its own end, so that no import stays "running" in the tracker.
    let import = tokio::spawn(async move {
        let outcome = store.import_customers(rows, options, progress).await;
        tracker.finish(id, outcome.as_ref().map_err(|failure| failure.to_string()));
        outcome
    });
    let ((), outcome) = tokio::join!(feeder, import);
    let outcome = outcome.unwrap_or_else(|e| {
        let failure = ImportFailure::Store(crate::store::StoreError::Storage(format!("the import stopped: {e}")));
        state.imports.finish(id, Err(failure.to_string()));
        Err(failure)
    });
    let refused = |report: &ImportReport| report.error_count > 0 && !options.skip_invalid;
    match outcome {
        Ok(report) if from_browser && refused(&report) => Ok(pages::import::import_rejected_page(
            &row_views(&report),
            report.unmatchable,
        )),
        Ok(report) if refused(&report) => Err(invalid_rows(report, id)),
        Ok(report) if from_browser && report.error_count > 0 => Ok(pages::import::import_partial_page(
            &pages::ImportSummaryView::of(&report, options.dry_run),
            &row_views(&report),
        )),
        Ok(_) if from_browser => Ok(pages::import_redirect(id)),
        Ok(report) => Ok(json(&Identified { import_id: id, report })),
        Err(ImportFailure::Input(ImportError::Io(_))) if too_large.load(Ordering::Relaxed) => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(failure) => Err(failure.into()),
    }
}

/// The listed bad rows, for a page.
fn row_views(report: &ImportReport) -> Vec<pages::RowErrorView> {
    report
        .errors
        .iter()
        .map(|e| pages::RowErrorView {
            row: e.row,
            field: e.field.clone(),
            error: e.error.clone(),
        })
        .collect()
}

/// `422`: every bad row (up to the listing cap), nothing written.
fn invalid_rows(report: ImportReport, id: uuid::Uuid) -> ApiError {
    let message = format!(
        "{} error(s) in the file; nothing was imported (skip_invalid=true imports the valid rows)",
        report.error_count
    );
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows", message)
        .with_error_list(json!(report.errors), report.error_count)
        .with("unmatchable", json!(report.unmatchable))
        .with("import_id", json!(id))
}

/// An import's answer: its report and its id.
#[derive(serde::Serialize)]
struct Identified {
    import_id: uuid::Uuid,
    #[serde(flatten)]
    report: ImportReport,
}

fn form_error(e: &multer::Error, too_large: &AtomicBool, limit: u64) -> ApiError {
    if too_large.load(Ordering::Relaxed) {
        ApiError::payload_too_large(limit)
    } else {
        ApiError::bad_request(format!("the multipart form cannot be read: {e}"))
    }
}

async fn form_text(field: multer::Field<'static>, too_large: &AtomicBool, limit: u64) -> Result<String, ApiError> {
    field.text().await.map_err(|e| form_error(&e, too_large, limit))
}

/// The body as `Bytes`, ending with an error (and `too_large` set) past `limit` bytes.
fn limited(
    body: impl Stream<Item = Result<impl Buf + Send, warp::Error>> + Send + 'static,
    limit: u64,
    too_large: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut seen = 0u64;
    body.map(move |chunk| {
        let mut chunk = chunk.map_err(std::io::Error::other)?;
        let bytes = chunk.copy_to_bytes(chunk.remaining());
        seen += bytes.len() as u64;
        if seen > limit {
            too_large.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(format!("the body is larger than {limit} bytes")));
        }
        Ok(bytes)
    })
}

/// The rows of a file read from a blocking reader, opened (its format sniffed) on the
/// first call of `next`, so that the whole read runs where the iterator runs.
pub fn rows_of<R: Read + Send + 'static>(
    reader: R,
    file_type: Option<String>,
    file_name: Option<String>,
) -> impl Iterator<Item = Result<RowOutcome, ImportError>> + Send + 'static {
    let mut opening = Some((reader, file_type, file_name));
    let mut rows = None;
    std::iter::from_fn(move || {
        if let Some((reader, file_type, file_name)) = opening.take() {
            match ImportRows::open(reader, file_type.as_deref(), file_name.as_deref()) {
                Ok(opened) => rows = Some(opened),
                Err(e) => return Some(Err(e)),
            }
        }
        rows.as_mut()?.next()
    })
}

/// The items of a blocking iterator (rows parsed from a reader that blocks) as a
/// stream: the iterator runs on a blocking thread, at most `ahead` items ahead of the
/// stream's reader; dropping the stream stops it.
pub fn blocking_stream<I>(items: I, ahead: usize) -> BoxStream<'static, I::Item>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    let (sender, received) = mpsc::channel(ahead);
    tokio::task::spawn_blocking(move || {
        for item in items {
            if sender.blocking_send(item).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|item| (item, received))
    })
    .boxed()
}

/// Reads on a blocking thread the chunks an async task receives. The sender sets
/// `whole` once the body has ended as it should; a channel closed before that reads as
/// an unexpected end of file.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
    whole: Arc<AtomicBool>,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>, whole: Arc<AtomicBool>) -> ChunkReader {
        ChunkReader {
            chunks,
            current: Bytes::new(),
            whole,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None if self.whole.load(Ordering::Acquire) => return Ok(0),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upload broke off before its end",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

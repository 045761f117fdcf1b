//! Backups: `GET /api/v1/export` online, `crm-server export` and `crm-server restore`
//! offline, all in the dump format of [`crm_model::backup`].

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use crm_model::backup::{BackupReader, BackupRecord};
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::into_response;
use crate::routes::AppState;
use crate::store::{BackupStore, SledStore, Store, StoreError};

/// Bytes of dump gathered before they are handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks queued between the export and the connection: the export waits for a slow
/// reader rather than holding the dump in memory.
const QUEUED_CHUNKS: usize = 4;

/// The content type of a dump (JSON lines).
pub const CONTENT_TYPE: &str = "application/x-ndjson";

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "export")
        .and(warp::get())
        .and(warp::any().map(move || state.clone()))
        .then(|state: AppState<S>| async move { into_response(export(state).await) })
        .boxed()
}

/// Why an export stopped: the store failed, or the reader went away.
enum Stop {
    Store(StoreError),
    ReaderGone,
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Stop::Store(error)
    }
}

/// Writes each record as one line into `buf`, handing `buf` to `send` whenever it
/// passes [`CHUNK_BYTES`] (and after the header, so that the answer starts at once).
fn write_lines<'a>(
    buf: &'a mut Vec<u8>,
    mut send: impl FnMut(Vec<u8>) -> Result<(), Stop> + 'a,
) -> impl FnMut(&BackupRecord) -> Result<(), Stop> + 'a {
    move |record| {
        serde_json::to_writer(&mut *buf, record).expect("backup records serialise");
        buf.push(b'\n');
        if buf.len() >= CHUNK_BYTES || matches!(record, BackupRecord::Header { .. } | BackupRecord::Trailer { .. }) {
            send(std::mem::take(buf))?;
        }
        Ok(())
    }
}

/// The whole register as a dump, from one consistent snapshot, streamed while writes
/// go on (see `store::sled::backup` for how the snapshot is kept).
#[utoipa::path(get, path = "/api/v1/export", tag = "backups",
    responses(
        (status = 200, description = "A dump of the whole store, streamed as JSON lines (`application/x-ndjson`): \
            a header, every customer followed by its ledger, the tickets, payments, credit keys, consumer cursors, \
            audit entries and counters, then a trailer with the counts. Restore it with `crm-server restore`. A dump without \
            its trailer was cut short (a failure mid-stream ends the body early)."),
        (status = 503, description = "A customer import is being written; retry when it is done", body = crate::error::ErrorBody)))]
async fn export<S: Store>(state: AppState<S>) -> Result<Response, ApiError> {
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        let sender = chunks.clone();
        let outcome = state.store.export(&mut write_lines(&mut buf, |bytes| {
            sender
                .blocking_send(Ok(Bytes::from(bytes)))
                .map_err(|_| Stop::ReaderGone)
        }));
        match outcome {
            Ok(counts) => tracing::info!(?counts, "export complete"),
            Err(Stop::ReaderGone) => tracing::warn!("export stopped: the reader went away"),
            Err(Stop::Store(e)) => {
                tracing::error!(error = %e, "export failed");
                let _ = chunks.blocking_send(Err(e));
            }
        }
    });
    // The first chunk is the header, sent once the snapshot is taken: a refusal (an
    // import running) comes before it, as a JSON error.
    let first = match received.recv().await {
        Some(Ok(first)) => first,
        Some(Err(e)) => return Err(e.into()),
        None => return Err(ApiError::internal("the export stopped before it began")),
    };
    let rest = futures::stream::unfold(received, |mut received| async move {
        let chunk = received.recv().await?;
        Some((chunk.map_err(|e| std::io::Error::other(e.to_string())), received))
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), rest);
    let file_name = format!("crm-{}.jsonl", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let reply = warp::reply::with_header(warp::reply::stream(body), "content-type", CONTENT_TYPE);
    let reply = warp::reply::with_header(
        reply,
        "content-disposition",
        format!("attachment; filename=\"{file_name}\""),
    );
    Ok(reply.into_response())
}

/// `crm-server export`: a dump of the data directory on standard output (the server
/// must not be running on it; use `GET /api/v1/export` then).
pub fn export_command(config: &Config) -> ExitCode {
    let store = match SledStore::open(&config.data_dir, config.cache_bytes) {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "crm-server: cannot open the data directory {} (is a server running on it? then use GET \
                 /api/v1/export): {e}",
                config.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
    let outcome = store.export(&mut write_lines(&mut buf, |bytes| {
        stdout.write_all(&bytes).map_err(|_| Stop::ReaderGone)
    }));
    let flushed = stdout.flush();
    match (outcome, flushed) {
        (Ok(counts), Ok(())) => {
            eprintln!(
                "crm-server: exported {} customers, {} ledger entries, {} tickets, {} payments",
                counts.customers, counts.ledger_entries, counts.tickets, counts.payments
            );
            ExitCode::SUCCESS
        }
        (Err(Stop::Store(e)), _) => {
            eprintln!("crm-server: export failed: {e}");
            ExitCode::FAILURE
        }
        (Err(Stop::ReaderGone), _) | (_, Err(_)) => {
            eprintln!("crm-server: export failed: cannot write to standard output");
            ExitCode::FAILURE
        }
    }
}

/// `crm-server restore FILE`: restores a dump (`-` for standard input) into the data
/// directory, which must be new (missing or empty).
pub fn restore_command(config: &Config, file: &Path) -> ExitCode {
    let input: Box<dyn std::io::Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        match File::open(file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("crm-server: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let reader = BackupReader::new(BufReader::with_capacity(1 << 20, input));
    match SledStore::restore(&config.data_dir, config.cache_bytes, reader) {
        Ok(counts) => {
            println!(
                "restored {} customers, {} ledger entries, {} tickets, {} payments, {} credit keys, {} consumer \
                 cursors, {} counters, {} audit entries into {}",
                counts.customers,
                counts.ledger_entries,
                counts.tickets,
                counts.payments,
                counts.credit_keys,
                counts.consumers,
                counts.counters,
                counts.audit_entries,
                config.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crm-server: restore failed, nothing was restored: {e}");
            ExitCode::FAILURE
        }
    }
}

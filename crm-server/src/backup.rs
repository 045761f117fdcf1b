//! Backups: `GET /api/v1/export` online, `crm-server export` and `crm-server restore`
//! offline, all in the dump format of [`crm_model::backup`].

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use bytes::Bytes;
use crm_model::backup::{BackupCounts, BackupReader, BackupRecord};
use tokio::sync::mpsc;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::config::redacted;
use crate::config::Config;
use crate::error::ApiError;
use crate::http::into_response;
use crate::state::AppState;
use crate::store::postgres::PgStore;
use crate::store::{BackupRecordStream, BackupStore, ExportError, SledStore, Store, StoreError};

/// Bytes of dump gathered before they are handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;

/// The content type of a dump (JSON lines).
pub const CONTENT_TYPE: &str = "application/x-ndjson";

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "export")
        .and(warp::get())
        .and(warp::any().map(move || state.clone()))
        .then(|state: AppState<S>| async move { into_response(export(state).await) })
        .boxed()
}

/// Records queued between the export and the connection: the export waits for a slow
/// reader rather than holding the dump in memory.
const QUEUED_RECORDS: usize = 256;

/// Appends a record as one line of the dump.
fn write_line(buf: &mut Vec<u8>, record: &BackupRecord) {
    serde_json::to_writer(&mut *buf, record).expect("backup records serialise");
    buf.push(b'\n');
}

/// Starts the export of `store` as its own task: the records it sends, and its end.
fn start_export<S: BackupStore + Send + 'static>(
    store: S,
) -> (
    mpsc::Receiver<BackupRecord>,
    tokio::task::JoinHandle<Result<BackupCounts, ExportError>>,
) {
    let (sink, records) = mpsc::channel(QUEUED_RECORDS);
    let export = tokio::spawn(async move { store.export(sink).await });
    (records, export)
}

/// How an export task ended, as the error that ends a body cut short, if it failed.
async fn export_end(export: tokio::task::JoinHandle<Result<BackupCounts, ExportError>>) -> Result<(), ExportError> {
    match export.await {
        Ok(Ok(counts)) => {
            tracing::info!(?counts, "export complete");
            Ok(())
        }
        Ok(Err(ExportError::ReaderGone)) => {
            tracing::warn!("export stopped: the reader went away");
            Err(ExportError::ReaderGone)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "export failed");
            Err(e)
        }
        Err(e) => Err(ExportError::Store(StoreError::Storage(format!(
            "the export stopped: {e}"
        )))),
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
    let (mut records, export) = start_export(state.store.clone());
    // The first record is the header, sent once the snapshot is taken: a refusal (an
    // import running) comes before it, as a JSON error.
    let Some(header) = records.recv().await else {
        return Err(match export_end(export).await {
            Err(ExportError::Store(e)) => e.into(),
            _ => ApiError::internal("the export stopped before it began"),
        });
    };
    let mut first = Vec::new();
    write_line(&mut first, &header);
    // Then chunks of about CHUNK_BYTES; a failure of the export ends the body early.
    let rest = futures::stream::unfold(Some((records, export)), |state| async move {
        let (mut records, export) = state?;
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        while buf.len() < CHUNK_BYTES {
            match records.recv().await {
                Some(record) => write_line(&mut buf, &record),
                None => {
                    let end = match export_end(export).await {
                        Ok(()) if buf.is_empty() => return None,
                        Ok(()) => Ok(Bytes::from(buf)),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    };
                    return Some((end, None));
                }
            }
        }
        Some((Ok(Bytes::from(buf)), Some((records, export))))
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(first)) }), rest);
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
/// must not be running on it; use `GET /api/v1/export` then), or with `--database` of
/// that database (servers may be running on it: the dump is one snapshot).
pub fn export_command(config: &Config) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    if let Some(database) = &config.database {
        return match runtime.block_on(PgStore::open(&database.url, database.pool)) {
            Ok(store) => write_export(&runtime, store),
            Err(e) => {
                eprintln!("crm-server: cannot open the database {}: {e}", redacted(&database.url));
                ExitCode::FAILURE
            }
        };
    }
    match SledStore::open(&config.data_dir, config.cache_bytes) {
        Ok(store) => write_export(&runtime, store),
        Err(e) => {
            eprintln!(
                "crm-server: cannot open the data directory {}: {e} (is a server running on it? then use GET \
                 /api/v1/export)",
                config.data_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Writes the dump of `store` to standard output, and says how it went.
fn write_export<S: BackupStore + Send + 'static>(runtime: &tokio::runtime::Runtime, store: S) -> ExitCode {
    let outcome = runtime.block_on(async {
        let (mut records, export) = start_export(store);
        let mut stdout = std::io::stdout().lock();
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut written = Ok(());
        while let Some(record) = records.recv().await {
            write_line(&mut buf, &record);
            if buf.len() >= CHUNK_BYTES {
                written = stdout.write_all(&std::mem::take(&mut buf));
                if written.is_err() {
                    // Closing the channel stops the export.
                    drop(records);
                    break;
                }
            }
        }
        let written = written
            .and_then(|()| stdout.write_all(&buf))
            .and_then(|()| stdout.flush());
        (export.await, written)
    });
    match outcome {
        (Ok(Ok(counts)), Ok(())) => {
            eprintln!(
                "crm-server: exported {} customers, {} ledger entries, {} tickets, {} payments",
                counts.customers, counts.ledger_entries, counts.tickets, counts.payments
            );
            ExitCode::SUCCESS
        }
        (Ok(Err(ExportError::Store(e))), _) => {
            eprintln!("crm-server: export failed: {e}");
            ExitCode::FAILURE
        }
        (Err(e), _) => {
            eprintln!("crm-server: export failed: {e}");
            ExitCode::FAILURE
        }
        (Ok(Err(ExportError::ReaderGone)), _) | (_, Err(_)) => {
            eprintln!("crm-server: export failed: cannot write to standard output");
            ExitCode::FAILURE
        }
    }
}

/// A runtime for the offline commands, or `None` (said on standard error).
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("crm-server: cannot start the runtime: {e}"))
        .ok()
}

/// `crm-server restore FILE`: restores a dump (`-` for standard input) into the data
/// directory, which must be new (missing or empty), or with `--database` into that
/// database, which must hold nothing yet.
pub fn restore_command(config: &Config, file: &Path) -> ExitCode {
    let input: Box<dyn std::io::Read + Send> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        match File::open(file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("crm-server: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let restored = runtime.block_on(async {
        let records = blocking_records(BackupReader::new(BufReader::with_capacity(1 << 20, input)));
        match &config.database {
            Some(database) => {
                let store = PgStore::open(&database.url, database.pool).await?;
                let restored = store.restore(records).await;
                store.pool().close().await;
                restored
            }
            None => SledStore::restore_into(&config.data_dir, config.cache_bytes, records).await,
        }
    });
    let target = match &config.database {
        Some(database) => format!("the database {}", redacted(&database.url)),
        None => config.data_dir.display().to_string(),
    };
    match restored {
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
                target
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crm-server: restore failed, nothing was restored: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The records of a blocking reader (a file, standard input) as a stream, read on a
/// blocking thread a bounded number ahead.
fn blocking_records<R: std::io::BufRead + Send + 'static>(reader: BackupReader<R>) -> BackupRecordStream {
    crate::import::blocking_stream(reader, QUEUED_RECORDS)
}

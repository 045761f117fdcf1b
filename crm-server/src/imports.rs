//! The imports this server runs and has run: the progress of the one running (rows
//! read, checked, written), for the terminal client and the import page, and the
//! results of the last ones, which the home page's banner shows by import id, so that
//! no link can make it show a result the server did not produce.
//!
//! Kept in memory: a restart forgets them (an import's effect is in the store).

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use crm_model::import::{ImportPhase, ImportProgress};
use crm_model::{ImportOptions, ImportReport};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::error::{ApiError, ErrorBody};
use crate::http::{into_response, json};
use crate::state::AppState;
use crate::store::Store;

/// Finished imports remembered.
const REMEMBERED: usize = 100;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Running,
    /// Done: `report` says what it did (or, for a dry run, would do).
    Finished,
    /// Bad rows, nothing written: `report` lists them.
    Refused,
    /// The file could not be read, or the store failed: `error` says why.
    Failed,
}

/// An import's stage, while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Reading,
    Checking,
    Writing,
    Erasing,
}

impl From<ImportPhase> for Phase {
    fn from(phase: ImportPhase) -> Phase {
        match phase {
            ImportPhase::Reading => Phase::Reading,
            ImportPhase::Checking => Phase::Checking,
            ImportPhase::Writing => Phase::Writing,
            ImportPhase::Erasing => Phase::Erasing,
        }
    }
}

/// One import, running or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportStatus {
    pub id: Uuid,
    pub state: ImportState,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `merge` or `replace`.
    pub mode: String,
    pub dry_run: bool,
    pub skip_invalid: bool,
    /// The stage, while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Rows of the stage done so far.
    pub done: u64,
    /// Rows the stage has in all (unknown while reading).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ImportReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Default)]
struct Imports {
    running: Vec<ImportStatus>,
    /// Newest last.
    finished: VecDeque<ImportStatus>,
}

/// The imports of this server.
#[derive(Default)]
pub struct ImportTracker {
    imports: Mutex<Imports>,
}

impl ImportTracker {
    fn with<T>(&self, f: impl FnOnce(&mut Imports) -> T) -> T {
        f(&mut self.imports.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records the start of an import; answers its id.
    pub fn start(&self, options: ImportOptions) -> Uuid {
        let id = Uuid::new_v4();
        let status = ImportStatus {
            id,
            state: ImportState::Running,
            started_at: Utc::now(),
            finished_at: None,
            mode: serde_json::to_value(options.mode)
                .ok()
                .and_then(|m| m.as_str().map(str::to_string))
                .unwrap_or_default(),
            dry_run: options.dry_run,
            skip_invalid: options.skip_invalid,
            phase: Some(Phase::Reading),
            done: 0,
            total: None,
            report: None,
            error: None,
        };
        self.with(|imports| imports.running.push(status));
        id
    }

    /// A progress report of import `id` (from its blocking thread).
    pub fn progress(&self, id: Uuid, progress: ImportProgress) {
        self.with(|imports| {
            if let Some(status) = imports.running.iter_mut().find(|s| s.id == id) {
                status.phase = Some(progress.phase.into());
                status.done = progress.done;
                status.total = progress.total;
            }
        });
    }

    /// Records how import `id` ended: its report, or why it failed.
    pub fn finish(&self, id: Uuid, outcome: Result<&ImportReport, String>) {
        self.with(|imports| {
            let Some(at) = imports.running.iter().position(|s| s.id == id) else {
                return;
            };
            let mut status = imports.running.remove(at);
            status.finished_at = Some(Utc::now());
            status.phase = None;
            match outcome {
                Ok(report) => {
                    status.state = if report.error_count > 0 && !status.skip_invalid {
                        ImportState::Refused
                    } else {
                        ImportState::Finished
                    };
                    status.report = Some(report.clone());
                }
                Err(error) => {
                    status.state = ImportState::Failed;
                    status.error = Some(error);
                }
            }
            if imports.finished.len() == REMEMBERED {
                imports.finished.pop_front();
            }
            imports.finished.push_back(status);
        });
    }

    /// The import running now (the oldest, when several wait for their turn).
    pub fn current(&self) -> Option<ImportStatus> {
        self.with(|imports| imports.running.first().cloned())
    }

    /// An import by id, running or among the last finished.
    pub fn get(&self, id: Uuid) -> Option<ImportStatus> {
        self.with(|imports| {
            imports
                .running
                .iter()
                .chain(imports.finished.iter().rev())
                .find(|s| s.id == id)
                .cloned()
        })
    }
}

pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || state.clone());
    let current = warp::path!("api" / "v1" / "imports" / "current")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: AppState<S>| current_import(&state));
    let one = warp::path!("api" / "v1" / "imports" / String)
        .and(warp::get())
        .and(with_state)
        .map(|id: String, state: AppState<S>| import_by_id(&state, &id));
    current.or(one).unify().map(into_response).boxed()
}

/// The import running now, with its stage and rows done; `404` when none runs.
#[utoipa::path(get, path = "/api/v1/imports/current", tag = "import",
    responses((status = 200, description = "The running import", body = ImportStatus),
        (status = 404, description = "No import is running", body = ErrorBody)))]
fn current_import<S: Store>(state: &AppState<S>) -> Result<Response, ApiError> {
    state
        .imports
        .current()
        .map(|status| json(&status))
        .ok_or_else(|| ApiError::not_found("no_import_running", "no import is running"))
}

/// An import by the `import_id` its answer gave: running, or one of the last 100
/// finished since the server started.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "import",
    params(("id" = String, Path, description = "The import's id (`import_id` of its answer)")),
    responses((status = 200, description = "The import", body = ImportStatus),
        (status = 404, description = "Unknown import", body = ErrorBody)))]
fn import_by_id<S: Store>(state: &AppState<S>, id: &str) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("import_not_found", format!("no import {id:?} is known"));
    let id = Uuid::parse_str(id).map_err(|_| unknown())?;
    state.imports.get(id).map(|status| json(&status)).ok_or_else(unknown)
}

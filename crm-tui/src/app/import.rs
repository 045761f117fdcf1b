//! The import screen: a typed path with Tab completion, a dry run, confirmation, then
//! the real upload with its progress.

use std::path::PathBuf;

use crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::backend::crossterm::to_input_request;
use tui_input::Input;

use super::{App, Command};
use crate::api::{ApiError, ImportMode, ImportSummary, RowError, ServerImportProgress, UploadProgress};

/// The file and options of one import, fixed from its dry run to its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRun {
    pub path: PathBuf,
    pub mode: ImportMode,
    /// Invalid rows are left out and listed instead of refusing the file.
    pub skip_invalid: bool,
}

impl ImportRun {
    fn command(&self, dry_run: bool) -> Command {
        Command::Import {
            path: self.path.clone(),
            mode: self.mode,
            dry_run,
            skip_invalid: self.skip_invalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImportStage {
    /// Waiting for a path.
    #[default]
    Idle,
    /// The dry run is uploading the file.
    Checking {
        run: ImportRun,
        progress: Option<UploadProgress>,
    },
    /// The dry run passed: what would happen (with `skip_invalid`, the rows it would
    /// leave out are in the summary's `errors`), awaiting confirmation.
    Reviewed {
        run: ImportRun,
        summary: ImportSummary,
    },
    /// The file has bad rows: nothing can be imported.
    Rejected {
        run: ImportRun,
        message: String,
        rows: Vec<RowError>,
    },
    Uploading {
        run: ImportRun,
        progress: Option<UploadProgress>,
    },
    Done {
        run: ImportRun,
        summary: ImportSummary,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ImportState {
    pub path: Input,
    /// Keys go to the path field.
    pub editing: bool,
    pub mode: ImportMode,
    /// `v`: leave the invalid rows out (merge only) instead of refusing the file.
    pub skip_invalid: bool,
    pub stage: ImportStage,
    /// Several paths matched the last Tab: shown under the field.
    pub candidates: Vec<String>,
    /// How far the server is with the running dry run or import.
    pub server_progress: Option<ServerImportProgress>,
}

impl ImportState {
    pub fn is_running(&self) -> bool {
        matches!(self.stage, ImportStage::Checking { .. } | ImportStage::Uploading { .. })
    }

    pub(super) fn on_progress(&mut self, update: UploadProgress) {
        if let ImportStage::Checking { progress, .. } | ImportStage::Uploading { progress, .. } = &mut self.stage {
            *progress = Some(update);
        }
    }

    pub(super) fn on_server_progress(&mut self, update: ServerImportProgress) {
        if self.is_running() {
            self.server_progress = Some(update);
        }
    }
}

impl App {
    pub(super) fn on_import_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let import = &mut self.import;
        if import.editing {
            return match key.code {
                KeyCode::Esc => {
                    import.editing = false;
                    Vec::new()
                }
                KeyCode::Enter => self.start_dry_run(),
                KeyCode::Tab => vec![Command::CompletePath(import.path.value().to_string())],
                _ => {
                    if let Some(request) = to_input_request(&Event::Key(key)) {
                        if import.path.handle(request).is_some_and(|changed| changed.value) {
                            import.candidates.clear();
                        }
                    }
                    Vec::new()
                }
            };
        }
        match (&import.stage, key.code) {
            (ImportStage::Reviewed { run, .. }, KeyCode::Char('y') | KeyCode::Enter) => {
                let run = run.clone();
                self.set_info(format!("Importing {}…", run.path.display()));
                let command = run.command(false);
                self.import.stage = ImportStage::Uploading { run, progress: None };
                self.import.server_progress = None;
                vec![command]
            }
            (ImportStage::Reviewed { .. }, KeyCode::Char('n') | KeyCode::Esc) => {
                import.stage = ImportStage::Idle;
                self.set_info("Import cancelled");
                Vec::new()
            }
            (ImportStage::Checking { .. } | ImportStage::Uploading { .. }, _) => Vec::new(),
            (_, KeyCode::Char('m')) => {
                import.mode = match import.mode {
                    ImportMode::Merge => ImportMode::Replace,
                    ImportMode::Replace => ImportMode::Merge,
                };
                import.stage = ImportStage::Idle;
                if import.mode == ImportMode::Replace && import.skip_invalid {
                    // A replace erases the customer of a row it leaves out.
                    import.skip_invalid = false;
                    self.set_info("Replace imports every row or none: invalid rows are no longer skipped");
                }
                Vec::new()
            }
            (_, KeyCode::Char('v')) => {
                if import.mode == ImportMode::Replace {
                    self.set_error("Invalid rows can be skipped in merge mode only (m to switch)");
                    return Vec::new();
                }
                import.skip_invalid = !import.skip_invalid;
                import.stage = ImportStage::Idle;
                Vec::new()
            }
            (_, KeyCode::Enter | KeyCode::Char('i')) => {
                import.stage = ImportStage::Idle;
                import.editing = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn start_dry_run(&mut self) -> Vec<Command> {
        let typed = self.import.path.value().trim();
        if typed.is_empty() {
            self.set_error("Type the path of the file to import");
            return Vec::new();
        }
        let run = ImportRun {
            path: PathBuf::from(typed),
            mode: self.import.mode,
            skip_invalid: self.import.skip_invalid && self.import.mode == ImportMode::Merge,
        };
        self.import.editing = false;
        self.import.candidates.clear();
        let command = run.command(true);
        self.set_info(format!("Checking {} (dry run)…", run.path.display()));
        self.import.stage = ImportStage::Checking { run, progress: None };
        self.import.server_progress = None;
        vec![command]
    }

    pub(super) fn on_path_completed(&mut self, typed: String, candidates: Vec<String>) -> Vec<Command> {
        // The field changed since Tab was pressed: this completion is stale.
        if self.import.path.value() != typed {
            return Vec::new();
        }
        match candidates.as_slice() {
            [] => self.set_error(format!("No file matches {typed:?}")),
            [only] => {
                self.import.path = Input::new(only.clone());
                self.import.candidates.clear();
            }
            several => {
                let prefix = common_prefix(several);
                if prefix.len() > typed.len() {
                    self.import.path = Input::new(prefix);
                }
                self.import.candidates = candidates;
            }
        }
        Vec::new()
    }

    pub(super) fn on_import_answered(
        &mut self,
        dry_run: bool,
        result: Result<ImportSummary, ApiError>,
    ) -> Vec<Command> {
        let run = match &self.import.stage {
            ImportStage::Checking { run, .. } if dry_run => run.clone(),
            ImportStage::Uploading { run, .. } if !dry_run => run.clone(),
            // An answer the screen no longer waits for.
            _ => return Vec::new(),
        };
        match result {
            Ok(summary) if !summary.errors.is_empty() && !run.skip_invalid => {
                self.note_answer();
                self.set_error(format!("{} has {} bad rows", run.path.display(), summary.errors.len()));
                let message = "The file has bad rows; nothing was imported".to_string();
                self.import.stage = ImportStage::Rejected {
                    run,
                    message,
                    rows: summary.errors,
                };
                Vec::new()
            }
            Ok(summary) if dry_run => {
                self.note_answer();
                if summary.skipped > 0 {
                    self.set_info(format!(
                        "Dry run passed, {} invalid rows would be skipped: y to import the others, n to cancel",
                        summary.skipped
                    ));
                } else {
                    self.set_info("Dry run passed: y to import, n to cancel");
                }
                self.import.stage = ImportStage::Reviewed { run, summary };
                Vec::new()
            }
            Ok(summary) => {
                self.note_answer();
                let skipped = if summary.skipped > 0 {
                    format!(", {} invalid rows skipped", summary.skipped)
                } else {
                    String::new()
                };
                self.set_info(format!(
                    "Imported: {} created, {} updated, {} unchanged{skipped}",
                    summary.created, summary.updated, summary.unchanged
                ));
                self.import.stage = ImportStage::Done { run, summary };
                self.reload_customers()
            }
            Err(ApiError::Http {
                message, row_errors, ..
            }) if !row_errors.is_empty() => {
                self.note_answer();
                self.set_error(format!("{} has {} bad rows", run.path.display(), row_errors.len()));
                self.import.stage = ImportStage::Rejected {
                    run,
                    message,
                    rows: row_errors,
                };
                Vec::new()
            }
            Err(error) => {
                self.import.stage = ImportStage::Failed {
                    message: error.to_string(),
                };
                self.note_failure(if dry_run { "Dry run" } else { "Import" }, &error)
            }
        }
    }
}

/// The longest start shared by every candidate, cut on a character boundary.
fn common_prefix(candidates: &[String]) -> String {
    let Some(first) = candidates.first() else {
        return String::new();
    };
    let mut end = first.len();
    for other in &candidates[1..] {
        end = first
            .char_indices()
            .zip(other.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    first[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_of_paths() {
        let paths = [
            "/data/clients-2019.csv".to_string(),
            "/data/clients-2020.csv".to_string(),
        ];
        assert_eq!(common_prefix(&paths), "/data/clients-20");
        assert_eq!(common_prefix(&["é1".to_string(), "é2".to_string()]), "é");
        assert_eq!(common_prefix(&["a".to_string(), "b".to_string()]), "");
    }
}

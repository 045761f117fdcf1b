//! The import pages: the form of `GET /api/update_db`, and what the import route
//! (`POST /api/update_db`) answers a browser: a redirect to the home page naming the
//! import (whose banner shows the result the server kept, never one a link says), the
//! summary page itself, or the table of the file's bad rows.
//!
//! The form posts `multipart/form-data` with the fields `file`, `mode` (`merge` or
//! `replace`), `dry_run` and `skip_invalid` (`true` when ticked, absent otherwise) and
//! `redirect=1`, which tells the import route that a browser is waiting for a page.

use askama::Template;
use crm_model::ImportReport;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{format, render, see_other};
use crate::imports::{ImportStatus, Phase};

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummaryView {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub dry_run: bool,
    /// Invalid rows left out (`skip_invalid`).
    pub skipped: u64,
    /// Rows with neither IdClient nor Email: a second import creates them again.
    pub unmatchable: u64,
}

impl ImportSummaryView {
    pub fn of(report: &ImportReport, dry_run: bool) -> ImportSummaryView {
        ImportSummaryView {
            created: report.created,
            updated: report.updated,
            unchanged: report.unchanged,
            dry_run,
            skipped: report.skipped,
            unmatchable: report.unmatchable,
        }
    }

    /// The summary as staff read it.
    pub fn sentence(&self) -> String {
        let mut counts = format!(
            "{}, {} mis à jour, {}",
            format::counted(self.created, "client créé", "clients créés"),
            format::count(self.updated),
            format::counted(self.unchanged, "inchangé", "inchangés"),
        );
        if self.skipped > 0 {
            let left_out = match (self.dry_run, self.skipped > 1) {
                (true, false) => "serait ignorée",
                (true, true) => "seraient ignorées",
                (false, false) => "a été ignorée",
                (false, true) => "ont été ignorées",
            };
            let skipped = format::counted(self.skipped, "ligne invalide", "lignes invalides");
            counts.push_str(&format!(" ; {skipped} {left_out}"));
        }
        if self.dry_run {
            format!("Simulation, rien n'a été enregistré : {counts}.")
        } else {
            format!("Import terminé : {counts}.")
        }
    }

    /// The warning for the rows that no import can match to a stored customer, said
    /// before a second import creates them again.
    pub fn unmatchable_sentence(&self) -> Option<String> {
        unmatchable_sentence(self.unmatchable)
    }
}

/// See [`ImportSummaryView::unmatchable_sentence`] (the French of
/// [`crm_model::import::unmatchable_warning`]).
fn unmatchable_sentence(count: u64) -> Option<String> {
    match count {
        0 => None,
        1 => Some(
            "1 ligne n'a ni IdClient ni Email : importer ce fichier une nouvelle fois la créerait de nouveau.".into(),
        ),
        n => Some(format!(
            "{} lignes n'ont ni IdClient ni Email : importer ce fichier une nouvelle fois les créerait de nouveau.",
            format::count(n)
        )),
    }
}

/// One bad row of an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowErrorView {
    /// The row's number in the file, from 1.
    pub row: u64,
    pub field: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportForm {
    /// Where the import running now is, if one runs.
    running: Option<String>,
    /// The CSRF token the form posts back.
    csrf: Option<String>,
}

/// How far a running import is, as staff read it.
fn progress_sentence(status: &ImportStatus) -> String {
    let stage = match status.phase {
        Some(Phase::Reading) | None => "lecture du fichier",
        Some(Phase::Checking) => "vérification",
        Some(Phase::Writing) => "écriture",
        Some(Phase::Erasing) => "effacement des clients absents du fichier",
    };
    let rows = match status.total {
        Some(total) => format!(
            "{} / {}",
            format::count(status.done),
            format::counted(total, "ligne", "lignes")
        ),
        None => format::counted(status.done, "ligne lue", "lignes lues"),
    };
    let kind = if status.dry_run {
        "Une simulation d'import"
    } else {
        "Un import"
    };
    format!("{kind} est en cours ({}) : {stage}, {rows}.", status.mode)
}

#[derive(Template)]
#[template(path = "import_result.html")]
struct ImportResult<'a> {
    summary: &'a ImportSummaryView,
    /// The invalid rows left out (`skip_invalid`).
    skipped: &'a [RowErrorView],
}

#[derive(Template)]
#[template(path = "import_errors.html")]
struct ImportErrors<'a> {
    headline: String,
    errors: &'a [RowErrorView],
    unmatchable: Option<String>,
}

/// The import form (HTML); it posts to `POST /api/update_db`. While an import runs,
/// the page says how far it is and asks the browser to reload it every 2 seconds.
#[utoipa::path(get, path = "/api/update_db", tag = "pages", operation_id = "import_form_page",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub fn form_page(running: Option<ImportStatus>, csrf: Option<String>) -> Response {
    let running = running.as_ref().map(progress_sentence);
    let reload = running.is_some();
    let mut response = render(&ImportForm { running, csrf }, StatusCode::OK);
    if reload {
        // No script on these pages: the browser's own reload shows the progress.
        response
            .headers_mut()
            .insert("refresh", warp::http::HeaderValue::from_static("2"));
    }
    response
}

/// What the import route answers a browser after an import: `303` to the home page,
/// which shows the summary.
pub fn import_redirect(import_id: uuid::Uuid) -> Response {
    see_other(&format!("/api?import={import_id}"))
}

/// The summary as a page of its own (`200`).
pub fn import_result_page(summary: &ImportSummaryView) -> Response {
    import_partial_page(summary, &[])
}

/// The summary with the table of the invalid rows left out (`skip_invalid`), `200`:
/// the valid rows were imported (or, in a dry run, would be).
pub fn import_partial_page(summary: &ImportSummaryView, skipped: &[RowErrorView]) -> Response {
    render(&ImportResult { summary, skipped }, StatusCode::OK)
}

/// The file's bad rows, nothing having been written (`422`).
pub fn import_errors_page(errors: &[RowErrorView]) -> Response {
    import_rejected_page(errors, 0)
}

/// [`import_errors_page`], saying too how many valid rows have neither IdClient nor
/// Email.
pub fn import_rejected_page(errors: &[RowErrorView], unmatchable: u64) -> Response {
    let headline = format!(
        "Le fichier contient {} ; aucun client n'a été importé.",
        format::counted(errors.len() as u64, "erreur", "erreurs")
    );
    let page = ImportErrors {
        headline,
        errors,
        unmatchable: unmatchable_sentence(unmatchable),
    };
    render(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[test]
    fn the_summary_is_said_and_the_redirect_names_the_import() {
        let summary = ImportSummaryView {
            created: 3,
            updated: 1,
            unchanged: 0,
            dry_run: true,
            ..ImportSummaryView::default()
        };
        assert_eq!(
            summary.sentence(),
            "Simulation, rien n'a été enregistré : 3 clients créés, 1 mis à jour, 0 inchangé."
        );
        let id = uuid::Uuid::new_v4();
        let response = import_redirect(id);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()["location"], format!("/api?import={id}").as_str());
    }

    #[tokio::test]
    async fn the_error_page_lists_every_bad_row_escaped() {
        let errors = [
            RowErrorView {
                row: 2,
                field: "Nom".into(),
                error: "is required".into(),
            },
            RowErrorView {
                row: 7,
                field: "Email".into(),
                error: "<script>alert(1)</script> is not an address".into(),
            },
        ];
        let response = import_errors_page(&errors);
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
        let html = body_of(response).await;
        assert!(
            html.contains("Le fichier contient 2 erreurs ; aucun client n&#39;a été importé."),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"num\">2</td><td>Nom</td><td>is required</td>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"num\">7</td><td>Email</td><td>&#60;script&#62;alert(1)&#60;/script&#62; is not an address</td>"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("<th scope=\"col\" class=\"num\">Ligne</th>"));
    }

    #[tokio::test]
    async fn the_result_page_shows_the_summary() {
        let response = import_result_page(&ImportSummaryView {
            created: 1,
            updated: 2,
            unchanged: 3,
            dry_run: false,
            ..ImportSummaryView::default()
        });
        assert_eq!(response.status(), StatusCode::OK);
        let html = body_of(response).await;
        assert!(
            html.contains("Import terminé : 1 client créé, 2 mis à jour, 3 inchangés."),
            "{html}"
        );
        assert!(html.contains("lang=\"fr\""));
        assert!(!html.contains("banner warn"), "no warning without unmatchable rows");
        assert!(!html.contains("<table"), "no table without skipped rows");
    }

    #[test]
    fn skipped_and_unmatchable_rows_are_said() {
        let summary = ImportSummaryView {
            created: 4,
            updated: 0,
            unchanged: 0,
            dry_run: false,
            skipped: 2,
            unmatchable: 3,
        };
        assert_eq!(
            summary.sentence(),
            "Import terminé : 4 clients créés, 0 mis à jour, 0 inchangé ; 2 lignes invalides ont été ignorées."
        );
        assert_eq!(
            summary.unmatchable_sentence().unwrap(),
            "3 lignes n'ont ni IdClient ni Email : importer ce fichier une nouvelle fois les créerait de nouveau."
        );
        let one = ImportSummaryView {
            dry_run: true,
            skipped: 1,
            unmatchable: 1,
            ..summary
        };
        assert!(
            one.sentence().ends_with("; 1 ligne invalide serait ignorée."),
            "{}",
            one.sentence()
        );
        assert!(one
            .unmatchable_sentence()
            .unwrap()
            .starts_with("1 ligne n'a ni IdClient ni Email"));
        assert_eq!(ImportSummaryView::default().unmatchable_sentence(), None);
    }

    #[tokio::test]
    async fn the_partial_result_page_lists_the_skipped_rows_and_warns_of_unmatchable_ones() {
        let summary = ImportSummaryView {
            created: 1,
            skipped: 1,
            unmatchable: 1,
            ..ImportSummaryView::default()
        };
        let skipped = [RowErrorView {
            row: 2,
            field: "Compte".into(),
            error: "must be at most 10 characters <b>".into(),
        }];
        let response = import_partial_page(&summary, &skipped);
        assert_eq!(response.status(), StatusCode::OK);
        let html = body_of(response).await;
        assert!(html.contains("1 ligne invalide a été ignorée."), "{html}");
        assert!(
            html.contains("<p class=\"banner warn\" role=\"status\">1 ligne n&#39;a ni IdClient ni Email"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"num\">2</td><td>Compte</td><td>must be at most 10 characters &#60;b&#62;</td>"),
            "{html}"
        );

        let response = import_rejected_page(&skipped, 4);
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = body_of(response).await;
        assert!(html.contains("aucun client n&#39;a été importé"), "{html}");
        assert!(html.contains("4 lignes n&#39;ont ni IdClient ni Email"), "{html}");
    }
}

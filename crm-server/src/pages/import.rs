//! The import pages: the form of `GET /api/update_db`, and what the import route
//! (`POST /api/update_db`) answers a browser: a redirect to the home page with the
//! summary, the summary page itself, or the table of the file's bad rows.
//!
//! The form posts `multipart/form-data` with the fields `file`, `mode` (`merge` or
//! `replace`), `dry_run` (`true` when ticked, absent otherwise) and `redirect=1`,
//! which tells the import route that a browser is waiting for a page.

use askama::Template;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{format, render, see_other};

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummaryView {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub dry_run: bool,
}

impl ImportSummaryView {
    /// The value of the home page's `import=` parameter:
    /// `created:N,updated:N,unchanged:N`, plus `,dry_run:1` for a dry run.
    pub fn to_query_value(&self) -> String {
        let mut value = format!(
            "created:{},updated:{},unchanged:{}",
            self.created, self.updated, self.unchanged
        );
        if self.dry_run {
            value.push_str(",dry_run:1");
        }
        value
    }

    /// Reads [`Self::to_query_value`]; `None` unless the three counts are there.
    pub fn from_query_value(value: &str) -> Option<ImportSummaryView> {
        let (mut created, mut updated, mut unchanged, mut dry_run) = (None, None, None, false);
        for part in value.split(',') {
            let (key, number) = part.split_once(':')?;
            let number = number.trim().parse::<u64>().ok()?;
            match key.trim() {
                "created" => created = Some(number),
                "updated" => updated = Some(number),
                "unchanged" => unchanged = Some(number),
                "dry_run" => dry_run = number != 0,
                _ => {}
            }
        }
        Some(ImportSummaryView {
            created: created?,
            updated: updated?,
            unchanged: unchanged?,
            dry_run,
        })
    }

    /// The summary as staff read it.
    pub fn sentence(&self) -> String {
        let counts = format!(
            "{}, {} mis à jour, {}",
            format::counted(self.created, "client créé", "clients créés"),
            format::count(self.updated),
            format::counted(self.unchanged, "inchangé", "inchangés"),
        );
        if self.dry_run {
            format!("Simulation, rien n'a été enregistré : {counts}.")
        } else {
            format!("Import terminé : {counts}.")
        }
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
struct ImportForm;

#[derive(Template)]
#[template(path = "import_result.html")]
struct ImportResult<'a> {
    summary: &'a ImportSummaryView,
}

#[derive(Template)]
#[template(path = "import_errors.html")]
struct ImportErrors<'a> {
    headline: String,
    errors: &'a [RowErrorView],
}

/// The import form (HTML); it posts to `POST /api/update_db`.
#[utoipa::path(get, path = "/api/update_db", tag = "pages", operation_id = "import_form_page",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub fn form_page() -> Response {
    render(&ImportForm, StatusCode::OK)
}

/// What the import route answers a browser after an import: `303` to the home page,
/// which shows the summary.
pub fn import_redirect(summary: &ImportSummaryView) -> Response {
    let query = serde_urlencoded::to_string([("import", summary.to_query_value())]).expect("strings encode");
    see_other(&format!("/api?{query}"))
}

/// The summary as a page of its own (`200`).
pub fn import_result_page(summary: &ImportSummaryView) -> Response {
    render(&ImportResult { summary }, StatusCode::OK)
}

/// The file's bad rows, nothing having been written (`422`).
pub fn import_errors_page(errors: &[RowErrorView]) -> Response {
    let headline = format!(
        "Le fichier contient {} ; aucun client n'a été importé.",
        format::counted(errors.len() as u64, "erreur", "erreurs")
    );
    render(&ImportErrors { headline, errors }, StatusCode::UNPROCESSABLE_ENTITY)
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
    fn the_summary_round_trips_through_the_query_value() {
        let summary = ImportSummaryView {
            created: 3,
            updated: 1,
            unchanged: 0,
            dry_run: true,
        };
        assert_eq!(summary.to_query_value(), "created:3,updated:1,unchanged:0,dry_run:1");
        assert_eq!(
            ImportSummaryView::from_query_value(&summary.to_query_value()),
            Some(summary)
        );
        assert_eq!(ImportSummaryView::from_query_value("created:3,updated:1"), None);
        assert_eq!(
            ImportSummaryView::from_query_value("created:3,updated:1,unchanged:-1"),
            None
        );
        assert_eq!(
            summary.sentence(),
            "Simulation, rien n'a été enregistré : 3 clients créés, 1 mis à jour, 0 inchangé."
        );
    }

    #[test]
    fn the_redirect_points_home_with_the_summary() {
        let response = import_redirect(&ImportSummaryView {
            created: 2,
            updated: 0,
            unchanged: 5,
            dry_run: false,
        });
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()["location"],
            "/api?import=created%3A2%2Cupdated%3A0%2Cunchanged%3A5"
        );
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
        });
        assert_eq!(response.status(), StatusCode::OK);
        let html = body_of(response).await;
        assert!(
            html.contains("Import terminé : 1 client créé, 2 mis à jour, 3 inchangés."),
            "{html}"
        );
        assert!(html.contains("lang=\"fr\""));
    }
}

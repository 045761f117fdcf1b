//! `GET /api`: the customer table, 50 rows a page, searched, sorted, paged by cursor.
//!
//! Paging uses only the store's cursors (key ranges, never offsets). "Previous" works
//! from a stack of the cursors of the pages already seen, carried in the links
//! (`back=`, repeated); the stack is bounded so that links stay short, and past that
//! depth "previous" gives way to "first page".

use askama::Template;
use crm_model::{CustomerRecord, ListQuery, Sort, SortDirection, SortKey};
use warp::http::StatusCode;
use warp::reply::Response;

use super::import::ImportSummaryView;
use super::{format, render, PageError};
use crate::state::AppState;
use crate::store::Store;

pub const PAGE_SIZE: usize = 50;

/// How many earlier pages the links remember for "previous".
pub const MAX_BACK: usize = 30;

/// What the home page's query string says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct HomeParams {
    q: String,
    sort: Sort,
    cursor: Option<String>,
    /// Cursors of the pages before this one, from page 2 on, oldest first (page 1
    /// needs no cursor).
    back: Vec<String>,
    /// This page's number, for display and to know whether "previous" is page 1.
    page: u64,
    /// The import whose result the banner shows.
    import: Option<uuid::Uuid>,
}

impl HomeParams {
    fn parse(raw: &str) -> Result<HomeParams, PageError> {
        let unreadable = || PageError::bad_request("L'adresse de la page ne peut pas être lue.");
        if !crate::http::query_is_utf8(raw) {
            return Err(unreadable());
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|_| unreadable())?;
        let mut params = HomeParams::default();
        let mut page = None;
        for (key, value) in pairs {
            let value = value.trim().to_string();
            match key.as_str() {
                "q" => params.q = value,
                "sort" if !value.is_empty() => {
                    params.sort = Sort::parse(&value).map_err(|_| {
                        PageError::bad_request(format!(
                            "Le tri « {value} » n'existe pas : triez par N°, Nom, Crédit ou Panier moyen."
                        ))
                    })?
                }
                "cursor" if !value.is_empty() => params.cursor = Some(value),
                "back" if !value.is_empty() => params.back.push(value),
                "page" => page = value.parse::<u64>().ok(),
                "import" => params.import = uuid::Uuid::parse_str(&value).ok(),
                _ => {}
            }
        }
        params.page = match (&params.cursor, page) {
            (None, _) => 1,
            (Some(_), Some(n)) if n >= 2 => n,
            (Some(_), _) => params.back.len() as u64 + 2,
        };
        Ok(params)
    }

    /// The link to the list with this search and `sort`, from its first page.
    fn first_page_href(&self, sort: Sort) -> String {
        let mut pairs = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q", self.q.clone()));
        }
        if sort != Sort::default() {
            pairs.push(("sort", sort.to_string()));
        }
        href(&pairs)
    }

    /// The link to the first page in this sort, without the search.
    fn clear_search_href(&self) -> String {
        let mut pairs = Vec::new();
        if self.sort != Sort::default() {
            pairs.push(("sort", self.sort.to_string()));
        }
        href(&pairs)
    }

    /// The link to a later page: `cursor`, with `back` as its stack.
    fn page_href(&self, cursor: &str, back: &[String], page: u64) -> String {
        let mut pairs = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q", self.q.clone()));
        }
        if self.sort != Sort::default() {
            pairs.push(("sort", self.sort.to_string()));
        }
        pairs.push(("cursor", cursor.to_string()));
        pairs.extend(back.iter().map(|c| ("back", c.clone())));
        pairs.push(("page", page.to_string()));
        href(&pairs)
    }

    fn next_href(&self, next_cursor: &str) -> String {
        let mut back = self.back.clone();
        if let Some(current) = &self.cursor {
            back.push(current.clone());
        }
        if back.len() > MAX_BACK {
            back.drain(..back.len() - MAX_BACK);
        }
        self.page_href(next_cursor, &back, self.page + 1)
    }

    fn previous_href(&self) -> Option<String> {
        self.cursor.as_ref()?;
        match self.back.split_last() {
            Some((previous, older)) => Some(self.page_href(previous, older, self.page - 1)),
            // Page 2's previous page is the first one; deeper pages whose stack was
            // cut short have no previous link, only "first page".
            None if self.page == 2 => Some(self.first_page_href(self.sort)),
            None => None,
        }
    }
}

fn href(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return "/api".to_string();
    }
    format!("/api?{}", serde_urlencoded::to_string(pairs).expect("strings encode"))
}

/// A column of the table: its French label and, when the store can sort by it, the
/// link that sorts by it.
struct Column {
    label: &'static str,
    numeric: bool,
    href: Option<String>,
    sort_hint: String,
    aria_sort: Option<&'static str>,
    arrow: Option<&'static str>,
}

const COLUMNS: [(&str, Option<SortKey>, bool); 13] = [
    ("N°", Some(SortKey::Id), true),
    ("IdClient", None, false),
    ("Nom", Some(SortKey::Nom), false),
    ("Prénom", None, false),
    ("e-mail", None, false),
    ("Téléphone", None, false),
    ("Crédit", Some(SortKey::Credit), true),
    ("Date de paiement", None, false),
    ("Montant", None, true),
    ("Compte", None, false),
    ("Nb refus", None, true),
    ("Carte", None, true),
    ("Panier moyen", Some(SortKey::PanierMoyen), true),
];

fn sort_label(key: SortKey) -> &'static str {
    match key {
        SortKey::Id => "N°",
        SortKey::Nom => "Nom",
        SortKey::Credit => "Crédit",
        SortKey::PanierMoyen => "Panier moyen",
    }
}

fn direction_label(direction: SortDirection) -> &'static str {
    match direction {
        SortDirection::Ascending => "croissant",
        SortDirection::Descending => "décroissant",
    }
}

fn columns(params: &HomeParams) -> Vec<Column> {
    COLUMNS
        .iter()
        .map(|&(label, key, numeric)| {
            let Some(key) = key else {
                return Column {
                    label,
                    numeric,
                    href: None,
                    sort_hint: String::new(),
                    aria_sort: None,
                    arrow: None,
                };
            };
            let current = params.sort.key == key;
            // A second click on the sorted column reverses it.
            let direction = if current && !params.sort.descending() {
                SortDirection::Descending
            } else {
                SortDirection::Ascending
            };
            let (aria_sort, arrow) = match (current, params.sort.direction) {
                (false, _) => (None, None),
                (true, SortDirection::Ascending) => (Some("ascending"), Some("▲")),
                (true, SortDirection::Descending) => (Some("descending"), Some("▼")),
            };
            Column {
                label,
                numeric,
                href: Some(params.first_page_href(Sort { key, direction })),
                sort_hint: format!("Trier par {} ({})", sort_label(key), direction_label(direction)),
                aria_sort,
                arrow,
            }
        })
        .collect()
}

/// One customer as a row of the table, every value ready to show. The `IdClient` shows
/// its first characters only (the full id is the link's `title`, and on the customer's
/// page), and long texts are cut by the stylesheet with their full value as `title`,
/// so that every column fits a 1280 px window.
struct Row {
    id: u64,
    id_client: String,
    short_id: String,
    href: String,
    nom: String,
    prenom: String,
    email: String,
    phone: String,
    credit: String,
    date_paiement: String,
    montant: String,
    compte: String,
    nb_refus: u32,
    carte: String,
    panier_moyen: String,
}

impl Row {
    fn new(record: &CustomerRecord) -> Row {
        Row {
            id: record.id,
            id_client: record.id_client.to_string(),
            short_id: format::short_id(&record.id_client.to_string()),
            href: format!("/api/customers/{}", record.id_client),
            nom: record.nom.clone(),
            prenom: record.prenom.clone(),
            email: record.email.clone(),
            phone: record.phone.clone(),
            credit: record.credit.to_euros(),
            date_paiement: record.next_payment.map(format::date).unwrap_or_default(),
            montant: record.pending_payments.to_euros(),
            compte: record.compte.clone(),
            nb_refus: record.nb_refus,
            carte: record.carte_fid.map(|c| c.to_string()).unwrap_or_default(),
            panier_moyen: record.panier_moyen().to_euros(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    q: String,
    sort: String,
    import: Option<ImportSummaryView>,
    clear_search_href: String,
    total_sentence: String,
    caption: String,
    empty_sentence: String,
    columns: Vec<Column>,
    rows: Vec<Row>,
    page: u64,
    first_href: Option<String>,
    previous_href: Option<String>,
    next_href: Option<String>,
}

/// The customer table (HTML): 50 customers a page, searched, sorted, paged by cursor.
#[utoipa::path(get, path = "/api", tag = "pages", operation_id = "home_page",
    params(("q" = Option<String>, Query, description = "Search, as in /api/v1/customers"),
        ("sort" = Option<String>, Query, description = "id, Nom, Credit or PanierMoyen; prefix - for descending"),
        ("cursor" = Option<String>, Query, description = "Where this page starts (from the page's links)"),
        ("import" = Option<String>, Query, description = "The id of an import this server finished (the import form redirects here with it): the page shows its result in a banner, with a warning for the rows that have neither IdClient nor Email. An unknown id shows no banner")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "Unknown sort or stale cursor (HTML page)", content_type = "text/html", body = String)))]
pub async fn page<S: Store>(state: &AppState<S>, raw_query: &str) -> Response {
    match build(state, raw_query).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(error) => error.into_response(),
    }
}

async fn build<S: Store>(state: &AppState<S>, raw_query: &str) -> Result<HomePage, PageError> {
    let params = HomeParams::parse(raw_query)?;
    let list = state
        .store
        .list_customers(&ListQuery {
            limit: PAGE_SIZE,
            cursor: params.cursor.clone(),
            q: (!params.q.is_empty()).then(|| params.q.clone()),
            sort: params.sort,
        })
        .await?;
    let total_sentence = if params.q.is_empty() {
        format::counted(list.total, "client", "clients")
    } else {
        format!(
            "{} pour « {} »",
            format::counted(list.total, "client trouvé", "clients trouvés"),
            params.q
        )
    };
    let empty_sentence = match (params.q.is_empty(), params.cursor.is_some()) {
        (_, true) => "Plus aucun client sur cette page.".to_string(),
        (false, false) => format!("Aucun client ne correspond à « {} ».", params.q),
        (true, false) => "Aucun client pour l'instant : importez un fichier pour commencer.".to_string(),
    };
    Ok(HomePage {
        caption: format!(
            "Clients triés par {} ({})",
            sort_label(params.sort.key),
            direction_label(params.sort.direction)
        ),
        clear_search_href: params.clear_search_href(),
        total_sentence,
        empty_sentence,
        columns: columns(&params),
        rows: list.items.iter().map(Row::new).collect(),
        page: params.page,
        first_href: params.cursor.as_ref().map(|_| params.first_page_href(params.sort)),
        previous_href: params.previous_href(),
        next_href: list.next_cursor.as_deref().map(|c| params.next_href(c)),
        q: params.q.clone(),
        sort: params.sort.to_string(),
        import: params
            .import
            .and_then(|id| state.imports.get(id))
            .filter(|status| status.state == crate::imports::ImportState::Finished)
            .and_then(|status| {
                let report = status.report?;
                Some(ImportSummaryView::of(&report, status.dry_run))
            }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> HomeParams {
        HomeParams::parse(raw).expect("readable")
    }

    fn query_of(href: &str) -> HomeParams {
        parse(href.strip_prefix("/api").unwrap().trim_start_matches('?'))
    }

    #[test]
    fn next_then_previous_walks_back_through_the_stack() {
        let page1 = parse("q=du&sort=-Credit");
        let page2 = query_of(&page1.next_href("c1"));
        assert_eq!(
            (page2.cursor.as_deref(), page2.page, page2.back.len()),
            (Some("c1"), 2, 0)
        );
        let page3 = query_of(&page2.next_href("c2"));
        assert_eq!((page3.cursor.as_deref(), page3.page), (Some("c2"), 3));
        assert_eq!(page3.back, ["c1"]);
        assert_eq!(
            (page3.q.as_str(), page3.sort.to_string()),
            ("du", "-Credit".to_string())
        );

        let back2 = query_of(&page3.previous_href().unwrap());
        assert_eq!(back2, page2);
        let back1 = query_of(&back2.previous_href().unwrap());
        assert_eq!(back1, page1);
        assert_eq!(page1.previous_href(), None);
    }

    #[test]
    fn the_stack_is_bounded_and_then_previous_gives_way_to_first_page() {
        let mut params = parse("");
        for i in 0..MAX_BACK + 5 {
            params = query_of(&params.next_href(&format!("c{i}")));
        }
        assert_eq!(params.back.len(), MAX_BACK);
        assert_eq!(params.page, MAX_BACK as u64 + 6);
        let mut steps = 0;
        while let Some(previous) = params.previous_href() {
            params = query_of(&previous);
            steps += 1;
        }
        assert_eq!(steps, MAX_BACK);
        assert!(params.cursor.is_some(), "the oldest pages were forgotten");
    }

    #[test]
    fn an_unknown_sort_is_a_bad_request_and_a_bad_import_summary_is_ignored() {
        assert_eq!(
            HomeParams::parse("sort=Email").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(parse("import=created:x").import, None);
        assert_eq!(parse("page=7").page, 1, "no cursor, first page");
    }

    #[test]
    fn sorted_column_links_reverse_it_and_others_sort_ascending() {
        let cols = columns(&parse("sort=Credit&q=a%26b"));
        let credit = cols.iter().find(|c| c.label == "Crédit").unwrap();
        assert_eq!(credit.href.as_deref(), Some("/api?q=a%26b&sort=-Credit"));
        assert_eq!(credit.aria_sort, Some("ascending"));
        let nom = cols.iter().find(|c| c.label == "Nom").unwrap();
        assert_eq!(nom.href.as_deref(), Some("/api?q=a%26b&sort=Nom"));
        assert_eq!(nom.aria_sort, None);
        let id = cols.iter().find(|c| c.label == "N°").unwrap();
        assert_eq!(id.href.as_deref(), Some("/api?q=a%26b"), "id ascending is the default");
        assert!(cols.iter().find(|c| c.label == "e-mail").unwrap().href.is_none());
    }
}

//! The HTML pages end to end: content, escaping, paging, sorting, search, the import
//! form and banner, the customer page, and that JSON routes stay JSON.

use crm_tests::{spawn_app, status_and_json, TestApp};
use serde_json::{json, Value};

/// Creates `n` customers `<name>-<i>` with credit `i * 100` cents, concurrently (group
/// commit batches their flushes).
async fn create_many(app: &TestApp, n: usize, name: &str) {
    futures::future::join_all((1..=n).map(|i| async move {
        app.create_customer_ok(&json!({"Nom": format!("{name}-{i:03}"), "Prenom": "Élise",
            "email": format!("{name}{i}@exemple.fr").to_lowercase(), "Credit": i * 100}))
            .await
    }))
    .await;
}

/// The `IdClient`s of the table's rows, in order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("<th scope=\"row\" class=\"id\"><a href=\"/api/customers/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// The target of the link whose `rel` is `rel` (`next`, `prev`), as a path.
fn link(html: &str, rel: &str) -> Option<String> {
    let rest = html.split(&format!("rel=\"{rel}\" href=\"")).nth(1)?;
    Some(unescape(rest.split('"').next().unwrap()))
}

/// Undoes askama's escaping of an attribute value.
fn unescape(text: &str) -> String {
    text.replace("&#38;", "&")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// Status and body of the page at `path`.
async fn html_at(app: &TestApp, path: &str) -> (u16, String) {
    let (status, _, body) = app.page(path).await;
    (status, body)
}

/// The ids of the JSON API's page for the same query: the oracle of the table's order.
async fn api_ids(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let (status, page) = app.list_customers(query).await;
    assert_eq!(status, 200, "{page}");
    let ids = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["IdClient"].as_str().unwrap().to_string())
        .collect();
    (ids, page)
}

#[tokio::test]
async fn the_home_page_shows_the_table_in_french_with_euros_and_the_import_link() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Bloggs", "Prenom": "Jacquie", "email": "jb@mimi.com",
            "Credit": 420, "Compte": "BKN1CST53"}))
        .await;

    let (status, content_type, html) = app.page("/api").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"fr\">"));
    for header in [
        "IdClient",
        "Nom",
        "Prénom",
        "e-mail",
        "Crédit",
        "Date de paiement",
        "Montant",
        "Compte",
        "Nb refus",
        "Carte",
        "Panier moyen",
    ] {
        assert!(html.contains(&format!(">{header}<")), "no column {header}");
    }
    assert_eq!(
        html.matches("<th scope=\"col\"").count(),
        12,
        "every header has a scope"
    );
    assert!(html.contains("<label for=\"q\">"), "the search box is labelled");
    assert_eq!(row_ids(&html), std::slice::from_ref(&id));
    assert!(html.contains(&format!("<a href=\"/api/customers/{id}\">{id}</a>")));
    assert!(
        html.contains("<td>Bloggs</td>") && html.contains("<td>Jacquie</td>") && html.contains("<td>jb@mimi.com</td>")
    );
    assert!(html.contains("<td class=\"num\">4,20\u{a0}€</td>"), "credit in euros");
    assert!(html.contains("<td>BKN1CST53</td>"));
    assert!(html.contains(">1 client</p>"), "the total");
    assert!(html.contains("<a class=\"button\" href=\"/api/update_db\">Importer clients</a>"));
    assert!(link(&html, "next").is_none() && link(&html, "prev").is_none());

    let (status, _, css) = app.page("/api/assets/crm.css").await;
    assert_eq!(status, 200);
    assert!(css.contains("font"), "the stylesheet is served");
}

#[tokio::test]
async fn root_redirects_to_the_home_page() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/api");
}

#[tokio::test]
async fn names_are_shown_as_text_never_as_markup() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "<script>alert(1)</script>", "Prenom": "\"><img src=x onerror=alert(2)>"}))
        .await;
    for path in [
        "/api".to_string(),
        format!("/api/customers/{id}"),
        "/api?q=%3Cscript".to_string(),
    ] {
        let (status, _, html) = app.page(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("<script>") && !html.contains("<img"), "{path}: {html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {html}"
        );
    }
    let (_, html) = app.home_page("q=%3Cscript%3E%22").await;
    assert!(!html.contains("<script>"), "the search echo is escaped too");
    assert!(html.contains("value=\"&#60;script&#62;&#34;\""), "{html}");
}

#[tokio::test]
async fn pages_of_fifty_go_forward_and_back_by_cursor() {
    let app = spawn_app().await;
    create_many(&app, 120, "Paged").await;

    let (status, page1) = app.home_page("").await;
    assert_eq!(status, 200);
    assert!(page1.contains(">120 clients</p>"));
    let ids1 = row_ids(&page1);
    assert_eq!(ids1.len(), 50);
    assert_eq!(ids1, api_ids(&app, "limit=50").await.0);
    assert!(page1.contains("Page 1"));

    let (status, page2) = html_at(&app, &link(&page1, "next").expect("a next page")).await;
    assert_eq!(status, 200);
    let ids2 = row_ids(&page2);
    assert_eq!(ids2.len(), 50);
    assert!(page2.contains("Page 2"));
    let page3_href = link(&page2, "next").expect("a third page");
    let (_, page3) = html_at(&app, &page3_href).await;
    let ids3 = row_ids(&page3);
    assert_eq!(ids3.len(), 20);
    assert!(link(&page3, "next").is_none(), "the last page has no next");

    let mut all: Vec<String> = [ids1.clone(), ids2.clone(), ids3].concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120, "every customer once");

    let (_, back2) = html_at(&app, &link(&page3, "prev").expect("previous")).await;
    assert_eq!(row_ids(&back2), ids2);
    let (_, back1) = html_at(&app, &link(&back2, "prev").expect("previous")).await;
    assert_eq!(row_ids(&back1), ids1);
    assert!(link(&back1, "prev").is_none());
}

#[tokio::test]
async fn column_headers_sort_both_ways_and_keep_the_search() {
    let app = spawn_app().await;
    create_many(&app, 60, "Sorted").await;

    let (_, html) = app.home_page("sort=-Credit").await;
    let (expected, _) = api_ids(&app, "sort=-Credit&limit=50").await;
    assert_eq!(row_ids(&html), expected);
    assert!(html.contains("aria-sort=\"descending\""));
    assert!(
        html.contains("<td class=\"num\">60,00\u{a0}€</td>"),
        "highest credit first"
    );
    assert!(
        html.contains("href=\"/api?sort=Credit\" title=\"Trier par Crédit (croissant)\""),
        "the sorted column's link reverses it"
    );

    let (_, html) = app.home_page("q=sorted&sort=Nom").await;
    assert_eq!(row_ids(&html), api_ids(&app, "q=sorted&sort=Nom&limit=50").await.0);
    assert!(
        html.contains("href=\"/api?q=sorted&#38;sort=-Nom\""),
        "sorting keeps the search"
    );

    // Paging in a sort other than id follows the same order as the API.
    let (_, page2) = html_at(&app, &link(&html, "next").unwrap()).await;
    let (_, api_page1) = api_ids(&app, "q=sorted&sort=Nom&limit=50").await;
    let cursor = api_page1["next_cursor"].as_str().unwrap();
    let (expected2, _) = api_ids(&app, &format!("q=sorted&sort=Nom&limit=50&cursor={cursor}")).await;
    assert_eq!(row_ids(&page2), expected2);
}

#[tokio::test]
async fn the_search_box_filters_and_says_how_many_were_found() {
    let app = spawn_app().await;
    create_many(&app, 3, "Dupont").await;
    create_many(&app, 2, "Durand").await;

    let (status, html) = app.home_page("q=durand").await;
    assert_eq!(status, 200);
    assert_eq!(row_ids(&html).len(), 2);
    assert!(html.contains("2 clients trouvés pour « durand »"), "{html}");
    assert!(html.contains("value=\"durand\""), "the box keeps the search");
    assert!(html.contains("<td>Durand-001</td>") && !html.contains("Dupont-001"));

    let (_, html) = app.home_page("q=personne").await;
    assert!(row_ids(&html).is_empty());
    assert!(html.contains("Aucun client ne correspond à « personne »."));
}

#[tokio::test]
async fn unreadable_sorts_and_cursors_are_html_error_pages() {
    let app = spawn_app().await;
    let (status, content_type, html) = app.page("/api?sort=Email").await;
    assert_eq!((status, content_type.as_str()), (400, "text/html; charset=utf-8"));
    assert!(html.contains("Le tri « Email » n&#39;existe pas"), "{html}");

    let (status, _, html) = app.page("/api?cursor=zzz").await;
    assert_eq!(status, 400);
    assert!(html.contains("Reprenez depuis la première page"));

    let (status, _, html) = app.page("/api?q=%FF").await;
    assert_eq!(status, 400);
    assert!(html.contains("ne peut pas être lue"), "{html}");
}

#[tokio::test]
async fn the_import_banner_shows_the_summary_the_import_route_redirects_with() {
    let app = spawn_app().await;
    let (status, html) = app.home_page("import=created%3A2%2Cupdated%3A1%2Cunchanged%3A4").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "<p class=\"banner ok\" role=\"status\">Import terminé : 2 clients créés, 1 mis à jour, 4 inchangés.</p>"
        ),
        "{html}"
    );
    let (_, html) = app.home_page("import=created:0,updated:0,unchanged:3,dry_run:1").await;
    assert!(html.contains("Simulation, rien n&#39;a été enregistré : 0 client créé, 0 mis à jour, 3 inchangés."));
    let (_, html) = app.home_page("import=n%27importe+quoi").await;
    assert!(!html.contains("banner"), "no banner for a summary that cannot be read");
}

#[tokio::test]
async fn the_import_page_posts_a_multipart_form_with_file_mode_and_dry_run() {
    let app = spawn_app().await;
    let (status, html) = app.import_page().await;
    assert_eq!(status, 200);
    assert!(html.contains("<form method=\"post\" action=\"/api/update_db\" enctype=\"multipart/form-data\">"));
    assert!(html.contains("<label for=\"file\">") && html.contains("type=\"file\" id=\"file\" name=\"file\" required"));
    assert!(html.contains("type=\"radio\" id=\"mode-merge\" name=\"mode\" value=\"merge\" checked"));
    assert!(html.contains("type=\"radio\" id=\"mode-replace\" name=\"mode\" value=\"replace\""));
    assert!(html.contains("le remplacement efface tous les clients absents du fichier"));
    assert!(html.contains("type=\"checkbox\" id=\"dry_run\" name=\"dry_run\" value=\"true\""));
    assert!(html.contains("<input type=\"hidden\" name=\"redirect\" value=\"1\">"));
    for id in ["mode-merge", "mode-replace", "dry_run"] {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "{id} is labelled");
    }
}

#[tokio::test]
async fn the_customer_page_shows_details_and_unknown_ids_are_a_friendly_404() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"name": "Jon", "last_name": "Doe", "sexe": "f", "age": 23,
            "mail": "jon.doe@mail.com", "phone": "+33638614907"}))
        .await;
    let (status, html) = app.customer_page(&id).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Jon Doe</h1>"));
    for fact in [
        id.as_str(),
        "jon.doe@mail.com",
        "+33638614907",
        "23 ans",
        "femme",
        "aucune carte",
        "0,00\u{a0}€",
    ] {
        assert!(html.contains(&format!("<dd>{fact}</dd>")), "no {fact} in {html}");
    }

    let (status, _) = app.erase_customer(&id).await;
    assert_eq!(status, 200);
    let (status, html) = app.customer_page(&id).await;
    assert_eq!(status, 200);
    assert!(html.contains("ont été effacées") && !html.contains("jon.doe@mail.com"));

    for unknown in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
        let (status, content_type, html) = app.page(&format!("/api/customers/{unknown}")).await;
        assert_eq!(
            (status, content_type.as_str()),
            (404, "text/html; charset=utf-8"),
            "{unknown}"
        );
        assert!(html.contains("<h1>Client introuvable</h1>"));
    }
}

#[tokio::test]
async fn json_routes_and_unknown_paths_still_answer_json() {
    let app = spawn_app().await;
    create_many(&app, 2, "Json").await;
    assert_eq!(app.all_customers().await.len(), 2);
    let (status, body) = status_and_json(app.get("/api/nope").await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("route_not_found")));
    let (status, body) = status_and_json(app.get("/api/customers/x/y").await).await;
    assert_eq!(status, 404, "{body}");

    let (status, doc) = status_and_json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(status, 200);
    for path in ["/api", "/api/update_db", "/api/customers/{IdClient}"] {
        let html = &doc["paths"][path]["get"]["responses"]["200"]["content"]["text/html"];
        assert!(html.is_object(), "{path} is documented as an HTML page");
    }
}

#[tokio::test]
async fn the_customer_page_shows_tickets_ledger_chart_and_payments() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Achat", "Prenom": "Anne", "Credit": 100}))
        .await;
    let tickets = json!({"origin": "magasin", "tickets": [{"id": 4242, "date": "2019-10-09T17:01:29.408701Z", "prix": 424,
        "client": id, "modePaiement": "CASH",
        "articles": [{"codeProduit": "X1-<0>", "prixAvant": 800, "prixApres": 400, "promo": 50, "quantity": 2}]}]});
    let (status, body) = status_and_json(app.post_json("/api/v1/tickets", &tickets).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = status_and_json(
        app.post_json(
            "/api/allow_credit",
            &json!({"idClient": id, "Montant": 36000, "Date": "2031-12-06"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, body["Allowed"].as_bool()), (200, Some(true)), "{body}");

    let (status, html) = app.customer_page(&id).await;
    assert_eq!(status, 200);
    assert!(html.contains("magasin4242"), "the ticket");
    assert!(
        html.contains("X1-&") && !html.contains("X1-<0>"),
        "its article, escaped"
    );
    assert!(html.contains("4,24"), "its price in euros");
    assert!(html.contains("crédit d"), "the opening ledger entry");
    assert!(html.contains("achat"), "the ticket's ledger entry");
    assert!(html.contains("<svg"), "the credit chart");
    assert!(html.contains("360,00"), "the scheduled payment");
    assert!(
        html.contains("06/12/2031") || html.contains("2031-12-06"),
        "its due date"
    );
}

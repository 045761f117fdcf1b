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
            "Credit": 420, "Compte": "BKN1CST53", "phone": "+33638614907"}))
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
        "Téléphone",
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
        13,
        "every header has a scope"
    );
    assert!(html.contains("<label for=\"q\">"), "the search box is labelled");
    assert_eq!(row_ids(&html), std::slice::from_ref(&id));
    // The id shows its first 8 characters; the whole of it is the link's title.
    assert!(
        html.contains(&format!(
            "<a href=\"/api/customers/{id}\" title=\"{id}\">{}…</a>",
            &id[..8]
        )),
        "{html}"
    );
    assert!(!html.contains(&format!(">{id}<")), "the full id is not the link's text");
    for (class, value) in [
        ("name", "Bloggs"),
        ("first-name", "Jacquie"),
        ("email", "jb@mimi.com"),
        ("phone", "+33638614907"),
    ] {
        assert!(
            html.contains(&format!(
                "<td title=\"{value}\"><span class=\"clip {class}\">{value}</span></td>"
            )),
            "{value} is shown, and whole in its title"
        );
    }
    assert!(html.contains("<td class=\"num\">4,20\u{a0}€</td>"), "credit in euros");
    assert!(html.contains("<td>BKN1CST53</td>"));
    assert!(html.contains(">1 client</p>"), "the total");
    assert!(html.contains("<a class=\"button\" href=\"/api/update_db\">Importer clients</a>"));
    assert!(html.contains("<a class=\"button\" href=\"/api/customers/new\">Nouveau client</a>"));
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
    assert!(html.contains(">Durand-001</span></td>") && !html.contains("Dupont-001"));

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
async fn the_import_banner_shows_only_a_result_the_server_kept() {
    let app = spawn_app().await;
    app.create_customer_ok(&json!({"Nom": "Kept", "email": "k@x.fr"})).await;
    let (status, answer) = app
        .import("", Some("text/csv"), "Nom,Email\nA,a@x.fr\nB,b@x.fr\nKept,k@x.fr\n")
        .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["import_id"].as_str().unwrap().to_string();
    let (status, html) = app.home_page(&format!("import={id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "<p class=\"banner ok\" role=\"status\">Import terminé : 2 clients créés, 0 mis à jour, 1 inchangé.</p>"
        ),
        "{html}"
    );
    // A crafted link shows nothing: neither the older summary form nor an unknown id.
    for crafted in [
        "import=created%3A2%2Cupdated%3A1%2Cunchanged%3A4".to_string(),
        format!("import={}", uuid::Uuid::new_v4()),
        "import=n%27importe+quoi".to_string(),
    ] {
        let (status, html) = app.home_page(&crafted).await;
        assert_eq!(status, 200);
        assert!(!html.contains("banner"), "{crafted}: {html}");
    }
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
    for path in [
        "/api",
        "/api/update_db",
        "/api/customers/{IdClient}",
        "/api/customers/new",
        "/api/customers/{IdClient}/edit",
    ] {
        let html = &doc["paths"][path]["get"]["responses"]["200"]["content"]["text/html"];
        assert!(html.is_object(), "{path} is documented as an HTML page");
    }
    for path in [
        "/api/customers",
        "/api/customers/{IdClient}/edit",
        "/api/customers/{IdClient}/card",
        "/api/customers/{IdClient}/credit",
        "/api/customers/{IdClient}/refusals/reset",
    ] {
        let post = &doc["paths"][path]["post"];
        assert!(post["responses"]["303"].is_object(), "{path} answers 303");
        let forbidden = &post["responses"]["403"]["content"]["text/html"];
        assert!(forbidden.is_object(), "{path} documents its 403 page");
        let json = post["responses"]
            .as_object()
            .unwrap()
            .values()
            .any(|r| r["content"]["application/json"].is_object());
        assert!(!json, "{path} never answers JSON");
    }
    let form = &doc["paths"]["/api/customers"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
    assert!(form.is_object(), "{doc}");
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

/// The headers a browser sends with a form of the CRM's own pages.
fn from_own_page(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("origin", app.address.clone()),
        ("sec-fetch-site", "same-origin".into()),
    ]
}

/// What a form post answered: status, `Content-Type`, `Location` and body.
struct Posted {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: String,
}

/// POSTs `fields` as a browser posts a form (`application/x-www-form-urlencoded`),
/// with `headers`.
async fn post_form(app: &TestApp, path: &str, fields: &[(&str, &str)], headers: &[(&'static str, String)]) -> Posted {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    Posted {
        status: response.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        location: header("location"),
        body: response.text().await.expect("body"),
    }
}

/// Posts from the CRM's own page.
async fn submit(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Posted {
    post_form(app, path, fields, &from_own_page(app)).await
}

/// The `IdClient` of a `303` to a customer's page, and the query it carries.
fn redirected_customer(posted: &Posted) -> (String, String) {
    assert_eq!(posted.status, 303, "{}", posted.body);
    let location = posted.location.as_deref().expect("a Location");
    let rest = location.strip_prefix("/api/customers/").expect("to a customer page");
    let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
    (id.to_string(), query.to_string())
}

const FORM_FIELDS: [&str; 7] = ["Nom", "Prenom", "Email", "Phone", "Age", "Sexe", "Compte"];

#[tokio::test]
async fn the_new_customer_form_creates_a_customer_and_goes_to_its_page() {
    let app = spawn_app().await;
    let (status, content_type, html) = app.page("/api/customers/new").await;
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.contains("<h1>Nouveau client</h1>"));
    assert!(html.contains("<form method=\"post\" action=\"/api/customers\" class=\"panel customer-form\">"));
    for name in FORM_FIELDS {
        assert!(
            html.contains(&format!("<label for=\"f-{name}\">")),
            "{name} is labelled"
        );
        assert!(
            html.contains(&format!("id=\"f-{name}\" name=\"{name}\"")),
            "{name} is a field"
        );
    }
    assert!(html.contains("type=\"email\" id=\"f-Email\""));
    assert!(html.contains("<option value=\"f\">femme</option>"));
    assert!(!html.contains("orig_"), "a new customer has no values to start from");

    let posted = submit(
        &app,
        "/api/customers",
        &[
            ("Nom", "Doe"),
            ("Prenom", " Jon "),
            ("Email", "jon.doe@mail.com"),
            ("Phone", "+33638614907"),
            ("Age", "23"),
            ("Sexe", "f"),
            ("Compte", "BKN1CST53"),
        ],
    )
    .await;
    let (id, query) = redirected_customer(&posted);
    assert_eq!(query, "notice=created");
    let (status, customer) = app.customer(&id).await;
    assert_eq!(status, 200);
    for (key, value) in [
        ("Nom", json!("Doe")),
        ("Prenom", json!("Jon")),
        ("Email", json!("jon.doe@mail.com")),
        ("Phone", json!("+33638614907")),
        ("Age", json!(23)),
        ("Sexe", json!("f")),
        ("Compte", json!("BKN1CST53")),
        ("CarteFid", Value::Null),
    ] {
        assert_eq!(customer[key], value, "{key}");
    }
    let (status, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "<p class=\"banner ok\" role=\"status\" id=\"notice\">Client créé, avec l&#39;IdClient {id}.</p>"
        )),
        "{html}"
    );
    assert!(html.contains("<h1>Jon Doe</h1>"));
}

#[tokio::test]
async fn an_invalid_new_customer_comes_back_with_each_error_next_to_its_field() {
    let app = spawn_app().await;
    let posted = submit(
        &app,
        "/api/customers",
        &[
            ("Nom", "  "),
            ("Prenom", "<b>Jo</b>"),
            ("Email", "x@y"),
            ("Phone", "01 02"),
            ("Age", "151"),
            ("Sexe", "f"),
            ("Compte", "BKN1CST5300"),
        ],
    )
    .await;
    assert_eq!(
        (posted.status, posted.content_type.as_str()),
        (422, "text/html; charset=utf-8")
    );
    let html = &posted.body;
    assert!(
        html.contains("Rien n&#39;a été enregistré : corrigez les 4 champs signalés."),
        "{html}"
    );
    for (field, error) in [
        ("Nom", "Ce champ est obligatoire."),
        ("Email", "« x@y » n&#39;est pas une adresse e-mail"),
        ("Age", "L&#39;âge est un nombre entier de 0 à 150, ou vide."),
        ("Compte", "10 caractères au plus"),
    ] {
        assert!(
            html.contains(&format!("<p class=\"field-error\" id=\"f-{field}-error\">{error}")),
            "{field}: {html}"
        );
        assert!(
            html.contains(&format!("aria-invalid=\"true\" aria-describedby=\"f-{field}-error\"")),
            "{field} is marked invalid"
        );
    }
    assert!(!html.contains("f-Prenom-error") && !html.contains("f-Phone-error"));
    // What was typed is kept, escaped.
    for kept in ["x@y", "01 02", "151", "BKN1CST5300", "&#60;b&#62;Jo&#60;/b&#62;"] {
        assert!(html.contains(&format!("value=\"{kept}\"")), "{kept} kept");
    }
    assert!(html.contains("<option value=\"f\" selected>femme</option>"));
    assert!(!html.contains("<b>"));
    assert_eq!(app.customer_count().await, 0, "nothing was created");
}

#[tokio::test]
async fn a_taken_email_is_a_409_naming_and_linking_its_holder() {
    let app = spawn_app().await;
    let holder = app
        .create_customer_ok(&json!({"Nom": "Bloggs", "Prenom": "Jacquie", "email": "jb@mimi.com"}))
        .await;
    let posted = submit(&app, "/api/customers", &[("Nom", "Autre"), ("Email", "JB@mimi.com")]).await;
    assert_eq!(
        (posted.status, posted.content_type.as_str()),
        (409, "text/html; charset=utf-8")
    );
    let link = format!("<a href=\"/api/customers/{holder}\">Jacquie Bloggs</a>");
    assert!(
        posted.body.contains(&format!(
            "Rien n'a été enregistré : l'adresse e-mail JB@mimi.com appartient déjà à {link}."
        )),
        "{}",
        posted.body
    );
    assert!(posted.body.contains(&format!(
        "<p class=\"field-error\" id=\"f-Email-error\">Cette adresse e-mail est déjà celle de {link}.</p>"
    )));
    assert!(posted.body.contains("value=\"Autre\"") && posted.body.contains("value=\"JB@mimi.com\""));
    assert_eq!(app.customer_count().await, 1);
}

/// The edit form's fields as the page filled them, with `changes` typed over them.
fn edit_form(html: &str, changes: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for name in FORM_FIELDS {
        let original = hidden_value(html, &format!("orig_{name}"));
        let value = changes
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(original.clone(), |(_, v)| v.to_string());
        fields.push((name.to_string(), value));
        fields.push((format!("orig_{name}"), original));
    }
    fields
}

fn hidden_value(html: &str, name: &str) -> String {
    let rest = html
        .split(&format!("<input type=\"hidden\" name=\"{name}\" value=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no hidden {name}"));
    unescape(rest.split('"').next().unwrap())
}

async fn submit_owned(app: &TestApp, path: &str, fields: &[(String, String)]) -> Posted {
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    submit(app, path, &borrowed).await
}

#[tokio::test]
async fn the_edit_form_saves_only_the_fields_that_were_changed() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(
            &json!({"Nom": "Doe", "Prenom": "Jon", "email": "jon@doe.fr", "phone": "01",
            "age": 30, "sexe": "f", "Compte": "C1"}),
        )
        .await;
    let page = format!("/api/customers/{id}");
    let (_, html) = app.customer_page(&id).await;
    assert!(html.contains(&format!(
        "<a class=\"button secondary\" href=\"{page}/edit\">Modifier le client</a>"
    )));

    let (status, form) = html_at(&app, &format!("{page}/edit")).await;
    assert_eq!(status, 200);
    assert!(form.contains("<h1>Modifier Jon Doe</h1>"));
    assert!(form.contains(&format!("<form method=\"post\" action=\"{page}/edit\"")));
    assert!(form.contains("name=\"Nom\" value=\"Doe\"") && form.contains("name=\"Age\" value=\"30\""));
    assert!(form.contains("<option value=\"f\" selected>femme</option>"));
    assert_eq!(hidden_value(&form, "orig_Email"), "jon@doe.fr");

    // Meanwhile, someone else changes the first name.
    let (status, _) = app.patch_customer(&id, &json!({"Prenom": "Jonathan"})).await;
    assert_eq!(status, 200);
    // This form still says "Jon": only its phone and age changed, so only they are saved.
    let posted = submit_owned(
        &app,
        &format!("{page}/edit"),
        &edit_form(&form, &[("Phone", "06 07"), ("Age", "")]),
    )
    .await;
    assert_eq!(redirected_customer(&posted), (id.clone(), "notice=saved".to_string()));
    let (_, customer) = app.customer(&id).await;
    assert_eq!(customer["Phone"], "06 07");
    assert_eq!(customer["Age"], Value::Null, "an emptied field is cleared");
    assert_eq!(customer["Prenom"], "Jonathan", "the field not changed here is kept");
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(html.contains(">Modifications enregistrées.</p>"), "{html}");

    // Sent back unchanged: nothing to save.
    let (_, form) = html_at(&app, &format!("{page}/edit")).await;
    let posted = submit_owned(&app, &format!("{page}/edit"), &edit_form(&form, &[])).await;
    assert_eq!(redirected_customer(&posted).1, "notice=unchanged");
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(html.contains("Aucun champ n&#39;a changé : rien n&#39;a été enregistré."));

    // Invalid: the form again with its errors, the typed values and the originals.
    let posted = submit_owned(
        &app,
        &format!("{page}/edit"),
        &edit_form(&form, &[("Nom", ""), ("Email", "a@b"), ("Sexe", "x")]),
    )
    .await;
    assert_eq!(posted.status, 422, "{}", posted.body);
    for (field, error) in [
        ("Nom", "Ce champ ne peut pas être vide."),
        ("Email", "« a@b » n&#39;est pas une adresse e-mail"),
        ("Sexe", "Choisissez homme, femme ou non précisé."),
    ] {
        assert!(
            posted.body.contains(&format!("id=\"f-{field}-error\">{error}")),
            "{field}: {}",
            posted.body
        );
    }
    assert!(posted.body.contains("name=\"Email\" value=\"a@b\""));
    assert_eq!(hidden_value(&posted.body, "orig_Nom"), "Doe", "the originals stay");
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (customer["Nom"].as_str(), customer["Email"].as_str()),
        (Some("Doe"), Some("jon@doe.fr"))
    );

    // Another customer's e-mail: 409, naming and linking them.
    let other = app
        .create_customer_ok(&json!({"Nom": "Martin", "Prenom": "Élise", "email": "elise@exemple.fr"}))
        .await;
    let posted = submit_owned(
        &app,
        &format!("{page}/edit"),
        &edit_form(&form, &[("Email", "elise@exemple.fr")]),
    )
    .await;
    assert_eq!(posted.status, 409);
    assert!(posted.body.contains(&format!(
        "Cette adresse e-mail est déjà celle de <a href=\"/api/customers/{other}\">Élise Martin</a>."
    )));

    // An erased customer can no longer be edited.
    app.erase_customer(&id).await;
    let (status, html) = html_at(&app, &format!("{page}/edit")).await;
    assert_eq!(status, 404);
    assert!(html.contains("<h1>Client effacé</h1>"));
    let posted = submit_owned(&app, &format!("{page}/edit"), &edit_form(&form, &[("Nom", "Revenant")])).await;
    assert_eq!(posted.status, 404);
    let (_, html) = app.customer_page(&id).await;
    assert!(!html.contains("Modifier le client") && !html.contains("<form method=\"post\""));
    let posted = submit(
        &app,
        "/api/customers/00000000-0000-0000-0000-000000000000/edit",
        &[("Nom", "X")],
    )
    .await;
    assert_eq!(posted.status, 404);
    assert!(posted.body.contains("<h1>Client introuvable</h1>"));
}

#[tokio::test]
async fn the_card_button_issues_a_card_and_goes_back_to_the_customer() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "Carte"})).await;
    let other = app.create_customer_ok(&json!({"Nom": "Sans"})).await;
    let (_, html) = app.customer_page(&id).await;
    let button = format!(
        "<form method=\"post\" action=\"/api/customers/{id}/card\"><button type=\"submit\">Attribuer une carte</button></form>"
    );
    assert!(html.contains(&button), "{html}");

    let posted = submit(&app, &format!("/api/customers/{id}/card"), &[]).await;
    assert_eq!(redirected_customer(&posted), (id.clone(), "notice=card".to_string()));
    let (_, customer) = app.customer(&id).await;
    let card = customer["CarteFid"].as_u64().expect("a card");
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(
        html.contains(&format!(">Carte de fidélité n° {card} attribuée.</p>")),
        "{html}"
    );
    assert!(!html.contains("Attribuer une carte"), "no second card");
    assert!(html.contains(&format!("<dd>n° {card}</dd>")));

    // Again: the customer keeps its card.
    let posted = submit(&app, &format!("/api/customers/{id}/card"), &[]).await;
    assert_eq!(posted.status, 303);
    assert_eq!(app.customer(&id).await.1["CarteFid"].as_u64(), Some(card));

    // The notice says what the store holds, not what a link says.
    let (_, html) = html_at(&app, &format!("/api/customers/{other}?notice=card")).await;
    assert!(!html.contains("attribuée") && !html.contains("id=\"notice\""));
}

#[tokio::test]
async fn the_credit_form_schedules_an_allowed_payment_and_says_a_refusal() {
    let app = spawn_app().await; // refusal limit 1
    let id = app
        .create_customer_ok(&json!({"Nom": "Crédit", "Prenom": "Anne"}))
        .await;
    let credit = format!("/api/customers/{id}/credit");
    let (_, html) = app.customer_page(&id).await;
    assert!(html.contains("<h2 id=\"credit-title\">Demande de crédit</h2>"));
    assert!(html.contains(&format!(
        "<form method=\"post\" action=\"{credit}\" class=\"credit-form\">"
    )));
    assert!(html.contains("<label for=\"credit-montant\">Montant (€)</label>"));
    assert!(html.contains("id=\"credit-montant\" name=\"Montant\""));
    assert!(html.contains("<input type=\"date\" id=\"credit-date\" name=\"Date\""));
    assert!(html.contains("Accordé si le client a moins de 1 refus de paiement"));

    // Allowed: scheduled as POST /api/allow_credit schedules it.
    let posted = submit(&app, &credit, &[("Montant", "360,00"), ("Date", "2031-12-06")]).await;
    let (back, query) = redirected_customer(&posted);
    assert_eq!(back, id);
    let (_, payments) = app.customer_payments(&id, "").await;
    let first = &payments["items"][0];
    assert_eq!(query, format!("credit={}", first["id"]));
    assert_eq!(
        (
            first["Montant"].as_u64(),
            first["Date"].as_str(),
            first["status"].as_str()
        ),
        (Some(36000), Some("2031-12-06"), Some("pending"))
    );
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(
        html.contains(">Crédit accordé : un paiement différé de 360,00\u{a0}€ est programmé le 06/12/2031.</p>"),
        "{html}"
    );

    let posted = submit(&app, &credit, &[("Montant", "360.5"), ("Date", "06/12/2031")]).await;
    assert_eq!(posted.status, 303);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (customer["Montant"].as_u64(), customer["Date_paiement"].as_str()),
        (Some(72050), Some("2031-12-06"))
    );

    // Invalid: the page again with the form's errors and what was typed; nothing scheduled.
    let posted = submit(&app, &credit, &[("Montant", "12,345"), ("Date", "2031-02-30")]).await;
    assert_eq!(
        (posted.status, posted.content_type.as_str()),
        (422, "text/html; charset=utf-8")
    );
    assert!(posted
        .body
        .contains("<p class=\"field-error\" id=\"credit-montant-error\">Deux décimales au plus (des centimes).</p>"));
    assert!(posted.body.contains("<p class=\"field-error\" id=\"credit-date-error\">« 2031-02-30 » n&#39;est pas une date qui existe (JJ/MM/AAAA).</p>"));
    assert!(posted.body.contains("name=\"Montant\" value=\"12,345\""));
    assert!(posted.body.contains("<h1>Anne Crédit</h1>"), "on the customer's page");
    let posted = submit(&app, &credit, &[("Montant", "0"), ("Date", "2031-12-06")]).await;
    assert_eq!(posted.status, 422);
    assert!(posted.body.contains("Le montant doit être supérieur à zéro."));
    assert_eq!(
        app.customer_payments(&id, "").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A refusal of the payment service: the next request is refused, and said so.
    let (status, _) = app
        .payment_result(&first["id"].to_string(), &json!({"status": "ERROR"}))
        .await;
    assert_eq!(status, 200);
    let posted = submit(&app, &credit, &[("Montant", "10"), ("Date", "2031-12-24")]).await;
    assert_eq!(redirected_customer(&posted).1, "credit=refused");
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(
        html.contains("<p class=\"banner bad\" role=\"status\" id=\"notice\">Crédit refusé : ce client a 1 refus de paiement (limite : 1). Rien n&#39;a été programmé."),
        "{html}"
    );
    assert_eq!(
        app.customer_payments(&id, "").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // "Remettre les refus à zéro", then the credit is allowed again.
    let reset = format!("/api/customers/{id}/refusals/reset");
    assert!(html.contains(&format!(
        "<form method=\"post\" action=\"{reset}\"><button type=\"submit\" class=\"secondary\">Remettre les refus à zéro</button></form>"
    )));
    let posted = submit(&app, &reset, &[]).await;
    assert_eq!(redirected_customer(&posted), (id.clone(), "notice=reset".to_string()));
    assert_eq!(app.customer(&id).await.1["NbRefus"], 0);
    let (_, html) = html_at(&app, posted.location.as_deref().unwrap()).await;
    assert!(html.contains(">Refus de paiement remis à zéro : le client peut de nouveau obtenir un crédit.</p>"));
    assert!(
        !html.contains("Remettre les refus à zéro</button>"),
        "no refusal left to reset"
    );
    let (_, html) = html_at(&app, &format!("/api/customers/{id}?credit=refused")).await;
    assert!(!html.contains("Crédit refusé"), "a link cannot make up a refusal");
    let (_, html) = html_at(&app, &format!("/api/customers/{id}?credit=999")).await;
    assert!(!html.contains("Crédit accordé"), "nor a payment");
    let posted = submit(&app, &credit, &[("Montant", "10"), ("Date", "2031-12-24")]).await;
    assert!(redirected_customer(&posted).1.starts_with("credit="));
    assert_ne!(redirected_customer(&posted).1, "credit=refused");
}

#[tokio::test]
async fn form_posts_that_a_browser_marks_as_from_another_site_are_refused() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "Cible"})).await;
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/api/customers".into(), vec![("Nom", "Pirate")]),
        (
            format!("/api/customers/{id}/edit"),
            vec![("Nom", "Pirate"), ("orig_Nom", "Cible")],
        ),
        (format!("/api/customers/{id}/card"), vec![]),
        (
            format!("/api/customers/{id}/credit"),
            vec![("Montant", "100"), ("Date", "2031-12-06")],
        ),
        (format!("/api/customers/{id}/refusals/reset"), vec![]),
    ];
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let other_port = format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1));
    let attacks: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            vec![("sec-fetch-site", "cross-site".into())],
            "Sec-Fetch-Site : cross-site",
        ),
        (
            vec![("sec-fetch-site", "same-site".into())],
            "Sec-Fetch-Site : same-site",
        ),
        (
            vec![("origin", "http://evil.exemple".into())],
            "origine http://evil.exemple",
        ),
        (vec![("origin", other_port.clone())], "origine http://127.0.0.1"),
        (vec![("origin", "null".into())], "origine null"),
        (
            vec![("origin", app.address.clone()), ("sec-fetch-site", "cross-site".into())],
            "cross-site",
        ),
    ];
    for (headers, why) in &attacks {
        for (path, fields) in &routes {
            let posted = post_form(&app, path, fields, headers).await;
            assert_eq!(
                (posted.status, posted.content_type.as_str()),
                (403, "text/html; charset=utf-8"),
                "{path} {headers:?}"
            );
            assert!(posted.body.contains("<h1>Formulaire refusé</h1>"), "{}", posted.body);
            assert!(
                posted.body.contains("autre site") && posted.body.contains(why),
                "{why}: {}",
                posted.body
            );
        }
    }
    // Nothing was written.
    assert_eq!(app.customer_count().await, 1);
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (
            customer["Nom"].as_str(),
            &customer["CarteFid"],
            customer["Montant"].as_u64()
        ),
        (Some("Cible"), &Value::Null, Some(0))
    );
    // The CRM's own pages, and clients that send neither header, pass.
    assert_eq!(
        submit(&app, &format!("/api/customers/{id}/card"), &[]).await.status,
        303
    );
    let posted = post_form(&app, "/api/customers", &[("Nom", "Sans en-tête")], &[]).await;
    assert_eq!(posted.status, 303);
    let unknown = post_form(&app, "/api/customers/not-a-uuid/card", &[], &[]).await;
    assert_eq!(
        (unknown.status, unknown.content_type.as_str()),
        (404, "text/html; charset=utf-8")
    );
}

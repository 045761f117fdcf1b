//! Who may ask what (issue 13, items 1 to 3): the `Host` check, the refusal of what a
//! browser marks as sent from another site on every route, the tokens and their roles,
//! the pages' login and CSRF tokens, the TUI's token. Protected mode (loopback peers
//! only without tokens) is decided from the peer address and tested at the unit level
//! (crm-server's `access::tests`), never with traffic to this machine's other addresses.

use std::sync::Arc;

use crm_server::access::TokenSet;
use crm_tests::{spawn_app, spawn_app_with, status_and_json, TestApp};
use crm_tui::api::{ApiClient, ApiError};
use serde_json::{json, Value};

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const TOKENS: &str = "# the register's clients\nbi:read-token-0123456789:read\n\ntills:write-token-0123456789:write\nops:admin-token-0123456789:admin\n";

async fn spawn_with_tokens() -> TestApp {
    spawn_app_with(|config| config.tokens = Some(Arc::new(TokenSet::parse(TOKENS).unwrap()))).await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send().await.expect("request")
}

fn assert_refused(status: u16, body: &Value, expected: u16, code: &str) {
    assert_eq!((status, body["code"].as_str()), (expected, Some(code)), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

#[tokio::test]
async fn requests_a_browser_marks_as_from_another_site_are_refused_on_every_route() {
    let app = spawn_app().await;
    app.post_tickets(&json!({"origin": "magasin", "tickets": [{"id": 1, "date": "2019-10-09", "prix": 100}]}))
        .await;
    let other_origin = "http://127.0.0.1:1".to_string();
    for marks in [
        vec![("sec-fetch-site", "cross-site".to_string())],
        vec![("sec-fetch-site", "same-site".to_string())],
        vec![("origin", other_origin.clone())],
        vec![("origin", "null".to_string())],
    ] {
        for (method, path) in [
            (reqwest::Method::POST, "/api/create_customer"),
            (reqwest::Method::GET, "/api/get_tickets/bi"),
            (reqwest::Method::GET, "/api/data"),
            (reqwest::Method::POST, "/api/update_db?mode=replace"),
            (reqwest::Method::GET, "/healthz"),
        ] {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .header("content-type", "text/plain")
                .body(r#"{"Nom": "Pirate", "Credit": 9007199254740991}"#);
            for (name, value) in &marks {
                request = request.header(*name, value);
            }
            let (status, body) = status_and_json(request.send().await.unwrap()).await;
            assert_refused(status, &body, 403, "cross_site_request");
        }
    }
    assert_eq!(app.customer_count().await, 0, "no customer was created");
    assert_eq!(app.get_tickets(Some("bi")).await.len(), 1, "the bi cursor did not move");
    // The CRM's own pages and the older clients pass: no browser headers, raw JSON
    // without Content-Type, doubled slashes.
    let own = app
        .client
        .post(app.url("/api/create_customer"))
        .header("origin", app.address.clone())
        .header("sec-fetch-site", "same-origin")
        .body(r#"{"Nom": "Maison"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let (status, _) = status_and_json(app.post_raw("/api/create_customer", r#"{"Nom": "Ancien"}"#).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.get("//api//data/").await.status(), 200);
    assert_eq!(app.customer_count().await, 2);
}

#[tokio::test]
async fn a_host_that_is_not_one_of_the_servers_names_is_a_421() {
    let app = spawn_app_with(|config| config.allowed_hosts = vec!["crm.magasin.fr".into()]).await;
    let with_host = |host: &'static str| app.client.get(app.url("/api/data")).header("host", host).send();
    for host in [
        "evil.exemple",
        "evil.exemple:8000",
        "127.0.0.1.nip.io",
        "crm.magasin.fr.evil",
    ] {
        let (status, body) = status_and_json(with_host(host).await.unwrap()).await;
        assert_refused(status, &body, 421, "host_not_allowed");
        assert_eq!(body["host"], host);
    }
    for host in [
        "localhost",
        "localhost:8000",
        "127.0.0.1:9",
        "[::1]:8000",
        "crm",
        "crm:8000",
        "crm.magasin.fr",
    ] {
        assert_eq!(with_host(host).await.unwrap().status(), 200, "{host}");
    }
}

#[tokio::test]
async fn without_a_token_every_api_route_is_a_401_and_healthz_stays_open() {
    let app = spawn_with_tokens().await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/data"),
        (reqwest::Method::GET, "/api/v1/customers"),
        (reqwest::Method::POST, "/api/create_customer"),
        (reqwest::Method::GET, "/api/get_tickets/bi"),
        (reqwest::Method::GET, "/api/v1/openapi.json"),
    ] {
        for token in [None, Some("not-a-token-of-this-server")] {
            let response = send(&app, method.clone(), path, token, None).await;
            let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
            assert!(challenge.starts_with("Bearer realm=\"crm\""), "{challenge}");
            let (status, body) = status_and_json(response).await;
            let code = if token.is_some() {
                "invalid_token"
            } else {
                "token_required"
            };
            assert_refused(status, &body, 401, code);
        }
    }
    let (status, health) = status_and_json(app.get("/healthz").await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(app.get("/api/assets/crm.css").await.status(), 200);
}

#[tokio::test]
async fn each_role_reaches_its_routes_and_no_further() {
    let app = spawn_with_tokens().await;
    let create = |token| {
        send(
            &app,
            reqwest::Method::POST,
            "/api/create_customer",
            Some(token),
            Some(json!({"Nom": "Doe", "email": format!("{token}@x.fr")})),
        )
    };
    // read: reads only.
    assert_eq!(
        send(&app, reqwest::Method::GET, "/api/data", Some(READ), None)
            .await
            .status(),
        200
    );
    let (status, body) = status_and_json(create(READ).await).await;
    assert_refused(status, &body, 403, "role_too_small");
    assert_eq!(
        (body["role"].as_str(), body["needed"].as_str()),
        (Some("read"), Some("write"))
    );
    let (status, body) =
        status_and_json(send(&app, reqwest::Method::GET, "/api/get_tickets/bi", Some(READ), None).await).await;
    assert_refused(status, &body, 403, "role_too_small");
    // write: ordinary writes, not the destructive ones.
    let (status, created) = status_and_json(create(WRITE).await).await;
    assert_eq!(status, 200, "{created}");
    let id = created["idClient"].as_str().unwrap().to_string();
    let lookup = json!({"email": "write-token-0123456789@x.fr"});
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            "/api/customer/email",
            Some(READ),
            Some(lookup)
        )
        .await
        .status(),
        200,
        "a look-up by e-mail is a read"
    );
    assert_eq!(
        send(&app, reqwest::Method::GET, "/api/get_tickets/bi", Some(WRITE), None)
            .await
            .status(),
        200
    );
    let erase = format!("/api/v1/customers/{id}");
    let (status, body) = status_and_json(send(&app, reqwest::Method::DELETE, &erase, Some(WRITE), None).await).await;
    assert_refused(status, &body, 403, "role_too_small");
    let file = r#"[{"Nom": "Seul"}]"#;
    let import = |token: &'static str, query: &'static str| {
        app.client
            .post(app.url(&format!("/api/update_db?{query}")))
            .bearer_auth(token)
            .body(file)
            .send()
    };
    assert_eq!(import(WRITE, "mode=merge&dry_run=true").await.unwrap().status(), 200);
    let (status, body) = status_and_json(import(WRITE, "mode=replace").await.unwrap()).await;
    assert_refused(status, &body, 403, "role_too_small");
    // The import form says its mode in the body: checked once read.
    let form = reqwest::multipart::Form::new()
        .text("mode", "replace")
        .part("file", reqwest::multipart::Part::text(file).file_name("c.json"));
    let response = app
        .client
        .post(app.url("/api/update_db"))
        .bearer_auth(WRITE)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_refused(status, &body, 403, "role_too_small");
    assert_eq!(
        send(&app, reqwest::Method::GET, "/api/data", Some(READ), None)
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was erased"
    );
    // admin: everything.
    assert_eq!(
        send(&app, reqwest::Method::DELETE, &erase, Some(ADMIN), None)
            .await
            .status(),
        200
    );
    let (status, report) = status_and_json(import(ADMIN, "mode=replace").await.unwrap()).await;
    assert_eq!((status, report["created"].as_u64()), (200, Some(1)), "{report}");
}

/// The `csrf` hidden field of a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn page_with_cookie(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post_form(app: &TestApp, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", app.address.clone())
        .header("sec-fetch-site", "same-origin")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// Logs in through the login form: the session cookie (`name=value`).
async fn log_in(app: &TestApp, token: &str) -> String {
    let (status, form) = app
        .page("/api/login?next=/api/customers/new")
        .await
        .into_status_and_body();
    assert_eq!(status, 200);
    let csrf = csrf_of(&form);
    let response = post_form(
        app,
        "/api/login",
        None,
        &[("csrf", &csrf), ("next", "/api/customers/new"), ("token", token)],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/api/customers/new");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains(token),
        "the cookie carries a session id, not the token"
    );
    set_cookie.split(';').next().unwrap().to_string()
}

trait StatusAndBody {
    fn into_status_and_body(self) -> (u16, String);
}

impl StatusAndBody for (u16, String, String) {
    fn into_status_and_body(self) -> (u16, String) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn the_pages_ask_for_a_token_once_and_their_forms_carry_the_sessions_csrf_token() {
    let app = spawn_with_tokens().await;
    // No session: to the login form, which comes back to the page asked for.
    let response = app.get("/api?q=doe").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/api/login?next=%2Fapi%3Fq%3Ddoe");
    let (status, form) = app.page("/api/login").await.into_status_and_body();
    assert_eq!(status, 200);
    assert!(form.contains("type=\"password\" id=\"token\" name=\"token\""), "{form}");
    let csrf = csrf_of(&form);
    // A wrong token, a missing CSRF token.
    let wrong = post_form(
        &app,
        "/api/login",
        None,
        &[("csrf", &csrf), ("token", "nope-nope-nope-nope")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.text().await.unwrap().contains("pas valable"),
        "the form again with the error"
    );
    let forged = post_form(&app, "/api/login", None, &[("token", WRITE)]).await;
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());

    let cookie = log_in(&app, WRITE).await;
    let (status, new_form) = page_with_cookie(&app, "/api/customers/new", &cookie).await;
    assert_eq!(status, 200);
    let session_csrf = csrf_of(&new_form);
    assert_ne!(session_csrf, csrf, "the session has its own token");
    // A cookie post without the session's token is refused, with it accepted.
    for bad in [None, Some(csrf.as_str()), Some("0000")] {
        let mut fields = vec![("Nom", "Sans jeton")];
        if let Some(token) = bad {
            fields.push(("csrf", token));
        }
        let refused = post_form(&app, "/api/customers", Some(&cookie), &fields).await;
        assert_eq!(refused.status(), 403, "{bad:?}");
        assert!(refused.text().await.unwrap().contains("Formulaire expiré"));
    }
    assert_eq!(
        app.client
            .get(app.url("/api/data"))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
    let created = post_form(
        &app,
        "/api/customers",
        Some(&cookie),
        &[("Nom", "Avec jeton"), ("csrf", &session_csrf)],
    )
    .await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let (status, page) = page_with_cookie(&app, &location, &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("Avec jeton"));
    assert_eq!(csrf_of(&page), session_csrf, "the customer page's forms carry it too");

    // A read session sees the pages but cannot post their forms.
    let reader = log_in(&app, READ).await;
    let (status, reader_page) = page_with_cookie(&app, "/api/customers/new", &reader).await;
    assert_eq!(status, 200);
    let refused = post_form(
        &app,
        "/api/customers",
        Some(&reader),
        &[("Nom", "Lecteur"), ("csrf", &csrf_of(&reader_page))],
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("le rôle read"));

    // Logging out ends the session.
    let out = post_form(&app, "/api/logout", Some(&cookie), &[("csrf", &session_csrf)]).await;
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, _) = page_with_cookie(&app, "/api/customers/new", &cookie).await;
    assert_eq!(status, 303, "back to the login form");
}

#[tokio::test]
async fn every_form_of_a_session_carries_its_csrf_token_and_a_wrong_one_is_refused() {
    let app = spawn_with_tokens().await;
    let cookie = log_in(&app, ADMIN).await;
    let id = app
        .client
        .post(app.url("/api/create_customer"))
        .bearer_auth(WRITE)
        .body(r#"{"Nom": "Doe"}"#)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["idClient"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, page) = page_with_cookie(&app, &format!("/api/customers/{id}"), &cookie).await;
    let csrf = csrf_of(&page);
    assert_eq!(
        page.matches(&format!("name=\"csrf\" value=\"{csrf}\"")).count(),
        2,
        "card and credit forms"
    );
    for path in [
        "/api/customers/new",
        &format!("/api/customers/{id}/edit"),
        "/api/update_db",
        "/api/login",
    ] {
        let (status, html) = page_with_cookie(&app, path, &cookie).await;
        assert_eq!((status, csrf_of(&html)), (200, csrf.clone()), "{path}");
    }
    let card = format!("/api/customers/{id}/card");
    let forged = post_form(&app, &card, Some(&cookie), &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), 403);
    let (_, customer) = status_and_json(
        app.client
            .get(app.url(&format!("/api/v1/customers/{id}")))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(customer["CarteFid"], Value::Null);
    assert_eq!(
        post_form(&app, &card, Some(&cookie), &[("csrf", &csrf)]).await.status(),
        303
    );
    // The import form's token, read from its multipart body before the file.
    for token in [None, Some("forged")] {
        let mut form = reqwest::multipart::Form::new();
        if let Some(token) = token {
            form = form.text("csrf", token);
        }
        let form = form.text("mode", "replace").part(
            "file",
            reqwest::multipart::Part::text(r#"[{"Nom": "X"}]"#).file_name("c.json"),
        );
        let response = app
            .client
            .post(app.url("/api/update_db"))
            .header("cookie", &cookie)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_json(response).await;
        assert_refused(status, &body, 403, "csrf_token_invalid");
    }
    let (_, all) = status_and_json(
        app.client
            .get(app.url("/api/data"))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 1, "nothing was erased");
}

#[tokio::test]
async fn without_tokens_the_forms_are_as_before_and_a_wrong_csrf_token_is_still_refused() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "Doe"})).await;
    let (_, page) = app.customer_page(&id).await;
    assert!(!page.contains("name=\"csrf\""), "no session, no token to carry");
    let card = format!("/api/customers/{id}/card");
    assert_eq!(post_form(&app, &card, None, &[("csrf", "forged")]).await.status(), 403);
    assert_eq!(post_form(&app, &card, None, &[]).await.status(), 303);
}

#[tokio::test]
async fn the_tui_client_sends_its_token() {
    let app = spawn_with_tokens().await;
    let url: reqwest::Url = app.address.parse().unwrap();
    let without = ApiClient::new(url.clone());
    match without.list_customers(&Default::default()).await {
        Err(ApiError::Http { status, code, .. }) => assert_eq!((status, code.as_str()), (401, "token_required")),
        other => panic!("{other:?}"),
    }
    let client = ApiClient::with_token(url.clone(), Some(WRITE));
    let page = client
        .list_customers(&Default::default())
        .await
        .expect("listed with the token");
    assert_eq!(page.total, 0);
    client.health().await.expect("healthz");
    let reader = ApiClient::with_token(url, Some(READ));
    match reader
        .create_customer(&crm_tui::api::NewCustomerRequest::default())
        .await
    {
        Err(ApiError::Http { status, code, .. }) => assert_eq!((status, code.as_str()), (403, "role_too_small")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_tokens_file_stops_the_start_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "# ok\nbi:read-token-0123456789:read\nops:admin-token-0123456789:root\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crm-server-under-test"))
        .args(["--addr", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .expect("run crm-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tokens file line 3") && stderr.contains("unknown role"),
        "{stderr}"
    );
    assert!(!stderr.contains("admin-token-0123456789"), "no token in the message");
}

//! The transport rules of CONTRACT.md section 1, on the routes that exist.

use crm_tests::{assert_error, spawn_app, spawn_app_with, status_and_json};
use serde_json::json;

#[tokio::test]
async fn raw_json_without_content_type_is_read() {
    let app = spawn_app().await;
    let response = app
        .post_raw("/api/create_customer", r#"{"Nom": "Raw", "email": "raw@x.fr"}"#)
        .await;
    assert!(response.headers().get("content-type").is_some());
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    // And with a misleading Content-Type.
    let response = app
        .client
        .post(app.url("/api/create_customer"))
        .header("content-type", "text/plain")
        .body(r#"{"Nom": "Plain"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn doubled_leading_and_trailing_slashes_reach_the_route() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "Slash"})).await;
    for path in [
        format!("//api/data/{id}"),
        format!("/api/data/{id}/"),
        format!("//api/data/{id}/"),
    ] {
        let (status, body) = status_and_json(app.get(&path).await).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body[0]["IdClient"], id.as_str());
    }
    let (status, body) = status_and_json(app.get("/api/data/").await).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(1)));
    let (status, _) = status_and_json(app.post_raw("//api/create_customer/", r#"{"Nom": "Twice"}"#).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unreadable_bodies_are_400() {
    let app = spawn_app().await;
    for body in [
        &b"not json"[..],
        b"",
        b"[1, 2]",
        b"\"text\"",
        b"{\"Nom\": \"\xff\xfe\"}",
        b"{\"Nom\": ",
    ] {
        let (status, answer) = status_and_json(app.post_raw("/api/create_customer", body.to_vec()).await).await;
        assert_error(status, &answer, 400, "bad_request");
    }
    let (status, answer) = status_and_json(app.post_raw("/api/customer/email", &b"\xff"[..]).await).await;
    assert_error(status, &answer, 400, "bad_request");
    assert!(answer["error"].as_str().unwrap().contains("UTF-8"));
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_chunked() {
    let app = spawn_app().await;
    let big = format!(r#"{{"Nom": "{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let (status, body) = status_and_json(app.post_raw("/api/create_customer", big.clone()).await).await;
    assert_error(status, &body, 413, "payload_too_large");

    // Chunked, with no Content-Length to trust.
    let chunks = futures::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = app
        .client
        .post(app.url("/api/create_customer"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    // The server may close the connection while the client still sends: either way no 2xx.
    if let Ok(response) = response {
        let (status, body) = status_and_json(response).await;
        assert_error(status, &body, 413, "payload_too_large");
    }
    assert!(app.all_customers().await.is_empty());
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(|c| c.body_limit = 64).await;
    let (status, body) = status_and_json(
        app.post_raw("/api/create_customer", format!(r#"{{"Nom": "{}"}}"#, "y".repeat(100)))
            .await,
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json_errors() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(app.get("/api/nothing/here").await).await;
    assert_error(status, &body, 404, "route_not_found");
    let (status, body) = status_and_json(app.delete("/api/data").await).await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = status_and_json(app.get("/api/create_customer").await).await;
    assert_error(status, &body, 405, "method_not_allowed");
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "sort=Email",
        "cursor=garbage",
        "cursor=id.zz",
        "sort=-Credit&cursor=id.0000000000000001",
        "q=%FF",
        "q=caf%C3",
        "%FF=1",
    ] {
        let (status, body) = app.list_customers(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["code"].is_string() && body["error"].is_string());
    }
}

#[tokio::test]
async fn health_answers_once_the_store_is_open() {
    let app = spawn_app().await;
    let (status, body) = status_and_json(app.get("/healthz").await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn graceful_shutdown_flushes_and_the_data_survives_a_restart() {
    let app = spawn_app().await;
    let id = app
        .create_customer_ok(&json!({"Nom": "Persist", "email": "p@x.fr"}))
        .await;
    let app = app.restart().await;
    let (status, body) = app.customer(&id).await;
    assert_eq!((status, body["Nom"].as_str()), (200, Some("Persist")));
    let (status, body) = app.customer_by_email("P@X.FR").await;
    assert_eq!((status, body["IdClient"].as_str()), (200, Some(id.as_str())));
}

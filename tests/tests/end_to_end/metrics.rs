//! `GET /metrics` (Prometheus text) and the request id of every answer.

use crm_tests::spawn_app;
use serde_json::json;

/// The value of the sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (name, rest) = l.split_once(['{', ' ']).unwrap_or((l, ""));
            name == metric && labels.iter().all(|label| rest.contains(label))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_status_and_report_the_store() {
    let app = spawn_app().await;
    let id = app.create_customer_ok(&json!({"Nom": "A", "Credit": 10})).await;
    app.create_customer_ok(&json!({"Nom": "B"})).await;
    for _ in 0..2 {
        assert_eq!(app.customer(&id).await.0, 200);
    }
    let unknown = "8f0c6a1e-0000-4000-8000-000000000001";
    assert_eq!(app.customer(unknown).await.0, 404);
    let (status, _) = app
        .post_tickets(&json!({"tickets": [{"id": 1, "date": "2020-01-01", "prix": 10, "client": id}]}))
        .await;
    assert_eq!(status, 200);

    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let route = r#"route="/api/v1/customers/{}""#;
    assert_eq!(
        sample(
            &text,
            "crm_http_requests_total",
            &[route, r#"status="200""#, r#"method="GET""#]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "crm_http_requests_total", &[route, r#"status="404""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "crm_http_request_duration_seconds_count",
            &[route, r#"method="GET""#]
        ),
        Some(3.0)
    );
    assert!(sample(
        &text,
        "crm_http_request_duration_seconds_bucket",
        &[route, r#"le="+Inf""#]
    )
    .is_some());
    assert!(
        !text.contains(&id) && !text.contains(unknown),
        "paths are counted under their pattern"
    );
    assert_eq!(sample(&text, "crm_customers", &[]), Some(2.0));
    assert_eq!(sample(&text, "crm_tickets", &[]), Some(1.0));
    assert!(sample(&text, "crm_store_flushes_total", &[]).unwrap() >= 3.0);
    assert!(sample(&text, "crm_store_size_bytes", &[]).unwrap() > 0.0);
    assert_eq!(sample(&text, "crm_import_running", &[]), Some(0.0));

    // The scrape itself is counted on the next one.
    let again = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(&again, "crm_http_requests_total", &[r#"route="/metrics""#]),
        Some(1.0)
    );
    assert_eq!(app.get("/wp-login.php").await.status().as_u16(), 404);
    let after = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(
            &after,
            "crm_http_requests_total",
            &[r#"route="other""#, r#"status="404""#]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_from_the_request_when_sane() {
    let app = spawn_app().await;
    let request_id = |response: &reqwest::Response| response.headers()["x-request-id"].to_str().unwrap().to_string();
    let first = request_id(&app.get("/healthz").await);
    let second = request_id(&app.get("/api/v1/customers/nobody").await);
    for generated in [&first, &second] {
        assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    }
    assert_ne!(first, second);
    let send = |value: &'static str| app.client.get(app.url("/healthz")).header("X-Request-Id", value).send();
    assert_eq!(request_id(&send("till-42-7f3a").await.unwrap()), "till-42-7f3a");
    let replaced = request_id(&send("no spaces <please>").await.unwrap());
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
}

/// The access log of the real command line, written to a file as a service manager
/// would: one line a request with its route and status, and no terminal colour codes.
#[test]
fn the_access_log_in_a_file_is_plain_text_with_a_line_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("crm.log");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_crm-server-under-test"));
    let server = crm_tests::ServerProcess::start_logging_to(binary, &dir.path().join("data"), &log);
    assert_eq!(server.get("/api/data/not-a-uuid").0, 404);
    server.kill();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log written to a file:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("request") && l.contains("status=404") && l.contains(r#"path="/api/data/not-a-uuid""#)),
        "no access-log line for the request:\n{log}"
    );
}

//! Bounded answers to bad input, and the connection limits: idle, slow-head and
//! stalled-body timeouts, and the maximum of open connections.

use std::time::{Duration, Instant};

use crm_tests::{assert_error, spawn_app, spawn_app_with, status_and_json};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most errors an answer lists.
const LISTED: usize = 1_000;

/// Bound of the answer to a 1 MiB body, whatever it holds.
const MAX_ANSWER_BYTES: usize = 300_000;

/// Just under 1 MiB (the body limit of ordinary routes): `prefix`, as many `item`s
/// as fit, `suffix`; answers the body and the item count.
fn mebibyte_of(prefix: &str, item: impl Fn(usize) -> String, suffix: &str) -> (String, usize) {
    let mut body = String::from(prefix);
    let mut count = 0;
    loop {
        let next = item(count);
        if body.len() + next.len() + 1 + suffix.len() > 1024 * 1024 - 64 {
            break;
        }
        if count > 0 {
            body.push(',');
        }
        body.push_str(&next);
        count += 1;
    }
    body.push_str(suffix);
    (body, count)
}

/// The status, body size and JSON of an answer.
async fn sized(response: reqwest::Response) -> (u16, usize, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).expect("JSON answer");
    (status, bytes.len(), json)
}

fn assert_bounded_list(size: usize, body: &Value, total: usize) {
    assert!(size < MAX_ANSWER_BYTES, "answer of {size} bytes");
    assert_eq!(
        body["errors"].as_array().map(Vec::len),
        Some(LISTED),
        "{}",
        body["error"]
    );
    assert_eq!(body["error_count"], total);
    assert_eq!(body["errors_truncated"], true);
}

#[tokio::test]
async fn a_mebibyte_of_bad_credit_items_lists_a_thousand_errors_and_counts_them_all() {
    let app = spawn_app().await;
    let (body, items) = mebibyte_of(
        r#"{"Tickets":["#,
        |_| r#"{"carteFid":"zz","Montant":"x"}"#.to_string(),
        "]}",
    );
    let (status, size, answer) = sized(app.post_raw("/api/credit", body).await).await;
    assert_error(status, &answer, 422, "invalid_fields");
    // Two bad fields per item.
    assert_bounded_list(size, &answer, 2 * items);
    assert_eq!(answer["errors"][0]["field"], "Tickets[0].carteFid");
    assert_eq!(answer["errors"][999]["field"], "Tickets[499].Montant");

    // A huge value is not repeated back.
    let huge = "9z".repeat(400_000);
    let (status, size, answer) = sized(
        app.post_raw(
            "/api/credit",
            json!({"Tickets": [{"carteFid": huge, "Montant": 1}]}).to_string(),
        )
        .await,
    )
    .await;
    assert_error(status, &answer, 422, "invalid_fields");
    assert!(size < 1_000, "{answer}");
    assert_eq!(answer["error_count"], 1);
    assert_eq!(answer["errors_truncated"], false);
}

#[tokio::test]
async fn a_mebibyte_of_bad_tickets_lists_a_thousand_errors_and_counts_them_all() {
    let app = spawn_app().await;
    let (body, items) = mebibyte_of(r#"{"tickets":["#, |_| "1".to_string(), "]}");
    let (status, size, answer) = sized(app.post_raw("/api/v1/tickets", body).await).await;
    assert_error(status, &answer, 422, "invalid_tickets");
    assert_bounded_list(size, &answer, items);
    assert_eq!(answer["errors"][999]["index"], 999);
    assert_eq!(
        answer["error"],
        format!("{items} invalid ticket(s); nothing was stored")
    );
    let (_, stored) = app.tickets("").await;
    assert_eq!(stored["total"], 0);
}

#[tokio::test]
async fn a_mebibyte_of_unknown_customer_keys_lists_a_thousand() {
    let app = spawn_app().await;
    let long_key = "k".repeat(200);
    let (body, keys) = mebibyte_of("{", |i| format!("\"{long_key}{i}\":1"), "}");
    let (status, size, answer) = sized(app.post_raw("/api/v1/customers", body).await).await;
    assert_error(status, &answer, 422, "invalid_fields");
    assert_bounded_list(size, &answer, keys);
    // Each name is cut short.
    let field = answer["errors"][0]["field"].as_str().unwrap();
    assert!(field.chars().count() <= 41, "{field}");
    assert!(answer["error"].as_str().unwrap().len() < 2_000);
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn an_import_of_a_mebibyte_of_bad_rows_lists_a_thousand() {
    let app = spawn_app().await;
    let (body, rows) = mebibyte_of(r#"{"clients":["#, |_| r#"{"Nom":"A","Email":"bad"}"#.to_string(), "]}");
    let (status, answer) = app.import("mode=merge", Some("application/json"), body).await;
    assert_error(status, &answer, 422, "invalid_rows");
    assert_eq!(answer["errors"].as_array().map(Vec::len), Some(LISTED));
    assert_eq!(answer["error_count"], rows);
    assert_eq!(answer["errors_truncated"], true);
    assert!(answer.to_string().len() < MAX_ANSWER_BYTES);
    assert_eq!(app.customer_count().await, 0);
}

/// Reads until the server closes the connection (or `within` passes), answering what
/// it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), Some(start.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A raw connection to the server of `app`.
async fn connect(app: &crm_tests::TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://").trim_end_matches('/');
    TcpStream::connect(address).await.expect("connect")
}

fn short_timeouts(config: &mut crm_server::Config) {
    config.header_timeout = Duration::from_millis(400);
    config.body_timeout = Duration::from_millis(400);
    config.idle_timeout = Duration::from_millis(800);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(short_timeouts).await;
    // Never a byte.
    let mut silent = connect(&app).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    let closed = closed.expect("the idle connection stays open");
    assert!(closed >= Duration::from_millis(700), "closed after {closed:?}");
    // Idle after an answer (keep-alive).
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed.is_some(), "the keep-alive connection stays open");
}

#[tokio::test]
async fn a_slow_request_head_is_cut_after_the_header_timeout() {
    let app = spawn_app_with(|c| {
        short_timeouts(c);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    let closed = closed.expect("the slow head is not cut");
    assert!(closed < Duration::from_secs(3), "cut after {closed:?}");
    // The idle timeout is long: a connection that sends nothing is still open.
    let mut silent = connect(&app).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(1)).await;
    assert_eq!(closed, None);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_after_the_body_timeout() {
    let app = spawn_app_with(short_timeouts).await;
    let mut stalled = connect(&app).await;
    stalled
        .write_all(b"POST /api/credit HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1000\r\n\r\n{\"Tickets\": [")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(closed.is_some(), "the connection of a stalled body stays open");
    // The server still serves.
    let (status, _) = status_and_json(app.get("/healthz").await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connections_past_the_maximum_get_503_and_a_client_after_they_close_is_served() {
    let app = spawn_app_with(|c| c.max_connections = Some(2)).await;
    let held = [connect(&app).await, connect(&app).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&app).await;
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(closed.is_some(), "the refused connection stays open");
    drop(held);
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let response = client.get(app.url("/healthz")).send().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(start.elapsed() < Duration::from_secs(5), "still refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The client against a one-shot fake server: what it sends and how it reads answers.

use super::*;
use crm_model::{Sort, SortDirection, SortKey};
use std::io::Write;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the fake server received.
struct Received {
    request_line: String,
    headers: String,
    body: Vec<u8>,
}

/// Serves one request with `status` and `body`, then hands back what it received.
async fn serve_once(status: &'static str, body: &'static str) -> (ApiClient, oneshot::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (sender, receiver) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut data = Vec::new();
        let mut buffer = [0u8; 8192];
        let head_end = loop {
            let read = stream.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            data.extend_from_slice(&buffer[..read]);
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_string();
        let length = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while data.len() < head_end + length {
            let read = stream.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            data.extend_from_slice(&buffer[..read]);
        }
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let (request_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
        let _ = sender.send(Received {
            request_line: request_line.to_string(),
            headers: headers.to_ascii_lowercase(),
            body: data[head_end..].to_vec(),
        });
    });
    let base = Url::parse(&format!("http://{address}")).expect("url");
    (ApiClient::new(base), receiver)
}

const CUSTOMER: &str = r#"{"id":7,"IdClient":"a14e39ce-e29e-11e9-a8cb-08002751d198","Nom":"Bloggs","Prenom":"Jacquie",
"Credit":420,"Date_paiement":"2019-01-11","Montant":1330,"NbRefus":0,"Compte":"BKN1CST53","Age":42,"Sexe":"h",
"Email":"Jacquie@mimi.com","Phone":"0102030405","PanierMoyen":900,"CarteFid":33}"#;

fn id() -> Uuid {
    Uuid::parse_str("a14e39ce-e29e-11e9-a8cb-08002751d198").expect("uuid")
}

#[tokio::test]
async fn list_customers_sends_every_query_parameter_and_reads_the_page() {
    let page = r#"{"items":[],"next_cursor":"abc","total":1000000}"#;
    let (api, received) = serve_once("200 OK", page).await;
    let query = ListQuery {
        limit: 100,
        cursor: Some("c 1".into()),
        q: Some("Éloïse".into()),
        sort: Sort {
            key: SortKey::Credit,
            direction: SortDirection::Descending,
        },
    };
    let page = api.list_customers(&query).await.expect("page");
    assert_eq!((page.next_cursor.as_deref(), page.total), (Some("abc"), 1_000_000));
    let line = received.await.expect("request").request_line;
    assert!(
        line.starts_with("GET /api/v1/customers?limit=100&cursor=c+1&q=%C3%89lo%C3%AFse&sort=-Credit "),
        "{line}"
    );
}

#[tokio::test]
async fn patch_sends_only_the_changed_fields() {
    let (api, received) = serve_once("200 OK", CUSTOMER).await;
    let changes = CustomerChanges {
        email: Some("new@mimi.com".into()),
        age: Some(None),
        ..Default::default()
    };
    let customer = api.patch_customer(id(), &changes).await.expect("customer");
    assert_eq!(customer.carte_fid, Some(33));
    let received = received.await.expect("request");
    assert!(received
        .request_line
        .starts_with("PATCH /api/v1/customers/a14e39ce-e29e-11e9-a8cb-08002751d198 "));
    let body: serde_json::Value = serde_json::from_slice(&received.body).expect("json body");
    assert_eq!(body, json!({"Email": "new@mimi.com", "Age": null}));
}

#[tokio::test]
async fn validation_errors_name_their_fields() {
    let body = r#"{"error":"invalid fields","code":"invalid_fields","errors":[{"field":"Email","error":"is not an e-mail address"}]}"#;
    let (api, _received) = serve_once("422 Unprocessable Entity", body).await;
    let error = api
        .create_customer(&NewCustomerRequest::default())
        .await
        .expect_err("422");
    let ApiError::Http {
        status,
        code,
        field_errors,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!((status, code.as_str()), (422, "invalid_fields"));
    assert_eq!(field_errors, [FieldError::new("Email", "is not an e-mail address")]);
}

#[tokio::test]
async fn a_taken_email_carries_the_existing_customer() {
    let body =
        r#"{"error":"e-mail already used","code":"duplicate_email","idClient":"a14e39ce-e29e-11e9-a8cb-08002751d198"}"#;
    let (api, _received) = serve_once("409 Conflict", body).await;
    let error = api
        .create_customer(&NewCustomerRequest::default())
        .await
        .expect_err("409");
    assert!(matches!(error, ApiError::Http { status: 409, id_client: Some(existing), .. } if existing == id()));
}

#[tokio::test]
async fn import_streams_the_file_and_reports_progress_and_bad_rows() {
    let body =
        r#"{"error":"invalid rows","code":"invalid_rows","errors":[{"row":2,"field":"Nom","error":"is required"}]}"#;
    let (api, received) = serve_once("422 Unprocessable Entity", body).await;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let content = "Nom,Prenom\n".to_string() + &"Bloggs,Jacquie\n".repeat(10_000);
    file.write_all(content.as_bytes()).expect("write");
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = reports.clone();
    let error = api
        .import_file(file.path(), ImportMode::Replace, true, move |p| {
            sink.lock().expect("lock").push(p)
        })
        .await
        .expect_err("422");
    assert!(
        matches!(&error, ApiError::Http { row_errors, .. } if row_errors == &[RowError { row: 2, field: "Nom".into(), error: "is required".into() }])
    );
    let received = received.await.expect("request");
    assert!(received
        .request_line
        .starts_with("POST /api/update_db?dry_run=true&mode=replace "));
    assert!(received.headers.contains(&format!("content-length: {}", content.len())));
    assert_eq!(received.body, content.as_bytes());
    let reports = reports.lock().expect("lock");
    let total = content.len() as u64;
    assert_eq!(reports.first(), Some(&UploadProgress { sent: 0, total }));
    assert_eq!(reports.last(), Some(&UploadProgress { sent: total, total }));
    assert!(reports.len() > 2, "sent in several chunks: {reports:?}");
}

#[tokio::test]
async fn an_import_skipping_invalid_rows_says_so_and_reads_the_skipped_ones() {
    let body = r#"{"created":1,"updated":0,"unchanged":0,"erased":0,"error_count":1,"skipped":1,"unmatchable":1,
        "errors":[{"row":2,"field":"Compte","error":"must be at most 10 characters"}]}"#;
    let (api, received) = serve_once("200 OK", body).await;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(b"Nom,Compte\nA,\nB,BKN1CST5300\n").expect("write");
    let request = ImportRequest {
        mode: ImportMode::Merge,
        dry_run: false,
        skip_invalid: true,
    };
    let summary = api.import_file_with(file.path(), request, |_| {}).await.expect("200");
    assert_eq!((summary.created, summary.skipped, summary.unmatchable), (1, 1, 1));
    assert_eq!(summary.errors[0].field, "Compte");
    assert!(summary
        .unmatchable_warning()
        .unwrap()
        .starts_with("1 row has neither IdClient nor Email"));
    let received = received.await.expect("request");
    assert!(
        received
            .request_line
            .starts_with("POST /api/update_db?dry_run=false&mode=merge&skip_invalid=true "),
        "{}",
        received.request_line
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_a_bad_body_is_a_decode_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let api = ApiClient::new(Url::parse(&format!("http://{address}")).expect("url"));
    assert!(api.health().await.expect_err("closed").is_unreachable());

    let (api, _received) = serve_once("200 OK", r#"{"carteFid": 33}"#).await;
    let error = api.credit_balance(&CustomerKey::Card(33)).await.expect_err("no Credit");
    assert!(matches!(error, ApiError::Decode(_)), "{error:?}");
}

#[test]
fn an_error_page_that_is_not_json_keeps_its_status() {
    let error = ApiError::from_response(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
    assert_eq!(error.status(), Some(502));
    assert_eq!(error.to_string(), "Bad Gateway: <html>bad gateway</html> (502)");
}

#[test]
fn lenient_shapes_accept_numbers_or_strings_for_ids() {
    let payment: ScheduledPayment = serde_json::from_value(
        json!({"id": 12, "IdClient": "x", "Montant": 36000, "Date": "2019-12-06", "status": "pending"}),
    )
    .expect("payment");
    assert_eq!((payment.id.as_str(), payment.montant), ("12", Cents(36000)));
    let entry: LedgerEntry =
        serde_json::from_value(json!({"at": "2019-01-01T09:00:00Z", "amount": -50, "cause": "import_adjustment"}))
            .expect("an entry without seq, balance or key");
    assert_eq!(
        (entry.amount, entry.cause.as_str(), entry.balance),
        (-50, "import_adjustment", None)
    );
    assert_eq!(CustomerKey::parse(" 33 "), Some(CustomerKey::Card(33)));
    assert_eq!(CustomerKey::parse(&id().to_string()), Some(CustomerKey::Id(id())));
    assert_eq!(CustomerKey::parse("nope"), None);
}

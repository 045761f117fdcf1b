//! The three attacks of issue 13 in a real browser (headless Chromium, as
//! [`super::browser`] drives it): a page served on another loopback port, opened by a
//! member of staff, tries to create a customer with huge credit through a `text/plain`
//! form, to erase the register through a multipart `mode=replace` import form, and to
//! move the BI ticket cursor through an `<img>`. The browser marks each request as
//! coming from another site; the CRM refuses all three, and the register and the
//! cursors are as they were.

use std::time::Duration;

use crm_tests::{spawn_app, TestApp};
use fantoccini::{Client, Locator};
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::browser::start_browser;

/// Serves `html` to every request on a free loopback port (the attacker's site);
/// answers its base URL.
async fn serve_attacker_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

fn attacker_html(crm: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html><body>
<h1>Gagnez un bon d'achat</h1>
<img id="pixel" src="{crm}/api/get_tickets/bi" width="1" height="1">
<form id="credit" method="post" enctype="text/plain" action="{crm}/api/create_customer">
  <input type="hidden" name='{{"Nom": "Pirate", "Credit": 9007199254740991, "x": "' value='"}}'>
  <button id="go-credit">Jouer</button>
</form>
<form id="erase" method="post" enctype="multipart/form-data" action="{crm}/api/update_db">
  <input type="hidden" name="mode" value="replace">
  <textarea name="file">[{{"Nom": "Seul client"}}]</textarea>
  <button id="go-erase">Rejouer</button>
</form>
</body></html>"#
    )
}

#[tokio::test]
async fn an_attacker_page_on_another_loopback_port_fails_all_three_attacks() {
    let Some((_driver, browser)) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let outcome = std::panic::AssertUnwindSafe(attacks(&app, &browser))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn body_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("its text")
}

async fn click_and_wait(browser: &Client, button: &str) {
    let before = browser.current_url().await.unwrap();
    browser
        .find(Locator::Id(button))
        .await
        .expect("the button")
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        if browser.current_url().await.unwrap() != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn attacks(app: &TestApp, browser: &Client) {
    for i in 0..3 {
        app.create_customer_ok(&json!({"Nom": format!("Client {i}")})).await;
    }
    let (status, _) = app
        .post_tickets(&json!({"origin": "magasin", "tickets": [
            {"id": 1, "date": "2019-10-09", "prix": 100}, {"id": 2, "date": "2019-10-09", "prix": 200}]}))
        .await;
    assert_eq!(status, 200);
    let attacker = serve_attacker_page(attacker_html(&app.address)).await;
    assert_ne!(attacker, app.address);

    // The <img> loads with the page.
    browser.goto(&attacker).await.expect("the attacker's page");
    let loaded: Value = browser
        .execute(
            "return new Promise(done => { const img = document.getElementById('pixel'); \
             if (img.complete) { done(true); } else { img.onload = img.onerror = () => done(true); } });",
            vec![],
        )
        .await
        .expect("the pixel settled");
    assert_eq!(loaded, Value::Bool(true));

    // The text/plain form.
    click_and_wait(browser, "go-credit").await;
    let answer = body_text(browser).await;
    assert!(answer.contains("cross_site_request"), "{answer}");

    // The multipart replace import.
    browser.goto(&attacker).await.unwrap();
    click_and_wait(browser, "go-erase").await;
    let answer = body_text(browser).await;
    assert!(answer.contains("cross_site_request"), "{answer}");

    // The register and the cursors are as they were.
    let customers = app.all_customers().await;
    let names: Vec<&str> = customers.iter().filter_map(|c| c["Nom"].as_str()).collect();
    assert_eq!(names, ["Client 0", "Client 1", "Client 2"]);
    assert!(customers.iter().all(|c| c["Credit"] == 0), "no credit was given");
    assert_eq!(app.get_tickets(Some("bi")).await.len(), 2, "the BI cursor did not move");
    assert_eq!(app.get_tickets(Some("promo")).await.len(), 2);
}

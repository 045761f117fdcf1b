//! The pages in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) opens the home page, pages, sorts, searches, opens a customer and
//! submits the import form.
//!
//! Skipped, with a message, only where chromedriver is not installed and `CI` is not
//! set; CI installs `chromium` and `chromium-driver`, so there it always runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crm_tests::{spawn_app, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver on a free loopback port, and the browser profile it uses; both go
/// away when dropped.
struct Driver {
    process: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts chromedriver and a headless Chromium session, or `None` when chromedriver
/// is absent outside CI.
async fn start_browser() -> Option<(Driver, Client)> {
    let Some(chromedriver) = on_path(&["chromedriver"]) else {
        assert!(!in_ci(), "CI must run the browser test: chromedriver is not installed");
        eprintln!("skipped: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]).expect("a Chromium browser");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let process = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("browser profile dir");
    let driver = Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
        profile,
    };
    let client = connect(&driver, &chromium).await;
    Some((driver, client))
}

async fn connect(driver: &Driver, chromium: &Path) -> Client {
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
            "--window-size=1280,900",
            format!("--user-data-dir={}", driver.profile.path().display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await;
        match attempt {
            Ok(client) => return client,
            // chromedriver takes a moment to listen.
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

async fn rows(browser: &Client) -> Vec<fantoccini::elements::Element> {
    browser.find_all(Locator::Css("tbody tr")).await.expect("rows")
}

async fn cell(browser: &Client, row: usize, column: usize) -> String {
    browser
        .find(Locator::Css(&format!(
            "tbody tr:nth-child({row}) > :nth-child({column})"
        )))
        .await
        .expect("cell")
        .text()
        .await
        .expect("text")
}

async fn total(browser: &Client) -> String {
    browser
        .find(Locator::Id("total"))
        .await
        .expect("total")
        .text()
        .await
        .expect("text")
}

/// Follows the link with exactly this text and waits for the new page.
async fn follow(browser: &Client, text: &str) {
    let before = browser.current_url().await.expect("url").to_string();
    browser
        .find(Locator::LinkText(text))
        .await
        .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
        .click()
        .await
        .expect("click");
    wait_for_url_change(browser, &before).await;
}

async fn wait_for_url_change(browser: &Client, before: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.current_url().await.expect("url").as_str() == before {
        assert!(Instant::now() < deadline, "the page did not change from {before}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .wait()
        .for_element(Locator::Css("body"))
        .await
        .expect("page loaded");
}

#[tokio::test]
async fn a_browser_searches_pages_sorts_opens_a_customer_and_submits_the_import_form() {
    let Some((_driver, browser)) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let outcome = std::panic::AssertUnwindSafe(walk_through(&app, &browser))
        .catch_unwind()
        .await;
    // Ends the browser whatever happened, then reports.
    let _ = browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn walk_through(app: &TestApp, browser: &Client) {
    app.create_customer_ok(&json!({"Nom": "<script>alert(1)</script>", "Prenom": "Eve", "Credit": 1}))
        .await;
    futures::future::join_all((1..=60).map(|i| async move {
        app.create_customer_ok(&json!({"Nom": format!("Browser-{i:03}"), "Prenom": "Élise",
            "email": format!("browser{i}@exemple.fr"), "Credit": i * 100}))
            .await
    }))
    .await;

    // The home page: 50 rows of 61, the hostile name shown as text and not run.
    browser.goto(&app.url("/")).await.expect("open /");
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/api",
        "/ redirects to /api"
    );
    assert_eq!(browser.title().await.unwrap(), "Clients · CRM");
    assert_eq!(rows(browser).await.len(), 50);
    assert_eq!(total(browser).await, "61 clients");
    assert_eq!(cell(browser, 1, 3).await, "<script>alert(1)</script>");
    assert!(browser.get_alert_text().await.is_err(), "no script ran");
    let first_row_id = cell(browser, 1, 2).await;

    // Next page, then back.
    follow(browser, "Suivant ›").await;
    assert_eq!(rows(browser).await.len(), 11);
    assert!(browser.find(Locator::LinkText("Suivant ›")).await.is_err(), "last page");
    follow(browser, "‹ Précédent").await;
    assert_eq!(rows(browser).await.len(), 50);
    assert_eq!(cell(browser, 1, 2).await, first_row_id);

    // Sorting by credit, then the other way (WebDriver reads no-break spaces as spaces).
    follow(browser, "Crédit").await;
    assert_eq!(cell(browser, 1, 6).await, "0,01 €");
    follow(browser, "Crédit ▲").await;
    assert_eq!(cell(browser, 1, 6).await, "60,00 €");

    // The search box, a plain GET form.
    let before = browser.current_url().await.unwrap().to_string();
    browser
        .find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys("browser-00")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form[role=search] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url_change(browser, &before).await;
    assert_eq!(rows(browser).await.len(), 9);
    assert_eq!(total(browser).await, "9 clients trouvés pour « browser-00 »");
    assert_eq!(cell(browser, 1, 6).await, "9,00 €", "the search keeps the sort");

    // A customer's page, from its row.
    let id = cell(browser, 1, 2).await;
    follow(browser, &id).await;
    let heading = browser.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, "Élise Browser-009");
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        format!("/api/customers/{id}")
    );

    // The import form: a file, replace, dry run; the browser posts them as multipart.
    follow(browser, "Importer clients").await;
    let file = tempfile::Builder::new().suffix(".csv").tempfile().expect("file");
    std::fs::write(file.path(), "Nom,Prenom,Email\nNouveau,Client,nouveau@exemple.fr\n").expect("write");
    browser
        .find(Locator::Id("file"))
        .await
        .unwrap()
        .send_keys(&file.path().display().to_string())
        .await
        .unwrap();
    browser
        .find(Locator::Id("mode-replace"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Id("dry_run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let form: Value = browser
        .execute(
            "const form = document.querySelector('form[action=\"/api/update_db\"]');
             return {
               method: form.method, enctype: form.enctype,
               action: new URL(form.action).pathname,
               fields: [...new FormData(form)].map(([k, v]) => [k, v instanceof File ? 'file:' + v.name : v]),
             };",
            vec![],
        )
        .await
        .expect("read the form");
    let file_name = file.path().file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        form,
        json!({"method": "post", "enctype": "multipart/form-data", "action": "/api/update_db",
            "fields": [["redirect", "1"], ["mode", "replace"], ["dry_run", "true"], ["file", format!("file:{file_name}")]]})
    );
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The answer may come back at the same URL: wait for the form to go instead.
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.find(Locator::Id("mode-replace")).await.is_ok() {
        assert!(Instant::now() < deadline, "the form was not submitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let landed = browser.current_url().await.unwrap();
    let source = browser.source().await.unwrap();
    // The dry run's summary on the table, nothing written (a replace would have erased
    // the 61 customers absent from the file).
    assert_eq!(landed.path(), "/api", "{source}");
    assert!(source.contains("Simulation, rien n"), "{source}");
    assert_eq!(app.all_customers().await.len(), 61);
}

//! The pages in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) opens the home page, pages, sorts, searches, opens a customer and
//! submits the import form; at 1280 px it sees every column of the table, on a phone
//! the table scrolls in its frame; it creates, edits, gives a card to a customer and
//! asks for credit through the forms, and a form posted from another site is refused.
//!
//! Skipped only where chromedriver is not installed and `CI` is not set, with a
//! `SKIPPED` line that a plain `cargo test` shows (see [`say_skipped`]); CI installs
//! `chromium` and `chromium-driver`, so there it always runs, and fails without them.

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
pub(crate) struct Driver {
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

/// Says on the real standard error that the browser test did not run. libtest captures
/// what `eprintln!` prints and shows it only for a failing test, so a skip would pass
/// unnoticed; a write through the `std::io::stderr()` handle goes past that capture and
/// shows in `cargo test`'s output, beside the test's `ok`.
fn say_skipped() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nSKIPPED the browser test (browser::a_browser_searches_...): chromedriver is not on PATH; \
         apt-get install chromium chromium-driver to run it (with CI set, it fails instead)"
    );
}

/// Starts chromedriver and a headless Chromium session, or `None` when chromedriver
/// is absent outside CI.
pub(crate) async fn start_browser() -> Option<(Driver, Client)> {
    let Some(chromedriver) = on_path(&["chromedriver"]) else {
        assert!(!in_ci(), "CI must run the browser test: chromedriver is not installed");
        say_skipped();
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

/// The full `IdClient` of a row: the `title` of its shortened link.
async fn row_id(browser: &Client, row: usize) -> String {
    browser
        .find(Locator::Css(&format!("tbody tr:nth-child({row}) th.id a")))
        .await
        .expect("id link")
        .attr("title")
        .await
        .expect("title")
        .expect("the full id")
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
    let first_row_id = row_id(browser, 1).await;
    assert_eq!(
        cell(browser, 1, 2).await,
        format!("{}…", &first_row_id[..8]),
        "the id, shortened"
    );

    // Next page, then back.
    follow(browser, "Suivant ›").await;
    assert_eq!(rows(browser).await.len(), 11);
    assert!(browser.find(Locator::LinkText("Suivant ›")).await.is_err(), "last page");
    follow(browser, "‹ Précédent").await;
    assert_eq!(rows(browser).await.len(), 50);
    assert_eq!(row_id(browser, 1).await, first_row_id);

    // Sorting by credit, then the other way (WebDriver reads no-break spaces as spaces).
    follow(browser, "Crédit").await;
    assert_eq!(cell(browser, 1, 7).await, "0,01 €");
    follow(browser, "Crédit ▲").await;
    assert_eq!(cell(browser, 1, 7).await, "60,00 €");

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
    assert_eq!(cell(browser, 1, 7).await, "9,00 €", "the search keeps the sort");

    // A customer's page, from its row.
    let id = row_id(browser, 1).await;
    follow(browser, &format!("{}…", &id[..8])).await;
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

#[tokio::test]
async fn a_browser_sees_every_column_at_1280_px_and_creates_edits_and_credits_a_customer() {
    let Some((_driver, browser)) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let outcome = std::panic::AssertUnwindSafe(fit_and_forms(&app, &browser))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The width of the page's viewport, scroll bar left out.
async fn viewport_width(browser: &Client) -> f64 {
    browser
        .execute("return document.documentElement.clientWidth;", vec![])
        .await
        .expect("viewport width")
        .as_f64()
        .expect("a number")
}

/// Whether the table's frame scrolls sideways, and whether the page itself does.
async fn sideways_scrolling(browser: &Client) -> (bool, bool) {
    let answer = browser
        .execute(
            "const frame = document.querySelector('.table-frame');
             const page = document.documentElement;
             return [frame.scrollWidth > frame.clientWidth + 1, page.scrollWidth > page.clientWidth + 1];",
            vec![],
        )
        .await
        .expect("scroll widths");
    (answer[0].as_bool().unwrap(), answer[1].as_bool().unwrap())
}

/// Clicks `button` (a CSS selector) and waits for the page the form leads to.
async fn submit(browser: &Client, button: &str) {
    let before = browser.current_url().await.expect("url").to_string();
    browser
        .find(Locator::Css(button))
        .await
        .unwrap_or_else(|e| panic!("no {button}: {e}"))
        .click()
        .await
        .expect("click");
    wait_for_url_change(browser, &before).await;
}

/// Types `text` into the field `id`, replacing what it held.
async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn fit_and_forms(app: &TestApp, browser: &Client) {
    // Long values in every column, as the table meets them.
    let long = app
        .create_customer_ok(
            &json!({"Nom": "de La Rochefoucauld-Montmorency", "Prenom": "Marie-Christine-Éléonore",
            "email": "marie-christine.delarochefoucauld@entreprise-exemple.fr",
            "phone": "+33 (0)1 23 45 67 89 poste 1234", "Credit": 1234567, "Compte": "FR76300040",
            "CarteFid": 987654}),
        )
        .await;
    let (status, body) = app
        .allow_credit(&json!({"idClient": long, "Montant": 123456, "Date": "2031-12-06"}))
        .await;
    assert_eq!(status, 200, "{body}");
    for i in 1..=5 {
        app.create_customer_ok(&json!({"Nom": format!("Martin-{i}"), "Prenom": "Élise",
            "email": format!("elise.martin{i}@exemple.fr"), "phone": "06 11 21 31 41", "Credit": i * 1234}))
            .await;
    }

    // At 1280 × 800 every column is in view: the last one ends inside the window, and
    // neither the frame nor the page scrolls sideways.
    browser.set_window_size(1280, 800).await.expect("window size");
    browser.goto(&app.url("/api")).await.expect("open /api");
    let viewport = viewport_width(browser).await;
    assert!((1200.0..=1280.0).contains(&viewport), "viewport {viewport}");
    let headers = browser.find_all(Locator::Css("thead th")).await.unwrap();
    assert_eq!(headers.len(), 13);
    assert_eq!(headers[5].text().await.unwrap(), "Téléphone");
    let (x, _, width, _) = headers.last().unwrap().rectangle().await.unwrap();
    assert_eq!(headers.last().unwrap().text().await.unwrap(), "Panier moyen");
    assert!(
        x + width <= viewport,
        "the last column ends at {} in a {viewport} px viewport",
        x + width
    );
    for cell in browser.find_all(Locator::Css("tbody tr > :last-child")).await.unwrap() {
        let (x, _, width, _) = cell.rectangle().await.unwrap();
        assert!(x + width <= viewport, "a last cell ends at {}", x + width);
    }
    assert_eq!(
        sideways_scrolling(browser).await,
        (false, false),
        "nothing scrolls at 1280 px"
    );
    // The long row: a short id (the whole one in its title), long texts cut but whole in
    // their titles, the phone shown.
    let row = browser
        .find(Locator::XPath(
            "//tbody/tr[.//a[@title][starts-with(@href, '/api/customers/')]][1]",
        ))
        .await
        .unwrap();
    let link = row.find(Locator::Css("th.id a")).await.unwrap();
    assert_eq!(link.attr("title").await.unwrap().as_deref(), Some(long.as_str()));
    assert_eq!(link.text().await.unwrap(), format!("{}…", &long[..8]));
    let email = row.find(Locator::Css("td:nth-child(5)")).await.unwrap();
    assert_eq!(
        email.attr("title").await.unwrap().as_deref(),
        Some("marie-christine.delarochefoucauld@entreprise-exemple.fr")
    );
    let phone = row.find(Locator::Css("td:nth-child(6)")).await.unwrap();
    assert_eq!(
        phone.attr("title").await.unwrap().as_deref(),
        Some("+33 (0)1 23 45 67 89 poste 1234")
    );

    // On a phone the table scrolls inside its frame, the page does not.
    browser.set_window_size(390, 844).await.expect("window size");
    browser.refresh().await.expect("reload");
    assert_eq!(
        sideways_scrolling(browser).await,
        (true, false),
        "the frame scrolls on a phone"
    );
    browser.set_window_size(1280, 800).await.expect("window size");

    // "Nouveau client": an e-mail the server refuses comes back next to its field, the
    // other values kept; corrected, the customer is created and shown.
    browser.goto(&app.url("/api")).await.unwrap();
    browser
        .find(Locator::Css(".toolbar a[href='/api/customers/new']"))
        .await
        .expect("the link from the table")
        .click()
        .await
        .unwrap();
    browser.wait().for_element(Locator::Id("f-Nom")).await.unwrap();
    type_into(browser, "f-Nom", "Navigateur").await;
    type_into(browser, "f-Prenom", "Nina").await;
    type_into(browser, "f-Email", "x@y").await;
    type_into(browser, "f-Phone", "06 01 02 03 04").await;
    browser
        .find(Locator::Id("f-Sexe"))
        .await
        .unwrap()
        .select_by_value("f")
        .await
        .unwrap();
    submit(browser, "form.customer-form button[type=submit]").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/api/customers");
    assert!(text_of(browser, "#f-Email-error")
        .await
        .contains("n'est pas une adresse e-mail"));
    let kept = browser
        .find(Locator::Id("f-Nom"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("Navigateur"));
    type_into(browser, "f-Email", "nina@exemple.fr").await;
    submit(browser, "form.customer-form button[type=submit]").await;
    let url = browser.current_url().await.unwrap();
    let id = url
        .path()
        .strip_prefix("/api/customers/")
        .expect("the new customer's page")
        .to_string();
    assert_eq!(url.query(), Some("notice=created"));
    assert_eq!(text_of(browser, "h1").await, "Nina Navigateur");
    assert!(text_of(browser, "#notice").await.starts_with("Client créé"));
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (
            customer["Email"].as_str(),
            customer["Phone"].as_str(),
            customer["Sexe"].as_str()
        ),
        (Some("nina@exemple.fr"), Some("06 01 02 03 04"), Some("f"))
    );

    // Edit: the phone changes, the rest stays.
    follow(browser, "Modifier le client").await;
    type_into(browser, "f-Phone", "07 99 99 99 99").await;
    submit(browser, "form.customer-form button[type=submit]").await;
    assert_eq!(text_of(browser, "#notice").await, "Modifications enregistrées.");
    let (_, customer) = app.customer(&id).await;
    assert_eq!(
        (customer["Phone"].as_str(), customer["Email"].as_str()),
        (Some("07 99 99 99 99"), Some("nina@exemple.fr"))
    );

    // "Attribuer une carte".
    submit(browser, &format!("form[action='/api/customers/{id}/card'] button")).await;
    let card = app.customer(&id).await.1["CarteFid"].as_u64().expect("a card");
    assert_eq!(
        text_of(browser, "#notice").await,
        format!("Carte de fidélité n° {card} attribuée.")
    );

    // "Demande de crédit": 360,00 € due on 6 December 2031.
    type_into(browser, "credit-montant", "360,00").await;
    browser
        .execute("document.getElementById('credit-date').value = '2031-12-06';", vec![])
        .await
        .expect("set the date field");
    submit(browser, ".credit-form button[type=submit]").await;
    assert_eq!(
        text_of(browser, "#notice").await,
        "Crédit accordé : un paiement différé de 360,00 € est programmé le 06/12/2031."
    );
    let (_, payments) = app.customer_payments(&id, "").await;
    assert_eq!(payments["items"][0]["Montant"], 36000);

    // Refused once the payment service refuses a payment; then the refusals are reset.
    let payment = payments["items"][0]["id"].to_string();
    app.payment_result(&payment, &json!({"status": "ERROR"})).await;
    browser.refresh().await.unwrap();
    type_into(browser, "credit-montant", "10").await;
    browser
        .execute("document.getElementById('credit-date').value = '2031-12-24';", vec![])
        .await
        .unwrap();
    submit(browser, ".credit-form button[type=submit]").await;
    assert!(text_of(browser, "#notice")
        .await
        .starts_with("Crédit refusé : ce client a 1 refus de paiement"));
    submit(
        browser,
        &format!("form[action='/api/customers/{id}/refusals/reset'] button"),
    )
    .await;
    assert!(text_of(browser, "#notice")
        .await
        .starts_with("Refus de paiement remis à zéro"));
    assert_eq!(app.customer(&id).await.1["NbRefus"], 0);

    // A form on another site's page, posting to the CRM: the browser says so, and the
    // CRM refuses it.
    let other = app.create_customer_ok(&json!({"Nom": "Cible"})).await;
    let attack = format!(
        "data:text/html,<form method=post action='{}'><button id=go>Gagner</button></form>",
        app.url(&format!("/api/customers/{other}/card"))
    );
    browser.goto(&attack).await.expect("the other site's page");
    submit(browser, "#go").await;
    assert_eq!(text_of(browser, "h1").await, "Formulaire refusé");
    assert!(text_of(browser, ".banner").await.contains("autre site"));
    assert_eq!(
        app.customer(&other).await.1["CarteFid"],
        Value::Null,
        "no card was given"
    );
}

//! End-to-end test harness: starts the real server on `127.0.0.1:0` with a temporary
//! data directory and drives it over HTTP, one helper method per endpoint (after
//! zero2prod's `spawn_app`). [`generate`] makes import files of any size.
//!
//! The suite runs on the embedded sled store, or with `CRM_TEST_STORE=postgres` on the
//! PostgreSQL store, each server on a new database of its own made from
//! `CRM_TEST_DATABASE_URL` (a role that may create databases) and dropped after: see
//! [`on_postgres`] and [`TestDatabase`].

pub mod generate;
pub mod upstream;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crm_server::store::GuardedStore;
use crm_server::Config;
use serde_json::Value;
use tokio::sync::oneshot;

/// A server running inside the test process, stopped when dropped.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// The server's database when the suite runs on PostgreSQL.
    pub database: Option<std::sync::Arc<TestDatabase>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), crm_server::ServerError>>>,
}

/// Whether this run of the suite is on the PostgreSQL store (`CRM_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("CRM_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// Says why a test that only the embedded store can run is skipped on PostgreSQL, and
/// answers whether it is: `if sled_only("...") { return; }`.
pub fn sled_only(why: &str) -> bool {
    if on_postgres() {
        use std::io::Write;
        // Past the harness's capture, so that the run shows what it did not test.
        let _ = writeln!(std::io::stderr(), "SKIPPED on PostgreSQL: {why}");
        return true;
    }
    false
}

/// A new, empty PostgreSQL database made for one test (or for the servers of one test),
/// dropped, connections and all, when the last handle goes.
pub struct TestDatabase {
    /// The URL of the database, for `--database`.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Makes the database for `test` when `CRM_TEST_DATABASE_URL` is set; without it,
    /// `None`, said on stderr, outside CI (with `CI` set, it fails: CI cannot skip it).
    pub async fn create_for(test: &str) -> Option<TestDatabase> {
        if std::env::var_os("CRM_TEST_DATABASE_URL").is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CRM_TEST_DATABASE_URL is not set, and CI is: {test} cannot be skipped"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: CRM_TEST_DATABASE_URL is not set (postgres://USER:PASS@HOST/postgres, a role with \
                 CREATEDB)"
            );
            return None;
        }
        Some(TestDatabase::create().await)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the database from `CRM_TEST_DATABASE_URL`; panics without it (a run on
    /// PostgreSQL was asked for).
    pub async fn create() -> TestDatabase {
        use sqlx::Connection;
        let admin_url = std::env::var("CRM_TEST_DATABASE_URL").expect(
            "CRM_TEST_STORE=postgres needs CRM_TEST_DATABASE_URL (postgres://USER:PASS@HOST/postgres, a role with \
             CREATEDB; .ci/run sets it)",
        );
        let name = format!("crm_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connecting to CRM_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url).expect("CRM_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread with
        // a runtime of its own drops the database.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(std::io::Error::other)?;
                // A server's connection still opening when FORCE terminates the others can
                // make the drop fail (42501): tried again a moment later.
                let mut attempts = 0;
                loop {
                    match sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                    {
                        Ok(_) => return Ok::<_, std::io::Error>(()),
                        Err(e) if attempts >= 20 => return Err(std::io::Error::other(e)),
                        Err(_) => attempts += 1,
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        });
        if let Ok(Err(e)) = dropping.join() {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// Starts a server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on an existing data directory (one a command-line import filled):
/// always the sled store.
pub async fn spawn_app_on(data_dir: tempfile::TempDir) -> TestApp {
    start(data_dir, None, |_| {}).await
}

/// Starts a server after `configure` has adjusted its settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = match on_postgres() {
        true => Some(std::sync::Arc::new(TestDatabase::create().await)),
        false => None,
    };
    start(tempfile::tempdir().expect("temporary data dir"), database, configure).await
}

/// Starts a second server on the store of `app` (its database: PostgreSQL only).
pub async fn spawn_app_beside(app: &TestApp) -> TestApp {
    spawn_app_beside_with(app, |_| {}).await
}

/// Starts a second server on the store of `app` after `configure` has adjusted its
/// settings.
pub async fn spawn_app_beside_with(app: &TestApp, configure: impl FnOnce(&mut Config)) -> TestApp {
    let database = app.database.clone().expect("a second server shares a database");
    start(
        tempfile::tempdir().expect("temporary data dir"),
        Some(database),
        configure,
    )
    .await
}

async fn start(
    data_dir: tempfile::TempDir,
    database: Option<std::sync::Arc<TestDatabase>>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::new(data_dir.path());
    config.cache_bytes = 16 * 1024 * 1024;
    // The store the server binary opens, with a reserve small enough that a test
    // writes little more than its own data.
    config.disk_reserve = 1024 * 1024;
    if let Some(database) = &database {
        config.database = Some(crm_server::config::Database {
            url: database.url.clone(),
            pool: 8,
        });
    }
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let (shutdown, stop) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stop.await;
    };
    let server = match &config.database {
        Some(db) => {
            let store = crm_server::store::postgres::PgStore::open(&db.url, db.pool)
                .await
                .expect("open the PostgreSQL store");
            tokio::spawn(crm_server::serve(listener, store, config, stopped))
        }
        None => {
            let store = open_store(&config).await;
            tokio::spawn(crm_server::serve(listener, store, config, stopped))
        }
    };
    TestApp {
        address,
        // Redirects are answers to check, not to follow.
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        data_dir,
        database,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// Opens the store as the server binary does (guarded against a full disk), waiting a
/// little for a previous server on the same directory to let go of it (its last
/// connection tasks may still be ending).
async fn open_store(config: &Config) -> GuardedStore {
    for _ in 0..100 {
        match GuardedStore::open(config) {
            Ok(store) => return store,
            Err(e) if e.to_string().contains("lock") => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Err(e) => panic!("open store: {e}"),
        }
    }
    panic!("the data directory stayed locked");
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server gracefully and waits for its final flush.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("clean shutdown");
        }
    }

    /// Stops the server gracefully and hands back its data directory, to look into or
    /// to start another server on ([`spawn_app_on`]).
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        self.shut_down().await;
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temporary dir"))
    }

    /// Stops the server gracefully and starts a new one on the same store (data
    /// directory or database).
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Stops the server gracefully and starts a new one on the same store after
    /// `configure` has adjusted its settings.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Config)) -> TestApp {
        self.shut_down().await;
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temporary dir"));
        start(data_dir, self.database.take(), configure).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// POSTs raw bytes with no `Content-Type`, as older clients do.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.expect("request")
    }

    /// `POST /api/create_customer`; answers the status and body.
    pub async fn create_customer(&self, body: &Value) -> (u16, Value) {
        status_and_json(self.post_json("/api/create_customer", body).await).await
    }

    /// Creates a customer that must be accepted; answers its `IdClient`.
    pub async fn create_customer_ok(&self, body: &Value) -> String {
        let (status, answer) = self.create_customer(body).await;
        assert_eq!(status, 200, "create_customer refused: {answer}");
        answer["idClient"].as_str().expect("idClient").to_string()
    }

    /// `GET /api/data/<id>`.
    pub async fn customer_as_list(&self, id_client: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/data/{id_client}")).await).await
    }

    /// `GET /api/v1/customers/<id>`.
    pub async fn customer(&self, id_client: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/v1/customers/{id_client}")).await).await
    }

    /// `GET /api/v1/customers?<query>`.
    pub async fn list_customers(&self, query: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/v1/customers?{query}")).await).await
    }

    /// `GET /api/data`, the whole streamed array.
    pub async fn all_customers(&self) -> Vec<Value> {
        let (status, body) = status_and_json(self.get("/api/data").await).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("array").clone()
    }

    /// `PATCH /api/v1/customers/<id>`.
    pub async fn patch_customer(&self, id_client: &str, body: &Value) -> (u16, Value) {
        status_and_json(self.patch_json(&format!("/api/v1/customers/{id_client}"), body).await).await
    }

    /// `DELETE /api/v1/customers/<id>`.
    pub async fn erase_customer(&self, id_client: &str) -> (u16, Value) {
        status_and_json(self.delete(&format!("/api/v1/customers/{id_client}")).await).await
    }

    /// `GET` of an HTML page, redirects not followed: its status, `Content-Type` and body.
    pub async fn page(&self, path: &str) -> (u16, String, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, response.text().await.expect("body"))
    }

    /// `GET /api?<query>`, the customer table: status and HTML.
    pub async fn home_page(&self, query: &str) -> (u16, String) {
        let (status, _, body) = self.page(&format!("/api?{query}")).await;
        (status, body)
    }

    /// `GET /api/update_db`, the import form: status and HTML.
    pub async fn import_page(&self) -> (u16, String) {
        let (status, _, body) = self.page("/api/update_db").await;
        (status, body)
    }

    /// `GET /api/customers/<id>`, the customer page: status and HTML.
    pub async fn customer_page(&self, id_client: &str) -> (u16, String) {
        let (status, _, body) = self.page(&format!("/api/customers/{id_client}")).await;
        (status, body)
    }

    /// `POST /api/v1/customers` that must be accepted; answers the customer object.
    pub async fn create_v1_ok(&self, body: &Value) -> Value {
        let (status, customer) = status_and_json(self.post_json("/api/v1/customers", body).await).await;
        assert_eq!(status, 201, "create refused: {customer}");
        customer
    }

    /// `POST /api/v1/customers/<id>/card`.
    pub async fn issue_card(&self, id_client: &str) -> (u16, Value) {
        status_and_json(self.post_raw(&format!("/api/v1/customers/{id_client}/card"), "").await).await
    }

    /// `GET /api/v1/customers/<id>/ledger?<query>`.
    pub async fn ledger(&self, id_client: &str, query: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/v1/customers/{id_client}/ledger?{query}")).await).await
    }

    /// Every item of a paged list, following `next_cursor` with pages of `limit`.
    pub async fn all_pages(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = status_and_json(self.get(&url).await).await;
            assert_eq!(status, 200, "{url}: {page}");
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    /// `POST /api/credit`.
    pub async fn credit(&self, body: &Value) -> (u16, Value) {
        status_and_json(self.post_json("/api/credit", body).await).await
    }

    /// `POST /api/credit` with an `Idempotency-Key` header.
    pub async fn credit_with_key(&self, body: &Value, key: &str) -> (u16, Value) {
        let request = self
            .client
            .post(self.url("/api/credit"))
            .header("Idempotency-Key", key)
            .json(body);
        status_and_json(request.send().await.expect("request")).await
    }

    /// `GET /api/credit/<card>`.
    pub async fn credit_of(&self, card: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/credit/{card}")).await).await
    }

    /// `POST /api/v1/tickets`.
    pub async fn post_tickets(&self, body: &Value) -> (u16, Value) {
        status_and_json(self.post_json("/api/v1/tickets", body).await).await
    }

    /// `GET /api/v1/tickets?<query>`.
    pub async fn tickets(&self, query: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/v1/tickets?{query}")).await).await
    }

    /// `GET /api/v1/customers/<id>/tickets?<query>`.
    pub async fn customer_tickets(&self, id_client: &str, query: &str) -> (u16, Value) {
        status_and_json(
            self.get(&format!("/api/v1/customers/{id_client}/tickets?{query}"))
                .await,
        )
        .await
    }

    /// `GET /api/get_tickets` or `GET /api/get_tickets/<consumer>`: the tickets array.
    pub async fn get_tickets(&self, consumer: Option<&str>) -> Vec<Value> {
        let path = consumer.map_or("/api/get_tickets".to_string(), |c| format!("/api/get_tickets/{c}"));
        let (status, body) = status_and_json(self.get(&path).await).await;
        assert_eq!(status, 200, "{body}");
        body["tickets"].as_array().expect("tickets array").clone()
    }

    /// `POST /api/allow_credit`.
    pub async fn allow_credit(&self, body: &Value) -> (u16, Value) {
        status_and_json(self.post_json("/api/allow_credit", body).await).await
    }

    /// `GET /api/v1/customers/<id>/payments?<query>`.
    pub async fn customer_payments(&self, id_client: &str, query: &str) -> (u16, Value) {
        status_and_json(
            self.get(&format!("/api/v1/customers/{id_client}/payments?{query}"))
                .await,
        )
        .await
    }

    /// `GET /api/v1/payments?<query>`.
    pub async fn payments_due(&self, query: &str) -> (u16, Value) {
        status_and_json(self.get(&format!("/api/v1/payments?{query}")).await).await
    }

    /// `POST /api/v1/payments/<id>/result`.
    pub async fn payment_result(&self, id: &str, body: &Value) -> (u16, Value) {
        status_and_json(self.post_json(&format!("/api/v1/payments/{id}/result"), body).await).await
    }

    /// What the older deployments' scheduler sends: `POST <path>` with `{}`, no
    /// `Content-Type`, and the doubled leading slash its URLs have. Answers the summary.
    pub async fn scheduler_call(&self, path: &str) -> Value {
        let (status, body) = status_and_json(self.post_raw(&format!("/{path}"), "{}").await).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// `POST /api/credit` `{}`: pull the shops' tickets.
    pub async fn pull_shops(&self) -> Value {
        self.scheduler_call("/api/credit").await
    }

    /// `POST /api/credit_ecommerce` `{}`: pull the web shop's tickets.
    pub async fn pull_web_shop(&self) -> Value {
        self.scheduler_call("/api/credit_ecommerce").await
    }

    /// `POST /api/paiement` `{}`: send the due payments.
    pub async fn run_payments(&self) -> Value {
        self.scheduler_call("/api/paiement").await
    }

    /// `POST /api/v1/customers/<id>/refusals/reset`.
    pub async fn reset_refusals(&self, id_client: &str) -> (u16, Value) {
        status_and_json(
            self.post_raw(&format!("/api/v1/customers/{id_client}/refusals/reset"), "")
                .await,
        )
        .await
    }

    /// `POST /api/update_db?<query>` with a raw body and, if given, a `Content-Type`.
    pub async fn import(
        &self,
        query: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url(&format!("/api/update_db?{query}")))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        status_and_json(request.send().await.expect("request")).await
    }

    /// `POST /api/update_db?<query>` with a multipart form, as the import page sends it.
    pub async fn import_form(&self, query: &str, form: reqwest::multipart::Form) -> (u16, Value) {
        let request = self
            .client
            .post(self.url(&format!("/api/update_db?{query}")))
            .multipart(form);
        status_and_json(request.send().await.expect("request")).await
    }

    /// `GET /healthz`: the live customer count.
    pub async fn customer_count(&self) -> u64 {
        let (status, body) = status_and_json(self.get("/healthz").await).await;
        assert_eq!(status, 200, "{body}");
        body["customers"].as_u64().expect("customers")
    }

    /// `POST /api/customer/email`.
    pub async fn customer_by_email(&self, email: &str) -> (u16, Value) {
        status_and_json(
            self.post_json("/api/customer/email", &serde_json::json!({ "email": email }))
                .await,
        )
        .await
    }

    /// `POST /api/update_db` with a multipart form as the import page sends it (with
    /// `redirect=1` among its fields, the answer is a page or a redirect): the status,
    /// the `Location` header if any, and the body.
    pub async fn import_form_page(&self, form: reqwest::multipart::Form) -> (u16, Option<String>, String) {
        let response = self
            .client
            .post(self.url("/api/update_db"))
            .multipart(form)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, location, response.text().await.expect("body"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

/// The status and JSON body of an answer (panics on a body that is not JSON: every
/// `/api` answer must be JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts an error answer: its status, and the contract's `{"error", "code"}` body.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status, expected_status, "unexpected status, body {body}");
    assert_eq!(body["code"], expected_code, "unexpected code in {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error message in {body}"
    );
}

/// A server in its own process (for crash tests), killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub address: String,
}

impl ServerProcess {
    /// Starts `binary --addr 127.0.0.1:0 --data <dir>` and waits until its store is
    /// open (`/healthz` answers `200`).
    pub fn start(binary: &Path, data_dir: &Path) -> ServerProcess {
        ServerProcess::start_with_args(binary, data_dir, &[])
    }

    /// Starts `binary --addr 127.0.0.1:0 --data <dir>` and waits for its URL line only
    /// (printed once it listens; it answers `503` until its store is open).
    pub fn start_opening(binary: &Path, data_dir: &Path) -> ServerProcess {
        ServerProcess::spawn(binary, data_dir, &[], None)
    }

    /// [`ServerProcess::start`] with its log (stderr, `RUST_LOG=crm_server=info`)
    /// written to the file `log`, as a service manager would.
    pub fn start_logging_to(binary: &Path, data_dir: &Path, log: &Path) -> ServerProcess {
        let file = std::fs::File::create(log).expect("create the log file");
        ServerProcess::spawn(binary, data_dir, &[], Some(file)).wait_until_open()
    }

    fn spawn(binary: &Path, data_dir: &Path, args: &[&str], log: Option<std::fs::File>) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        let mut command = Command::new(binary);
        command
            .args(["--addr", "127.0.0.1:0", "--data"])
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped());
        match log {
            Some(file) => command.env("RUST_LOG", "crm_server=info").stderr(file),
            None => command.stderr(Stdio::null()),
        };
        let mut child = command.spawn().expect("start crm-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read URL line");
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("the server did not start (it printed {line:?})"))
            .to_string();
        ServerProcess { child, address }
    }

    /// `GET /healthz` over a plain blocking socket: the status (0 when no answer came)
    /// and the body.
    pub fn health(&self) -> (u16, String) {
        self.get("/healthz")
    }

    /// `GET path` over a plain blocking socket: the status (0 when no answer came) and
    /// the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let host = self.address.trim_start_matches("http://");
        let answer = (|| {
            let mut stream = std::net::TcpStream::connect(host)?;
            stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok::<_, std::io::Error>(text)
        })()
        .unwrap_or_default();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// [`ServerProcess::start`] with more command-line arguments; waits until the
    /// store is open, and fails at once if the server stops first.
    pub fn start_with_args(binary: &Path, data_dir: &Path, args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(binary, data_dir, args, None).wait_until_open()
    }

    /// Waits until `/healthz` answers `200`; fails at once if the server stops first.
    fn wait_until_open(mut self) -> Self {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while self.health().0 != 200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server stopped before its store was open: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never opened its store"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "no exit 30 s after SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

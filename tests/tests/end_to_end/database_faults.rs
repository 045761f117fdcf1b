//! The database restarted under load (PostgreSQL only): writes meanwhile are answered
//! `503` with `Retry-After`, never another `5xx`; the same server takes writes again once
//! the database is back, without a restart of its own; and every acknowledged write is
//! there afterwards.
//!
//! The test restarts a private cluster of its own (initdb on a free port, as the
//! `postgres` user), not the cluster the other tests share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crm_tests::{on_postgres, spawn_app_with, status_and_json};
use serde_json::json;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster in a temporary directory, stopped when dropped.
struct PrivateCluster {
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(command: &str) {
    let status = Command::new("su")
        .args(["postgres", "-c", command])
        .status()
        .expect("run su postgres");
    assert!(status.success(), "as postgres: {command}");
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let dir = tempfile::tempdir().expect("cluster dir");
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = Self::data_of(dir.path());
        as_postgres(&format!(
            "{PG_BIN}/initdb -D {} -A trust -U postgres --no-sync >/dev/null",
            data.display()
        ));
        let cluster = PrivateCluster { dir, port };
        cluster.pg_ctl("start");
        cluster
    }

    fn data_of(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    fn pg_ctl(&self, action: &str) {
        let data = Self::data_of(self.dir.path());
        as_postgres(&format!(
            "{PG_BIN}/pg_ctl -D {data} -w -m fast -l {dir}/log -o '-p {port} -k {dir} -c listen_addresses=127.0.0.1 \
             -c fsync=off' {action} >/dev/null",
            data = data.display(),
            dir = self.dir.path().display(),
            port = self.port,
        ));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = Self::data_of(self.dir.path());
        let _ = Command::new("su")
            .args([
                "postgres",
                "-c",
                &format!(
                    "{PG_BIN}/pg_ctl -D {} -m immediate stop >/dev/null 2>&1",
                    data.display()
                ),
            ])
            .status();
    }
}

#[tokio::test]
async fn a_database_restarted_under_load_gives_503s_then_the_server_takes_writes_again() {
    if !on_postgres() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED on sled: a PostgreSQL restart");
        return;
    }
    let cluster = PrivateCluster::start();
    let url = cluster.url();
    let app = spawn_app_with(move |config| {
        config.database = Some(crm_server::config::Database { url, pool: 8 });
    })
    .await;
    app.create_v1_ok(&json!({"Nom": "Before"})).await;

    let writing = async {
        let mut acknowledged = Vec::new();
        let mut unavailable = 0;
        let started = Instant::now();
        let mut n = 0;
        // Writes until the database has been back a while: 503s first, then 200s again.
        while started.elapsed() < Duration::from_secs(60) {
            n += 1;
            let response = app
                .client
                .post(app.url("/api/v1/customers"))
                .json(&json!({"Nom": format!("Load {n}")}))
                .send()
                .await
                .expect("request");
            let retry_after = response.headers().get("retry-after").is_some();
            let (status, body) = status_and_json(response).await;
            match status {
                201 | 200 => {
                    acknowledged.push(body["IdClient"].as_str().expect("IdClient").to_string());
                    if unavailable > 0 && acknowledged.len() > 20 {
                        break;
                    }
                }
                503 => {
                    assert!(retry_after, "a 503 says when to retry: {body}");
                    unavailable += 1;
                }
                other => panic!("the restart answered {other}: {body}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (acknowledged, unavailable)
    };
    // On a thread of its own: pg_ctl blocks while it waits.
    let cluster = std::sync::Arc::new(cluster);
    let restarted = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(500));
            cluster.pg_ctl("stop");
            // Down longer than a request waits for a connection (5 s): a write during a
            // shorter outage is answered once the database is back.
            std::thread::sleep(Duration::from_secs(8));
            cluster.pg_ctl("start");
        })
    };
    let restarting = async {
        restarted.await.expect("the restart");
    };
    let ((acknowledged, unavailable), ()) = futures::join!(writing, restarting);
    eprintln!(
        "during the restart: {unavailable} writes answered 503, {} acknowledged",
        acknowledged.len()
    );
    assert!(unavailable > 0, "the writes during the restart were answered 503");
    assert!(acknowledged.len() > 20, "writes were taken again after the restart");
    for id in &acknowledged {
        let (status, customer) = app.customer(id).await;
        assert_eq!(status, 200, "acknowledged {id} is there: {customer}");
    }
    let (status, health) = status_and_json(app.get("/healthz").await).await;
    assert_eq!(status, 200, "{health}");
}

//! The command line of `crm-server`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::Config;
use crate::store::SledStore;

#[derive(Debug, Parser)]
#[command(
    name = "crm-server",
    version,
    about = "The crm customer register: JSON API and staff pages"
)]
pub struct Cli {
    /// Address to listen on; port 0 takes a free port.
    #[arg(long, env = "CRM_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Directory of the database (created if missing).
    #[arg(long, env = "CRM_DATA", default_value = "./crm-data")]
    pub data: PathBuf,
    /// Refused deferred payments from which credit is no longer allowed.
    #[arg(long, env = "CRM_REFUSAL_LIMIT", default_value_t = Config::DEFAULT_REFUSAL_LIMIT)]
    pub refusal_limit: u32,
    /// Largest import or ticket upload, bytes.
    #[arg(long, env = "CRM_STREAM_LIMIT", default_value_t = Config::DEFAULT_STREAM_LIMIT)]
    pub stream_limit: u64,
    /// Bound of the database page cache, MiB.
    #[arg(long, env = "CRM_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
}

impl Cli {
    pub fn config(&self) -> Config {
        Config {
            refusal_limit: self.refusal_limit,
            stream_limit: self.stream_limit,
            cache_bytes: self.cache_mb * 1024 * 1024,
            ..Config::new(&self.data)
        }
    }
}

/// Runs the program: parses the command line, binds, prints the URL once listening,
/// serves until SIGINT or SIGTERM. Returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "crm_server=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crm-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(cli.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("crm-server: cannot listen on {}: {e}", cli.addr);
                return std::process::ExitCode::FAILURE;
            }
        };
        let config = cli.config();
        let store = match SledStore::open(&config.data_dir, config.cache_bytes) {
            Ok(store) => store,
            Err(e) => {
                eprintln!(
                    "crm-server: cannot open the data directory {}: {e}",
                    config.data_dir.display()
                );
                return std::process::ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        // Printed once bound and open: tests and scripts read the port from this line.
        println!("crm-server listening on http://{addr}");
        match crate::serve(listener, store, config, shutdown_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crm-server: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

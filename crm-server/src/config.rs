//! Server settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::access::TokenSet;
use crate::store::sled::{DEFAULT_CACHE_BYTES, DEFAULT_WRITE_WAIT};

/// Everything the server can be told at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// The PostgreSQL database to use instead of the sled one in `data_dir`.
    pub database: Option<Database>,
    /// Largest body of an ordinary route (1 MiB, see docs/api.md).
    pub body_limit: u64,
    /// Largest streamed body of the import and ticket routes.
    pub stream_limit: u64,
    /// A customer with this many refused deferred payments or more is not allowed credit.
    pub refusal_limit: u32,
    /// Bound of the store's page cache, bytes.
    pub cache_bytes: u64,
    /// The gateway through which the other services are reached (`Host: <service>`);
    /// without it, pulls and payment runs do nothing but say so.
    pub gateway: Option<reqwest::Url>,
    /// Run the pulls and the payment run on the server's own schedule, every so often
    /// (for a deployment without the scheduler service).
    pub pull_every: Option<Duration>,
    /// Where "today" comes from for payment runs.
    pub clock: Clock,
    /// Bound of each call to another service.
    pub upstream_timeout: Duration,
    /// Longest time from the first byte of a request head to its end; past it the
    /// connection is closed.
    pub header_timeout: Duration,
    /// Longest time a request body may send nothing; past it the request is answered
    /// `408` (or its connection closed).
    pub body_timeout: Duration,
    /// Longest time a connection may stay open without a request.
    pub idle_timeout: Duration,
    /// Most connections open at once; past it new ones are answered `503` and closed.
    /// `None`: derived from the open-file limit (see `connections::max_connections_for`).
    pub max_connections: Option<usize>,
    /// Bytes of the reserve file kept in the data directory, released when the disk
    /// fills so that the store can still be opened, read and flushed (see
    /// [`crate::store::guarded`]); writes stop while less than this is free. 0: none.
    pub disk_reserve: u64,
    /// Longest time a write waits for its turn between the batches of an import being
    /// written before it is answered `503` `import_running` (zero: at once).
    pub write_wait: Duration,
    /// The tokens of `--tokens`; without them, only loopback peers are answered.
    pub tokens: Option<Arc<TokenSet>>,
    /// Names besides the loopback ones, the bound address and `crm` that the `Host`
    /// header may carry (`--allowed-host`): `name` (any port) or `name:port`.
    pub allowed_hosts: Vec<String>,
    /// The address the server listens on; `serve` fills it in from its listener.
    pub listen_addr: Option<SocketAddr>,
}

/// Where the date of a payment run comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// The system's date (UTC).
    #[default]
    System,
    /// The simulated date of the `scheduler` service (`GET clock/time`).
    Scheduler,
}

impl Config {
    pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;
    pub const DEFAULT_STREAM_LIMIT: u64 = 1024 * 1024 * 1024;
    pub const DEFAULT_REFUSAL_LIMIT: u32 = 1;
    pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_DISK_RESERVE_MB: u64 = 32;
    pub const DEFAULT_WRITE_WAIT: Duration = DEFAULT_WRITE_WAIT;

    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            database: None,
            body_limit: Self::DEFAULT_BODY_LIMIT,
            stream_limit: Self::DEFAULT_STREAM_LIMIT,
            refusal_limit: Self::DEFAULT_REFUSAL_LIMIT,
            cache_bytes: DEFAULT_CACHE_BYTES,
            gateway: None,
            pull_every: None,
            clock: Clock::System,
            upstream_timeout: Self::DEFAULT_UPSTREAM_TIMEOUT,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            disk_reserve: Self::DEFAULT_DISK_RESERVE_MB * 1024 * 1024,
            write_wait: Self::DEFAULT_WRITE_WAIT,
            tokens: None,
            allowed_hosts: Vec::new(),
            listen_addr: None,
        }
    }
}

/// A PostgreSQL database (`--database`) and the bound of its connection pool.
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// `postgres://USER:PASS@HOST[:PORT]/DB`.
    pub url: String,
    /// Most connections open at once (`--database-pool`).
    pub pool: u32,
}

/// The URL without its password: configurations are logged and printed.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &redacted(&self.url))
            .field("pool", &self.pool)
            .finish()
    }
}

/// A database URL with its password, if any, replaced by `***`.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(not a URL)".into(),
    }
}

//! The command line of `crm-server`.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use crm_model::import::{ImportPhase, ImportProgress};
use crm_model::{ImportMode, ImportOptions, ImportReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Clock, Config, Database};
use crate::store::sled::DEFAULT_CACHE_MB;
use crate::store::{GuardedStore, ImportStore};
use crm_model::audit::WriteOrigin;

#[derive(Debug, Parser)]
#[command(
    name = "crm-server",
    version,
    about = "The crm customer register: JSON API and staff pages"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on; port 0 takes a free port.
    #[arg(long, env = "CRM_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Directory of the database (created if missing).
    #[arg(long, env = "CRM_DATA", default_value = "./crm-data", global = true)]
    pub data: PathBuf,
    /// A PostgreSQL database to keep the register in instead of the sled one in
    /// `--data`: `postgres://USER:PASS@HOST[:PORT]/DB`. Several servers may share it.
    /// Its schema is created or migrated at start.
    #[arg(long, env = "CRM_DATABASE_URL", global = true)]
    pub database: Option<String>,
    /// Most connections to `--database` open at once; a request that finds none free
    /// within 5 s is answered `503`.
    #[arg(long, env = "CRM_DATABASE_POOL", default_value_t = crate::store::postgres::DEFAULT_POOL,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub database_pool: u32,
    /// Refused deferred payments from which credit is no longer allowed.
    #[arg(long, env = "CRM_REFUSAL_LIMIT", default_value_t = Config::DEFAULT_REFUSAL_LIMIT)]
    pub refusal_limit: u32,
    /// Largest import or ticket upload, bytes.
    #[arg(long, env = "CRM_STREAM_LIMIT", default_value_t = Config::DEFAULT_STREAM_LIMIT)]
    pub stream_limit: u64,
    /// Bound of the database page cache, MiB.
    #[arg(long, env = "CRM_CACHE_MB", default_value_t = DEFAULT_CACHE_MB, global = true)]
    pub cache_mb: u64,
    /// The gateway through which the other services are reached with `Host: <service>`
    /// (for example http://localhost:8000/); without it, pulls only say so.
    #[arg(long, env = "CRM_GATEWAY", value_parser = parse_gateway)]
    pub gateway: Option<reqwest::Url>,
    /// Pull the tickets and send the due payments every DURATION (`24h`, `30min`), for
    /// a deployment without the scheduler service. Off by default.
    #[arg(long, env = "CRM_PULL_EVERY", value_parser = parse_duration)]
    pub pull_every: Option<Duration>,
    /// Date of payment runs: the system's, or the scheduler service's simulated date.
    #[arg(long, env = "CRM_CLOCK", value_enum, default_value_t = Clock::System)]
    pub clock: Clock,
    /// Bound of each call to another service (`10s`, `500ms`).
    #[arg(long, env = "CRM_UPSTREAM_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub upstream_timeout: Duration,
    /// Longest time a client may take to send a request head once it began (`10s`).
    #[arg(long, env = "CRM_HEADER_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// Longest time a request body may send nothing before the request is answered
    /// `408` (`60s`).
    #[arg(long, env = "CRM_BODY_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub body_timeout: Duration,
    /// Longest time a connection may stay open without a request (`60s`).
    #[arg(long, env = "CRM_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Most connections open at once; past it, new ones are answered `503` and closed.
    /// Default: the open-file limit (raised to its hard limit at start) less 128, at
    /// least half of it.
    #[arg(long, env = "CRM_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Space kept in reserve in the data directory, MiB: released on a full disk so
    /// that the server still opens, reads and shuts down cleanly; writes stop (`507`)
    /// while less than this is free, and resume once twice this is. 0: no reserve.
    #[arg(long, env = "CRM_DISK_RESERVE_MB", default_value_t = Config::DEFAULT_DISK_RESERVE_MB, global = true)]
    pub disk_reserve_mb: u64,
    /// Longest time a write waits for its turn between the batches of an import being
    /// written before it is answered `503` `import_running` with `Retry-After` (`5s`,
    /// `500ms`; `0` refuses at once).
    #[arg(long, env = "CRM_WRITE_WAIT", value_parser = parse_wait, default_value = "5s")]
    pub write_wait: Duration,
    /// File of `name:token:role` lines (role read, write or admin; `#` comments and
    /// blank lines allowed): every /api route then needs `Authorization: Bearer
    /// <token>`. Without it, only clients on this machine are answered.
    #[arg(long, env = "CRM_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// A name the `Host` header may carry besides localhost, 127.0.0.1, [::1], the
    /// bound address and `crm` (`name` for any port, `name:port`); repeatable.
    #[arg(long = "allowed-host", env = "CRM_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!("{e} (write it like 24h, 30min or 500ms)")),
    }
}

/// A duration that may be zero.
fn parse_wait(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        text => humantime::parse_duration(text).map_err(|e| format!("{e} (write it like 5s or 500ms, or 0)")),
    }
}

/// A gateway URL, made to end with `/` so that service paths join under it.
fn parse_gateway(text: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(text.trim()).map_err(|e| format!("{e}"))?;
    if url.scheme() != "http" {
        return Err("must be an http:// URL".into());
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Imports customers from a file into the data directory, as `POST /api/update_db`
    /// does (stop the server on that directory first).
    Import {
        /// `{"clients": [...]}`, a JSON array, JSON lines or CSV with a header row.
        file: PathBuf,
        /// merge: rows update the customers they match and create the others;
        /// replace: then every customer absent from the file is erased.
        #[arg(long, default_value = "merge", value_parser = parse_mode)]
        mode: ImportMode,
        /// Validate and count, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import the valid rows and list the invalid ones, which are skipped (merge
        /// only); without it, a file with any invalid row imports nothing.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Writes a dump of the data directory (a versioned JSON-lines backup, see the
    /// README's Backups section) to standard output (stop the server on that directory
    /// first, or use `GET /api/v1/export`); with `--database`, of that database (while
    /// it is in use: the dump is one snapshot).
    Export,
    /// Restores a dump made by `export` (or `GET /api/v1/export`) into the data
    /// directory, which must be new: missing or empty; with `--database`, into that
    /// database, which must hold nothing yet (its schema is created if missing).
    Restore {
        /// The dump; `-` reads standard input.
        file: PathBuf,
    },
}

fn parse_mode(text: &str) -> Result<ImportMode, String> {
    ImportMode::parse(text).ok_or_else(|| format!("unknown mode {text:?}: use merge or replace"))
}

impl Cli {
    pub fn config(&self) -> Config {
        Config {
            refusal_limit: self.refusal_limit,
            stream_limit: self.stream_limit,
            cache_bytes: self.cache_mb * 1024 * 1024,
            gateway: self.gateway.clone(),
            pull_every: self.pull_every,
            clock: self.clock,
            upstream_timeout: self.upstream_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections.map(|n| n as usize),
            disk_reserve: self.disk_reserve_mb * 1024 * 1024,
            write_wait: self.write_wait,
            allowed_hosts: self.allowed_hosts.clone(),
            database: self.database.as_ref().map(|url| Database {
                url: url.clone(),
                pool: self.database_pool,
            }),
            ..Config::new(&self.data)
        }
    }
}

/// Runs the program: parses the command line, binds, prints the URL once listening,
/// serves until SIGINT or SIGTERM. Returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.database.is_some() && matches!(cli.command, Some(Command::Import { .. })) {
        eprintln!(
            "crm-server: import works on the sled data directory; it does not take --database yet (export and \
             restore do)"
        );
        return ExitCode::FAILURE;
    }
    if let Some(Command::Import {
        file,
        mode,
        dry_run,
        skip_invalid,
    }) = &cli.command
    {
        let options = ImportOptions {
            mode: *mode,
            dry_run: *dry_run,
            skip_invalid: *skip_invalid,
        };
        return import_file(&cli.config(), file, options);
    }
    match &cli.command {
        Some(Command::Export) => return crate::backup::export_command(&cli.config()),
        Some(Command::Restore { file }) => return crate::backup::restore_command(&cli.config(), file),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "crm_server=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or journal shows them
        // as `[2m...[0m` around every field.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        let mut config = cli.config();
        if let Some(path) = &cli.tokens {
            match crate::access::TokenSet::load(path) {
                Ok(tokens) => {
                    tracing::info!(tokens = tokens.len(), "tokens loaded; every /api route needs one");
                    config.tokens = Some(std::sync::Arc::new(tokens));
                }
                Err(e) => {
                    eprintln!("crm-server: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        // Printed once bound, before the store is open (until then the sled store answers
        // every request 503, see `recovery`; with a database, connections wait in the
        // backlog while it connects): tests and scripts read the port from this line.
        println!("crm-server listening on http://{addr}");
        match crate::run(listener, config, shutdown_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crm-server: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

/// Opens the store of `config`, or says why not on standard error.
fn open_store(config: &Config) -> Result<GuardedStore, ExitCode> {
    GuardedStore::open(config).map_err(|e| {
        eprintln!(
            "crm-server: cannot open the data directory {}: {e}",
            config.data_dir.display()
        );
        ExitCode::FAILURE
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

/// `crm-server import`: the import of `POST /api/update_db`, offline, with progress on
/// standard error, then the summary (and every bad row) on standard output. Exits with
/// 1 when the file has bad rows (unless they are skipped) or the import fails.
fn import_file(config: &Config, file: &Path, options: ImportOptions) -> ExitCode {
    if options.conflict().is_some() {
        eprintln!(
            "crm-server: --skip-invalid cannot be used with --mode replace: the customer of a skipped row would be \
             erased; fix the file, or import it with --mode merge"
        );
        return ExitCode::FAILURE;
    }
    let store = match open_store(config) {
        // Recorded in the audit trail as a write made on this machine.
        Ok(store) => crate::store::AuditStore::acting_for(&store, WriteOrigin::local("crm-server import")),
        Err(code) => return code,
    };
    let opened = File::open(file).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (size, handle) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("crm-server: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = crate::backup::runtime() else {
        return ExitCode::FAILURE;
    };
    let progress = Arc::new(ImportDisplay::new(size));
    let reader = CountingReader {
        inner: handle,
        display: progress.clone(),
    };
    let file_name = file.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let display = progress.clone();
    let outcome = runtime.block_on(async {
        let rows = crate::import::blocking_stream(
            crate::import::rows_of(reader, None, file_name),
            crate::import::QUEUED_ROWS,
        );
        store
            .import_customers(rows, options, Arc::new(move |p| display.update(p)))
            .await
    });
    progress.finish();
    match outcome {
        Ok(report) => print_report(&report, options),
        Err(e) => {
            eprintln!("crm-server: import failed, nothing was imported: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the table of bad rows, then the summary (and the warning of the rows that no
/// import can match) on standard output.
fn print_report(report: &ImportReport, options: ImportOptions) -> ExitCode {
    if report.error_count > 0 {
        let width = report.errors.iter().map(|e| e.field.len()).max().unwrap_or(5).max(5);
        println!("{:>8}  {:width$}  error", "row", "field");
        for e in &report.errors {
            println!("{:>8}  {:width$}  {}", e.row, e.field, e.error);
        }
        if report.error_count > report.errors.len() as u64 {
            println!("... and {} more", report.error_count - report.errors.len() as u64);
        }
    }
    if report.error_count > 0 && !options.skip_invalid {
        if let Some(warning) = report.unmatchable_warning() {
            println!("{warning}");
        }
        eprintln!(
            "crm-server: {} error(s) in the file; nothing was imported (--skip-invalid imports the valid rows)",
            report.error_count
        );
        return ExitCode::FAILURE;
    }
    let prefix = if options.dry_run {
        "dry run, nothing written: would have "
    } else {
        ""
    };
    let erased = if options.mode == ImportMode::Replace {
        format!(", erased {}", report.erased)
    } else {
        String::new()
    };
    let skipped = if options.skip_invalid {
        format!(", skipped {} invalid", report.skipped)
    } else {
        String::new()
    };
    println!(
        "{prefix}created {}, updated {}, unchanged {}{erased}{skipped}",
        report.created, report.updated, report.unchanged
    );
    if let Some(warning) = report.unmatchable_warning() {
        println!("{warning}");
    }
    ExitCode::SUCCESS
}

/// The file, counting the bytes read for the progress display.
struct CountingReader {
    inner: File,
    display: Arc<ImportDisplay>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.display.read_bytes(n as u64);
        Ok(n)
    }
}

/// Progress of an import: a bar on a terminal, a plain line every few seconds
/// otherwise (logs, pipes).
struct ImportDisplay {
    bar: Option<ProgressBar>,
    state: Mutex<DisplayState>,
}

struct DisplayState {
    size: u64,
    read: u64,
    phase: Option<ImportPhase>,
    last_line: Instant,
}

/// How often the plain display prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

impl ImportDisplay {
    fn new(size: u64) -> ImportDisplay {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(size);
            bar.set_style(style(
                "{msg:10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ));
            bar.set_message("reading");
            bar
        });
        ImportDisplay {
            bar,
            state: Mutex::new(DisplayState {
                size,
                read: 0,
                phase: None,
                last_line: Instant::now(),
            }),
        }
    }

    fn read_bytes(&self, n: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.read += n;
        if let Some(bar) = &self.bar {
            bar.set_position(state.read);
        }
    }

    fn update(&self, progress: ImportProgress) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let phase_changed = state.phase != Some(progress.phase);
        state.phase = Some(progress.phase);
        let name = match progress.phase {
            ImportPhase::Reading => "reading",
            ImportPhase::Checking => "checking",
            ImportPhase::Writing => "writing",
            ImportPhase::Erasing => "erasing",
        };
        if let Some(bar) = &self.bar {
            if phase_changed && progress.phase != ImportPhase::Reading {
                bar.set_style(style("{msg:10} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})"));
                bar.reset();
                bar.set_message(name);
                bar.set_length(progress.total.unwrap_or(progress.done));
            }
            if progress.phase != ImportPhase::Reading {
                bar.set_position(progress.done);
            }
            return;
        }
        if phase_changed || state.last_line.elapsed() >= PLAIN_EVERY {
            state.last_line = Instant::now();
            match (progress.phase, progress.total) {
                (ImportPhase::Reading, _) => eprintln!(
                    "import: reading, {} rows, {} of {} bytes",
                    progress.done, state.read, state.size
                ),
                (_, Some(total)) => eprintln!("import: {name}, {} of {total} rows", progress.done),
                (_, None) => eprintln!("import: {name}, {}", progress.done),
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

//! `crm-bench --database postgres://...`: crm-server on its PostgreSQL store, beside
//! PostgreSQL's own figures on the same cluster in the same run.
//!
//! - `pgbench -S` (select-only, scale 10: 1,000,000 accounts) with the run's connections:
//!   what the cluster answers to one-row reads by key, the baseline of `GET
//!   /api/data/<IdClient>`.
//! - A bare `COPY` (`psql \copy`) of the same customers as CSV into a table with a primary
//!   key and a unique e-mail index: the baseline of the import.
//! - The HTTP import of the customers into an empty register, by-id reads on one server,
//!   then on two servers of the one database at once (two wrk processes, half the
//!   connections each), with the machine's CPU use during each load: on a machine whose
//!   cores the database, the servers and the load generator share, it shows what bounds
//!   the second server.
//!
//! Each figure has its own database (`crm_bench_*`, made from the `--database` URL's
//! cluster and dropped at the end); the URL's role needs `CREATEDB`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::procs::{self, Server};
use crate::report::{self, Figure};
use crate::wrk::{Load, Outcome};
use crate::{generate, read_dump, search_queries, wait_ready, write_file, Bench};

/// The databases of a run, dropped before (a run stopped earlier) and after.
const DATABASES: [&str; 3] = ["crm_bench_register", "crm_bench_pgbench", "crm_bench_copy"];

/// The customers' table of the `COPY` baseline: the CSV columns, a primary key and a
/// unique e-mail index, as the measurement had them.
const COPY_TABLE: &str = "CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
    nom text, prenom text, email text NOT NULL, phone text, compte text, age int, sexe text, \
    credit numeric, carte_fid bigint, date_paiement date, montant numeric, paiement int); \
    CREATE UNIQUE INDEX customers_email ON customers (email)";

/// The `psql` columns of that table, in the CSV's order.
const COPY_COLUMNS: &str =
    "nom, prenom, email, phone, compte, age, sexe, credit, carte_fid, date_paiement, montant, paiement";

/// A database URL of the cluster `admin` names, for the database `name`.
fn database_url(admin: &str, name: &str) -> Result<String, String> {
    let (without_query, query) = admin.split_once('?').map_or((admin, None), |(u, q)| (u, Some(q)));
    let (cluster, _) = without_query
        .rsplit_once('/')
        .filter(|(cluster, _)| cluster.contains("://") && !cluster.ends_with('/'))
        .ok_or_else(|| format!("--database {admin:?} is not a postgres://USER:PASSWORD@HOST:PORT/DB URL"))?;
    Ok(match query {
        Some(q) => format!("{cluster}/{name}?{q}"),
        None => format!("{cluster}/{name}"),
    })
}

/// Runs `psql` on `url` with `command` (`-c`); answers its output.
fn psql(url: &str, command: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", url, "-c", command])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run psql (install postgresql-client): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "psql {command:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// Busy and total CPU ticks of the whole machine (/proc/stat), to say how much of the
/// machine a load used.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU use during a load: of the whole machine (in cores) and of the crm-server
/// processes (in cores), for the figure's note.
struct CpuWatch {
    machine: (u64, u64),
    servers: Vec<(u32, u64)>,
    database: Vec<(u32, u64)>,
    started: Instant,
}

/// The PostgreSQL processes and their CPU ticks so far.
fn database_ticks() -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|pid| Some((pid, procs::cpu_ticks(pid)?)))
        .collect()
}

/// Cores used since `before` by the processes it lists, over `seconds`.
fn cores_since(before: &[(u32, u64)], seconds: f64) -> f64 {
    // Ticks are 1/100 s.
    before
        .iter()
        .map(|&(pid, ticks)| procs::cpu_ticks(pid).unwrap_or(ticks).saturating_sub(ticks))
        .sum::<u64>() as f64
        / 100.0
        / seconds
}

impl CpuWatch {
    fn start(servers: &[u32]) -> CpuWatch {
        CpuWatch {
            machine: machine_ticks(),
            servers: servers
                .iter()
                .map(|&pid| (pid, procs::cpu_ticks(pid).unwrap_or(0)))
                .collect(),
            database: database_ticks(),
            started: Instant::now(),
        }
    }

    fn note(self, cores: usize) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let (busy, total) = machine_ticks();
        let busy_share = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64;
        let servers = cores_since(&self.servers, seconds);
        // The backends a pool opened during the load count whole.
        let before: std::collections::HashMap<u32, u64> = self.database.into_iter().collect();
        let database = database_ticks()
            .into_iter()
            .map(|(pid, ticks)| ticks.saturating_sub(before.get(&pid).copied().unwrap_or(0)))
            .sum::<u64>() as f64
            / 100.0
            / seconds;
        format!(
            "machine {:.0}% busy ({:.2} of its {cores} cores): crm-server {servers:.2} cores, PostgreSQL \
             {database:.2}, the rest (wrk) {:.2}",
            busy_share * 100.0,
            busy_share * cores as f64,
            (busy_share * cores as f64 - servers - database).max(0.0)
        )
    }
}

impl Bench {
    /// The PostgreSQL run (see the module's comment).
    pub(crate) fn on_postgres(&mut self, server_bin: &Path, baseline_bin: &Path, admin: &str) -> Result<(), String> {
        for name in DATABASES {
            psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
        let outcome = self.postgres_figures(server_bin, baseline_bin, admin);
        for name in DATABASES {
            if let Err(e) = psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
                eprintln!("crm-bench: {e}");
            }
        }
        outcome
    }

    fn postgres_figures(&mut self, server_bin: &Path, baseline_bin: &Path, admin: &str) -> Result<(), String> {
        let n = self.customers;
        let conns = self.connections;
        let cores = procs::machine().cores;
        let version = psql(admin, "SHOW server_version")?;
        println!("PostgreSQL {}", version.trim());

        // 1. pgbench -S on its own database of the cluster.
        let pgbench_db = database_url(admin, "crm_bench_pgbench")?;
        psql(admin, "CREATE DATABASE crm_bench_pgbench")?;
        let started = Instant::now();
        run_pgbench(&["-i", "-q", "-s", "10", &pgbench_db])?;
        println!("pgbench -i -s 10 in {:.1} s", started.elapsed().as_secs_f64());
        let pgbench_seconds = (self.seconds * 2).to_string();
        let out = run_pgbench(&[
            "-S",
            "-n",
            "-M",
            "prepared",
            "-c",
            &conns.to_string(),
            "-j",
            &cores.to_string(),
            "-T",
            &pgbench_seconds,
            &pgbench_db,
        ])?;
        let tps = out
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l["tps = ".len()..].split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("pgbench printed no tps: {out}"))?;
        let latency = out
            .lines()
            .find_map(|l| l.strip_prefix("latency average = "))
            .unwrap_or("?")
            .trim()
            .to_string();
        let pgbench_fig = self.push(
            Figure::new(
                "baseline",
                format!("pgbench -S (scale 10: 1,000,000 accounts), {conns} clients, {cores} threads"),
                tps,
                "req/s",
            )
            .note(format!(
                "transactions/s without the connection time; latency average {latency}; {pgbench_seconds} s"
            )),
        );

        // 2. The bare COPY of the customers as CSV.
        let csv = self.work.join("customers.csv");
        write_csv(&csv, n)?;
        let copy_db = database_url(admin, "crm_bench_copy")?;
        psql(admin, "CREATE DATABASE crm_bench_copy")?;
        psql(&copy_db, COPY_TABLE)?;
        let started = Instant::now();
        psql(
            &copy_db,
            &format!(
                "\\copy customers ({COPY_COLUMNS}) FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            ),
        )?;
        let elapsed = started.elapsed().as_secs_f64();
        let copied: u64 = psql(&copy_db, "SELECT count(*) FROM customers")?
            .trim()
            .parse()
            .map_err(|e| format!("count of the copied rows: {e}"))?;
        if copied != n {
            return Err(format!("the COPY baseline stored {copied} rows, not {n}"));
        }
        let _ = std::fs::remove_file(&csv);
        let copy_fig = self.push(
            Figure::new(
                "baseline",
                format!(
                    "psql \\copy of {} CSV rows into a table with a primary key and a unique e-mail index",
                    report::number(n as f64)
                ),
                n as f64 / elapsed,
                "rows/s",
            )
            .note(format!("{elapsed:.1} s")),
        );
        psql(admin, "DROP DATABASE crm_bench_copy")?;

        // 3. crm-server on an empty database: the HTTP import of the same customers.
        let register = database_url(admin, "crm_bench_register")?;
        psql(admin, "CREATE DATABASE crm_bench_register")?;
        let one = self.start_on_database(server_bin, &register, "server-one")?;
        let file = self.work.join("customers.json");
        write_file(&file, 1, 0, n)?;
        let started = Instant::now();
        let said = self.post_file(&format!("{}/api/update_db", one.url), &file)?;
        let elapsed = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&file);
        let report: serde_json::Value = serde_json::from_str(&said).map_err(|e| format!("import answer: {e}"))?;
        if report["created"].as_u64() != Some(n) {
            return Err(format!("the import did not create {n} customers: {said}"));
        }
        let size = psql(admin, "SELECT pg_size_pretty(pg_database_size('crm_bench_register'))")?;
        let f = Figure::new(
            "server",
            format!("import {} rows over HTTP into PostgreSQL", report::number(n as f64)),
            n as f64 / elapsed,
            "rows/s",
        )
        .against(Some(&self.figures[copy_fig]))
        .note(format!("{elapsed:.1} s; database after: {}", size.trim()));
        self.push(f);
        // Fresh statistics for the planner, as autovacuum would give them in a while.
        psql(&register, "VACUUM ANALYZE")?;

        // 4. The keys, from the full listing.
        let dump = self.work.join("dump.json");
        self.stream(&format!("{}/api/data", one.url), &dump)?;
        let stored = read_dump(&dump, &self.work.join("records.tsv"), n, &search_queries())?;
        let _ = std::fs::remove_file(&dump);
        if stored.count != n {
            return Err(format!("GET /api/data listed {} customers, not {n}", stored.count));
        }
        let by_id = self.lines_file("by-id.txt", stored.ids.iter().map(|id| format!("GET\t/api/data/{id}")))?;

        // 5. The load generator is not the limit: the same script on the warp ceiling.
        let (ceiling, _) = self.baseline_server(baseline_bin, &["http"], "http")?;
        let scripted = self.load(
            ceiling.pid(),
            &Load::new(&ceiling.url, "lines", conns, self.seconds).file(&by_id),
        )?;
        let ceiling_fig = self.push(self.http_figure(
            "check",
            "wrk + bench.lua by-id keys on the warp constant-JSON baseline (what the load generator reaches)",
            conns,
            &scripted,
        ));
        ceiling.stop(std::time::Duration::from_secs(5));

        // 6. By id on one server, against pgbench -S.
        let (mut outcomes, cpu) = self.loads_at_once(
            &[one.pid()],
            &[Load::new(&one.url, "lines", conns, self.seconds).file(&by_id)],
            cores,
        )?;
        let out = outcomes.remove(0);
        let f = self
            .http_figure(
                "server",
                "GET /api/data/<IdClient>, one server on PostgreSQL",
                conns,
                &out,
            )
            .against(Some(&self.figures[pgbench_fig]))
            .note(cpu)
            .note(format!(
                "{:.2}x what wrk reached on the warp baseline",
                out.rate / self.figures[ceiling_fig].value
            ));
        let one_fig = self.push(f);

        // 7. Two servers of the one database, half the connections each, at once.
        let two = self.start_on_database(server_bin, &register, "server-two")?;
        let half = (conns / 2).max(1);
        let (outcomes, cpu) = self.loads_at_once(
            &[one.pid(), two.pid()],
            &[
                Load::new(&one.url, "lines", half, self.seconds).file(&by_id),
                Load::new(&two.url, "lines", half, self.seconds).file(&by_id),
            ],
            cores,
        )?;
        let (a, b) = (&outcomes[0], &outcomes[1]);
        let both = Outcome {
            requests: a.requests + b.requests,
            rate: a.rate + b.rate,
            p50_ms: a.p50_ms.max(b.p50_ms),
            p99_ms: a.p99_ms.max(b.p99_ms),
            non_2xx: a.non_2xx + b.non_2xx,
            socket_errors: a.socket_errors + b.socket_errors,
            bytes: a.bytes + b.bytes,
            statuses: Default::default(),
            waited: None,
        };
        let f = self
            .http_figure(
                "server",
                "GET /api/data/<IdClient>, two servers on one PostgreSQL database together",
                half * 2,
                &both,
            )
            .against(Some(&self.figures[one_fig]))
            .note(format!(
                "two wrk processes of {half} connections, one a server: {} + {} req/s (p50 and p99: the slower of \
                 the two)",
                report::number(a.rate),
                report::number(b.rate)
            ))
            .note(cpu);
        self.push(f);
        two.stop(std::time::Duration::from_secs(10));
        one.stop(std::time::Duration::from_secs(10));
        Ok(())
    }

    /// Runs `loads` at once (one wrk process each) once the processes `pids` are idle;
    /// answers what each measured and the CPU use of the machine and of `pids` during
    /// them, then waits for `pids` to be idle again.
    fn loads_at_once(&self, pids: &[u32], loads: &[Load], cores: usize) -> Result<(Vec<Outcome>, String), String> {
        for &pid in pids {
            procs::wait_quiet(pid, std::time::Duration::from_secs(120));
        }
        let watch = CpuWatch::start(pids);
        let wrk = &self.wrk;
        let outcomes: Vec<Result<Outcome, String>> = std::thread::scope(|s| {
            let running: Vec<_> = loads.iter().map(|load| s.spawn(move || wrk.run(load))).collect();
            running
                .into_iter()
                .map(|r| r.join().unwrap_or_else(|_| Err("a wrk thread panicked".into())))
                .collect()
        });
        let cpu = watch.note(cores);
        for &pid in pids {
            procs::wait_quiet(pid, std::time::Duration::from_secs(300));
        }
        Ok((outcomes.into_iter().collect::<Result<_, _>>()?, cpu))
    }

    /// crm-server on the PostgreSQL database `url`, once it answers.
    fn start_on_database(&self, bin: &Path, url: &str, log: &str) -> Result<Server, String> {
        let server = Server::start(
            bin,
            &["--addr", "127.0.0.1:0", "--database", url],
            &self.logs.join(format!("{log}.log")),
        )?;
        wait_ready(self, &server.url)?;
        Ok(server)
    }
}

/// Runs pgbench; answers its output (it reports on stdout, its progress on stderr).
fn run_pgbench(args: &[&str]) -> Result<String, String> {
    let output = Command::new("pgbench")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run pgbench (install postgresql-contrib or the server package): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        return Err(format!(
            "pgbench {args:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(text)
}

/// The run's customers as CSV (the import's own CSV columns).
fn write_csv(path: &Path, count: u64) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    generate::write_customers(&mut out, generate::Format::Csv, 1, 0, count)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_database_url_names_another_database_of_the_cluster() {
        assert_eq!(
            database_url("postgres://crm:pw@127.0.0.1:5432/postgres", "crm_bench_copy").unwrap(),
            "postgres://crm:pw@127.0.0.1:5432/crm_bench_copy"
        );
        assert_eq!(
            database_url("postgres://crm@h/db?sslmode=disable", "x").unwrap(),
            "postgres://crm@h/x?sslmode=disable"
        );
        assert!(database_url("postgres://crm@h", "x").is_err());
    }
}

//! The figures of a run, printed as they come and written as JSON and a markdown table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// `server` for crm-server, `baseline` for a ceiling, `check` for the load
    /// generator's own check.
    pub kind: &'static str,
    pub name: String,
    /// Connections of the load; 0 when not an HTTP load.
    pub connections: usize,
    pub value: f64,
    pub unit: &'static str,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub baseline: Option<String>,
    pub baseline_value: Option<f64>,
    /// value / baseline_value.
    pub ratio: Option<f64>,
    pub notes: String,
}

impl Figure {
    pub fn new(kind: &'static str, name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            kind,
            name: name.into(),
            connections: 0,
            value,
            unit,
            p50_ms: None,
            p99_ms: None,
            baseline: None,
            baseline_value: None,
            ratio: None,
            notes: String::new(),
        }
    }

    pub fn load(mut self, connections: usize, p50_ms: f64, p99_ms: f64) -> Figure {
        self.connections = connections;
        self.p50_ms = Some(p50_ms);
        self.p99_ms = Some(p99_ms);
        self
    }

    /// Compares with a baseline measured in the same run.
    pub fn against(mut self, baseline: Option<&Figure>) -> Figure {
        if let Some(b) = baseline {
            self.baseline = Some(b.name.clone());
            self.baseline_value = Some(b.value);
            self.ratio = (b.value > 0.0).then(|| self.value / b.value);
        }
        self
    }

    pub fn note(mut self, note: impl AsRef<str>) -> Figure {
        if !note.as_ref().is_empty() {
            if !self.notes.is_empty() {
                self.notes.push_str("; ");
            }
            self.notes.push_str(note.as_ref());
        }
        self
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        let mut s = format!("{:<58} {:>12} {:<7}", self.name, number(self.value), self.unit);
        if let (Some(p50), Some(p99)) = (self.p50_ms, self.p99_ms) {
            let _ = write!(s, " p50 {:>8} ms p99 {:>8} ms", ms(p50), ms(p99));
        }
        if let Some(r) = self.ratio {
            let _ = write!(s, "  {r:.2}x {}", self.baseline.as_deref().unwrap_or(""));
        }
        if !self.notes.is_empty() {
            let _ = write!(s, "  [{}]", self.notes);
        }
        s
    }
}

/// A figure that could not be measured: the table says why.
pub fn missing(name: impl Into<String>, why: impl Into<String>) -> Figure {
    let mut f = Figure::new("server", name, f64::NAN, "");
    f.notes = format!("not measured: {}", why.into());
    f
}

/// `12,345`, `123.4`, `1.23`: digits grouped, precision by size.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 1000.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `12,345`: a count, digits grouped.
pub fn count(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        number(n as f64)
    }
}

fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// What the report says about the run besides its figures.
pub struct Context {
    pub customers: u64,
    pub quick: bool,
    pub seconds: u64,
    pub date: String,
    pub commit: String,
    pub cores: usize,
    pub memory_gb: f64,
    pub cpu: String,
    pub kernel: String,
    pub wrk: String,
    pub total_seconds: f64,
}

/// The markdown table (with its heading lines) of a run.
pub fn markdown(ctx: &Context, figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run of {}: {} customers{}, {} s a figure, {} connections unless said; {} cores ({}), {:.1} GB of memory, \
         Linux {}; commit {}; load from {}; whole run {:.0} s.\n",
        ctx.date,
        number(ctx.customers as f64),
        if ctx.quick { " (--quick)" } else { "" },
        ctx.seconds,
        32,
        ctx.cores,
        ctx.cpu,
        ctx.memory_gb,
        ctx.kernel,
        ctx.commit,
        ctx.wrk,
        ctx.total_seconds
    );
    out.push_str("| figure | conns | result | p50 ms | p99 ms | baseline (same run) | ratio | notes |\n");
    out.push_str("|---|---:|---:|---:|---:|---|---:|---|\n");
    for f in figures {
        let name = match f.kind {
            "baseline" => format!("*baseline:* {}", f.name),
            "check" => format!("*check:* {}", f.name),
            _ => f.name.clone(),
        };
        let baseline = match (&f.baseline, f.baseline_value) {
            (Some(b), Some(v)) => format!("{b}: {}", number(v)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
            name.replace('|', "\\|"),
            if f.connections > 0 {
                f.connections.to_string()
            } else {
                String::new()
            },
            number(f.value),
            f.unit,
            f.p50_ms.map(ms).unwrap_or_default(),
            f.p99_ms.map(ms).unwrap_or_default(),
            baseline.replace('|', "\\|"),
            f.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
            f.notes.replace('|', "\\|")
        );
    }
    out
}

/// Writes `<stem>.json` and `<stem>.md` into `dir`; answers both paths.
pub fn write(dir: &Path, stem: &str, ctx: &Context, figures: &[Figure]) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    let document = json!({
        "date": ctx.date,
        "commit": ctx.commit,
        "customers": ctx.customers,
        "quick": ctx.quick,
        "seconds_per_figure": ctx.seconds,
        "machine": {"cores": ctx.cores, "memory_gb": ctx.memory_gb, "cpu": ctx.cpu, "kernel": ctx.kernel},
        "load_generator": ctx.wrk,
        "total_seconds": ctx.total_seconds,
        "figures": figures,
    });
    let text = serde_json::to_string_pretty(&document).map_err(std::io::Error::other)?;
    std::fs::write(&json_path, text + "\n")?;
    std::fs::write(&md_path, markdown(ctx, figures))?;
    Ok((json_path, md_path))
}

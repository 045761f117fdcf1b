//! `crm-gen --count N --format json|array|jsonl|csv [--seed S] [--out FILE]`: writes N
//! realistic customers in an import format, to standard output or a file.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use crm_tests::generate::{write_customers, Format};

const USAGE: &str = "usage: crm-gen --count N --format json|array|jsonl|csv [--seed S] [--out FILE]";

fn main() -> ExitCode {
    let mut count = None;
    let mut format = Format::Clients;
    let mut seed = 1u64;
    let mut out_path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value.as_deref()) {
            ("--count", Some(v)) => v.parse().map(|n| count = Some(n)).is_ok(),
            ("--seed", Some(v)) => v.parse().map(|s| seed = s).is_ok(),
            ("--format", Some(v)) => Format::parse(v).map(|f| format = f).is_some(),
            ("--out", Some(v)) => {
                out_path = Some(v.to_string());
                true
            }
            _ => false,
        };
        if !parsed {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    let Some(count) = count else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let sink: Box<dyn Write> = match &out_path {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("crm-gen: cannot create {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    match write_customers(&mut out, format, seed, 0, count).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crm-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

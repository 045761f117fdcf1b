//! Realistic customers for import tests and benchmarks: French names, unique e-mails,
//! cards and accounts, phones, ages, credits (some with fractions of a cent), scheduled
//! payments. Deterministic: customer `i` of seed `s` is always the same.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

const PRENOMS: &[&str] = &[
    "Jean",
    "Marie",
    "Anne",
    "Pierre",
    "Éloïse",
    "François",
    "Hélène",
    "Jérôme",
    "Gaëlle",
    "Louis",
    "Camille",
    "Léa",
    "Hugo",
    "Chloé",
    "Nicolas",
    "Inès",
    "Mathieu",
    "Zoé",
    "Théo",
    "Agnès",
    "Rémi",
    "Céline",
    "Benoît",
    "Maëlys",
];
const NOMS: &[&str] = &[
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "Fournier",
    "Lambert",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Hénault",
    "Le Goff",
    "Saint-Martin",
    "D'Arcy",
];
const DOMAINS: &[&str] = &["orange.fr", "free.fr", "gmail.com", "laposte.net", "sfr.fr", "yahoo.fr"];

/// An import file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The document's `{"clients": [...]}`.
    Clients,
    Array,
    JsonLines,
    Csv,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Clients, Format::Array, Format::JsonLines, Format::Csv];

    /// `json` (the document's object), `array`, `jsonl` or `csv`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" | "clients" => Some(Format::Clients),
            "array" => Some(Format::Array),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Clients | Format::Array => "application/json",
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Clients | Format::Array => "json",
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// xorshift64*: small, fast, and enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, i: u64) -> Rng {
        // Decorrelate neighbouring customers (splitmix64 of seed and index).
        let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Customer `i` (from 0) of `seed`, with the keys of the customer object. Its e-mail
/// and card are unique to `i`, and its account too below 10,000,000.
pub fn customer(seed: u64, i: u64) -> Map<String, Value> {
    let mut rng = Rng::new(seed, i);
    let prenom = rng.pick(PRENOMS);
    let nom = rng.pick(NOMS);
    let local = |s: &str| {
        s.chars()
            .filter_map(|c| match c {
                'é' | 'è' | 'ë' | 'ê' => Some('e'),
                'ï' => Some('i'),
                'ç' => Some('c'),
                ' ' | '\'' => None,
                c => Some(c.to_ascii_lowercase()),
            })
            .collect::<String>()
    };
    let mut c = Map::new();
    c.insert("Nom".into(), json!(nom));
    c.insert("Prenom".into(), json!(prenom));
    c.insert(
        "Email".into(),
        json!(format!("{}.{}.{i}@{}", local(prenom), local(nom), rng.pick(DOMAINS))),
    );
    c.insert(
        "Phone".into(),
        json!(format!("+33{}{:08}", 6 + rng.below(2), rng.below(100_000_000))),
    );
    // At most 10 characters, as the payment service stores it (contract, section 8.5).
    let bank = 1 + rng.below(9);
    c.insert("Compte".into(), json!(format!("BK{bank}{:07}", i % 10_000_000)));
    c.insert("Age".into(), json!(18 + rng.below(73)));
    c.insert("Sexe".into(), json!(if rng.below(2) == 0 { "h" } else { "f" }));
    let credit = rng.below(50_000);
    // One in four credits has a fraction of a cent, as older systems wrote them.
    let credit = if rng.below(4) == 0 {
        json!(credit as f64 + 0.625)
    } else {
        json!(credit)
    };
    c.insert("Credit".into(), credit);
    c.insert(
        "CarteFid".into(),
        if rng.below(3) == 0 {
            Value::Null
        } else {
            json!(1_000_000 + i)
        },
    );
    if rng.below(5) == 0 {
        c.insert(
            "Date_paiement".into(),
            json!(format!(
                "20{:02}-{:02}-{:02}",
                19 + rng.below(8),
                1 + rng.below(12),
                1 + rng.below(28)
            )),
        );
        c.insert("Montant".into(), json!(100 * (1 + rng.below(50))));
        c.insert("Paiement".into(), json!(25));
    }
    c
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 12] = [
    "Nom",
    "Prenom",
    "Email",
    "Phone",
    "Compte",
    "Age",
    "Sexe",
    "Credit",
    "CarteFid",
    "Date_paiement",
    "Montant",
    "Paiement",
];

/// Writes customers `start..start + count` of `seed` to `out` in `format`.
pub fn write_customers(out: &mut impl Write, format: Format, seed: u64, start: u64, count: u64) -> io::Result<()> {
    let range = start..start + count;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS)?;
            for i in range {
                let c = customer(seed, i);
                w.write_record(CSV_COLUMNS.iter().map(|k| match c.get(*k) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                }))?;
            }
            w.flush()?;
        }
        Format::JsonLines => {
            for i in range {
                serde_json::to_writer(&mut *out, &customer(seed, i))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Clients | Format::Array => {
            out.write_all(if format == Format::Clients {
                b"{\"clients\": [\n"
            } else {
                b"[\n"
            })?;
            for i in range {
                if i > start {
                    out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut *out, &customer(seed, i))?;
            }
            out.write_all(if format == Format::Clients { b"\n]}\n" } else { b"\n]\n" })?;
        }
    }
    Ok(())
}

/// The file as bytes (small counts: tests).
pub fn customers_file(format: Format, seed: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_customers(&mut out, format, seed, 0, count).expect("writing to memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_deterministic_and_unique() {
        assert_eq!(customer(7, 3), customer(7, 3));
        assert_ne!(customer(7, 3), customer(8, 3));
        let emails: std::collections::HashSet<_> = (0..1000).map(|i| customer(1, i)["Email"].to_string()).collect();
        assert_eq!(emails.len(), 1000);
    }
}

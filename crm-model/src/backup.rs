//! The backup format: a versioned stream of JSON lines, independent of the store's own
//! files, so that a register can be restored elsewhere (or moved to another store).
//!
//! A dump is, one JSON object per line, each with a `kind`:
//! 1. a `header` naming the format ([`FORMAT`]) and its `version` ([`VERSION`]);
//! 2. every customer (`customer`), each followed at once by its credit ledger
//!    (`ledger`, one line per entry, in entry order, as many as its `ledger_entries`);
//! 3. the tickets (`ticket`), payments (`payment`), the keys of credit items already
//!    applied (`credit_key`), the cursors of ticket consumers (`consumer`) and the
//!    counters that number what is created next (`counter`), and the audit trail
//!    (`audit`, one line per entry, oldest first; since version 2);
//! 4. a `trailer` with the count of every kind, so that a dump cut short is refused
//!    rather than restored in part.
//!
//! Versions: a version adds kinds of records (version 2 added `audit`); a reader
//! refuses a version above its own, and a kind its version does not know. Dumps of
//! version 1 (no audit trail) still restore.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::{CustomerRecord, LedgerEntry, PaymentRecord, TicketRecord};

/// The `format` of a dump's header.
pub const FORMAT: &str = "crm-backup";

/// The version this code writes, and the newest it reads.
pub const VERSION: u32 = 2;

/// The first version whose dumps carry the audit trail.
pub const AUDIT_VERSION: u32 = 2;

/// One line of a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupRecord {
    Header {
        format: String,
        version: u32,
        created_at: DateTime<Utc>,
    },
    Customer {
        customer: CustomerRecord,
    },
    /// An entry of the ledger of the customer with sequence number `customer`: it
    /// follows that customer's line.
    Ledger {
        customer: u64,
        entry: LedgerEntry,
    },
    Ticket {
        ticket: TicketRecord,
    },
    Payment {
        payment: PaymentRecord,
    },
    /// The key of a `POST /api/credit` item already applied, and the customer it
    /// credited: the same item sent again after a restore credits nothing twice.
    CreditKey {
        key: String,
        customer: u64,
    },
    /// The last ticket a consumer (`bi`, `promo`, ...) has received.
    Consumer {
        name: String,
        cursor: u64,
    },
    /// A counter of the store (next customer number, last ticket, payment, card...).
    Counter {
        name: String,
        value: u64,
    },
    /// An entry of the audit trail (since [`AUDIT_VERSION`]).
    Audit {
        entry: AuditEntry,
    },
    Trailer {
        counts: BackupCounts,
    },
}

impl BackupRecord {
    /// The header of a dump written now.
    pub fn header(created_at: DateTime<Utc>) -> BackupRecord {
        BackupRecord::Header {
            format: FORMAT.into(),
            version: VERSION,
            created_at,
        }
    }
}

/// How many records of each kind a dump holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupCounts {
    pub customers: u64,
    pub ledger_entries: u64,
    pub tickets: u64,
    pub payments: u64,
    pub credit_keys: u64,
    pub consumers: u64,
    pub counters: u64,
    /// Absent from the trailers of version 1 dumps, which have no audit trail.
    #[serde(default)]
    pub audit_entries: u64,
}

impl BackupCounts {
    /// Counts `record` (headers and trailers are not counted).
    pub fn count(&mut self, record: &BackupRecord) {
        let counter = match record {
            BackupRecord::Customer { .. } => &mut self.customers,
            BackupRecord::Ledger { .. } => &mut self.ledger_entries,
            BackupRecord::Ticket { .. } => &mut self.tickets,
            BackupRecord::Payment { .. } => &mut self.payments,
            BackupRecord::CreditKey { .. } => &mut self.credit_keys,
            BackupRecord::Consumer { .. } => &mut self.consumers,
            BackupRecord::Counter { .. } => &mut self.counters,
            BackupRecord::Audit { .. } => &mut self.audit_entries,
            BackupRecord::Header { .. } | BackupRecord::Trailer { .. } => return,
        };
        *counter += 1;
    }
}

/// Why a dump cannot be restored: the line (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct BackupError {
    pub line: u64,
    pub message: String,
}

/// Checks the structure of a dump record by record: header first, a version this code
/// reads, each ledger right after its customer and complete, the trailer last with the
/// counts of what came before, nothing after it.
#[derive(Debug, Default)]
pub struct BackupCheck {
    line: u64,
    header_seen: bool,
    /// The dump's version, once its header is read.
    version: u32,
    trailer_seen: bool,
    counts: BackupCounts,
    /// The customer whose ledger may follow: its number, entries expected, seen.
    ledger_of: Option<(u64, u64, u64)>,
}

impl BackupCheck {
    pub fn new() -> BackupCheck {
        BackupCheck::default()
    }

    fn error(&self, message: impl Into<String>) -> BackupError {
        BackupError {
            line: self.line,
            message: message.into(),
        }
    }

    /// Accepts the next record, or says why the dump is refused.
    pub fn accept(&mut self, record: &BackupRecord) -> Result<(), BackupError> {
        self.line += 1;
        if self.trailer_seen {
            return Err(self.error("a record after the trailer"));
        }
        if !self.header_seen {
            return match record {
                BackupRecord::Header { format, version, .. } if format == FORMAT => {
                    if *version > VERSION || *version == 0 {
                        return Err(self.error(format!(
                            "this dump is in version {version} of {FORMAT}; this crm-server reads versions 1 to {VERSION}"
                        )));
                    }
                    self.header_seen = true;
                    self.version = *version;
                    Ok(())
                }
                BackupRecord::Header { format, .. } => {
                    Err(self.error(format!("the format is {format:?}, not {FORMAT:?}")))
                }
                _ => Err(self.error(format!("not a dump: the first line is not a {FORMAT} header"))),
            };
        }
        if let BackupRecord::Ledger { customer, entry } = record {
            return match &mut self.ledger_of {
                Some((id, expected, seen)) if id == customer && *seen < *expected && entry.seq == *seen + 1 => {
                    *seen += 1;
                    self.counts.count(record);
                    Ok(())
                }
                _ => Err(self.error(format!(
                    "ledger entry {} of customer {customer} is not the next entry of the customer before it",
                    entry.seq
                ))),
            };
        }
        self.end_ledger()?;
        match record {
            BackupRecord::Header { .. } => Err(self.error("a second header")),
            BackupRecord::Trailer { counts } => {
                if *counts != self.counts {
                    return Err(self.error(format!(
                        "the trailer counts {counts:?}, but the dump holds {:?}",
                        self.counts
                    )));
                }
                self.trailer_seen = true;
                Ok(())
            }
            BackupRecord::Audit { .. } if self.version < AUDIT_VERSION => Err(self.error(format!(
                "an audit record in a dump of version {}: audit records come with version {AUDIT_VERSION}",
                self.version
            ))),
            BackupRecord::Customer { customer } => {
                self.ledger_of = Some((customer.id, customer.ledger_entries, 0));
                self.counts.count(record);
                Ok(())
            }
            _ => {
                self.counts.count(record);
                Ok(())
            }
        }
    }

    fn end_ledger(&mut self) -> Result<(), BackupError> {
        match self.ledger_of.take() {
            Some((id, expected, seen)) if seen != expected => Err(self.error(format!(
                "customer {id} has {expected} ledger entries, the dump holds {seen}"
            ))),
            _ => Ok(()),
        }
    }

    /// Says whether the dump ended complete (with its trailer).
    pub fn finish(&self) -> Result<BackupCounts, BackupError> {
        if !self.trailer_seen {
            return Err(BackupError {
                line: self.line,
                message: "the dump ends before its trailer: it was cut short".into(),
            });
        }
        Ok(self.counts)
    }
}

/// The records of a dump read line by line (one line in memory at a time), each
/// checked by a [`BackupCheck`]; after the last, [`BackupReader::finish`] says whether
/// the dump was complete.
pub struct BackupReader<R> {
    input: R,
    line: String,
    check: BackupCheck,
    failed: bool,
}

impl<R: BufRead> BackupReader<R> {
    pub fn new(input: R) -> BackupReader<R> {
        BackupReader {
            input,
            line: String::new(),
            check: BackupCheck::new(),
            failed: false,
        }
    }

    pub fn finish(&self) -> Result<BackupCounts, BackupError> {
        self.check.finish()
    }
}

impl<R: BufRead> Iterator for BackupReader<R> {
    type Item = Result<BackupRecord, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.line.clear();
        let line_number = self.check.line + 1;
        let fail = |message: String| BackupError {
            line: line_number,
            message,
        };
        let outcome = match self.input.read_line(&mut self.line) {
            Ok(0) => return None,
            Ok(_) => serde_json::from_str::<BackupRecord>(self.line.trim_end())
                .map_err(|e| fail(format!("unreadable record: {e}")))
                .and_then(|record| self.check.accept(&record).map(|()| record)),
            Err(e) => Err(fail(format!("cannot read the dump: {e}"))),
        };
        self.failed = outcome.is_err();
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cents, LedgerCause, NewCustomer};
    use uuid::Uuid;

    fn customer(id: u64, ledger_entries: u64) -> BackupRecord {
        let mut customer = NewCustomer {
            nom: "Martin".into(),
            prenom: "Léa".into(),
            email: format!("lea{id}@x.fr"),
            ..Default::default()
        }
        .into_record(id, Uuid::new_v4(), Utc::now());
        customer.ledger_entries = ledger_entries;
        BackupRecord::Customer { customer }
    }

    fn entry(customer: u64, seq: u64) -> BackupRecord {
        BackupRecord::Ledger {
            customer,
            entry: LedgerEntry {
                seq,
                at: Utc::now(),
                amount: 100,
                balance: Cents(100 * seq),
                cause: LedgerCause::Credit,
                key: None,
            },
        }
    }

    fn dump(records: &[BackupRecord]) -> String {
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect()
    }

    fn read(text: &str) -> Result<BackupCounts, BackupError> {
        let mut reader = BackupReader::new(text.as_bytes());
        for record in reader.by_ref() {
            record?;
        }
        reader.finish()
    }

    fn complete() -> Vec<BackupRecord> {
        let mut records = vec![
            BackupRecord::header(Utc::now()),
            customer(1, 2),
            entry(1, 1),
            entry(1, 2),
            customer(2, 0),
            BackupRecord::Consumer {
                name: "bi".into(),
                cursor: 3,
            },
        ];
        let mut counts = BackupCounts::default();
        records.iter().for_each(|r| counts.count(r));
        records.push(BackupRecord::Trailer { counts });
        records
    }

    #[test]
    fn a_complete_dump_reads_back_record_for_record() {
        let records = complete();
        let text = dump(&records);
        assert!(text.starts_with(r#"{"kind":"header","format":"crm-backup","version":2"#));
        let read: Vec<_> = BackupReader::new(text.as_bytes()).map(Result::unwrap).collect();
        assert_eq!(read, records);
        let counts = read_counts(&text);
        assert_eq!((counts.customers, counts.ledger_entries, counts.consumers), (2, 2, 1));
    }

    fn read_counts(text: &str) -> BackupCounts {
        read(text).unwrap()
    }

    #[test]
    fn a_dump_cut_short_is_refused() {
        let records = complete();
        let without_trailer = dump(&records[..records.len() - 1]);
        let error = read(&without_trailer).unwrap_err();
        assert!(error.message.contains("cut short"), "{error}");
        // Cut inside a line: that line is unreadable.
        let text = dump(&records);
        let error = read(&text[..text.len() - 10]).unwrap_err();
        assert!(error.message.contains("unreadable"), "{error}");
    }

    #[test]
    fn a_trailer_that_does_not_count_what_came_before_is_refused() {
        let mut records = complete();
        records.remove(4); // the second customer
        assert!(read(&dump(&records)).unwrap_err().message.contains("trailer counts"));
    }

    #[test]
    fn ledgers_must_follow_their_customer_whole_and_in_order() {
        let header = BackupRecord::header(Utc::now());
        let mut check = BackupCheck::new();
        check.accept(&header).unwrap();
        check.accept(&customer(1, 2)).unwrap();
        check.accept(&entry(1, 1)).unwrap();
        let error = check.accept(&customer(2, 0)).unwrap_err();
        assert_eq!(error.line, 4);
        assert!(error.message.contains("has 2 ledger entries"), "{error}");

        let mut check = BackupCheck::new();
        check.accept(&header).unwrap();
        check.accept(&customer(1, 2)).unwrap();
        assert!(check.accept(&entry(1, 2)).is_err(), "entry 1 is missing");
        let mut check = BackupCheck::new();
        check.accept(&header).unwrap();
        check.accept(&customer(1, 1)).unwrap();
        assert!(check.accept(&entry(7, 1)).is_err(), "another customer's entry");
    }

    #[test]
    fn only_known_formats_versions_and_kinds_are_read() {
        let later = r#"{"kind":"header","format":"crm-backup","version":3,"created_at":"2026-01-01T00:00:00Z"}"#;
        assert!(read(later).unwrap_err().message.contains("version 3"));
        let other = r#"{"kind":"header","format":"other","version":1,"created_at":"2026-01-01T00:00:00Z"}"#;
        assert!(read(other).unwrap_err().message.contains("format"));
        let not_first = dump(&complete()[1..]);
        assert!(read(&not_first).unwrap_err().message.contains("not a dump"));
        let unknown_kind = dump(&complete()[..1]) + r#"{"kind":"signature","who":"local"}"# + "\n";
        let error = read(&unknown_kind).unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("unknown variant"), "{error}");
    }

    fn audit(seq: u64) -> BackupRecord {
        let origin = crate::audit::WriteOrigin::local("POST /api/v1/customers");
        BackupRecord::Audit {
            entry: AuditEntry::new(seq, Utc::now(), &origin, Some(Uuid::nil()), "created"),
        }
    }

    #[test]
    fn a_version_1_dump_still_reads_and_only_a_version_2_dump_has_audit_records() {
        // As version 1 wrote them: no audit count in the trailer.
        let v1 = concat!(
            r#"{"kind":"header","format":"crm-backup","version":1,"created_at":"2026-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"kind":"consumer","name":"bi","cursor":3}"#,
            "\n",
            r#"{"kind":"trailer","counts":{"customers":0,"ledger_entries":0,"tickets":0,"payments":0,"#,
            r#""credit_keys":0,"consumers":1,"counters":0}}"#,
            "\n",
        );
        assert_eq!(read(v1).unwrap().consumers, 1);
        let mut with_audit = complete();
        with_audit.insert(with_audit.len() - 1, audit(1));
        with_audit.insert(with_audit.len() - 1, audit(2));
        let Some(BackupRecord::Trailer { counts }) = with_audit.last_mut() else {
            unreachable!()
        };
        counts.audit_entries = 2;
        assert_eq!(read(&dump(&with_audit)).unwrap().audit_entries, 2);
        let v1_with_audit = v1.lines().next().unwrap().to_string() + "\n" + &serde_json::to_string(&audit(1)).unwrap();
        let error = read(&v1_with_audit).unwrap_err();
        assert!(error.message.contains("version 2"), "{error}");
    }
}

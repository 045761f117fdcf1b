//! Domain model of the crm service: the customer object and its JSON shapes, input
//! validation, money in integer cents, search normalisation and list queries.
//!
//! This crate is pure: no I/O, no async. The server and the terminal client share it.

pub mod audit;
pub mod backup;
pub mod customer;
pub mod import;
pub mod input;
pub mod loyalty;
pub mod money;
pub mod payments;
pub mod query;
pub mod search;
pub mod tickets;
pub mod validation;

pub use customer::{Customer, CustomerRecord, Sexe};
pub use import::{ImportMode, ImportOptions, ImportReport, ImportRow, ImportRows, RowError, RowOutcome};
pub use input::{CustomerInput, CustomerPatch, NewCustomer};
pub use loyalty::{CardRef, CreditItem, LedgerCause, LedgerEntry};
pub use money::Cents;
pub use payments::{AllowCredit, Payment, PaymentRecord, PaymentStatus};
pub use query::{ListParams, ListQuery, Page, Sort, SortDirection, SortKey};
pub use tickets::{LegacyTicket, Ticket, TicketRecord, TicketSource};
pub use validation::{FieldError, InputError};

//! Pulls: the tickets of the shops' service and of the web shop, fetched through the
//! gateway and ingested. Sources answer every ticket on every call; ingestion is
//! idempotent on `uid`, so each ticket is credited once however often it is pulled,
//! and whatever a source does wrong costs at most that pull.

use crm_model::tickets::{parse_source_answer, TicketSource};
use crm_model::Ticket;
use serde::{Deserialize, Serialize};

use super::Upstream;
use crate::store::{IngestOutcome, Store, StoreError};

/// Tickets written per atomic store write: a source answers all its tickets at once.
const INGEST_CHUNK: usize = 1_000;

/// Most errors and unmatched `uid`s a summary lists; the counts count them all.
pub const MAX_LISTED: usize = 1_000;

/// Adds `item` to a list answered at most [`MAX_LISTED`] long, counting it in `count`
/// whether it is listed or not.
pub(super) fn push_listed<T>(list: &mut Vec<T>, count: &mut u64, item: T) {
    *count += 1;
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

/// A service the CRM pulls tickets from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// Its name behind the gateway (the `Host` header).
    pub service: &'static str,
    pub path: &'static str,
    /// The origin its tickets are stored with (and the prefix of their `uid`).
    pub origin: &'static str,
    pub shape: TicketSource,
}

/// The shops' service: `GET api/sales` answers `{"tickets": [vente...]}` (older
/// versions a bare list), after a `301` to `api/sales/`.
pub const SHOPS: Source = Source {
    service: "gestion-magasin",
    path: "api/sales",
    origin: "magasin",
    shape: TicketSource::Shops,
};

/// The web shop: `GET ecommerce/getTickets` answers `{"tickets": [...]}` whose
/// `client` is the customer's e-mail.
pub const WEB_SHOP: Source = Source {
    service: "e-commerce",
    path: "ecommerce/getTickets",
    origin: crm_model::tickets::ORIGIN_ECOMMERCE,
    shape: TicketSource::WebShop,
};

/// One problem of a pull: a ticket left out, or the source or the store failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullError {
    /// Position of the ticket in the source's answer, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The ticket's `uid`, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub error: String,
}

impl PullError {
    fn general(error: impl Into<String>) -> PullError {
        PullError {
            index: None,
            uid: None,
            field: None,
            error: error.into(),
        }
    }
}

/// What one pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullSummary {
    /// The service pulled.
    pub source: String,
    /// The origin of its tickets.
    pub origin: String,
    /// Whether a gateway is configured; without one nothing is pulled.
    pub configured: bool,
    /// Said when nothing could be pulled at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Tickets in the source's answer, readable or not.
    pub received: u64,
    /// Tickets stored by this pull.
    pub stored: u64,
    /// Tickets already stored by an earlier pull: skipped.
    pub duplicates: u64,
    /// Credit given to customers by this pull, cents.
    pub credited_cents: u64,
    /// `uid`s of the stored tickets whose customer is not known (yet); at most 1,000.
    pub unmatched: Vec<String>,
    pub unmatched_count: u64,
    /// Stored tickets with no client (anonymous sales).
    pub anonymous: u64,
    /// Tickets left out and failures, at most 1,000; the next pull tries again.
    pub errors: Vec<PullError>,
    pub error_count: u64,
}

impl PullSummary {
    fn new(source: &Source, configured: bool) -> PullSummary {
        PullSummary {
            source: source.service.into(),
            origin: source.origin.into(),
            configured,
            ..PullSummary::default()
        }
    }

    fn push_error(&mut self, error: PullError) {
        push_listed(&mut self.errors, &mut self.error_count, error);
    }

    /// Nothing could be pulled: said in `message` and listed as an error.
    fn failed(mut self, message: String) -> PullSummary {
        self.push_error(PullError::general(message.clone()));
        self.message = Some(message);
        self
    }

    fn add(&mut self, outcome: IngestOutcome) {
        self.stored += outcome.stored;
        self.duplicates += outcome.duplicates;
        // Each sum of credits was bounded by the store.
        self.credited_cents = self.credited_cents.saturating_add(outcome.credited_cents.0);
        self.anonymous += outcome.anonymous;
        self.unmatched_count += outcome.unmatched.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.unmatched.len());
        self.unmatched.extend(outcome.unmatched.into_iter().take(room));
    }
}

/// Pulls every ticket of `source` through the gateway and ingests them. Never fails:
/// what went wrong is in the summary (and the log), and the next pull tries again.
pub async fn pull<S: Store>(store: &S, upstream: &Upstream, source: &Source) -> PullSummary {
    let summary = PullSummary::new(source, upstream.gateway.is_some());
    let Some(gateway) = upstream.gateway.as_ref() else {
        return PullSummary {
            message: Some("no source is configured: start the server with --gateway to pull tickets".into()),
            ..summary
        };
    };
    let body = match gateway.get(source.service, source.path, upstream.pull_limit).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(source = source.service, error = %e, "pull failed");
            return summary.failed(e.to_string());
        }
    };
    // Parsing a large answer takes a while: off the runtime's threads.
    let (shape, origin) = (source.shape, source.origin);
    let parsed = tokio::task::spawn_blocking(move || parse_source_answer(&body, shape, origin)).await;
    let batch = match parsed {
        Ok(Ok(batch)) => batch,
        Ok(Err(e)) => {
            tracing::warn!(source = source.service, error = %e, "pull answer unreadable");
            return summary.failed(format!("{}: {e}", source.service));
        }
        Err(e) => return summary.failed(format!("{}: the answer could not be read: {e}", source.service)),
    };
    let mut summary = PullSummary {
        received: batch.received as u64,
        ..summary
    };
    for rejected in batch.rejected {
        summary.push_error(PullError {
            index: Some(rejected.error.index),
            uid: rejected.uid,
            field: Some(rejected.error.field),
            error: rejected.error.error,
        });
    }
    for chunk in batch.tickets.chunks(INGEST_CHUNK) {
        if let Err(e) = ingest_chunk(store, chunk, &mut summary).await {
            tracing::warn!(source = source.service, error = %e, "pulled tickets could not be stored");
            summary.push_error(PullError::general(format!(
                "the store refused the tickets ({e}); the next pull tries again"
            )));
            break;
        }
    }
    if summary.error_count > 0 {
        tracing::warn!(
            source = source.service,
            errors = summary.error_count,
            "pull left tickets out"
        );
    }
    tracing::info!(
        source = source.service,
        received = summary.received,
        stored = summary.stored,
        duplicates = summary.duplicates,
        credited_cents = summary.credited_cents,
        "pulled"
    );
    summary
}

/// Ingests one chunk in one write. A ticket that would take a customer's money past
/// its bound refuses its whole write, so such a chunk is written again ticket by
/// ticket, leaving out only the offending ones.
async fn ingest_chunk<S: Store>(store: &S, chunk: &[Ticket], summary: &mut PullSummary) -> Result<(), StoreError> {
    match store.ingest_tickets(chunk.to_vec()).await {
        Ok(outcome) => {
            summary.add(outcome);
            Ok(())
        }
        Err(StoreError::AmountOutOfRange { .. }) => {
            for ticket in chunk {
                match store.ingest_tickets(vec![ticket.clone()]).await {
                    Ok(outcome) => summary.add(outcome),
                    Err(StoreError::AmountOutOfRange { error, .. }) => summary.push_error(PullError {
                        index: None,
                        uid: Some(ticket.uid.clone()),
                        field: Some("prix".into()),
                        error,
                    }),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

//! The payment run: every pending deferred payment that is due is sent to the payment
//! service, once.
//!
//! Each payment is marked sent, durably, before the call. `OK` marks it paid; a
//! definite `ERROR` records a refusal (`NbRefus` + 1, due one day later). Anything else
//! (a timeout, a broken connection, an unreadable answer) may have reached the service,
//! so it is neither paid nor refused: it stays pending and marked sent (an import does
//! not replace it), and the next run sends the same payment again. A call that finds a
//! run under way waits for it and sends nothing, so two calls at once send each payment
//! once. A definite answer is never dropped: while the store refuses writes it is
//! retried, then held for the next run.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use crm_model::payments::{parse_payment_service_answer, parse_scheduler_clock, PaymentOutcome};
use crm_model::Payment;
use serde::{Deserialize, Serialize};

use super::gateway::Gateway;
use super::pulls::push_listed;
use crate::config::Clock;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// The payment service behind the gateway and its route.
const PAYMENT_SERVICE: &str = "gestion-paiement";
const PAYMENT_PATH: &str = "api/proceed-payement";

/// The scheduler service, which keeps the simulated date.
const SCHEDULER_SERVICE: &str = "scheduler";
const CLOCK_PATH: &str = "clock/time";

/// Due payments read per page.
const PAGE: usize = 500;

/// Largest answer read from the clock or the payment service, which answer a few bytes.
const SMALL_ANSWER_LIMIT: u64 = 64 * 1024;

/// What one payment run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentRunSummary {
    /// Whether a gateway is configured; without one nothing is sent.
    pub configured: bool,
    /// Said when nothing could be sent at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where the date came from: `system` or `scheduler`.
    pub clock: String,
    /// Payments due on or before this date were sent.
    #[schema(value_type = Option<String>, format = Date)]
    pub date: Option<NaiveDate>,
    /// Pending payments due by then.
    pub due: u64,
    /// Payments sent to the payment service.
    pub sent: u64,
    pub paid: u64,
    /// Definite refusals (`ERROR`).
    pub refused: u64,
    /// Sent without a definite answer: the next run sends them again.
    pub uncertain: u64,
    /// Not sent: the payment service could not be reached.
    pub unreachable: u64,
    /// At most 1,000.
    pub errors: Vec<String>,
    pub error_count: u64,
}

impl PaymentRunSummary {
    fn push_error(&mut self, error: String) {
        tracing::warn!(%error, "payment run");
        push_listed(&mut self.errors, &mut self.error_count, error);
    }

    fn failed(mut self, message: String) -> PaymentRunSummary {
        self.push_error(message.clone());
        self.message = Some(message);
        self
    }
}

/// How long a definite answer of the payment service is retried into the store while
/// it refuses writes (an import being written): the money moved, so the answer must
/// not be dropped.
const RECORD_PATIENCE: Duration = Duration::from_secs(15 * 60);
const RECORD_RETRY_EVERY: Duration = Duration::from_millis(250);

/// Sends every due pending payment. Never fails: what went wrong is in the summary.
///
/// Runs do not overlap: a call that finds a run under way waits for it to end and sends
/// nothing more, so that a refused payment (moved to a next day that may still be due)
/// is not sent twice the same day.
pub async fn run<S: Store>(state: &AppState<S>) -> PaymentRunSummary {
    let upstream = &state.upstream;
    let summary = PaymentRunSummary {
        configured: upstream.gateway.is_some(),
        clock: match state.config.clock {
            Clock::System => "system".into(),
            Clock::Scheduler => "scheduler".into(),
        },
        ..PaymentRunSummary::default()
    };
    let Some(gateway) = upstream.gateway.as_ref() else {
        return PaymentRunSummary {
            message: Some("no payment service is configured: start the server with --gateway to send payments".into()),
            ..summary
        };
    };
    let _turn = match upstream.payment_run.try_lock() {
        Ok(turn) => turn,
        Err(_) => {
            drop(upstream.payment_run.lock().await);
            return PaymentRunSummary {
                message: Some("a payment run was under way: this call waited for it and sent nothing more".into()),
                ..summary
            };
        }
    };
    // Several servers on one store: the run's lease makes their runs take turns as the
    // runs of one server do.
    let holder = uuid::Uuid::new_v4();
    let lease = run_lease(state.config.upstream_timeout);
    match state.store.claim_payment_run(holder, lease).await {
        Ok(true) => {}
        Ok(false) => {
            wait_for_other_run(state, lease).await;
            return PaymentRunSummary {
                message: Some(
                    "a payment run was under way on another server: this call waited for it and sent nothing more"
                        .into(),
                ),
                ..summary
            };
        }
        Err(e) => {
            return summary.failed(format!(
                "the payment run could not take its turn, nothing was sent: {e}"
            ))
        }
    }
    let summary = run_holding(state, gateway, holder, lease, summary).await;
    if let Err(e) = state.store.release_payment_run(holder).await {
        // It expires on its own: the next run waits for that at worst.
        tracing::warn!(error = %e, "the payment run's lease could not be given back");
    }
    summary
}

/// How long a run's lease lasts: it is renewed before each payment, so it must outlast
/// one call to the payment service and the recording of its answer.
fn run_lease(upstream_timeout: Duration) -> Duration {
    upstream_timeout * 3 + Duration::from_secs(30)
}

/// Waits until no other run holds the lease (or, at most, until it would have expired).
async fn wait_for_other_run<S: Store>(state: &AppState<S>, lease: Duration) {
    let probe = uuid::Uuid::new_v4();
    let deadline = tokio::time::Instant::now() + lease;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(true) = state.store.claim_payment_run(probe, Duration::from_millis(1)).await {
            let _ = state.store.release_payment_run(probe).await;
            return;
        }
    }
}

/// The run itself, its lease held by `holder`.
async fn run_holding<S: Store>(
    state: &AppState<S>,
    gateway: &Gateway,
    holder: uuid::Uuid,
    lease: Duration,
    summary: PaymentRunSummary,
) -> PaymentRunSummary {
    let upstream = &state.upstream;
    let mut summary = summary;
    // Answers an earlier run could not record are recorded first; their payments are
    // not sent again.
    let held_back = record_held_answers(state, &mut summary).await;
    let date = match today(state.config.clock, gateway).await {
        Ok(date) => date,
        Err(e) => return summary.failed(format!("no date for the payment run, nothing was sent: {e}")),
    };
    summary.date = Some(date);
    // Collected first: a refused payment moves a day later, which may still be due,
    // and must not be sent twice in one run.
    let due = match due_payments(&state.store, date).await {
        Ok(due) => due,
        Err(e) => return summary.failed(format!("the due payments could not be read: {e}")),
    };
    summary.due = due.len() as u64;
    for (position, payment) in due.iter().enumerate() {
        if upstream.stopping.load(Ordering::Acquire) {
            summary.push_error("the server is stopping: the next run sends the rest".into());
            break;
        }
        if held_back.contains(&payment.id) {
            continue;
        }
        // Renewed before each payment; a run that lost it (stalled past its lease)
        // leaves the rest to the run that took it.
        match state.store.claim_payment_run(holder, lease).await {
            Ok(true) => {}
            Ok(false) => {
                summary.push_error("the payment run's lease passed to another run: it sends the rest".into());
                break;
            }
            Err(e) => {
                summary.push_error(format!(
                    "the payment run could not renew its turn, the next run sends the rest: {e}"
                ));
                break;
            }
        }
        match send(state, gateway, payment, &mut summary).await {
            Ok(Sent::Done) => {}
            // The service cannot be reached: the others would not reach it either.
            Ok(Sent::Unreachable) => {
                summary.unreachable += (due.len() - position - 1) as u64;
                break;
            }
            Err(e) => summary.push_error(format!("payment {}: {e}", payment.id)),
        }
    }
    tracing::info!(
        %date,
        due = summary.due,
        paid = summary.paid,
        refused = summary.refused,
        uncertain = summary.uncertain,
        "payment run"
    );
    summary
}

/// Today, by the configured clock.
async fn today(clock: Clock, gateway: &Gateway) -> Result<NaiveDate, String> {
    match clock {
        Clock::System => Ok(Utc::now().date_naive()),
        Clock::Scheduler => {
            let body = gateway
                .get(SCHEDULER_SERVICE, CLOCK_PATH, SMALL_ANSWER_LIMIT)
                .await
                .map_err(|e| e.to_string())?;
            parse_scheduler_clock(&body)
        }
    }
}

async fn due_payments<S: Store>(store: &S, date: NaiveDate) -> Result<Vec<Payment>, StoreError> {
    let mut due = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.payments_due(date, cursor.as_deref(), PAGE).await?;
        due.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(due),
        }
    }
}

/// How sending one payment went, beyond what the summary counts.
enum Sent {
    Done,
    /// Not sent: the payment service could not be reached.
    Unreachable,
}

/// Sends one payment: marked sent first, then the call, then its answer recorded.
async fn send<S: Store>(
    state: &AppState<S>,
    gateway: &Gateway,
    payment: &Payment,
    summary: &mut PaymentRunSummary,
) -> Result<Sent, StoreError> {
    let store = &state.store;
    let Some(customer) = store.customer(payment.id_client).await?.filter(|c| !c.erased) else {
        summary.push_error(format!(
            "payment {}: its customer is erased or unknown, so it has no account to charge; not sent",
            payment.id
        ));
        return Ok(Sent::Done);
    };
    // Paid or replaced since it was listed: nothing to send.
    if store.mark_payment_sent(payment.id, Some(Utc::now())).await?.is_none() {
        return Ok(Sent::Done);
    }
    let form = [
        ("client_id", payment.id_client.to_string()),
        ("card", customer.compte),
        ("amount", payment.montant.0.to_string()),
    ];
    let outcome = match gateway
        .post_form(PAYMENT_SERVICE, PAYMENT_PATH, &form, SMALL_ANSWER_LIMIT)
        .await
    {
        Ok(body) => parse_payment_service_answer(&body),
        Err(e) if e.may_have_reached() => PaymentOutcome::Uncertain(e.to_string()),
        Err(e) => {
            store.mark_payment_sent(payment.id, None).await?;
            summary.unreachable += 1;
            summary.push_error(format!("payment {} not sent: {e}", payment.id));
            return Ok(Sent::Unreachable);
        }
    };
    summary.sent += 1;
    match outcome {
        PaymentOutcome::Paid => {
            record_answer(state, payment.id, true, summary).await;
            summary.paid += 1;
        }
        PaymentOutcome::Refused(message) => {
            tracing::info!(payment = payment.id, %message, "payment refused");
            record_answer(state, payment.id, false, summary).await;
            summary.refused += 1;
        }
        PaymentOutcome::Uncertain(why) => {
            summary.uncertain += 1;
            summary.push_error(format!(
                "payment {}: no definite answer ({why}); sent again by the next run",
                payment.id
            ));
        }
    }
    Ok(Sent::Done)
}

/// Records the payment service's definite answer, waiting while the store refuses
/// writes for an import. An answer the store still cannot take is held in memory: the
/// next run records it before sending anything, and does not send that payment again.
async fn record_answer<S: Store>(state: &AppState<S>, id: u64, paid: bool, summary: &mut PaymentRunSummary) {
    let deadline = tokio::time::Instant::now() + RECORD_PATIENCE;
    loop {
        match state.store.payment_result(id, paid).await {
            Ok(_) => return,
            Err(StoreError::ImportRunning) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(RECORD_RETRY_EVERY).await;
            }
            Err(e @ (StoreError::PaymentNotPending { .. } | StoreError::PaymentNotFound)) => {
                summary.push_error(format!("payment {id}: its answer could not be recorded: {e}"));
                return;
            }
            Err(e) => {
                summary.push_error(format!(
                    "payment {id}: its answer ({}) is held until the store takes it: {e}",
                    if paid { "paid" } else { "refused" }
                ));
                state.upstream.held_answers().push((id, paid));
                return;
            }
        }
    }
}

/// Records the answers held by earlier runs; answers the ids still held.
async fn record_held_answers<S: Store>(state: &AppState<S>, summary: &mut PaymentRunSummary) -> HashSet<u64> {
    let held: Vec<(u64, bool)> = std::mem::take(&mut *state.upstream.held_answers());
    for (id, paid) in held {
        record_answer(state, id, paid, summary).await;
    }
    state.upstream.held_answers().iter().map(|(id, _)| *id).collect()
}

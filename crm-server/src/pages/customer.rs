//! `GET /api/customers/<IdClient>`: one customer, with sections for its tickets, credit
//! ledger (and the chart of it) and deferred payments.
//!
//! The sections are optional in [`CustomerPageView`]: a section is shown once the
//! handler can read it from the store, and left out until then.
//!
//! A live customer's page also carries what staff do with it (see [`super::actions`]
//! and [`super::customer_form`]): the link to the edit form, "Attribuer une carte",
//! "Remettre les refus à zéro" and the "Demande de crédit" form. After one of them the
//! page is reached with `?notice=...` or `?credit=...`, and shows a notice whose facts
//! (card number, payment, refusals) are read from the store, never from the link.

use askama::Template;
use crm_model::payments::credit_allowed;
use crm_model::{Cents, CustomerRecord, LedgerCause, LedgerEntry, Sexe};
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{credit_chart, format, render, PageError};
use crate::state::AppState;
use crate::store::{AuditQuery, Store};
use crm_model::audit::AuditEntry;

/// Everything the customer page can show. `None` leaves a section out; `Some` of an
/// empty list shows the section saying it is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerPageView {
    pub customer: CustomerRecord,
    pub tickets: Option<Vec<TicketView>>,
    /// The customer's ledger, oldest first; also drawn as the credit chart.
    pub ledger: Option<Vec<LedgerEntry>>,
    pub payments: Option<Vec<PaymentView>>,
    /// The latest entries of the customer's audit trail, newest first ("Historique"):
    /// shown to those who may read the audit trail (`admin`, or everyone without
    /// tokens).
    pub history: Option<Vec<AuditEntry>>,
}

impl CustomerPageView {
    /// The customer alone, no section.
    pub fn new(customer: CustomerRecord) -> CustomerPageView {
        CustomerPageView {
            customer,
            tickets: None,
            ledger: None,
            payments: None,
            history: None,
        }
    }
}

/// A ticket as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// `<origin><id>`.
    pub uid: String,
    /// The ticket's date as its source gave it.
    pub date: String,
    pub origin: String,
    pub prix: Cents,
    pub mode_paiement: String,
    pub articles: Vec<ArticleView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleView {
    pub code_produit: String,
    pub quantity: u64,
    pub prix_avant: Cents,
    pub prix_apres: Cents,
}

/// A scheduled deferred payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    pub id: String,
    pub date: chrono::NaiveDate,
    pub montant: Cents,
    /// As the API writes it (`pending`, `paid`, ...).
    pub status: String,
    pub attempts: u32,
}

pub(super) fn cause_label(cause: LedgerCause) -> &'static str {
    match cause {
        LedgerCause::Opening => "crédit d'ouverture",
        LedgerCause::Credit => "crédit de caisse",
        LedgerCause::Ticket => "achat",
        LedgerCause::ImportAdjustment => "ajustement par import",
    }
}

struct Fact {
    label: &'static str,
    value: String,
}

struct LedgerRow {
    seq: u64,
    at: String,
    at_iso: String,
    cause: &'static str,
    key: String,
    amount: String,
    balance: String,
}

struct HistoryRow {
    seq: u64,
    at: String,
    at_iso: String,
    actor: String,
    route: String,
    summary: String,
}

struct PaymentRow {
    id: String,
    date: String,
    montant: String,
    status: String,
    attempts: u32,
}

/// What the page says after an action, named by its query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    Created,
    Saved,
    Unchanged,
    Card,
    Reset,
    /// The credit was allowed and this payment scheduled.
    CreditAllowed(u64),
    CreditRefused,
}

impl Notice {
    /// The query string that asks for this notice.
    pub(super) fn query(self) -> String {
        match self {
            Notice::Created => "notice=created".into(),
            Notice::Saved => "notice=saved".into(),
            Notice::Unchanged => "notice=unchanged".into(),
            Notice::Card => "notice=card".into(),
            Notice::Reset => "notice=reset".into(),
            Notice::CreditAllowed(id) => format!("credit={id}"),
            Notice::CreditRefused => "credit=refused".into(),
        }
    }

    /// The notice a query string asks for; anything unreadable is none.
    fn parse(raw_query: &str) -> Option<Notice> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query).ok()?;
        pairs
            .iter()
            .rev()
            .find_map(|(key, value)| match (key.as_str(), value.as_str()) {
                ("notice", "created") => Some(Notice::Created),
                ("notice", "saved") => Some(Notice::Saved),
                ("notice", "unchanged") => Some(Notice::Unchanged),
                ("notice", "card") => Some(Notice::Card),
                ("notice", "reset") => Some(Notice::Reset),
                ("credit", "refused") => Some(Notice::CreditRefused),
                ("credit", id) => id.parse().ok().map(Notice::CreditAllowed),
                _ => None,
            })
    }
}

/// A notice as shown: `ok` or `bad`, and its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Banner {
    class: &'static str,
    text: String,
}

/// The credit form as posted, with its errors, to show it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CreditForm {
    pub montant: String,
    pub date: String,
    pub montant_error: Option<String>,
    pub date_error: Option<String>,
}

/// What the page shows besides the customer: a notice, the credit form as posted, and
/// the refusal limit of the credit decision.
#[derive(Debug, Clone, Default)]
pub(super) struct PageExtras {
    pub banner: Option<Banner>,
    pub credit: CreditForm,
    pub refusal_limit: Option<u32>,
    /// The CSRF token the page's forms post back.
    pub csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage<'a> {
    heading: String,
    erased: bool,
    id_client: String,
    has_card: bool,
    nb_refus: u32,
    refusal_limit: Option<u32>,
    banner: Option<Banner>,
    credit: CreditForm,
    details: Vec<Fact>,
    account: Vec<Fact>,
    chart: Option<String>,
    ledger: Option<Vec<LedgerRow>>,
    tickets: Option<&'a [TicketView]>,
    payments: Option<Vec<PaymentRow>>,
    history: Option<Vec<HistoryRow>>,
    csrf: Option<String>,
}

pub(super) fn heading(c: &CustomerRecord) -> String {
    let name = format!("{} {}", c.prenom.trim(), c.nom.trim()).trim().to_string();
    match (c.erased, name.is_empty()) {
        (true, _) => format!("Client n° {} (effacé)", c.id),
        (false, true) => format!("Client n° {}", c.id),
        (false, false) => name,
    }
}

fn details(c: &CustomerRecord) -> Vec<Fact> {
    let fact = |label, value: String| Fact { label, value };
    vec![
        fact("IdClient", c.id_client.to_string()),
        fact("N°", c.id.to_string()),
        fact("Nom", c.nom.clone()),
        fact("Prénom", c.prenom.clone()),
        fact("e-mail", c.email.clone()),
        fact("Téléphone", c.phone.clone()),
        fact("Âge", c.age.map(|a| format!("{a} ans")).unwrap_or_default()),
        fact(
            "Sexe",
            match c.sexe {
                Sexe::H => "homme",
                Sexe::F => "femme",
                Sexe::Unspecified => "",
            }
            .to_string(),
        ),
        fact("Compte", c.compte.clone()),
        fact("Client depuis le", format::date_time(c.created_at)),
    ]
}

fn account(c: &CustomerRecord) -> Vec<Fact> {
    let fact = |label, value: String| Fact { label, value };
    vec![
        fact(
            "Carte de fidélité",
            c.carte_fid
                .map_or_else(|| "aucune carte".to_string(), |n| format!("n° {n}")),
        ),
        fact("Crédit", c.credit.to_euros()),
        fact("Panier moyen", c.panier_moyen().to_euros()),
        fact("Tickets", format::count(c.ticket_count)),
        fact("Date de paiement", c.next_payment.map(format::date).unwrap_or_default()),
        fact("Montant", c.pending_payments.to_euros()),
        fact("Nb refus", c.nb_refus.to_string()),
    ]
}

/// The customer page of `view`.
pub fn customer_page(view: &CustomerPageView) -> Response {
    render_page(view, PageExtras::default(), StatusCode::OK)
}

fn render_page(view: &CustomerPageView, extras: PageExtras, status: StatusCode) -> Response {
    let c = &view.customer;
    let page = CustomerPage {
        heading: heading(c),
        erased: c.erased,
        id_client: c.id_client.to_string(),
        has_card: c.carte_fid.is_some(),
        nb_refus: c.nb_refus,
        refusal_limit: extras.refusal_limit,
        banner: extras.banner.filter(|_| !c.erased),
        credit: extras.credit,
        csrf: extras.csrf,
        details: details(c),
        account: account(c),
        chart: view.ledger.as_deref().map(credit_chart),
        ledger: view.ledger.as_ref().map(|entries| {
            entries
                .iter()
                .map(|e| LedgerRow {
                    seq: e.seq,
                    at: format::date_time(e.at),
                    at_iso: e.at.to_rfc3339(),
                    cause: cause_label(e.cause),
                    key: e.key.clone().unwrap_or_default(),
                    amount: format::signed_euros(e.amount),
                    balance: e.balance.to_euros(),
                })
                .collect()
        }),
        tickets: view.tickets.as_deref(),
        payments: view.payments.as_ref().map(|payments| {
            payments
                .iter()
                .map(|p| PaymentRow {
                    id: p.id.clone(),
                    date: format::date(p.date),
                    montant: p.montant.to_euros(),
                    status: p.status.clone(),
                    attempts: p.attempts,
                })
                .collect()
        }),
        history: view.history.as_ref().map(|entries| {
            entries
                .iter()
                .map(|e| HistoryRow {
                    seq: e.seq,
                    at: format::date_time(e.at),
                    at_iso: e.at.to_rfc3339(),
                    actor: e.actor.clone(),
                    route: e.route.clone(),
                    summary: e.summary.clone(),
                })
                .collect()
        }),
    };
    render(&page, status)
}

/// One customer's page (HTML); an unknown or malformed id is the HTML "not found" page.
#[utoipa::path(get, path = "/api/customers/{IdClient}", tag = "pages", operation_id = "customer_page",
    params(("IdClient" = String, Path, description = "The customer's UUID"),
        ("notice" = Option<String>, Query, description = "`created`, `saved`, `unchanged`, `card` or `reset`: the notice of the action just done"),
        ("credit" = Option<String>, Query, description = "The outcome of a credit request: the id of the payment it scheduled, or `refused`")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "Unknown customer (HTML page)", content_type = "text/html", body = String)))]
pub async fn page<S: Store>(
    state: &AppState<S>,
    id: &str,
    raw_query: &str,
    csrf: Option<String>,
    history: bool,
) -> Response {
    let Ok(id_client) = Uuid::parse_str(id) else {
        return PageError::customer_not_found().into_response();
    };
    let notice = Notice::parse(raw_query);
    match show(
        state,
        id_client,
        notice,
        CreditForm::default(),
        StatusCode::OK,
        csrf,
        history,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The page again with the credit form as posted and its errors (`422`), without
/// the history: the form is what matters there.
pub(super) async fn page_with_credit_form<S: Store>(
    state: &AppState<S>,
    id_client: Uuid,
    credit: CreditForm,
    csrf: Option<String>,
) -> Result<Response, PageError> {
    show(
        state,
        id_client,
        None,
        credit,
        StatusCode::UNPROCESSABLE_ENTITY,
        csrf,
        false,
    )
    .await
}

/// Whether the request may see the audit trail, as `GET /api/v1/audit` decides it: an
/// `admin` token (or session), or anyone when no tokens are configured.
pub(super) fn may_read_audit<S>(state: &AppState<S>, headers: &warp::http::HeaderMap) -> bool {
    state
        .access
        .principal(headers)
        .is_some_and(|p| p.role == crate::access::Role::Admin)
}

async fn show<S: Store>(
    state: &AppState<S>,
    id_client: Uuid,
    notice: Option<Notice>,
    credit: CreditForm,
    status: StatusCode,
    csrf: Option<String>,
    history: bool,
) -> Result<Response, PageError> {
    let mut view = view(state, id_client)
        .await?
        .ok_or_else(PageError::customer_not_found)?;
    if history {
        let query = AuditQuery {
            customer: Some(id_client),
            after: None,
            limit: HISTORY_LIMIT,
            newest_first: true,
        };
        view.history = Some(state.store.audit(&query).await?.items);
    }
    let refusal_limit = state.config.refusal_limit;
    let banner = match notice {
        Some(notice) => banner(state, &view.customer, notice, refusal_limit).await?,
        None => None,
    };
    let extras = PageExtras {
        banner,
        credit,
        refusal_limit: Some(refusal_limit),
        csrf,
    };
    Ok(render_page(&view, extras, status))
}

/// The sentence of `notice`, from what the store holds now; `None` when the store does
/// not bear it out (a link typed by hand, or something changed since).
async fn banner<S: Store>(
    state: &AppState<S>,
    c: &CustomerRecord,
    notice: Notice,
    refusal_limit: u32,
) -> Result<Option<Banner>, crate::store::StoreError> {
    let ok = |text: String| Some(Banner { class: "ok", text });
    Ok(match notice {
        Notice::Created => ok(format!("Client créé, avec l'IdClient {}.", c.id_client)),
        Notice::Saved => ok("Modifications enregistrées.".into()),
        Notice::Unchanged => ok("Aucun champ n'a changé : rien n'a été enregistré.".into()),
        Notice::Card => c
            .carte_fid
            .and_then(|n| ok(format!("Carte de fidélité n° {n} attribuée."))),
        Notice::Reset if c.nb_refus == 0 => {
            ok("Refus de paiement remis à zéro : le client peut de nouveau obtenir un crédit.".into())
        }
        Notice::Reset => None,
        Notice::CreditAllowed(id) => {
            let payments = state.store.customer_payments(c.id_client, id.checked_sub(1), 1).await?;
            payments.items.into_iter().find(|p| p.id == id).and_then(|p| {
                ok(format!(
                    "Crédit accordé : un paiement différé de {} est programmé le {}.",
                    p.montant.to_euros(),
                    format::date(p.date)
                ))
            })
        }
        Notice::CreditRefused if !credit_allowed(c.nb_refus, refusal_limit) => Some(Banner {
            class: "bad",
            text: format!(
                "Crédit refusé : ce client a {} (limite : {refusal_limit}). Rien n'a été programmé. \
                 Remettez les refus à zéro pour l'autoriser de nouveau.",
                format::counted(c.nb_refus.into(), "refus de paiement", "refus de paiement")
            ),
        }),
        Notice::CreditRefused => None,
    })
}

/// Most tickets, ledger entries and payments one page shows (the API pages the rest).
const SECTION_LIMIT: usize = 200;

/// The latest audit entries the page shows (`GET /api/v1/audit?customer=` has all).
const HISTORY_LIMIT: usize = 20;

async fn view<S: Store>(
    state: &AppState<S>,
    id_client: Uuid,
) -> Result<Option<CustomerPageView>, crate::store::StoreError> {
    let Some(customer) = state.store.customer(id_client).await? else {
        return Ok(None);
    };
    let tickets = state.store.customer_tickets(id_client, None, SECTION_LIMIT).await?;
    let ledger = state.store.ledger(id_client, None, SECTION_LIMIT).await?;
    let payments = state.store.customer_payments(id_client, None, SECTION_LIMIT).await?;
    Ok(Some(CustomerPageView {
        customer,
        tickets: Some(tickets.items.iter().map(|t| ticket_view(&t.ticket)).collect()),
        ledger: Some(ledger.items),
        payments: Some(payments.items.iter().map(payment_view).collect()),
        history: None,
    }))
}

fn ticket_view(ticket: &crm_model::Ticket) -> TicketView {
    TicketView {
        uid: ticket.uid.clone(),
        date: ticket.date.map_or_else(
            || "date inconnue".to_string(),
            |d| d.format("%d/%m/%Y %H:%M").to_string(),
        ),
        origin: ticket.origin.clone(),
        prix: ticket.prix,
        mode_paiement: ticket.mode_paiement.clone(),
        articles: ticket
            .articles
            .iter()
            .map(|a| ArticleView {
                code_produit: a.code_produit.clone(),
                quantity: a.quantity,
                prix_avant: a.prix_avant,
                prix_apres: a.prix_apres,
            })
            .collect(),
    }
}

fn payment_view(payment: &crm_model::Payment) -> PaymentView {
    PaymentView {
        id: payment.id.to_string(),
        date: payment.date,
        montant: payment.montant,
        status: serde_json::to_value(payment.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        attempts: payment.attempts,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};
    use http_body_util::BodyExt;

    use super::*;

    fn record() -> CustomerRecord {
        let now = Utc::now();
        CustomerRecord {
            id: 7,
            id_client: Uuid::nil(),
            nom: "<b>Doe</b>".into(),
            prenom: "Jon".into(),
            email: "jon@doe.fr".into(),
            phone: String::new(),
            compte: String::new(),
            age: Some(30),
            sexe: Sexe::F,
            carte_fid: Some(33),
            credit: Cents(1500),
            nb_refus: 0,
            next_payment: None,
            pending_payments: Cents::ZERO,
            ledger_entries: 1,
            ticket_count: 0,
            ticket_total: Cents::ZERO,
            erased: false,
            created_at: now,
            updated_at: now,
        }
    }

    async fn html(view: &CustomerPageView) -> String {
        let response = customer_page(view);
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sections_show_only_when_given() {
        let bare = html(&CustomerPageView::new(record())).await;
        assert!(bare.contains("<h1>Jon &#60;b&#62;Doe&#60;/b&#62;</h1>"), "{bare}");
        assert!(bare.contains("n° 33") && bare.contains("15,00\u{a0}€"));
        for section in [
            "Mouvements de crédit",
            "Tickets</h2>",
            "Paiements différés",
            "<svg",
            "Historique",
        ] {
            assert!(!bare.contains(section), "{section} shown without data");
        }

        let mut view = CustomerPageView::new(record());
        view.ledger = Some(vec![LedgerEntry {
            seq: 1,
            at: Utc::now(),
            amount: 1500,
            balance: Cents(1500),
            cause: LedgerCause::Opening,
            key: None,
        }]);
        view.tickets = Some(vec![TicketView {
            uid: "magasin12".into(),
            date: "2024-03-01".into(),
            origin: "magasin".into(),
            prix: Cents(3000),
            mode_paiement: "CARD".into(),
            articles: vec![ArticleView {
                code_produit: "<i>X1</i>".into(),
                quantity: 2,
                prix_avant: Cents(1600),
                prix_apres: Cents(1500),
            }],
        }]);
        view.payments = Some(Vec::new());
        let full = html(&view).await;
        assert!(
            full.contains("<svg") && full.contains("crédit d&#39;ouverture"),
            "{full}"
        );
        assert!(
            full.contains("2 × &#60;i&#62;X1&#60;/i&#62; : 15,00\u{a0}€ (au lieu de 16,00\u{a0}€)"),
            "{full}"
        );
        assert!(full.contains("Aucun paiement différé."));
    }

    #[tokio::test]
    async fn payments_are_listed_with_their_due_date() {
        let mut view = CustomerPageView::new(record());
        view.payments = Some(vec![PaymentView {
            id: "p1".into(),
            date: NaiveDate::from_ymd_opt(2024, 5, 2).unwrap(),
            montant: Cents(1330),
            status: "pending".into(),
            attempts: 1,
        }]);
        let page = html(&view).await;
        assert!(
            page.contains(
                "<th scope=\"row\">p1</th><td>02/05/2024</td><td class=\"num\">13,30\u{a0}€</td><td>pending</td>"
            ),
            "{page}"
        );
    }
}

//! One customer: their card of details, then their tickets, ledger, scheduled payments
//! or history (audit trail).

use crm_model::{Cents, Customer, Sexe};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, HighlightSpacing, Paragraph, Table, TableState, Tabs};
use ratatui::Frame;

use super::columns::{self, Column};
use crate::api::{AuditEntry, LedgerEntry, ScheduledPayment, Ticket};
use crate::app::paged::PagedList;
use crate::app::{App, CustomerDetail, DetailPane};

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(detail) = &app.customers.detail else { return };
    let [card_area, tabs_area, list_area] = Layout::vertical([
        Constraint::Length(super::DETAIL_CARD_ROWS),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    render_card(&detail.customer, frame, card_area);
    let selected = DetailPane::ALL.iter().position(|p| *p == detail.pane).unwrap_or(0);
    let tabs = Tabs::new(DetailPane::ALL.iter().map(|p| p.title()))
        .select(selected)
        .highlight_style(Style::new().fg(super::ACCENT).bold().reversed());
    frame.render_widget(tabs, tabs_area);
    render_pane(app, detail, frame, list_area);
}

/// Width of a label in the customer card.
const CARD_LABEL_WIDTH: usize = 15;

/// The customer's fields in two columns (each half of the card), values cut to their
/// column with `…`, except amounts, which always fit (2^53-1 cents is 23 columns).
fn render_card(customer: &Customer, frame: &mut Frame, area: Rect) {
    let title = format!(" {} {} ", customer.prenom, customer.nom);
    let half = (area.width.saturating_sub(2) / 2) as usize;
    // Each field: its label, its value, one column before the next field.
    let value_width = half.saturating_sub(CARD_LABEL_WIDTH + 1).max(8);
    let field = |label: &'static str, value: String, width: usize| {
        vec![
            Span::styled(format!("{label:<CARD_LABEL_WIDTH$}"), Style::new().dark_gray()),
            Span::raw(format!("{:<width$} ", cut(&value, width))),
        ]
    };
    let pair = |a: Vec<Span<'static>>, b: Vec<Span<'static>>| Line::from([a, b].concat());
    let card = customer
        .carte_fid
        .map(|c| c.to_string())
        .unwrap_or_else(|| "none (c to issue)".into());
    let sexe = match customer.sexe {
        Sexe::H => "h",
        Sexe::F => "f",
        Sexe::Unspecified => "-",
    };
    let left = |label, value| field(label, value, value_width);
    let right = |label, value| field(label, value, value_width);
    let lines = vec![
        // The IdClient is never cut: on a narrow card it pushes the id along.
        pair(
            field("IdClient", customer.id_client.to_string(), value_width.max(37)),
            right("id", customer.id.to_string()),
        ),
        pair(
            left("E-mail", customer.email.clone()),
            right("Phone", customer.phone.clone()),
        ),
        pair(left("Card", card), right("Credit", customer.credit.to_euros())),
        pair(
            left("Avg basket", customer.panier_moyen.to_euros()),
            right("Refusals", customer.nb_refus.to_string()),
        ),
        pair(
            left(
                "Next payment",
                customer
                    .date_paiement
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            right("Pending", customer.montant.to_euros()),
        ),
        pair(
            left("Age", customer.age.map(|a| a.to_string()).unwrap_or_else(|| "-".into())),
            right("Sexe / Account", format!("{sexe} / {}", customer.compte)),
        ),
    ];
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title.bold())), area);
}

/// `text` in at most `width` columns, its end replaced by `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(width.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

fn render_pane(app: &App, detail: &CustomerDetail, frame: &mut Frame, area: Rect) {
    let rows = app.detail_rows();
    let date_time = |text: &str| text.chars().take(16).collect::<String>().replace('T', " ");
    match detail.pane {
        DetailPane::Tickets => {
            let tickets = &detail.tickets.items;
            let columns = [
                Column::fitted("Date", 16, 0, false),
                Column::text_fitting("Ticket", tickets.iter().map(|t| t.uid.as_str()), (10, 24), 1, 2),
                Column::text_fitting("Origin", tickets.iter().map(|t| t.origin.as_str()), (7, 12), 4, 1),
                Column::text_fitting(
                    "Payment",
                    tickets.iter().map(|t| t.mode_paiement.as_str()),
                    (7, 10),
                    3,
                    1,
                ),
                Column::amount("Amount", tickets.iter().map(|t| t.prix.to_euros()), 2),
                Column::fitted("Articles", 0, 5, true),
            ];
            let cells = |t: &Ticket| {
                vec![
                    date_time(&t.date),
                    t.uid.clone(),
                    t.origin.clone(),
                    t.mode_paiement.clone(),
                    t.prix.to_euros(),
                    t.articles.len().to_string(),
                ]
            };
            render_list(&detail.tickets, rows, &columns, cells, frame, area)
        }
        DetailPane::Ledger => {
            let ledger = &detail.ledger.items;
            let columns = [
                Column::fitted("Date", 16, 0, false),
                Column::text_fitting("Cause", ledger.iter().map(|e| e.cause.as_str()), (10, 18), 3, 1),
                Column::amount("Movement", ledger.iter().map(|e| signed_euros(e.amount)), 1),
                Column::amount("Balance", ledger.iter().filter_map(|e| e.balance).map(signed_euros), 2),
            ];
            let cells = |e: &LedgerEntry| {
                vec![
                    date_time(&e.at),
                    e.cause.clone(),
                    signed_euros(e.amount),
                    e.balance.map(signed_euros).unwrap_or_default(),
                ]
            };
            render_list(&detail.ledger, rows, &columns, cells, frame, area)
        }
        DetailPane::Payments => {
            let payments = &detail.payments.items;
            let columns = [
                Column::fitted("Due", 10, 0, false),
                Column::text_fitting("Payment", payments.iter().map(|p| p.id.as_str()), (7, 12), 3, 1),
                Column::text_fitting("Status", payments.iter().map(|p| p.status.as_str()), (7, 10), 2, 1),
                Column::fitted("Attempts", 0, 4, true),
                Column::amount("Amount", payments.iter().map(|p| p.montant.to_euros()), 1),
            ];
            let cells = |p: &ScheduledPayment| {
                vec![
                    p.date.map(|d| d.to_string()).unwrap_or_default(),
                    p.id.clone(),
                    p.status.clone(),
                    p.attempts.to_string(),
                    p.montant.to_euros(),
                ]
            };
            render_list(&detail.payments, rows, &columns, cells, frame, area)
        }
        DetailPane::History => {
            let history = &detail.history.items;
            let columns = [
                Column::fitted("Date", 16, 0, false),
                Column::text_fitting("By", history.iter().map(|e| e.actor.as_str()), (5, 12), 2, 0),
                Column::text_fitting("Route", history.iter().map(|e| e.route.as_str()), (10, 34), 3, 0),
                // What changed matters most after when: it takes the room left.
                Column::text_fitting("Change", history.iter().map(|e| e.summary.as_str()), (20, 60), 1, 1),
            ];
            let cells = |e: &AuditEntry| vec![date_time(&e.at), e.actor.clone(), e.route.clone(), e.summary.clone()];
            render_list(&detail.history, rows, &columns, cells, frame, area)
        }
    }
}

fn signed_euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "+" };
    format!("{sign}{}", Cents(cents.unsigned_abs()).to_euros())
}

/// A paged list as a table of `columns`, those that fit the width.
fn render_list<T>(
    list: &PagedList<T>,
    visible_rows: usize,
    columns: &[Column],
    cells: impl Fn(&T) -> Vec<String>,
    frame: &mut Frame,
    area: Rect,
) {
    let count = if list.loaded {
        format!(" {} of {} ", list.items.len(), list.total)
    } else {
        String::new()
    };
    let block = Block::bordered().title_bottom(Line::from(count).right_aligned());
    if list.items.is_empty() {
        let message = match (&list.error, list.loading) {
            (Some(error), _) => Line::styled(error.clone(), Style::new().fg(Color::Yellow)),
            (None, true) => Line::from("Loading…"),
            (None, false) => Line::from("Nothing yet."),
        };
        frame.render_widget(Paragraph::new(message).block(block), area);
        return;
    }
    let (window, selected) = list.window(visible_rows);
    // Inside the borders, less the selection marker's column.
    let planned = columns::plan(columns, area.width.saturating_sub(3), 1);
    let rows = window.iter().map(|item| columns::row(columns, &planned, cells(item)));
    let header = columns::header(columns, &planned).style(Style::new().fg(super::ACCENT).bold());
    let table = Table::new(rows, columns::constraints(&planned))
        .header(header)
        .block(block)
        .row_highlight_style(super::selected_style())
        .highlight_symbol("▸")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

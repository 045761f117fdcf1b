//! One customer: their card of details, then their tickets, ledger or scheduled payments.

use crm_model::{Cents, Customer, Sexe};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState, Tabs};
use ratatui::Frame;

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

fn render_card(customer: &Customer, frame: &mut Frame, area: Rect) {
    let title = format!(" {} {} ", customer.prenom, customer.nom);
    let field = |label: &'static str, value: String| {
        vec![
            Span::styled(format!("{label:<16}"), Style::new().dark_gray()),
            Span::raw(format!("{value:<38}")),
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
    let lines = vec![
        pair(
            field("IdClient", customer.id_client.to_string()),
            field("id", customer.id.to_string()),
        ),
        pair(
            field("E-mail", customer.email.clone()),
            field("Phone", customer.phone.clone()),
        ),
        pair(field("Card", card), field("Credit", customer.credit.to_euros())),
        pair(
            field("Avg basket", customer.panier_moyen.to_euros()),
            field("Refusals", customer.nb_refus.to_string()),
        ),
        pair(
            field(
                "Next payment",
                customer
                    .date_paiement
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            field("Pending", customer.montant.to_euros()),
        ),
        pair(
            field("Age", customer.age.map(|a| a.to_string()).unwrap_or_else(|| "-".into())),
            field("Sexe / Account", format!("{sexe} / {}", customer.compte)),
        ),
    ];
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title.bold())), area);
}

fn render_pane(app: &App, detail: &CustomerDetail, frame: &mut Frame, area: Rect) {
    let rows = app.detail_rows();
    match detail.pane {
        DetailPane::Tickets => render_list(
            &detail.tickets,
            rows,
            ["Date", "Ticket", "Origin", "Payment", "Amount", "Articles"],
            |t| {
                vec![
                    t.date.chars().take(16).collect::<String>().replace('T', " "),
                    t.uid.clone(),
                    t.origin.clone(),
                    t.mode_paiement.clone(),
                    t.prix.to_euros(),
                    t.articles.len().to_string(),
                ]
            },
            frame,
            area,
        ),
        DetailPane::Ledger => render_list(
            &detail.ledger,
            rows,
            ["Date", "Cause", "", "", "Movement", "Balance"],
            |e| {
                vec![
                    e.at.chars().take(16).collect::<String>().replace('T', " "),
                    e.cause.clone(),
                    String::new(),
                    String::new(),
                    signed_euros(e.amount),
                    e.balance.map(signed_euros).unwrap_or_default(),
                ]
            },
            frame,
            area,
        ),
        DetailPane::Payments => render_list(
            &detail.payments,
            rows,
            ["Due", "Payment", "Status", "Attempts", "Amount", ""],
            |p| {
                vec![
                    p.date.map(|d| d.to_string()).unwrap_or_default(),
                    p.id.clone(),
                    p.status.clone(),
                    p.attempts.to_string(),
                    p.montant.to_euros(),
                    String::new(),
                ]
            },
            frame,
            area,
        ),
    }
}

fn signed_euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "+" };
    format!("{sign}{}", Cents(cents.unsigned_abs()).to_euros())
}

/// A paged list as a six-column table; the fifth column is an amount.
fn render_list<T>(
    list: &PagedList<T>,
    visible_rows: usize,
    titles: [&'static str; 6],
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
    let amount = |text: String| Cell::from(Line::from(text).right_aligned());
    let rows = window.iter().map(|item| {
        let row = cells(item);
        Row::new(
            row.into_iter()
                .enumerate()
                .map(|(i, text)| if i >= 4 { amount(text) } else { Cell::from(text) }),
        )
    });
    let header = super::header_row(titles, |column| column >= 4);
    let widths = [
        Constraint::Length(17),
        Constraint::Fill(2),
        Constraint::Fill(1),
        Constraint::Length(9),
        Constraint::Length(14),
        Constraint::Length(12),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(super::selected_style())
        .highlight_symbol("▸")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

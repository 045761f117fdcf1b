//! The customers table with its search line, or the detail view of one customer.

use crm_model::Customer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    if app.customers.detail.is_some() {
        super::detail::render(app, frame, area);
    } else {
        let [search_area, table_area] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        render_search_line(app, frame, search_area);
        render_table(app, frame, table_area);
    }
    if app.customers.edit.is_some() {
        super::popups::render_edit(app, frame, area);
    }
}

fn render_search_line(app: &App, frame: &mut Frame, area: Rect) {
    let customers = &app.customers;
    let list = &customers.list;
    let position = if list.items.is_empty() {
        "no rows".to_string()
    } else {
        format!("row {} of {}", list.selected + 1, list.total)
    };
    let right = format!("sort {}  {position} ", customers.sort());
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right.chars().count() as u16)]).areas(area);
    let query = customers.search.value();
    let mut spans = vec![Span::styled(" / ", Style::new().fg(super::ACCENT).bold())];
    if customers.searching {
        spans.push(Span::styled(
            query.to_string(),
            Style::new().add_modifier(Modifier::UNDERLINED),
        ));
        let cursor = customers.search.visual_cursor() as u16;
        frame.set_cursor_position(Position::new(left_area.x + 3 + cursor, left_area.y));
    } else if query.is_empty() {
        spans.push(Span::styled("search", Style::new().fg(Color::DarkGray)));
    } else {
        spans.push(Span::raw(query.to_string()));
    }
    if list.loading {
        spans.push(Span::styled("  loading…", Style::new().fg(Color::Yellow)));
    }
    frame.render_widget(Line::from(spans), left_area);
    frame.render_widget(Line::from(right).right_aligned().dark_gray(), right_area);
}

fn render_table(app: &App, frame: &mut Frame, area: Rect) {
    let list = &app.customers.list;
    let block = Block::bordered().title(" Customers ");
    if list.items.is_empty() {
        let message = match (&list.error, list.loaded, list.loading) {
            (Some(error), _, _) => Line::styled(
                format!("Could not load the customers: {error}"),
                Style::new().fg(Color::Red),
            ),
            (None, _, true) => Line::from("Loading customers…"),
            (None, true, false) => Line::from("No customer matches."),
            (None, false, false) => Line::from(""),
        };
        frame.render_widget(Paragraph::new(message).block(block), area);
        return;
    }
    let (rows, selected) = list.window(app.customer_rows());
    let header = super::header_row(
        [
            "Nom",
            "Prénom",
            "E-mail",
            "Phone",
            "Card",
            "Credit",
            "Avg basket",
            "Next payment",
        ],
        |column| (5..7).contains(&column),
    );
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Fill(3),
        Constraint::Length(14),
        Constraint::Length(7),
        Constraint::Length(15),
        Constraint::Length(12),
        Constraint::Length(12),
    ];
    // The marker shows the selection where colours are lost (tmux capture-pane, logs).
    let table = Table::new(rows.iter().map(customer_row), widths)
        .header(header)
        .block(block)
        .row_highlight_style(super::selected_style())
        .highlight_symbol("▸")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn customer_row(customer: &Customer) -> Row<'static> {
    let right = |text: String| Cell::from(Line::from(text).right_aligned());
    Row::new([
        Cell::from(customer.nom.clone()),
        Cell::from(customer.prenom.clone()),
        Cell::from(customer.email.clone()),
        Cell::from(customer.phone.clone()),
        Cell::from(customer.carte_fid.map(|c| c.to_string()).unwrap_or_default()),
        right(customer.credit.to_euros()),
        right(customer.panier_moyen.to_euros()),
        Cell::from(customer.date_paiement.map(|d| d.to_string()).unwrap_or_default()),
    ])
}

//! The customers table with its search line, or the detail view of one customer.

use crm_model::{Cents, Customer};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, HighlightSpacing, Paragraph, Table, TableState, Wrap};
use ratatui::Frame;

use super::columns::{self, Column};
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
        format!("row {} of {}", list.row_number(), list.total)
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
        frame.render_widget(Paragraph::new(message).wrap(Wrap { trim: true }).block(block), area);
        return;
    }
    let (rows, selected) = list.window(app.customer_rows());
    let columns = customer_columns(&list.items);
    // Inside the borders, less the selection marker's column.
    let available = area.width.saturating_sub(3);
    let planned = columns::plan(&columns, available, 1);
    let header = columns::header(&columns, &planned).style(Style::new().fg(super::ACCENT).bold());
    // The marker shows the selection where colours are lost (tmux capture-pane, logs).
    let table = Table::new(
        rows.iter().map(|c| columns::row(&columns, &planned, customer_cells(c))),
        columns::constraints(&planned),
    )
    .header(header)
    .block(block)
    .row_highlight_style(super::selected_style())
    .highlight_symbol("▸")
    .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// The table's columns, in the order shown, with their priorities: the name, first name
/// and credit stay longest. Text columns are sized on the loaded rows (within bounds);
/// the amount columns are as wide as the largest loaded amount.
fn customer_columns(customers: &[Customer]) -> [Column; 8] {
    let widest = |amount: fn(&Customer) -> Cents| customers.iter().map(amount).max().map(Cents::to_euros);
    let widest_card = customers
        .iter()
        .filter_map(|c| c.carte_fid)
        .max()
        .map_or(0, |card| card.to_string().len() as u16);
    let texts = |text: fn(&Customer) -> &str| customers.iter().map(text);
    [
        Column::text_fitting("Nom", texts(|c| &c.nom), (10, 24), 0, 2),
        Column::text_fitting("Prénom", texts(|c| &c.prenom), (8, 20), 1, 2),
        Column::text_fitting("E-mail", texts(|c| &c.email), (12, 30), 4, 3),
        Column::text_fitting("Phone", texts(|c| &c.phone), (10, 16), 5, 0),
        Column::fitted("Card", widest_card, 3, false),
        Column::amount("Credit", widest(|c| c.credit), 2),
        Column::amount("Avg basket", widest(|c| c.panier_moyen), 7),
        Column::fitted("Next payment", 10, 6, false),
    ]
}

fn customer_cells(customer: &Customer) -> Vec<String> {
    vec![
        customer.nom.clone(),
        customer.prenom.clone(),
        customer.email.clone(),
        customer.phone.clone(),
        customer.carte_fid.map(|c| c.to_string()).unwrap_or_default(),
        customer.credit.to_euros(),
        customer.panier_moyen.to_euros(),
        customer.date_paiement.map(|d| d.to_string()).unwrap_or_default(),
    ]
}

//! Rendering only: draws an [`App`] and changes nothing. One module per screen or pane.

mod columns;
mod create;
mod credit;
mod customers;
mod detail;
mod form;
mod import;
mod popups;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs};
use ratatui::Frame;

use crate::app::{App, Connection, Screen, StatusKind};

/// Lines around the body: the screen tabs, the status line and the status bar.
const FRAME_ROWS: usize = 3;
/// Lines of the customers screen that are not table rows: the frame, the search line,
/// the table's borders and header. `App` sizes pages and scrolling with it.
pub const CUSTOMERS_CHROME_ROWS: usize = FRAME_ROWS + 1 + 3;
/// Height of the detail view's customer card, borders included.
const DETAIL_CARD_ROWS: u16 = 8;
/// Lines of the detail view that are not list rows: the frame, the customer card, the
/// pane tabs, the list's borders and header.
pub const DETAIL_CHROME_ROWS: usize = FRAME_ROWS + DETAIL_CARD_ROWS as usize + 1 + 3;

pub(crate) const ACCENT: Color = Color::Cyan;

pub(crate) fn selected_style() -> Style {
    Style::new().bg(Color::DarkGray).add_modifier(Modifier::BOLD)
}

pub fn render(app: &App, frame: &mut Frame) {
    let [tabs_area, body, status_area, bar_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_tabs(app, frame, tabs_area);
    match app.screen {
        Screen::Customers => customers::render(app, frame, body),
        Screen::NewCustomer => create::render(app, frame, body),
        Screen::Import => import::render(app, frame, body),
        Screen::Credit => credit::render(app, frame, body),
    }
    render_status(app, frame, status_area);
    render_status_bar(app, frame, bar_area);
    popups::render(app, frame);
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let selected = Screen::ALL.iter().position(|s| *s == app.screen).unwrap_or(0);
    let tabs = Tabs::new(Screen::ALL.iter().map(|s| s.title()))
        .select(selected)
        .highlight_style(
            Style::new()
                .fg(ACCENT)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
        );
    let [left, right] = Layout::horizontal([Constraint::Min(0), Constraint::Length(10)]).areas(area);
    frame.render_widget(tabs, left);
    frame.render_widget(Line::from("? help ").right_aligned().dark_gray(), right);
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let line = match &app.status {
        Some(status) => {
            let style = match status.kind {
                StatusKind::Info => Style::new(),
                StatusKind::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            };
            Line::styled(format!(" {}", status.text), style)
        }
        None => Line::default(),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_status_bar(app: &App, frame: &mut Frame, area: Rect) {
    let connection = match &app.connection {
        Connection::Connecting => Span::styled("… connecting", Style::new().fg(Color::Yellow)),
        Connection::Connected => Span::styled("● Connected", Style::new().fg(Color::Green)),
        Connection::Unreachable(_) => Span::styled(
            format!("✗ Unreachable, retrying every {} s", crate::app::HEALTH_RETRY.as_secs()),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let [left, right] = Layout::horizontal([Constraint::Min(0), Constraint::Length(36)]).areas(area);
    let server = Line::from(vec![
        Span::from(" crm-tui ").bold(),
        Span::from(app.server_url.as_str()),
    ]);
    frame.render_widget(Paragraph::new(server).reversed(), left);
    frame.render_widget(Paragraph::new(Line::from(connection).right_aligned()).reversed(), right);
}

/// A rectangle of at most `width` × `height` in the middle of `area`.
pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// `text` in lines of at most `width` characters, broken at spaces where it can be
/// (amounts, whose spaces do not break, stay whole), the lines after the first starting
/// with `indent`.
pub(crate) fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let width = width.max(indent.chars().count() + 8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let taken = line.chars().count();
        let starts_line = line.trim().is_empty();
        if !starts_line && taken + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, indent.to_string()));
        } else if !starts_line {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest: String = line.chars().skip(width).collect();
            lines.push(line.chars().take(width).collect());
            line = format!("{indent}{rest}");
        }
    }
    if !line.trim().is_empty() {
        lines.push(line);
    }
    lines
}

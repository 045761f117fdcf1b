//! The new customer form.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::form::FieldLines;
use crate::app::App;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let create = &app.create;
    let hint = match (create.saving, create.form.editing) {
        (true, _) => " creating… ",
        (false, true) => " Enter next field · Ctrl-S create · Esc stop editing ",
        (false, false) => " Enter edit the field · Ctrl-S create ",
    };
    let block = Block::bordered()
        .title(" New customer ".bold())
        .title_bottom(Line::from(hint).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [fields_area, footer_area] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner);
    let mut lines = FieldLines::new();
    lines.push_form(&create.form, fields_area.width);
    lines.place_cursor(frame, fields_area);
    frame.render_widget(Paragraph::new(lines.lines), fields_area);
    let footer = match create.created {
        Some(id) => Line::styled(format!("Created customer {id}"), Style::new().fg(Color::Green)),
        None => Line::styled(
            "Only Nom is required. E-mail must be unique.",
            Style::new().fg(Color::DarkGray),
        ),
    };
    frame.render_widget(Paragraph::new(footer), footer_area);
}

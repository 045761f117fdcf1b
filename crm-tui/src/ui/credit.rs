//! The credit screen: the fields of each action under its title, then its last outcome.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::form::FieldLines;
use crate::app::{App, CreditAction};

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let credit = &app.credit;
    let hint = if credit.form.editing {
        " Enter next field / send · Esc stop editing "
    } else {
        " Enter edit the field · Ctrl-S send "
    };
    let block = Block::bordered()
        .title(" Credit ".bold())
        .title_bottom(Line::from(hint).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = FieldLines::new();
    for action in CreditAction::ALL {
        let busy = if credit.pending.contains(&action) { "  …" } else { "" };
        lines
            .lines
            .push(Line::from(format!("{}{busy}", action.title())).fg(super::ACCENT).bold());
        for name in action.fields() {
            if let Some(index) = credit.form.fields.iter().position(|f| f.name == *name) {
                lines.push_field(&credit.form, index, inner.width);
            }
        }
        if let Some(outcome) = credit.outcomes.get(&action) {
            let color = if outcome.success { Color::Green } else { Color::Red };
            lines
                .lines
                .push(Line::styled(format!("  → {}", outcome.text), Style::new().fg(color)));
        }
    }
    lines.place_cursor(frame, inner);
    frame.render_widget(Paragraph::new(lines.lines), inner);
}

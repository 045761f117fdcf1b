//! The credit screen: the fields of each action under its title, then its last outcome.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::form::FieldLines;
use crate::api::CustomerKey;
use crate::app::{name_and_balance, App, CreditAction, CUSTOMER_KEY_FIELDS};

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
                let note = CUSTOMER_KEY_FIELDS
                    .contains(name)
                    .then(|| CustomerKey::parse(credit.form.value(name)))
                    .flatten()
                    .and_then(|key| app.known_customer(key))
                    .map(name_and_balance);
                lines.push_field_with_note(&credit.form, index, inner.width, note.as_deref());
            }
        }
        if let Some(outcome) = credit.outcomes.get(&action) {
            let color = if outcome.success { Color::Green } else { Color::Red };
            // Wrapped by hand: the cursor's line is counted in `lines`.
            let width = (inner.width as usize).saturating_sub(2);
            for line in super::wrap(&format!("→ {}", outcome.text), width, "    ") {
                lines
                    .lines
                    .push(Line::styled(format!("  {line}"), Style::new().fg(color)));
            }
        }
    }
    lines.place_cursor(frame, inner);
    frame.render_widget(Paragraph::new(lines.lines), inner);
}

//! Drawing of form fields: one line per field, its error on the next line.

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::form::{Form, FormField};

/// Width of the label column.
const LABEL_WIDTH: usize = 20;

/// The lines of some fields and, when one of them is being typed in, where the cursor
/// goes (line index, column).
pub(crate) struct FieldLines {
    pub lines: Vec<Line<'static>>,
    pub cursor: Option<(usize, u16)>,
}

impl FieldLines {
    pub fn new() -> FieldLines {
        FieldLines {
            lines: Vec::new(),
            cursor: None,
        }
    }

    /// Adds one field of `form` (at `index`), `width` columns wide.
    pub fn push_field(&mut self, form: &Form, index: usize, width: u16) {
        self.push_field_with_note(form, index, width, None);
    }

    /// Adds one field with a dim note after its value (who a typed id names), when the
    /// line has room for both.
    pub fn push_field_with_note(&mut self, form: &Form, index: usize, width: u16, note: Option<&str>) {
        let field = &form.fields[index];
        let focused = form.focus == index;
        let mut value_width = (width as usize).saturating_sub(LABEL_WIDTH + 4).max(1);
        let note = note
            .map(|note| format!("  {note}"))
            .filter(|note| field.input.value().chars().count() + note.chars().count() < value_width);
        if let Some(note) = &note {
            value_width -= note.chars().count();
        }
        let (shown, cursor_column) = visible_value(field, value_width);
        let marker = if focused { "▸ " } else { "  " };
        let label_style = if focused {
            Style::new().fg(super::ACCENT).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let value_style = match (focused, form.editing) {
            (true, true) => Style::new().add_modifier(Modifier::UNDERLINED),
            (true, false) => super::selected_style(),
            _ => Style::new(),
        };
        if focused && form.editing {
            self.cursor = Some((self.lines.len(), (2 + LABEL_WIDTH + cursor_column) as u16));
        }
        let mut spans = vec![
            Span::raw(marker),
            Span::styled(format!("{:<LABEL_WIDTH$}", field.label), label_style),
        ];
        match note {
            // The note right after the value, the line padded after it.
            Some(note) => {
                let rest = value_width.saturating_sub(shown.chars().count());
                spans.push(Span::styled(shown, value_style));
                spans.push(Span::styled(note, Style::new().fg(Color::DarkGray)));
                spans.push(Span::raw(" ".repeat(rest)));
            }
            None => spans.push(Span::styled(format!("{shown:<value_width$}"), value_style)),
        }
        self.lines.push(Line::from(spans));
        if let Some(error) = &field.error {
            self.lines.push(Line::styled(
                format!("{:width$}✗ {error}", "", width = 2 + LABEL_WIDTH),
                Style::new().fg(Color::Red),
            ));
        }
    }

    /// Adds every field of `form`.
    pub fn push_form(&mut self, form: &Form, width: u16) {
        for index in 0..form.fields.len() {
            self.push_field(form, index, width);
        }
    }

    /// Places the terminal cursor when the lines are drawn from `area`'s top.
    pub fn place_cursor(&self, frame: &mut Frame, area: Rect) {
        if let Some((line, column)) = self.cursor {
            if (line as u16) < area.height {
                frame.set_cursor_position(Position::new(area.x + column, area.y + line as u16));
            }
        }
    }
}

/// The part of a field's text that fits `width` columns, scrolled so the cursor shows,
/// and the cursor's column in it.
fn visible_value(field: &FormField, width: usize) -> (String, usize) {
    let scroll = field.input.visual_scroll(width);
    let shown: String = field.input.value().chars().skip(scroll).take(width).collect();
    (shown, field.input.visual_cursor().saturating_sub(scroll))
}

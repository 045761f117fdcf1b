//! Windows drawn over the screen: help, confirmations and the edit form.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use super::form::FieldLines;
use crate::app::{name_and_balance, App, Popup};

pub(super) fn render(app: &App, frame: &mut Frame) {
    match app.popup {
        Some(Popup::Help) => render_help(app, frame),
        Some(Popup::ConfirmQuit) => {
            let lost = app.unsaved_work().join(", ");
            render_question(
                frame,
                " Quit? ",
                &format!("Quitting now loses {lost}."),
                "y: quit    n / Esc: stay",
            );
        }
        Some(Popup::ConfirmDiscardEdit) => {
            render_question(
                frame,
                " Discard changes? ",
                "The customer has unsaved changes.",
                "y: discard    n / Esc: keep editing",
            );
        }
        Some(Popup::ConfirmResetRefusals) => {
            let Some(customer) = &app.customers.reset_refusals_of else {
                return;
            };
            render_question(
                frame,
                " Reset refusals? ",
                &format!(
                    "{} has {} refused payments on record. Reset them to 0? Credit is then allowed again.",
                    name_and_balance(customer),
                    customer.nb_refus
                ),
                "y: reset    n / Esc: keep",
            );
        }
        None => {}
    }
}

fn render_help(app: &App, frame: &mut Frame) {
    let entries = app.help_entries();
    let key_width = entries.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0) as u16;
    let area = super::centered(frame.area(), 72, entries.len() as u16 + 2);
    let rows = entries
        .iter()
        .map(|(key, action)| Row::new([key.to_string(), action.to_string()]));
    let table = Table::new(rows, [Constraint::Length(key_width), Constraint::Fill(1)])
        .column_spacing(2)
        .block(
            Block::bordered()
                .title(format!(" Keys: {} ", app.screen.title()).bold())
                .title_bottom(Line::from(" Esc or ? to close ").right_aligned())
                .border_style(Style::new().fg(super::ACCENT)),
        );
    frame.render_widget(Clear, area);
    frame.render_widget(table, area);
}

fn render_question(frame: &mut Frame, title: &str, question: &str, answers: &str) {
    // The question on as many lines as it takes, a blank line, the answers.
    let inner_width = 54u16;
    let mut text: Vec<Line> = super::wrap(question, inner_width as usize, "")
        .into_iter()
        .map(Line::from)
        .collect();
    text.push(Line::default());
    text.push(Line::from(answers.to_string()).bold());
    let area = super::centered(frame.area(), inner_width + 2, text.len() as u16 + 3);
    let block = Block::bordered()
        .title(title.to_string().bold())
        .border_style(Style::new().fg(Color::Yellow));
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(text).block(block), area);
}

/// The edit form of a customer, over the customers screen.
pub(super) fn render_edit(app: &App, frame: &mut Frame, area: Rect) {
    let Some(edit) = &app.customers.edit else { return };
    let errors = edit.form.fields.iter().filter(|f| f.error.is_some()).count() as u16;
    let height = edit.form.fields.len() as u16 + errors + 4;
    let area = super::centered(area, 90, height);
    let title = format!(" Edit {} {} ", edit.customer.prenom, edit.customer.nom);
    let hint = match (edit.saving, edit.form.editing) {
        (true, _) => " saving… ",
        (false, true) => " Enter next field · Ctrl-S save · Esc stop typing ",
        (false, false) => " Enter/i type in the field · Ctrl-S save · Esc cancel ",
    };
    let block = Block::bordered()
        .title(title.bold())
        .title_bottom(Line::from(hint).right_aligned())
        .border_style(Style::new().fg(super::ACCENT));
    let inner = block.inner(area);
    let mut lines = FieldLines::new();
    lines.push_form(&edit.form, inner.width);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let [_, fields_area] = ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    lines.place_cursor(frame, fields_area);
    frame.render_widget(Paragraph::new(lines.lines), fields_area);
}

//! The import screen: the path, the mode, then the dry run, the upload and its outcome.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Table};
use ratatui::Frame;

use crate::api::{ImportMode, ImportSummary, UploadProgress};
use crate::app::{App, ImportStage};

/// Bad rows listed on screen; the count says how many more there are.
const SHOWN_BAD_ROWS: usize = 200;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let import = &app.import;
    let candidate_rows = import.candidates.len().min(5) as u16;
    let [path_area, mode_area, stage_area] = Layout::vertical([
        Constraint::Length(3 + candidate_rows),
        Constraint::Length(2),
        Constraint::Min(0),
    ])
    .areas(area);

    let hint = if import.editing {
        " Tab complete · Enter dry run · Esc stop "
    } else {
        " Enter type a path "
    };
    let block = Block::bordered()
        .title(" File to import (JSON, JSON lines or CSV) ".bold())
        .title_bottom(Line::from(hint).right_aligned());
    let inner = block.inner(path_area);
    frame.render_widget(block, path_area);
    let path_style = if import.editing {
        Style::new().add_modifier(Modifier::UNDERLINED)
    } else {
        Style::new()
    };
    let width = inner.width.saturating_sub(1) as usize;
    let scroll = import.path.visual_scroll(width);
    let shown: String = import.path.value().chars().skip(scroll).collect();
    let mut lines = vec![Line::styled(shown, path_style)];
    lines.extend(
        import
            .candidates
            .iter()
            .take(5)
            .map(|c| Line::styled(format!("  {c}"), Style::new().dark_gray())),
    );
    frame.render_widget(Paragraph::new(lines), inner);
    if import.editing {
        let column = import.path.visual_cursor().saturating_sub(scroll) as u16;
        frame.set_cursor_position(Position::new(inner.x + column, inner.y));
    }

    let mode = match import.mode {
        ImportMode::Merge => Line::from(vec![
            Span::from(" Mode: "),
            Span::from("merge").bold(),
            Span::from(" — matching customers are updated, the others created (m to switch)"),
        ]),
        ImportMode::Replace => Line::from(vec![
            Span::from(" Mode: "),
            Span::from("replace").bold().fg(Color::Red),
            Span::styled(
                " — customers absent from the file are ERASED (m to switch)",
                Style::new().fg(Color::Red),
            ),
        ]),
    };
    frame.render_widget(Paragraph::new(mode), mode_area);
    render_stage(&import.stage, frame, stage_area);
}

fn render_stage(stage: &ImportStage, frame: &mut Frame, area: Rect) {
    let [text_area, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    match stage {
        ImportStage::Idle => {
            let text = "Type the path of a file, then Enter: a dry run checks it first and writes nothing.";
            frame.render_widget(Paragraph::new(format!(" {text}")).dark_gray(), text_area);
        }
        ImportStage::Checking { run, progress } => {
            frame.render_widget(
                Paragraph::new(format!(" Dry run of {}…", run.path.display())),
                text_area,
            );
            render_progress(*progress, frame, rest);
        }
        ImportStage::Reviewed { run, summary } => {
            let mut lines = vec![
                Line::from(format!(" Dry run of {} passed. The import would:", run.path.display())),
                summary_line(summary),
                Line::from(" y / Enter: import for real    n / Esc: cancel")
                    .bold()
                    .fg(Color::Yellow),
            ];
            if run.mode == ImportMode::Replace {
                lines.push(Line::styled(
                    " Replace mode: customers absent from the file will be erased.",
                    Style::new().fg(Color::Red).bold(),
                ));
            }
            frame.render_widget(Paragraph::new(lines), area);
        }
        ImportStage::Rejected { run, message, rows } => {
            let heading = vec![
                Line::styled(
                    format!(" {}: {message}", run.path.display()),
                    Style::new().fg(Color::Red).bold(),
                ),
                Line::from(format!(" {} bad rows; fix the file and try again (Enter).", rows.len())),
            ];
            frame.render_widget(Paragraph::new(heading), text_area);
            let table = Table::new(
                rows.iter()
                    .take(SHOWN_BAD_ROWS)
                    .map(|r| Row::new([r.row.to_string(), r.field.clone(), r.error.clone()])),
                [Constraint::Length(8), Constraint::Length(16), Constraint::Fill(1)],
            )
            .header(Row::new(["Row", "Field", "Error"]).style(Style::new().fg(super::ACCENT).bold()))
            .block(Block::bordered().title(" Bad rows "));
            frame.render_widget(table, rest);
        }
        ImportStage::Uploading { run, progress } => {
            frame.render_widget(Paragraph::new(format!(" Importing {}…", run.path.display())), text_area);
            render_progress(*progress, frame, rest);
        }
        ImportStage::Done { run, summary } => {
            let lines = vec![
                Line::styled(
                    format!(" Imported {}:", run.path.display()),
                    Style::new().fg(Color::Green).bold(),
                ),
                summary_line(summary),
            ];
            frame.render_widget(Paragraph::new(lines), area);
        }
        ImportStage::Failed { message } => {
            let lines = vec![
                Line::styled(format!(" Import failed: {message}"), Style::new().fg(Color::Red).bold()),
                Line::from(" Nothing was written. Enter to try again."),
            ];
            frame.render_widget(Paragraph::new(lines), area);
        }
    }
}

fn summary_line(summary: &ImportSummary) -> Line<'static> {
    let line = format!(
        "   {} created, {} updated, {} unchanged",
        summary.created, summary.updated, summary.unchanged
    );
    if summary.erased == 0 {
        return Line::from(line);
    }
    // A replace import erases customers: staff must see how many before confirming.
    Line::from(vec![
        Span::from(line),
        Span::styled(
            format!(", {} erased", summary.erased),
            Style::new().fg(Color::Red).bold(),
        ),
    ])
}

fn render_progress(progress: Option<UploadProgress>, frame: &mut Frame, area: Rect) {
    let [gauge_area, _] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    let (ratio, label) = match progress {
        Some(UploadProgress { sent, total }) if total > 0 => (
            (sent as f64 / total as f64).clamp(0.0, 1.0),
            format!("{} of {} sent", bytes(sent), bytes(total)),
        ),
        Some(UploadProgress { sent, .. }) => (1.0, format!("{} sent", bytes(sent))),
        None => (0.0, "starting…".to_string()),
    };
    let gauge = Gauge::default()
        .block(Block::bordered().title(" Upload "))
        .gauge_style(Style::new().fg(super::ACCENT))
        .ratio(ratio)
        .label(label);
    frame.render_widget(gauge, gauge_area);
}

/// A byte count as people read it.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

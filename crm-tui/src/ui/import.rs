//! The import screen: the path, the mode, then the dry run, the upload and its outcome.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Table};
use ratatui::Frame;

use crate::api::{ImportMode, ImportSummary, RowError, ServerImportProgress, UploadProgress};
use crate::app::{App, ImportStage};

/// Bad rows listed on screen; the count says how many more there are.
const SHOWN_BAD_ROWS: usize = 200;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
    let import = &app.import;
    let candidate_rows = import.candidates.len().min(5) as u16;
    let [path_area, mode_area, stage_area] = Layout::vertical([
        Constraint::Length(3 + candidate_rows),
        Constraint::Length(3),
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
    let rows = match (import.mode, import.skip_invalid) {
        (ImportMode::Replace, _) => Line::from(vec![
            Span::from(" Invalid rows: "),
            Span::from("refuse the file").bold(),
            Span::from(" — replace imports every row or none"),
        ]),
        (ImportMode::Merge, false) => Line::from(vec![
            Span::from(" Invalid rows: "),
            Span::from("refuse the file").bold(),
            Span::from(" (v to skip them and import the others)"),
        ]),
        (ImportMode::Merge, true) => Line::from(vec![
            Span::from(" Invalid rows: "),
            Span::from("skipped").bold().fg(Color::Yellow),
            Span::from(" — the valid rows are imported, the others listed (v to refuse the file)"),
        ]),
    };
    frame.render_widget(Paragraph::new(vec![mode, rows]), mode_area);
    render_stage(&import.stage, import.server_progress.as_ref(), frame, stage_area);
}

fn render_stage(stage: &ImportStage, server: Option<&ServerImportProgress>, frame: &mut Frame, area: Rect) {
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
            render_progress(*progress, server, frame, rest);
        }
        ImportStage::Reviewed { run, summary } => {
            let mut lines = vec![
                Line::from(format!(" Dry run of {} passed. The import would:", run.path.display())),
                summary_line(summary),
            ];
            lines.extend(warnings(summary));
            lines.push(
                Line::from(" y / Enter: import for real    n / Esc: cancel")
                    .bold()
                    .fg(Color::Yellow),
            );
            if run.mode == ImportMode::Replace {
                lines.push(Line::styled(
                    " Replace mode: customers absent from the file will be erased.",
                    Style::new().fg(Color::Red).bold(),
                ));
            }
            render_with_skipped_rows(lines, &summary.errors, frame, area);
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
            frame.render_widget(bad_rows_table(rows, " Bad rows "), rest);
        }
        ImportStage::Uploading { run, progress } => {
            frame.render_widget(Paragraph::new(format!(" Importing {}…", run.path.display())), text_area);
            render_progress(*progress, server, frame, rest);
        }
        ImportStage::Done { run, summary } => {
            let mut lines = vec![
                Line::styled(
                    format!(" Imported {}:", run.path.display()),
                    Style::new().fg(Color::Green).bold(),
                ),
                summary_line(summary),
            ];
            lines.extend(warnings(summary));
            render_with_skipped_rows(lines, &summary.errors, frame, area);
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

/// The lines above a stage's table, then the table of the rows an import leaves out
/// (`skip_invalid`), if any, below them.
fn render_with_skipped_rows(lines: Vec<Line<'static>>, skipped: &[RowError], frame: &mut Frame, area: Rect) {
    if skipped.is_empty() {
        frame.render_widget(Paragraph::new(lines), area);
        return;
    }
    let [text_area, table_area] =
        Layout::vertical([Constraint::Length(lines.len() as u16), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(lines), text_area);
    frame.render_widget(bad_rows_table(skipped, " Invalid rows, skipped "), table_area);
}

fn bad_rows_table<'a>(rows: &'a [RowError], title: &'a str) -> Table<'a> {
    Table::new(
        rows.iter()
            .take(SHOWN_BAD_ROWS)
            .map(|r| Row::new([r.row.to_string(), r.field.clone(), r.error.clone()])),
        [Constraint::Length(8), Constraint::Length(16), Constraint::Fill(1)],
    )
    .header(Row::new(["Row", "Field", "Error"]).style(Style::new().fg(super::ACCENT).bold()))
    .block(Block::bordered().title(title))
}

/// What staff must know before importing the file again: rows skipped, and rows that
/// no import can match (a second import creates them again).
fn warnings(summary: &ImportSummary) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if summary.skipped > 0 {
        lines.push(Line::styled(
            format!(
                "   {} invalid rows are left out (listed below); fix them and import them again",
                summary.skipped
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(warning) = summary.unmatchable_warning() {
        lines.push(Line::styled(format!("   ⚠ {warning}"), Style::new().fg(Color::Yellow)));
    }
    lines
}

fn summary_line(summary: &ImportSummary) -> Line<'static> {
    let mut line = format!(
        "   {} created, {} updated, {} unchanged",
        summary.created, summary.updated, summary.unchanged
    );
    if summary.skipped > 0 {
        line.push_str(&format!(", {} skipped", summary.skipped));
    }
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

fn render_progress(
    progress: Option<UploadProgress>,
    server: Option<&ServerImportProgress>,
    frame: &mut Frame,
    area: Rect,
) {
    let [gauge_area, server_area, _] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(3), Constraint::Min(0)]).areas(area);
    if let Some(server) = server {
        render_server_progress(server, frame, server_area);
    }
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

/// The server's stage and rows: the minutes of a large import after its upload.
fn render_server_progress(server: &ServerImportProgress, frame: &mut Frame, area: Rect) {
    let stage = match server.phase.as_str() {
        "reading" => "reading the file",
        "checking" => "checking rows",
        "writing" => "writing rows",
        "erasing" => "erasing customers absent from the file",
        other => other,
    };
    let (ratio, label) = match server.total {
        Some(total) if total > 0 => (
            (server.done as f64 / total as f64).clamp(0.0, 1.0),
            format!("{stage}: {} of {}", grouped(server.done), grouped(total)),
        ),
        _ => (0.0, format!("{stage}: {} rows", grouped(server.done))),
    };
    let gauge = Gauge::default()
        .block(Block::bordered().title(" Server "))
        .gauge_style(Style::new().fg(Color::Green))
        .ratio(ratio)
        .label(label);
    frame.render_widget(gauge, area);
}

/// A count with thousands separated: `12,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

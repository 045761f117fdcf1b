//! Table columns that give way by priority: on a narrow terminal the least important
//! columns are dropped whole, so that those shown keep a readable width, rather than
//! every column squeezed (names cut to three letters).

use ratatui::text::Line;
use ratatui::widgets::{Cell, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub title: &'static str,
    /// The narrowest useful width: a column that cannot have it is not shown.
    pub min: u16,
    /// The width it is given, room permitting, before the rest is shared out.
    pub ideal: u16,
    /// 0 is the most important. A column is shown only when every more important one
    /// is, at its ideal width.
    pub priority: u8,
    /// Its share of the room left once every shown column has its ideal width.
    pub grow: u16,
    /// Right-aligned, header included: amounts and counts.
    pub right: bool,
}

impl Column {
    /// A text column of `min` to `ideal` columns that takes `grow` shares of spare room.
    pub const fn text(title: &'static str, min: u16, ideal: u16, priority: u8, grow: u16) -> Column {
        Column {
            title,
            min,
            ideal,
            priority,
            grow,
            right: false,
        }
    }

    /// A text column whose ideal width is its widest value's, from `min` to `max`.
    pub fn text_fitting<'a>(
        title: &'static str,
        values: impl IntoIterator<Item = &'a str>,
        (min, max): (u16, u16),
        priority: u8,
        grow: u16,
    ) -> Column {
        let widest = values.into_iter().map(text_width).max().unwrap_or(0);
        let ideal = widest.max(text_width(title)).clamp(min, max);
        Column::text(title, min, ideal, priority, grow)
    }

    /// A column exactly as wide as its title or its widest value, whichever is wider.
    pub fn fitted(title: &'static str, widest: u16, priority: u8, right: bool) -> Column {
        let width = widest.max(text_width(title));
        Column {
            title,
            min: width,
            ideal: width,
            priority,
            grow: 0,
            right,
        }
    }

    /// An amount column wide enough for every value shown (no digit is ever cut).
    pub fn amount(title: &'static str, values: impl IntoIterator<Item = String>, priority: u8) -> Column {
        let widest = values.into_iter().map(|v| text_width(&v)).max().unwrap_or(0);
        Column::fitted(title, widest, priority, true)
    }
}

/// Terminal columns `text` takes.
pub(crate) fn text_width(text: &str) -> u16 {
    u16::try_from(Line::from(text).width()).unwrap_or(u16::MAX)
}

/// The columns shown in `available` terminal columns with `spacing` between them: their
/// indices in `columns`, in that order, with their widths. The most important columns
/// come in first and reach their ideal width before a less important one is let in; the
/// first column that does not fit ends the table (its less important ones are dropped
/// too, even narrow ones). What is left once the shown columns have their ideal width
/// goes to those that grow.
pub(crate) fn plan(columns: &[Column], available: u16, spacing: u16) -> Vec<(usize, u16)> {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&i| columns[i].priority);
    let available = u32::from(available);
    let spacing = u32::from(spacing);
    let mut shown: Vec<usize> = Vec::new();
    // What the shown columns take at their ideal widths, gaps included.
    let mut ideal_total = 0u32;
    for &index in &order {
        let column = columns[index];
        let gap = if shown.is_empty() { 0 } else { spacing };
        if ideal_total + gap + u32::from(column.min) > available {
            break;
        }
        shown.push(index);
        ideal_total += gap + u32::from(column.ideal.max(column.min));
    }
    if shown.is_empty() {
        return match order.first() {
            Some(&first) => vec![(first, available as u16)],
            None => Vec::new(),
        };
    }
    let mut widths: Vec<u32> = columns.iter().map(|c| u32::from(c.min)).collect();
    let used =
        |widths: &[u32]| -> u32 { shown.iter().map(|&i| widths[i]).sum::<u32>() + spacing * (shown.len() as u32 - 1) };
    // Up to their ideal widths, most important first (the last one let in may fall short).
    for &index in &shown {
        let spare = available.saturating_sub(used(&widths));
        let wanted = u32::from(columns[index].ideal).saturating_sub(widths[index]);
        widths[index] += wanted.min(spare);
    }
    // The rest, shared by weight; the odd columns to the most important.
    let spare = available.saturating_sub(used(&widths));
    let shares: u32 = shown.iter().map(|&i| u32::from(columns[i].grow)).sum();
    if shares > 0 && spare > 0 {
        let mut given = 0;
        for &index in &shown {
            let extra = spare * u32::from(columns[index].grow) / shares;
            widths[index] += extra;
            given += extra;
        }
        if let Some(&first) = shown.iter().find(|&&i| columns[i].grow > 0) {
            widths[first] += spare - given;
        }
    }
    let mut planned: Vec<(usize, u16)> = shown.iter().map(|&i| (i, widths[i] as u16)).collect();
    planned.sort_by_key(|&(index, _)| index);
    planned
}

/// The header row of the planned columns.
pub(crate) fn header(columns: &[Column], planned: &[(usize, u16)]) -> Row<'static> {
    Row::new(planned.iter().map(|&(index, _)| {
        let column = columns[index];
        if column.right {
            Cell::from(Line::from(column.title).right_aligned())
        } else {
            Cell::from(column.title)
        }
    }))
}

/// One row of the planned columns from every column's text.
pub(crate) fn row(columns: &[Column], planned: &[(usize, u16)], mut cells: Vec<String>) -> Row<'static> {
    Row::new(planned.iter().map(|&(index, _)| {
        let text = std::mem::take(&mut cells[index]);
        if columns[index].right {
            Cell::from(Line::from(text).right_aligned())
        } else {
            Cell::from(text)
        }
    }))
}

/// The width constraints of the planned columns.
pub(crate) fn constraints(planned: &[(usize, u16)]) -> Vec<ratatui::layout::Constraint> {
    planned
        .iter()
        .map(|&(_, width)| ratatui::layout::Constraint::Length(width))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_important_columns_go_first_and_the_others_keep_their_width() {
        let columns = [
            Column::text("Nom", 10, 14, 0, 1),
            Column::text("Mail", 12, 20, 2, 1),
            Column::fitted("Credit", 23, 1, true),
        ];
        // Everything at its ideal width, the spare room shared.
        assert_eq!(plan(&columns, 70, 1), [(0, 20), (1, 25), (2, 23)]);
        // The mail needs 12 more than Nom's 14 and Credit's 23: dropped at 49.
        assert_eq!(plan(&columns, 49, 1), [(0, 25), (2, 23)]);
        // The most important one always shows, in what there is.
        assert_eq!(plan(&columns, 8, 1), [(0, 8)]);
    }
}

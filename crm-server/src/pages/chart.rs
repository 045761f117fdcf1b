//! The chart of a customer's credit over time: inline SVG drawn on the server from the
//! ledger, so it shows without JavaScript. Credit holds its value between movements,
//! so the line is drawn in steps.

use askama::Template;
use crm_model::LedgerEntry;

use super::{customer::cause_label, format};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 240;
/// Room on the left for the amounts of the vertical axis.
const LEFT: u32 = 84;
const RIGHT: u32 = WIDTH - 16;
const TOP: u32 = 16;
/// Room below for the dates of the horizontal axis.
const BOTTOM: u32 = HEIGHT - 32;
/// Past this many movements, the line is drawn from an even sample of them and dots
/// are left out, so that a long ledger stays a small image.
const MAX_POINTS: usize = 500;

/// The SVG chart of `entries` (a customer's ledger, oldest first), or a sentence saying
/// there is nothing to draw.
pub fn credit_chart(entries: &[LedgerEntry]) -> String {
    let Some(chart) = Chart::new(entries) else {
        return "<p class=\"empty\">Aucun mouvement de crédit : pas de courbe à tracer.</p>".to_string();
    };
    chart.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the credit chart failed to render");
        String::new()
    })
}

struct Dot {
    x: String,
    y: String,
    label: String,
}

#[derive(Template)]
#[template(path = "credit_chart.svg")]
struct Chart {
    width: u32,
    height: u32,
    left: u32,
    right: u32,
    top: u32,
    bottom: u32,
    description: String,
    max_label: String,
    zero_label: String,
    first_label: String,
    last_label: String,
    polyline: String,
    dots: Vec<Dot>,
}

/// Where each movement lands: `x` by time between the first and the last (by rank when
/// they all share one instant), `y` by balance from zero to the highest.
fn positions(entries: &[&LedgerEntry]) -> Vec<(f64, f64)> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Vec::new();
    };
    let span = (last.at - first.at).num_milliseconds().max(0) as f64;
    let max = entries.iter().map(|e| e.balance.0).max().unwrap_or(0);
    let width = f64::from(RIGHT - LEFT);
    let height = f64::from(BOTTOM - TOP);
    let ranks = entries.len().saturating_sub(1).max(1) as f64;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let share = if span > 0.0 {
                (e.at - first.at).num_milliseconds().max(0) as f64 / span
            } else {
                i as f64 / ranks
            };
            let level = if max == 0 { 0.0 } else { e.balance.0 as f64 / max as f64 };
            (f64::from(LEFT) + share * width, f64::from(BOTTOM) - level * height)
        })
        .collect()
}

/// The step line through `points`: level until the next movement, then up or down;
/// the last balance runs on to the right edge.
fn step_line(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut line = Vec::with_capacity(points.len() * 2 + 1);
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            line.push((x, points[i - 1].1));
        }
        line.push((x, y));
    }
    if let Some(&(x, y)) = line.last() {
        if x < f64::from(RIGHT) {
            line.push((f64::from(RIGHT), y));
        }
    }
    line
}

fn coordinate(v: f64) -> String {
    format!("{v:.1}")
}

impl Chart {
    fn new(entries: &[LedgerEntry]) -> Option<Chart> {
        let (first, last) = (entries.first()?, entries.last()?);
        let step = entries.len().div_ceil(MAX_POINTS);
        let mut sample: Vec<&LedgerEntry> = entries.iter().step_by(step).collect();
        if !std::ptr::eq(*sample.last()?, last) {
            sample.push(last);
        }
        let points = positions(&sample);
        let polyline = step_line(&points)
            .iter()
            .map(|&(x, y)| format!("{},{}", coordinate(x), coordinate(y)))
            .collect::<Vec<_>>()
            .join(" ");
        let dots = if step == 1 {
            sample
                .iter()
                .zip(&points)
                .map(|(e, &(x, y))| Dot {
                    x: coordinate(x),
                    y: coordinate(y),
                    label: dot_label(e),
                })
                .collect()
        } else {
            Vec::new()
        };
        let max = entries.iter().map(|e| e.balance).max().unwrap_or_default();
        Some(Chart {
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: RIGHT,
            top: TOP,
            bottom: BOTTOM,
            description: format!(
                "Crédit de {} le {} à {} le {}, au plus {} ; {}.",
                first.balance.to_euros(),
                format::date_time(first.at),
                last.balance.to_euros(),
                format::date_time(last.at),
                max.to_euros(),
                format::counted(entries.len() as u64, "mouvement", "mouvements"),
            ),
            max_label: max.to_euros(),
            zero_label: crm_model::Cents::ZERO.to_euros(),
            first_label: format::date(first.at.date_naive()),
            last_label: format::date(last.at.date_naive()),
            polyline,
            dots,
        })
    }
}

fn dot_label(entry: &LedgerEntry) -> String {
    let mut label = format!(
        "{} : {} ({}",
        format::date_time(entry.at),
        format::signed_euros(entry.amount),
        cause_label(entry.cause)
    );
    if let Some(key) = &entry.key {
        label.push_str(", réf. ");
        label.push_str(key);
    }
    label.push_str(&format!(") — solde {}", entry.balance.to_euros()));
    label
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use crm_model::{Cents, LedgerCause};

    use super::*;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::days(days)
    }

    fn entry(seq: u64, day: i64, amount: i64, balance: u64, key: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            seq,
            at: at(day),
            amount,
            balance: Cents(balance),
            cause: if seq == 1 {
                LedgerCause::Opening
            } else {
                LedgerCause::Ticket
            },
            key: key.map(Into::into),
        }
    }

    fn sample() -> Vec<LedgerEntry> {
        vec![
            entry(1, 0, 1000, 1000, None),
            entry(2, 1, 500, 1500, Some("magasin42")),
            entry(3, 2, -1000, 500, None),
        ]
    }

    #[test]
    fn points_follow_time_and_balance_in_steps() {
        let entries = sample();
        let refs: Vec<&LedgerEntry> = entries.iter().collect();
        // x from 84 to 624 over two days; y from 208 (0 €) up to 16 (15,00 €).
        assert_eq!(positions(&refs), [(84.0, 80.0), (354.0, 16.0), (624.0, 144.0)]);
        let svg = credit_chart(&entries);
        assert!(
            svg.contains("points=\"84.0,80.0 354.0,80.0 354.0,16.0 624.0,16.0 624.0,144.0\""),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(
            svg.contains("15,00\u{a0}€"),
            "the top of the axis is the highest balance"
        );
        assert!(svg.contains("01/03/2024") && svg.contains("03/03/2024"));
        assert!(svg.contains("role=\"img\""));
    }

    #[test]
    fn one_movement_is_a_level_line_to_the_right_edge_and_same_instant_spreads_by_rank() {
        let svg = credit_chart(&[entry(1, 0, 250, 250, None)]);
        assert!(svg.contains("points=\"84.0,16.0 624.0,16.0\""), "{svg}");

        let same_time = [
            entry(1, 0, 0, 0, None),
            entry(2, 0, 0, 0, None),
            entry(3, 0, 0, 0, None),
        ];
        let refs: Vec<&LedgerEntry> = same_time.iter().collect();
        assert_eq!(positions(&refs), [(84.0, 208.0), (354.0, 208.0), (624.0, 208.0)]);
    }

    #[test]
    fn text_from_the_ledger_is_escaped() {
        let mut entries = sample();
        entries[1].key = Some("<script>alert(1)</script>\"&".into());
        let svg = credit_chart(&entries);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("réf. &#60;script&#62;alert(1)&#60;/script&#62;&#34;&#38;"),
            "{svg}"
        );
    }

    #[test]
    fn no_movement_draws_no_chart() {
        let html = credit_chart(&[]);
        assert!(!html.contains("<svg"));
        assert!(html.contains("Aucun mouvement de crédit"));
    }

    #[test]
    fn a_long_ledger_is_sampled_without_dots() {
        let entries: Vec<LedgerEntry> = (1..=2000).map(|i| entry(i, i as i64, 1, i, None)).collect();
        let svg = credit_chart(&entries);
        assert_eq!(svg.matches("<circle").count(), 0);
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(points.split(' ').count() <= 2 * (MAX_POINTS + 1), "{}", points.len());
        assert!(points.ends_with("624.0,16.0"), "the last movement is kept");
    }
}

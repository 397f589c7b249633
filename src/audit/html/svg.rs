//! Small inline SVG charts: grouped bars and horizontal bars.
//!
//! Drawn by hand rather than with a plotting crate: the report needs a few chart shapes, and
//! each is a few dozen lines of text; a crate would bring fonts, rasterisers or JavaScript we
//! would then have to keep out of a file that must open with no network.

use super::esc;
use std::fmt::Write as _;

/// The two series of a before/after chart.
pub const BEFORE: &str = "#9aa5b1";
pub const AFTER: &str = "#2f6fde";
/// Bars and bands that mean "bad" (conflicts, failures, harm).
pub const WARN: &str = "#d9822b";
pub const BAD: &str = "#c23030";
pub const GOOD: &str = "#238551";
pub const NEUTRAL: &str = "#5c7080";

/// A rounded-up axis maximum with at most two significant digits (so its label reads well).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    let steps = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
    steps
        .iter()
        .map(|s| s * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(max)
}

/// Two series of counts side by side per category (e.g. agents per half star before and
/// after), with category labels under the bars and the axis maximum on the left.
pub fn grouped_bars(labels: &[String], a: &[u32], b: &[u32], title: &str) -> String {
    let (width, height, left, bottom, top) = (420.0, 170.0, 34.0, 22.0, 8.0);
    let n = labels.len().max(1) as f64;
    let max = nice_max(f64::from(a.iter().chain(b).copied().max().unwrap_or(0)));
    let slot = (width - left - 4.0) / n;
    let bar = (slot - 4.0) / 2.0;
    let plot = height - bottom - top;
    let y = |v: u32| top + plot - plot * f64::from(v) / max;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(title)
    );
    axis(&mut out, left, top, width, plot, max);
    for (i, label) in labels.iter().enumerate() {
        let x = left + 2.0 + slot * i as f64;
        for (k, (series, colour)) in [(a, BEFORE), (b, AFTER)].into_iter().enumerate() {
            let v = series.get(i).copied().unwrap_or(0);
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{colour}"><title>{}: {v}</title></rect>"#,
                x + bar * k as f64,
                y(v),
                top + plot - y(v),
                esc(label)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x + bar,
            height - 6.0,
            esc(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// The y axis: a base line, the maximum's grid line and its label.
fn axis(out: &mut String, left: f64, top: f64, width: f64, plot: f64, max: f64) {
    let _ = write!(
        out,
        r#"<line x1="{left}" y1="{:.1}" x2="{width}" y2="{:.1}" class="axis"/><line x1="{left}" y1="{top}" x2="{width}" y2="{top}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">0</text>"#,
        top + plot,
        top + plot,
        left - 4.0,
        top + 4.0,
        max,
        left - 4.0,
        top + plot
    );
}

/// One horizontal bar per row: label, bar scaled to the largest value, and the count.
pub fn hbars(rows: &[(String, u64, &str)], title: &str) -> String {
    let (width, row, label_w) = (440.0, 22.0, 210.0);
    let height = row * rows.len().max(1) as f64 + 4.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let span = width - label_w - 50.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(title)
    );
    for (i, (label, value, colour)) in rows.iter().enumerate() {
        let y = 2.0 + row * i as f64;
        let w = (span * *value as f64 / max).max(if *value > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" class="tick">{value}</text>"#,
            label_w - 6.0,
            y + 15.0,
            esc(label),
            y + 3.0,
            row - 6.0,
            label_w + w + 4.0,
            y + 15.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_round_up_to_readable_values() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 8.0);
        assert_eq!(nice_max(23.0), 25.0);
        assert_eq!(nice_max(101.0), 150.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = hbars(&[("<b>".into(), 10, GOOD), ("half".into(), 5, BAD)], "t&t");
        assert!(svg.contains("&lt;b&gt;"), "{svg}");
        assert!(svg.contains(r#"aria-label="t&amp;t""#), "{svg}");
        assert!(
            svg.contains(r#"width="180.0""#),
            "the largest bar spans: {svg}"
        );
        assert!(svg.contains(r#"width="90.0""#), "half of it: {svg}");
    }

    #[test]
    fn grouped_bars_draw_both_series_per_category() {
        let labels: Vec<String> = ["0", "1"].iter().map(|s| s.to_string()).collect();
        let svg = grouped_bars(&labels, &[4, 0], &[2, 2], "skill");
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("<title>0: 4</title>") && svg.contains("<title>1: 2</title>"));
    }
}

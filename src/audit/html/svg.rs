//! Small inline SVG charts: grouped bars, horizontal bars, and an estimate with its interval
//! band over time.
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

/// One point of an estimate over time: its label (a date), the estimate and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct BandPoint {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// An estimate over time with its interval as a shaded band and the zero line ("no effect")
/// drawn across, so a band that leaves zero is visible at a glance.
pub fn band(points: &[BandPoint], title: &str, unit: &str) -> String {
    let (width, height, left, bottom, top) = (420.0, 170.0, 46.0, 22.0, 8.0);
    let plot_h = height - bottom - top;
    let plot_w = width - left - 8.0;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let lo = points.iter().map(|p| finite(p.low)).fold(0.0f64, f64::min);
    let hi = points.iter().map(|p| finite(p.high)).fold(0.0f64, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let y = |v: f64| top + plot_h - plot_h * (finite(v) - lo) / (hi - lo);
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(title)
    );
    if !points.is_empty() {
        let upper: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.high)))
            .collect();
        let lower: Vec<String> = points
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.low)))
            .collect();
        let _ = write!(
            out,
            r#"<polygon points="{} {}" fill="{AFTER}" fill-opacity="0.18"/>"#,
            upper.join(" "),
            lower.join(" ")
        );
        let line: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.estimate)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{AFTER}" stroke-width="2"/>"#,
            line.join(" ")
        );
        for (i, p) in points.iter().enumerate() {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{AFTER}"><title>{}: {:.3} ({:.3} to {:.3}) {}</title></circle>"#,
                x(i),
                y(p.estimate),
                esc(&p.label),
                p.estimate,
                p.low,
                p.high,
                esc(unit)
            );
        }
        for i in [0, n - 1] {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                x(i),
                height - 6.0,
                esc(&points[i].label)
            );
        }
    }
    let _ = write!(
        out,
        r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" class="zero"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">0</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{:.3}</text><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{:.3}</text>"#,
        y(0.0),
        left + plot_w,
        y(0.0),
        left - 4.0,
        y(0.0) + 4.0,
        left - 4.0,
        top + 8.0,
        hi,
        left - 4.0,
        top + plot_h,
        lo
    );
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

    #[test]
    fn a_band_spans_zero_and_its_points() {
        let points = vec![
            BandPoint {
                label: "d1".into(),
                estimate: -1.0,
                low: -3.0,
                high: 1.0,
            },
            BandPoint {
                label: "d2".into(),
                estimate: -2.0,
                low: -2.5,
                high: -1.5,
            },
        ];
        let svg = band(&points, "effect", "s");
        assert!(svg.contains("<polygon") && svg.contains("<polyline"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">-3.000<") && svg.contains(">1.000<"), "{svg}");
        assert!(band(&[], "empty", "s").contains(r#"class="zero""#));
    }
}

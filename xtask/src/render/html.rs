//! `report.html`: one self-contained page per evaluation (no scripts, no network). Each
//! cell opens with an overview a reader takes in at a glance: per workload the change
//! with its 95% interval against the zero line and the +/- `min_change_pct` band, the
//! axis in percent, rows that cannot be called greyed. Below it the table, with a
//! strip plot of every per-boot sample of every variant per workload and its scale;
//! then failures with their log lines, and the environment. Strips are SVG drawn by
//! plotters without text (their scale lives in the HTML); the overview is SVG written
//! here, its text in SVG `<text>` (escaped). Every string from mail or logs is escaped
//! by minijinja's HTML auto-escape. Pure.

use super::Templates;
use crate::compare::{self, Comparison, Side, Thresholds, Verdict};
use crate::report::Report;
use crate::stats;
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::Serialize;

const BASE: RGBColor = RGBColor(9, 105, 218);
const NEW: RGBColor = RGBColor(188, 76, 0);

#[derive(Serialize)]
struct Row {
    variant: String,
    workload: String,
    metric: String,
    base: String,
    new: String,
    change: String,
    interval: String,
    p: String,
    verdict: String,
    verdict_class: String,
    svg: String,
    /// The strip's scale: its left and right ends, in the metric's unit.
    scale: String,
}

#[derive(Serialize)]
struct Group {
    title: String,
    overview: String,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Variant {
    name: String,
    color: String,
}

fn side_text(s: &Side) -> String {
    if s.n == 0 {
        "failed".into()
    } else {
        format!(
            "{:.2} ±{:.1}% (n={}{})",
            s.median,
            s.cv_pct,
            s.n,
            if s.failed > 0 { format!(", {} failed", s.failed) } else { String::new() }
        )
    }
}

/// A strip plot: one row per side, every sample a point over its quartile box. Returns
/// the SVG and the values at its left and right edges.
pub fn strip_svg(sides: &[(&Side, RGBColor)]) -> Result<(String, f64, f64)> {
    let all: Vec<f64> =
        sides.iter().flat_map(|(s, _)| s.values.iter().copied()).filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return Ok((String::new(), f64::NAN, f64::NAN));
    }
    let (mut lo, mut hi) =
        all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.005).max(1e-9);
    lo -= pad;
    hi += pad;
    let (w, h) = (260u32, 16 + 20 * sides.len() as u32);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let rows = sides.len() as f64;
        let area = root.apply_coord_spec(Cartesian2d::<RangedCoordf64, RangedCoordf64>::new(
            lo..hi,
            -0.5..rows - 0.5,
            (4..w as i32 - 4, 4..h as i32 - 4),
        ));
        for (i, (s, color)) in sides.iter().enumerate() {
            let y = i as f64; // plotters' y grows downwards here: the first side on top
            let mut v: Vec<f64> = s.values.iter().copied().filter(|x| x.is_finite()).collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(|a, b| a.total_cmp(b));
            let (q1, med, q3) =
                (stats::percentile_sorted(&v, 25.0), stats::median(&v), stats::percentile_sorted(&v, 75.0));
            area.draw(&Rectangle::new([(q1, y - 0.3), (q3, y + 0.3)], color.mix(0.2).filled()))?;
            area.draw(&Rectangle::new([(q1, y - 0.3), (q3, y + 0.3)], color.stroke_width(1)))?;
            area.draw(&PathElement::new(vec![(med, y - 0.38), (med, y + 0.38)], color.stroke_width(2)))?;
            for (k, x) in s.values.iter().enumerate() {
                // Deterministic jitter so equal values stay visible.
                let jitter = ((k * 37 % 11) as f64 / 10.0 - 0.5) * 0.4;
                area.draw(&Circle::new((*x, y + jitter), 3, color.filled()))?;
            }
        }
        root.present()?;
    }
    Ok((buf.replacen("<svg ", "<svg class=\"strip\" ", 1), lo, hi))
}

/// The overview of one cell: a row per comparison, its change (gain, as in the table:
/// right is faster) as a point with its 95% interval, the zero line, the band of
/// changes too small to count, an axis in percent; rows that cannot be called grey.
pub fn overview_svg(rows: &[&Comparison], min_change_pct: f64) -> String {
    let gain = |x: f64| -x;
    let mut lo = -min_change_pct * 2.0;
    let mut hi = min_change_pct * 2.0;
    for c in rows {
        for x in [gain(c.ci_hi), gain(c.ci_lo), gain(c.change_pct)] {
            if x.is_finite() {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let (label_w, plot_w, row_h, top) = (260.0, 420.0, 18.0, 8.0);
    let height = top + row_h * rows.len() as f64 + 34.0;
    let x = |v: f64| label_w + (v - lo) / (hi - lo) * plot_w;
    let esc =
        |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut o = format!(
        "<svg class=\"overview\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        label_w + plot_w + 20.0
    );
    let bottom = top + row_h * rows.len() as f64;
    o += &format!(
        "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eaeef2\"><title>changes under {min_change_pct}% do not count</title></rect>",
        x(-min_change_pct),
        x(min_change_pct) - x(-min_change_pct),
        bottom - top
    );
    o += &format!(
        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"#57606a\"/>",
        x(0.0)
    );
    for (i, c) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let callable = !matches!(c.verdict, Verdict::TooNoisy | Verdict::TooFewRuns);
        let color = match c.verdict {
            Verdict::Improvement => "#1a7f37",
            Verdict::Regression => "#cf222e",
            _ if callable => "#24292f",
            _ => "#8c959f",
        };
        let name = if rows.iter().any(|r| r.variant != c.variant) {
            format!("{} ({})", c.workload, c.variant)
        } else {
            c.workload.clone()
        };
        o += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{color}\">{}</text>",
            label_w - 6.0,
            y + 4.0,
            esc(&name)
        );
        if c.ci_lo.is_finite() && c.ci_hi.is_finite() {
            o += &format!(
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                x(gain(c.ci_hi)),
                x(gain(c.ci_lo))
            );
        }
        if c.change_pct.is_finite() {
            o += &format!(
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\"><title>{:+.2}% [{:+.2}%, {:+.2}%] {}</title></circle>",
                x(gain(c.change_pct)),
                gain(c.change_pct),
                gain(c.ci_hi),
                gain(c.ci_lo),
                c.verdict.words()
            );
        }
    }
    // The axis: a tick at round percentages.
    let span = hi - lo;
    let step = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or(1000.0);
    o += &format!(
        "<line x1=\"{label_w}\" x2=\"{:.1}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"#57606a\"/>",
        label_w + plot_w
    );
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        o += &format!(
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{bottom}\" y2=\"{1:.1}\" stroke=\"#57606a\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3}%</text>",
            x(t),
            bottom + 4.0,
            bottom + 16.0,
            if t.abs() < 1e-9 { "0".to_string() } else { format!("{t:+}") }
        );
        t += step;
    }
    o += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#57606a\">gain of the median over the baseline, 95% interval (right: faster)</text></svg>",
        label_w + plot_w / 2.0,
        bottom + 30.0
    );
    o
}

fn row(c: &Comparison) -> Result<Row> {
    let (svg, lo, hi) = strip_svg(&[(&c.base, BASE), (&c.new, NEW)])?;
    let significant = matches!(c.verdict, Verdict::Improvement | Verdict::Regression);
    let class = serde_json::to_value(c.verdict)?.as_str().unwrap_or("").to_string();
    Ok(Row {
        variant: c.variant.to_string(),
        workload: c.workload.clone(),
        metric: c.metric.clone(),
        base: side_text(&c.base),
        new: side_text(&c.new),
        change: if c.change_pct.is_finite() { format!("{:+.2}%", -c.change_pct) } else { "-".into() },
        interval: if c.ci_lo.is_finite() {
            format!("[{:+.1}%, {:+.1}%]", -c.ci_hi, -c.ci_lo)
        } else {
            "-".into()
        },
        p: if c.p_value.is_finite() { format!("{:.3}", c.p_value) } else { "-".into() },
        verdict: c.verdict.words().to_string(),
        verdict_class: if significant || class != "no_significant_change" { class } else { String::new() },
        svg,
        scale: if lo.is_finite() {
            format!("{} to {}", super::prose::fmt_num(lo), super::prose::fmt_num(hi))
        } else {
            String::new()
        },
    })
}

/// `report.html` for `r`.
pub fn render(r: &Report, templates: &Templates, thresholds: &Thresholds) -> Result<String> {
    let alpha = thresholds.alpha;
    let groups: Vec<Group> = compare::by_cell(&r.comparisons)
        .into_iter()
        .map(|(cell, rows)| {
            let boots = rows.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
            let stop = r.stop_of(&cell);
            let title = match stop {
                Some(s) => {
                    format!("{}; --reps auto: {} ({} boots ran)", cell.title(boots), s.why, s.boots_run)
                }
                None => cell.title(boots),
            };
            Ok(Group {
                title,
                overview: overview_svg(&rows, thresholds.min_change_pct),
                rows: rows.into_iter().map(row).collect::<Result<_>>()?,
            })
        })
        .collect::<Result<_>>()?;
    let verdict_line = if r.apply.is_some() {
        "The series does not apply; nothing was measured.".to_string()
    } else if r.all_passed() {
        "Every requested build and boot succeeded.".to_string()
    } else {
        "Not everything passed: see Failures.".to_string()
    };
    let html = templates.render(
        super::PAGE,
        minijinja::context! {
            r => r,
            steps => step_plots(r),
            groups => groups,
            alpha => alpha,
            verdict_line => verdict_line,
            variants => r.plan.variants.iter().enumerate().map(|(i, v)| Variant {
                name: v.to_string(),
                color: if i == 0 { "#0969da".into() } else { "#bc4c00".into() },
            }).collect::<Vec<_>>(),
            multi => r.plan.variants.len() > 2,
            failures => super::prose::failures(r),
        },
    )?;
    Ok(html)
}

/// `--per-patch`: per cell, one step plot per workload: the median of the baseline and
/// of the tree after each patch, left to right.
#[derive(serde::Serialize)]
struct StepPlot {
    title: String,
    rows: Vec<StepRow>,
}

#[derive(serde::Serialize)]
struct StepRow {
    workload: String,
    svg: String,
    values: String,
}

fn step_plots(r: &Report) -> Vec<StepPlot> {
    if r.per_patch.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    for (cell, cs) in &compare::by_cell(&r.comparisons) {
        let n = cs.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
        let mut workloads: Vec<&str> = Vec::new();
        for c in cs {
            if !workloads.contains(&c.workload.as_str()) {
                workloads.push(&c.workload);
            }
        }
        let rows = workloads
            .into_iter()
            .map(|w| {
                let of = |v: &str| cs.iter().find(|c| c.workload == w && c.variant == v);
                // The baseline's median, then each patch's.
                let mut values: Vec<f64> =
                    of(r.per_patch[0].variant.as_str()).map(|c| vec![c.base.median]).unwrap_or_default();
                values
                    .extend(r.per_patch.iter().filter_map(|s| of(s.variant.as_str()).map(|c| c.new.median)));
                StepRow {
                    workload: w.to_string(),
                    svg: step_svg(&values),
                    values: values.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(" → "),
                }
            })
            .collect();
        out.push(StepPlot { title: cell.title(n), rows });
    }
    out
}

/// A step line through `values` (numbers only: nothing from mail reaches it).
fn step_svg(values: &[f64]) -> String {
    let (w, h, pad) = (240.0, 48.0, 6.0);
    if values.is_empty() || !values.iter().all(|v| v.is_finite()) {
        return String::new();
    }
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = (w - 2.0 * pad) / values.len() as f64;
    let y = |v: f64| pad + (h - 2.0 * pad) * (1.0 - (v - lo) / span);
    let mut d = String::new();
    for (i, v) in values.iter().enumerate() {
        let (x0, x1) = (pad + i as f64 * step, pad + (i + 1) as f64 * step);
        d.push_str(&format!("{}{x0:.1},{:.1} H{x1:.1} ", if i == 0 { "M" } else { "V" }, y(*v)));
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><path class=\"step\" d=\"{}\" fill=\"none\" stroke=\"#bc4c00\" stroke-width=\"2\"/></svg>",
        d.trim_end()
    )
}

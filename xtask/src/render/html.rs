//! `report.html`: one self-contained page per evaluation (no scripts, no network): the
//! tables, a plot of every per-boot sample of every variant per workload, failures with
//! their log lines, and the environment. Plots are SVG drawn by plotters without text
//! (labels live in the HTML); every string is escaped by minijinja's HTML auto-escape.
//! Pure.

use super::Templates;
use crate::compare::{self, Comparison, Side, Verdict};
use crate::model::Accel;
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
}

#[derive(Serialize)]
struct Group {
    title: String,
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

/// A strip plot: one row per side, every sample a point over its quartile box.
pub fn strip_svg(sides: &[(&Side, RGBColor)]) -> Result<String> {
    let all: Vec<f64> =
        sides.iter().flat_map(|(s, _)| s.values.iter().copied()).filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return Ok(String::new());
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
    Ok(buf)
}

fn row(c: &Comparison) -> Result<Row> {
    let significant = matches!(c.verdict, Verdict::Improvement | Verdict::Regression);
    let class = serde_json::to_value(c.verdict)?.as_str().unwrap_or("").to_string();
    Ok(Row {
        variant: c.variant.clone(),
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
        svg: strip_svg(&[(&c.base, BASE), (&c.new, NEW)])?,
    })
}

/// `report.html` for `r`.
pub fn render(r: &Report, templates: &Templates, alpha: f64) -> Result<String> {
    let groups: Vec<Group> = compare::by_cell(&r.comparisons)
        .into_iter()
        .map(|(cell, rows)| {
            let accel = match cell.accel {
                Accel::Tcg => "QEMU TCG (emulated)",
                Accel::Kvm => "QEMU KVM",
                Accel::Metal => "metal",
            };
            Ok(Group {
                title: format!("{}: {accel}, {} vCPU, {}", cell.arch, cell.cpus, cell.clock.words()),
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
            groups => groups,
            alpha => alpha,
            verdict_line => verdict_line,
            variants => r.plan.variants.iter().enumerate().map(|(i, v)| Variant {
                name: v.clone(),
                color: if i == 0 { "#0969da".into() } else { "#bc4c00".into() },
            }).collect::<Vec<_>>(),
            multi => r.plan.variants.len() > 2,
            failures => super::prose::failures(r),
        },
    )?;
    Ok(html)
}

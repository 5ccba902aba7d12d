//! `compare A B`'s report as a new thread: a `[REGRESSION]` subject naming the worst
//! regression (none when nothing regressed), per-vCPU rows with a reliability label,
//! the environment, what the tool can state about the builds, and regzbot's line. Pure.

use super::header::{encode_text, fold, format_addr, Envelope, Headers};
use super::prose::{
    config_line, failures, fmt_num, fmt_p, join_u32, machine_line, metric_unit, reliability, short, wrap,
};
use super::Templates;
use crate::compare::{self, Comparison, Verdict};
use crate::mail::{clean_header, Addr};
use crate::report::Report;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A report comparing two trees (`cargo xtask compare A B`) as a new thread: a
/// `[REGRESSION]` subject naming the worst regression, or none when nothing regressed.
pub fn render(r: &Report, env: &Envelope, to: &[Addr], cc: &[Addr], templates: &Templates) -> Result<String> {
    let rel = r.releases.as_ref().context("not a comparison of two trees")?;
    let (a, b) = (rel.a.label.as_str(), rel.b.label.as_str());
    let ratio = |c: &Comparison| c.new.median / c.base.median;
    let mut regressions: Vec<&Comparison> =
        r.comparisons.iter().filter(|c| c.verdict == Verdict::Regression).collect();
    regressions.sort_by(|x, y| ratio(y).total_cmp(&ratio(x)));
    let subject = match regressions.first() {
        Some(w) => format!(
            "[REGRESSION] mm: {} takes ~{:.2}x longer on {b} than {a} ({}, {})",
            w.workload,
            ratio(w),
            w.arch,
            w.clock.words()
        ),
        None => format!("mm: no regression in the mprotect/mremap workloads from {a} to {b}"),
    };

    let mut regr = String::new();
    // Every vCPU count of a regressed (workload, arch, accel, clock).
    type Row = (String, crate::model::ArchName, crate::model::Accel, crate::model::Clock);
    let row = |c: &Comparison| -> Row { (c.workload.clone(), c.arch.clone(), c.accel, c.clock) };
    let mut by_workload: BTreeMap<Row, Vec<&Comparison>> = BTreeMap::new();
    for c in &regressions {
        by_workload.entry(row(c)).or_default();
    }
    for c in &r.comparisons {
        if let Some(v) = by_workload.get_mut(&row(c)) {
            v.push(c);
        }
    }
    for ((workload, arch, accel, clock), rows) in &by_workload {
        let _ = writeln!(
            regr,
            "  {workload}, {} ({arch}, {}, {})",
            metric_unit(&rows[0].metric),
            accel.upper(),
            clock.words()
        );
        let _ = writeln!(regr, "  {:>4} {:>12} {:>12} {:>7} {:>8}  reliability", "vCPU", a, b, "ratio", "p");
        for c in rows {
            let _ = writeln!(
                regr,
                "  {:>4} {:>12} {:>12} {:>6.2}x {:>8}  {}",
                c.cpus,
                fmt_num(c.base.median),
                fmt_num(c.new.median),
                ratio(c),
                fmt_p(c.p_value),
                reliability(c, r.boots_of(c))
            );
        }
        regr.push('\n');
    }

    let mut overview = String::new();
    for (cell, rows) in &compare::by_cell(&r.comparisons) {
        // The same title as the reply's tables and the page's sections.
        let boots = rows.iter().map(|c| c.base.n.max(c.new.n)).max().unwrap_or(0);
        let _ = writeln!(overview, "  {}", cell.title(boots));
        for c in rows {
            let _ = writeln!(
                overview,
                "    {:<36} {:>7} {:>11} {:>11} {:>6.2}x  {}",
                c.workload,
                metric_unit(&c.metric),
                fmt_num(c.base.median),
                fmt_num(c.new.median),
                ratio(c),
                c.verdict.words()
            );
        }
    }

    let mut envb = String::new();
    let rel_line = |x: &crate::report::ReleaseInfo| {
        format!(
            "{} ({}{}, commit {})",
            x.label,
            x.release.as_deref().map(|v| format!("Linux {v}, ")).unwrap_or_default(),
            x.tree,
            short(&x.commit)
        )
    };
    let _ = writeln!(envb, "  Kernels:   {}", rel_line(&rel.a));
    let _ = writeln!(envb, "             {}", rel_line(&rel.b));
    let mut compilers: Vec<String> =
        r.builds.iter().filter(|b| b.ok).map(|b| format!("{} ({})", b.compiler, b.arch)).collect();
    compilers.sort();
    compilers.dedup();
    for (i, c) in compilers.iter().enumerate() {
        let _ = writeln!(envb, "  {:<10} {c}", if i == 0 { "Compilers:" } else { "" });
    }
    match r.builds.iter().find(|b| b.ok) {
        Some(b) if b.machine_config().is_some() => {
            let _ = writeln!(envb, "{}", config_line(r).unwrap_or_default());
        }
        Some(b) => {
            let _ = writeln!(
                envb,
                "  Config:    the same fragments for both: tinyconfig + {}",
                b.fragments.join(" + ")
            );
        }
        None => {}
    }
    for (i, arch) in r.plan.arches.iter().enumerate() {
        let _ = writeln!(
            envb,
            "  {:<10} {arch}: {}",
            if i == 0 { "Machines:" } else { "" },
            machine_line(r, arch)
        );
    }
    let _ = write!(
        envb,
        "  Method:    {} boots of each kernel per vCPU count{}, interleaved ({}), suite \"{}\"",
        r.reps_words(),
        if r.plan.stopping.is_some() { " (--reps auto)" } else { "" },
        r.plan.order,
        r.plan.suite
    );

    let mut facts = String::new();
    let kernels: Vec<String> = {
        let mut k: Vec<String> = r.boots.iter().map(|b| format!("{} ({})", b.kernel, b.variant)).collect();
        k.sort();
        k.dedup();
        k
    };
    let _ = writeln!(facts, "  Kernels booted: {}", kernels.join(", "));
    for m in &r.machines {
        let _ = writeln!(
            facts,
            "  {}: {} KiB pages, THP {} (the harness checks the folio sizes it asked for)",
            m.arch,
            m.page_size / 1024,
            m.thp
        );
    }
    let _ = write!(facts, "{}", config_facts(r));

    let intro = match regressions.first() {
        Some(w) => format!(
            "Measuring the mprotect()/mremap() workloads discussed on linux-mm, {} takes {:.2}x as long on {b} as on {a} ({}, {}, {} vCPU, {} boots each, p = {}). {} of {} comparisons regress in all. Details, the environment and how to reproduce are below.",
            w.workload,
            ratio(w),
            w.arch,
            w.clock.words(),
            w.cpus,
            w.base.n.min(w.new.n),
            fmt_p(w.p_value),
            regressions.len(),
            r.comparisons.len()
        ),
        None => format!(
            "Measuring the mprotect()/mremap() workloads discussed on linux-mm, no workload regresses significantly from {a} to {b} ({} comparisons; {} too noisy or with too few runs to tell).",
            r.comparisons.len(),
            r.count(Verdict::TooNoisy) + r.count(Verdict::TooFewRuns)
        ),
    };
    let addrs = |v: &[Addr]| v.iter().map(format_addr).collect::<Vec<_>>().join(", ");
    let h = Headers {
        from: format_addr(&env.from),
        to: if to.is_empty() { format_addr(&env.from) } else { fold("To", &addrs(to)) },
        cc: fold("Cc", &addrs(cc)),
        subject: fold("Subject", &encode_text(&subject)),
        date: clean_header(&env.date),
        message_id: format!("<{}>", clean_header(&env.message_id).replace(['<', '>', ' '], "")),
        in_reply_to: String::new(),
        references: String::new(),
    };
    let reproduce = wrap(
        &format!(
            "cargo xtask compare {a} {b} --arch {} --cpus {} --suite {} {} --clock {}",
            r.plan.arches.join(","),
            join_u32(&r.plan.cpus).replace('/', ","),
            r.plan.suite,
            r.reps_flag(),
            super::reply::clock_flag(&r.plan.clocks)
        ),
        72,
        "",
    );
    let text = templates.render(
        super::REGRESSION,
        minijinja::context! {
            h => h,
            version => env!("CARGO_PKG_VERSION"),
            a => a,
            b => b,
            intro => wrap(&intro, 72, ""),
            environment => envb,
            regressions => regr,
            overview => overview,
            facts => facts,
            failures => failures(r),
            reproduce => reproduce,
            regzbot => if regressions.is_empty() { String::new() } else { format!("#regzbot introduced: {a}..{b}") },
        },
    )?;
    Ok(crate::mail::scrub_text(&text))
}

/// What can be said about the two kernels' configuration: only what the builds
/// recorded (the preemption model their .config files ended with, where they came from).
fn config_facts(r: &Report) -> String {
    let ok: Vec<&crate::report::BuildEntry> = r.builds.iter().filter(|b| b.ok).collect();
    let Some(first) = ok.first() else {
        return "  Nothing was built, so nothing can be said about the configuration.".into();
    };
    let from = match first.machine_config() {
        Some(m) => format!("the machine's own config ({m}) plus metal.config"),
        None => "the same Kconfig fragments".to_string(),
    };
    let models: Vec<Option<&str>> = ok.iter().map(|b| b.preempt.as_deref()).collect();
    match models.iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>()[..] {
        [Some(m)] => format!(
            "  Both kernels are built from {from}, and every build's .config has CONFIG_{m}=y,\n  so the difference is the code, not the preemption model."
        ),
        [None] => format!("  Both kernels are built from {from}."),
        _ => {
            let each: Vec<String> = ok
                .iter()
                .map(|b| format!("{} {}: {}", b.arch, b.variant, b.preempt.as_deref().unwrap_or("unknown")))
                .collect();
            format!(
                "  Both kernels are built from {from}, but their preemption models differ\n  ({}): part of the difference may be the configuration.",
                each.join(", ")
            )
        }
    }
}

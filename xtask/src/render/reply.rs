//! The reply to the series: threaded under the cover letter (or the only patch), the
//! cover quoted, what was tested, the tables, the summary, the failures, and a
//! `Tested-by:` only when everything passed. Pure: the date and Message-ID come in.

use super::header::{encode_text, fold, format_addr, reply_subject, Envelope, Headers};
use super::prose::{failures, join_u32, list, summary, tables, tested_block, wrap, LEGEND};
use super::Templates;
use crate::mail::{clean_header, Addr};
use crate::model::Target;
use crate::report::Report;
use anyhow::Result;

/// The part of the cover letter worth quoting: its first paragraphs, up to the
/// shortlog, a changelog, the diffstat or the `---` line; at most 12 lines.
fn quote(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut cut = false;
    for line in body.lines() {
        let t = line.trim();
        let stop = t == "---"
            || t == "-- "
            || t.starts_with("base-commit:")
            || t.starts_with("Changes in v")
            || t.starts_with("v1:")
            || t.contains(" | ")
            || (t.ends_with("):") && t.contains(" ("))
            || t.starts_with("diff --git");
        if stop || kept.len() >= 12 {
            cut = true;
            break;
        }
        kept.push(line);
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let mut out: Vec<String> =
        kept.iter().map(|l| if l.is_empty() { ">".to_string() } else { format!("> {l}") }).collect();
    if cut {
        out.push(">".into());
        out.push("> [...]".into());
    }
    out.join("\n")
}

/// The reply to the series of `r`.
pub fn render(r: &Report, env: &Envelope, templates: &Templates) -> Result<String> {
    let me = env.from.email.to_ascii_lowercase();
    let to = &r.reply_to.from;
    let mut cc: Vec<String> = Vec::new();
    let mut seen = vec![me.clone(), to.email.to_ascii_lowercase()];
    for a in r.reply_to.to.iter().chain(&r.reply_to.cc) {
        let e = a.email.to_ascii_lowercase();
        if !e.is_empty() && !seen.contains(&e) {
            seen.push(e);
            cc.push(format_addr(a));
        }
    }
    let ids = |v: &[String]| {
        v.iter().map(|id| format!("<{}>", clean_header(id).replace(['<', '>', ' '], ""))).collect::<Vec<_>>()
    };
    let in_reply_to =
        r.reply_to.message_id.as_deref().map(|id| ids(&[id.to_string()]).join("")).unwrap_or_default();
    let mut refs = ids(&r.reply_to.references);
    if !in_reply_to.is_empty() {
        refs.push(in_reply_to.clone());
    }
    let h = Headers {
        from: format_addr(&env.from),
        to: format_addr(to),
        cc: fold("Cc", &cc.join(", ")),
        subject: fold("Subject", &encode_text(&reply_subject(&r.reply_to.subject))),
        date: clean_header(&env.date),
        message_id: format!("<{}>", clean_header(&env.message_id).replace(['<', '>', ' '], "")),
        in_reply_to,
        references: fold("References", &refs.join(" ")),
    };
    let attribution = match &r.reply_to.date {
        Some(d) => format!("On {d}, {} wrote:", clean_header(&to.name).if_empty(&to.email)),
        None => format!("{} wrote:", clean_header(&to.name).if_empty(&to.email)),
    };
    let intro = wrap(
        &format!(
            "I ran the series through mmeval: {} kernels built for {}, booted {} times each in alternation{}, with the mprotect()/mremap() workloads discussed on linux-mm.",
            list(&r.plan.variants),
            r.plan.arches.join(", "),
            r.reps_words(),
            if r.plan.stopping.is_some() { " (rounds until every workload was decided)" } else { "" }
        ),
        72,
        "",
    );
    // Cover letters and console excerpts are the sender's and the kernel's text.
    let body = templates.render(
        super::REPLY,
        minijinja::context! {
            h => h,
            version => env!("CARGO_PKG_VERSION"),
            attribution => attribution,
            quote => quote(&r.reply_to.body),
            intro => intro,
            tested => tested_block(r),
            legend => wrap(LEGEND, 72, ""),
            tables => tables(r),
            steps => super::steps::steps_table(r),
            summary => summary(r),
            failures => failures(r),
            reproduce => reproduce(r),
            tested_by => if r.all_passed() { tested_by_line(&env.from) } else { None },
        },
    )?;
    Ok(crate::mail::scrub_text(&body))
}

fn reproduce(r: &Report) -> String {
    let fetch = match &r.reply_to.message_id {
        Some(id) => format!("b4 am {}", shell_word(&clean_header(id))),
        None => "save the thread as an mbox".into(),
    };
    let revs = if r.revisions.is_empty() {
        r.series.version.to_string()
    } else {
        r.revisions.iter().map(|x| x.version.to_string()).collect::<Vec<_>>().join(",")
    };
    // On a real machine the machine decides the arch, the CPUs and the clock.
    let (target, clock) = match &r.plan.target {
        Target::Ssh(dest) => (format!("--host {}", clean_header(dest)), String::new()),
        Target::Local => ("--metal".to_string(), String::new()),
        Target::Qemu => (
            format!("--arch {} --cpus {}", r.plan.arches.join(","), join_u32(&r.plan.cpus).replace('/', ",")),
            format!(" --clock {}", clock_flag(&r.plan.clocks)),
        ),
        Target::Lava(url, device_type) => (
            format!(
                "--lava {} --lava-device-type {} --arch {} --cpus {}",
                shell_word(&clean_header(url)),
                shell_word(&clean_header(device_type)),
                r.plan.arches.join(","),
                join_u32(&r.plan.cpus).replace('/', ",")
            ),
            format!(" --clock {}", clock_flag(&r.plan.clocks)),
        ),
    };
    wrap(
        &format!(
            "{fetch}, then cargo xtask eval <the mbox> --rev {revs} {target} --suite {} {}{clock}{}",
            r.plan.suite,
            r.reps_flag(),
            if r.per_patch.is_empty() { "" } else { " --per-patch" },
        ),
        72,
        "",
    )
}

/// A Message-ID as people paste it into a shell: as it is when it is only the
/// characters message ids are made of, else single-quoted (a `$(...)` stays text).
pub fn shell_word(id: &str) -> String {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "@._+-=%/:".contains(c)) {
        id.to_string()
    } else {
        format!("'{}'", id.replace('\'', "'\\''"))
    }
}

/// `--clock` as the plan had it.
pub fn clock_flag(clocks: &[crate::model::Clock]) -> &'static str {
    match clocks {
        [one] => one.name(),
        _ => "both",
    }
}

/// `Tested-by: Name <email>` takes the name as people write it (UTF-8 in the body).
fn tested_by_line(a: &Addr) -> Option<String> {
    let email = clean_header(&a.email);
    if email.is_empty() {
        return None;
    }
    let name = clean_header(&a.name);
    Some(if name.is_empty() { format!("<{email}>") } else { format!("{name} <{email}>") })
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() {
            other.to_string()
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn message_ids_are_one_shell_word_that_runs_nothing() {
        assert_eq!(
            shell_word("20261110083000.5151-0-mira@example.org"),
            "20261110083000.5151-0-mira@example.org"
        );
        assert_eq!(shell_word("x$(touch /tmp/p)@evil"), "'x$(touch /tmp/p)@evil'");
        let hostile = "a'b`id`;c@x";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_word(hostile)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), hostile);
    }
}

//! `xtask b4-check`: the series check command of `b4 review`
//! (`b4.review-series-check-cmd`). b4 runs it in the kernel tree with the cover letter
//! on stdin (and `B4_TRACKING_FILE` naming the series' tracking JSON, whose
//! `series.thread-blob` is a blob of the whole thread in that repository) and reads a
//! JSON list of `{tool, status: pass|warn|fail, summary, url, details}` from stdout.
//! The answer comes from our evaluation of that series and revision: none yet starts
//! one in the background (`warn`), one running is `warn`, one finished is `pass`,
//! `warn` (noisy or undecided) or `fail` (apply/build/boot failures, a significant
//! regression). Nothing but the JSON is ever printed; every error is a `fail` entry.

use crate::compare::Verdict;
use crate::report::Report;
use crate::rundir::RunDir;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const TOOL: &str = "mmeval";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub tool: String,
    pub status: &'static str,
    pub summary: String,
    pub url: String,
    pub details: String,
}

impl Check {
    fn new(status: &'static str, summary: String) -> Check {
        Check { tool: TOOL.into(), status, summary, url: String::new(), details: String::new() }
    }
}

/// The check for the cover letter on stdin; never an error.
pub fn b4_check(out_root: &Path, lore: Option<&str>) -> Vec<Check> {
    let mut cover = Vec::new();
    let answer = std::io::stdin()
        .read_to_end(&mut cover)
        .context("cannot read the cover letter on stdin")
        .and_then(|_| check(&cover, std::env::var_os("B4_TRACKING_FILE").map(PathBuf::from), out_root, lore));
    match answer {
        Ok(c) => vec![c],
        Err(e) => vec![Check::new("fail", crate::mail::scrub_text(&format!("{e:#}")))],
    }
}

/// The whole thread: from b4's tracking (a blob in the repository we run in), else by
/// the cover's message-id through the archive.
fn thread(msgid: &str, tracking: Option<PathBuf>, lore: Option<&str>) -> Result<PathBuf> {
    let dir = crate::reftree::cache_root().join("b4-check");
    std::fs::create_dir_all(&dir)?;
    if let Some(t) = tracking {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&t)
                .with_context(|| format!("cannot read B4_TRACKING_FILE {}", t.display()))?,
        )
        .with_context(|| format!("B4_TRACKING_FILE {} is not JSON", t.display()))?;
        if let Some(blob) = json["series"]["thread-blob"]
            .as_str()
            .filter(|b| b.chars().all(|c| c.is_ascii_hexdigit()) && !b.is_empty())
        {
            let sh = xshell::Shell::new()?;
            let bytes = xshell::cmd!(sh, "git cat-file blob {blob}").quiet().output();
            if let Ok(o) = bytes {
                let file = dir.join(format!("{blob}.mbox"));
                std::fs::write(&file, o.stdout)?;
                return Ok(file);
            }
        }
    }
    Ok(crate::lore::resolve(msgid, lore)?.0)
}

fn check(cover: &[u8], tracking: Option<PathBuf>, out_root: &Path, lore: Option<&str>) -> Result<Check> {
    let mail = crate::mail::parse_message(cover, 0).context("the cover letter on stdin does not parse")?;
    let Some(msgid) = mail.message_id.clone() else { bail!("the cover letter on stdin has no Message-ID") };
    let file = thread(&msgid, tracking, lore)?;
    let series = crate::input::read_series(&file, Default::default())?;
    let dir = RunDir::at(out_root.join(&series.slug));
    let running = || {
        let mut c = Check::new(
            "warn",
            format!("v{} evaluation running, see {}", series.version, dir.path().display()),
        );
        c.url = file_url(&dir.path().join("report.html"));
        c
    };
    if dir.path().exists() && dir.lock(false).is_err() {
        return Ok(running());
    }
    let report: Option<Report> = dir
        .path()
        .join("reply.eml")
        .exists()
        .then(|| std::fs::read_to_string(dir.path().join("report.json")).ok())
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|r: &Report| r.series.version == series.version);
    match report {
        Some(r) => Ok(judge(&r, &dir.path().join("report.html"))),
        None => {
            start(&file, out_root, &series.slug)?;
            Ok(running())
        }
    }
}

/// `xtask eval FILE --out OUT` in a session of its own (it outlives b4's wait for us),
/// its output to a log in the cache.
fn start(file: &Path, out_root: &Path, slug: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let log_path = crate::reftree::cache_root().join("b4-check").join(format!("{slug}.log"));
    let log =
        std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let me = std::env::current_exe().context("cannot find this program to start the evaluation")?;
    let mut c = std::process::Command::new(me);
    c.arg("eval").arg(file).arg("--out").arg(out_root);
    c.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    c.spawn().context("cannot start the evaluation")?;
    Ok(())
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// What a finished evaluation says, as one check.
pub fn judge(r: &Report, page: &Path) -> Check {
    let arches: Vec<String> = r.plan.arches.iter().map(|a| a.to_string()).collect();
    let (status, summary) = if let Some(a) = &r.apply {
        (
            "fail",
            format!("v{}: does not apply: {}", r.series.version, crate::mail::scrub_text(&a.to_string())),
        )
    } else if let Some(b) = r.builds.iter().find(|b| !b.ok) {
        (
            "fail",
            format!(
                "the {} build for {} failed at {}",
                b.variant,
                b.arch,
                b.step.as_deref().unwrap_or("make")
            ),
        )
    } else if !r.failed_boots().is_empty() || r.boots.is_empty() {
        ("fail", format!("{} of {} boots failed", r.failed_boots().len(), r.boots.len()))
    } else {
        let faster = r.count(Verdict::Improvement);
        let slower: Vec<&crate::compare::Comparison> =
            r.comparisons.iter().filter(|c| c.verdict == Verdict::Regression).collect();
        let undecided = r.count(Verdict::TooNoisy) + r.count(Verdict::TooFewRuns);
        let mut s = format!("{}: {faster} faster, {} slower", arches.join(", "), slower.len());
        if let Some(worst) = slower.iter().max_by(|a, b| a.change_pct.total_cmp(&b.change_pct)) {
            s.push_str(&format!(": {} {:+.0}%", worst.workload, worst.change_pct));
        }
        if undecided > 0 {
            s.push_str(&format!("; {undecided} too noisy or too few runs"));
        }
        let status = if !slower.is_empty() {
            "fail"
        } else if undecided > 0 || !r.all_passed() {
            "warn"
        } else {
            "pass"
        };
        (status, s)
    };
    Check {
        tool: TOOL.into(),
        status,
        summary,
        url: file_url(page),
        details: crate::mail::scrub_text(&crate::render::prose::tables(r)),
    }
}

//! `cargo xtask series` and `cargo xtask apply`: what a series is, and applying it.

use crate::apply::{self, ApplyOutcome};
use crate::input;
use crate::mail::MboxFormat;
use crate::series::{self, Choice};
use crate::tree::TreeHandle;
use anyhow::{bail, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The summary of the chosen revision, or the whole model as JSON.
pub fn series(file: &Path, choice: Choice, format: MboxFormat, json: bool) -> Result<String> {
    if json {
        let mb = input::read_mailbox_as(file, format)?;
        let chosen = series::choose(&mb, choice)?;
        let out = serde_json::json!({ "chosen": chosen, "mailbox": mb });
        return Ok(serde_json::to_string_pretty(&out)? + "\n");
    }
    Ok(series::summary(&input::read_series_as(file, choice, format)?))
}

/// Applies the chosen revision and says what became of each patch; a patch that does
/// not apply is the command's failure, in one line.
pub fn apply(
    file: &Path,
    choice: Choice,
    format: MboxFormat,
    tree: &TreeHandle,
    base: Option<&str>,
) -> Result<String> {
    let s = input::read_series_as(file, choice, format)?;
    let applied = match apply::apply_to_repo(&tree.repo_path, &s, base)? {
        ApplyOutcome::Applied(a) => a,
        ApplyOutcome::Failed(f) => bail!("{f}"),
    };
    let mut o = String::new();
    let _ = writeln!(o, "Applied v{} of \"{}\" to {}", s.version, s.subject(), tree.label);
    let _ = writeln!(o, "  base {} ({})", applied.base, applied.base_source);
    if let Some(from) = s.rerolled_from {
        let _ = writeln!(o, "  a partial reroll: the patches marked (from v{from}) are v{from}'s");
    }
    for (p, sp) in applied.patches.iter().zip(&s.patches) {
        let how = if p.three_way { "  (three-way)" } else { "" };
        let from = sp.from_revision.map(|v| format!("  (from v{v})")).unwrap_or_default();
        let _ =
            writeln!(o, "  {} {}/{} {}{how}{from}", &p.commit[..12], p.number, s.patches.len(), p.subject);
        for off in &p.offsets {
            let _ = writeln!(o, "      applied at an offset: {off}");
        }
    }
    let _ = writeln!(o, "  {} -> {}", applied.refname, applied.tip);
    Ok(o)
}

//! Reading a series from disk: one file (mbox, mboxrd, .gz, .eml, .patch) or a
//! directory of `git format-patch` files. The only impure part of ingestion.

use crate::mail::{self, Mail};
use crate::series::{self, Choice, Mailbox, Series};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Every mail in FILE (or in the directory's patch files, in name order).
pub fn read_mails(path: &Path) -> Result<Vec<Mail>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}: give an mbox, a patch or a directory of patches", path.display()))?;
    if !meta.is_dir() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return mail::parse_container(&bytes).with_context(|| format!("{}", path.display()));
    }
    let mut files: Vec<_> = walkdir::WalkDir::new(path)
        .max_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            [".patch", ".eml", ".mbox", ".mbx", ".gz"].iter().any(|x| n.ends_with(x)) && !n.starts_with('.')
        })
        .map(|e| e.into_path())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} has no .patch, .eml or .mbox files", path.display());
    }
    let mut all = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        for mut m in mail::parse_container(&bytes).with_context(|| format!("{}", f.display()))? {
            m.index = all.len();
            all.push(m);
        }
    }
    Ok(all)
}

pub fn read_mailbox(path: &Path) -> Result<Mailbox> {
    let mails = read_mails(path)?;
    series::build_mailbox(&mails).with_context(|| format!("{}", path.display()))
}

pub fn read_series(path: &Path, choice: Choice) -> Result<Series> {
    let mb = read_mailbox(path)?;
    series::choose(&mb, choice).with_context(|| format!("{}", path.display()))
}

//! Reading a series from disk: one file (mbox, mboxrd, .gz, .eml, .patch) or a
//! directory of `git format-patch` files. The only impure part of ingestion.

use crate::mail::{self, Mail, MboxFormat};
use crate::series::{self, Choice, Mailbox, Series};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The raw messages of FILE, or of the directory's patch files in name order; the
/// index of a message here is its [`Mail::index`].
pub fn read_raw_messages(path: &Path) -> Result<Vec<Vec<u8>>> {
    read_raw_messages_as(path, MboxFormat::Auto)
}

/// [`read_raw_messages`] with the mbox flavour given.
pub fn read_raw_messages_as(path: &Path, format: MboxFormat) -> Result<Vec<Vec<u8>>> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!("cannot read {}: give an mbox, a patch or a directory of patches", path.display())
    })?;
    let files = if meta.is_dir() { patch_files(path)? } else { vec![path.to_path_buf()] };
    let mut all = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        all.extend(mail::split_container_as(&bytes, format).with_context(|| format!("{}", f.display()))?);
    }
    Ok(all)
}

fn patch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
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
    if files.is_empty() {
        bail!("{} has no .patch, .eml or .mbox files", dir.display());
    }
    Ok(files)
}

/// Every mail in FILE (see [`read_raw_messages`]).
pub fn read_mails(path: &Path, format: MboxFormat) -> Result<Vec<Mail>> {
    read_raw_messages_as(path, format)?
        .iter()
        .enumerate()
        .map(|(i, raw)| mail::parse_message(raw, i))
        .collect::<Result<_>>()
        .with_context(|| format!("{}", path.display()))
}

pub fn read_mailbox(path: &Path) -> Result<Mailbox> {
    read_mailbox_as(path, MboxFormat::Auto)
}

pub fn read_mailbox_as(path: &Path, format: MboxFormat) -> Result<Mailbox> {
    let mails = read_mails(path, format)?;
    series::build_mailbox(&mails).with_context(|| format!("{}", path.display()))
}

pub fn read_series(path: &Path, choice: Choice) -> Result<Series> {
    read_series_as(path, choice, MboxFormat::Auto)
}

pub fn read_series_as(path: &Path, choice: Choice, format: MboxFormat) -> Result<Series> {
    let mb = read_mailbox_as(path, format)?;
    series::choose(&mb, choice).with_context(|| format!("{}", path.display()))
}

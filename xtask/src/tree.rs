//! Which kernel tree a command works on: a reference tree from the cache (provisioned
//! on first use) or the user's own checkout, which is only ever read.

use crate::reftree;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct TreeHandle {
    /// The git repository (work tree or bare).
    pub repo_path: PathBuf,
    /// File-name-safe and stable: names the build and source directories in the cache.
    pub key: String,
    /// For people: `reference v7.2` or the path.
    pub label: String,
}

/// `--tree DIR` wins; else the named (or default) reference tree, fetched if needed.
pub fn resolve(tree: Option<&Path>, reference: Option<&str>) -> Result<TreeHandle> {
    if let Some(dir) = tree {
        let repo = git2::Repository::open(dir).with_context(|| {
            format!("{} is not a git repository; give a kernel checkout with --tree", dir.display())
        })?;
        let canonical = std::fs::canonicalize(repo.path()).unwrap_or_else(|_| repo.path().to_path_buf());
        let id = git2::Oid::hash_object(git2::ObjectType::Blob, canonical.to_string_lossy().as_bytes())?;
        return Ok(TreeHandle {
            repo_path: dir.to_path_buf(),
            key: format!("tree-{}", &id.to_string()[..12]),
            label: dir.display().to_string(),
        });
    }
    let r = reftree::provision(reference)?;
    Ok(TreeHandle {
        key: format!("ref-{}", r.name),
        label: format!("reference {}", r.name),
        repo_path: r.path,
    })
}

/// A commit-ish of the tree to its full id.
pub fn resolve_commit(tree: &TreeHandle, spec: &str) -> Result<String> {
    let repo = git2::Repository::open(&tree.repo_path)?;
    let c = repo
        .revparse_single(spec)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| format!("`{spec}` is not a commit in {}", tree.label))?;
    Ok(c.id().to_string())
}

/// The kernel release a commit's Makefile says (`7.2.13`, `6.12`).
pub fn release_of(tree: &TreeHandle, commit: &str) -> Option<String> {
    let repo = git2::Repository::open(&tree.repo_path).ok()?;
    let blob = repo.revparse_single(&format!("{commit}:Makefile")).ok()?.peel_to_blob().ok()?;
    let text = String::from_utf8_lossy(blob.content()).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
    };
    let (v, p, s) = (field("VERSION")?, field("PATCHLEVEL")?, field("SUBLEVEL").unwrap_or_default());
    Some(if s.is_empty() || s == "0" { format!("{v}.{p}") } else { format!("{v}.{p}.{s}") })
}

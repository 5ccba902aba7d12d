//! Applying a series with git2, in memory, like `git am -3`: each patch's diff is
//! applied to the previous tree, the result committed with the mail's author, date and
//! message. Only objects and one ref (`refs/heads/eval/<slug>`) are written: the user's
//! HEAD, index and work tree are never read for writing, let alone changed.
//!
//! The committer is fixed (ours) and dated like the author, so the same series on the
//! same base always gives the same commit ids: later stages key their caches on them.

use crate::patch::Diff as ParsedDiff;
use crate::series::{Series, SeriesPatch};
use anyhow::{anyhow, bail, Context, Result};
use git2::{ApplyOptions, Oid, Repository, Signature, Time};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::path::Path;

/// Who commits what this tool applies (the author is always the mail's).
pub const COMMITTER_NAME: &str = "mmeval";
pub const COMMITTER_EMAIL: &str = "mmeval@localhost";

#[derive(Debug, Clone, Serialize)]
pub struct AppliedPatch {
    pub number: u32,
    pub subject: String,
    pub commit: String,
    /// Needed the three-way fallback (`git am -3`).
    pub three_way: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub base: String,
    /// How the base was chosen, in words.
    pub base_source: String,
    pub patches: Vec<AppliedPatch>,
    pub tip: String,
    pub refname: String,
}

/// A patch that does not apply: a result of the evaluation, not a crash of the tool.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ApplyFailure {
    pub number: u32,
    pub total: u32,
    pub subject: String,
    pub file: Option<String>,
    pub hunk: Option<String>,
    pub detail: String,
}

impl fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "patch {}/{} \"{}\" does not apply", self.number, self.total, self.subject)?;
        if let Some(file) = &self.file {
            write!(f, ": {file}")?;
        }
        if let Some(h) = &self.hunk {
            write!(f, ", hunk {h}")?;
        }
        write!(f, " ({})", self.detail)
    }
}

impl std::error::Error for ApplyFailure {}

/// The base to apply on: `--base`, else the series' `base-commit:` when the tree has
/// it, else the tree's HEAD. Returns the commit and how it was chosen.
pub fn resolve_base(repo: &Repository, base: Option<&str>, series: &Series) -> Result<(Oid, String)> {
    if let Some(spec) = base {
        let c = repo
            .revparse_single(spec)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| anyhow!("--base {spec}: not a commit in {}: {}", repo_path(repo), e.message()))?;
        return Ok((c.id(), format!("--base {spec}")));
    }
    if let Some(b) = &series.base_commit {
        if let Ok(c) = repo.find_object_by_prefix(b, None).and_then(|o| o.peel_to_commit()) {
            return Ok((c.id(), "the series' base-commit".into()));
        }
        let head = head_commit(repo)?;
        return Ok((head, format!("HEAD (the series' base-commit {b} is not in this tree)")));
    }
    Ok((head_commit(repo)?, "HEAD (the series names no base-commit)".into()))
}

fn head_commit(repo: &Repository) -> Result<Oid> {
    let head = repo.head().with_context(|| format!("{} has no HEAD commit; pass --base", repo_path(repo)))?;
    Ok(head.peel_to_commit()?.id())
}

fn repo_path(repo: &Repository) -> String {
    repo.workdir().unwrap_or(repo.path()).display().to_string()
}

/// Applies every patch of `series` on `base` and points `refname` at the result.
/// Errors are either an [`ApplyFailure`] (downcast it) or a problem of the repository.
pub fn apply_series(
    repo: &Repository,
    series: &Series,
    base: Oid,
    refname: &str,
) -> Result<Vec<AppliedPatch>> {
    check_ref_is_ours(repo, refname)?;
    let total = (series.patches.len() + series.missing.len()) as u32;
    let mut parent = repo.find_commit(base)?;
    let mut out = Vec::new();
    for p in &series.patches {
        let diff = p.mail.diff.as_ref().expect("series patches carry a diff");
        let (tree, three_way) = apply_patch(repo, &parent.tree()?, diff).map_err(|mut f| {
            f.number = p.number;
            f.total = total;
            f.subject = p.mail.subject.clone();
            anyhow::Error::new(f)
        })?;
        let commit = commit_patch(repo, p, tree, &parent)?;
        parent = repo.find_commit(commit)?;
        out.push(AppliedPatch {
            number: p.number,
            subject: p.mail.subject.clone(),
            commit: commit.to_string(),
            three_way,
        });
    }
    repo.reference(refname, parent.id(), true, "mmeval: apply series")
        .with_context(|| format!("cannot write {refname}"))?;
    Ok(out)
}

/// Opens `tree`, resolves the base, applies, and reports.
pub fn apply_to_repo(tree: &Path, series: &Series, base: Option<&str>) -> Result<Applied> {
    let repo = Repository::open(tree).with_context(|| {
        format!(
            "{} is not a git repository; give a kernel checkout with --tree, or run `cargo xtask ref`",
            tree.display()
        )
    })?;
    let (base_oid, base_source) = resolve_base(&repo, base, series)?;
    let refname = format!("refs/heads/eval/{}", series.slug);
    let patches = apply_series(&repo, series, base_oid, &refname)?;
    Ok(Applied {
        base: base_oid.to_string(),
        base_source,
        tip: patches.last().map(|p| p.commit.clone()).unwrap_or_else(|| base_oid.to_string()),
        patches,
        refname,
    })
}

/// We only ever move refs we made: an existing ref must point at a commit of ours, and
/// it must not be what HEAD is on (moving it would change the user's checkout).
fn check_ref_is_ours(repo: &Repository, refname: &str) -> Result<()> {
    if let Ok(head) = repo.find_reference("HEAD") {
        if head.symbolic_target().ok().flatten() == Some(refname) {
            bail!("{refname} is checked out in {}; switch to another branch first", repo_path(repo));
        }
    }
    if let Ok(r) = repo.find_reference(refname) {
        let ours =
            r.peel_to_commit().map(|c| c.committer().email().ok() == Some(COMMITTER_EMAIL)).unwrap_or(false);
        if !ours {
            bail!("{refname} exists and was not made by this tool; delete or rename it first");
        }
    }
    Ok(())
}

fn signature(name: &str, email: &str, time: Time) -> Result<Signature<'static>> {
    let name = if name.trim().is_empty() { email } else { name };
    Ok(Signature::new(name, email, &time)?)
}

fn commit_patch(repo: &Repository, p: &SeriesPatch, tree: Oid, parent: &git2::Commit) -> Result<Oid> {
    let time = match p.mail.date {
        Some(d) => Time::new(d.timestamp, d.offset_minutes),
        None => parent.committer().when(),
    };
    let author = signature(&p.mail.author.name, &p.mail.author.email, time)
        .with_context(|| format!("patch {}: unusable author {:?}", p.number, p.mail.author.display()))?;
    let committer = signature(COMMITTER_NAME, COMMITTER_EMAIL, time)?;
    let tree = repo.find_tree(tree)?;
    Ok(repo.commit(None, &author, &committer, &p.mail.message, &tree, &[parent])?)
}

/// Applies one diff to `tree`: strictly first, then three-way on the preimage blobs.
fn apply_patch(
    repo: &Repository,
    tree: &git2::Tree,
    diff: &ParsedDiff,
) -> std::result::Result<(Oid, bool), ApplyFailure> {
    let fail = |file: Option<String>, hunk: Option<String>, detail: String| ApplyFailure {
        number: 0,
        total: 0,
        subject: String::new(),
        file,
        hunk,
        detail,
    };
    let gdiff = git2::Diff::from_buffer(diff.text.as_bytes())
        .map_err(|e| fail(None, None, format!("git cannot parse the diff: {}", e.message())))?;
    let strict = match apply_tracked(repo, tree, &gdiff) {
        Ok(oid) => return Ok((oid, false)),
        Err(f) => f,
    };
    match three_way(repo, tree, diff, &gdiff) {
        Ok(oid) => Ok((oid, true)),
        Err(why) => Err(fail(strict.0, strict.1, format!("{}; three-way: {why}", strict.2))),
    }
}

/// apply_to_tree, remembering which file and hunk git was on when it failed.
fn apply_tracked(
    repo: &Repository,
    tree: &git2::Tree,
    gdiff: &git2::Diff,
) -> std::result::Result<Oid, (Option<String>, Option<String>, String)> {
    let file: RefCell<Option<String>> = RefCell::new(None);
    let hunk: RefCell<(usize, Option<String>)> = RefCell::new((0, None));
    let result = {
        // The callbacks point back into `opts`: it must not move once they are set.
        let mut opts = ApplyOptions::new();
        opts.delta_callback(|d| {
            if let Some(d) = d {
                let p = d.new_file().path().or(d.old_file().path());
                *file.borrow_mut() = p.map(|p| p.display().to_string());
                *hunk.borrow_mut() = (0, None);
            }
            true
        });
        opts.hunk_callback(|h| {
            if let Some(h) = h {
                let mut s = hunk.borrow_mut();
                s.0 += 1;
                s.1 = Some(String::from_utf8_lossy(h.header()).trim_end().to_string());
            }
            true
        });
        repo.apply_to_tree(tree, gdiff, Some(&mut opts))
    };
    match result.and_then(|mut idx| idx.write_tree_to(repo)) {
        Ok(oid) => Ok(oid),
        Err(e) => {
            let (n, h) = hunk.into_inner();
            let hunk = h.map(|h| format!("#{n} `{h}`"));
            Err((file.into_inner(), hunk, e.message().to_string()))
        }
    }
}

/// What `git am -3` does: rebuild the tree the patch was made against from the blobs
/// its `index` lines name, apply there, and merge that change into ours.
fn three_way(
    repo: &Repository,
    ours: &git2::Tree,
    diff: &ParsedDiff,
    gdiff: &git2::Diff,
) -> std::result::Result<Oid, String> {
    let mut builder = git2::build::TreeUpdateBuilder::new();
    for f in &diff.files {
        match (&f.old_path, &f.old_blob) {
            (Some(path), Some(prefix)) => {
                let blob = repo
                    .find_object_by_prefix(prefix, Some(git2::ObjectType::Blob))
                    .map_err(|_| format!("the preimage blob {prefix} of {path} is not in this repository"))?;
                let mode = match ours.get_path(Path::new(path)) {
                    Ok(e) if e.filemode() == 0o100755 => git2::FileMode::BlobExecutable,
                    _ => git2::FileMode::Blob,
                };
                builder.upsert(path.as_str(), blob.id(), mode);
            }
            (Some(path), None) => return Err(format!("no `index` line for {path}")),
            (None, _) => {
                let path = f.new_path.as_deref().unwrap_or_default();
                if ours.get_path(Path::new(path)).is_ok() {
                    builder.remove(path);
                }
            }
        }
    }
    let ancestor = builder.create_updated(repo, ours).map_err(|e| e.message().to_string())?;
    let ancestor = repo.find_tree(ancestor).map_err(|e| e.message().to_string())?;
    let theirs = apply_tracked(repo, &ancestor, gdiff).map_err(|(f, _, m)| {
        format!("does not apply to its own preimage either ({}: {m})", f.unwrap_or_default())
    })?;
    let theirs = repo.find_tree(theirs).map_err(|e| e.message().to_string())?;
    let mut merged = repo.merge_trees(&ancestor, ours, &theirs, None).map_err(|e| e.message().to_string())?;
    if merged.has_conflicts() {
        let mut paths: Vec<String> = merged
            .conflicts()
            .map_err(|e| e.message().to_string())?
            .filter_map(|c| c.ok())
            .filter_map(|c| c.our.or(c.their).map(|e| String::from_utf8_lossy(&e.path).into_owned()))
            .collect();
        paths.dedup();
        return Err(format!("conflicts in {}", paths.join(", ")));
    }
    merged.write_tree_to(repo).map_err(|e| e.message().to_string())
}

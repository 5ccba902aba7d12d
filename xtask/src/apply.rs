//! Applying a series in memory, like `git am -3`: each patch's diff is applied to the
//! previous tree (hunks placed as `git apply` places them, offsets included: see
//! [`crate::hunks::apply_hunks`]), else three-way on the blobs its `index` lines name;
//! the result is committed with the mail's author, date and message. git2 holds the
//! objects: only objects and one ref (`refs/heads/eval/<slug>`) are written; the user's
//! HEAD, index and work tree are never read for writing, let alone changed.
//!
//! The committer is fixed (ours) and dated like the author, so the same series on the
//! same base always gives the same commit ids: later stages key their caches on them.

use crate::diff::{lossy, Change, Diff as ParsedDiff, FileDiff};
use crate::series::{Series, SeriesPatch};
use anyhow::{anyhow, bail, Context, Result};
use git2::{FileMode, ObjectType, Oid, Repository, Signature, Time};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
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
    /// Hunks that applied at another line than their header says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<HunkOffset>,
}

/// A hunk that `git apply` would report as "Hunk #N succeeded at L (offset K lines)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HunkOffset {
    pub file: String,
    pub hunk: usize,
    pub line: usize,
    pub offset: isize,
}

impl fmt::Display for HunkOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.offset.abs() == 1 { "" } else { "s" };
        write!(f, "{}: hunk #{} at line {} (offset {} line{s})", self.file, self.hunk, self.line, self.offset)
    }
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

/// What applying a series came to: commits, or the patch that does not apply (a
/// result about the series, not a fault of the tool).
#[derive(Debug)]
pub enum ApplyOutcome<T> {
    Applied(T),
    Failed(ApplyFailure),
}

impl<T> ApplyOutcome<T> {
    /// The commits, or the failure as an error (for callers that cannot go on).
    pub fn applied(self) -> Result<T> {
        match self {
            ApplyOutcome::Applied(t) => Ok(t),
            ApplyOutcome::Failed(f) => Err(anyhow!("{f}")),
        }
    }
}

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

/// Applies every patch of `series` on `base` and points `refname` at the result (no
/// ref is written when a patch does not apply). Errors are problems of the repository.
pub fn apply_series(
    repo: &Repository,
    series: &Series,
    base: Oid,
    refname: &str,
) -> Result<ApplyOutcome<Vec<AppliedPatch>>> {
    check_ref_is_ours(repo, refname)?;
    let total = (series.patches.len() + series.missing.len()) as u32;
    let mut parent = repo.find_commit(base)?;
    let mut out = Vec::new();
    for p in &series.patches {
        let diff = p.mail.diff.as_ref().expect("series patches carry a diff");
        let (tree, three_way, offsets) = match apply_patch(repo, &parent.tree()?, diff) {
            Ok(x) => x,
            Err(mut f) => {
                f.number = p.number;
                f.total = total;
                f.subject = p.mail.subject.clone();
                return Ok(ApplyOutcome::Failed(f));
            }
        };
        let commit = commit_patch(repo, p, tree, &parent)?;
        parent = repo.find_commit(commit)?;
        out.push(AppliedPatch {
            number: p.number,
            subject: p.mail.subject.clone(),
            commit: commit.to_string(),
            three_way,
            offsets,
        });
    }
    write_ref(repo, refname, parent.id())?;
    Ok(ApplyOutcome::Applied(out))
}

/// Points `refname` at `id`. Another run applying the same series (another --out or
/// --arch) may hold the ref's lock file for a moment: wait for it rather than fail.
fn write_ref(repo: &Repository, refname: &str, id: git2::Oid) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match repo.reference(refname, id, true, "mmeval: apply series") {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == git2::ErrorCode::Locked && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                return Err(e).with_context(|| {
                    format!("cannot write {refname}: locked for 10 s; if no other mmeval runs, remove its .lock file in the tree's .git")
                })
            }
            Err(e) => return Err(e).with_context(|| format!("cannot write {refname}")),
        }
    }
}

/// Opens `tree`, resolves the base, applies, and reports.
pub fn apply_to_repo(tree: &Path, series: &Series, base: Option<&str>) -> Result<ApplyOutcome<Applied>> {
    let repo = Repository::open(tree).with_context(|| {
        format!(
            "{} is not a git repository; give a kernel checkout with --tree, or run `cargo xtask ref`",
            tree.display()
        )
    })?;
    let (base_oid, base_source) = resolve_base(&repo, base, series)?;
    let refname = format!("refs/heads/eval/{}", series.slug);
    let patches = match apply_series(&repo, series, base_oid, &refname)? {
        ApplyOutcome::Applied(p) => p,
        ApplyOutcome::Failed(f) => return Ok(ApplyOutcome::Failed(f)),
    };
    Ok(ApplyOutcome::Applied(Applied {
        base: base_oid.to_string(),
        base_source,
        tip: patches.last().map(|p| p.commit.clone()).unwrap_or_else(|| base_oid.to_string()),
        patches,
        refname,
    }))
}

/// We only ever move refs we made: an existing ref must point at a commit of ours, and
/// it must not be what HEAD is on (moving it would change the user's checkout).
fn check_ref_is_ours(repo: &Repository, refname: &str) -> Result<()> {
    if let Ok(head) = repo.find_reference("HEAD") {
        if head.symbolic_target().ok().flatten() == Some(refname) {
            bail!("{refname} is checked out in {}; switch to another branch first", repo_path(repo));
        }
    }
    // As git refuses to move a branch checked out anywhere: linked worktrees too.
    let names: Vec<String> = match repo.worktrees() {
        Ok(w) => (0..w.len()).filter_map(|i| w.get(i).ok().flatten()).map(String::from).collect(),
        Err(_) => vec![],
    };
    for name in names {
        let Ok(wt) = repo.find_worktree(&name) else { continue };
        let Ok(other) = Repository::open_from_worktree(&wt) else { continue };
        let head = other
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(String::from));
        if head.as_deref() == Some(refname) {
            bail!(
                "{refname} is checked out in the worktree {}; switch it to another branch first",
                wt.path().display()
            );
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
    match std::str::from_utf8(&p.mail.message_bytes) {
        Ok(message) => Ok(repo.commit(None, &author, &committer, message, &tree, &[parent])?),
        Err(_) => {
            // git am keeps an undeclared message's bytes even when they are not UTF-8:
            // git2 takes only a str, so the object is written with the message swapped in.
            let buf = repo.commit_create_buffer(&author, &committer, "\u{0}", &tree, &[parent])?;
            let header = buf.strip_suffix(b"\0").context("git2 wrote an unexpected commit buffer")?;
            let object = [header, &p.mail.message_bytes[..]].concat();
            Ok(repo.odb()?.write(ObjectType::Commit, &object)?)
        }
    }
}

/// Why a file diff does not apply: which file, which hunk, what git would say.
type Refusal = (Option<String>, Option<String>, String);

/// Applies one diff to `tree`: as `git apply` first (offsets, no fuzz), then three-way
/// on the preimage blobs.
fn apply_patch(
    repo: &Repository,
    tree: &git2::Tree,
    diff: &ParsedDiff,
) -> std::result::Result<(Oid, bool, Vec<HunkOffset>), ApplyFailure> {
    let fail = |(file, hunk, detail): Refusal| ApplyFailure {
        number: 0,
        total: 0,
        subject: String::new(),
        file,
        hunk,
        detail,
    };
    let strict = match apply_files(repo, tree, &diff.files) {
        Ok((oid, offsets)) => return Ok((oid, false, offsets)),
        Err(f) => f,
    };
    match three_way(repo, tree, diff) {
        Ok(oid) => Ok((oid, true, Vec::new())),
        Err(why) => {
            let (file, hunk, detail) = strict;
            Err(fail((file, hunk, format!("{detail}; three-way: {why}"))))
        }
    }
}

const GITLINK: u32 = 0o160000;
const SYMLINK: u32 = 0o120000;

/// The tree being patched: the base tree with the changes so far on top.
struct Overlay<'r> {
    repo: &'r Repository,
    base: &'r git2::Tree<'r>,
    /// path -> (object, mode), or None for removed.
    changes: BTreeMap<Vec<u8>, Option<(Oid, u32)>>,
}

enum Entry {
    Missing,
    Dir,
    File(Oid, u32),
}

impl<'r> Overlay<'r> {
    fn get(&self, path: &[u8]) -> Entry {
        if let Some(c) = self.changes.get(path) {
            return match c {
                Some((oid, mode)) => Entry::File(*oid, *mode),
                None => Entry::Missing,
            };
        }
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        let added_below = self
            .changes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .any(|(_, v)| v.is_some());
        match self.base.get_path(Path::new(OsStr::from_bytes(path))) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => Entry::Dir,
            Ok(e) => Entry::File(e.id(), e.filemode() as u32),
            Err(_) if added_below => Entry::Dir,
            Err(_) => Entry::Missing,
        }
    }

    /// The content `git apply` sees: a blob's bytes, or a gitlink's `Subproject commit`.
    fn content(&self, oid: Oid, mode: u32) -> std::result::Result<Vec<u8>, String> {
        if mode == GITLINK {
            return Ok(format!("Subproject commit {oid}\n").into_bytes());
        }
        self.repo.find_blob(oid).map(|b| b.content().to_vec()).map_err(|e| e.message().to_string())
    }

    /// git apply's checks before creating `path`: nothing there, no file or symlink on
    /// the way to it (a path beyond a symbolic link is refused).
    fn check_create(&self, path: &[u8]) -> std::result::Result<(), String> {
        let shown = lossy(path);
        match self.get(path) {
            Entry::Missing => {}
            Entry::Dir => return Err(format!("{shown}: already exists as a directory")),
            Entry::File(..) => return Err(format!("{shown}: already exists in index")),
        }
        for (k, _) in path.iter().enumerate().filter(|(_, &b)| b == b'/') {
            if let Entry::File(_, mode) = self.get(&path[..k]) {
                let what = if mode == SYMLINK { "beyond a symbolic link" } else { "beyond a file" };
                return Err(format!("{shown}: {what} ({})", lossy(&path[..k])));
            }
        }
        Ok(())
    }

    fn write(&mut self, path: &[u8], content: &[u8], mode: u32) -> std::result::Result<(), String> {
        let oid = if mode == GITLINK {
            let text = String::from_utf8_lossy(content);
            let id = text.trim().strip_prefix("Subproject commit ").map(str::trim).unwrap_or("");
            Oid::from_str(id)
                .map_err(|_| format!("{}: a submodule change without a commit id", lossy(path)))?
        } else {
            self.repo.blob(content).map_err(|e| e.message().to_string())?
        };
        self.changes.insert(path.to_vec(), Some((oid, mode)));
        Ok(())
    }

    fn finish(self) -> std::result::Result<Oid, String> {
        let mut b = git2::build::TreeUpdateBuilder::new();
        for (path, change) in self.changes {
            match change {
                Some((oid, mode)) => {
                    let mode = match mode {
                        0o100755 => FileMode::BlobExecutable,
                        SYMLINK => FileMode::Link,
                        GITLINK => FileMode::Commit,
                        _ => FileMode::Blob,
                    };
                    b.upsert(path, oid, mode);
                }
                None => {
                    b.remove(path);
                }
            }
        }
        b.create_updated(self.repo, self.base).map_err(|e| e.message().to_string())
    }
}

/// Every file of a diff applied to `tree` as `git apply --index` would: the new tree and
/// the hunks that needed an offset.
fn apply_files(
    repo: &Repository,
    tree: &git2::Tree,
    files: &[FileDiff],
) -> std::result::Result<(Oid, Vec<HunkOffset>), Refusal> {
    let mut o = Overlay { repo, base: tree, changes: BTreeMap::new() };
    let mut offsets = Vec::new();
    for f in files {
        let shown = f.path().to_string();
        let refuse = |detail: String| (Some(shown.clone()), None, detail);
        let old = match (f.change, f.old_name.as_deref()) {
            (Change::Create, _) | (_, None) => None,
            (_, Some(name)) => match o.get(name) {
                Entry::File(oid, mode) => Some((name, oid, mode)),
                _ => return Err(refuse(format!("{}: does not exist in index", lossy(name)))),
            },
        };
        let before = match old {
            Some((_, oid, mode)) => o.content(oid, mode).map_err(refuse)?,
            None => Vec::new(),
        };
        let (after, moved) = crate::hunks::apply_hunks(&before, &f.fragments).map_err(|m| {
            (
                Some(shown.clone()),
                Some(format!("#{} `{}`", m.hunk, m.header)),
                format!("patch failed: {shown}:{}", m.line),
            )
        })?;
        offsets.extend(moved.into_iter().map(|p| HunkOffset {
            file: shown.clone(),
            hunk: p.hunk,
            line: p.line,
            offset: p.offset,
        }));
        let old_mode = old.map(|(_, _, m)| m);
        match f.change {
            Change::Delete => {
                if !after.is_empty() {
                    return Err(refuse(format!("removal patch leaves file contents ({shown})")));
                }
                o.changes.insert(old.map(|(n, ..)| n.to_vec()).unwrap_or_default(), None);
            }
            Change::Modify => {
                let name = f.new_name.as_deref().unwrap_or_default();
                o.write(name, &after, f.new_mode.or(old_mode).unwrap_or(0o100644)).map_err(refuse)?;
            }
            Change::Create | Change::Rename | Change::Copy => {
                if f.change == Change::Rename {
                    if let Some((n, ..)) = old {
                        o.changes.insert(n.to_vec(), None);
                    }
                }
                let name = f.new_name.as_deref().unwrap_or_default();
                o.check_create(name).map_err(refuse)?;
                o.write(name, &after, f.new_mode.or(old_mode).unwrap_or(0o100644)).map_err(refuse)?;
            }
        }
    }
    let oid = o.finish().map_err(|e| (None, None, e))?;
    Ok((oid, offsets))
}

/// What `git am -3` does: rebuild the tree the patch was made against from the blobs
/// its `index` lines name, apply there, and merge that change into ours.
fn three_way(repo: &Repository, ours: &git2::Tree, diff: &ParsedDiff) -> std::result::Result<Oid, String> {
    let mut builder = git2::build::TreeUpdateBuilder::new();
    for f in &diff.files {
        match (f.change, &f.old_name, &f.old_blob) {
            (Change::Create, ..) | (_, None, _) => {
                let path = f.new_name.as_deref().unwrap_or_default();
                if ours.get_path(Path::new(OsStr::from_bytes(path))).is_ok() {
                    builder.remove(path);
                }
            }
            (_, Some(path), Some(prefix)) => {
                let blob = repo.find_object_by_prefix(prefix, Some(ObjectType::Blob)).map_err(|_| {
                    format!("the preimage blob {prefix} of {} is not in this repository", lossy(path))
                })?;
                let mode = match ours.get_path(Path::new(OsStr::from_bytes(path))) {
                    Ok(e) if e.filemode() == 0o100755 => FileMode::BlobExecutable,
                    Ok(e) if e.filemode() == 0o120000 => FileMode::Link,
                    _ => FileMode::Blob,
                };
                builder.upsert(path.as_slice(), blob.id(), mode);
            }
            (_, Some(path), None) => return Err(format!("no `index` line for {}", lossy(path))),
        }
    }
    let ancestor = builder.create_updated(repo, ours).map_err(|e| e.message().to_string())?;
    let ancestor = repo.find_tree(ancestor).map_err(|e| e.message().to_string())?;
    let theirs = apply_files(repo, &ancestor, &diff.files).map_err(|(f, _, m)| {
        format!("does not apply to its own preimage either ({}: {m})", f.unwrap_or_default())
    })?;
    let theirs = repo.find_tree(theirs.0).map_err(|e| e.message().to_string())?;
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

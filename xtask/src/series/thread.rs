//! What a thread means, as b4 0.16 reads it: which revision a patch without `vN`
//! belongs to, a partial reroll completed from the revision before, and which patch or
//! cover letter a reply is about.

use super::{parse_subject, Revision, SeriesPatch};
use crate::mail::Mail;
use crate::patch;
use std::collections::{BTreeMap, HashMap};

/// b4: a patch without `vN` that replies to a cover letter (or to patch 1) of an explicit
/// revision belongs to that revision (`[PATCH net-next v3 0/4]` with `[PATCH 1/4]` ...).
pub(super) fn inherited_revision(m: &Mail, number: u32, by_id: &HashMap<&str, &Mail>) -> Option<u32> {
    let parent = by_id.get(m.in_reply_to.as_deref()?)?;
    let t = parse_subject(&parent.subject);
    if !t.is_patch || t.is_reply || t.revision_inferred {
        return None;
    }
    match t.position {
        Some((0, _)) => Some(t.revision),
        Some((1, _)) if number > 1 && patch::has_diff(parent) => Some(t.revision),
        _ => None,
    }
}

/// b4's partial reroll: revision `v` lacks patches, and every message it has replies
/// (directly or up the thread) to the message with the same number and total it
/// replaces; then the missing ones come from `v - 1`, and the revision is complete.
pub(super) fn partial_reroll(
    revisions: &mut BTreeMap<u32, Revision>,
    v: u32,
    mails: &[Mail],
    by_id: &HashMap<&str, &Mail>,
) {
    let Some(prev) = v.checked_sub(1).and_then(|p| revisions.get(&p)) else { return };
    let r = &revisions[&v];
    if r.missing.is_empty() || prev.total != r.total {
        return;
    }
    let cover_ok = match &r.cover {
        None => true,
        Some(c) => c
            .message_id
            .as_deref()
            .and_then(|id| by_id.get(id))
            .is_some_and(|m| replies_to_same(m, 0, r.total, by_id)),
    };
    let sane = cover_ok
        && r.patches.values().all(|p| {
            // A mail's index is its place in the container, not always in `mails`.
            mails
                .iter()
                .find(|m| m.index == p.mail_index)
                .is_some_and(|m| replies_to_same(m, p.number, r.total, by_id))
        });
    if !sane || !r.missing.iter().all(|n| prev.patches.contains_key(n)) {
        return;
    }
    let borrowed: Vec<SeriesPatch> = r
        .missing
        .iter()
        .map(|n| SeriesPatch { from_revision: Some(prev.version), ..prev.patches[n].clone() })
        .collect();
    let from = prev.version;
    // b4 takes the earlier cover letter too when the reroll has none.
    let (cover, base, prereq) =
        (prev.cover.clone(), prev.base_commit.clone(), prev.prerequisite_patch_ids.clone());
    let r = revisions.get_mut(&v).unwrap();
    for p in borrowed {
        r.patches.insert(p.number, p);
    }
    if r.cover.is_none() {
        r.cover = cover;
    }
    if r.base_commit.is_none() {
        r.base_commit = base;
        r.prerequisite_patch_ids = prereq;
    }
    r.missing.clear();
    r.rerolled_from = Some(from);
}

/// Whether `m` replies, directly or up the thread, to a message numbered `number/total`.
pub(super) fn replies_to_same(m: &Mail, number: u32, total: u32, by_id: &HashMap<&str, &Mail>) -> bool {
    let mut cur = m;
    for _ in 0..64 {
        let Some(parent) = cur.in_reply_to.as_deref().and_then(|id| by_id.get(id)) else { return false };
        if parse_subject(&parent.subject).position == Some((number, total)) {
            return true;
        }
        cur = parent;
    }
    false
}

/// Walks up In-Reply-To (through intermediate replies), then References, to the first
/// message that is a patch or cover letter of some revision.
pub(super) fn thread_target(
    reply: &Mail,
    place: &HashMap<&str, (u32, u32)>,
    by_id: &HashMap<&str, &Mail>,
) -> Option<(u32, u32)> {
    let mut cur = reply;
    for _ in 0..64 {
        let parent = cur.in_reply_to.as_deref()?;
        if let Some(&p) = place.get(parent) {
            return Some(p);
        }
        match by_id.get(parent) {
            Some(m) => cur = m,
            None => break,
        }
    }
    reply.references.iter().rev().find_map(|id| place.get(id.as_str()).copied())
}

//! From a pile of mails to the series in it: every revision, each with its cover letter,
//! its patches by number, what is missing or duplicated, its base, and the trailers that
//! replies gave. Pure: mails in, a [`Mailbox`] out, then one complete [`Series`] chosen.

use crate::mail::{Addr, Mail, MailDate};
use crate::patch::{self, PatchMail, Trailer};
use anyhow::{bail, Result};
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

mod summary;
mod thread;

pub use summary::{civil_from_days, summary};
use thread::{inherited_revision, partial_reroll, thread_target};

/// What the `[...]` prefix of a subject says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectTag {
    pub is_reply: bool,
    pub is_patch: bool,
    pub revision: u32,
    /// (number, total); None for an unnumbered `[PATCH]`.
    pub position: Option<(u32, u32)>,
    /// No `vN` in the subject: the revision is 1 unless the thread says otherwise.
    pub revision_inferred: bool,
    /// Everything else in the brackets: RFC, RESEND, mm-unstable, HOTFIX, 6.17 ...
    pub tags: Vec<String>,
}

/// Reads `Re: [RFC PATCH mm-unstable v3 02/12] ...`.
pub fn parse_subject(subject: &str) -> SubjectTag {
    static REPLY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^\s*(re|aw|sv|antw)\s*:").unwrap());
    static BRACKETS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*\[([^\]]*)\]").unwrap());
    // As b4: counters and versions of 1 to 4 digits; anything longer is text (a
    // `1/4294967295` must not make a series of four billion patches).
    static NUM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(\d{1,4})/(\d{1,4})$").unwrap());
    static REV: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[vV](\d{1,4})$").unwrap());
    let mut s = subject;
    let mut tag = SubjectTag {
        is_reply: false,
        is_patch: false,
        revision: 1,
        position: None,
        revision_inferred: true,
        tags: vec![],
    };
    while let Some(m) = REPLY.find(s) {
        tag.is_reply = true;
        s = &s[m.end()..];
    }
    while let Some(c) = BRACKETS.captures(s) {
        let inner = c.get(1).unwrap().as_str();
        s = &s[c.get(0).unwrap().end()..];
        for word in inner.split_whitespace() {
            if word.eq_ignore_ascii_case("patch") || word.eq_ignore_ascii_case("rfc") {
                tag.is_patch = true;
                if word.eq_ignore_ascii_case("rfc") {
                    tag.tags.push("RFC".into());
                }
            } else if let Some(c) = REV.captures(word) {
                tag.revision = c[1].parse().unwrap_or(1);
                tag.revision_inferred = false;
            } else if let Some(c) = NUM.captures(word) {
                tag.position = Some((c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)));
            } else {
                tag.tags.push(word.to_string());
            }
        }
    }
    tag
}

/// One patch of a revision.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPatch {
    pub number: u32,
    /// Which message of the input this is ([`Mail::index`]).
    pub mail_index: usize,
    /// The subject as sent, `[PATCH ...]` included.
    pub raw_subject: String,
    pub message_id: Option<String>,
    /// The mail's own headers, for a reply when there is no cover letter.
    pub references: Vec<String>,
    pub from: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub mail: PatchMail,
    /// Trailers from replies (to this patch or to the cover letter).
    pub follow_up_trailers: Vec<Trailer>,
    /// Taken from this earlier revision to complete a partial reroll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cover {
    pub raw_subject: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub from: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub date: Option<MailDate>,
    pub body: String,
}

/// Everything found for one revision number.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub version: u32,
    pub total: u32,
    pub cover: Option<Cover>,
    pub patches: BTreeMap<u32, SeriesPatch>,
    pub missing: Vec<u32>,
    pub base_commit: Option<String>,
    pub prerequisite_patch_ids: Vec<String>,
    pub tags: Vec<String>,
    /// A partial reroll (only some patches resent, each as a reply to the one it
    /// replaces): the revision its other patches come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerolled_from: Option<u32>,
}

/// Every revision in the input, and what was odd about it.
#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    pub revisions: BTreeMap<u32, Revision>,
    pub warnings: Vec<String>,
    pub replies: usize,
}

/// One complete revision, ready to apply.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub version: u32,
    pub all_versions: Vec<u32>,
    pub slug: String,
    pub cover: Option<Cover>,
    pub patches: Vec<SeriesPatch>,
    pub missing: Vec<u32>,
    pub base_commit: Option<String>,
    pub prerequisite_patch_ids: Vec<String>,
    pub tags: Vec<String>,
    pub rerolled_from: Option<u32>,
    pub warnings: Vec<String>,
}

impl Series {
    /// The message a reply goes to: the cover letter, else the first patch.
    pub fn subject(&self) -> String {
        match (&self.cover, self.patches.first()) {
            (Some(c), _) => c.subject.clone(),
            (None, Some(p)) => p.mail.subject.clone(),
            (None, None) => String::new(),
        }
    }

    pub fn author(&self) -> Option<&Addr> {
        self.cover.as_ref().map(|c| &c.from).or(self.patches.first().map(|p| &p.mail.author))
    }
}

fn newer(a: &Mail, b: &Mail) -> bool {
    let key = |m: &Mail| (m.date.map(|d| d.timestamp), m.index);
    key(a) > key(b)
}

/// Groups mails into revisions. Fails only when nothing in the input is a patch.
pub fn build_mailbox(mails: &[Mail]) -> Result<Mailbox> {
    let mut warnings = Vec::new();
    // (revision, number) -> newest mail; number 0 is the cover letter.
    let mut chosen: BTreeMap<(u32, u32), &Mail> = BTreeMap::new();
    let mut totals: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut tags_of: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut replies = Vec::new();
    let by_id: HashMap<&str, &Mail> =
        mails.iter().filter_map(|m| m.message_id.as_deref().map(|id| (id, m))).collect();
    // Revisions that have a patch so far, in input order (b4's `self.series`).
    let mut with_patches: BTreeSet<u32> = BTreeSet::new();
    for m in mails {
        let mut tag = parse_subject(&m.subject);
        // A reply whose subject lost its `Re:` still is one: b4 takes a message in a
        // thread that gives trailers and carries no diff for a reply. (b4 would take a
        // cover letter with a `base-commit:` line sent in reply to v1 for one too, and
        // then find it again as the cover: an explicit 0/N stays a cover here.)
        let is_cover = tag.position.is_some_and(|(n, _)| n == 0);
        let reply = tag.is_reply || (tag.is_patch && !is_cover && patch::looks_like_reply(m));
        if reply || !tag.is_patch {
            if m.in_reply_to.is_some() || reply {
                replies.push(m);
            }
            continue;
        }
        let (number, total) = tag.position.unwrap_or((1, 1));
        if number > 0 && tag.revision_inferred && !with_patches.contains(&tag.revision) {
            if let Some(v) = inherited_revision(m, number, &by_id) {
                tag.revision = v;
            }
        }
        if number > 0 {
            with_patches.insert(tag.revision);
        }
        if number > total || total == 0 {
            warnings.push(format!("ignoring \"{}\": patch number {number} of {total}", m.subject));
            continue;
        }
        totals.entry(tag.revision).or_default().push(total);
        let t = tags_of.entry(tag.revision).or_default();
        for x in tag.tags {
            if !t.contains(&x) {
                t.push(x);
            }
        }
        let key = (tag.revision, number);
        match chosen.get(&key) {
            Some(old) => {
                let (keep, drop) = if newer(m, old) { (m, *old) } else { (*old, m) };
                warnings.push(format!(
                    "v{} {} appears twice ({} and {}); using the newer one, {}",
                    tag.revision,
                    if number == 0 { "cover letter".to_string() } else { format!("patch {number}/{total}") },
                    id_or_index(drop),
                    id_or_index(keep),
                    id_or_index(keep)
                ));
                chosen.insert(key, keep);
            }
            None => {
                chosen.insert(key, m);
            }
        }
    }
    if chosen.is_empty() {
        bail!("no patch found: no message has a [PATCH ...] subject (is this a patch series?)");
    }
    for m in chosen.values() {
        for bad in &m.unparsed_addresses {
            warnings.push(format!(
                "{}: `{bad}` is not an address; it is left out of the reply's recipients",
                id_or_index(m)
            ));
        }
    }

    // Where every message id sits: (revision, number), number 0 = cover letter.
    let mut place: HashMap<&str, (u32, u32)> = HashMap::new();
    for (&key, m) in &chosen {
        if let Some(id) = &m.message_id {
            place.insert(id, key);
        }
    }
    let mut revisions: BTreeMap<u32, Revision> = BTreeMap::new();
    for (&(rev, number), m) in &chosen {
        let totals = &totals[&rev];
        let total = *totals.iter().max().unwrap();
        let r = revisions.entry(rev).or_insert_with(|| Revision {
            version: rev,
            total,
            cover: None,
            patches: BTreeMap::new(),
            missing: vec![],
            base_commit: None,
            prerequisite_patch_ids: vec![],
            tags: tags_of.get(&rev).cloned().unwrap_or_default(),
            rerolled_from: None,
        });
        if number == 0 {
            let pm = patch::parse_message_only(m);
            r.cover = Some(Cover {
                raw_subject: m.subject.clone(),
                subject: pm.subject.clone(),
                message_id: m.message_id.clone(),
                references: m.references.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                cc: m.cc.clone(),
                date: m.date,
                body: m.body.clone(),
            });
            if pm.base_commit.is_some() {
                r.base_commit = pm.base_commit.clone();
                r.prerequisite_patch_ids = pm.prerequisite_patch_ids.clone();
            }
            continue;
        }
        let pm = patch::parse_patch_mail(m)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", quote_subject(&m.subject)))?;
        if pm.diff.is_none() {
            bail!(
                "{} has no diff: a patch mail must carry a git diff after its `---` line",
                quote_subject(&m.subject)
            );
        }
        if r.base_commit.is_none() && pm.base_commit.is_some() {
            r.base_commit = pm.base_commit.clone();
            r.prerequisite_patch_ids = pm.prerequisite_patch_ids.clone();
        }
        r.patches.insert(
            number,
            SeriesPatch {
                number,
                mail_index: m.index,
                raw_subject: m.subject.clone(),
                message_id: m.message_id.clone(),
                references: m.references.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                cc: m.cc.clone(),
                mail: pm,
                follow_up_trailers: vec![],
                from_revision: None,
            },
        );
    }
    for r in revisions.values_mut() {
        let totals = &totals[&r.version];
        if totals.iter().any(|&t| t != r.total) {
            warnings.push(format!(
                "v{}: patches disagree on the series length ({:?}); assuming {}",
                r.version, totals, r.total
            ));
        }
        r.missing = (1..=r.total).filter(|n| !r.patches.contains_key(n)).collect();
    }
    let versions: Vec<u32> = revisions.keys().copied().collect();
    for v in versions {
        partial_reroll(&mut revisions, v, mails, &by_id);
    }

    // Follow-up trailers: a reply belongs to the nearest patch or cover up its thread.
    for reply in &replies {
        let trailers = patch::reply_trailers(reply);
        if trailers.is_empty() {
            continue;
        }
        let Some((rev, number)) = thread_target(reply, &place, &by_id) else {
            continue;
        };
        let Some(r) = revisions.get_mut(&rev) else { continue };
        for (n, p) in r.patches.iter_mut() {
            if number == 0 || *n == number {
                for t in &trailers {
                    if !p.follow_up_trailers.contains(t) && !p.mail.trailers.contains(t) {
                        p.follow_up_trailers.push(t.clone());
                    }
                }
            }
        }
    }
    Ok(Mailbox { revisions, warnings, replies: replies.len() })
}

fn id_or_index(m: &Mail) -> String {
    match &m.message_id {
        Some(id) => format!("<{id}>"),
        None => format!("message {}", m.index + 1),
    }
}

fn quote_subject(s: &str) -> String {
    format!("\"{s}\"")
}

/// A file- and ref-safe name for the series: from the subject, never from paths in mail.
/// A subject cut short gets a short hash of the whole one, so that two series whose
/// subjects begin alike never share a ref or a directory.
pub fn slug(subject: &str, version: u32) -> String {
    let mut out = String::new();
    let mut cut = false;
    for c in subject.chars().flat_map(char::to_lowercase) {
        if out.len() >= 48 {
            cut |= c.is_ascii_alphanumeric();
            if cut {
                break;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = if out.is_empty() { "series" } else { out };
    if cut {
        let id = git2::Oid::hash_object(git2::ObjectType::Blob, subject.as_bytes())
            .map(|o| o.to_string())
            .unwrap_or_default();
        format!("{out}-{}-v{version}", &id[..id.len().min(8)])
    } else {
        format!("{out}-v{version}")
    }
}

/// Which revision to take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choice {
    /// None: the highest revision.
    pub revision: Option<u32>,
    /// Take an incomplete revision anyway (the patches there are, in order).
    pub partial: bool,
}

/// Picks one revision; never mixes revisions.
pub fn choose(mailbox: &Mailbox, choice: Choice) -> Result<Series> {
    let versions: Vec<u32> = mailbox.revisions.keys().copied().collect();
    let list = versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ");
    let rev = match choice.revision {
        Some(v) => mailbox
            .revisions
            .get(&v)
            .ok_or_else(|| anyhow::anyhow!("there is no v{v} in the input; it has {list}"))?,
        None => mailbox.revisions.values().next_back().unwrap(),
    };
    if !rev.missing.is_empty() && !choice.partial {
        let missing = rev.missing.iter().map(|n| format!("{n}/{}", rev.total)).collect::<Vec<_>>();
        bail!(
            "v{} is incomplete: patch {} missing ({} of {} present); fetch the whole thread (b4 am), pick another revision with --rev, or apply what is there with --partial",
            rev.version,
            missing.join(", "),
            rev.patches.len(),
            rev.total
        );
    }
    if rev.patches.is_empty() {
        bail!("v{} has a cover letter but no patches", rev.version);
    }
    let subject = match &rev.cover {
        Some(c) => c.subject.clone(),
        None => rev.patches.values().next().unwrap().mail.subject.clone(),
    };
    Ok(Series {
        version: rev.version,
        all_versions: versions,
        slug: slug(&subject, rev.version),
        cover: rev.cover.clone(),
        patches: rev.patches.values().cloned().collect(),
        missing: rev.missing.clone(),
        base_commit: rev.base_commit.clone(),
        prerequisite_patch_ids: rev.prerequisite_patch_ids.clone(),
        tags: rev.tags.clone(),
        rerolled_from: rev.rerolled_from,
        warnings: mailbox.warnings.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_forms() {
        let t = parse_subject("[PATCH v2 1/2] mm: x");
        assert_eq!((t.revision, t.position, t.is_patch), (2, Some((1, 2)), true));
        let t = parse_subject("[RFC PATCH v3 00/12] mm: x");
        assert_eq!((t.revision, t.position), (3, Some((0, 12))));
        assert_eq!(t.tags, vec!["RFC"]);
        let t = parse_subject("[PATCH mm-unstable v2 2/3] x");
        assert_eq!(
            (t.revision, t.position, t.tags.clone()),
            (2, Some((2, 3)), vec!["mm-unstable".to_string()])
        );
        let t = parse_subject("[PATCH HOTFIX 6.17] mm/mremap: x");
        assert_eq!(
            (t.revision, t.position, t.tags.clone()),
            (1, None, vec!["HOTFIX".to_string(), "6.17".to_string()])
        );
        // b4's counters have 1 to 4 digits: longer ones are text, not a series length.
        let t = parse_subject("[PATCH 1/4294967295] x");
        assert_eq!((t.position, t.tags.clone()), (None, vec!["1/4294967295".to_string()]));
        assert_eq!(parse_subject("[PATCH v99999 1/2] x").revision, 1);
        let t = parse_subject("[PATCH RESEND] x");
        assert_eq!(t.tags, vec!["RESEND"]);
        let t = parse_subject("Re: RE: [PATCH v4 3/4] mm: Optimize");
        assert!(t.is_reply && t.is_patch);
        assert!(!parse_subject("Re: hello").is_patch);
    }

    #[test]
    fn slugs_are_safe() {
        assert_eq!(slug("mm/mprotect: ../../etc <script>", 2), "mm-mprotect-etc-script-v2");
        assert_eq!(slug("", 1), "series-v1");
        assert!(slug(&"x".repeat(300), 1).len() < 70);
        // Subjects that share their first 48 characters still get their own slugs.
        let (a, b) = (
            slug("mm/mprotect: look up the folio only when it is needed for NUMA", 1),
            slug("mm/mprotect: look up the folio only when it is needed for writes", 1),
        );
        assert_ne!(a, b);
        assert!(a.starts_with("mm-mprotect-look-up-the-folio-only-when-it-is-ne-"), "{a}");
        assert_eq!(slug("short subject", 3), "short-subject-v3");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20536), (2026, 3, 24));
    }
}

//! A file diff's hunks applied to a file's bytes as `git apply` applies them (git's
//! `apply_one_fragment()` without `-C` or whitespace options): exact context, searched
//! outwards from the line the header gives in `find_pos()`'s order (forward one, back
//! one, forward two, ...), a hunk at line 1 only at the start and one without trailing
//! context only at the end, no hunk over lines an earlier one wrote, no fuzz. Pure.

use crate::diff::Hunk;

/// Where a hunk went: 1-based, and how far from where its header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub hunk: usize,
    pub line: usize,
    pub offset: isize,
}

/// The hunk that matched nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch {
    pub hunk: usize,
    pub header: String,
    /// The line its header names.
    pub line: usize,
}

/// Applies `hunks` to `content` in order, as `git apply` does without `-C` or
/// whitespace options: exact context, searched outwards from the line the header gives
/// (adjusted by earlier hunks), a hunk at line 1 only at the start and one without
/// trailing context only at the end, no hunk over lines an earlier one wrote.
/// Returns the new content and the hunks that landed at an offset.
pub fn apply_hunks(content: &[u8], hunks: &[Hunk]) -> std::result::Result<(Vec<u8>, Vec<Placed>), NoMatch> {
    let mut img: Vec<Vec<u8>> = content.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let mut patched = vec![false; img.len()];
    let mut moved = Vec::new();
    for (k, h) in hunks.iter().enumerate() {
        let match_beginning = h.old_start <= 1;
        let match_end = h.trailing == 0;
        let pos = h.new_start.saturating_sub(1);
        let Some(at) = find_pos(&img, &patched, &h.old, pos, match_beginning, match_end) else {
            return Err(NoMatch { hunk: k + 1, header: h.header.clone(), line: h.old_start });
        };
        if at != pos {
            moved.push(Placed { hunk: k + 1, line: at + 1, offset: at as isize - pos as isize });
        }
        img.splice(at..at + h.old.len(), h.new.iter().cloned());
        patched.splice(at..at + h.old.len(), std::iter::repeat_n(true, h.new.len()));
    }
    Ok((img.concat(), moved))
}

/// git's `find_pos()`: the expected line first, then one forward, one back, two
/// forward, ... until both ends are reached.
fn find_pos(
    img: &[Vec<u8>],
    patched: &[bool],
    pre: &[Vec<u8>],
    line: usize,
    match_beginning: bool,
    match_end: bool,
) -> Option<usize> {
    let nr = img.len();
    let mut line = if match_beginning {
        0
    } else if match_end {
        // A preimage longer than the file starts "before" it: git clamps to the end.
        nr.checked_sub(pre.len()).unwrap_or(nr)
    } else {
        line
    };
    line = line.min(nr);
    let fits = |at: usize| {
        at + pre.len() <= nr
            && (!match_end || at + pre.len() == nr)
            && (!match_beginning || at == 0)
            && (0..pre.len()).all(|k| !patched[at + k] && img[at + k] == pre[k])
    };
    let (mut backwards, mut forwards, mut current) = (line, line, line);
    let mut i = 0usize;
    loop {
        if fits(current) {
            return Some(current);
        }
        loop {
            if backwards == 0 && forwards == nr {
                return None;
            }
            if i & 1 == 1 {
                if backwards == 0 {
                    i += 1;
                    continue;
                }
                backwards -= 1;
                current = backwards;
            } else {
                if forwards == nr {
                    i += 1;
                    continue;
                }
                forwards += 1;
                current = forwards;
            }
            break;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::parse;

    fn lines(text: &str) -> Vec<&[u8]> {
        text.lines().map(str::as_bytes).collect()
    }

    fn hunk(old_start: usize, new_start: usize, body: &str) -> Hunk {
        let (o, n) = body.lines().fold((0, 0), |(o, n), l| match l.as_bytes().first() {
            Some(b'-') => (o + 1, n),
            Some(b'+') => (o, n + 1),
            _ => (o + 1, n + 1),
        });
        let text =
            format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -{old_start},{o} +{new_start},{n} @@\n{body}");
        parse(&lines(&text)).unwrap().unwrap().files.remove(0).fragments.remove(0)
    }

    #[test]
    fn offsets_are_searched_forward_then_back() {
        let file = b"p\nq\na\nb\nc\nd\ne\n";
        // Made against a file without p and q: applies 2 lines further down.
        let h = hunk(1, 1, "-a\n+A\n b\n c\n");
        assert!(apply_hunks(file, std::slice::from_ref(&h)).is_err(), "a hunk at line 1 is anchored");
        let h = hunk(2, 2, " b\n-c\n+C\n d\n");
        let (out, moved) = apply_hunks(file, std::slice::from_ref(&h)).unwrap();
        assert_eq!(out, b"p\nq\na\nb\nC\nd\ne\n");
        assert_eq!(moved, vec![Placed { hunk: 1, line: 4, offset: 2 }]);
        // Context that occurs twice: the nearer one wins, forward before backward.
        let twice = b"x\nm\ny\nx\nm\ny\nx\nm\ny\n";
        let h = hunk(5, 5, " x\n-m\n+M\n y\n");
        assert_eq!(apply_hunks(twice, &[h]).unwrap().0, b"x\nm\ny\nx\nM\ny\nx\nm\ny\n");
        let h = hunk(3, 3, " x\n-m\n+M\n y\n");
        // From line 3 (0-based 2): forward 3 is x m y at 3 -> taken before backward 0.
        assert_eq!(
            apply_hunks(twice, &[h]).unwrap(),
            (b"x\nm\ny\nx\nM\ny\nx\nm\ny\n".to_vec(), vec![Placed { hunk: 1, line: 4, offset: 1 }])
        );
    }

    #[test]
    fn ends_and_beginnings_are_anchored_and_there_is_no_fuzz() {
        // A hunk at line 1 only applies at the start.
        let h = hunk(1, 1, " a\n-b\n+B\n");
        assert!(apply_hunks(b"z\na\nb\n", std::slice::from_ref(&h)).is_err());
        assert!(apply_hunks(b"a\nb\n", &[h]).is_ok());
        // No trailing context: only at the end.
        let h = hunk(3, 3, " c\n+d\n");
        assert_eq!(apply_hunks(b"a\nb\nc\n", std::slice::from_ref(&h)).unwrap().0, b"a\nb\nc\nd\n");
        assert!(apply_hunks(b"a\nb\nc\nz\n", &[h]).is_err());
        // One context line differs: refused (git applies without fuzz).
        let h = hunk(2, 2, " a\n-b\n+B\n c\n");
        let e = apply_hunks(b"0\na\nb\nC\n", &[h]).unwrap_err();
        assert_eq!((e.hunk, e.line), (1, 2));
    }

    #[test]
    fn a_hunk_never_lands_on_lines_an_earlier_one_wrote() {
        let h1 = hunk(2, 2, " a\n-b\n+a\n+b\n c\n");
        let h2 = hunk(5, 6, " a\n-b\n+X\n c\n");
        // The second hunk's context exists only inside the first one's result.
        assert!(apply_hunks(b"0\na\nb\nc\n", &[h1, h2]).is_err());
    }
}

#!/usr/bin/env python3
"""Writes the hand-made corpus in series/: mails shaped like real list traffic that
git format-patch does not make by itself (threads, rerolls, odd replies, quilt, charsets).
Run from this directory; then re-bless with UPDATE_EXPECT=1 cargo test --test series_golden."""
import base64, quopri, os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "series")
SEP = "From mboxrd@z Thu Jan  1 00:00:00 1970\n"
GITSEP = "From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n"

def msg(frm, subject, mid, body, date="Mon, 2 Nov 2026 10:00:00 +0100", irt=None, extra=""):
    h = f"From: {frm}\nDate: {date}\nSubject: {subject}\nMessage-ID: <{mid}>\n"
    if irt:
        h += f"In-Reply-To: <{irt}>\nReferences: <{irt}>\n"
    return h + extra + "\n" + body

def patch(subject_line, path, old, new, sob="Mira Castellanos <mira@example.org>", extra_msg=""):
    return (f"{extra_msg}Signed-off-by: {sob}\n---\n {path} | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n"
            f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,3 +1,3 @@\n ctx 1\n-{old}\n+{new}\n ctx 3\n-- \n2.47.3\n\n")

MIRA = "Mira Castellanos <mira@example.org>"

def write(name, text, binary=False):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(text if binary else text.encode())

def cover(v, n, prefix="PATCH", irt=None):
    return msg(MIRA, f"[{prefix} v{v} 0/{n}] mm: two small steps", f"v{v}-0@example.org",
               f"Two small steps.\n\n Mira Castellanos ({n}):\n\n mm/a.c | 2 +-\n {n} files changed, {n} insertions(+), {n} deletions(-)\n\nbase-commit: a25fba884a92e8ac95610ea6433bd01b019158ef\n-- \n2.47.3\n\n",
               irt=irt)

# A partial reroll: v3 resends 2/2 only, as a reply to v2 2/2.
t = SEP + cover(2, 2)
t += SEP + msg(MIRA, "[PATCH v2 1/2] mm/a: step one", "v2-1@example.org", patch("", "mm/a.c", "a = 1;", "a = 2;"), irt="v2-0@example.org")
t += SEP + msg(MIRA, "[PATCH v2 2/2] mm/b: step two", "v2-2@example.org", patch("", "mm/b.c", "b = 1;", "b = 2;"), irt="v2-0@example.org")
t += SEP + msg(MIRA, "[PATCH v3 2/2] mm/b: step two, done right", "v3-2@example.org",
               patch("", "mm/b.c", "b = 1;", "b = 3;", extra_msg="v3: b is 3, not 2 (Ana).\n\n"),
               date="Wed, 4 Nov 2026 10:00:00 +0100", irt="v2-2@example.org")
write("partial-reroll.mbox", t)

# net-next style: the version is only on the cover letter.
t = SEP + cover(3, 2, prefix="PATCH net-next")
t += SEP + msg(MIRA, "[PATCH 1/2] net: step one", "nn-1@example.org", patch("", "net/a.c", "a = 1;", "a = 2;"), irt="v3-0@example.org")
t += SEP + msg(MIRA, "[PATCH 2/2] net: step two", "nn-2@example.org", patch("", "net/b.c", "b = 1;", "b = 2;"), irt="v3-0@example.org")
write("net-next-v3.mbox", t)

# A review whose subject lost its Re: (no diff, a trailer: a reply), and a RESEND.
t = SEP + msg(MIRA, "[PATCH] mm: one step", "one@example.org", patch("", "mm/a.c", "a = 1;", "a = 2;"))
t += SEP + msg("Ana Maintainer <ana@example.org>", "[PATCH] mm: one step", "ana-1@example.org",
               "> -a = 1;\n> +a = 2;\n\nReviewed-by: Ana Maintainer <ana@example.org>\n", irt="one@example.org")
write("reply-without-re.mbox", t)

# mm-unstable, RFC 2047 names in From and in the in-body From.
t = SEP + msg("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.org>", "[PATCH mm-unstable v2 1/2] mm: =?iso-8859-1?q?f=FCr_J=F6rg?=",
              "mu-1@example.org", "From: =?iso-8859-1?q?Bj=F6rn_T=F6pel?= <bjorn@example.org>\n\n" + patch("", "mm/a.c", "a = 1;", "a = 2;", sob="Björn Töpel <bjorn@example.org>"),
              extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n")
t += SEP + msg("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.org>", "[PATCH mm-unstable v2 2/2] mm: second", "mu-2@example.org",
              patch("", "mm/b.c", "b = 1;", "b = 2;", sob="Jörg Müller <joerg@example.org>"), irt="mu-1@example.org",
              extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n")
write("mm-unstable-rfc2047.mbox", t)

# A quoted-printable reply in ISO-2022-JP with an Acked-by.
body = "山田です。\n\nAcked-by: 山田太郎 <yamada@example.jp>\n".encode("iso2022_jp")
t = SEP + msg(MIRA, "[PATCH] mm: one step", "jp-0@example.org", patch("", "mm/a.c", "a = 1;", "a = 2;"))
t += SEP + msg("=?ISO-2022-JP?B?GyRCOzNFRUJATzobKEI=?= <yamada@example.jp>", "Re: [PATCH] mm: one step", "jp-1@example.org",
               quopri.encodestring(body).decode("ascii") + "\n", irt="jp-0@example.org",
               extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: quoted-printable\n")
write("iso-2022-jp-reply.mbox", t)

# Outlook's mailto junk, utility trailers from a reply, a trailer for somebody else.
t = SEP + msg(MIRA, "[PATCH] mm: one step", "ol-0@example.org", patch("", "mm/a.c", "a = 1;", "a = 2;"))
t += SEP + msg("Tomasz Nowak <tnowak@example.net>", "RE: [PATCH] mm: one step", "ol-1@example.org",
               "Tested-by: Tomasz Nowak <tnowak@example.net<mailto:tnowak@example.net>>\nLink: https://bugzilla.example.org/1\nCloses: https://bugzilla.example.org/2\nFixes: 0123456789ab (\"mm: the old way\")\nAcked-by: Someone Else <else@example.org>\n\n-----Original Message-----\nFrom: Mira Castellanos <mira@example.org>\n", irt="ol-0@example.org")
write("outlook-trailers.mbox", t)

# git format-patch's shape for an ASCII message and a UTF-8 diff: no charset at all;
# a `>From` line in the message (mboxo: kept); a new empty file with a space.
t = GITSEP + msg(MIRA, "[PATCH] docs: credit the café", "u8@example.org",
                 "As the old mail said:\n>From the archive, with love.\n\nSigned-off-by: Mira Castellanos <mira@example.org>\n---\n"
                 "diff --git a/docs/credits b/docs/credits\nindex 1111111..2222222 100644\n--- a/docs/credits\n+++ b/docs/credits\n@@ -1 +1,2 @@\n names\n+Café Müller — ☕\n"
                 "diff --git a/docs/new file b/docs/new file\nnew file mode 100644\nindex 0000000..e69de29\n-- \n2.47.3\n\n").replace("[PATCH] docs: credit the café", "[PATCH] docs: credit the cafe")
write("undeclared-utf8.mbox", t)

# A quilt patch (no diff --git), as `git am` takes it with -p1.
t = msg("Quilt User <quilt@example.org>", "[PATCH] mm: a quilt patch", "quilt@example.org",
        "Made with quilt.\n\nSigned-off-by: Quilt User <quilt@example.org>\n\n---\n mm/x.c |    2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n"
        "Index: linux/mm/x.c\n===================================================================\n--- linux.orig/mm/x.c\t2026-11-02 09:59:00.000000000 +0100\n+++ linux/mm/x.c\t2026-11-02 10:00:00.000000000 +0100\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+long b;\n int c;\n")
write("quilt.patch", t)

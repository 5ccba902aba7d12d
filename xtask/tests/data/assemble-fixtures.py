# Called by make-fixtures.sh: turns git format-patch streams into the fixture mails,
# threaded and encoded in the ways real mail arrives.
import base64, gzip, quopri, re, sys, pathlib

out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True)
base, base0 = sys.argv[2], sys.argv[3]
v2, v1, single, threeway, broken = [open(p).read() for p in sys.argv[4:9]]

def split(stream):
    return [m for m in re.split(r"(?m)^(?=From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$)", stream) if m.strip()]

SEP = "From git@z Thu Jan  1 00:00:00 1970\n"
TO = "To: Toy Maintainer <toy@example.org>\nCc: toy-list@lists.example.org, Tomasz Nowak <tnowak@example.net>\n"

def headers(msg, mid, parent=None, refs=(), date=None):
    head, body = msg.split("\n\n", 1)
    lines = head.split("\n")[1:]  # drop format-patch's From line
    add = TO + f"Message-ID: <{mid}>\n"
    if parent:
        add += f"In-Reply-To: <{parent}>\nReferences: " + " ".join(f"<{r}>" for r in list(refs) + [parent]) + "\n"
    head = "\n".join(lines)
    if date:
        head = re.sub(r"(?m)^Date: .*$", f"Date: {date}", head)
    return SEP + head + "\n" + add + "\n" + body

def cover(msg, subject, blurb):
    return msg.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", blurb)

def reply(frm, subject, mid, parent, refs, date, text, crlf=False):
    m = (SEP + f"From: {frm}\nTo: Mira Castellanos <mira@example.org>\nSubject: Re: {subject}\n"
         f"Date: {date}\nMessage-ID: <{mid}>\nIn-Reply-To: <{parent}>\n"
         "References: " + " ".join(f"<{r}>" for r in list(refs) + [parent]) + "\n"
         "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n" + text)
    return m.replace("\n", "\r\n") if crlf else m

def subj(msg):
    return re.search(r"(?m)^Subject: (.*(?:\n .*)*)", msg).group(1).replace("\n", "")

def write(name, text, mode="w"):
    (out / name).write_text(text) if mode == "w" else (out / name).write_bytes(text)

v2m = split(v2); v1m = split(v1)
v2m[0] = cover(v2m[0], "toy: batching groundwork", "Groundwork for batching in the toy.\n\nChanges in v2:\n - record the hint instead of resetting it\n - toy_batch() gets a body\n - move the docs")
v1m[0] = cover(v1m[0], "toy: batching groundwork", "Groundwork for batching in the toy.")
ids2 = [f"v2-{i}@example.org" for i in range(4)]
ids1 = [f"v1-{i}@example.org" for i in range(3)]
V2 = [headers(m, ids2[i], None if i == 0 else ids2[0], (), None) for i, m in enumerate(v2m)]
V1 = [headers(m, ids1[i], None if i == 0 else ids1[0], (), None) for i, m in enumerate(v1m)]

# A whole v2 thread with review replies.
replies = [
    reply("Tomasz Nowak <tnowak@example.net>", subj(v2m[0]), "r1@example.net", ids2[0], [],
          "Mon, 20 Nov 2023 10:00:00 +0000",
          "> Groundwork for batching in the toy.\n\nLooks right to me.\n\nReviewed-by: Tomasz Nowak <tnowak@example.net>\n"),
    reply("=?UTF-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>", subj(v2m[2]), "r2@example.org", ids2[2], [ids2[0]],
          "Mon, 20 Nov 2023 11:00:00 +0100",
          "Built and ran it.\n\nTested-by: Jörg Müller <joerg@example.org>\n", crlf=True),
    # Someone relaying a tag for another address: does not count.
    reply("Bob Relay <bob@example.com>", subj(v2m[3]), "r3@example.com", ids2[3], [ids2[0]],
          "Mon, 20 Nov 2023 12:00:00 +0000",
          "Alice asked me to pass this on:\n\nReviewed-by: Alice Absent <alice@example.com>\n"),
    # Quoted trailers do not count either; the reply-to-a-reply's own one does, for patch 1.
    reply("Tomasz Nowak <tnowak@example.net>", subj(v2m[1]), "r4@example.net", ids2[1], [ids2[0]],
          "Mon, 20 Nov 2023 13:00:00 +0000", "A question first.\n"),
    reply("Carla Reviewer <carla@example.org>", "Re: " + subj(v2m[1]), "r5@example.org", "r4@example.net", [ids2[0], ids2[1]],
          "Mon, 20 Nov 2023 14:00:00 +0000",
          "> Reviewed-by: Tomasz Nowak <tnowak@example.net>\n\nAnswered off-list.\n\nAcked-by: Carla Reviewer <carla@example.org>\n"),
]
write("good-v2.mbox", "".join(V2 + replies))

# v1 and v2 interleaved in one thread.
write("mixed-v1-v2.mbox", "".join([V1[0], V2[0], V1[1], V2[1], V2[2], V1[2], V2[3]]))

# mboxrd, gzip'd, with escaped From lines.
rd = V2[0].replace("Groundwork for batching in the toy.", "Groundwork for batching in the toy.\n>From the toy's side nothing changes.\n>>From here, quoted.")
write("mboxrd.mbox.gz", gzip.compress(("".join([rd] + V2[1:])).encode(), mtime=0), "b")

# A resend of patch 2 later on: the newer one wins, with a warning.
resend = V2[2].replace("[PATCH v2 2/3]", "[PATCH RESEND v2 2/3]").replace(f"<{ids2[2]}>", "<v2-2-resend@example.org>")
resend = re.sub(r"(?m)^Date: .*$", "Date: Fri, 24 Nov 2023 09:00:00 +0000", resend, count=1)
write("resend.mbox", "".join(V2 + [resend]))

# A patch missing from the series.
write("missing-patch.mbox", "".join([V2[0], V2[1], V2[3]]))

# Truncated in the middle of a hunk of patch 2.
t = "".join(V2[:3])
write("truncated.mbox", t[: t.index("+long toy_batch(") + 10])

# Encodings: the UTF-8 single patch as quoted-printable with CRLF line ends.
s = split(single)[0]
head, body = s.split("\n\n", 1)
head = head.replace("Content-Transfer-Encoding: 8bit", "Content-Transfer-Encoding: quoted-printable")
qp = quopri.encodestring(body.encode()).decode()
write("encodings.mbox", (SEP + "\n".join(head.split("\n")[1:]) + "\n" + TO + "Message-ID: <enc@example.org>\n\n" + qp).replace("\n", "\r\n"))

# The same as a base64 .eml (no mbox From line).
head_b64 = head.replace("Content-Transfer-Encoding: quoted-printable", "Content-Transfer-Encoding: base64")
b64 = base64.encodebytes(body.encode()).decode()
write("base64.eml", "\n".join(head_b64.split("\n")[1:]) + "\n" + TO + "Message-ID: <b64@example.org>\n\n" + b64)

# Sent by Mira on Jörg's behalf: git's in-body From:/Date: override.
hd, bd = s.split("\n\n", 1)
frm = re.search(r"(?m)^From: (.*)$", hd).group(1)
date = re.search(r"(?m)^Date: (.*)$", hd).group(1)
hd = re.sub(r"(?m)^From: .*$", "From: Mira Castellanos <mira@example.org>", hd)
hd = re.sub(r"(?m)^Date: .*$", "Date: Tue, 21 Nov 2023 08:00:00 +0000", hd)
write("in-body-from.mbox", headers(hd + "\n\nFrom: Jörg Müller <joerg@example.org>\nDate: " + date + "\n\n" + bd, "inbody@example.org"))

# A single patch as a .patch file, with a HOTFIX tag and no cover letter.
write("hotfix.patch", "\n".join(s.split("\n")[1:]).replace("Subject: [PATCH]", "Subject: [PATCH HOTFIX 6.17]"))

# The scissors form: discussion, then the patch below "-- >8 --".
b = split(broken)[0]
bh, bb = b.split("\n\n", 1)
bsubj = subj(b).replace("[PATCH] ", "")
sc = bh.replace(subj(b), "[PATCH] toy: the subject above the scissors") + "\n\n" + \
     "Something like this, then?\n\n-- >8 --\nFrom: Tomasz Nowak <tnowak@example.net>\nSubject: " + bsubj + "\n\n" + bb
write("scissors.mbox", headers(sc, "scissors@example.org"))

# Does not apply: the context is from a toy.c that never existed, and so is its blob.
bad = b.replace("\n \treturn n;\n", "\n \treturn n + 0;\n")
assert bad != b
bad = re.sub(r"(?m)^index [0-9a-f]+\.\.", "index 1234567..", bad)
write("does-not-apply.mbox", headers(bad, "broken@example.org"))

# Three-way: made on base0, whose context base changed; Latin-1, quoted-printable.
tw = split(threeway)[0]
th, tb = tw.split("\n\n", 1)
tb = tb.replace("toy: comment pages\n", "toy: comment pages\n", 1).replace("Signed-off-by: Mira", "Grüße.\n\nSigned-off-by: Mira", 1)
th = re.sub(r"(?m)^(MIME-Version|Content-Type|Content-Transfer-Encoding): .*\n?", "", th).rstrip("\n")
th += "\nMIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable"
write("threeway-latin1.mbox", SEP + "\n".join(th.split("\n")[1:]) + "\n" + TO + "Message-ID: <3way@example.org>\n\n" + quopri.encodestring(tb.encode("latin-1")).decode())

# No diff after the ---.
nd = s[: s.index("diff --git")]
write("no-diff.mbox", headers(nd, "nodiff@example.org"))

# Paths that escape the tree.
def escape(path, name):
    e = s.replace("a/mm/toy.c", f"a/{path}").replace("b/mm/toy.c", f"b/{path}")
    write(name, headers(e, name + "@example.org"))
escape("../../etc/passwd", "escape-dotdot.mbox")
escape("/etc/passwd", "escape-absolute.mbox")
escape(".git/hooks/post-checkout", "escape-dotgit.mbox")

write("empty.mbox", "")
write("garbage.txt", "This is not a mail.\nIt has no headers,\nand no patch either.\n")

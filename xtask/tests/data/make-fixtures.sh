#!/usr/bin/env bash
# Regenerates the mail fixtures in series/ from the toy tree in base/, with real
# `git format-patch`. Run from this directory; needs git and python3. The toy
# repository it builds must match tests/common/mod.rs::toy_repo (a test checks the
# commit ids), and the .golden files are then re-blessed with UPDATE_EXPECT=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/series
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
export GIT_AUTHOR_NAME="Toy Maintainer" GIT_AUTHOR_EMAIL="toy@example.org"
export GIT_COMMITTER_NAME="Toy Maintainer" GIT_COMMITTER_EMAIL="toy@example.org"
export GIT_AUTHOR_DATE="1700000000 +0000" GIT_COMMITTER_DATE="1700000000 +0000"
git init -q -b main "$w/repo"
cp -a "$here/base/." "$w/repo/"
cd "$w/repo"
git add -A && git commit -q -m "toy: initial"
base0=$(git rev-parse HEAD)
sed -i 's/old_name/nr_hint/g' mm/toy.c
export GIT_AUTHOR_DATE="1700000100 +0000" GIT_COMMITTER_DATE="1700000100 +0000"
git commit -q -a -m "toy: rename old_name to nr_hint"
base=$(git rev-parse HEAD)
echo "base0 $base0 base $base"

commit() { # date message...
  GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git commit -q -a -m "$2"; }
author() { export GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$2"; }
author "Mira Castellanos" "mira@example.org"
# format-patch signs cover letters with the committer identity.
export GIT_COMMITTER_NAME="Mira Castellanos" GIT_COMMITTER_EMAIL="mira@example.org"

# v2 of a three-patch series: modify, add, rename + mode change.
git checkout -q -b v2 "$base"
sed -i 's/\t\tpte\[i\].prot = prot;/\t\tpte[i].prot = prot;\n\t\tpte[i].nr = toy_hint(\&pte[i]);/' mm/toy.c
commit "1700100000 +0100" "toy: record the batch hint when changing protection

Keep the hint next to the protection so that the next pass can batch.

Signed-off-by: Mira Castellanos <mira@example.org>"
printf '// SPDX-License-Identifier: GPL-2.0\n#include "toy.h"\n\nlong toy_batch(struct toy_pte *pte, long nr)\n{\n\treturn nr;\n}\n' > mm/toy_batch.c
git add mm/toy_batch.c
commit "1700100001 +0100" "toy: add toy_batch()

Signed-off-by: Mira Castellanos <mira@example.org>"
mkdir -p Documentation/mm && git mv Documentation/toy.rst Documentation/mm/toy.rst
echo "Entries may be batched." >> Documentation/mm/toy.rst
chmod -x scripts/toy.sh
commit "1700100002 +0100" "Documentation: move toy.rst under mm/

Also drop the executable bit of scripts/toy.sh: it is sourced, not run.

Acked-by: Toy Maintainer <toy@example.org>
Signed-off-by: Mira Castellanos <mira@example.org>"

# v1 of the same series: two patches, different first patch.
git checkout -q -b v1 "$base"
sed -i 's/\t\tpte\[i\].prot = prot;/\t\tpte[i].prot = prot;\n\t\tpte[i].nr = 1;/' mm/toy.c
commit "1700000500 +0100" "toy: reset the batch hint when changing protection

Signed-off-by: Mira Castellanos <mira@example.org>"
printf '// SPDX-License-Identifier: GPL-2.0\n#include "toy.h"\n' > mm/toy_batch.c
git add mm/toy_batch.c
commit "1700000501 +0100" "toy: add an empty toy_batch.c

Signed-off-by: Mira Castellanos <mira@example.org>"

# Single patches on the base.
git checkout -q -b single "$base"
author "Jörg Müller" "joerg@example.org"
sed -i 's/\tlong n = 0;/\tlong n = 0; \/* Zähler *\//' mm/toy.c
commit "1700200000 +0200" "toy: comment the counter (für Jörg)

Grüße aus Köln: the commit message is UTF-8.

Signed-off-by: Jörg Müller <joerg@example.org>"
author "Mira Castellanos" "mira@example.org"

# A patch made against base0, whose context base changed: strict apply fails,
# three-way succeeds (the index line names base0's blob).
git checkout -q -b threeway "$base0"
sed -i 's/^long toy_change_range/\/* Change the protection of nr entries. *\/\nlong toy_change_range/' mm/toy.c
commit "1700300000 +0000" "toy: document toy_change_range()

Signed-off-by: Mira Castellanos <mira@example.org>"

# A patch that does not apply at all: its context is from a file that never existed.
git checkout -q -b broken "$base"
sed -i 's/\t\tn += pte\[i\].present;/\t\tn += !!pte[i].present;/' mm/toy.c
commit "1700400000 +0000" "toy: count present entries as booleans

Signed-off-by: Mira Castellanos <mira@example.org>"

fp() { git format-patch --stdout --no-thread --base="$base" "$@"; }
python3 "$here/assemble-fixtures.py" "$out" "$base" "$base0" \
  <(fp --cover-letter -v2 "$base..v2") <(fp --cover-letter "$base..v1") \
  <(fp "$base..single") <(git format-patch --stdout --no-thread --base="$base0" "$base0..threeway") \
  <(fp "$base..broken")
rm -rf "$out/dir" && mkdir -p "$out/dir"
git format-patch -q --cover-letter -v2 --base="$base" -o "$out/dir" "$base..v2"
python3 - "$out/dir" <<'PY'
import sys, pathlib
for p in pathlib.Path(sys.argv[1]).glob("*cover-letter*"):
    t = p.read_text().replace("*** SUBJECT HERE ***", "toy: batching groundwork").replace("*** BLURB HERE ***", "Groundwork for batching in the toy.")
    p.write_text(t)
PY

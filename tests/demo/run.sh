#!/usr/bin/env bash
# `make demo` prints the story and nothing else, and the three demos tell the same story:
# its output (stdout and stderr) is three sections, "==> C ...", "==> Ruby ...",
# "==> Python ...", whose bodies are identical line for line (same ride, names, amounts,
# failure and resume) and end with the demo's own check that the retry created no second
# ride. Any build, install or tool output would make the sections differ.
# Prints "SUMMARY demo <part> <passed> <failed>".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tmp="$(mktemp -d /tmp/aj-demo.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
failed=0

result() { # result PART OK
  if [ "$2" -eq 0 ]; then echo "SUMMARY demo $1 1 0"; else echo "SUMMARY demo $1 0 1"; failed=1; fi
}

make demo >"$tmp/out" 2>&1
rc=$?
result exit-status "$rc"
[ "$rc" -eq 0 ] || cat "$tmp/out"

# split into sections at the "==> " headers; anything before the first one is noise
awk -v dir="$tmp" '
  /^==> / { n++; name = (n == 1 ? "c" : n == 2 ? "ruby" : n == 3 ? "python" : "extra" n); next }
  { print > (dir "/" (n ? name : "before")) }
' "$tmp/out"
for f in "$tmp"/c "$tmp"/ruby "$tmp"/python; do # the blank line between sections
  [ -f "$f" ] && awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }' "$f" >"$f.story"
done
headers="$(grep -c '^==> ' "$tmp/out")"
[ "$headers" -eq 3 ] && [ ! -s "$tmp/before" ] && grep -q '^==> C' "$tmp/out" &&
  grep -q '^==> Ruby' "$tmp/out" && grep -q '^==> Python' "$tmp/out"
result three-sections $?

same=0
for lang in ruby python; do
  if ! diff -u "$tmp/c.story" "$tmp/$lang.story" >"$tmp/$lang.diff" 2>&1; then
    echo "!! the $lang demo tells another story than the C one:" >&2
    cat "$tmp/$lang.diff" >&2
    same=1
  fi
done
result same-story "$same"

# the story itself: a failure at the charge step, then a resume there, one ride charged once
grep -q '^  failed at create_stripe_charge' "$tmp/c" &&
  grep -q '^  run "ride-request-42": resumes at create_stripe_charge$' "$tmp/c" &&
  grep -q '^OK: one ride, charged once' "$tmp/c" &&
  [ "$(grep -c '^  \[1/3\]' "$tmp/c")" -eq 1 ]
result story "$?"
exit "$failed"

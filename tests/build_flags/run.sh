#!/usr/bin/env bash
# Every build of the core uses the core's warning flags (core/warning-flags.txt): a warning
# that fails one build fails them all.
#
# In a copy of the tree, a probe file is added to core/src with a warning that the core's
# flags make an error and that Ruby's and Python's own flags would let through (an unused
# parameter: both pass -Wno-unused-parameter for their binding files). Then each build of
# the core runs, as its own script or configuration does it:
#   cmake     CMakeLists.txt (the libraries, tests and examples)
#   python    setup.py (build_clib: the core's part of `pip install .`)
#   ruby      the gem's extconf.rb and its Makefile (what `gem install` runs)
#   bench     bench/run.sh (AJ_BENCH_BUILD_ONLY=1)
#   fuzz      tests/fuzz/run.sh
# and each must fail, on the probe, under -Werror (gcc and clang word it differently). The same builds pass without the
# probe: the other suites of `make test` build them (the bench here, as nothing else does).
# Prints "SUMMARY build-flags <build> <passed> <failed>".
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d /tmp/aj-flags.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
failed=0

# The tree as committed plus uncommitted files, without build outputs.
copy_tree() {
  mkdir -p "$1"
  (cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$1")
}

# expect_probe_failure NAME LOG: the build failed, on the probe, with the warning an error.
expect_probe_failure() {
  local name="$1" log="$2" rc="$3"
  if [ "$rc" -ne 0 ] && grep -Eq "warning_probe.c.*unused parameter.*-Werror(=|,-W)unused-parameter" "$log"; then
    echo "SUMMARY build-flags $name 1 0"
  else
    echo "!! $name: the core built with an unused parameter, or failed for another reason:" >&2
    tail -n 20 "$log" | grep -v '^SUMMARY' >&2 # the inner script's lines are not ours
    echo "SUMMARY build-flags $name 0 1"
    failed=1
  fi
}

# ---- control: the bench builds as it is (the other builds are built by the other suites)
copy_tree "$tmp/plain"
if (cd "$tmp/plain" && AJ_BENCH_BUILD_ONLY=1 bash bench/run.sh) >"$tmp/bench-plain.log" 2>&1; then
  echo "SUMMARY build-flags bench-builds 1 0"
else
  grep -v '^SUMMARY' "$tmp/bench-plain.log" >&2
  echo "SUMMARY build-flags bench-builds 0 1"
  failed=1
fi

# ---- the probe ----------------------------------------------------------------------
tree="$tmp/probe"
copy_tree "$tree"
# aaa_: first in every glob, so each build reaches it first
cat >"$tree/core/src/aaa_warning_probe.c" <<'EOF'
/* Added by tests/build_flags/run.sh: an unused parameter, which -Wextra reports. */
int aj_warning_probe(int unused);
int aj_warning_probe(int unused) { return 0; }
EOF

(cd "$tree" && cmake -S . -B build/probe -DAJ_BUILD_TESTS=OFF -DAJ_BUILD_EXAMPLES=OFF &&
   cmake --build build/probe --target acidic_job) >"$tmp/cmake.log" 2>&1
expect_probe_failure cmake "$tmp/cmake.log" $?

(cd "$tree" && /usr/bin/python3 setup.py -q build_clib) >"$tmp/python.log" 2>&1
expect_probe_failure python "$tmp/python.log" $?

extconf="$(cd "$tree" && ls ext/acidic_job/extconf.rb bindings/ruby/ext/acidic_job/extconf.rb 2>/dev/null | head -n 1)"
mkdir -p "$tmp/ruby"
(cd "$tmp/ruby" && ruby "$tree/$extconf" && make V=1 aaa_warning_probe.o) >"$tmp/ruby.log" 2>&1
expect_probe_failure ruby "$tmp/ruby.log" $?

(cd "$tree" && AJ_BENCH_BUILD_ONLY=1 bash bench/run.sh) >"$tmp/bench.log" 2>&1
expect_probe_failure bench "$tmp/bench.log" $?

(cd "$tree" && RUNS=1 bash tests/fuzz/run.sh) >"$tmp/fuzz.log" 2>&1
expect_probe_failure fuzz "$tmp/fuzz.log" $?

exit "$failed"

#!/usr/bin/env bash
# The reliability suites of issue 9: the short form runs in `make test` (scripts/test.sh,
# its own section) and as `make reliability`; `make soak` is the long form.
#
#   tests/reliability/run.sh [PART...]      PART: c python ruby kill faults fuzz (default all)
#   SOAK=1 tests/reliability/run.sh         the soak form
#
# Parts:
#   c       the defect recipes in C (c/recipes.c), on SQLite and PostgreSQL
#   python  the defect recipes and bad inputs through the installed Python package (pytest)
#   ruby    the defect recipes and bad inputs through the installed gem (minitest)
#   kill    kill anywhere: C, Python and Ruby workers SIGKILLed at random (kill/driver.py)
#   faults  PostgreSQL stopped with -m immediate / -m fast under streams of runs
#   fuzz    libFuzzer targets for the core's parsers (fuzz/), with the password oracle
# Sizes (short / soak): kill 200 / 5,000 kills per database; faults 4 / 20 restarts per
# worker kind, alternately -m immediate and -m fast; fuzz 10 s / 120 s per target. The short
# form takes about 6 minutes on the 2-core machine, the soak about 27.
#
# Uses AJ_TEST_PG_URL / AJ_TEST_PG_DIR when set (scripts/test.sh; the faults part and the
# Python recipes restart that server and leave it running), else starts its own
# PostgreSQL with scripts/pg-server.sh and stops it on exit. Temporary files go under
# $TMPDIR (default /tmp).
# Prints "SUMMARY reliability <part> <passed> <failed>" lines, then the figures of the run
# as a Markdown table (the README's "Reliability" section is one), and exits non-zero when
# anything failed.
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/reliability"
cd "$root"
export AJ_TEST_ROOT="$root"
soak="${SOAK:-0}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/aj-reliability.XXXXXX")"
chmod 755 "$tmp"
: >"$tmp/summary"
started_pg=""
failed=0

cleanup() {
  local rc=$?
  [ -n "$started_pg" ] && bash "$root/scripts/pg-server.sh" stop "$tmp/pg" >/dev/null 2>&1
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

summary() { echo "SUMMARY reliability $1 $2 $3" | tee -a "$tmp/summary"; [ "$3" -eq 0 ] || failed=1; }

parts="${*:-c python ruby kill faults fuzz}"
want() { [[ " $parts " == *" $1 "* ]]; }

# ---- services -----------------------------------------------------------------------
if [ -z "${AJ_TEST_PG_URL:-}" ] || [ -z "${AJ_TEST_PG_DIR:-}" ]; then
  if AJ_TEST_PG_URL="$(bash scripts/pg-server.sh start "$tmp/pg")"; then
    started_pg=1
    AJ_TEST_PG_DIR="$tmp/pg"
  else
    echo "!! PostgreSQL did not start" >&2
    summary services 0 1
    AJ_TEST_PG_URL=""
  fi
fi
export AJ_TEST_PG_URL AJ_TEST_PG_DIR="${AJ_TEST_PG_DIR:-}"

# ---- builds ---------------------------------------------------------------------------
# The core with ASan+UBSan (the C programs link it), the Python package, the gem.
build_c() {
  cmake -S . -B build/asan -DAJ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DAJ_BUILD_EXAMPLES=OFF \
        -DAJ_BUILD_TESTS=OFF >"$tmp/cmake.log" 2>&1 &&
    cmake --build build/asan -j "$(nproc)" >>"$tmp/cmake.log" 2>&1 &&
    make -s -C "$here" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; return 1; }
}

venv="$root/build/python-venv"
build_python() {
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv" || return 1
  "$venv/bin/pip" install --no-build-isolation --no-deps -q --force-reinstall "$root" \
    >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; return 1; }
}

gem_home="$root/build/ruby/gems"
build_ruby() {
  export GEM_HOME="$gem_home"
  GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
  export GEM_PATH
  rm -rf "$GEM_HOME" "$root"/build/ruby/acidic_job-*.gem
  mkdir -p "$root/build/ruby"
  local version
  version="$(ruby -e 'load ARGV[0]; print AcidicJob::VERSION' bindings/ruby/lib/acidic_job/version.rb)"
  gem build acidic_job.gemspec --output "$root/build/ruby/acidic_job-$version.gem" \
    >"$tmp/gem.log" 2>&1 &&
    gem install --local --no-document "$root"/build/ruby/acidic_job-*.gem >>"$tmp/gem.log" 2>&1 ||
    { cat "$tmp/gem.log"; return 1; }
}

if want c || want kill || want faults; then
  echo "==> building the core (ASan+UBSan) and the reliability programs"
  build_c || summary c-build 0 1
fi
if want python || want kill || want faults; then
  echo "==> installing the Python package into $venv"
  build_python || summary python-build 0 1
fi
if want ruby || want kill || want faults; then
  echo "==> installing the gem into $gem_home"
  build_ruby || summary ruby-build 0 1
fi
export RUBYOPT="-W0"

# Leaks of failing recipes (cmocka's longjmp out of a test) are not what these suites judge.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# run_part NAME CMD...: run a part whose program prints its own SUMMARY lines; a part that
# exits non-zero without reporting a failure counts as one failure. Its ROW and BAD-INPUTS
# lines are kept for the figures.
: >"$tmp/figures"
run_part() {
  local name="$1"; shift
  echo
  echo "==== reliability: $name ===="
  local log="$tmp/$name.log" started=$SECONDS
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  echo "($name: $((SECONDS - started)) s)"
  grep -E '^(ROW \||BAD-INPUTS )' "$log" >>"$tmp/figures"
  local lines
  lines="$(grep -E '^SUMMARY reliability [^ ]+ [0-9]+ [0-9]+$' "$log" || true)"
  [ -n "$lines" ] && echo "$lines" >>"$tmp/summary"
  if [ -z "$lines" ]; then
    summary "$name" 0 1
  elif echo "$lines" | awk '$5 > 0 {bad=1} END {exit !bad}'; then
    failed=1
  elif [ "$rc" -ne 0 ]; then
    summary "$name-exit" 0 1
  fi
}

# ---- parts ------------------------------------------------------------------------------
if want c; then
  run_part c-recipes-sqlite "$root/build/reliability/recipes" sqlite
  run_part c-recipes-postgres "$root/build/reliability/recipes" postgres
fi

if want python; then
  # from the suite's folder: the installed package is tested, not the source tree
  run_part python bash -c "cd '$here/python' && '$venv/bin/python' -m pytest -q -rfE -p no:cacheprovider ."
fi

if want ruby; then
  for db in sqlite postgres; do
    AJ_REL_DB=$db run_part "ruby-$db" ruby -I"$here/ruby" \
      -e 'Dir[ARGV[0] + "/test_*.rb"].sort.each { |f| require f }' "$here/ruby"
  done
fi

if want kill; then
  run_part kill "$venv/bin/python" "$here/kill/driver.py" --soak "$soak"
fi

if want faults; then
  run_part faults "$venv/bin/python" "$here/kill/faults.py" --soak "$soak"
fi

if want fuzz; then
  run_part fuzz bash "$here/fuzz/run.sh"
fi

echo
echo "==== reliability: figures ($(if [ "$soak" = 1 ]; then echo soak; else echo short form; fi), $(date -u +%Y-%m-%d), $((SECONDS / 60)) min) ===="
echo
echo "| suite | figures |"
echo "|---|---|"
grep '^ROW | kill' "$tmp/figures" | sed 's/^ROW //'
grep '^ROW | PostgreSQL faults' "$tmp/figures" | sed 's/^ROW //'
awk '$1 == "BAD-INPUTS" { n += $3; split($2, p, "-"); by[p[1]] += $3 }
     END { if (n) printf "| bad input | %d cases on SQLite and PostgreSQL, each with its exact error asserted (C %d, Python %d, Ruby %d) |\n",
                         n, by["c"], by["python"], by["ruby"] }' "$tmp/figures"
grep '^ROW | fuzz' "$tmp/figures" | sed 's/^ROW //'

echo
echo "==== reliability: summary ===="
awk '{printf "  %-32s %6d passed %6d failed\n", $3, $4, $5; p += $4; f += $5}
     END {printf "%d passed, %d failed\n", p, f}' "$tmp/summary"
exit "$failed"

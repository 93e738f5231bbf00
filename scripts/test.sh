#!/usr/bin/env bash
# Run every test suite against real services and print a summary.
#
# Starts a throwaway PostgreSQL (scripts/pg-server.sh) and Redis (scripts/redis-server.sh)
# in a temporary directory, stops both on exit (also on failure or Ctrl-C), and exports
#   AJ_TEST_PG_URL     libpq URI of the PostgreSQL server
#   AJ_TEST_PG_DIR     its directory (scripts/pg-server.sh restart DIR restarts it)
#   AJ_TEST_REDIS_URL  redis://127.0.0.1:PORT/0
# Then runs, in order: the C tests, the C tests under ASan+UBSan, the Debug and Release
# builds, a bounded libFuzzer run of the public API (tests/fuzz/run.sh), the warning flags
# of every build of the core (tests/build_flags), the installed library (tests/install),
# tests/python/run.sh and tests/ruby/run.sh, the reliability suites of issue 9 in their
# short form (tests/reliability/run.sh: recipes, kill anywhere, PostgreSQL faults, bad
# input, fuzzing; the faults restart the PostgreSQL server and leave it running), the
# dashboard in a headless Chromium (tests/web), the READMEs' quick starts (tests/readme)
# and `make demo` (tests/demo).
#
# Summary convention: every suite prints, for each part it runs, one line
#   SUMMARY <suite> <database-or-queue> <passed> <failed>
# (e.g. "SUMMARY python postgres 41 0"). This script collects those lines into the final
# table; a suite that exits non-zero without reporting a failure counts as one failure.
# The last line is "N passed, M failed"; the exit status is non-zero when anything failed.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/install-deps.sh >/dev/null 2>&1 || scripts/install-deps.sh

tmp="$(mktemp -d /tmp/aj-test.XXXXXX)"
chmod 755 "$tmp" # the PostgreSQL server runs as the postgres user
summary="$tmp/summary"
: >"$summary"

cleanup() {
  local rc=$?
  # stop whatever was started, even when a start failed half-way
  if [ -d "$tmp/pg" ] && [ -f scripts/pg-server.sh ]; then
    bash scripts/pg-server.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  fi
  if [ -d "$tmp/redis" ]; then
    scripts/redis-server.sh stop "$tmp/redis" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section() { printf '\n==== %s ====\n' "$*"; }

# record SUITE PART PASSED FAILED
record() { echo "SUMMARY $1 $2 $3 $4" >>"$summary"; }

# run_suite SUITE CMD...: run a suite, copy its SUMMARY lines; a non-zero exit without
# any reported failure counts as one failure of part "exit".
run_suite() {
  local suite="$1"; shift
  local log="$tmp/$suite.log"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local lines
  lines="$(grep -E '^SUMMARY [^ ]+ [^ ]+ [0-9]+ [0-9]+$' "$log" || true)"
  if [ -n "$lines" ]; then
    echo "$lines" >>"$summary"
  fi
  if [ "$rc" -ne 0 ]; then
    local reported_failures
    reported_failures="$(echo "$lines" | awk 'NF==5 {s+=$5} END {print s+0}')"
    if [ "$reported_failures" -eq 0 ]; then
      echo "!! $suite exited with status $rc without reporting a failure" >&2
      record "$suite" exit 0 1
    fi
  fi
  return 0
}

# ---- services -----------------------------------------------------------------
section "services"
export AJ_TEST_PG_URL="" AJ_TEST_REDIS_URL="" AJ_TEST_PG_DIR="" AJ_TEST_ROOT="$root"
if [ -x scripts/pg-server.sh ] || [ -f scripts/pg-server.sh ]; then
  if url="$(bash scripts/pg-server.sh start "$tmp/pg")" && [ -n "$url" ]; then
    AJ_TEST_PG_URL="$url"
    AJ_TEST_PG_DIR="$tmp/pg"
    echo "PostgreSQL: $AJ_TEST_PG_URL"
  else
    echo "!! PostgreSQL did not start" >&2
    record services postgres 0 1
  fi
else
  echo "!! scripts/pg-server.sh is missing: PostgreSQL tests cannot run" >&2
  record services postgres 0 1
fi
if url="$(scripts/redis-server.sh start "$tmp/redis")" && [ -n "$url" ]; then
  AJ_TEST_REDIS_URL="$url"
  echo "Redis: $AJ_TEST_REDIS_URL"
else
  echo "!! Redis did not start" >&2
  record services redis 0 1
fi

jobs="$(nproc 2>/dev/null || echo 2)"

# ---- C ------------------------------------------------------------------------
# c_suite SUITE BUILD_DIR CMAKE_ARGS...
c_suite() {
  local suite="$1" dir="$2"; shift 2
  section "C tests ($suite, $dir)"
  if ! cmake -S . -B "$dir" "$@" >"$tmp/$suite-cmake.log" 2>&1 ||
     ! cmake --build "$dir" -j "$jobs" >>"$tmp/$suite-cmake.log" 2>&1; then
    cat "$tmp/$suite-cmake.log"
    echo "!! the C build failed ($suite)" >&2
    record "$suite" build 0 1
    return
  fi
  if [ "$suite" = c ]; then
    run_suite "$suite-exports" tests/c/check_exports.sh "$dir/libacidic_job.so" \
      core/include/acidic_job.h
  fi
  local db
  for db in sqlite postgres; do
    if [ "$db" = postgres ] && [ -z "$AJ_TEST_PG_URL" ]; then
      record "$suite" postgres 0 1
      continue
    fi
    AJ_TEST_SUITE="$suite" run_suite "$suite-$db" "$dir/tests/c/aj_tests" "$db"
  done
}

# AJ_BUILD_TESTS=ON said each time: tests/reliability/run.sh configures build/asan without
# the tests, and a cached OFF would leave a stale aj_tests to run.
c_suite c build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAJ_BUILD_TESTS=ON

# Every build type builds (gcc, -Werror): Debug and Release too, tests and examples included.
for type in Debug Release; do
  section "C build ($type)"
  dir="build/$(echo "$type" | tr '[:upper:]' '[:lower:]')"
  if cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" >"$tmp/build-$type.log" 2>&1 &&
     cmake --build "$dir" -j "$jobs" >>"$tmp/build-$type.log" 2>&1; then
    echo "built $dir"
    record c-build "$type" 1 0
  else
    cat "$tmp/build-$type.log"
    record c-build "$type" 0 1
  fi
done

ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  c_suite c-asan build/asan -DAJ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DAJ_BUILD_EXAMPLES=OFF \
    -DAJ_BUILD_TESTS=ON

# ---- fuzzing ------------------------------------------------------------------
section "fuzzing the public API (libFuzzer)"
run_suite fuzz bash tests/fuzz/run.sh

# ---- packaging ----------------------------------------------------------------
section "one set of warning flags in every build of the core"
run_suite build-flags bash tests/build_flags/run.sh
section "the installed C library (make install, pkg-config, find_package)"
run_suite install bash tests/install/run.sh

# ---- bindings -----------------------------------------------------------------
for lang in python ruby; do
  if [ -f "tests/$lang/run.sh" ]; then
    section "$lang tests"
    run_suite "$lang" bash "tests/$lang/run.sh"
  fi
done

# ---- reliability ----------------------------------------------------------------
section "reliability (issue 9, short form): recipes, kill anywhere, PostgreSQL faults, bad input, fuzzing"
run_suite reliability bash tests/reliability/run.sh

# ---- the dashboard ---------------------------------------------------------------
section "the dashboard in a headless Chromium (Rails and WSGI, SQLite and PostgreSQL)"
run_suite web bash tests/web/run.sh

# ---- first contact -------------------------------------------------------------
section "the READMEs' quick starts, run as written"
run_suite readme bash tests/readme/run.sh
section "make demo"
run_suite demo bash tests/demo/run.sh

# ---- summary ------------------------------------------------------------------
section "summary"
awk '
  $1 == "SUMMARY" && NF == 5 {
    printf "%-10s %-20s %6d passed %6d failed\n", $2, $3, $4, $5
    p += $4; f += $5
  }
  END { printf "%d passed, %d failed\n", p, f }
' "$summary" | sed '$!s/^/  /'
failed="$(awk '$1 == "SUMMARY" && NF == 5 {f += $5} END {print f+0}' "$summary")"
[ "$failed" -eq 0 ]

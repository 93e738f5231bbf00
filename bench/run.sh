#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and python_bench are called indirectly
# make bench: the measures of issue 10, each next to a baseline measured in the same run,
# in one table (bench/report.py), also written to bench/results/latest.json with the
# EXPLAIN output of the history measure beside it (bench/results/explain-*.txt).
#
#   make bench                  the full sizes (under 10 minutes on the 2-core machine)
#   BENCH_QUICK=1 make bench    a fast look (a minute or two): fewer rounds, smaller tables
#   BENCH_PROFILE=1 make bench  no measures: profiles of the Ruby (stackprof) and Python
#                               (cProfile) workflow and plain job on SQLite, written to
#                               bench/results/profile-{ruby,python}.txt
#
# It starts and stops its own PostgreSQL (scripts/pg-server.sh, fsync on); SQLite runs in
# WAL mode with synchronous=FULL (except the memory measure: fsync does not change RSS).
# C links the library `make build` built; Ruby uses the gem built and installed into a
# private GEM_HOME, Python the package installed into a venv, as a user installs them.
# Wall-clock time is noisy on a shared machine: every measure alternates rounds of the
# acidic_job side and the baseline in one process and reports medians of ratios.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
began=$(date +%s)
quick="${BENCH_QUICK:-0}"
[ "$quick" = 1 ] || quick=0

# memory: runs in all and the warm-up among them. A Ruby workflow run costs about 2 ms here
# with synchronous=OFF, so Ruby's 100,000 take some 200 s, beside the other lane; its
# warm-up must pass the ~3,000 runs over which glibc's heap grows to its working size.
if [ "$quick" = 1 ]; then
  rounds=3 runs=100 runs_ruby=60         # workflow ratio: rounds of N runs per side
  lock_rounds=1
  worker_seconds=0.5 worker_rounds=1
  await_parents=1
  history_runs=100000 history_staged=10000 history_calls=50
  memory_runs=10000 memory_warm=1000 memory_runs_ruby=3000 memory_warm_ruby=1000
else
  rounds=11 runs=300 runs_ruby=150
  lock_rounds=5
  worker_seconds=0.6 worker_rounds=5
  await_parents=3
  history_runs=1000000 history_staged=100000 history_calls=200
  memory_runs=100000 memory_warm=10000 memory_runs_ruby=100000 memory_warm_ruby=10000
fi
worker_levels="1 4 16 64"
await_children=1000 await_workers=16

build="$root/build/bench"
results_dir="$root/bench/results"
mkdir -p "$build" "$results_dir"
tmp="$(mktemp -d /tmp/aj-bench.XXXXXX)"
chmod 755 "$tmp" # the PostgreSQL server runs as the postgres user
lines="$tmp/lines"
log="$tmp/log"
: >"$lines"
: >"$log"
cleanup() {
  local rc=$?
  bash "$root/scripts/pg-server.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
# measure LABEL CMD...: run one measure program; its ROW/MEMORY lines go to $lines (or to
# $MEASURE_LINES), its diagnostics to $log; prints one line with the time it took.
measure() {
  local label="$1"; shift
  local t0=$SECONDS err
  err="$(mktemp "$tmp/err.XXXXXX")"
  if "$@" >>"${MEASURE_LINES:-$lines}" 2>"$err"; then
    printf '  %-44s %4ss\n' "$label" $((SECONDS - t0))
  else
    printf '  %-44s FAILED\n' "$label"
    sed 's/^/    /' "$err"
    failed=1
  fi
  cat "$err" >>"$log"
  rm -f "$err"
}

echo "==> building (C bench, Ruby gem, Python package)"
[ -f build/libacidic_job.a ] || make build >/dev/null || exit 1 # `make bench` built it already
pg_cflags="$(pkg-config --cflags libpq)"
# shellcheck disable=SC2086 # pkg-config output is a list of flags
# the core's warning flags, as in every other build of it (core/warning-flags.txt)
warnings="$(grep -v '^#' core/warning-flags.txt)"
# shellcheck disable=SC2086 # one flag per word
cc -O2 -g -std=c11 $warnings -Icore/include $pg_cflags bench/bench_core.c \
   build/libacidic_job.a -lsqlite3 -lpq -lpthread -lm -o "$build/bench_core" || exit 1
bench_core="$build/bench_core"
# AJ_BENCH_BUILD_ONLY=1: stop here (tests/build_flags/run.sh checks this build's flags)
[ -z "${AJ_BENCH_BUILD_ONLY:-}" ] || exit 0

export GEM_HOME="$build/gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH RUBYOPT="-W0"
rm -rf "$GEM_HOME" "$build"/acidic_job-*.gem
if ! { gem build acidic_job.gemspec --output "$build/acidic_job.gem" &&
        gem install --local --no-document "$build/acidic_job.gem"; } >"$tmp/gem.log" 2>&1; then
  cat "$tmp/gem.log"
  exit 1
fi

venv="$build/venv"
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv" || exit 1
"$venv/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall "$root" \
  >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; exit 1; }
python="$venv/bin/python"
ruby_bench=(ruby "$root/bench/bench_ruby.rb")
# Python runs from the temp dir, so the source package (without its compiled part) does
# not shadow the installed one.
python_bench() { (cd "$tmp" && "$python" "$root/bench/bench_python.py" "$@"); }

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
  echo "==> profiles (SQLite, synchronous=FULL)"
  rm -f "$results_dir/profile-ruby.txt" "$results_dir/profile-python.txt"
  MEASURE_LINES="$results_dir/profile-ruby.txt" \
    measure "Ruby: stackprof" "${ruby_bench[@]}" profile "$tmp/profile-rb.db" 2000
  MEASURE_LINES="$results_dir/profile-python.txt" \
    measure "Python: cProfile" python_bench profile "sqlite:$tmp/profile-py.db" 2000
  echo "written: bench/results/profile-ruby.txt, bench/results/profile-python.txt"
  exit "$failed"
fi

echo "==> starting PostgreSQL"
pg_url="$(bash scripts/pg-server.sh start "$tmp/pg")" || { echo "PostgreSQL did not start" >&2; exit 1; }
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for d in bench_history_empty bench_history_loaded; do
  "$PG_BIN/psql" "$pg_url" -Xqc "CREATE DATABASE $d" >/dev/null || exit 1
done
pg_base="${pg_url%/*}"

[ "$quick" = 1 ] && echo "==> BENCH_QUICK=1: scaled-down sizes"
echo "==> whole-workflow ratio, commits, round trips, latency ($rounds rounds of $runs runs, Ruby $runs_ruby)"
measure "C, SQLite" "$bench_core" workflow "sqlite:$tmp/c.db" "$rounds" "$runs"
measure "C, PostgreSQL" "$bench_core" workflow "$pg_url" "$rounds" "$runs"
measure "Python (sqlite3), SQLite" python_bench workflow "sqlite:$tmp/py.db" "$rounds" "$runs" "$bench_core"
measure "Python (psycopg), PostgreSQL" python_bench workflow "$pg_url" "$rounds" "$runs" "$bench_core"
measure "Ruby (ActiveJob), SQLite" "${ruby_bench[@]}" workflow "$tmp/rb.db" "$rounds" "$runs_ruby" "$bench_core"
measure "Ruby (ActiveJob), PostgreSQL" "${ruby_bench[@]}" workflow "$pg_url" "$rounds" "$runs_ruby" "$bench_core"

echo "==> SQLite write lock, awaits, workers"
measure "write lock" "$bench_core" lock "$tmp/lock.db" "$lock_rounds"
measure "awaits, PostgreSQL" "$bench_core" awaits "$pg_url" "$await_children" "$await_parents" "$await_workers"
measure "awaits, SQLite" "$bench_core" awaits "sqlite:$tmp/awaits.db" "$await_children" $((await_parents * 3)) 1
# shellcheck disable=SC2086 # the levels are separate arguments
measure "workers $worker_levels, PostgreSQL" "$bench_core" workers "$pg_url" "$worker_seconds" "$worker_rounds" $worker_levels

echo "==> history ($history_runs finished runs, $history_staged staged rows)"
measure "PostgreSQL" "$bench_core" history "$pg_base/bench_history_empty" "$pg_base/bench_history_loaded" \
  "$history_runs" "$history_staged" "$history_calls" "$results_dir/explain-postgres.txt"
measure "SQLite" "$bench_core" history "sqlite:$tmp/history-empty.db" "sqlite:$tmp/history.db" \
  "$history_runs" "$history_staged" "$history_calls" "$results_dir/explain-sqlite.txt"

echo "==> memory (C and Python: $memory_runs runs, Ruby: $memory_runs_ruby; two at a time)"
bash "$root/scripts/pg-server.sh" stop "$tmp/pg" >/dev/null 2>&1 # SQLite only from here
(
  MEASURE_LINES="$tmp/lines-lane"
  measure "Ruby, workflow" "${ruby_bench[@]}" memory "$tmp/mem-rb-a.db" "$memory_runs_ruby" "$memory_warm_ruby" acidic
  exit "$failed"
) &
lane=$!
measure "Ruby, plain job" "${ruby_bench[@]}" memory "$tmp/mem-rb-p.db" "$memory_runs_ruby" "$memory_warm_ruby" plain
measure "Python, workflow" python_bench memory "sqlite:$tmp/mem-py-a.db" "$memory_runs" "$memory_warm" acidic
measure "Python, plain job" python_bench memory "sqlite:$tmp/mem-py-p.db" "$memory_runs" "$memory_warm" plain
measure "C, workflow" "$bench_core" memory "sqlite:$tmp/mem-c-a.db" "$memory_runs" "$memory_warm" acidic
measure "C, plain job" "$bench_core" memory "sqlite:$tmp/mem-c-p.db" "$memory_runs" "$memory_warm" plain
wait "$lane" || failed=1
cat "$tmp/lines-lane" >>"$lines" 2>/dev/null

seconds=$(($(date +%s) - began))
command="make bench"
[ "$quick" = 1 ] && command="BENCH_QUICK=1 make bench"
echo
echo "==> results ($command, $(nproc) cores, $(date -u +%Y-%m-%d), ${seconds} s)"
/usr/bin/python3 "$root/bench/report.py" "$lines" "$results_dir/latest.json" "$command" \
  "$quick" "$seconds" || failed=1
echo "written: bench/results/latest.json, latest.md, explain-postgres.txt, explain-sqlite.txt"
exit "$failed"

#!/usr/bin/env bash
# make bench: acidic_job steps against plain transactions, on SQLite and PostgreSQL, from
# C, Python and Ruby. Every figure is a ratio to a baseline measured in the same run on
# the same database (the same INSERT in BEGIN/COMMIT), because this machine is shared and
# absolute rates drift. Lines "RATIO <lang> <db> <ratio>" are collected into a table.
#   STEPS=N   steps per measurement (default 3000)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
steps="${STEPS:-3000}"

tmp="$(mktemp -d /tmp/aj-bench.XXXXXX)"
chmod 755 "$tmp"
cleanup() { bash scripts/pg-server.sh stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
out="$tmp/ratios"
: >"$out"

echo "==> C"
# the core's warning flags, as in every other build of it (core/warning-flags.txt)
warnings="$(grep -v '^#' core/warning-flags.txt)"
# shellcheck disable=SC2086 # one flag per word
cc -O2 -std=c11 -D_GNU_SOURCE $warnings -Icore/include -Icore/src $(pkg-config --cflags libpq) \
   core/src/*.c bench/bench_core.c -lsqlite3 -lpq -o "$tmp/bench_core" || exit 1
# AJ_BENCH_BUILD_ONLY=1: stop here (tests/build_flags/run.sh checks this build's flags)
[ -z "${AJ_BENCH_BUILD_ONLY:-}" ] || exit 0
pg_url="$(bash scripts/pg-server.sh start "$tmp/pg")" || { echo "PostgreSQL did not start" >&2; exit 1; }
"$tmp/bench_core" "sqlite:$tmp/c.db" "$steps" | tee -a "$out"
"$tmp/bench_core" "$pg_url" "$steps" | tee -a "$out"

if [ -f bench/bench_python.py ]; then
  echo "==> Python"
  venv="$root/build/python-venv"
  if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  "$venv/bin/pip" install -q --no-build-isolation --no-deps "$root" >/dev/null
  (cd "$tmp" && "$venv/bin/python" "$root/bench/bench_python.py" "sqlite:$tmp/py.db" "$steps") | tee -a "$out"
  (cd "$tmp" && "$venv/bin/python" "$root/bench/bench_python.py" "$pg_url" "$steps") | tee -a "$out"
fi

if [ -f bench/bench_ruby.rb ]; then
  echo "==> Ruby"
  gem_home="$root/build/bench-gems"
  rm -f acidic_job-*.gem
  gem build -q acidic_job.gemspec >/dev/null 2>&1 &&
    GEM_HOME="$gem_home" gem install -q --local --no-document ./acidic_job-*.gem >/dev/null
  rm -f acidic_job-*.gem
  GEM_HOME="$gem_home" GEM_PATH="$gem_home:$(gem env gempath)" \
    ruby bench/bench_ruby.rb "$tmp/rb.db" "$steps" | tee -a "$out"
  GEM_HOME="$gem_home" GEM_PATH="$gem_home:$(gem env gempath)" \
    ruby bench/bench_ruby.rb "$pg_url" "$steps" | tee -a "$out"
fi

echo
echo "steps per second as a fraction of plain transactions (same run, same database):"
printf '  %-8s %-10s %s\n' language database ratio
grep '^RATIO ' "$out" | while read -r _ lang db ratio; do
  printf '  %-8s %-10s %s\n' "$lang" "$db" "$ratio"
done

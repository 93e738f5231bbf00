#!/usr/bin/env bash
# The Ruby suite: builds and installs the gem (gem build + gem install --local into a
# private GEM_HOME under build/), then runs the minitest suite against the installed gem:
#   ActiveJob (test adapter) on SQLite and PostgreSQL, with the native handle shared
#   and through ActiveRecord's API (host); acidic_job's own connection (database_url);
#   real Sidekiq 6.4 processes on a real Redis, on SQLite and PostgreSQL.
# Uses AJ_TEST_PG_URL / AJ_TEST_REDIS_URL when set (scripts/test.sh), else starts its own
# servers with scripts/pg-server.sh and scripts/redis-server.sh and stops them on exit.
# Prints "SUMMARY ruby <part> <passed> <failed>" per part; exits non-zero on failure.
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

build="$root/build/ruby"
mkdir -p "$build" "$root/build/ruby-test"
tmp="$(mktemp -d /tmp/aj-ruby.XXXXXX)"
chmod 755 "$tmp"
started_pg="" started_redis=""
cleanup() {
  local rc=$?
  [ -n "$started_pg" ] && bash "$root/scripts/pg-server.sh" stop "$tmp/pg" >/dev/null 2>&1
  [ -n "$started_redis" ] && bash "$root/scripts/redis-server.sh" stop "$tmp/redis" >/dev/null 2>&1
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build and install the gem ----------------------------------------------------
export GEM_HOME="$build/gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH
rm -rf "$GEM_HOME" "$build"/acidic_job-*.gem
version="$(ruby -e 'load ARGV[0]; print AcidicJob::VERSION' bindings/ruby/lib/acidic_job/version.rb)"
gem build acidic_job.gemspec --output "$build/acidic_job-$version.gem" >/dev/null 2>"$tmp/build.log" || {
  cat "$tmp/build.log"; echo "SUMMARY ruby build 0 1"; exit 1; }
# `gem build` warns about gemspec problems (missing metadata, bad globs) on stderr.
if grep -q "WARNING" "$tmp/build.log"; then
  cat "$tmp/build.log"; echo "SUMMARY ruby gem-build-warnings 0 1"; exit 1
fi
gem install --local --no-document "$build"/acidic_job-*.gem >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"; echo "SUMMARY ruby build 0 1"; exit 1; }
echo "installed $(ls "$build"/acidic_job-*.gem) into $GEM_HOME"
# The suite must load the installed gem, never the source tree.
export RUBYOPT="-W0"

# ---- services --------------------------------------------------------------------
if [ -z "${AJ_TEST_PG_URL:-}" ] && [ -f scripts/pg-server.sh ]; then
  if AJ_TEST_PG_URL="$(bash scripts/pg-server.sh start "$tmp/pg")"; then
    started_pg=1
    export AJ_TEST_PG_URL AJ_TEST_PG_DIR="$tmp/pg"
  fi
fi
if [ -z "${AJ_TEST_REDIS_URL:-}" ] && [ -f scripts/redis-server.sh ]; then
  if AJ_TEST_REDIS_URL="$(bash scripts/redis-server.sh start "$tmp/redis")"; then
    started_redis=1
    export AJ_TEST_REDIS_URL
  fi
fi
export AJ_TEST_PG_URL="${AJ_TEST_PG_URL:-}" AJ_TEST_REDIS_URL="${AJ_TEST_REDIS_URL:-}"

failed=0
# part NAME ENV... : one minitest process over the test files of the part: the Sidekiq
# parts run test_sidekiq_process.rb (real Sidekiq processes), the bundler part
# test_bundler.rb, the kill part test_kill_sidekiq.rb, the others everything else.
part() {
  local name="$1"; shift
  echo
  echo "==== ruby: $name ===="
  local log="$tmp/$name.log"
  env AJ_TEST_PART="$name" "$@" ruby -I"$root/tests/ruby" -e '
    dir = ARGV.shift
    files = Dir[dir + "/test_*.rb"].sort
    # parts of their own: real Sidekiq processes, Bundler installs, the kill test
    special = { "AJ_TEST_SIDEKIQ" => /test_sidekiq_process/, "AJ_TEST_BUNDLER" => /test_bundler/,
                "AJ_TEST_KILL" => /test_kill/ }
    chosen = special.find { |var, _| ENV[var] }
    files = chosen ? files.grep(chosen[1]) : files.reject { |f| special.values.any? { |re| f =~ re } }
    files.each { |f| require f }
  ' "$root/tests/ruby" ${AJ_TEST_ARGS:-} 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if ! grep -q "^SUMMARY ruby $name " "$log"; then
    echo "SUMMARY ruby $name 0 1"
    failed=1
  elif [ "$rc" -ne 0 ]; then
    failed=1
  fi
}

# compat_part NAME ENV... : tests/ruby/compat, the suite of an application written for
# acidic_job 0.7.0, each file in its own process (as `rails test FILE` would run it: some
# files recreate the tables). Sums minitest's closing lines into one SUMMARY line.
compat_part() {
  local name="$1"; shift
  echo
  echo "==== ruby: $name ===="
  local passed=0 failed_count=0 file log line runs f e s
  for file in "$root"/tests/ruby/compat/test_*.rb; do
    [ "$(basename "$file")" = test_helper.rb ] && continue
    log="$tmp/$name-$(basename "$file" .rb).log"
    rm -f "$tmp/$name.db"*
    env COMPAT_SQLITE_PATH="$tmp/$name.db" "$@" ruby "$file" ${AJ_TEST_ARGS:-} >"$log" 2>&1
    line="$(grep -E '^[0-9]+ runs, [0-9]+ assertions, [0-9]+ failures, [0-9]+ errors, [0-9]+ skips' "$log" | tail -1)"
    if [ -z "$line" ]; then
      cat "$log"; echo "!! $(basename "$file"): no minitest result"
      failed_count=$((failed_count + 1)); continue
    fi
    read -r runs f e s < <(echo "$line" | awk '{print $1, $5, $7, $9}')
    passed=$((passed + runs - f - e - s)); failed_count=$((failed_count + f + e))
    if [ $((f + e)) -gt 0 ]; then cat "$log"; fi
    printf '  %-32s %s\n' "$(basename "$file")" "$line"
  done
  echo "SUMMARY ruby $name $passed $failed_count"
  [ "$failed_count" -eq 0 ] || failed=1
}

compat_pg_url() {
  ruby -rpg -e '
    base = ARGV[0]; admin = PG.connect(base)
    admin.exec("CREATE DATABASE acidic_compat") if admin.exec("SELECT 1 FROM pg_database WHERE datname = '"'"'acidic_compat'"'"'").ntuples.zero?
    admin.close
    print base.sub(%r{/[^/?]*(\?|\z)}) { "/acidic_compat#{Regexp.last_match(1)}" }' "$AJ_TEST_PG_URL"
}

only="${AJ_TEST_ONLY:-}"
want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

want sqlite && part sqlite AJ_TEST_DB=sqlite
want sqlite-host && part sqlite-host AJ_TEST_DB=sqlite AJ_TEST_SHARING=host
want sqlite-owned && part sqlite-owned AJ_TEST_DB=sqlite AJ_TEST_OWNED=1
if [ -n "$AJ_TEST_PG_URL" ]; then
  want postgres && part postgres AJ_TEST_DB=postgres
  want postgres-host && part postgres-host AJ_TEST_DB=postgres AJ_TEST_SHARING=host
  want postgres-owned && part postgres-owned AJ_TEST_DB=postgres AJ_TEST_OWNED=1
else
  echo "!! AJ_TEST_PG_URL unset and PostgreSQL could not be started"; echo "SUMMARY ruby postgres 0 1"; failed=1
fi
want bundler && part bundler AJ_TEST_BUNDLER=1
want compat-sqlite && compat_part compat-sqlite COMPAT_DB=sqlite
want compat-sqlite-shared && compat_part compat-sqlite-shared COMPAT_DB=sqlite-shared
want compat-sqlite-0.7.0-schema && compat_part compat-sqlite-0.7.0-schema COMPAT_DB=sqlite COMPAT_SCHEMA=0.7.0-test
if [ -n "$AJ_TEST_PG_URL" ] && want compat-postgres; then
  compat_part compat-postgres COMPAT_DB=postgres COMPAT_PG_URL="$(compat_pg_url)"
fi
if [ -n "$AJ_TEST_REDIS_URL" ]; then
  want kill-sidekiq && part kill-sidekiq AJ_TEST_KILL=1
  want sidekiq-sqlite && part sidekiq-sqlite AJ_TEST_DB=sqlite AJ_TEST_SIDEKIQ=1
  if [ -n "$AJ_TEST_PG_URL" ]; then
    want sidekiq-postgres && part sidekiq-postgres AJ_TEST_DB=postgres AJ_TEST_SIDEKIQ=1
  fi
else
  echo "!! AJ_TEST_REDIS_URL unset and Redis could not be started"; echo "SUMMARY ruby sidekiq 0 1"; failed=1
fi

# The extension and the core built with UBSan (-fno-sanitize-recover: any undefined
# behaviour aborts the part). ASan cannot run here: Ruby raises exceptions with longjmp
# through frames ASan does not see unwind, which leaves false stack poison behind.
if [ "${AJ_TEST_UBSAN:-1}" = 1 ] && { want sqlite-ubsan || want postgres-ubsan; }; then
  ubsan_home="$build/ubsan-gems"
  rm -rf "$ubsan_home"
  if GEM_HOME="$ubsan_home" GEM_PATH="$ubsan_home:${GEM_PATH#*:}" gem install --local --no-document \
      "$build"/acidic_job-*.gem -- \
      --with-cflags="-O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
      --with-ldflags="-fsanitize=undefined" >"$tmp/ubsan-install.log" 2>&1; then
    ubsan_env=(GEM_HOME="$ubsan_home" GEM_PATH="$ubsan_home:${GEM_PATH#*:}"
               LD_PRELOAD="$(gcc -print-file-name=libubsan.so)"
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    want sqlite-ubsan && part sqlite-ubsan AJ_TEST_DB=sqlite "${ubsan_env[@]}"
    if [ -n "$AJ_TEST_PG_URL" ]; then
      want postgres-ubsan && part postgres-ubsan AJ_TEST_DB=postgres "${ubsan_env[@]}"
    fi
  else
    cat "$tmp/ubsan-install.log"; echo "SUMMARY ruby ubsan-build 0 1"; failed=1
  fi
fi

exit "$failed"

#!/usr/bin/env bash
# Python test suite: builds the package into a venv and runs pytest against real
# SQLite, PostgreSQL 15, Redis, Celery and RQ.
#
# Reads AJ_TEST_PG_URL and AJ_TEST_REDIS_URL (exported by scripts/test.sh). When one is
# unset, this script starts its own throwaway server with scripts/pg-server.sh /
# scripts/redis-server.sh and stops it on exit.
# Prints one line per part: SUMMARY python <sqlite|postgres|celery|rq|api> <passed> <failed>
# and exits non-zero on any failure (pytest's "no tests collected" included).
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="$root/build/python-venv"
tmp="$(mktemp -d /tmp/aj-pytest.XXXXXX)"
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

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv" || exit 1
fi
echo "==> pip install --no-build-isolation . (into $venv)"
if ! "$venv/bin/pip" install --no-build-isolation --no-deps -q --force-reinstall "$root" \
     >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log"
  echo "SUMMARY python build 0 1"
  exit 1
fi

if [ -z "${AJ_TEST_PG_URL:-}" ]; then
  if AJ_TEST_PG_URL="$(bash scripts/pg-server.sh start "$tmp/pg")"; then
    started_pg=1
    export AJ_TEST_PG_DIR="$tmp/pg"
  else
    AJ_TEST_PG_URL=""
    echo "!! could not start PostgreSQL: PostgreSQL tests will fail" >&2
  fi
fi
if [ -z "${AJ_TEST_REDIS_URL:-}" ]; then
  if AJ_TEST_REDIS_URL="$(bash scripts/redis-server.sh start "$tmp/redis")"; then
    started_redis=1
  else
    AJ_TEST_REDIS_URL=""
    echo "!! could not start Redis: queue tests will fail" >&2
  fi
fi
export AJ_TEST_PG_URL AJ_TEST_REDIS_URL

# Run from the tests folder: the source package (bindings/python/acidic_job, without the
# compiled _native) is not importable from there, so the installed one is tested.
cd "$root/tests/python"
"$venv/bin/python" -m pytest -q -rfE "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "!! pytest collected no tests" >&2
  echo "SUMMARY python collect 0 1"
  exit 1
fi

# Second pass: the extension built with ASan+UBSan (its own venv and object files), the
# database tests again (the queue tests exercise no other C path). AJ_PY_SANITIZE=0 skips.
if [ "${AJ_PY_SANITIZE:-1}" != 0 ] && [ $# -eq 0 ]; then
  asan_venv="$root/build/python-asan-venv"
  [ -x "$asan_venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$asan_venv"
  echo "==> ASan+UBSan build of the extension (into $asan_venv)"
  if ! (cd "$root" && CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g" \
        LDFLAGS="-fsanitize=address,undefined" \
        "$asan_venv/bin/pip" install --no-build-isolation --no-deps -q --force-reinstall . \
        >"$tmp/pip-asan.log" 2>&1); then
    cat "$tmp/pip-asan.log"
    echo "SUMMARY python asan-build 0 1"
    exit 1
  fi
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  AJ_TEST_PART_PREFIX="asan-" \
    "$asan_venv/bin/python" -m pytest -q -rfE test_workflow.py test_connections.py test_api.py \
      test_inputs.py test_faults.py test_recover.py test_events.py test_admin.py \
      -k "not 1000_failed"
  arc=$?
  [ "$rc" -eq 0 ] && rc=$arc
fi
exit "$rc"

#!/usr/bin/env bash
# The dashboard's suite: the one front end (web/) in a real headless Chromium (Debian's
# chromium and chromium-driver, driven by python3-selenium) against AcidicJob::Web
# mounted in Rails and acidic_job.web under a WSGI server, each on SQLite and PostgreSQL,
# over runs seeded by real workflows (tests/web/test_dashboard.py).
#
# Installs what it needs (scripts/install-deps.sh), the gem into build/web-gems and the
# Python package into build/web-venv (again only when their sources changed). Uses
# AJ_TEST_PG_URL / AJ_TEST_REDIS_URL when set (scripts/test.sh), else starts its own
# servers and stops them on exit. Screenshots go to build/screenshots/;
# AJ_WEB_UPDATE_DOCS=1 also rewrites the README's two (docs/images/).
# Prints "SUMMARY web <server>-<database> <passed> <failed>" per target.
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tmp="$(mktemp -d /tmp/aj-web.XXXXXX)"
chmod 755 "$tmp"
started_pg="" started_redis=""
cleanup() {
  local rc=$?
  [ -n "$started_pg" ] && bash "$root/scripts/pg-server.sh" stop "$tmp/pg" >/dev/null 2>&1
  [ -n "$started_redis" ] && bash "$root/scripts/redis-server.sh" stop "$tmp/redis" >/dev/null 2>&1
  rm -rf "$tmp"
  [ "$rc" -eq 0 ] && rc=$build_failed
exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/install-deps.sh >/dev/null 2>&1 || scripts/install-deps.sh || {
  echo "SUMMARY web deps 0 1"; exit 1; }

echo "==> the gem (build/web-gems) and the Python package (build/web-venv)"
# a build that fails is one failure, and the other language's targets still run
gem_home="$root/build/web-gems"
skip=()
build_failed=0
if ! scripts/install-gem.sh "$gem_home"; then
  echo "SUMMARY web gem-build 0 1"; skip+=(rails); build_failed=1
fi
if ! scripts/install-python.sh "$root/build/web-venv"; then
  echo "SUMMARY web python-build 0 1"; skip+=(wsgi); build_failed=1
fi
export GEM_HOME="$gem_home"
GEM_PATH="$gem_home:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH AJ_WEB_RUBY=ruby AJ_WEB_PYTHON="$root/build/web-venv/bin/python"

if [ -z "${AJ_TEST_PG_URL:-}" ]; then
  if AJ_TEST_PG_URL="$(bash scripts/pg-server.sh start "$tmp/pg")"; then
    started_pg=1
  else
    AJ_TEST_PG_URL=""
    echo "!! could not start PostgreSQL: the PostgreSQL targets will fail" >&2
  fi
fi
if [ -z "${AJ_TEST_REDIS_URL:-}" ]; then
  if AJ_TEST_REDIS_URL="$(bash scripts/redis-server.sh start "$tmp/redis")"; then
    started_redis=1
  else
    AJ_TEST_REDIS_URL=""
    echo "!! could not start Redis: the Python targets will fail" >&2
  fi
fi
export AJ_TEST_PG_URL AJ_TEST_REDIS_URL

# Selenium, Pillow and psycopg are Debian's: the system Python runs the tests.
cd "$root/tests/web"
deselect=()
[ ${#skip[@]} -eq 1 ] && deselect=(-k "not ${skip[0]}")
if [ ${#skip[@]} -eq 2 ]; then exit 1; fi
/usr/bin/python3 -m pytest -q -rfE "${deselect[@]}" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "!! pytest collected no tests" >&2
  echo "SUMMARY web collect 0 1"
  exit 1
fi
[ "$rc" -eq 0 ] && rc=$build_failed
exit "$rc"
